//! Canaries: a release on trial (state `trial`) beside the app's current one, the routers'
//! counts for each side, and how each canary ended.

use skiff_api::canary::LATENCY_BUCKETS;
use skiff_api::{Arm, BucketCount, CanarySamples, CanaryState, CanaryTrial, Judgement};

use super::*;

/// A canary as stored.
#[derive(Debug, Clone)]
pub struct CanaryRow {
    pub id: i64,
    pub app_id: i64,
    pub app: AppName,
    /// The release on trial.
    pub release: u32,
    /// The release it is compared with.
    pub baseline: u32,
    pub trial: CanaryTrial,
    pub state: CanaryState,
    pub started_at: String,
    pub ends_at: String,
    pub ended_at: Option<String>,
    /// The judgement that ended it.
    pub judgement: Option<Judgement>,
}

/// What [`Db::canary_row`] reads (by position), from [`CANARY_TABLES`]; the names a
/// release's columns share are renamed, so that a release's row can follow (see
/// [`Db::running_canaries`]).
const CANARY_FIELDS: &str = "c.id AS canary_id, c.app_id AS canary_app_id, a.name, c.release_version,
       c.baseline_version, c.percent, c.sticky, c.duration_secs, c.min_requests, c.state AS canary_state,
       c.started_at, c.ends_at, c.ended_at, c.judgement";
const CANARY_TABLES: &str = "canaries c JOIN apps a ON a.id = c.app_id";

/// One side's counts: requests and 5xx answers per latency bucket.
pub type ArmCounts = Vec<BucketCount>;

impl Db {
    fn canary_row(row: &AnyRow) -> Result<CanaryRow, DbError> {
        let count = |index: usize| u64::try_from(row.get::<i64, _>(index)).unwrap_or(0);
        Ok(CanaryRow {
            id: row.get(0),
            app_id: row.get(1),
            app: parse(row.get(2))?,
            release: row.get::<i64, _>(3) as u32,
            baseline: row.get::<i64, _>(4) as u32,
            trial: CanaryTrial {
                percent: u8::try_from(row.get::<i64, _>(5)).unwrap_or(0),
                sticky: row.get::<i64, _>(6) != 0,
                duration_secs: count(7),
                min_requests: count(8),
            },
            state: enum_parse(row.get(9))?,
            started_at: row.get(10),
            ends_at: row.get(11),
            ended_at: row.get(12),
            judgement: match row.get::<Option<String>, _>(13) {
                Some(text) => Some(serde_json::from_str(&text).map_err(|e| DbError::Corrupt(e.to_string()))?),
                None => None,
            },
        })
    }

