//! The registry's HTTP surface: one fallback handler decodes every request into an
//! [`Endpoint`], authenticates it, and dispatches it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, HeaderValue, StatusCode, header};
use skiff_api::{Digest, RegistryGrant};
use skiff_service::{Answers, Readiness};
use skiff_store::{BlobStore, RecordStore};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authorizer, Credentials};
use crate::endpoint::{DecodeError, Endpoint, RepoName};
use crate::error::OciError;
use crate::meta::Meta;
use crate::token::{Access, Claims, Signer};
use crate::upload::{SessionBlob, Uploads};

mod blobs;
mod connection;
mod listing;
mod maintenance;
mod manifests;
mod ranges;
mod token;
mod uploads;

use blobs::{blob_delete, blob_get};
use listing::{catalog, referrers, tags_list};
use maintenance::{collect_garbage, forget_repository, retain};
use manifests::{manifest_delete, manifest_get, manifest_put};
use token::{issue_pull_token, issue_token};
use uploads::{pass_to_owner, upload_cancel, upload_finish, upload_patch, upload_start, upload_status};

/// What a client without (valid) credentials is told.
pub(super) const LOG_IN: &str =
    "authentication required: `docker login` with your Skiff user name and password or API token";

/// The principal name of the platform's own components.
pub(super) const SERVICE: &str = "skiff-service";

/// Registry settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The platform's service token: any user name with it as password may do anything.
    pub service_token: String,
    /// Where the other registries on the same store reach this one. With it, each upload
    /// session opened here is recorded in the shared records, and a request for one that
    /// reaches another registry is passed here, where its bytes are staged, so a balancer
    /// in front of several registries need not keep a client on one.
    pub peer_url: Option<String>,
}

/// The digest of the empty blob, which readiness asks the store about.
pub(super) const EMPTY_BLOB: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/// The registry's state, shared by every request.
pub struct Registry {
    store: Arc<dyn BlobStore>,
    meta: Meta,
    uploads: Uploads,
    service_token: String,
    authorizer: Arc<dyn Authorizer>,
    tokens: Signer,
    /// Held while a garbage collection runs.
    gc: tokio::sync::Mutex<()>,
    peer_url: Option<String>,
    /// Passes requests for upload sessions to the registries holding them.
    peers: reqwest::Client,
    /// Answers given, by status class, for `/metrics`.
    answers: Arc<Answers>,
}

/// Who a caller proved to be.
pub(super) enum Identity {
    /// The platform's own components.
    Service,
    /// A user's password or API token, checked by the authorizer.
    Credentials(Credentials),
    /// A token this registry issued (Docker's token flow).
    Token(Claims),
}

/// An authenticated caller and what it may do in the request's repository.
pub(super) struct Caller {
    principal: String,
    identity: Identity,
    grant: RegistryGrant,
}

impl Registry {
    /// A registry over `store`'s blobs, with repository metadata in `records`.
    pub fn new(
        config: Config,
        store: Arc<dyn BlobStore>,
        records: Arc<dyn RecordStore>,
        authorizer: Arc<dyn Authorizer>,
    ) -> Arc<Self> {
        Arc::new(Self {
            store,
            meta: Meta::new(records),
            uploads: Uploads::default(),
            tokens: Signer::new(&config.service_token),
            service_token: config.service_token,
            authorizer,
            gc: tokio::sync::Mutex::new(()),
            peer_url: config.peer_url,
            peers: reqwest::Client::new(),
            answers: Answers::new(),
        })
    }

    /// What the registry needs to answer: its blob store (a file system, or S3).
    pub fn readiness(&self) -> Readiness {
        let store = self.store.clone();
        Readiness::new().check("store", move || {
            let store = store.clone();
            async move {
                let probe: Digest = EMPTY_BLOB.parse().map_err(|e: skiff_api::NameError| e.to_string())?;
                store.size(&probe).await.map(drop).map_err(|e| e.to_string())
            }
        })
    }

    /// The registry's `/metrics` page.
    pub fn metrics(&self) -> String {
        let mut text = skiff_service::Text::new();
        self.answers.render(&mut text, "skiff_registry");
        text.finish()
    }

