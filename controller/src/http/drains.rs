//! Log drains: `/v2/apps/{app}/drains` (anyone with access to the app) and `/v2/drains`
//! (platform-wide, admins). Listings carry what the logger reports of each drain's
//! deliveries.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use skiff_api::{Drain, DrainCreate};

use super::extract::AppOrPlatform;
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/apps/{app}/drains", get(list).post(add))
        .route("/v2/apps/{app}/drains/{id}", delete(remove))
        .route("/v2/drains", get(list).post(add))
        .route("/v2/drains/{id}", delete(remove))
}

async fn list(State(c): State<Arc<Controller>>, scope: AppOrPlatform) -> Result<Json<Vec<Drain>>, ApiError> {
    Ok(Json(c.drains().list(scope.app.as_ref()).await?))
}

async fn add(
    State(c): State<Arc<Controller>>,
    scope: AppOrPlatform,
    Json(body): Json<DrainCreate>,
) -> Result<(StatusCode, Json<Drain>), ApiError> {
    Ok((StatusCode::CREATED, Json(c.drains().add(&scope.user, scope.app.as_ref(), &body).await?)))
}

async fn remove(State(c): State<Arc<Controller>>, scope: AppOrPlatform) -> Result<StatusCode, ApiError> {
    c.drains().remove(&scope.user, scope.app.as_ref(), &scope.id).await?;
    Ok(StatusCode::NO_CONTENT)
}
