//! The controller's tests: the API in process (`TestApp`: who may call what, and what each
//! operation does), the reconcile loop over the in-memory runtime, and the data layer
//! against every backend it supports: SQLite (a file) and a real Postgres (started by
//! deploy/test.sh; its URL comes in `SKIFF_TEST_POSTGRES_URL`); replicas coordinating
//! through a real Redis. Tests that need Postgres or Redis are ignored by a plain
//! `cargo test`; deploy/test.sh runs them too.

mod api;
mod authorization;
mod coordination;
mod cron;
mod dashboard;
mod dump;
mod scheduler;
mod sources;
mod test_app;
mod webhooks;

use std::collections::BTreeMap;

use skiff_api::{
    BuildCreate, BuildKind, BuildStatus, EventKind, Limits, PhaseState, ReleaseState, ReviewAppSettings, Stage,
};
use skiff_controller::db::{AppRow, Db, NewRelease, SettingsKind, UserRow};

/// A fresh Postgres database for one test.
async fn postgres() -> Db {
    postgres_named().await.0
}

/// A fresh Postgres database for one test, its name, and a connection to the server's
/// default database (to drop it with).
async fn postgres_named() -> (Db, String, Db) {
    let url = std::env::var("SKIFF_TEST_POSTGRES_URL").expect(
        "these tests need Postgres: run deploy/test.sh, which installs and starts one, \
         or set SKIFF_TEST_POSTGRES_URL=postgres://USER@127.0.0.1:PORT/DB",
    );
    let name = format!("skiff_test_{:016x}", rand_u64());
    let admin = Db::open(&url).await.expect("Postgres answers");
    admin.execute_admin(&format!("CREATE DATABASE {name}")).await.expect("create a test database");
    let (base, _) = url.rsplit_once('/').expect("the URL names a database");
    let db = Db::open(&format!("{base}/{name}")).await.expect("the test database opens");
    (db, name, admin)
}

fn rand_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u128(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
    hasher.finish()
}

async fn sqlite() -> (Db, tempfile::TempDir) {
    let dir = tempfile::tempdir().unwrap();
    (Db::open_sqlite(&dir.path().join("skiff.db")).await.unwrap(), dir)
}

