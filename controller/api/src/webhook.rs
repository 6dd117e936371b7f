//! Outgoing webhooks: which events reach which URL, in what body, how each delivery went,
//! and the signature a receiver checks.
//!
//! Every delivery is signed: `Skiff-Signature: t=<unix seconds>,v1=<hex>` where `v1` is
//! HMAC-SHA256, keyed with the webhook's secret, over `<t>.<body>` (the exact bytes
//! POSTed). A receiver recomputes it ([`verify`]) and refuses a `t` too far from its
//! clock, so that a captured delivery cannot be replayed later.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::AppName;

/// The header that carries a delivery's signature.
pub const SIGNATURE_HEADER: &str = "Skiff-Signature";

/// What an event is about; webhooks subscribe to some of them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum EventKind {
    /// The app itself: created, destroyed, transferred, shared, put in a pipeline, one-off runs.
    App,
    /// A build finished (succeeded or failed).
    Build,
    /// A release was made (push, config change, rollback, promotion, canary) or failed.
    Release,
    /// A release is up and serving, or a canary ended.
    Deploy,
    /// Scaled or restarted.
    Scale,
    /// A container crashed or did not start.
    Crash,
    /// Domains and certificates.
    Domain,
    /// Config, app.json, maintenance mode, access rules, drains, webhooks.
    Config,
    /// A scheduled job failed.
    Cron,
    /// Platform-wide: accounts, keys, stacks, nodes, pipelines (platform webhooks only).
    Platform,
}

impl EventKind {
    /// Every kind, in the order `--events` lists them.
    pub const ALL: [Self; 10] = [
        Self::App,
        Self::Build,
        Self::Release,
        Self::Deploy,
        Self::Scale,
        Self::Crash,
        Self::Domain,
        Self::Config,
        Self::Cron,
        Self::Platform,
    ];

    /// The kind's name on the wire and in `--events`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::App => "app",
            Self::Build => "build",
            Self::Release => "release",
            Self::Deploy => "deploy",
            Self::Scale => "scale",
            Self::Crash => "crash",
            Self::Domain => "domain",
            Self::Config => "config",
            Self::Cron => "cron",
            Self::Platform => "platform",
        }
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A name that is no event kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "`{0}` is not an event kind; use one of app, build, release, deploy, scale, crash, domain, config, cron, platform"
)]
pub struct UnknownEventKind(pub String);

impl FromStr for EventKind {
    type Err = UnknownEventKind;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL.into_iter().find(|kind| kind.as_str() == s).ok_or_else(|| UnknownEventKind(s.to_owned()))
    }
}

/// The body a webhook receives.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum WebhookFormat {
    /// The event as JSON ([`EventPayload`]).
    #[default]
    Skiff,
    /// `{"text": "…"}`, as Slack's and Mattermost's incoming webhooks take it.
    Slack,
}

/// A webhook: `GET /v2/apps/{app}/webhooks`, `GET /v2/webhooks` (platform-wide, admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Webhook {
    /// The webhook's id, for `webhooks:remove` and `webhooks:deliveries`.
    pub id: i64,
    /// The app whose events it gets; absent for a platform-wide webhook (every app's and
    /// the platform's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppName>,
    /// Where deliveries are POSTed.
    pub url: String,
    /// The kinds of event it gets.
    pub events: Vec<EventKind>,
    pub format: WebhookFormat,
    /// The signing secret: only in the answer that creates the webhook.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// When it was added, RFC 3339.
    pub created_at: String,
}

/// `POST /v2/apps/{app}/webhooks` and `POST /v2/webhooks`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WebhookCreate {
    /// An `http://` or `https://` URL.
    pub url: String,
    /// The kinds of event to send; every kind when empty.
    #[serde(default)]
    pub events: Vec<EventKind>,
    /// The signing secret (at least 16 characters); made by the platform when absent.
    #[serde(default)]
    pub secret: Option<String>,
    #[serde(default)]
    pub format: WebhookFormat,
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum DeliveryState {
    /// Not delivered yet: waiting for its turn or for its next attempt.
    Pending,
    /// The receiver answered 2xx.
    Delivered,
    /// Given up after a day of attempts, or the webhook's URL may not be reached.
    Failed,
}

/// One event's delivery to one webhook: `GET …/webhooks/{id}/deliveries`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct WebhookDelivery {
    pub id: i64,
    /// The event's id (the same in every attempt, for deduplication).
    pub event_id: i64,
    pub event: EventKind,
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// The last attempt's HTTP status, when the receiver answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<u16>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// How long the last attempt took, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<u64>,
    /// When the event happened, RFC 3339.
    pub created_at: String,
    /// When the next attempt is due, for a pending delivery (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_attempt_at: Option<String>,
}

