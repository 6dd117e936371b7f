//! The platform's own resources: `/v2/stacks` (listed by everyone, imported by admins)
//! and `/v2/admin/gc` (registry garbage collection, admins).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use skiff_api::{Stack, StackName};

use super::extract::CurrentUser;
use crate::error::ApiError;
use crate::events::Event;
use crate::stacks;
use crate::state::Controller;
use skiff_api::EventKind;

/// The largest stack archive accepted.
const MAX_STACK_BYTES: usize = 2 << 30;
/// How long an import's answer waits for the engine to hold the stack.
const HOLD_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/stacks", get(stacks_list))
        .route("/v2/stacks/{name}", post(stacks_import).layer(DefaultBodyLimit::max(MAX_STACK_BYTES)))
        .route("/v2/admin/gc", post(gc))
        .route("/v2/admin/status", get(status))
}

async fn status(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<skiff_api::PlatformStatus>, ApiError> {
    Ok(Json(c.platform_status(&user).await?))
}

async fn stacks_list(
    State(c): State<Arc<Controller>>,
    CurrentUser(_): CurrentUser,
) -> Result<Json<Vec<Stack>>, ApiError> {
    let stacks = c.db.stacks().await?;
    Ok(Json(stacks.into_iter().map(|(name, image)| Stack { name, image }).collect()))
}

async fn stacks_import(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(name): Path<String>,
    body: axum::body::Body,
) -> Result<impl IntoResponse, ApiError> {
    // Checked before a byte of the archive is read.
    if !user.admin {
        return Err(ApiError::Forbidden("only admins import stacks".into()));
    }
    let name: StackName = name.parse().map_err(|e: skiff_api::NameError| ApiError::BadRequest(e.to_string()))?;
    let body = axum::body::to_bytes(body, MAX_STACK_BYTES)
        .await
        .map_err(|_| ApiError::BadRequest(format!("the archive broke off or is over {} GiB", MAX_STACK_BYTES >> 30)))?;
    let image = stacks::import(&c.registry, &name, &body).await.map_err(|e| match e {
        stacks::ImportError::NotTar => ApiError::BadRequest(e.to_string()),
        stacks::ImportError::Registry(e) => ApiError::Internal(e.to_string()),
    })?;
    c.db.put_stack(&name, &image).await?;
    // The engine gets it now, and the answer waits a while for that and for a pause
    // container to start: the first app made on it then starts its warm container without
    // waiting for a pull, in a network namespace started ahead. A large stack's pull goes
    // on after the answer.
    let (runtime, registry_host, held) = (c.runtime.clone(), c.config.registry_host.clone(), image.clone());
    let holding = tokio::spawn(async move { stacks::hold(runtime.as_ref(), &registry_host, &held).await });
    let _ = tokio::time::timeout(HOLD_WAIT, holding).await;
    let message = format!("{} imported stack {name} ({image})", user.username);
    c.events.emit_platform(Event::new(EventKind::Platform, message).by(&user.username)).await;
    Ok((StatusCode::CREATED, Json(Stack { name, image })))
}

/// `POST /v2/admin/gc?dry_run=true`: applies image retention and collects garbage now;
/// a dry run changes nothing and reports what a collection would delete.
async fn gc(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let dry_run = query.get("dry_run").is_some_and(|v| v == "true" || v == "1");
    let grace = query.get("grace_secs").and_then(|g| g.parse().ok());
    Ok(Json(c.collect_garbage(&user, dry_run, grace).await?))
}
