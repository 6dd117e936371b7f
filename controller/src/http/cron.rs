//! Scheduled jobs: `/v2/apps/{app}/cron` (anyone with access to the app).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use skiff_api::{CronCreate, CronJob, CronRun};

use super::extract::VisibleApp;
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/apps/{app}/cron", get(list).post(add))
        .route("/v2/apps/{app}/cron/{id}", delete(remove))
        .route("/v2/apps/{app}/cron/{id}/runs", post(run_now))
}

async fn list(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
) -> Result<Json<Vec<CronJob>>, ApiError> {
    Ok(Json(c.cron().list(&app).await?))
}

async fn add(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(body): Json<CronCreate>,
) -> Result<(StatusCode, Json<CronJob>), ApiError> {
    Ok((StatusCode::CREATED, Json(c.cron().add(&user, &app, &body).await?)))
}

async fn remove(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    c.cron().remove(&user, &app, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn run_now(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Path((_, id)): Path<(String, String)>,
) -> Result<(StatusCode, Json<CronRun>), ApiError> {
    Ok((StatusCode::ACCEPTED, Json(c.cron().run_now(&user, &app, &id).await?)))
}
