//! What runs: `/formation`, `/scale`, `/ps`, `/ps/restart`, `/run` (one-off commands),
//! `/limits`, `/healthchecks`, and `/logs` (read through the logger).

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use skiff_api::{Formation, Healthcheck, Limits, Process, ProcessType, Restart, RunRequest, Scale, SettingsChange};

use super::extract::VisibleApp;
use crate::db::SettingsKind;
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/apps/{app}/formation", get(formation))
        .route("/v2/apps/{app}/scale", post(scale))
        .route("/v2/apps/{app}/ps", get(list))
        .route("/v2/apps/{app}/ps/restart", post(restart))
        .route("/v2/apps/{app}/run", post(run))
        .route("/v2/apps/{app}/limits", get(limits).patch(change_limits))
        .route("/v2/apps/{app}/healthchecks", get(healthchecks).patch(change_healthchecks))
        .route("/v2/apps/{app}/logs", get(logs))
}

async fn formation(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
) -> Result<Json<Vec<Formation>>, ApiError> {
    Ok(Json(c.formation().of(&app).await?))
}

async fn scale(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(body): Json<Scale>,
) -> Result<Json<Vec<Formation>>, ApiError> {
    Ok(Json(c.formation().scale(&user, &app, &body).await?))
}

async fn list(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
) -> Result<Json<Vec<Process>>, ApiError> {
    Ok(Json(c.formation().processes(&app).await?))
}

async fn restart(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(body): Json<Restart>,
) -> Result<StatusCode, ApiError> {
    c.formation().restart(&user, &app, body).await?;
    Ok(StatusCode::ACCEPTED)
}

async fn limits(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
) -> Result<Json<BTreeMap<ProcessType, Limits>>, ApiError> {
    Ok(Json(c.formation().settings(&app, SettingsKind::Limits).await?))
}

async fn change_limits(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(change): Json<SettingsChange<Limits>>,
) -> Result<Json<BTreeMap<ProcessType, Limits>>, ApiError> {
    Ok(Json(c.formation().change_limits(&user, &app, change).await?))
}

async fn healthchecks(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
) -> Result<Json<BTreeMap<ProcessType, Healthcheck>>, ApiError> {
    Ok(Json(c.formation().settings(&app, SettingsKind::Healthchecks).await?))
}

async fn change_healthchecks(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(change): Json<SettingsChange<Healthcheck>>,
) -> Result<Json<BTreeMap<ProcessType, Healthcheck>>, ApiError> {
    Ok(Json(c.formation().change_healthchecks(&user, &app, change).await?))
}

/// Runs a command in a new container of the current release; streams its output as JSON
/// lines ending with its exit status. The container goes when the command ends, when the
/// timeout passes, or when the client hangs up.
async fn run(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(body): Json<RunRequest>,
) -> Result<Response, ApiError> {
    let receiver = c.one_offs().run(&user, &app, &body).await?;
    Ok(super::run_output(&c, receiver))
}

/// Proxies to the logger: a JSON array of recent lines, or (with `follow=true`) a stream
/// of JSON lines that ends when the client goes or the controller shuts down.
async fn logs(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let response = c.logs(&app, &query).await?;
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let shutdown = c.shutdown.clone();
    let body = futures_util::StreamExt::take_until(response.bytes_stream(), async move { shutdown.cancelled().await });
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], axum::body::Body::from_stream(body)).into_response())
}
