//! The registry's HTTP surface: one fallback handler decodes every request into an
//! [`Endpoint`], authenticates it, and dispatches it.

use std::collections::HashMap;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use skiff_api::{Digest, DigestAlgorithm, RegistryGrant};
use skiff_service::{Answers, Readiness};
use skiff_store::{BlobStore, RecordStore, Staged};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::auth::{Authorizer, Credentials};
use crate::endpoint::{DecodeError, Endpoint, Reference, RepoName};
use crate::error::OciError;
use crate::meta::Meta;
use crate::token::{Access, Claims, Signer};
use crate::upload::{SessionBlob, Uploads};

/// The largest manifest accepted (the spec asks for at least 4 MB).
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// The most entries one catalog, tags or referrers page returns.
const MAX_PAGE: usize = 1000;
/// Blobs younger than this survive a collection (their manifest may not be pushed yet).
const DEFAULT_GC_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);
/// Blobs are read and sent in pieces this large.
const READ_CHUNK: usize = 1024 * 1024;
/// What a client without (valid) credentials is told.
const LOG_IN: &str = "authentication required: `docker login` with your Skiff user name and password or API token";
/// The principal name of the platform's own components.
const SERVICE: &str = "skiff-service";
const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";

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
const EMPTY_BLOB: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

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
enum Identity {
    /// The platform's own components.
    Service,
    /// A user's password or API token, checked by the authorizer.
    Credentials(Credentials),
    /// A token this registry issued (Docker's token flow).
    Token(Claims),
}

