//! Log drains: `/v2/apps/{app}/drains` (anyone with access to the app),
//! `/v2/drains` (platform-wide, admins) and `/v2/hooks/drains`, which the logger follows.
//! Listings carry what the logger reports of each drain's deliveries.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get};
use axum::{Json, Router};
use skiff_api::{Drain, DrainCreate, DrainStatus, DrainTarget};

use crate::auth::{CurrentUser, Service};
use crate::db::{AppRow, UserRow};
use crate::http::{ApiError, Controller};

/// How long a listing waits for the logger's delivery counts.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a change waits for the logger to apply it.
const SYNC_TIMEOUT: Duration = Duration::from_secs(6);

/// The drain routes.
pub fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/apps/{app}/drains", get(app_list).post(app_add))
        .route("/v2/apps/{app}/drains/{id}", delete(app_remove))
        .route("/v2/drains", get(platform_list).post(platform_add))
        .route("/v2/drains/{id}", delete(platform_remove))
        .route("/v2/hooks/drains", get(hook_targets))
}

fn require_admin(user: &UserRow) -> Result<(), ApiError> {
    if user.admin {
        Ok(())
    } else {
        Err(ApiError::Forbidden("only admins manage platform-wide drains; add a drain to an app with -a APP".into()))
    }
}

/// The drains with the logger's counts; without them when the logger does not answer.
async fn with_status(c: &Controller, mut drains: Vec<Drain>) -> Vec<Drain> {
    let status: Vec<DrainStatus> =
        match c.logger_request(reqwest::Method::GET, "/v2/drains").timeout(STATUS_TIMEOUT).send().await {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(error) => {
                tracing::warn!(%error, "controller.drains: the logger did not report deliveries");
                Vec::new()
            }
        };
    for drain in &mut drains {
        drain.status = status.iter().find(|s| s.id == drain.id).cloned();
    }
    drains
}

/// Refuses a target any of whose addresses the outbound guard refuses.
async fn check_outbound(c: &Controller, target: &DrainTarget) -> Result<(), ApiError> {
    let resolved: Vec<std::net::SocketAddr> = tokio::net::lookup_host((target.host.as_str(), target.port))
        .await
        .map_err(|e| ApiError::BadRequest(format!("cannot resolve {}: {e}", target.host)))?
        .collect();
    for address in &resolved {
        if let Some(why) = c.config.outbound.refusal(address.ip()) {
            return Err(ApiError::BadRequest(format!(
                "drains may not reach {} ({} is {why}); the operator can allow a network with SKIFF_OUTBOUND_ALLOW",
                target.host,
                address.ip()
            )));
        }
    }
    if resolved.is_empty() {
        return Err(ApiError::BadRequest(format!("{} resolves to no address", target.host)));
    }
    Ok(())
}

/// Has the logger read the drains now, so that a new drain gets every line taken in
/// after its request is answered. A logger that does not answer picks the change up on
/// its next read (within seconds).
async fn sync_logger(c: &Controller) {
    let sync = c.logger_request(reqwest::Method::POST, "/v2/drains/sync");
    let synced = sync.timeout(SYNC_TIMEOUT).send().await.map(|r| r.status());
    if !matches!(synced, Ok(status) if status.is_success()) {
        tracing::warn!(?synced, "controller.drains: the logger did not confirm the change; it reads it within seconds");
    }
}

async fn list(c: &Controller, app: Option<&AppRow>) -> Result<Json<Vec<Drain>>, ApiError> {
    let mut drains = c.db.drains(app).await?;
    for drain in &mut drains {
        drain.url = skiff_api::drain::masked_url(&drain.url);
    }
    Ok(Json(with_status(c, drains).await))
}

async fn add(
    c: &Controller,
    user: &UserRow,
    app: Option<&AppRow>,
    body: &DrainCreate,
) -> Result<(StatusCode, Json<Drain>), ApiError> {
    let url = body.url.trim();
    let target = DrainTarget::parse(url).map_err(ApiError::BadRequest)?;
    // An app's drain must not reach the platform or the networks around it; platform
    // drains, set by admins, may point anywhere. The logger checks again at every connect.
    if app.is_some() {
        check_outbound(c, &target).await?;
    }
    let drain =
        c.db.add_drain(app, url)
            .await?
            .ok_or_else(|| ApiError::Conflict(format!("{url} is a drain already; see `skiff drains`")))?;
    sync_logger(c).await;
    match app {
        Some(app) => c.events.emit(&app.name, &format!("{} added drain {}", user.username, drain.id)).await,
        None => c.events.emit_platform(&format!("{} added platform drain {}", user.username, drain.id)).await,
    }
    let drain = Drain { url: skiff_api::drain::masked_url(&drain.url), ..drain };
    Ok((StatusCode::CREATED, Json(drain)))
}

async fn remove(c: &Controller, user: &UserRow, app: Option<&AppRow>, id: &str) -> Result<StatusCode, ApiError> {
    let missing = || ApiError::NotFound(format!("no drain {id} here; see `skiff drains`"));
    let id: i64 = id.parse().map_err(|_| missing())?;
    if !c.db.remove_drain(app, id).await? {
        return Err(missing());
    }
    sync_logger(c).await;
    match app {
        Some(app) => c.events.emit(&app.name, &format!("{} removed drain {id}", user.username)).await,
        None => c.events.emit_platform(&format!("{} removed platform drain {id}", user.username)).await,
    }
    Ok(StatusCode::NO_CONTENT)
}

async fn app_list(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
) -> Result<Json<Vec<Drain>>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    list(&c, Some(&app)).await
}

async fn app_add(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Json(body): Json<DrainCreate>,
) -> Result<(StatusCode, Json<Drain>), ApiError> {
    let app = c.app_for(&user, &app).await?;
    add(&c, &user, Some(&app), &body).await
}

async fn app_remove(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path((app, id)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = c.app_for(&user, &app).await?;
    remove(&c, &user, Some(&app), &id).await
}

async fn platform_list(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<Drain>>, ApiError> {
    require_admin(&user)?;
    list(&c, None).await
}

async fn platform_add(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Json(body): Json<DrainCreate>,
) -> Result<(StatusCode, Json<Drain>), ApiError> {
    require_admin(&user)?;
    add(&c, &user, None, &body).await
}

async fn platform_remove(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    require_admin(&user)?;
    remove(&c, &user, None, &id).await
}

/// Every drain, for the logger.
async fn hook_targets(State(c): State<Arc<Controller>>, _: Service) -> Result<Json<Vec<Drain>>, ApiError> {
    Ok(Json(c.db.all_drains().await?))
}
