//! The audit trail.

use skiff_api::EventKind;

use super::*;

impl Db {
    /// Keeps an audit event, of an app or (without one) of the platform; its id and time.
    pub async fn add_event(
        &self,
        app: Option<&AppName>,
        kind: EventKind,
        message: &str,
    ) -> Result<(i64, String), DbError> {
        let created_at = now();
        let id: i64 =
            sqlx::query("INSERT INTO events (app, kind, message, created_at) VALUES ($1, $2, $3, $4) RETURNING id")
                .bind(app.map(AppName::as_str))
                .bind(kind.as_str())
                .bind(message)
                .bind(&created_at)
                .fetch_one(&self.writer)
                .await?
                .get(0);
        Ok((id, created_at))
    }

    /// Makes an app's events platform-wide, each prefixed with the app's name: for an app
    /// that is gone, so that a new app of that name starts with an empty trail.
    pub async fn retire_events(&self, app: &AppName) -> Result<(), DbError> {
        sqlx::query("UPDATE events SET message = app || ': ' || message, app = NULL WHERE app = $1")
            .bind(app.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The newest `limit` events, oldest first: one app's, or (without an app) every
    /// event, the platform's and every app's.
    pub async fn events(&self, app: Option<&AppName>, limit: u32) -> Result<Vec<Event>, DbError> {
        self.events_before(app, None, limit).await
    }

    /// Like [`Db::events`], only events older than the event `before` (an id): the audit
    /// trail a page at a time.
    pub async fn events_before(
        &self,
        app: Option<&AppName>,
        before: Option<i64>,
        limit: u32,
    ) -> Result<Vec<Event>, DbError> {
        let rows = sqlx::query(
            "SELECT id, app, message, created_at, kind FROM events
             WHERE ($1 IS NULL OR app = $1) AND id < $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(app.map(AppName::as_str))
        .bind(before.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        let mut events = rows
            .into_iter()
            .map(|row| {
                let app: Option<String> = row.get(1);
                Ok(Event {
                    id: row.get(0),
                    app: app.map(parse).transpose()?,
                    message: row.get(2),
                    created_at: row.get(3),
                    kind: parse(row.get(4))?,
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        events.reverse();
        Ok(events)
    }
}