    /// The other registry holding upload session `id`, when this one does not.
    async fn upload_elsewhere(&self, id: &str) -> Result<Option<String>, OciError> {
        let Some(own) = &self.peer_url else { return Ok(None) };
        if self.uploads.holds(id) {
            return Ok(None);
        }
        Ok(self.meta.upload_owner(id).await?.filter(|owner| owner != own))
    }

    /// Closes an upload session, returning its blob to commit or discard.
    async fn close_upload(&self, repo: &RepoName, principal: &str, id: &str) -> Result<SessionBlob, OciError> {
        let blob = self.uploads.close(repo, principal, id).ok_or_else(OciError::upload_unknown)?;
        if self.peer_url.is_some() {
            self.meta.forget_upload(id).await?;
        }
        Ok(blob)
    }

    /// Authenticates a request from `client` and finds what it may do in `repo`.
    async fn caller(
        &self,
        headers: &HeaderMap,
        client: Option<std::net::IpAddr>,
        repo: Option<&str>,
    ) -> Result<Caller, OciError> {
        let unauthorized = || OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", LOG_IN);
        let credentials = Credentials::from_request(headers, client).ok_or_else(unauthorized)?;
        if skiff_api::secrets_match(&credentials.secret, &self.service_token) {
            let grant = RegistryGrant { pull: true, push: true };
            return Ok(Caller { principal: SERVICE.into(), identity: Identity::Service, grant });
        }
        if credentials.username.is_none() && Signer::is_token(&credentials.secret) {
            let now = time::OffsetDateTime::now_utc().unix_timestamp();
            let claims = self.tokens.verify(&credentials.secret, now).ok_or_else(unauthorized)?;
            let grant = claims.grant(repo);
            return Ok(Caller { principal: claims.subject.clone(), identity: Identity::Token(claims), grant });
        }
        let grant = self.authorizer.authorize(&credentials, repo).await?.ok_or_else(unauthorized)?;
        let principal = credentials.username.clone().unwrap_or_else(|| "token".into());
        Ok(Caller { principal, identity: Identity::Credentials(credentials), grant })
    }

    /// Whether the caller may pull from another repository (a mount's `from`).
    async fn may_pull(&self, caller: &Caller, repo: &RepoName) -> bool {
        match &caller.identity {
            Identity::Service => true,
            Identity::Credentials(credentials) => {
                matches!(self.authorizer.authorize(credentials, Some(repo.as_str())).await, Ok(Some(g)) if g.pull)
            }
            Identity::Token(claims) => claims.grant(Some(repo.as_str())).pull,
        }
    }

    /// What `credentials` may do in each requested repository, for a token: the
    /// service token everything asked, other credentials what the authorizer grants.
    /// `None` when the credentials are wrong.
    async fn token_access(
        &self,
        credentials: &Credentials,
        scopes: Vec<(String, bool, bool)>,
    ) -> Result<Option<Vec<Access>>, OciError> {
        let service = skiff_api::secrets_match(&credentials.secret, &self.service_token);
        if !service && self.authorizer.authorize(credentials, None).await?.is_none() {
            return Ok(None);
        }
        let mut access = Vec::with_capacity(scopes.len());
        for (repository, pull, push) in scopes {
            let grant = if service {
                RegistryGrant { pull: true, push: true }
            } else {
                let grant = self.authorizer.authorize(credentials, Some(&repository)).await?;
                grant.unwrap_or(RegistryGrant { pull: false, push: false })
            };
            let refused = (pull && !grant.pull) || (push && !grant.push);
            access.push(Access { repository, pull: pull && grant.pull, push: push && grant.push, refused });
        }
        Ok(Some(access))
    }
}

/// The registry as an axum router.
pub fn router(registry: Arc<Registry>) -> Router {
    let metrics = registry.clone();
    let answers = registry.answers.clone();
    Router::new()
        .merge(skiff_service::routes(registry.readiness(), Arc::new(move || metrics.metrics())))
        .route("/v2/token", axum::routing::get(issue_token))
        .route("/_skiff/gc", axum::routing::post(collect_garbage))
        .route("/_skiff/retain/{*repo}", axum::routing::post(retain))
        .route("/_skiff/repositories/{*repo}", axum::routing::delete(forget_repository))
        .route("/_skiff/tokens", axum::routing::post(issue_pull_token))
        .fallback(handle)
        .layer(axum::middleware::from_fn_with_state(answers, Answers::layer))
        .with_state(registry)
}

