//! The typed client of the controller API, used by the CLI (with a user's token) and by
//! Skiff's components (with the service token).

use std::time::Duration;

use reqwest::Method;
pub use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::collections::BTreeMap;

use skiff_api::{
    AccessPolicy, AppSource, AppSourceCreate, AutoCertificates, BuildTrigger, Canary, CanaryCreate, CanarySamples,
    Certificate, CertificateCreate, CronCreate, CronJob, CronRun, Domain, DomainCreate, Drain, DrainCreate, Event,
    Healthcheck, Limits, Maintenance, Pipeline, PipelineCoupling, PipelineCreate, PipelineName, PlatformStatus,
    ProcessType, Promotion, ReviewApp, ReviewAppGrant, ReviewAppPush, ReviewAppSettings, SettingsChange,
    SourceBuildAnswer, Stage, TlsSettings, UserRef, Webhook, WebhookCreate, WebhookDelivery,
};
use skiff_api::{
    App, AppCreate, AppName, Build, BuildCreate, BuildRecorded, ConfigChange, ConfigChanged, Credentials, DeployImage,
    ErrorBody, Formation, ImageUse, Key, KeyCreate, KeyOwner, LogLine, LogSource, NodeJoin, NodeView, Process,
    PushGrant, RegistryAccess, RegistryGrant, Release, Restart, Rollback, RouteTable, RunOutput, RunRequest, Scale,
    Session, Stack, StackName, User, Username,
};

/// A response body of JSON lines as a stream of values.
fn json_lines<T: DeserializeOwned>(
    response: reqwest::Response,
) -> impl futures_util::Stream<Item = Result<T, ClientError>> {
    let state = (Box::pin(response.bytes_stream()), Vec::<u8>::new());
    futures_util::stream::unfold(state, |(mut body, mut pending)| async move {
        loop {
            if let Some(end) = pending.iter().position(|b| *b == b'\n') {
                let line: Vec<u8> = pending.drain(..=end).collect();
                let parsed = serde_json::from_slice(&line).map_err(|e| ClientError::Invalid(e.to_string()));
                return Some((parsed, (body, pending)));
            }
            match futures_util::StreamExt::next(&mut body).await {
                Some(Ok(chunk)) => pending.extend_from_slice(&chunk),
                Some(Err(e)) => return Some((Err(ClientError::Invalid(e.to_string())), (body, Vec::new()))),
                None => return None,
            }
        }
    })
}

/// Which log lines to read.
#[derive(Debug, Clone, Default)]
pub struct LogQuery {
    /// How many recent lines.
    pub lines: usize,
    /// A process type (`web`) or instance (`web.1a2b3c`).
    pub process: Option<String>,
    pub source: Option<LogSource>,
}

impl LogQuery {
    fn params(&self, follow: bool) -> Vec<(&'static str, String)> {
        let mut params = vec![("n", self.lines.to_string())];
        if let Some(process) = &self.process {
            params.push(("process", process.clone()));
        }
        if let Some(source) = self.source {
            let source = serde_json::to_value(source).ok().and_then(|v| v.as_str().map(str::to_owned));
            params.extend(source.map(|s| ("source", s)));
        }
        if follow {
            params.push(("follow", "true".into()));
        }
        params
    }
}

/// What can go wrong calling the controller.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the controller at {url}: {reason}; is Skiff running? (start it with `skiffd all`)")]
    Unreachable { url: String, reason: String },
    /// The controller answered with an error body.
    #[error("{message}")]
    Api {
        status: StatusCode,
        code: String,
        message: String,
        /// How long to wait before asking again, when the controller said (429).
        retry_after: Option<std::time::Duration>,
    },
    #[error("the controller sent an unexpected answer: {0}")]
    Invalid(String),
}

