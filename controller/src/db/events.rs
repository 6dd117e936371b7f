//! The audit trail.

use super::*;

impl Db {
    /// Keeps an audit event, of an app or (without one) of the platform.
    pub async fn add_event(&self, app: Option<&AppName>, message: &str) -> Result<(), DbError> {
        sqlx::query("INSERT INTO events (app, message, created_at) VALUES ($1, $2, $3)")
            .bind(app.map(AppName::as_str))
            .bind(message)
            .bind(now())
            .execute(&self.writer)
            .await?;
        Ok(())
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

    /// The newest `limit` events, oldest first: one app's, or every event without an app.
    pub async fn events(&self, app: Option<&AppName>, limit: u32) -> Result<Vec<Event>, DbError> {
        let rows = sqlx::query(
            "SELECT id, app, message, created_at FROM events WHERE $1 IS NULL OR app = $1 ORDER BY id DESC LIMIT $2",
        )
        .bind(app.map(AppName::as_str))
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
                })
            })
            .collect::<Result<Vec<_>, DbError>>()?;
        events.reverse();
        Ok(events)
    }
}
