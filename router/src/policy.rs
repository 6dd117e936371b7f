//! What the router does with a request, decided once for both of its engines (the relay
//! and hyper's server): where the request goes or what the router answers itself, which
//! client it comes from, and how the head the app gets differs from the client's. Pure:
//! no IO; each engine renders the same decision in its own form (bytes, or a header map),
//! and a table test runs every case through both.

use std::net::IpAddr;

use http::StatusCode;
use skiff_api::{AppName, Cidr};

use crate::table::{Backends, Lookup, Table};

/// What the router knows of a request when it decides where it goes.
#[derive(Debug, Clone, Copy)]
pub struct Facts<'a> {
    /// The `Host` header (or HTTP/2's `:authority`), port and all.
    pub host: &'a str,
    /// The request's path and query.
    pub path: &'a str,
    /// The client the router believes it is (see [`client_address`]).
    pub client: IpAddr,
    /// Whether it came in over HTTPS.
    pub https: bool,
    /// The HTTPS listener's port, when there is one.
    pub https_port: Option<u16>,
}

/// The router's own endpoints, on any host that is no app's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Metrics,
    /// `/healthz`: the router answers.
    Live,
    /// `/readyz`: it has a route table to route by.
    Ready,
    /// Anything else: 404.
    NoApp,
}

/// A page the router answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page {
    pub status: StatusCode,
    /// The body, one line.
    pub text: String,
    /// Where a redirect points.
    pub location: Option<String>,
    /// Seconds after which to try again (maintenance).
    pub retry_after: Option<u32>,
}

impl Page {
    fn new(status: StatusCode, text: String) -> Self {
        Self { status, text, location: None, retry_after: None }
    }
}

/// Where a request goes.
#[derive(Debug)]
pub enum Decision<'t> {
    /// A host that is no app's.
    Router(Endpoint),
    /// An app's request that the router answers itself.
    Answer { app: &'t AppName, page: Page, hsts: u64 },
    /// To the app's backends.
    Forward { app: &'t AppName, backends: Backends, max_body: Option<u64>, hsts: u64 },
    /// An ACME server checking a domain: the key authorization it expects.
    Challenge(&'t str),
}

/// Where ACME servers look for HTTP-01 answers (RFC 8555 §8.3).
pub const ACME_CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// Decides where a request goes: a redirect to HTTPS for an app that asks for it, a
/// refusal for a client the app does not admit, a 503 for an app in maintenance or without
/// backends, else its backends. `hsts` is the `Strict-Transport-Security` max-age to add to
/// the answer (0: none; only over HTTPS).
pub fn decide<'t>(table: &'t Table, facts: &Facts<'_>) -> Decision<'t> {
    // Before any redirect, refusal or maintenance page: the ACME server must get its answer.
    if let Some(token) = facts.path.strip_prefix(ACME_CHALLENGE_PATH)
        && let Some(answer) = table.challenge_answer(facts.host, token)
    {
        return Decision::Challenge(answer);
    }
    let (lookup, policy) = table.lookup_with_policy(facts.host, facts.client);
    let tls = policy.map_or_else(Default::default, |p| p.tls);
    let hsts = if facts.https { tls.hsts_max_age } else { 0 };
    let app = match &lookup {
        Lookup::UnknownHost => {
            return Decision::Router(match facts.path {
                "/metrics" => Endpoint::Metrics,
                "/healthz" => Endpoint::Live,
                "/readyz" => Endpoint::Ready,
                _ => Endpoint::NoApp,
            });
        }
        Lookup::Maintenance(app) | Lookup::NoBackend(app) | Lookup::Backend(app, _) => *app,
    };
    let page = match lookup {
        _ if tls.force_https && !facts.https && facts.https_port.is_some() => {
            let port = facts.https_port.filter(|p| *p != 443).map_or_else(String::new, |p| format!(":{p}"));
            let name = facts.host.rsplit_once(':').map_or(facts.host, |(name, _)| name);
            let location = format!("https://{name}{port}{}", facts.path);
            let text = format!("{app} is served over HTTPS: {location}");
            Page { location: Some(location), ..Page::new(StatusCode::PERMANENT_REDIRECT, text) }
        }
        _ if policy.is_some_and(|p| !p.admits(facts.client)) => {
            Page::new(StatusCode::FORBIDDEN, format!("your address ({}) may not reach {app}", facts.client))
        }
        Lookup::Maintenance(_) => Page {
            retry_after: Some(60),
            ..Page::new(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("{app} is down for maintenance; please try again shortly"),
            )
        },
        Lookup::Backend(_, backends) => {
            return Decision::Forward { app, backends, max_body: policy.and_then(|p| p.max_body), hsts };
        }
        Lookup::NoBackend(_) | Lookup::UnknownHost => Page::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("app {app} has no running web process; deploy it with `git push skiff main`"),
        ),
    };
    Decision::Answer { app, page, hsts }
}

/// The page for a host that is no app's.
pub fn no_app(host: &str) -> Page {
    Page::new(StatusCode::NOT_FOUND, format!("no app is served at {host}"))
}

/// How forwarding to an app's backends failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// The backend took the request but broke off or answered garbage.
    NoAnswer,
    /// No answer head within the response timeout.
    TimedOut(std::time::Duration),
    /// The request body went past the app's limit.
    BodyTooLarge(u64),
    /// The client's body was malformed or cut short.
    ClientBody,
}

