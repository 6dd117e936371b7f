//! The registry's HTTP surface: one fallback handler decodes every request into an
//! [`Endpoint`] and dispatches it.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, Request, State};
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, HeaderValue, StatusCode, header};
use skiff_api::Digest;
use skiff_store::BlobStore;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::endpoint::{DecodeError, Endpoint, Reference, RepoName};
use crate::error::OciError;
use crate::meta::Meta;
use crate::upload::Uploads;

/// The largest manifest accepted (the spec asks for at least 4 MB).
const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;
/// The most entries one catalog or tags page returns.
const MAX_PAGE: usize = 1000;

/// Registry settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where metadata and upload staging live.
    pub data_dir: PathBuf,
    /// The platform's service token; pushes must present it as the Basic password.
    pub service_token: String,
}

/// The registry's state, shared by every request.
pub struct Registry {
    store: Arc<dyn BlobStore>,
    meta: Meta,
    uploads: Uploads,
    service_token: String,
}

impl Registry {
    pub fn new(config: Config, store: Arc<dyn BlobStore>) -> Arc<Self> {
        Arc::new(Self {
            store,
            meta: Meta::new(config.data_dir.join("repositories")),
            uploads: Uploads::new(config.data_dir.join("uploads")),
            service_token: config.service_token,
        })
    }

    fn may_write(&self, headers: &HeaderMap) -> bool {
        let Some(encoded) =
            headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Basic "))
        else {
            return false;
        };
        let Ok(decoded) = base64::engine::general_purpose::STANDARD.decode(encoded.trim()) else {
            return false;
        };
        let decoded = String::from_utf8_lossy(&decoded);
        decoded.split_once(':').is_some_and(|(_, password)| password == self.service_token)
    }
}

/// The registry as an axum router.
pub fn router(registry: Arc<Registry>) -> Router {
    Router::new()
        .route("/healthz", axum::routing::get(|| async { "ok" }))
        .route("/readyz", axum::routing::get(|| async { "ok" }))
        .fallback(handle)
        .with_state(registry)
}

/// Serves until `shutdown` is cancelled; in-flight requests finish.
pub async fn serve(listener: TcpListener, registry: Arc<Registry>, shutdown: CancellationToken) -> std::io::Result<()> {
    axum::serve(listener, router(registry)).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

async fn handle(State(registry): State<Arc<Registry>>, request: Request) -> Response {
    let endpoint = match Endpoint::decode(request.method(), request.uri().path()) {
        Ok(endpoint) => endpoint,
        Err(e) => return decode_error(e).into_response(),
    };
    if endpoint.writes() && !registry.may_write(request.headers()) {
        return OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "authentication required to push")
            .into_response();
    }
    let query: HashMap<String, String> = Query::try_from_uri(request.uri()).map(|Query(q)| q).unwrap_or_default();
    let result = match endpoint {
        Endpoint::Base => Ok(base()),
        Endpoint::Catalog => catalog(&registry, &query).await,
        Endpoint::BlobGet { digest, head, .. } => blob_get(&registry, &digest, head).await,
        Endpoint::BlobDelete { digest, .. } => blob_delete(&registry, &digest).await,
        Endpoint::UploadStart { repo } => upload_start(&registry, repo, &query, request).await,
        Endpoint::UploadPatch { repo, id } => upload_patch(&registry, repo, id, request).await,
        Endpoint::UploadFinish { repo, id } => upload_finish(&registry, repo, id, &query, request).await,
        Endpoint::UploadStatus { repo, id } => upload_status(&registry, &repo, &id),
        Endpoint::UploadCancel { repo, id } => upload_cancel(&registry, &repo, &id).await,
        Endpoint::ManifestGet { repo, reference, head } => manifest_get(&registry, &repo, &reference, head).await,
        Endpoint::ManifestPut { repo, reference } => manifest_put(&registry, repo, reference, request).await,
        Endpoint::ManifestDelete { repo, reference } => manifest_delete(&registry, &repo, &reference).await,
        Endpoint::TagsList { repo } => tags_list(&registry, &repo, &query).await,
    };
    result.unwrap_or_else(IntoResponse::into_response)
}

