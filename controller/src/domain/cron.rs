//! Scheduled jobs (Heroku Scheduler, Dokku's `app.json` `cron`): a command run in a
//! one-off container of the app's current release when its schedule says, its output in
//! the app's logs (process `cron`), how it ended recorded, and a `cron` event when it
//! fails.
//!
//! - **Once per due time**: every controller looks for due jobs each second; moving a
//!   job's next run on is a conditional update, so one controller starts each run (and a
//!   run is unique per job and due time besides).
//! - **No doubling**: a run still going when the next is due makes that next one
//!   `skipped` (recorded, with why); a run lasts a day at most. A run whose controller
//!   stopped mid-run (its container gone) is marked `failed` (lost) when the next is due,
//!   which then runs.
//! - **A controller away** across one or more due times runs the job once when it is
//!   back, then follows the schedule from then.

use std::time::Duration;

use skiff_api::{CronCreate, CronJob, CronRun, CronRunState, CronSource, EventKind, RunOutput};
use tokio::sync::mpsc;

use crate::cron::Schedule;
use crate::db::{AppRow, CronJobRow, NewCronJob};
use crate::domain::one_offs::one_off_spec;
use crate::error::ApiError;
use crate::events::Event;
use crate::state::Controller;

/// The longest a run may take.
const MAX_RUN: Duration = Duration::from_secs(24 * 3600);
/// The longest command line accepted.
const MAX_COMMAND: usize = 4096;
/// How long a run may go without its container being listed (while it is created).
const CONTAINER_GRACE: Duration = Duration::from_secs(60);
/// The process name of a run's container, in `skiff logs` too.
const CRON_PROCESS: &str = "cron";
/// The end of a failed run's output kept for its event.
const KEPT_OUTPUT: usize = 2048;

/// An app's scheduled jobs.
pub struct Cron<'a>(&'a Controller);

impl Controller {
    pub fn cron(&self) -> Cron<'_> {
        Cron(self)
    }
}

fn millis(at: jiff::Timestamp) -> i64 {
    at.as_millisecond()
}

fn missing(id: &str) -> ApiError {
    ApiError::NotFound(format!("no scheduled job {id} here; see `skiff cron`"))
}

