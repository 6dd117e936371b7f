//! Apps: ownership, collaborators, maintenance mode and the router settings kept on the app.

use super::*;

impl Db {
    /// Creates an app; `None` when the name is taken.
    pub async fn create_app(
        &self,
        name: &AppName,
        owner: &UserRow,
        stack: &StackName,
    ) -> Result<Option<AppRow>, DbError> {
        let created_at = now();
        // A destroyed app's id is not given again (`migrations/sqlite/0022_app_ids.sql`):
        // Postgres's identity never goes back; SQLite's apps take the next of the ids it
        // ever gave.
        let insert = if self.postgres {
            "INSERT INTO apps (name, owner_id, stack, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING RETURNING id"
        } else {
            "INSERT INTO apps (id, name, owner_id, stack, created_at)
             VALUES ((SELECT last + 1 FROM app_ids), $1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING RETURNING id"
        };
        let row = sqlx::query(insert)
            .bind(name.as_str())
            .bind(owner.id)
            .bind(stack.as_str())
            .bind(&created_at)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| AppRow {
            id: row.get(0),
            name: name.clone(),
            owner_id: owner.id,
            owner: owner.username.clone(),
            stack: stack.clone(),
            created_at,
            maintenance: false,
            tls: TlsSettings::default(),
            access: AccessPolicy::default(),
        }))
    }

    const APP_COLUMNS: &str = "SELECT a.id, a.name, a.owner_id, u.username, a.stack, a.created_at,
                               CASE WHEN a.maintenance THEN 1 ELSE 0 END,
                               CASE WHEN a.force_https THEN 1 ELSE 0 END, a.hsts_max_age, a.access
                               FROM apps a JOIN users u ON u.id = a.owner_id";

    fn app_row(row: AnyRow) -> Result<AppRow, DbError> {
        Ok(AppRow {
            id: row.get(0),
            name: parse(row.get(1))?,
            owner_id: row.get(2),
            owner: parse(row.get(3))?,
            stack: parse(row.get(4))?,
            created_at: row.get(5),
            maintenance: row.get::<i64, _>(6) != 0,
            tls: TlsSettings { force_https: row.get::<i64, _>(7) != 0, hsts_max_age: row.get::<i64, _>(8) as u64 },
            access: serde_json::from_str(&row.get::<String, _>(9)).map_err(|e| DbError::Corrupt(e.to_string()))?,
        })
    }

    /// An app by name.
    pub async fn app(&self, name: &AppName) -> Result<Option<AppRow>, DbError> {
        sqlx::query(sqlx::AssertSqlSafe(format!("{} WHERE a.name = $1", Self::APP_COLUMNS)))
            .bind(name.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(Self::app_row)
            .transpose()
    }

    /// An app by id.
    pub async fn app_by_id(&self, id: i64) -> Result<Option<AppRow>, DbError> {
        sqlx::query(sqlx::AssertSqlSafe(format!("{} WHERE a.id = $1", Self::APP_COLUMNS)))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(Self::app_row)
            .transpose()
    }

    /// Every app, or those a user owns or collaborates on.
    pub async fn apps(&self, owner_id: Option<i64>) -> Result<Vec<AppRow>, DbError> {
        let rows =
            match owner_id {
                Some(id) => sqlx::query(sqlx::AssertSqlSafe(format!(
                    "{} WHERE a.owner_id = $1 OR a.id IN (SELECT app_id FROM perms WHERE user_id = $1) ORDER BY a.name",
                    Self::APP_COLUMNS
                )))
                .bind(id)
                .fetch_all(&self.pool)
                .await?,
                None => {
                    sqlx::query(sqlx::AssertSqlSafe(format!("{} ORDER BY a.name", Self::APP_COLUMNS)))
                        .fetch_all(&self.pool)
                        .await?
                }
            };
        rows.into_iter().map(Self::app_row).collect()
    }

    /// Deletes an app and its releases.
    pub async fn delete_app(&self, app_id: i64) -> Result<(), DbError> {
        sqlx::query("DELETE FROM apps WHERE id = $1").bind(app_id).execute(&self.writer).await?;
        Ok(())
    }

    /// Whether `user_id` collaborates on `app_id`.
    pub async fn is_collaborator(&self, app_id: i64, user_id: i64) -> Result<bool, DbError> {
        let row = sqlx::query("SELECT 1 FROM perms WHERE app_id = $1 AND user_id = $2")
            .bind(app_id)
            .bind(user_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.is_some())
    }

    /// An app's collaborators.
    pub async fn perms(&self, app_id: i64) -> Result<Vec<Username>, DbError> {
        sqlx::query(
            "SELECT u.username FROM perms p JOIN users u ON u.id = p.user_id WHERE p.app_id = $1 ORDER BY u.username",
        )
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|row| parse(row.get(0)))
        .collect()
    }

    /// Adds a collaborator; `false` when already one.
    pub async fn add_perm(&self, app_id: i64, user_id: i64) -> Result<bool, DbError> {
        self.changed(
            sqlx::query("INSERT INTO perms (app_id, user_id) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(app_id)
                .bind(user_id),
        )
        .await
    }

    /// Removes a collaborator; `false` when not one.
    pub async fn remove_perm(&self, app_id: i64, user_id: i64) -> Result<bool, DbError> {
        self.changed(sqlx::query("DELETE FROM perms WHERE app_id = $1 AND user_id = $2").bind(app_id).bind(user_id))
            .await
    }

    /// Gives an app to another user.
    pub async fn transfer(&self, app_id: i64, owner_id: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE apps SET owner_id = $1 WHERE id = $2")
            .bind(owner_id)
            .bind(app_id)
            .execute(&self.writer)
            .await?;
        sqlx::query("DELETE FROM perms WHERE app_id = $1 AND user_id = $2")
            .bind(app_id)
            .bind(owner_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Turns maintenance mode on or off.
    pub async fn set_maintenance(&self, app_id: i64, enabled: bool) -> Result<(), DbError> {
        sqlx::query("UPDATE apps SET maintenance = $1 WHERE id = $2")
            .bind(enabled)
            .bind(app_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Sets what the router lets through to an app.
    pub async fn set_access(&self, app_id: i64, access: &AccessPolicy) -> Result<(), DbError> {
        let text = serde_json::to_string(access).map_err(|e| DbError::Corrupt(e.to_string()))?;
        sqlx::query("UPDATE apps SET access = $1 WHERE id = $2").bind(text).bind(app_id).execute(&self.writer).await?;
        Ok(())
    }

    /// Sets an app's HTTPS policy.
    pub async fn set_tls(&self, app_id: i64, tls: TlsSettings) -> Result<(), DbError> {
        sqlx::query("UPDATE apps SET force_https = $1, hsts_max_age = $2 WHERE id = $3")
            .bind(tls.force_https)
            .bind(i64::try_from(tls.hsts_max_age).unwrap_or(i64::MAX))
            .bind(app_id)
            .execute(&self.writer)
            .await?;
        Ok(())
    }
}
