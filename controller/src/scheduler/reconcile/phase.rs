//! The release phase (Heroku's): a release whose Procfile has a `release` command runs it
//! once, in a one-off container of the release, before the release gets any traffic:
//! database migrations and the like. Until the command exits the release before keeps
//! serving; a command that fails or runs out of time fails the release, which then never
//! serves.

use std::time::Duration;

use skiff_api::{Limits, PhaseState, ProcessType, Release, ReleaseState, RunOutput};
use tokio::sync::mpsc;

use super::{ReconcileError, Scheduler};
use crate::events::Event;
use crate::scheduler::plan::{pull_reference, release_env};
use crate::scheduler::runtime::StartSpec;
use skiff_api::EventKind;

/// The most of a release command's output kept (its last bytes).
const KEPT_OUTPUT: usize = 64 << 10;
/// How often what the command printed so far is written down while it runs.
const OUTPUT_EVERY: Duration = Duration::from_millis(200);

impl Scheduler {
    /// Runs `release`'s `release` command and records how it ended: the release then rolls
    /// out (the scheduler is poked), or it failed.
    pub(super) async fn release_phase(&self, app_id: i64, release: Release) -> Result<(), ReconcileError> {
        let (app, version) = (release.app.clone(), release.version);
        let command = release
            .procfile
            .iter()
            .find_map(|(process, command)| ProcessType::is_release(process.as_str()).then(|| command.clone()))
            .unwrap_or_default();
        let spec = StartSpec {
            app: app.clone(),
            app_id,
            release: version,
            generation: 0,
            process: ProcessType::RELEASE.into(),
            image: pull_reference(&self.config.registry_host, &release.image),
            command: command.clone(),
            env: release_env(&release, ProcessType::RELEASE),
            limits: self.config.container_limits(Limits::default()),
        };
        let message = format!("Release v{version}: running its release command `{command}`");
        self.events.emit(&app, Event::new(EventKind::Release, message)).await;
        let (sender, mut receiver) = mpsc::channel(64);
        let timeout = self.config.release_timeout;
        let started = tokio::time::Instant::now();
        let run = self.runtime.run_one_off(&spec, timeout, sender);
        let keep = async {
            let mut output = String::new();
            let mut written = tokio::time::Instant::now();
            while let Some(chunk) = receiver.recv().await {
                let (RunOutput::Out(text) | RunOutput::Err(text)) = chunk else { continue };
                output.push_str(&text);
                keep_tail(&mut output, KEPT_OUTPUT);
                if written.elapsed() >= OUTPUT_EVERY {
                    self.db.record_phase(&app, version, PhaseState::Running, &output).await?;
                    written = tokio::time::Instant::now();
                }
            }
            Ok::<_, crate::db::DbError>(output)
        };
        let (status, output) = tokio::join!(run, keep);
        let output = output?;
        let failure = match status {
            Ok(0) => None,
            Ok(_) if started.elapsed() >= timeout => {
                Some(format!("the release command ran out of time after {} s", timeout.as_secs()))
            }
            Ok(code) => Some(format!("the release command exited with status {code}")),
            Err(error) => Some(format!("the release command could not run: {error}")),
        };
        let state = if failure.is_some() { PhaseState::Failed } else { PhaseState::Succeeded };
        if !self.db.record_phase(&app, version, state, &output).await? {
            return Ok(());
        }
        match failure {
            None => {
                let message = format!("Release v{version}: its release command succeeded");
                self.events.emit(&app, Event::new(EventKind::Release, message)).await;
                self.coordination.poke();
            }
            Some(reason) => {
                if self.db.settle_release(&app, version, ReleaseState::Failed, Some(&reason)).await? {
                    let outcome = "the previous release keeps serving";
                    let message = format!("Release v{version} failed: {reason}; {outcome}");
                    let data = serde_json::json!({ "version": version, "reason": reason });
                    self.events.emit(&app, Event::new(EventKind::Release, message).with(data)).await;
                }
            }
        }
        Ok(())
    }
}

/// Drops the front of `text` so that at most `limit` bytes (whole characters) are left.
fn keep_tail(text: &mut String, limit: usize) {
    if text.len() <= limit {
        return;
    }
    let mut cut = text.len() - limit;
    while !text.is_char_boundary(cut) {
        cut += 1;
    }
    text.drain(..cut);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_tail_of_long_output_is_kept_on_character_boundaries() {
        let mut text = "ab".to_owned();
        keep_tail(&mut text, 4);
        assert_eq!(text, "ab");
        let mut text = "abcdef".to_owned();
        keep_tail(&mut text, 4);
        assert_eq!(text, "cdef");
        let mut text = "aé€z".to_owned(); // 1 + 2 + 3 + 1 bytes
        keep_tail(&mut text, 5);
        assert_eq!(text, "€z", "the cut moves past a character it would split");
    }
}
