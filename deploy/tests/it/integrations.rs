//! Skiff and a team's tooling, with real pushes on the real engine: webhooks to a receiver
//! the test runs (signatures checked; down for a while, then back: nothing lost, nothing
//! twice), scheduled jobs driven by a clock the test moves forward, and builds from a
//! repository a real `git daemon` serves, started by its host's signed push events.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use skiff_api::webhook::verify;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::harness::{Platform, eventually};

const SECRET: &str = "a-receivers-shared-secret";

/// A delivery as a receiver takes it in: its signature header and its body.
type Delivery = (String, Vec<u8>);

/// Deliveries a receiver took in.
#[derive(Clone, Default)]
struct Receiver(Arc<Mutex<Vec<Delivery>>>);

impl Receiver {
    /// Answers 200 to every request on `listener`, one request per connection.
    fn serve(listener: TcpListener) -> Self {
        let receiver = Self::default();
        let kept = receiver.0.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                if let Some(request) = read_request(&mut stream).await {
                    kept.lock().unwrap().push(request);
                }
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
            }
        });
        receiver
    }

    /// The events taken in, each checked against its signature.
    fn events(&self) -> Vec<Value> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let now = i64::try_from(now).unwrap();
        let kept = self.0.lock().unwrap().clone();
        kept.iter()
            .map(|(signature, body)| {
                verify(SECRET, signature, body, now, 300).expect("signed with the webhook's secret");
                serde_json::from_slice(body).unwrap()
            })
            .collect()
    }
}

