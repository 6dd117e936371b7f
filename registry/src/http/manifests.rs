//! Manifests and indexes: read by tag or digest, pushed (checked against the documents they
//! refer to, in [`crate::oci`]), deleted.

use axum::body::Body;
use axum::extract::Request;
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http::{StatusCode, header};
use skiff_api::{Digest, DigestAlgorithm};

use super::{Registry, location, set_header, with_digest};
use crate::endpoint::{Reference, RepoName};
use crate::error::OciError;
use crate::oci::{Document, Reference as Referred};

/// The largest manifest accepted (the spec asks for at least 4 MB).
pub(super) const MAX_MANIFEST_BYTES: usize = 4 * 1024 * 1024;

pub(super) async fn resolve(registry: &Registry, repo: &RepoName, reference: &Reference) -> Result<Digest, OciError> {
    match reference {
        Reference::Digest(digest) => Ok(digest.clone()),
        Reference::Tag(tag) => registry.meta.tag(repo, tag).await?.ok_or_else(OciError::manifest_unknown),
    }
}

pub(super) async fn manifest_get(
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

pub(super) async fn manifest_put(
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
    let document = Document::parse(&media_type, &bytes).map_err(|e| OciError::manifest_invalid(e.0))?;
    // What it refers to must be in the repository; its subject need not be.
    for referred in document.references() {
        let known = match referred {
            Referred::Blob(digest) => {
                registry.meta.has_blob(&repo, digest).await? && registry.store.size(digest).await?.is_some()
            }
            Referred::Manifest(digest) => registry.meta.manifest_type(&repo, digest).await?.is_some(),
            Referred::Subject(_) => true,
        };
        if !known {
            return Err(OciError::new(
                StatusCode::BAD_REQUEST,
                "MANIFEST_BLOB_UNKNOWN",
                format!("manifest references {}, unknown in {}", referred.digest(), repo.as_str()),
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
    if let Some(subject) = &document.subject {
        let descriptor = document.referrer_descriptor(&media_type, &digest, size);
        registry.meta.add_referrer(&repo, &subject.digest, &digest, &descriptor).await?;
        set_header(&mut response, "oci-subject", subject.digest.as_str());
    }
    Ok(response)
}

pub(super) async fn manifest_delete(
    registry: &Registry,
    repo: &RepoName,
    reference: &Reference,
) -> Result<Response, OciError> {
    let found = match reference {
        Reference::Tag(tag) => registry.meta.remove_tag(repo, tag).await?,
        Reference::Digest(digest) => {
            // Drop it from the referrers of its subject, if it had one.
            let media_type = registry.meta.manifest_type(repo, digest).await?;
            if let (Some(media_type), Some(bytes)) = (media_type, registry.store.read(digest).await?) {
                let subject = Document::parse(&media_type, &bytes).ok().and_then(|document| document.subject);
                if let Some(subject) = subject {
                    registry.meta.remove_referrer(repo, &subject.digest, digest).await?;
                }
            }
            registry.meta.unlink_manifest(repo, digest).await?
        }
    };
    if found { Ok(StatusCode::ACCEPTED.into_response()) } else { Err(OciError::manifest_unknown()) }
}
