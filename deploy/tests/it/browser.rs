//! The dashboard in a real browser: Debian's headless Chromium, driven over WebDriver by its
//! `chromedriver`, used as a person would: sign in, find the app after a `git push`, see
//! the traffic chart with a line at each release, watch a log line arrive live, roll back
//! by clicking (and the router serves the old release again), scale to two processes.
//! With `SKIFF_UPDATE_SCREENSHOTS=1` it keeps screenshots of the main pages in
//! `docs/screenshots/` for the README.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use fantoccini::{Client, ClientBuilder, Locator};

use crate::harness::{Platform, add_state_script, eventually, get_via_router, state};

/// chromedriver, stopped when dropped.
struct Driver(Child);

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A headless Chromium session through a chromedriver of its own.
async fn chromium() -> (Driver, Client) {
    let found = Command::new("sh").args(["-c", "command -v chromedriver && command -v chromium"]).output();
    assert!(
        found.is_ok_and(|o| o.status.success()),
        "this test needs Chromium and its WebDriver: apt-get install chromium chromium-driver (deploy/test.sh does)"
    );
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let driver = Command::new("chromedriver")
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver runs");
    let driver = Driver(driver);
    let url = format!("http://127.0.0.1:{port}");
    let ready = eventually(Duration::from_secs(20), || async {
        reqwest::get(format!("{url}/status")).await.ok().filter(|a| a.status().is_success()).map(drop)
    });
    assert!(ready.await.is_some(), "chromedriver did not start");
    let options = serde_json::json!({"args": [
        "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1280,1100",
    ]});
    let capabilities = serde_json::Map::from_iter([("goog:chromeOptions".to_owned(), options)]);
    let client = ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(capabilities)
        .connect(&url)
        .await
        .expect("a Chromium session");
    (driver, client)
}

/// The page's HTML once `ready` says it is what the test waits for, reloading until then.
async fn reload_until(browser: &Client, wait: Duration, ready: impl Fn(&str) -> bool) -> Option<String> {
    eventually(wait, || async {
        browser.refresh().await.ok()?;
        let source = browser.source().await.ok()?;
        ready(&source).then_some(source)
    })
    .await
}

/// Keeps a screenshot of the current page as `docs/screenshots/NAME.png` when asked to.
async fn screenshot(browser: &Client, name: &str) {
    if std::env::var_os("SKIFF_UPDATE_SCREENSHOTS").is_none() {
        return;
    }
    let png = browser.screenshot().await.expect("a screenshot");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/screenshots");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker and Chromium (deploy/test.sh)"]
async fn a_person_signs_in_watches_rolls_back_and_scales_in_chromium() {
    let (platform, repo, key) = Platform::start().await.with_app("browsed").await;
    add_state_script(&repo);
    let (pushed, out) = platform.commit_and_push(&repo, &key, "answers its state");
    assert!(pushed, "{out}");
    platform.cli_ok(&repo, &["config:set", "GREETING=one"]).await;
    let (driver, browser) = chromium().await;
    let dashboard = format!("{}/dashboard", platform.controller_url());

    // Signing in: the login form, then the apps page with the pushed app.
    browser.goto(&dashboard).await.unwrap();
    browser.find(Locator::Css("input[name=username]")).await.unwrap().send_keys("admin").await.unwrap();
    browser.find(Locator::Css("input[name=password]")).await.unwrap().send_keys("correct-horse").await.unwrap();
    browser.find(Locator::Css(".login button")).await.unwrap().click().await.unwrap();
    let listed = browser.wait().at_most(Duration::from_secs(10)).for_element(Locator::LinkText("browsed")).await;
    let row = browser.find(Locator::Css("table.apps tbody tr")).await.unwrap().text().await.unwrap();
    assert!(row.contains("browsed") && row.contains("running") && row.contains("v2"), "{row}");
    screenshot(&browser, "apps").await;

    // Traffic, then a second deploy: the chart counts it and marks both releases.
    for _ in 0..40 {
        assert!(matches!(get_via_router(platform.router(), "browsed.localhost").await, Some((200, _))));
    }
    platform.cli_ok(&repo, &["config:set", "GREETING=two"]).await;
    listed.unwrap().click().await.unwrap();
    let charted = reload_until(&browser, Duration::from_secs(60), |page| {
        !page.contains(">1 /min<") && page.contains("<title>v3</title>") && page.contains("<title>v2</title>")
    });
    assert!(charted.await.is_some(), "{}", browser.source().await.unwrap());
    assert!(browser.find(Locator::Css("polyline.requests")).await.is_ok());
    screenshot(&browser, "app").await;

    // A log line arrives while the page is open.
    browser.find(Locator::LinkText("Logs")).await.unwrap().click().await.unwrap();
    let live = eventually(Duration::from_secs(15), || async {
        let status = browser.find(Locator::Id("log-status")).await.ok()?.text().await.ok()?;
        (status == "live").then_some(())
    });
    assert!(live.await.is_some(), "the page follows the log");
    let marker = format!("/watched-{}", rand::random::<u32>());
    let reached = reqwest::Client::new()
        .get(format!("http://{}{marker}", platform.router()))
        .header("host", "browsed.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(reached.status(), 404);
    let arrived = eventually(Duration::from_secs(15), || async {
        let log = browser.find(Locator::Id("log")).await.ok()?.text().await.ok()?;
        log.contains(&marker).then_some(())
    });
    assert!(arrived.await.is_some(), "{}", browser.find(Locator::Id("log")).await.unwrap().text().await.unwrap());
    screenshot(&browser, "logs").await;

    // Rolling back by clicking, after a confirmation: the router serves v2's config again.
    browser.goto(&format!("{dashboard}/apps/browsed")).await.unwrap();
    browser.find(Locator::LinkText("Roll back to v2")).await.unwrap().click().await.unwrap();
    let confirm = browser.find(Locator::Css(".confirm h1")).await.unwrap().text().await.unwrap();
    assert_eq!(confirm, "Roll back browsed to v2?");
    browser.find(Locator::Css(".confirm button.danger")).await.unwrap().click().await.unwrap();
    let served = eventually(Duration::from_secs(60), || async {
        (state(&platform, "browsed.localhost").await? == "v4 one").then_some(())
    });
    assert!(served.await.is_some(), "{:?}", state(&platform, "browsed.localhost").await);
    let page = reload_until(&browser, Duration::from_secs(10), |page| page.contains("admin rolled back to v2"));
    assert!(page.await.is_some());

    // Scaling to two from the page: two web processes.
    let quantity = browser.find(Locator::Css("table.formation input[name=quantity]")).await.unwrap();
    quantity.clear().await.unwrap();
    quantity.send_keys("2").await.unwrap();
    browser.find(Locator::Css("table.formation button")).await.unwrap().click().await.unwrap();
    let two = eventually(Duration::from_secs(60), || async {
        browser.refresh().await.ok()?;
        let rows = browser.find_all(Locator::Css("table.processes tbody tr")).await.ok()?;
        let mut running = 0;
        for row in rows {
            let text = row.text().await.ok()?;
            running += usize::from(text.starts_with("web") && text.contains("running"));
        }
        (running == 2).then_some(())
    });
    assert!(two.await.is_some(), "{}", browser.source().await.unwrap());
    browser.close().await.unwrap();
    drop(driver);
}
