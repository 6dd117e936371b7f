//! Outgoing webhooks in process: signed deliveries to a receiver the test runs, in order
//! per app, kept while the receiver is down and delivered once when it is back, once
//! with two controllers on one database, and the URLs a tenant may not give.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use serde_json::{Value, json};
use skiff_api::webhook::verify;
use skiff_controller::db::Db;
use skiff_testing::eventually_true;

use crate::test_app::{Scheduling, TestApp};

const SECRET: &str = "a-secret-of-some-length";

/// What a receiver took in: each delivery's headers and body, in arrival order.
#[derive(Clone)]
struct Received {
    kept: Arc<Mutex<Vec<(HeaderMap, Bytes)>>>,
    addr: std::net::SocketAddr,
}

impl Received {
    fn all(&self) -> Vec<(HeaderMap, Bytes)> {
        self.kept.lock().unwrap().clone()
    }

    /// The events delivered, as JSON, after checking every signature.
    fn events(&self) -> Vec<Value> {
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        self.all()
            .iter()
            .map(|(headers, body)| {
                let signature = headers["skiff-signature"].to_str().unwrap();
                verify(SECRET, signature, body, now, 300).expect("signed with the webhook's secret");
                serde_json::from_slice(body).unwrap()
            })
            .collect()
    }
}

/// A receiver on `listener` answering `status` to every delivery.
fn receive(listener: tokio::net::TcpListener, status: StatusCode) -> Received {
    let received = Received { kept: Arc::default(), addr: listener.local_addr().unwrap() };
    let kept = received.kept.clone();
    let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
        let kept = kept.clone();
        async move {
            kept.lock().unwrap().push((headers, body));
            status
        }
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    received
}

async fn listener() -> tokio::net::TcpListener {
    tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap()
}

/// A platform with `alice`, who owns `shop`, built once (release v1).
async fn shop(platform: &TestApp) -> String {
    let admin = platform.register(None, "admin").await;
    let alice = platform.register(Some(&admin), "alice").await;
    let created = platform.call(Some(&alice), "post", "/v2/apps", Some(json!({"name": "shop"}))).await;
    assert_eq!(created.status, 201, "{created:?}");
    assert_eq!(platform.build("shop", "alice", &[("web", "serve")]).await.status, 201);
    alice
}

async fn set_config(platform: &TestApp, alice: &str, key: &str) {
    let set = platform.call(Some(alice), "patch", "/v2/apps/shop/config", Some(json!({ key: "1" }))).await;
    assert_eq!(set.status, 200, "{set:?}");
}

