//! Certificates ordered from an ACME server (RFC 8555; Let's Encrypt by default) for the
//! custom domains of apps that asked for them (`skiff certs:auto`).
//!
//! - **One orderer**: every controller runs [`order_certificates`], but only the one that
//!   holds the lease in the database (`acme_lease`, renewed as it works) orders; the others
//!   wait for it to lapse.
//! - **One account** per platform and directory, made on first use; its credentials are kept
//!   in the database sealed with a key derived from the service token ([`sealed`]), so that
//!   every controller of the platform can use it and a copy of the database alone cannot.
//! - **Proven through the routers**: each challenge's answer (HTTP-01 by default, or
//!   TLS-ALPN-01) goes into the database and from there into the route feed; once a router
//!   has taken the table that holds it, the ACME server is told to check. The order's URL is kept, so a controller restarted
//!   mid-order goes on with the same order.
//! - **Served at once**: the certificate is kept with the app's others (`auto-<domain>`),
//!   attached to its domain, and the routers serve it by SNI from their next table.
//! - **Renewed** `renew_before` its expiry; a failed attempt is tried again after
//!   `first_retry`, doubling to a day between attempts; every outcome is an event.
//!   A removed domain's certificate goes with it ([`crate::domain`]).

pub mod sealed;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use http_body_util::BodyExt;
use hyper::body::Bytes;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, BodyWrapper, BytesResponse, ChallengeStatus, ChallengeType,
    HttpClient, Identifier, NewAccount, NewOrder, OrderStatus, RetryPolicy,
};
use skiff_api::{AcmeChallenge, AcmeChallengeKind, Certificate, EventKind};
use skiff_service::outbound;
use tokio_util::sync::CancellationToken;

use crate::clock::{millis, now_ms};
use crate::db::{DueDomain, now};
use crate::domain::inspect;
use crate::events::Event;
use crate::outgoing::{Security, connect};
use crate::state::Controller;

/// Let's Encrypt's production directory.
pub const LETS_ENCRYPT: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// How long the right to order lasts without renewal: longer than one order may take.
const LEASE: Duration = Duration::from_secs(120);
/// The longest one order may take, validation and issuance included.
const ORDER_TIMEOUT: Duration = Duration::from_secs(90);
/// How long one request to the ACME server may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);
/// How long a challenge's answer may take to reach a router before the ACME server is
/// asked to check anyway (routers that follow another controller are not seen here).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(10);
/// The longest wait between attempts for a domain.
const MAX_RETRY: Duration = Duration::from_secs(24 * 3600);
/// The ACME server, as TLS refusals name it.
const ACME_SERVER: outbound::Peer = outbound::Peer { what: "the ACME server", ca_setting: "SKIFF_ACME_CA" };

/// Where and how certificates are ordered.
#[derive(Debug, Clone)]
pub struct AcmeConfig {
    /// The ACME directory URL (`SKIFF_ACME_DIRECTORY`).
    pub directory: String,
    /// Where the CA may write about the account's certificates (`SKIFF_ACME_EMAIL`).
    pub email: Option<String>,
    /// Whom the controller trusts as the ACME server (the system's CAs, plus `SKIFF_ACME_CA`).
    pub tls: Arc<rustls::ClientConfig>,
    /// How long before expiry a certificate is renewed.
    pub renew_before: Duration,
    /// The wait after a first failed attempt; it doubles after each.
    pub first_retry: Duration,
    /// How often the orderer looks for due domains when nothing wakes it.
    pub check_every: Duration,
    /// How domains are proven, when the ACME server offers it: HTTP-01 on the routers'
    /// HTTP port, or TLS-ALPN-01 on their HTTPS port (for platforms reached on 443 only).
    pub challenge: AcmeChallengeKind,
}

impl AcmeConfig {
    /// Let's Encrypt, renewing 30 days before expiry, retrying after a minute.
    pub fn new(tls: Arc<rustls::ClientConfig>) -> Self {
        Self {
            directory: LETS_ENCRYPT.to_owned(),
            email: None,
            tls,
            renew_before: Duration::from_secs(30 * 24 * 3600),
            first_retry: Duration::from_secs(60),
            check_every: Duration::from_secs(30),
            challenge: AcmeChallengeKind::Http01,
        }
    }

