//! Log drains: where an app's lines (or, platform-wide, every app's) are forwarded, and
//! the URL forms a drain may take.

use serde::{Deserialize, Serialize};

use crate::AppName;

/// A log drain. `app` is absent for a platform-wide drain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Drain {
    /// The drain's id, for `drains:remove`.
    pub id: i64,
    /// Where lines go (passwords masked in listings).
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    /// The app whose lines it takes; absent for a platform-wide drain (every app's).
    pub app: Option<AppName>,
    /// When it was added, RFC 3339.
    pub created_at: String,
    /// What the logger reports of its deliveries; absent when the logger did not answer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<DrainStatus>,
}

/// `POST /v2/apps/{app}/drains` and `POST /v2/drains`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DrainCreate {
    /// `syslog://HOST:PORT`, `syslog+tls://HOST:PORT`, or `http(s)://[USER:PASS@]HOST/PATH`.
    pub url: String,
}

/// A drain's deliveries since the logger started (`GET /v2/drains` on the logger).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DrainStatus {
    /// The drain's id.
    pub id: i64,
    /// Lines the drain accepted.
    pub delivered: u64,
    /// Lines dropped because the drain's queue was full (the drain was slow or down).
    pub dropped: u64,
    /// Lines waiting to be sent.
    pub queued: u64,
    /// Why the last delivery failed, while the drain is failing.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// How a drain is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainProtocol {
    /// `syslog://`: RFC 5424 over TCP, octet-counted (RFC 6587).
    Syslog,
    /// `syslog+tls://`: the same over TLS (RFC 5425).
    SyslogTls,
    /// `http://`: batches POSTed as `application/logplex-1`.
    Http,
    /// `https://`: the same over TLS.
    Https,
}

impl DrainProtocol {
    /// Whether the connection is TLS.
    pub fn tls(self) -> bool {
        matches!(self, Self::SyslogTls | Self::Https)
    }
}

/// A parsed drain URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrainTarget {
    /// How it is reached.
    pub protocol: DrainProtocol,
    /// A DNS name or an IP address (IPv6 without brackets).
    pub host: String,
    /// The port (the scheme's default when the URL names none).
    pub port: u16,
    /// The request path for HTTP drains (`/` when absent).
    pub path: String,
    /// `user:password` for HTTP drains, sent as Basic authorization.
    pub userinfo: Option<String>,
}

/// How drain URLs are written, for error messages.
const DRAIN_USAGE: &str = "use syslog://HOST:PORT, syslog+tls://HOST:PORT or https://HOST/PATH";

/// Why text is not a drain URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DrainUrlError {
    #[error("`{}` is not a drain URL; {DRAIN_USAGE}", .0.escape_debug())]
    Malformed(String),
    #[error("`{0}` has no scheme; {DRAIN_USAGE}")]
    NoScheme(String),
    #[error("drains do not speak `{0}`; {DRAIN_USAGE}")]
    Scheme(String),
    #[error("a syslog drain has no path: `{0}`; {DRAIN_USAGE}")]
    SyslogPath(String),
    #[error("a syslog drain takes no user or password: `{0}`")]
    SyslogUser(String),
    #[error("`{0}` has an unclosed `[`")]
    Bracket(String),
    #[error("`{0}` names no valid host; {DRAIN_USAGE}")]
    Host(String),
    #[error("`{0}` is not a port")]
    Port(String),
    #[error("a syslog drain needs a port: `{0}`; {DRAIN_USAGE}")]
    NoPort(String),
}

