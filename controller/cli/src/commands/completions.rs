//! `completions`: shell completion scripts.

use std::io::Write;

use clap::Subcommand;

use crate::Context;

#[derive(Debug, Subcommand)]
pub(crate) enum CompletionsVerb {
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell).
    #[command(name = "completions")]
    Completions { shell: clap_complete::Shell },
}

pub(crate) async fn execute(
    verb: CompletionsVerb,
    _context: &Context,
    out: &mut impl Write,
    _err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        CompletionsVerb::Completions { shell } => {
            let mut command = <crate::Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "skiff", out);
            Ok(())
        }
    }
}
