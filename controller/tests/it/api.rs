//! The API in process (`TestApp`): each operation's work and its errors, with releases
//! rolled out by the real reconcile loop onto the in-memory runtime.

use std::time::Duration;

use serde_json::{Value, json};

use std::sync::Arc;

use async_trait::async_trait;
use skiff_controller::scheduler::runtime::Container;
use skiff_controller::scheduler::{ContainerRuntime, MemoryRuntime, RuntimeError, StartSpec};

use skiff_testing::eventually_true;

use crate::test_app::{Answer, PASSWORD, SERVICE_TOKEN, Scheduling, TestApp};

/// A platform with an admin and `alice`, who owns `shop`, released once (a `web` process).
pub(crate) struct Shop {
    pub(crate) platform: TestApp,
    pub(crate) admin: String,
    pub(crate) alice: String,
}

impl Shop {
    pub(crate) async fn start() -> Self {
        let platform = TestApp::start(Scheduling::On).await;
        let admin = platform.register(None, "admin").await;
        let alice = platform.register(Some(&admin), "alice").await;
        let created = platform.call(Some(&alice), "post", "/v2/apps", Some(json!({"name": "shop"}))).await;
        assert_eq!(created.status, 201, "{created:?}");
        assert_eq!(platform.build("shop", "alice", &[("web", "serve")]).await.status, 201);
        let shop = Self { platform, admin, alice };
        assert!(shop.deployed(1).await, "v1 rolls out");
        shop
    }

    pub(crate) async fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        self.platform.call(Some(&self.alice), method, &format!("/v2/apps/shop{path}"), body).await
    }

    /// Waits until release `version` is deployed.
    pub(crate) async fn deployed(&self, version: u32) -> bool {
        eventually_true(Duration::from_secs(10), || async move {
            self.call("get", &format!("/releases/{version}"), None).await.body["state"] == "deployed"
        })
        .await
    }

    /// How many containers of `process` run.
    async fn running(&self, process: &str) -> usize {
        let ps = self.call("get", "/ps", None).await.body;
        ps.as_array().unwrap().iter().filter(|p| p["process"] == process && p["state"] == "running").count()
    }
}

#[tokio::test]
async fn apps_are_created_listed_shown_and_destroyed() {
    let shop = Shop::start().await;
    let app = shop.call("get", "", None).await;
    assert_eq!(app.body["url"], "http://shop.skiff.test:8080");
    assert_eq!(app.body["release"], 1);
    let named = shop.platform.call(Some(&shop.alice), "post", "/v2/apps", Some(json!({}))).await;
    assert_eq!(named.status, 201, "an app made without a name gets one");
    let taken = shop.platform.call(Some(&shop.alice), "post", "/v2/apps", Some(json!({"name": "shop"}))).await;
    assert_eq!(taken.status, 409);
    let unknown_stack =
        shop.platform.call(Some(&shop.alice), "post", "/v2/apps", Some(json!({"name": "x1", "stack": "nope"}))).await;
    assert_eq!(unknown_stack.status, 400, "{unknown_stack:?}");
    let list = shop.platform.call(Some(&shop.alice), "get", "/v2/apps", None).await;
    assert_eq!(list.body.as_array().unwrap().len(), 2);

    assert_eq!(shop.call("delete", "", None).await.status, 204);
    assert_eq!(shop.call("get", "", None).await.status, 404);
    let gone = eventually_true(Duration::from_secs(5), || async { shop.platform.runtime_is_empty_of("shop").await });
    assert!(gone.await, "the app's containers go");
}

#[tokio::test]
async fn config_changes_make_releases_and_bad_names_are_refused() {
    let shop = Shop::start().await;
    let set = shop.call("patch", "/config", Some(json!({"GREETING": "hello", "MODE": "fast"}))).await;
    assert_eq!(set.status, 200);
    assert_eq!(set.body["release"]["version"], 2);
    assert_eq!(set.body["release"]["summary"], "alice set GREETING, MODE");
    let unset = shop.call("patch", "/config", Some(json!({"MODE": null}))).await;
    assert_eq!(unset.body["config"], json!({"GREETING": "hello"}));
    assert_eq!(shop.call("get", "/config", None).await.body, json!({"GREETING": "hello"}));
    for bad in [json!({"1X": "a"}), json!({"PORT": "80"}), json!({"A": "x".repeat(40_000)}), json!({})] {
        let refused = shop.call("patch", "/config", Some(bad)).await;
        assert_eq!(refused.status, 400, "{refused:?}");
    }
    assert!(shop.deployed(3).await);
    let events = shop.call("get", "/events", None).await.body;
    let messages: Vec<&str> = events.as_array().unwrap().iter().filter_map(|e| e["message"].as_str()).collect();
    assert!(messages.iter().any(|m| m.starts_with("Release v2 created: alice set GREETING")), "{messages:?}");
}

#[tokio::test]
async fn rollbacks_make_a_release_of_an_earlier_one() {
    let shop = Shop::start().await;
    shop.call("patch", "/config", Some(json!({"A": "1"}))).await;
    assert!(shop.deployed(2).await);
    let current = shop.call("post", "/releases/rollback", Some(json!({"version": 2}))).await;
    assert_eq!(current.status, 409, "{current:?}");
    let back = shop.call("post", "/releases/rollback", Some(json!({}))).await;
    assert_eq!(back.status, 201, "{back:?}");
    assert_eq!(back.body["version"], 3);
    assert_eq!(back.body["summary"], "alice rolled back to v1");
    assert_eq!(back.body["config"], json!({}), "the config goes back with the build");
    assert_eq!(shop.call("post", "/releases/rollback", Some(json!({"version": 9}))).await.status, 404);
    let listed = shop.call("get", "/releases?limit=2", None).await.body;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert_eq!(shop.call("get", "/releases?limit=x", None).await.status, 400);
    assert_eq!(shop.call("get", "/releases/v3", None).await.body["version"], 3);
    assert_eq!(shop.call("get", "/releases/v99", None).await.status, 404);
}

