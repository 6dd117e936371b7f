//! The OCI error envelope: `{"errors":[{"code":"…","message":"…"}]}`.

use axum::Json;
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use serde_json::json;

/// An OCI error code with its status and message.
#[derive(Debug)]
pub struct OciError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// How long to wait before asking again (429).
    pub retry_after: Option<std::time::Duration>,
}

impl OciError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self { status, code, message: message.into(), retry_after: None }
    }

    /// Too many failed sign-ins lately: 429 `TOOMANYREQUESTS` with `Retry-After`.
    pub fn too_many_attempts(wait: std::time::Duration) -> Self {
        let message = format!("too many failed sign-ins; try again in {} s", wait.as_secs());
        Self { retry_after: Some(wait), ..Self::new(StatusCode::TOO_MANY_REQUESTS, "TOOMANYREQUESTS", message) }
    }

    pub fn blob_unknown() -> Self {
        Self::new(StatusCode::NOT_FOUND, "BLOB_UNKNOWN", "blob unknown to registry")
    }

    pub fn manifest_unknown() -> Self {
        Self::new(StatusCode::NOT_FOUND, "MANIFEST_UNKNOWN", "manifest unknown")
    }

    pub fn upload_unknown() -> Self {
        Self::new(StatusCode::NOT_FOUND, "BLOB_UPLOAD_UNKNOWN", "blob upload unknown to registry")
    }

    pub fn name_unknown() -> Self {
        Self::new(StatusCode::NOT_FOUND, "NAME_UNKNOWN", "repository name not known to registry")
    }

    pub fn digest_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "DIGEST_INVALID", message)
    }

    pub fn manifest_invalid(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "MANIFEST_INVALID", message)
    }

    /// An internal failure: logged here, never shown to the client.
    pub fn internal(cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "registry.internal");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, "UNKNOWN", "internal error")
    }
}

impl From<std::io::Error> for OciError {
    fn from(e: std::io::Error) -> Self {
        Self::internal(e)
    }
}

impl From<skiff_store::StoreError> for OciError {
    fn from(e: skiff_store::StoreError) -> Self {
        match e {
            skiff_store::StoreError::DigestMismatch { .. } => Self::digest_invalid(e.to_string()),
            skiff_store::StoreError::Io(io) => Self::internal(io),
            skiff_store::StoreError::Url(_) => Self::internal(e),
        }
    }
}

impl IntoResponse for OciError {
    fn into_response(self) -> Response {
        let mut response =
            (self.status, Json(json!({"errors": [{"code": self.code, "message": self.message}]}))).into_response();
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(http::header::WWW_AUTHENTICATE, http::HeaderValue::from_static("Basic realm=\"skiff\""));
        }
        if let Some(wait) = self.retry_after {
            response.headers_mut().insert(http::header::RETRY_AFTER, http::HeaderValue::from(wait.as_secs()));
        }
        response
    }
}
