//! The path a newcomer walks: register, add a key, create an app, `git push`, browse, read
//! the logs.

use std::time::Duration;

use crate::harness::{Platform, eventually, example_repo, get_via_router};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_pushed_example_app_serves_through_the_router_and_logs() {
    let mut platform = Platform::start().await;
    let home = platform.dir.path().to_owned();

    let out = platform.cli_ok(&home, &["auth:register", "-u", "admin", "-p", "correct-horse"]).await;
    assert!(out.contains("as admin (admin)"), "the first user becomes admin: {out}");
    let stored = std::fs::metadata(home.join("config/skiff/config.json")).expect("the login is stored");
    assert_eq!(std::os::unix::fs::PermissionsExt::mode(&stored.permissions()) & 0o777, 0o600);
    platform.import_busybox_stack().await;
    let key = platform.add_ssh_key().await;
    let repo = example_repo(&platform, &key);

    let out = platform.cli_ok(&repo, &["apps:create", "hello"]).await;
    assert!(out.contains("Added git remote `skiff`"), "{out}");
    let out = platform.cli_ok(&repo, &["apps:info"]).await;
    assert!(out.contains("none yet"), "apps:info finds the app through the git remote: {out}");

    // Before any push the app exists (once the route reaches the router) but has nothing running.
    let unavailable = eventually(Duration::from_secs(30), || async {
        matches!(get_via_router(platform.router(), "hello.localhost").await, Some((503, _))).then_some(())
    });
    assert!(unavailable.await.is_some(), "an app without a release answers 503");

    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "git push failed:\n{out}");
    assert!(out.contains("remote: -----> Building hello"), "{out}");
    assert!(out.contains("remote: -----> Released v1"), "{out}");
    // The builder says how its pushes ended, and that its engine answers.
    let builder = format!("http://{}", platform.addresses.builder_http.unwrap());
    let metrics = reqwest::get(format!("{builder}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("skiff_builder_pushes_total{outcome=\"released\"} 1"), "{metrics}");
    let ready = reqwest::get(format!("{builder}/readyz")).await.unwrap();
    assert_eq!((ready.status().as_u16(), ready.text().await.unwrap()), (200, "engine ok\n".to_owned()));

    let body = eventually(Duration::from_secs(60), || async {
        match get_via_router(platform.router(), "hello.localhost:8080").await {
            Some((200, body)) => Some(body),
            _ => None,
        }
    })
    .await
    .expect("the app answers 200 through the router within 60 s");
    assert!(body.contains("Hello from Skiff"), "{body}");

    let (status, _) = get_via_router(platform.router(), "nobody.localhost").await.expect("router answers");
    assert_eq!(status, 404);

    let logs = eventually(Duration::from_secs(30), || async {
        let (status, out, _) = platform.cli(&repo, &["logs", "-n", "50"]).await;
        (status == 0 && out.contains("skiff example: listening on port 5000")).then_some(out)
    })
    .await
    .expect("the container's stdout reaches `skiff logs`");
    assert!(logs.contains("hello[web."), "{logs}");
    // Each line of the app's own output names the release its container runs.
    let lines = platform.cli_ok(&repo, &["logs", "-n", "50", "--json"]).await;
    let lines: Vec<serde_json::Value> = serde_json::from_str(&lines)
        .unwrap_or_else(|_| lines.lines().filter_map(|l| serde_json::from_str(l).ok()).collect());
    let listening =
        lines.iter().find(|l| l["message"].as_str().is_some_and(|m| m.contains("listening on port"))).unwrap();
    assert_eq!(listening["release"], 1, "{listening}");
    // The router's access lines and the platform's events share the app's stream.
    let router = eventually(Duration::from_secs(30), || async {
        let (_, out, _) = platform.cli(&repo, &["logs", "--source", "router"]).await;
        (out.contains("hello[router]: at=info method=GET path=\"/\"") && out.contains("status=200")).then_some(out)
    })
    .await;
    assert!(router.is_some(), "router lines reach `skiff logs --source router`");
    let events = platform.cli_ok(&repo, &["logs", "--source", "platform"]).await;
    assert!(events.contains("Release v1 created") && events.contains("Release v1 is up"), "{events}");
    assert!(!events.contains("[router]"), "{events}");

    let out = platform.cli_ok(&repo, &["releases"]).await;
    assert!(out.contains("v1") && out.contains("admin deployed"), "{out}");

    // A second push with one changed file replaces the running release.
    let page = repo.join("public/index.html");
    let html = std::fs::read_to_string(&page).unwrap();
    std::fs::write(&page, html.replace("Hello from Skiff", "Hello again from Skiff")).unwrap();
    let (ok, out) = platform.git(&repo, &key, &["commit", "-qam", "second"]);
    assert!(ok, "{out}");
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed && out.contains("remote: -----> Released v2"), "{out}");
    eventually(Duration::from_secs(60), || async {
        match get_via_router(platform.router(), "hello.localhost").await {
            Some((200, body)) if body.contains("Hello again") => Some(()),
            _ => None,
        }
    })
    .await
    .expect("v2 serves through the router");
    let only_v2 = eventually(Duration::from_secs(30), || async {
        let containers = platform.containers();
        (containers.len() == 1 && containers[0].1 == "2").then_some(())
    })
    .await;
    assert!(only_v2.is_some(), "v1's container is removed: {:?}", platform.containers());

    // With one release kept, v1's image goes at a collection; v2 keeps running.
    let dry = platform.cli_ok(&repo, &["registry:gc", "--dry-run", "--grace", "0", "--json"]).await;
    let dry: serde_json::Value = serde_json::from_str(&dry).unwrap();
    assert_eq!(dry["dry_run"], true, "{dry}");
    let report = platform.cli_ok(&repo, &["registry:gc", "--grace", "0", "--json"]).await;
    let report: serde_json::Value = serde_json::from_str(&report).unwrap();
    assert!(report["deleted"].as_array().unwrap().len() >= 2, "v1's manifest, config and app layer go: {report}");
    let (status, _) = get_via_router(platform.router(), "hello.localhost").await.unwrap();
    assert_eq!(status, 200, "v2 keeps serving");
    let (status, out, err) = platform.cli(&repo, &["run", "--", "cat /app/public/index.html"]).await;
    assert!(status == 0 && out.contains("Hello again"), "v2's image is still pullable: {out}{err}");

    // Stopping the platform leaves the app's container running.
    platform.stop().await;
    let containers = platform.containers();
    assert!(containers.len() == 1 && containers[0].2, "{containers:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn the_same_path_works_with_the_controller_on_postgres() {
    let (mut platform, repo, key) = Platform::start_on_postgres().await.with_app("pg-hello").await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed && out.contains("remote: -----> v1 is up"), "{out}");
    assert!(greets(&platform, "pg-hello.localhost").await);
    let out = platform.cli_ok(&repo, &["config:set", "DB=postgres"]).await;
    assert!(out.contains("released v2"), "{out}");
    let out = platform.cli_ok(&repo, &["builds"]).await;
    assert!(out.contains("succeeded"), "{out}");
    // Stop before the harness removes the containers, so no new one starts after.
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn pushes_without_access_or_procfile_are_rejected_and_change_nothing() {
    let mut platform = Platform::start().await;
    let home = platform.dir.path().to_owned();
    platform.cli_ok(&home, &["auth:register", "-u", "admin", "-p", "correct-horse"]).await;
    let key = platform.add_ssh_key().await;
    let repo = example_repo(&platform, &key);
    platform.cli_ok(&repo, &["apps:create", "hello"]).await;

    // A push to an app that does not exist never reaches git.
    let (has_remote, url) = platform.git(&repo, &key, &["remote", "get-url", "skiff"]);
    assert!(has_remote, "{url}");
    let other = url.trim().replace("/hello.git", "/other.git");
    let (pushed, out) = platform.git(&repo, &key, &["push", &other, "main"]);
    assert!(!pushed);
    assert!(out.contains("app `other` does not exist or you have no access to it"), "{out}");

    // Hostile names are refused before anything runs.
    let hostile = url.trim().replace("/hello.git", "/a;id.git");
    let (pushed, out) = platform.git(&repo, &key, &["push", &hostile, "main"]);
    assert!(!pushed);
    assert!(out.contains("is not a valid app name"), "{out}");

    // A tree without a Procfile is rejected with the reason, and no release is made.
    let (ok, out) = platform.git(&repo, &key, &["rm", "-q", "Procfile"]);
    assert!(ok, "{out}");
    let (ok, out) = platform.git(&repo, &key, &["commit", "-qm", "no procfile"]);
    assert!(ok, "{out}");
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(!pushed, "{out}");
    assert!(out.contains("no Procfile or Dockerfile found"), "{out}");
    assert!(out.contains("pre-receive hook declined"), "{out}");
    let out = platform.cli_ok(&repo, &["releases", "--json"]).await;
    assert_eq!(out.trim(), "[]");
    let out = platform.cli_ok(&repo, &["builds"]).await;
    assert!(out.contains("failed"), "the failed build is recorded: {out}");
    let out = platform.cli_ok(&repo, &["builds:info", "1"]).await;
    assert!(out.contains("no Procfile or Dockerfile found"), "with its log: {out}");

    // A push over the size limit (1 MiB here) is refused with git's own message.
    let noise: Vec<u8> = (0..3 << 15).flat_map(|_| rand::random::<[u8; 32]>()).collect();
    std::fs::write(repo.join("big.bin"), noise).unwrap();
    let (ok, out) = platform.git(&repo, &key, &["add", "big.bin"]);
    assert!(ok, "{out}");
    let (ok, out) = platform.git(&repo, &key, &["commit", "-qm", "too big"]);
    assert!(ok, "{out}");
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(!pushed && out.contains("pack exceeds maximum allowed size"), "{out}");

    // An unregistered key is refused at authentication.
    let stranger = platform.dir.path().join("stranger");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(&stranger)
        .status()
        .unwrap();
    assert!(status.success());
    let (pushed, out) = platform.git(&repo, &stranger, &["push", "skiff", "main"]);
    assert!(!pushed);
    assert!(out.contains("Permission denied"), "{out}");
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn the_same_path_works_with_blobs_in_s3() {
    let endpoint = std::env::var("SKIFF_TEST_S3_ENDPOINT")
        .expect("this test needs an S3 server: run deploy/test.sh, which installs and starts one");
    let bucket = format!("skiff-platform-{:08x}", rand::random::<u32>());
    let created = reqwest::Client::new().put(format!("{endpoint}/{bucket}")).send().await.unwrap();
    assert!(created.status().is_success());
    let url = format!("s3://{bucket}?endpoint={endpoint}&access_key_id=skiff&secret_access_key=skiff-secret");
    let (mut platform, repo, key) =
        Platform::start_with_settings(|settings| settings.store_url = Some(url)).await.with_app("s3-hello").await;
    let home = platform.dir.path().to_owned();
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed && out.contains("remote: -----> v1 is up"), "{out}");
    assert!(greets(&platform, "s3-hello.localhost").await);
    // The layers are objects in the bucket, not files on the registry's disk.
    let listing =
        reqwest::get(format!("{endpoint}/{bucket}?list-type=2&prefix=blobs/")).await.unwrap().text().await.unwrap();
    assert!(listing.matches("<Key>blobs/sha256/").count() >= 3, "{listing}");
    assert!(!home.join("data/store/blobs").exists(), "no blob on the local disk");

    // A snapshot into another bucket names the store rather than copying the layers, and
    // brings the platform back on a new data directory beside the same store.
    let backups = format!("skiff-backups-{:08x}", rand::random::<u32>());
    let created = reqwest::Client::new().put(format!("{endpoint}/{backups}")).send().await.unwrap();
    assert!(created.status().is_success());
    let to = format!("s3://{backups}?endpoint={endpoint}&access_key_id=skiff&secret_access_key=skiff-secret");
    let manifest = skiffd::backup::backup(&platform.settings, &to).await.unwrap();
    assert!(matches!(manifest.images, skiffd::backup::Images::InStore { .. }), "{manifest}");
    assert!(!manifest.to_string().contains("skiff-secret"), "no credentials in what is shown: {manifest}");
    platform.stop().await;
    platform.remove_containers();
    std::fs::remove_dir_all(platform.settings.data_dir()).unwrap();
    let mut without_store = platform.settings.clone();
    without_store.store_url = None;
    let refused = skiffd::backup::restore(&without_store, &to, None).await.unwrap_err();
    assert!(format!("{refused:#}").contains("set SKIFF_STORE_URL"), "{refused:#}");
    skiffd::backup::restore(&platform.settings, &to, None).await.unwrap();
    platform.restart().await;
    if !greets(&platform, "s3-hello.localhost").await {
        let (_, ps, _) = platform.cli(&repo, &["ps"]).await;
        let (_, events, _) = platform.cli(&repo, &["events"]).await;
        panic!("not served again after the restore: {:?}\n{ps}\n{events}", platform.containers());
    }
    platform.stop().await;
}