/// Serves until `shutdown` is cancelled; in-flight requests finish.
pub async fn serve(
    listener: TcpListener,
    https: Option<skiff_service::https::HttpsListener>,
    registry: Arc<Registry>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let routes = router(registry);
    let plain = connection::serve(listener, routes.clone(), shutdown.clone());
    match https {
        None => plain.await,
        Some(https) => {
            // Tapped (doing nothing) so that requests carry the client's address here too.
            let https = axum::serve::ListenerExt::tap_io(https, |_| {});
            let service = routes
                .layer(axum::Extension(crate::token::Scheme::Https))
                .into_make_service_with_connect_info::<std::net::SocketAddr>();
            let secure = axum::serve(https, service).with_graceful_shutdown(async move { shutdown.cancelled().await });
            tokio::try_join!(plain, secure.into_future()).map(drop)
        }
    }
}

pub(super) async fn handle(State(registry): State<Arc<Registry>>, request: Request) -> Response {
    let endpoint = match Endpoint::decode(request.method(), request.uri().path()) {
        Ok(endpoint) => endpoint,
        Err(e) => return decode_error(e).into_response(),
    };
    let repo = endpoint.repo().map(RepoName::as_str);
    // A client without credentials, or whose token lacks this repository, is sent to the
    // token realm with the scope it needs.
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_owned();
    let scheme = request.extensions().get().copied().unwrap_or(crate::token::Scheme::Http);
    let wanted = crate::token::challenge(scheme, &host, repo, endpoint.writes());
    let challenge = |error: OciError, scope_refused: bool| {
        let mut response = error.into_response();
        // `insufficient_scope`, as docker-registry says it: clients stop there instead of
        // retrying the push for a minute.
        let value = if scope_refused { format!("{wanted},error=\"insufficient_scope\"") } else { wanted.clone() };
        if let Ok(value) = HeaderValue::from_str(&value) {
            response.headers_mut().insert(header::WWW_AUTHENTICATE, value);
        }
        response
    };
    let log_in = || OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", LOG_IN);
    let client = client_address(request.extensions());
    let caller = match registry.caller(request.headers(), client, repo).await {
        Ok(caller) => caller,
        Err(e) => {
            tracing::debug!(method = %request.method(), path = request.uri().path(), code = e.code, "registry.refused");
            return if e.status == StatusCode::UNAUTHORIZED { challenge(log_in(), false) } else { e.into_response() };
        }
    };
    let allowed = if endpoint.writes() { caller.grant.push } else { caller.grant.pull };
    // A token holder is challenged for what its token does not cover; what was asked for
    // and refused is denied, as a challenge for a scope it cannot have.
    if let (Identity::Token(claims), Some(repo)) = (&caller.identity, repo)
        && !allowed
    {
        return if claims.refused(repo) {
            tracing::debug!(method = %request.method(), path = request.uri().path(), principal = caller.principal, "registry.denied");
            let denied =
                OciError::new(StatusCode::UNAUTHORIZED, "DENIED", "requested access to the resource is denied");
            challenge(denied, true)
        } else {
            challenge(log_in(), false)
        };
    }
    if endpoint.repo().is_some() && !allowed {
        tracing::debug!(method = %request.method(), path = request.uri().path(), principal = caller.principal, "registry.denied");
        return OciError::new(StatusCode::FORBIDDEN, "DENIED", "requested access to the resource is denied")
            .into_response();
    }
    let query: HashMap<String, String> = Query::try_from_uri(request.uri()).map(|Query(q)| q).unwrap_or_default();
    let r = &registry;
    if let Some(id) = endpoint.upload_id() {
        match r.upload_elsewhere(id).await {
            Ok(Some(owner)) => return pass_to_owner(r, &owner, request).await,
            Ok(None) => {}
            Err(e) => return e.into_response(),
        }
    }
    let result = match endpoint {
        Endpoint::Base => Ok(base()),
        Endpoint::Catalog => catalog(r, &caller, &query).await,
        Endpoint::BlobGet { repo, digest, head } => blob_get(r, &repo, &digest, head, request.headers()).await,
        Endpoint::BlobDelete { repo, digest } => blob_delete(r, &repo, &digest).await,
        Endpoint::UploadStart { repo } => upload_start(r, &caller, repo, &query, request).await,
        Endpoint::UploadPatch { repo, id } => upload_patch(r, &caller, repo, id, request).await,
        Endpoint::UploadFinish { repo, id } => upload_finish(r, &caller, repo, id, &query, request).await,
        Endpoint::UploadStatus { repo, id } => upload_status(r, &caller, &repo, &id).await,
        Endpoint::UploadCancel { repo, id } => upload_cancel(r, &caller, &repo, &id).await,
        Endpoint::ManifestGet { repo, reference, head } => manifest_get(r, &repo, &reference, head).await,
        Endpoint::ManifestPut { repo, reference } => manifest_put(r, repo, reference, request).await,
        Endpoint::ManifestDelete { repo, reference } => manifest_delete(r, &repo, &reference).await,
        Endpoint::TagsList { repo } => tags_list(r, &repo, &query).await,
        Endpoint::Referrers { repo, digest } => referrers(r, &repo, &digest, &query).await,
    };
    let response = result.unwrap_or_else(IntoResponse::into_response);
    tracing::debug!(principal = caller.principal, status = response.status().as_u16(), "registry.request");
    response
}

