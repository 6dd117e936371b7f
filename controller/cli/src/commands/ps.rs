//! `ps:*`: an app's containers, scaling and restarts.

use std::io::Write;

use anyhow::anyhow;
use clap::Subcommand;
use skiff_api::ProcessType;

use crate::Context;
use crate::args::{AppArg, JsonArg, parse_scale_pair};
use crate::commands::{app_name, client};
use crate::output::{ago, json, table};
use crate::rollout::wait_for_scale;

#[derive(Debug, Subcommand)]
pub(crate) enum PsVerb {
    /// List an app's containers.
    #[command(name = "ps")]
    Ps {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Scale process types (TYPE=N ...), to 0 as well.
    #[command(name = "ps:scale")]
    PsScale {
        #[arg(required = true, value_name = "TYPE=N", value_parser = parse_scale_pair)]
        pairs: Vec<(ProcessType, u32)>,
        #[command(flatten)]
        app: AppArg,
        /// Wait until each type runs that many containers, showing progress.
        #[arg(long)]
        wait: bool,
    },
    /// Replace an app's containers (all, or one process type) without downtime.
    #[command(name = "ps:restart")]
    PsRestart {
        /// A process type (`web`), or one container's id as `skiff ps` shows it.
        #[arg(value_name = "TYPE|ID")]
        target: Option<String>,
        #[command(flatten)]
        app: AppArg,
    },
}

pub(crate) async fn execute(
    verb: PsVerb,
    context: &Context,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        PsVerb::Ps { app, json: flag } => {
            let processes = client(context)?.ps(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &processes);
            }
            // A column for nodes only on a cluster.
            let clustered = processes.iter().any(|p| p.node.is_some());
            let rows = processes
                .iter()
                .map(|p| {
                    let state = match &p.crash {
                        Some(crash) => format!(
                            "crashed: {} ({} in a row; next start {})",
                            crash.reason,
                            crash.in_a_row,
                            ago(&crash.restart_at)
                        ),
                        None => p.state.clone(),
                    };
                    let mut row = vec![
                        p.process.clone(),
                        p.id.clone(),
                        format!("v{}", p.release),
                        state,
                        p.started_at.as_deref().map_or_else(|| "-".into(), ago),
                    ];
                    if clustered {
                        row.push(p.node.clone().unwrap_or_else(|| "-".into()));
                    }
                    row
                })
                .collect();
            let headers: &[&str] = if clustered {
                &["TYPE", "ID", "RELEASE", "STATE", "STARTED", "NODE"]
            } else {
                &["TYPE", "ID", "RELEASE", "STATE", "STARTED"]
            };
            table(out, context.colour, headers, rows)
        }
        PsVerb::PsScale { pairs, app, wait } => {
            let app = app_name(context, app)?;
            let scale: std::collections::BTreeMap<ProcessType, u32> = pairs.into_iter().collect();
            let formation = client(context)?.scale(&app, &scale).await?;
            let summary: Vec<String> = formation.iter().map(|f| format!("{}={}", f.process, f.quantity)).collect();
            writeln!(out, "Scaled {app} to {}", summary.join(" "))?;
            if wait {
                wait_for_scale(context, &app, &scale, err).await?;
            }
            Ok(())
        }
        PsVerb::PsRestart { target, app } => {
            let app = app_name(context, app)?;
            let client = client(context)?;
            let containers = client.ps(&app).await?;
            let (restart, what) = match target {
                None => (skiff_api::Restart { process: None, container: None }, "all processes".to_owned()),
                Some(id) if id.len() >= 4 && containers.iter().any(|p| p.id.starts_with(&id)) => {
                    (skiff_api::Restart { process: None, container: Some(id.clone()) }, format!("container {id}"))
                }
                Some(process) => {
                    let process: ProcessType = process.parse().map_err(|_| {
                        anyhow!("`{process}` is neither a process type nor a container of {app}; see `skiff ps`")
                    })?;
                    let what = format!("{process} processes");
                    (skiff_api::Restart { process: Some(process), container: None }, what)
                }
            };
            client.restart(&app, &restart).await?;
            writeln!(out, "Restarting {what} of {app}")?;
            Ok(())
        }
    }
}
