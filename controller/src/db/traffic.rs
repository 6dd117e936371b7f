//! Each app's traffic per minute, as routers report it, for the dashboard's charts.

use skiff_api::canary::LATENCY_BUCKETS;
use skiff_api::{BucketCount, TrafficSamples};

use super::*;

/// How many minutes of traffic are kept: two days.
pub const KEEP_MINUTES: i64 = 2 * 24 * 60;

/// One minute of an app's traffic: its Unix minute and its counts by latency bucket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TrafficMinute {
    pub minute: i64,
    pub buckets: Vec<BucketCount>,
}

impl Db {
    /// Adds a router's report to `minute` (Unix minutes), and forgets minutes older than
    /// [`KEEP_MINUTES`]. Apps that no longer exist are left out.
    pub async fn add_traffic(&self, samples: &TrafficSamples, minute: i64) -> Result<(), DbError> {
        let mut tx = self.writer.begin().await?;
        for sample in &samples.samples {
            for count in &sample.buckets {
                sqlx::query(
                    "INSERT INTO traffic (app_id, minute, bucket, requests, errors)
                     SELECT id, $2, $3, $4, $5 FROM apps WHERE name = $1
                     ON CONFLICT (app_id, minute, bucket)
                     DO UPDATE SET requests = traffic.requests + excluded.requests,
                                   errors = traffic.errors + excluded.errors",
                )
                .bind(sample.app.as_str())
                .bind(minute)
                .bind(i64::from(count.bucket.min(LATENCY_BUCKETS - 1)))
                .bind(i64::try_from(count.requests).unwrap_or(i64::MAX))
                .bind(i64::try_from(count.errors).unwrap_or(i64::MAX))
                .execute(&mut *tx)
                .await?;
            }
        }
        sqlx::query("DELETE FROM traffic WHERE minute < $1").bind(minute - KEEP_MINUTES).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// An app's traffic from minute `since` on, oldest first (minutes without any left out).
    pub async fn traffic(&self, app_id: i64, since: i64) -> Result<Vec<TrafficMinute>, DbError> {
        let rows = sqlx::query(
            "SELECT minute, bucket, requests, errors FROM traffic WHERE app_id = $1 AND minute >= $2
             ORDER BY minute, bucket",
        )
        .bind(app_id)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        let mut minutes: Vec<TrafficMinute> = Vec::new();
        for row in rows {
            let minute: i64 = row.get(0);
            let count = BucketCount {
                bucket: u16::try_from(row.get::<i64, _>(1)).unwrap_or(LATENCY_BUCKETS - 1),
                requests: u64::try_from(row.get::<i64, _>(2)).unwrap_or(0),
                errors: u64::try_from(row.get::<i64, _>(3)).unwrap_or(0),
            };
            match minutes.last_mut() {
                Some(last) if last.minute == minute => last.buckets.push(count),
                _ => minutes.push(TrafficMinute { minute, buckets: vec![count] }),
            }
        }
        Ok(minutes)
    }
}
