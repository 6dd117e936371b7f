//! Connections a tenant asks the platform to make (log drains, webhooks): only to the
//! addresses the outbound guard allows, checked for every address a name resolves to at
//! the moment of connecting (so a name that changes what it resolves to is checked
//! again), and over TLS to servers the system or the operator trusts, with refusals in
//! words an operator can act on.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use skiff_api::OutboundPolicy;
use tokio::net::TcpStream;

/// Resolves `host` and keeps the addresses `guard` allows (every one without a guard).
///
/// # Errors
/// When the name does not resolve, or the guard refuses every address (naming each and
/// why, and the setting that allows it).
pub async fn allowed_addresses(
    host: &str,
    port: u16,
    guard: Option<&OutboundPolicy>,
) -> Result<Vec<SocketAddr>, String> {
    let resolved: Vec<SocketAddr> =
        tokio::net::lookup_host((host, port)).await.map_err(|e| format!("cannot resolve {host}: {e}"))?.collect();
    let Some(guard) = guard else { return Ok(resolved) };
    let mut refusals = Vec::new();
    let allowed: Vec<SocketAddr> = resolved
        .into_iter()
        .filter(|address| match guard.refusal(address.ip()) {
            Some(why) => {
                refusals.push(format!("{} is {why}", address.ip()));
                false
            }
            None => true,
        })
        .collect();
    if allowed.is_empty() {
        return Err(format!(
            "refused: {host} ({}); the operator can allow a network with SKIFF_OUTBOUND_ALLOW",
            refusals.join(", ")
        ));
    }
    Ok(allowed)
}

/// A TCP connection to `host` at an address `guard` allows, within `timeout`.
///
/// # Errors
/// A refusal by the guard ([`allowed_addresses`]), or why the connection failed.
pub async fn tcp(
    host: &str,
    port: u16,
    guard: Option<&OutboundPolicy>,
    timeout: Duration,
) -> Result<TcpStream, String> {
    let addresses = allowed_addresses(host, port, guard).await?;
    let tcp = tokio::time::timeout(timeout, TcpStream::connect(addresses.as_slice()))
        .await
        .map_err(|_| "connect timed out".to_owned())?
        .map_err(|e| format!("cannot connect: {e}"))?;
    let _ = tcp.set_nodelay(true);
    Ok(tcp)
}

/// Who is on the other end of a TLS connection, to explain a refused certificate: what
/// it is ("the drain") and the setting that trusts another CA.
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub what: &'static str,
    pub ca_setting: &'static str,
}

/// A TLS session over `tcp` with `host`, checked with `config` ([`tls_config`]).
///
/// # Errors
/// A name that cannot be a TLS server name, a timeout, or a refused handshake in words an
/// operator can act on.
pub async fn tls(
    tcp: TcpStream,
    host: &str,
    config: &Arc<rustls::ClientConfig>,
    peer: Peer,
    timeout: Duration,
) -> Result<tokio_rustls::client::TlsStream<TcpStream>, String> {
    let name =
        rustls::pki_types::ServerName::try_from(host.to_owned()).map_err(|e| format!("not a TLS server name: {e}"))?;
    let connector = tokio_rustls::TlsConnector::from(config.clone());
    tokio::time::timeout(timeout, connector.connect(name, tcp))
        .await
        .map_err(|_| "TLS handshake timed out".to_owned())?
        .map_err(|e| handshake_failure(&e, peer))
}

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

/// Reads trusted roots for outbound TLS: the system's, plus the PEM certificates in
/// `extra_ca` (for servers behind a private CA). A server that presents one of the `extra_ca`
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
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
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

/// The usual certificate checks, and besides them: a server that presents, as its own
/// certificate, exactly one the operator trusts is trusted.
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

/// A failed TLS handshake, in words an operator can act on.
fn handshake_failure(error: &std::io::Error, Peer { what, ca_setting }: Peer) -> String {
    use rustls::{CertificateError, Error};
    let trust = format!("; trust its CA, or {what}'s own certificate, with {ca_setting}");
    let Some(Error::InvalidCertificate(refused)) = error.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return format!("TLS handshake failed: {error}");
    };
    match refused {
        CertificateError::UnknownIssuer => format!("{what}'s certificate is not signed by a trusted CA{trust}"),
        // webpki's CaUsedAsEndEntity reaches rustls as an `Other` error.
        CertificateError::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
            format!("{what} presents a CA certificate as its own (a self-signed one made as a CA){trust}")
        }
        refused => format!("{what}'s certificate is refused: {refused}"),
    }
}
