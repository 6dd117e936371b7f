//! Automatic certificates: the platform's ACME account, which controller orders, which
//! apps want certificates, each domain's progress, and the challenge answers routers give.

use skiff_api::{AcmeChallenge, AutoCertificate, AutoCertificateState};

use super::certs::{SameName, insert_cert};
use super::*;

/// A custom domain of an app with automatic certificates, whose turn it is.
#[derive(Debug, Clone)]
pub struct DueDomain {
    pub app_id: i64,
    pub app: AppName,
    pub domain: String,
    /// An order under way at the ACME server, to go on with.
    pub order_url: Option<String>,
    /// Failed attempts since the last certificate.
    pub failures: u32,
    /// Whether it has a valid certificate (this is a renewal).
    pub renewal: bool,
}

impl Db {
    /// The platform's sealed account credentials at an ACME directory.
    pub async fn acme_account(&self, directory: &str) -> Result<Option<String>, DbError> {
        let row = sqlx::query("SELECT sealed_credentials FROM acme_accounts WHERE directory = $1")
            .bind(directory)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|row| row.get(0)))
    }

    /// Keeps (or replaces) the platform's sealed account credentials at a directory.
    pub async fn save_acme_account(&self, directory: &str, sealed: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO acme_accounts (directory, sealed_credentials, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (directory) DO UPDATE SET sealed_credentials = excluded.sealed_credentials",
        )
        .bind(directory)
        .bind(sealed)
        .bind(now())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Takes or renews the right to order certificates until `until_ms`: `true` when it is
    /// `holder`'s (free, expired at `now_ms`, or already its own).
    pub async fn take_acme_lease(&self, holder: &str, now_ms: i64, until_ms: i64) -> Result<bool, DbError> {
        self.changed(
            sqlx::query(
                "INSERT INTO acme_lease (id, holder, until_ms) VALUES (1, $1, $2)
                 ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, until_ms = excluded.until_ms
                 WHERE acme_lease.until_ms <= $3 OR acme_lease.holder = excluded.holder",
            )
            .bind(holder)
            .bind(until_ms)
            .bind(now_ms),
        )
        .await
    }

    /// Whether an app's custom domains get certificates by themselves.
    pub async fn acme_enabled(&self, app_id: i64) -> Result<bool, DbError> {
        let row =
            sqlx::query("SELECT 1 FROM acme_apps WHERE app_id = $1").bind(app_id).fetch_optional(&self.pool).await?;
        Ok(row.is_some())
    }

    /// Turns automatic certificates on for an app; `false` when they were on.
    pub async fn enable_acme(&self, app_id: i64) -> Result<bool, DbError> {
        self.changed(
            sqlx::query("INSERT INTO acme_apps (app_id, enabled_at) VALUES ($1, $2) ON CONFLICT DO NOTHING")
                .bind(app_id)
                .bind(now()),
        )
        .await
    }

    /// Turns automatic certificates off for an app and forgets its domains' progress (the
    /// certificates issued stay until removed); `false` when they were off.
    pub async fn disable_acme(&self, app_id: i64) -> Result<bool, DbError> {
        let mut tx = self.writer.begin().await?;
        for query in [
            "DELETE FROM acme_domains WHERE domain IN (SELECT domain FROM domains WHERE app_id = $1)",
            "DELETE FROM acme_challenges WHERE domain IN (SELECT domain FROM domains WHERE app_id = $1)",
        ] {
            sqlx::query(query).bind(app_id).execute(&mut *tx).await?;
        }
        let removed = sqlx::query("DELETE FROM acme_apps WHERE app_id = $1").bind(app_id).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(removed.rows_affected() > 0)
    }

    /// Each custom domain of an app with automatic certificates, and its progress (not
    /// wildcards: HTTP-01 cannot prove them).
    pub async fn auto_certificates(&self, app_id: i64) -> Result<Vec<AutoCertificate>, DbError> {
        let rows = sqlx::query(
            "SELECT d.domain, a.state, CASE WHEN a.order_url IS NULL THEN 0 ELSE 1 END, a.valid_until,
                    a.last_error, a.next_attempt_ms
             FROM domains d JOIN acme_apps e ON e.app_id = d.app_id
             LEFT JOIN acme_domains a ON a.domain = d.domain
             WHERE d.app_id = $1 AND d.domain NOT LIKE '*%' ORDER BY d.domain",
        )
        .bind(app_id)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let state: Option<String> = row.get(1);
                Ok(AutoCertificate {
                    domain: row.get(0),
                    state: state.map_or(Ok(AutoCertificateState::Pending), enum_parse)?,
                    ordering: row.get::<i64, _>(2) == 1,
                    valid_until: row.get(3),
                    last_error: row.get(4),
                    next_attempt_at: row.get::<Option<i64>, _>(5).map(ms_to_rfc3339),
                })
            })
            .collect()
    }

    /// The custom domains of apps with automatic certificates whose turn it is at `now_ms`:
    /// never tried, or due for a retry or a renewal.
    pub async fn due_acme_domains(&self, now_ms: i64) -> Result<Vec<DueDomain>, DbError> {
        let rows = sqlx::query(
            "SELECT d.app_id, p.name, d.domain, a.order_url, COALESCE(a.failures, 0),
                    CASE WHEN a.valid_until IS NULL THEN 0 ELSE 1 END
             FROM domains d JOIN acme_apps e ON e.app_id = d.app_id JOIN apps p ON p.id = d.app_id
             LEFT JOIN acme_domains a ON a.domain = d.domain
             WHERE d.domain NOT LIKE '*%' AND (a.domain IS NULL OR a.next_attempt_ms <= $1)
             ORDER BY COALESCE(a.next_attempt_ms, 0), d.domain",
        )
        .bind(now_ms)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                Ok(DueDomain {
                    app_id: row.get(0),
                    app: parse(row.get(1))?,
                    domain: row.get(2),
                    order_url: row.get(3),
                    failures: u32::try_from(row.get::<i64, _>(4)).unwrap_or(u32::MAX),
                    renewal: row.get::<i64, _>(5) == 1,
                })
            })
            .collect()
    }

    /// Notes the order placed for a domain, to go on with after a restart.
    pub async fn record_acme_order(&self, domain: &str, order_url: &str, next_attempt_ms: i64) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO acme_domains (domain, state, order_url, next_attempt_ms, updated_at)
             VALUES ($1, 'pending', $2, $3, $4)
             ON CONFLICT (domain) DO UPDATE SET order_url = excluded.order_url,
               next_attempt_ms = excluded.next_attempt_ms, updated_at = excluded.updated_at",
        )
        .bind(domain)
        .bind(order_url)
        .bind(next_attempt_ms)
        .bind(now())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Notes a failed attempt: why, and when to try again; `keep_order` keeps the order
    /// under way (the ACME server may still finish it), else the next attempt orders anew.
    pub async fn record_acme_failure(
        &self,
        domain: &str,
        error: &str,
        next_attempt_ms: i64,
        keep_order: bool,
    ) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO acme_domains (domain, state, last_error, failures, next_attempt_ms, updated_at)
             VALUES ($1, $2, $3, 1, $4, $5)
             ON CONFLICT (domain) DO UPDATE SET state = excluded.state, last_error = excluded.last_error,
               failures = acme_domains.failures + 1, next_attempt_ms = excluded.next_attempt_ms,
               updated_at = excluded.updated_at,
               order_url = CASE WHEN $6 = 1 THEN acme_domains.order_url ELSE NULL END",
        )
        .bind(domain)
        .bind(enum_text(&AutoCertificateState::Failed))
        .bind(error)
        .bind(next_attempt_ms)
        .bind(now())
        .bind(i64::from(keep_order))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Keeps a domain's new certificate (replacing the one before) under `cert.name`,
    /// serves it for the domain, and notes when to renew it.
    pub async fn record_acme_certificate(
        &self,
        app_id: i64,
        domain: &str,
        cert: &Certificate,
        chain_pem: &str,
        key_pem: &str,
        renew_at_ms: i64,
    ) -> Result<(), DbError> {
        let mut tx = self.writer.begin().await?;
        let id: i64 =
            insert_cert(SameName::Replace, app_id, cert, chain_pem, key_pem)?.fetch_one(&mut *tx).await?.get(0);
        sqlx::query(
            "INSERT INTO cert_domains (domain, cert_id) VALUES ($1, $2)
             ON CONFLICT (domain) DO UPDATE SET cert_id = excluded.cert_id",
        )
        .bind(domain)
        .bind(id)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO acme_domains (domain, state, valid_until, next_attempt_ms, updated_at)
             VALUES ($1, 'valid', $2, $3, $4)
             ON CONFLICT (domain) DO UPDATE SET state = 'valid', valid_until = excluded.valid_until,
               next_attempt_ms = excluded.next_attempt_ms, updated_at = excluded.updated_at,
               order_url = NULL, last_error = NULL, failures = 0",
        )
        .bind(domain)
        .bind(&cert.expires_at)
        .bind(renew_at_ms)
        .bind(now())
        .execute(&mut *tx)
        .await?;
        sqlx::query("DELETE FROM acme_challenges WHERE domain = $1").bind(domain).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Has routers answer an HTTP-01 challenge for a domain.
    pub async fn add_acme_challenge(&self, challenge: &AcmeChallenge) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO acme_challenges (token, domain, key_authorization, kind) VALUES ($1, $2, $3, $4)
             ON CONFLICT (token) DO NOTHING",
        )
        .bind(&challenge.token)
        .bind(&challenge.domain)
        .bind(&challenge.key_authorization)
        .bind(enum_text(&challenge.kind))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Stops answering a domain's challenges.
    pub async fn remove_acme_challenges(&self, domain: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM acme_challenges WHERE domain = $1").bind(domain).execute(&self.writer).await?;
        Ok(())
    }

    /// Every challenge routers answer now.
    pub async fn acme_challenges(&self) -> Result<Vec<AcmeChallenge>, DbError> {
        let rows =
            sqlx::query("SELECT domain, token, key_authorization, kind FROM acme_challenges ORDER BY domain, token")
                .fetch_all(&self.pool)
                .await?;
        rows.into_iter()
            .map(|row| {
                Ok(AcmeChallenge {
                    domain: row.get(0),
                    token: row.get(1),
                    key_authorization: row.get(2),
                    kind: enum_parse(row.get(3))?,
                })
            })
            .collect()
    }
}