#[tokio::test]
async fn scaling_restarting_and_one_off_commands() {
    let shop = Shop::start().await;
    let scaled = shop.call("post", "/scale", Some(json!({"web": 2}))).await;
    assert_eq!(scaled.body[0]["quantity"], 2, "{scaled:?}");
    assert!(eventually_true(Duration::from_secs(10), || async { shop.running("web").await == 2 }).await);
    assert_eq!(shop.call("post", "/scale", Some(json!({"worker": 1}))).await.status, 400);
    assert_eq!(shop.call("post", "/scale", Some(json!({"web": 101}))).await.status, 400);
    assert_eq!(shop.call("get", "/formation", None).await.body[0]["quantity"], 2);

    let ps = shop.call("get", "/ps", None).await.body;
    let id = ps[0]["id"].as_str().unwrap().to_owned();
    let one = shop.call("post", "/ps/restart", Some(json!({"container": id[..8]}))).await;
    assert_eq!(one.status, 202, "{one:?}");
    assert_eq!(shop.call("post", "/ps/restart", Some(json!({"container": id[..8]}))).await.status, 404, "gone");
    assert_eq!(shop.call("post", "/ps/restart", Some(json!({"container": "zz"}))).await.status, 404);
    assert_eq!(shop.call("post", "/ps/restart", Some(json!({}))).await.status, 202);
    assert_eq!(shop.call("post", "/ps/restart", Some(json!({"process": "worker"}))).await.status, 400);

    let run =
        shop.platform.call_text(Some(&shop.alice), "post", "/v2/apps/shop/run", json!({"command": "echo hi"})).await;
    let lines: Vec<Value> = run.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines, [json!({"out": "echo hi\n"}), json!({"exit": 0})]);
    assert_eq!(shop.call("post", "/run", Some(json!({"command": "  "}))).await.status, 400);
    let long = shop.call("post", "/run", Some(json!({"command": "x".repeat(70_000)}))).await;
    assert_eq!(long.status, 400);
}

#[tokio::test]
async fn limits_and_health_checks_are_checked_and_kept() {
    let shop = Shop::start().await;
    let too_much = shop.call("patch", "/limits", Some(json!({"web": {"memory_mb": 100_000}}))).await;
    assert_eq!(too_much.status, 400);
    assert!(too_much.message().contains("8192 MiB"), "{too_much:?}");
    let limits = shop.call("patch", "/limits", Some(json!({"web": {"memory_mb": 256}}))).await;
    assert_eq!(limits.body, json!({"web": {"memory_mb": 256}}));
    assert_eq!(shop.call("get", "/limits", None).await.body, limits.body);
    let bad_path = shop.call("patch", "/healthchecks", Some(json!({"web": {"kind": "http", "path": "health"}}))).await;
    assert_eq!(bad_path.status, 400);
    let checks = shop.call("patch", "/healthchecks", Some(json!({"web": {"kind": "http", "path": "/up"}}))).await;
    assert_eq!(checks.status, 200, "{checks:?}");
    assert_eq!(shop.call("get", "/healthchecks", None).await.body["web"]["path"], "/up");
    assert_eq!(shop.call("patch", "/limits", Some(json!({"worker": {"cpu": 1.0}}))).await.status, 400);
}

#[tokio::test]
async fn domains_are_checked_and_kept_apart_between_owners() {
    let shop = Shop::start().await;
    assert_eq!(shop.call("post", "/domains", Some(json!({"domain": "WWW.Example.com."}))).await.status, 201);
    assert_eq!(shop.call("get", "/domains", None).await.body[0]["domain"], "www.example.com");
    assert_eq!(shop.call("post", "/domains", Some(json!({"domain": "10.0.0.1"}))).await.status, 400);
    assert_eq!(shop.call("post", "/domains", Some(json!({"domain": "x.skiff.test"}))).await.status, 400);

    let mallory = shop.platform.register(Some(&shop.admin), "mallory").await;
    shop.platform.call(Some(&mallory), "post", "/v2/apps", Some(json!({"name": "evil"}))).await;
    let grab = json!({"domain": "*.example.com"});
    let taken = shop.platform.call(Some(&mallory), "post", "/v2/apps/evil/domains", Some(grab)).await;
    assert_eq!(taken.status, 409, "{taken:?}");
    assert_eq!(shop.call("delete", "/domains/www.example.com", None).await.status, 204);
    assert_eq!(shop.call("delete", "/domains/www.example.com", None).await.status, 404);
}

