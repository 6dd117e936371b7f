//! Backups as an operator uses them: `skiffd backup` while the platform works, the data
//! directory and every container lost, `skiffd restore` onto a fresh one, and the platform
//! started again; damaged backups refused without a trace.

use std::path::Path;
use std::time::Duration;

use crate::harness::{Platform, add_state_script, copy_dir, eventually, state};

/// Runs `skiffd ARGS` as its own process on this platform's data directory; returns
/// (success, stdout and stderr).
async fn skiffd(platform: &Platform, args: &[&str]) -> (bool, String) {
    let data_dir = platform.settings.data_dir();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_skiffd"))
        .args(args)
        .env("SKIFF_DATA_DIR", &data_dir)
        .env_remove("SKIFF_DATABASE_URL")
        .env_remove("SKIFF_STORE_URL")
        .output()
        .await
        .expect("skiffd runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// The app's releases, newest first, as `skiff releases --json` lists them.
async fn releases(platform: &Platform, repo: &Path) -> Vec<serde_json::Value> {
    serde_json::from_str(&platform.cli_ok(repo, &["releases", "--json"]).await).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_platform_restored_from_a_backup_taken_while_it_worked_serves_every_app_again() {
    let (mut platform, repo, key) = Platform::with_example("keep").await;
    add_state_script(&repo);
    let (pushed, out) = platform.commit_and_push(&repo, &key, "answers its state");
    assert!(pushed, "{out}");
    platform.cli_ok(&repo, &["config:set", "GREETING=first"]).await;
    platform.cli_ok(&repo, &["domains:add", "www.keep.test"]).await;
    let made = rcgen::generate_simple_self_signed(vec!["www.keep.test".to_owned()]).unwrap();
    let home = platform.dir.path().to_owned();
    let (cert, cert_key) = (home.join("cert.pem"), home.join("key.pem"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&cert_key, made.signing_key.serialize_pem()).unwrap();
    platform.cli_ok(&repo, &["certs:add", "main", cert.to_str().unwrap(), cert_key.to_str().unwrap()]).await;
    platform.cli_ok(&repo, &["certs:attach", "main", "www.keep.test"]).await;
    let serving = eventually(Duration::from_secs(60), || async {
        (state(&platform, "keep.localhost").await? == "v2 first").then_some(())
    });
    assert!(serving.await.is_some(), "{:?}", state(&platform, "keep.localhost").await);

    // The snapshot is taken while config changes and a push go on.
    let backups = home.join("backups");
    let backups_arg = backups.to_str().unwrap().to_owned();
    std::fs::write(repo.join("public/index.html"), "second build\n").unwrap();
    let (added, out) = platform.git(&repo, &key, &["commit", "-qam", "second build"]);
    assert!(added, "{out}");
    let push = tokio::task::spawn_blocking({
        let command = platform.git_command(&repo, &key);
        move || command(&["push", "skiff", "main"])
    });
    let changes = async {
        for change in 1..=6 {
            platform.cli_ok(&repo, &["config:set", &format!("GREETING=change-{change}")]).await;
        }
    };
    let snapshot = async {
        tokio::time::sleep(Duration::from_millis(700)).await;
        skiffd(&platform, &["backup", "--to", &backups_arg]).await
    };
    let ((backed_up, out), ()) = tokio::join!(snapshot, changes);
    assert!(backed_up && out.contains("Took snapshot"), "{out}");
    let (pushed, out) = push.await.unwrap();
    assert!(pushed, "{out}");

    // The machine is lost: the platform, every container, the data directory.
    platform.stop().await;
    platform.remove_containers();
    std::fs::remove_dir_all(platform.settings.data_dir()).unwrap();
    let (restored, out) = skiffd(&platform, &["restore", "--from", &backups_arg]).await;
    assert!(restored && out.contains("Restored snapshot"), "{out}");
    platform.restart().await;

    // Every release the snapshot held, numbered without a gap; the newest rolls out (it may
    // have been rolling out when the snapshot was taken) and serves the config it was made
    // with, which is the app's.
    let newest_current = eventually(Duration::from_secs(90), || async {
        let mut listed = releases(&platform, &repo).await;
        listed.sort_by_key(|r| std::cmp::Reverse(r["version"].as_u64()));
        (listed[0]["state"] == "deployed").then_some(listed)
    });
    let Some(listed) = newest_current.await else {
        let (listed, ps) = (platform.cli_ok(&repo, &["releases"]).await, platform.cli(&repo, &["ps"]).await);
        let events = platform.cli(&repo, &["events"]).await;
        panic!("the newest release restored becomes current:\n{listed}\n{ps:?}\n{events:?}");
    };
    let versions: Vec<u64> = listed.iter().map(|r| r["version"].as_u64().unwrap()).collect();
    let newest = versions[0];
    assert!(newest >= 2 && versions == (1..=newest).rev().collect::<Vec<_>>(), "{versions:?}");
    let current = &listed[0];
    let greeting = current["config"]["GREETING"].as_str().unwrap().to_owned();
    let config = platform.cli_ok(&repo, &["config:get", "GREETING"]).await;
    assert_eq!(config.trim(), greeting, "the app's config is its current release's");
    let expected = format!("v{} {greeting}", current["version"]);
    let serving = eventually(Duration::from_secs(90), || async {
        (state(&platform, "keep.localhost").await? == expected).then_some(())
    });
    assert!(serving.await.is_some(), "{expected}: {:?}", state(&platform, "keep.localhost").await);
    let domains = platform.cli_ok(&repo, &["domains"]).await;
    assert!(domains.contains("www.keep.test"), "{domains}");
    let certs = platform.cli_ok(&repo, &["certs"]).await;
    assert!(certs.contains("main") && certs.contains("www.keep.test"), "{certs}");

    // The oldest release's image came back too: a rollback to it serves.
    let out = platform.cli_ok(&repo, &["releases:rollback", "v1"]).await;
    assert!(out.contains(&format!("v{}", newest + 1)), "{out}");
    let expected = format!("v{}", newest + 1);
    let rolled_back = eventually(Duration::from_secs(90), || async {
        (state(&platform, "keep.localhost").await? == expected).then_some(())
    });
    assert!(rolled_back.await.is_some(), "{expected}: {:?}", state(&platform, "keep.localhost").await);

    // And pushes go on (to a builder whose repository starts empty again).
    platform.cli_ok(&repo, &["git:remote", "-a", "keep"]).await;
    std::fs::write(repo.join("public/index.html"), "after the restore\n").unwrap();
    let (pushed, out) = platform.commit_and_push(&repo, &key, "after the restore");
    assert!(pushed, "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_damaged_backup_is_refused_and_changes_nothing() {
    let mut platform = Platform::start_with_settings(|s| s.runtime = skiffd::Runtime::Memory).await;
    let home = platform.dir.path().to_owned();
    platform.cli_ok(&home, &["auth:register", "-u", "admin", "-p", "correct-horse"]).await;
    platform.cli_ok(&home, &["apps:create", "calm", "--no-remote"]).await;
    platform.cli_ok(&home, &["config:set", "-a", "calm", "LEVEL=9"]).await;
    // A blob in the registry's store, as a push leaves them.
    let data_dir = platform.settings.data_dir();
    let layer = b"layer bytes".as_slice();
    let digest = skiff_store::digest::sha256(layer);
    let blob = data_dir.join("store/blobs/sha256").join(&digest.hex()[..2]).join(digest.hex());
    std::fs::create_dir_all(blob.parent().unwrap()).unwrap();
    std::fs::write(&blob, layer).unwrap();

    // Three snapshots, two kept.
    let backups = home.join("backups");
    let to = backups.to_str().unwrap();
    let mut settings = platform.settings.clone();
    settings.backup_keep = 2;
    let mut taken = Vec::new();
    for _ in 0..3 {
        taken.push(skiffd::backup::backup(&settings, to).await.unwrap().id);
    }
    let kept: Vec<String> = skiffd::backup::list(to).await.unwrap().into_iter().map(|m| m.id).collect();
    assert_eq!(kept, taken[1..], "the newest two");
    assert!(!backups.join("snapshots").join(&taken[0]).exists(), "nothing of the oldest is left");
    let newest = backups.join("snapshots").join(&taken[2]);

    // Onto a data directory in use: refused.
    let refused = skiffd::backup::restore(&platform.settings, to, None).await.unwrap_err();
    assert!(format!("{refused:#}").contains("is not empty"), "{refused:#}");

    platform.stop().await;
    std::fs::remove_dir_all(&data_dir).unwrap();
    let damage = |name: &str, change: &dyn Fn(&Path)| {
        let copy = home.join(format!("damaged-{name}"));
        copy_dir(&backups, &copy);
        change(&copy.join("snapshots").join(&taken[2]));
        copy
    };
    let blob_in = |backup: &Path| backup.join("blobs/sha256").join(&digest.hex()[..2]).join(digest.hex());
    let cases: Vec<(std::path::PathBuf, &str)> = vec![
        (
            damage("truncated-database", &|snapshot| {
                let database = std::fs::read(snapshot.join("database")).unwrap();
                std::fs::write(snapshot.join("database"), &database[..database.len() / 2]).unwrap();
            }),
            "database does not match its digest",
        ),
        (
            damage("truncated-manifest", &|snapshot| {
                let manifest = std::fs::read(snapshot.join("manifest.json")).unwrap();
                std::fs::write(snapshot.join("manifest.json"), &manifest[..manifest.len() - 20]).unwrap();
            }),
            "manifest does not read",
        ),
        (
            damage("lost-key", &|snapshot| std::fs::remove_file(snapshot.join("files/router/ca.key")).unwrap()),
            "files/router/ca.key is missing",
        ),
        (
            damage("changed-blob", &|snapshot| {
                std::fs::write(blob_in(snapshot.parent().unwrap().parent().unwrap()), b"layer byteZ").unwrap();
            }),
            "image blob",
        ),
    ];
    for (backup, why) in cases {
        let (ok, out) = skiffd(&platform, &["restore", "--from", backup.to_str().unwrap()]).await;
        assert!(!ok && out.contains("damaged") && out.contains(why), "{why}: {out}");
        let left: Vec<_> =
            std::fs::read_dir(&data_dir).map(|d| d.map(|e| e.unwrap().file_name()).collect()).unwrap_or_default();
        assert!(left.is_empty(), "{why}: nothing is left in the data directory: {left:?}");
    }
    let (ok, out) = skiffd(&platform, &["restore", "--from", home.join("nowhere").to_str().unwrap()]).await;
    assert!(!ok && out.contains("there is no backup at"), "{out}");
    let (ok, out) = skiffd(&platform, &["backup", "--to", home.join("elsewhere").to_str().unwrap()]).await;
    assert!(!ok && out.contains("there is no Skiff database in"), "a data directory without a platform: {out}");

    // The intact backup brings the platform back as it was.
    let (ok, out) = skiffd(&platform, &["restore", "--from", to, "--snapshot", &taken[1]]).await;
    assert!(ok && out.contains(&taken[1]), "{out}");
    assert_eq!(
        std::fs::read(data_dir.join("store/blobs/sha256").join(&digest.hex()[..2]).join(digest.hex())).unwrap(),
        layer
    );
    platform.restart().await;
    assert_eq!(platform.cli_ok(&home, &["config:get", "-a", "calm", "LEVEL"]).await.trim(), "9");
    assert!(newest.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and Postgres (deploy/test.sh)"]
async fn a_postgres_platform_is_restored_onto_an_empty_database() {
    let mut platform = Platform::start_on_postgres().await;
    let home = platform.dir.path().to_owned();
    platform.cli_ok(&home, &["auth:register", "-u", "admin", "-p", "correct-horse"]).await;
    platform.cli_ok(&home, &["apps:create", "ledger", "--no-remote"]).await;
    platform.cli_ok(&home, &["config:set", "-a", "ledger", "CURRENCY=EUR"]).await;
    let backups = home.join("backups");
    let to = backups.to_str().unwrap();
    let manifest = skiffd::backup::backup(&platform.settings, to).await.unwrap();
    assert_eq!(format!("{:?}", manifest.database.backend), "Postgres");

    platform.stop().await;
    std::fs::remove_dir_all(platform.settings.data_dir()).unwrap();
    let url = std::env::var("SKIFF_TEST_POSTGRES_URL").unwrap();
    let name = format!("skiff_restored_{:08x}", rand::random::<u32>());
    let admin = skiff_controller::db::Db::open(&url).await.unwrap();
    admin.execute_admin(&format!("CREATE DATABASE {name}")).await.unwrap();
    let old_database = platform.settings.database_url.replace(format!("{}/{name}", url.rsplit_once('/').unwrap().0));

    // Not onto the database it came from (it holds tables), then onto the empty one.
    let mut onto_old = platform.settings.clone();
    onto_old.database_url = old_database;
    let refused = skiffd::backup::restore(&onto_old, to, None).await.unwrap_err();
    assert!(format!("{refused:#}").contains("already holds data"), "{refused:#}");
    skiffd::backup::restore(&platform.settings, to, None).await.unwrap();
    platform.restart().await;
    assert_eq!(platform.cli_ok(&home, &["config:get", "-a", "ledger", "CURRENCY"]).await.trim(), "EUR");
    let out = platform.cli_ok(&home, &["apps:create", "after", "--no-remote"]).await;
    assert!(out.contains("after"), "ids go on past the restored ones: {out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn snapshots_are_taken_on_schedule_and_the_oldest_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("scheduled");
    let target = to.to_str().unwrap().to_owned();
    let platform = Platform::start_with_settings(|settings| {
        settings.runtime = skiffd::Runtime::Memory;
        settings.backup_to = Some(target.clone());
        settings.backup_interval = 1;
        settings.backup_keep = 2;
    })
    .await;
    let home = platform.dir.path().to_owned();
    platform.cli_ok(&home, &["auth:register", "-u", "admin", "-p", "correct-horse"]).await;
    let ids = || async { skiffd::backup::list(&target).await.unwrap().into_iter().map(|m| m.id).collect::<Vec<_>>() };
    let first_two = eventually(Duration::from_secs(30), || async { Some(ids().await).filter(|ids| ids.len() == 2) });
    let first_two = first_two.await.expect("two snapshots within seconds");
    let moved_on = eventually(Duration::from_secs(30), || async {
        let now = ids().await;
        (now.len() == 2 && !now.contains(&first_two[0])).then_some(now)
    });
    let now = moved_on.await.expect("a newer snapshot replaces the oldest");
    assert!(now[0] >= first_two[1], "{now:?} after {first_two:?}");
}