    /// How long before its expiry a certificate valid for `lifetime_secs` is renewed:
    /// `renew_before`, but no more than a third of its life (short-lived certificates are
    /// not renewed as soon as they are issued).
    fn renewal_margin(&self, lifetime_secs: i64) -> Duration {
        self.renew_before.min(Duration::from_secs(u64::try_from(lifetime_secs / 3).unwrap_or(0)))
    }

    /// The wait before the attempt after `failed` failed attempts.
    fn retry_after(&self, failed: u32) -> Duration {
        self.first_retry.saturating_mul(2u32.saturating_pow(failed.saturating_sub(1).min(20))).min(MAX_RETRY)
    }
}

/// The name an app's automatic certificate for `domain` is kept under (never a name a
/// user can give: those have no dots).
pub fn certificate_name(domain: &str) -> String {
    format!("auto-{domain}")
}

/// Why an attempt failed, and whether the order may still finish at the ACME server.
#[derive(Debug)]
struct Failure {
    message: String,
    keep_order: bool,
}

impl Failure {
    /// The order is over (invalid): the next attempt orders anew.
    fn ended(message: impl Into<String>) -> Self {
        Self { message: message.into(), keep_order: false }
    }
}

impl From<instant_acme::Error> for Failure {
    /// A request that failed on the way (the order may still be there).
    fn from(error: instant_acme::Error) -> Self {
        let keep_order = !matches!(error, instant_acme::Error::Api(_));
        Self { message: error.to_string(), keep_order }
    }
}

/// Orders and renews certificates until `shutdown`, while this controller holds the lease.
pub async fn order_certificates(controller: Arc<Controller>, shutdown: CancellationToken) {
    let holder = format!("{:016x}", rand::random::<u64>());
    let mut account = None;
    loop {
        // Stopping drops an order half done, as a crash would: the next controller goes on
        // with it.
        tokio::select! {
            result = round(&controller, &holder, &mut account, &shutdown) => {
                if let Err(error) = result {
                    tracing::warn!(%error, "controller.acme: a round failed; trying again");
                }
            }
            () = shutdown.cancelled() => break,
        }
        tokio::select! {
            () = tokio::time::sleep(controller.config.acme.check_every) => {}
            () = controller.acme_wake.notified() => {}
            () = shutdown.cancelled() => break,
        }
    }
    // Let another controller take over at once.
    if let Err(error) = controller.db.take_acme_lease(&holder, now_ms(), 0).await {
        tracing::warn!(%error, "controller.acme: the lease was not given up");
    }
}

/// Orders a certificate for every due domain, if this controller holds the lease.
async fn round(
    c: &Controller,
    holder: &str,
    account: &mut Option<Account>,
    shutdown: &CancellationToken,
) -> Result<(), crate::db::DbError> {
    let lease = || async { c.db.take_acme_lease(holder, now_ms(), now_ms() + millis(LEASE)).await };
    if !lease().await? {
        return Ok(());
    }
    for due in c.db.due_acme_domains(now_ms()).await? {
        if shutdown.is_cancelled() || !lease().await? {
            return Ok(());
        }
        let outcome = match account_for(c, account).await {
            Ok(account) => match tokio::time::timeout(ORDER_TIMEOUT, order(c, &account, &due)).await {
                Ok(outcome) => outcome,
                Err(_) => Err(Failure {
                    message: format!("the ACME server did not finish within {} s", ORDER_TIMEOUT.as_secs()),
                    keep_order: true,
                }),
            },
            Err(message) => Err(Failure { message, keep_order: true }),
        };
        match outcome {
            Ok((certificate, went_on)) => {
                let what = if due.renewal { "renewed" } else { "issued" };
                let resumed = if went_on { " (the order placed before went on)" } else { "" };
                let message = format!(
                    "certificate for {} {what} by the ACME server, valid until {}{resumed}",
                    due.domain, certificate.expires_at
                );
                c.announce_change(&due.app, Event::new(EventKind::Domain, message)).await;
            }
            Err(failure) => {
                c.db.remove_acme_challenges(&due.domain).await?;
                let wait = c.config.acme.retry_after(due.failures + 1);
                c.db.record_acme_failure(&due.domain, &failure.message, now_ms() + millis(wait), failure.keep_order)
                    .await?;
                let what = if due.renewal { "renewed" } else { "issued" };
                let message = format!(
                    "certificate for {} not {what}: {}; trying again in {} s",
                    due.domain,
                    failure.message,
                    wait.as_secs()
                );
                tracing::warn!(app = %due.app, domain = due.domain, error = failure.message, "controller.acme.failed");
                c.events.emit(&due.app, Event::new(EventKind::Domain, message)).await;
            }
        }
    }
    Ok(())
}

