//! TLS certificates and HTTPS policy per app: PEM chains and keys checked on upload,
//! attached to the app's domains; the router gets attached ones through the route feed.

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use skiff_api::{AutoCertificates, Certificate, CertificateCreate, TlsSettings};

use crate::db::{AppRow, UserRow, now};
use crate::error::ApiError;
use crate::events::Event;
use crate::state::Controller;
use skiff_api::EventKind;

/// The largest PEM chain and key accepted.
const MAX_CHAIN: usize = 64 * 1024;
const MAX_KEY: usize = 16 * 1024;

/// What a valid certificate says of itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Inspected {
    pub common_name: String,
    /// DNS names from the subject alternative names (the common name when there are none).
    pub names: Vec<String>,
    /// RFC 3339.
    pub expires_at: String,
    /// How long it is valid from first to last, in seconds.
    pub lifetime_secs: i64,
}

/// What is wrong with an uploaded certificate, in words for the person who uploaded it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CertificateError {
    #[error("the certificate chain may be {MAX_CHAIN} bytes and the key {MAX_KEY} at most")]
    TooLarge,
    #[error("the certificate is not valid PEM: {0}")]
    Pem(String),
    #[error("no PEM certificate found (expected -----BEGIN CERTIFICATE-----)")]
    NoCertificate,
    #[error("no PEM private key found (expected -----BEGIN PRIVATE KEY----- or similar)")]
    NoKey,
    #[error("the certificate is invalid: {0}")]
    Invalid(String),
    #[error("the private key cannot be used: {0}")]
    UnusableKey(String),
    #[error("the private key's type is not supported")]
    KeyType,
    #[error("the private key does not belong to the certificate (the first one in the chain)")]
    NotTheLeafsKey,
    #[error("the certificate's expiry cannot be read")]
    Expiry,
    #[error("the certificate expired at {0}")]
    Expired(String),
}

/// Checks a PEM chain (leaf first) and its private key: both parse, the key is the leaf's,
/// and the leaf has not expired at `now` (Unix seconds).
///
/// # Errors
/// What is wrong.
pub fn inspect(chain_pem: &str, key_pem: &str, now: i64) -> Result<Inspected, CertificateError> {
    if chain_pem.len() > MAX_CHAIN || key_pem.len() > MAX_KEY {
        return Err(CertificateError::TooLarge);
    }
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .map_err(|e| CertificateError::Pem(e.to_string()))?;
    let leaf = chain.first().ok_or(CertificateError::NoCertificate)?;
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes()).map_err(|_| CertificateError::NoKey)?;
    let (_, cert) = x509_parser::parse_x509_certificate(leaf).map_err(|e| CertificateError::Invalid(e.to_string()))?;
    let signing = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key)
        .map_err(|e| CertificateError::UnusableKey(e.to_string()))?;
    let public = signing.public_key().ok_or(CertificateError::KeyType)?;
    if public.as_ref() != cert.public_key().raw {
        return Err(CertificateError::NotTheLeafsKey);
    }
    let not_after = cert.validity().not_after.timestamp();
    let expires_at = time::OffsetDateTime::from_unix_timestamp(not_after)
        .ok()
        .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok())
        .ok_or(CertificateError::Expiry)?;
    if not_after <= now {
        return Err(CertificateError::Expired(expires_at));
    }
    let common_name =
        cert.subject().iter_common_name().next().and_then(|cn| cn.as_str().ok()).unwrap_or_default().to_owned();
    let mut names: Vec<String> = match cert.subject_alternative_name() {
        Ok(Some(extension)) => extension
            .value
            .general_names
            .iter()
            .filter_map(|name| match name {
                x509_parser::extensions::GeneralName::DNSName(dns) => Some(dns.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    };
    if names.is_empty() && !common_name.is_empty() {
        names.push(common_name.to_ascii_lowercase());
    }
    let lifetime_secs = not_after - cert.validity().not_before.timestamp();
    Ok(Inspected { common_name, names, expires_at, lifetime_secs })
}

/// Whether a certificate for `names` is valid for `domain`: an exact name, or a wildcard
/// one label deep (`*.example.com` covers `www.example.com`, and the domain
/// `*.example.com` itself).
pub fn covers(names: &[String], domain: &str) -> bool {
    names.iter().any(|name| {
        name == domain
            || name.strip_prefix("*.").is_some_and(|parent| {
                domain.split_once('.').is_some_and(|(label, rest)| rest == parent && !label.contains('*'))
            })
    })
}

/// An app's certificates and TLS settings.
pub struct Certificates<'a>(&'a Controller);

impl Controller {
    pub fn certificates(&self) -> Certificates<'_> {
        Certificates(self)
    }
}

