//! Outgoing webhooks and their delivery queue: a row per event and webhook, delivered in
//! order per webhook and app, each attempt claimed by one controller.

use skiff_api::{DeliveryState, EventKind, EventPayload, Webhook, WebhookDelivery, WebhookFormat};

use super::*;

/// A delivery whose turn it is, with what sending it needs.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: i64,
    pub url: String,
    pub secret: String,
    pub format: WebhookFormat,
    pub payload: String,
    /// Attempts made before this one.
    pub attempts: u32,
    pub created_ms: i64,
    /// A platform-wide webhook, set by an admin: not held to the outbound guard.
    pub platform: bool,
}

/// How an attempt went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attempt {
    pub status: Option<u16>,
    pub error: Option<String>,
    pub latency_ms: u64,
    /// `Delivered`, `Failed` (given up), or `Pending` with the next attempt's time.
    pub state: DeliveryState,
    pub next_attempt_ms: i64,
}

fn state_text(state: DeliveryState) -> &'static str {
    match state {
        DeliveryState::Pending => "pending",
        DeliveryState::Delivered => "delivered",
        DeliveryState::Failed => "failed",
    }
}

impl Db {
    /// Adds a webhook to an app, or to the platform without one.
    pub async fn add_webhook(
        &self,
        app: Option<&AppRow>,
        url: &str,
        events: &[EventKind],
        secret: &str,
        format: WebhookFormat,
    ) -> Result<Webhook, DbError> {
        let framed: String = events.iter().map(|kind| format!(",{kind}")).collect::<String>() + ",";
        let created_at = now();
        let id: i64 = sqlx::query(
            "INSERT INTO webhooks (app_id, url, events, secret, format, created_at)
             VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
        )
        .bind(app.map(|a| a.id))
        .bind(url)
        .bind(framed)
        .bind(secret)
        .bind(enum_text(&format))
        .bind(&created_at)
        .fetch_one(&self.writer)
        .await?
        .get(0);
        Ok(Webhook {
            id,
            app: app.map(|a| a.name.clone()),
            url: url.to_owned(),
            events: events.to_vec(),
            format,
            secret: None,
            created_at,
        })
    }

    /// An app's webhooks, the platform's without an app, by id.
    pub async fn webhooks(&self, app: Option<&AppRow>) -> Result<Vec<Webhook>, DbError> {
        let rows = sqlx::query(
            "SELECT w.id, a.name, w.url, w.events, w.format, w.created_at
             FROM webhooks w LEFT JOIN apps a ON a.id = w.app_id
             WHERE w.app_id IS NOT DISTINCT FROM $1 ORDER BY w.id",
        )
        .bind(app.map(|a| a.id))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(webhook_row).collect()
    }

    /// Removes a webhook (and its queue) of an app, or of the platform without one;
    /// `false` when there was no such webhook.
    pub async fn remove_webhook(&self, app: Option<&AppRow>, id: i64) -> Result<bool, DbError> {
        let mut tx = self.writer.begin().await?;
        let removed = sqlx::query("DELETE FROM webhooks WHERE id = $1 AND app_id IS NOT DISTINCT FROM $2")
            .bind(id)
            .bind(app.map(|a| a.id))
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0;
        sqlx::query("DELETE FROM webhook_deliveries WHERE webhook_id = $1").bind(id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(removed)
    }

    /// The newest `limit` deliveries of a webhook of an app (or of the platform), newest
    /// first; `None` when there is no such webhook here.
    pub async fn webhook_deliveries(
        &self,
        app: Option<&AppRow>,
        id: i64,
        limit: u32,
    ) -> Result<Option<Vec<WebhookDelivery>>, DbError> {
        let found: i64 = sqlx::query("SELECT COUNT(*) FROM webhooks WHERE id = $1 AND app_id IS NOT DISTINCT FROM $2")
            .bind(id)
            .bind(app.map(|a| a.id))
            .fetch_one(&self.pool)
            .await?
            .get(0);
        if found == 0 {
            return Ok(None);
        }
        let rows = sqlx::query(
            "SELECT id, event_id, kind, state, attempts, status, error, latency_ms, created_at, next_attempt_ms
             FROM webhook_deliveries WHERE webhook_id = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let state: DeliveryState = enum_parse(row.get(3))?;
                let status: Option<i64> = row.get(5);
                let latency: Option<i64> = row.get(7);
                Ok(WebhookDelivery {
                    id: row.get(0),
                    event_id: row.get(1),
                    event: enum_parse(row.get(2))?,
                    state,
                    attempts: u32::try_from(row.get::<i64, _>(4)).unwrap_or(u32::MAX),
                    status: status.and_then(|s| u16::try_from(s).ok()),
                    error: row.get(6),
                    latency_ms: latency.and_then(|l| u64::try_from(l).ok()),
                    created_at: row.get(8),
                    next_attempt_at: (state == DeliveryState::Pending).then(|| ms_to_rfc3339(row.get(9))),
                })
            })
            .collect::<Result<_, _>>()
            .map(Some)
    }

