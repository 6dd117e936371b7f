//! What every Skiff service serves besides its own API: `/healthz` (the process answers),
//! `/readyz` (every dependency it needs answers: its database, engine, store or Redis) and
//! `/metrics` (Prometheus' text format).
//!
//! It also holds the plumbing the services share:
//!
//! Layout:
//! - [`probe`]: readiness checks, run together with a deadline each.
//! - [`metrics`]: Prometheus text, and a counter of answers by status class.
//! - [`syslog`]: lines from Skiff's own components into apps' log streams.
//! - `ca` (feature `tls`): certificates ready to serve, and the platform's local CA.
//! - `https` (feature `tls`): HTTPS for axum services.
//! - `pubsub` (feature `redis`): following a Redis channel across reconnections.
//! - `docker` (feature `docker`): the connection to the local engine.

#[cfg(feature = "tls")]
pub mod ca;
#[cfg(feature = "docker")]
pub mod docker;
#[cfg(feature = "tls")]
pub mod https;
pub mod metrics;
#[cfg(feature = "outbound")]
pub mod outbound;
pub mod probe;
#[cfg(feature = "redis")]
pub mod pubsub;
pub mod syslog;

use std::sync::Arc;

use axum::Router;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

pub use metrics::{Answers, Text};
pub use probe::Readiness;

/// What a service says at `/metrics`: its own metrics, rendered on each read.
pub type RenderMetrics = Arc<dyn Fn() -> String + Send + Sync>;

/// Serves only `/healthz`, `/readyz` and `/metrics` on `listener` until `shutdown`, for a
/// service whose own protocol is not HTTP (the builder's SSH).
///
/// # Errors
/// When the server fails.
pub async fn serve(
    listener: tokio::net::TcpListener,
    readiness: Readiness,
    render: RenderMetrics,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(listener, routes::<()>(readiness, render)).with_graceful_shutdown(shutdown).await
}

/// Skiff's version, which every component's health answers carry in `Skiff-Version`.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// `/healthz`, `/readyz` and `/metrics` for a service, to merge into its router; each answer
/// says the component's version (`Skiff-Version`).
pub fn routes<S: Clone + Send + Sync + 'static>(readiness: Readiness, render: RenderMetrics) -> Router<S> {
    health_routes(readiness, render).layer(axum::middleware::map_response(say_version))
}

/// Adds `Skiff-Version` to an answer (`axum::middleware::map_response(say_version)`).
pub async fn say_version(mut response: axum::response::Response) -> axum::response::Response {
    response.headers_mut().insert("skiff-version", axum::http::HeaderValue::from_static(VERSION));
    response
}

fn health_routes<S: Clone + Send + Sync + 'static>(readiness: Readiness, render: RenderMetrics) -> Router<S> {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let readiness = readiness.clone();
                async move {
                    let report = readiness.report().await;
                    let status = if report.ready { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
                    (status, report.text)
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let text = render();
                async move { ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], text).into_response() }
            }),
        )
}
