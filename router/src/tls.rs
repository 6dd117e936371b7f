//! HTTPS: each handshake gets the certificate the current route table holds for the
//! name the client asked for (SNI), or else the default: a configured certificate, or one
//! the platform's local CA issues for that name on the spot (for hosts the table routes),
//! so that `https://<app>.localhost` verifies for anyone who trusts that CA. ALPN offers
//! HTTP/2 and HTTP/1.1, and `acme-tls/1` to ACME servers checking a TLS-ALPN-01 challenge
//! (RFC 8737): they get the challenge's certificate, and the connection ends there.

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use skiff_api::{AcmeChallenge, AcmeChallengeKind, RouteCertificate};
pub use skiff_service::ca::{LocalCa, certified_key};

use crate::table::Table;

/// The ALPN protocol of TLS-ALPN-01 challenges.
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";

/// Certificates by host: exact names, and `*.example.com` for one label under it; and the
/// TLS-ALPN-01 challenge certificates, by domain.
#[derive(Debug, Default)]
pub struct Certificates {
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// By parent domain (`example.com` for `*.example.com`).
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    acme: HashMap<String, Arc<CertifiedKey>>,
}

/// The certificate that answers a TLS-ALPN-01 challenge for `domain`: self-signed, naming
/// only the domain, with the key authorization's SHA-256 digest in the critical
/// `id-pe-acmeIdentifier` extension (RFC 8737 §3).
fn acme_challenge_certificate(domain: &str, key_authorization: &str) -> Option<Arc<CertifiedKey>> {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(key_authorization.as_bytes());
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()]).ok()?;
    params.custom_extensions.push(rcgen::CustomExtension::new_acme_identifier(&digest));
    let key = rcgen::KeyPair::generate().ok()?;
    let cert = params.self_signed(&key).ok()?;
    certified_key(&cert.pem(), &key.serialize_pem()).ok()
}

impl Certificates {
    /// Parses the route feed's certificates, and makes those of its TLS-ALPN-01 challenges;
    /// one that does not parse is logged and left out.
    pub fn from_routes(certificates: &[RouteCertificate], challenges: &[AcmeChallenge]) -> Self {
        let mut parsed = Self::default();
        for challenge in challenges.iter().filter(|c| c.kind == AcmeChallengeKind::TlsAlpn01) {
            let domain = challenge.domain.to_ascii_lowercase();
            match acme_challenge_certificate(&domain, &challenge.key_authorization) {
                Some(key) => parsed.acme.insert(domain, key),
                None => {
                    tracing::warn!(domain, "router.tls: no certificate can answer the challenge");
                    continue;
                }
            };
        }
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

    /// The certificate answering a TLS-ALPN-01 challenge for a server name, if one is
    /// under way.
    pub fn acme_challenge(&self, name: &str) -> Option<Arc<CertifiedKey>> {
        self.acme.get(&name.trim_end_matches('.').to_ascii_lowercase()).cloned()
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

/// Why HTTPS cannot be served.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot issue a certificate for {0}")]
    Issue(String),
    #[error("the TLS library refuses its settings: {0}")]
    Settings(rustls::Error),
}

/// What a client gets when the table holds no certificate for the name it asked for.
#[derive(Debug)]
pub enum DefaultCertificate {
    /// One certificate for every such name (e.g. for `*.<platform domain>`).
    Fixed(Arc<CertifiedKey>),
    /// A certificate from the local CA for each routed name; `fallback` for the rest.
    Issued { ca: Box<LocalCa>, fallback: Arc<CertifiedKey> },
}

impl DefaultCertificate {
    /// Certificates from `ca` for routed names, and its certificate for `domain` for
    /// every other name.
    ///
    /// # Errors
    /// When `domain` is not a name a certificate can be issued for.
    pub fn issued(ca: LocalCa, domain: &str) -> Result<Self, TlsError> {
        let fallback = ca.issue(domain).ok_or_else(|| TlsError::Issue(domain.to_owned()))?;
        Ok(Self::Issued { ca: Box::new(ca), fallback })
    }
}

/// Picks a certificate per handshake from the current table.
#[derive(Debug)]
struct Resolver {
    table: Arc<ArcSwap<Table>>,
    default: DefaultCertificate,
}

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let name = hello.server_name().map(|name| name.trim_end_matches('.').to_ascii_lowercase());
        let table = self.table.load();
        // An ACME server checking a challenge gets its certificate, or nothing.
        if hello.alpn().is_some_and(|mut protocols| protocols.any(|p| p == ACME_TLS_ALPN)) {
            return name.and_then(|name| table.certificates.acme_challenge(&name));
        }
        if let Some(found) = name.as_deref().and_then(|name| table.certificates.find(name)) {
            return Some(found);
        }
        match &self.default {
            DefaultCertificate::Fixed(key) => Some(key.clone()),
            DefaultCertificate::Issued { ca, fallback } => {
                let routed = name.filter(|name| !matches!(table.lookup(name), crate::Lookup::UnknownHost));
                Some(routed.and_then(|name| ca.issue(&name)).unwrap_or_else(|| fallback.clone()))
            }
        }
    }
}

/// TLS 1.2 sessions kept for resumption by id (clients without tickets).
const SESSION_CACHE: usize = 40_000;