/// The JSON body of a delivery in the `skiff` format.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EventPayload {
    /// The event's id: the same in every attempt and to every webhook, for deduplication.
    pub id: i64,
    #[serde(rename = "type")]
    pub kind: EventKind,
    /// When it happened, RFC 3339.
    pub time: String,
    /// Who did it; absent for what the platform did on its own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub actor: Option<String>,
    /// Absent for platform-wide events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppName>,
    /// What happened, in words.
    pub message: String,
    /// What happened, in fields (for example a release's `version`).
    #[serde(default)]
    pub data: serde_json::Value,
}

impl EventPayload {
    /// The body for a webhook of `format`.
    pub fn body(&self, format: WebhookFormat) -> String {
        match format {
            WebhookFormat::Skiff => serde_json::to_string(self).unwrap_or_default(),
            WebhookFormat::Slack => {
                let text = match &self.app {
                    Some(app) => format!("[{app}] {}", self.message),
                    None => format!("[skiff] {}", self.message),
                };
                serde_json::json!({ "text": text }).to_string()
            }
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &str, timestamp: i64, body: &[u8]) -> HmacSha256 {
    let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Skiff-Signature` value for `body` sent at `timestamp` (Unix seconds).
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let digest = mac(secret, timestamp, body).finalize().into_bytes();
    let hex: String = digest.iter().map(|byte| format!("{byte:02x}")).collect();
    format!("t={timestamp},v1={hex}")
}

/// Why a receiver refuses a delivery.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is not `t=<unix seconds>,v1=<hex>`")]
    Malformed,
    #[error("the signature was made {0} s away from now: a replay, or a clock far off")]
    Stale(i64),
    #[error("the signature does not match the body")]
    Mismatch,
}

/// Checks a `Skiff-Signature` header against `body`, refusing one made more than
/// `tolerance_secs` away from `now` (Unix seconds).
///
/// # Errors
/// A malformed header, a stale timestamp, or a signature that does not match.
pub fn verify(secret: &str, header: &str, body: &[u8], now: i64, tolerance_secs: i64) -> Result<(), SignatureError> {
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for part in header.split(',') {
        match part.trim().split_once('=') {
            Some(("t", t)) => timestamp = t.parse::<i64>().ok(),
            Some(("v1", v1)) => signatures.push(v1),
            _ => {}
        }
    }
    let timestamp = timestamp.ok_or(SignatureError::Malformed)?;
    if signatures.is_empty() {
        return Err(SignatureError::Malformed);
    }
    if (now - timestamp).abs() > tolerance_secs {
        return Err(SignatureError::Stale(now - timestamp));
    }
    let matches = signatures.iter().any(|hex| {
        let bytes: Option<Vec<u8>> = (0..hex.len())
            .step_by(2)
            .map(|i| hex.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
            .collect();
        bytes.is_some_and(|bytes| mac(secret, timestamp, body).verify_slice(&bytes).is_ok())
    });
    if matches { Ok(()) } else { Err(SignatureError::Mismatch) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_and_a_changed_body_or_old_time_does_not() {
        let body = br#"{"id":1}"#;
        let header = signature("s3cret-s3cret-s3cret", 1_700_000_000, body);
        assert!(header.starts_with("t=1700000000,v1="), "{header}");
        assert_eq!(verify("s3cret-s3cret-s3cret", &header, body, 1_700_000_100, 300), Ok(()));
        assert_eq!(
            verify("s3cret-s3cret-s3cret", &header, br#"{"id":2}"#, 1_700_000_100, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(verify("another-secret-xx", &header, body, 1_700_000_100, 300), Err(SignatureError::Mismatch));
        assert_eq!(verify("s3cret-s3cret-s3cret", &header, body, 1_700_001_000, 300), Err(SignatureError::Stale(1000)));
        assert_eq!(verify("s3cret-s3cret-s3cret", "v1=abc", body, 1_700_000_000, 300), Err(SignatureError::Malformed));
        assert_eq!(
            verify("s3cret-s3cret-s3cret", "t=1700000000,v1=zz", body, 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
    }

    #[test]
    fn the_signature_is_hmac_sha256_over_time_dot_body() {
        // printf '1.{}' | openssl dgst -sha256 -hmac key
        assert_eq!(
            signature("key", 1, b"{}"),
            "t=1,v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
        );
    }

    #[test]
    fn kinds_round_trip_and_slack_bodies_name_the_app() {
        for kind in EventKind::ALL {
            assert_eq!(kind.as_str().parse::<EventKind>(), Ok(kind));
        }
        assert!("deploys".parse::<EventKind>().is_err());
        let payload = EventPayload {
            id: 7,
            kind: EventKind::Release,
            time: "2026-01-01T00:00:00Z".into(),
            actor: Some("alice".into()),
            app: Some("web".parse().unwrap()),
            message: "Release v2 created by alice".into(),
            data: serde_json::json!({"version": 2}),
        };
        assert_eq!(payload.body(WebhookFormat::Slack), r#"{"text":"[web] Release v2 created by alice"}"#);
        let skiff: serde_json::Value = serde_json::from_str(&payload.body(WebhookFormat::Skiff)).unwrap();
        assert_eq!(skiff["type"], "release");
        assert_eq!(skiff["data"]["version"], 2);
    }
}