/// Runs `command` (any bytes) over the real OpenSSH client against the builder: (exit
/// status, what it printed).
fn ssh_raw(platform: &Platform, key: &std::path::Path, command: &[u8]) -> (Option<i32>, String) {
    use std::os::unix::ffi::OsStrExt as _;
    let builder = platform.addresses.builder.unwrap();
    let output = std::process::Command::new("ssh")
        .args(["-i"])
        .arg(key)
        .args(["-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=no"])
        .args(["-o", "UserKnownHostsFile=/dev/null", "-o", "LogLevel=ERROR", "-p", &builder.port().to_string()])
        .arg(format!("git@{}", builder.ip()))
        .arg(std::ffi::OsStr::from_bytes(command))
        .stdin(std::process::Stdio::null())
        .output()
        .expect("ssh runs");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    (output.status.code(), text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn hostile_ssh_commands_are_refused_before_anything_runs() {
    let (mut platform, _repo, key) = Platform::with_example("target").await;
    let marker = platform.dir.path().join("pwned");
    let long = format!("git-receive-pack '{}.git'", "a".repeat(100_000));
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (format!("git-receive-pack 'x;touch {}'", marker.display()).into_bytes(), "is not a valid app name"),
        (b"git-receive-pack '../other.git'".to_vec(), "is not a valid app name"),
        (b"git-receive-pack '/etc/passwd'".to_vec(), "is not a valid app name"),
        (long.into_bytes(), "is not a valid app name"),
        (b"git-receive-pack '\xff\xfebad.git'".to_vec(), "only git pushes and clones are accepted here"),
        (format!("touch {}", marker.display()).into_bytes(), "only git pushes and clones are accepted here"),
        // No command asks for a shell, which is refused.
        (b"".to_vec(), "shell request failed"),
    ];
    for (command, expected) in cases {
        let (status, text) = ssh_raw(&platform, &key, &command);
        let shown = String::from_utf8_lossy(&command[..command.len().min(60)]).into_owned();
        assert!(status.is_some_and(|s| s != 0), "{shown}: exit {status:?}: {text}");
        assert!(text.contains(expected), "{shown}: {text}");
        assert!(text.len() < 4096, "{shown}: the answer stays short");
    }
    assert!(!marker.exists(), "nothing was run through a shell");

    // Another user's key reaches the builder but not this app.
    let home = platform.dir.path().to_owned();
    platform.cli_ok(&home, &["auth:register", "-u", "bob", "-p", "bob-password"]).await;
    let (status, out, err) = platform.cli_as("bob", &home, &["auth:login", "-u", "bob", "-p", "bob-password"]).await;
    assert_eq!(status, 0, "{out}{err}");
    let bob_key = home.join("bob-key");
    let made =
        std::process::Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-f"]).arg(&bob_key).status();
    assert!(made.unwrap().success());
    let public = format!("{}.pub", bob_key.display());
    let (status, out, err) = platform.cli_as("bob", &home, &["keys:add", &public]).await;
    assert_eq!(status, 0, "{out}{err}");
    let (status, text) = ssh_raw(&platform, &bob_key, b"git-receive-pack 'target.git'");
    assert_eq!(status, Some(1), "{text}");
    assert!(text.contains("app `target` does not exist or you have no access to it"), "{text}");
    // The builder keeps serving after all that.
    let (status, text) = ssh_raw(&platform, &key, b"git-upload-pack 'target.git'");
    assert!(status.is_some(), "{text}");
    platform.stop().await;
}

/// Whether the example app answers its greeting at `host` through the router within a minute.
async fn greets(platform: &Platform, host: &str) -> bool {
    let greeting = eventually(Duration::from_secs(60), || async {
        match get_via_router(platform.router(), host).await {
            Some((200, body)) if body.contains("Hello from Skiff") => Some(()),
            _ => None,
        }
    });
    greeting.await.is_some()
}
