//! The reconcile loop over the in-memory runtime: rollouts, failed releases, crashes,
//! adoption after a restart and scaling, each in well under a second of engine time. The
//! same loop runs against the real Docker engine in the whole-platform tests.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use skiff_api::{CheckKind, Healthcheck, PhaseState, ReleasePhase, ReleaseState, RouteTable};
use skiff_controller::Config;
use skiff_controller::coordination::Coordination;
use skiff_controller::db::{AppRow, Db, NewRelease, SettingsKind, UserRow};
use skiff_controller::events::Events;
use skiff_controller::routes::RouteFeed;
use skiff_controller::scheduler::{ContainerRuntime, MemoryRuntime, Scheduler};
use skiff_testing::eventually_true;
use tokio_util::sync::CancellationToken;

pub(crate) struct Fixture {
    db: Db,
    runtime: Arc<MemoryRuntime>,
    routes: Arc<RouteFeed>,
    user: UserRow,
    app: AppRow,
    _dir: tempfile::TempDir,
}

/// Settings for a controller without a registry or logger (nothing listens on the discard
/// port), whose containers leaving service drain for `drain_period`.
pub(crate) fn config(drain_period: Duration) -> Arc<Config> {
    Arc::new(Config {
        database_url: String::new(),
        service_token: "token".into(),
        registry_url: "http://127.0.0.1:9".into(),
        registry_host: "127.0.0.1:9".into(),
        registry_ca: None,
        allowed_registries: Vec::new(),
        outbound: Default::default(),
        webhook_tls: skiff_service::outbound::tls_config(None).unwrap(),
        clock: Default::default(),
        default_memory_mb: 512,
        max_memory_mb: 8192,
        logger_url: "http://127.0.0.1:9".into(),
        domain: "localhost".into(),
        router_port: 8080,
        builder_url: "http://127.0.0.1:9".into(),
        builder_ssh: "127.0.0.1:2222".parse().unwrap(),
        release_retention: 5,
        registration: Default::default(),
        default_stack: "busybox".parse().unwrap(),
        reconcile_interval: Duration::from_secs(1),
        boot_timeout: Duration::from_secs(1),
        release_timeout: Duration::from_secs(1),
        drain_period,
        acme: skiff_controller::acme::AcmeConfig::new(skiff_service::outbound::tls_config(None).unwrap()),
    })
}

impl Fixture {
    async fn new() -> Self {
        Self::with_app("shop").await
    }

    /// A fixture whose app is called `name` (apps in trouble are named after it).
    pub(crate) async fn with_app(name: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::open_sqlite(&dir.path().join("skiff.db")).await.unwrap();
        let user = db.create_user(&"alice".parse().unwrap(), "hash").await.unwrap().unwrap();
        let app = db.create_app(&name.parse().unwrap(), &user, &"busybox".parse().unwrap()).await.unwrap().unwrap();
        Self { db, runtime: Arc::new(MemoryRuntime::new()), routes: Arc::default(), user, app, _dir: dir }
    }

    /// A scheduler over this fixture's database and runtime, as a (re)started controller
    /// has; containers leaving service stop at once.
    async fn scheduler(&self) -> Scheduler {
        self.scheduler_draining(Duration::ZERO).await
    }

    /// A scheduler whose containers leaving service drain for `drain_period`.
    async fn scheduler_draining(&self, drain_period: Duration) -> Scheduler {
        self.scheduler_with(Coordination::local(), drain_period).await
    }

    /// A scheduler that meets other replicas through `coordination`.
    pub(crate) async fn scheduler_with(&self, coordination: Arc<Coordination>, drain_period: Duration) -> Scheduler {
        // Nothing listens there: events are kept in the database only.
        let events =
            Arc::new(Events::connect(self.db.clone(), "127.0.0.1:9".parse().unwrap(), coordination.clone()).await);
        let runtime: Arc<dyn ContainerRuntime> = self.runtime.clone();
        Scheduler::new(self.db.clone(), runtime, self.routes.clone(), config(drain_period), coordination, events)
    }

    /// A release whose processes run `commands`.
    pub(crate) async fn release(&self, commands: &[(&str, &str)]) -> u32 {
        self.release_of(&self.app, commands).await
    }