/// The platform's account at the directory: the one in hand, the one kept in the
/// database, or a new one (kept there, sealed).
async fn account_for(c: &Controller, account: &mut Option<Account>) -> Result<Account, String> {
    if let Some(account) = account {
        return Ok(account.clone());
    }
    let config = &c.config.acme;
    let http = || Box::new(AcmeHttp { tls: config.tls.clone() }) as Box<dyn HttpClient>;
    let kept = c.db.acme_account(&config.directory).await.map_err(|e| e.to_string())?;
    let credentials = kept.and_then(|kept| {
        let opened = sealed::open(&c.config.service_token, &kept)
            .map_err(|e| e.to_string())
            .and_then(|json| serde_json::from_slice::<AccountCredentials>(&json).map_err(|e| e.to_string()));
        opened
            .inspect_err(|error| {
                tracing::warn!(error, "controller.acme: the kept account cannot be opened (was the service token changed?); making a new one");
            })
            .ok()
    });
    let made = match credentials {
        Some(credentials) => Account::builder_with_http(http()).from_credentials(credentials).await,
        None => {
            let contact = config.email.as_ref().map(|email| format!("mailto:{email}"));
            let contacts: Vec<&str> = contact.iter().map(String::as_str).collect();
            let new = NewAccount { contact: &contacts, terms_of_service_agreed: true, only_return_existing: false };
            let (account, credentials) = Account::builder_with_http(http())
                .create(&new, config.directory.clone(), None)
                .await
                .map_err(|e| format!("cannot make an account at {}: {e}", config.directory))?;
            let json = serde_json::to_vec(&credentials).map_err(|e| e.to_string())?;
            let seal = sealed::seal(&c.config.service_token, &json);
            c.db.save_acme_account(&config.directory, &seal).await.map_err(|e| e.to_string())?;
            tracing::info!(directory = config.directory, id = account.id(), "controller.acme.account made");
            Ok(account)
        }
    };
    let made = made.map_err(|e| format!("cannot reach the ACME directory {}: {e}", config.directory))?;
    *account = Some(made.clone());
    Ok(made)
}