impl ClientError {
    /// The HTTP status, when the controller answered.
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            Self::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// The header every controller answer carries its version in.
pub const VERSION_HEADER: &str = "Skiff-Version";

/// Where the version a controller answered with is noted, shared by clients.
pub type SeenVersion = std::sync::Arc<std::sync::Mutex<Option<String>>>;

/// A controller at a base URL, with an optional bearer token.
#[derive(Debug, Clone)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Option<String>,
    /// The controller's version, from its last answer.
    seen_version: SeenVersion,
}

impl Client {
    /// `base` is like `http://127.0.0.1:7700`.
    pub fn new(base: &str, token: Option<String>) -> Self {
        Self::noting_version(base, token, SeenVersion::default())
    }

    /// A client that notes the controller's version in `seen` as it answers.
    pub fn noting_version(base: &str, token: Option<String>, seen: SeenVersion) -> Self {
        Self { http: reqwest::Client::new(), base: base.trim_end_matches('/').to_owned(), token, seen_version: seen }
    }

    /// The controller's base URL.
    pub fn base(&self) -> &str {
        &self.base
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        let request = self.http.request(method, format!("{}{path}", self.base));
        match &self.token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
    }

    async fn send<T: DeserializeOwned>(&self, request: reqwest::RequestBuilder) -> Result<T, ClientError> {
        let response = self.execute(request).await?;
        response.json().await.map_err(|e| ClientError::Invalid(e.to_string()))
    }

    async fn execute(&self, request: reqwest::RequestBuilder) -> Result<reqwest::Response, ClientError> {
        let response = request.send().await.map_err(|e| ClientError::Unreachable {
            url: self.base.clone(),
            reason: std::error::Error::source(&e).map_or_else(|| e.to_string(), |s| s.to_string()),
        })?;
        if let Some(version) = response.headers().get(VERSION_HEADER).and_then(|v| v.to_str().ok()) {
            *self.seen_version.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = Some(version.to_owned());
        }
        let status = response.status();
        if status.is_success() {
            return Ok(response);
        }
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok()?.parse().ok())
            .map(std::time::Duration::from_secs);
        let text = response.text().await.unwrap_or_default();
        let body: ErrorBody = serde_json::from_str(&text)
            .unwrap_or(ErrorBody { code: "http".into(), message: format!("controller answered {status}: {text}") });
        Err(ClientError::Api { status, code: body.code, message: body.message, retry_after })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, ClientError> {
        self.send(self.request(Method::GET, path)).await
    }

    async fn post<B: Serialize, T: DeserializeOwned>(&self, path: &str, body: &B) -> Result<T, ClientError> {
        self.send(self.request(Method::POST, path).json(body)).await
    }

    async fn delete(&self, path: &str) -> Result<(), ClientError> {
        self.execute(self.request(Method::DELETE, path)).await.map(drop)
    }

    pub async fn register(&self, credentials: &Credentials) -> Result<Session, ClientError> {
        self.post("/v2/auth/register", credentials).await
    }

    pub async fn login(&self, credentials: &Credentials) -> Result<Session, ClientError> {
        self.post("/v2/auth/login", credentials).await
    }

    /// Applies image retention and collects the registry's garbage (admins); `grace`
    /// spares blobs younger than that many seconds.
    pub async fn collect_garbage(&self, dry_run: bool, grace: Option<u64>) -> Result<serde_json::Value, ClientError> {
        let mut query = vec![("dry_run", dry_run.to_string())];
        query.extend(grace.map(|g| ("grace_secs", g.to_string())));
        self.send(self.request(Method::POST, "/v2/admin/gc").query(&query)).await
    }

    /// Revokes this client's token.
    pub async fn logout(&self) -> Result<(), ClientError> {
        self.delete("/v2/auth/token").await
    }

    pub async fn whoami(&self) -> Result<User, ClientError> {
        self.get("/v2/auth/whoami").await
    }

    pub async fn keys(&self) -> Result<Vec<Key>, ClientError> {
        self.get("/v2/keys").await
    }

    pub async fn add_key(&self, public_key: &str) -> Result<Key, ClientError> {
        self.post("/v2/keys", &KeyCreate { public_key: public_key.to_owned() }).await
    }

