//! Scheduled jobs (Heroku Scheduler's, Dokku's `app.json` `cron`): a command run in a
//! one-off container of the app's current release on a cron schedule.

use serde::{Deserialize, Serialize};

/// Where a job comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum CronSource {
    /// `skiff cron:add` (kept until `cron:remove`).
    Cli,
    /// The `cron` array of the deployed `app.json` (replaced on each deploy).
    AppJson,
}

/// How a run went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "snake_case")]
pub enum CronRunState {
    Running,
    Succeeded,
    Failed,
    /// Not run: the run before was still going, or the app had no release.
    Skipped,
}

/// One run of a job.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CronRun {
    pub id: i64,
    /// The time it was due (RFC 3339); a run by hand (`cron:run`) is due when asked.
    pub due_at: String,
    pub state: CronRunState,
    /// The release it ran in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exit_status: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_ms: Option<u64>,
    /// Why it failed or was skipped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A scheduled job: `GET /v2/apps/{app}/cron`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CronJob {
    /// The job's id, for `cron:remove` and `cron:run`.
    pub id: i64,
    /// Five cron fields (minute hour day-of-month month day-of-week) or `@hourly`, `@daily`…
    pub schedule: String,
    /// The IANA time zone the schedule is read in.
    pub timezone: String,
    pub command: String,
    pub source: CronSource,
    /// When it runs next (RFC 3339, UTC).
    pub next_run_at: String,
    /// Its newest run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<CronRun>,
}

/// `POST /v2/apps/{app}/cron`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CronCreate {
    pub schedule: String,
    pub command: String,
    /// An IANA time zone (`Europe/Paris`); UTC when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timezone: Option<String>,
}
