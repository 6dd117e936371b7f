//! The audit trail: `GET /v2/apps/{app}/events` (anyone with access to the app) and
//! `GET /v2/events` (admins: every event, the platform's and every app's), both with `?n=`
//! (default 100).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use skiff_api::Event;

use super::extract::{CurrentUser, VisibleApp};
use crate::error::ApiError;
use crate::state::Controller;

/// The most events one read returns.
const MAX_EVENTS: u32 = 1000;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new().route("/v2/apps/{app}/events", get(app_events)).route("/v2/events", get(all_events))
}

fn limit(query: &HashMap<String, String>) -> u32 {
    query.get("n").and_then(|n| n.parse().ok()).unwrap_or(100).min(MAX_EVENTS)
}

async fn app_events(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Event>>, ApiError> {
    Ok(Json(c.db.events(Some(&app.name), limit(&query)).await?))
}

async fn all_events(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Event>>, ApiError> {
    if !user.admin {
        return Err(ApiError::Forbidden("only admins read the platform's events; add -a APP for an app's".into()));
    }
    Ok(Json(c.db.events(None, limit(&query)).await?))
}