    pub async fn remove_key(&self, id: i64) -> Result<(), ClientError> {
        self.delete(&format!("/v2/keys/{id}")).await
    }

    pub async fn apps(&self) -> Result<Vec<App>, ClientError> {
        self.get("/v2/apps").await
    }

    pub async fn create_app(&self, create: &AppCreate) -> Result<App, ClientError> {
        self.post("/v2/apps", create).await
    }

    pub async fn app(&self, app: &AppName) -> Result<App, ClientError> {
        self.get(&format!("/v2/apps/{app}")).await
    }

    pub async fn destroy_app(&self, app: &AppName) -> Result<(), ClientError> {
        self.delete(&format!("/v2/apps/{app}")).await
    }

    /// The app's releases, newest first; with `limit`, the newest `limit`.
    pub async fn releases(&self, app: &AppName, limit: Option<u32>) -> Result<Vec<Release>, ClientError> {
        match limit {
            Some(limit) => self.get(&format!("/v2/apps/{app}/releases?limit={limit}")).await,
            None => self.get(&format!("/v2/apps/{app}/releases")).await,
        }
    }

    /// One release.
    pub async fn release_of(&self, app: &AppName, version: u32) -> Result<Release, ClientError> {
        self.get(&format!("/v2/apps/{app}/releases/{version}")).await
    }

    pub async fn perms(&self, app: &AppName) -> Result<Vec<Username>, ClientError> {
        self.get(&format!("/v2/apps/{app}/perms")).await
    }

    pub async fn add_perm(&self, app: &AppName, username: &Username) -> Result<(), ClientError> {
        let body = UserRef { username: username.clone() };
        self.execute(self.request(Method::POST, &format!("/v2/apps/{app}/perms")).json(&body)).await.map(drop)
    }

    pub async fn remove_perm(&self, app: &AppName, username: &Username) -> Result<(), ClientError> {
        self.delete(&format!("/v2/apps/{app}/perms/{username}")).await
    }

    pub async fn transfer(&self, app: &AppName, username: &Username) -> Result<App, ClientError> {
        self.post(&format!("/v2/apps/{app}/transfer"), &UserRef { username: username.clone() }).await
    }

    pub async fn domains(&self, app: &AppName) -> Result<Vec<Domain>, ClientError> {
        self.get(&format!("/v2/apps/{app}/domains")).await
    }

    pub async fn add_domain(&self, app: &AppName, domain: &str) -> Result<(), ClientError> {
        let body = DomainCreate { domain: domain.to_owned() };
        self.execute(self.request(Method::POST, &format!("/v2/apps/{app}/domains")).json(&body)).await.map(drop)
    }

    pub async fn remove_domain(&self, app: &AppName, domain: &str) -> Result<(), ClientError> {
        self.delete(&format!("/v2/apps/{app}/domains/{domain}")).await
    }

    pub async fn certs(&self, app: &AppName) -> Result<Vec<Certificate>, ClientError> {
        self.get(&format!("/v2/apps/{app}/certs")).await
    }

    pub async fn add_cert(&self, app: &AppName, cert: &CertificateCreate) -> Result<Certificate, ClientError> {
        self.post(&format!("/v2/apps/{app}/certs"), cert).await
    }

    pub async fn remove_cert(&self, app: &AppName, name: &str) -> Result<(), ClientError> {
        self.delete(&format!("/v2/apps/{app}/certs/{name}")).await
    }

    /// Serves a certificate for one of the app's domains.
    pub async fn attach_cert(&self, app: &AppName, name: &str, domain: &str) -> Result<(), ClientError> {
        let body = DomainCreate { domain: domain.to_owned() };
        let path = format!("/v2/apps/{app}/certs/{name}/domains");
        self.execute(self.request(Method::POST, &path).json(&body)).await.map(drop)
    }

    pub async fn detach_cert(&self, app: &AppName, name: &str, domain: &str) -> Result<(), ClientError> {
        self.delete(&format!("/v2/apps/{app}/certs/{name}/domains/{domain}")).await
    }

