//! The REST API. Every handler authenticates through an extractor, validates through the
//! wire types, and answers errors as `{"code", "message"}` via [`ApiError`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use skiff_api::{
    App, AppCreate, AppName, Build, BuildCreate, BuildKind, BuildRecorded, BuildStatus, ConfigChange, ConfigChanged,
    Credentials, DeployImage, Domain, DomainCreate, ErrorBody, Formation, ImageRef, ImageUse, Key, KeyCreate, KeyOwner,
    Maintenance, Process, PushGrant, RegistryAccess, RegistryGrant, Release, ReleaseState, Restart, Rollback,
    RouteTable, RunOutput, RunRequest, Scale, Session, Stack, StackName, User, UserRef, Username,
};
use skiff_registry_client::RegistryClient;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::auth::{
    ClientAddress, CurrentUser, MaybeUser, Service, hash_password, new_token, token_hash, verify_password,
};
use crate::config::{Config, Registration};
use crate::coordination::Coordination;
use crate::db::SettingsKind;
use crate::db::{AppRow, Db, DbError, UserRow};
use crate::events::Events;
use crate::keys;
use crate::routes::RouteFeed;
use crate::scheduler::ContainerRuntime;
use crate::scheduler::StartSpec;
use crate::scheduler::reconcile::{default_quantity, pull_reference, release_env};
use crate::stacks;
use crate::throttle::{Attempt, LoginThrottle};
use skiff_api::{Healthcheck, Limits, ProcessType, SettingsChange};
use std::collections::BTreeMap;

/// The largest stack archive accepted.
const MAX_STACK_BYTES: usize = 2 << 30;
/// The longest one-off command line accepted (well under what the engine and the kernel
/// take for a process's arguments).
const MAX_RUN_COMMAND: usize = 64 << 10;
/// How long a route-feed read waits for a change.
const ROUTE_POLL: Duration = Duration::from_secs(25);

/// An API error: a status, a stable code and a message that says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("not logged in; run `skiff auth:login` (or set SKIFF_TOKEN)")]
    Unauthenticated,
    #[error(
        "the token was rejected (revoked, or not one of this platform's); log in again with `skiff auth:login`, \
         or set SKIFF_TOKEN to a valid token"
    )]
    TokenRejected,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("too many failed sign-ins; try again in {} s", .0.as_secs())]
    TooManyAttempts(Duration),
    /// The cause is logged, never returned.
    #[error("internal error")]
    Internal(String),
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        Self::Internal(e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Unauthenticated | Self::TokenRejected => (StatusCode::UNAUTHORIZED, "unauthenticated"),
            Self::Forbidden(_) => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            Self::BadRequest(_) => (StatusCode::BAD_REQUEST, "bad_request"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::TooManyAttempts(_) => (StatusCode::TOO_MANY_REQUESTS, "too_many_attempts"),
            Self::Internal(cause) => {
                tracing::error!(%cause, "controller.internal");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let mut response = (status, Json(ErrorBody { code: code.into(), message: self.to_string() })).into_response();
        if let Self::TooManyAttempts(wait) = &self
            && let Ok(seconds) = axum::http::HeaderValue::from_str(&wait.as_secs().to_string())
        {
            response.headers_mut().insert(axum::http::header::RETRY_AFTER, seconds);
        }
        response
    }
}

/// The controller's shared state.
pub struct Controller {
    pub config: Arc<Config>,
    pub db: Db,
    runtime: Arc<dyn ContainerRuntime>,
    pub routes: Arc<RouteFeed>,
    /// Wakes the reconcile loops (this replica's, and others' through Redis).
    pub coordination: Arc<Coordination>,
    registry: Arc<RegistryClient>,
    pub(crate) http: reqwest::Client,
    /// Ends long-lived responses (log follows) at shutdown.
    shutdown: CancellationToken,
    pub(crate) events: Arc<Events>,
    /// One-off commands in flight.
    one_offs: TaskTracker,
    /// Failed sign-ins, for refusing guessers.
    logins: LoginThrottle,
}

impl Controller {
    pub fn new(
        config: Arc<Config>,
        db: Db,
        runtime: Arc<dyn ContainerRuntime>,
        routes: Arc<RouteFeed>,
        coordination: Arc<Coordination>,
        events: Arc<Events>,
        shutdown: CancellationToken,
    ) -> Arc<Self> {
        let registry = Arc::new(RegistryClient::new(&config.registry_url, "skiff", &config.service_token));
        let http = reqwest::Client::new();
        let one_offs = TaskTracker::new();
        let logins = LoginThrottle::default();
        Arc::new(Self { config, db, runtime, routes, coordination, registry, http, shutdown, events, one_offs, logins })
    }

    /// The release the app runs (or is rolling out): its newest that did not fail.
    async fn running_release(&self, app: &AppRow) -> Result<Option<Release>, ApiError> {
        Ok(self.db.running_release(app).await?)
    }

    /// The app's current release, or a clear error.
    async fn current_release(&self, app: &AppRow) -> Result<Release, ApiError> {
        self.running_release(app).await?.ok_or_else(|| {
            ApiError::Conflict(format!("app `{}` has no release yet; push with `git push skiff main`", app.name))
        })
    }

    pub(crate) async fn app_for(&self, user: &UserRow, name: &str) -> Result<AppRow, ApiError> {
        let not_found = || ApiError::NotFound(format!("app `{name}` not found; see `skiff apps`"));
        let name: AppName = name.parse().map_err(|_| not_found())?;
        let app = self.db.app(&name).await?.ok_or_else(not_found)?;
        if app.owner_id == user.id || user.admin || self.db.is_collaborator(app.id, user.id).await? {
            Ok(app)
        } else {
            Err(not_found())
        }
    }

    /// An app whose sharing the user may change: the owner's, or any for an admin.
    async fn owned_app(&self, user: &UserRow, name: &str) -> Result<AppRow, ApiError> {
        let app = self.app_for(user, name).await?;
        if app.owner_id == user.id || user.admin {
            Ok(app)
        } else {
            Err(ApiError::Forbidden(format!("only the owner of `{}` ({}) may do that", app.name, app.owner)))
        }
    }

    /// A request to the logger's API, with the service token it requires.
    pub(crate) fn logger_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.config.logger_url)).bearer_auth(&self.config.service_token)
    }

    /// What `user` may do with a repository of the platform's registry: stacks are
    /// readable by everyone and written by admins; an app's repository belongs to whoever
    /// may access the app; admins may use any.
    async fn registry_grant(&self, user: &UserRow, repository: Option<&str>) -> RegistryGrant {
        match repository {
            None => RegistryGrant { pull: true, push: false },
            Some(_) if user.admin => RegistryGrant { pull: true, push: true },
            Some(repo) if repo.starts_with("stacks/") => RegistryGrant { pull: true, push: false },
            Some(repo) => {
                let allowed = self.app_for(user, repo).await.is_ok();
                RegistryGrant { pull: allowed, push: allowed }
            }
        }
    }

    /// Checks that `user` may run or build from `image`: from the platform's registry, a
    /// repository they may pull; from another registry, only one the operator allows.
    /// Returns the image as the engine should pull it (the platform's registry under the
    /// name the engine knows it by).
    pub(crate) async fn usable_image(&self, user: &UserRow, image: &str) -> Result<ImageRef, ApiError> {
        let mut image = ImageRef::parse(image).map_err(ApiError::BadRequest)?;
        if image.is_on(&self.config.registry_host) {
            if !self.registry_grant(user, Some(&image.repository)).await.pull {
                return Err(ApiError::Forbidden(format!(
                    "you may not use `{}`: it belongs to an app you cannot access; use your own apps' images or a stack",
                    image.repository
                )));
            }
            image.registry.clone_from(&self.config.registry_host);
        } else if !skiff_api::image::registry_allowed(&image.registry, &self.config.allowed_registries) {
            return Err(ApiError::Forbidden(format!(
                "images from {} are not allowed here: use this platform's registry ({}), or ask the operator to \
                 allow {} in SKIFF_ALLOWED_REGISTRIES",
                image.registry, self.config.registry_host, image.registry
            )));
        }
        Ok(image)
    }

    async fn app_view(&self, app: &AppRow) -> Result<App, ApiError> {
        let release = self.running_release(app).await?.map(|r| r.version);
        Ok(App {
            name: app.name.clone(),
            owner: app.owner.clone(),
            stack: app.stack.clone(),
            url: self.config.app_url(app.name.as_str()),
            git_url: self.config.git_url(app.name.as_str()),
            created_at: app.created_at.clone(),
            release,
            maintenance: app.maintenance,
        })
    }
}