fn decode_error(e: DecodeError) -> OciError {
    match e {
        DecodeError::NotFound => OciError::new(StatusCode::NOT_FOUND, "UNSUPPORTED", "no such endpoint"),
        DecodeError::MethodNotAllowed => {
            OciError::new(StatusCode::METHOD_NOT_ALLOWED, "UNSUPPORTED", "method not allowed here")
        }
        DecodeError::NameInvalid => OciError::new(StatusCode::BAD_REQUEST, "NAME_INVALID", "invalid repository name"),
        DecodeError::DigestInvalid => OciError::digest_invalid("invalid digest"),
        DecodeError::ReferenceInvalid => OciError::manifest_invalid("invalid tag or digest"),
    }
}

fn base() -> Response {
    ([("Docker-Distribution-API-Version", "registry/2.0")], axum::Json(serde_json::json!({}))).into_response()
}

fn with_digest(mut response: Response, digest: &Digest) -> Response {
    if let Ok(value) = HeaderValue::from_str(digest.as_str()) {
        response.headers_mut().insert("Docker-Content-Digest", value);
    }
    response
}

fn location(status: StatusCode, location: &str) -> Response {
    let mut response = status.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

async fn catalog(registry: &Registry, query: &HashMap<String, String>) -> Result<Response, OciError> {
    let limit = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let repositories = registry.meta.repositories(limit).await?;
    Ok(axum::Json(serde_json::json!({ "repositories": repositories })).into_response())
}

async fn blob_get(registry: &Registry, digest: &Digest, head: bool) -> Result<Response, OciError> {
    let blob = registry.store.open(digest).await?.ok_or_else(OciError::blob_unknown)?;
    let body = if head { Body::empty() } else { Body::from_stream(tokio_util::io::ReaderStream::new(blob.body)) };
    let response = Response::builder()
        .header(header::CONTENT_LENGTH, blob.size)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(body)
        .map_err(OciError::internal)?;
    Ok(with_digest(response, digest))
}

async fn blob_delete(registry: &Registry, digest: &Digest) -> Result<Response, OciError> {
    registry.store.size(digest).await?.ok_or_else(OciError::blob_unknown)?;
    registry.store.delete(digest).await?;
    Ok(StatusCode::ACCEPTED.into_response())
}

async fn upload_start(
    registry: &Registry,
    repo: RepoName,
    query: &HashMap<String, String>,
    request: Request,
) -> Result<Response, OciError> {
    if let Some(mount) = query.get("mount") {
        let digest: Digest = mount.parse().map_err(|_| OciError::digest_invalid("invalid mount digest"))?;
        if registry.store.size(&digest).await?.is_some() {
            let target = format!("/v2/{}/blobs/{digest}", repo.as_str());
            return Ok(with_digest(location(StatusCode::CREATED, &target), &digest));
        }
    }
    let id = registry.uploads.start(&repo).await?;
    if let Some(digest) = query.get("digest") {
        // Single-POST upload: the body is the whole blob.
        let digest: Digest = digest.parse().map_err(|_| OciError::digest_invalid("invalid digest"))?;
        let upload = registry.uploads.get(&repo, &id).ok_or_else(OciError::upload_unknown)?;
        append(&upload.path, request.into_body()).await?;
        return finish(registry, &repo, &id, &digest).await;
    }
    Ok(upload_accepted(&repo, &id, 0))
}

fn upload_accepted(repo: &RepoName, id: &str, size: u64) -> Response {
    let mut response = location(StatusCode::ACCEPTED, &format!("/v2/{}/blobs/uploads/{id}", repo.as_str()));
    let headers = response.headers_mut();
    headers.insert(header::RANGE, HeaderValue::from_str(&format!("0-{}", size.saturating_sub(1))).expect("ascii"));
    headers.insert("Docker-Upload-UUID", HeaderValue::from_str(id).expect("hex id"));
    response
}

/// Parses `Content-Range: <start>-<end>` (inclusive).
fn content_range(headers: &HeaderMap) -> Result<Option<(u64, u64)>, OciError> {
    let Some(value) = headers.get(header::CONTENT_RANGE) else {
        return Ok(None);
    };
    let text = value.to_str().unwrap_or("").trim();
    let text = text.strip_prefix("bytes ").unwrap_or(text);
    let text = text.split('/').next().unwrap_or("");
    let range = text.split_once('-').and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)));
    match range {
        Some((start, end)) if start <= end => Ok(Some((start, end))),
        _ => Err(OciError::new(StatusCode::RANGE_NOT_SATISFIABLE, "BLOB_UPLOAD_INVALID", "invalid Content-Range")),
    }
}

