//! `apps:connect`, `apps:source`, `apps:disconnect` and `builds:create`: apps built from a
//! source repository's pushes.

use std::io::Write;

use clap::Subcommand;
use skiff_api::{AppSourceCreate, BuildTrigger};

use crate::Context;
use crate::args::{AppArg, JsonArg};
use crate::commands::{app_name, client};
use crate::output::json;

#[derive(Debug, Subcommand)]
pub(crate) enum SourcesVerb {
    /// Build the app from a repository's pushes: point the repository's webhook (GitHub,
    /// GitLab or Gitea; push events, JSON) at the hook URL shown, with the secret shown.
    #[command(name = "apps:connect")]
    AppsConnect {
        #[command(flatten)]
        app: AppArg,
        /// `https://HOST/OWNER/REPO.git` (a read token in it for a private repository),
        /// `ssh://git@HOST/OWNER/REPO.git` or `git@HOST:OWNER/REPO.git` (with a deploy key
        /// Skiff makes and shows), `git://…`, or (admins) a path on the builder's machine.
        #[arg(long)]
        repo: String,
        /// The branch whose pushes are built.
        #[arg(long, default_value = "main")]
        branch: String,
        /// The secret the repository's host signs events with (16 characters or more)
        /// [default: one made and shown once].
        #[arg(long)]
        secret: Option<String>,
    },
    /// Show the app's source repository and its hook URL.
    #[command(name = "apps:source")]
    AppsSource {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Stop building the app from its repository's pushes.
    #[command(name = "apps:disconnect")]
    AppsDisconnect {
        #[command(flatten)]
        app: AppArg,
    },
    /// Build a commit, branch or tag of the app's repository now (a rebuild).
    #[command(name = "builds:create")]
    BuildsCreate {
        #[command(flatten)]
        app: AppArg,
        /// What to build [default: the connected branch's newest commit].
        #[arg(long = "ref")]
        reference: Option<String>,
    },
}

pub(crate) async fn execute(
    verb: SourcesVerb,
    context: &Context,
    out: &mut impl Write,
    _err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        SourcesVerb::AppsConnect { app, repo, branch, secret } => {
            let app = app_name(context, app)?;
            let given = secret.is_some();
            let body = AppSourceCreate { repo, branch: Some(branch), secret };
            let client = client(context)?;
            let source = client.connect_source(&app, &body).await?;
            writeln!(out, "{app} builds pushes to {} of {}", source.branch, source.repo)?;
            writeln!(out, "Hook URL: {}{}", client.base().trim_end_matches('/'), source.hook_path)?;
            if let (false, Some(secret)) = (given, source.secret) {
                writeln!(out, "Secret (shown once): {secret}")?;
            }
            if let Some(key) = source.deploy_key {
                writeln!(out, "Deploy key (add it to the repository, read-only): {key}")?;
            }
            Ok(())
        }
        SourcesVerb::AppsSource { app, json: flag } => {
            let client = client(context)?;
            let source = client.source(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &source);
            }
            writeln!(out, "repo:   {}", source.repo)?;
            writeln!(out, "branch: {}", source.branch)?;
            writeln!(out, "hook:   {}{}", client.base().trim_end_matches('/'), source.hook_path)?;
            writeln!(out, "by:     {}", source.connected_by)?;
            if let Some(key) = source.deploy_key {
                writeln!(out, "key:    {key}")?;
            }
            Ok(())
        }
        SourcesVerb::AppsDisconnect { app } => {
            let app = app_name(context, app)?;
            client(context)?.disconnect_source(&app).await?;
            writeln!(out, "{app} is no longer built from its repository")?;
            Ok(())
        }
        SourcesVerb::BuildsCreate { app, reference } => {
            let app = app_name(context, app)?;
            let answer = client(context)?.build_from_source(&app, &BuildTrigger { reference }).await?;
            writeln!(out, "{app}: {}; follow it with `skiff builds` and `skiff releases`", answer.message)?;
            Ok(())
        }
    }
}
