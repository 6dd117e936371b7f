//! Whole-database copies for backups: a snapshot taken while the platform runs, and its
//! load into an empty database.
//!
//! SQLite: an online backup (`VACUUM INTO`), a consistent copy of the file as of one
//! moment, which any later Skiff opens and migrates. Postgres: a logical dump, every row of
//! every table as JSON (`row_to_json`), read in one repeatable-read transaction so that it
//! too is one moment's state; loading it makes the schema of the dump's version, inserts the
//! rows in the order of the tables' foreign keys and moves identity counters past them, all
//! in one transaction, so that a load that fails leaves the database empty.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{Db, DbError, POSTGRES_MIGRATIONS, SQLITE_MIGRATIONS};

/// Which database a dump came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    /// The backend a database URL names.
    pub fn of_url(url: &str) -> Self {
        match url.starts_with("postgres:") || url.starts_with("postgresql:") {
            true => Self::Postgres,
            false => Self::Sqlite,
        }
    }

    /// How many migrations this build of Skiff knows for the backend.
    pub fn known_migrations(self) -> i64 {
        let migrations = match self {
            Self::Sqlite => SQLITE_MIGRATIONS,
            Self::Postgres => POSTGRES_MIGRATIONS,
        };
        migrations.len() as i64
    }
}

/// A database's whole content at one moment.
#[derive(Debug, Clone)]
pub struct Dump {
    pub backend: Backend,
    /// How many migrations the database had: the schema the content fits.
    pub schema_version: i64,
    /// A SQLite database file, or the Postgres rows as JSON ([`Tables`]).
    pub bytes: Vec<u8>,
}

/// A Postgres dump's rows, table by table in an order that satisfies foreign keys.
#[derive(Debug, Serialize, Deserialize)]
struct Tables {
    tables: Vec<(String, Vec<serde_json::Value>)>,
}

/// Why a dump cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error(transparent)]
    Database(#[from] DbError),
    #[error("the database already holds data (table `{0}`); restore into an empty database")]
    NotEmpty(String),
    #[error("the dump is damaged: {0}")]
    Damaged(String),
    #[error(
        "the dump's schema is version {found}, newer than this Skiff knows ({known}); restore with that version of skiffd or a later one"
    )]
    TooNew { found: i64, known: i64 },
}

impl From<sqlx::Error> for LoadError {
    fn from(error: sqlx::Error) -> Self {
        Self::Database(DbError::Query(error))
    }
}

/// Quotes an identifier read from the database's own catalogue.
fn quoted(identifier: &str) -> String {
    format!("\"{}\"", identifier.replace('"', "\"\""))
}

impl Db {
    /// The database's content as of now, while it keeps serving. SQLite writes its copy
    /// under `scratch` (a directory) on the way.
    ///
    /// # Errors
    /// When the database cannot be read.
    pub async fn dump(&self, scratch: &Path) -> Result<Dump, DbError> {
        if self.postgres {
            return self.dump_postgres().await;
        }
        let copy = scratch.join(format!("skiff-{:016x}.db", rand::random::<u64>()));
        sqlx::query("VACUUM INTO $1").bind(copy.display().to_string()).execute(&self.pool).await?;
        let copied = async {
            let schema_version = check_sqlite(&copy).await.map_err(|e| DbError::Corrupt(e.to_string()))?;
            let bytes = tokio::fs::read(&copy)
                .await
                .map_err(|e| DbError::Corrupt(format!("cannot read the copy of the database: {e}")))?;
            Ok(Dump { backend: Backend::Sqlite, schema_version, bytes })
        }
        .await;
        let _ = tokio::fs::remove_file(&copy).await;
        copied
    }

    async fn dump_postgres(&self) -> Result<Dump, DbError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY").execute(&mut *tx).await?;
        let schema_version: i64 =
            sqlx::query("SELECT COUNT(*) FROM schema_migrations").fetch_one(&mut *tx).await?.get(0);
        let mut tables = Vec::new();
        for table in tables_in_load_order(&mut tx).await? {
            let query = format!("SELECT row_to_json(t)::text FROM {} t", quoted(&table));
            let mut rows = Vec::new();
            for row in sqlx::query(sqlx::AssertSqlSafe(query)).fetch_all(&mut *tx).await? {
                let text: String = row.get(0);
                rows.push(serde_json::from_str(&text).map_err(|e| DbError::Corrupt(e.to_string()))?);
            }
            tables.push((table, rows));
        }
        tx.commit().await?;
        let bytes = serde_json::to_vec(&Tables { tables }).map_err(|e| DbError::Corrupt(e.to_string()))?;
        Ok(Dump { backend: Backend::Postgres, schema_version, bytes })
    }

    /// Loads a Postgres dump into the empty database at `url`: the dump's schema, its rows,
    /// then the migrations this Skiff adds, in one transaction.
    ///
    /// # Errors
    /// When the database is not empty, the dump does not read or is newer than this Skiff,
    /// or the database refuses a row (nothing is kept then).
    pub async fn load_postgres(url: &str, dump: &Dump) -> Result<(), LoadError> {
        let known = Backend::Postgres.known_migrations();
        if dump.schema_version > known {
            return Err(LoadError::TooNew { found: dump.schema_version, known });
        }
        let Tables { tables } = serde_json::from_slice(&dump.bytes).map_err(|e| LoadError::Damaged(e.to_string()))?;
        sqlx::any::install_default_drivers();
        let pool = sqlx::any::AnyPoolOptions::new().max_connections(1).connect(url).await?;
        let mut tx = pool.begin().await?;
        let existing = sqlx::query(
            "SELECT table_name::text FROM information_schema.tables
             WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' LIMIT 1",
        )
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(row) = existing {
            return Err(LoadError::NotEmpty(row.get(0)));
        }
        sqlx::query("CREATE TABLE schema_migrations (version BIGINT PRIMARY KEY)").execute(&mut *tx).await?;
        for (index, migration) in POSTGRES_MIGRATIONS.iter().enumerate() {
            if index as i64 == dump.schema_version {
                load_rows(&mut tx, &tables).await?;
            }
            sqlx::raw_sql(sqlx::AssertSqlSafe(*migration)).execute(&mut *tx).await?;
            sqlx::query("INSERT INTO schema_migrations (version) VALUES ($1)")
                .bind(index as i64 + 1)
                .execute(&mut *tx)
                .await?;
        }
        if dump.schema_version == known {
            load_rows(&mut tx, &tables).await?;
        }
        tx.commit().await?;
        pool.close().await;
        Ok(())
    }
}

