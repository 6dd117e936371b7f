//! `/v2/apps/{app}/config`: an app's config vars. A change makes a new release.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use skiff_api::{ConfigChange, ConfigChanged};

use super::extract::VisibleApp;
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new().route("/v2/apps/{app}/config", get(show).patch(change))
}

async fn show(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
) -> Result<Json<BTreeMap<String, String>>, ApiError> {
    Ok(Json(c.db.config(&app).await?))
}

async fn change(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(change): Json<ConfigChange>,
) -> Result<Json<ConfigChanged>, ApiError> {
    Ok(Json(c.releases().change_config(&user, &app, &change).await?))
}
