//! The `skiff` CLI: Heroku/Deis-style `topic:command` verbs over the controller API.
//!
//! Layout:
//! - [`config`]: the stored login (URL, user, token).
//! - [`git`]: the `skiff` git remote of the current directory.
//! - [`output`]: aligned tables and JSON.
//! - [`dotenv`]: `.env` files for `config:pull` and `config:push`.
//! - `commands`: the verbs, one module per topic (`apps`, `releases`, `routing`, …).
//! - `args`: arguments several verbs share, and value parsers; `rollout`: `--wait`;
//!   `one_off`: `skiff run`.
//!
//! [`run`] takes its environment as a [`Context`] and writes to the given streams, so tests
//! drive the real CLI in-process.

mod args;
mod commands;
pub mod config;
pub mod dotenv;
pub mod git;
mod one_off;
pub mod output;
mod rollout;

use std::ffi::OsString;
use std::io::Write;
use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::args::AppArg;
use crate::commands::{Verb, execute};
use crate::one_off::{run_command, shell_line};

/// Where the CLI runs: its configuration directory, working directory and overrides.
#[derive(Debug, Clone)]
pub struct Context {
    /// Holds `skiff/config.json`.
    pub config_dir: PathBuf,
    /// The directory whose git remote names the default app.
    pub cwd: PathBuf,
    /// The user's home (for `~/.ssh/id_*.pub`).
    pub home: PathBuf,
    /// `SKIFF_URL`.
    pub url: Option<String>,
    /// `SKIFF_TOKEN`.
    pub token: Option<String>,
    /// Colour tables (on a terminal, without `NO_COLOR`).
    pub colour: bool,
    /// The controller's version, as its answers said.
    pub server_version: skiff_client::SeenVersion,
    /// Show progress with a spinner (standard error is a terminal).
    pub live_progress: bool,
}

impl Context {
    /// The context of the running process.
    pub fn from_environment() -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
        let config_dir = std::env::var_os("XDG_CONFIG_HOME").map_or_else(|| home.join(".config"), PathBuf::from);
        Self {
            config_dir,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            home,
            url: std::env::var("SKIFF_URL").ok().filter(|v| !v.is_empty()),
            token: std::env::var("SKIFF_TOKEN").ok().filter(|v| !v.is_empty()),
            colour: output::colour_wanted(),
            live_progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
            server_version: skiff_client::SeenVersion::default(),
        }
    }
}

#[derive(Debug, Parser)]
#[command(name = "skiff", version, about = "Deploy and run apps on a Skiff platform", disable_help_subcommand = true)]
pub(crate) struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a one-off command in a new container of the current release; exits with its status.
    ///
    /// The command runs through `sh -c` in the container. One argument is a shell command
    /// line (`skiff run 'rake db:migrate && echo done'`); several are quoted one by one and
    /// run as they were typed (`skiff run -- sh -c 'echo first; echo second'`).
    #[command(name = "run")]
    Run {
        #[command(flatten)]
        app: AppArg,
        /// Seconds before the command is killed.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
        /// The command and its arguments (after `--`).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    #[command(flatten)]
    Verb(Verb),
}

/// Runs the CLI; returns the exit status (0 success, 1 error, 2 usage).
pub async fn run(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    context: &Context,
    out: &mut impl Write,
    err: &mut impl Write,
) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = if e.use_stderr() { write!(err, "{e}") } else { write!(out, "{e}") };
            return code;
        }
    };
    let result = match cli.command {
        Command::Run { app, timeout, command } => {
            run_command(context, app, timeout, shell_line(&command), out, err).await
        }
        Command::Verb(verb) => execute(verb, context, out, err).await.map(|()| 0),
    };
    warn_if_older(context, err);
    match result {
        Ok(status) => status,
        Err(e) => {
            let _ = writeln!(err, "skiff: {e:#}");
            1
        }
    }
}

/// This CLI's version.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `major.minor.patch` as numbers (a pre-release or build suffix ignored).
fn version_numbers(version: &str) -> Option<(u64, u64, u64)> {
    let core = version.trim().split(['-', '+']).next()?;
    let mut parts = core.split('.').map(str::parse::<u64>);
    let (major, minor, patch) = (parts.next()?.ok()?, parts.next()?.ok()?, parts.next().unwrap_or(Ok(0)).ok()?);
    Some((major, minor, patch))
}

/// Says so on standard error when the controller that answered is newer than this CLI.
fn warn_if_older(context: &Context, err: &mut impl Write) {
    let seen = context.server_version.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone();
    let Some(server) = seen else { return };
    if let (Some(theirs), Some(ours)) = (version_numbers(&server), version_numbers(VERSION))
        && theirs > ours
    {
        let _ = writeln!(err, "skiff: this CLI is {VERSION}, older than the controller ({server}); update it");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_compare_by_number() {
        assert_eq!(version_numbers("0.10.2"), Some((0, 10, 2)));
        assert_eq!(version_numbers("1.2.3-rc.1+abc"), Some((1, 2, 3)));
        assert_eq!(version_numbers("2.1"), Some((2, 1, 0)));
        assert_eq!(version_numbers("garbage"), None);
        assert!(version_numbers("0.10.0") > version_numbers("0.9.9"));
    }
}