    /// Whether the app's custom domains get certificates by themselves, and each one's state.
    pub async fn auto_certs(&self, app: &AppName) -> Result<AutoCertificates, ClientError> {
        self.get(&format!("/v2/apps/{app}/acme")).await
    }

    /// Has every custom domain of the app get a certificate from the platform's ACME server.
    pub async fn enable_auto_certs(&self, app: &AppName) -> Result<AutoCertificates, ClientError> {
        self.send(self.request(Method::PUT, &format!("/v2/apps/{app}/acme"))).await
    }

    /// Stops ordering and renewing certificates for the app.
    pub async fn disable_auto_certs(&self, app: &AppName) -> Result<(), ClientError> {
        self.delete(&format!("/v2/apps/{app}/acme")).await
    }

    pub async fn access(&self, app: &AppName) -> Result<AccessPolicy, ClientError> {
        self.get(&format!("/v2/apps/{app}/access")).await
    }

    pub async fn set_access(&self, app: &AppName, policy: &AccessPolicy) -> Result<AccessPolicy, ClientError> {
        self.send(self.request(Method::PUT, &format!("/v2/apps/{app}/access")).json(policy)).await
    }

    pub async fn tls(&self, app: &AppName) -> Result<TlsSettings, ClientError> {
        self.get(&format!("/v2/apps/{app}/tls")).await
    }

    pub async fn set_tls(&self, app: &AppName, tls: &TlsSettings) -> Result<TlsSettings, ClientError> {
        self.send(self.request(Method::PUT, &format!("/v2/apps/{app}/tls")).json(tls)).await
    }

    /// The newest `limit` events of an app, or every event (admins) without an app.
    pub async fn events(&self, app: Option<&AppName>, limit: u32) -> Result<Vec<Event>, ClientError> {
        let path = app.map_or_else(|| "/v2/events".to_owned(), |app| format!("/v2/apps/{app}/events"));
        self.send(self.request(Method::GET, &path).query(&[("n", limit)])).await
    }

    /// Where an app's drains live, or the platform-wide ones' without an app.
    fn drains_path(app: Option<&AppName>) -> String {
        app.map_or_else(|| "/v2/drains".to_owned(), |app| format!("/v2/apps/{app}/drains"))
    }

    /// An app's drains, or the platform-wide ones (admins) without an app.
    pub async fn drains(&self, app: Option<&AppName>) -> Result<Vec<Drain>, ClientError> {
        self.get(&Self::drains_path(app)).await
    }

    pub async fn add_drain(&self, app: Option<&AppName>, url: &str) -> Result<Drain, ClientError> {
        self.post(&Self::drains_path(app), &DrainCreate { url: url.to_owned() }).await
    }

    pub async fn remove_drain(&self, app: Option<&AppName>, id: i64) -> Result<(), ClientError> {
        self.delete(&format!("{}/{id}", Self::drains_path(app))).await
    }

    /// The platform at a glance (admins).
    pub async fn platform_status(&self) -> Result<PlatformStatus, ClientError> {
        self.get("/v2/admin/status").await
    }

    /// Connects an app to a source repository; the answer carries the hook secret.
    pub async fn connect_source(&self, app: &AppName, source: &AppSourceCreate) -> Result<AppSource, ClientError> {
        self.send(self.request(Method::PUT, &format!("/v2/apps/{app}/source")).json(source)).await
    }

    pub async fn source(&self, app: &AppName) -> Result<AppSource, ClientError> {
        self.get(&format!("/v2/apps/{app}/source")).await
    }

    pub async fn disconnect_source(&self, app: &AppName) -> Result<(), ClientError> {
        self.delete(&format!("/v2/apps/{app}/source")).await
    }

    /// Builds a commit, branch or tag of the app's source repository now.
    pub async fn build_from_source(
        &self,
        app: &AppName,
        trigger: &BuildTrigger,
    ) -> Result<SourceBuildAnswer, ClientError> {
        self.post(&format!("/v2/apps/{app}/builds"), trigger).await
    }

