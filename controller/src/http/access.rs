//! `/v2/apps/{app}/access`: what the router lets through to an app (the largest request
//! body, client addresses allowed and denied). The router gets it in the route feed.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use skiff_api::AccessPolicy;

use super::extract::VisibleApp;
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new().route("/v2/apps/{app}/access", get(show).put(set))
}

async fn show(VisibleApp { app, .. }: VisibleApp) -> Json<AccessPolicy> {
    Json(app.access)
}

async fn set(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(policy): Json<AccessPolicy>,
) -> Result<Json<AccessPolicy>, ApiError> {
    c.apps().set_access(&user, &app, &policy).await?;
    Ok(Json(policy))
}