/// One HTTP request's `Skiff-Signature` and body (bounded, as a receiver would).
async fn read_request(stream: &mut tokio::net::TcpStream) -> Option<Delivery> {
    let mut taken = Vec::new();
    let mut buffer = [0u8; 8192];
    let head_end = loop {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await.ok()?.ok()?;
        if read == 0 || taken.len() > 1 << 20 {
            return None;
        }
        taken.extend_from_slice(&buffer[..read]);
        if let Some(end) = taken.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
    };
    let head = String::from_utf8_lossy(&taken[..head_end]).to_string();
    let header = |name: &str| {
        head.lines().find_map(|line| {
            let (key, value) = line.split_once(':')?;
            key.trim().eq_ignore_ascii_case(name).then(|| value.trim().to_owned())
        })
    };
    let length: usize = header("content-length")?.parse().ok()?;
    while taken.len() < head_end + length {
        let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await.ok()?.ok()?;
        if read == 0 {
            return None;
        }
        taken.extend_from_slice(&buffer[..read]);
    }
    Some((header("skiff-signature")?, taken[head_end..head_end + length].to_vec()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_push_reaches_a_webhook_that_was_down_in_order_and_once() {
    let (platform, repo, key) = Platform::with_example("hooked").await;
    // The receiver is down: its port is known, nothing listens yet.
    let port = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/skiff");
    let added =
        platform.cli_ok(&repo, &["webhooks:add", &url, "--events", "build,release,deploy", "--secret", SECRET]).await;
    assert!(added.contains(&format!("Sending hooked's events to {url} (webhook 1)")), "{added}");
    let listed = platform.cli_ok(&repo, &["webhooks"]).await;
    assert!(listed.contains("build,release,deploy") && !listed.contains(SECRET), "{listed}");

    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    platform.cli_ok(&repo, &["config:set", "GREETING=hello", "--wait"]).await;
    let retried = eventually(Duration::from_secs(30), || async {
        let deliveries = platform.cli_ok(&repo, &["webhooks:deliveries", "1", "--json"]).await;
        let deliveries: Vec<Value> = serde_json::from_str(&deliveries).ok()?;
        deliveries.iter().any(|d| d["attempts"].as_u64() >= Some(2)).then_some(deliveries)
    })
    .await;
    let retried = retried.expect("the first delivery is retried while the receiver is down");
    assert!(retried.iter().all(|d| d["state"] == "pending"), "{retried:?}");

    let receiver = Receiver::serve(TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], port))).await.unwrap());
    let up = |events: &[Value]| events.iter().any(|e| e["message"] == "Release v2 is up");
    let all = eventually(Duration::from_secs(60), || async { up(&receiver.events()).then_some(()) }).await;
    assert!(all.is_some(), "every event once the receiver is back: {:?}", receiver.events());
    tokio::time::sleep(Duration::from_secs(3)).await;
    let events = receiver.events();
    let seen: Vec<String> = events.iter().map(|e| format!("{} {}", e["type"], e["message"])).collect();
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in the order they happened, none twice: {seen:#?}");
    let deliveries = platform.cli_ok(&repo, &["webhooks:deliveries", "1", "--json"]).await;
    let deliveries: Vec<Value> = serde_json::from_str(&deliveries).unwrap();
    assert_eq!(deliveries.len(), events.len(), "each delivery received once: {seen:#?}");
    assert!(deliveries.iter().all(|d| d["state"] == "delivered" && d["status"] == 200), "{deliveries:?}");
    assert!(events.iter().all(|e| ["build", "release", "deploy"].contains(&e["type"].as_str().unwrap())), "{seen:#?}");
    let milestones: Vec<&str> = events
        .iter()
        .filter_map(|e| e["message"].as_str())
        .filter(|m| m.starts_with("Build") || m.starts_with("Release"))
        .collect();
    assert_eq!(milestones.len(), 4, "{seen:#?}");
    assert!(milestones[0].starts_with("Build 1 succeeded for admin"), "{seen:#?}");
    assert!(milestones[1].starts_with("Release v1 created: admin deployed"), "{seen:#?}");
    assert_eq!(milestones[2..], ["Release v1 is up", "Release v2 is up"], "{seen:#?}");
    let release = events.iter().find(|e| e["type"] == "release").unwrap();
    assert_eq!(
        (&release["data"]["version"], &release["actor"], &release["app"]),
        (&Value::from(1), &Value::from("admin"), &Value::from("hooked"))
    );

    let table = platform.cli_ok(&repo, &["webhooks:deliveries", "1"]).await;
    assert_eq!(table.matches("delivered").count(), events.len(), "{table}");
    platform.cli_ok(&repo, &["webhooks:remove", "1"]).await;
    assert!(platform.cli_ok(&repo, &["webhooks"]).await.lines().count() <= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_scheduled_job_runs_in_the_apps_release_and_its_failure_reaches_a_webhook() {
    let clock = skiff_controller::clock::Clock::default();
    let platform = Platform::start_with_settings(|settings| settings.clock = clock.clone()).await;
    let (platform, repo, key) = platform.with_app("ticking").await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/skiff", listener.local_addr().unwrap());
    let receiver = Receiver::serve(listener);
    platform.cli_ok(&repo, &["webhooks:add", &url, "--events", "cron", "--secret", SECRET]).await;
    platform.cli_ok(&repo, &["config:set", "WHO=cron", "--wait"]).await;

    let added = platform
        .cli_ok(&repo, &["cron:add", "@hourly", "--", "sh", "-c", "echo tick from $WHO in $SKIFF_RELEASE"])
        .await;
    assert!(added.contains("Scheduled job 1 on ticking"), "{added}");
    let failing =
        platform.cli_ok(&repo, &["cron:add", "*/30 * * * *", "--", "sh", "-c", "echo broken >&2; exit 4"]).await;
    assert!(failing.contains("Scheduled job 2"), "{failing}");
    // The test's clock, not the machine's, brings the next hour: each job is due once,
    // and not again while the test runs.
    clock.advance(Duration::from_secs(3601));
    let logged = eventually(Duration::from_secs(60), || async {
        let logs = platform.cli_ok(&repo, &["logs", "-n", "200"]).await;
        logs.contains("tick from cron in v2").then_some(logs)
    })
    .await;
    let logs = logged.expect("the job's output is in the app's logs, from its current release (v2, with WHO)");
    assert!(logs.lines().any(|l| l.contains("cron") && l.contains("tick from cron")), "as process `cron`: {logs}");

    let ran = eventually(Duration::from_secs(60), || async {
        let jobs = platform.cli_ok(&repo, &["cron", "--json"]).await;
        let jobs: Vec<Value> = serde_json::from_str(&jobs).ok()?;
        let ended = |job: &Value| ["succeeded", "failed"].contains(&job["last_run"]["state"].as_str().unwrap_or(""));
        jobs.iter().all(ended).then_some(jobs)
    })
    .await
    .expect("both jobs ran and ended");
    assert_eq!(
        (ran[0]["last_run"]["state"].as_str(), ran[0]["last_run"]["exit_status"].as_i64()),
        (Some("succeeded"), Some(0))
    );
    assert_eq!(
        (ran[1]["last_run"]["state"].as_str(), ran[1]["last_run"]["exit_status"].as_i64()),
        (Some("failed"), Some(4))
    );
    let table = platform.cli_ok(&repo, &["cron"]).await;
    assert!(table.contains("failed: exited with status 4"), "{table}");

    let told = eventually(Duration::from_secs(30), || async { (!receiver.events().is_empty()).then_some(()) }).await;
    assert!(told.is_some(), "the failure reaches the webhook");
    // Only failures, each of the failing job (once, unless a half hour of the machine's
    // own clock passed meanwhile and it ran again).
    let events = receiver.events();
    for event in &events {
        assert_eq!(
            (&event["type"], &event["data"]["job"], &event["data"]["exit_status"]),
            (&json!("cron"), &json!(2), &json!(4))
        );
        assert!(event["data"]["output"].as_str().unwrap().contains("broken"), "{events:?}");
    }
    platform.cli_ok(&repo, &["cron:remove", "1"]).await;
    assert!(!platform.cli_ok(&repo, &["cron"]).await.contains("tick from"));
}

/// `git daemon` serving the bare repositories under `base` on a free 127.0.0.1 port.
struct GitDaemon {
    child: std::process::Child,
    port: u16,
}

impl GitDaemon {
    fn start(base: &std::path::Path) -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
        // git-daemon itself, not `git daemon`, which would leave it behind when killed.
        let exec_path = std::process::Command::new("git").arg("--exec-path").output().expect("git runs").stdout;
        let exec_path = String::from_utf8(exec_path).unwrap();
        let child = std::process::Command::new(std::path::Path::new(exec_path.trim()).join("git-daemon"))
            .args(["--reuseaddr", "--listen=127.0.0.1", "--export-all"])
            .arg(format!("--port={port}"))
            .arg(format!("--base-path={}", base.display()))
            .arg(base)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("git daemon runs");
        // Killed and waited for on drop, however this ends.
        let daemon = Self { child, port };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return daemon;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("git daemon did not listen on {port}");
    }
}

impl Drop for GitDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which host's format a push event takes.
#[derive(Clone, Copy)]
enum GitHost {
    GitHub,
    Gitea,
    GitLab,
}

/// A push event for `after` on main in `host`'s format, proven with [`SECRET`].
async fn push_event(controller: &str, app: &str, host: GitHost, delivery: &str, after: &str) -> (u16, Value) {
    use hmac::Mac as _;
    let body = serde_json::json!({"ref": "refs/heads/main", "before": "0".repeat(40), "after": after}).to_string();
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
    mac.update(body.as_bytes());
    let signature: String = mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect();
    let request = reqwest::Client::new().post(format!("{controller}/v2/hooks/scm/{app}"));
    let request = match host {
        GitHost::GitHub => request
            .header("X-GitHub-Event", "push")
            .header("X-GitHub-Delivery", delivery)
            .header("X-Hub-Signature-256", format!("sha256={signature}")),
        GitHost::Gitea => request
            .header("X-Gitea-Event", "push")
            .header("X-Gitea-Delivery", delivery)
            .header("X-Gitea-Signature", signature),
        GitHost::GitLab => request
            .header("X-Gitlab-Event", "Push Hook")
            .header("X-Gitlab-Event-UUID", delivery)
            .header("X-Gitlab-Token", SECRET),
    };
    let answer = request.header("Content-Type", "application/json").body(body).send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

/// A GitHub push event for `after` on main.
async fn github_push(controller: &str, app: &str, delivery: &str, after: &str) -> (u16, Value) {
    push_event(controller, app, GitHost::GitHub, delivery, after).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_push_to_the_connected_repository_is_built_and_served_newest_last() {
    let (platform, repo, key) = Platform::with_example("sourced").await;
    let base = tempfile::tempdir().unwrap();
    let upstream = base.path().join("sourced.git");
    let (ok, out) = platform.git(&repo, &key, &["clone", "-q", "--bare", ".", upstream.to_str().unwrap()]);
    assert!(ok, "{out}");
    let daemon = GitDaemon::start(base.path());
    let url = format!("git://127.0.0.1:{}/sourced.git", daemon.port);
    let connected = platform.cli_ok(&repo, &["apps:connect", "--repo", &url, "--secret", SECRET]).await;
    assert!(connected.contains("Hook URL: ") && connected.contains("/v2/hooks/scm/sourced"), "{connected}");

    // A commit pushed to the repository (not to Skiff), then its host's event.
    let commit = |text: &str| {
        std::fs::write(repo.join("public/index.html"), format!("<h1>{text}</h1>\n")).unwrap();
        let (ok, out) = platform.git(&repo, &key, &["commit", "-qam", text]);
        assert!(ok, "{out}");
        let (ok, out) = platform.git(&repo, &key, &["push", "-q", upstream.to_str().unwrap(), "main"]);
        assert!(ok, "{out}");
        platform.git(&repo, &key, &["rev-parse", "HEAD"]).1.trim().to_owned()
    };
    let router = platform.router();
    let serves = |text: &'static str| async move {
        eventually(Duration::from_secs(120), || async move {
            let (status, body) = crate::harness::get_via_router(router, "sourced.localhost").await?;
            (status == 200 && body.contains(text)).then_some(())
        })
        .await
        .is_some()
    };
    let controller = platform.controller_url();
    let one = commit("one");
    let (status, answer) = github_push(&controller, "sourced", "e-1", &one).await;
    assert_eq!(status, 202, "{answer}");
    assert!(serves("one").await, "the pushed commit is built and served");
    let builds = platform.cli_ok(&repo, &["builds", "--json"]).await;
    assert!(builds.contains(&one), "the build is recorded with its commit: {builds}");

    // Two pushes in quick succession: the newest is what serves, after the older.
    let two = commit("two");
    let three = commit("three");
    assert_eq!(github_push(&controller, "sourced", "e-2", &two).await.0, 202);
    assert_eq!(github_push(&controller, "sourced", "e-3", &three).await.0, 202);
    assert!(serves("three").await);
    // An event for an older commit that comes late builds nothing.
    assert_eq!(github_push(&controller, "sourced", "e-4", &two).await.0, 202);
    assert_eq!(github_push(&controller, "sourced", "e-3", &three).await.0, 409, "a replayed delivery");
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(serves("three").await, "still the newest");
    let releases = platform.cli_ok(&repo, &["releases", "--json"]).await;
    let releases: Vec<Value> = serde_json::from_str(&releases).unwrap();
    let version_of =
        |sha: &str| releases.iter().filter(|r| r["git_sha"] == sha).map(|r| r["version"].as_u64().unwrap()).max();
    let newest = version_of(&three).expect("three was released");
    assert_eq!(
        releases.iter().map(|r| r["version"].as_u64().unwrap()).max(),
        Some(newest),
        "nothing after the newest: {releases:?}"
    );
    assert!(version_of(&two).is_none_or(|v| v < newest), "two, if built, came before three");

    // Gitea's and GitLab's events build as GitHub's do.
    let four = commit("four");
    assert_eq!(push_event(&controller, "sourced", GitHost::Gitea, "e-5", &four).await.0, 202);
    assert!(serves("four").await, "built from Gitea's event");
    let five = commit("five");
    assert_eq!(push_event(&controller, "sourced", GitHost::GitLab, "e-6", &five).await.0, 202);
    assert!(serves("five").await, "built from GitLab's event");

    // A rebuild by hand of the branch's newest commit.
    let rebuilt = platform.cli_ok(&repo, &["builds:create"]).await;
    assert!(rebuilt.contains("building"), "{rebuilt}");
    drop(daemon);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn an_ssh_repository_is_fetched_with_the_deploy_key_skiff_made() {
    let (platform, repo, key) = Platform::with_example("upstream").await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    let head = platform.git(&repo, &key, &["rev-parse", "HEAD"]).1.trim().to_owned();
    // The repository: Skiff's own copy of `upstream`, reached over ssh as any git host's.
    let url = platform.git(&repo, &key, &["remote", "get-url", "skiff"]).1.trim().to_owned();
    assert!(url.starts_with("ssh://"), "{url}");
    let home = repo.parent().unwrap().to_owned();
    platform.cli_ok(&home, &["apps:create", "mirror"]).await;
    let connected = platform.cli_ok(&home, &["apps:connect", "-a", "mirror", "--repo", &url, "--secret", SECRET]).await;
    let deploy_key = connected
        .lines()
        .find_map(|line| line.strip_prefix("Deploy key (add it to the repository, read-only): "))
        .unwrap_or_else(|| panic!("a deploy key is shown: {connected}"))
        .to_owned();
    // Before the key is known to the repository's host, the fetch is refused.
    let (status, _) = github_push(&platform.controller_url(), "mirror", "m-1", &head).await;
    assert_eq!(status, 202);
    tokio::time::sleep(Duration::from_secs(3)).await;
    let builds = platform.cli_ok(&home, &["builds", "-a", "mirror", "--json"]).await;
    assert_eq!(builds.trim(), "[]", "nothing fetched without the key: {builds}");
    // The repository's owner adds the key (here: as an SSH key of the user who reads it).
    std::fs::write(home.join("mirror.pub"), format!("{deploy_key}\n")).unwrap();
    platform.cli_ok(&home, &["keys:add", home.join("mirror.pub").to_str().unwrap()]).await;
    let (status, answer) = github_push(&platform.controller_url(), "mirror", "m-2", &head).await;
    assert_eq!(status, 202, "{answer}");
    let router = platform.router();
    let served = eventually(Duration::from_secs(120), || async move {
        let (status, body) = crate::harness::get_via_router(router, "mirror.localhost").await?;
        (status == 200 && body.contains("Hello from Skiff")).then_some(())
    });
    assert!(served.await.is_some(), "fetched over ssh with the deploy key, built and served");
}
