//! What Skiff's own components ask, with the service token: the router's route feed, the
//! builder's key, push and image checks, build records and review apps, the registry's
//! sign-ins, the logger's drain list, and the routers' canary counts.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use skiff_api::{
    AppName, BuildCreate, CanarySamples, Drain, ImageUse, KeyOwner, PushGrant, RegistryAccess, RegistryGrant, Release,
    ReviewAppGrant, ReviewAppPush, RouteTable, RunRequest, Username,
};

use super::extract::Service;
use crate::error::ApiError;
use crate::state::Controller;

/// How long a route-feed read waits for a change.
const ROUTE_POLL: Duration = Duration::from_secs(25);

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/routes", get(route_feed))
        .route("/v2/hooks/keys/{fingerprint}", get(key_owner))
        .route("/v2/hooks/apps/{app}/access/{username}", get(push_grant))
        .route("/v2/hooks/apps/{app}/warm", post(warm))
        .route("/v2/hooks/builds", post(build))
        .route("/v2/hooks/apps/{app}/releases/{version}", get(release))
        .route("/v2/hooks/registry/access", post(registry_access))
        .route("/v2/hooks/images/use", post(image_use))
        .route("/v2/hooks/drains", get(drain_targets))
        .route("/v2/hooks/review-apps", post(open_review_app))
        .route("/v2/hooks/review-apps/close", post(close_review_app))
        .route("/v2/hooks/apps/{app}/postdeploy", post(postdeploy))
        .route("/v2/hooks/canary-samples", post(canary_samples))
        .route("/v2/hooks/traffic", post(traffic))
}

async fn route_feed(
    State(c): State<Arc<Controller>>,
    _: Service,
    Query(query): Query<HashMap<String, String>>,
) -> Json<RouteTable> {
    let after = query.get("after").and_then(|v| v.parse().ok()).unwrap_or(0);
    if let Some(router) = query.get("router").filter(|name| !name.is_empty() && name.len() <= 200) {
        let version = query.get("version").map_or("", String::as_str);
        c.routes.note_reader(router, version.get(..version.len().min(64)).unwrap_or_default(), after);
    }
    Json(c.routes.next(after, ROUTE_POLL).await)
}

