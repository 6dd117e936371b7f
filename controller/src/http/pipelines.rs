//! Pipelines: `/v2/pipelines`, `/v2/pipelines/{pipeline}`, an app's stage in one
//! (`PUT /v2/pipelines/{pipeline}/apps/{app}`, `DELETE /v2/apps/{app}/pipeline`), and
//! promotion (`POST /v2/apps/{app}/promote`), and review apps
//! (`/v2/pipelines/{pipeline}/review-apps`).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post, put};
use axum::{Json, Router};
use skiff_api::{Pipeline, PipelineCoupling, PipelineCreate, Promotion, Release, ReviewApp, ReviewAppSettings};

use super::extract::{CurrentUser, VisibleApp};
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/pipelines", get(list).post(create))
        .route("/v2/pipelines/{pipeline}", get(info).delete(destroy))
        .route("/v2/pipelines/{pipeline}/apps/{app}", put(add))
        .route("/v2/pipelines/{pipeline}/review-apps", get(review_apps).put(configure_review_apps))
        .route("/v2/apps/{app}/pipeline", delete(remove))
        .route("/v2/apps/{app}/promote", post(promote))
}

async fn list(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<Pipeline>>, ApiError> {
    c.pipelines().list(&user).await.map(Json)
}

async fn create(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Json(body): Json<PipelineCreate>,
) -> Result<(StatusCode, Json<Pipeline>), ApiError> {
    Ok((StatusCode::CREATED, Json(c.pipelines().create(&user, &body.name).await?)))
}

async fn info(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(pipeline): Path<String>,
) -> Result<Json<Pipeline>, ApiError> {
    c.pipelines().info(&user, &pipeline).await.map(Json)
}

async fn destroy(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(pipeline): Path<String>,
) -> Result<StatusCode, ApiError> {
    c.pipelines().destroy(&user, &pipeline).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn add(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Path((pipeline, _)): Path<(String, String)>,
    Json(body): Json<PipelineCoupling>,
) -> Result<Json<Pipeline>, ApiError> {
    c.pipelines().add(&user, &pipeline, &app, body.stage).await.map(Json)
}

async fn remove(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
) -> Result<StatusCode, ApiError> {
    c.pipelines().remove(&user, &app).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn promote(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(body): Json<Promotion>,
) -> Result<Json<Vec<Release>>, ApiError> {
    c.pipelines().promote(&user, &app, &body).await.map(Json)
}

async fn review_apps(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(pipeline): Path<String>,
) -> Result<Json<Vec<ReviewApp>>, ApiError> {
    c.review_apps().list(&user, &pipeline).await.map(Json)
}

async fn configure_review_apps(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(pipeline): Path<String>,
    Json(body): Json<ReviewAppSettings>,
) -> Result<Json<Pipeline>, ApiError> {
    c.review_apps().configure(&user, &pipeline, &body).await.map(Json)
}
