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
    AccessPolicy, AppName, Build, BuildCreate, Certificate, CrashReport, Drain, Event, PhaseState, PipelineName,
    ProcessType, Release, ReleasePhase, ReleaseState, StackName, Stage, TlsSettings, Username,
};
use sqlx::Row;
use sqlx::any::AnyRow;
use sqlx::{AnyPool, any::AnyPoolOptions};

mod acme;
mod apps;
mod builds;
mod canaries;
mod certs;
mod cron;
mod domains;
mod drains;
pub mod dump;
mod events;
mod formation;
mod pipelines;
mod releases;
mod sources;
mod stacks;
mod traffic;
mod users;
mod webhooks;

pub use acme::DueDomain;
pub use canaries::CanaryRow;
pub use cron::{CronJobRow, NewCronJob};
pub use pipelines::{PipelineRow, ReviewAppRow};
pub use sources::SourceRow;
pub use traffic::{KEEP_MINUTES, TrafficMinute};
pub use webhooks::{Attempt, DueDelivery};

/// Postgres migrations, applied in order once each.
const POSTGRES_MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/postgres/0001_init.sql"),
    include_str!("../../migrations/postgres/0002_drains.sql"),
    include_str!("../../migrations/postgres/0003_certs_tls.sql"),
    include_str!("../../migrations/postgres/0004_events.sql"),
    include_str!("../../migrations/postgres/0005_access.sql"),
    include_str!("../../migrations/postgres/0006_crashes.sql"),
    include_str!("../../migrations/postgres/0007_release_phase.sql"),
    include_str!("../../migrations/postgres/0008_pipelines.sql"),
    include_str!("../../migrations/postgres/0009_canaries.sql"),
    include_str!("../../migrations/postgres/0010_webhooks.sql"),
    include_str!("../../migrations/postgres/0011_cron.sql"),
    include_str!("../../migrations/postgres/0012_app_sources.sql"),
    include_str!("../../migrations/postgres/0013_acme.sql"),
    include_str!("../../migrations/postgres/0014_sessions.sql"),
    include_str!("../../migrations/postgres/0015_traffic.sql"),
    include_str!("../../migrations/postgres/0016_build_messages.sql"),
];

