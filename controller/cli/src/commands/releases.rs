//! `builds:*`, `deploy` and `releases:*`: what an app runs and how it got there.

use std::io::Write;

use clap::Subcommand;

use crate::Context;
use crate::args::{AppArg, JsonArg, WaitArg, parse_version};
use crate::commands::{app_name, client, text_of};
use crate::output::{ago, json, table};
use crate::rollout::follow_rollout;

#[derive(Debug, Subcommand)]
pub(crate) enum ReleasesVerb {
    /// List an app's builds.
    #[command(name = "builds")]
    Builds {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show one build with its full log.
    #[command(name = "builds:info")]
    BuildsInfo {
        /// The build's id (see `skiff builds`).
        id: i64,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Release an existing image (from Skiff's registry or any registry the engine reaches).
    #[command(name = "deploy")]
    Deploy {
        /// The image, e.g. `127.0.0.1:7701/app:tag` or `registry.example/team/api:1.4`.
        #[arg(long)]
        image: String,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Show one release.
    #[command(name = "releases:info")]
    ReleasesInfo {
        /// The version, e.g. v3.
        #[arg(value_parser = parse_version)]
        version: u32,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Make a new release from an earlier one's build and config (default: the previous).
    #[command(name = "releases:rollback")]
    ReleasesRollback {
        /// The version to go back to, e.g. v3.
        #[arg(value_parser = parse_version)]
        version: Option<u32>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// List an app's releases, newest first.
    #[command(name = "releases")]
    Releases {
        #[command(flatten)]
        app: AppArg,
        /// How many of the newest.
        #[arg(long, short = 'n', default_value_t = 15)]
        num: u32,
        #[command(flatten)]
        json: JsonArg,
    },
}

pub(crate) async fn execute(
    verb: ReleasesVerb,
    context: &Context,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        ReleasesVerb::Builds { app, json: flag } => {
            let builds = client(context)?.builds(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &builds);
            }
            let rows = builds
                .iter()
                .map(|b| {
                    let what = b.git_sha.as_deref().map_or("-", |s| s.get(..7).unwrap_or(s));
                    vec![
                        b.id.to_string(),
                        text_of(&b.kind),
                        text_of(&b.status),
                        what.to_owned(),
                        format!("{:.1}s", b.duration_ms as f64 / 1000.0),
                        ago(&b.created_at),
                        b.created_by.to_string(),
                    ]
                })
                .collect();
            table(out, context.colour, &["ID", "KIND", "STATUS", "GIT", "TOOK", "CREATED", "BY"], rows)
        }
        ReleasesVerb::BuildsInfo { id, app, json: flag } => {
            let build = client(context)?.build(&app_name(context, app)?, id).await?;
            if flag.json {
                return json(out, &build);
            }
            for (key, value) in [
                ("id", build.id.to_string()),
                ("kind", text_of(&build.kind)),
                ("status", text_of(&build.status)),
                ("git", build.git_sha.clone().unwrap_or_else(|| "-".into())),
                ("image", build.image.clone().unwrap_or_else(|| "-".into())),
                ("took", format!("{:.1}s", build.duration_ms as f64 / 1000.0)),
                ("by", build.created_by.to_string()),
                ("created", ago(&build.created_at)),
            ] {
                writeln!(out, "{key:>8}: {value}")?;
            }
            writeln!(out, "\n{}", build.log.unwrap_or_default().trim_end())?;
            Ok(())
        }
        ReleasesVerb::Deploy { image, app, wait } => {
            let app = app_name(context, app)?;
            let recorded = client(context)?.deploy_image(&app, &image).await?;
            match &recorded.release {
                Some(release) => writeln!(out, "Deployed {image} to {app} as v{}", release.version)?,
                None => writeln!(out, "Recorded build {} of {app}", recorded.build.id)?,
            }
            follow_rollout(context, &app, recorded.release.map(|r| r.version).filter(|_| wait.wait), err).await
        }
        ReleasesVerb::ReleasesInfo { version, app, json: flag } => {
            let app = app_name(context, app)?;
            let release = client(context)?.release_of(&app, version).await?;
            if flag.json {
                return json(out, &release);
            }
            let build = release.build.map_or_else(|| "-".into(), |b| b.to_string());
            let config: Vec<&str> = release.config.keys().map(String::as_str).collect();
            let processes: Vec<&str> = release.procfile.keys().map(|p| p.as_str()).collect();
            for (key, value) in [
                ("version", format!("v{}", release.version)),
                ("by", release.created_by.to_string()),
                ("created", ago(&release.created_at)),
                ("summary", release.summary.clone()),
                ("state", text_of(&release.state)),
                ("failure", release.failure.clone().unwrap_or_else(|| "-".into())),
                ("build", build),
                ("image", release.image.clone()),
                ("git", release.git_sha.clone().unwrap_or_else(|| "-".into())),
                ("types", processes.join(", ")),
                ("config", config.join(", ")),
            ] {
                writeln!(out, "{key:>8}: {value}")?;
            }
            if let Some(phase) = &release.phase {
                writeln!(out, "{:>8}: {}", "release", text_of(&phase.state))?;
                for line in phase.output.lines() {
                    writeln!(out, "{:>8}  {line}", "")?;
                }
            }
            Ok(())
        }
        ReleasesVerb::ReleasesRollback { version, app, wait } => {
            let app = app_name(context, app)?;
            let release = client(context)?.rollback(&app, &skiff_api::Rollback { version }).await?;
            writeln!(out, "Rolled back {app}: {} (v{})", release.summary, release.version)?;
            follow_rollout(context, &app, Some(release.version).filter(|_| wait.wait), err).await
        }
        ReleasesVerb::Releases { app, num, json: flag } => {
            let releases = client(context)?.releases(&app_name(context, app)?, Some(num)).await?;
            if flag.json {
                return json(out, &releases);
            }
            // Listed newest first: the first deployed one serves.
            let current = releases.iter().find(|r| r.state == skiff_api::ReleaseState::Deployed).map(|r| r.version);
            let rows = releases
                .iter()
                .map(|r| {
                    let summary = match &r.failure {
                        Some(failure) => format!("{} (failed: {failure})", r.summary),
                        None => r.summary.clone(),
                    };
                    let state = if Some(r.version) == current { "current".to_owned() } else { text_of(&r.state) };
                    vec![format!("v{}", r.version), state, ago(&r.created_at), r.created_by.to_string(), summary]
                })
                .collect();
            table(out, context.colour, &["VERSION", "STATE", "CREATED", "BY", "SUMMARY"], rows)
        }
    }
}
