//! Delivering webhooks: every controller runs [`deliver`], which takes the deliveries whose
//! turn it is from the database queue, claims each attempt (so that with several
//! controllers each attempt is made once), POSTs the signed body and records how it went.
//!
//! - **Order**: a webhook gets one app's events in the order they happened: a delivery
//!   waits while an older one of the same webhook and app is pending.
//! - **Retries**: a failed attempt (no answer, not 2xx, a redirect: they are not
//!   followed) is tried again after 1 s, doubling to an hour between attempts, for a day;
//!   then the delivery is given up (`failed`) and the next one takes its turn. The event's
//!   id is the same in every attempt, for the receiver to drop duplicates.
//! - **Nothing held up**: events are only queued where they happen; a slow or dead
//!   receiver delays its own queue, never the platform. The queue is in the database, so a
//!   restarted controller goes on where it was.
//! - **Guarded**: an app's webhook reaches only addresses the outbound guard allows,
//!   checked for every address its name resolves to at each attempt; platform webhooks,
//!   set by admins, may reach any.

use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use skiff_api::webhook::{SIGNATURE_HEADER, signature};
use skiff_api::{DeliveryState, EventPayload, OutboundPolicy};
use skiff_service::outbound;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::clock::{millis, now_ms};
use crate::db::{Attempt, Db, DueDelivery};
use crate::outgoing::{Security, connect};
use crate::state::Controller;

/// How long one attempt may take: connect, TLS, request and answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a claim on an attempt holds: longer than an attempt can take.
const CLAIM: Duration = Duration::from_secs(30);
/// How often the queue is read when nothing is queued here (another controller's events).
const POLL_EVERY: Duration = Duration::from_secs(1);
/// The wait after a first failed attempt; it doubles after each.
const FIRST_RETRY: Duration = Duration::from_secs(1);
/// The longest wait between attempts.
const MAX_RETRY: Duration = Duration::from_secs(3600);
/// How long a delivery is attempted before it is given up.
const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 3600);
/// How long ended deliveries are kept for `webhooks:deliveries`.
const KEEP_ENDED: Duration = Duration::from_secs(7 * 24 * 3600);
/// Deliveries taken from the queue at a time.
const BATCH: u32 = 64;
/// A receiver, as TLS refusals name it.
const RECEIVER: outbound::Peer = outbound::Peer { what: "the webhook's receiver", ca_setting: "SKIFF_WEBHOOK_CA" };

/// The wait before the attempt after `failed` failed attempts.
fn retry_after(failed: u32) -> Duration {
    FIRST_RETRY.saturating_mul(2u32.saturating_pow(failed.saturating_sub(1))).min(MAX_RETRY)
}

/// Delivers queued webhook events until `shutdown`.
pub async fn deliver(controller: Arc<Controller>, shutdown: CancellationToken) {
    let sender = Sender { tls: controller.config.webhook_tls.clone(), guard: controller.config.outbound.clone() };
    let queued = controller.events.queued();
    let attempts = TaskTracker::new();
    let mut last_prune = Instant::now();
    loop {
        match take_due(&controller.db).await {
            Ok(due) => {
                for delivery in due {
                    let (db, sender) = (controller.db.clone(), sender.clone());
                    attempts.spawn(async move { attempt(&db, &sender, delivery).await });
                }
            }
            Err(error) => tracing::warn!(%error, "controller.webhooks: cannot read the queue; trying again"),
        }
        if last_prune.elapsed() > Duration::from_secs(600) {
            last_prune = Instant::now();
            if let Err(error) = controller.db.prune_deliveries(now_ms() - millis(KEEP_ENDED)).await {
                tracing::warn!(%error, "controller.webhooks: cannot forget old deliveries");
            }
        }
        tokio::select! {
            () = queued.notified() => {}
            () = tokio::time::sleep(POLL_EVERY) => {}
            () = shutdown.cancelled() => break,
        }
    }
    attempts.close();
    attempts.wait().await;
}

/// The deliveries whose turn it is, each claimed for this controller.
async fn take_due(db: &Db) -> Result<Vec<DueDelivery>, crate::db::DbError> {
    let now = now_ms();
    let mut claimed = Vec::new();
    for delivery in db.due_deliveries(now, BATCH).await? {
        if db.claim_delivery(delivery.id, now, now + millis(CLAIM)).await? {
            claimed.push(delivery);
        }
    }
    Ok(claimed)
}

