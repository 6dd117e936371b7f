//! The platform's certificates (the `tls` feature): PEM chains and keys made ready to
//! serve, and the local CA that issues certificates for routed names (the router's HTTPS,
//! the logger's syslog over TLS), kept in a directory of the platform's data.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::sign::CertifiedKey;

/// Why a certificate, a key or the local CA cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum CaError {
    #[error("invalid certificate PEM: {0}")]
    CertificatePem(String),
    #[error("no PEM certificate")]
    NoCertificate,
    #[error("invalid private key PEM: {0}")]
    KeyPem(String),
    #[error("the private key cannot be used: {0}")]
    Key(String),
    #[error("cannot make the local CA: {0}")]
    Generate(String),
    #[error("invalid CA key: {0}")]
    CaKey(String),
    #[error("{}: {source}", .path.display())]
    File { path: PathBuf, source: std::io::Error },
}

/// A PEM chain (leaf first) and its key, ready to serve.
///
/// # Errors
/// When either does not parse or the key's type is not supported.
pub fn certified_key(chain_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, CaError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| CaError::CertificatePem(e.to_string()))?;
    if chain.is_empty() {
        return Err(CaError::NoCertificate);
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| CaError::KeyPem(e.to_string()))?;
    let key = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).map_err(|e| CaError::Key(e.to_string()))?;
    Ok(Arc::new(CertifiedKey::new(chain, key)))
}

/// Names issued certificates are kept for at most; the cache starts over beyond it.
const MAX_ISSUED: usize = 10_000;
/// How long an issued certificate is valid.
const ISSUED_DAYS: i64 = 90;

/// A certificate authority of the platform's own that issues certificates for routed
/// names as clients ask for them.
pub struct LocalCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    /// One key for every issued certificate, made at start.
    leaf_key: rcgen::KeyPair,
    issued: Mutex<HashMap<String, Arc<CertifiedKey>>>,
}

impl std::fmt::Debug for LocalCa {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalCa").finish_non_exhaustive()
    }
}

impl LocalCa {
    fn params() -> rcgen::CertificateParams {
        let mut params = rcgen::CertificateParams::default();
        params.distinguished_name.push(rcgen::DnType::CommonName, "Skiff local CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign, rcgen::KeyUsagePurpose::CrlSign];
        params
    }

    /// A new CA: its certificate (to trust) and key, as PEM.
    ///
    /// # Errors
    /// When the key cannot be made.
    pub fn generate() -> Result<(String, String), CaError> {
        let key = rcgen::KeyPair::generate().map_err(|e| CaError::Generate(e.to_string()))?;
        let cert = Self::params().self_signed(&key).map_err(|e| CaError::Generate(e.to_string()))?;
        Ok((cert.pem(), key.serialize_pem()))
    }

    /// The CA whose key [`LocalCa::generate`] made.
    ///
    /// # Errors
    /// When the key does not parse.
    pub fn from_key_pem(key_pem: &str) -> Result<Self, CaError> {
        let key = rcgen::KeyPair::from_pem(key_pem).map_err(|e| CaError::CaKey(e.to_string()))?;
        let leaf_key = rcgen::KeyPair::generate().map_err(|e| CaError::Generate(e.to_string()))?;
        Ok(Self { issuer: rcgen::Issuer::new(Self::params(), key), leaf_key, issued: Mutex::new(HashMap::new()) })
    }

    /// A certificate for `name`, issued now or earlier.
    pub fn issue(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let mut issued = self.issued.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(found) = issued.get(name) {
            return Some(found.clone());
        }
        let mut params = rcgen::CertificateParams::new(vec![name.to_owned()]).ok()?;
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now - time::Duration::days(1);
        params.not_after = now + time::Duration::days(ISSUED_DAYS);
        params.serial_number = Some(rcgen::SerialNumber::from_slice(&rand::random::<[u8; 16]>()));
        params.distinguished_name.push(rcgen::DnType::CommonName, name);
        let cert = params.signed_by(&self.leaf_key, &self.issuer).ok()?;
        let key = certified_key(&cert.pem(), &self.leaf_key.serialize_pem()).ok()?;
        if issued.len() >= MAX_ISSUED {
            issued.clear();
        }
        issued.insert(name.to_owned(), key.clone());
        Some(key)
    }
}

impl LocalCa {
    /// The CA kept in `dir` (`ca.crt`, which clients trust, and `ca.key`, readable by its
    /// owner only), made there on first use; with the path of its certificate.
    ///
    /// # Errors
    /// When the directory or the files cannot be written or read, or the key is not one.
    pub fn kept_in(dir: &Path) -> Result<(Self, PathBuf), CaError> {
        let (cert, key) = (dir.join("ca.crt"), dir.join("ca.key"));
        let failed = |path: &Path, source: std::io::Error| CaError::File { path: path.to_owned(), source };
        if !key.exists() {
            let (cert_pem, key_pem) = Self::generate()?;
            std::fs::create_dir_all(dir).map_err(|e| failed(dir, e))?;
            use std::os::unix::fs::OpenOptionsExt as _;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&key)
                .map_err(|e| failed(&key, e))?;
            std::io::Write::write_all(&mut file, key_pem.as_bytes()).map_err(|e| failed(&key, e))?;
            std::fs::write(&cert, cert_pem).map_err(|e| failed(&cert, e))?;
        }
        let key_pem = std::fs::read_to_string(&key).map_err(|e| failed(&key, e))?;
        let ca = Self::from_key_pem(&key_pem)?;
        Ok((ca, cert))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_kept_ca_is_made_once_and_issues_for_any_name() {
        let dir = std::env::temp_dir().join(format!("skiff-ca-{:016x}", rand::random::<u64>()));
        let (first, cert) = LocalCa::kept_in(&dir).unwrap();
        let pem = std::fs::read_to_string(&cert).unwrap();
        let (again, _) = LocalCa::kept_in(&dir).unwrap();
        assert_eq!(std::fs::read_to_string(&cert).unwrap(), pem, "the same CA the second time");
        assert!(first.issue("shop.localhost").is_some() && again.issue("*.example.com").is_some());
        use std::os::unix::fs::PermissionsExt as _;
        assert_eq!(std::fs::metadata(dir.join("ca.key")).unwrap().permissions().mode() & 0o777, 0o600);
        std::fs::remove_dir_all(dir).unwrap();
    }
}