/// The TLS settings of the router's HTTPS listener.
///
/// # Errors
/// When the TLS library refuses its defaults.
pub fn server_config(
    table: Arc<ArcSwap<Table>>,
    default: DefaultCertificate,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(TlsError::Settings)?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(Resolver { table, default }));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec(), ACME_TLS_ALPN.to_vec()];
    // Returning clients resume their sessions instead of a full handshake: TLS 1.3 and 1.2
    // tickets sealed with a key that rotates every six hours (nothing kept per client), and
    // TLS 1.2 session ids in a cache as large as nginx's usual 10 MB one.
    config.ticketer = rustls::crypto::aws_lc_rs::Ticketer::new().map_err(TlsError::Settings)?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE);
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
        let certificates = Certificates::from_routes(&[exact.clone(), wildcard, broken], &[]);
        let www = certificates.find("WWW.example.com.").unwrap();
        let api = certificates.find("api.example.com").unwrap();
        assert!(!Arc::ptr_eq(&www, &api), "the exact name wins over the wildcard");
        assert!(certificates.find("a.b.example.com").is_none(), "a wildcard covers one label");
        assert!(certificates.find("example.com").is_none());
        assert!(certificates.find("bad.test").is_none(), "a certificate that does not parse is left out");
    }

    #[test]
    fn tls_alpn_challenges_get_a_certificate_with_the_key_authorizations_digest() {
        let challenge = |kind| AcmeChallenge {
            domain: "WWW.shop.test".into(),
            token: "t".into(),
            key_authorization: "t.thumbprint".into(),
            kind,
        };
        let http = Certificates::from_routes(&[], &[challenge(AcmeChallengeKind::Http01)]);
        assert!(http.acme_challenge("www.shop.test").is_none(), "HTTP-01 is answered over HTTP");
        let certificates = Certificates::from_routes(&[], &[challenge(AcmeChallengeKind::TlsAlpn01)]);
        let key = certificates.acme_challenge("www.shop.test.").expect("made");
        assert!(certificates.find("www.shop.test").is_none(), "served only to the ACME server");
        let (_, cert) = x509_parser::parse_x509_certificate(&key.cert[0]).unwrap();
        let extension = cert
            .extensions()
            .iter()
            .find(|e| e.oid.to_id_string() == "1.3.6.1.5.5.7.1.31")
            .expect("id-pe-acmeIdentifier");
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(b"t.thumbprint");
        // An OCTET STRING of the 32-byte digest.
        assert!(extension.critical && extension.value.ends_with(&digest) && extension.value.len() == 34);
        let names: Vec<String> = cert
            .subject_alternative_name()
            .unwrap()
            .unwrap()
            .value
            .general_names
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(names, ["DNSName(www.shop.test)"]);
    }

    /// One handshake between a client and the router's TLS settings, in memory: whether
    /// it resumed a session (the client keeps the tickets it is given for the next one).
    fn handshake(client: &Arc<rustls::ClientConfig>, server: &Arc<rustls::ServerConfig>) -> rustls::HandshakeKind {
        let name = rustls::pki_types::ServerName::try_from("shop.test").unwrap();
        let mut client = rustls::ClientConnection::new(client.clone(), name).unwrap();
        let mut server = rustls::ServerConnection::new(server.clone()).unwrap();
        // A few flights each way: the handshake, then the tickets after it.
        for _ in 0..4 {
            let mut flight = Vec::new();
            while client.wants_write() {
                client.write_tls(&mut flight).unwrap();
            }
            if !flight.is_empty() {
                server.read_tls(&mut flight.as_slice()).unwrap();
                server.process_new_packets().unwrap();
            }
            let mut flight = Vec::new();
            while server.wants_write() {
                server.write_tls(&mut flight).unwrap();
            }
            if !flight.is_empty() {
                client.read_tls(&mut flight.as_slice()).unwrap();
                client.process_new_packets().unwrap();
            }
        }
        assert!(!client.is_handshaking() && !server.is_handshaking());
        server.handshake_kind().unwrap()
    }

    #[test]
    fn returning_clients_resume_their_sessions_over_tls_1_2_and_1_3() {
        let certified = rcgen::generate_simple_self_signed(vec!["shop.test".to_owned()]).unwrap();
        let key = certified_key(&certified.cert.pem(), &certified.signing_key.serialize_pem()).unwrap();
        let table = Arc::new(ArcSwap::from_pointee(Table::from_snapshot(&skiff_api::RouteTable::default())));
        let server = server_config(table, DefaultCertificate::Fixed(key)).unwrap();
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certified.cert.der().clone()).unwrap();
        for version in [&rustls::version::TLS12, &rustls::version::TLS13] {
            // A client with a session store of its own.
            let new_client = || {
                let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
                let config = rustls::ClientConfig::builder_with_provider(provider)
                    .with_protocol_versions(&[version])
                    .unwrap()
                    .with_root_certificates(roots.clone())
                    .with_no_client_auth();
                Arc::new(config)
            };
            let client = new_client();
            let kinds = [handshake(&client, &server), handshake(&client, &server), handshake(&client, &server)];
            use rustls::HandshakeKind::{Full, Resumed};
            assert_eq!(kinds, [Full, Resumed, Resumed], "{version:?}");
            // More clients than rustls keeps sessions for by default (256): each resumes.
            let clients: Vec<_> = (0..300).map(|_| new_client()).collect();
            assert!(clients.iter().all(|client| handshake(client, &server) == Full));
            let resumed = clients.iter().filter(|client| handshake(client, &server) == Resumed).count();
            assert_eq!(resumed, 300, "{version:?}");
        }
    }
}