/// The API as an axum router.
pub fn router(controller: Arc<Controller>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(|| async { "ok" }))
        .route("/v2/openapi.json", get(|| async { Json(crate::openapi::document()) }))
        .route("/v2/auth/register", post(register))
        .route("/v2/auth/login", post(login))
        .route("/v2/auth/whoami", get(whoami))
        .route("/v2/auth/token", delete(revoke_token))
        .route("/v2/keys", get(keys_list).post(keys_add))
        .route("/v2/keys/{id}", delete(keys_remove))
        .route("/v2/apps", get(apps_list).post(apps_create))
        .route("/v2/apps/{app}", get(app_info).delete(app_destroy))
        .route("/v2/apps/{app}/releases", get(releases_list))
        .route("/v2/apps/{app}/releases/rollback", post(rollback))
        .route("/v2/apps/{app}/releases/{version}", get(release_info))
        .route("/v2/apps/{app}/config", get(config_get).patch(config_change))
        .route("/v2/apps/{app}/formation", get(formation_get))
        .route("/v2/apps/{app}/scale", post(scale))
        .route("/v2/apps/{app}/ps", get(ps_list))
        .route("/v2/apps/{app}/ps/restart", post(ps_restart))
        .route("/v2/apps/{app}/run", post(run_one_off))
        .route("/v2/apps/{app}/perms", get(perms_list).post(perms_add))
        .route("/v2/apps/{app}/perms/{username}", delete(perms_remove))
        .route("/v2/apps/{app}/transfer", post(app_transfer))
        .route("/v2/apps/{app}/domains", get(domains_list).post(domains_add))
        .route("/v2/apps/{app}/domains/{domain}", delete(domains_remove))
        .route("/v2/apps/{app}/maintenance", post(maintenance))
        .route("/v2/apps/{app}/limits", get(limits_get).patch(limits_change))
        .route("/v2/apps/{app}/healthchecks", get(healthchecks_get).patch(healthchecks_change))
        .route("/v2/apps/{app}/builds", get(builds_list))
        .route("/v2/apps/{app}/builds/{id}", get(build_info))
        .route("/v2/apps/{app}/deploy", post(deploy_image))
        .route("/v2/apps/{app}/logs", get(app_logs))
        .route("/v2/stacks", get(stacks_list))
        .route("/v2/admin/gc", post(admin_gc))
        .route("/v2/stacks/{name}", post(stacks_import).layer(DefaultBodyLimit::max(MAX_STACK_BYTES)))
        .route("/v2/routes", get(routes_feed))
        .route("/v2/hooks/keys/{fingerprint}", get(hook_key_owner))
        .route("/v2/hooks/apps/{app}/access/{username}", get(hook_push_grant))
        .route("/v2/hooks/builds", post(hook_build))
        .route("/v2/hooks/apps/{app}/releases/{version}", get(hook_release))
        .route("/v2/hooks/registry/access", post(hook_registry_access))
        .route("/v2/hooks/images/use", post(hook_image_use))
        .merge(crate::drains::routes())
        .merge(crate::certs::routes())
        .merge(crate::events::routes())
        .merge(crate::access::routes())
        .with_state(controller)
}

/// Serves until `shutdown` is cancelled; in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    controller: Arc<Controller>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    // Requests carry the client's address, for counting failed sign-ins.
    let service = router(controller).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

async fn issue_session(controller: &Controller, user: &UserRow) -> Result<Json<Session>, ApiError> {
    let token = new_token();
    controller.db.add_token(user.id, &token_hash(&token)).await?;
    Ok(Json(Session { username: user.username.clone(), admin: user.admin, token }))
}

