//! Upgrades keep data: what a released version of Skiff wrote (fixtures made by that
//! version itself with deploy/upgrade/make-fixture.sh, one each time the schema changes) is
//! migrated by this skiffd as it starts, on SQLite and on Postgres, and every app, release,
//! setting, user and permission comes back as it was.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::{Platform, copy_dir, eventually, get_via_router};

/// Every fixture.
fn fixtures() -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/upgrade");
    let mut fixtures: Vec<PathBuf> = std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().path()).collect();
    fixtures.sort();
    assert!(!fixtures.is_empty(), "there is at least one fixture");
    fixtures
}

/// What the fixture's version made (deploy/upgrade/make-fixture.sh) is all there, and the
/// upgraded platform goes on from it.
async fn everything_came_through(platform: &Platform, fixture: &Path) {
    let home = platform.dir.path();
    let made_by = std::fs::read_to_string(fixture.join("made-by")).unwrap();
    platform.cli_ok(home, &["auth:login", "-u", "admin", "-p", "correct-horse"]).await;
    let apps = platform.cli_ok(home, &["apps"]).await;
    assert!(apps.contains("shop") && apps.contains("shop-staging"), "{made_by}: {apps}");
    assert_eq!(platform.cli_ok(home, &["config:get", "-a", "shop", "MOTTO"]).await.trim(), "upgrades keep data");
    let releases: Vec<serde_json::Value> =
        serde_json::from_str(&platform.cli_ok(home, &["releases", "-a", "shop", "--json"]).await).unwrap();
    let mut versions: Vec<u64> = releases.iter().map(|r| r["version"].as_u64().unwrap()).collect();
    versions.sort_unstable();
    assert_eq!(versions, [1, 2], "{made_by}: {releases:?}");
    let domains = platform.cli_ok(home, &["domains", "-a", "shop"]).await;
    assert!(domains.contains("www.shop.test"), "{made_by}: {domains}");
    let perms = platform.cli_ok(home, &["perms", "-a", "shop"]).await;
    assert!(perms.contains("bob"), "{made_by}: {perms}");
    let keys = platform.cli_ok(home, &["keys"]).await;
    assert!(keys.contains("fixture"), "{made_by}: {keys}");
    let pipeline = platform.cli_ok(home, &["pipelines:info", "line"]).await;
    assert!(pipeline.contains("shop-staging") && pipeline.contains("production"), "{made_by}: {pipeline}");

    // Its two web processes run again and answer through the router.
    let scaled = eventually(Duration::from_secs(60), || async {
        let ps: Vec<serde_json::Value> =
            serde_json::from_str(&platform.cli_ok(home, &["ps", "-a", "shop", "--json"]).await).ok()?;
        (ps.iter().filter(|p| p["process"] == "web" && p["state"] == "running").count() == 2).then_some(())
    });
    assert!(scaled.await.is_some(), "{made_by}: two web processes");
    let answering = eventually(Duration::from_secs(30), || async {
        matches!(get_via_router(platform.router(), "shop.localhost").await, Some((200, _))).then_some(())
    });
    assert!(answering.await.is_some(), "{made_by}: shop answers");

    // The collaborator's password still works, and the platform goes on from there.
    platform.cli_as("bob", home, &["auth:login", "-u", "bob", "-p", "bobs-password"]).await;
    let (status, bobs, _) = platform.cli_as("bob", home, &["apps"]).await;
    assert!(status == 0 && bobs.contains("shop"), "{made_by}: {bobs}");
    let out = platform.cli_ok(home, &["config:set", "-a", "shop", "AFTER=upgrade"]).await;
    assert!(out.contains("released v3"), "{made_by}: {out}");
    platform.cli_ok(home, &["cron:add", "-a", "shop", "@daily", "--", "echo", "nightly"]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_sqlite_data_directory_an_earlier_version_wrote_is_migrated_on_start() {
    for fixture in fixtures() {
        let platform = Platform::start_with_settings(|settings| {
            settings.runtime = skiffd::Runtime::Memory;
            copy_dir(&fixture.join("data"), &settings.data_dir());
        })
        .await;
        everything_came_through(&platform, &fixture).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and Postgres (deploy/test.sh)"]
async fn a_postgres_database_an_earlier_version_wrote_is_migrated_on_start() {
    let url = std::env::var("SKIFF_TEST_POSTGRES_URL").expect("deploy/test.sh starts Postgres");
    let admin = skiff_controller::db::Db::open(&url).await.unwrap();
    for fixture in fixtures() {
        let name = format!("skiff_upgrade_{:08x}", rand::random::<u32>());
        admin.execute_admin(&format!("CREATE DATABASE {name}")).await.unwrap();
        let database = format!("{}/{name}", url.rsplit_once('/').unwrap().0);
        let loaded = std::process::Command::new("psql")
            .args(["-q", "-v", "ON_ERROR_STOP=1", "-d", &database, "-f"])
            .arg(fixture.join("postgres.sql"))
            .output()
            .expect("psql runs");
        assert!(loaded.status.success(), "{}", String::from_utf8_lossy(&loaded.stderr));
        let platform = Platform::start_with_settings(|settings| {
            settings.runtime = skiffd::Runtime::Memory;
            settings.database_url = Some(database);
        })
        .await;
        everything_came_through(&platform, &fixture).await;
    }
}