async fn attempt(db: &Db, sender: &Sender, delivery: DueDelivery) {
    let started = Instant::now();
    let sent = tokio::time::timeout(ATTEMPT_TIMEOUT, sender.send(&delivery))
        .await
        .unwrap_or_else(|_| Err(Failure { status: None, error: format!("no answer within {ATTEMPT_TIMEOUT:?}") }));
    let latency_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
    let now = now_ms();
    let attempt = match sent {
        Ok(status) => Attempt {
            status: Some(status),
            error: None,
            latency_ms,
            state: DeliveryState::Delivered,
            next_attempt_ms: now,
        },
        Err(Failure { status, error }) => {
            let failed = delivery.attempts + 1;
            let given_up = now - delivery.created_ms >= millis(GIVE_UP_AFTER);
            tracing::debug!(id = delivery.id, failed, error, "controller.webhooks.failed");
            Attempt {
                status,
                error: Some(if given_up { format!("{error}; given up after {failed} attempts") } else { error }),
                latency_ms,
                state: if given_up { DeliveryState::Failed } else { DeliveryState::Pending },
                next_attempt_ms: if given_up { now } else { now + millis(retry_after(failed)) },
            }
        }
    };
    if let Err(error) = db.record_attempt(delivery.id, &attempt).await {
        // The claim lapses and the attempt is made again: at least once.
        tracing::warn!(%error, id = delivery.id, "controller.webhooks: attempt not recorded");
    }
}

/// Why an attempt failed: the receiver's status when it answered, and in words.
struct Failure {
    status: Option<u16>,
    error: String,
}

impl From<String> for Failure {
    fn from(error: String) -> Self {
        Self { status: None, error }
    }
}

impl From<&str> for Failure {
    fn from(error: &str) -> Self {
        error.to_owned().into()
    }
}

/// Makes one attempt of a delivery.
#[derive(Clone)]
struct Sender {
    tls: Arc<rustls::ClientConfig>,
    guard: OutboundPolicy,
}