/// Creates an account. The first one is always possible (it becomes the admin); after it,
/// the registration mode decides: anyone, admins only (for others), or nobody.
async fn register(
    State(c): State<Arc<Controller>>,
    MaybeUser(requester): MaybeUser,
    Json(body): Json<Credentials>,
) -> Result<impl IntoResponse, ApiError> {
    if c.db.user_count().await? > 0 {
        let by_admin = requester.as_ref().is_some_and(|u| u.admin);
        match c.config.registration {
            Registration::Open => {}
            Registration::AdminOnly if by_admin => {}
            Registration::AdminOnly => {
                return Err(ApiError::Forbidden(
                    "registration is for admins only here; ask an admin to run `skiff auth:register`".into(),
                ));
            }
            Registration::Disabled => return Err(ApiError::Forbidden("registration is disabled".into())),
        }
    }
    if body.password.len() < 8 {
        return Err(ApiError::BadRequest("password too short; use at least 8 characters".into()));
    }
    let hash = hash_password(&body.password)?;
    let user = c.db.create_user(&body.username, &hash).await?.ok_or_else(|| {
        ApiError::Conflict(format!("user `{}` already exists; log in with `skiff auth:login`", body.username))
    })?;
    let role = if user.admin { "admin" } else { "user" };
    let message = match &requester {
        Some(by) => format!("{} created {role} {}", by.username, user.username),
        None => format!("{} registered as {role}", user.username),
    };
    c.events.emit_platform(&message).await;
    Ok((StatusCode::CREATED, issue_session(&c, &user).await?))
}

/// Revokes the token the request carries (`skiff auth:logout`).
async fn revoke_token(
    State(c): State<Arc<Controller>>,
    headers: axum::http::HeaderMap,
) -> Result<StatusCode, ApiError> {
    let token = headers
        .get(axum::http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .ok_or(ApiError::Unauthenticated)?;
    if c.db.remove_token(&token_hash(token.trim())).await? {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::TokenRejected)
    }
}

async fn login(
    State(c): State<Arc<Controller>>,
    ClientAddress(address): ClientAddress,
    Json(body): Json<Credentials>,
) -> Result<Json<Session>, ApiError> {
    let attempt = Attempt { username: Some(body.username.as_str()), address };
    c.logins.check(attempt, Instant::now()).map_err(ApiError::TooManyAttempts)?;
    let user = c.db.user_by_name(&body.username).await?;
    match user {
        Some(user) if verify_password(&body.password, &user.password_hash) => issue_session(&c, &user).await,
        _ => {
            c.logins.failed(attempt, Instant::now());
            Err(ApiError::Forbidden("wrong user name or password".into()))
        }
    }
}

async fn whoami(CurrentUser(user): CurrentUser) -> Json<User> {
    Json(User { username: user.username, admin: user.admin })
}

async fn keys_list(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<Key>>, ApiError> {
    let keys = c.db.keys(user.id).await?;
    Ok(Json(
        keys.into_iter()
            .map(|k| Key { id: k.id, fingerprint: k.fingerprint, comment: k.comment, created_at: k.created_at })
            .collect(),
    ))
}

async fn keys_add(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Json(body): Json<KeyCreate>,
) -> Result<impl IntoResponse, ApiError> {
    let key = keys::parse(&body.public_key).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let row =
        c.db.add_key(user.id, &key.fingerprint, &key.line, &key.comment)
            .await?
            .ok_or_else(|| ApiError::Conflict(format!("key {} is already registered", key.fingerprint)))?;
    c.events.emit_platform(&format!("{} added SSH key {}", user.username, row.fingerprint)).await;
    let key = Key { id: row.id, fingerprint: row.fingerprint, comment: row.comment, created_at: row.created_at };
    Ok((StatusCode::CREATED, Json(key)))
}

async fn keys_remove(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    if c.db.remove_key(user.id, id).await? {
        c.events.emit_platform(&format!("{} removed SSH key {id}", user.username)).await;
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(ApiError::NotFound(format!("no key {id}; see `skiff keys`")))
    }
}

async fn apps_list(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<App>>, ApiError> {
    let rows = c.db.apps((!user.admin).then_some(user.id)).await?;
    let mut apps = Vec::with_capacity(rows.len());
    for row in &rows {
        apps.push(c.app_view(row).await?);
    }
    Ok(Json(apps))
}

fn random_app_name() -> AppName {
    const FIRST: &[&str] = &["brisk", "calm", "dusky", "eager", "fancy", "gentle", "hidden", "lucky", "quiet", "sunny"];
    const SECOND: &[&str] = &["harbor", "island", "lagoon", "mast", "oar", "reef", "sail", "tide", "wave", "wharf"];
    let n = rand::random::<u32>();
    let name = format!(
        "{}-{}-{:04}",
        FIRST[n as usize % FIRST.len()],
        SECOND[(n / 16) as usize % SECOND.len()],
        (n / 256) % 10_000
    );
    name.parse().expect("generated names are valid")
}

async fn apps_create(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Json(body): Json<AppCreate>,
) -> Result<impl IntoResponse, ApiError> {
    let name = body.name.unwrap_or_else(random_app_name);
    // A stack named here must exist; the default one may be imported after the app is made
    // (the first push says so if it still is not there).
    if let Some(stack) = &body.stack
        && !c.db.stacks().await?.iter().any(|(known, _)| known == stack)
    {
        return Err(ApiError::BadRequest(format!("there is no stack `{stack}`; see `skiff stacks`")));
    }
    let stack = body.stack.unwrap_or_else(|| c.config.default_stack.clone());
    let app =
        c.db.create_app(&name, &user, &stack)
            .await?
            .ok_or_else(|| ApiError::Conflict(format!("app `{name}` already exists; choose another name")))?;
    c.events.emit(&app.name, &format!("{} created the app on stack {stack}", user.username)).await;
    c.coordination.changed().await;
    Ok((StatusCode::CREATED, Json(c.app_view(&app).await?)))
}

async fn app_info(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
) -> Result<Json<App>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    Ok(Json(c.app_view(&app).await?))
}

async fn app_destroy(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
) -> Result<StatusCode, ApiError> {
    let app = c.app_for(&user, &app).await?;
    c.db.delete_app(app.id).await?;
    c.events.emit(&app.name, &format!("{} destroyed the app", user.username)).await;
    // The trail stays, platform-wide; an app made later with this name starts afresh.
    c.db.retire_events(&app.name).await?;
    // The app's images go at the next collection.
    if let Err(error) = c.registry.forget(app.name.as_str()).await {
        tracing::warn!(%error, app = %app.name, "controller.destroy: the registry kept the repository");
    }
    c.coordination.changed().await;
    Ok(StatusCode::NO_CONTENT)
}

/// `?limit=N`: the newest N only.
async fn releases_list(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Release>>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    let limit = match query.get("limit") {
        Some(limit) => {
            Some(limit.parse().map_err(|_| ApiError::BadRequest(format!("`{limit}` is not a number of releases")))?)
        }
        None => None,
    };
    Ok(Json(c.db.releases(&app, limit).await?))
}

/// One release, by `3` or `v3`.
async fn release_info(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path((app, version)): Path<(String, String)>,
) -> Result<Json<Release>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    let not_found = || ApiError::NotFound(format!("{} has no release {version}; see `skiff releases`", app.name));
    let number: u32 = version.trim_start_matches('v').parse().map_err(|_| not_found())?;
    Ok(Json(c.db.release(&app, number).await?.ok_or_else(not_found)?))
}