#[tokio::test]
async fn deliveries_are_signed_in_order_and_wait_for_a_receiver_that_is_down() {
    let platform = TestApp::start(Scheduling::Off).await;
    let alice = shop(&platform).await;
    // Nothing listens on the webhook's port yet.
    let port = listener().await.local_addr().unwrap().port();
    let url = format!("http://127.0.0.1:{port}/hooks?from=skiff");
    let body = json!({"url": url, "events": ["config", "release"], "secret": SECRET});
    let added = platform.call(Some(&alice), "post", "/v2/apps/shop/webhooks", Some(body)).await;
    assert_eq!(added.status, 201, "{added:?}");
    assert_eq!(added.body["secret"], SECRET, "the answer that creates it shows the secret");
    let id = added.body["id"].as_i64().unwrap();
    let listed = platform.call(Some(&alice), "get", "/v2/apps/shop/webhooks", None).await.body;
    assert_eq!(listed[0]["events"], json!(["release", "config"]));
    assert!(listed[0].get("secret").is_none(), "listings never show the secret: {listed}");

    for key in ["A", "B", "C"] {
        set_config(&platform, &alice, key).await;
    }
    let deliveries = format!("/v2/apps/shop/webhooks/{id}/deliveries");
    let failing = eventually_true(Duration::from_secs(10), || async {
        let listed = platform.call(Some(&alice), "get", &deliveries, None).await.body;
        listed.as_array().unwrap().iter().any(|d| d["attempts"].as_u64() >= Some(2))
    })
    .await;
    assert!(failing, "the first delivery is retried while the receiver is down");
    let listed = platform.call(Some(&alice), "get", &deliveries, None).await.body;
    let first = listed.as_array().unwrap().last().unwrap();
    assert_eq!(first["state"], "pending", "{listed}");
    assert!(first["error"].as_str().unwrap().contains("cannot connect"), "{listed}");
    assert!(
        listed.as_array().unwrap().iter().rev().skip(1).all(|d| d["attempts"] == 0),
        "later events wait for the first, in order: {listed}"
    );

    let received = receive(tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap(), StatusCode::OK);
    let all_four = eventually_true(Duration::from_secs(20), || async { received.all().len() >= 4 }).await;
    assert!(all_four, "delivered once the receiver is back: {:?}", received.all());
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let events = received.events();
    assert_eq!(events.len(), 4, "each event once: {events:?}");
    let ids: Vec<i64> = events.iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in the order they happened: {ids:?}");
    assert_eq!(events[0]["message"], format!("alice added webhook {id} ({url})"), "its own making comes first");
    for (event, (version, key)) in events[1..].iter().zip([(2, "A"), (3, "B"), (4, "C")]) {
        assert_eq!(event["type"], "config");
        assert_eq!(event["app"], "shop");
        assert_eq!(event["actor"], "alice");
        assert_eq!(event["data"]["version"], version, "{event}");
        assert!(event["message"].as_str().unwrap().contains(key), "{event}");
    }
    let (headers, _) = &received.all()[0];
    assert_eq!(headers["skiff-event"], "config");
    assert_eq!(headers["skiff-event-id"].to_str().unwrap(), ids[0].to_string());
    let listed = platform.call(Some(&alice), "get", &deliveries, None).await.body;
    assert!(listed.as_array().unwrap().iter().all(|d| d["state"] == "delivered" && d["status"] == 200), "{listed}");

    // Kinds it does not take are not sent; removing it drops it.
    let scaled = platform.call(Some(&alice), "post", "/v2/apps/shop/maintenance", Some(json!({"enabled": true}))).await;
    assert_eq!(scaled.status, 200, "{scaled:?}");
    assert!(eventually_true(Duration::from_secs(5), || async { received.all().len() == 5 }).await);
    assert_eq!(received.events()[4]["message"], "alice turned maintenance mode on");
    let domain =
        platform.call(Some(&alice), "post", "/v2/apps/shop/domains", Some(json!({"domain": "shop.example.org"})));
    assert_eq!(domain.await.status, 201);
    assert_eq!(platform.call(Some(&alice), "delete", &format!("/v2/apps/shop/webhooks/{id}"), None).await.status, 204);
    set_config(&platform, &alice, "D").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(received.all().len(), 5, "neither a domain event nor one after removal");
    assert_eq!(platform.call(Some(&alice), "get", &deliveries, None).await.status, 404);
}

#[tokio::test]
async fn slack_bodies_and_platform_webhooks() {
    let platform = TestApp::start(Scheduling::Off).await;
    let alice = shop(&platform).await;
    let admin = platform.login("admin").await;
    let slack = receive(listener().await, StatusCode::OK);
    let url = format!("http://{}/services/T0/B0", slack.addr);
    let body = json!({"url": url, "format": "slack", "events": ["config"]});
    let added = platform.call(Some(&alice), "post", "/v2/apps/shop/webhooks", Some(body)).await;
    assert_eq!(added.status, 201, "{added:?}");
    assert_eq!(added.body["secret"].as_str().unwrap().len(), 32, "a secret is made when none is given");
    set_config(&platform, &alice, "A").await;
    assert!(eventually_true(Duration::from_secs(5), || async { slack.all().len() == 2 }).await);
    let text: Value = serde_json::from_slice(&slack.all()[1].1).unwrap();
    assert_eq!(text, json!({"text": "[shop] Release v2 created: alice set A"}));

    let everything = receive(listener().await, StatusCode::NO_CONTENT);
    let url = format!("http://{}/all", everything.addr);
    let refused = platform.call(Some(&alice), "post", "/v2/webhooks", Some(json!({"url": url}))).await;
    assert_eq!(refused.status, 403, "{refused:?}");
    let added = platform.call(Some(&admin), "post", "/v2/webhooks", Some(json!({"url": url, "secret": SECRET}))).await;
    assert_eq!(added.status, 201, "{added:?}");
    set_config(&platform, &alice, "B").await;
    let key = platform.call(Some(&alice), "post", "/v2/keys", Some(json!({"public_key": "not a key"}))).await;
    assert_eq!(key.status, 400);
    let bob = platform.register(Some(&admin), "bob").await;
    assert!(!bob.is_empty());
    let all = eventually_true(Duration::from_secs(5), || async { everything.events().len() >= 3 }).await;
    assert!(all, "{:?}", everything.events());
    let kinds: Vec<(Value, Value)> =
        everything.events().iter().map(|e| (e["type"].clone(), e["app"].clone())).collect();
    let platform_event = (json!("platform"), Value::Null);
    assert_eq!(
        kinds,
        [platform_event.clone(), (json!("config"), json!("shop")), platform_event],
        "{:?}",
        everything.events()
    );
    assert_eq!(everything.events()[2]["message"], "admin created user bob");
}