    /// Queues `event` for every webhook that takes it: the app's own and the platform's
    /// (a platform event only for the platform's). Returns how many deliveries were queued.
    pub async fn queue_deliveries(&self, event: &EventPayload, now_ms: i64) -> Result<u64, DbError> {
        let payload = serde_json::to_string(event).map_err(|e| DbError::Corrupt(e.to_string()))?;
        let queued = sqlx::query(
            "INSERT INTO webhook_deliveries
               (webhook_id, event_id, kind, queue, payload, state, created_ms, next_attempt_ms, created_at)
             SELECT w.id, $1, $2, $3, $4, 'pending', $5, $5, $6
             FROM webhooks w LEFT JOIN apps a ON a.id = w.app_id
             WHERE (w.app_id IS NULL OR a.name = $7) AND w.events LIKE $8",
        )
        .bind(event.id)
        .bind(event.kind.as_str())
        .bind(event.app.as_ref().map_or("", AppName::as_str))
        .bind(payload)
        .bind(now_ms)
        .bind(&event.time)
        .bind(event.app.as_ref().map(AppName::as_str))
        .bind(format!("%,{},%", event.kind))
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(queued)
    }

    /// Deliveries whose turn it is at `now_ms`: due, not claimed by a controller, and the
    /// oldest pending one of their webhook and app (so that order is kept per app).
    pub async fn due_deliveries(&self, now_ms: i64, limit: u32) -> Result<Vec<DueDelivery>, DbError> {
        let rows = sqlx::query(
            "SELECT d.id, w.url, w.secret, w.format, d.payload, d.attempts, d.created_ms,
                    CASE WHEN w.app_id IS NULL THEN 1 ELSE 0 END
             FROM webhook_deliveries d JOIN webhooks w ON w.id = d.webhook_id
             WHERE d.state = 'pending' AND d.next_attempt_ms <= $1 AND d.claimed_until_ms <= $1
               AND NOT EXISTS (SELECT 1 FROM webhook_deliveries e WHERE e.state = 'pending'
                               AND e.webhook_id = d.webhook_id AND e.queue = d.queue AND e.id < d.id)
             ORDER BY d.id LIMIT $2",
        )
        .bind(now_ms)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(DueDelivery {
                    id: row.get(0),
                    url: row.get(1),
                    secret: row.get(2),
                    format: enum_parse(row.get(3))?,
                    payload: row.get(4),
                    attempts: u32::try_from(row.get::<i64, _>(5)).unwrap_or(u32::MAX),
                    created_ms: row.get(6),
                    platform: row.get::<i64, _>(7) == 1,
                })
            })
            .collect()
    }

    /// Claims a delivery's attempt until `until_ms`; `false` when another controller holds
    /// it or it is no longer pending.
    pub async fn claim_delivery(&self, id: i64, now_ms: i64, until_ms: i64) -> Result<bool, DbError> {
        self.changed(
            sqlx::query(
                "UPDATE webhook_deliveries SET claimed_until_ms = $1
                 WHERE id = $2 AND state = 'pending' AND claimed_until_ms <= $3",
            )
            .bind(until_ms)
            .bind(id)
            .bind(now_ms),
        )
        .await
    }

    /// Records an attempt and releases the claim.
    pub async fn record_attempt(&self, id: i64, attempt: &Attempt) -> Result<(), DbError> {
        sqlx::query(
            "UPDATE webhook_deliveries SET attempts = attempts + 1, claimed_until_ms = 0, state = $1,
               status = $2, error = $3, latency_ms = $4, next_attempt_ms = $5 WHERE id = $6",
        )
        .bind(state_text(attempt.state))
        .bind(attempt.status.map(i64::from))
        .bind(attempt.error.as_deref())
        .bind(i64::try_from(attempt.latency_ms).unwrap_or(i64::MAX))
        .bind(attempt.next_attempt_ms)
        .bind(id)
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Deliveries waiting, for their turn or a retry.
    pub async fn pending_deliveries(&self) -> Result<u64, DbError> {
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM webhook_deliveries WHERE state = 'pending'")
            .fetch_one(&self.pool)
            .await?
            .get(0);
        Ok(u64::try_from(count).unwrap_or(0))
    }

    /// Forgets deliveries that ended (delivered or given up) before `before_ms`.
    pub async fn prune_deliveries(&self, before_ms: i64) -> Result<u64, DbError> {
        let pruned = sqlx::query("DELETE FROM webhook_deliveries WHERE state <> 'pending' AND next_attempt_ms < $1")
            .bind(before_ms)
            .execute(&self.writer)
            .await?
            .rows_affected();
        Ok(pruned)
    }
}

fn webhook_row(row: AnyRow) -> Result<Webhook, DbError> {
    let app: Option<String> = row.get(1);
    let events: String = row.get(3);
    Ok(Webhook {
        id: row.get(0),
        app: app.map(parse).transpose()?,
        url: row.get(2),
        events: events
            .split(',')
            .filter(|s| !s.is_empty())
            .map(|kind| parse(kind.to_owned()))
            .collect::<Result<_, _>>()?,
        format: enum_parse(row.get(4))?,
        secret: None,
        created_at: row.get(5),
    })
}
