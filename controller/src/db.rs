//! The database: connection, migrations, and every query the controller makes.
//!
//! One code path for both backends (sqlx's `Any` driver): SQLite by default, Postgres when
//! the database URL says so. Queries use `$N` placeholders in order, which both accept;
//! each backend has its own migrations (`migrations/sqlite`, `migrations/postgres`).
//! Booleans are read as `CASE WHEN … THEN 1 ELSE 0 END`: the `Any` driver cannot decode
//! SQLite's BOOLEAN columns.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;
use serde::de::DeserializeOwned;
use skiff_api::{
    AccessPolicy, AppName, Build, BuildCreate, Certificate, CrashReport, Drain, Event, ProcessType, Release,
    ReleaseState, StackName, TlsSettings, Username,
};
use sqlx::Row;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, any::AnyPoolOptions};

/// Postgres migrations, applied in order once each.
const POSTGRES_MIGRATIONS: &[&str] = &[
    include_str!("../migrations/postgres/0001_init.sql"),
    include_str!("../migrations/postgres/0002_drains.sql"),
    include_str!("../migrations/postgres/0003_certs_tls.sql"),
    include_str!("../migrations/postgres/0004_events.sql"),
    include_str!("../migrations/postgres/0005_access.sql"),
    include_str!("../migrations/postgres/0006_crashes.sql"),
];

/// SQLite migrations, applied in order once each.
const SQLITE_MIGRATIONS: &[&str] = &[
    include_str!("../migrations/sqlite/0001_init.sql"),
    include_str!("../migrations/sqlite/0002_builds.sql"),
    include_str!("../migrations/sqlite/0003_config_formation.sql"),
    include_str!("../migrations/sqlite/0004_release_state.sql"),
    include_str!("../migrations/sqlite/0005_perms_domains_maintenance.sql"),
    include_str!("../migrations/sqlite/0006_limits_healthchecks.sql"),
    include_str!("../migrations/sqlite/0007_drains.sql"),
    include_str!("../migrations/sqlite/0008_certs_tls.sql"),
    include_str!("../migrations/sqlite/0009_events.sql"),
    include_str!("../migrations/sqlite/0010_access.sql"),
    include_str!("../migrations/sqlite/0011_crashes.sql"),
];

/// A database failure.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    #[error("database query failed: {0}")]
    Query(#[from] sqlx::Error),
    #[error("database holds an invalid value: {0}")]
    Corrupt(String),
}

/// The current time as RFC 3339.
pub fn now() -> String {
    rfc3339(time::OffsetDateTime::now_utc())
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// A user row.
#[derive(Debug, Clone)]
pub struct UserRow {
    pub id: i64,
    pub username: Username,
    pub password_hash: String,
    pub admin: bool,
}

/// A key row.
#[derive(Debug, Clone)]
pub struct KeyRow {
    pub id: i64,
    pub fingerprint: String,
    pub comment: String,
    pub created_at: String,
}

/// An app row.
#[derive(Debug, Clone)]
pub struct AppRow {
    pub id: i64,
    pub name: AppName,
    pub owner_id: i64,
    pub owner: Username,
    pub stack: StackName,
    pub created_at: String,
    pub maintenance: bool,
    pub tls: TlsSettings,
    pub access: AccessPolicy,
}

/// The database handle.
#[derive(Debug, Clone)]
pub struct Db {
    /// Reads.
    pool: AnyPool,
    /// Writes: with SQLite, one connection, so that writers queue in order instead of
    /// retrying against the file's lock with growing sleeps; with Postgres, the same pool.
    writer: AnyPool,
    postgres: bool,
}

fn parse<T: FromStr>(value: String) -> Result<T, DbError> {
    value.parse().map_err(|_| DbError::Corrupt(value))
}

/// A unit enum as the text it serializes to (`"dockerfile"`).
fn enum_text(value: &impl Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        other => format!("{other:?}"),
    }
}

fn enum_parse<T: DeserializeOwned>(text: String) -> Result<T, DbError> {
    serde_json::from_value(serde_json::Value::String(text.clone())).map_err(|_| DbError::Corrupt(text))
}

fn procfile_json(procfile: &BTreeMap<ProcessType, String>) -> Result<String, DbError> {
    serde_json::to_string(procfile).map_err(|e| DbError::Corrupt(e.to_string()))
}