impl Certificates<'_> {
    /// The app's certificates.
    pub async fn list(&self, app: &AppRow) -> Result<Vec<Certificate>, ApiError> {
        Ok(self.0.db.certs(app.id).await?)
    }

    /// Adds a certificate chain and its key under a name.
    pub async fn add(&self, user: &UserRow, app: &AppRow, body: CertificateCreate) -> Result<Certificate, ApiError> {
        let c = self.0;
        if body.name.parse::<skiff_api::AppName>().is_err() {
            return Err(ApiError::BadRequest(format!(
                "`{}` is not a certificate name; use lowercase letters, digits and dashes",
                body.name.escape_debug()
            )));
        }
        let inspected =
            inspect(&body.certificate_chain, &body.private_key, time::OffsetDateTime::now_utc().unix_timestamp())
                .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let cert = Certificate {
            name: body.name,
            common_name: inspected.common_name,
            names: inspected.names,
            domains: Vec::new(),
            expires_at: inspected.expires_at,
            created_at: now(),
        };
        if !c.db.add_cert(app.id, &cert, &body.certificate_chain, &body.private_key).await? {
            return Err(ApiError::Conflict(format!("{} has a certificate named {} already", app.name, cert.name)));
        }
        let message = format!("{} added certificate {}", user.username, cert.name);
        c.events.emit(&app.name, Event::new(EventKind::Domain, message).by(&user.username)).await;
        Ok(cert)
    }

    /// Removes a certificate (and detaches it from every domain).
    pub async fn remove(&self, user: &UserRow, app: &AppRow, name: &str) -> Result<(), ApiError> {
        let c = self.0;
        if !c.db.remove_cert(app.id, name).await? {
            return Err(ApiError::NotFound(format!("{} has no certificate {name}; see `skiff certs`", app.name)));
        }
        let message = format!("{} removed certificate {name}", user.username);
        c.announce_change(&app.name, Event::new(EventKind::Domain, message).by(&user.username)).await;
        Ok(())
    }

    /// Serves a certificate for one of the app's domains that it covers.
    pub async fn attach(&self, user: &UserRow, app: &AppRow, name: &str, domain: &str) -> Result<(), ApiError> {
        let c = self.0;
        let domain = domain.trim().trim_end_matches('.').to_ascii_lowercase();
        let cert = c.db.certs(app.id).await?.into_iter().find(|cert| cert.name == name).ok_or_else(|| {
            ApiError::NotFound(format!("{} has no certificate {name}; add it with `skiff certs:add`", app.name))
        })?;
        if !covers(&cert.names, &domain) {
            return Err(ApiError::BadRequest(format!(
                "certificate {name} does not cover {domain}; it covers {}",
                cert.names.join(", ")
            )));
        }
        if !c.db.attach_cert(app.id, name, &domain).await? {
            return Err(ApiError::NotFound(format!(
                "{domain} is not a domain of {}; add it first with `skiff domains:add {domain}`",
                app.name
            )));
        }
        let message = format!("{} attached certificate {name} to {domain}", user.username);
        c.announce_change(&app.name, Event::new(EventKind::Domain, message).by(&user.username)).await;
        Ok(())
    }

    /// Stops serving a certificate for a domain.
    pub async fn detach(&self, user: &UserRow, app: &AppRow, name: &str, domain: &str) -> Result<(), ApiError> {
        let c = self.0;
        let domain = domain.to_ascii_lowercase();
        if !c.db.detach_cert(app.id, name, &domain).await? {
            return Err(ApiError::NotFound(format!(
                "certificate {name} is not attached to {domain}; see `skiff certs`"
            )));
        }
        let message = format!("{} detached certificate {name} from {domain}", user.username);
        c.announce_change(&app.name, Event::new(EventKind::Domain, message).by(&user.username)).await;
        Ok(())
    }

    /// Whether the app's custom domains get certificates by themselves, and each one's.
    pub async fn auto(&self, app: &AppRow) -> Result<AutoCertificates, ApiError> {
        let c = self.0;
        let enabled = c.db.acme_enabled(app.id).await?;
        let domains = if enabled { c.db.auto_certificates(app.id).await? } else { Vec::new() };
        Ok(AutoCertificates { enabled, domains })
    }

    /// Has every custom domain of the app (and each one added later) get a certificate from
    /// the platform's ACME server, renewed before it expires.
    pub async fn enable_auto(&self, user: &UserRow, app: &AppRow) -> Result<AutoCertificates, ApiError> {
        let c = self.0;
        if c.db.enable_acme(app.id).await? {
            let message =
                format!("{} turned on automatic certificates (from {})", user.username, c.config.acme.directory);
            c.events.emit(&app.name, Event::new(EventKind::Domain, message).by(&user.username)).await;
            c.acme_wake.notify_one();
        }
        self.auto(app).await
    }

    /// Stops ordering and renewing certificates for the app; those issued are served until
    /// removed (`skiff certs:remove auto-DOMAIN`).
    pub async fn disable_auto(&self, user: &UserRow, app: &AppRow) -> Result<(), ApiError> {
        let c = self.0;
        if c.db.disable_acme(app.id).await? {
            let message = format!("{} turned off automatic certificates", user.username);
            c.announce_change(&app.name, Event::new(EventKind::Domain, message).by(&user.username)).await;
        }
        Ok(())
    }

    /// Sets whether plain HTTP is redirected to HTTPS, and HSTS.
    pub async fn set_tls(&self, user: &UserRow, app: &AppRow, tls: TlsSettings) -> Result<(), ApiError> {
        let c = self.0;
        c.db.set_tls(app.id, tls).await?;
        let hsts = if tls.hsts_max_age > 0 { format!(", HSTS max-age {}", tls.hsts_max_age) } else { String::new() };
        let https = if tls.force_https { "HTTPS only" } else { "HTTP and HTTPS" };
        let message = format!("{} set TLS: {https}{hsts}", user.username);
        c.announce_change(&app.name, Event::new(EventKind::Domain, message).by(&user.username)).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn certificate(names: &[&str]) -> (String, String) {
        let certified = rcgen::generate_simple_self_signed(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>())
            .expect("a certificate");
        (certified.cert.pem(), certified.signing_key.serialize_pem())
    }

    #[test]
    fn a_matching_chain_and_key_are_inspected() {
        let (chain, key) = certificate(&["www.example.com", "*.example.com"]);
        let inspected = inspect(&chain, &key, 0).unwrap();
        assert_eq!(inspected.names, ["www.example.com", "*.example.com"]);
        assert!(inspected.expires_at.starts_with("4096-"), "rcgen's default expiry: {}", inspected.expires_at);
    }

    #[test]
    fn bad_chains_and_keys_say_what_is_wrong() {
        let (chain, key) = certificate(&["a.example.com"]);
        let (_, other_key) = certificate(&["b.example.com"]);
        let cases = [
            (chain.as_str(), other_key.as_str(), "does not belong"),
            ("not pem", key.as_str(), "no PEM certificate"),
            (chain.as_str(), "not pem", "no PEM private key"),
            ("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n", key.as_str(), "invalid"),
        ];
        for (chain, key, expected) in cases {
            let error = inspect(chain, key, 0).unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
        assert!(matches!(inspect(&chain, &key, i64::MAX / 2), Err(CertificateError::Expired(_))));
    }

    #[test]
    fn wildcards_cover_one_label() {
        let names = ["*.example.com".to_owned(), "example.org".to_owned()];
        assert!(covers(&names, "www.example.com"));
        assert!(covers(&names, "*.example.com"));
        assert!(covers(&names, "example.org"));
        assert!(!covers(&names, "a.b.example.com"));
        assert!(!covers(&names, "example.com"));
        assert!(!covers(&names, "www.example.org"));
    }
}