/// Walks every query once and checks what comes back.
async fn exercise(db: &Db) {
    let admin = db.create_user(&"admin".parse().unwrap(), "hash").await.unwrap().expect("created");
    assert!(admin.admin, "the first user is admin");
    let bob = db.create_user(&"bob".parse().unwrap(), "hash").await.unwrap().expect("created");
    assert!(!bob.admin);
    assert!(db.create_user(&"bob".parse().unwrap(), "hash").await.unwrap().is_none(), "names are unique");
    db.add_token(bob.id, "token-hash", None).await.unwrap();
    assert_eq!(db.user_by_token("token-hash").await.unwrap().unwrap().username.as_str(), "bob");
    // A session's token stops working when it expires, and is then forgotten.
    let now_ms = skiff_controller::clock::now_ms();
    db.add_token(bob.id, "session-hash", Some(now_ms + 60_000)).await.unwrap();
    db.add_token(bob.id, "expired-hash", Some(now_ms - 1)).await.unwrap();
    assert!(db.user_by_token("session-hash").await.unwrap().is_some());
    assert!(db.user_by_token("expired-hash").await.unwrap().is_none(), "expired");
    assert_eq!(db.remove_expired_tokens(now_ms).await.unwrap(), 1);
    assert!(db.user_by_token("token-hash").await.unwrap().is_some(), "API tokens do not expire");

    let key = db.add_key(bob.id, "SHA256:abc", "ssh-ed25519 AAAA", "laptop").await.unwrap().expect("added");
    assert!(db.add_key(admin.id, "SHA256:abc", "ssh-ed25519 AAAA", "x").await.unwrap().is_none());
    assert_eq!(db.key_owner("SHA256:abc").await.unwrap().unwrap().id, bob.id);
    assert_eq!(db.keys(bob.id).await.unwrap().len(), 1);
    assert!(db.remove_key(bob.id, key.id).await.unwrap());

    let app = db.create_app(&"shop".parse().unwrap(), &bob, &"busybox".parse().unwrap()).await.unwrap().unwrap();
    assert!(db.create_app(&"shop".parse().unwrap(), &admin, &"busybox".parse().unwrap()).await.unwrap().is_none());
    assert_eq!(db.apps(Some(bob.id)).await.unwrap().len(), 1);
    assert!(db.apps(Some(admin.id)).await.unwrap().is_empty());
    assert!(db.add_perm(app.id, admin.id).await.unwrap());
    assert!(db.is_collaborator(app.id, admin.id).await.unwrap());
    assert_eq!(db.apps(Some(admin.id)).await.unwrap().len(), 1, "collaborators see the app");
    assert_eq!(db.perms(app.id).await.unwrap().len(), 1);
    assert!(db.remove_perm(app.id, admin.id).await.unwrap());

    let procfile: BTreeMap<_, _> = [("web".parse().unwrap(), "serve".to_owned())].into();
    let build = BuildCreate {
        app: app.name.clone(),
        username: bob.username.clone(),
        kind: BuildKind::Procfile,
        status: BuildStatus::Succeeded,
        image: Some("shop@sha256:abc".into()),
        git_sha: Some("0123456789".into()),
        procfile: procfile.clone(),
        duration_ms: 1234,
        log: "-----> built".into(),
        app_json: None,
        message: Some("first <commit>".into()),
    };
    let recorded = db.create_build(&app, &build).await.unwrap();
    assert_eq!(db.builds(&app, None).await.unwrap()[0].duration_ms, 1234);
    assert_eq!(db.builds(&app, None).await.unwrap()[0].message.as_deref(), Some("first <commit>"));
    assert_eq!(db.build(&app, recorded.id).await.unwrap().unwrap().log.as_deref(), Some("-----> built"));

    let config: BTreeMap<String, String> = [("A".to_owned(), "1".to_owned())].into();
    let replace = |current: &mut BTreeMap<String, String>| current.clone_from(&config);
    db.change_config(&app, replace, |_| Ok::<(), String>(()), None, &bob.username, "config").await.unwrap().unwrap();
    assert_eq!(db.config(&app).await.unwrap(), config);
    let release = |image, summary| NewRelease {
        image,
        build: None,
        git_sha: None,
        procfile: &procfile,
        config: &config,
        created_by: &bob.username,
        summary,
    };
    let first =
        NewRelease { build: Some(recorded.id), git_sha: Some("0123456789"), ..release("shop@sha256:abc", "v1") };
    let v1 = db.create_release(&app, &first).await.unwrap();
    assert_eq!((v1.version, v1.state), (1, ReleaseState::Pending));
    let v2 = db.create_release(&app, &release("shop@sha256:def", "v2")).await.unwrap();
    assert_eq!(v2.version, 2);
    assert!(db.settle_release(&app.name, 1, ReleaseState::Deployed, None).await.unwrap());
    assert!(
        !db.settle_release(&app.name, 1, ReleaseState::Failed, None).await.unwrap(),
        "only pending releases settle"
    );
    assert!(db.settle_release(&app.name, 2, ReleaseState::Failed, Some("crashed")).await.unwrap());
    let current = db.current_releases_by_app().await.unwrap();
    assert_eq!(current.len(), 1);
    assert_eq!(current[0].1.version, 1, "a failed release is skipped");
    assert_eq!(db.running_release(&app).await.unwrap().unwrap().version, 1, "here too");
    let overview = db.release_overview().await.unwrap()[&app.id].clone();
    assert_eq!((overview.newest.map(|n| (n.0, n.1)), overview.current), (Some((2, ReleaseState::Failed)), Some(1)));
    assert!(!overview.crashing);
    let releases = db.releases(&app, None).await.unwrap();
    let newest: Vec<u32> = db.releases(&app, Some(1)).await.unwrap().iter().map(|r| r.version).collect();
    assert_eq!(newest, [releases[0].version], "the newest first");
    assert_eq!(releases[0].failure.as_deref(), Some("crashed"));
    assert_eq!(releases[1].config, config);
    assert_eq!(db.release(&app, 1).await.unwrap().unwrap().build, Some(recorded.id));
    // Two releases in quick succession: once the newer is deployed, the older never runs.
    for summary in ["v3", "v4"] {
        db.create_release(&app, &release("shop@sha256:def", summary)).await.unwrap();
    }
    assert!(db.settle_release(&app.name, 4, ReleaseState::Deployed, None).await.unwrap());
    assert_eq!(db.release(&app, 3).await.unwrap().unwrap().state, ReleaseState::Superseded);
    assert_eq!(db.release(&app, 1).await.unwrap().unwrap().state, ReleaseState::Deployed, "deployed ones stay");
    assert_eq!(db.running_release(&app).await.unwrap().unwrap().version, 4);

    db.scale(&app, &"web".parse().unwrap(), 3).await.unwrap();
    db.restart(&app, &[("web".parse().unwrap(), 1), ("worker".parse().unwrap(), 0)]).await.unwrap();
    let formation = db.formation(app.id).await.unwrap();
    assert_eq!(formation.len(), 2);
    assert_eq!((formation[0].quantity, formation[0].generation), (3, 1));
    assert_eq!((formation[1].quantity, formation[1].generation), (0, 1));
    assert_eq!(db.formations().await.unwrap()[&app.id], formation, "every app's at once, the same");

    let limits: BTreeMap<_, _> = [("web".parse().unwrap(), Limits { memory_mb: Some(64), cpu: Some(0.5) })].into();
    db.set_settings(app.id, SettingsKind::Limits, &limits).await.unwrap();
    let back: BTreeMap<skiff_api::ProcessType, Limits> = db.settings(app.id, SettingsKind::Limits).await.unwrap();
    assert_eq!(back, limits);
    let every: std::collections::HashMap<i64, BTreeMap<skiff_api::ProcessType, Limits>> =
        db.all_settings(SettingsKind::Limits).await.unwrap();
    assert_eq!(every[&app.id], limits);

    assert!(db.add_domain(app.id, "www.example.test").await.unwrap());
    assert!(!db.add_domain(app.id, "www.example.test").await.unwrap());
    assert_eq!(db.domains(None).await.unwrap().len(), 1);
    assert_eq!(db.domains(Some(app.id)).await.unwrap()[0].1, "www.example.test");
    let cert = skiff_api::Certificate {
        name: "main".into(),
        common_name: "www.example.test".into(),
        names: vec!["www.example.test".into()],
        domains: vec![],
        expires_at: "2030-01-01T00:00:00Z".into(),
        created_at: "2026-11-24T00:00:00Z".into(),
    };
    assert!(db.add_cert(app.id, &cert, "CHAIN", "KEY").await.unwrap());
    assert!(!db.add_cert(app.id, &cert, "CHAIN", "KEY").await.unwrap(), "names are unique per app");
    assert!(db.attach_cert(app.id, "main", "www.example.test").await.unwrap());
    assert!(!db.attach_cert(app.id, "main", "other.example.test").await.unwrap(), "only the app's domains");
    assert!(!db.attach_cert(app.id, "nosuch", "www.example.test").await.unwrap());
    let (listed, chain, key) = db.certs_with_keys(None).await.unwrap().remove(0);
    assert_eq!((listed.domains, chain.as_str(), key.as_str()), (vec!["www.example.test".to_owned()], "CHAIN", "KEY"));
    assert!(db.detach_cert(app.id, "main", "www.example.test").await.unwrap());
    assert!(db.certs(app.id).await.unwrap()[0].domains.is_empty());
    assert!(db.attach_cert(app.id, "main", "www.example.test").await.unwrap());
    let tls = skiff_api::TlsSettings { force_https: true, hsts_max_age: 31_536_000 };
    db.set_tls(app.id, tls).await.unwrap();
    let access = skiff_api::AccessPolicy { max_body_bytes: Some(1024), allow: vec!["10.0.0.0/8".into()], deny: vec![] };
    db.set_access(app.id, &access).await.unwrap();
    assert_eq!(db.app(&app.name).await.unwrap().unwrap().access, access);
    assert_eq!(db.app(&app.name).await.unwrap().unwrap().tls, tls);
    assert!(db.remove_domain(app.id, "www.example.test").await.unwrap());
    assert!(db.certs(app.id).await.unwrap()[0].domains.is_empty(), "a removed domain loses its certificate");
    assert!(db.remove_cert(app.id, "main").await.unwrap());
    let drain = db.add_drain(Some(&app), "syslog://logs.example.test:514").await.unwrap().expect("added");
    assert!(db.add_drain(Some(&app), "syslog://logs.example.test:514").await.unwrap().is_none(), "once per app");
    let platform = db.add_drain(None, "syslog://logs.example.test:514").await.unwrap().expect("platform-wide");
    assert_eq!(db.drains(Some(&app)).await.unwrap()[0].app.as_ref(), Some(&app.name));
    assert_eq!(db.drains(None).await.unwrap()[0].id, platform.id);
    assert_eq!(db.all_drains().await.unwrap().len(), 2);
    assert!(!db.remove_drain(None, drain.id).await.unwrap(), "an app's drain is not the platform's");
    assert!(db.remove_drain(None, platform.id).await.unwrap());
    db.set_maintenance(app.id, true).await.unwrap();
    assert!(db.app(&app.name).await.unwrap().unwrap().maintenance);

    db.put_stack(&"busybox".parse().unwrap(), "stacks/busybox@sha256:1").await.unwrap();
    db.put_stack(&"busybox".parse().unwrap(), "stacks/busybox@sha256:2").await.unwrap();
    assert_eq!(db.stacks().await.unwrap()[0].1, "stacks/busybox@sha256:2");

    db.add_event(Some(&app.name), EventKind::App, "bob created the app").await.unwrap();
    db.add_event(None, EventKind::Platform, "admin imported stack busybox").await.unwrap();
    db.add_event(Some(&app.name), EventKind::Scale, "bob scaled web=3").await.unwrap();
    let events = db.events(Some(&app.name), 10).await.unwrap();
    assert_eq!(
        events.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
        ["bob created the app", "bob scaled web=3"]
    );
    assert_eq!(events.iter().map(|e| e.kind).collect::<Vec<_>>(), [EventKind::App, EventKind::Scale]);
    assert_eq!(
        db.events(None, 2).await.unwrap()[0].message,
        "admin imported stack busybox",
        "the newest, oldest first"
    );
    db.retire_events(&app.name).await.unwrap();
    assert!(db.events(Some(&app.name), 10).await.unwrap().is_empty());
    assert_eq!(db.events(None, 10).await.unwrap()[0].message, "shop: bob created the app");
    delivery_queries(db, &app, &bob).await;
    db.transfer(app.id, admin.id).await.unwrap();
    assert_eq!(db.app(&app.name).await.unwrap().unwrap().owner.as_str(), "admin");
    db.delete_app(app.id).await.unwrap();
    assert!(db.app(&app.name).await.unwrap().is_none());
    assert!(db.builds(&app, None).await.unwrap().is_empty(), "an app's builds go with it");
    assert!(db.all_drains().await.unwrap().is_empty(), "and its drains");
}

