//! `git:remote`: the `skiff` remote of the current repository.

use std::io::Write;

use anyhow::bail;
use clap::Subcommand;

use crate::args::AppArg;
use crate::commands::{app_name, client};
use crate::{Context, git};

#[derive(Debug, Subcommand)]
pub(crate) enum GitRemoteVerb {
    /// Add (or update) the `skiff` git remote of the current repository.
    #[command(name = "git:remote")]
    GitRemote {
        #[command(flatten)]
        app: AppArg,
    },
}

pub(crate) async fn execute(
    verb: GitRemoteVerb,
    context: &Context,
    out: &mut impl Write,
    _err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        GitRemoteVerb::GitRemote { app } => {
            let app = client(context)?.app(&app_name(context, app)?).await?;
            if !git::in_repository(&context.cwd) {
                bail!("{} is not inside a git repository; run `git init` first", context.cwd.display());
            }
            git::set_remote(&context.cwd, &app.git_url)?;
            writeln!(out, "Git remote `skiff` now points at {}", app.git_url)?;
            Ok(())
        }
    }
}