/// The page for a failed forward.
pub fn failure_page(app: &str, failure: Failure) -> Page {
    let (status, text) = match failure {
        Failure::NoAnswer => (StatusCode::BAD_GATEWAY, format!("app {app} did not answer")),
        Failure::TimedOut(timeout) => {
            (StatusCode::GATEWAY_TIMEOUT, format!("app {app} did not answer within {} s", timeout.as_secs_f32()))
        }
        Failure::BodyTooLarge(limit) => {
            (StatusCode::PAYLOAD_TOO_LARGE, format!("{app} takes request bodies of at most {limit} bytes"))
        }
        Failure::ClientBody => (StatusCode::BAD_REQUEST, "the request body is malformed or was cut short".to_owned()),
    };
    Page::new(status, text)
}

/// The client's address: the peer's, or, behind trusted proxies, the nearest address in
/// `X-Forwarded-For` (its values in order) that is not itself a trusted proxy.
pub fn client_address<'a>(
    trusted_proxies: &[Cidr],
    peer: IpAddr,
    trusted: bool,
    forwarded_for: impl Iterator<Item = &'a [u8]>,
) -> IpAddr {
    if !trusted {
        return peer;
    }
    let forwarded: Vec<IpAddr> = forwarded_for
        .filter_map(|v| std::str::from_utf8(v).ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    let trusts = |address: IpAddr| trusted_proxies.iter().any(|proxy| proxy.contains(address));
    forwarded.iter().rev().copied().find(|a| !trusts(*a)).or(forwarded.first().copied()).unwrap_or(peer)
}

/// A request's id, as passed on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RequestId<'a> {
    /// The client's.
    Given(&'a str),
    /// Made here.
    Made(&'a str),
}

impl std::ops::Deref for RequestId<'_> {
    type Target = str;

    fn deref(&self) -> &str {
        match self {
            Self::Given(id) | Self::Made(id) => id,
        }
    }
}

/// The room a request id made by the router is written in (32 hex digits).
pub type IdRoom = [u8; 32];

/// The request id passed on: the client's first `X-Request-Id` when it is fit to pass on
/// (1 to 200 visible characters), else a new one (128 random bits in hex) written in
/// `room` (the caller's: no allocation).
pub fn request_id<'a>(given: Option<&'a [u8]>, room: &'a mut IdRoom) -> RequestId<'a> {
    let fit =
        |id: &&[u8]| !id.is_empty() && id.len() <= 200 && id.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b));
    match given.filter(fit).and_then(|id| std::str::from_utf8(id).ok()) {
        Some(id) => RequestId::Given(id),
        None => RequestId::Made(new_request_id(room)),
    }
}

/// 128 random bits as 32 lowercase hex digits, written into `room` (`format!` took a
/// twentieth of a kept-alive request's instructions in the router).
fn new_request_id(room: &mut IdRoom) -> &str {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let bits = rand::random::<u128>();
    for (position, digit) in room.iter_mut().enumerate() {
        *digit = DIGITS[(bits >> (124 - 4 * position)) as usize & 0xf];
    }
    std::str::from_utf8(room).expect("hex digits are ASCII")
}

/// Headers that describe one connection and never cross a proxy (RFC 9110 §7.6.1).
pub const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "te",
    "transfer-encoding",
    "upgrade",
    "trailer",
    "proxy-authorization",
];