/// Proxies to the logger: a JSON array of recent lines, or (with `follow=true`) a stream
/// of JSON lines that ends when the client goes or the controller shuts down.
async fn app_logs(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, ApiError> {
    let app = c.app_for(&user, &app).await?;
    let params: Vec<(&str, &String)> =
        ["n", "process", "source", "follow"].into_iter().filter_map(|k| Some((k, query.get(k)?))).collect();
    let logs = c.logger_request(reqwest::Method::GET, &format!("/v2/apps/{}/logs", app.name));
    let response = logs.query(&params).send().await.map_err(|e| {
        tracing::warn!(error = %e, "controller.logs.logger_unreachable");
        ApiError::Unavailable("the logger is not reachable; try again shortly".into())
    })?;
    if response.status() == reqwest::StatusCode::BAD_REQUEST {
        return Err(ApiError::BadRequest("invalid log filter; --source is one of app, router, platform".into()));
    }
    if !response.status().is_success() {
        return Err(ApiError::Unavailable(format!("the logger answered {}; try again shortly", response.status())));
    }
    let content_type = response
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let shutdown = c.shutdown.clone();
    let body = futures_util::StreamExt::take_until(response.bytes_stream(), async move { shutdown.cancelled().await });
    Ok(([(axum::http::header::CONTENT_TYPE, content_type)], axum::body::Body::from_stream(body)).into_response())
}

/// `POST /v2/admin/gc?dry_run=true`: applies image retention and collects garbage now;
/// a dry run changes nothing and reports what a collection would delete.
async fn admin_gc(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<serde_json::Value>, ApiError> {
    if !user.admin {
        return Err(ApiError::Forbidden("only admins collect garbage".into()));
    }
    let dry_run = query.get("dry_run").is_some_and(|v| v == "true" || v == "1");
    let grace = query.get("grace_secs").and_then(|g| g.parse().ok());
    let what =
        if dry_run { "listed what registry garbage collection would delete" } else { "collected registry garbage" };
    c.events.emit_platform(&format!("{} {what}", user.username)).await;
    crate::retention::pass(&c.db, &c.registry, c.config.release_retention, dry_run, grace)
        .await
        .map(Json)
        .map_err(|e| ApiError::Unavailable(format!("garbage collection failed: {e}")))
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
    c.events.emit_platform(&format!("{} imported stack {name} ({image})", user.username)).await;
    Ok((StatusCode::CREATED, Json(Stack { name, image })))
}

async fn routes_feed(
    State(c): State<Arc<Controller>>,
    _: Service,
    Query(query): Query<HashMap<String, String>>,
) -> Json<RouteTable> {
    let after = query.get("after").and_then(|v| v.parse().ok()).unwrap_or(0);
    Json(c.routes.next(after, ROUTE_POLL).await)
}

async fn hook_key_owner(
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

async fn hook_push_grant(
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

async fn hook_build(
    State(c): State<Arc<Controller>>,
    _: Service,
    Json(build): Json<BuildCreate>,
) -> Result<impl IntoResponse, ApiError> {
    let user = c.db.user_by_name(&build.username).await?.ok_or_else(|| ApiError::NotFound("unknown user".into()))?;
    let app = c.app_for(&user, build.app.as_str()).await?;
    let recorded = record_build(&c, &app, &build).await?;
    Ok((StatusCode::CREATED, Json(recorded)))
}

/// One release, for the builder to follow its rollout.
async fn hook_release(
    State(c): State<Arc<Controller>>,
    _: Service,
    Path((app, version)): Path<(String, u32)>,
) -> Result<Json<Release>, ApiError> {
    let not_found = || ApiError::NotFound(format!("no release v{version} of {app}"));
    let name: AppName = app.parse().map_err(|_| not_found())?;
    let app = c.db.app(&name).await?.ok_or_else(not_found)?;
    c.db.release(&app, version).await?.map(Json).ok_or_else(not_found)
}

/// Records a build and, when it succeeded, makes it the app's next release.
async fn record_build(c: &Controller, app: &AppRow, build: &BuildCreate) -> Result<BuildRecorded, ApiError> {
    let recorded = c.db.create_build(app, build).await?;
    let outcome = if build.status == BuildStatus::Succeeded { "succeeded" } else { "failed" };
    c.events.emit(&app.name, &format!("Build {} {outcome} for {}", recorded.id, build.username)).await;
    let release = match (&build.status, &build.image) {
        (BuildStatus::Succeeded, Some(image)) => {
            let what = match &build.git_sha {
                Some(sha) => sha.get(..7).unwrap_or(sha).to_owned(),
                None => image.clone(),
            };
            let summary = format!("{} deployed {what}", build.username);
            let release =
                c.db.create_release(
                    app,
                    image,
                    Some(recorded.id),
                    build.git_sha.as_deref(),
                    &build.procfile,
                    &c.db.config(app).await?,
                    &build.username,
                    &summary,
                )
                .await?;
            c.events.emit(&app.name, &format!("Release v{} created: {}", release.version, release.summary)).await;
            c.coordination.changed().await;
            Some(release)
        }
        _ => None,
    };
    Ok(BuildRecorded { build: recorded, release })
}

async fn builds_list(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
) -> Result<Json<Vec<Build>>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    Ok(Json(c.db.builds(&app).await?))
}

async fn build_info(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path((app, id)): Path<(String, i64)>,
) -> Result<Json<Build>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    let build = c.db.build(&app, id).await?;
    build.map(Json).ok_or_else(|| ApiError::NotFound(format!("no build {id} for {}; see `skiff builds`", app.name)))
}

async fn deploy_image(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Json(deploy): Json<DeployImage>,
) -> Result<impl IntoResponse, ApiError> {
    let app = c.app_for(&user, &app).await?;
    let image = c.usable_image(&user, &deploy.image).await?.to_string();
    let build = BuildCreate {
        app: app.name.clone(),
        username: user.username.clone(),
        kind: BuildKind::Image,
        status: BuildStatus::Succeeded,
        image: Some(image),
        git_sha: None,
        procfile: [("web".parse().expect("valid process type"), String::new())].into(),
        duration_ms: 0,
        log: String::new(),
    };
    Ok((StatusCode::CREATED, Json(record_build(&c, &app, &build).await?)))
}

/// Config names follow the shell's rules; values and the whole config are bounded.
fn check_config(config: &std::collections::BTreeMap<String, String>) -> Result<(), ApiError> {
    const MAX_VALUE: usize = 32 * 1024;
    const MAX_TOTAL: usize = 256 * 1024;
    for (name, value) in config {
        let valid = name.len() <= 256
            && name.chars().next().is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
        if !valid {
            return Err(ApiError::BadRequest(format!(
                "`{}` is not a valid config name; use letters, digits and `_`, not starting with a digit",
                name.chars().take(64).collect::<String>()
            )));
        }
        if name == "PORT" {
            return Err(ApiError::BadRequest("PORT is set by Skiff; listen on $PORT instead".into()));
        }
        if value.len() > MAX_VALUE || value.contains('\0') {
            return Err(ApiError::BadRequest(format!("the value of {name} is longer than 32 KiB or holds a NUL byte")));
        }
    }
    if config.iter().map(|(k, v)| k.len() + v.len()).sum::<usize>() > MAX_TOTAL {
        return Err(ApiError::BadRequest("the config would exceed 256 KiB".into()));
    }
    Ok(())
}

async fn config_get(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
) -> Result<Json<std::collections::BTreeMap<String, String>>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    Ok(Json(c.db.config(&app).await?))
}

/// Sets (`Some`) and unsets (`None`) config keys.
fn apply_change(config: &mut std::collections::BTreeMap<String, String>, change: &ConfigChange) {
    for (name, value) in change {
        match value {
            Some(value) => config.insert(name.clone(), value.clone()),
            None => config.remove(name),
        };
    }
}

/// Sets and unsets config keys at once; with a release to base it on, the change makes a
/// new release (the same build with the new config).
async fn config_change(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Json(change): Json<ConfigChange>,
) -> Result<Json<ConfigChanged>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    if change.is_empty() {
        return Err(ApiError::BadRequest("no config keys given; use `skiff config:set KEY=VALUE`".into()));
    }
    let set: Vec<&str> = change.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k.as_str()).collect();
    let unset: Vec<&str> = change.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k.as_str()).collect();
    let mut summary = user.username.to_string();
    if !set.is_empty() {
        summary.push_str(&format!(" set {}", set.join(", ")));
    }
    if !unset.is_empty() {
        summary.push_str(&format!(" unset {}", unset.join(", ")));
    }
    let base = c.running_release(&app).await?;
    let check = |config: &std::collections::BTreeMap<String, String>| check_config(config).map_err(|e| e.to_string());
    let (config, release) = c
        .db
        .change_config(&app, |config| apply_change(config, &change), check, base.as_ref(), &user.username, &summary)
        .await?
        .map_err(ApiError::BadRequest)?;
    if let Some(release) = &release {
        c.events.emit(&app.name, &format!("Release v{} created: {}", release.version, release.summary)).await;
        c.coordination.changed().await;
    }
    Ok(Json(ConfigChanged { config, release }))
}