fn procfile_parse(text: &str) -> Result<BTreeMap<ProcessType, String>, DbError> {
    serde_json::from_str(text).map_err(|e| DbError::Corrupt(e.to_string()))
}

fn config_json(config: &BTreeMap<String, String>) -> Result<String, DbError> {
    serde_json::to_string(config).map_err(|e| DbError::Corrupt(e.to_string()))
}

fn config_parse(text: &str) -> Result<BTreeMap<String, String>, DbError> {
    serde_json::from_str(text).map_err(|e| DbError::Corrupt(e.to_string()))
}

/// Per-process settings kept with an app.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SettingsKind {
    Limits,
    Healthchecks,
}

/// One process type's scale, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormationRow {
    pub process: ProcessType,
    pub quantity: u32,
    /// Bumped by a restart: containers of an older generation are replaced.
    pub generation: u32,
}

impl Db {
    /// Opens (creating if needed) a SQLite database file and applies migrations.
    ///
    /// # Errors
    /// When the file cannot be opened or a migration fails.
    pub async fn open_sqlite(path: &Path) -> Result<Self, DbError> {
        Self::open(&format!("sqlite://{}?mode=rwc", path.display())).await
    }

    /// Opens a database by URL (`sqlite://PATH?mode=rwc` or `postgres://…`) and applies
    /// migrations.
    ///
    /// # Errors
    /// When the database cannot be reached or a migration fails.
    pub async fn open(url: &str) -> Result<Self, DbError> {
        sqlx::any::install_default_drivers();
        let postgres = url.starts_with("postgres:") || url.starts_with("postgresql:");
        let mut options = AnyPoolOptions::new();
        if !postgres {
            // With the write-ahead log, a commit is written but not synced at once: it
            // survives skiffd being killed, and a power cut can lose only the last moments'
            // commits, never corrupt the file. Syncing every commit made concurrent
            // releases queue for the disk (the SQLite default, FULL).
            options = options.after_connect(|connection, _| {
                Box::pin(async move {
                    sqlx::query("PRAGMA synchronous = NORMAL").execute(connection).await?;
                    Ok(())
                })
            });
        }
        let pool = options.clone().max_connections(if postgres { 8 } else { 4 }).connect(url).await?;
        let writer = if postgres {
            pool.clone()
        } else {
            // Readers do not block the writer; the setting stays with the file.
            sqlx::query("PRAGMA journal_mode = WAL").execute(&pool).await?;
            options.max_connections(1).connect(url).await?
        };
        let db = Self { pool, writer, postgres };
        db.migrate().await?;
        Ok(db)
    }

