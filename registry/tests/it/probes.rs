//! `/readyz` and `/metrics`: the registry is ready while its store answers.

use axum::http::StatusCode;
use tokio_util::sync::CancellationToken;

use crate::harness::{As, Registry};

#[tokio::test]
async fn ready_while_the_store_answers_and_metrics_count_answers() {
    let registry = Registry::start().await;
    let ready = registry.send(registry.request(As::Nobody, reqwest::Method::GET, "/readyz")).await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "store ok\n");
    registry.send(registry.request(As::Nobody, reqwest::Method::GET, "/v2/")).await;
    let metrics = registry.send(registry.request(As::Nobody, reqwest::Method::GET, "/metrics")).await;
    let text = metrics.text().await.unwrap();
    assert!(text.contains("skiff_registry_http_responses_total{class=\"4xx\"} 1"), "{text}");
}

#[tokio::test]
async fn not_ready_once_its_s3_store_is_unreachable() {
    // An S3 endpoint that holds nothing (every object is missing), and then goes away.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let endpoint = format!("http://{}", listener.local_addr().unwrap());
    let gone = CancellationToken::new();
    let empty = axum::Router::new().fallback(|| async { StatusCode::NOT_FOUND });
    let stop = gone.clone();
    let server =
        tokio::spawn(async move { axum::serve(listener, empty).with_graceful_shutdown(stop.cancelled_owned()).await });
    let url = format!("s3://probe?endpoint={endpoint}&access_key_id=skiff&secret_access_key=skiff-secret");
    let registry = Registry::start_on_s3_url(&url).await;
    let ready = registry.send(registry.request(As::Nobody, reqwest::Method::GET, "/readyz")).await;
    assert_eq!(ready.status(), 200, "{}", ready.text().await.unwrap());

    gone.cancel();
    server.await.unwrap().unwrap();
    let ready = registry.send(registry.request(As::Nobody, reqwest::Method::GET, "/readyz")).await;
    assert_eq!(ready.status(), 503);
    let text = ready.text().await.unwrap();
    assert!(text.starts_with("store: "), "{text}");
}
