//! `TestApp`: the whole controller in this process, on a temporary SQLite file, the
//! in-memory runtime and local coordination, served over HTTP on 127.0.0.1. Starts in
//! milliseconds and needs neither Docker nor any other server: there is no registry and no
//! logger behind it, so the operations that need one answer that it is unavailable.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use skiff_controller::clock::Clock;
use skiff_controller::coordination::Coordination;
use skiff_controller::db::Db;
use skiff_controller::events::Events;
use skiff_controller::routes::RouteFeed;
use skiff_controller::scheduler::{ContainerRuntime, MemoryRuntime, Scheduler};
use skiff_controller::{Config, Controller};
use tokio_util::sync::CancellationToken;

/// The platform's service token in a `TestApp`.
pub const SERVICE_TOKEN: &str = "service-token";
/// Every fixture user's password.
pub const PASSWORD: &str = "correct horse battery";

/// Whether a `TestApp` runs the reconcile loop (releases roll out onto the in-memory
/// runtime) or only the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheduling {
    On,
    Off,
}

/// A running in-process controller.
pub struct TestApp {
    pub url: String,
    pub runtime: Arc<MemoryRuntime>,
    /// The controller's wall clock, which tests move forward.
    pub clock: Clock,
    /// What the controller asked the builder to build from source repositories.
    pub builds_asked: Arc<Mutex<Vec<Value>>>,
    http: reqwest::Client,
    shutdown: CancellationToken,
    _dir: tempfile::TempDir,
}

/// An answer: its status and its JSON body (`Null` when it has none or it is not JSON).
#[derive(Debug, Clone)]
pub struct Answer {
    pub status: u16,
    pub body: Value,
}

impl Answer {
    /// The `message` of an error body.
    pub fn message(&self) -> &str {
        self.body["message"].as_str().unwrap_or_default()
    }
}

fn config(clock: Clock, builder_url: String) -> Arc<Config> {
    let mut config = (*crate::scheduler::config(Duration::ZERO)).clone();
    config.clock = clock;
    config.builder_url = builder_url;
    config.service_token = SERVICE_TOKEN.into();
    config.allowed_registries = vec!["registry.example.com".into()];
    config.outbound = skiff_api::OutboundPolicy::new(vec!["127.0.0.0/8".parse().unwrap()]);
    config.domain = "skiff.test".into();
    config.boot_timeout = Duration::from_secs(2);
    Arc::new(config)
}

