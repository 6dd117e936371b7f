//! `/v2/apps/{app}/releases`, `/builds` and `/deploy`: an app's history, rollbacks, and
//! deploying an existing image.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use skiff_api::{Build, DeployImage, Release, Rollback};

use super::extract::VisibleApp;
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/apps/{app}/releases", get(list))
        .route("/v2/apps/{app}/releases/rollback", post(rollback))
        .route("/v2/apps/{app}/releases/{version}", get(info))
        .route("/v2/apps/{app}/builds", get(builds).post(super::sources::build_now))
        .route("/v2/apps/{app}/builds/{id}", get(build))
        .route("/v2/apps/{app}/deploy", post(deploy))
}

/// `?limit=N`: the newest N only.
async fn list(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Release>>, ApiError> {
    let limit = match query.get("limit") {
        Some(limit) => {
            Some(limit.parse().map_err(|_| ApiError::BadRequest(format!("`{limit}` is not a number of releases")))?)
        }
        None => None,
    };
    Ok(Json(c.releases().list(&app, limit).await?))
}

/// One release, by `3` or `v3`.
async fn info(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
    Path((_, version)): Path<(String, String)>,
) -> Result<Json<Release>, ApiError> {
    let not_found = || ApiError::NotFound(format!("{} has no release {version}; see `skiff releases`", app.name));
    let number: u32 = version.trim_start_matches('v').parse().map_err(|_| not_found())?;
    Ok(Json(c.releases().get(&app, number).await?.ok_or_else(not_found)?))
}

async fn rollback(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(body): Json<Rollback>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::CREATED, Json(c.releases().rollback(&user, &app, body.version).await?)))
}

async fn deploy(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(deploy): Json<DeployImage>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::CREATED, Json(c.releases().deploy_image(&user, &app, &deploy.image).await?)))
}

async fn builds(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
) -> Result<Json<Vec<Build>>, ApiError> {
    Ok(Json(c.db.builds(&app, None).await?))
}

async fn build(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
    Path((_, id)): Path<(String, i64)>,
) -> Result<Json<Build>, ApiError> {
    let build = c.db.build(&app, id).await?;
    build.map(Json).ok_or_else(|| ApiError::NotFound(format!("no build {id} for {}; see `skiff builds`", app.name)))
}
