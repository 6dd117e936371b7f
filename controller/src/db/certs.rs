//! TLS certificates and the domains they are attached to.

use super::*;

/// What storing a certificate does when the app has one by that name already.
#[derive(Debug, Clone, Copy)]
pub(super) enum SameName {
    /// Nothing (no row changes).
    Keep,
    /// Replaces it, keeping its id (which the statement returns).
    Replace,
}

/// The statement that stores an app's certificate (its names as JSON).
pub(super) fn insert_cert<'q>(
    same_name: SameName,
    app_id: i64,
    cert: &'q Certificate,
    chain_pem: &'q str,
    key_pem: &'q str,
) -> Result<sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>, DbError> {
    let names = serde_json::to_string(&cert.names).map_err(|e| DbError::Corrupt(e.to_string()))?;
    let sql = match same_name {
        SameName::Keep => {
            "INSERT INTO certs (app_id, name, chain_pem, key_pem, common_name, names, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (app_id, name) DO NOTHING"
        }
        SameName::Replace => {
            "INSERT INTO certs (app_id, name, chain_pem, key_pem, common_name, names, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (app_id, name) DO UPDATE SET chain_pem = excluded.chain_pem, key_pem = excluded.key_pem,
               common_name = excluded.common_name, names = excluded.names, expires_at = excluded.expires_at,
               created_at = excluded.created_at
             RETURNING id"
        }
    };
    Ok(sqlx::query(sql)
        .bind(app_id)
        .bind(&cert.name)
        .bind(chain_pem)
        .bind(key_pem)
        .bind(&cert.common_name)
        .bind(names)
        .bind(&cert.expires_at)
        .bind(&cert.created_at))
}

impl Db {
    /// Stores a certificate (already checked); `false` when the app has one by that name.
    pub async fn add_cert(
        &self,
        app_id: i64,
        cert: &Certificate,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<bool, DbError> {
        self.changed(insert_cert(SameName::Keep, app_id, cert, chain_pem, key_pem)?).await
    }

    /// Removes an app's certificate (and its attachments); `false` when it had none by that name.
    pub async fn remove_cert(&self, app_id: i64, name: &str) -> Result<bool, DbError> {
        self.changed(sqlx::query("DELETE FROM certs WHERE app_id = $1 AND name = $2").bind(app_id).bind(name)).await
    }

    /// Serves an app's certificate for one of its domains (replacing whichever was attached).
    /// `false` when the app has no such certificate or no such domain.
    pub async fn attach_cert(&self, app_id: i64, name: &str, domain: &str) -> Result<bool, DbError> {
        let mut tx = self.writer.begin().await?;
        let cert = sqlx::query("SELECT id FROM certs WHERE app_id = $1 AND name = $2")
            .bind(app_id)
            .bind(name)
            .fetch_optional(&mut *tx)
            .await?;
        let owned = sqlx::query("SELECT domain FROM domains WHERE app_id = $1 AND domain = $2")
            .bind(app_id)
            .bind(domain)
            .fetch_optional(&mut *tx)
            .await?;
        let (Some(cert), Some(_)) = (cert, owned) else { return Ok(false) };
        sqlx::query(
            "INSERT INTO cert_domains (domain, cert_id) VALUES ($1, $2)
             ON CONFLICT (domain) DO UPDATE SET cert_id = excluded.cert_id",
        )
        .bind(domain)
        .bind(cert.get::<i64, _>(0))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(true)
    }

    /// Stops serving an app's certificate for a domain; `false` when it was not attached.
    pub async fn detach_cert(&self, app_id: i64, name: &str, domain: &str) -> Result<bool, DbError> {
        self.changed(
            sqlx::query(
                "DELETE FROM cert_domains WHERE domain = $1
             AND cert_id IN (SELECT id FROM certs WHERE app_id = $2 AND name = $3)",
            )
            .bind(domain)
            .bind(app_id)
            .bind(name),
        )
        .await
    }

    /// An app's certificates, by name, with the domains each is attached to.
    /// The certificate that expires first, of any app: its app, name and expiry.
    pub async fn soonest_certificate(&self) -> Result<Option<(AppName, String, String)>, DbError> {
        let row = sqlx::query(
            "SELECT a.name, c.name, c.expires_at FROM certs c JOIN apps a ON a.id = c.app_id ORDER BY c.expires_at LIMIT 1",
        )
        .fetch_optional(&self.pool)
        .await?;
        row.map(|row| Ok((parse(row.get(0))?, row.get(1), row.get(2)))).transpose()
    }

    pub async fn certs(&self, app_id: i64) -> Result<Vec<Certificate>, DbError> {
        Ok(self.certs_with_keys(Some(app_id)).await?.into_iter().map(|(cert, _, _)| cert).collect())
    }

    /// Certificates with their PEM chain and key: an app's, or every app's.
    pub async fn certs_with_keys(&self, app_id: Option<i64>) -> Result<Vec<(Certificate, String, String)>, DbError> {
        let rows = sqlx::query(
            "SELECT c.id, c.name, c.common_name, c.names, c.expires_at, c.created_at, c.chain_pem, c.key_pem
             FROM certs c WHERE $1 IS NULL OR c.app_id = $1 ORDER BY c.app_id, c.name",
        )
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        let attached =
            sqlx::query("SELECT cert_id, domain FROM cert_domains ORDER BY domain").fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|row| {
                let id: i64 = row.get(0);
                let names: String = row.get(3);
                let cert = Certificate {
                    name: row.get(1),
                    common_name: row.get(2),
                    names: serde_json::from_str(&names).map_err(|e| DbError::Corrupt(e.to_string()))?,
                    domains: attached.iter().filter(|a| a.get::<i64, _>(0) == id).map(|a| a.get(1)).collect(),
                    expires_at: row.get(4),
                    created_at: row.get(5),
                };
                Ok((cert, row.get(6), row.get(7)))
            })
            .collect()
    }
}
