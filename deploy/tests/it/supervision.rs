//! skiffd's supervisor: a component that cannot run stops the platform with its error, and
//! every wrong setting is reported at once. Needs no Docker (the controller runs on the
//! in-memory runtime).

use std::path::Path;
use std::time::Duration;

use clap::Parser as _;

/// `skiffd all` settings on loopback ports of the system's choosing, plus `extra` flags.
fn settings(dir: &Path, extra: &[&str]) -> skiffd::Settings {
    let data = dir.to_str().unwrap();
    let mut args = vec!["skiffd", "all", "--data-dir", data, "--runtime", "memory"];
    for listen in [
        "--controller-listen",
        "--registry-listen",
        "--logger-listen",
        "--syslog-listen",
        "--syslog-tls-listen",
        "--builder-listen",
        "--builder-http-listen",
        "--router-listen",
        "--router-tls-listen",
    ] {
        args.extend([listen, "127.0.0.1:0"]);
    }
    args.extend(extra);
    match skiffd::Cli::try_parse_from(args).expect("the flags parse").command {
        skiffd::Command::All(settings) => settings,
        other => unreachable!("{other:?}"),
    }
}

#[tokio::test]
async fn a_component_that_cannot_open_its_database_stops_the_platform_with_that_error() {
    let dir = tempfile::tempdir().unwrap();
    let nowhere = format!("sqlite://{}/no/such/dir/skiff.db?mode=rwc", dir.path().display());
    let settings = settings(dir.path(), &["--database-url", &nowhere]);
    let platform = skiffd::start(&settings, &[skiffd::Component::Controller]).await.expect("the listener binds");
    let why = tokio::time::timeout(Duration::from_secs(30), platform.failed()).await.expect("the controller fails");
    assert!(why.starts_with("the controller failed: cannot open the database (SKIFF_DATABASE_URL)"), "{why}");
    platform.stop().await;
}

#[tokio::test]
async fn a_running_platform_reports_no_failure() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path(), &[]);
    let platform = skiffd::start(&settings, &[skiffd::Component::Controller]).await.expect("it starts");
    let url = format!("http://{}/readyz", platform.addresses.controller.unwrap());
    let ready = reqwest::get(&url).await.unwrap();
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());
    assert!(tokio::time::timeout(Duration::from_millis(200), platform.failed()).await.is_err(), "nothing failed");
    platform.stop().await;
}

#[tokio::test]
async fn every_wrong_setting_is_reported_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = ["--router-trusted-proxies", "not-an-address", "--router-routes", "no-equals-sign"];
    let settings = settings(dir.path(), &wrong);
    let error = skiffd::start(&settings, &[skiffd::Component::Router]).await.err().expect("refused").to_string();
    assert!(error.starts_with("2 settings are wrong"), "{error}");
    assert!(error.contains("SKIFF_ROUTER_TRUSTED_PROXIES") && error.contains("SKIFF_ROUTER_ROUTES"), "{error}");
}

#[tokio::test]
async fn the_builder_serves_its_health_and_metrics_beside_ssh() {
    let dir = tempfile::tempdir().unwrap();
    let settings = settings(dir.path(), &[]);
    let platform = skiffd::start(&settings, &[skiffd::Component::Builder]).await.expect("it starts");
    let base = format!("http://{}", platform.addresses.builder_http.unwrap());
    let live = reqwest::get(format!("{base}/healthz")).await.unwrap();
    assert_eq!(live.status(), 200);
    let metrics = reqwest::get(format!("{base}/metrics")).await.unwrap().text().await.unwrap();
    assert!(metrics.contains("skiff_builder_pushes_total{outcome=\"failed\"} 0"), "{metrics}");
    // Ready when the engine answers (the whole-platform tests see `engine ok`); either way
    // the answer names the engine.
    let ready = reqwest::get(format!("{base}/readyz")).await.unwrap().text().await.unwrap();
    assert!(ready.starts_with("engine"), "{ready}");
    platform.stop().await;
}
