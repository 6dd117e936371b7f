//! Decoding an OCI distribution request (method + path) into an [`Endpoint`] before any
//! handler runs. Repository names and references are validated here, so nothing
//! unvalidated reaches storage.

use http::Method;
use skiff_api::Digest;

/// A validated repository name: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*` components joined by
/// `/`, at most 255 characters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RepoName(String);

impl RepoName {
    pub fn parse(value: &str) -> Option<Self> {
        let valid = !value.is_empty()
            && value.len() <= 255
            && value.split('/').all(|component| {
                let bytes = component.as_bytes();
                let alnum = |b: &u8| b.is_ascii_lowercase() || b.is_ascii_digit();
                !bytes.is_empty()
                    && bytes.first().is_some_and(alnum)
                    && bytes.last().is_some_and(alnum)
                    && bytes.iter().all(|b| alnum(b) || matches!(b, b'.' | b'_' | b'-'))
                    && !component.contains("..")
                    && !component.contains("___")
                    && !component.contains("._")
                    && !component.contains("_.")
            });
        valid.then(|| Self(value.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A manifest reference: a tag or a digest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reference {
    Tag(String),
    Digest(Digest),
}

impl Reference {
    /// `None` when `value` is neither a valid tag nor a valid digest.
    pub fn parse(value: &str) -> Option<Self> {
        if value.contains(':') {
            return value.parse().ok().map(Self::Digest);
        }
        let bytes = value.as_bytes();
        let valid_tag = !bytes.is_empty()
            && bytes.len() <= 128
            && (bytes[0].is_ascii_alphanumeric() || bytes[0] == b'_')
            && bytes.iter().all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'));
        valid_tag.then(|| Self::Tag(value.to_owned()))
    }
}

/// Every request the registry understands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// `GET /v2/`
    Base,
    /// `GET /v2/_catalog`
    Catalog,
    /// `GET|HEAD /v2/<name>/blobs/<digest>`
    BlobGet { repo: RepoName, digest: Digest, head: bool },
    /// `DELETE /v2/<name>/blobs/<digest>`
    BlobDelete { repo: RepoName, digest: Digest },
    /// `POST /v2/<name>/blobs/uploads/`
    UploadStart { repo: RepoName },
    /// `PATCH /v2/<name>/blobs/uploads/<id>`
    UploadPatch { repo: RepoName, id: String },
    /// `PUT /v2/<name>/blobs/uploads/<id>?digest=`
    UploadFinish { repo: RepoName, id: String },
    /// `GET /v2/<name>/blobs/uploads/<id>`
    UploadStatus { repo: RepoName, id: String },
    /// `DELETE /v2/<name>/blobs/uploads/<id>`
    UploadCancel { repo: RepoName, id: String },
    /// `GET|HEAD /v2/<name>/manifests/<reference>`
    ManifestGet { repo: RepoName, reference: Reference, head: bool },
    /// `PUT /v2/<name>/manifests/<reference>`
    ManifestPut { repo: RepoName, reference: Reference },
    /// `DELETE /v2/<name>/manifests/<reference>`
    ManifestDelete { repo: RepoName, reference: Reference },
    /// `GET /v2/<name>/tags/list`
    TagsList { repo: RepoName },
    /// `GET /v2/<name>/referrers/<digest>`
    Referrers { repo: RepoName, digest: Digest },
}

/// Why a request could not be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecodeError {
    /// No such route (404).
    NotFound,
    /// A route, but not with this method (405).
    MethodNotAllowed,
    /// The repository name is invalid (400 `NAME_INVALID`).
    NameInvalid,
    /// The digest is invalid (400 `DIGEST_INVALID`).
    DigestInvalid,
    /// A tag that cannot exist, in a read or a delete (404 `MANIFEST_UNKNOWN`, as
    /// distribution answers).
    ManifestUnknown,
    /// A tag that cannot exist, in a write (400 `TAG_INVALID`).
    TagInvalid,
}

impl Endpoint {
    /// Decodes a request line. Pure: table-tested below.
    pub fn decode(method: &Method, path: &str) -> Result<Self, DecodeError> {
        let Some(rest) = path.strip_prefix("/v2/") else {
            return if path == "/v2" { Self::decode(method, "/v2/") } else { Err(DecodeError::NotFound) };
        };
        if rest.is_empty() {
            return only(method, &[Method::GET, Method::HEAD], Endpoint::Base);
        }
        if rest == "_catalog" {
            return only(method, &[Method::GET], Endpoint::Catalog);
        }
        let repo = |name: &str| RepoName::parse(name).ok_or(DecodeError::NameInvalid);
        if let Some(name) = rest.strip_suffix("/tags/list") {
            return only(method, &[Method::GET], Endpoint::TagsList { repo: repo(name)? });
        }
        if let Some((name, digest)) = rest.rsplit_once("/referrers/") {
            let repo = repo(name)?;
            let digest: Digest = digest.parse().map_err(|_| DecodeError::DigestInvalid)?;
            return only(method, &[Method::GET], Endpoint::Referrers { repo, digest });
        }
        if let Some((name, tail)) =
            rest.rsplit_once("/blobs/uploads/").or_else(|| rest.strip_suffix("/blobs/uploads").map(|name| (name, "")))
        {
            let repo = repo(name)?;
            if tail.is_empty() {
                return only(method, &[Method::POST], Endpoint::UploadStart { repo });
            }
            // Session ids are the registry's own (hex); anything else names no session, and
            // never reaches the records where sessions are noted.
            if tail.len() > 64 || !tail.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') {
                return Err(DecodeError::NotFound);
            }
            let id = tail.to_owned();
            return match *method {
                Method::PATCH => Ok(Endpoint::UploadPatch { repo, id }),
                Method::PUT => Ok(Endpoint::UploadFinish { repo, id }),
                Method::GET => Ok(Endpoint::UploadStatus { repo, id }),
                Method::DELETE => Ok(Endpoint::UploadCancel { repo, id }),
                _ => Err(DecodeError::MethodNotAllowed),
            };
        }
        if let Some((name, digest)) = rest.rsplit_once("/blobs/") {
            let repo = repo(name)?;
            let digest: Digest = digest.parse().map_err(|_| DecodeError::DigestInvalid)?;
            return match *method {
                Method::GET => Ok(Endpoint::BlobGet { repo, digest, head: false }),
                Method::HEAD => Ok(Endpoint::BlobGet { repo, digest, head: true }),
                Method::DELETE => Ok(Endpoint::BlobDelete { repo, digest }),
                _ => Err(DecodeError::MethodNotAllowed),
            };
        }
        if let Some((name, reference)) = rest.rsplit_once("/manifests/") {
            let repo = repo(name)?;
            let Some(reference) = Reference::parse(reference) else {
                return Err(match *method {
                    // A digest is invalid whatever the method; a tag that cannot exist is
                    // not there to read, and cannot be written.
                    _ if reference.contains(':') => DecodeError::DigestInvalid,
                    Method::PUT => DecodeError::TagInvalid,
                    Method::GET | Method::HEAD | Method::DELETE => DecodeError::ManifestUnknown,
                    _ => DecodeError::MethodNotAllowed,
                });
            };
            return match *method {
                Method::GET => Ok(Endpoint::ManifestGet { repo, reference, head: false }),
                Method::HEAD => Ok(Endpoint::ManifestGet { repo, reference, head: true }),
                Method::PUT => Ok(Endpoint::ManifestPut { repo, reference }),
                Method::DELETE => Ok(Endpoint::ManifestDelete { repo, reference }),
                _ => Err(DecodeError::MethodNotAllowed),
            };
        }
        Err(DecodeError::NotFound)
    }

    /// The repository the request is about, if any.
    pub fn repo(&self) -> Option<&RepoName> {
        match self {
            Endpoint::Base | Endpoint::Catalog => None,
            Endpoint::BlobGet { repo, .. }
            | Endpoint::BlobDelete { repo, .. }
            | Endpoint::UploadStart { repo }
            | Endpoint::UploadPatch { repo, .. }
            | Endpoint::UploadFinish { repo, .. }
            | Endpoint::UploadStatus { repo, .. }
            | Endpoint::UploadCancel { repo, .. }
            | Endpoint::ManifestGet { repo, .. }
            | Endpoint::ManifestPut { repo, .. }
            | Endpoint::ManifestDelete { repo, .. }
            | Endpoint::TagsList { repo }
            | Endpoint::Referrers { repo, .. } => Some(repo),
        }
    }

    /// The upload session a request continues, if it continues one.
    pub fn upload_id(&self) -> Option<&str> {
        match self {
            Endpoint::UploadPatch { id, .. }
            | Endpoint::UploadFinish { id, .. }
            | Endpoint::UploadStatus { id, .. }
            | Endpoint::UploadCancel { id, .. } => Some(id),
            _ => None,
        }
    }

    /// Whether the request changes the registry (and so needs push rights).
    pub fn writes(&self) -> bool {
        matches!(
            self,
            Endpoint::BlobDelete { .. }
                | Endpoint::UploadStart { .. }
                | Endpoint::UploadPatch { .. }
                | Endpoint::UploadFinish { .. }
                | Endpoint::UploadStatus { .. }
                | Endpoint::UploadCancel { .. }
                | Endpoint::ManifestPut { .. }
                | Endpoint::ManifestDelete { .. }
        )
    }
}

fn only(method: &Method, allowed: &[Method], endpoint: Endpoint) -> Result<Endpoint, DecodeError> {
    if allowed.contains(method) { Ok(endpoint) } else { Err(DecodeError::MethodNotAllowed) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest() -> String {
        format!("sha256:{}", "a".repeat(64))
    }

    #[test]
    fn requests_decode_to_endpoints() {
        let repo = |s: &str| RepoName::parse(s).unwrap();
        let d: Digest = digest().parse().unwrap();
        let cases = [
            (Method::GET, "/v2/".to_owned(), Ok(Endpoint::Base)),
            (Method::GET, "/v2".to_owned(), Ok(Endpoint::Base)),
            (Method::GET, "/v2/_catalog".to_owned(), Ok(Endpoint::Catalog)),
            (
                Method::HEAD,
                format!("/v2/stacks/busybox/blobs/{}", digest()),
                Ok(Endpoint::BlobGet { repo: repo("stacks/busybox"), digest: d.clone(), head: true }),
            ),
            (Method::POST, "/v2/app/blobs/uploads/".to_owned(), Ok(Endpoint::UploadStart { repo: repo("app") })),
            (
                Method::PATCH,
                "/v2/app/blobs/uploads/abc".to_owned(),
                Ok(Endpoint::UploadPatch { repo: repo("app"), id: "abc".into() }),
            ),
            (
                Method::PUT,
                "/v2/app/manifests/v1".to_owned(),
                Ok(Endpoint::ManifestPut { repo: repo("app"), reference: Reference::Tag("v1".into()) }),
            ),
            (
                Method::GET,
                format!("/v2/app/manifests/{}", digest()),
                Ok(Endpoint::ManifestGet { repo: repo("app"), reference: Reference::Digest(d), head: false }),
            ),
            (Method::GET, "/v2/app/tags/list".to_owned(), Ok(Endpoint::TagsList { repo: repo("app") })),
            (
                Method::GET,
                format!("/v2/a/b/referrers/{}", digest()),
                Ok(Endpoint::Referrers { repo: repo("a/b"), digest: digest().parse().unwrap() }),
            ),
            (Method::GET, "/v2/App/tags/list".to_owned(), Err(DecodeError::NameInvalid)),
            (Method::GET, "/v2/../x/tags/list".to_owned(), Err(DecodeError::NameInvalid)),
            (Method::GET, "/v2/app/blobs/sha256:baddigeststring".to_owned(), Err(DecodeError::DigestInvalid)),
            (Method::GET, "/v2/app/manifests/sha256:bad".to_owned(), Err(DecodeError::DigestInvalid)),
            (Method::GET, "/v2/app/manifests/.INVALID_MANIFEST_NAME".to_owned(), Err(DecodeError::ManifestUnknown)),
            (Method::HEAD, "/v2/app/manifests/.INVALID_MANIFEST_NAME".to_owned(), Err(DecodeError::ManifestUnknown)),
            (Method::DELETE, "/v2/app/manifests/-x".to_owned(), Err(DecodeError::ManifestUnknown)),
            (Method::PUT, "/v2/app/manifests/.INVALID_MANIFEST_NAME".to_owned(), Err(DecodeError::TagInvalid)),
            (Method::POST, "/v2/app/manifests/v1".to_owned(), Err(DecodeError::MethodNotAllowed)),
            (Method::GET, "/other".to_owned(), Err(DecodeError::NotFound)),
            (Method::PATCH, "/v2/app/blobs/uploads/..".to_owned(), Err(DecodeError::NotFound)),
            (Method::PUT, "/v2/app/blobs/uploads/.hidden".to_owned(), Err(DecodeError::NotFound)),
        ];
        for (method, path, expected) in cases {
            assert_eq!(Endpoint::decode(&method, &path), expected, "{method} {path}");
        }
    }
}
