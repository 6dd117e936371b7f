//! Source repositories: `/v2/apps/{app}/source` (connect, show, disconnect),
//! `POST /v2/apps/{app}/builds` (build now), and `POST /v2/hooks/scm/{app}`, where
//! GitHub, GitLab and Gitea send push events, authenticated by the app's hook secret
//! alone.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use skiff_api::{AppSource, AppSourceCreate, BuildTrigger, SourceBuildAnswer};

use super::extract::VisibleApp;
use crate::error::ApiError;
use crate::state::Controller;

/// The largest push event taken (GitHub caps its own at 25 MB; a push of many commits is
/// large, but a hundred commits' worth is well under this).
const MAX_EVENT: usize = 1 << 20;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/apps/{app}/source", get(show).put(connect).delete(disconnect))
        .route("/v2/hooks/scm/{app}", post(receive).layer(DefaultBodyLimit::max(MAX_EVENT)))
}

async fn show(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
) -> Result<Json<AppSource>, ApiError> {
    Ok(Json(c.sources().show(&app).await?))
}

async fn connect(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(body): Json<AppSourceCreate>,
) -> Result<Json<AppSource>, ApiError> {
    Ok(Json(c.sources().connect(&user, &app, &body).await?))
}

async fn disconnect(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
) -> Result<StatusCode, ApiError> {
    c.sources().disconnect(&user, &app).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `POST /v2/apps/{app}/builds`.
pub(super) async fn build_now(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(body): Json<BuildTrigger>,
) -> Result<(StatusCode, Json<SourceBuildAnswer>), ApiError> {
    Ok((StatusCode::ACCEPTED, Json(c.sources().build_now(&user, &app, &body).await?)))
}

async fn receive(
    State(c): State<Arc<Controller>>,
    Path(app): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<(StatusCode, Json<SourceBuildAnswer>), ApiError> {
    let received = c.sources().receive(&app, &headers, &body).await?;
    let status = if received.accepted { StatusCode::ACCEPTED } else { StatusCode::OK };
    Ok((status, Json(received.answer)))
}
