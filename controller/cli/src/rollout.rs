//! `--wait`: following a rollout or a scale until it is done, with progress.

use std::io::Write;

use anyhow::bail;
use skiff_api::{AppName, ProcessType};

use crate::commands::client;
use crate::{Context, output};

/// How often progress moves on.
pub(crate) const PROGRESS_TICK: std::time::Duration = std::time::Duration::from_millis(250);

/// How long `--wait` follows a rollout at most.
pub(crate) const ROLLOUT_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// What one look at something `--wait` follows says.
pub(crate) enum Look {
    Done,
    /// Failed, and why (with what to do next).
    Failed(String),
    Pending,
}

/// How `--wait` words one thing it follows.
pub(crate) struct Waiting {
    /// The progress line, e.g. `Waiting for v3 of shop to start`.
    pub(crate) what: String,
    /// The progress line's end once done, before ` in 1.2s`.
    pub(crate) done: &'static str,
    /// The progress line's end when the wait runs out.
    pub(crate) still: &'static str,
    /// The error when the wait runs out.
    pub(crate) timed_out: String,
}

/// Looks every half second, with progress on `err`, until `look` says done or failed, or
/// [`ROLLOUT_WAIT`] passes.
pub(crate) async fn wait_for<F, Fut>(
    context: &Context,
    err: &mut impl Write,
    waiting: Waiting,
    mut look: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Look>>,
{
    let mut progress = output::Progress::start(err, context.live_progress, waiting.what);
    loop {
        match look().await? {
            Look::Done => {
                let took = progress.elapsed().as_secs_f64();
                progress.finish(&format!("{} in {took:.1}s", waiting.done));
                return Ok(());
            }
            Look::Failed(reason) => {
                progress.finish("failed");
                bail!(reason);
            }
            Look::Pending if progress.elapsed() > ROLLOUT_WAIT => {
                progress.finish(waiting.still);
                bail!(waiting.timed_out);
            }
            Look::Pending => {
                for _ in 0..2 {
                    tokio::time::sleep(PROGRESS_TICK).await;
                    progress.tick();
                }
            }
        }
    }
}

/// With a version, follows its rollout until the release runs or fails, showing progress
/// on `err`; a failed release is an error that says what to do next.
pub(crate) async fn follow_rollout(
    context: &Context,
    app: &AppName,
    version: Option<u32>,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    let Some(version) = version else { return Ok(()) };
    let client = &client(context)?;
    let waiting = Waiting {
        what: format!("Waiting for v{version} of {app} to start"),
        done: "up",
        still: "still starting",
        timed_out: format!(
            "v{version} is not up after {} s; see `skiff ps -a {app}` and `skiff logs -a {app}`",
            ROLLOUT_WAIT.as_secs()
        ),
    };
    wait_for(context, err, waiting, || async move {
        let release = client.release_of(app, version).await?;
        Ok(match release.state {
            skiff_api::ReleaseState::Deployed => Look::Done,
            skiff_api::ReleaseState::Failed => {
                let reason = release.failure.unwrap_or_else(|| "it never became ready".into());
                Look::Failed(format!(
                    "v{version} failed: {reason}; the previous release keeps serving (see `skiff logs -a {app}`)"
                ))
            }
            skiff_api::ReleaseState::Superseded => Look::Failed(format!(
                "v{version} never ran: a newer release was deployed first (see `skiff releases -a {app}`)"
            )),
            _ => Look::Pending,
        })
    })
    .await
}

/// Waits until `ps` shows exactly `scale`'s number of running containers of each type
/// (containers leaving service count until they stop).
pub(crate) async fn wait_for_scale(
    context: &Context,
    app: &AppName,
    scale: &std::collections::BTreeMap<ProcessType, u32>,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    let client = &client(context)?;
    let waiting = Waiting {
        what: format!("Waiting for {app} to scale"),
        done: "done",
        still: "still scaling",
        timed_out: format!(
            "{app} has not scaled after {} s; see `skiff ps -a {app}` and `skiff events -a {app}`",
            ROLLOUT_WAIT.as_secs()
        ),
    };
    wait_for(context, err, waiting, || async move {
        let containers = client.ps(app).await?;
        let running = |process: &ProcessType| {
            containers.iter().filter(|c| c.process == process.as_str() && c.state == "running").count()
        };
        let settled = scale.iter().all(|(process, quantity)| running(process) == *quantity as usize);
        Ok(if settled { Look::Done } else { Look::Pending })
    })
    .await
}