impl Sender {
    /// POSTs the delivery's body, signed; the receiver's status when it is 2xx.
    async fn send(&self, delivery: &DueDelivery) -> Result<u16, Failure> {
        let event: EventPayload =
            serde_json::from_str(&delivery.payload).map_err(|e| format!("unreadable event: {e}"))?;
        let body = event.body(delivery.format);
        let url = reqwest::Url::parse(&delivery.url).map_err(|e| format!("not a URL: {e}"))?;
        let host = url.host_str().ok_or("the URL names no host")?.trim_start_matches('[').trim_end_matches(']');
        let port = url.port_or_known_default().ok_or("the URL names no port")?;
        let guard = (!delivery.platform).then_some(&self.guard);
        let security = match url.scheme() {
            "https" => Security::Tls(&self.tls, RECEIVER),
            _ => Security::Plain,
        };
        let mut connection = connect(host, port, guard, security, ATTEMPT_TIMEOUT).await?;
        let authority = match url.port() {
            Some(port) => format!("{}:{port}", url.host_str().unwrap_or_default()),
            None => url.host_str().unwrap_or_default().to_owned(),
        };
        let path = match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_owned(),
        };
        let timestamp = now_ms() / 1000;
        let request = hyper::Request::post(path)
            .header(hyper::header::HOST, authority)
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .header(hyper::header::USER_AGENT, "skiff-webhooks")
            .header("Skiff-Event", event.kind.as_str())
            .header("Skiff-Event-Id", event.id)
            .header("Skiff-Delivery", delivery.id)
            .header(SIGNATURE_HEADER, signature(&delivery.secret, timestamp, body.as_bytes()))
            .body(Full::new(Bytes::from(body)))
            .map_err(|e| format!("cannot make the request: {e}"))?;
        let answer = connection.send_request(request).await.map_err(|e| format!("request failed: {e}"))?;
        let status = answer.status();
        let location = answer.headers().get(hyper::header::LOCATION).and_then(|l| l.to_str().ok()).map(str::to_owned);
        // Read (some of) the answer so that the receiver sees a clean close.
        let _ = tokio::time::timeout(Duration::from_secs(1), answer.into_body().collect()).await;
        let code = status.as_u16();
        if status.is_success() {
            Ok(code)
        } else if status.is_redirection() {
            let to = location.map_or_else(String::new, |l| format!(" to {l}"));
            Err(Failure { status: Some(code), error: format!("answered {status}{to}; redirects are not followed") })
        } else {
            Err(Failure { status: Some(code), error: format!("answered {status}") })
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use skiff_api::{EventKind, WebhookFormat};

    use super::*;

    fn delivery(url: &str, platform: bool) -> DueDelivery {
        let event = EventPayload {
            id: 1,
            kind: EventKind::Config,
            time: "2026-01-01T00:00:00Z".into(),
            actor: None,
            app: Some("shop".parse().unwrap()),
            message: "alice set A".into(),
            data: serde_json::Value::Null,
        };
        DueDelivery {
            id: 1,
            url: url.to_owned(),
            secret: "a-secret-of-some-length".into(),
            format: WebhookFormat::Skiff,
            payload: serde_json::to_string(&event).unwrap(),
            attempts: 0,
            created_ms: now_ms(),
            platform,
        }
    }

    /// A receiver answering `status` with `headers`, counting what it took in.
    async fn receiver(status: u16, location: Option<String>) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let count = Arc::new(AtomicUsize::new(0));
        let counted = count.clone();
        let app = axum::Router::new().fallback(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            let mut answer = axum::response::Response::builder().status(status);
            if let Some(location) = &location {
                answer = answer.header("location", location);
            }
            std::future::ready(answer.body(axum::body::Body::empty()).unwrap())
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        (address, count)
    }

    fn sender(allowed: &str) -> Sender {
        let tls = outbound::tls_config(None).unwrap();
        Sender { tls, guard: OutboundPolicy::parse(allowed).unwrap() }
    }

    #[tokio::test]
    async fn an_apps_webhook_reaches_no_internal_address_however_it_is_named() {
        let (address, count) = receiver(200, None).await;
        let port = address.port();
        let guarded = sender("");
        for host in ["localhost", "127.1", "2130706433", "[::ffff:127.0.0.1]", "0.0.0.0"] {
            let Err(failure) = guarded.send(&delivery(&format!("http://{host}:{port}/"), false)).await else {
                panic!("{host} was reached");
            };
            assert!(
                failure.error.starts_with("refused: ") && failure.error.contains("SKIFF_OUTBOUND_ALLOW"),
                "{host}: {}",
                failure.error
            );
        }
        assert_eq!(count.load(Ordering::SeqCst), 0);
        let platform = guarded.send(&delivery(&format!("http://localhost:{port}/"), true)).await;
        assert_eq!(platform.ok(), Some(200), "a platform webhook (an admin's) may reach any address");
        assert_eq!(count.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn redirects_are_not_followed() {
        let (inside, reached) = receiver(200, None).await;
        let (address, _) = receiver(307, Some(format!("http://{inside}/admin"))).await;
        let Err(failure) = sender("127.0.0.0/8").send(&delivery(&format!("http://{address}/hook"), false)).await else {
            panic!("a redirect is no delivery");
        };
        assert_eq!(failure.status, Some(307));
        assert!(
            failure.error.contains("redirects are not followed") && failure.error.contains("/admin"),
            "{}",
            failure.error
        );
        assert_eq!(reached.load(Ordering::SeqCst), 0, "the redirect's target was not reached");
    }

    #[test]
    fn retries_double_from_a_second_to_an_hour_and_span_a_day() {
        assert_eq!(retry_after(1), Duration::from_secs(1));
        assert_eq!(retry_after(2), Duration::from_secs(2));
        assert_eq!(retry_after(5), Duration::from_secs(16));
        assert_eq!(retry_after(13), MAX_RETRY);
        assert_eq!(retry_after(u32::MAX), MAX_RETRY);
        let waited: Duration = (1..=36).map(retry_after).sum();
        assert!(waited > GIVE_UP_AFTER, "36 attempts span {waited:?}");
    }
}
