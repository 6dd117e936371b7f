//! The controller's shared state, and the checks every operation starts with: who may see
//! an app, who may change its sharing, which images a user may run.

use std::sync::Arc;

use skiff_api::{App, AppName, ImageRef, RegistryGrant, Release, Username};
use skiff_registry_client::RegistryClient;
use skiff_service::{Answers, Readiness};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::coordination::Coordination;
use crate::db::{AppRow, Db, UserRow};
use crate::error::ApiError;
use crate::events::Event;
use crate::events::Events;
use crate::routes::RouteFeed;
use crate::scheduler::ContainerRuntime;
use crate::throttle::LoginThrottle;

/// The controller's shared state.
pub struct Controller {
    pub config: Arc<Config>,
    pub db: Db,
    pub(crate) runtime: Arc<dyn ContainerRuntime>,
    pub routes: Arc<RouteFeed>,
    /// Wakes the reconcile loops (this replica's, and others' through Redis).
    pub coordination: Arc<Coordination>,
    pub(crate) registry: Arc<RegistryClient>,
    pub(crate) http: reqwest::Client,
    /// Ends long-lived responses (log follows, one-off commands) at shutdown.
    pub(crate) shutdown: CancellationToken,
    pub(crate) events: Arc<Events>,
    /// One-off commands in flight.
    pub(crate) one_offs: TaskTracker,
    /// Failed sign-ins, for refusing guessers.
    pub(crate) logins: LoginThrottle,
    /// Answers given, by status class, for `/metrics`.
    pub(crate) answers: Arc<Answers>,
    /// Wakes the certificate orderer (an app asked for certificates, a domain was added).
    pub(crate) acme_wake: tokio::sync::Notify,
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
        let answers = Answers::new();
        Arc::new(Self {
            config,
            db,
            runtime,
            routes,
            coordination,
            registry,
            http,
            shutdown,
            events,
            one_offs,
            logins,
            answers,
            acme_wake: tokio::sync::Notify::new(),
        })
    }

    /// What the controller needs to answer: its database, the container engine, and
    /// Redis when replicas share one.
    pub fn readiness(&self) -> Readiness {
        let (db, runtime, coordination) = (self.db.clone(), self.runtime.clone(), self.coordination.clone());
        let readiness = Readiness::new()
            .check("database", move || {
                let db = db.clone();
                async move { db.ping().await.map_err(|e| e.to_string()) }
            })
            .check("engine", move || {
                let runtime = runtime.clone();
                async move { runtime.ping().await.map_err(|e| e.to_string()) }
            });
        if !coordination.shares() {
            return readiness;
        }
        readiness.check("redis", move || {
            let coordination = coordination.clone();
            async move { coordination.ping().await.map_err(|e| e.to_string()) }
        })
    }

    /// The controller's `/metrics` page.
    pub fn metrics(&self) -> String {
        let mut text = skiff_service::Text::new();
        self.answers.render(&mut text, "skiff_controller");
        text.finish()
    }

    /// Records an event of `app` that changes what should run or be routed, and wakes the
    /// scheduler (this replica's and the others').
    pub(crate) async fn announce_change(&self, app: &AppName, event: Event) {
        self.events.emit(app, event).await;
        self.coordination.changed().await;
    }

    /// Refuses a tenant's URL (of `what`: "drains", "webhooks") any of whose addresses the
    /// outbound guard refuses now; the component that connects checks again each time.
    pub(crate) async fn check_outbound(&self, what: &str, host: &str, port: u16) -> Result<(), ApiError> {
        let resolved =
            skiff_service::outbound::allowed_addresses(host, port, None).await.map_err(ApiError::BadRequest)?;
        for address in &resolved {
            if let Some(why) = self.config.outbound.refusal(address.ip()) {
                return Err(ApiError::BadRequest(format!(
                    "{what} may not reach {host} ({} is {why}); the operator can allow a network with SKIFF_OUTBOUND_ALLOW",
                    address.ip()
                )));
            }
        }
        if resolved.is_empty() {
            return Err(ApiError::BadRequest(format!("{host} resolves to no address")));
        }
        Ok(())
    }

    /// The release the app runs (or is rolling out): its newest that did not fail.
    pub(crate) async fn running_release(&self, app: &AppRow) -> Result<Option<Release>, ApiError> {
        Ok(self.db.running_release(app).await?)
    }

    /// The app's current release, or a clear error.
    pub(crate) async fn current_release(&self, app: &AppRow) -> Result<Release, ApiError> {
        self.running_release(app).await?.ok_or_else(|| {
            ApiError::Conflict(format!("app `{}` has no release yet; push with `git push skiff main`", app.name))
        })
    }

    /// The app named `name`, when `user` may see it: the owner, a collaborator, or an
    /// admin. Apps a user may not see are reported as missing, never as forbidden.
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
    pub(crate) async fn owned_app(&self, user: &UserRow, name: &str) -> Result<AppRow, ApiError> {
        let app = self.app_for(user, name).await?;
        if app.owner_id == user.id || user.admin {
            Ok(app)
        } else {
            Err(ApiError::Forbidden(format!("only the owner of `{}` ({}) may do that", app.name, app.owner)))
        }
    }

    /// A user by name, or a clear error.
    pub(crate) async fn user_named(&self, username: &Username) -> Result<UserRow, ApiError> {
        self.db.user_by_name(username).await?.ok_or_else(|| ApiError::NotFound(format!("no user `{username}`")))
    }

    /// An app's log lines from the logger, as it answers (`n`, `process`, `source` and
    /// `follow` of `query` passed on): a JSON array, or with `follow` a stream of JSON lines.
    /// Only lines from the app's creation on: a destroyed app's lines stay in the logger's
    /// buffer until pushed out, and must not reach an app made later under its name.
    pub(crate) async fn logs(
        &self,
        app: &crate::db::AppRow,
        query: &std::collections::HashMap<String, String>,
    ) -> Result<reqwest::Response, ApiError> {
        let mut params: Vec<(&str, &String)> =
            ["n", "process", "source", "follow"].into_iter().filter_map(|k| Some((k, query.get(k)?))).collect();
        params.push(("since", &app.created_at));
        let logs = self.logger_request(reqwest::Method::GET, &format!("/v2/apps/{}/logs", app.name));
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
        Ok(response)
    }

    /// A request to the logger's API, with the service token it requires.
    pub(crate) fn logger_request(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http.request(method, format!("{}{path}", self.config.logger_url)).bearer_auth(&self.config.service_token)
    }

    /// What `user` may do with a repository of the platform's registry: stacks are
    /// readable by everyone and written by admins; an app's repository belongs to whoever
    /// may access the app; admins may use any.
    pub(crate) async fn registry_grant(&self, user: &UserRow, repository: Option<&str>) -> RegistryGrant {
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
        let mut image = ImageRef::parse(image).map_err(|e| ApiError::BadRequest(e.to_string()))?;
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

    /// An app as the API shows it.
    pub(crate) async fn app_view(&self, app: &AppRow) -> Result<App, ApiError> {
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
