//! Push events as GitHub, Gitea and GitLab send them: which host sent one, whether it
//! proves it knows the app's secret, and what it says was pushed. Pure.
//!
//! - GitHub: `X-GitHub-Event`, `X-GitHub-Delivery`, `X-Hub-Signature-256: sha256=<hex>`
//!   (HMAC-SHA256 of the body).
//! - Gitea (and Forgejo): `X-Gitea-Event`, `X-Gitea-Delivery`, `X-Gitea-Signature: <hex>`
//!   (HMAC-SHA256 of the body).
//! - GitLab: `X-Gitlab-Event: Push Hook`, `X-Gitlab-Event-UUID`, `X-Gitlab-Token: <the
//!   secret itself>`.

use hmac::{Hmac, Mac};
use http::HeaderMap;
use serde::Deserialize;
use sha2::Sha256;

/// What an event is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventKind {
    /// A push of `reference` whose head is now `after` (all zeros when it was deleted).
    Push { reference: String, after: String },
    /// The host checking the hook works.
    Ping,
    /// Anything else (issues, tags of other kinds…), by the host's name for it.
    Other(String),
}

/// A verified event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PushEvent {
    /// `github`, `gitea` or `gitlab`.
    pub host: &'static str,
    /// The host's id for this delivery, to refuse a replay.
    pub delivery: Option<String>,
    pub kind: EventKind,
}

