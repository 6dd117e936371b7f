//! Users, their API tokens and their SSH keys.

use super::*;

impl Db {
    /// How many users exist.
    pub async fn user_count(&self) -> Result<i64, DbError> {
        Ok(sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&self.pool).await?.get(0))
    }

    /// Creates a user; the first user becomes admin. `None` when the name is taken.
    pub async fn create_user(&self, username: &Username, password_hash: &str) -> Result<Option<UserRow>, DbError> {
        let mut tx = self.writer.begin().await?;
        let count: i64 = sqlx::query("SELECT COUNT(*) FROM users").fetch_one(&mut *tx).await?.get(0);
        let admin = count == 0;
        let inserted = sqlx::query(
            "INSERT INTO users (username, password_hash, admin, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (username) DO NOTHING RETURNING id",
        )
        .bind(username.as_str())
        .bind(password_hash)
        .bind(admin)
        .bind(now())
        .fetch_optional(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(inserted.map(|row| UserRow {
            id: row.get(0),
            username: username.clone(),
            password_hash: password_hash.to_owned(),
            admin,
        }))
    }

    fn user_row(row: AnyRow) -> Result<UserRow, DbError> {
        Ok(UserRow {
            id: row.get("id"),
            username: parse(row.get("username"))?,
            password_hash: row.get("password_hash"),
            admin: row.get::<i64, _>("admin") != 0,
        })
    }

    /// A user's columns, as [`Db::user_row`] reads them, from `users u`.
    const USER_COLUMNS: &str =
        "SELECT u.id, u.username, u.password_hash, CASE WHEN u.admin THEN 1 ELSE 0 END AS admin FROM users u";

    /// The one user `query` (the user's columns, then joins and conditions with one
    /// parameter) finds for `value`.
    async fn one_user(&self, query: &str, value: &str) -> Result<Option<UserRow>, DbError> {
        sqlx::query(sqlx::AssertSqlSafe(format!("{} {query}", Self::USER_COLUMNS)))
            .bind(value)
            .fetch_optional(&self.pool)
            .await?
            .map(Self::user_row)
            .transpose()
    }

    /// Every user, by name.
    pub async fn users(&self) -> Result<Vec<UserRow>, DbError> {
        sqlx::query(sqlx::AssertSqlSafe(format!("{} ORDER BY u.username", Self::USER_COLUMNS)))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(Self::user_row)
            .collect()
    }

    /// A user by name.
    pub async fn user_by_name(&self, username: &Username) -> Result<Option<UserRow>, DbError> {
        self.one_user("WHERE u.username = $1", username.as_str()).await
    }

    /// Stores a token hash for a user, working until `expires_ms` (Unix ms) if given.
    pub async fn add_token(&self, user_id: i64, token_hash: &str, expires_ms: Option<i64>) -> Result<(), DbError> {
        sqlx::query("INSERT INTO tokens (hash, user_id, created_at, expires_ms) VALUES ($1, $2, $3, $4)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now())
            .bind(expires_ms)
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Forgets tokens that stopped working before `now_ms`.
    pub async fn remove_expired_tokens(&self, now_ms: i64) -> Result<u64, DbError> {
        let removed = sqlx::query("DELETE FROM tokens WHERE expires_ms IS NOT NULL AND expires_ms <= $1")
            .bind(now_ms)
            .execute(&self.writer)
            .await?;
        Ok(removed.rows_affected())
    }

    /// Revokes a token; `false` when there was none.
    pub async fn remove_token(&self, token_hash: &str) -> Result<bool, DbError> {
        self.changed(sqlx::query("DELETE FROM tokens WHERE hash = $1").bind(token_hash)).await
    }

    /// The user a token hash belongs to.
    pub async fn user_by_token(&self, token_hash: &str) -> Result<Option<UserRow>, DbError> {
        // An expired session's token works no more (API tokens do not expire).
        let now_ms = crate::clock::now_ms();
        let clause = format!(
            "JOIN tokens t ON t.user_id = u.id WHERE t.hash = $1 AND (t.expires_ms IS NULL OR t.expires_ms > {now_ms})"
        );
        self.one_user(&clause, token_hash).await
    }

    /// Adds an SSH key; `false` when the fingerprint is already registered.
    pub async fn add_key(
        &self,
        user_id: i64,
        fingerprint: &str,
        public_key: &str,
        comment: &str,
    ) -> Result<Option<KeyRow>, DbError> {
        let created_at = now();
        let row = sqlx::query(
            "INSERT INTO ssh_keys (user_id, fingerprint, public_key, comment, created_at) VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (fingerprint) DO NOTHING RETURNING id",
        )
        .bind(user_id)
        .bind(fingerprint)
        .bind(public_key)
        .bind(comment)
        .bind(&created_at)
        .fetch_optional(&self.pool)
        .await?;
        Ok(row.map(|row| KeyRow {
            id: row.get(0),
            fingerprint: fingerprint.to_owned(),
            comment: comment.to_owned(),
            created_at,
        }))
    }

    /// A user's keys.
    pub async fn keys(&self, user_id: i64) -> Result<Vec<KeyRow>, DbError> {
        let rows =
            sqlx::query("SELECT id, fingerprint, comment, created_at FROM ssh_keys WHERE user_id = $1 ORDER BY id")
                .bind(user_id)
                .fetch_all(&self.pool)
                .await?;
        Ok(rows
            .into_iter()
            .map(|row| KeyRow {
                id: row.get("id"),
                fingerprint: row.get("fingerprint"),
                comment: row.get("comment"),
                created_at: row.get("created_at"),
            })
            .collect())
    }

    /// Removes one of a user's keys; `false` when there was none.
    pub async fn remove_key(&self, user_id: i64, key_id: i64) -> Result<bool, DbError> {
        self.changed(sqlx::query("DELETE FROM ssh_keys WHERE id = $1 AND user_id = $2").bind(key_id).bind(user_id))
            .await
    }

    /// The owner of a key fingerprint.
    pub async fn key_owner(&self, fingerprint: &str) -> Result<Option<UserRow>, DbError> {
        self.one_user("JOIN ssh_keys k ON k.user_id = u.id WHERE k.fingerprint = $1", fingerprint).await
    }
}