/// A new release with an earlier release's build and config.
async fn rollback(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Json(body): Json<Rollback>,
) -> Result<impl IntoResponse, ApiError> {
    let app = c.app_for(&user, &app).await?;
    let releases = c.db.releases(&app, None).await?;
    let current = c.running_release(&app).await?.map_or(0, |r| r.version);
    if body.version == Some(current) {
        return Err(ApiError::Conflict(format!(
            "v{current} is already the current release of {}; name an earlier one (see `skiff releases`)",
            app.name
        )));
    }
    // Releases are listed newest first: by default, the newest good one before the current.
    let target = releases
        .iter()
        .filter(|r| r.version != current && r.state != ReleaseState::Failed)
        .find(|r| body.version.map_or(r.version < current, |v| r.version == v))
        .ok_or_else(|| {
            let which = body.version.map_or_else(|| "an earlier release".to_owned(), |v| format!("release v{v}"));
            ApiError::NotFound(format!("{} has no {which} to roll back to; see `skiff releases`", app.name))
        })?;
    let summary = format!("{} rolled back to v{}", user.username, target.version);
    // The config and the release change together, as for a config change.
    let (_, release) =
        c.db.change_config(
            &app,
            |config| config.clone_from(&target.config),
            |_| Ok(()),
            Some(target),
            &user.username,
            &summary,
        )
        .await?
        .map_err(ApiError::BadRequest)?;
    let release = release.ok_or_else(|| ApiError::Internal("a rollback made no release".into()))?;
    c.events.emit(&app.name, &format!("Release v{} created: {}", release.version, release.summary)).await;
    c.coordination.changed().await;
    Ok((StatusCode::CREATED, Json(release)))
}

async fn formation_of(c: &Controller, app: &AppRow) -> Result<Vec<Formation>, ApiError> {
    let rows = c.db.formation(app.id).await?;
    let procfile = match c.running_release(app).await? {
        Some(release) => release.procfile,
        None => Default::default(),
    };
    Ok(procfile
        .into_iter()
        .map(|(process, command)| {
            let quantity = rows
                .iter()
                .find(|r| r.process == process)
                .map_or_else(|| default_quantity(process.as_str()), |r| r.quantity);
            Formation { process, quantity, command }
        })
        .collect())
}

async fn formation_get(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
) -> Result<Json<Vec<Formation>>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    Ok(Json(formation_of(&c, &app).await?))
}

/// The most containers one process type may run.
const MAX_SCALE: u32 = 100;

async fn scale(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Json(body): Json<Scale>,
) -> Result<Json<Vec<Formation>>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    let release = c.current_release(&app).await?;
    for (process, quantity) in &body {
        if !release.procfile.contains_key(process) {
            let known: Vec<&str> = release.procfile.keys().map(|p| p.as_str()).collect();
            return Err(ApiError::BadRequest(format!(
                "v{} has no `{process}` process type; it has: {}",
                release.version,
                known.join(", ")
            )));
        }
        if *quantity > MAX_SCALE {
            return Err(ApiError::BadRequest(format!("at most {MAX_SCALE} containers per process type")));
        }
    }
    for (process, quantity) in &body {
        c.db.scale(&app, process, *quantity).await?;
    }
    let scaled: Vec<String> = body.iter().map(|(p, q)| format!("{p}={q}")).collect();
    c.events.emit(&app.name, &format!("Scaled to {} by {}", scaled.join(" "), user.username)).await;
    c.coordination.changed().await;
    Ok(Json(formation_of(&c, &app).await?))
}