/// The forwarded headers kept from trusted proxies and set for everyone else.
const FORWARDED: [&str; 3] = ["x-forwarded-proto", "x-forwarded-port", "x-forwarded-host"];

/// Whether a field of the client's head stays out of the app's: it describes the
/// connection, or the router sets it (for clients other than trusted proxies, the
/// forwarded headers too, `Forwarded` included).
pub fn drops(name: &str, trusted: bool) -> bool {
    let is = |other: &str| name.eq_ignore_ascii_case(other);
    HOP_BY_HOP.iter().any(|n| is(n))
        || is("x-forwarded-for")
        || is("x-request-id")
        || is("x-real-ip")
        || (!trusted && (is("forwarded") || FORWARDED.iter().any(|n| is(n))))
}

/// What the router says of a request's way to the app, in the head it forwards.
#[derive(Debug, Clone, Copy)]
pub struct Forwarding<'a> {
    /// Whether the peer is a trusted proxy, whose forwarded headers are believed.
    pub trusted: bool,
    pub https: bool,
    pub peer: IpAddr,
    /// The peer's address as text.
    pub peer_text: &'a [u8],
    /// The listener's port as text.
    pub port: &'a [u8],
    pub host: &'a str,
    /// The client the router believes it is.
    pub client: IpAddr,
    /// What the client's head said of its way.
    pub given: Given<'a>,
    pub request_id: &'a str,
    /// `1.1 skiff`, or `2 skiff` for a request that came in over HTTP/2.
    pub via: &'static str,
}

/// What a client's head says of the way it came: its first `X-Forwarded-For`, and
/// whether `X-Forwarded-Proto`, `-Port` and `-Host` came.
#[derive(Debug, Clone, Copy, Default)]
pub struct Given<'a> {
    pub forwarded_for: Option<&'a [u8]>,
    pub forwarded: [bool; 3],
}

impl<'a> Given<'a> {
    /// Notes one field of the head.
    pub fn note(&mut self, name: &str, value: &'a [u8]) {
        if name.eq_ignore_ascii_case("x-forwarded-for") {
            self.forwarded_for.get_or_insert(value);
        } else if let Some(index) = FORWARDED.iter().position(|n| name.eq_ignore_ascii_case(n)) {
            self.forwarded[index] = true;
        }
    }
}

/// A field the router adds to the app's head.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    ForwardedFor,
    ForwardedProto,
    ForwardedPort,
    ForwardedHost,
    RealIp,
    Via,
    RequestId,
}

impl Field {
    /// Its name, lowercase.
    pub fn name(self) -> &'static str {
        match self {
            Self::ForwardedFor => "x-forwarded-for",
            Self::ForwardedProto => "x-forwarded-proto",
            Self::ForwardedPort => "x-forwarded-port",
            Self::ForwardedHost => "x-forwarded-host",
            Self::RealIp => "x-real-ip",
            Self::Via => "via",
            Self::RequestId => "x-request-id",
        }
    }
}

/// What an added field says. Most values are ones each engine has at hand already (the
/// peer's address, the port, the host): named, they are rendered without being made again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    /// The peer's address.
    Peer,
    /// The listener's port.
    Port,
    /// The request's host.
    Host,
    /// `http` or `https`.
    Scheme(&'static str),
    /// [`Forwarding::via`].
    Via,
    /// [`Forwarding::request_id`].
    RequestId,
    /// Anything else, spelled out.
    Text(String),
}

impl Forwarding<'_> {
    /// A value's bytes.
    pub fn bytes<'v>(&'v self, value: &'v Value) -> &'v [u8] {
        match value {
            Value::Peer => self.peer_text,
            Value::Port => self.port,
            Value::Host => self.host.as_bytes(),
            Value::Scheme(scheme) => scheme.as_bytes(),
            Value::Via => self.via.as_bytes(),
            Value::RequestId => self.request_id.as_bytes(),
            Value::Text(text) => text.as_bytes(),
        }
    }
}

