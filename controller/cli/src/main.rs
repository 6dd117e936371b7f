//! `skiff`: the command-line client of a Skiff controller.

fn main() -> std::process::ExitCode {
    let context = skiff_cli::Context::from_environment();
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("skiff: cannot start: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let status =
        runtime.block_on(skiff_cli::run(std::env::args_os(), &context, &mut std::io::stdout(), &mut std::io::stderr()));
    std::process::ExitCode::from(status)
}