    /// A release of `app` whose processes run `commands`.
    async fn release_of(&self, app: &AppRow, commands: &[(&str, &str)]) -> u32 {
        let procfile = commands.iter().map(|(p, c)| (p.parse().unwrap(), (*c).to_owned())).collect();
        let config = BTreeMap::new();
        let new = NewRelease {
            image: "shop@sha256:abc",
            build: None,
            git_sha: None,
            procfile: &procfile,
            config: &config,
            created_by: &self.user.username,
            summary: "test",
        };
        let release = self.db.create_release(app, &new).await.unwrap();
        release.version
    }

    async fn scale(&self, process: &str, quantity: u32) {
        self.db.scale(&self.app, &process.parse().unwrap(), quantity).await.unwrap();
    }

    /// (release, running) of the app's containers of `process`, sorted.
    async fn containers(&self, process: &str) -> Vec<(u32, bool)> {
        let mut found: Vec<(u32, bool)> = self
            .runtime
            .list()
            .await
            .unwrap()
            .into_iter()
            .filter(|c| c.process == process)
            .map(|c| (c.release, c.running))
            .collect();
        found.sort_unstable();
        found
    }

    /// The id of a running container of `process`.
    async fn running(&self, process: &str) -> String {
        let containers = self.runtime.list().await.unwrap();
        containers.into_iter().find(|c| c.process == process && c.running).expect("one runs").id
    }

    /// Another app of the same owner.
    async fn other_app(&self, name: &str) -> AppRow {
        let stack = "busybox".parse().unwrap();
        self.db.create_app(&name.parse().unwrap(), &self.user, &stack).await.unwrap().unwrap()
    }

    /// Two apps in trouble: `<app>-hung`'s first release never answers its health check (for a
    /// minute, then it fails), and `<app>-crashy` runs a release whose worker crashes at every
    /// start (back-off).
    pub(crate) async fn apps_in_trouble(&self) {
        let crashy = self.other_app(&format!("{}-crashy", self.app.name)).await;
        self.release_of(&crashy, &[("web", "serve"), ("worker", "exit 1")]).await;
        self.scheduler().await.pass().await.unwrap();
        self.db.scale(&crashy, &"worker".parse().unwrap(), 1).await.unwrap();
        let hung = self.other_app(&format!("{}-hung", self.app.name)).await;
        let patient = Healthcheck { kind: CheckKind::Http, path: None, timeout_secs: Some(60) };
        let checks = BTreeMap::from([("web".parse().unwrap(), patient)]);
        self.db.set_settings(hung.id, SettingsKind::Healthchecks, &checks).await.unwrap();
        self.release_of(&hung, &[("web", "hang")]).await;
    }

    /// Waits (at most `limit`) until release `version` of the fixture's app is deployed.
    pub(crate) async fn deployed_within(&self, version: u32, limit: Duration) -> bool {
        eventually_true(limit, || async { self.state(version).await.0 == ReleaseState::Deployed }).await
    }

    async fn state(&self, version: u32) -> (ReleaseState, Option<String>) {
        let release = self.db.release(&self.app, version).await.unwrap().unwrap();
        (release.state, release.failure)
    }

    /// What each of the app's routed backends answers.
    async fn answers(&self) -> Vec<String> {
        let table = self.routes.current();
        let route = table.routes.iter().find(|r| r.app.as_str() == "shop").expect("the app is routed");
        let mut answers = Vec::new();
        for backend in &route.backends {
            let body = reqwest::get(format!("http://{backend}/")).await.unwrap().text().await.unwrap();
            answers.push(body.split(' ').take(2).collect::<Vec<_>>().join(" "));
        }
        answers
    }

    pub(crate) async fn events(&self) -> Vec<String> {
        self.db.events(Some(&self.app.name), 100).await.unwrap().into_iter().map(|e| e.message).collect()
    }
}

/// Moves the scheduler's clock (tokio's) on by `span` instead of waiting it out.
async fn pass_time(span: Duration) {
    tokio::time::pause();
    tokio::time::advance(span).await;
    tokio::time::resume();
}

/// Every table the feed publishes while `during` runs.
async fn tables_during<F: std::future::Future<Output = ()>>(routes: &RouteFeed, during: F) -> Vec<RouteTable> {
    let mut seen = vec![routes.current()];
    tokio::pin!(during);
    loop {
        let after = seen.last().unwrap().version;
        tokio::select! {
            () = &mut during => return seen,
            table = routes.next(after, Duration::from_secs(30)) => seen.push(table),
        }
    }
}