/// SQLite migrations, applied in order once each.
const SQLITE_MIGRATIONS: &[&str] = &[
    include_str!("../../migrations/sqlite/0001_init.sql"),
    include_str!("../../migrations/sqlite/0002_builds.sql"),
    include_str!("../../migrations/sqlite/0003_config_formation.sql"),
    include_str!("../../migrations/sqlite/0004_release_state.sql"),
    include_str!("../../migrations/sqlite/0005_perms_domains_maintenance.sql"),
    include_str!("../../migrations/sqlite/0006_limits_healthchecks.sql"),
    include_str!("../../migrations/sqlite/0007_drains.sql"),
    include_str!("../../migrations/sqlite/0008_certs_tls.sql"),
    include_str!("../../migrations/sqlite/0009_events.sql"),
    include_str!("../../migrations/sqlite/0010_access.sql"),
    include_str!("../../migrations/sqlite/0011_crashes.sql"),
    include_str!("../../migrations/sqlite/0012_release_phase.sql"),
    include_str!("../../migrations/sqlite/0013_pipelines.sql"),
    include_str!("../../migrations/sqlite/0014_canaries.sql"),
    include_str!("../../migrations/sqlite/0015_webhooks.sql"),
    include_str!("../../migrations/sqlite/0016_cron.sql"),
    include_str!("../../migrations/sqlite/0017_app_sources.sql"),
    include_str!("../../migrations/sqlite/0018_acme.sql"),
    include_str!("../../migrations/sqlite/0019_sessions.sql"),
    include_str!("../../migrations/sqlite/0020_traffic.sql"),
    include_str!("../../migrations/sqlite/0021_build_messages.sql"),
    include_str!("../../migrations/sqlite/0022_app_ids.sql"),
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

/// Unix milliseconds as RFC 3339.
fn ms_to_rfc3339(ms: i64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    rfc3339(at)
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

/// An app's releases at a glance ([`Db::release_overview`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReleaseOverview {
    /// The newest release: version, state, when it was made.
    pub newest: Option<(u32, ReleaseState, String)>,
    /// The release that serves (or would).
    pub current: Option<u32>,
    /// Whether a process of the current release keeps crashing.
    pub crashing: bool,
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
    /// Counts this process's changes of a release's state or release-phase output, for
    /// reads waiting on one ([`Db::release_changes`]).
    release_changes: std::sync::Arc<tokio::sync::watch::Sender<u64>>,
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

/// What a new release is made of.
#[derive(Debug, Clone, Copy)]
pub struct NewRelease<'a> {
    /// The image: `<app>@<digest>` in Skiff's registry, or a full reference elsewhere.
    pub image: &'a str,
    /// The build it came from, when it came from one.
    pub build: Option<i64>,
    pub git_sha: Option<&'a str>,
    pub procfile: &'a BTreeMap<ProcessType, String>,
    pub config: &'a BTreeMap<String, String>,
    pub created_by: &'a Username,
    /// What made it, in words.
    pub summary: &'a str,
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
        let release_changes = std::sync::Arc::new(tokio::sync::watch::Sender::new(0));
        let db = Self { pool, writer, postgres, release_changes };
        db.migrate().await?;
        Ok(db)
    }

    /// Whether the database answers.
    ///
    /// # Errors
    /// When it does not.
    pub async fn ping(&self) -> Result<(), DbError> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Every table with its columns, as the migrations left them (for comparing backends).
    ///
    /// # Errors
    /// When the catalogue cannot be read.
    pub async fn schema(&self) -> Result<BTreeMap<String, Vec<String>>, DbError> {
        let query = if self.postgres {
            "SELECT table_name::text, column_name::text FROM information_schema.columns
             WHERE table_schema = current_schema() ORDER BY table_name, column_name"
        } else {
            "SELECT m.name, p.name FROM sqlite_master m JOIN pragma_table_info(m.name) p
             WHERE m.type = 'table' AND m.name NOT LIKE 'sqlite_%' ORDER BY m.name, p.name"
        };
        let mut schema: BTreeMap<String, Vec<String>> = BTreeMap::new();
        for row in sqlx::query(query).fetch_all(&self.pool).await? {
            schema.entry(row.get(0)).or_default().push(row.get(1));
        }
        Ok(schema)
    }

    /// Runs one administrative statement (`CREATE DATABASE …`), outside any transaction.
    ///
    /// # Errors
    /// When the database refuses it.
    pub async fn execute_admin(&self, statement: &str) -> Result<(), DbError> {
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement.to_owned())).execute(&self.writer).await?;
        Ok(())
    }

    /// Applies the migrations the database lacks, all in one transaction (both backends
    /// change their schema transactionally): all of them or none.
    async fn migrate(&self) -> Result<(), DbError> {
        let mut tx = self.writer.begin().await?;
        if self.postgres {
            // Controllers that start at once on a fresh database take turns: the first
            // applies what is missing, the others then find it applied. (SQLite has one
            // writer at a time already.)
            sqlx::query("SELECT pg_advisory_xact_lock(7700)").execute(&mut *tx).await?;
        }
        sqlx::query("CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY)")
            .execute(&mut *tx)
            .await?;
        let applied: i64 = sqlx::query("SELECT COUNT(*) FROM schema_migrations").fetch_one(&mut *tx).await?.get(0);
        let migrations = if self.postgres { POSTGRES_MIGRATIONS } else { SQLITE_MIGRATIONS };
        for (index, migration) in migrations.iter().enumerate().skip(applied as usize) {
            sqlx::raw_sql(sqlx::AssertSqlSafe(*migration)).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
                .bind(index as i64 + 1)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Runs a write; says whether it changed any row.
    async fn changed(
        &self,
        query: sqlx::query::Query<'_, sqlx::Any, sqlx::any::AnyArguments>,
    ) -> Result<bool, DbError> {
        Ok(query.execute(&self.writer).await?.rows_affected() > 0)
    }
}
