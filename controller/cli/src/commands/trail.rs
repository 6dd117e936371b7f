//! `events` and `drains:*`: the audit trail, and where log lines are forwarded.

use std::io::Write;

use anyhow::anyhow;
use clap::Subcommand;
use skiff_api::{AppName, Drain, DrainStatus};

use crate::Context;
use crate::args::{JsonArg, ScopeArg};
use crate::commands::{app_name, client};
use crate::output::{ago, json, table};

#[derive(Debug, Subcommand)]
pub(crate) enum TrailVerb {
    /// Show the audit trail: who did what and when, to an app or (admins) on the platform.
    #[command(name = "events")]
    Events {
        /// How many of the newest events.
        #[arg(short = 'n', long = "num", default_value_t = 50)]
        lines: u32,
        #[command(flatten)]
        scope: ScopeArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// List log drains with what each delivered and dropped.
    #[command(name = "drains")]
    Drains {
        #[command(flatten)]
        scope: ScopeArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Forward an app's log lines to syslog://HOST:PORT, syslog+tls://HOST:PORT or https://HOST/PATH.
    #[command(name = "drains:add")]
    DrainsAdd {
        url: String,
        #[command(flatten)]
        scope: ScopeArg,
    },
    /// Stop a log drain, by URL or id.
    #[command(name = "drains:remove")]
    DrainsRemove {
        #[arg(value_name = "URL|ID")]
        drain: String,
        #[command(flatten)]
        scope: ScopeArg,
    },
}

pub(crate) async fn execute(
    verb: TrailVerb,
    context: &Context,
    out: &mut impl Write,
    _err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        TrailVerb::Events { lines, scope, json: flag } => {
            let events = client(context)?.events(app_or_platform(context, scope)?.as_ref(), lines).await?;
            if flag.json {
                return json(out, &events);
            }
            let rows = events
                .iter()
                .map(|e| {
                    let app = e.app.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string);
                    vec![ago(&e.created_at), app, e.message.clone()]
                })
                .collect();
            table(out, context.colour, &["WHEN", "APP", "WHAT"], rows)
        }
        TrailVerb::Drains { scope, json: flag } => {
            let drains = client(context)?.drains(app_or_platform(context, scope)?.as_ref()).await?;
            if flag.json {
                return json(out, &drains);
            }
            let rows = drains
                .iter()
                .map(|d| {
                    let number =
                        |pick: fn(&DrainStatus) -> u64| d.status.as_ref().map_or("-".into(), |s| pick(s).to_string());
                    let counts = [number(|s| s.delivered), number(|s| s.dropped), number(|s| s.queued)];
                    [vec![d.id.to_string(), d.url.clone()], counts.to_vec(), vec![drain_state(d)]].concat()
                })
                .collect();
            table(out, context.colour, &["ID", "URL", "DELIVERED", "DROPPED", "QUEUED", "STATE"], rows)
        }
        TrailVerb::DrainsAdd { url, scope } => {
            let scope = app_or_platform(context, scope)?;
            let drain = client(context)?.add_drain(scope.as_ref(), &url).await?;
            match scope {
                Some(app) => writeln!(out, "Draining {app}'s logs to {url} (drain {})", drain.id)?,
                None => writeln!(out, "Draining every app's logs to {url} (drain {})", drain.id)?,
            }
            Ok(())
        }
        TrailVerb::DrainsRemove { drain, scope } => {
            let scope = app_or_platform(context, scope)?;
            let client = client(context)?;
            let drains = client.drains(scope.as_ref()).await?;
            let found = drains
                .iter()
                .find(|d| d.url == drain || d.url == skiff_api::drain::masked_url(&drain) || d.id.to_string() == drain)
                .ok_or_else(|| anyhow!("no drain {drain} here; see `skiff drains`"))?;
            client.remove_drain(scope.as_ref(), found.id).await?;
            writeln!(out, "Removed drain {} ({})", found.id, found.url)?;
            Ok(())
        }
    }
}

pub(crate) fn app_or_platform(context: &Context, arg: ScopeArg) -> anyhow::Result<Option<AppName>> {
    if arg.platform { Ok(None) } else { app_name(context, arg.app).map(Some) }
}

pub(crate) fn drain_state(drain: &Drain) -> String {
    match &drain.status {
        None => "unknown (logger unreachable)".into(),
        Some(DrainStatus { last_error: Some(error), .. }) => format!("failing: {error}"),
        Some(_) => "ok".into(),
    }
}
