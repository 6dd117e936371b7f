//! Who may pull and push. Clients authenticate with HTTP Basic (what `docker login`
//! stores) or a bearer token. The platform's service token may do anything; every other
//! credential is checked by an [`Authorizer`], in production the controller, whose
//! answers are cached for a short while.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use base64::Engine as _;
use http::{HeaderMap, header};
use sha2::{Digest as _, Sha256};
use skiff_api::{RegistryAccess, RegistryGrant};

/// How long an answer from the controller is reused.
const CACHE_TTL: Duration = Duration::from_secs(30);
/// Cached answers kept at most (the cache is emptied when full).
const CACHE_LIMIT: usize = 10_000;

/// Credentials presented with a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: Option<String>,
    pub secret: String,
    /// Where they came from, for counting failed sign-ins.
    pub client: Option<std::net::IpAddr>,
}

impl Credentials {
    /// Reads `Authorization: Basic …` or `Authorization: Bearer …` of a request from
    /// `client`.
    pub fn from_request(headers: &HeaderMap, client: Option<std::net::IpAddr>) -> Option<Self> {
        Self::from_headers(headers).map(|credentials| Self { client, ..credentials })
    }

    /// Reads `Authorization: Basic …` or `Authorization: Bearer …`.
    pub fn from_headers(headers: &HeaderMap) -> Option<Self> {
        let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?.trim();
        if let Some(encoded) = value.strip_prefix("Basic ") {
            let decoded = base64::engine::general_purpose::STANDARD.decode(encoded.trim()).ok()?;
            let decoded = String::from_utf8(decoded).ok()?;
            let (user, secret) = decoded.split_once(':')?;
            let username = Some(user.to_owned()).filter(|u| !u.is_empty());
            return Some(Self { username, secret: secret.to_owned(), client: None });
        }
        value.strip_prefix("Bearer ").map(|token| Self {
            username: None,
            secret: token.trim().to_owned(),
            client: None,
        })
    }
}

/// Why an authorizer could not answer.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("cannot check credentials: {0}")]
    Unavailable(String),
    /// Too many failed sign-ins from this user or address lately; wait this long.
    #[error("too many failed sign-ins; try again in {} s", .0.as_secs())]
    Throttled(Duration),
}

impl From<AuthError> for crate::error::OciError {
    fn from(e: AuthError) -> Self {
        match e {
            AuthError::Throttled(wait) => Self::too_many_attempts(wait),
            AuthError::Unavailable(_) => Self::new(http::StatusCode::SERVICE_UNAVAILABLE, "UNAVAILABLE", e.to_string()),
        }
    }
}

/// Decides what credentials may do in a repository; `Ok(None)` means the credentials
/// are wrong.
#[async_trait]
pub trait Authorizer: Send + Sync + 'static {
    async fn authorize(
        &self,
        credentials: &Credentials,
        repo: Option<&str>,
    ) -> Result<Option<RegistryGrant>, AuthError>;
}

/// Accepts only the service token (for a registry without a controller, and for tests).
#[derive(Debug, Clone)]
pub struct ServiceTokenOnly;

#[async_trait]
impl Authorizer for ServiceTokenOnly {
    async fn authorize(&self, _: &Credentials, _: Option<&str>) -> Result<Option<RegistryGrant>, AuthError> {
        Ok(None)
    }
}

/// Answers by a hash of (user, secret, repository), with the time they were given.
type GrantCache = HashMap<[u8; 32], (Option<RegistryGrant>, Instant)>;

/// Asks the controller, caching answers for [`CACHE_TTL`].
pub struct ControllerAuthorizer {
    client: skiff_client::Client,
    cache: Mutex<GrantCache>,
}

impl ControllerAuthorizer {
    /// `controller_url` is the controller's base URL; `service_token` authenticates the
    /// registry to it.
    pub fn new(controller_url: &str, service_token: &str) -> Self {
        Self {
            client: skiff_client::Client::new(controller_url, Some(service_token.to_owned())),
            cache: Mutex::new(HashMap::new()),
        }
    }

    fn key(credentials: &Credentials, repo: Option<&str>) -> [u8; 32] {
        let mut hasher = Sha256::new();
        for part in [credentials.username.as_deref().unwrap_or(""), &credentials.secret, repo.unwrap_or("")] {
            hasher.update((part.len() as u64).to_be_bytes());
            hasher.update(part.as_bytes());
        }
        hasher.finalize().into()
    }

    fn cache(&self) -> std::sync::MutexGuard<'_, GrantCache> {
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[async_trait]
impl Authorizer for ControllerAuthorizer {
    async fn authorize(
        &self,
        credentials: &Credentials,
        repo: Option<&str>,
    ) -> Result<Option<RegistryGrant>, AuthError> {
        let key = Self::key(credentials, repo);
        if let Some((grant, at)) = self.cache().get(&key)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(*grant);
        }
        let access = RegistryAccess {
            username: credentials.username.clone(),
            secret: credentials.secret.clone(),
            repository: repo.map(str::to_owned),
            client: credentials.client.map(|address| address.to_string()),
        };
        let grant = match self.client.registry_access(&access).await {
            Ok(grant) => Some(grant),
            Err(e) if e.status() == Some(skiff_client::StatusCode::UNAUTHORIZED) => None,
            Err(skiff_client::ClientError::Api { retry_after: Some(wait), .. }) => {
                return Err(AuthError::Throttled(wait));
            }
            Err(e) => return Err(AuthError::Unavailable(e.to_string())),
        };
        let mut cache = self.cache();
        if cache.len() >= CACHE_LIMIT {
            cache.clear();
        }
        cache.insert(key, (grant, Instant::now()));
        Ok(grant)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_and_bearer_credentials_are_read() {
        let mut headers = HeaderMap::new();
        headers.insert(header::AUTHORIZATION, "Basic YWRtaW46czNjcmV0".parse().unwrap());
        assert_eq!(
            Credentials::from_headers(&headers),
            Some(Credentials { username: Some("admin".into()), secret: "s3cret".into(), client: None })
        );
        headers.insert(header::AUTHORIZATION, "Bearer tok".parse().unwrap());
        assert_eq!(
            Credentials::from_headers(&headers),
            Some(Credentials { username: None, secret: "tok".into(), client: None })
        );
        headers.insert(header::AUTHORIZATION, "Basic !!!".parse().unwrap());
        assert_eq!(Credentials::from_headers(&headers), None);
    }
}