#[tokio::test]
async fn certificates_are_inspected_attached_and_detached() {
    let shop = Shop::start().await;
    let certified = rcgen::generate_simple_self_signed(vec!["www.example.com".to_owned()]).unwrap();
    let upload = json!({
        "name": "site",
        "certificate_chain": certified.cert.pem(),
        "private_key": certified.signing_key.serialize_pem(),
    });
    let added = shop.call("post", "/certs", Some(upload.clone())).await;
    assert_eq!(added.status, 201, "{added:?}");
    assert_eq!(added.body["names"], json!(["www.example.com"]));
    assert_eq!(shop.call("post", "/certs", Some(upload)).await.status, 409);
    let bad = json!({"name": "bad", "certificate_chain": "nope", "private_key": "nope"});
    assert_eq!(shop.call("post", "/certs", Some(bad)).await.status, 400);

    let domain = json!({"domain": "www.example.com"});
    assert_eq!(shop.call("post", "/certs/site/domains", Some(domain.clone())).await.status, 404, "not a domain yet");
    shop.call("post", "/domains", Some(domain.clone())).await;
    assert_eq!(shop.call("post", "/certs/site/domains", Some(domain)).await.status, 201);
    let other = json!({"domain": "api.example.com"});
    assert_eq!(shop.call("post", "/certs/site/domains", Some(other)).await.status, 400, "not covered");
    assert_eq!(shop.call("get", "/certs", None).await.body[0]["domains"], json!(["www.example.com"]));
    assert_eq!(shop.call("delete", "/certs/site/domains/www.example.com", None).await.status, 204);
    assert_eq!(shop.call("delete", "/certs/site", None).await.status, 204);

    let tls = json!({"force_https": true, "hsts_max_age": 3600});
    assert_eq!(shop.call("put", "/tls", Some(tls.clone())).await.body, tls);
    assert_eq!(shop.call("get", "/tls", None).await.body, tls);
}

#[tokio::test]
async fn access_maintenance_and_the_route_feed() {
    let shop = Shop::start().await;
    let policy = json!({"max_body_bytes": 1024, "allow": ["10.0.0.0/8"], "deny": []});
    assert_eq!(shop.call("put", "/access", Some(policy.clone())).await.body, policy);
    assert_eq!(shop.call("get", "/access", None).await.body, policy);
    let bad = json!({"allow": ["10.0.0.0/40"], "deny": []});
    assert_eq!(shop.call("put", "/access", Some(bad)).await.status, 400);

    let on = shop.call("post", "/maintenance", Some(json!({"enabled": true}))).await;
    assert_eq!(on.body["maintenance"], true);
    let routed = eventually_true(Duration::from_secs(5), || async {
        let feed = shop.platform.call(Some(SERVICE_TOKEN), "get", "/v2/routes", None).await.body;
        feed["routes"].as_array().unwrap().iter().any(|r| r["app"] == "shop" && r["maintenance"] == true)
    })
    .await;
    assert!(routed, "the router is told");
}

#[tokio::test]
async fn a_read_of_a_pending_release_waits_until_it_changes() {
    let shop = Shop::start().await;
    let platform = &shop.platform;
    let read = |query: &'static str| async move {
        platform.call(Some(SERVICE_TOKEN), "get", &format!("/v2/hooks/apps/shop/releases/2{query}"), None).await
    };
    // Its web container never answers, so v2 is pending until the boot timeout (2 s) fails it.
    assert_eq!(shop.platform.build("shop", "alice", &[("web", "hang")]).await.status, 201);
    assert_eq!(read("").await.body["state"], "pending", "without a wait, as it stands");
    let asked = std::time::Instant::now();
    let waited = read("?wait_ms=10000").await;
    assert_eq!(waited.body["state"], "failed", "{waited:?}");
    assert!(asked.elapsed() < Duration::from_secs(8), "answered as it failed, not at the end of the wait");
    // A settled release is answered as it is; a wait is a number of milliseconds.
    assert_eq!(read("?wait_ms=99999999999").await.body["state"], "failed");
    assert_eq!(read("?wait_ms=soon").await.status, 400);
}

#[tokio::test]
async fn builds_and_image_deploys() {
    let shop = Shop::start().await;
    let builds = shop.call("get", "/builds", None).await.body;
    let id = builds[0]["id"].as_i64().unwrap();
    assert_eq!(shop.call("get", &format!("/builds/{id}"), None).await.body["log"], "-----> built");
    assert_eq!(shop.call("get", "/builds/999", None).await.status, 404);

    let foreign = shop.call("post", "/deploy", Some(json!({"image": "docker.io/library/nginx"}))).await;
    assert_eq!(foreign.status, 403);
    assert!(foreign.message().contains("SKIFF_ALLOWED_REGISTRIES"), "{foreign:?}");
    let by_id = shop.call("post", "/deploy", Some(json!({"image": "ab".repeat(32)}))).await;
    assert_eq!(by_id.status, 400, "{by_id:?}");
    let allowed = shop.call("post", "/deploy", Some(json!({"image": "registry.example.com/shop:1"}))).await;
    assert_eq!(allowed.status, 201, "{allowed:?}");
    assert_eq!(allowed.body["release"]["version"], 2);

    let failed = json!({
        "app": "shop", "username": "alice", "kind": "dockerfile", "status": "failed", "image": null,
        "git_sha": null, "procfile": {}, "duration_ms": 1, "log": "boom",
    });
    let recorded = shop.platform.call(Some(SERVICE_TOKEN), "post", "/v2/hooks/builds", Some(failed)).await;
    assert_eq!(recorded.body["release"], Value::Null, "a failed build makes no release");
}