/// Goes on with the domain's order, or places one; answers its challenges through the
/// routers; finalizes it and keeps the certificate.
/// The certificate, and whether it came of an order placed before (a restart).
async fn order(c: &Controller, account: &Account, due: &DueDomain) -> Result<(Certificate, bool), Failure> {
    let resumed = match &due.order_url {
        // Only an order still waiting for its checks or its CSR can go on: the key of one
        // finalized before a restart is gone.
        Some(url) => match account.order(url.clone()).await {
            Ok(mut order) => matches!(order.state().status, OrderStatus::Pending | OrderStatus::Ready).then_some(order),
            Err(instant_acme::Error::Api(_)) => None,
            Err(error) => return Err(error.into()),
        },
        None => None,
    };
    let went_on = resumed.is_some();
    let mut order = match resumed {
        Some(order) => {
            tracing::info!(domain = due.domain, url = order.url(), "controller.acme: going on with the order");
            order
        }
        None => {
            let identifiers = [Identifier::Dns(due.domain.clone())];
            let order = account.new_order(&NewOrder::new(&identifiers)).await?;
            // Due at once for whoever orders next, should this controller stop mid-order.
            c.db.record_acme_order(&due.domain, order.url(), now_ms())
                .await
                .map_err(|e| Failure::ended(e.to_string()))?;
            order
        }
    };
    let mut authorizations = order.authorizations();
    while let Some(authorization) = authorizations.next().await {
        let mut authorization = authorization?;
        match authorization.status {
            AuthorizationStatus::Valid => continue,
            AuthorizationStatus::Pending => {}
            other => return Err(Failure::ended(format!("the ACME server's authorization is {other:?}"))),
        }
        // The operator's choice, else the other one the routers answer.
        let offered =
            |kind: &AcmeChallengeKind| authorization.challenges.iter().any(|c| c.r#type == challenge_type(*kind));
        let preferred = c.config.acme.challenge;
        let kind = [preferred, other_kind(preferred)]
            .into_iter()
            .find(offered)
            .ok_or_else(|| Failure::ended("the ACME server offers neither an HTTP-01 nor a TLS-ALPN-01 challenge"))?;
        let mut challenge = authorization.challenge(challenge_type(kind)).expect("offered");
        let answer = AcmeChallenge {
            domain: due.domain.clone(),
            token: challenge.token.clone(),
            key_authorization: challenge.key_authorization().as_str().to_owned(),
            kind,
        };
        c.db.add_acme_challenge(&answer).await.map_err(|e| Failure::ended(e.to_string()))?;
        c.coordination.changed().await;
        if !c.routes.served(&answer.token, PUBLISH_TIMEOUT).await {
            tracing::warn!(
                domain = due.domain,
                "controller.acme: no router took the challenge yet; asking for the check anyway"
            );
        }
        // A challenge asked for before a restart is being checked already.
        if challenge.status == ChallengeStatus::Pending {
            challenge.set_ready().await?;
        }
    }
    let retries = RetryPolicy::new().initial_delay(Duration::from_millis(250)).timeout(ORDER_TIMEOUT);
    let status = order.poll_ready(&retries).await?;
    if status != OrderStatus::Ready {
        return Err(Failure::ended(why_invalid(&mut order).await));
    }
    let key_pem = order.finalize().await?;
    let chain_pem = order.poll_certificate(&retries).await?;
    let inspected = inspect(&chain_pem, &key_pem, time::OffsetDateTime::now_utc().unix_timestamp())
        .map_err(|e| Failure::ended(format!("the ACME server's certificate is refused: {e}")))?;
    let expires = time::OffsetDateTime::parse(&inspected.expires_at, &time::format_description::well_known::Rfc3339)
        .map_err(|e| Failure::ended(e.to_string()))?;
    let renew_at = expires - c.config.acme.renewal_margin(inspected.lifetime_secs);
    let certificate = Certificate {
        name: certificate_name(&due.domain),
        common_name: inspected.common_name,
        names: inspected.names,
        domains: vec![due.domain.clone()],
        expires_at: inspected.expires_at,
        created_at: now(),
    };
    let renew_at_ms = i64::try_from(renew_at.unix_timestamp_nanos() / 1_000_000).unwrap_or(0);
    c.db.record_acme_certificate(due.app_id, &due.domain, &certificate, &chain_pem, &key_pem, renew_at_ms)
        .await
        .map_err(|e| Failure::ended(e.to_string()))?;
    Ok((certificate, went_on))
}

fn challenge_type(kind: AcmeChallengeKind) -> ChallengeType {
    match kind {
        AcmeChallengeKind::Http01 => ChallengeType::Http01,
        AcmeChallengeKind::TlsAlpn01 => ChallengeType::TlsAlpn01,
    }
}

fn other_kind(kind: AcmeChallengeKind) -> AcmeChallengeKind {
    match kind {
        AcmeChallengeKind::Http01 => AcmeChallengeKind::TlsAlpn01,
        AcmeChallengeKind::TlsAlpn01 => AcmeChallengeKind::Http01,
    }
}

/// Why an order became invalid: its challenges' errors, as the ACME server put them.
async fn why_invalid(order: &mut instant_acme::Order) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(mut authorization)) = authorizations.next().await {
        if let Ok(state) = authorization.refresh().await {
            reasons.extend(
                state.challenges.iter().filter_map(|c| c.error.as_ref()).map(|problem| {
                    problem.detail.clone().unwrap_or_else(|| problem.r#type.clone().unwrap_or_default())
                }),
            );
        }
    }
    if reasons.is_empty() {
        "the ACME server found the order invalid".to_owned()
    } else {
        format!("the ACME server could not check the domain: {}", reasons.join("; "))
    }
}