    /// An app's scheduled jobs, each with its last run.
    pub async fn cron_jobs(&self, app: &AppName) -> Result<Vec<CronJob>, ClientError> {
        self.get(&format!("/v2/apps/{app}/cron")).await
    }

    pub async fn add_cron_job(&self, app: &AppName, job: &CronCreate) -> Result<CronJob, ClientError> {
        self.post(&format!("/v2/apps/{app}/cron"), job).await
    }

    pub async fn remove_cron_job(&self, app: &AppName, id: i64) -> Result<(), ClientError> {
        self.delete(&format!("/v2/apps/{app}/cron/{id}")).await
    }

    /// Runs a scheduled job now; the run as it started.
    pub async fn run_cron_job(&self, app: &AppName, id: i64) -> Result<CronRun, ClientError> {
        self.post(&format!("/v2/apps/{app}/cron/{id}/runs"), &serde_json::json!({})).await
    }

    /// Where an app's webhooks live, or the platform-wide ones' without an app.
    fn webhooks_path(app: Option<&AppName>) -> String {
        app.map_or_else(|| "/v2/webhooks".to_owned(), |app| format!("/v2/apps/{app}/webhooks"))
    }

    /// An app's webhooks, or the platform-wide ones (admins) without an app.
    pub async fn webhooks(&self, app: Option<&AppName>) -> Result<Vec<Webhook>, ClientError> {
        self.get(&Self::webhooks_path(app)).await
    }

    /// Adds a webhook; the answer carries its signing secret.
    pub async fn add_webhook(&self, app: Option<&AppName>, webhook: &WebhookCreate) -> Result<Webhook, ClientError> {
        self.post(&Self::webhooks_path(app), webhook).await
    }

    pub async fn remove_webhook(&self, app: Option<&AppName>, id: i64) -> Result<(), ClientError> {
        self.delete(&format!("{}/{id}", Self::webhooks_path(app))).await
    }

    /// A webhook's newest deliveries, newest first.
    pub async fn webhook_deliveries(
        &self,
        app: Option<&AppName>,
        id: i64,
    ) -> Result<Vec<WebhookDelivery>, ClientError> {
        self.get(&format!("{}/{id}/deliveries", Self::webhooks_path(app))).await
    }

    /// Every drain of every app and of the platform (service token).
    pub async fn drain_targets(&self) -> Result<Vec<Drain>, ClientError> {
        self.get("/v2/hooks/drains").await
    }

    pub async fn maintenance(&self, app: &AppName, enabled: bool) -> Result<App, ClientError> {
        self.post(&format!("/v2/apps/{app}/maintenance"), &Maintenance { enabled }).await
    }

    pub async fn limits(&self, app: &AppName) -> Result<BTreeMap<ProcessType, Limits>, ClientError> {
        self.get(&format!("/v2/apps/{app}/limits")).await
    }

    pub async fn change_limits(
        &self,
        app: &AppName,
        change: &SettingsChange<Limits>,
    ) -> Result<BTreeMap<ProcessType, Limits>, ClientError> {
        self.send(self.request(Method::PATCH, &format!("/v2/apps/{app}/limits")).json(change)).await
    }

    pub async fn healthchecks(&self, app: &AppName) -> Result<BTreeMap<ProcessType, Healthcheck>, ClientError> {
        self.get(&format!("/v2/apps/{app}/healthchecks")).await
    }

    pub async fn change_healthchecks(
        &self,
        app: &AppName,
        change: &SettingsChange<Healthcheck>,
    ) -> Result<BTreeMap<ProcessType, Healthcheck>, ClientError> {
        self.send(self.request(Method::PATCH, &format!("/v2/apps/{app}/healthchecks")).json(change)).await
    }

    pub async fn config(&self, app: &AppName) -> Result<BTreeMap<String, String>, ClientError> {
        self.get(&format!("/v2/apps/{app}/config")).await
    }

