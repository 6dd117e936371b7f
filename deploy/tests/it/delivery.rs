//! Delivery with real pushes on the real engine.
//!
//! The release phase: a Procfile's `release` command runs once for every new release, in a
//! container of that release, before it gets any traffic; its output reaches the pusher
//! and the logs; when it fails the release fails and the one before keeps serving.
//!
//! `app.json`: its formation, env and health checks apply as a push is released; a push
//! that lacks a required key, or whose `app.json` does not read, is refused.
//!
//! Pipelines: a build pushed to staging is promoted to production, the same image by
//! digest with production's config, without a build; a branch pushed to an app of a
//! pipeline with review apps on gets an app of its own, which deleting the branch destroys.

use std::time::Duration;

use crate::harness::{Platform, eventually, get_via_router};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_release_command_runs_once_before_traffic_moves_and_a_failing_one_keeps_the_old_release() {
    let (platform, repo, key) = Platform::with_example("migrating").await;
    let procfile = "web: exec httpd -f -p \"$PORT\" -h /app/public\n\
                    release: echo \"migrating to $SKIFF_RELEASE\"; echo \"schema ready\" >&2; [ -z \"$BREAK_MIGRATION\" ]\n";
    std::fs::write(repo.join("Procfile"), procfile).unwrap();
    let (pushed, out) = platform.commit_and_push(&repo, &key, "migrates on release");
    assert!(pushed, "{out}");
    // The command's output (standard output and error, in whichever order they came)
    // reaches the pusher while it runs, before the release is up.
    let (running, up) = (out.find("remote: -----> Running the release command"), out.find("v1 is up"));
    let (Some(running), Some(up)) = (running, up) else { panic!("the release command ran, then v1 came up: {out}") };
    for line in ["remote:        migrating to v1", "remote:        schema ready"] {
        let at = out.find(line).unwrap_or_else(|| panic!("`{line}` in {out}"));
        assert!(running < at && at < up, "`{line}` between the command's start and v1 up: {out}");
    }
    assert!(matches!(get_via_router(platform.router(), "migrating.localhost").await, Some((200, _))));
    let ps = platform.cli_ok(&repo, &["ps"]).await;
    assert!(!ps.contains("release"), "nothing keeps running the release command: {ps}");

    // A config change is a new release: the command runs again, once; when it fails, the
    // release fails and v2 keeps serving.
    platform.cli_ok(&repo, &["config:set", "SCHEMA=2", "--wait"]).await;
    platform.cli_ok(&repo, &["config:set", "BREAK_MIGRATION=1"]).await;
    let failed = eventually(Duration::from_secs(60), || async {
        let out = platform.cli_ok(&repo, &["releases", "--json"]).await;
        let releases: Vec<serde_json::Value> = serde_json::from_str(&out).ok()?;
        let v3 = releases.iter().find(|r| r["version"] == 3)?;
        (v3["state"] == "failed").then(|| v3["failure"].as_str().unwrap_or_default().to_owned())
    })
    .await;
    assert_eq!(failed.as_deref(), Some("the release command exited with status 1"));
    let containers = platform.containers();
    assert!(containers.iter().all(|(_, release, _)| release != "3"), "no container of v3 ever started: {containers:?}");
    assert!(matches!(get_via_router(platform.router(), "migrating.localhost").await, Some((200, _))));

    let info = platform.cli_ok(&repo, &["releases:info", "v3"]).await;
    assert!(info.contains("release: failed") && info.contains("migrating to v3"), "{info}");

    let trail = platform.cli_ok(&repo, &["events", "-n", "200"]).await;
    for version in 1..=3 {
        let runs = trail.matches(&format!("Release v{version}: running its release command")).count();
        assert_eq!(runs, 1, "v{version}'s command ran once: {trail}");
    }
    assert!(trail.contains("Release v3 failed: the release command exited with status 1"), "{trail}");
    let logged = eventually(Duration::from_secs(30), || async {
        let logs = platform.cli_ok(&repo, &["logs", "-n", "500"]).await;
        (1..=3).all(|v| logs.contains(&format!("migrating to v{v}"))).then_some(())
    });
    assert!(logged.await.is_some(), "every run's output reaches the app's logs");
}

