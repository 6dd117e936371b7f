//! Canary releases: `/v2/apps/{app}/canary` (show, start), `/canary/promote` and
//! `/canary/abort` (end by hand).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use skiff_api::{Canary, CanaryCreate};

use super::extract::VisibleApp;
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/apps/{app}/canary", get(latest).post(start))
        .route("/v2/apps/{app}/canary/promote", post(promote))
        .route("/v2/apps/{app}/canary/abort", post(abort))
}

async fn latest(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
) -> Result<Json<Canary>, ApiError> {
    c.canaries().latest(&app).await.map(Json)
}

async fn start(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(body): Json<CanaryCreate>,
) -> Result<(StatusCode, Json<Canary>), ApiError> {
    Ok((StatusCode::CREATED, Json(c.canaries().start(&user, &app, &body).await?)))
}

async fn promote(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
) -> Result<Json<Canary>, ApiError> {
    c.canaries().end_by_hand(&user, &app, true).await.map(Json)
}

async fn abort(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
) -> Result<Json<Canary>, ApiError> {
    c.canaries().end_by_hand(&user, &app, false).await.map(Json)
}
