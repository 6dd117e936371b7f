//! Sealing the ACME account's credentials for the database: AES-256-GCM under a key derived
//! (HKDF-SHA256) from the platform's service token, which every controller has and the
//! database does not. Sealed text is `v1.` and base64 of the nonce then the ciphertext.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD as BASE64;
use ring::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Salt};
use ring::rand::{SecureRandom as _, SystemRandom};

/// What the key and every sealed text are bound to.
const CONTEXT: &[u8] = b"skiff acme account";
const PREFIX: &str = "v1.";

/// Why sealed text cannot be opened.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("not sealed text")]
    Malformed,
    #[error("sealed with another key, or changed")]
    Refused,
}

fn key(service_token: &str) -> LessSafeKey {
    let secret = Salt::new(HKDF_SHA256, CONTEXT).extract(service_token.as_bytes());
    let okm = secret.expand(&[b"aes-256-gcm"], &AES_256_GCM).expect("AES-256's key length is HKDF's to give");
    LessSafeKey::new(UnboundKey::from(okm))
}

/// Seals `plain` under the service token's key, with a fresh random nonce.
///
/// # Panics
/// When the system has no randomness to give.
pub fn seal(service_token: &str, plain: &[u8]) -> String {
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new().fill(&mut nonce).expect("the system gives random bytes");
    let mut sealed = plain.to_vec();
    key(service_token)
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(CONTEXT), &mut sealed)
        .expect("a sealable length");
    let mut out = nonce.to_vec();
    out.extend_from_slice(&sealed);
    format!("{PREFIX}{}", BASE64.encode(out))
}

/// Opens what [`seal`] made with the same service token.
///
/// # Errors
/// Text that is not sealed, or was sealed under another token or changed.
pub fn open(service_token: &str, sealed: &str) -> Result<Vec<u8>, OpenError> {
    let bytes = sealed.strip_prefix(PREFIX).and_then(|b| BASE64.decode(b).ok()).ok_or(OpenError::Malformed)?;
    if bytes.len() < NONCE_LEN {
        return Err(OpenError::Malformed);
    }
    let (nonce, sealed) = bytes.split_at(NONCE_LEN);
    let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| OpenError::Malformed)?;
    let mut sealed = sealed.to_vec();
    let plain =
        key(service_token).open_in_place(nonce, Aad::from(CONTEXT), &mut sealed).map_err(|_| OpenError::Refused)?;
    Ok(plain.to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_credentials_open_only_with_the_same_token_and_unchanged() {
        let sealed = seal("token-a", b"{\"id\":\"account\"}");
        assert!(sealed.starts_with("v1.") && !sealed.contains("account"), "{sealed}");
        assert_eq!(open("token-a", &sealed).unwrap(), b"{\"id\":\"account\"}");
        assert_ne!(seal("token-a", b"same"), seal("token-a", b"same"), "each seal has its own nonce");
        assert_eq!(open("token-b", &sealed), Err(OpenError::Refused));
        let mut changed = sealed.clone().into_bytes();
        let last = changed.len() - 3;
        changed[last] = if changed[last] == b'A' { b'B' } else { b'A' };
        assert_eq!(open("token-a", &String::from_utf8(changed).unwrap()), Err(OpenError::Refused));
        assert_eq!(open("token-a", "plain text"), Err(OpenError::Malformed));
        assert_eq!(open("token-a", "v1.AAAA"), Err(OpenError::Malformed));
    }
}
