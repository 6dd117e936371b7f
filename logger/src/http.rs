//! The logger's read API.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use skiff_api::{AppName, LogLine};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::buffer::Buffers;

/// The most lines one read returns.
const MAX_LINES: usize = 10_000;

/// The API as an axum router.
pub fn router(buffers: Arc<Buffers>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/v2/apps/{app}/logs", get(tail))
        .with_state(buffers)
}

/// Serves until `shutdown`.
pub async fn serve(listener: TcpListener, buffers: Arc<Buffers>, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router(buffers)).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

async fn tail(
    State(buffers): State<Arc<Buffers>>,
    Path(app): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<LogLine>>, StatusCode> {
    let app: AppName = app.parse().map_err(|_| StatusCode::BAD_REQUEST)?;
    let n = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(100).min(MAX_LINES);
    Ok(Json(buffers.tail(&app, n)))
}
