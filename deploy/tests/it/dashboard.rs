//! The dashboard on the whole platform: after two pushes (the second's commit message
//! holding `<script>`, shown as text), the app is listed as running; the
//! router's counts reach the traffic chart; the log page shows the router's lines (one
//! holding `<script>` as text), and its event stream delivers a new line as it happens.

use std::time::Duration;

use tokio::io::AsyncReadExt as _;

use crate::harness::{Platform, eventually, get_via_router};

/// Signs in as the harness's admin: the session cookie.
async fn sign_in(platform: &Platform) -> String {
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let answer = http
        .post(format!("{}/dashboard/login", platform.controller_url()))
        .header("content-type", "application/x-www-form-urlencoded")
        .body("username=admin&password=correct-horse")
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 303);
    let cookie = answer.headers()["set-cookie"].to_str().unwrap();
    cookie.split(';').next().unwrap().to_owned()
}

async fn page(platform: &Platform, cookie: &str, path: &str) -> String {
    let answer = reqwest::Client::new()
        .get(format!("{}{path}", platform.controller_url()))
        .header("cookie", cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 200, "{path}");
    answer.text().await.unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Docker (deploy/test.sh)"]
async fn the_dashboard_shows_the_app_its_traffic_and_its_log_as_it_happens() {
    let (platform, repo, key) = Platform::start().await.with_app("watched").await;
    let (pushed, out) = platform.git(&repo, &key, &["push", "skiff", "main"]);
    assert!(pushed, "{out}");
    // A commit whose message holds markup: shown as text with its build.
    std::fs::write(repo.join("public/note.txt"), "markup in the message\n").unwrap();
    let (pushed, out) = platform.commit_and_push(&repo, &key, "Say <script>alert(1)</script>");
    assert!(pushed, "{out}");
    let cookie = sign_in(&platform).await;
    let app_page = page(&platform, &cookie, "/dashboard/apps/watched").await;
    assert!(app_page.contains("Say &lt;script&gt;alert(1)&lt;/script&gt;"), "{app_page}");
    assert!(!app_page.contains("<script>alert"));
    let apps = page(&platform, &cookie, "/dashboard").await;
    assert!(apps.contains(r#"href="/dashboard/apps/watched""#) && apps.contains("running"), "{apps}");

    for _ in 0..30 {
        assert!(matches!(get_via_router(platform.router(), "watched.localhost").await, Some((200, _))));
    }
    // The router reports every 10 s; 30 requests in a minute put the axis above 1/min.
    let charted = eventually(Duration::from_secs(40), || async {
        let page = page(&platform, &cookie, "/dashboard/apps/watched").await;
        (!page.contains(">1 /min<")).then_some(page)
    });
    let charted = charted.await.expect("the router's counts reach the chart");
    assert!(charted.contains(r#"<polyline class="requests""#) && charted.contains("<title>v2</title>"));

    let logs = eventually(Duration::from_secs(20), || async {
        let page = page(&platform, &cookie, "/dashboard/apps/watched/logs?source=router").await;
        page.contains("status=200").then_some(page)
    });
    assert!(logs.await.is_some(), "the router's access lines are on the log page");

    // A line holding markup (a request path, as the router logs it) is shown as text.
    let mut raw = tokio::net::TcpStream::connect(platform.router()).await.unwrap();
    let request = b"GET /<script>alert(1)</script> HTTP/1.1\r\nHost: watched.localhost\r\nConnection: close\r\n\r\n";
    tokio::io::AsyncWriteExt::write_all(&mut raw, request).await.unwrap();
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(5), raw.read_to_end(&mut answer)).await;
    let escaped = eventually(Duration::from_secs(20), || async {
        let page = page(&platform, &cookie, "/dashboard/apps/watched/logs?source=router").await;
        page.contains("path=&quot;/&lt;script&gt;alert(1)&lt;/script&gt;&quot;").then_some(page)
    });
    let escaped = escaped.await.expect("the line is on the page, escaped");
    assert!(!escaped.contains("<script>alert"), "{escaped}");

    // The platform's page: a dry run of the registry's garbage collection.
    let platform_page = page(&platform, &cookie, "/dashboard/platform").await;
    assert!(platform_page.contains("router") && platform_page.contains("busybox"), "{platform_page}");
    let token = platform_page.split(r#"name="csrf" value=""#).nth(1).unwrap().split('"').next().unwrap().to_owned();
    let collected = reqwest::Client::new()
        .post(format!("{}/dashboard/platform/gc", platform.controller_url()))
        .header("cookie", &cookie)
        .header("content-type", "application/x-www-form-urlencoded")
        .body(format!("csrf={token}&dry_run=1"))
        .send()
        .await
        .unwrap();
    assert_eq!(collected.status(), 200);
    assert!(collected.text().await.unwrap().contains("A collection would delete"));

    // The event stream: a request made after it opened arrives as an event.
    let address = platform.addresses.controller.unwrap();
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let request = format!(
        "GET /dashboard/apps/watched/logs/stream?source=router HTTP/1.1\r\nHost: {address}\r\nCookie: {cookie}\r\nAccept: text/event-stream\r\n\r\n"
    );
    tokio::io::AsyncWriteExt::write_all(&mut stream, request.as_bytes()).await.unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 8192];
    let opened = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buffer)).await.unwrap().unwrap();
    received.extend_from_slice(&buffer[..opened]);
    assert!(String::from_utf8_lossy(&received).contains("text/event-stream"), "{}", String::from_utf8_lossy(&received));
    let marker = format!("/live-{}", rand::random::<u32>());
    let reached = reqwest::Client::new()
        .get(format!("http://{}{marker}", platform.router()))
        .header("host", "watched.localhost")
        .send()
        .await
        .unwrap();
    assert_eq!(reached.status(), 404, "the example app has no such page");
    let arrived = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            let read = stream.read(&mut buffer).await.unwrap();
            assert!(read > 0, "the stream ended");
            received.extend_from_slice(&buffer[..read]);
            if String::from_utf8_lossy(&received).contains(&marker) {
                return;
            }
        }
    });
    assert!(arrived.await.is_ok(), "{}", String::from_utf8_lossy(&received));
    let text = String::from_utf8_lossy(&received).into_owned();
    let event = text.lines().find(|l| l.contains(&marker)).unwrap();
    assert!(event.starts_with("data: ") && event.contains("router[") && event.contains("status=404"), "{event}");
}