#[tokio::test]
async fn a_rollout_switches_routes_once_the_new_release_is_ready() {
    let fixture = Fixture::new().await;
    let scheduler = fixture.scheduler().await;
    fixture.release(&[("web", "serve")]).await;
    fixture.scale("web", 2).await;
    scheduler.pass().await.unwrap();
    assert_eq!(fixture.containers("web").await, [(1, true), (1, true)]);
    assert_eq!(fixture.answers().await, ["shop v1", "shop v1"]);
    assert_eq!(fixture.state(1).await.0, ReleaseState::Deployed);

    fixture.release(&[("web", "serve")]).await;
    let tables = tables_during(&fixture.routes, async { scheduler.pass().await.unwrap() }).await;
    for table in &tables {
        let route = table.routes.iter().find(|r| r.app.as_str() == "shop").unwrap();
        assert!(!route.backends.is_empty(), "the app always had somewhere to go: {tables:?}");
    }
    assert_eq!(fixture.containers("web").await, [(2, true), (2, true)], "v1's containers are gone");
    assert_eq!(fixture.answers().await, ["shop v2", "shop v2"]);
    assert_eq!(fixture.state(2).await.0, ReleaseState::Deployed);
    assert!(fixture.events().await.iter().any(|e| e == "Release v2 is up"));
}

#[tokio::test]
async fn a_release_that_never_gets_ready_fails_and_the_previous_keeps_serving() {
    let fixture = Fixture::new().await;
    let scheduler = fixture.scheduler().await;
    fixture.release(&[("web", "serve")]).await;
    scheduler.pass().await.unwrap();

    fixture.release(&[("web", "hang")]).await;
    scheduler.pass().await.unwrap();
    let (state, reason) = fixture.state(2).await;
    assert_eq!(state, ReleaseState::Failed);
    assert_eq!(reason.as_deref(), Some("web did not answer HTTP on $PORT (listen on 0.0.0.0:$PORT) within 1 s"));
    assert_eq!(fixture.containers("web").await, [(1, true)], "the hung container is removed");
    assert_eq!(fixture.answers().await, ["shop v1"]);

    fixture.release(&[("web", "exit 127")]).await;
    scheduler.pass().await.unwrap();
    let (state, reason) = fixture.state(3).await;
    assert_eq!(state, ReleaseState::Failed);
    assert!(reason.unwrap().contains("exited with status 127 while starting (its command is not in the image"));
    assert_eq!(fixture.answers().await, ["shop v1"]);
    let events = fixture.events().await;
    assert!(
        events
            .iter()
            .any(|e| e.starts_with("Release v3 failed to start") && e.ends_with("the previous release keeps serving")),
        "{events:?}"
    );
}

#[tokio::test]
async fn a_release_command_runs_once_before_its_release_serves_and_failing_fails_the_release() {
    let fixture = Fixture::new().await;
    let scheduler = fixture.scheduler().await;
    fixture.release(&[("web", "serve")]).await;
    scheduler.pass().await.unwrap();

    // v2 migrates, then serves; the command runs once, and no container keeps running it.
    fixture.release(&[("web", "serve"), ("release", "migrate")]).await;
    let starts = fixture.runtime.starts();
    scheduler.pass().await.unwrap();
    scheduler.pass().await.unwrap();
    assert_eq!(fixture.state(2).await.0, ReleaseState::Deployed);
    assert_eq!(fixture.answers().await, ["shop v2"]);
    assert_eq!(fixture.runtime.starts(), starts + 2, "the release command, then one web container");
    assert!(fixture.containers("release").await.is_empty());
    let v2 = fixture.db.release(&fixture.app, 2).await.unwrap().unwrap();
    assert_eq!(v2.phase, Some(ReleasePhase { state: PhaseState::Succeeded, output: "migrate\n".into() }));
    let ran = |events: &[String], version: u32| {
        let started = format!("Release v{version}: running its release command");
        events.iter().filter(|e| e.starts_with(&started)).count()
    };
    scheduler.pass().await.unwrap();
    assert_eq!(ran(&fixture.events().await, 2), 1, "once per release");

    // A failing command fails its release before any of its containers start.
    fixture.release(&[("web", "serve"), ("release", "exit 3")]).await;
    scheduler.pass().await.unwrap();
    scheduler.pass().await.unwrap();
    let (state, reason) = fixture.state(3).await;
    assert_eq!((state, reason.as_deref()), (ReleaseState::Failed, Some("the release command exited with status 3")));
    assert_eq!(fixture.containers("web").await, [(2, true)], "v2 keeps serving");
    assert_eq!(fixture.answers().await, ["shop v2"]);
    let events = fixture.events().await;
    assert!(events.iter().any(|e| e.starts_with("Release v3 failed: the release command exited with status 3")));

    // So does one that runs out of time.
    fixture.release(&[("web", "serve"), ("release", "hang")]).await;
    scheduler.pass().await.unwrap();
    let (state, reason) = fixture.state(4).await;
    assert_eq!(
        (state, reason.as_deref()),
        (ReleaseState::Failed, Some("the release command ran out of time after 1 s"))
    );
    assert_eq!(fixture.answers().await, ["shop v2"]);
}

