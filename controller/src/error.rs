//! The controller's error: what went wrong, in a form that says what to do next. The HTTP
//! layer maps each kind to a status and a stable code (`crate::http`).

use std::time::Duration;

use crate::db::DbError;

/// An error of a controller operation.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error("not logged in; run `skiff auth:login` (or set SKIFF_TOKEN)")]
    Unauthenticated,
    #[error(
        "the token was rejected (revoked, or not one of this platform's); log in again with `skiff auth:login`, \
         or set SKIFF_TOKEN to a valid token"
    )]
    TokenRejected,
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("{0}")]
    Unavailable(String),
    #[error("too many failed sign-ins; try again in {} s", .0.as_secs())]
    TooManyAttempts(Duration),
    /// The cause is logged, never returned.
    #[error("internal error")]
    Internal(String),
}

impl From<DbError> for ApiError {
    fn from(e: DbError) -> Self {
        Self::Internal(e.to_string())
    }
}