/// A stand-in for the builder's `POST /v2/builds`: it keeps what it is asked and answers
/// that it builds.
async fn builder() -> (String, Arc<Mutex<Vec<Value>>>) {
    let asked = Arc::new(Mutex::new(Vec::new()));
    let kept = asked.clone();
    let app = axum::Router::new().route(
        "/v2/builds",
        axum::routing::post(move |axum::Json(build): axum::Json<Value>| {
            let kept = kept.clone();
            async move {
                let message = format!("building {}", build["commit"].as_str().unwrap_or("the newest commit"));
                kept.lock().unwrap().push(build);
                (axum::http::StatusCode::ACCEPTED, axum::Json(json!({"building": true, "message": message})))
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, asked)
}

impl TestApp {
    pub async fn start(scheduling: Scheduling) -> Self {
        let runtime = Arc::new(MemoryRuntime::new());
        Self::start_on(scheduling, runtime.clone(), runtime).await
    }

    /// A controller over another engine (`runtime` is kept for the tests' own looks).
    pub async fn start_on(
        scheduling: Scheduling,
        engine: Arc<dyn ContainerRuntime>,
        runtime: Arc<MemoryRuntime>,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite(&dir.path().join("skiff.db")).await.unwrap();
        Self::serve(scheduling, engine, runtime, db, dir).await
    }

    /// A controller on `db` (a Postgres database, say), without the reconcile loop.
    pub async fn start_with_db(db: Db) -> Self {
        let runtime = Arc::new(MemoryRuntime::new());
        Self::serve(Scheduling::Off, runtime.clone(), runtime, db, tempfile::tempdir().unwrap()).await
    }

    async fn serve(
        scheduling: Scheduling,
        engine: Arc<dyn ContainerRuntime>,
        runtime: Arc<MemoryRuntime>,
        db: Db,
        dir: tempfile::TempDir,
    ) -> Self {
        let shutdown = CancellationToken::new();
        let clock = Clock::default();
        let (builder_url, builds_asked) = builder().await;
        let config = config(clock.clone(), builder_url);
        let coordination = Coordination::local();
        let events = Arc::new(Events::connect(db.clone(), "127.0.0.1:9".parse().unwrap(), coordination.clone()).await);
        let routes = Arc::new(RouteFeed::default());
        if scheduling == Scheduling::On {
            let scheduler = Scheduler::new(
                db.clone(),
                engine.clone(),
                routes.clone(),
                config.clone(),
                coordination.clone(),
                events.clone(),
            );
            tokio::spawn(scheduler.run(shutdown.clone()));
        }
        let expiry = config.reconcile_interval;
        let controller = Controller::new(config, db.clone(), engine, routes, coordination, events, shutdown.clone());
        if scheduling == Scheduling::On {
            let expiring = skiff_controller::domain::expire_review_apps(controller.clone(), expiry, shutdown.clone());
            tokio::spawn(expiring);
            tokio::spawn(skiff_controller::domain::judge_canaries(controller.clone(), shutdown.clone()));
            tokio::spawn(skiff_controller::domain::run_scheduled_jobs(controller.clone(), shutdown.clone()));
        }
        tokio::spawn(skiff_controller::webhooks::deliver(controller.clone(), shutdown.clone()));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(skiff_controller::serve(listener, controller, shutdown.clone()));
        Self { url, runtime, clock, builds_asked, http: reqwest::Client::new(), shutdown, _dir: dir }
    }

    /// Sends a request as the holder of `token` (none: anonymous), with a JSON body.
    pub async fn call(&self, token: Option<&str>, method: &str, path: &str, body: Option<Value>) -> Answer {
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.url));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the controller answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap_or_default();
        Answer { status, body: serde_json::from_str(&text).unwrap_or(Value::Null) }
    }

    /// Sends a request and returns the answer's body as text (for streamed answers).
    pub async fn call_text(&self, token: Option<&str>, method: &str, path: &str, body: Value) -> String {
        let method = reqwest::Method::from_bytes(method.to_ascii_uppercase().as_bytes()).unwrap();
        let mut request = self.http.request(method, format!("{}{path}", self.url)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("the controller answers").text().await.unwrap()
    }

    /// Whether no container of `app` is left on the runtime.
    pub async fn runtime_is_empty_of(&self, app: &str) -> bool {
        self.runtime.list().await.unwrap().iter().all(|container| container.app.as_str() != app)
    }

    /// Registers a user (the first becomes admin; later ones need `by`, an admin's
    /// token) and returns their token.
    pub async fn register(&self, by: Option<&str>, username: &str) -> String {
        let credentials = json!({"username": username, "password": PASSWORD});
        let answer = self.call(by, "post", "/v2/auth/register", Some(credentials)).await;
        assert_eq!(answer.status, 201, "register {username}: {answer:?}");
        answer.body["token"].as_str().unwrap().to_owned()
    }

    /// Signs in as `username` and returns a new token.
    pub async fn login(&self, username: &str) -> String {
        let credentials = json!({"username": username, "password": PASSWORD});
        let answer = self.call(None, "post", "/v2/auth/login", Some(credentials)).await;
        assert_eq!(answer.status, 200, "login {username}: {answer:?}");
        answer.body["token"].as_str().unwrap().to_owned()
    }

    /// Records a successful build of `app` by `username` running `commands`: its next release.
    pub async fn build(&self, app: &str, username: &str, commands: &[(&str, &str)]) -> Answer {
        let procfile: serde_json::Map<String, Value> =
            commands.iter().map(|(process, command)| ((*process).to_owned(), json!(command))).collect();
        let build = json!({
            "app": app, "username": username, "kind": "procfile", "status": "succeeded",
            "image": format!("{app}@sha256:{}", "ab".repeat(32)), "git_sha": "0123456789abcdef",
            "procfile": procfile, "duration_ms": 5, "log": "-----> built",
        });
        self.call(Some(SERVICE_TOKEN), "post", "/v2/hooks/builds", Some(build)).await
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}
