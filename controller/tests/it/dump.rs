//! Whole-database copies for backups: what is dumped loads back as the same rows, and
//! what cannot be loaded is refused without a trace.

use std::collections::BTreeMap;

use skiff_controller::db::Db;
use skiff_controller::db::dump::{Backend, Dump, LoadError, check_sqlite};

use crate::{concurrent_config_changes, exercise, postgres_named, sqlite};

/// A dump's rows per table, each table's rows sorted (a dump reads them in no set order).
fn rows(dump: &Dump) -> BTreeMap<String, Vec<String>> {
    let tables: serde_json::Value = serde_json::from_slice(&dump.bytes).unwrap();
    let mut rows = BTreeMap::new();
    for table in tables["tables"].as_array().unwrap() {
        let mut these: Vec<String> = table[1].as_array().unwrap().iter().map(ToString::to_string).collect();
        these.sort();
        rows.insert(table[0].as_str().unwrap().to_owned(), these);
    }
    rows
}

/// A new empty database on the test server, by URL.
async fn empty_database(admin: &Db) -> String {
    let url = std::env::var("SKIFF_TEST_POSTGRES_URL").unwrap();
    let name = format!("skiff_load_{:016x}", crate::rand_u64());
    admin.execute_admin(&format!("CREATE DATABASE {name}")).await.unwrap();
    let (base, _) = url.rsplit_once('/').unwrap();
    format!("{base}/{name}")
}

#[tokio::test]
#[ignore = "needs Postgres (deploy/test.sh starts one)"]
async fn a_postgres_dump_loads_into_an_empty_database_as_the_same_rows() {
    let (db, _, admin) = postgres_named().await;
    exercise(&db).await;
    concurrent_config_changes(&db).await;
    let scratch = tempfile::tempdir().unwrap();
    let dump = db.dump(scratch.path()).await.unwrap();
    assert_eq!((dump.backend, dump.schema_version), (Backend::Postgres, Backend::Postgres.known_migrations()));
    let dumped = rows(&dump);
    let counts: BTreeMap<&str, usize> = dumped.iter().map(|(table, rows)| (table.as_str(), rows.len())).collect();
    assert!(counts["users"] >= 2 && counts["releases"] > 0 && counts["events"] > 0, "{counts:?}");

    let url = empty_database(&admin).await;
    Db::load_postgres(&url, &dump).await.unwrap();
    let loaded = Db::open(&url).await.unwrap();
    assert_eq!(rows(&loaded.dump(scratch.path()).await.unwrap()), dumped, "every row of every table, as it was");
    let highest = dumped["users"]
        .iter()
        .map(|row| serde_json::from_str::<serde_json::Value>(row).unwrap()["id"].as_i64().unwrap())
        .max()
        .unwrap();
    let next = loaded.create_user(&"after-restore".parse().unwrap(), "hash").await.unwrap().unwrap();
    assert!(next.id > highest, "ids go on after the loaded ones: {} after {highest}", next.id);

    // A database that holds tables is not loaded into.
    assert!(matches!(Db::load_postgres(&url, &dump).await, Err(LoadError::NotEmpty(_))));

    // A damaged dump or one of a newer Skiff is refused, and leaves the database empty.
    let url = empty_database(&admin).await;
    let mut damaged = dump.clone();
    damaged.bytes.truncate(damaged.bytes.len() / 2);
    assert!(matches!(Db::load_postgres(&url, &damaged).await, Err(LoadError::Damaged(_))));
    let newer = Dump { schema_version: dump.schema_version + 1, ..dump.clone() };
    assert!(matches!(Db::load_postgres(&url, &newer).await, Err(LoadError::TooNew { .. })));
    // A row the schema refuses (a release of an app that is not there) rolls the whole load back.
    let mut tables: serde_json::Value = serde_json::from_slice(&dump.bytes).unwrap();
    let apps = tables["tables"].as_array_mut().unwrap().iter_mut().find(|t| t[0] == "apps").unwrap();
    apps[1] = serde_json::json!([]);
    let orphaned = Dump { bytes: serde_json::to_vec(&tables).unwrap(), ..dump.clone() };
    assert!(matches!(Db::load_postgres(&url, &orphaned).await, Err(LoadError::Database(_))));
    Db::load_postgres(&url, &dump).await.expect("nothing was kept of the refused loads");
}

/// An older dump loads at its own schema and is migrated on: the rows of a database made
/// by the first migrations only come through the later ones.
#[tokio::test]
#[ignore = "needs Postgres (deploy/test.sh starts one)"]
async fn a_postgres_dump_of_an_older_schema_is_migrated_as_it_loads() {
    let (db, _, admin) = postgres_named().await;
    db.create_user(&"old-timer".parse().unwrap(), "hash").await.unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let mut dump = db.dump(scratch.path()).await.unwrap();
    // The users table is in the first migration: as version 1, the dump holds only it.
    let mut tables: serde_json::Value = serde_json::from_slice(&dump.bytes).unwrap();
    tables["tables"].as_array_mut().unwrap().retain(|t| t[0] == "users");
    let user = &mut tables["tables"][0][1][0];
    let first_columns = ["id", "username", "password_hash", "admin", "created_at"];
    user.as_object_mut().unwrap().retain(|column, _| first_columns.contains(&column.as_str()));
    dump.bytes = serde_json::to_vec(&tables).unwrap();
    dump.schema_version = 1;
    let url = empty_database(&admin).await;
    Db::load_postgres(&url, &dump).await.unwrap();
    let loaded = Db::open(&url).await.unwrap();
    let user = loaded.user_by_name(&"old-timer".parse().unwrap()).await.unwrap().expect("the user came through");
    assert!(user.admin);
}

#[tokio::test]
async fn a_sqlite_copy_is_whole_and_a_damaged_one_is_refused() {
    let (db, dir) = sqlite().await;
    exercise(&db).await;
    concurrent_config_changes(&db).await;
    let dump = db.dump(dir.path()).await.unwrap();
    assert_eq!((dump.backend, dump.schema_version), (Backend::Sqlite, Backend::Sqlite.known_migrations()));
    let copy = dir.path().join("copy.db");
    std::fs::write(&copy, &dump.bytes).unwrap();
    assert_eq!(check_sqlite(&copy).await.unwrap(), Backend::Sqlite.known_migrations());
    let reopened = Db::open_sqlite(&copy).await.unwrap();
    let app = reopened.app(&"busy".parse().unwrap()).await.unwrap().expect("the app is in the copy");
    assert_eq!(reopened.config(&app).await.unwrap().len(), 20, "with its config");

    let truncated = dir.path().join("truncated.db");
    std::fs::write(&truncated, &dump.bytes[..dump.bytes.len() / 3]).unwrap();
    assert!(matches!(check_sqlite(&truncated).await, Err(LoadError::Damaged(_))));
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, b"not a database at all").unwrap();
    assert!(matches!(check_sqlite(&garbage).await, Err(LoadError::Damaged(_))));
}