async fn ps_list(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
) -> Result<Json<Vec<Process>>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    let containers =
        c.runtime.list().await.map_err(|e| ApiError::Unavailable(format!("cannot list containers: {e}")))?;
    let mut processes: Vec<Process> = containers
        .into_iter()
        .filter(|container| container.app == app.name)
        .map(|container| Process {
            id: container.id.chars().take(12).collect(),
            process: container.process,
            release: container.release,
            state: if container.running { "running" } else { "exited" }.into(),
            started_at: time::OffsetDateTime::from_unix_timestamp(container.created)
                .ok()
                .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
            crash: None,
        })
        .collect();
    // Process types of the running release that crash and back off have no container
    // most of the time: they are listed with their last crash.
    let crashes = c.db.crashes(&app).await?;
    if !crashes.is_empty() {
        let running = c.running_release(&app).await?.map(|r| r.version);
        let formation = formation_of(&c, &app).await?;
        for (process, release, crash) in crashes {
            let scaled_up = formation.iter().any(|f| f.process.as_str() == process && f.quantity > 0);
            if Some(release) == running && scaled_up {
                let state = "crashed".into();
                processes.push(Process {
                    id: "-".into(),
                    process,
                    release,
                    state,
                    started_at: None,
                    crash: Some(crash),
                });
            }
        }
    }
    processes.sort_by(|a, b| a.process.cmp(&b.process).then_with(|| a.started_at.cmp(&b.started_at)));
    Ok(Json(processes))
}

/// Replaces an app's containers (of one type, or all) without downtime: new ones start,
/// and the old ones go once the new ones are ready.
async fn ps_restart(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Json(body): Json<Restart>,
) -> Result<StatusCode, ApiError> {
    let app = c.app_for(&user, &app).await?;
    if let Some(id) = &body.container {
        return restart_container(&c, &user, &app, id).await;
    }
    let release = c.current_release(&app).await?;
    let processes: Vec<_> = match body.process {
        Some(process) if release.procfile.contains_key(&process) => vec![process],
        Some(process) => {
            return Err(ApiError::BadRequest(format!("v{} has no `{process}` process type", release.version)));
        }
        None => release.procfile.keys().cloned().collect(),
    };
    let with_defaults: Vec<_> = processes
        .into_iter()
        .map(|p| {
            let quantity = default_quantity(p.as_str());
            (p, quantity)
        })
        .collect();
    c.db.restart(&app, &with_defaults).await?;
    let restarted: Vec<&str> = with_defaults.iter().map(|(p, _)| p.as_str()).collect();
    c.events.emit(&app.name, &format!("Restarting {} by {}", restarted.join(", "), user.username)).await;
    c.coordination.changed().await;
    Ok(StatusCode::ACCEPTED)
}

/// Stops one of an app's containers; the scheduler replaces it.
async fn restart_container(c: &Controller, user: &UserRow, app: &AppRow, id: &str) -> Result<StatusCode, ApiError> {
    let missing = || ApiError::NotFound(format!("{} has no container {id}; see `skiff ps`", app.name));
    if id.len() < 4 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(missing());
    }
    let containers =
        c.runtime.list().await.map_err(|e| ApiError::Unavailable(format!("cannot list containers: {e}")))?;
    let mut matching = containers.iter().filter(|k| k.app == app.name && !k.one_off && k.id.starts_with(id));
    let (Some(container), None) = (matching.next(), matching.next()) else { return Err(missing()) };
    c.runtime.remove(&container.id).await.map_err(|e| ApiError::Unavailable(format!("cannot stop {id}: {e}")))?;
    let short: String = container.id.chars().take(12).collect();
    c.events
        .emit(&app.name, &format!("Restarting container {short} ({}) by {}", container.process, user.username))
        .await;
    c.coordination.changed().await;
    Ok(StatusCode::ACCEPTED)
}

async fn perms_list(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
) -> Result<Json<Vec<Username>>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    Ok(Json(c.db.perms(app.id).await?))
}

async fn user_named(c: &Controller, username: &Username) -> Result<UserRow, ApiError> {
    c.db.user_by_name(username).await?.ok_or_else(|| ApiError::NotFound(format!("no user `{username}`")))
}

async fn perms_add(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Json(body): Json<UserRef>,
) -> Result<StatusCode, ApiError> {
    let app = c.owned_app(&user, &app).await?;
    let other = user_named(&c, &body.username).await?;
    if other.id == app.owner_id {
        return Err(ApiError::Conflict(format!("{} owns {}", other.username, app.name)));
    }
    if !c.db.add_perm(app.id, other.id).await? {
        return Err(ApiError::Conflict(format!("{} already collaborates on {}", other.username, app.name)));
    }
    c.events.emit(&app.name, &format!("{} added {} as a collaborator", user.username, other.username)).await;
    Ok(StatusCode::CREATED)
}

async fn perms_remove(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path((app, username)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = c.owned_app(&user, &app).await?;
    let username: Username = username.parse().map_err(|e: skiff_api::NameError| ApiError::BadRequest(e.to_string()))?;
    let other = user_named(&c, &username).await?;
    if !c.db.remove_perm(app.id, other.id).await? {
        return Err(ApiError::NotFound(format!("{} does not collaborate on {}", other.username, app.name)));
    }
    c.events.emit(&app.name, &format!("{} removed collaborator {}", user.username, other.username)).await;
    Ok(StatusCode::NO_CONTENT)
}

async fn app_transfer(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Json(body): Json<UserRef>,
) -> Result<Json<App>, ApiError> {
    let app = c.owned_app(&user, &app).await?;
    let other = user_named(&c, &body.username).await?;
    c.db.transfer(app.id, other.id).await?;
    c.events.emit(&app.name, &format!("{} transferred the app to {}", user.username, other.username)).await;
    let app = c.db.app(&app.name).await?.ok_or_else(|| ApiError::Internal("transferred app vanished".into()))?;
    Ok(Json(c.app_view(&app).await?))
}

/// A custom domain: lowercase labels of letters, digits and dashes, at least two, an
/// optional leading `*.` for every name under it, and not under the platform's domain.
fn check_domain(domain: &str, platform: &str) -> Result<String, ApiError> {
    let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
    let name = domain.strip_prefix("*.").unwrap_or(&domain);
    if name == platform || name.ends_with(&format!(".{platform}")) {
        return Err(ApiError::BadRequest(format!(
            "names under {platform} belong to apps by name; pick another domain"
        )));
    }
    let labels: Vec<&str> = name.split('.').collect();
    let valid = name.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| {
            !l.is_empty()
                && l.len() <= 63
                && !l.starts_with('-')
                && !l.ends_with('-')
                && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        });
    if !valid {
        return Err(ApiError::BadRequest(format!(
            "`{domain}` is not a domain name like www.example.com or *.example.com"
        )));
    }
    // No top-level domain is numeric: all-number labels are an IP address.
    if labels.last().is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit())) {
        return Err(ApiError::BadRequest(format!(
            "`{domain}` is an IP address; custom domains are names like www.example.com"
        )));
    }
    Ok(domain)
}

