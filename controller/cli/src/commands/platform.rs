//! `platform:status`: the platform at a glance, for admins.

use std::io::Write;

use anyhow::bail;
use clap::Subcommand;

use crate::Context;
use crate::args::JsonArg;
use crate::commands::client;
use crate::output::{json, table};

#[derive(Debug, Subcommand)]
pub(crate) enum PlatformVerb {
    /// Show every component's readiness and version, queue depths, the certificate that
    /// expires first and the data directory's size (admins); exits 1 when a component is
    /// not ready.
    #[command(name = "platform:status")]
    PlatformStatus {
        #[command(flatten)]
        json: JsonArg,
    },
}

pub(crate) async fn execute(
    verb: PlatformVerb,
    context: &Context,
    out: &mut impl Write,
    _err: &mut impl Write,
) -> anyhow::Result<()> {
    let PlatformVerb::PlatformStatus { json: flag } = verb;
    let status = client(context)?.platform_status().await?;
    if flag.json {
        json(out, &status)?;
    } else {
        let rows = status
            .components
            .iter()
            .map(|c| {
                let state = if c.ready { "ready" } else { "NOT READY" };
                let detail = c.detail.lines().collect::<Vec<_>>().join("; ");
                let at = if c.url.is_empty() { "-".to_owned() } else { c.url.clone() };
                vec![c.name.clone(), at, state.to_owned(), c.version.clone().unwrap_or_else(|| "-".into()), detail]
            })
            .collect();
        table(out, context.colour, &["COMPONENT", "AT", "STATE", "VERSION", "CHECKS"], rows)?;
        writeln!(out, "webhook deliveries pending: {}", status.webhook_deliveries_pending)?;
        let queued =
            status.drain_lines_queued.map_or_else(|| "unknown (the logger did not say)".into(), |n| n.to_string());
        writeln!(out, "drain lines queued: {queued}")?;
        match &status.soonest_certificate {
            Some(cert) => {
                writeln!(out, "first certificate to expire: {} of {}, {}", cert.name, cert.app, cert.expires_at)?
            }
            None => writeln!(out, "first certificate to expire: none added")?,
        }
        if let Some(bytes) = status.data_dir_bytes {
            writeln!(out, "data directory: {:.1} MiB", bytes as f64 / f64::from(1 << 20))?;
        }
    }
    let down: Vec<&str> = status.components.iter().filter(|c| !c.ready).map(|c| c.name.as_str()).collect();
    if !down.is_empty() {
        bail!("not ready: {}", down.join(", "));
    }
    Ok(())
}
