//! Log drains: `/v2/apps/{app}/drains` (anyone with access to the app) and `/v2/drains`
//! (platform-wide, admins). Listings carry what the logger reports of each drain's
//! deliveries.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use skiff_api::{Drain, DrainCreate};

use super::extract::{CurrentUser, VisibleApp};
use crate::db::UserRow;
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/apps/{app}/drains", get(app_list).post(app_add))
        .route("/v2/apps/{app}/drains/{id}", delete(app_remove))
        .route("/v2/drains", get(platform_list).post(platform_add))
        .route("/v2/drains/{id}", delete(platform_remove))
}

fn require_admin(user: &UserRow) -> Result<(), ApiError> {
    if user.admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("only admins manage platform-wide drains; add a drain to an app with -a APP".into()))
    }
}

async fn app_list(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
) -> Result<Json<Vec<Drain>>, ApiError> {
    Ok(Json(c.drains().list(Some(&app)).await?))
}

async fn app_add(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(body): Json<DrainCreate>,
) -> Result<(StatusCode, Json<Drain>), ApiError> {
    Ok((StatusCode::CREATED, Json(c.drains().add(&user, Some(&app), &body).await?)))
}

async fn app_remove(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    c.drains().remove(&user, Some(&app), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn platform_list(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<Drain>>, ApiError> {
    require_admin(&user)?;
    Ok(Json(c.drains().list(None).await?))
}

async fn platform_add(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Json(body): Json<DrainCreate>,
) -> Result<(StatusCode, Json<Drain>), ApiError> {
    require_admin(&user)?;
    Ok((StatusCode::CREATED, Json(c.drains().add(&user, None, &body).await?)))
}

async fn platform_remove(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&user)?;
    c.drains().remove(&user, None, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}