/// A router's counts of apps' canaries, added to the others'.
async fn canary_samples(
    State(c): State<Arc<Controller>>,
    _: Service,
    Json(samples): Json<CanarySamples>,
) -> Result<StatusCode, ApiError> {
    c.db.add_canary_samples(&samples).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A router's counts of apps' traffic, added to the current minute's.
async fn traffic(
    State(c): State<Arc<Controller>>,
    _: Service,
    Json(samples): Json<skiff_api::TrafficSamples>,
) -> Result<StatusCode, ApiError> {
    let minute = time::OffsetDateTime::now_utc().unix_timestamp().div_euclid(60);
    c.db.add_traffic(&samples, minute).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn key_owner(
    State(c): State<Arc<Controller>>,
    _: Service,
    Path(fingerprint): Path<String>,
) -> Result<Json<KeyOwner>, ApiError> {
    let user =
        c.db.key_owner(&fingerprint)
            .await?
            .ok_or_else(|| ApiError::NotFound("unknown key; add it with `skiff keys:add`".into()))?;
    Ok(Json(KeyOwner { username: user.username }))
}

async fn push_grant(
    State(c): State<Arc<Controller>>,
    _: Service,
    Path((app, username)): Path<(String, String)>,
) -> Result<Json<PushGrant>, ApiError> {
    let username: Username = username.parse().map_err(|_| ApiError::NotFound("unknown user".into()))?;
    let user = c.db.user_by_name(&username).await?.ok_or_else(|| ApiError::NotFound("unknown user".into()))?;
    let app = c.app_for(&user, &app).await?;
    let url = c.config.app_url(app.name.as_str());
    let config = c.db.config(&app).await?;
    Ok(Json(PushGrant { app: app.name, id: app.id, stack: app.stack, url, config }))
}

/// A push to the app has begun: the web container of the release it will make is started
/// ahead. Answered at once; the container is made meanwhile.
async fn warm(State(c): State<Arc<Controller>>, _: Service, Path(app): Path<String>) -> Result<StatusCode, ApiError> {
    let app = known_app(&c, &app).await?;
    Ok(if c.apps().warm(&app).await? { StatusCode::ACCEPTED } else { StatusCode::NO_CONTENT })
}

/// An app by name, or 404.
async fn known_app(c: &Controller, app: &str) -> Result<crate::db::AppRow, ApiError> {
    let not_found = || ApiError::NotFound(format!("no app {app}"));
    let name: AppName = app.parse().map_err(|_| not_found())?;
    c.db.app(&name).await?.ok_or_else(not_found)
}

async fn build(
    State(c): State<Arc<Controller>>,
    _: Service,
    Json(build): Json<BuildCreate>,
) -> Result<impl IntoResponse, ApiError> {
    let user = c.db.user_by_name(&build.username).await?.ok_or_else(|| ApiError::NotFound("unknown user".into()))?;
    let app = c.app_for(&user, build.app.as_str()).await?;
    Ok((StatusCode::CREATED, Json(c.releases().record_build(&app, &build).await?)))
}

/// How a read of a release waits.
#[derive(Debug, serde::Deserialize)]
struct ReleaseWait {
    /// While the release is pending, answer once it changes (its state, or its release
    /// phase's output) or after this many milliseconds (at most ten seconds), whichever
    /// comes first; at once without it.
    wait_ms: Option<u64>,
}

/// One release, for the builder to follow its rollout: the push hears that its release is
/// up as the reconcile loop settles it, not at its next look.
async fn release(
    State(c): State<Arc<Controller>>,
    _: Service,
    Path((app, version)): Path<(String, u32)>,
    Query(wait): Query<ReleaseWait>,
) -> Result<Json<Release>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no release v{version} of {app}"));
    let name: AppName = app.parse().map_err(|_| not_found())?;
    let app = c.db.app(&name).await?.ok_or_else(not_found)?;
    let wait = Duration::from_millis(wait.wait_ms.unwrap_or(0));
    c.releases().get_once_changed(&app, version, wait).await?.map(Json).ok_or_else(not_found)
}

/// Registry credentials are a user's API token (the password field of `docker login`), or
/// the user's password.
async fn registry_access(
    State(c): State<Arc<Controller>>,
    _: Service,
    Json(access): Json<RegistryAccess>,
) -> Result<Json<RegistryGrant>, ApiError> {
    Ok(Json(c.accounts().registry_grant(&access).await?))
}

/// Whether the pusher of a build may build from an image (its Dockerfile's `FROM` and
/// `COPY --from`): 204, or 403 with the reason.
async fn image_use(
    State(c): State<Arc<Controller>>,
    _: Service,
    Json(body): Json<ImageUse>,
) -> Result<StatusCode, ApiError> {
    let user =
        c.db.user_by_name(&body.username)
            .await?
            .ok_or_else(|| ApiError::Forbidden(format!("user `{}` no longer exists", body.username)))?;
    c.usable_image(&user, &body.image).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Every drain, for the logger.
async fn drain_targets(State(c): State<Arc<Controller>>, _: Service) -> Result<Json<Vec<Drain>>, ApiError> {
    Ok(Json(c.drains().all().await?))
}

async fn open_review_app(
    State(c): State<Arc<Controller>>,
    _: Service,
    Json(push): Json<ReviewAppPush>,
) -> Result<Json<ReviewAppGrant>, ApiError> {
    c.review_apps().open(&push).await.map(Json)
}

async fn close_review_app(
    State(c): State<Arc<Controller>>,
    _: Service,
    Json(push): Json<ReviewAppPush>,
) -> Result<Json<Option<AppName>>, ApiError> {
    c.review_apps().close(&push).await.map(Json)
}

async fn postdeploy(
    State(c): State<Arc<Controller>>,
    _: Service,
    Path(app): Path<String>,
    Json(body): Json<RunRequest>,
) -> Result<axum::response::Response, ApiError> {
    let app: AppName = app.parse().map_err(|_| ApiError::NotFound(format!("app `{app}` not found")))?;
    let receiver = c.review_apps().postdeploy(&app, &body.command).await?;
    Ok(super::run_output(&c, receiver))
}
