//! `/v2/apps/{app}/perms`: who an app is shared with. Anyone who sees the app may list
//! them; only the owner (or an admin) changes them.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use skiff_api::{UserRef, Username};

use super::extract::{CurrentUser, VisibleApp};
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/apps/{app}/perms", get(list).post(add))
        .route("/v2/apps/{app}/perms/{username}", delete(remove))
}

async fn list(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
) -> Result<Json<Vec<Username>>, ApiError> {
    Ok(Json(c.apps().collaborators(&app).await?))
}

async fn add(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Json(body): Json<UserRef>,
) -> Result<StatusCode, ApiError> {
    let app = c.owned_app(&user, &app).await?;
    c.apps().add_collaborator(&user, &app, &body.username).await?;
    Ok(StatusCode::CREATED)
}

async fn remove(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path((app, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = c.owned_app(&user, &app).await?;
    let username: Username = username.parse().map_err(|e: skiff_api::NameError| ApiError::BadRequest(e.to_string()))?;
    c.apps().remove_collaborator(&user, &app, &username).await?;
    Ok(StatusCode::NO_CONTENT)
}