    /// Makes `new` the app's next release, on trial beside its current one (the baseline)
    /// under `trial`, in one transaction: it never becomes current before it passes. A
    /// canary still running on the app gives way to it. `None` when the app runs no
    /// release to compare with.
    pub async fn create_trial_release(
        &self,
        app: &AppRow,
        new: &NewRelease<'_>,
        trial: &CanaryTrial,
    ) -> Result<Option<(Release, CanaryRow)>, DbError> {
        let mut tx = self.writer.begin().await?;
        Self::lock_app(&mut tx, app.id).await?;
        let baseline: Option<i64> = sqlx::query(
            "SELECT version FROM releases WHERE app_id = $1 AND state NOT IN ('failed', 'trial')
             ORDER BY version DESC LIMIT 1",
        )
        .bind(app.id)
        .fetch_optional(&mut *tx)
        .await?
        .map(|row| row.get(0));
        let Some(baseline) = baseline else { return Ok(None) };
        let mut release = Self::insert_release(&mut tx, app, new).await?;
        sqlx::query("UPDATE releases SET state = 'trial' WHERE app_id = $1 AND version = $2")
            .bind(app.id)
            .bind(i64::from(release.version))
            .execute(&mut *tx)
            .await?;
        release.state = ReleaseState::Trial;
        let started = time::OffsetDateTime::now_utc();
        let ends = started + trial.duration();
        let id: i64 = sqlx::query(
            "INSERT INTO canaries (app_id, release_version, baseline_version, percent, sticky, duration_secs,
                                   min_requests, state, started_at, ends_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, 'running', $8, $9) RETURNING id",
        )
        .bind(app.id)
        .bind(i64::from(release.version))
        .bind(baseline)
        .bind(i64::from(trial.percent))
        .bind(i64::from(trial.sticky))
        .bind(i64::try_from(trial.duration_secs).unwrap_or(i64::MAX))
        .bind(i64::try_from(trial.min_requests).unwrap_or(i64::MAX))
        .bind(rfc3339(started))
        .bind(rfc3339(ends))
        .fetch_one(&mut *tx)
        .await?
        .get(0);
        let row =
            sqlx::query(sqlx::AssertSqlSafe(format!("SELECT {CANARY_FIELDS} FROM {CANARY_TABLES} WHERE c.id = $1")))
                .bind(id)
                .fetch_one(&mut *tx)
                .await?;
        let canary = Self::canary_row(&row)?;
        tx.commit().await?;
        Ok(Some((release, canary)))
    }

    /// Every running canary, with the release on trial, in one query.
    pub async fn running_canaries(&self) -> Result<Vec<(CanaryRow, Release)>, DbError> {
        let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CANARY_FIELDS}, r.* FROM {CANARY_TABLES}
             JOIN releases r ON r.app_id = c.app_id AND r.version = c.release_version
             WHERE c.state = 'running' ORDER BY c.id"
        )))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let canary = Self::canary_row(&row)?;
                let release = Self::release_row(&canary.app, row)?;
                Ok((canary, release))
            })
            .collect()
    }

    /// The app's running canary, or its last one.
    pub async fn latest_canary(&self, app: &AppRow) -> Result<Option<CanaryRow>, DbError> {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "SELECT {CANARY_FIELDS} FROM {CANARY_TABLES} WHERE c.app_id = $1 ORDER BY c.id DESC LIMIT 1"
        )))
        .bind(app.id)
        .fetch_optional(&self.pool)
        .await?
        .map(|row| Self::canary_row(&row))
        .transpose()
    }

    /// Adds a router's counts to those of running canaries (counts of canaries that
    /// ended, or of no canary, are dropped).
    pub async fn add_canary_samples(&self, samples: &CanarySamples) -> Result<(), DbError> {
        let mut tx = self.writer.begin().await?;
        for sample in &samples.samples {
            for count in &sample.buckets {
                sqlx::query(
                    "INSERT INTO canary_samples (canary_id, arm, bucket, requests, errors)
                     SELECT $1, $2, $3, $4, $5 WHERE EXISTS (SELECT 1 FROM canaries WHERE id = $1 AND state = 'running')
                     ON CONFLICT (canary_id, arm, bucket)
                     DO UPDATE SET requests = canary_samples.requests + excluded.requests,
                                   errors = canary_samples.errors + excluded.errors",
                )
                .bind(sample.canary)
                .bind(enum_text(&sample.arm))
                .bind(i64::from(count.bucket.min(LATENCY_BUCKETS - 1)))
                .bind(i64::try_from(count.requests).unwrap_or(i64::MAX))
                .bind(i64::try_from(count.errors).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
            }
        }
        tx.commit().await?;
        Ok(())
    }

    /// A canary's counts so far: the baseline's, then the canary's.
    pub async fn canary_counts(&self, canary: i64) -> Result<(ArmCounts, ArmCounts), DbError> {
        let rows = sqlx::query(
            "SELECT arm, bucket, requests, errors FROM canary_samples WHERE canary_id = $1 ORDER BY bucket",
        )
        .bind(canary)
        .fetch_all(&self.pool)
        .await?;
        let (mut baseline, mut canary) = (Vec::new(), Vec::new());
        for row in rows {
            let count = BucketCount {
                bucket: u16::try_from(row.get::<i64, _>(1)).unwrap_or(0),
                requests: u64::try_from(row.get::<i64, _>(2)).unwrap_or(0),
                errors: u64::try_from(row.get::<i64, _>(3)).unwrap_or(0),
            };
            match enum_parse::<Arm>(row.get(0))? {
                Arm::Baseline => baseline.push(count),
                Arm::Canary => canary.push(count),
            }
        }
        Ok((baseline, canary))
    }

    /// Ends a running canary in `state` with the judgement behind it: promoted, its
    /// release rolls out; otherwise its release fails with `judgement.reason`. `false`
    /// when it was not running (another replica, or a person, ended it first).
    pub async fn end_canary(
        &self,
        canary: &CanaryRow,
        state: CanaryState,
        judgement: &Judgement,
    ) -> Result<bool, DbError> {
        let mut tx = self.writer.begin().await?;
        let ended = sqlx::query(
            "UPDATE canaries SET state = $1, ended_at = $2, judgement = $3 WHERE id = $4 AND state = 'running'",
        )
        .bind(enum_text(&state))
        .bind(now())
        .bind(serde_json::to_string(judgement).map_err(|e| DbError::Corrupt(e.to_string()))?)
        .bind(canary.id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if ended {
            let (release_state, failure) = match state {
                CanaryState::Promoted => (ReleaseState::Pending, None),
                _ => (ReleaseState::Failed, Some(judgement.reason.as_str())),
            };
            sqlx::query(
                "UPDATE releases SET state = $1, failure = $2 WHERE app_id = $3 AND version = $4 AND state = 'trial'",
            )
            .bind(enum_text(&release_state))
            .bind(failure)
            .bind(canary.app_id)
            .bind(i64::from(canary.release))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(ended)
    }
}
