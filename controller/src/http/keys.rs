//! `/v2/keys`: the signed-in user's SSH keys, for `git push`.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get};
use axum::{Json, Router};
use skiff_api::{Key, KeyCreate};

use super::extract::CurrentUser;
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new().route("/v2/keys", get(list).post(add)).route("/v2/keys/{id}", delete(remove))
}

async fn list(State(c): State<Arc<Controller>>, CurrentUser(user): CurrentUser) -> Result<Json<Vec<Key>>, ApiError> {
    Ok(Json(c.accounts().keys(&user).await?))
}

async fn add(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Json(body): Json<KeyCreate>,
) -> Result<impl IntoResponse, ApiError> {
    Ok((StatusCode::CREATED, Json(c.accounts().add_key(&user, &body.public_key).await?)))
}

async fn remove(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    c.accounts().remove_key(&user, id).await?;
    Ok(StatusCode::NO_CONTENT)
}
