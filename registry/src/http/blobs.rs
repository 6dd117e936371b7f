//! Reading and deleting blobs (`/v2/<name>/blobs/<digest>`), ranges honoured.

use axum::body::Body;
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode, header};
use skiff_api::Digest;

use super::ranges::byte_range;
use super::{Registry, with_digest};
use crate::endpoint::RepoName;
use crate::error::OciError;

pub(super) async fn blob_get(
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
    let (body, region) = if head {
        (Body::empty(), None)
    } else {
        let blob = registry.store.open_range(digest, start, end).await?.ok_or_else(OciError::blob_unknown)?;
        (Body::from_stream(blob.body), blob.region)
    };
    let mut builder = Response::builder()
        .status(status)
        .header(header::CONTENT_LENGTH, end - start)
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .header(header::ACCEPT_RANGES, "bytes");
    if range.is_some() {
        builder = builder.header(header::CONTENT_RANGE, format!("bytes {start}-{}/{size}", end - 1));
    }
    let mut response = builder.body(body).map_err(OciError::internal)?;
    // A plain connection sends the bytes from the file with the kernel (see `connection`).
    if let Some(region) = region {
        response.extensions_mut().insert(region);
    }
    Ok(with_digest(response, digest))
}

pub(super) async fn blob_delete(registry: &Registry, repo: &RepoName, digest: &Digest) -> Result<Response, OciError> {
    // The bytes stay in the store until garbage collection: other repositories may share them.
    if registry.meta.unlink_blob(repo, digest).await? {
        Ok(StatusCode::ACCEPTED.into_response())
    } else {
        Err(OciError::blob_unknown())
    }
}

pub(super) fn parse_digest(value: &str) -> Result<Digest, OciError> {
    value.parse().map_err(|_| {
        OciError::digest_invalid(format!("invalid digest `{}`", value.chars().take(80).collect::<String>()))
    })
}
