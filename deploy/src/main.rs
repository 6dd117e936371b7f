//! `skiffd`: runs Skiff's components, all in one process or one at a time.

use clap::Parser as _;

/// mimalloc: the router's request path allocates and frees small objects on every request,
/// which glibc's allocator does in about twice the time. Its arenas are large aligned
/// mappings, which the kernel backs with transparent huge pages where they are on by
/// default, so `main` turns them off for the process: with them, 9,000 idle router
/// connections took 40 KiB each instead of 27 (measured when hyper's server held every
/// connection; the router's own reading of requests has since brought it to about 9).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    #[cfg(target_os = "linux")]
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        eprintln!("skiffd: transparent huge pages stay on: {error}");
    }
    let cli = skiffd::Cli::parse();
    if let skiffd::Command::Hook(_) = cli.command {
        // git runs the hook with the pusher's output on our stdout: no logging setup.
        return skiffd::run_hook();
    }
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("SKIFF_LOG").unwrap_or_else(|_| "info,russh=warn".into()),
        )
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("skiffd: cannot start the runtime: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(skiffd::run(cli)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("skiffd: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
