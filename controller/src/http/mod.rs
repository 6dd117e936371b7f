//! The REST API: one module per resource, each a thin layer over the domain operations
//! (`crate::domain`). Every handler authenticates through an extractor ([`extract`]),
//! takes the wire types, and answers errors as `{"code", "message"}`.

mod access;
mod accounts;
mod admin;
mod apps;
mod canaries;
mod certs;
mod config;
mod cron;
mod domains;
mod drains;
mod events;
pub mod extract;
mod hooks;
mod keys;
mod nodes;
mod perms;
mod pipelines;
mod ps;
mod releases;
mod sources;
mod webhooks;

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use skiff_api::ErrorBody;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::error::ApiError;
use crate::state::Controller;

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Unauthenticated | Self::TokenRejected => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::TooManyAttempts(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            Self::Internal(cause) => {
                tracing::error!(%cause, "controller.internal");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let mut response = (status, Json(ErrorBody { code: code.into(), message: self.to_string() })).into_response();
        if let Self::TooManyAttempts(wait) = &self
            && let Ok(seconds) = axum::http::HeaderValue::from_str(&wait.as_secs().to_string())
        {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds);
        }
        response
    }
}

/// A one-off command's output as JSON lines, ending with its exit status (or when the
/// controller shuts down).
fn run_output(c: &Controller, receiver: tokio::sync::mpsc::Receiver<skiff_api::RunOutput>) -> axum::response::Response {
    use axum::response::IntoResponse;
    let lines = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let output = receiver.recv().await?;
        let mut line = serde_json::to_vec(&output).expect("run output serializes");
        line.push(b'\n');
        Some((Ok::<_, std::io::Error>(line), receiver))
    });
    let shutdown = c.shutdown.clone();
    let body = futures_util::StreamExt::take_until(lines, async move { shutdown.cancelled().await });
    ([(axum::http::header::CONTENT_TYPE, "application/x-ndjson")], axum::body::Body::from_stream(body)).into_response()
}

/// The API as an axum router.
pub fn router(controller: Arc<Controller>) -> Router {
    let metrics = controller.clone();
    let answers = controller.answers.clone();
    Router::new()
        .merge(skiff_service::routes(controller.readiness(), Arc::new(move || metrics.metrics())))
        .route("/v2/openapi.json", get(|| async { Json(crate::openapi::document()) }))
        .route("/v2/version", get(|| async { Json(skiff_api::Version { version: crate::VERSION.to_owned() }) }))
        .merge(accounts::routes())
        .merge(keys::routes())
        .merge(apps::routes())
        .merge(releases::routes())
        .merge(canaries::routes())
        .merge(config::routes())
        .merge(ps::routes())
        .merge(perms::routes())
        .merge(domains::routes())
        .merge(certs::routes())
        .merge(access::routes())
        .merge(drains::routes())
        .merge(webhooks::routes())
        .merge(cron::routes())
        .merge(sources::routes())
        .merge(events::routes())
        .merge(admin::routes())
        .merge(nodes::routes())
        .merge(pipelines::routes())
        .merge(hooks::routes())
        .merge(crate::dashboard::routes())
        .layer(axum::middleware::from_fn_with_state(answers, skiff_service::Answers::layer))
        .layer(axum::middleware::map_response(skiff_service::say_version))
        .with_state(controller)
}

/// Serves until `shutdown` is cancelled; in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    controller: Arc<Controller>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // Requests carry the client's address, for counting failed sign-ins.
    let service = router(controller).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}
