//! Log drains, per app and platform-wide.

use super::*;

impl Db {
    /// Adds a drain to an app, or to the platform without one; `None` when it has that
    /// URL already.
    pub async fn add_drain(&self, app: Option<&AppRow>, url: &str) -> Result<Option<Drain>, DbError> {
        let mut tx = self.writer.begin().await?;
        let app_id = app.map(|a| a.id);
        let taken: i64 = sqlx::query("SELECT COUNT(*) FROM drains WHERE url = $1 AND app_id IS NOT DISTINCT FROM $2")
            .bind(url)
            .bind(app_id)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        if taken > 0 {
            return Ok(None);
        }
        let created_at = now();
        let id: i64 = sqlx::query("INSERT INTO drains (app_id, url, created_at) VALUES ($1, $2, $3) RETURNING id")
            .bind(app_id)
            .bind(url)
            .bind(&created_at)
            .fetch_one(&mut *tx)
            .await?
            .get(0);
        tx.commit().await?;
        Ok(Some(Drain { id, url: url.to_owned(), app: app.map(|a| a.name.clone()), created_at, status: None }))
    }

    /// Removes a drain of an app, or of the platform without one; `false` when there was
    /// no such drain.
    pub async fn remove_drain(&self, app: Option<&AppRow>, id: i64) -> Result<bool, DbError> {
        self.changed(
            sqlx::query("DELETE FROM drains WHERE id = $1 AND app_id IS NOT DISTINCT FROM $2")
                .bind(id)
                .bind(app.map(|a| a.id)),
        )
        .await
    }

    /// An app's drains, the platform's without an app, by id.
    pub async fn drains(&self, app: Option<&AppRow>) -> Result<Vec<Drain>, DbError> {
        let rows = sqlx::query(
            "SELECT d.id, d.url, a.name, d.created_at FROM drains d LEFT JOIN apps a ON a.id = d.app_id
             WHERE d.app_id IS NOT DISTINCT FROM $1 ORDER BY d.id",
        )
        .bind(app.map(|a| a.id))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Self::drain_row).collect()
    }

    /// Every drain, of every app and of the platform.
    pub async fn all_drains(&self) -> Result<Vec<Drain>, DbError> {
        let rows = sqlx::query(
            "SELECT d.id, d.url, a.name, d.created_at FROM drains d LEFT JOIN apps a ON a.id = d.app_id ORDER BY d.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter().map(Self::drain_row).collect()
    }

    fn drain_row(row: AnyRow) -> Result<Drain, DbError> {
        let app: Option<String> = row.get(2);
        Ok(Drain {
            id: row.get(0),
            url: row.get(1),
            app: app.map(parse).transpose()?,
            created_at: row.get(3),
            status: None,
        })
    }
}
