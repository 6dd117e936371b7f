//! `registry:gc`: the registry's garbage collection (admins).

use std::io::Write;

use clap::Subcommand;

use crate::Context;
use crate::args::JsonArg;
use crate::commands::client;
use crate::output::json;

#[derive(Debug, Subcommand)]
pub(crate) enum RegistryVerb {
    /// Drop the images of releases no longer kept and collect the registry's garbage (admins).
    #[command(name = "registry:gc")]
    RegistryGc {
        /// Only report what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Spare blobs younger than this many seconds (default: the registry's hour).
        #[arg(long, value_name = "SECONDS")]
        grace: Option<u64>,
        #[command(flatten)]
        json: JsonArg,
    },
}

pub(crate) async fn execute(
    verb: RegistryVerb,
    context: &Context,
    out: &mut impl Write,
    _err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        RegistryVerb::RegistryGc { dry_run, grace, json: flag } => {
            let report = client(context)?.collect_garbage(dry_run, grace).await?;
            if flag.json {
                return json(out, &report);
            }
            let deleted = report["deleted"].as_array().map_or(0, Vec::len);
            let bytes = report["bytes"].as_u64().unwrap_or(0);
            let verb = if dry_run { "Would delete" } else { "Deleted" };
            writeln!(out, "{verb} {deleted} blobs ({} KiB)", bytes.div_ceil(1024))?;
            Ok(())
        }
    }
}