/// The current schema's tables, each after every table it refers to.
async fn tables_in_load_order(tx: &mut sqlx::Transaction<'_, sqlx::Any>) -> Result<Vec<String>, DbError> {
    let names: Vec<String> = sqlx::query(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
           AND table_name <> 'schema_migrations' ORDER BY table_name",
    )
    .fetch_all(&mut **tx)
    .await?
    .iter()
    .map(|row| row.get(0))
    .collect();
    let mut refers: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let edges = sqlx::query(
        "SELECT c.conrelid::regclass::text, c.confrelid::regclass::text FROM pg_constraint c
         WHERE c.contype = 'f' AND c.connamespace = current_schema()::regnamespace",
    )
    .fetch_all(&mut **tx)
    .await?;
    for edge in edges {
        let (from, to): (String, String) = (edge.get(0), edge.get(1));
        if from != to {
            refers.entry(from).or_default().insert(to);
        }
    }
    let mut ordered: Vec<String> = Vec::with_capacity(names.len());
    let mut pending = names;
    while !pending.is_empty() {
        let before = pending.len();
        pending.retain(|table| {
            let ready = refers.get(table).is_none_or(|targets| targets.iter().all(|t| ordered.contains(t)));
            if ready {
                ordered.push(table.clone());
            }
            !ready
        });
        if pending.len() == before {
            return Err(DbError::Corrupt(format!("foreign keys form a cycle among {pending:?}")));
        }
    }
    Ok(ordered)
}

/// Inserts a dump's rows, then moves every identity counter past the largest id loaded.
async fn load_rows(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    tables: &[(String, Vec<serde_json::Value>)],
) -> Result<(), LoadError> {
    for (table, rows) in tables {
        let insert = format!("INSERT INTO {0} SELECT * FROM json_populate_record(NULL::{0}, $1::json)", quoted(table));
        for row in rows {
            sqlx::query(sqlx::AssertSqlSafe(insert.clone())).bind(row.to_string()).execute(&mut **tx).await?;
        }
    }
    let counters = sqlx::query(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND (is_identity = 'YES' OR column_default LIKE 'nextval(%')",
    )
    .fetch_all(&mut **tx)
    .await?;
    for counter in counters {
        let (table, column): (String, String) = (counter.get(0), counter.get(1));
        let query = format!(
            "SELECT setval(pg_get_serial_sequence($1, $2), COALESCE((SELECT MAX({}) FROM {}), 0) + 1, false)",
            quoted(&column),
            quoted(&table)
        );
        sqlx::query(sqlx::AssertSqlSafe(query)).bind(quoted(&table)).bind(column).execute(&mut **tx).await?;
    }
    Ok(())
}

/// Checks a restored SQLite database file: whole, and of a schema this Skiff can migrate.
///
/// # Errors
/// When the file is not a sound SQLite database of Skiff's, or is newer than this Skiff.
pub async fn check_sqlite(path: &Path) -> Result<i64, LoadError> {
    sqlx::any::install_default_drivers();
    let url = format!("sqlite://{}?mode=ro", path.display());
    let pool = sqlx::any::AnyPoolOptions::new()
        .max_connections(1)
        .connect(&url)
        .await
        .map_err(|e| LoadError::Damaged(e.to_string()))?;
    let checked: Result<(String, i64), sqlx::Error> = async {
        let integrity: String = sqlx::query("PRAGMA integrity_check").fetch_one(&pool).await?.get(0);
        let version: i64 = sqlx::query("SELECT COUNT(*) FROM schema_migrations").fetch_one(&pool).await?.get(0);
        Ok((integrity, version))
    }
    .await;
    pool.close().await;
    let (integrity, version) = checked.map_err(|e| LoadError::Damaged(e.to_string()))?;
    if integrity != "ok" {
        return Err(LoadError::Damaged(format!("SQLite's integrity check says: {integrity}")));
    }
    let known = Backend::Sqlite.known_migrations();
    if version > known {
        return Err(LoadError::TooNew { found: version, known });
    }
    Ok(version)
}