/// Whether two domains, exact or wildcard, can both match one host name (`*.example.com`
/// matches every name under example.com).
fn overlaps(a: &str, b: &str) -> bool {
    let under = |name: &str, wildcard: &str| name.ends_with(&wildcard[1..]);
    match (a.strip_prefix('*'), b.strip_prefix('*')) {
        (None, None) => a == b,
        (Some(_), None) => under(b, a),
        (None, Some(_)) => under(a, b),
        (Some(_), Some(_)) => under(a, b) || under(b, a),
    }
}

async fn domains_list(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
) -> Result<Json<Vec<Domain>>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    let domains = c.db.domains(Some(app.id)).await?;
    Ok(Json(domains.into_iter().map(|(_, domain, created_at)| Domain { domain, created_at }).collect()))
}

async fn domains_add(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Json(body): Json<DomainCreate>,
) -> Result<StatusCode, ApiError> {
    let app = c.app_for(&user, &app).await?;
    let domain = check_domain(&body.domain, &c.config.domain)?;
    // A name, or a wildcard over names, that an app of another owner holds is theirs.
    let owners: HashMap<i64, i64> = c.db.apps(None).await?.into_iter().map(|a| (a.id, a.owner_id)).collect();
    let taken = c.db.domains(None).await?.into_iter().find(|(app_id, held, _)| {
        owners.get(app_id).is_some_and(|owner| *owner != app.owner_id) && overlaps(&domain, held)
    });
    if let Some((_, held, _)) = taken {
        return Err(ApiError::Conflict(format!("{domain} is already in use by another app ({held})")));
    }
    if !c.db.add_domain(app.id, &domain).await? {
        return Err(ApiError::Conflict(format!("{domain} is already in use")));
    }
    c.events.emit(&app.name, &format!("{} added domain {domain}", user.username)).await;
    c.coordination.changed().await;
    Ok(StatusCode::CREATED)
}

async fn domains_remove(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path((app, domain)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    let app = c.app_for(&user, &app).await?;
    let domain = domain.to_ascii_lowercase();
    if !c.db.remove_domain(app.id, &domain).await? {
        return Err(ApiError::NotFound(format!("{} has no domain {domain}; see `skiff domains`", app.name)));
    }
    c.events.emit(&app.name, &format!("{} removed domain {domain}", user.username)).await;
    c.coordination.changed().await;
    Ok(StatusCode::NO_CONTENT)
}

async fn maintenance(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Json(body): Json<Maintenance>,
) -> Result<Json<App>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    c.db.set_maintenance(app.id, body.enabled).await?;
    let state = if body.enabled { "on" } else { "off" };
    c.events.emit(&app.name, &format!("{} turned maintenance mode {state}", user.username)).await;
    c.coordination.changed().await;
    let app = c.db.app(&app.name).await?.ok_or_else(|| ApiError::Internal("app vanished".into()))?;
    Ok(Json(c.app_view(&app).await?))
}

/// Applies a per-process settings change after `check`ing each new value, and replaces
/// the affected containers.
async fn change_settings<T: serde::Serialize + serde::de::DeserializeOwned>(
    c: &Controller,
    user: &UserRow,
    app: &AppRow,
    kind: SettingsKind,
    change: SettingsChange<T>,
    check: impl Fn(&T) -> Result<(), ApiError>,
) -> Result<BTreeMap<ProcessType, T>, ApiError> {
    let release = c.current_release(app).await?;
    let mut settings: BTreeMap<ProcessType, T> = c.db.settings(app.id, kind).await?;
    // Only the process types whose setting changed get new containers.
    let processes: Vec<(ProcessType, u32)> = change.keys().map(|p| (p.clone(), default_quantity(p.as_str()))).collect();
    for (process, value) in change {
        if !release.procfile.contains_key(&process) {
            return Err(ApiError::BadRequest(format!("v{} has no `{process}` process type", release.version)));
        }
        match value {
            Some(value) => {
                check(&value)?;
                settings.insert(process, value);
            }
            None => {
                settings.remove(&process);
            }
        }
    }
    c.db.set_settings(app.id, kind, &settings).await?;
    c.db.restart(app, &processes).await?;
    let what = if kind == SettingsKind::Limits { "limits" } else { "health checks" };
    let of: Vec<&str> = processes.iter().map(|(p, _)| p.as_str()).collect();
    let message = format!("{} changed {what} of {}; replacing those containers", user.username, of.join(", "));
    c.events.emit(&app.name, &message).await;
    c.coordination.changed().await;
    Ok(settings)
}

async fn limits_get(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
) -> Result<Json<BTreeMap<ProcessType, Limits>>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    Ok(Json(c.db.settings(app.id, SettingsKind::Limits).await?))
}

async fn limits_change(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Json(change): Json<SettingsChange<Limits>>,
) -> Result<Json<BTreeMap<ProcessType, Limits>>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    let check = |limits: &Limits| {
        let most = c.config.max_memory_mb;
        if limits.memory_mb.is_some_and(|mb| !(4..=most).contains(&mb)) {
            return Err(ApiError::BadRequest(format!(
                "memory must be between 4 MiB and {most} MiB (this platform's most)"
            )));
        }
        if limits.cpu.is_some_and(|cpu| !(0.01..=256.0).contains(&cpu)) {
            return Err(ApiError::BadRequest("cpu must be between 0.01 and 256 cores".into()));
        }
        Ok(())
    };
    Ok(Json(change_settings(&c, &user, &app, SettingsKind::Limits, change, check).await?))
}

async fn healthchecks_get(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
) -> Result<Json<BTreeMap<ProcessType, Healthcheck>>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    Ok(Json(c.db.settings(app.id, SettingsKind::Healthchecks).await?))
}