/// The release phase's, pipelines' and review apps' queries.
async fn delivery_queries(db: &Db, app: &AppRow, bob: &UserRow) {
    let procfile: BTreeMap<_, _> =
        [("web".parse().unwrap(), "serve".to_owned()), ("release".parse().unwrap(), "migrate".to_owned())].into();
    let config = BTreeMap::new();
    let new = NewRelease {
        image: "shop@sha256:def",
        build: None,
        git_sha: None,
        procfile: &procfile,
        config: &config,
        created_by: &bob.username,
        summary: "migrates",
    };
    let waiting = db.create_release(app, &new).await.unwrap();
    assert_eq!(waiting.phase.as_ref().map(|p| p.state), Some(PhaseState::Running));
    assert!(db.releases_awaiting_phase().await.unwrap().iter().any(|(_, r)| r.version == waiting.version));
    let current = |db: &Db| {
        let db = db.clone();
        async move { db.current_releases_by_app().await.unwrap().into_iter().map(|(_, r)| r.version).collect::<Vec<_>>() }
    };
    assert!(!current(db).await.contains(&waiting.version), "not current before its command ran");
    assert!(db.record_phase(&app.name, waiting.version, PhaseState::Succeeded, "done\n").await.unwrap());
    assert!(!db.record_phase(&app.name, waiting.version, PhaseState::Failed, "").await.unwrap(), "it ended already");
    assert!(current(db).await.contains(&waiting.version));
    let phase = db.release(app, waiting.version).await.unwrap().unwrap().phase.unwrap();
    assert_eq!((phase.state, phase.output.as_str()), (PhaseState::Succeeded, "done\n"));

    let line: skiff_api::PipelineName = "line".parse().unwrap();
    let pipeline = db.create_pipeline(&line, bob).await.unwrap().expect("made");
    assert!(db.create_pipeline(&line, bob).await.unwrap().is_none(), "names are unique");
    db.couple(pipeline.id, app.id, Stage::Staging).await.unwrap();
    db.couple(pipeline.id, app.id, Stage::Production).await.unwrap();
    assert_eq!(db.pipeline_apps(pipeline.id).await.unwrap(), [(app.id, Stage::Production)]);
    let (found, stage) = db.coupling(app.id).await.unwrap().expect("in the pipeline");
    assert_eq!((found.name.as_str(), stage), ("line", Stage::Production));
    let review = ReviewAppSettings { enabled: true, days: 2, config: [("A".to_owned(), "1".to_owned())].into() };
    db.set_review_apps(pipeline.id, &review).await.unwrap();
    assert_eq!(db.pipeline(&line).await.unwrap().unwrap().review, review);
    let branch = db.create_app(&"shop-fix".parse().unwrap(), bob, &"busybox".parse().unwrap()).await.unwrap().unwrap();
    db.add_review_app(branch.id, app.id, pipeline.id, "fix").await.unwrap();
    db.review_app_pushed(branch.id).await.unwrap();
    assert_eq!(db.review_app(app.id, "fix").await.unwrap().unwrap().app_id, branch.id);
    assert_eq!(db.review_apps(None).await.unwrap().len(), 1);
    assert_eq!(db.review_apps(Some(pipeline.id)).await.unwrap()[0].branch, "fix");
    assert!(db.claim_postdeploy(branch.id).await.unwrap());
    assert!(!db.claim_postdeploy(branch.id).await.unwrap(), "once");
    assert_eq!(db.app_by_id(branch.id).await.unwrap().unwrap().name, branch.name);
    assert!(db.uncouple(app.id).await.unwrap());
    assert!(!db.uncouple(app.id).await.unwrap());
    db.delete_pipeline(pipeline.id).await.unwrap();
    assert!(db.pipelines().await.unwrap().is_empty());
    assert!(db.review_apps(None).await.unwrap().is_empty(), "the pipeline's review app records go with it");
    db.delete_app(branch.id).await.unwrap();
    canary_queries(db, app, bob).await;
    webhook_queries(db, app).await;
    cron_queries(db, app).await;
    acme_queries(db, app).await;
    source_queries(db, app, bob).await;
}

