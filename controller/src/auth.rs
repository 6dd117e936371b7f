//! Passwords (argon2), API tokens (random, stored as sha256 hashes) and the extractors
//! that authenticate requests: [`CurrentUser`] for people, [`Service`] for Skiff's own
//! components.

use std::sync::Arc;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::extract::FromRequestParts;
use http::request::Parts;
use sha2::{Digest as _, Sha256};

use skiff_api::secrets_match;

use crate::db::UserRow;
use crate::http::{ApiError, Controller};

/// Hashes a password for storage.
///
/// # Errors
/// Only if the hasher rejects its parameters (it does not for the defaults).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt = SaltString::encode_b64(&rand::random::<[u8; 16]>())
        .map_err(|e| ApiError::Internal(format!("salt encoding failed: {e}")))?;
    argon2::Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|hash| hash.to_string())
        .map_err(|e| ApiError::Internal(format!("password hashing failed: {e}")))
}

/// Checks a password against a stored hash.
pub fn verify_password(password: &str, stored: &str) -> bool {
    PasswordHash::new(stored)
        .is_ok_and(|hash| argon2::Argon2::default().verify_password(password.as_bytes(), &hash).is_ok())
}

/// A new random API token: shown to the user once, stored only as [`token_hash`].
pub fn new_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

/// The stored form of a token.
pub fn token_hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// The address a request came from, when the server knows it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let connected = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Ok(Self(connected.map(|info| info.0.ip())))
    }
}

fn bearer(parts: &Parts) -> Option<&str> {
    parts.headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// The user a request's bearer token belongs to.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub UserRow);

impl FromRequestParts<Arc<Controller>> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, controller: &Arc<Controller>) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthenticated)?;
        let user = controller.db.user_by_token(&token_hash(token)).await?.ok_or(ApiError::TokenRejected)?;
        Ok(Self(user))
    }
}

/// The user a request's bearer token belongs to, when it carries a valid one.
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<UserRow>);

impl FromRequestParts<Arc<Controller>> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, controller: &Arc<Controller>) -> Result<Self, ApiError> {
        match bearer(parts) {
            Some(token) => Ok(Self(controller.db.user_by_token(&token_hash(token)).await?)),
            None => Ok(Self(None)),
        }
    }
}

/// A request from one of Skiff's components, carrying the service token.
#[derive(Debug, Clone, Copy)]
pub struct Service;

impl FromRequestParts<Arc<Controller>> for Service {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, controller: &Arc<Controller>) -> Result<Self, ApiError> {
        match bearer(parts) {
            Some(token) if secrets_match(token, &controller.config.service_token) => Ok(Self),
            _ => Err(ApiError::Forbidden("this endpoint is for Skiff's own components".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_against_their_hash() {
        let hash = hash_password("correct horse").unwrap();
        assert!(verify_password("correct horse", &hash));
        assert!(!verify_password("wrong", &hash));
        assert!(!verify_password("correct horse", "not a hash"));
    }

    #[test]
    fn tokens_are_stored_hashed() {
        let token = new_token();
        assert_eq!(token.len(), 64);
        assert_ne!(token_hash(&token), token);
        assert!(secrets_match(&token, &token.clone()));
        assert!(!secrets_match(&token, "short"));
    }
}
