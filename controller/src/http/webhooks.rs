//! Outgoing webhooks: `/v2/apps/{app}/webhooks` (anyone with access to the app) and
//! `/v2/webhooks` (platform-wide, admins), each with its recent deliveries.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use skiff_api::{Webhook, WebhookCreate, WebhookDelivery};

use super::extract::{CurrentUser, VisibleApp};
use crate::db::UserRow;
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/apps/{app}/webhooks", get(app_list).post(app_add))
        .route("/v2/apps/{app}/webhooks/{id}", delete(app_remove))
        .route("/v2/apps/{app}/webhooks/{id}/deliveries", get(app_deliveries))
        .route("/v2/webhooks", get(platform_list).post(platform_add))
        .route("/v2/webhooks/{id}", delete(platform_remove))
        .route("/v2/webhooks/{id}/deliveries", get(platform_deliveries))
}

fn require_admin(user: &UserRow) -> Result<(), ApiError> {
    if user.admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden(
            "only admins manage platform-wide webhooks; add a webhook to an app with -a APP".into(),
        ))
    }
}

async fn app_list(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
) -> Result<Json<Vec<Webhook>>, ApiError> {
    Ok(Json(c.webhooks().list(Some(&app)).await?))
}

async fn app_add(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(body): Json<WebhookCreate>,
) -> Result<(StatusCode, Json<Webhook>), ApiError> {
    Ok((StatusCode::CREATED, Json(c.webhooks().add(&user, Some(&app), &body).await?)))
}

async fn app_remove(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Path((_, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    c.webhooks().remove(&user, Some(&app), &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn app_deliveries(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
    Path((_, id)): Path<(String, String)>,
) -> Result<Json<Vec<WebhookDelivery>>, ApiError> {
    Ok(Json(c.webhooks().deliveries(Some(&app), &id).await?))
}

async fn platform_list(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<Webhook>>, ApiError> {
    require_admin(&user)?;
    Ok(Json(c.webhooks().list(None).await?))
}

async fn platform_add(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Json(body): Json<WebhookCreate>,
) -> Result<(StatusCode, Json<Webhook>), ApiError> {
    require_admin(&user)?;
    Ok((StatusCode::CREATED, Json(c.webhooks().add(&user, None, &body).await?)))
}

async fn platform_remove(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&user)?;
    c.webhooks().remove(&user, None, &id).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn platform_deliveries(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<Json<Vec<WebhookDelivery>>, ApiError> {
    require_admin(&user)?;
    Ok(Json(c.webhooks().deliveries(None, &id).await?))
}