/// Appends a request body to a staging file; returns the bytes written.
async fn append(path: &std::path::Path, body: Body) -> Result<u64, OciError> {
    let mut file = tokio::fs::OpenOptions::new().append(true).open(path).await?;
    let mut stream = body.into_data_stream();
    let mut written = 0u64;
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| {
            OciError::new(StatusCode::BAD_REQUEST, "BLOB_UPLOAD_INVALID", format!("upload body broke off: {e}"))
        })?;
        file.write_all(&chunk).await?;
        written += chunk.len() as u64;
    }
    file.flush().await?;
    Ok(written)
}

/// Appends a chunk, checking that a `Content-Range` starts where the upload stands.
async fn append_chunk(registry: &Registry, repo: &RepoName, id: &str, request: Request) -> Result<u64, OciError> {
    let upload = registry.uploads.get(repo, id).ok_or_else(OciError::upload_unknown)?;
    if let Some((start, _)) = content_range(request.headers())?
        && start != upload.size
    {
        return Err(OciError::new(
            StatusCode::RANGE_NOT_SATISFIABLE,
            "BLOB_UPLOAD_INVALID",
            format!("chunk starts at {start} but the upload has {} bytes", upload.size),
        ));
    }
    let written = append(&upload.path, request.into_body()).await?;
    let size = upload.size + written;
    registry.uploads.set_size(id, size);
    Ok(size)
}

async fn upload_patch(registry: &Registry, repo: RepoName, id: String, request: Request) -> Result<Response, OciError> {
    let size = append_chunk(registry, &repo, &id, request).await?;
    Ok(upload_accepted(&repo, &id, size))
}

async fn upload_finish(
    registry: &Registry,
    repo: RepoName,
    id: String,
    query: &HashMap<String, String>,
    request: Request,
) -> Result<Response, OciError> {
    let digest: Digest = query
        .get("digest")
        .ok_or_else(|| OciError::digest_invalid("missing digest"))?
        .parse()
        .map_err(|_| OciError::digest_invalid("invalid digest"))?;
    append_chunk(registry, &repo, &id, request).await?;
    finish(registry, &repo, &id, &digest).await
}

async fn finish(registry: &Registry, repo: &RepoName, id: &str, digest: &Digest) -> Result<Response, OciError> {
    let upload = registry.uploads.close(repo, id).ok_or_else(OciError::upload_unknown)?;
    registry.store.ingest_file(digest, &upload.path).await?;
    let target = format!("/v2/{}/blobs/{digest}", repo.as_str());
    Ok(with_digest(location(StatusCode::CREATED, &target), digest))
}

