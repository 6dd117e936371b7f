//! Hashing content into digests of the algorithm a caller names.

use std::path::Path;

use sha2::{Digest as _, Sha256, Sha512};
use skiff_api::{Digest, DigestAlgorithm};
use tokio::io::AsyncReadExt;

/// An incremental hash of one algorithm.
pub enum Hasher {
    Sha256(Sha256),
    Sha512(Sha512),
}

impl Hasher {
    pub fn new(algorithm: DigestAlgorithm) -> Self {
        match algorithm {
            DigestAlgorithm::Sha256 => Self::Sha256(Sha256::new()),
            DigestAlgorithm::Sha512 => Self::Sha512(Sha512::new()),
        }
    }

    pub fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => h.update(bytes),
            Self::Sha512(h) => h.update(bytes),
        }
    }

    pub fn finish(self) -> Digest {
        match self {
            Self::Sha256(h) => Digest::from_hash(DigestAlgorithm::Sha256, &h.finalize()),
            Self::Sha512(h) => Digest::from_hash(DigestAlgorithm::Sha512, &h.finalize()),
        }
    }
}

/// The sha256 digest of `bytes`.
pub fn sha256(bytes: &[u8]) -> Digest {
    of_bytes(DigestAlgorithm::Sha256, bytes)
}

/// The digest of `bytes` with `algorithm`.
pub fn of_bytes(algorithm: DigestAlgorithm, bytes: &[u8]) -> Digest {
    let mut hasher = Hasher::new(algorithm);
    hasher.update(bytes);
    hasher.finish()
}

/// The digest of a file's content with `algorithm`, and its length.
pub async fn of_file(algorithm: DigestAlgorithm, path: &Path) -> std::io::Result<(Digest, u64)> {
    let mut file = tokio::fs::File::open(path).await?;
    let mut hasher = Hasher::new(algorithm);
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = 0u64;
    loop {
        let n = file.read(&mut buf).await?;
        if n == 0 {
            return Ok((hasher.finish(), len));
        }
        len += n as u64;
        hasher.update(&buf[..n]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha256_of_nothing_is_the_well_known_value() {
        assert_eq!(sha256(b"").as_str(), "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    }
}
