//! Custom domains.

use super::*;

impl Db {
    /// Adds a custom domain; `false` when some app has it already.
    pub async fn add_domain(&self, app_id: i64, domain: &str) -> Result<bool, DbError> {
        self.changed(
            sqlx::query("INSERT INTO domains (domain, app_id, created_at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING")
                .bind(domain)
                .bind(app_id)
                .bind(now()),
        )
        .await
    }

    /// Removes one of an app's domains; `false` when it had no such domain.
    pub async fn remove_domain(&self, app_id: i64, domain: &str) -> Result<bool, DbError> {
        self.changed(sqlx::query("DELETE FROM domains WHERE app_id = $1 AND domain = $2").bind(app_id).bind(domain))
            .await
    }

    /// Custom domains: (app id, domain, created at), by domain.
    pub async fn domains(&self, app_id: Option<i64>) -> Result<Vec<(i64, String, String)>, DbError> {
        let rows = sqlx::query(
            "SELECT app_id, domain, created_at FROM domains WHERE $1 IS NULL OR app_id = $1 ORDER BY domain",
        )
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        Ok(rows.into_iter().map(|row| (row.get(0), row.get(1), row.get(2))).collect())
    }
}
