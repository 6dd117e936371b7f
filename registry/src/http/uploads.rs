//! Blob uploads: monolithic, chunked and streamed; sessions held by another registry on the
//! same store are passed to it.

use std::collections::HashMap;

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt;
use http::{StatusCode, header};
use skiff_api::{Digest, DigestAlgorithm};
use skiff_store::Staged;

use super::blobs::parse_digest;
use super::ranges::content_range;
use super::{Caller, Registry, location, set_header, with_digest};
use crate::endpoint::RepoName;
use crate::error::OciError;

pub(super) async fn upload_start(
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

pub(super) fn upload_accepted(repo: &RepoName, id: &str, size: u64) -> Response {
    let mut response = location(StatusCode::ACCEPTED, &format!("/v2/{}/blobs/uploads/{id}", repo.as_str()));
    set_header(&mut response, "range", &format!("0-{}", size.saturating_sub(1)));
    set_header(&mut response, "docker-upload-uuid", id);
    response
}

/// Appends a request body to a staged blob.
pub(super) async fn append(staged: &mut Staged, body: Body) -> Result<(), OciError> {
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
pub(super) async fn append_chunk(
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

pub(super) async fn upload_patch(
    registry: &Registry,
    caller: &Caller,
    repo: RepoName,
    id: String,
    request: Request,
) -> Result<Response, OciError> {
    let size = append_chunk(registry, caller, &repo, &id, request).await?;
    Ok(upload_accepted(&repo, &id, size))
}

pub(super) async fn upload_finish(
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
pub(super) async fn finish(
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

pub(super) async fn upload_status(
    registry: &Registry,
    caller: &Caller,
    repo: &RepoName,
    id: &str,
) -> Result<Response, OciError> {
    let blob = registry.uploads.get(repo, &caller.principal, id).ok_or_else(OciError::upload_unknown)?;
    let size = blob.lock().await.as_ref().map(Staged::size).ok_or_else(OciError::upload_unknown)?;
    let mut response = upload_accepted(repo, id, size);
    *response.status_mut() = StatusCode::NO_CONTENT;
    Ok(response)
}

pub(super) async fn upload_cancel(
    registry: &Registry,
    caller: &Caller,
    repo: &RepoName,
    id: &str,
) -> Result<Response, OciError> {
    let blob = registry.close_upload(repo, &caller.principal, id).await?;
    if let Some(staged) = blob.lock().await.take() {
        staged.discard().await;
    }
    Ok(StatusCode::NO_CONTENT.into_response())
}

/// Request headers that matter to an upload, passed on with it.
pub(super) const UPLOAD_HEADERS: [header::HeaderName; 4] =
    [header::AUTHORIZATION, header::CONTENT_TYPE, header::CONTENT_RANGE, header::CONTENT_LENGTH];

/// Passes a request for an upload session to the registry at `owner` that holds it,
/// streaming the body both ways. When that registry cannot be reached the session is
/// unknown: the client starts the upload again.
pub(super) async fn pass_to_owner(registry: &Registry, owner: &str, request: Request) -> Response {
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