/// The fields the router adds to the app's head, in order: `X-Forwarded-For` (a trusted
/// proxy's list with the peer appended, else the peer), `-Proto`, `-Port` and `-Host`
/// (unless a trusted proxy gave them), `X-Real-IP` (the client the router believes it is),
/// `Via` and `X-Request-Id`.
pub fn added(f: &Forwarding<'_>) -> impl Iterator<Item = (Field, Value)> {
    let forwarded_for = match f.given.forwarded_for.filter(|_| f.trusted).and_then(|v| std::str::from_utf8(v).ok()) {
        Some(earlier) => Value::Text(format!("{earlier}, {}", String::from_utf8_lossy(f.peer_text))),
        None => Value::Peer,
    };
    let [proto, port, host] = f.given.forwarded.map(|given| !f.trusted || !given);
    let scheme = if f.https { "https" } else { "http" };
    let real_ip = if f.client == f.peer { Value::Peer } else { Value::Text(f.client.to_string()) };
    [
        Some((Field::ForwardedFor, forwarded_for)),
        proto.then_some((Field::ForwardedProto, Value::Scheme(scheme))),
        port.then_some((Field::ForwardedPort, Value::Port)),
        host.then_some((Field::ForwardedHost, Value::Host)),
        Some((Field::RealIp, real_ip)),
        Some((Field::Via, Value::Via)),
        Some((Field::RequestId, Value::RequestId)),
    ]
    .into_iter()
    .flatten()
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::{AccessPolicy, Route, RouteTable, TlsSettings};

    fn table() -> Table {
        let route = |app: &str, backends: Vec<std::net::SocketAddr>| Route {
            app: app.parse().unwrap(),
            hosts: vec![format!("{app}.localhost")],
            backends,
            maintenance: false,
            tls: TlsSettings::default(),
            access: AccessPolicy::default(),
            canary: None,
        };
        let backend = || vec![([127, 0, 0, 1], 9).into()];
        let mut secure = route("secure", backend());
        secure.tls = TlsSettings { force_https: true, hsts_max_age: 600 };
        let mut closed = route("closed", backend());
        closed.maintenance = true;
        let mut guarded = route("guarded", backend());
        guarded.access = AccessPolicy { max_body_bytes: Some(10), allow: vec!["10.0.0.0/8".into()], deny: vec![] };
        let routes = vec![route("shop", backend()), route("idle", vec![]), secure, closed, guarded];
        let challenge = |domain: &str, token: &str| skiff_api::AcmeChallenge {
            domain: domain.into(),
            token: token.into(),
            key_authorization: format!("{token}.thumbprint"),
            kind: skiff_api::AcmeChallengeKind::Http01,
        };
        let challenges = ["secure", "closed", "guarded"].map(|app| challenge(&format!("{app}.localhost"), app)).into();
        Table::from_snapshot(&RouteTable { version: 1, routes, challenges, ..RouteTable::default() })
    }

    /// What a decision comes to, in a form a table can spell.
    fn outcome(decision: Decision<'_>) -> (u16, String, u64) {
        match decision {
            Decision::Router(endpoint) => (0, format!("{endpoint:?}"), 0),
            Decision::Answer { page, hsts, .. } => {
                let extra = page.location.or(page.retry_after.map(|s| format!("retry {s}"))).unwrap_or_default();
                (page.status.as_u16(), extra, hsts)
            }
            Decision::Forward { app, max_body, hsts, .. } => (200, format!("{app} {max_body:?}"), hsts),
            Decision::Challenge(answer) => (200, format!("answer {answer}"), 0),
        }
    }

    #[test]
    fn requests_are_routed_refused_or_redirected_by_the_apps_policy() {
        let table = table();
        let outside: IpAddr = [192, 0, 2, 1].into();
        let inside: IpAddr = [10, 1, 2, 3].into();
        /// Host, path, client, over HTTPS, the HTTPS port; what comes of it.
        type Case<'a> = (&'a str, &'a str, IpAddr, bool, Option<u16>, Outcome<'a>);
        type Outcome<'a> = (u16, &'a str, u64);
        #[rustfmt::skip]
        let cases: [Case<'_>; 20] = [
            ("shop.localhost", "/", outside, false, Some(8443), (200, "shop None", 0)),
            ("SHOP.localhost:8080", "/a?b", outside, false, None, (200, "shop None", 0)),
            ("nowhere.localhost", "/", outside, false, None, (0, "NoApp", 0)),
            ("nowhere.localhost", "/metrics", outside, false, None, (0, "Metrics", 0)),
            ("127.0.0.1:8080", "/readyz", outside, false, None, (0, "Ready", 0)),
            ("127.0.0.1:8080", "/healthz", outside, false, None, (0, "Live", 0)),
            ("idle.localhost", "/", outside, false, None, (503, "", 0)),
            ("closed.localhost", "/", outside, true, None, (503, "retry 60", 0)),
            ("secure.localhost:8080", "/x?y", outside, false, Some(8443), (308, "https://secure.localhost:8443/x?y", 0)),
            ("secure.localhost", "/", outside, false, Some(443), (308, "https://secure.localhost/", 0)),
            // Without an HTTPS listener there is nowhere to send it.
            ("secure.localhost", "/", outside, false, None, (200, "secure None", 0)),
            ("secure.localhost", "/", outside, true, Some(443), (200, "secure None", 600)),
            ("guarded.localhost", "/", outside, false, None, (403, "", 0)),
            ("guarded.localhost", "/", inside, false, None, (200, "guarded Some(10)", 0)),
            ("guarded.localhost", "/", outside, true, Some(443), (403, "", 0)),
            // ACME challenges are answered before HTTPS redirects, maintenance and refusals,
            // for their own domain and token only.
            ("secure.localhost:80", "/.well-known/acme-challenge/secure", outside, false, Some(443), (200, "answer secure.thumbprint", 0)),
            ("closed.localhost", "/.well-known/acme-challenge/closed", outside, false, None, (200, "answer closed.thumbprint", 0)),
            ("GUARDED.localhost", "/.well-known/acme-challenge/guarded", outside, false, None, (200, "answer guarded.thumbprint", 0)),
            ("secure.localhost", "/.well-known/acme-challenge/closed", outside, false, Some(443), (308, "https://secure.localhost/.well-known/acme-challenge/closed", 0)),
            ("shop.localhost", "/.well-known/acme-challenge/secure", outside, false, None, (200, "shop None", 0)),
        ];
        for (host, path, client, https, https_port, (status, what, hsts)) in cases {
            let facts = Facts { host, path, client, https, https_port };
            let expected = (status, what.to_owned(), hsts);
            assert_eq!(outcome(decide(&table, &facts)), expected, "{host}{path} from {client}, https {https}");
        }
    }

    #[test]
    fn the_client_is_the_nearest_untrusted_address_behind_trusted_proxies() {
        let proxies: Vec<Cidr> = vec!["10.0.0.0/8".parse().unwrap()];
        let peer: IpAddr = [10, 0, 0, 1].into();
        let cases: [(bool, &[&str], &str); 6] = [
            (false, &["203.0.113.9"], "10.0.0.1"),
            (true, &["203.0.113.9"], "203.0.113.9"),
            (true, &["198.51.100.1, 203.0.113.9, 10.0.0.7"], "203.0.113.9"),
            (true, &["198.51.100.1", "203.0.113.9"], "203.0.113.9"),
            (true, &["10.0.0.5"], "10.0.0.5"),
            (true, &["garbage"], "10.0.0.1"),
        ];
        for (trusted, values, expected) in cases {
            let values = values.iter().map(|v| v.as_bytes());
            assert_eq!(client_address(&proxies, peer, trusted, values).to_string(), expected, "{trusted}");
        }
    }

    #[test]
    fn request_ids_are_passed_on_when_fit_and_made_otherwise() {
        assert_eq!(request_id(Some(b"abc-123"), &mut [0; 32]), RequestId::Given("abc-123"));
        for unfit in [&b""[..], &[b'a'; 201], b"bad\nid", &[0xff, 0xfe]] {
            let mut room = [0; 32];
            let made = request_id(Some(unfit), &mut room);
            assert!(matches!(made, RequestId::Made(_)));
            assert_eq!(made.len(), 32, "{unfit:?}");
            assert!(made.bytes().all(|b| b.is_ascii_hexdigit()));
        }
        assert_ne!(request_id(None, &mut [0; 32]), request_id(None, &mut [0; 32]));
    }

    #[test]
    fn new_request_ids_are_the_random_bits_in_hex() {
        // Every digit position takes every value: no digit stuck, none out of place.
        let mut seen = [[false; 16]; 32];
        for _ in 0..2000 {
            let id = new_request_id(&mut [0; 32]).to_owned();
            assert_eq!(id.len(), 32);
            for (position, digit) in id.chars().enumerate() {
                seen[position][digit.to_digit(16).expect("hex") as usize] = true;
                assert!(!digit.is_ascii_uppercase());
            }
        }
        assert!(seen.iter().flatten().all(|&s| s), "some digit never came: {seen:?}");
    }
}