    /// Runs one administrative statement (`CREATE DATABASE …`), outside any transaction.
    ///
    /// # Errors
    /// When the database refuses it.
    pub async fn execute_admin(&self, statement: &str) -> Result<(), DbError> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned())).execute(&self.writer).await?;
        Ok(())
    }

    async fn migrate(&self) -> Result<(), DbError> {
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
            .execute(&self.writer)
            .await?;
        let applied: i64 = sqlx::query("SELECT COUNT(*) FROM schema_migrations").fetch_one(&self.pool).await?.get(0);
        let migrations = if self.postgres { POSTGRES_MIGRATIONS } else { SQLITE_MIGRATIONS };
        for (index, migration) in migrations.iter().enumerate().skip(applied as usize) {
            let mut tx = self.writer.begin().await?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(*migration)).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
                .bind(index as i64 + 1)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        }
        Ok(())
    }

    /// Runs a write; says whether it changed any row.
    async fn changed(
        &self,
        query: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<bool, DbError> {
        Ok(query.execute(&self.writer).await?.rows_affected() > 0)
    }

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

    /// A user by name.
    pub async fn user_by_name(&self, username: &Username) -> Result<Option<UserRow>, DbError> {
        sqlx::query("SELECT id, username, password_hash, CASE WHEN admin THEN 1 ELSE 0 END AS admin FROM users WHERE username = $1")
            .bind(username.as_str())
            .fetch_optional(&self.pool)
            .await?
            .map(Self::user_row)
            .transpose()
    }

    /// Stores a token hash for a user.
    pub async fn add_token(&self, user_id: i64, token_hash: &str) -> Result<(), DbError> {
        sqlx::query("INSERT INTO tokens (hash, user_id, created_at) VALUES ($1, $2, $3)")
            .bind(token_hash)
            .bind(user_id)
            .bind(now())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// Revokes a token; `false` when there was none.
    pub async fn remove_token(&self, token_hash: &str) -> Result<bool, DbError> {
        self.changed(sqlx::query("DELETE FROM tokens WHERE hash = $1").bind(token_hash)).await
    }

    /// The user a token hash belongs to.
    pub async fn user_by_token(&self, token_hash: &str) -> Result<Option<UserRow>, DbError> {
        sqlx::query(
            "SELECT u.id, u.username, u.password_hash, CASE WHEN u.admin THEN 1 ELSE 0 END AS admin FROM users u
             JOIN tokens t ON t.user_id = u.id WHERE t.hash = $1",
        )
        .bind(token_hash)
        .fetch_optional(&self.pool)
        .await?
        .map(Self::user_row)
        .transpose()
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
        sqlx::query(
            "SELECT u.id, u.username, u.password_hash, CASE WHEN u.admin THEN 1 ELSE 0 END AS admin FROM users u
             JOIN ssh_keys k ON k.user_id = u.id WHERE k.fingerprint = $1",
        )
        .bind(fingerprint)
        .fetch_optional(&self.pool)
        .await?
        .map(Self::user_row)
        .transpose()
    }

    /// Creates an app; `None` when the name is taken.
    pub async fn create_app(
        &self,
        name: &AppName,
        owner: &UserRow,
        stack: &StackName,
    ) -> Result<Option<AppRow>, DbError> {
        let created_at = now();
        let row = sqlx::query(
            "INSERT INTO apps (name, owner_id, stack, created_at) VALUES ($1, $2, $3, $4)
             ON CONFLICT (name) DO NOTHING RETURNING id",
        )
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

    /// Creates the next release of an app.
    #[allow(clippy::too_many_arguments)]
    pub async fn create_release(
        &self,
        app: &AppRow,
        image: &str,
        build: Option<i64>,
        git_sha: Option<&str>,
        procfile: &BTreeMap<ProcessType, String>,
        config: &BTreeMap<String, String>,
        created_by: &Username,
        summary: &str,
    ) -> Result<Release, DbError> {
        let mut tx = self.writer.begin().await?;
        Self::lock_app(&mut tx, app.id).await?;
        let release =
            Self::insert_release(&mut tx, app, image, build, git_sha, procfile, config, created_by, summary).await?;
        tx.commit().await?;
        Ok(release)
    }

    /// Changes an app's config with `edit` (the result must pass `check`) and, with `base`
    /// (the release to build on), makes the next release: `base`'s build with the new
    /// config. One transaction that first takes the app's write lock, so that concurrent
    /// changes each build on the one before and get consecutive versions.
    pub async fn change_config(
        &self,
        app: &AppRow,
        edit: impl FnOnce(&mut BTreeMap<String, String>),
        check: impl FnOnce(&BTreeMap<String, String>) -> Result<(), String>,
        base: Option<&Release>,
        created_by: &Username,
        summary: &str,
    ) -> Result<Result<(BTreeMap<String, String>, Option<Release>), String>, DbError> {
        let mut tx = self.writer.begin().await?;
        Self::lock_app(&mut tx, app.id).await?;
        let text: String =
            sqlx::query("SELECT config FROM apps WHERE id = $1").bind(app.id).fetch_one(&mut *tx).await?.get(0);
        let mut config = config_parse(&text)?;
        edit(&mut config);
        if let Err(problem) = check(&config) {
            return Ok(Err(problem));
        }
        sqlx::query("UPDATE apps SET config = $1 WHERE id = $2")
            .bind(config_json(&config)?)
            .bind(app.id)
            .execute(&mut *tx)
            .await?;
        let release = match base {
            Some(base) => Some(
                Self::insert_release(
                    &mut tx,
                    app,
                    &base.image,
                    base.build,
                    base.git_sha.as_deref(),
                    &base.procfile,
                    &config,
                    created_by,
                    summary,
                )
                .await?,
            ),
            None => None,
        };
        tx.commit().await?;
        Ok(Ok((config, release)))
    }

    /// Takes an app's write lock for the rest of the transaction: a write first (a row
    /// lock on Postgres, the database's write lock on SQLite), so that what the
    /// transaction reads next no other writer changes before it commits.
    async fn lock_app(tx: &mut sqlx::Transaction<'_, sqlx::Any>, app_id: i64) -> Result<(), DbError> {
        sqlx::query("UPDATE apps SET id = id WHERE id = $1").bind(app_id).execute(&mut **tx).await?;
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn insert_release(
        tx: &mut sqlx::Transaction<'_, sqlx::Any>,
        app: &AppRow,
        image: &str,
        build: Option<i64>,
        git_sha: Option<&str>,
        procfile: &BTreeMap<ProcessType, String>,
        config: &BTreeMap<String, String>,
        created_by: &Username,
        summary: &str,
    ) -> Result<Release, DbError> {
        let procfile_json = procfile_json(procfile)?;
        let created_at = now();
        let version: i64 = sqlx::query("SELECT COALESCE(MAX(version), 0) + 1 FROM releases WHERE app_id = $1")
            .bind(app.id)
            .fetch_one(&mut **tx)
            .await?
            .get(0);
        sqlx::query(
            "INSERT INTO releases (app_id, version, image, build_id, git_sha, procfile, config, created_by, summary, created_at, state)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 'pending')",
        )
        .bind(app.id)
        .bind(version)
        .bind(image)
        .bind(build)
        .bind(git_sha)
        .bind(&procfile_json)
        .bind(config_json(config)?)
        .bind(created_by.as_str())
        .bind(summary)
        .bind(&created_at)
        .execute(&mut **tx)
        .await?;
        Ok(Release {
            app: app.name.clone(),
            version: version as u32,
            image: image.to_owned(),
            build,
            git_sha: git_sha.map(str::to_owned),
            procfile: procfile.clone(),
            config: config.clone(),
            state: ReleaseState::Pending,
            failure: None,
            created_by: created_by.clone(),
            created_at,
            summary: summary.to_owned(),
        })
    }

    fn release_row(app: &AppName, row: AnyRow) -> Result<Release, DbError> {
        let procfile: String = row.get("procfile");
        Ok(Release {
            app: app.clone(),
            version: row.get::<i64, _>("version") as u32,
            image: row.get("image"),
            build: row.get("build_id"),
            git_sha: row.get("git_sha"),
            procfile: procfile_parse(&procfile)?,
            config: config_parse(&row.get::<String, _>("config"))?,
            state: enum_parse(row.get("state"))?,
            failure: row.get("failure"),
            created_by: parse(row.get("created_by"))?,
            created_at: row.get("created_at"),
            summary: row.get("summary"),
        })
    }

    /// An app's releases, newest first.
    pub async fn releases(&self, app: &AppRow, limit: Option<u32>) -> Result<Vec<Release>, DbError> {
        sqlx::query("SELECT * FROM releases WHERE app_id = $1 ORDER BY version DESC LIMIT $2")
            .bind(app.id)
            .bind(limit.map_or(i64::MAX, i64::from))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|row| Self::release_row(&app.name, row))
            .collect()
    }

    /// Records a finished build.
    pub async fn create_build(&self, app: &AppRow, build: &BuildCreate) -> Result<Build, DbError> {
        let created_at = now();
        let row = sqlx::query(
            "INSERT INTO builds (app_id, kind, status, image, git_sha, procfile, created_by, created_at, duration_ms, log)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
        )
        .bind(app.id)
        .bind(enum_text(&build.kind))
        .bind(enum_text(&build.status))
        .bind(&build.image)
        .bind(&build.git_sha)
        .bind(procfile_json(&build.procfile)?)
        .bind(build.username.as_str())
        .bind(&created_at)
        .bind(build.duration_ms as i64)
        .bind(&build.log)
        .fetch_one(&self.pool)
        .await?;
        Ok(Build {
            id: row.get(0),
            app: app.name.clone(),
            kind: build.kind,
            status: build.status,
            image: build.image.clone(),
            git_sha: build.git_sha.clone(),
            procfile: build.procfile.clone(),
            created_by: build.username.clone(),
            created_at,
            duration_ms: build.duration_ms,
            log: None,
        })
    }

    fn build_row(app: &AppName, row: AnyRow, with_log: bool) -> Result<Build, DbError> {
        let procfile: String = row.get("procfile");
        Ok(Build {
            id: row.get("id"),
            app: app.clone(),
            kind: enum_parse(row.get("kind"))?,
            status: enum_parse(row.get("status"))?,
            image: row.get("image"),
            git_sha: row.get("git_sha"),
            procfile: procfile_parse(&procfile)?,
            created_by: parse(row.get("created_by"))?,
            created_at: row.get("created_at"),
            duration_ms: row.get::<i64, _>("duration_ms") as u64,
            log: with_log.then(|| row.get("log")),
        })
    }

    /// An app's builds, newest first, without their logs.
    pub async fn builds(&self, app: &AppRow) -> Result<Vec<Build>, DbError> {
        sqlx::query(
            "SELECT id, kind, status, image, git_sha, procfile, created_by, created_at, duration_ms
             FROM builds WHERE app_id = $1 ORDER BY id DESC",
        )
        .bind(app.id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(|row| Self::build_row(&app.name, row, false))
        .collect()
    }

    /// One build of an app, with its log.
    pub async fn build(&self, app: &AppRow, id: i64) -> Result<Option<Build>, DbError> {
        sqlx::query("SELECT * FROM builds WHERE app_id = $1 AND id = $2")
            .bind(app.id)
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(|row| Self::build_row(&app.name, row, true))
            .transpose()
    }

    /// Moves a pending release to `state`, with the reason when it failed; `false` when
    /// the release was not pending. A release that is deployed supersedes the app's older
    /// pending ones (they never ran).
    pub async fn settle_release(
        &self,
        app: &AppName,
        version: u32,
        state: ReleaseState,
        failure: Option<&str>,
    ) -> Result<bool, DbError> {
        let mut tx = self.writer.begin().await?;
        let settled = sqlx::query(
            "UPDATE releases SET state = $1, failure = $2
             WHERE state = 'pending' AND version = $3 AND app_id = (SELECT id FROM apps WHERE name = $4)",
        )
        .bind(enum_text(&state))
        .bind(failure)
        .bind(i64::from(version))
        .bind(app.as_str())
        .execute(&mut *tx)
        .await?
        .rows_affected()
            > 0;
        if settled && state == ReleaseState::Deployed {
            // Older releases still waiting to start never will.
            sqlx::query(
                "UPDATE releases SET state = 'superseded'
                 WHERE state = 'pending' AND version < $1 AND app_id = (SELECT id FROM apps WHERE name = $2)",
            )
            .bind(i64::from(version))
            .bind(app.as_str())
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(settled)
    }

    /// One release of an app.
    pub async fn release(&self, app: &AppRow, version: u32) -> Result<Option<Release>, DbError> {
        let query = sqlx::query("SELECT * FROM releases WHERE app_id = $1 AND version = $2");
        self.release_of(app, query.bind(app.id).bind(i64::from(version))).await
    }

    /// The release an app runs (or is rolling out): its newest that did not fail.
    pub async fn running_release(&self, app: &AppRow) -> Result<Option<Release>, DbError> {
        let query =
            sqlx::query("SELECT * FROM releases WHERE app_id = $1 AND state <> 'failed' ORDER BY version DESC LIMIT 1");
        self.release_of(app, query.bind(app.id)).await
    }

    async fn release_of(
        &self,
        app: &AppRow,
        query: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<Option<Release>, DbError> {
        query.fetch_optional(&self.pool).await?.map(|row| Self::release_row(&app.name, row)).transpose()
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

    /// Stores a certificate (already checked); `false` when the app has one by that name.
    pub async fn add_cert(
        &self,
        app_id: i64,
        cert: &Certificate,
        chain_pem: &str,
        key_pem: &str,
    ) -> Result<bool, DbError> {
        let names = serde_json::to_string(&cert.names).map_err(|e| DbError::Corrupt(e.to_string()))?;
        self.changed(
            sqlx::query(
                "INSERT INTO certs (app_id, name, chain_pem, key_pem, common_name, names, expires_at, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT (app_id, name) DO NOTHING",
            )
            .bind(app_id)
            .bind(&cert.name)
            .bind(chain_pem)
            .bind(key_pem)
            .bind(&cert.common_name)
            .bind(names)
            .bind(&cert.expires_at)
            .bind(&cert.created_at),
        )
        .await
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

    /// An app's per-process settings of one kind.
    pub async fn settings<T: DeserializeOwned>(
        &self,
        app_id: i64,
        kind: SettingsKind,
    ) -> Result<BTreeMap<ProcessType, T>, DbError> {
        let sql = match kind {
            SettingsKind::Limits => "SELECT limits FROM apps WHERE id = $1",
            SettingsKind::Healthchecks => "SELECT healthchecks FROM apps WHERE id = $1",
        };
        let text: String = sqlx::query(sql).bind(app_id).fetch_one(&self.pool).await?.get(0);
        serde_json::from_str(&text).map_err(|e| DbError::Corrupt(e.to_string()))
    }

    /// Every app's per-process settings of one kind, by app id (one query, for the
    /// scheduler).
    pub async fn all_settings<T: DeserializeOwned>(
        &self,
        kind: SettingsKind,
    ) -> Result<HashMap<i64, BTreeMap<ProcessType, T>>, DbError> {
        let sql = match kind {
            SettingsKind::Limits => "SELECT id, limits FROM apps",
            SettingsKind::Healthchecks => "SELECT id, healthchecks FROM apps",
        };
        let rows = sqlx::query(sql).fetch_all(&self.pool).await?;
        rows.into_iter()
            .map(|row| {
                let text: String = row.get(1);
                let settings = serde_json::from_str(&text).map_err(|e| DbError::Corrupt(e.to_string()))?;
                Ok((row.get(0), settings))
            })
            .collect()
    }

    /// Replaces an app's per-process settings of one kind.
    pub async fn set_settings<T: Serialize>(
        &self,
        app_id: i64,
        kind: SettingsKind,
        settings: &BTreeMap<ProcessType, T>,
    ) -> Result<(), DbError> {
        let sql = match kind {
            SettingsKind::Limits => "UPDATE apps SET limits = $1 WHERE id = $2",
            SettingsKind::Healthchecks => "UPDATE apps SET healthchecks = $1 WHERE id = $2",
        };
        let text = serde_json::to_string(settings).map_err(|e| DbError::Corrupt(e.to_string()))?;
        sqlx::query(sql).bind(text).bind(app_id).execute(&self.writer).await?;
        Ok(())
    }

    /// An app's current config.
    pub async fn config(&self, app: &AppRow) -> Result<BTreeMap<String, String>, DbError> {
        let text: String =
            sqlx::query("SELECT config FROM apps WHERE id = $1").bind(app.id).fetch_one(&self.pool).await?.get(0);
        config_parse(&text)
    }

    /// The stored formation of an app (process types never scaled have no row).
    pub async fn formation(&self, app_id: i64) -> Result<Vec<FormationRow>, DbError> {
        sqlx::query("SELECT process, quantity, generation FROM formation WHERE app_id = $1 ORDER BY process")
            .bind(app_id)
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|row| Self::formation_row(&row))
            .collect()
    }

    /// Every app's formation, by app id (one query, for the scheduler).
    pub async fn formations(&self) -> Result<HashMap<i64, Vec<FormationRow>>, DbError> {
        let rows = sqlx::query("SELECT process, quantity, generation, app_id FROM formation ORDER BY app_id, process")
            .fetch_all(&self.pool)
            .await?;
        let mut by_app: HashMap<i64, Vec<FormationRow>> = HashMap::new();
        for row in rows {
            by_app.entry(row.get(3)).or_default().push(Self::formation_row(&row)?);
        }
        Ok(by_app)
    }

    fn formation_row(row: &AnyRow) -> Result<FormationRow, DbError> {
        Ok(FormationRow {
            process: parse(row.get(0))?,
            quantity: row.get::<i64, _>(1) as u32,
            generation: row.get::<i64, _>(2) as u32,
        })
    }

    /// Sets how many containers of a process type run.
    pub async fn scale(&self, app: &AppRow, process: &ProcessType, quantity: u32) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO formation (app_id, process, quantity) VALUES ($1, $2, $3)
             ON CONFLICT (app_id, process) DO UPDATE SET quantity = excluded.quantity",
        )
        .bind(app.id)
        .bind(process.as_str())
        .bind(i64::from(quantity))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Bumps the generation of `processes` (with `default_quantity` for types never
    /// scaled), so their containers are replaced.
    pub async fn restart(&self, app: &AppRow, processes: &[(ProcessType, u32)]) -> Result<(), DbError> {
        let mut tx = self.writer.begin().await?;
        for (process, default_quantity) in processes {
            sqlx::query(
                "INSERT INTO formation (app_id, process, quantity, generation) VALUES ($1, $2, $3, 1)
                 ON CONFLICT (app_id, process) DO UPDATE SET generation = formation.generation + 1",
            )
            .bind(app.id)
            .bind(process.as_str())
            .bind(i64::from(*default_quantity))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Records the latest crash of an app's process type, of `release`: why, how many in a
    /// row, and that it starts again `restart_in` from now.
    pub async fn record_crash(
        &self,
        app: &AppName,
        process: &str,
        release: u32,
        reason: &str,
        in_a_row: u32,
        restart_in: std::time::Duration,
    ) -> Result<(), DbError> {
        let crashed_at = time::OffsetDateTime::now_utc();
        sqlx::query(
            "INSERT INTO crashes (app_id, process, release_version, reason, in_a_row, crashed_at, restart_at)
             SELECT id, $2, $3, $4, $5, $6, $7 FROM apps WHERE name = $1
             ON CONFLICT (app_id, process) DO UPDATE SET release_version = excluded.release_version,
               reason = excluded.reason, in_a_row = excluded.in_a_row, crashed_at = excluded.crashed_at,
               restart_at = excluded.restart_at",
        )
        .bind(app.as_str())
        .bind(process)
        .bind(i64::from(release))
        .bind(reason)
        .bind(i64::from(in_a_row))
        .bind(rfc3339(crashed_at))
        .bind(rfc3339(crashed_at + restart_in))
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Forgets the crashes of an app's process type (one of its containers is up).
    pub async fn clear_crash(&self, app: &AppName, process: &str) -> Result<(), DbError> {
        sqlx::query("DELETE FROM crashes WHERE process = $1 AND app_id = (SELECT id FROM apps WHERE name = $2)")
            .bind(process)
            .bind(app.as_str())
            .execute(&self.writer)
            .await?;
        Ok(())
    }

    /// The latest crash of each of an app's process types that back off: the type, the
    /// release whose container crashed, and the crash.
    pub async fn crashes(&self, app: &AppRow) -> Result<Vec<(String, u32, CrashReport)>, DbError> {
        let rows = sqlx::query(
            "SELECT process, release_version, reason, in_a_row, crashed_at, restart_at FROM crashes WHERE app_id = $1
             ORDER BY process",
        )
        .bind(app.id)
        .fetch_all(&self.pool)
        .await?;
        let number =
            |row: &AnyRow, at: usize| u32::try_from(row.get::<i64, _>(at)).map_err(|e| DbError::Corrupt(e.to_string()));
        rows.into_iter()
            .map(|row| {
                let crash = CrashReport {
                    reason: row.get(2),
                    in_a_row: number(&row, 3)?,
                    crashed_at: row.get(4),
                    restart_at: row.get(5),
                };
                Ok((row.get(0), number(&row, 1)?, crash))
            })
            .collect()
    }

    /// Every app's id with the release it should run: its newest that did not fail.
    pub async fn current_releases_by_app(&self) -> Result<Vec<(i64, Release)>, DbError> {
        let rows = sqlx::query(
            "SELECT a.id AS app_id, a.name AS app_name, r.* FROM releases r JOIN apps a ON a.id = r.app_id
             WHERE r.version = (SELECT MAX(version) FROM releases WHERE app_id = r.app_id AND state <> 'failed')
             ORDER BY a.name",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|row| {
                let app: AppName = parse(row.get("app_name"))?;
                let id: i64 = row.get("app_id");
                Ok((id, Self::release_row(&app, row)?))
            })
            .collect()
    }

    /// Records (or replaces) a stack's image.
    pub async fn put_stack(&self, name: &StackName, image: &str) -> Result<(), DbError> {
        sqlx::query(
            "INSERT INTO stacks (name, image, created_at) VALUES ($1, $2, $3)
             ON CONFLICT (name) DO UPDATE SET image = excluded.image, created_at = excluded.created_at",
        )
        .bind(name.as_str())
        .bind(image)
        .bind(now())
        .execute(&self.writer)
        .await?;
        Ok(())
    }

    /// Every stack: name and image.
    pub async fn stacks(&self) -> Result<Vec<(StackName, String)>, DbError> {
        sqlx::query("SELECT name, image FROM stacks ORDER BY name")
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(|row| Ok((parse(row.get(0))?, row.get(1))))
            .collect()
    }
}