impl DrainTarget {
    /// Parses `syslog://HOST:PORT`, `syslog+tls://HOST:PORT`, `http[s]://[USER:PASS@]HOST[:PORT][/PATH]`.
    ///
    /// # Errors
    /// A message that says what a valid drain URL looks like.
    pub fn parse(url: &str) -> Result<Self, DrainUrlError> {
        let whole = || url.to_owned();
        if url.len() > 2048 || url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(DrainUrlError::Malformed(whole()));
        }
        let (scheme, rest) = url.split_once("://").ok_or_else(|| DrainUrlError::NoScheme(whole()))?;
        let protocol = match scheme.to_ascii_lowercase().as_str() {
            "syslog" => DrainProtocol::Syslog,
            "syslog+tls" => DrainProtocol::SyslogTls,
            "http" => DrainProtocol::Http,
            "https" => DrainProtocol::Https,
            _ => return Err(DrainUrlError::Scheme(scheme.to_owned())),
        };
        let http = matches!(protocol, DrainProtocol::Http | DrainProtocol::Https);
        let (authority, path) = rest.find(['/', '?']).map_or((rest, "/"), |at| rest.split_at(at));
        let path = if path.starts_with('?') { format!("/{path}") } else { path.to_owned() };
        if !http && path != "/" {
            return Err(DrainUrlError::SyslogPath(whole()));
        }
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((userinfo, hostport)) if http => (Some(userinfo.to_owned()), hostport),
            Some(_) => return Err(DrainUrlError::SyslogUser(whole())),
            None => (None, authority),
        };
        let (host, port) = if let Some(bracketed) = hostport.strip_prefix('[') {
            let (host, after) = bracketed.split_once(']').ok_or_else(|| DrainUrlError::Bracket(whole()))?;
            (host, after.strip_prefix(':'))
        } else {
            match hostport.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (hostport, None),
            }
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
        if !host_ok {
            return Err(DrainUrlError::Host(whole()));
        }
        let port = match (port, protocol) {
            (Some(port), _) => {
                port.parse::<u16>().ok().filter(|p| *p > 0).ok_or_else(|| DrainUrlError::Port(port.to_owned()))?
            }
            (None, DrainProtocol::Http) => 80,
            (None, DrainProtocol::Https) => 443,
            (None, _) => return Err(DrainUrlError::NoPort(whole())),
        };
        Ok(Self { protocol, host: host.to_ascii_lowercase(), port, path, userinfo })
    }
}

/// `url` with the password of its user information masked (`https://user:****@host/`),
/// for listings: the full URL stays with the platform.
pub fn masked_url(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else { return url.to_owned() };
    let authority_end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(authority_end);
    match authority.rsplit_once('@') {
        Some((userinfo, host)) => {
            let user = userinfo.split_once(':').map_or(userinfo, |(user, _)| user);
            let masked = if userinfo.contains(':') { format!("{user}:****") } else { "****".to_owned() };
            format!("{scheme}://{masked}@{host}{tail}")
        }
        None => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listed_drain_urls_hide_their_passwords() {
        assert_eq!(masked_url("https://logs:s3cret@drain.example.com/in"), "https://logs:****@drain.example.com/in");
        assert_eq!(masked_url("https://tok3n@drain.example.com"), "https://****@drain.example.com");
        assert_eq!(masked_url("https://drain.example.com/p?a=b@c"), "https://drain.example.com/p?a=b@c");
        assert_eq!(masked_url("syslog://logs.example.com:514"), "syslog://logs.example.com:514");
    }

    #[test]
    fn drain_urls_parse_into_targets() {
        let syslog = DrainTarget::parse("syslog://logs.example.com:514").unwrap();
        assert_eq!(
            (syslog.protocol, syslog.host.as_str(), syslog.port),
            (DrainProtocol::Syslog, "logs.example.com", 514)
        );
        let tls = DrainTarget::parse("syslog+tls://[::1]:6514").unwrap();
        assert_eq!((tls.protocol, tls.host.as_str(), tls.port), (DrainProtocol::SyslogTls, "::1", 6514));
        let https = DrainTarget::parse("https://user:secret@Example.com/logs?x=1").unwrap();
        assert_eq!(https.port, 443);
        assert_eq!(https.host, "example.com");
        assert_eq!(https.path, "/logs?x=1");
        assert_eq!(https.userinfo.as_deref(), Some("user:secret"));
        assert_eq!(DrainTarget::parse("http://127.0.0.1:8080").unwrap().path, "/");
    }

    #[test]
    fn bad_drain_urls_say_what_is_wrong() {
        for bad in [
            "",
            "logs.example.com:514",
            "ftp://example.com",
            "syslog://example.com",
            "syslog://example.com:0",
            "syslog://example.com:99999",
            "syslog://example.com:514/path",
            "syslog://u:p@example.com:514",
            "https://",
            "https://exa mple.com/",
            "https://example.com\n/",
            "https://ex$ample.com/",
            "syslog+tls://[::1:6514",
        ] {
            assert!(DrainTarget::parse(bad).is_err(), "{bad:?}");
        }
    }
}