#[tokio::test]
async fn collaborators_and_transfers() {
    let shop = Shop::start().await;
    let bob = shop.platform.register(Some(&shop.admin), "bob").await;
    assert_eq!(shop.platform.call(Some(&bob), "get", "/v2/apps/shop", None).await.status, 404);
    assert_eq!(shop.call("post", "/perms", Some(json!({"username": "bob"}))).await.status, 201);
    assert_eq!(shop.call("post", "/perms", Some(json!({"username": "bob"}))).await.status, 409);
    assert_eq!(shop.call("post", "/perms", Some(json!({"username": "alice"}))).await.status, 409, "the owner");
    assert_eq!(shop.call("post", "/perms", Some(json!({"username": "nobody"}))).await.status, 404);
    assert_eq!(shop.platform.call(Some(&bob), "get", "/v2/apps/shop", None).await.status, 200);
    assert_eq!(shop.call("get", "/perms", None).await.body, json!(["bob"]));
    assert_eq!(shop.call("delete", "/perms/bob", None).await.status, 204);
    assert_eq!(shop.call("delete", "/perms/bob", None).await.status, 404);

    let moved = shop.call("post", "/transfer", Some(json!({"username": "bob"}))).await;
    assert_eq!(moved.body["owner"], "bob");
    assert_eq!(shop.call("get", "", None).await.status, 404, "alice no longer sees it");
}

#[tokio::test]
async fn accounts_keys_and_sign_ins() {
    let platform = TestApp::start(Scheduling::Off).await;
    let admin = platform.register(None, "admin").await;
    let closed = platform
        .call(None, "post", "/v2/auth/register", Some(json!({"username": "eve", "password": "long enough"})))
        .await;
    assert_eq!(closed.status, 403);
    let short = json!({"username": "eve", "password": "short"});
    assert_eq!(platform.call(Some(&admin), "post", "/v2/auth/register", Some(short)).await.status, 400);
    platform.register(Some(&admin), "eve").await;
    let again = json!({"username": "eve", "password": "long enough"});
    assert_eq!(platform.call(Some(&admin), "post", "/v2/auth/register", Some(again)).await.status, 409);

    let eve = platform.login("eve").await;
    assert_eq!(
        platform.call(Some(&eve), "get", "/v2/auth/whoami", None).await.body,
        json!({"username": "eve", "admin": false})
    );
    let wrong = json!({"username": "eve", "password": "wrong password"});
    assert_eq!(platform.call(None, "post", "/v2/auth/login", Some(wrong)).await.status, 403);

    let key = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqzHN+XzL0EbNGfx/x4yzsnMtJ5kKsUaz2HpIsviIFj eve@laptop";
    let added = platform.call(Some(&eve), "post", "/v2/keys", Some(json!({"public_key": key}))).await;
    assert_eq!(added.status, 201, "{added:?}");
    let fingerprint = added.body["fingerprint"].as_str().unwrap().to_owned();
    let owner = platform.call(Some(SERVICE_TOKEN), "get", &format!("/v2/hooks/keys/{fingerprint}"), None).await;
    assert_eq!(owner.body["username"], "eve");
    assert_eq!(platform.call(Some(&eve), "post", "/v2/keys", Some(json!({"public_key": key}))).await.status, 409);
    assert_eq!(platform.call(Some(&eve), "post", "/v2/keys", Some(json!({"public_key": "nope"}))).await.status, 400);
    let id = added.body["id"].as_i64().unwrap();
    assert_eq!(platform.call(Some(&eve), "get", "/v2/keys", None).await.body.as_array().unwrap().len(), 1);
    assert_eq!(platform.call(Some(&eve), "delete", &format!("/v2/keys/{id}"), None).await.status, 204);
    assert_eq!(platform.call(Some(&eve), "delete", &format!("/v2/keys/{id}"), None).await.status, 404);

    assert_eq!(platform.call(Some(&eve), "delete", "/v2/auth/token", None).await.status, 204);
    assert_eq!(platform.call(Some(&eve), "get", "/v2/auth/whoami", None).await.status, 401, "the token is revoked");

    // The registry's sign-in: a token or the password, per repository.
    let grant = json!({"username": "eve", "secret": PASSWORD, "repository": "stacks/busybox"});
    let answer = platform.call(Some(SERVICE_TOKEN), "post", "/v2/hooks/registry/access", Some(grant)).await;
    assert_eq!(answer.body, json!({"pull": true, "push": false}));
    let wrong = json!({"username": "eve", "secret": "guess", "repository": "stacks/busybox"});
    assert_eq!(platform.call(Some(SERVICE_TOKEN), "post", "/v2/hooks/registry/access", Some(wrong)).await.status, 401);
}

#[tokio::test]
async fn drains_events_logs_and_the_platform_pages() {
    let shop = Shop::start().await;
    let drain = shop.call("post", "/drains", Some(json!({"url": "https://user:secret@127.0.0.1:9/logs"}))).await;
    assert_eq!(drain.status, 201, "{drain:?}");
    assert!(!drain.body["url"].as_str().unwrap().contains("secret"), "{drain:?}");
    let outside = shop.call("post", "/drains", Some(json!({"url": "syslog://10.1.2.3:514"}))).await;
    assert_eq!(outside.status, 400, "{outside:?}");
    assert_eq!(shop.call("get", "/drains", None).await.body.as_array().unwrap().len(), 1);
    let id = drain.body["id"].as_i64().unwrap();
    let all = shop.platform.call(Some(SERVICE_TOKEN), "get", "/v2/hooks/drains", None).await.body;
    assert!(all[0]["url"].as_str().unwrap().contains("secret"), "the logger gets the whole URL");
    assert_eq!(shop.call("delete", &format!("/drains/{id}"), None).await.status, 204);

    let logs = shop.call("get", "/logs", None).await;
    assert_eq!(logs.status, 503, "no logger runs here: {logs:?}");
    let gc = shop.platform.call(Some(&shop.admin), "post", "/v2/admin/gc?dry_run=true", None).await;
    assert_eq!(gc.status, 503, "no registry runs here: {gc:?}");
    let stack = shop.platform.call(Some(&shop.admin), "post", "/v2/stacks/tiny", Some(json!("not a tarball"))).await;
    assert_eq!(stack.status, 400, "{stack:?}");
    let platform_events = shop.platform.call(Some(&shop.admin), "get", "/v2/events?n=500", None).await.body;
    assert!(platform_events.as_array().unwrap().iter().any(|e| e["message"] == "admin created user alice"));
    assert_eq!(shop.platform.call(Some(&shop.alice), "get", "/v2/stacks", None).await.body, json!([]));
}

