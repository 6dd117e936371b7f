//! Scheduled jobs and their runs.

use skiff_api::{CronJob, CronRun, CronSource};

use super::*;

/// A job as the scheduler reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CronJobRow {
    pub id: i64,
    pub app: AppName,
    pub schedule: String,
    pub timezone: String,
    pub command: String,
    pub source: CronSource,
    pub next_run_ms: i64,
}

/// A job to add.
#[derive(Debug, Clone)]
pub struct NewCronJob {
    pub schedule: String,
    pub timezone: String,
    pub command: String,
    pub source: CronSource,
    pub next_run_ms: i64,
}

const JOB_FIELDS: &str = "j.id, a.name, j.schedule, j.timezone, j.command, j.source, j.next_run_ms";

fn job_row(row: &AnyRow) -> Result<CronJobRow, DbError> {
    Ok(CronJobRow {
        id: row.get(0),
        app: parse(row.get(1))?,
        schedule: row.get(2),
        timezone: row.get(3),
        command: row.get(4),
        source: enum_parse(row.get(5))?,
        next_run_ms: row.get(6),
    })
}

impl Db {
    async fn insert_cron_job(
        connection: &mut sqlx::AnyConnection,
        app: &AppRow,
        job: &NewCronJob,
    ) -> Result<i64, DbError> {
        Ok(sqlx::query(
            "INSERT INTO cron_jobs (app_id, schedule, timezone, command, source, next_run_ms, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        )
        .bind(app.id)
        .bind(&job.schedule)
        .bind(&job.timezone)
        .bind(&job.command)
        .bind(enum_text(&job.source))
        .bind(job.next_run_ms)
        .bind(now())
        .fetch_one(connection)
        .await?
        .get(0))
    }

    /// Adds a job to an app; its id.
    pub async fn add_cron_job(&self, app: &AppRow, job: &NewCronJob) -> Result<i64, DbError> {
        let mut connection = self.writer.acquire().await?;
        Self::insert_cron_job(&mut connection, app, job).await
    }

    /// Replaces the app's `app.json` jobs with `jobs` (keeping those made with the CLI);
    /// how many it had.
    pub async fn replace_app_json_cron(&self, app: &AppRow, jobs: &[NewCronJob]) -> Result<u64, DbError> {
        let mut tx = self.writer.begin().await?;
        let replaced = sqlx::query("DELETE FROM cron_jobs WHERE app_id = $1 AND source = 'app_json'")
            .bind(app.id)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        for job in jobs {
            Self::insert_cron_job(&mut tx, app, job).await?;
        }
        tx.commit().await?;
        Ok(replaced)
    }

    /// Removes a job of an app; `false` when it has no such job.
    pub async fn remove_cron_job(&self, app: &AppRow, id: i64) -> Result<bool, DbError> {
        self.changed(sqlx::query("DELETE FROM cron_jobs WHERE id = $1 AND app_id = $2").bind(id).bind(app.id)).await
    }

    /// One job of an app.
    pub async fn cron_job(&self, app: &AppRow, id: i64) -> Result<Option<CronJobRow>, DbError> {
        let row = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_FIELDS} FROM cron_jobs j JOIN apps a ON a.id = j.app_id WHERE j.id = $1 AND j.app_id = $2"
        )))
        .bind(id)
        .bind(app.id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(job_row).transpose()
    }

    /// An app's jobs by id, each with its newest run.
    pub async fn cron_jobs(&self, app: &AppRow) -> Result<Vec<CronJob>, DbError> {
        let rows = sqlx::query(
            "SELECT j.id, j.schedule, j.timezone, j.command, j.source, j.next_run_ms,
                    r.id, r.due_ms, r.state, r.release_version, r.exit_status, r.duration_ms, r.reason
             FROM cron_jobs j
             LEFT JOIN cron_runs r ON r.id = (SELECT MAX(id) FROM cron_runs WHERE job_id = j.id)
             WHERE j.app_id = $1 ORDER BY j.id",
        )
        .bind(app.id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let run_id: Option<i64> = row.get(6);
                let last_run = match run_id {
                    None => None,
                    Some(id) => {
                        let release: Option<i64> = row.get(9);
                        let duration: Option<i64> = row.get(11);
                        Some(CronRun {
                            id,
                            due_at: ms_to_rfc3339(row.get(7)),
                            state: enum_parse(row.get(8))?,
                            release: release.and_then(|r| u32::try_from(r).ok()),
                            exit_status: row.get(10),
                            duration_ms: duration.and_then(|d| u64::try_from(d).ok()),
                            reason: row.get(12),
                        })
                    }
                };
                Ok(CronJob {
                    id: row.get(0),
                    schedule: row.get(1),
                    timezone: row.get(2),
                    command: row.get(3),
                    source: enum_parse(row.get(4))?,
                    next_run_at: ms_to_rfc3339(row.get(5)),
                    last_run,
                })
            })
            .collect()
    }

    /// Every job due at `now_ms`.
    pub async fn due_cron_jobs(&self, now_ms: i64) -> Result<Vec<CronJobRow>, DbError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {JOB_FIELDS} FROM cron_jobs j JOIN apps a ON a.id = j.app_id
             WHERE j.next_run_ms <= $1 ORDER BY j.next_run_ms"
        )))
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(job_row).collect()
    }

    /// Moves a job's next run from `from_ms` to `to_ms`; `false` when another controller
    /// moved it first (and so runs it).
    pub async fn advance_cron_job(&self, id: i64, from_ms: i64, to_ms: i64) -> Result<bool, DbError> {
        self.changed(
            sqlx::query("UPDATE cron_jobs SET next_run_ms = $1 WHERE id = $2 AND next_run_ms = $3")
                .bind(to_ms)
                .bind(id)
                .bind(from_ms),
        )
        .await
    }

    /// Records a run of a job due at `due_ms`; its id, or `None` when that due time has a
    /// run already.
    pub async fn add_cron_run(
        &self,
        job: i64,
        due_ms: i64,
        run: &CronRun,
        started_ms: i64,
    ) -> Result<Option<i64>, DbError> {
        let row = sqlx::query(
            "INSERT INTO cron_runs (job_id, due_ms, state, release_version, reason, started_ms)
             VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (job_id, due_ms) DO NOTHING RETURNING id",
        )
        .bind(job)
        .bind(due_ms)
        .bind(enum_text(&run.state))
        .bind(run.release.map(i64::from))
        .bind(run.reason.as_deref())
        .bind(started_ms)
        .fetch_optional(&self.writer)
        .await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// A run of `job` recorded as going that started after `since_ms`: its id, due time
    /// and start.
    pub async fn running_cron_run(&self, job: i64, since_ms: i64) -> Result<Option<(i64, i64, i64)>, DbError> {
        let row = sqlx::query(
            "SELECT id, due_ms, started_ms FROM cron_runs WHERE job_id = $1 AND state = 'running' AND started_ms > $2
             ORDER BY id DESC LIMIT 1",
        )
        .bind(job)
        .bind(since_ms)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| (row.get(0), row.get(1), row.get(2))))
    }

    /// Records how a run ended.
    pub async fn finish_cron_run(&self, id: i64, run: &CronRun) -> Result<(), DbError> {
        sqlx::query("UPDATE cron_runs SET state = $1, exit_status = $2, duration_ms = $3, reason = $4 WHERE id = $5")
            .bind(enum_text(&run.state))
            .bind(run.exit_status)
            .bind(run.duration_ms.map(|d| i64::try_from(d).unwrap_or(i64::MAX)))
            .bind(run.reason.as_deref())
            .bind(id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
