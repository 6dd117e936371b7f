//! What an operator watches: Prometheus (Debian's package) scrapes every component with
//! the example configuration in deploy/prometheus.yml, and a query reads values back;
//! `skiff platform:status` shows every component ready, at its version.

use std::time::Duration;

use serde_json::Value;

use crate::harness::{Platform, eventually};

/// A process killed and waited for when dropped.
struct Running(std::process::Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The result of a Prometheus instant query.
async fn query(prometheus: &str, expression: &str) -> Option<Vec<Value>> {
    let answer = reqwest::Client::new()
        .get(format!("{prometheus}/api/v1/query"))
        .query(&[("query", expression)])
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let body: Value = answer.json().await.ok()?;
    body["data"]["result"].as_array().cloned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and Prometheus (deploy/test.sh)"]
async fn prometheus_scrapes_every_component_with_the_example_configuration() {
    let platform = Platform::start().await;
    let a = &platform.addresses;
    let example = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/prometheus.yml")).unwrap();
    // The example names the default addresses; this platform listens on others.
    let config = [
        ("127.0.0.1:7700", a.controller),
        ("127.0.0.1:7701", a.registry),
        ("127.0.0.1:7702", a.logger),
        ("127.0.0.1:7703", a.builder_http),
        ("127.0.0.1:8080", a.router),
    ]
    .iter()
    .fold(example.replace("scrape_interval: 15s", "scrape_interval: 1s"), |config, (default, bound)| {
        config.replace(default, &bound.expect("every component runs").to_string())
    });
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("prometheus.yml"), config).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let child = std::process::Command::new("prometheus")
        .arg(format!("--config.file={}", dir.path().join("prometheus.yml").display()))
        .arg(format!("--storage.tsdb.path={}", dir.path().join("data").display()))
        .arg(format!("--web.listen-address=127.0.0.1:{port}"))
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("prometheus runs (deploy/test.sh installs Debian's package)");
    let _prometheus = Running(child);
    let prometheus = format!("http://127.0.0.1:{port}");
    reqwest::get(format!("{}/v2/version", platform.controller_url())).await.unwrap();

    let up = eventually(Duration::from_secs(60), || async {
        let up = query(&prometheus, "up").await?;
        let jobs: Vec<String> = up
            .iter()
            .filter(|series| series["value"][1] == "1")
            .filter_map(|series| series["metric"]["job"].as_str().map(str::to_owned))
            .collect();
        (jobs.len() == 5).then_some(jobs)
    })
    .await;
    let mut jobs = up.expect("Prometheus reaches all five components");
    jobs.sort();
    assert_eq!(jobs, ["skiff-builder", "skiff-controller", "skiff-logger", "skiff-registry", "skiff-router"]);
    let answered = eventually(Duration::from_secs(30), || async {
        let result = query(&prometheus, "sum(skiff_controller_http_responses_total)").await?;
        let count: f64 = result.first()?["value"][1].as_str()?.parse().ok()?;
        (count > 0.0).then_some(count)
    })
    .await;
    assert!(answered.is_some(), "the controller's answers are counted and read back");
    for name in ["skiff_registry_http_responses_total", "skiff_logger_lines_total", "skiff_builder_pushes_total"] {
        let found =
            eventually(Duration::from_secs(30), || async { query(&prometheus, name).await.filter(|r| !r.is_empty()) });
        assert!(found.await.is_some(), "{name} is scraped");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn platform_status_shows_every_component_and_the_routers_that_follow() {
    let platform = Platform::start().await;
    let home = platform.dir.path().to_owned();
    let router = format!("http://{}", platform.router());
    platform.cli_ok(&home, &["auth:register", "-u", "admin", "-p", "correct-horse"]).await;
    let status = eventually(Duration::from_secs(30), || async {
        let (code, out, _) = platform.cli(&home, &["platform:status", "--json"]).await;
        let status: Value = serde_json::from_str(&out).ok()?;
        let components = status["components"].as_array()?.clone();
        let names: Vec<&str> = components.iter().filter_map(|c| c["name"].as_str()).collect();
        (code == 0 && names == ["controller", "registry", "logger", "builder", "router"]).then_some(components)
    })
    .await;
    let Some(status) = status else {
        panic!("not every component ready: {:?}", platform.cli(&home, &["platform:status"]).await);
    };
    let listed = &status[4];
    assert_eq!(listed["url"], router.as_str(), "{listed}");
    assert_eq!(listed["version"], skiff_controller::VERSION, "{listed}");
    assert!(listed["detail"].as_str().unwrap().contains("(current)"), "it holds the current table: {listed}");
    let table = platform.cli_ok(&home, &["platform:status"]).await;
    assert!(table.contains("router") && table.contains(&router), "{table}");
}
