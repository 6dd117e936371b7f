//! HTTPS: each handshake gets the certificate the current route table holds for the
//! name the client asked for (SNI), or the default certificate for every other name.
//! ALPN offers HTTP/2 and HTTP/1.1.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use skiff_api::RouteCertificate;

use crate::table::Table;

/// A PEM chain (leaf first) and its key, ready to serve.
///
/// # Errors
/// When either does not parse or the key's type is not supported.
pub fn certified_key(chain_pem: &str, key_pem: &str) -> Result<Arc<CertifiedKey>, String> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| format!("invalid certificate PEM: {e}"))?;
    if chain.is_empty() {
        return Err("no PEM certificate".into());
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|e| format!("invalid private key PEM: {e}"))?;
    let key = rustls::crypto::ring::sign::any_supported_type(&key).map_err(|e| e.to_string())?;
    Ok(Arc::new(CertifiedKey::new(chain, key)))
}

/// Certificates by host: exact names, and `*.example.com` for one label under it.
#[derive(Debug, Default)]
pub struct Certificates {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By parent domain (`example.com` for `*.example.com`).
    wildcard: HashMap<String, Arc<CertifiedKey>>,
}

impl Certificates {
    /// Parses the route feed's certificates; one that does not parse is logged and left out.
    pub fn from_routes(certificates: &[RouteCertificate]) -> Self {
        let mut parsed = Self::default();
        for certificate in certificates {
            let key = match certified_key(&certificate.chain_pem, &certificate.key_pem) {
                Ok(key) => key,
                Err(error) => {
                    tracing::warn!(%error, hosts = ?certificate.hosts, "router.tls: certificate left out");
                    continue;
                }
            };
            for host in &certificate.hosts {
                let host = host.to_ascii_lowercase();
                match host.strip_prefix("*.") {
                    Some(parent) => parsed.wildcard.insert(parent.to_owned(), key.clone()),
                    None => parsed.exact.insert(host, key.clone()),
                };
            }
        }
        parsed
    }

    /// The certificate for a server name, if any.
    pub fn find(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        self.exact
            .get(&name)
            .or_else(|| name.split_once('.').and_then(|(_, parent)| self.wildcard.get(parent)))
            .cloned()
    }
}

/// Picks a certificate per handshake from the current table.
#[derive(Debug)]
struct Resolver {
    table: Arc<ArcSwap<Table>>,
    default: Arc<CertifiedKey>,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let found = hello.server_name().and_then(|name| self.table.load().certificates.find(name));
        Some(found.unwrap_or_else(|| self.default.clone()))
    }
}

/// The TLS settings of the router's HTTPS listener.
///
/// # Errors
/// When the default certificate is unusable.
pub fn server_config(
    table: Arc<ArcSwap<Table>>,
    default: Arc<CertifiedKey>,
) -> Result<Arc<rustls::ServerConfig>, String> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver { table, default }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route_certificate(hosts: &[&str]) -> RouteCertificate {
        let certified = rcgen::generate_simple_self_signed(vec!["x.test".to_owned()]).unwrap();
        RouteCertificate {
            hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
            chain_pem: certified.cert.pem(),
            key_pem: certified.signing_key.serialize_pem(),
        }
    }

    #[test]
    fn certificates_are_found_by_exact_name_then_one_label_wildcard() {
        let exact = route_certificate(&["www.example.com"]);
        let wildcard = route_certificate(&["*.example.com"]);
        let broken = RouteCertificate { hosts: vec!["bad.test".into()], chain_pem: "x".into(), key_pem: "y".into() };
        let certificates = Certificates::from_routes(&[exact.clone(), wildcard, broken]);
        let www = certificates.find("WWW.example.com.").unwrap();
        let api = certificates.find("api.example.com").unwrap();
        assert!(!Arc::ptr_eq(&www, &api), "the exact name wins over the wildcard");
        assert!(certificates.find("a.b.example.com").is_none(), "a wildcard covers one label");
        assert!(certificates.find("example.com").is_none());
        assert!(certificates.find("bad.test").is_none(), "a certificate that does not parse is left out");
    }
}