/// The controller's HTTPS client for the ACME server: a connection per request (orders
/// are rare), trusting `tls`.
struct AcmeHttp {
    tls: Arc<rustls::ClientConfig>,
}

type Answer = Pin<Box<dyn Future<Output = Result<BytesResponse, instant_acme::Error>> + Send>>;

impl HttpClient for AcmeHttp {
    fn request(&self, request: hyper::Request<BodyWrapper<Bytes>>) -> Answer {
        let tls = self.tls.clone();
        Box::pin(async move { send(&tls, request).await.map_err(|e| instant_acme::Error::Other(e.into())) })
    }
}

async fn send(
    tls: &Arc<rustls::ClientConfig>,
    mut request: hyper::Request<BodyWrapper<Bytes>>,
) -> Result<BytesResponse, String> {
    let uri = request.uri().clone();
    if uri.scheme_str() != Some("https") {
        return Err(format!("the ACME server must be reached over HTTPS, not {uri}"));
    }
    let host = uri.host().ok_or("the ACME URL names no host")?.trim_start_matches('[').trim_end_matches(']');
    let port = uri.port_u16().unwrap_or(443);
    let mut connection = connect(host, port, None, Security::Tls(tls, ACME_SERVER), REQUEST_TIMEOUT).await?;
    let authority = uri.authority().map(ToString::to_string).unwrap_or_default();
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    *request.uri_mut() = path.parse().map_err(|e| format!("not a request path: {e}"))?;
    let host_header = hyper::header::HeaderValue::from_str(&authority).map_err(|e| e.to_string())?;
    request.headers_mut().insert(hyper::header::HOST, host_header);
    request.headers_mut().insert(hyper::header::USER_AGENT, hyper::header::HeaderValue::from_static("skiff-acme"));
    let answer = tokio::time::timeout(REQUEST_TIMEOUT, async {
        let answer = connection.send_request(request).await.map_err(|e| format!("request failed: {e}"))?;
        let (parts, body) = answer.into_parts();
        let body = body.collect().await.map_err(|e| format!("the answer broke off: {e}"))?.to_bytes();
        Ok::<_, String>(hyper::Response::from_parts(parts, http_body_util::Full::new(body)))
    })
    .await
    .map_err(|_| format!("the ACME server did not answer within {} s", REQUEST_TIMEOUT.as_secs()))??;
    Ok(BytesResponse::from(answer))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retries_double_up_to_a_day() {
        let config = AcmeConfig { first_retry: Duration::from_secs(60), ..AcmeConfig::new(test_tls()) };
        let waits: Vec<u64> = [1, 2, 3, 12, 40].iter().map(|n| config.retry_after(*n).as_secs()).collect();
        assert_eq!(waits, [60, 120, 240, 24 * 3600, 24 * 3600]);
    }

    #[test]
    fn short_lived_certificates_are_renewed_after_two_thirds_of_their_life() {
        let config = AcmeConfig::new(test_tls());
        let day = 24 * 3600;
        assert_eq!(config.renewal_margin(90 * day).as_secs(), 30 * day as u64);
        assert_eq!(config.renewal_margin(6 * day).as_secs(), 2 * day as u64);
        assert_eq!(config.renewal_margin(30).as_secs(), 10);
    }

    #[test]
    fn automatic_certificate_names_cannot_be_given_by_users() {
        let name = certificate_name("www.shop.test");
        assert_eq!(name, "auto-www.shop.test");
        assert!(name.parse::<skiff_api::AppName>().is_err());
    }

    fn test_tls() -> Arc<rustls::ClientConfig> {
        skiff_service::outbound::tls_config(None).unwrap()
    }
}
