//! OpenSSH public keys (`type base64 [comment]`) and their SHA-256 fingerprints, in the
//! form `ssh-keygen -l` and the builder's SSH server print: `SHA256:<base64, no padding>`.

use base64::Engine as _;
use sha2::{Digest as _, Sha256};

/// A new Ed25519 key for the builder to fetch an app's repository with: its private half
/// (OpenSSH), or why none could be made.
pub fn new_deploy_key(comment: &str) -> Result<String, String> {
    use russh::keys::ssh_key::private::Ed25519Keypair;
    let mut key = russh::keys::PrivateKey::from(Ed25519Keypair::from_seed(&rand::random::<[u8; 32]>()));
    key.set_comment(comment);
    key.to_openssh(russh::keys::ssh_key::LineEnding::LF).map(|text| text.to_string()).map_err(|e| e.to_string())
}

/// The public line (`ssh-ed25519 AAAA… comment`) of a private key in OpenSSH form.
pub fn public_line(private: &str) -> Option<String> {
    russh::keys::PrivateKey::from_openssh(private).ok()?.public_key().to_openssh().ok()
}

/// Key types accepted for pushes.
const KEY_TYPES: &[&str] = &[
    "ssh-ed25519",
    "ssh-rsa",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
];

/// A parsed public key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// The normalised line `type base64`.
    pub line: String,
    pub comment: String,
    pub fingerprint: String,
}

/// Why a key line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("not an OpenSSH public key line; expected `ssh-ed25519 AAAA… comment` (the content of a .pub file)")]
    Shape,
    #[error("unsupported key type `{0}`; use ed25519, rsa or ecdsa")]
    Type(String),
    #[error("the key's base64 data is invalid")]
    Data,
}

/// Parses one OpenSSH public key line.
///
/// # Errors
/// When the line is not `type base64 [comment]` with a supported type whose data names
/// the same type.
pub fn parse(line: &str) -> Result<PublicKey, KeyError> {
    let mut parts = line.split_whitespace();
    let (Some(kind), Some(data)) = (parts.next(), parts.next()) else {
        return Err(KeyError::Shape);
    };
    if !KEY_TYPES.contains(&kind) {
        return Err(KeyError::Type(kind.chars().take(40).collect()));
    }
    let blob = base64::engine::general_purpose::STANDARD.decode(data).map_err(|_| KeyError::Data)?;
    // The blob starts with the key type as an SSH string: u32 length, then bytes.
    let declared = blob
        .get(..4)
        .map(|len| u32::from_be_bytes([len[0], len[1], len[2], len[3]]) as usize)
        .and_then(|len| blob.get(4..4 + len));
    if declared != Some(kind.as_bytes()) {
        return Err(KeyError::Data);
    }
    let comment: String = parts.collect::<Vec<_>>().join(" ").chars().take(200).collect();
    let fingerprint =
        format!("SHA256:{}", base64::engine::general_purpose::STANDARD_NO_PAD.encode(Sha256::digest(&blob)));
    Ok(PublicKey { line: format!("{kind} {data}"), comment, fingerprint })
}

#[cfg(test)]
mod tests {
    use super::*;

    // Generated with `ssh-keygen -t ed25519`; `ssh-keygen -lf` prints this fingerprint.
    const KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIIqzHN+XzL0EbNGfx/x4yzsnMtJ5kKsUaz2HpIsviIFj alice@laptop";

    #[test]
    fn fingerprints_match_ssh_keygen() {
        let key = parse(KEY).unwrap();
        assert_eq!(key.comment, "alice@laptop");
        assert_eq!(key.fingerprint, "SHA256:j6JZgxxDpxSb+XphmjioygMA7Fjn302QQIBnydL6z8o");
    }

    #[test]
    fn malformed_keys_are_refused() {
        assert_eq!(parse(""), Err(KeyError::Shape));
        assert_eq!(parse("ssh-dss AAAA"), Err(KeyError::Type("ssh-dss".into())));
        assert_eq!(parse("ssh-ed25519 !!!"), Err(KeyError::Data));
        // Valid base64 whose blob names another type.
        assert_eq!(
            parse("ssh-rsa AAAAC3NzaC1lZDI1NTE5AAAAIIqzHN+XzL0EbNGfx/x4yzsnMtJ5kKsUaz2HpIsviIFj"),
            Err(KeyError::Data)
        );
    }
}
