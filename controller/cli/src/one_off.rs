//! `skiff run`: a one-off command, its output streamed, its exit status returned.

use std::io::Write;

use anyhow::bail;

use crate::Context;
use crate::args::AppArg;
use crate::commands::{app_name, client};

/// The shell command line that runs `args`: a single argument is a command line already;
/// several are each quoted, so the shell passes them on unchanged.
pub(crate) fn shell_line(args: &[String]) -> String {
    match args {
        [line] => line.clone(),
        args => args.iter().map(|arg| shell_quote(arg)).collect::<Vec<_>>().join(" "),
    }
}

/// `arg` as one shell word: bare when it holds only safe characters, otherwise in single
/// quotes (a quote inside becomes `'\''`).
pub(crate) fn shell_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) { arg.to_owned() } else { format!("'{}'", arg.replace('\'', "'\\''")) }
}

/// `skiff run`: streams the command's output; its exit status becomes ours (1 when it
/// does not fit a process exit status).
pub(crate) async fn run_command(
    context: &Context,
    app: AppArg,
    timeout: u64,
    command: String,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<u8> {
    let app = app_name(context, app)?;
    let request = skiff_api::RunRequest { command, timeout_secs: Some(timeout) };
    let mut output = std::pin::pin!(client(context)?.run(&app, &request).await?);
    while let Some(line) = futures_util::StreamExt::next(&mut output).await {
        match line? {
            skiff_api::RunOutput::Out(text) => {
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
            skiff_api::RunOutput::Err(text) => {
                err.write_all(text.as_bytes())?;
                err.flush()?;
            }
            skiff_api::RunOutput::Exit(status) => return Ok(u8::try_from(status).unwrap_or(1)),
        }
    }
    bail!("the connection ended before the command did; see `skiff ps -a {app}`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_run_arguments_reach_the_command_as_they_were_typed() {
        let typed = ["printf", "%s|", "echo first; echo second", "it's", "$HOME", "", "a\\b", "*"];
        let args: Vec<String> = typed.iter().map(|a| (*a).to_owned()).collect();
        let output = std::process::Command::new("sh").arg("-c").arg(shell_line(&args)).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "echo first; echo second|it's|$HOME||a\\b|*|");
        let line = vec!["echo first; echo second".to_owned()];
        assert_eq!(shell_line(&line), "echo first; echo second", "one argument is a command line");
    }
}
