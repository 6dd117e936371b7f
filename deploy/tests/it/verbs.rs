//! The CLI verbs the other whole-platform tests do not reach, each against the running
//! platform: keys, git remotes, listings, settings that are unset again, restarting one
//! container, opening and destroying an app (and making one of the same name again).

use std::time::Duration;

use crate::harness::{Platform, eventually, get_via_router};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn the_remaining_verbs_do_what_they_say() {
    let (mut platform, repo, key) = Platform::with_example("verbs").await;
    let home = platform.dir.path().to_owned();

    // Keys: listed with their fingerprint, and removed by id.
    let keys: Vec<serde_json::Value> =
        serde_json::from_str(&platform.cli_ok(&home, &["keys", "--json"]).await).unwrap();
    assert_eq!(keys.len(), 1, "{keys:?}");
    let listed = platform.cli_ok(&home, &["keys"]).await;
    assert!(listed.contains(keys[0]["fingerprint"].as_str().unwrap()), "{listed}");

    // A second repository gets its `skiff` remote from git:remote.
    let other = home.join("other");
    std::fs::create_dir_all(&other).unwrap();
    let (status, _, err) = platform.cli(&other, &["git:remote", "-a", "verbs"]).await;
    assert!(status == 1 && err.contains("run `git init` first"), "{err}");
    let (ok, out) = platform.git(&other, &key, &["init", "-q"]);
    assert!(ok, "{out}");
    let out = platform.cli_ok(&other, &["git:remote", "-a", "verbs"]).await;
    assert!(out.contains("Git remote `skiff` now points at ssh://"), "{out}");
    assert!(platform.cli_ok(&other, &["apps:info"]).await.contains("verbs"), "the remote names the app");

    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    let serving = eventually(Duration::from_secs(60), || async {
        matches!(get_via_router(platform.router(), "verbs.localhost").await, Some((200, _))).then_some(())
    });
    assert!(serving.await.is_some());

    // Listings.
    assert!(platform.cli_ok(&repo, &["stacks"]).await.contains("busybox"));
    let (status, _, err) = platform.cli(&repo, &["apps:create", "nostack", "--stack", "nosuchstack"]).await;
    assert!(status == 1 && err.contains("there is no stack `nosuchstack`"), "refused at once: {err}");
    let long = "x".repeat(1 << 20);
    let (status, _, err) = platform.cli(&repo, &["run", &long]).await;
    assert!(
        status == 1 && err.contains("over the limit of 65536"),
        "a 1 MB command is refused: {}",
        &err[..200.min(err.len())]
    );
    assert_eq!(platform.cli_ok(&repo, &["domains", "--json"]).await.trim(), "[]");
    platform.cli_ok(&repo, &["domains:add", "www.verbs.test"]).await;
    let domains = platform.cli_ok(&repo, &["domains"]).await;
    assert!(domains.contains("www.verbs.test") && domains.contains("just now"), "relative times: {domains}");
    let out = platform.cli_ok(&repo, &["access"]).await;
    assert!(out.contains("Allowed:  every address") && out.contains("Max body: no limit"), "{out}");
    let out = platform.cli_ok(&repo, &["access", "--json"]).await;
    assert!(out.contains("\"max_body_bytes\": null"), "always there: {out}");
    // A drain's password is not shown back.
    platform.cli_ok(&repo, &["drains:add", "https://logs:s3cret@127.0.0.1:9/in"]).await;
    let out = platform.cli_ok(&repo, &["drains"]).await;
    assert!(out.contains("https://logs:****@127.0.0.1:9/in") && !out.contains("s3cret"), "{out}");
    platform.cli_ok(&repo, &["drains:remove", "https://logs:s3cret@127.0.0.1:9/in"]).await;
    // Rolling back to the release that runs says so.
    let current = platform.cli_ok(&repo, &["releases", "--json"]).await;
    let current: Vec<serde_json::Value> = serde_json::from_str(&current).unwrap();
    let version = format!("v{}", current[0]["version"]);
    let (status, _, err) = platform.cli(&repo, &["releases:rollback", &version]).await;
    assert!(status == 1 && err.contains(&format!("{version} is already the current release")), "{err}");
    assert!(platform.cli_ok(&repo, &["releases"]).await.contains("current"));
    let out = platform.cli_ok(&repo, &["access:allow", "10.0.0.0/8", "10.0.0.0/8"]).await;
    assert!(out.contains("Allowed:  10.0.0.0/8\n"), "listed once: {out}");
    let (status, _, err) = platform.cli(&repo, &["access:allow", "not-an-address"]).await;
    assert!(status == 1 && err.contains("is not an address or block"), "{err}");
    platform.cli_ok(&repo, &["access:remove", "10.0.0.0/8"]).await;
    assert!(platform.cli_ok(&repo, &["tls"]).await.contains("HTTP and HTTPS; HSTS off"));

    // Settings that are set, shown and unset again.
    platform.cli_ok(&repo, &["limits:set", "web", "memory=128m"]).await;
    platform.cli_ok(&repo, &["limits:unset", "web"]).await;
    assert_eq!(platform.cli_ok(&repo, &["limits", "--json"]).await.trim(), "{}");
    platform.cli_ok(&repo, &["healthchecks:set", "web", "--tcp"]).await;
    assert!(platform.cli_ok(&repo, &["healthchecks"]).await.contains("tcp"));
    platform.cli_ok(&repo, &["healthchecks:unset", "web"]).await;
    assert_eq!(platform.cli_ok(&repo, &["healthchecks", "--json"]).await.trim(), "{}");

    // A certificate attached and detached again.
    let made = rcgen::generate_simple_self_signed(vec!["www.verbs.test".to_owned()]).unwrap();
    let (cert, key_file) = (home.join("verbs.crt"), home.join("verbs.key"));
    std::fs::write(&cert, made.cert.pem()).unwrap();
    std::fs::write(&key_file, made.signing_key.serialize_pem()).unwrap();
    platform.cli_ok(&repo, &["certs:add", "www", cert.to_str().unwrap(), key_file.to_str().unwrap()]).await;
    platform.cli_ok(&repo, &["certs:attach", "www", "www.verbs.test"]).await;
    let out = platform.cli_ok(&repo, &["certs:detach", "www", "www.verbs.test"]).await;
    assert!(out.contains("No longer serving certificate www for www.verbs.test"), "{out}");
    let certs: Vec<serde_json::Value> =
        serde_json::from_str(&platform.cli_ok(&repo, &["certs", "--json"]).await).unwrap();
    assert_eq!(certs[0]["domains"], serde_json::json!([]), "{certs:?}");

    // One container restarted by id (once the health-check changes above have settled to
    // one running container): it is replaced, the app keeps serving.
    let id = eventually(Duration::from_secs(60), || async {
        let ps = platform.cli_ok(&repo, &["ps", "--json"]).await;
        let ps: Vec<serde_json::Value> = serde_json::from_str(&ps).unwrap();
        (ps.len() == 1 && ps[0]["state"] == "running").then(|| ps[0]["id"].as_str().unwrap().to_owned())
    })
    .await
    .expect("one running container");
    let out = platform.cli_ok(&repo, &["ps:restart", &id[..8]]).await;
    assert!(out.contains(&format!("Restarting container {}", &id[..8])), "{out}");
    let replaced = eventually(Duration::from_secs(60), || async {
        let ps = platform.cli_ok(&repo, &["ps", "--json"]).await;
        let ps: Vec<serde_json::Value> = serde_json::from_str(&ps).unwrap();
        (ps.len() == 1 && ps[0]["id"] != id.as_str() && ps[0]["state"] == "running").then_some(())
    });
    assert!(replaced.await.is_some(), "{}", platform.cli_ok(&repo, &["ps"]).await);
    let (status, _, err) = platform.cli(&repo, &["ps:restart", "0000dead"]).await;
    assert!(status == 1 && err.contains("`0000dead` is neither a process type nor a container of verbs"), "{err}");

    // apps:open prints the URL (no browser here); apps:destroy wants the name.
    let out = platform.cli_ok(&repo, &["apps:open"]).await;
    assert!(out.contains("http://verbs.localhost"), "{out}");
    let (status, _, err) = platform.cli(&repo, &["apps:destroy", "--confirm", "other"]).await;
    assert!(status == 1 && err.contains("nothing was destroyed"), "{err}");
    let destroyed = platform.app_ids();
    assert!(destroyed.len() == 1 && !destroyed[0].is_empty(), "containers carry their app's id: {destroyed:?}");
    let before = platform.cli_ok(&repo, &["logs"]).await;
    assert!(before.contains("[router]") && before.contains("[web"), "the app has lines: {before}");
    let out = platform.cli_ok(&repo, &["apps:destroy", "--confirm", "verbs"]).await;
    assert!(out.contains("Destroyed verbs"), "{out}");
    assert!(platform.containers().is_empty(), "the app's containers go first: {:?}", platform.containers());
    let gone = eventually(Duration::from_secs(30), || async {
        matches!(get_via_router(platform.router(), "verbs.localhost").await, Some((404, _))).then_some(())
    });
    assert!(gone.await.is_some(), "a destroyed app is no longer routed");
    assert!(platform.cli_ok(&repo, &["apps", "--json"]).await.trim() == "[]");
    // The name may come back, the destroyed app's repository may not: the new app's remote
    // holds nothing, and the same commit pushed again is built and deployed as a first push.
    platform.cli_ok(&repo, &["apps:create", "verbs"]).await;
    // Nor do its log lines: the new app's begin with its making.
    let logs = eventually(Duration::from_secs(10), || async {
        let logs = platform.cli_ok(&repo, &["logs"]).await;
        logs.contains("created the app").then_some(logs)
    })
    .await
    .expect("the new app's first line");
    assert!(
        logs.lines().count() == 1 && !logs.contains("[router]") && !logs.contains("[web"),
        "the old app's lines came back: {logs}"
    );
    let (listed, refs) = platform.git(&repo, &key, &["ls-remote", "skiff"]);
    assert!(listed && refs.trim().is_empty(), "the old repository came back: {refs}");
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed && out.contains("v1 is up"), "{out}");
    let ids = platform.app_ids();
    assert!(
        ids.len() == 1 && ids != destroyed,
        "the new app's containers carry its own id: {ids:?} ({destroyed:?} destroyed)"
    );

    let id = keys[0]["id"].to_string();
    platform.cli_ok(&home, &["keys:remove", &id]).await;
    assert_eq!(platform.cli_ok(&home, &["keys", "--json"]).await.trim(), "[]");
    platform.stop().await;
}