/// An engine that does not answer.
struct EngineAway;

#[async_trait]
impl ContainerRuntime for EngineAway {
    async fn list(&self) -> Result<Vec<Container>, RuntimeError> {
        Err(RuntimeError::Memory(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "cannot connect to the engine",
        )))
    }
    async fn start(&self, _: &StartSpec) -> Result<Container, RuntimeError> {
        self.list().await.map(|_| unreachable!())
    }
    async fn run_one_off(
        &self,
        _: &StartSpec,
        _: Duration,
        _: tokio::sync::mpsc::Sender<skiff_api::RunOutput>,
    ) -> Result<i64, RuntimeError> {
        self.list().await.map(|_| 0)
    }
    async fn exit_code(&self, _: &str) -> Result<Option<i64>, RuntimeError> {
        self.list().await.map(|_| None)
    }
    async fn remove(&self, _: &str) -> Result<(), RuntimeError> {
        self.list().await.map(drop)
    }
}

#[tokio::test]
async fn readiness_names_what_does_not_answer_and_metrics_count_answers() {
    let platform = TestApp::start(Scheduling::Off).await;
    let ready = platform.call_text(None, "get", "/readyz", Value::Null).await;
    assert_eq!(ready, "database ok\nengine ok\n", "no Redis to ask: one replica");
    platform.call(None, "get", "/v2/apps", None).await;
    let metrics = platform.call_text(None, "get", "/metrics", Value::Null).await;
    assert!(metrics.contains("skiff_controller_http_responses_total{class=\"4xx\"} 1"), "{metrics}");

    let away = TestApp::start_on(Scheduling::Off, Arc::new(EngineAway), Arc::new(MemoryRuntime::new())).await;
    let answer = away.call(None, "get", "/readyz", None).await;
    assert_eq!(answer.status, 503);
    let text = away.call_text(None, "get", "/readyz", Value::Null).await;
    assert!(text.contains("engine: ") && text.contains("cannot connect") && text.contains("database ok"), "{text}");
}