/// The address a request came from, when the server knows it.
pub(super) fn client_address(extensions: &http::Extensions) -> Option<std::net::IpAddr> {
    extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|info| info.0.ip())
}

/// A request with the platform's service token, which Skiff's own maintenance endpoints
/// take: checked before anything else of the request (its body above all) is read.
pub(super) struct ServiceCaller;

impl axum::extract::FromRequestParts<Arc<Registry>> for ServiceCaller {
    type Rejection = OciError;

    async fn from_request_parts(parts: &mut http::request::Parts, registry: &Arc<Registry>) -> Result<Self, OciError> {
        match Credentials::from_headers(&parts.headers) {
            Some(c) if skiff_api::secrets_match(&c.secret, &registry.service_token) => Ok(Self),
            _ => {
                Err(OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "the platform's service token is required"))
            }
        }
    }
}

pub(super) fn repo_param(repo: &str) -> Result<RepoName, OciError> {
    RepoName::parse(repo)
        .ok_or_else(|| OciError::new(StatusCode::BAD_REQUEST, "NAME_INVALID", "invalid repository name"))
}

pub(super) fn decode_error(e: DecodeError) -> OciError {
    match e {
        DecodeError::NotFound => OciError::new(StatusCode::NOT_FOUND, "UNSUPPORTED", "no such endpoint"),
        DecodeError::MethodNotAllowed => {
            OciError::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", "method not allowed here")
        }
        DecodeError::NameInvalid => OciError::new(StatusCode::BAD_REQUEST, "NAME_INVALID", "invalid repository name"),
        DecodeError::DigestInvalid => OciError::digest_invalid("invalid digest"),
        DecodeError::ManifestUnknown => OciError::manifest_unknown(),
        DecodeError::TagInvalid => OciError::new(
            StatusCode::BAD_REQUEST,
            "TAG_INVALID",
            "invalid tag: up to 128 letters, digits, `_`, `.` and `-`, not starting with `.` or `-`",
        ),
    }
}

pub(super) fn base() -> Response {
    ([("Docker-Distribution-API-Version", "registry/2.0")], axum::Json(serde_json::json!({}))).into_response()
}

pub(super) fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

pub(super) fn with_digest(mut response: Response, digest: &Digest) -> Response {
    set_header(&mut response, "docker-content-digest", digest.as_str());
    response
}

pub(super) fn location(status: StatusCode, location: &str) -> Response {
    let mut response = status.into_response();
    set_header(&mut response, "location", location);
    response
}