    /// Sets (`Some`) and unsets (`None`) config keys at once.
    pub async fn change_config(&self, app: &AppName, change: &ConfigChange) -> Result<ConfigChanged, ClientError> {
        self.send(self.request(Method::PATCH, &format!("/v2/apps/{app}/config")).json(change)).await
    }

    pub async fn formation(&self, app: &AppName) -> Result<Vec<Formation>, ClientError> {
        self.get(&format!("/v2/apps/{app}/formation")).await
    }

    pub async fn scale(&self, app: &AppName, scale: &Scale) -> Result<Vec<Formation>, ClientError> {
        self.post(&format!("/v2/apps/{app}/scale"), scale).await
    }

    pub async fn ps(&self, app: &AppName) -> Result<Vec<Process>, ClientError> {
        self.get(&format!("/v2/apps/{app}/ps")).await
    }

    pub async fn restart(&self, app: &AppName, restart: &Restart) -> Result<(), ClientError> {
        self.execute(self.request(Method::POST, &format!("/v2/apps/{app}/ps/restart")).json(restart)).await.map(drop)
    }

    pub async fn rollback(&self, app: &AppName, rollback: &Rollback) -> Result<Release, ClientError> {
        self.post(&format!("/v2/apps/{app}/releases/rollback"), rollback).await
    }

    /// An app's recent log lines.
    pub async fn logs(&self, app: &AppName, query: &LogQuery) -> Result<Vec<LogLine>, ClientError> {
        self.send(self.request(Method::GET, &format!("/v2/apps/{app}/logs")).query(&query.params(false))).await
    }

    /// An app's recent log lines, then every new one as it arrives; the stream ends when
    /// the platform shuts down or the connection breaks.
    pub async fn follow_logs(
        &self,
        app: &AppName,
        query: &LogQuery,
    ) -> Result<impl futures_util::Stream<Item = Result<LogLine, ClientError>> + use<>, ClientError> {
        let request = self.request(Method::GET, &format!("/v2/apps/{app}/logs")).query(&query.params(true));
        Ok(json_lines(self.execute(request).await?))
    }

    /// Runs a one-off command in a new container of the app's current release; the
    /// stream carries its output and ends with its exit status.
    pub async fn run(
        &self,
        app: &AppName,
        run: &RunRequest,
    ) -> Result<impl futures_util::Stream<Item = Result<RunOutput, ClientError>> + use<>, ClientError> {
        let request = self.request(Method::POST, &format!("/v2/apps/{app}/run")).json(run);
        Ok(json_lines(self.execute(request).await?))
    }

    pub async fn stacks(&self) -> Result<Vec<Stack>, ClientError> {
        self.get("/v2/stacks").await
    }

    /// The cluster's nodes with the app containers on each (admins).
    pub async fn nodes(&self) -> Result<Vec<NodeView>, ClientError> {
        self.get("/v2/nodes").await
    }

    /// Moves every app container off a node, then drains it (admins).
    pub async fn drain_node(&self, node: &str) -> Result<NodeView, ClientError> {
        self.post(&format!("/v2/nodes/{node}/drain"), &serde_json::json!({})).await
    }

    /// Lets a node take containers again (admins).
    pub async fn activate_node(&self, node: &str) -> Result<NodeView, ClientError> {
        self.post(&format!("/v2/nodes/{node}/activate"), &serde_json::json!({})).await
    }

    /// What a new node needs to join (admins).
    pub async fn node_join(&self) -> Result<NodeJoin, ClientError> {
        self.get("/v2/nodes/join").await
    }

    /// The pipelines the caller may see.
    pub async fn pipelines(&self) -> Result<Vec<Pipeline>, ClientError> {
        self.get("/v2/pipelines").await
    }

    pub async fn create_pipeline(&self, name: &PipelineName) -> Result<Pipeline, ClientError> {
        self.post("/v2/pipelines", &PipelineCreate { name: name.clone() }).await
    }