#[tokio::test]
async fn pipelines_promote_the_same_image_with_each_apps_config() {
    let shop = Shop::start().await;
    let (platform, alice) = (&shop.platform, Some(shop.alice.as_str()));
    for app in ["shop-staging", "shop-prod"] {
        assert_eq!(platform.call(alice, "post", "/v2/apps", Some(json!({"name": app}))).await.status, 201);
    }
    let prod_config = json!({"GREETING": "from production"});
    assert_eq!(platform.call(alice, "patch", "/v2/apps/shop-prod/config", Some(prod_config)).await.status, 200);
    let image = "registry.example.com/shop@sha256:".to_owned() + &"cd".repeat(32);
    assert_eq!(shop.call("post", "/deploy", Some(json!({"image": image}))).await.status, 201);
    assert!(shop.deployed(2).await);

    let made = platform.call(alice, "post", "/v2/pipelines", Some(json!({"name": "shop-line"}))).await;
    assert_eq!(made.status, 201, "{made:?}");
    let taken = platform.call(alice, "post", "/v2/pipelines", Some(json!({"name": "shop-line"}))).await;
    assert_eq!(taken.status, 409);
    for (app, stage) in [("shop-prod", "production"), ("shop", "development"), ("shop-staging", "staging")] {
        let path = format!("/v2/pipelines/shop-line/apps/{app}");
        let coupled = platform.call(alice, "put", &path, Some(json!({"stage": stage}))).await;
        assert_eq!(coupled.status, 200, "{coupled:?}");
    }
    let info = platform.call(alice, "get", "/v2/pipelines/shop-line", None).await.body;
    let order: Vec<&str> = info["apps"].as_array().unwrap().iter().map(|a| a["app"].as_str().unwrap()).collect();
    assert_eq!(order, ["shop", "shop-staging", "shop-prod"], "by stage");

    // Development → staging: the same image, staging's (empty) config, a summary naming
    // where it came from.
    let promoted = platform.call(alice, "post", "/v2/apps/shop/promote", Some(json!({}))).await;
    assert_eq!(promoted.status, 200, "{promoted:?}");
    let release = &promoted.body[0];
    assert_eq!((release["app"].as_str(), release["version"].as_u64()), (Some("shop-staging"), Some(1)));
    assert_eq!(release["image"], image.as_str());
    assert_eq!(release["summary"], "alice promoted v2 of shop");
    let staged = || async { platform.call(alice, "get", "/v2/apps/shop-staging/releases/1", None).await };
    assert!(eventually_true(Duration::from_secs(10), || async { staged().await.body["state"] == "deployed" }).await);

    // Staging → production: production's own config.
    let promoted = platform.call(alice, "post", "/v2/apps/shop-staging/promote", Some(json!({}))).await;
    assert_eq!(promoted.body[0]["app"], "shop-prod", "{promoted:?}");
    assert_eq!(promoted.body[0]["image"], image.as_str());
    assert_eq!(promoted.body[0]["config"]["GREETING"], "from production");
    let last = platform.call(alice, "post", "/v2/apps/shop-prod/promote", Some(json!({}))).await;
    assert_eq!(last.status, 400);
    assert!(last.message().contains("production, the last stage"), "{last:?}");
    let named = platform.call(alice, "post", "/v2/apps/shop/promote", Some(json!({"to": ["shop-prod"]}))).await;
    assert_eq!(named.body[0]["version"], 2, "{named:?}");
    let outside = platform.call(alice, "post", "/v2/apps/shop/promote", Some(json!({"to": ["shop"]}))).await;
    assert_eq!(outside.status, 400, "{outside:?}");

    // Who sees what: a collaborator on shop alone sees the pipeline with shop only, and
    // cannot promote to apps it may not deploy to; a stranger sees no pipeline.
    let bob = platform.register(Some(&shop.admin), "bob").await;
    assert_eq!(shop.call("post", "/perms", Some(json!({"username": "bob"}))).await.status, 201);
    let seen = platform.call(Some(&bob), "get", "/v2/pipelines/shop-line", None).await.body;
    assert_eq!(seen["apps"].as_array().unwrap().len(), 1, "{seen}");
    let refused = platform.call(Some(&bob), "post", "/v2/apps/shop/promote", Some(json!({}))).await;
    assert_eq!(refused.status, 404, "{refused:?}");
    let carol = platform.register(Some(&shop.admin), "carol").await;
    assert_eq!(platform.call(Some(&carol), "get", "/v2/pipelines/shop-line", None).await.status, 404);
    assert_eq!(platform.call(Some(&carol), "get", "/v2/pipelines", None).await.body, json!([]));
    let not_owner = platform.call(Some(&bob), "delete", "/v2/pipelines/shop-line", None).await;
    assert_eq!(not_owner.status, 403, "{not_owner:?}");

    // Out of the pipeline, then the pipeline goes; the apps stay.
    assert_eq!(platform.call(alice, "delete", "/v2/apps/shop-prod/pipeline", None).await.status, 204);
    let info = platform.call(alice, "get", "/v2/pipelines/shop-line", None).await.body;
    assert_eq!(info["apps"].as_array().unwrap().len(), 2);
    assert_eq!(platform.call(alice, "delete", "/v2/pipelines/shop-line", None).await.status, 204);
    assert_eq!(platform.call(alice, "get", "/v2/apps/shop-prod", None).await.status, 200);
    let alone = platform.call(alice, "post", "/v2/apps/shop/promote", Some(json!({}))).await;
    assert_eq!(alone.status, 409, "{alone:?}");
}

#[tokio::test]
async fn review_apps_are_made_updated_destroyed_and_expire() {
    let shop = Shop::start().await;
    let (platform, alice) = (&shop.platform, Some(shop.alice.as_str()));
    assert_eq!(platform.call(alice, "post", "/v2/pipelines", Some(json!({"name": "line"}))).await.status, 201);
    let coupling = Some(json!({"stage": "development"}));
    assert_eq!(platform.call(alice, "put", "/v2/pipelines/line/apps/shop", coupling).await.status, 200);
    let hook = |path: &'static str, username: &'static str| async move {
        let push = json!({"app": "shop", "branch": "Feature/X", "username": username});
        platform.call(Some(SERVICE_TOKEN), "post", path, Some(push)).await
    };
    let off = hook("/v2/hooks/review-apps", "alice").await;
    assert_eq!(off.status, 409);
    assert!(off.message().contains("review apps are off for pipeline line"), "{off:?}");

    let settings = json!({"enabled": true, "days": 5, "config": {"REVIEW": "yes"}});
    let on = platform.call(alice, "put", "/v2/pipelines/line/review-apps", Some(settings)).await;
    assert_eq!(on.body["review_apps"]["enabled"], true, "{on:?}");
    let opened = hook("/v2/hooks/review-apps", "alice").await;
    assert_eq!(opened.status, 200, "{opened:?}");
    assert_eq!(opened.body["created"], true);
    assert_eq!(opened.body["grant"]["app"], "shop-feature-x");
    assert_eq!(opened.body["grant"]["config"]["REVIEW"], "yes", "the pipeline's review config");
    assert_eq!(hook("/v2/hooks/review-apps", "alice").await.body["created"], false, "a later push updates it");
    let listed = platform.call(alice, "get", "/v2/pipelines/line/review-apps", None).await.body;
    assert_eq!(listed[0]["branch"], "Feature/X", "{listed}");
    let bob = platform.register(Some(&shop.admin), "bob").await;
    assert_eq!(platform.call(Some(&bob), "get", "/v2/pipelines/line/review-apps", None).await.status, 404);
    assert_eq!(hook("/v2/hooks/review-apps", "bob").await.status, 404, "bob may not see shop");

    // Once it is deployed, its postdeploy runs, once.
    assert_eq!(platform.build("shop-feature-x", "alice", &[("web", "serve")]).await.status, 201);
    let run = json!({"command": "echo seeded"});
    let path = "/v2/hooks/apps/shop-feature-x/postdeploy";
    let first = platform.call_text(Some(SERVICE_TOKEN), "post", path, run.clone()).await;
    assert!(first.contains("seeded") && first.contains("\"exit\":0"), "{first}");
    let again = platform.call(Some(SERVICE_TOKEN), "post", path, Some(run)).await;
    assert_eq!(again.status, 409, "{again:?}");

    let closed = hook("/v2/hooks/review-apps/close", "alice").await;
    assert_eq!(closed.body, "shop-feature-x", "{closed:?}");
    assert_eq!(platform.call(alice, "get", "/v2/apps/shop-feature-x", None).await.status, 404);
    assert_eq!(hook("/v2/hooks/review-apps/close", "alice").await.body, Value::Null, "nothing left to close");

    // A review app that goes longer than its pipeline's days without a push is destroyed.
    let settings = json!({"enabled": true, "days": 0});
    assert_eq!(platform.call(alice, "put", "/v2/pipelines/line/review-apps", Some(settings)).await.status, 200);
    assert_eq!(hook("/v2/hooks/review-apps", "alice").await.body["created"], true);
    let gone = eventually_true(Duration::from_secs(10), || async {
        platform.call(alice, "get", "/v2/apps/shop-feature-x", None).await.status == 404
    });
    assert!(gone.await, "the idle review app expired");
}

