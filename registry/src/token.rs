//! Docker's token flow. A client that meets `WWW-Authenticate: Bearer realm=…/v2/token`
//! trades its credentials (Basic, as `docker login` stored them) at that realm for a
//! short-lived token naming the repositories and actions it may use, then presents the
//! token. Tokens are signed by the registry (HMAC-SHA256 keyed with the platform's service
//! token), so checking one needs no call to the controller.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use skiff_api::RegistryGrant;

/// How long a token is good for, in seconds.
pub const LIFETIME_SECS: i64 = 300;
/// What every token starts with (API tokens never do).
const PREFIX: &str = "skiff.";

/// What a token lets its holder do in one repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Access {
    pub repository: String,
    pub pull: bool,
    pub push: bool,
    /// An action asked for here was refused: using it is denied (403), not challenged.
    pub refused: bool,
}

/// What a token says.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who it was issued to.
    pub subject: String,
    /// Unix seconds after which it is refused.
    pub expires: i64,
    pub access: Vec<Access>,
}

impl Claims {
    /// Whether an action asked for in `repository` was refused when the token was issued.
    pub fn refused(&self, repository: &str) -> bool {
        self.access.iter().any(|a| a.repository == repository && a.refused)
    }

    /// What it allows in `repository` (with none, only that the holder logged in).
    pub fn grant(&self, repository: Option<&str>) -> RegistryGrant {
        match repository {
            None => RegistryGrant { pull: true, push: false },
            Some(repository) => self
                .access
                .iter()
                .find(|a| a.repository == repository)
                .map_or(RegistryGrant { pull: false, push: false }, |a| RegistryGrant { pull: a.pull, push: a.push }),
        }
    }
}

/// Issues and checks tokens.
pub struct Signer {
    key: Vec<u8>,
}

impl Signer {
    pub fn new(key: &str) -> Self {
        Self { key: key.as_bytes().to_vec() }
    }

    fn mac(&self, payload: &str) -> Hmac<Sha256> {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length");
        mac.update(payload.as_bytes());
        mac
    }

    /// `skiff.<claims>.<signature>`, both base64url.
    pub fn issue(&self, claims: &Claims) -> String {
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(claims).expect("claims serialize"));
        let signature = URL_SAFE_NO_PAD.encode(self.mac(&payload).finalize().into_bytes());
        format!("{PREFIX}{payload}.{signature}")
    }

    /// Whether `token` is one of this registry's.
    pub fn is_token(token: &str) -> bool {
        token.starts_with(PREFIX)
    }

    /// The claims of a token this registry signed that has not expired at `now`.
    pub fn verify(&self, token: &str, now: i64) -> Option<Claims> {
        let (payload, signature) = token.strip_prefix(PREFIX)?.split_once('.')?;
        let signature = URL_SAFE_NO_PAD.decode(signature).ok()?;
        self.mac(payload).verify_slice(&signature).ok()?;
        let claims: Claims = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(payload).ok()?).ok()?;
        (claims.expires > now).then_some(claims)
    }
}

/// A requested scope, `repository:NAME:pull,push`: (name, pull, push). Other scopes
/// (`registry:catalog:*`) are not granted by tokens.
pub fn parse_scope(scope: &str) -> Option<(String, bool, bool)> {
    let rest = scope.strip_prefix("repository:")?;
    let (name, actions) = rest.rsplit_once(':')?;
    let actions: Vec<&str> = actions.split(',').collect();
    let (pull, push) = (actions.contains(&"pull"), actions.contains(&"push"));
    Some((name.to_owned(), pull || actions.contains(&"*"), push || actions.contains(&"*")))
}

/// How a request reached the registry, which is how its client reaches the token realm.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    Http,
    Https,
}

/// The challenge that sends a client to the token realm on `host`, asking for `push` (and
/// pull) or only pull in `repository`.
pub fn challenge(scheme: Scheme, host: &str, repository: Option<&str>, push: bool) -> String {
    let scheme = match scheme {
        Scheme::Http => "http",
        Scheme::Https => "https",
    };
    let realm = format!("Bearer realm=\"{scheme}://{host}/v2/token\",service=\"skiff\"");
    match repository {
        Some(repository) => {
            let actions = if push { "pull,push" } else { "pull" };
            format!("{realm},scope=\"repository:{repository}:{actions}\"")
        }
        None => realm,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims(expires: i64) -> Claims {
        Claims {
            subject: "alice".into(),
            expires,
            access: vec![Access { repository: "shop".into(), pull: true, push: false, refused: true }],
        }
    }

    #[test]
    fn tokens_carry_their_claims_until_they_expire() {
        let signer = Signer::new("service-token");
        let token = signer.issue(&claims(1000));
        assert!(Signer::is_token(&token));
        assert_eq!(signer.verify(&token, 999), Some(claims(1000)));
        assert_eq!(signer.verify(&token, 1000), None, "expired");
        let granted = signer.verify(&token, 0).unwrap();
        assert_eq!(granted.grant(Some("shop")), RegistryGrant { pull: true, push: false });
        assert_eq!(granted.grant(Some("other")), RegistryGrant { pull: false, push: false });
        assert!(granted.refused("shop") && !granted.refused("other"));
    }

    #[test]
    fn forged_and_foreign_tokens_are_refused() {
        let token = Signer::new("service-token").issue(&claims(1000));
        assert_eq!(Signer::new("another platform").verify(&token, 0), None, "another key");
        let (payload, signature) = token.strip_prefix(PREFIX).unwrap().split_once('.').unwrap();
        let mut widened = claims(1000);
        widened.access[0].push = true;
        let forged = format!("{PREFIX}{}.{signature}", URL_SAFE_NO_PAD.encode(serde_json::to_vec(&widened).unwrap()));
        assert_eq!(Signer::new("service-token").verify(&forged, 0), None, "claims changed after signing");
        assert_eq!(Signer::new("service-token").verify(&format!("{PREFIX}{payload}"), 0), None, "no signature");
        assert_eq!(Signer::new("service-token").verify("not a token", 0), None);
    }

    #[test]
    fn scopes_and_challenges_follow_dockers_shapes() {
        assert_eq!(parse_scope("repository:shop:pull,push"), Some(("shop".into(), true, true)));
        assert_eq!(parse_scope("repository:stacks/busybox:pull"), Some(("stacks/busybox".into(), true, false)));
        assert_eq!(parse_scope("repository:127.0.0.1:7701/x:pull"), Some(("127.0.0.1:7701/x".into(), true, false)));
        assert_eq!(parse_scope("registry:catalog:*"), None);
        assert_eq!(
            challenge(Scheme::Http, "127.0.0.1:7701", Some("shop"), true),
            "Bearer realm=\"http://127.0.0.1:7701/v2/token\",service=\"skiff\",scope=\"repository:shop:pull,push\""
        );
        assert_eq!(
            challenge(Scheme::Https, "10.250.0.1:7743", None, false),
            "Bearer realm=\"https://10.250.0.1:7743/v2/token\",service=\"skiff\""
        );
    }
}