    pub async fn pipeline(&self, name: &PipelineName) -> Result<Pipeline, ClientError> {
        self.get(&format!("/v2/pipelines/{name}")).await
    }

    pub async fn destroy_pipeline(&self, name: &PipelineName) -> Result<(), ClientError> {
        self.delete(&format!("/v2/pipelines/{name}")).await
    }

    /// Puts `app` in the pipeline at `stage`.
    pub async fn couple(&self, name: &PipelineName, app: &AppName, stage: Stage) -> Result<Pipeline, ClientError> {
        let request = self.request(Method::PUT, &format!("/v2/pipelines/{name}/apps/{app}"));
        self.send(request.json(&PipelineCoupling { stage })).await
    }

    /// Takes `app` out of its pipeline.
    pub async fn uncouple(&self, app: &AppName) -> Result<(), ClientError> {
        self.delete(&format!("/v2/apps/{app}/pipeline")).await
    }

    /// Promotes `app`'s running build: the releases it made.
    pub async fn promote(&self, app: &AppName, promotion: &Promotion) -> Result<Vec<Release>, ClientError> {
        self.post(&format!("/v2/apps/{app}/promote"), promotion).await
    }

    /// The app's running canary, or its last one.
    pub async fn canary(&self, app: &AppName) -> Result<Canary, ClientError> {
        self.get(&format!("/v2/apps/{app}/canary")).await
    }

    /// Puts a release's build on trial beside the current release.
    pub async fn start_canary(&self, app: &AppName, canary: &CanaryCreate) -> Result<Canary, ClientError> {
        self.post(&format!("/v2/apps/{app}/canary"), canary).await
    }

    /// Ends the app's running canary by hand: `promote` rolls it out, otherwise it is
    /// rolled back.
    pub async fn end_canary(&self, app: &AppName, promote: bool) -> Result<Canary, ClientError> {
        let action = if promote { "promote" } else { "abort" };
        self.send(self.request(Method::POST, &format!("/v2/apps/{app}/canary/{action}"))).await
    }

    /// What a router counted of apps' canaries since its last report (service token).
    pub async fn canary_samples(&self, samples: &CanarySamples) -> Result<(), ClientError> {
        let request = self.request(Method::POST, "/v2/hooks/canary-samples").timeout(Duration::from_secs(10));
        self.execute(request.json(samples)).await.map(drop)
    }

    /// A router's counts of apps' traffic since its last report (service token).
    pub async fn traffic(&self, samples: &skiff_api::TrafficSamples) -> Result<(), ClientError> {
        let request = self.request(Method::POST, "/v2/hooks/traffic").timeout(Duration::from_secs(10));
        self.execute(request.json(samples)).await.map(drop)
    }

    /// Uploads a root filesystem tarball (plain or gzip) as a stack.
    pub async fn import_stack(&self, name: &StackName, archive: Vec<u8>) -> Result<Stack, ClientError> {
        let request = self
            .request(Method::POST, &format!("/v2/stacks/{name}"))
            .header(reqwest::header::CONTENT_TYPE, "application/x-tar")
            .body(archive);
        self.send(request).await
    }

    /// The route table once its version differs from `after` (service token), for the
    /// router named `router` (its address) at `version`.
    pub async fn routes(&self, after: u64, router: &str, version: &str) -> Result<RouteTable, ClientError> {
        let query = [("after", after.to_string()), ("router", router.to_owned()), ("version", version.to_owned())];
        let request = self.request(Method::GET, "/v2/routes").query(&query).timeout(Duration::from_secs(60));
        self.send(request).await
    }

    /// One release of an app (service token): while it is pending, once it changes (its
    /// state or its release phase's output) or after `wait` (at most ten seconds), whichever
    /// comes first.
    pub async fn release(&self, app: &AppName, version: u32, wait: Duration) -> Result<Release, ClientError> {
        let path = format!("/v2/hooks/apps/{app}/releases/{version}");
        self.send(self.request(Method::GET, &path).query(&[("wait_ms", wait.as_millis().to_string())])).await
    }