async fn source_queries(db: &Db, app: &AppRow, bob: &UserRow) {
    use skiff_controller::db::SourceRow;
    assert_eq!(db.source(app).await.unwrap(), None);
    let mut source = SourceRow {
        repo: "https://git.example/shop.git".into(),
        branch: "main".into(),
        secret: "s".repeat(20),
        deploy_key: None,
        connected_by: bob.username.clone(),
        created_at: "2026-01-01T00:00:00Z".into(),
    };
    db.set_source(app, &source).await.unwrap();
    assert_eq!(db.source(app).await.unwrap().as_ref(), Some(&source));
    source.deploy_key = Some("-----BEGIN OPENSSH PRIVATE KEY-----".into());
    db.set_source(app, &source).await.unwrap();
    assert_eq!(db.source(app).await.unwrap().as_ref(), Some(&source), "replaced");
    assert!(db.take_source_delivery(app, "d-1").await.unwrap());
    assert!(!db.take_source_delivery(app, "d-1").await.unwrap(), "a replay");
    assert!(db.remove_source(app).await.unwrap());
    assert!(!db.remove_source(app).await.unwrap());
}

async fn cron_queries(db: &Db, app: &AppRow) {
    use skiff_api::{CronRun, CronRunState, CronSource};
    use skiff_controller::db::NewCronJob;
    let job = |command: &str, source| NewCronJob {
        schedule: "* * * * *".into(),
        timezone: "UTC".into(),
        command: command.into(),
        source,
        next_run_ms: 60_000,
    };
    let mine = db.add_cron_job(app, &job("echo mine", CronSource::Cli)).await.unwrap();
    db.replace_app_json_cron(app, &[job("echo a", CronSource::AppJson), job("echo b", CronSource::AppJson)])
        .await
        .unwrap();
    db.replace_app_json_cron(app, &[job("echo c", CronSource::AppJson)]).await.unwrap();
    let listed: Vec<String> = db.cron_jobs(app).await.unwrap().into_iter().map(|j| j.command).collect();
    assert_eq!(listed, ["echo mine", "echo c"]);
    assert!(db.due_cron_jobs(59_999).await.unwrap().is_empty());
    let due = db.due_cron_jobs(60_000).await.unwrap();
    assert_eq!(due.len(), 2);
    assert_eq!(db.cron_job(app, mine).await.unwrap().as_ref(), due.iter().find(|j| j.id == mine));
    // Two controllers find it due; one moves it on and runs it.
    assert!(db.advance_cron_job(mine, 60_000, 120_000).await.unwrap());
    assert!(!db.advance_cron_job(mine, 60_000, 120_000).await.unwrap(), "moved on already");
    let run = CronRun {
        id: 0,
        due_at: String::new(),
        state: CronRunState::Running,
        release: Some(1),
        exit_status: None,
        duration_ms: None,
        reason: None,
    };
    let id = db.add_cron_run(mine, 60_000, &run, 60_001).await.unwrap().expect("the first run of that due time");
    assert_eq!(db.add_cron_run(mine, 60_000, &run, 60_002).await.unwrap(), None, "one run per due time");
    assert_eq!(db.running_cron_run(mine, 0).await.unwrap(), Some((id, 60_000, 60_001)));
    assert_eq!(db.running_cron_run(mine, 60_001).await.unwrap(), None, "too old to count");
    let ended = CronRun {
        state: CronRunState::Failed,
        exit_status: Some(2),
        duration_ms: Some(15),
        reason: Some("exited with status 2".into()),
        ..run
    };
    db.finish_cron_run(id, &ended).await.unwrap();
    let last = db.cron_jobs(app).await.unwrap()[0].last_run.clone().unwrap();
    assert_eq!(
        (last.id, last.state, last.exit_status, last.duration_ms),
        (id, CronRunState::Failed, Some(2), Some(15))
    );
    assert_eq!(last.due_at, "1970-01-01T00:01:00Z");
    assert_eq!(db.running_cron_run(mine, 0).await.unwrap(), None);
    assert!(db.remove_cron_job(app, mine).await.unwrap());
    assert!(!db.remove_cron_job(app, mine).await.unwrap());
}

