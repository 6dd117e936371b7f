//! `stacks:*`: the base images apps build on.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use clap::Subcommand;
use skiff_api::StackName;

use crate::args::JsonArg;
use crate::commands::client;
use crate::output::{json, table};
use crate::rollout::PROGRESS_TICK;
use crate::{Context, output};

#[derive(Debug, Subcommand)]
pub(crate) enum StacksVerb {
    /// List stacks (base images apps build on).
    #[command(name = "stacks")]
    Stacks(JsonArg),
    /// Import a root filesystem (a directory or a tarball) as a stack (admins only).
    #[command(name = "stacks:import")]
    StacksImport { name: StackName, source: PathBuf },
}

pub(crate) async fn execute(
    verb: StacksVerb,
    context: &Context,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        StacksVerb::Stacks(flag) => {
            let stacks = client(context)?.stacks().await?;
            if flag.json {
                return json(out, &stacks);
            }
            let rows = stacks.iter().map(|s| vec![s.name.to_string(), s.image.clone()]).collect();
            table(out, context.colour, &["NAME", "IMAGE"], rows)
        }
        StacksVerb::StacksImport { name, source } => {
            let client = client(context)?;
            // Refused before anything is packed or uploaded.
            if !client.whoami().await?.admin {
                bail!("only admins import stacks; ask an admin of this platform");
            }
            let archive = read_rootfs(&source)?;
            let what = format!("Uploading {} ({} KiB)", source.display(), archive.len().div_ceil(1024));
            let mut progress = output::Progress::start(err, context.live_progress, what);
            let upload = client.import_stack(&name, archive);
            tokio::pin!(upload);
            let stack = loop {
                tokio::select! {
                    stack = &mut upload => break stack,
                    () = tokio::time::sleep(PROGRESS_TICK) => progress.tick(),
                }
            };
            let seconds = progress.elapsed().as_secs_f64();
            progress.finish(if stack.is_ok() { "done" } else { "failed" });
            let stack = stack?;
            writeln!(out, "Imported stack {} as {} in {seconds:.1}s", stack.name, stack.image)?;
            Ok(())
        }
    }
}

/// Tars a directory (through `tar`, which keeps links, devices and modes) or reads a tarball.
pub(crate) fn read_rootfs(source: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if source.is_dir() {
        let output = std::process::Command::new("tar")
            .arg("--numeric-owner")
            .arg("-C")
            .arg(source)
            .arg("-cf")
            .arg("-")
            .arg(".")
            .output()
            .context("cannot run tar")?;
        if !output.status.success() {
            bail!("tar failed: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(output.stdout)
    } else {
        std::fs::read(source).with_context(|| format!("cannot read {}", source.display()))
    }
}