fn upload_status(registry: &Registry, repo: &RepoName, id: &str) -> Result<Response, OciError> {
    let upload = registry.uploads.get(repo, id).ok_or_else(OciError::upload_unknown)?;
    let mut response = upload_accepted(repo, id, upload.size);
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

async fn upload_cancel(registry: &Registry, repo: &RepoName, id: &str) -> Result<Response, OciError> {
    let upload = registry.uploads.close(repo, id).ok_or_else(OciError::upload_unknown)?;
    let _ = tokio::fs::remove_file(&upload.path).await;
    Ok(StatusCode::NO_CONTENT.into_response())
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

/// The digests a manifest or index refers to, after checking its shape.
fn referenced_digests(media_type: &str, body: &serde_json::Value) -> Result<Vec<Digest>, OciError> {
    if let Some(declared) = body.get("mediaType").and_then(|v| v.as_str())
        && declared != media_type
    {
        return Err(OciError::manifest_invalid(format!(
            "Content-Type {media_type} does not match the manifest's mediaType {declared}"
        )));
    }
    let is_index = media_type.contains("index") || media_type.contains("manifest.list");
    let descriptors: Vec<&serde_json::Value> = if is_index {
        body.get("manifests").and_then(|m| m.as_array()).map(|m| m.iter().collect()).unwrap_or_default()
    } else {
        let config = body.get("config").ok_or_else(|| OciError::manifest_invalid("manifest has no config"))?;
        let layers = body.get("layers").and_then(|l| l.as_array()).into_iter().flatten();
        std::iter::once(config).chain(layers).collect()
    };
    descriptors
        .into_iter()
        .map(|d| {
            d.get("digest")
                .and_then(|v| v.as_str())
                .and_then(|v| v.parse().ok())
                .ok_or_else(|| OciError::manifest_invalid("descriptor without a valid digest"))
        })
        .collect()
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
        Reference::Digest(expected) => skiff_store::digest::of_bytes(expected.algorithm(), &bytes),
        Reference::Tag(_) => skiff_store::digest::sha256(&bytes),
    };
    if let Reference::Digest(expected) = &reference
        && &digest != expected
    {
        return Err(OciError::digest_invalid("manifest does not hash to the digest it was pushed under"));
    }
    let body: serde_json::Value =
        serde_json::from_slice(&bytes).map_err(|e| OciError::manifest_invalid(format!("manifest is not JSON: {e}")))?;
    let is_index = media_type.contains("index") || media_type.contains("manifest.list");
    for referenced in referenced_digests(&media_type, &body)? {
        let known = if is_index {
            registry.meta.manifest_type(&repo, &referenced).await?.is_some()
        } else {
            registry.store.size(&referenced).await?.is_some()
        };
        if !known {
            return Err(OciError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                format!("manifest references unknown {referenced}"),
            ));
        }
    }
    registry.store.put_bytes(&digest, bytes).await?;
    registry.meta.link_manifest(&repo, &digest, &media_type).await?;
    if let Reference::Tag(tag) = &reference {
        registry.meta.set_tag(&repo, tag, &digest).await?;
    }
    let target = format!("/v2/{}/manifests/{digest}", repo.as_str());
    Ok(with_digest(location(StatusCode::CREATED, &target), &digest))
}

async fn manifest_delete(registry: &Registry, repo: &RepoName, reference: &Reference) -> Result<Response, OciError> {
    let found = match reference {
        Reference::Tag(tag) => registry.meta.remove_tag(repo, tag).await?,
        Reference::Digest(digest) => registry.meta.unlink_manifest(repo, digest).await?,
    };
    if found { Ok(StatusCode::ACCEPTED.into_response()) } else { Err(OciError::manifest_unknown()) }
}

async fn tags_list(
    registry: &Registry,
    repo: &RepoName,
    query: &HashMap<String, String>,
) -> Result<Response, OciError> {
    let tags = registry.meta.tags(repo).await?.ok_or_else(OciError::name_unknown)?;
    let after: Vec<String> = match query.get("last") {
        Some(last) => tags.into_iter().filter(|t| t > last).collect(),
        None => tags,
    };
    let limit = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(MAX_PAGE).min(MAX_PAGE);
    let page: Vec<String> = after.iter().take(limit).cloned().collect();
    let mut response = axum::Json(serde_json::json!({ "name": repo.as_str(), "tags": page })).into_response();
    if after.len() > limit
        && limit > 0
        && let Some(last) = page.last()
    {
        let link = format!("</v2/{}/tags/list?n={limit}&last={last}>; rel=\"next\"", repo.as_str());
        if let Ok(value) = HeaderValue::from_str(&link) {
            response.headers_mut().insert(header::LINK, value);
        }
    }
    Ok(response)
}