impl Shop {
    /// The shop's route in the feed.
    async fn route(&self) -> Value {
        let feed = self.platform.call(Some(SERVICE_TOKEN), "get", "/v2/routes", None).await.body;
        feed["routes"].as_array().unwrap().iter().find(|r| r["app"] == "shop").cloned().unwrap_or_default()
    }

    /// Reports, as a router would, `requests` answers (`errors` of them 5xx) on `arm`.
    async fn report(&self, canary: i64, arm: &str, requests: u64, errors: u64) {
        let buckets = json!([{"bucket": 30, "requests": requests - errors, "errors": 0},
                             {"bucket": 31, "requests": errors, "errors": errors}]);
        let samples = json!({"samples": [{"canary": canary, "app": "shop", "arm": arm, "buckets": buckets}]});
        let posted = self.platform.call(Some(SERVICE_TOKEN), "post", "/v2/hooks/canary-samples", Some(samples)).await;
        assert_eq!(posted.status, 204, "{posted:?}");
    }

    /// Waits until the shop's last canary is in `state`; its view.
    async fn canary_ends(&self, state: &str) -> Value {
        let ended = eventually_true(Duration::from_secs(10), || async {
            self.call("get", "/canary", None).await.body["state"] == state
        })
        .await;
        let canary = self.call("get", "/canary", None).await.body;
        assert!(ended, "the canary is not {state}: {canary:#}");
        canary
    }
}