/// Why an event is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error(
        "not a push event from GitHub, GitLab or Gitea (no X-GitHub-Event, X-Gitlab-Event or X-Gitea-Event header)"
    )]
    UnknownHost,
    #[error("the {0} event carries no signature")]
    Unsigned(&'static str),
    #[error("the {0} event's signature does not match the app's secret")]
    BadSignature(&'static str),
    #[error("the {host} push event does not read: {why}")]
    Malformed { host: &'static str, why: String },
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|value| value.to_str().ok()).map(str::trim)
}

/// Whether `hex` is HMAC-SHA256 of `body` under `secret`, compared in constant time.
fn signed(secret: &str, body: &[u8], hex: &str) -> bool {
    let bytes: Option<Vec<u8>> = (0..hex.len())
        .step_by(2)
        .map(|i| hex.get(i..i + 2).and_then(|pair| u8::from_str_radix(pair, 16).ok()))
        .collect();
    let Some(bytes) = bytes else { return false };
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes a key of any length");
    mac.update(body);
    mac.verify_slice(&bytes).is_ok()
}

#[derive(Deserialize)]
struct Pushed {
    #[serde(rename = "ref")]
    reference: String,
    after: String,
}

/// Reads and verifies an event sent with `headers` and `body` for an app whose secret is
/// `secret`.
///
/// # Errors
/// An event from no known host, unsigned or wrongly signed, or a push that does not read.
pub fn read(headers: &HeaderMap, body: &[u8], secret: &str) -> Result<PushEvent, Refusal> {
    let (host, event, delivery) = if let Some(event) = header(headers, "x-github-event") {
        ("github", event, header(headers, "x-github-delivery"))
    } else if let Some(event) = header(headers, "x-gitea-event") {
        ("gitea", event, header(headers, "x-gitea-delivery"))
    } else if let Some(event) = header(headers, "x-gitlab-event") {
        ("gitlab", event, header(headers, "x-gitlab-event-uuid"))
    } else {
        return Err(Refusal::UnknownHost);
    };
    let proven = match host {
        "github" => {
            let signature = header(headers, "x-hub-signature-256").ok_or(Refusal::Unsigned(host))?;
            signature.strip_prefix("sha256=").is_some_and(|hex| signed(secret, body, hex))
        }
        "gitea" => signed(secret, body, header(headers, "x-gitea-signature").ok_or(Refusal::Unsigned(host))?),
        _ => skiff_api::secrets_match(header(headers, "x-gitlab-token").ok_or(Refusal::Unsigned(host))?, secret),
    };
    if !proven {
        return Err(Refusal::BadSignature(host));
    }
    let kind = match event {
        "push" | "Push Hook" => {
            let pushed: Pushed =
                serde_json::from_slice(body).map_err(|e| Refusal::Malformed { host, why: e.to_string() })?;
            if pushed.after.len() != 40 || !pushed.after.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(Refusal::Malformed { host, why: format!("`after` is not a commit: {}", pushed.after) });
            }
            EventKind::Push { reference: pushed.reference, after: pushed.after.to_ascii_lowercase() }
        }
        "ping" => EventKind::Ping,
        other => EventKind::Other(other.to_owned()),
    };
    Ok(PushEvent { host, delivery: delivery.map(str::to_owned), kind })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "the-apps-hook-secret";
    const AFTER: &str = "0d1a26e67d8f5eaf1f6ba5c57fc3c7d91ac0fd1c";

    fn hmac_hex(body: &[u8]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(SECRET.as_bytes()).unwrap();
        mac.update(body);
        mac.finalize().into_bytes().iter().map(|b| format!("{b:02x}")).collect()
    }

    fn headers(pairs: &[(&'static str, String)]) -> HeaderMap {
        pairs.iter().map(|(name, value)| (http::HeaderName::from_static(name), value.parse().unwrap())).collect()
    }

    fn push_body() -> Vec<u8> {
        format!(
            r#"{{"ref":"refs/heads/main","before":"{}","after":"{AFTER}","repository":{{"name":"shop"}}}}"#,
            "0".repeat(40)
        )
        .into_bytes()
    }

    #[test]
    fn each_hosts_signed_push_is_read() {
        let body = push_body();
        let push = EventKind::Push { reference: "refs/heads/main".into(), after: AFTER.into() };
        let github = headers(&[
            ("x-github-event", "push".into()),
            ("x-github-delivery", "72d3162e".into()),
            ("x-hub-signature-256", format!("sha256={}", hmac_hex(&body))),
        ]);
        let read_github = read(&github, &body, SECRET).unwrap();
        assert_eq!(
            (read_github.host, read_github.delivery.as_deref(), &read_github.kind),
            ("github", Some("72d3162e"), &push)
        );
        let gitea = headers(&[("x-gitea-event", "push".into()), ("x-gitea-signature", hmac_hex(&body))]);
        assert_eq!(read(&gitea, &body, SECRET).unwrap().kind, push);
        let gitlab = headers(&[
            ("x-gitlab-event", "Push Hook".into()),
            ("x-gitlab-token", SECRET.into()),
            ("x-gitlab-event-uuid", "u-1".into()),
        ]);
        assert_eq!(read(&gitlab, &body, SECRET).unwrap().kind, push);
        let ping = headers(&[
            ("x-github-event", "ping".into()),
            ("x-hub-signature-256", format!("sha256={}", hmac_hex(b"{}"))),
        ]);
        assert_eq!(read(&ping, b"{}", SECRET).unwrap().kind, EventKind::Ping);
        let issue = headers(&[("x-gitea-event", "issues".into()), ("x-gitea-signature", hmac_hex(b"{}"))]);
        assert_eq!(read(&issue, b"{}", SECRET).unwrap().kind, EventKind::Other("issues".into()));
    }

    #[test]
    fn unsigned_forged_and_malformed_events_are_refused() {
        let body = push_body();
        assert_eq!(read(&HeaderMap::new(), &body, SECRET), Err(Refusal::UnknownHost));
        assert_eq!(
            read(&headers(&[("x-github-event", "push".into())]), &body, SECRET),
            Err(Refusal::Unsigned("github"))
        );
        let forged = headers(&[
            ("x-github-event", "push".into()),
            ("x-hub-signature-256", format!("sha256={}", "ab".repeat(32))),
        ]);
        assert_eq!(read(&forged, &body, SECRET), Err(Refusal::BadSignature("github")));
        let sha1 = headers(&[("x-github-event", "push".into()), ("x-hub-signature-256", hmac_hex(&body))]);
        assert_eq!(read(&sha1, &body, SECRET), Err(Refusal::BadSignature("github")), "sha256= is required");
        let mut tampered = body.clone();
        tampered[10] ^= 1;
        let gitea = headers(&[("x-gitea-event", "push".into()), ("x-gitea-signature", hmac_hex(&body))]);
        assert_eq!(read(&gitea, &tampered, SECRET), Err(Refusal::BadSignature("gitea")));
        let gitlab = headers(&[("x-gitlab-event", "Push Hook".into()), ("x-gitlab-token", "guess".into())]);
        assert_eq!(read(&gitlab, &body, SECRET), Err(Refusal::BadSignature("gitlab")));
        let not_json = headers(&[("x-gitea-event", "push".into()), ("x-gitea-signature", hmac_hex(b"nope"))]);
        assert!(matches!(read(&not_json, b"nope", SECRET), Err(Refusal::Malformed { host: "gitea", .. })));
        let bad_after = br#"{"ref":"refs/heads/main","after":"; rm -rf /"}"#;
        let signed_bad = headers(&[("x-gitea-event", "push".into()), ("x-gitea-signature", hmac_hex(bad_after))]);
        assert!(matches!(read(&signed_bad, bad_after, SECRET), Err(Refusal::Malformed { .. })));
    }
}
