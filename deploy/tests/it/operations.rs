//! Day-two operations on a running app: config, scaling, restarts, rollback.

use std::process::Command;
use std::time::Duration;

use crate::harness::{Platform, eventually, get_via_router};

/// A writer whose bytes a test can read while it is still being written.
struct SharedWriter(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for SharedWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Running containers per process type, as `skiff ps --json` reports them.
async fn running(platform: &Platform, repo: &std::path::Path, process: &str) -> Vec<serde_json::Value> {
    let out = platform.cli_ok(repo, &["ps", "--json"]).await;
    let all: Vec<serde_json::Value> = serde_json::from_str(&out).unwrap();
    all.into_iter().filter(|p| p["process"] == process && p["state"] == "running").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn config_scale_restart_and_rollback_reach_the_containers() {
    let (mut platform, repo, key) = Platform::start().await.with_example_repo().await;
    std::fs::write(
        repo.join("Procfile"),
        "web: echo \"greeting=$GREETING\"; exec httpd -f -p \"$PORT\" -h /app/public\n\
         worker: while true; do echo \"worker tick $GREETING\"; sleep 1; done\n",
    )
    .unwrap();
    for args in [&["add", "-A"][..], &["commit", "-qm", "worker"]] {
        let (ok, out) = platform.git(&repo, &key, args);
        assert!(ok, "{out}");
    }
    platform.cli_ok(&repo, &["apps:create", "ops"]).await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    let serving = eventually(Duration::from_secs(60), || async {
        matches!(get_via_router(platform.router(), "ops.localhost").await, Some((200, _))).then_some(())
    });
    assert!(serving.await.is_some());
    assert!(running(&platform, &repo, "worker").await.is_empty(), "only web runs until scaled");

    // Config changes make releases and reach the containers' environment.
    let out = platform.cli_ok(&repo, &["config:set", "GREETING=hello world", "OTHER=x"]).await;
    assert!(out.contains("released v2"), "{out}");
    let out = platform.cli_ok(&repo, &["config:unset", "OTHER"]).await;
    assert!(out.contains("released v3"), "{out}");
    assert_eq!(platform.cli_ok(&repo, &["config:get", "GREETING"]).await.trim(), "hello world");
    platform.cli_ok(&repo, &["config:pull", "--file", "pulled.env"]).await;
    assert_eq!(std::fs::read_to_string(repo.join("pulled.env")).unwrap(), "GREETING=\"hello world\"\n");
    std::fs::write(repo.join("pushed.env"), "# from a file\nexport FROM_FILE='yes'\n").unwrap();
    let out = platform.cli_ok(&repo, &["config:push", "--file", "pushed.env"]).await;
    assert!(out.contains("released v4"), "{out}");
    platform.cli_ok(&repo, &["config:unset", "FROM_FILE"]).await;
    let (status, _, err) = platform.cli(&repo, &["config:set", "1BAD=x"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("not a valid config name"), "{err}");
    let (status, _, err) = platform.cli(&repo, &["config:set", "PORT=80"]).await;
    assert!(status == 1 && err.contains("PORT is set by Skiff"), "{err}");
    let logs = eventually(Duration::from_secs(60), || async {
        let (_, out, _) = platform.cli(&repo, &["logs", "-n", "200"]).await;
        out.contains("greeting=hello world").then_some(out)
    });
    assert!(logs.await.is_some(), "v3's web container sees the config");

    // A one-off command runs with the app's config and exits with its own status.
    let (status, out, err) = platform
        .cli(&repo, &["run", "--", "echo \"$GREETING from $SKIFF_PROCESS_TYPE\"; ls /app/Procfile; exit 7"])
        .await;
    assert_eq!(status, 7, "{out}{err}");
    assert!(out.contains("hello world from run") && out.contains("/app/Procfile"), "{out}{err}");
    let (status, _, err) = platform.cli(&repo, &["run", "--timeout", "1", "--", "sleep 30"]).await;
    assert_eq!(status, 124, "{err}");
    assert!(err.contains("timed out after 1 s"), "{err}");
    let leftovers = platform.cli_ok(&repo, &["ps", "--json"]).await;
    assert!(!leftovers.contains("\"run\""), "one-off containers are removed: {leftovers}");

    // Scaling starts workers and more web containers.
    let out = platform.cli_ok(&repo, &["ps:scale", "web=2", "worker=1"]).await;
    assert!(out.contains("web=2") && out.contains("worker=1"), "{out}");
    let scaled = eventually(Duration::from_secs(60), || async {
        let web = running(&platform, &repo, "web").await;
        let worker = running(&platform, &repo, "worker").await;
        (web.len() == 2 && worker.len() == 1).then_some(())
    });
    assert!(scaled.await.is_some(), "{}", platform.cli_ok(&repo, &["ps"]).await);
    // `logs -f` prints new lines as they come, filtered by process type.
    let followed = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let follower = {
        let (context, followed) = (platform.cli_context(&repo), followed.clone());
        tokio::spawn(async move {
            let mut out = SharedWriter(followed);
            let args = ["skiff", "logs", "-f", "-n", "0", "--process", "worker"];
            skiff_cli::run(args, &context, &mut out, &mut std::io::sink()).await
        })
    };
    let ticks = eventually(Duration::from_secs(30), || async {
        let text = String::from_utf8_lossy(&followed.lock().unwrap()).into_owned();
        (text.matches("worker tick hello world").count() >= 2).then_some(text)
    })
    .await;
    follower.abort();
    let ticks = ticks.expect("the worker's output reaches `logs -f`");
    assert!(!ticks.contains("greeting="), "only worker lines: {ticks}");

    // A drain receives the app's lines as octet-counted RFC 5424 and reports what it delivered.
    let receiver = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("syslog://{}", receiver.local_addr().unwrap());
    let out = platform.cli_ok(&repo, &["drains:add", &url]).await;
    assert!(out.contains("Draining ops's logs to"), "{out}");
    let (status, _, err) = platform.cli(&repo, &["drains:add", &url]).await;
    assert!(status == 1 && err.contains("is a drain already"), "{err}");
    let (status, _, err) = platform.cli(&repo, &["drains:add", "syslog://logs.example.com"]).await;
    assert!(status == 1 && err.contains("needs a port"), "{err}");
    let received = tokio::time::timeout(Duration::from_secs(30), async {
        let (mut stream, _) = receiver.accept().await.unwrap();
        let mut seen = Vec::new();
        // The platform's own "added drain" line is taken in after the drain started, so it
        // is delivered too: no line accepted after `drains:add` returns is missed.
        let complete = |seen: &[u8]| {
            let text = String::from_utf8_lossy(seen);
            text.contains("worker tick hello world") && text.contains("added drain")
        };
        while !complete(&seen) {
            let mut chunk = [0u8; 4096];
            let n = tokio::io::AsyncReadExt::read(&mut stream, &mut chunk).await.unwrap();
            assert!(n > 0, "the drain hung up: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&chunk[..n]);
        }
        String::from_utf8_lossy(&seen).into_owned()
    })
    .await
    .expect("the worker's lines reach the drain within 30 s");
    assert!(received.contains(" skiff ops worker."), "{received}");
    let listed = eventually(Duration::from_secs(10), || async {
        let drains: Vec<serde_json::Value> =
            serde_json::from_str(&platform.cli_ok(&repo, &["drains", "--json"]).await).unwrap();
        (drains.len() == 1 && drains[0]["status"]["delivered"].as_u64() > Some(0)).then_some(())
    });
    assert!(listed.await.is_some(), "{}", platform.cli_ok(&repo, &["drains"]).await);
    let table = platform.cli_ok(&repo, &["drains"]).await;
    assert!(table.contains("DELIVERED") && table.contains(" ok"), "{table}");
    platform.cli_ok(&repo, &["drains:remove", &url]).await;
    assert_eq!(platform.cli_ok(&repo, &["drains", "--json"]).await.trim(), "[]");
    let out = platform.cli_ok(&repo, &["drains:add", "--platform", "https://127.0.0.1:1/ingest"]).await;
    assert!(out.contains("every app's logs"), "{out}");
    assert!(platform.cli_ok(&repo, &["drains", "--platform"]).await.contains("127.0.0.1:1/ingest"));

    let (status, _, err) = platform.cli(&repo, &["ps:scale", "nosuch=1"]).await;
    assert!(status == 1 && err.contains("has no `nosuch` process type"), "{err}");

    // A restart replaces the web containers; the app keeps serving.
    let before: Vec<String> =
        running(&platform, &repo, "web").await.iter().map(|p| p["id"].as_str().unwrap().to_owned()).collect();
    platform.cli_ok(&repo, &["ps:restart", "web"]).await;
    let replaced = eventually(Duration::from_secs(60), || async {
        let now = running(&platform, &repo, "web").await;
        let fresh = now.iter().all(|p| !before.contains(&p["id"].as_str().unwrap().to_owned()));
        (now.len() == 2 && fresh).then_some(())
    });
    assert!(replaced.await.is_some(), "{}", platform.cli_ok(&repo, &["ps"]).await);
    assert!(matches!(get_via_router(platform.router(), "ops.localhost").await, Some((200, _))));

    // Rolling back to v1 brings back v1's (empty) config as v6.
    let out = platform.cli_ok(&repo, &["releases:rollback", "v1"]).await;
    assert!(out.contains("rolled back to v1") && out.contains("(v6)"), "{out}");
    let config = platform.cli_ok(&repo, &["config", "--json"]).await;
    assert_eq!(config.trim(), "{}");
    let info = platform.cli_ok(&repo, &["releases:info", "v6"]).await;
    assert!(info.contains("web, worker"), "{info}");

    platform.cli_ok(&repo, &["ps:scale", "worker=0"]).await;
    let stopped = eventually(Duration::from_secs(60), || async {
        running(&platform, &repo, "worker").await.is_empty().then_some(())
    });
    assert!(stopped.await.is_some(), "{}", platform.cli_ok(&repo, &["ps"]).await);
    // Stop before the harness removes the containers, so no new one starts after.
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_release_that_cannot_start_fails_and_the_previous_keeps_serving() {
    let (mut platform, repo, key) = Platform::with_example("steady").await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    assert!(out.contains("remote: -----> v1 is up"), "the push waits for the release to run: {out}");

    std::fs::write(repo.join("Procfile"), "web: echo crashing; exit 3\n").unwrap();
    let (ok, out) = platform.git(&repo, &key, &["commit", "-qam", "crash"]);
    assert!(ok, "{out}");
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(!pushed, "a release that cannot start rejects the push: {out}");
    assert!(out.contains("v2 failed to start: web exited with status 3"), "{out}");

    let releases = platform.cli_ok(&repo, &["releases"]).await;
    assert!(releases.contains("failed") && releases.contains("web exited with status 3"), "{releases}");
    let (status, body) = get_via_router(platform.router(), "steady.localhost").await.expect("router answers");
    assert_eq!(status, 200, "v1 keeps serving: {body}");
    assert!(body.contains("Hello from Skiff"), "{body}");

    // The next good release goes out normally; `--wait` follows it until it runs.
    let (status, out, err) = platform.cli(&repo, &["config:set", "A=1", "--wait"]).await;
    assert_eq!(status, 0, "{out}{err}");
    assert!(out.contains("released v3"), "{out}");
    assert!(err.contains("Waiting for v3 of steady to start... up in"), "{err}");
    let releases = platform.cli_ok(&repo, &["releases", "--json"]).await;
    let releases: Vec<serde_json::Value> = serde_json::from_str(&releases).unwrap();
    assert_eq!(releases[0]["state"], "deployed", "{releases:?}");
    // An image that cannot run fails, and `--wait` says so with exit status 1.
    let missing = format!("{}/steady:missing", platform.addresses.registry.unwrap());
    let (status, out, err) = platform.cli(&repo, &["deploy", "--image", &missing, "--wait"]).await;
    assert_eq!(status, 1, "{out}{err}");
    assert!(err.contains("v4 failed: ") && err.contains("the previous release keeps serving"), "{err}");
    assert!(matches!(get_via_router(platform.router(), "steady.localhost").await, Some((200, _))));
    // Stop before the harness removes the containers, so no new one starts after.
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn limits_and_health_checks_shape_new_containers() {
    let (mut platform, repo, key) = Platform::with_example("shaped").await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");

    platform.cli_ok(&repo, &["limits:set", "web", "memory=64m", "cpu=0.5"]).await;
    let limited = eventually(Duration::from_secs(60), || async {
        let web = running(&platform, &repo, "web").await;
        let id = web.first()?["id"].as_str()?.to_owned();
        let inspect = Command::new("docker")
            .args(["inspect", "--format", "{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}", &id])
            .output()
            .ok()?;
        let text = String::from_utf8_lossy(&inspect.stdout).trim().to_owned();
        (web.len() == 1 && text == "67108864 500000000").then_some(())
    });
    assert!(limited.await.is_some(), "the replaced container has the limits");
    assert!(platform.cli_ok(&repo, &["limits"]).await.contains("64m"));

    // A path check that passes replaces the containers; one that cannot fails the next release.
    platform.cli_ok(&repo, &["healthchecks:set", "web", "--http", "/index.html"]).await;
    platform.cli_ok(&repo, &["healthchecks:set", "web", "--http", "/missing", "--timeout", "2"]).await;
    platform.cli_ok(&repo, &["config:set", "V=2"]).await;
    let failed = eventually(Duration::from_secs(60), || async {
        let releases = platform.cli_ok(&repo, &["releases"]).await;
        releases.contains("did not answer /missing with a 2xx or 3xx status on $PORT within 2 s").then_some(())
    });
    assert!(failed.await.is_some(), "{}", platform.cli_ok(&repo, &["releases"]).await);
    assert!(matches!(get_via_router(platform.router(), "shaped.localhost").await, Some((200, _))), "v1 still serves");
    let (status, _, err) = platform.cli(&repo, &["healthchecks:set", "web", "--http", "no-slash"]).await;
    assert!(status == 1 && err.contains("not a request path"), "{err}");
    // Stop before the harness removes the containers, so no new one starts after.
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_crashing_process_type_is_restarted_with_growing_pauses() {
    let (mut platform, repo, key) = Platform::with_example("crashy").await;
    std::fs::write(
        repo.join("Procfile"),
        "web: exec httpd -f -p \"$PORT\" -h /app/public\nworker: echo boom; exit 1\n",
    )
    .unwrap();
    let (pushed, out) = platform.commit_and_push(&repo, &key, "crashing worker");
    assert!(pushed, "{out}");
    platform.cli_ok(&repo, &["ps:scale", "worker=1"]).await;
    // With a reconcile pass every second, restarting at once would mean a dozen attempts
    // in 12 s; with pauses of 0, 2, 4 and 8 passes there are five or six.
    tokio::time::sleep(Duration::from_secs(12)).await;
    let trail = platform.cli_ok(&repo, &["events", "-n", "200"]).await;
    let attempts = trail.lines().filter(|l| l.contains("worker of v1 failed to start: worker")).count();
    assert!((3..=7).contains(&attempts), "{attempts} attempts: {trail}");
    assert!(trail.contains("crashes in a row, starting another in"), "{trail}");
    let ps = platform.cli_ok(&repo, &["ps"]).await;
    assert!(ps.contains("crashed: worker exited with status 1") && ps.contains("in a row; next start"), "{ps}");
    let (status, _) = get_via_router(platform.router(), "crashy.localhost").await.unwrap();
    assert_eq!(status, 200, "web keeps serving");
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_request_in_flight_during_a_deploy_finishes() {
    let platform = Platform::start_with_settings(|settings| settings.drain_seconds = 6).await;
    let (mut platform, repo, key) = platform.with_app("inflight").await;
    // A page that takes three seconds to answer, served by httpd's CGI.
    let cgi = repo.join("public/cgi-bin");
    std::fs::create_dir_all(&cgi).unwrap();
    std::fs::write(
        cgi.join("slow"),
        "#!/bin/sh\nsleep 3\necho 'Content-Type: text/plain'\necho\necho slow page done\n",
    )
    .unwrap();
    let status = Command::new("chmod").arg("755").arg(cgi.join("slow")).status().unwrap();
    assert!(status.success());
    let (pushed, out) = platform.commit_and_push(&repo, &key, "slow page");
    assert!(pushed, "{out}");
    let router = platform.router();
    let slow = tokio::spawn(async move {
        let response = reqwest::Client::new()
            .get(format!("http://{router}/cgi-bin/slow"))
            .header("Host", "inflight.localhost")
            .timeout(Duration::from_secs(30))
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let status = response.status().as_u16();
        Ok::<_, String>((status, response.text().await.unwrap_or_default()))
    });
    // A new release goes out while the slow request is on v1's container.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, out, err) = platform.cli(&repo, &["config:set", "V=2", "--wait"]).await;
    assert_eq!(status, 0, "{out}{err}");
    let (status, body) = slow.await.unwrap().expect("the slow request is answered");
    assert_eq!((status, body.trim()), (200, "slow page done"), "v1 drained before it stopped");
    platform.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn published_addressing_reaches_containers_through_a_loopback_port() {
    let (platform, repo, key) = Platform::start_with_settings(|settings| {
        settings.docker_addressing = skiff_controller::scheduler::Addressing::Published;
    })
    .await
    .with_app("old-path")
    .await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    let served = eventually(Duration::from_secs(30), || async {
        matches!(get_via_router(platform.router(), "old-path.localhost").await, Some((200, _))).then_some(())
    });
    assert!(served.await.is_some(), "the router serves the app through its published port");
    let listed = Command::new("docker")
        .args(["ps", "--format", "{{.Ports}}", "--filter", "label=skiff.app=old-path"])
        .args(["--filter", &format!("label=skiff.platform={}", platform.platform_id)])
        .output()
        .unwrap();
    let ports = String::from_utf8_lossy(&listed.stdout);
    assert!(ports.contains("127.0.0.1:") && ports.contains("->5000/tcp"), "published on loopback only: {ports}");
}
