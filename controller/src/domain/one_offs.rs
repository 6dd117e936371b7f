//! One-off commands (`skiff run`): a command in a new container of the app's current
//! release, its output streamed back, the container gone when it ends.

use std::time::Duration;

use skiff_api::{Limits, Release, RunOutput, RunRequest};
use tokio::sync::mpsc;

use crate::db::{AppRow, UserRow};
use crate::error::ApiError;
use crate::events::Event;
use crate::scheduler::StartSpec;
use crate::scheduler::plan::{pull_reference, release_env};
use crate::state::Controller;
use skiff_api::EventKind;

/// The longest one-off command line accepted (well under what the engine and the kernel
/// take for a process's arguments).
const MAX_RUN_COMMAND: usize = 64 << 10;
/// The longest a one-off command may run.
const MAX_RUN: Duration = Duration::from_secs(24 * 3600);

/// A one-off container of `release` running `command`, known as `process` in logs.
pub(crate) fn one_off_spec(c: &Controller, app_id: i64, release: &Release, process: &str, command: &str) -> StartSpec {
    StartSpec {
        app: release.app.clone(),
        app_id,
        release: release.version,
        generation: 0,
        process: process.into(),
        image: pull_reference(&c.config.registry_host, &release.image),
        command: command.to_owned(),
        env: release_env(release, process),
        limits: c.config.container_limits(Limits::default()),
    }
}

/// An app's one-off commands.
pub struct OneOffs<'a>(&'a Controller);

impl Controller {
    pub fn one_offs(&self) -> OneOffs<'_> {
        OneOffs(self)
    }
}

impl OneOffs<'_> {
    /// Starts the command; its output, then its exit status, arrive on the receiver. The
    /// container goes when the command ends, when the timeout passes, or when the receiver
    /// is dropped.
    pub async fn run(
        &self,
        user: &UserRow,
        app: &AppRow,
        request: &RunRequest,
    ) -> Result<mpsc::Receiver<RunOutput>, ApiError> {
        let c = self.0;
        let release = c.current_release(app).await?;
        if request.command.trim().is_empty() {
            return Err(ApiError::BadRequest("no command given; use `skiff run -- COMMAND`".into()));
        }
        if request.command.len() > MAX_RUN_COMMAND {
            return Err(ApiError::BadRequest(format!(
                "the command is {} bytes, over the limit of {MAX_RUN_COMMAND}; put a long script in the app and run that",
                request.command.len()
            )));
        }
        let timeout = Duration::from_secs(request.timeout_secs.unwrap_or(3600)).clamp(Duration::from_secs(1), MAX_RUN);
        let spec = one_off_spec(c, app.id, &release, "run", &request.command);
        let message = format!("Running `{}` for {}", request.command, user.username);
        c.events.emit(&app.name, Event::new(EventKind::App, message).by(&user.username)).await;
        let (sender, receiver) = mpsc::channel(64);
        let runtime = c.runtime.clone();
        c.one_offs.spawn(async move {
            let status = match runtime.run_one_off(&spec, timeout, sender.clone()).await {
                Ok(status) => status,
                Err(error) => {
                    let _ = sender.send(RunOutput::Err(format!("skiff: the command could not run: {error}\n"))).await;
                    1
                }
            };
            let _ = sender.send(RunOutput::Exit(status)).await;
        });
        Ok(receiver)
    }
}
