//! TLS for drains: which servers are trusted, and refusals in words an operator can act on.

use std::sync::Arc;

/// Why TLS cannot be set up: the operator's CA file, or the TLS library's settings.
#[derive(Debug, thiserror::Error)]
pub enum TlsSetupError {
    #[error("cannot read CA certificates from {}: {reason}", .path.display())]
    Read { path: std::path::PathBuf, reason: String },
    #[error("{} holds no PEM certificate", .0.display())]
    NoCertificate(std::path::PathBuf),
    #[error("no usable trusted certificate: {0}")]
    NoTrust(String),
    #[error("the TLS library refuses its settings: {0}")]
    Settings(rustls::Error),
}

/// Reads trusted roots for TLS drains: the system's, plus the PEM certificates in
/// `extra_ca` (for drains behind a private CA). A drain that presents one of the `extra_ca`
/// certificates itself is trusted too, even when that certificate is marked as a CA (as
/// `openssl req -x509` makes self-signed ones), which the usual checks refuse.
///
/// # Errors
/// When `extra_ca` cannot be read or holds no certificate.
pub fn tls_config(extra_ca: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, TlsSetupError> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(system.certs);
    let mut pinned = Vec::new();
    if let Some(path) = extra_ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect)
            .map_err(|e| TlsSetupError::Read { path: path.to_owned(), reason: e.to_string() })?;
        if certs.is_empty() {
            return Err(TlsSetupError::NoCertificate(path.to_owned()));
        }
        roots.add_parsable_certificates(certs.iter().cloned());
        pinned = certs;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| TlsSetupError::NoTrust(e.to_string()))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsSetupError::Settings)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustedOrPinned { webpki, pinned }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The usual certificate checks, and besides them: a drain that presents, as its own
/// certificate, exactly one the operator trusts (`SKIFF_LOGGER_DRAIN_CA`) is trusted.
/// The handshake's signatures are checked the usual way either way.
#[derive(Debug)]
struct TrustedOrPinned {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl rustls::client::danger::ServerCertVerifier for TrustedOrPinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(_) if self.pinned.iter().any(|pinned| pinned.as_ref() == end_entity.as_ref()) => {
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            checked => checked,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A failed TLS handshake with a drain, in words an operator can act on.
pub(super) fn handshake_failure(error: &std::io::Error) -> String {
    use rustls::{CertificateError, Error};
    let trust = "; trust its CA, or the drain's own certificate, with SKIFF_LOGGER_DRAIN_CA";
    let Some(Error::InvalidCertificate(refused)) = error.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return format!("TLS handshake failed: {error}");
    };
    match refused {
        CertificateError::UnknownIssuer => format!("the drain's certificate is not signed by a trusted CA{trust}"),
        // webpki's CaUsedAsEndEntity reaches rustls as an `Other` error.
        CertificateError::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
            format!("the drain presents a CA certificate as its own (a self-signed one made as a CA){trust}")
        }
        refused => format!("the drain's certificate is refused: {refused}"),
    }
}