#[tokio::test]
async fn crashed_containers_come_back_with_growing_pauses() {
    let fixture = Fixture::new().await;
    let scheduler = fixture.scheduler().await;
    fixture.release(&[("web", "serve"), ("worker", "work")]).await;
    fixture.scale("worker", 1).await;
    scheduler.pass().await.unwrap();
    let starts = fixture.runtime.starts();

    fixture.runtime.crash(&fixture.running("worker").await, 1);
    scheduler.pass().await.unwrap();
    assert_eq!(fixture.containers("worker").await, [(1, true)], "the first crash restarts at once");
    assert_eq!(fixture.runtime.starts(), starts + 1);

    fixture.runtime.crash(&fixture.running("worker").await, 1);
    scheduler.pass().await.unwrap();
    assert!(fixture.containers("worker").await.is_empty(), "the second waits out its backoff");
    assert_eq!(fixture.runtime.starts(), starts + 1);
    let events = fixture.events().await;
    assert!(
        events.iter().any(|e| e.ends_with("container exited; 2 crashes in a row, starting another in 2 s")),
        "{events:?}"
    );

    let crashes = fixture.db.crashes(&fixture.app).await.unwrap();
    assert_eq!(crashes.len(), 1, "{crashes:?}");
    let (process, release, crash) = &crashes[0];
    assert_eq!((process.as_str(), *release, crash.in_a_row), ("worker", 1, 2));
    assert_eq!(crash.reason, "worker exited with status 1", "kept for `skiff ps`");
    assert!(crash.restart_at > crash.crashed_at);

    pass_time(Duration::from_millis(2100)).await;
    scheduler.pass().await.unwrap();
    assert_eq!(fixture.containers("worker").await, [(1, true)], "after the pause it runs again");
    assert!(fixture.db.crashes(&fixture.app).await.unwrap().is_empty(), "and is no longer listed as crashed");
    assert_eq!(fixture.containers("web").await, [(1, true)], "the web process was never touched");
}

#[tokio::test]
async fn a_restarted_controller_adopts_running_containers() {
    let fixture = Fixture::new().await;
    fixture.release(&[("web", "serve")]).await;
    fixture.scale("web", 3).await;
    fixture.scheduler().await.pass().await.unwrap();
    let before = fixture.runtime.list().await.unwrap();
    let starts = fixture.runtime.starts();

    let restarted = fixture.scheduler().await;
    restarted.pass().await.unwrap();
    assert_eq!(fixture.runtime.starts(), starts, "nothing started again");
    assert_eq!(fixture.runtime.list().await.unwrap(), before, "nothing stopped");
    assert_eq!(fixture.answers().await, ["shop v1", "shop v1", "shop v1"]);
}

#[tokio::test]
async fn a_rollout_cut_off_midway_is_finished_by_the_next_controller() {
    let fixture = Fixture::new().await;
    fixture.release(&[("web", "serve")]).await;
    fixture.scale("web", 2).await;
    fixture.scheduler().await.pass().await.unwrap();

    // The controller that created v2 started one of its containers and died.
    fixture.release(&[("web", "serve")]).await;
    let dying = fixture.scheduler().await;
    let pass = tokio::spawn(async move { dying.pass().await });
    let started = async {
        loop {
            if fixture.containers("web").await.iter().any(|(release, _)| *release == 2) {
                break;
            }
            tokio::task::yield_now().await;
        }
    };
    tokio::time::timeout(Duration::from_secs(10), started).await.expect("v2 starts");
    pass.abort();
    let _ = pass.await;
    let adopted: Vec<String> =
        fixture.runtime.list().await.unwrap().into_iter().filter(|c| c.release == 2).map(|c| c.id).collect();

    fixture.scheduler().await.pass().await.unwrap();
    assert_eq!(fixture.containers("web").await, [(2, true), (2, true)], "no v1 left, no v2 twice");
    let now: Vec<String> = fixture.runtime.list().await.unwrap().into_iter().map(|c| c.id).collect();
    assert!(adopted.iter().all(|id| now.contains(id)), "containers the first controller started are kept");
    assert_eq!(fixture.state(2).await.0, ReleaseState::Deployed);
    assert_eq!(fixture.answers().await, ["shop v2", "shop v2"]);
}