#[tokio::test]
async fn two_controllers_on_one_database_deliver_each_attempt_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("skiff.db");
    let one = TestApp::start_with_db(Db::open_sqlite(&path).await.unwrap()).await;
    let two = TestApp::start_with_db(Db::open_sqlite(&path).await.unwrap()).await;
    let alice = shop(&one).await;
    let received = receive(listener().await, StatusCode::OK);
    let url = format!("http://{}/hook", received.addr);
    let body = json!({"url": url, "secret": SECRET, "events": ["config"]});
    assert_eq!(two.call(Some(&alice), "post", "/v2/apps/shop/webhooks", Some(body)).await.status, 201);
    for key in ["A", "B", "C", "D", "E", "F"] {
        set_config(if key < "D" { &one } else { &two }, &alice, key).await;
    }
    assert!(eventually_true(Duration::from_secs(10), || async { received.all().len() >= 7 }).await);
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let ids: Vec<i64> = received.events().iter().map(|e| e["id"].as_i64().unwrap()).collect();
    assert_eq!(ids.len(), 7, "each event (its own making and six changes) once, by either controller: {ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
}

#[tokio::test]
async fn webhooks_may_not_reach_internal_addresses_and_bad_input_is_refused() {
    let platform = TestApp::start(Scheduling::Off).await;
    let alice = shop(&platform).await;
    // The tests' controller allows loopback (127.0.0.0/8) only.
    for url in [
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]:8080/",
        "http://0.0.0.0:9/",
        "https://192.168.1.1/",
    ] {
        let refused = platform.call(Some(&alice), "post", "/v2/apps/shop/webhooks", Some(json!({"url": url}))).await;
        assert_eq!(refused.status, 400, "{url}: {refused:?}");
        assert!(refused.message().contains("SKIFF_OUTBOUND_ALLOW"), "{url}: {}", refused.message());
    }
    for (body, why) in [
        (json!({"url": "ftp://127.0.0.1/"}), "http:// or https://"),
        (json!({"url": "not a url"}), "not a URL"),
        (json!({"url": "http://127.0.0.1:9/", "secret": "short"}), "16 characters"),
        (json!({"url": "http://127.0.0.1:9/", "events": ["platform"]}), "platform webhooks only"),
        (json!({"url": "http://no-such-host.invalid/"}), "cannot resolve"),
    ] {
        let refused = platform.call(Some(&alice), "post", "/v2/apps/shop/webhooks", Some(body.clone())).await;
        assert_eq!(refused.status, 400, "{body}: {refused:?}");
        assert!(refused.message().contains(why), "{body}: {}", refused.message());
    }
    let unknown_kind = json!({"url": "http://127.0.0.1:9/", "events": ["deploys"]});
    let refused = platform.call(Some(&alice), "post", "/v2/apps/shop/webhooks", Some(unknown_kind)).await;
    assert!(refused.status == 400 || refused.status == 422, "{refused:?}");
    assert_eq!(platform.call(Some(&alice), "delete", "/v2/apps/shop/webhooks/99", None).await.status, 404);
    assert_eq!(platform.call(Some(&alice), "get", "/v2/apps/shop/webhooks/x/deliveries", None).await.status, 404);
}
