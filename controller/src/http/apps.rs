//! `/v2/apps`: creating, listing, showing, destroying and transferring apps, and
//! maintenance mode.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use skiff_api::{App, AppCreate, Maintenance, UserRef};

use super::extract::{CurrentUser, VisibleApp};
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/apps", get(list).post(create))
        .route("/v2/apps/{app}", get(info).delete(destroy))
        .route("/v2/apps/{app}/transfer", post(transfer))
        .route("/v2/apps/{app}/maintenance", post(maintenance))
}

async fn list(State(c): State<Arc<Controller>>, CurrentUser(user): CurrentUser) -> Result<Json<Vec<App>>, ApiError> {
    Ok(Json(c.apps().list(&user).await?))
}

async fn create(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Json(body): Json<AppCreate>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::CREATED, Json(c.apps().create(&user, body).await?)))
}

async fn info(State(c): State<Arc<Controller>>, VisibleApp { app, .. }: VisibleApp) -> Result<Json<App>, ApiError> {
    Ok(Json(c.app_view(&app).await?))
}

async fn destroy(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
) -> Result<StatusCode, ApiError> {
    c.apps().destroy(&user, &app).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn transfer(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Json(body): Json<UserRef>,
) -> Result<Json<App>, ApiError> {
    let app = c.owned_app(&user, &app).await?;
    Ok(Json(c.apps().transfer(&user, &app, &body.username).await?))
}

async fn maintenance(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(body): Json<Maintenance>,
) -> Result<Json<App>, ApiError> {
    Ok(Json(c.apps().set_maintenance(&user, &app, body.enabled).await?))
}