async fn webhook_queries(db: &Db, app: &AppRow) {
    use skiff_api::{DeliveryState, EventPayload, WebhookFormat};
    use skiff_controller::db::Attempt;
    let hook = db.add_webhook(Some(app), "http://hooks.example/a", &[EventKind::Release], "s", WebhookFormat::Slack);
    let hook = hook.await.unwrap();
    let platform = db.add_webhook(None, "http://hooks.example/p", &EventKind::ALL, "p", WebhookFormat::Skiff);
    let platform = platform.await.unwrap();
    assert_eq!(db.webhooks(Some(app)).await.unwrap(), std::slice::from_ref(&hook));
    assert_eq!(db.webhooks(None).await.unwrap(), std::slice::from_ref(&platform));
    let event = |id, kind, app: Option<&AppRow>| EventPayload {
        id,
        kind,
        time: "2026-01-01T00:00:00Z".into(),
        actor: None,
        app: app.map(|a| a.name.clone()),
        message: format!("event {id}"),
        data: serde_json::Value::Null,
    };
    assert_eq!(db.queue_deliveries(&event(1, EventKind::Release, Some(app)), 1000).await.unwrap(), 2, "both take it");
    assert_eq!(db.queue_deliveries(&event(2, EventKind::Scale, Some(app)), 1000).await.unwrap(), 1, "the platform's");
    assert_eq!(db.queue_deliveries(&event(3, EventKind::Release, Some(app)), 1000).await.unwrap(), 2);
    assert_eq!(db.queue_deliveries(&event(4, EventKind::Platform, None), 1000).await.unwrap(), 1);
    let due = db.due_deliveries(1000, 10).await.unwrap();
    // Per webhook and app, the oldest pending one only: event 1 to each, and the platform event.
    let heads: Vec<(String, i64)> =
        due.iter().map(|d| (d.url.clone(), serde_json::from_str::<EventPayload>(&d.payload).unwrap().id)).collect();
    assert_eq!(heads.len(), 3, "{heads:?}");
    assert!(
        heads.contains(&("http://hooks.example/a".into(), 1)) && heads.contains(&("http://hooks.example/p".into(), 4))
    );
    assert!(db.due_deliveries(999, 10).await.unwrap().is_empty(), "not due before its time");
    let first = due.iter().find(|d| d.url.ends_with("/a")).unwrap();
    assert_eq!((first.format, first.platform), (WebhookFormat::Slack, false));
    assert!(db.claim_delivery(first.id, 1000, 31_000).await.unwrap());
    assert!(!db.claim_delivery(first.id, 1000, 31_000).await.unwrap(), "one claim at a time");
    assert_eq!(db.due_deliveries(1000, 10).await.unwrap().len(), 2, "a claimed one is not due");
    let retry = Attempt {
        status: Some(503),
        error: Some("answered 503".into()),
        latency_ms: 12,
        state: DeliveryState::Pending,
        next_attempt_ms: 2000,
    };
    db.record_attempt(first.id, &retry).await.unwrap();
    assert_eq!(db.due_deliveries(1500, 10).await.unwrap().len(), 2, "its queue waits for its retry");
    let listed = db.webhook_deliveries(Some(app), hook.id, 10).await.unwrap().unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!((listed[1].attempts, listed[1].status, listed[1].state), (1, Some(503), DeliveryState::Pending));
    assert!(listed[1].next_attempt_at.is_some());
    let delivered = Attempt { state: DeliveryState::Delivered, status: Some(200), error: None, ..retry };
    db.record_attempt(first.id, &delivered).await.unwrap();
    let next = db.due_deliveries(2000, 10).await.unwrap();
    assert!(next.iter().any(|d| d.url.ends_with("/a") && d.payload.contains("event 3")), "the next takes its turn");
    assert!(db.webhook_deliveries(None, hook.id, 10).await.unwrap().is_none(), "not a platform webhook");
    assert_eq!(db.prune_deliveries(2001).await.unwrap(), 1, "the delivered one");
    assert!(db.remove_webhook(Some(app), hook.id).await.unwrap());
    assert!(!db.remove_webhook(Some(app), hook.id).await.unwrap());
    assert!(db.remove_webhook(None, platform.id).await.unwrap());
    assert!(db.due_deliveries(i64::MAX, 10).await.unwrap().is_empty(), "their queues went with them");
}