#[tokio::test]
async fn canaries_take_their_share_and_are_judged_on_what_routers_count() {
    let shop = Shop::start().await;
    assert_eq!(shop.call("post", "/scale", Some(json!({"web": 4}))).await.status, 200);
    let trial = |version: u32, seconds: u64| json!({"release": version, "percent": 25, "duration_secs": seconds, "min_requests": 20});
    for (bad, status) in [
        (json!({"release": 1, "percent": 0, "duration_secs": 60}), 400),
        (json!({"release": 1, "percent": 100, "duration_secs": 60}), 400),
        (json!({"release": 1, "percent": 10, "duration_secs": 0}), 400),
        (json!({"release": 9, "percent": 10, "duration_secs": 60}), 404),
    ] {
        let refused = shop.call("post", "/canary", Some(bad.clone())).await;
        assert_eq!(refused.status, status, "{bad}: {refused:?}");
    }
    assert_eq!(shop.call("get", "/canary", None).await.status, 404, "no canary yet");
    assert_eq!(shop.call("post", "/canary/promote", None).await.status, 409, "none to promote");

    // On trial: v2 runs one web container (25% of 4) beside v1's four, gets its share in
    // the route feed, and is not the app's release.
    let started = shop.call("post", "/canary", Some(trial(1, 30))).await;
    assert_eq!(started.status, 201, "{started:?}");
    let canary = started.body["id"].as_i64().unwrap();
    assert_eq!((started.body["release"].as_u64(), started.body["baseline"].as_u64()), (Some(2), Some(1)));
    assert_eq!(shop.call("get", "/releases/2", None).await.body["state"], "trial");
    assert_eq!(shop.call("get", "", None).await.body["release"], 1);
    let split = eventually_true(Duration::from_secs(10), || async {
        let route = shop.route().await;
        route["canary"]["release"] == 2
            && route["canary"]["percent"] == 25
            && route["canary"]["backends"].as_array().is_some_and(|b| b.len() == 1)
            && route["backends"].as_array().is_some_and(|b| b.len() == 4)
    })
    .await;
    assert!(split, "the routers are told the split: {:#}", shop.route().await);
    assert_eq!(shop.running("web").await, 5);

    // One answer in five a 500 on the canary: rolled back before its window ends, the
    // error rate named; its container goes, v1 keeps all the traffic.
    shop.report(canary, "baseline", 400, 0).await;
    shop.report(canary, "canary", 100, 20).await;
    let failed = shop.canary_ends("failed").await;
    assert_eq!(failed["judgement"]["verdict"], "fail");
    assert!(
        failed["judgement"]["reason"].as_str().unwrap().contains("error rate: 5xx 20.0% on the canary"),
        "{failed:#}"
    );
    assert_eq!(failed["canary_metrics"]["errors"], 20);
    let release = shop.call("get", "/releases/2", None).await.body;
    assert_eq!(release["state"], "failed");
    assert!(release["failure"].as_str().unwrap().contains("error rate"), "{release:#}");
    let withdrawn = eventually_true(Duration::from_secs(10), || async {
        shop.route().await.get("canary").is_none() && shop.running("web").await == 4
    });
    assert!(withdrawn.await, "the canary's container goes: {:#}", shop.route().await);
    assert_eq!(shop.call("get", "", None).await.body["release"], 1);
    let events = shop.call("get", "/events", None).await.body;
    assert!(events.to_string().contains("Canary v2 not promoted"), "{events:#}");

    // A healthy canary is promoted at the end of its window and rolls out.
    let started = shop.call("post", "/canary", Some(trial(1, 2))).await;
    let canary = started.body["id"].as_i64().unwrap();
    shop.report(canary, "baseline", 300, 0).await;
    shop.report(canary, "canary", 100, 0).await;
    let promoted = shop.canary_ends("promoted").await;
    assert_eq!(
        (promoted["judgement"]["verdict"].as_str(), promoted["judgement"]["score"].as_u64()),
        (Some("pass"), Some(100))
    );
    assert!(shop.deployed(3).await, "v3 rolls out");
    assert_eq!(shop.call("get", "", None).await.body["release"], 3);
    assert!(eventually_true(Duration::from_secs(10), || async { shop.route().await.get("canary").is_none() }).await);

    // Too few requests by the deadline: not promoted.
    let started = shop.call("post", "/canary", Some(trial(3, 1))).await;
    let canary = started.body["id"].as_i64().unwrap();
    shop.report(canary, "canary", 5, 0).await;
    let starved = shop.canary_ends("inconclusive").await;
    assert!(starved["judgement"]["reason"].as_str().unwrap().contains("too few requests"), "{starved:#}");
    assert_eq!(shop.call("get", "/releases/4", None).await.body["state"], "failed");

    // Ended by hand, and given way to a newer release.
    assert_eq!(shop.call("post", "/canary", Some(trial(3, 600))).await.status, 201);
    let aborted = shop.call("post", "/canary/abort", None).await;
    assert_eq!(aborted.body["state"], "aborted", "{aborted:?}");
    assert!(aborted.body["judgement"]["reason"].as_str().unwrap().starts_with("aborted by alice"));
    assert_eq!(shop.call("post", "/canary", Some(trial(3, 600))).await.status, 201);
    assert_eq!(shop.call("patch", "/config", Some(json!({"A": "1"}))).await.status, 200);
    assert_eq!(shop.call("get", "/canary", None).await.body["state"], "superseded");
    assert_eq!(shop.call("get", "/releases/6", None).await.body["state"], "superseded");
    assert!(shop.deployed(7).await, "the config change rolls out, built on v3");
    assert_eq!(
        shop.call("get", "/releases/7", None).await.body["image"],
        shop.call("get", "/releases/3", None).await.body["image"]
    );
    let late = shop.call("post", "/canary/promote", None).await;
    assert_eq!(late.status, 409, "{late:?}");
}

#[tokio::test]
async fn every_answer_says_the_controllers_version() {
    let platform = TestApp::start(Scheduling::Off).await;
    for path in ["/v2/version", "/v2/apps", "/healthz", "/v2/nowhere"] {
        let answer = reqwest::get(format!("{}{path}", platform.url)).await.unwrap();
        assert_eq!(answer.headers()["skiff-version"], skiff_controller::VERSION, "{path}");
    }
    let body = platform.call(None, "get", "/v2/version", None).await.body;
    assert_eq!(body["version"], skiff_controller::VERSION);
}

#[tokio::test]
async fn the_platform_status_says_what_is_down_and_what_waits() {
    let shop = Shop::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let hook = json!({"url": format!("http://127.0.0.1:{closed}/"), "events": ["config"]});
    assert_eq!(shop.call("post", "/webhooks", Some(hook)).await.status, 201);
    shop.call("patch", "/config", Some(json!({"A": "1"}))).await;
    let refused = shop.platform.call(Some(&shop.alice), "get", "/v2/admin/status", None).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    let status = shop.platform.call(Some(&shop.admin), "get", "/v2/admin/status", None).await;
    assert_eq!(status.status, 200, "{status:?}");
    let components = status.body["components"].as_array().unwrap();
    let names: Vec<&str> = components.iter().filter_map(|c| c["name"].as_str()).collect();
    assert_eq!(names, ["controller", "registry", "logger", "builder"]);
    assert_eq!(components[0]["ready"], true, "{components:?}");
    assert!(components[0]["detail"].as_str().unwrap().contains("database ok"), "{components:?}");
    assert_eq!(components[0]["version"], skiff_controller::VERSION);
    // No registry or logger runs here, and the stand-in builder has no readiness page.
    for down in &components[1..] {
        assert_eq!(down["ready"], false, "{down}");
    }
    assert!(components[1]["detail"].as_str().unwrap().starts_with("does not answer"), "{components:?}");
    assert!(status.body["webhook_deliveries_pending"].as_u64() >= Some(1), "{}", status.body);
    assert!(status.body.get("drain_lines_queued").is_none(), "the logger did not say: {}", status.body);
    assert!(status.body.get("soonest_certificate").is_none());
}
