//! Passwords (argon2) and API tokens (random, stored as sha256 hashes). The HTTP layer's
//! extractors (`crate::http::extract`) check them on each request.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use sha2::{Digest as _, Sha256};

use crate::error::ApiError;

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

#[cfg(test)]
mod tests {
    use skiff_api::secrets_match;

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