/// Runs `docker` with `args`; its standard output, trimmed.
fn docker(args: &[&str]) -> String {
    let out = std::process::Command::new("docker").args(args).output().expect("docker");
    assert!(out.status.success(), "docker {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// A container the test started, removed when dropped.
struct Started(String);

impl Drop for Started {
    fn drop(&mut self) {
        let _ = std::process::Command::new("docker").args(["rm", "-f", &self.0]).output();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn what_the_release_command_migrates_is_what_the_new_release_serves() {
    let (platform, repo, key) = Platform::with_example("migrated").await;
    let procfile = "web: exec httpd -f -p \"$PORT\" -h /app/public\n\
                    release: [ -z \"$DATABASE_URL\" ] || wget -qO- \"$DATABASE_URL/cgi-bin/migrate?to-$SKIFF_RELEASE\"\n";
    std::fs::write(repo.join("Procfile"), procfile).unwrap();
    let scripts = [
        (
            "public/cgi-bin/schema",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'; wget -qO- \"$DATABASE_URL/cgi-bin/schema\"\n",
        ),
        // A database of sorts for the store beside the app: `migrate` records the migration
        // its query names, `schema` lists those recorded.
        (
            "store/cgi-bin/migrate",
            "#!/bin/sh\necho \"$QUERY_STRING\" >> /tmp/migrations\nprintf 'Content-Type: text/plain\\r\\n\\r\\nmigrated %s\\n' \"$QUERY_STRING\"\n",
        ),
        (
            "store/cgi-bin/schema",
            "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'; cat /tmp/migrations 2>/dev/null\n",
        ),
    ];
    for (path, script) in scripts {
        let path = repo.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, script).unwrap();
        std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    }
    let (pushed, out) = platform.commit_and_push(&repo, &key, "migrates a store");
    assert!(pushed, "{out}");

    // The store runs beside the app on its network, from the app's own image (as a
    // database add-on would), and the app is told where with a config var. The engine gets
    // the image just after the release started (in a warm container, from its stack).
    let network = platform.app_network("migrated");
    let releases: serde_json::Value =
        serde_json::from_str(&platform.cli_ok(&repo, &["releases", "--json"]).await).unwrap();
    let image = format!("{}/{}", platform.addresses.registry.unwrap(), releases[0]["image"].as_str().unwrap());
    let pulled = eventually(Duration::from_secs(30), || async {
        let id = std::process::Command::new("docker").args(["inspect", "--format", "{{.Id}}", &image]).output();
        let id = String::from_utf8_lossy(&id.ok()?.stdout).trim().to_owned();
        id.starts_with("sha256:").then_some(id)
    });
    let image = pulled.await.expect("the engine holds the release's image");
    let store = Started(docker(&[
        "run",
        "-d",
        "--network",
        &network,
        "--entrypoint",
        "httpd",
        &image,
        "-f",
        "-p",
        "8080",
        "-h",
        "/app/store",
    ]));
    let template = format!("{{{{(index .NetworkSettings.Networks \"{network}\").IPAddress}}}}");
    let address = docker(&["inspect", "--format", &template, &store.0]);
    platform.cli_ok(&repo, &["config:set", &format!("DATABASE_URL=http://{address}:8080"), "--wait"]).await;
    platform.cli_ok(&repo, &["config:set", "SCHEMA=3", "--wait"]).await;

    // Each release's migration ran once, before it served, and the web process reads it.
    let answer = reqwest::Client::new()
        .get(format!("http://{}/cgi-bin/schema", platform.router()))
        .header("Host", "migrated.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200);
    assert_eq!(answer.text().await.unwrap().trim(), "to-v2\nto-v3", "v2's and v3's migrations, once each");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn app_json_sets_formation_env_and_health_checks_and_a_bad_one_refuses_the_push() {
    let (platform, repo, key) = Platform::with_example("manifest").await;
    let procfile = "web: exec httpd -f -p \"$PORT\" -h /app/public\nworker: exec sleep 3600\n";
    std::fs::write(repo.join("Procfile"), procfile).unwrap();
    let manifest = r#"{
  "name": "manifest", "description": "keys Skiff does not know are ignored",
  "formation": {"web": {"quantity": 2}, "worker": {"quantity": 1}},
  "env": {
    "GREETING": "hello",
    "SECRET_KEY": {"description": "signs sessions", "generator": "secret"},
    "DATABASE_URL": {"description": "where the data lives", "required": true}
  },
  "healthchecks": {"web": [{"type": "startup", "path": "/index.html", "attempts": 2}]}
}"#;
    std::fs::write(repo.join("app.json"), manifest).unwrap();
    let (pushed, out) = platform.commit_and_push(&repo, &key, "app.json");
    assert!(!pushed, "a required key is missing: {out}");
    assert!(out.contains("app.json requires config the app lacks: DATABASE_URL (where the data lives)"), "{out}");

    platform.cli_ok(&repo, &["config:set", "DATABASE_URL=postgres://db.internal/shop"]).await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed && out.contains("v1 is up"), "{out}");
    assert_eq!(platform.cli_ok(&repo, &["config:get", "GREETING"]).await.trim(), "hello");
    let secret = platform.cli_ok(&repo, &["config:get", "SECRET_KEY"]).await.trim().to_owned();
    assert!(secret.len() == 64 && secret.bytes().all(|b| b.is_ascii_hexdigit()), "{secret}");
    let running = eventually(Duration::from_secs(60), || async {
        let ps = platform.cli_ok(&repo, &["ps"]).await;
        let count = |kind: &str| ps.lines().filter(|l| l.starts_with(kind) && l.contains("running")).count();
        (count("web") == 2 && count("worker") == 1).then_some(())
    });
    assert!(running.await.is_some(), "app.json's formation: web=2 worker=1");
    let checks = platform.cli_ok(&repo, &["healthchecks"]).await;
    assert!(checks.contains("/index.html"), "{checks}");

    // Another push keeps what the app has: its scale, and the secret made once.
    platform.cli_ok(&repo, &["ps:scale", "web=1", "--wait"]).await;
    std::fs::write(repo.join("app.json"), manifest.replace("\"quantity\": 2", "\"quantity\": 3")).unwrap();
    let (pushed, out) = platform.commit_and_push(&repo, &key, "more web");
    assert!(pushed, "{out}");
    assert_eq!(platform.cli_ok(&repo, &["config:get", "SECRET_KEY"]).await.trim(), secret);
    let ps = platform.cli_ok(&repo, &["ps"]).await;
    let web_of_v2 = ps.lines().filter(|l| l.starts_with("web") && l.contains(" v2 ")).count();
    assert_eq!(web_of_v2, 1, "web stays scaled as the app had it: {ps}");

    // A manifest that does not read refuses the push, saying where.
    std::fs::write(repo.join("app.json"), "{\n  \"formation\": {\"web\": {\"quantity\": 2,}}\n}\n").unwrap();
    let (pushed, out) = platform.commit_and_push(&repo, &key, "broken app.json");
    assert!(!pushed, "{out}");
    assert!(out.contains("app.json is not valid: trailing comma (line 2, column 39)"), "{out}");
    assert!(out.contains("the running release is unchanged"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_staging_build_is_promoted_to_production_by_digest_with_productions_config() {
    let (platform, repo, key) = Platform::with_example("shop-staging").await;
    let procfile = "web: echo \"$GREETING\" > /app/public/greeting.txt; exec httpd -f -p \"$PORT\" -h /app/public\n";
    std::fs::write(repo.join("Procfile"), procfile).unwrap();
    platform.cli_ok(&repo, &["config:set", "GREETING=hello from staging"]).await;
    let (pushed, out) = platform.commit_and_push(&repo, &key, "greets");
    assert!(pushed, "{out}");
    platform.cli_ok(&repo, &["apps:create", "shop-prod", "--no-remote"]).await;
    platform.cli_ok(&repo, &["config:set", "-a", "shop-prod", "GREETING=hello from production"]).await;
    platform.cli_ok(&repo, &["pipelines:create", "shop"]).await;
    platform.cli_ok(&repo, &["pipelines:add", "shop", "--stage", "staging"]).await;
    platform.cli_ok(&repo, &["pipelines:add", "shop", "-a", "shop-prod", "--stage", "production"]).await;

    let started = std::time::Instant::now();
    let out = platform.cli_ok(&repo, &["pipelines:promote", "--wait"]).await;
    let took = started.elapsed().as_secs_f64();
    assert!(out.contains("Promoted to shop-prod: v1 (admin promoted v1 of shop-staging"), "{out}");
    eprintln!("pipelines:promote to serving: {took:.2} s");
    let greeting = eventually(Duration::from_secs(30), || async {
        let answer = reqwest::Client::new()
            .get(format!("http://{}/greeting.txt", platform.router()))
            .header("Host", "shop-prod.localhost")
            .send()
            .await
            .ok()?;
        (answer.status() == 200).then_some(())?;
        Some(answer.text().await.ok()?.trim().to_owned())
    });
    assert_eq!(greeting.await.as_deref(), Some("hello from production"));

    let digest = |app: &'static str| {
        let platform = &platform;
        let repo = &repo;
        async move {
            let out = platform.cli_ok(repo, &["releases:info", "-a", app, "v1", "--json"]).await;
            let release: serde_json::Value = serde_json::from_str(&out).unwrap();
            let image = release["image"].as_str().unwrap().to_owned();
            image.split_once('@').map(|(_, d)| d.to_owned()).unwrap_or(image)
        }
    };
    assert_eq!(digest("shop-staging").await, digest("shop-prod").await, "the same image, by digest");
    let builds = platform.cli_ok(&repo, &["builds", "-a", "shop-prod"]).await;
    assert!(!builds.contains("succeeded"), "nothing was built for production: {builds}");
    let info = platform.cli_ok(&repo, &["pipelines:info", "shop"]).await;
    assert!(info.contains("staging") && info.contains("production") && info.contains("shop-prod"), "{info}");

    // An app on another stack does not take the build.
    let other = platform.dir.path().join("rootfs");
    platform.cli_ok(&repo, &["stacks:import", "other", other.to_str().unwrap()]).await;
    platform.cli_ok(&repo, &["apps:create", "shop-other", "--stack", "other", "--no-remote"]).await;
    platform.cli_ok(&repo, &["pipelines:add", "shop", "-a", "shop-other", "--stage", "production"]).await;
    let (status, _, err) = platform.cli(&repo, &["pipelines:promote", "--to", "shop-other"]).await;
    assert_eq!(status, 1);
    assert!(err.contains("cannot promote to shop-other: it builds on stack other"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn a_pushed_branch_gets_a_review_app_that_deleting_the_branch_destroys() {
    let (platform, repo, key) = Platform::with_example("web-shop").await;
    let procfile =
        "web: echo \"$GREETING $REVIEW_FLAG\" > /app/public/greeting.txt; exec httpd -f -p \"$PORT\" -h /app/public\n";
    std::fs::write(repo.join("Procfile"), procfile).unwrap();
    let manifest = r#"{"env": {"GREETING": {"value": "from app.json"}},
                       "scripts": {"postdeploy": "echo seeded review app $SKIFF_APP"}}"#;
    std::fs::write(repo.join("app.json"), manifest).unwrap();
    let (pushed, out) = platform.commit_and_push(&repo, &key, "greets");
    assert!(pushed, "{out}");
    assert!(!out.contains("postdeploy"), "postdeploy is for review apps: {out}");
    platform.cli_ok(&repo, &["pipelines:create", "web"]).await;
    platform.cli_ok(&repo, &["pipelines:add", "web", "--stage", "development"]).await;

    let branch = |message: &str| {
        std::fs::write(repo.join("public/index.html"), format!("<p>{message}</p>\n")).unwrap();
        for args in [&["add", "-A"][..], &["commit", "-qm", message]] {
            let (ok, out) = platform.git(&repo, &key, args);
            assert!(ok, "{out}");
        }
        platform.git(&repo, &key, &["push", "skiff", "feature/login"])
    };
    let (ok, out) = platform.git(&repo, &key, &["checkout", "-qb", "feature/login"]);
    assert!(ok, "{out}");
    let (_, out) = branch("before review apps");
    assert!(out.contains("review apps are off for pipeline web"), "{out}");

    platform.cli_ok(&repo, &["reviewapps:enable", "-p", "web", "--config", "REVIEW_FLAG=review"]).await;
    let (pushed, out) = branch("first review");
    assert!(pushed, "{out}");
    for expected in [
        "Branch feature/login: building new review app web-shop-feature-login",
        "v1 is up",
        "Running postdeploy: echo seeded review app $SKIFF_APP",
        "seeded review app web-shop-feature-login",
    ] {
        assert!(out.contains(expected), "`{expected}` in {out}");
    }
    let greeting = reqwest::Client::new()
        .get(format!("http://{}/greeting.txt", platform.router()))
        .header("Host", "web-shop-feature-login.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(greeting.text().await.unwrap().trim(), "from app.json review", "app.json's env and the review config");
    let listed = platform.cli_ok(&repo, &["reviewapps", "-p", "web"]).await;
    assert!(listed.contains("web-shop-feature-login") && listed.contains("feature/login"), "{listed}");

    let (pushed, out) = branch("second review");
    assert!(pushed && out.contains("building review app web-shop-feature-login") && out.contains("v2 is up"), "{out}");
    assert!(!out.contains("postdeploy"), "postdeploy runs once: {out}");
    assert!(matches!(get_via_router(platform.router(), "web-shop.localhost").await, Some((200, _))), "main serves");

    let (_, out) = platform.git(&repo, &key, &["push", "skiff", ":feature/login"]);
    assert!(out.contains("Branch feature/login deleted: destroyed review app web-shop-feature-login"), "{out}");
    let apps = platform.cli_ok(&repo, &["apps"]).await;
    assert!(!apps.contains("web-shop-feature-login"), "{apps}");
    assert!(platform.cli_ok(&repo, &["reviewapps", "-p", "web"]).await.lines().count() <= 1);
}

/// A CGI script that answers its release and, when the build has a `flaky` file, a 500 to
/// every fifth request.
const CANARY_SCRIPT: &str = r#"#!/bin/sh
n=$(cat /tmp/count 2>/dev/null || echo 0); n=$((n+1)); echo "$n" > /tmp/count
if [ -e /app/flaky ] && [ $((n % 5)) -eq 0 ]; then
  printf 'Status: 500 Internal Server Error\r\nContent-Type: text/plain\r\n\r\n%s failed\n' "$SKIFF_RELEASE"; exit 0
fi
printf 'Content-Type: text/plain\r\n\r\n%s\n' "$SKIFF_RELEASE"
"#;

/// Answers of production's `/cgi-bin/release`, by (status, release).
struct Answers {
    client: reqwest::Client,
    url: String,
}

impl Answers {
    fn new(router: std::net::SocketAddr) -> Self {
        Self { client: reqwest::Client::new(), url: format!("http://{router}/cgi-bin/release") }
    }

    /// One answer: its status and the release that gave it; `None` when none came.
    async fn get(&self) -> Option<(u16, String)> {
        let request = self.client.get(&self.url).header("Host", "shop.localhost").timeout(Duration::from_secs(10));
        let answer = request.send().await.ok()?;
        let status = answer.status().as_u16();
        let body = answer.text().await.ok()?;
        Some((status, body.split_whitespace().next().unwrap_or_default().to_owned()))
    }

    /// Waits until `release` answers (the canary's container is ready and routed).
    async fn until_served_by(&self, release: &str) -> bool {
        eventually(Duration::from_secs(60), || async { (self.get().await?.1 == release).then_some(()) }).await.is_some()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn canaries_take_their_share_and_a_failing_one_is_rolled_back_on_the_routers_counts() {
    let (platform, repo, key) = Platform::with_example("shop-staging").await;
    let script = repo.join("public/cgi-bin/release");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::write(&script, CANARY_SCRIPT).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let (pushed, out) = platform.commit_and_push(&repo, &key, "answers its release");
    assert!(pushed, "{out}");
    platform.cli_ok(&repo, &["apps:create", "shop", "--no-remote"]).await;
    platform.cli_ok(&repo, &["pipelines:create", "line"]).await;
    platform.cli_ok(&repo, &["pipelines:add", "line", "--stage", "staging"]).await;
    platform.cli_ok(&repo, &["pipelines:add", "line", "-a", "shop", "--stage", "production"]).await;
    platform.cli_ok(&repo, &["pipelines:promote", "--wait"]).await;
    platform.cli_ok(&repo, &["ps:scale", "-a", "shop", "web=2", "--wait"]).await;
    let answers = Answers::new(platform.router());
    assert!(answers.until_served_by("v1").await, "production serves v1");
    let canary_state = || async {
        let out = platform.cli_ok(&repo, &["canary", "-a", "shop", "--json"]).await;
        serde_json::from_str::<serde_json::Value>(&out).unwrap()
    };

    // A healthy build at 10%: over 2,000 requests the canary answers 10% ± 2% of them,
    // none fails, and at the end of its window it is promoted and rolls out.
    std::fs::write(repo.join("public/index.html"), "<p>second build</p>\n").unwrap();
    let (pushed, out) = platform.commit_and_push(&repo, &key, "second build");
    assert!(pushed, "{out}");
    let out = platform.cli_ok(&repo, &["pipelines:promote", "--canary", "10", "--canary-for", "40s"]).await;
    assert!(out.contains("Canary on shop: v2 (admin promoted v2 of shop-staging"), "{out}");
    assert!(answers.until_served_by("v2").await, "the canary gets requests");
    let mut by_release = std::collections::BTreeMap::<String, usize>::new();
    for _ in 0..2000 {
        let (status, release) = answers.get().await.expect("every request is answered");
        assert_eq!(status, 200, "{release}");
        *by_release.entry(release).or_default() += 1;
    }
    let share = by_release.get("v2").copied().unwrap_or(0);
    assert!((160..=240).contains(&share), "the canary's share of 2,000: {by_release:?}");
    assert_eq!(by_release.keys().collect::<Vec<_>>(), ["v1", "v2"], "{by_release:?}");
    let live = platform.cli_ok(&repo, &["canary", "-a", "shop"]).await;
    assert!(live.contains("Canary v2 of shop against v1: running") && live.contains("canary v2"), "{live}");
    let promoted = eventually(Duration::from_secs(90), || async {
        let canary = canary_state().await;
        (canary["state"] != "running").then_some(canary)
    })
    .await
    .expect("the canary ends at the end of its window");
    assert_eq!(promoted["state"], "promoted", "{promoted:#}");
    assert_eq!(promoted["judgement"]["score"], 100, "{promoted:#}");
    let rolled_out = eventually(Duration::from_secs(60), || async {
        let mut all = Vec::new();
        for _ in 0..20 {
            all.push(answers.get().await?.1);
        }
        all.iter().all(|r| r == "v2").then_some(())
    });
    assert!(rolled_out.await.is_some(), "v2 serves every request once promoted");

    // A build that answers 500 to one request in five: rolled back on the error rate
    // before its window ends; every failed request was the canary's.
    std::fs::write(repo.join("flaky"), "").unwrap();
    let (pushed, out) = platform.commit_and_push(&repo, &key, "flaky build");
    assert!(pushed, "{out}");
    platform.cli_ok(&repo, &["pipelines:promote", "--canary", "10", "--canary-for", "10m"]).await;
    assert!(answers.until_served_by("v3").await, "the flaky canary gets requests");
    let (mut sent, mut failed_elsewhere, mut canary_failures) = (0, Vec::new(), 0);
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while std::time::Instant::now() < deadline {
        for _ in 0..100 {
            let (status, release) = answers.get().await.expect("every request is answered");
            sent += 1;
            match (status, release.as_str()) {
                (200, _) => {}
                (500, "v3") => canary_failures += 1,
                other => failed_elsewhere.push(other.0),
            }
        }
        if canary_state().await["state"] != "running" {
            break;
        }
    }
    let failed = canary_state().await;
    assert_eq!(failed["state"], "failed", "after {sent} requests: {failed:#}");
    let reason = failed["judgement"]["reason"].as_str().unwrap();
    assert!(reason.contains("error rate: 5xx"), "{reason}");
    assert!(
        canary_failures > 0 && failed_elsewhere.is_empty(),
        "{canary_failures} failures of v3, others: {failed_elsewhere:?}"
    );
    let trail = platform.cli_ok(&repo, &["events", "-a", "shop", "-n", "50"]).await;
    assert!(trail.contains("Canary v3 not promoted; v2 keeps serving: score"), "{trail}");
    let withdrawn = eventually(Duration::from_secs(60), || async {
        let mut all = Vec::new();
        for _ in 0..20 {
            all.push(answers.get().await?);
        }
        all.iter().all(|(status, release)| *status == 200 && release == "v2").then_some(())
    });
    assert!(withdrawn.await.is_some(), "v2 takes every request again");
    let gone = eventually(Duration::from_secs(30), || async {
        let ps = platform.cli_ok(&repo, &["ps", "-a", "shop"]).await;
        (!ps.contains(" v3 ")).then_some(())
    });
    assert!(gone.await.is_some(), "the canary's container goes");

    // Without traffic the window ends with too few requests: not promoted.
    platform.cli_ok(&repo, &["pipelines:promote", "--canary", "10", "--canary-for", "3s"]).await;
    let starved = eventually(Duration::from_secs(60), || async {
        let canary = canary_state().await;
        (canary["state"] != "running").then_some(canary)
    })
    .await
    .unwrap();
    assert_eq!(starved["state"], "inconclusive", "{starved:#}");
    assert!(matches!(answers.get().await, Some((200, release)) if release == "v2"));
}