async fn acme_queries(db: &Db, app: &AppRow) {
    use skiff_api::{AcmeChallenge, AutoCertificateState, Certificate};
    // One orderer at a time: the lease is taken while free or lapsed, renewed by its holder.
    assert!(db.take_acme_lease("a", 1000, 2000).await.unwrap());
    assert!(!db.take_acme_lease("b", 1500, 2500).await.unwrap(), "held by a");
    assert!(db.take_acme_lease("a", 1500, 3000).await.unwrap(), "renewed by its holder");
    assert!(db.take_acme_lease("b", 3000, 4000).await.unwrap(), "lapsed");
    assert!(!db.take_acme_lease("a", 3100, 4100).await.unwrap());
    // One account per directory, replaced when made again.
    assert_eq!(db.acme_account("https://ca.test/dir").await.unwrap(), None);
    db.save_acme_account("https://ca.test/dir", "v1.first").await.unwrap();
    db.save_acme_account("https://ca.test/dir", "v1.second").await.unwrap();
    assert_eq!(db.acme_account("https://ca.test/dir").await.unwrap().as_deref(), Some("v1.second"));

    for domain in ["www.acme.test", "api.acme.test", "*.acme.test"] {
        assert!(db.add_domain(app.id, domain).await.unwrap());
    }
    assert!(db.due_acme_domains(i64::MAX).await.unwrap().is_empty(), "not asked for");
    assert!(db.enable_acme(app.id).await.unwrap());
    assert!(!db.enable_acme(app.id).await.unwrap(), "on already");
    let due: Vec<String> = db.due_acme_domains(0).await.unwrap().into_iter().map(|d| d.domain).collect();
    assert_eq!(due, ["api.acme.test", "www.acme.test"], "never tried, due at once; no wildcard");
    db.record_acme_order("www.acme.test", "https://ca.test/order/1", 5000).await.unwrap();
    db.add_acme_challenge(&AcmeChallenge {
        domain: "www.acme.test".into(),
        token: "tok".into(),
        key_authorization: "tok.print".into(),
        kind: skiff_api::AcmeChallengeKind::TlsAlpn01,
    })
    .await
    .unwrap();
    let answers = db.acme_challenges().await.unwrap();
    assert_eq!((answers.len(), answers[0].kind), (1, skiff_api::AcmeChallengeKind::TlsAlpn01));
    db.record_acme_failure("api.acme.test", "connection refused", 9000, false).await.unwrap();
    let due = db.due_acme_domains(6000).await.unwrap();
    assert_eq!(due.len(), 1);
    assert_eq!(
        (due[0].domain.as_str(), due[0].order_url.as_deref()),
        ("www.acme.test", Some("https://ca.test/order/1"))
    );
    let api = db.due_acme_domains(9000).await.unwrap().into_iter().find(|d| d.domain == "api.acme.test").unwrap();
    assert_eq!((api.failures, api.renewal, api.order_url), (1, false, None));

    let cert = Certificate {
        name: "auto-www.acme.test".into(),
        common_name: String::new(),
        names: vec!["www.acme.test".into()],
        domains: Vec::new(),
        expires_at: "2027-03-01T00:00:00Z".into(),
        created_at: "2026-12-01T00:00:00Z".into(),
    };
    db.record_acme_certificate(app.id, "www.acme.test", &cert, "CHAIN", "KEY", 100_000).await.unwrap();
    let renewed = Certificate { expires_at: "2027-06-01T00:00:00Z".into(), ..cert };
    db.record_acme_certificate(app.id, "www.acme.test", &renewed, "CHAIN2", "KEY2", 200_000).await.unwrap();
    assert!(db.acme_challenges().await.unwrap().is_empty(), "answered");
    let kept = db.certs(app.id).await.unwrap().into_iter().find(|c| c.name == "auto-www.acme.test").unwrap();
    assert_eq!((kept.domains, kept.expires_at.as_str()), (vec!["www.acme.test".to_owned()], "2027-06-01T00:00:00Z"));
    let auto = db.auto_certificates(app.id).await.unwrap();
    let states: Vec<_> =
        auto.iter().map(|a| (a.domain.as_str(), a.state, a.ordering, a.last_error.as_deref())).collect();
    assert_eq!(
        states,
        [
            ("api.acme.test", AutoCertificateState::Failed, false, Some("connection refused")),
            ("www.acme.test", AutoCertificateState::Valid, false, None),
        ]
    );
    assert_eq!(auto[1].valid_until.as_deref(), Some("2027-06-01T00:00:00Z"));
    let www = db.due_acme_domains(200_000).await.unwrap().into_iter().find(|d| d.domain == "www.acme.test").unwrap();
    assert!(www.renewal && www.failures == 0, "due for renewal: {www:?}");
    // A failed renewal that may still finish keeps its order.
    db.record_acme_order("www.acme.test", "https://ca.test/order/2", 0).await.unwrap();
    db.record_acme_failure("www.acme.test", "timed out", 300_000, true).await.unwrap();
    let www = db.due_acme_domains(300_000).await.unwrap().into_iter().find(|d| d.domain == "www.acme.test").unwrap();
    assert_eq!((www.order_url.as_deref(), www.failures), (Some("https://ca.test/order/2"), 1));

    assert!(db.remove_domain(app.id, "api.acme.test").await.unwrap());
    assert_eq!(db.auto_certificates(app.id).await.unwrap().len(), 1, "its progress went with it");
    assert!(db.disable_acme(app.id).await.unwrap());
    assert!(!db.disable_acme(app.id).await.unwrap());
    assert!(!db.acme_enabled(app.id).await.unwrap());
    assert!(db.due_acme_domains(i64::MAX).await.unwrap().is_empty());
    assert!(db.enable_acme(app.id).await.unwrap());
    assert_eq!(db.auto_certificates(app.id).await.unwrap()[0].state, AutoCertificateState::Pending, "starts over");
    assert!(db.disable_acme(app.id).await.unwrap());
    for domain in ["www.acme.test", "*.acme.test"] {
        assert!(db.remove_domain(app.id, domain).await.unwrap());
    }
    assert!(db.remove_cert(app.id, "auto-www.acme.test").await.unwrap());
}