/// An authenticated caller and what it may do in the request's repository.
struct Caller {
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
pub async fn serve(listener: TcpListener, registry: Arc<Registry>, shutdown: CancellationToken) -> std::io::Result<()> {
    // Requests carry the client's address, for counting failed sign-ins.
    let service = router(registry).into_make_service_with_connect_info::<std::net::SocketAddr>();
    axum::serve(listener, service).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

async fn handle(State(registry): State<Arc<Registry>>, request: Request) -> Response {
    let endpoint = match Endpoint::decode(request.method(), request.uri().path()) {
        Ok(endpoint) => endpoint,
        Err(e) => return decode_error(e).into_response(),
    };
    let repo = endpoint.repo().map(RepoName::as_str);
    // A client without credentials, or whose token lacks this repository, is sent to the
    // token realm with the scope it needs.
    let host = request.headers().get(header::HOST).and_then(|h| h.to_str().ok()).unwrap_or("127.0.0.1").to_owned();
    let wanted = crate::token::challenge(&host, repo, endpoint.writes());
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

/// `GET /v2/token?service=skiff&scope=repository:NAME:pull,push` (any number of scopes)
/// with Basic credentials: a token for what they may do there, as Docker's token flow
/// expects (`token` and `access_token`, `expires_in`, `issued_at`). Without a scope (what
/// `docker login` asks), a token that only proves the login.
async fn issue_token(
    State(registry): State<Arc<Registry>>,
    extensions: http::Extensions,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, OciError> {
    let credentials = Credentials::from_request(&headers, client_address(&extensions))
        .ok_or_else(|| OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", LOG_IN))?;
    let unauthorized = || OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "wrong user name or password");
    let scopes = query.iter().filter(|(k, _)| k == "scope").filter_map(|(_, v)| crate::token::parse_scope(v)).collect();
    let access = registry.token_access(&credentials, scopes).await?.ok_or_else(unauthorized)?;
    let now = time::OffsetDateTime::now_utc();
    let subject = credentials.username.clone().unwrap_or_else(|| "token".into());
    let claims = Claims { subject, expires: now.unix_timestamp() + crate::token::LIFETIME_SECS, access };
    let token = registry.tokens.issue(&claims);
    let issued_at = now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    tracing::debug!(subject = claims.subject, scopes = claims.access.len(), "registry.token");
    Ok(axum::Json(serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": crate::token::LIFETIME_SECS,
        "issued_at": issued_at,
    }))
    .into_response())
}

/// The address a request came from, when the server knows it.
fn client_address(extensions: &http::Extensions) -> Option<std::net::IpAddr> {
    extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>().map(|info| info.0.ip())
}

/// A request with the platform's service token, which Skiff's own maintenance endpoints
/// take: checked before anything else of the request (its body above all) is read.
struct ServiceCaller;

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

fn repo_param(repo: &str) -> Result<RepoName, OciError> {
    RepoName::parse(repo)
        .ok_or_else(|| OciError::new(StatusCode::BAD_REQUEST, "NAME_INVALID", "invalid repository name"))
}

#[derive(serde::Deserialize)]
struct PullTokenRequest {
    subject: String,
    repositories: Vec<String>,
}

/// `POST /_skiff/tokens {"subject": "alice", "repositories": [...]}`: a token that may pull
/// those repositories and nothing else, for the builder to hand the engine for one build
/// (the builder has checked with the controller that the subject may pull them).
async fn issue_pull_token(
    State(registry): State<Arc<Registry>>,
    _: ServiceCaller,
    axum::Json(body): axum::Json<PullTokenRequest>,
) -> Result<Response, OciError> {
    let mut access = Vec::with_capacity(body.repositories.len());
    for repository in body.repositories {
        let repository = repo_param(&repository)?.as_str().to_owned();
        access.push(Access { repository, pull: true, push: false, refused: false });
    }
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + crate::token::LIFETIME_SECS;
    let token = registry.tokens.issue(&Claims { subject: body.subject, expires, access });
    Ok(axum::Json(serde_json::json!({ "token": token })).into_response())
}

/// `POST /_skiff/gc?dry_run=true&grace_secs=3600`: one collection at a time.
async fn collect_garbage(
    State(registry): State<Arc<Registry>>,
    _: ServiceCaller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, OciError> {
    let dry_run = query.get("dry_run").is_some_and(|v| v == "true" || v == "1");
    let grace =
        query.get("grace_secs").and_then(|g| g.parse().ok()).map_or(DEFAULT_GC_GRACE, std::time::Duration::from_secs);
    let _one_at_a_time = registry.gc.lock().await;
    let report = crate::gc::collect(&registry.meta, registry.store.as_ref(), grace, dry_run).await?;
    tracing::info!(deleted = report.deleted.len(), bytes = report.bytes, dry_run, "registry.gc");
    Ok(axum::Json(report).into_response())
}

/// `POST /_skiff/retain/<repo>` with `{"manifests": [digest, …]}`: unlinks every other
/// manifest of the repository.
async fn retain(
    State(registry): State<Arc<Registry>>,
    _: ServiceCaller,
    axum::extract::Path(repo): axum::extract::Path<String>,
    axum::Json(body): axum::Json<RetainBody>,
) -> Result<Response, OciError> {
    let repo = repo_param(&repo)?;
    let keep = body.manifests.into_iter().collect();
    let unlinked = crate::gc::retain(&registry.meta, &repo, &keep).await?;
    Ok(axum::Json(serde_json::json!({ "unlinked": unlinked })).into_response())
}

#[derive(serde::Deserialize)]
struct RetainBody {
    manifests: Vec<Digest>,
}

/// `DELETE /_skiff/repositories/<repo>`: forgets a repository (its blobs go at the next
/// collection).
async fn forget_repository(
    State(registry): State<Arc<Registry>>,
    _: ServiceCaller,
    axum::extract::Path(repo): axum::extract::Path<String>,
) -> Result<Response, OciError> {
    registry.meta.remove_repository(&repo_param(&repo)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn decode_error(e: DecodeError) -> OciError {
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

fn base() -> Response {
    ([("Docker-Distribution-API-Version", "registry/2.0")], axum::Json(serde_json::json!({}))).into_response()
}

fn set_header(response: &mut Response, name: &'static str, value: &str) {
    if let Ok(value) = HeaderValue::from_str(value) {
        response.headers_mut().insert(name, value);
    }
}

fn with_digest(mut response: Response, digest: &Digest) -> Response {
    set_header(&mut response, "docker-content-digest", digest.as_str());
    response
}

fn location(status: StatusCode, location: &str) -> Response {
    let mut response = status.into_response();
    set_header(&mut response, "location", location);
    response
}

/// `n` from a query, capped at [`MAX_PAGE`].
fn page_size(query: &HashMap<String, String>) -> usize {
    query.get("n").and_then(|n| n.parse().ok()).unwrap_or(MAX_PAGE).min(MAX_PAGE)
}

/// One page of a sorted list: entries after `last`, at most `n`, and whether more remain.
fn paginate(items: Vec<String>, query: &HashMap<String, String>) -> (Vec<String>, Option<String>) {
    let limit = page_size(query);
    let mut after: Vec<String> = match query.get("last") {
        Some(last) => items.into_iter().filter(|t| t > last).collect(),
        None => items,
    };
    let more = after.len() > limit && limit > 0;
    after.truncate(limit);
    let next = if more { after.last().cloned() } else { None };
    (after, next)
}

fn link_next(response: &mut Response, path: &str, limit: usize, last: Option<String>) {
    if let Some(last) = last {
        set_header(response, "link", &format!("<{path}?n={limit}&last={last}>; rel=\"next\""));
    }
}

async fn catalog(registry: &Registry, caller: &Caller, query: &HashMap<String, String>) -> Result<Response, OciError> {
    let mut visible = Vec::new();
    for repo in registry.meta.repositories().await? {
        let has_manifests = match RepoName::parse(&repo) {
            Some(name) => !registry.meta.manifests(&name).await?.is_empty(),
            None => false,
        };
        if !has_manifests {
            continue;
        }
        let readable = match (&caller.identity, RepoName::parse(&repo)) {
            (Identity::Service, _) => true,
            (_, Some(name)) => registry.may_pull(caller, &name).await,
            (_, None) => false,
        };
        if readable {
            visible.push(repo);
        }
    }
    let (page, next) = paginate(visible, query);
    let mut response = axum::Json(serde_json::json!({ "repositories": page })).into_response();
    link_next(&mut response, "/v2/_catalog", page_size(query), next);
    Ok(response)
}

/// A parsed `Range: bytes=…` against a blob of `size` bytes: `Ok(None)` without a header,
/// `Err` (416) when unsatisfiable.
fn byte_range(headers: &HeaderMap, size: u64) -> Result<Option<(u64, u64)>, OciError> {
    let Some(value) = headers.get(header::RANGE) else { return Ok(None) };
    let unsatisfiable = || OciError::new(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UNKNOWN", "range not satisfiable");
    let spec = value.to_str().ok().and_then(|v| v.trim().strip_prefix("bytes=")).ok_or_else(unsatisfiable)?;
    let (start, end) = spec.split_once('-').ok_or_else(unsatisfiable)?;
    let (start, end) = match (start.trim(), end.trim()) {
        ("", suffix) => {
            let n: u64 = suffix.parse().map_err(|_| unsatisfiable())?;
            (size.saturating_sub(n), size.saturating_sub(1))
        }
        (start, "") => (start.parse().map_err(|_| unsatisfiable())?, size.saturating_sub(1)),
        (start, end) => {
            let start: u64 = start.parse().map_err(|_| unsatisfiable())?;
            let end: u64 = end.parse().map_err(|_| unsatisfiable())?;
            (start, end.min(size.saturating_sub(1)))
        }
    };
    if start >= size || start > end {
        return Err(unsatisfiable());
    }
    Ok(Some((start, end)))
}

async fn blob_get(
    registry: &Registry,
    repo: &RepoName,
    digest: &Digest,
    head: bool,
    headers: &HeaderMap,
) -> Result<Response, OciError> {
    if !registry.meta.has_blob(repo, digest).await? {
        return Err(OciError::blob_unknown());
    }
    let size = registry.store.size(digest).await?.ok_or_else(OciError::blob_unknown)?;
    let range = byte_range(headers, size)?;
    let (status, start, end) = match range {
        Some((start, end)) => (StatusCode::PARTIAL_CONTENT, start, end + 1),
        None => (StatusCode::OK, 0, size),
    };
    let body = if head {
        Body::empty()
    } else {
        let blob = registry.store.open_range(digest, start, end).await?.ok_or_else(OciError::blob_unknown)?;
        Body::from_stream(tokio_util::io::ReaderStream::with_capacity(blob.body, READ_CHUNK))
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes");
    if range.is_some() {
        builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", end - 1));
    }
    Ok(with_digest(builder.body(body).map_err(OciError::internal)?, digest))
}

async fn blob_delete(registry: &Registry, repo: &RepoName, digest: &Digest) -> Result<Response, OciError> {
    // The bytes stay in the store until garbage collection: other repositories may share them.
    if registry.meta.unlink_blob(repo, digest).await? {
        Ok(StatusCode::ACCEPTED.into_response())
    } else {
        Err(OciError::blob_unknown())
    }
}

fn parse_digest(value: &str) -> Result<Digest, OciError> {
    value.parse().map_err(|_| {
        OciError::digest_invalid(format!("invalid digest `{}`", value.chars().take(80).collect::<String>()))
    })
}

async fn upload_start(
    registry: &Registry,
    caller: &Caller,
    repo: RepoName,
    query: &HashMap<String, String>,
    request: Request,
) -> Result<Response, OciError> {
    if let Some(mount) = query.get("mount") {
        let digest = parse_digest(mount)?;
        // Mount only from a named repository the caller may read that holds the blob.
        if let Some(from) = query.get("from").and_then(|f| RepoName::parse(f))
            && registry.may_pull(caller, &from).await
            && registry.meta.has_blob(&from, &digest).await?
            && registry.store.size(&digest).await?.is_some()
        {
            registry.meta.link_blob(&repo, &digest).await?;
            let target = format!("/v2/{}/blobs/{digest}", repo.as_str());
            return Ok(with_digest(location(StatusCode::CREATED, &target), &digest));
        }
    }
    let algorithm = match query.get("digest-algorithm").map(String::as_str) {
        None | Some("sha256") => DigestAlgorithm::Sha256,
        Some("sha512") => DigestAlgorithm::Sha512,
        Some(_) => return Err(OciError::digest_invalid("unsupported digest algorithm; use sha256 or sha512")),
    };
    let digest = query.get("digest").map(|d| parse_digest(d)).transpose()?;
    let algorithm = digest.as_ref().map_or(algorithm, Digest::algorithm);
    let staged = registry.store.stage(algorithm).await?;
    let id = registry.uploads.open(&repo, &caller.principal, staged);
    if let Some(own) = &registry.peer_url {
        registry.meta.record_upload(&id, own).await?;
    }
    if let Some(digest) = digest {
        // Single-POST upload: the body is the whole blob.
        append_chunk(registry, caller, &repo, &id, request).await?;
        return finish(registry, caller, &repo, &id, &digest).await;
    }
    Ok(upload_accepted(&repo, &id, 0))
}

fn upload_accepted(repo: &RepoName, id: &str, size: u64) -> Response {
    let mut response = location(StatusCode::ACCEPTED, &format!("/v2/{}/blobs/uploads/{id}", repo.as_str()));
    set_header(&mut response, "range", &format!("0-{}", size.saturating_sub(1)));
    set_header(&mut response, "docker-upload-uuid", id);
    response
}

/// Parses `Content-Range: <start>-<end>` (inclusive).
fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, OciError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else { return Ok(None) };
    let text = value.to_str().unwrap_or("").trim();
    let text = text.strip_prefix("bytes ").unwrap_or(text);
    let text = text.split('/').next().unwrap_or("");
    let range = text.split_once('-').and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
    match range {
        Some((start, end)) if start <= end => Ok(Some((start, end))),
        _ => Err(OciError::new(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID", "invalid Content-Range")),
    }
}

/// Appends a request body to a staged blob.
async fn append(staged: &mut Staged, body: Body) -> Result<(), OciError> {
    let mut stream = body.into_data_stream();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            OciError::new(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", format!("upload body broke off: {e}"))
        })?;
        staged.write(chunk).await?;
    }
    Ok(())
}

/// Appends a chunk, checking that a `Content-Range` starts where the upload stands; returns
/// the new size. A body that breaks off leaves the upload where it was.
async fn append_chunk(
    registry: &Registry,
    caller: &Caller,
    repo: &RepoName,
    id: &str,
    request: Request,
) -> Result<u64, OciError> {
    let blob = registry.uploads.get(repo, &caller.principal, id).ok_or_else(OciError::upload_unknown)?;
    let mut guard = blob.lock().await;
    let staged = guard.as_mut().ok_or_else(OciError::upload_unknown)?;
    let before = staged.size();
    if let Some((start, _)) = content_range(request.headers())?
        && start != before
    {
        return Err(OciError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            format!("chunk starts at {start} but the upload has {before} bytes"),
        ));
    }
    if let Err(e) = append(staged, request.into_body()).await {
        staged.truncate(before).await?;
        return Err(e);
    }
    Ok(staged.size())
}

async fn upload_patch(
    registry: &Registry,
    caller: &Caller,
    repo: RepoName,
    id: String,
    request: Request,
) -> Result<Response, OciError> {
    let size = append_chunk(registry, caller, &repo, &id, request).await?;
    Ok(upload_accepted(&repo, &id, size))
}

async fn upload_finish(
    registry: &Registry,
    caller: &Caller,
    repo: RepoName,
    id: String,
    query: &HashMap<String, String>,
    request: Request,
) -> Result<Response, OciError> {
    let digest = parse_digest(query.get("digest").ok_or_else(|| OciError::digest_invalid("missing digest"))?)?;
    append_chunk(registry, caller, &repo, &id, request).await?;
    finish(registry, caller, &repo, &id, &digest).await
}

/// Verifies and stores a finished upload; the session closes either way.
async fn finish(
    registry: &Registry,
    caller: &Caller,
    repo: &RepoName,
    id: &str,
    digest: &Digest,
) -> Result<Response, OciError> {
    let blob = registry.close_upload(repo, &caller.principal, id).await?;
    let staged = blob.lock().await.take().ok_or_else(OciError::upload_unknown)?;
    registry.store.commit(staged, digest).await?;
    registry.meta.link_blob(repo, digest).await?;
    let target = format!("/v2/{}/blobs/{digest}", repo.as_str());
    Ok(with_digest(location(StatusCode::CREATED, &target), digest))
}

async fn upload_status(registry: &Registry, caller: &Caller, repo: &RepoName, id: &str) -> Result<Response, OciError> {
    let blob = registry.uploads.get(repo, &caller.principal, id).ok_or_else(OciError::upload_unknown)?;
    let size = blob.lock().await.as_ref().map(Staged::size).ok_or_else(OciError::upload_unknown)?;
    let mut response = upload_accepted(repo, id, size);
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

async fn upload_cancel(registry: &Registry, caller: &Caller, repo: &RepoName, id: &str) -> Result<Response, OciError> {
    let blob = registry.close_upload(repo, &caller.principal, id).await?;
    if let Some(staged) = blob.lock().await.take() {
        staged.discard().await;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Request headers that matter to an upload, passed on with it.
const UPLOAD_HEADERS: [header::HeaderName; 4] =
    [header::AUTHORIZATION, header::CONTENT_TYPE, header::CONTENT_RANGE, header::CONTENT_LENGTH];

/// Passes a request for an upload session to the registry at `owner` that holds it,
/// streaming the body both ways. When that registry cannot be reached the session is
/// unknown: the client starts the upload again.
async fn pass_to_owner(registry: &Registry, owner: &str, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let target = format!("{owner}{}", parts.uri.path_and_query().map_or("/", |p| p.as_str()));
    let mut passed = registry.peers.request(parts.method, target);
    for name in UPLOAD_HEADERS {
        if let Some(value) = parts.headers.get(&name) {
            passed = passed.header(name, value);
        }
    }
    let answer = match passed.body(reqwest::Body::wrap_stream(body.into_data_stream())).send().await {
        Ok(answer) => answer,
        Err(error) => {
            tracing::warn!(%error, owner, "registry.upload: the registry holding this upload cannot be reached");
            return OciError::upload_unknown().into_response();
        }
    };
    let mut response = Response::builder().status(answer.status());
    for (name, value) in answer.headers() {
        if !matches!(*name, header::CONNECTION | header::TRANSFER_ENCODING) {
            response = response.header(name, value);
        }
    }
    response.body(Body::from_stream(answer.bytes_stream())).unwrap_or_else(|_| StatusCode::BAD_GATEWAY.into_response())
}

async fn resolve(registry: &Registry, repo: &RepoName, reference: &Reference) -> Result<Digest, OciError> {
    match reference {
        Reference::Digest(digest) => Ok(digest.clone()),
        Reference::Tag(tag) => registry.meta.tag(repo, tag).await?.ok_or_else(OciError::manifest_unknown),
    }
}

async fn manifest_get(
    registry: &Registry,
    repo: &RepoName,
    reference: &Reference,
    head: bool,
) -> Result<Response, OciError> {
    let digest = resolve(registry, repo, reference).await?;
    let media_type = registry.meta.manifest_type(repo, &digest).await?.ok_or_else(OciError::manifest_unknown)?;
    let bytes = registry.store.read(&digest).await?.ok_or_else(OciError::manifest_unknown)?;
    let length = bytes.len();
    let body = if head { Body::empty() } else { Body::from(bytes) };
    let response = Response::builder()
        .header(header::CONTENT_TYPE, media_type)
        .header(header::CONTENT_LENGTH, length)
        .body(body)
        .map_err(OciError::internal)?;
    Ok(with_digest(response, &digest))
}

fn is_index(media_type: &str) -> bool {
    media_type == OCI_INDEX || media_type == "application/vnd.docker.distribution.manifest.list.v2+json"
}

/// What a pushed manifest refers to, after checking its shape against its media type.
struct References {
    /// Blobs (config, layers) or, for an index, manifests.
    descriptors: Vec<Digest>,
    subject: Option<Digest>,
}

fn descriptor_digest(descriptor: &serde_json::Value) -> Result<Digest, OciError> {
    descriptor
        .get("digest")
        .and_then(|v| v.as_str())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| OciError::manifest_invalid("descriptor without a valid digest"))
}

fn references(media_type: &str, body: &serde_json::Value) -> Result<References, OciError> {
    if let Some(declared) = body.get("mediaType").and_then(|v| v.as_str())
        && declared != media_type
    {
        return Err(OciError::manifest_invalid(format!(
            "Content-Type {media_type} does not match the manifest's mediaType {declared}"
        )));
    }
    let descriptors: Vec<&serde_json::Value> = if is_index(media_type) {
        if body.get("layers").is_some() || body.get("config").is_some() {
            return Err(OciError::manifest_invalid("an index has no config or layers"));
        }
        body.get("manifests").and_then(|m| m.as_array()).map(|m| m.iter().collect()).unwrap_or_default()
    } else {
        if body.get("manifests").is_some() {
            return Err(OciError::manifest_invalid("an image manifest has no `manifests`; push it as an index"));
        }
        let config = body.get("config").ok_or_else(|| OciError::manifest_invalid("manifest has no config"))?;
        let layers = body.get("layers").and_then(|l| l.as_array()).into_iter().flatten();
        std::iter::once(config).chain(layers).collect()
    };
    let subject = body.get("subject").map(descriptor_digest).transpose()?;
    Ok(References { descriptors: descriptors.into_iter().map(descriptor_digest).collect::<Result<_, _>>()?, subject })
}

/// The referrers-API descriptor of a manifest: its artifact type (or config media type)
/// and annotations.
fn referrer_descriptor(media_type: &str, digest: &Digest, size: usize, body: &serde_json::Value) -> Vec<u8> {
    let artifact_type = body
        .get("artifactType")
        .and_then(|v| v.as_str())
        .or_else(|| body.pointer("/config/mediaType").and_then(|v| v.as_str()));
    let mut descriptor = serde_json::json!({ "mediaType": media_type, "digest": digest, "size": size });
    if let Some(artifact_type) = artifact_type {
        descriptor["artifactType"] = artifact_type.into();
    }
    if let Some(annotations) = body.get("annotations") {
        descriptor["annotations"] = annotations.clone();
    }
    serde_json::to_vec(&descriptor).expect("JSON values serialize")
}

async fn manifest_put(
    registry: &Registry,
    repo: RepoName,
    reference: Reference,
    request: Request,
) -> Result<Response, OciError> {
    let media_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(|v| v.split(';').next().unwrap_or("").trim().to_owned())
        .filter(|v| !v.is_empty())
        .ok_or_else(|| OciError::manifest_invalid("Content-Type must name the manifest's media type"))?;
    let bytes: Bytes = axum::body::to_bytes(request.into_body(), MAX_MANIFEST_BYTES)
        .await
        .map_err(|_| OciError::new(StatusCode::PAYLOAD_TOO_LARGE, "SIZE_INVALID", "manifest too large"))?;
    // Hash and parse the same bytes.
    let digest = match &reference {
        Reference::Digest(expected) => {
            let digest = skiff_store::digest::of_bytes(expected.algorithm(), &bytes);
            if &digest != expected {
                return Err(OciError::digest_invalid("manifest does not hash to the digest it was pushed under"));
            }
            digest
        }
        Reference::Tag(_) => skiff_store::digest::of_bytes(DigestAlgorithm::Sha256, &bytes),
    };
    let body: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| OciError::manifest_invalid(format!("manifest is not JSON: {e}")))?;
    let references = references(&media_type, &body)?;
    for referenced in &references.descriptors {
        let known = if is_index(&media_type) {
            registry.meta.manifest_type(&repo, referenced).await?.is_some()
        } else {
            registry.meta.has_blob(&repo, referenced).await? && registry.store.size(referenced).await?.is_some()
        };
        if !known {
            return Err(OciError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                format!("manifest references {referenced}, unknown in {}", repo.as_str()),
            ));
        }
    }
    let size = bytes.len();
    registry.store.put_bytes(&digest, bytes).await?;
    registry.meta.link_manifest(&repo, &digest, &media_type).await?;
    if let Reference::Tag(tag) = &reference {
        registry.meta.set_tag(&repo, tag, &digest).await?;
    }
    let target = format!("/v2/{}/manifests/{digest}", repo.as_str());
    let mut response = with_digest(location(StatusCode::CREATED, &target), &digest);
    if let Some(subject) = &references.subject {
        let descriptor = referrer_descriptor(&media_type, &digest, size, &body);
        registry.meta.add_referrer(&repo, subject, &digest, &descriptor).await?;
        set_header(&mut response, "oci-subject", subject.as_str());
    }
    Ok(response)
}

async fn manifest_delete(registry: &Registry, repo: &RepoName, reference: &Reference) -> Result<Response, OciError> {
    let found = match reference {
        Reference::Tag(tag) => registry.meta.remove_tag(repo, tag).await?,
        Reference::Digest(digest) => {
            // Drop it from the referrers of its subject, if it had one.
            let media_type = registry.meta.manifest_type(repo, digest).await?;
            if let (Some(media_type), Some(bytes)) = (media_type, registry.store.read(digest).await?) {
                let subject = serde_json::from_slice::<serde_json::Value>(&bytes)
                    .ok()
                    .and_then(|body| references(&media_type, &body).ok())
                    .and_then(|r| r.subject);
                if let Some(subject) = subject {
                    registry.meta.remove_referrer(repo, &subject, digest).await?;
                }
            }
            registry.meta.unlink_manifest(repo, digest).await?
        }
    };
    if found { Ok(StatusCode::ACCEPTED.into_response()) } else { Err(OciError::manifest_unknown()) }
}

async fn tags_list(
    registry: &Registry,
    repo: &RepoName,
    query: &HashMap<String, String>,
) -> Result<Response, OciError> {
    let tags = registry.meta.tags(repo).await?.ok_or_else(OciError::name_unknown)?;
    let (page, next) = paginate(tags, query);
    let mut response = axum::Json(serde_json::json!({ "name": repo.as_str(), "tags": page })).into_response();
    link_next(&mut response, &format!("/v2/{}/tags/list", repo.as_str()), page_size(query), next);
    Ok(response)
}

async fn referrers(
    registry: &Registry,
    repo: &RepoName,
    subject: &Digest,
    query: &HashMap<String, String>,
) -> Result<Response, OciError> {
    let filter = query.get("artifactType");
    let manifests: Vec<serde_json::Value> = registry
        .meta
        .referrers(repo, subject)
        .await?
        .iter()
        .filter_map(|bytes| serde_json::from_slice::<serde_json::Value>(bytes).ok())
        .filter(|d| filter.is_none_or(|f| d.get("artifactType").and_then(|a| a.as_str()) == Some(f.as_str())))
        .take(MAX_PAGE)
        .collect();
    let index = serde_json::json!({ "schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests });
    let mut response =
        ([(header::CONTENT_TYPE, OCI_INDEX)], serde_json::to_vec(&index).expect("JSON values serialize"))
            .into_response();
    if filter.is_some() {
        set_header(&mut response, "oci-filters-applied", "artifactType");
    }
    Ok(response)
}