async fn healthchecks_change(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Json(change): Json<SettingsChange<Healthcheck>>,
) -> Result<Json<BTreeMap<ProcessType, Healthcheck>>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    let check = |health: &Healthcheck| {
        if let Some(path) = &health.path
            && (!path.starts_with('/') || path.len() > 1024 || path.bytes().any(|b| b.is_ascii_control() || b == b' '))
        {
            return Err(ApiError::BadRequest(format!("`{path}` is not a request path like /health")));
        }
        if health.timeout_secs.is_some_and(|t| !(1..=3600).contains(&t)) {
            return Err(ApiError::BadRequest("the timeout must be between 1 and 3600 seconds".into()));
        }
        Ok(())
    };
    Ok(Json(change_settings(&c, &user, &app, SettingsKind::Healthchecks, change, check).await?))
}

/// The longest a one-off command may run.
const MAX_RUN: Duration = Duration::from_secs(24 * 3600);

/// Runs a command in a new container of the current release; streams its output as JSON
/// lines ending with its exit status. The container goes when the command ends, when the
/// timeout passes, or when the client hangs up.
async fn run_one_off(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Json(body): Json<RunRequest>,
) -> Result<Response, ApiError> {
    let app = c.app_for(&user, &app).await?;
    let release = c.current_release(&app).await?;
    if body.command.trim().is_empty() {
        return Err(ApiError::BadRequest("no command given; use `skiff run -- COMMAND`".into()));
    }
    if body.command.len() > MAX_RUN_COMMAND {
        return Err(ApiError::BadRequest(format!(
            "the command is {} bytes, over the limit of {MAX_RUN_COMMAND}; put a long script in the app and run that",
            body.command.len()
        )));
    }
    let timeout = Duration::from_secs(body.timeout_secs.unwrap_or(3600)).clamp(Duration::from_secs(1), MAX_RUN);
    let spec = StartSpec {
        app: app.name.clone(),
        release: release.version,
        generation: 0,
        process: "run".into(),
        image: pull_reference(&c.config.registry_host, &release.image),
        command: body.command.clone(),
        env: release_env(&release, "run"),
        limits: c.config.container_limits(Limits::default()),
    };
    c.events.emit(&app.name, &format!("Running `{}` for {}", body.command, user.username)).await;
    let (sender, receiver) = tokio::sync::mpsc::channel(64);
    let runtime = c.runtime.clone();
    c.one_offs.spawn(async move {
        let status = match runtime.run_one_off(&spec, timeout, sender.clone()).await {
            Ok(status) => status,
            Err(error) => {
                let _ = sender.send(RunOutput::Err(format!("skiff: the command could not run: {error}\n"))).await;
                1
            }
        };
        let _ = sender.send(RunOutput::Exit(status)).await;
    });
    let lines = futures_util::stream::unfold(receiver, |mut receiver| async move {
        let output = receiver.recv().await?;
        let mut line = serde_json::to_vec(&output).expect("run output serializes");
        line.push(b'\n');
        Some((Ok::<_, std::io::Error>(line), receiver))
    });
    let shutdown = c.shutdown.clone();
    let body = futures_util::StreamExt::take_until(lines, async move { shutdown.cancelled().await });
    Ok(([(axum::http::header::CONTENT_TYPE, "application/x-ndjson")], axum::body::Body::from_stream(body))
        .into_response())
}

/// Registry credentials are a user's API token (the password field of `docker login`), or
/// the user's password. Stacks are readable by every user and written by admins; an app's
/// repository belongs to whoever may access the app; admins may use any repository.
async fn hook_registry_access(
    State(c): State<Arc<Controller>>,
    _: Service,
    Json(access): Json<RegistryAccess>,
) -> Result<Json<RegistryGrant>, ApiError> {
    let attempt = Attempt {
        username: access.username.as_deref(),
        address: access.client.as_deref().and_then(|a| a.parse().ok()),
    };
    c.logins.check(attempt, Instant::now()).map_err(ApiError::TooManyAttempts)?;
    let by_token = c.db.user_by_token(&token_hash(&access.secret)).await?;
    let user = match (by_token, &access.username) {
        (Some(user), Some(name)) if user.username.as_str() == name => Some(user),
        (Some(user), None) => Some(user),
        (_, Some(name)) => match name.parse::<Username>() {
            Ok(name) => c.db.user_by_name(&name).await?.filter(|u| verify_password(&access.secret, &u.password_hash)),
            Err(_) => None,
        },
        (None, None) => None,
    };
    let Some(user) = user else {
        c.logins.failed(attempt, Instant::now());
        return Err(ApiError::Unauthenticated);
    };
    Ok(Json(c.registry_grant(&user, access.repository.as_deref()).await))
}

/// Whether the pusher of a build may build from an image (its Dockerfile's `FROM` and
/// `COPY --from`): 204, or 403 with the reason.
async fn hook_image_use(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_are_checked_and_kept_off_the_platform_domain() {
        assert_eq!(check_domain("WWW.Example.com.", "localhost").unwrap(), "www.example.com");
        assert_eq!(check_domain("*.example.com", "localhost").unwrap(), "*.example.com");
        for bad in ["example", "-a.example.com", "a..com", "a b.com", "*.com", "x.localhost", "localhost", "é.com"] {
            assert!(check_domain(bad, "localhost").is_err(), "{bad}");
        }
        for address in ["127.0.0.1", "10.1.2.3", "*.0.0.1", "1.2"] {
            assert!(check_domain(address, "localhost").is_err(), "{address}");
        }
        assert!(check_domain("*.localhost", "localhost").is_err(), "a wildcard over the platform's domain");
        assert!(check_domain("3com.example", "localhost").is_ok(), "digits in a name are fine");
    }

    #[test]
    fn domains_overlap_when_one_host_name_could_match_both() {
        let cases = [
            ("www.example.com", "www.example.com", true),
            ("www.example.com", "api.example.com", false),
            ("*.example.com", "www.example.com", true),
            ("*.example.com", "a.b.example.com", true),
            ("www.example.com", "*.example.com", true),
            ("*.example.com", "example.com", false),
            ("*.example.com", "*.api.example.com", true),
            ("*.api.example.com", "*.example.com", true),
            ("*.example.com", "*.example.org", false),
            ("*.example.com", "www.notexample.com", false),
        ];
        for (a, b, expected) in cases {
            assert_eq!(overlaps(a, b), expected, "{a} / {b}");
        }
    }
}