impl Cron<'_> {
    /// A job to add, checked: the schedule reads in its zone and names a time to come.
    fn new_job(&self, schedule: &str, timezone: &str, command: &str, source: CronSource) -> Result<NewCronJob, String> {
        let command = command.trim();
        if command.is_empty() || command.len() > MAX_COMMAND {
            return Err(format!("a job's command has 1 to {MAX_COMMAND} bytes"));
        }
        let parsed = Schedule::parse(schedule, timezone).map_err(|e| e.to_string())?;
        let next = parsed
            .next_after(self.0.config.clock.now())
            .ok_or_else(|| format!("`{schedule}` names no time in the next eight years"))?;
        Ok(NewCronJob {
            schedule: schedule.trim().to_owned(),
            timezone: if timezone.is_empty() { "UTC".to_owned() } else { timezone.to_owned() },
            command: command.to_owned(),
            source,
            next_run_ms: millis(next),
        })
    }

    /// The app's jobs, each with its newest run.
    pub async fn list(&self, app: &AppRow) -> Result<Vec<CronJob>, ApiError> {
        Ok(self.0.db.cron_jobs(app).await?)
    }

    /// Adds a job.
    pub async fn add(&self, user: &crate::db::UserRow, app: &AppRow, body: &CronCreate) -> Result<CronJob, ApiError> {
        let c = self.0;
        let zone = body.timezone.as_deref().unwrap_or("UTC");
        let job = self.new_job(&body.schedule, zone, &body.command, CronSource::Cli).map_err(ApiError::BadRequest)?;
        let id = c.db.add_cron_job(app, &job).await?;
        let message =
            format!("{} scheduled job {id}: `{}` at `{}` ({})", user.username, job.command, job.schedule, job.timezone);
        c.events.emit(&app.name, Event::new(EventKind::Config, message).by(&user.username)).await;
        self.list(app).await?.into_iter().find(|j| j.id == id).ok_or_else(|| missing(&id.to_string()))
    }

    /// Removes a job.
    pub async fn remove(&self, user: &crate::db::UserRow, app: &AppRow, id: &str) -> Result<(), ApiError> {
        let c = self.0;
        let number: i64 = id.parse().map_err(|_| missing(id))?;
        if !c.db.remove_cron_job(app, number).await? {
            return Err(missing(id));
        }
        let message = format!("{} removed scheduled job {id}", user.username);
        c.events.emit(&app.name, Event::new(EventKind::Config, message).by(&user.username)).await;
        Ok(())
    }

    /// Checks `app.json`'s `cron` entries, in UTC.
    pub fn app_json_jobs(&self, entries: &[skiff_api::app_json::CronEntry]) -> Result<Vec<NewCronJob>, ApiError> {
        entries
            .iter()
            .map(|entry| self.new_job(&entry.schedule, "UTC", &entry.command, CronSource::AppJson))
            .collect::<Result<_, _>>()
            .map_err(|e| ApiError::BadRequest(format!("app.json `cron`: {e}")))
    }

    /// Runs a job now, beside its schedule (`cron:run`); the run as it started.
    pub async fn run_now(&self, user: &crate::db::UserRow, app: &AppRow, id: &str) -> Result<CronRun, ApiError> {
        let c = self.0;
        let number: i64 = id.parse().map_err(|_| missing(id))?;
        let job = c.db.cron_job(app, number).await?.ok_or_else(|| missing(id))?;
        let message = format!("{} ran scheduled job {id} (`{}`) by hand", user.username, job.command);
        c.events.emit(&app.name, Event::new(EventKind::App, message).by(&user.username)).await;
        self.start(&job, millis(c.config.clock.now()))
            .await?
            .ok_or_else(|| ApiError::Conflict(format!("job {id} was started at this very moment already")))
    }

    /// Starts every job that is due, each once across controllers.
    pub async fn run_due(&self) -> Result<(), ApiError> {
        let c = self.0;
        let now = c.config.clock.now();
        for job in c.db.due_cron_jobs(millis(now)).await? {
            let next = Schedule::parse(&job.schedule, &job.timezone).ok().and_then(|s| s.next_after(now));
            // A schedule that no longer reads (a zone gone from the system) stops.
            let next_ms = next.map_or(i64::MAX, millis);
            if c.db.advance_cron_job(job.id, job.next_run_ms, next_ms).await? {
                self.start(&job, job.next_run_ms).await?;
            }
        }
        Ok(())
    }

    /// Whether a run of `job` recorded as going (started at `started_ms`) still is: a
    /// `cron` one-off container of the app runs, or it started too recently to have one
    /// yet. A run whose controller stopped mid-run has none and is not waited for.
    async fn still_going(&self, job: &CronJobRow, started_ms: i64, now_ms: i64) -> Result<bool, ApiError> {
        if now_ms - started_ms < i64::try_from(CONTAINER_GRACE.as_millis()).unwrap_or(i64::MAX) {
            return Ok(true);
        }
        let containers = self.0.runtime.list().await.map_err(|e| ApiError::Unavailable(e.to_string()))?;
        Ok(containers.iter().any(|c| c.one_off && c.running && c.app == job.app && c.process == CRON_PROCESS))
    }

    /// Starts a run of `job` due at `due_ms`, or records why it does not run; `None`
    /// when that due time has a run already.
    async fn start(&self, job: &CronJobRow, due_ms: i64) -> Result<Option<CronRun>, ApiError> {
        let c = self.0;
        let now_ms = millis(c.config.clock.now());
        let max_run = i64::try_from(MAX_RUN.as_millis()).unwrap_or(i64::MAX);
        let app = c.db.app(&job.app).await?.ok_or_else(|| missing(&job.id.to_string()))?;
        let release = c.running_release(&app).await?;
        let mut run = CronRun {
            id: 0,
            due_at: String::new(),
            state: CronRunState::Running,
            release: release.as_ref().map(|r| r.version),
            exit_status: None,
            duration_ms: None,
            reason: None,
        };
        let mut going = None;
        if let Some((previous, due, started)) = c.db.running_cron_run(job.id, now_ms - max_run).await? {
            if self.still_going(job, started, now_ms).await? {
                going = Some(due);
            } else {
                let reason = "lost: no container runs it (the controller that started it stopped)";
                let lost = CronRun { state: CronRunState::Failed, reason: Some(reason.into()), ..run.clone() };
                c.db.finish_cron_run(previous, &lost).await?;
            }
        }
        if let Some(due) = going {
            run.state = CronRunState::Skipped;
            let due = jiff::Timestamp::from_millisecond(due).map(|t| t.to_string()).unwrap_or_default();
            run.reason = Some(format!("the run due at {due} is still going"));
        } else if release.is_none() {
            run.state = CronRunState::Skipped;
            run.reason = Some("the app has no release yet".into());
        }
        let Some(id) = c.db.add_cron_run(job.id, due_ms, &run, now_ms).await? else { return Ok(None) };
        run.id = id;
        if let (CronRunState::Running, Some(release)) = (run.state, release) {
            let spec = one_off_spec(c, app.id, &release, CRON_PROCESS, &job.command);
            let (runtime, db, events) = (c.runtime.clone(), c.db.clone(), c.events.clone());
            let job = job.clone();
            c.one_offs.spawn(async move {
                let started = tokio::time::Instant::now();
                let (sender, mut receiver) = mpsc::channel(64);
                let ran = runtime.run_one_off(&spec, MAX_RUN, sender);
                let kept = async {
                    let mut tail = String::new();
                    while let Some(chunk) = receiver.recv().await {
                        let (RunOutput::Out(text) | RunOutput::Err(text)) = chunk else { continue };
                        tail.push_str(&text);
                        if tail.len() > 2 * KEPT_OUTPUT {
                            let cut = tail.len() - KEPT_OUTPUT;
                            let cut = (cut..tail.len()).find(|at| tail.is_char_boundary(*at)).unwrap_or(0);
                            tail.drain(..cut);
                        }
                    }
                    tail
                };
                let (status, tail) = tokio::join!(ran, kept);
                let ended = ended(status, started.elapsed(), spec.release);
                if let Err(error) = db.finish_cron_run(id, &ended).await {
                    tracing::warn!(%error, job = job.id, "controller.cron: the end of a run is not recorded");
                }
                if ended.state == CronRunState::Failed {
                    let reason = ended.reason.clone().unwrap_or_default();
                    let message = format!("Scheduled job {} (`{}`) failed: {reason}", job.id, job.command);
                    let data = serde_json::json!({
                        "job": job.id,
                        "command": job.command,
                        "schedule": job.schedule,
                        "exit_status": ended.exit_status,
                        "duration_ms": ended.duration_ms,
                        "output": tail,
                    });
                    events.emit(&job.app, Event::new(EventKind::Cron, message).with(data)).await;
                }
            });
        }
        Ok(Some(run))
    }
}

/// How a run ended, from its exit status.
fn ended(status: Result<i64, crate::scheduler::RuntimeError>, took: Duration, release: u32) -> CronRun {
    let (state, exit_status, reason) = match status {
        Ok(0) => (CronRunState::Succeeded, Some(0), None),
        Ok(code) if took >= MAX_RUN => {
            (CronRunState::Failed, Some(code), Some(format!("stopped after {} s", MAX_RUN.as_secs())))
        }
        Ok(code) => (CronRunState::Failed, Some(code), Some(format!("exited with status {code}"))),
        Err(error) => (CronRunState::Failed, None, Some(format!("could not run: {error}"))),
    };
    CronRun {
        id: 0,
        due_at: String::new(),
        state,
        release: Some(release),
        exit_status,
        duration_ms: Some(u64::try_from(took.as_millis()).unwrap_or(u64::MAX)),
        reason,
    }
}

/// Starts due jobs every second until `shutdown`.
pub async fn run_scheduled_jobs(controller: std::sync::Arc<Controller>, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(error) = controller.cron().run_due().await {
            tracing::warn!(%error, "controller.cron: cannot start due jobs; trying again");
        }
    }
}
