//! Upgrades keep data: what a released version of Skiff wrote (fixtures made by that
//! version itself with deploy/upgrade/make-fixture.sh, one each time the schema changes) is
//! migrated by this skiffd as it starts, on SQLite and on Postgres, and every app, release,
//! setting, user and permission comes back as it was. And a platform the previous release
//! runs (its own `skiffd`, built by deploy/upgrade/build-previous.sh) is upgraded in place:
//! its apps' containers keep running and are adopted, not restarted.

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

/// The environment that runs the previous release's `skiffd all` as `platform` (an
/// [`Platform::unstarted`] one) would run.
fn previous_env(platform: &Platform) -> Vec<(&'static str, String)> {
    let (s, a) = (&platform.settings, &platform.addresses);
    let at = |address: Option<std::net::SocketAddr>| address.unwrap().to_string();
    vec![
        ("SKIFF_DATA_DIR", s.data_dir().display().to_string()),
        ("SKIFF_PLATFORM_ID", platform.platform_id.clone()),
        ("SKIFF_CONTROLLER_LISTEN", at(a.controller)),
        ("SKIFF_REGISTRY_LISTEN", at(a.registry)),
        ("SKIFF_LOGGER_LISTEN", at(a.logger)),
        ("SKIFF_LOGGER_SYSLOG_LISTEN", at(a.syslog)),
        ("SKIFF_LOGGER_SYSLOG_TLS_LISTEN", at(a.syslog_tls)),
        ("SKIFF_BUILDER_LISTEN", at(a.builder)),
        ("SKIFF_BUILDER_HTTP_LISTEN", at(a.builder_http)),
        ("SKIFF_ROUTER_LISTEN", at(a.router)),
        ("SKIFF_ROUTER_TLS_LISTEN", at(a.router_tls)),
        ("SKIFF_RECONCILE_INTERVAL", s.reconcile_interval.to_string()),
        ("SKIFF_DRAIN_SECONDS", s.drain_seconds.to_string()),
        ("SKIFF_RELEASE_RETENTION", s.release_retention.to_string()),
    ]
}

/// When each of the platform's containers started, by id (`docker inspect`).
fn started_at(platform: &Platform) -> Vec<(String, String)> {
    let ids: Vec<String> = platform.containers().into_iter().filter(|c| c.2).map(|c| c.0).collect();
    assert!(!ids.is_empty(), "the app runs");
    let inspected = std::process::Command::new("docker")
        .args(["inspect", "--format", "{{.Id}} {{.State.StartedAt}} {{.RestartCount}}"])
        .args(&ids)
        .output()
        .expect("docker inspect");
    let mut started: Vec<(String, String)> = String::from_utf8_lossy(&inspected.stdout)
        .lines()
        .filter_map(|line| line.split_once(' ').map(|(id, rest)| (id.to_owned(), rest.to_owned())))
        .collect();
    started.sort();
    started
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and the previous release's skiffd (deploy/test.sh)"]
async fn apps_keep_running_while_skiffd_is_upgraded_from_the_previous_release() {
    let previous = std::env::var("SKIFF_TEST_PREVIOUS_SKIFFD").expect(
        "this test needs the previous release's skiffd: deploy/upgrade/build-previous.sh builds it \
         (deploy/test.sh runs it and sets SKIFF_TEST_PREVIOUS_SKIFFD)",
    );
    let platform = Platform::unstarted();
    let log = platform.dir.path().join("previous.log");
    let old = std::process::Command::new(&previous)
        .arg("all")
        .envs(previous_env(&platform))
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::create(platform.dir.path().join("previous.err")).unwrap())
        .spawn()
        .expect("the previous skiffd runs");
    let health = format!("{}/healthz", platform.controller_url());
    let up = eventually(Duration::from_secs(60), || async {
        reqwest::get(&health).await.ok().filter(|a| a.status().is_success()).map(drop)
    });
    assert!(up.await.is_some(), "the previous skiffd did not start");

    // The previous release's platform, driven by this CLI and git: an app pushed and served.
    let (mut platform, repo, key) = platform.with_app("steady").await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed && out.contains("v1 is up"), "{out}");
    let serving = eventually(Duration::from_secs(60), || async {
        matches!(get_via_router(platform.router(), "steady.localhost").await, Some((200, _))).then_some(())
    });
    assert!(serving.await.is_some());
    let before = started_at(&platform);

    // The previous skiffd stops as an operator stops it; its containers run on.
    let stopped = std::process::Command::new("kill").args(["-TERM", &old.id().to_string()]).status().unwrap();
    assert!(stopped.success());
    let exited = tokio::task::spawn_blocking(move || {
        let mut old = old;
        old.wait()
    })
    .await
    .unwrap()
    .expect("it exits");
    assert!(exited.success(), "the previous skiffd stops cleanly on SIGTERM: {exited}");
    assert_eq!(started_at(&platform), before, "nothing stopped with it");

    // This skiffd on the same data directory: migrated, the containers adopted as they are.
    platform.restart().await;
    let serving = eventually(Duration::from_secs(60), || async {
        matches!(get_via_router(platform.router(), "steady.localhost").await, Some((200, _))).then_some(())
    });
    assert!(serving.await.is_some(), "served after the upgrade");
    let ps = platform.cli_ok(&repo, &["ps"]).await;
    assert!(ps.contains("web") && ps.contains("v1") && ps.contains("running"), "{ps}");
    // Some reconcile rounds later, still the same containers, never restarted.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(started_at(&platform), before, "adopted, not restarted");

    // And it goes on: a push with this version makes v2.
    std::fs::write(repo.join("upgraded.txt"), "after the upgrade\n").unwrap();
    let (pushed, out) = platform.commit_and_push(&repo, &key, "after the upgrade");
    assert!(pushed && out.contains("v2 is up"), "{out}");
    platform.stop().await;
}