async fn canary_queries(db: &Db, app: &AppRow, bob: &UserRow) {
    use skiff_api::{Arm, BucketCount, CanarySample, CanarySamples, CanaryState, CanaryTrial, Judgement, Verdict};
    let procfile: BTreeMap<_, _> = [("web".parse().unwrap(), "serve".to_owned())].into();
    let config = BTreeMap::new();
    let new = NewRelease {
        image: "shop@sha256:ca7",
        build: None,
        git_sha: None,
        procfile: &procfile,
        config: &config,
        created_by: &bob.username,
        summary: "on trial",
    };
    let baseline = db.running_release(app).await.unwrap().expect("a release runs").version;
    let trial = CanaryTrial { percent: 10, duration_secs: 60, sticky: true, min_requests: 5 };
    let (release, canary) = db.create_trial_release(app, &new, &trial).await.unwrap().expect("a baseline");
    assert_eq!((release.state, canary.baseline, canary.trial), (ReleaseState::Trial, baseline, trial));
    assert_eq!(db.running_release(app).await.unwrap().unwrap().version, baseline, "not the app's release");
    let running = db.running_canaries().await.unwrap();
    assert_eq!(running.iter().map(|(c, r)| (c.id, r.version)).collect::<Vec<_>>(), [(canary.id, release.version)]);

    let sample = |arm, requests, errors| CanarySample {
        canary: canary.id,
        app: app.name.clone(),
        arm,
        buckets: vec![BucketCount { bucket: 12, requests, errors }],
    };
    let samples = CanarySamples { samples: vec![sample(Arm::Baseline, 90, 1), sample(Arm::Canary, 10, 2)] };
    db.add_canary_samples(&samples).await.unwrap();
    db.add_canary_samples(&samples).await.unwrap();
    let (base, can) = db.canary_counts(canary.id).await.unwrap();
    assert_eq!((base[0].requests, base[0].errors, can[0].requests, can[0].errors), (180, 2, 20, 4), "added up");

    let judgement = Judgement { score: 0, verdict: Verdict::Fail, reason: "worse".into(), metrics: vec![] };
    assert!(db.end_canary(&canary, CanaryState::Failed, &judgement).await.unwrap());
    assert!(!db.end_canary(&canary, CanaryState::Promoted, &judgement).await.unwrap(), "it ended already");
    let ended = db.latest_canary(app).await.unwrap().unwrap();
    assert_eq!((ended.state, ended.judgement.map(|j| j.reason)), (CanaryState::Failed, Some("worse".to_owned())));
    let failed = db.release(app, release.version).await.unwrap().unwrap();
    assert_eq!((failed.state, failed.failure.as_deref()), (ReleaseState::Failed, Some("worse")));
    db.add_canary_samples(&samples).await.unwrap();
    assert_eq!(db.canary_counts(canary.id).await.unwrap().0[0].requests, 180, "an ended canary takes no more counts");

    // A newer release ends a running canary.
    let (second, _) = db.create_trial_release(app, &new, &trial).await.unwrap().unwrap();
    db.create_release(app, &new).await.unwrap();
    assert_eq!(db.latest_canary(app).await.unwrap().unwrap().state, CanaryState::Superseded);
    assert_eq!(db.release(app, second.version).await.unwrap().unwrap().state, ReleaseState::Superseded);
    assert!(db.running_canaries().await.unwrap().is_empty());
}

#[tokio::test]
async fn every_query_works_on_sqlite() {
    let (db, _dir) = sqlite().await;
    exercise(&db).await;
}

#[tokio::test]
#[ignore = "needs Postgres (deploy/test.sh starts one)"]
async fn every_query_works_on_postgres() {
    exercise(&postgres().await).await;
}

/// A destroyed app's id is never given to a later app, whichever app went.
async fn app_ids_never_come_back(db: &Db) {
    let owner = db.create_user(&"owner".parse().unwrap(), "hash").await.unwrap().unwrap();
    let (owner, stack) = (&owner, &"busybox".parse().unwrap());
    let create = |name: &'static str| async move { db.create_app(&name.parse().unwrap(), owner, stack).await };
    let first = create("first").await.unwrap().unwrap();
    let newest = create("shop").await.unwrap().unwrap();
    let mut given = vec![first.id, newest.id];
    // The newest app destroyed, again and again under the same name.
    let mut gone = newest;
    for _ in 0..3 {
        db.delete_app(gone.id).await.unwrap();
        let again = create("shop").await.unwrap().unwrap();
        assert!(!given.contains(&again.id), "id {} given again after {given:?}", again.id);
        given.push(again.id);
        gone = again;
    }
    // An older one destroyed, and a name that is taken gives no id away.
    db.delete_app(first.id).await.unwrap();
    assert!(create("shop").await.unwrap().is_none());
    let later = create("later").await.unwrap().unwrap();
    assert!(!given.contains(&later.id), "id {} given again after {given:?}", later.id);
}

