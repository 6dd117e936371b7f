//! `limits:*` and `healthchecks:*`: per-process memory, CPU and readiness checks.

use std::io::Write;

use anyhow::bail;
use clap::Subcommand;
use skiff_api::ProcessType;

use crate::Context;
use crate::args::{AppArg, JsonArg, Limit, parse_limit};
use crate::commands::{app_name, client, text_of};
use crate::output::{json, table};

#[derive(Debug, Subcommand)]
pub(crate) enum SettingsVerb {
    /// Show the memory and CPU limits of an app's process types.
    #[command(name = "limits")]
    Limits {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Limit a process type's containers: memory=256m (or 1g), cpu=0.5 (cores).
    #[command(name = "limits:set")]
    LimitsSet {
        process: ProcessType,
        #[arg(required = true, value_name = "memory=SIZE|cpu=CORES", value_parser = parse_limit)]
        limits: Vec<Limit>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Remove a process type's limits.
    #[command(name = "limits:unset")]
    LimitsUnset {
        process: ProcessType,
        #[command(flatten)]
        app: AppArg,
    },
    /// Show how new containers of each process type prove they are ready.
    #[command(name = "healthchecks")]
    Healthchecks {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Set a process type's readiness check: --http PATH, --tcp or --none.
    #[command(name = "healthchecks:set")]
    HealthchecksSet {
        process: ProcessType,
        /// Ready when PATH answers 2xx or 3xx on $PORT.
        #[arg(long, value_name = "PATH", conflicts_with_all = ["tcp", "none"])]
        http: Option<String>,
        /// Ready when $PORT keeps a TCP connection open.
        #[arg(long, conflicts_with = "none")]
        tcp: bool,
        /// Ready once the process keeps running.
        #[arg(long)]
        none: bool,
        /// Seconds a new container has to pass.
        #[arg(long)]
        timeout: Option<u64>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Go back to the default check (any HTTP answer for web; running for others).
    #[command(name = "healthchecks:unset")]
    HealthchecksUnset {
        process: ProcessType,
        #[command(flatten)]
        app: AppArg,
    },
}

pub(crate) async fn execute(
    verb: SettingsVerb,
    context: &Context,
    out: &mut impl Write,
    _err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        SettingsVerb::Limits { app, json: flag } => {
            let limits = client(context)?.limits(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &limits);
            }
            let rows = limits
                .iter()
                .map(|(process, l)| {
                    let memory = l.memory_mb.map_or_else(|| "-".into(), |mb| format!("{mb}m"));
                    let cpu = l.cpu.map_or_else(|| "-".into(), |cpu| cpu.to_string());
                    vec![process.to_string(), memory, cpu]
                })
                .collect();
            table(out, context.colour, &["TYPE", "MEMORY", "CPU"], rows)
        }
        SettingsVerb::LimitsSet { process, limits, app } => {
            let app = app_name(context, app)?;
            let mut parsed = skiff_api::Limits::default();
            for limit in limits {
                match limit {
                    Limit::MemoryMb(mb) => parsed.memory_mb = Some(mb),
                    Limit::Cpu(cores) => parsed.cpu = Some(cores),
                }
            }
            let change = [(process.clone(), Some(parsed))].into();
            client(context)?.change_limits(&app, &change).await?;
            writeln!(out, "Limits of {process} set; replacing its containers")?;
            Ok(())
        }
        SettingsVerb::LimitsUnset { process, app } => {
            let app = app_name(context, app)?;
            client(context)?.change_limits(&app, &[(process.clone(), None)].into()).await?;
            writeln!(out, "Limits of {process} removed; replacing its containers")?;
            Ok(())
        }
        SettingsVerb::Healthchecks { app, json: flag } => {
            let checks = client(context)?.healthchecks(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &checks);
            }
            let rows = checks
                .iter()
                .map(|(process, c)| {
                    let timeout = c.timeout_secs.map_or_else(|| "-".into(), |t| format!("{t}s"));
                    vec![process.to_string(), text_of(&c.kind), c.path.clone().unwrap_or_else(|| "-".into()), timeout]
                })
                .collect();
            table(out, context.colour, &["TYPE", "CHECK", "PATH", "TIMEOUT"], rows)
        }
        SettingsVerb::HealthchecksSet { process, http, tcp, none, timeout, app } => {
            let app = app_name(context, app)?;
            let kind = match (&http, tcp, none) {
                (Some(_), _, _) => skiff_api::CheckKind::Http,
                (None, true, _) => skiff_api::CheckKind::Tcp,
                (None, false, true) => skiff_api::CheckKind::None,
                (None, false, false) => bail!("say how to check: --http PATH, --tcp or --none"),
            };
            let check = skiff_api::Healthcheck { kind, path: http, timeout_secs: timeout };
            client(context)?.change_healthchecks(&app, &[(process.clone(), Some(check))].into()).await?;
            writeln!(out, "Health check of {process} set; replacing its containers")?;
            Ok(())
        }
        SettingsVerb::HealthchecksUnset { process, app } => {
            let app = app_name(context, app)?;
            client(context)?.change_healthchecks(&app, &[(process.clone(), None)].into()).await?;
            writeln!(out, "Health check of {process} back to the default; replacing its containers")?;
            Ok(())
        }
    }
}