#[tokio::test]
async fn scaling_to_twenty_and_back_to_zero() {
    let fixture = Fixture::new().await;
    let scheduler = fixture.scheduler_draining(Duration::from_millis(500)).await;
    fixture.release(&[("web", "serve")]).await;
    fixture.scale("web", 20).await;
    scheduler.pass().await.unwrap();
    assert_eq!(fixture.containers("web").await, vec![(1, true); 20]);
    assert_eq!(fixture.answers().await.len(), 20, "every container is routed");

    fixture.scale("web", 5).await;
    scheduler.pass().await.unwrap();
    assert_eq!(fixture.answers().await.len(), 5, "routers stop sending to the other 15 at once");
    assert_eq!(fixture.containers("web").await.len(), 20, "while they drain");
    pass_time(Duration::from_millis(600)).await;
    scheduler.pass().await.unwrap();
    assert_eq!(fixture.containers("web").await, vec![(1, true); 5], "then they stop");

    fixture.scale("web", 0).await;
    scheduler.pass().await.unwrap();
    assert!(fixture.answers().await.is_empty());
    pass_time(Duration::from_millis(600)).await;
    scheduler.pass().await.unwrap();
    assert!(fixture.containers("web").await.is_empty());
}

#[tokio::test]
async fn a_restart_replaces_every_container_of_the_type() {
    let fixture = Fixture::new().await;
    let scheduler = fixture.scheduler().await;
    fixture.release(&[("web", "serve")]).await;
    fixture.scale("web", 2).await;
    scheduler.pass().await.unwrap();
    let before: Vec<String> = fixture.runtime.list().await.unwrap().into_iter().map(|c| c.id).collect();

    fixture.db.restart(&fixture.app, &[("web".parse().unwrap(), 1)]).await.unwrap();
    scheduler.pass().await.unwrap();
    let after: Vec<String> = fixture.runtime.list().await.unwrap().into_iter().map(|c| c.id).collect();
    assert_eq!(after.len(), 2);
    assert!(after.iter().all(|id| !before.contains(id)), "all replaced: {before:?} → {after:?}");
}

/// Rolls out two releases of the fixture's app while other apps are in trouble, on the
/// given replicas' reconcile loops; each must be deployed within a few seconds.
pub(crate) async fn rollouts_beside_apps_in_trouble(fixture: &Fixture, replicas: Vec<Scheduler>) {
    fixture.apps_in_trouble().await;
    let shutdown = CancellationToken::new();
    let loops: Vec<_> = replicas.into_iter().map(|replica| tokio::spawn(replica.run(shutdown.clone()))).collect();
    for version in 1..=2 {
        fixture.release(&[("web", "serve")]).await;
        let deployed = fixture.deployed_within(version, Duration::from_secs(10)).await;
        assert!(deployed, "v{version} is deployed beside the hung and crashing apps: {:?}", fixture.events().await);
    }
    let crashy = format!("{}-crashy", fixture.app.name).parse().unwrap();
    let crashy = fixture.db.events(Some(&crashy), 100).await.unwrap();
    assert!(
        crashy.iter().any(|e| e.message.starts_with("worker of v1 failed to start: worker exited with status 1")),
        "the crash is the worker's, not its release's: {crashy:?}"
    );
    shutdown.cancel();
    for running in loops {
        running.await.unwrap();
    }
}

#[tokio::test]
async fn an_app_stuck_in_its_rollout_holds_up_no_other_app() {
    let fixture = Fixture::new().await;
    let scheduler = fixture.scheduler().await;
    rollouts_beside_apps_in_trouble(&fixture, vec![scheduler]).await;
}
