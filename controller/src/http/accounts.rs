//! `/v2/auth`: registering, signing in and out, and who the token belongs to.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use skiff_api::{Credentials, Session, User};

use super::extract::{ClientAddress, CurrentUser, MaybeUser, bearer};
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/auth/register", post(register))
        .route("/v2/auth/login", post(login))
        .route("/v2/auth/whoami", get(whoami))
        .route("/v2/auth/token", delete(revoke_token))
}

async fn register(
    State(c): State<Arc<Controller>>,
    MaybeUser(requester): MaybeUser,
    Json(body): Json<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    let session = c.accounts().register(requester.as_ref(), &body).await?;
    Ok((StatusCode::CREATED, Json(session)))
}

async fn login(
    State(c): State<Arc<Controller>>,
    ClientAddress(address): ClientAddress,
    Json(body): Json<Credentials>,
) -> Result<Json<Session>, ApiError> {
    Ok(Json(c.accounts().login(address, &body).await?))
}

async fn whoami(CurrentUser(user): CurrentUser) -> Json<User> {
    Json(User { username: user.username, admin: user.admin })
}

/// Revokes the token the request carries (`skiff auth:logout`).
async fn revoke_token(
    State(c): State<Arc<Controller>>,
    request: axum::extract::Request,
) -> Result<StatusCode, ApiError> {
    let (parts, _) = request.into_parts();
    let token = bearer(&parts).ok_or(ApiError::Unauthenticated)?;
    c.accounts().revoke(token).await?;
    Ok(StatusCode::NO_CONTENT)
}
