//! `/v2/apps/{app}/domains`: an app's custom domains.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use skiff_api::{Domain, DomainCreate};

use super::extract::VisibleApp;
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/apps/{app}/domains", get(list).post(add))
        .route("/v2/apps/{app}/domains/{domain}", delete(remove))
}

async fn list(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
) -> Result<Json<Vec<Domain>>, ApiError> {
    Ok(Json(c.domains().list(&app).await?))
}

async fn add(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(body): Json<DomainCreate>,
) -> Result<StatusCode, ApiError> {
    c.domains().add(&user, &app, &body.domain).await?;
    Ok(StatusCode::CREATED)
}

async fn remove(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Path((_, domain)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    c.domains().remove(&user, &app, &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}