#[tokio::test]
async fn app_ids_never_come_back_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skiff.db");
    let db = Db::open_sqlite(&path).await.unwrap();
    app_ids_never_come_back(&db).await;
    // Nor after the database is opened again.
    let apps = db.apps(None).await.unwrap();
    let highest = apps.iter().map(|a| a.id).max().unwrap();
    let owner = db.user_by_name(&"owner".parse().unwrap()).await.unwrap().unwrap();
    db.delete_app(highest).await.unwrap();
    drop(db);
    let db = Db::open_sqlite(&path).await.unwrap();
    let next = db.create_app(&"next".parse().unwrap(), &owner, &"busybox".parse().unwrap()).await.unwrap().unwrap();
    assert!(next.id > highest, "{} after {highest}", next.id);
}

#[tokio::test]
#[ignore = "needs Postgres (deploy/test.sh starts one)"]
async fn app_ids_never_come_back_on_postgres() {
    app_ids_never_come_back(&postgres().await).await;
}

/// Twenty config changes at once, each with a release: every key kept, versions 2..=21.
async fn concurrent_config_changes(db: &Db) {
    let owner = db.create_user(&"owner".parse().unwrap(), "hash").await.unwrap().unwrap();
    let app = db.create_app(&"busy".parse().unwrap(), &owner, &"busybox".parse().unwrap()).await.unwrap().unwrap();
    let procfile: BTreeMap<_, _> = [("web".parse().unwrap(), "serve".to_owned())].into();
    let config = BTreeMap::new();
    let first = NewRelease {
        image: "busy@sha256:1",
        build: None,
        git_sha: None,
        procfile: &procfile,
        config: &config,
        created_by: &owner.username,
        summary: "v1",
    };
    let base = db.create_release(&app, &first).await.unwrap();
    let changes = (0..20).map(|n| {
        let (db, app, base, owner) = (db.clone(), app.clone(), base.clone(), owner.clone());
        tokio::spawn(async move {
            let edit = |config: &mut BTreeMap<String, String>| {
                config.insert(format!("K{n}"), n.to_string());
            };
            let changed =
                db.change_config(&app, edit, |_| Ok::<(), String>(()), Some(&base), &owner.username, "set").await;
            changed.unwrap().unwrap().1.unwrap().version
        })
    });
    let mut versions = Vec::new();
    for change in changes.collect::<Vec<_>>() {
        versions.push(change.await.unwrap());
    }
    versions.sort_unstable();
    assert_eq!(versions, (2..=21).collect::<Vec<u32>>());
    assert_eq!(db.config(&app).await.unwrap().len(), 20, "no change is lost");
    let refused = db
        .change_config(&app, |config| config.clear(), |_| Err::<(), String>("no".into()), None, &owner.username, "x")
        .await;
    assert_eq!(refused.unwrap().unwrap_err(), "no", "a change that fails its check is refused");
    assert_eq!(db.releases(&app, None).await.unwrap().len(), 21, "and stores nothing");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_config_changes_lose_nothing_on_sqlite() {
    let (db, _dir) = sqlite().await;
    concurrent_config_changes(&db).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Postgres (deploy/test.sh starts one)"]
async fn concurrent_config_changes_lose_nothing_on_postgres() {
    concurrent_config_changes(&postgres().await).await;
}

#[tokio::test]
#[ignore = "needs Postgres (deploy/test.sh starts one)"]
async fn both_backends_end_at_the_same_schema() {
    let (lite, _dir) = sqlite().await;
    let (mut lite, postgres) = (lite.schema().await.unwrap(), postgres().await.schema().await.unwrap());
    assert!(lite.contains_key("releases") && lite["releases"].contains(&"state".to_owned()), "{lite:?}");
    // SQLite's one table of its own: the highest app id it gave, where Postgres has the
    // apps' identity (migrations/sqlite/0022_app_ids.sql).
    assert_eq!(lite.remove("app_ids"), Some(vec!["last".to_owned()]));
    assert_eq!(lite, postgres, "the SQLite and Postgres migrations disagree");
}

#[tokio::test]
async fn migrations_are_applied_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skiff.db");
    let db = Db::open_sqlite(&path).await.unwrap();
    db.create_user(&"admin".parse().unwrap(), "hash").await.unwrap();
    drop(db);
    let again = Db::open_sqlite(&path).await.unwrap();
    assert!(again.user_by_name(&"admin".parse().unwrap()).await.unwrap().is_some(), "reopening keeps the data");
}

#[tokio::test]
#[ignore = "needs Postgres (deploy/test.sh starts one)"]
async fn readiness_names_a_database_that_went_away() {
    let (db, name, admin) = postgres_named().await;
    let platform = test_app::TestApp::start_with_db(db).await;
    let ready = platform.call_text(None, "get", "/readyz", serde_json::Value::Null).await;
    assert_eq!(ready, "database ok\nengine ok\n");
    admin.execute_admin(&format!("DROP DATABASE {name} WITH (FORCE)")).await.expect("the database is dropped");
    let answer = platform.call(None, "get", "/readyz", None).await;
    assert_eq!(answer.status, 503);
    let text = platform.call_text(None, "get", "/readyz", serde_json::Value::Null).await;
    assert!(text.starts_with("database: ") && text.ends_with("engine ok\n"), "{text}");
}