    /// Who owns an SSH key (service token).
    pub async fn key_owner(&self, fingerprint: &str) -> Result<KeyOwner, ClientError> {
        let encoded: String = fingerprint
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        self.get(&format!("/v2/hooks/keys/{encoded}")).await
    }

    /// Whether a user may push to an app, and what it builds on (service token).
    pub async fn push_grant(&self, app: &AppName, username: &Username) -> Result<PushGrant, ClientError> {
        self.get(&format!("/v2/hooks/apps/{app}/access/{username}")).await
    }

    /// Tells the controller a push to `app` has begun, so that its next release's web
    /// container is started ahead (service token).
    pub async fn warm(&self, app: &AppName) -> Result<(), ClientError> {
        self.execute(self.request(Method::POST, &format!("/v2/hooks/apps/{app}/warm"))).await.map(drop)
    }

    /// What registry credentials may do in a repository (service token).
    pub async fn registry_access(&self, access: &RegistryAccess) -> Result<RegistryGrant, ClientError> {
        self.post("/v2/hooks/registry/access", access).await
    }

    /// Whether a build's pusher may build from an image (service token); the error says
    /// why not.
    pub async fn check_image_use(&self, request: &ImageUse) -> Result<(), ClientError> {
        self.execute(self.request(Method::POST, "/v2/hooks/images/use").json(request)).await.map(drop)
    }

    /// Records a finished build; a succeeded one becomes the app's next release (service
    /// token).
    /// The review app a push of a branch builds for, made if need be (service token).
    pub async fn open_review_app(&self, push: &ReviewAppPush) -> Result<ReviewAppGrant, ClientError> {
        self.post("/v2/hooks/review-apps", push).await
    }

    /// Destroys the review app of a deleted branch: its name, if it had one (service token).
    pub async fn close_review_app(&self, push: &ReviewAppPush) -> Result<Option<AppName>, ClientError> {
        self.post("/v2/hooks/review-apps/close", push).await
    }

    /// Runs a review app's postdeploy script, once (service token).
    pub async fn postdeploy(
        &self,
        app: &AppName,
        run: &RunRequest,
    ) -> Result<impl futures_util::Stream<Item = Result<RunOutput, ClientError>> + use<>, ClientError> {
        let request = self.request(Method::POST, &format!("/v2/hooks/apps/{app}/postdeploy")).json(run);
        Ok(json_lines(self.execute(request).await?))
    }

    /// The pipeline's review apps.
    pub async fn review_apps(&self, pipeline: &PipelineName) -> Result<Vec<ReviewApp>, ClientError> {
        self.get(&format!("/v2/pipelines/{pipeline}/review-apps")).await
    }

    /// Turns the pipeline's review apps on or off.
    pub async fn configure_review_apps(
        &self,
        pipeline: &PipelineName,
        settings: &ReviewAppSettings,
    ) -> Result<Pipeline, ClientError> {
        let request = self.request(Method::PUT, &format!("/v2/pipelines/{pipeline}/review-apps"));
        self.send(request.json(settings)).await
    }

    pub async fn create_build(&self, build: &BuildCreate) -> Result<BuildRecorded, ClientError> {
        self.post("/v2/hooks/builds", build).await
    }

    pub async fn builds(&self, app: &AppName) -> Result<Vec<Build>, ClientError> {
        self.get(&format!("/v2/apps/{app}/builds")).await
    }

    /// One build, with its log.
    pub async fn build(&self, app: &AppName, id: i64) -> Result<Build, ClientError> {
        self.get(&format!("/v2/apps/{app}/builds/{id}")).await
    }

    /// Releases an existing image.
    pub async fn deploy_image(&self, app: &AppName, image: &str) -> Result<BuildRecorded, ClientError> {
        self.post(&format!("/v2/apps/{app}/deploy"), &DeployImage { image: image.to_owned() }).await
    }
}
