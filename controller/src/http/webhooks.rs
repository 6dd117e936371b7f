//! Outgoing webhooks: `/v2/apps/{app}/webhooks` (anyone with access to the app) and
//! `/v2/webhooks` (platform-wide, admins), each with its recent deliveries.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use skiff_api::{Webhook, WebhookCreate, WebhookDelivery};

use super::extract::AppOrPlatform;
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/apps/{app}/webhooks", get(list).post(add))
        .route("/v2/apps/{app}/webhooks/{id}", delete(remove))
        .route("/v2/apps/{app}/webhooks/{id}/deliveries", get(deliveries))
        .route("/v2/webhooks", get(list).post(add))
        .route("/v2/webhooks/{id}", delete(remove))
        .route("/v2/webhooks/{id}/deliveries", get(deliveries))
}

async fn list(State(c): State<Arc<Controller>>, scope: AppOrPlatform) -> Result<Json<Vec<Webhook>>, ApiError> {
    Ok(Json(c.webhooks().list(scope.app.as_ref()).await?))
}

async fn add(
    State(c): State<Arc<Controller>>,
    scope: AppOrPlatform,
    Json(body): Json<WebhookCreate>,
) -> Result<(StatusCode, Json<Webhook>), ApiError> {
    Ok((StatusCode::CREATED, Json(c.webhooks().add(&scope.user, scope.app.as_ref(), &body).await?)))
}

async fn remove(State(c): State<Arc<Controller>>, scope: AppOrPlatform) -> Result<StatusCode, ApiError> {
    c.webhooks().remove(&scope.user, scope.app.as_ref(), &scope.id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn deliveries(
    State(c): State<Arc<Controller>>,
    scope: AppOrPlatform,
) -> Result<Json<Vec<WebhookDelivery>>, ApiError> {
    Ok(Json(c.webhooks().deliveries(scope.app.as_ref(), &scope.id).await?))
}
