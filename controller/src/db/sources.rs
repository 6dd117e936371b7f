//! Apps' source repositories, and the push events taken from them.

use super::*;

/// An app's source repository as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceRow {
    pub repo: String,
    pub branch: String,
    pub secret: String,
    /// The private half of the app's deploy key (OpenSSH), for an ssh repository.
    pub deploy_key: Option<String>,
    pub connected_by: Username,
    pub created_at: String,
}

impl Db {
    /// Connects an app to a repository, replacing the one it had.
    pub async fn set_source(&self, app: &AppRow, source: &SourceRow) -> Result<(), DbError> {
        let mut tx = self.writer.begin().await?;
        sqlx::query("DELETE FROM app_sources WHERE app_id = $1").bind(app.id).execute(&mut *tx).await?;
        sqlx::query(
            "INSERT INTO app_sources (app_id, repo, branch, secret, deploy_key, connected_by, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind(app.id)
        .bind(&source.repo)
        .bind(&source.branch)
        .bind(&source.secret)
        .bind(source.deploy_key.as_deref())
        .bind(source.connected_by.as_str())
        .bind(&source.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The app's source repository, if it has one.
    pub async fn source(&self, app: &AppRow) -> Result<Option<SourceRow>, DbError> {
        let row = sqlx::query(
            "SELECT repo, branch, secret, deploy_key, connected_by, created_at FROM app_sources WHERE app_id = $1",
        )
        .bind(app.id)
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| {
            Ok(SourceRow {
                repo: row.get(0),
                branch: row.get(1),
                secret: row.get(2),
                deploy_key: row.get(3),
                connected_by: parse(row.get(4))?,
                created_at: row.get(5),
            })
        })
        .transpose()
    }

    /// Disconnects an app from its repository; `false` when it had none.
    pub async fn remove_source(&self, app: &AppRow) -> Result<bool, DbError> {
        self.changed(sqlx::query("DELETE FROM app_sources WHERE app_id = $1").bind(app.id)).await
    }

    /// Notes a push event by its delivery id; `false` when it was taken before (a replay).
    pub async fn take_source_delivery(&self, app: &AppRow, delivery: &str) -> Result<bool, DbError> {
        let taken = sqlx::query(
            "INSERT INTO source_deliveries (app_id, delivery, received_at) VALUES ($1, $2, $3)
             ON CONFLICT (app_id, delivery) DO NOTHING",
        )
        .bind(app.id)
        .bind(delivery)
        .bind(now())
        .execute(&self.writer)
        .await?
        .rows_affected();
        Ok(taken > 0)
    }
}
