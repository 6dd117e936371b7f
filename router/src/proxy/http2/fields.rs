//! An HTTP/2 request's fields, as HPACK gives them, made into a request (RFC 9113 §8.2
//! and §8.3); and an answer's fields written as an HPACK block.
//!
//! Answers are written without Huffman coding and without the dynamic table: the router
//! keeps no table of what it sent, so an idle connection holds nothing for it (only the
//! client's table, which the decoder keeps, is the client's choice).

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use http::{Method, Request, StatusCode, Uri};

use super::super::MAX_HEAD_BYTES;

/// Fields that describe an HTTP/1.1 connection, which HTTP/2 forbids (RFC 9113 §8.2.2).
const CONNECTION_SPECIFIC: [HeaderName; 5] = [
    header::CONNECTION,
    HeaderName::from_static("keep-alive"),
    HeaderName::from_static("proxy-connection"),
    header::TRANSFER_ENCODING,
    header::UPGRADE,
];

/// A request's fields, gathered as the decoder gives them.
#[derive(Default)]
pub(super) struct Gathered {
    method: Option<Method>,
    scheme: Option<String>,
    authority: Option<String>,
    path: Option<String>,
    headers: HeaderMap,
    cookies: Vec<u8>,
    /// The field list's size as HTTP/2 counts it (each field's name and value, and 32).
    size: usize,
    /// A regular field came: pseudo-fields may no longer.
    regular_seen: bool,
    malformed: Option<&'static str>,
}

/// Why a request's fields make no request.
pub(super) enum Unmade {
    /// Its fields are larger than the router takes: answered 431.
    TooLarge,
    /// A malformed request (RFC 9113 §8.1.1): the stream is reset.
    Malformed(&'static str),
}

impl Gathered {
    /// Takes one field of a request (or of its trailers, `trailers` set).
    pub(super) fn field(&mut self, name: &[u8], value: &[u8], trailers: bool) {
        self.size += name.len() + value.len() + 32;
        if self.malformed.is_some() || self.size > MAX_HEAD_BYTES {
            return;
        }
        if let Some(pseudo) = name.strip_prefix(b":") {
            if self.regular_seen || trailers {
                return self.malformed("a pseudo-field after a regular one, or in trailers");
            }
            let text = || String::from_utf8(value.to_vec()).ok();
            let slot = match pseudo {
                b"method" => {
                    if self.method.is_some() {
                        return self.malformed("a pseudo-field given twice");
                    }
                    match Method::from_bytes(value) {
                        Ok(method) => self.method = Some(method),
                        Err(_) => self.malformed("a malformed :method"),
                    }
                    return;
                }
                b"scheme" => &mut self.scheme,
                b"authority" => &mut self.authority,
                b"path" => &mut self.path,
                _ => return self.malformed("an unknown pseudo-field"),
            };
            if slot.replace(text().unwrap_or_default()).is_some() {
                self.malformed("a pseudo-field given twice");
            }
            return;
        }
        self.regular_seen = true;
        if name.iter().any(u8::is_ascii_uppercase) {
            return self.malformed("a field name with capital letters");
        }
        let (Ok(name), Ok(value)) = (HeaderName::from_bytes(name), HeaderValue::from_bytes(value)) else {
            return self.malformed("a malformed field");
        };
        if CONNECTION_SPECIFIC.contains(&name) || (name == header::TE && value != "trailers") {
            return self.malformed("a connection-specific field");
        }
        if name == header::COOKIE {
            // An HTTP/1.1 app takes one Cookie field (RFC 9113 §8.2.3).
            if !self.cookies.is_empty() {
                self.cookies.extend_from_slice(b"; ");
            }
            self.cookies.extend_from_slice(value.as_bytes());
            return;
        }
        self.headers.append(name, value);
    }

    fn malformed(&mut self, why: &'static str) {
        self.malformed.get_or_insert(why);
    }

    /// The request the fields make.
    pub(super) fn request(mut self) -> Result<Request<()>, Unmade> {
        if self.size > MAX_HEAD_BYTES {
            return Err(Unmade::TooLarge);
        }
        if let Some(why) = self.malformed {
            return Err(Unmade::Malformed(why));
        }
        if let Err(why) = self.join_cookies() {
            return Err(Unmade::Malformed(why));
        }
        let Some(method) = self.method else {
            return Err(Unmade::Malformed("no :method"));
        };
        let uri = match (self.scheme, self.authority, self.path) {
            (Some(scheme), authority, Some(path)) if !path.is_empty() && method != Method::CONNECT => {
                let uri = Uri::builder().scheme(scheme.as_str());
                match authority {
                    Some(authority) => uri.authority(authority.as_str()),
                    None => uri,
                }
                .path_and_query(path.as_str())
                .build()
                .or_else(|_| path.parse::<Uri>())
            }
            (None, Some(authority), None) if method == Method::CONNECT => authority.parse::<Uri>(),
            _ => return Err(Unmade::Malformed("a request without its :scheme and :path, or a CONNECT with them")),
        };
        let Ok(uri) = uri else {
            return Err(Unmade::Malformed("a malformed :path or :authority"));
        };
        let mut request = Request::new(());
        *request.method_mut() = method;
        *request.uri_mut() = uri;
        *request.version_mut() = http::Version::HTTP_2;
        *request.headers_mut() = self.headers;
        Ok(request)
    }

    /// Trailers the client sent after its body.
    pub(super) fn trailers(mut self) -> Result<HeaderMap, &'static str> {
        if let Some(why) = self.malformed {
            return Err(why);
        }
        self.join_cookies()?;
        Ok(self.headers)
    }

    fn join_cookies(&mut self) -> Result<(), &'static str> {
        if !self.cookies.is_empty() {
            let cookies = HeaderValue::from_bytes(&self.cookies).map_err(|_| "a malformed cookie")?;
            self.headers.insert(header::COOKIE, cookies);
        }
        Ok(())
    }
}

/// The names of HPACK's static table from index 15 on (RFC 7541 Appendix A), the ones an
/// answer's fields may name by index.
const STATIC_NAMES: [&str; 47] = [
    "accept-charset",
    "accept-encoding",
    "accept-language",
    "accept-ranges",
    "accept",
    "access-control-allow-origin",
    "age",
    "allow",
    "authorization",
    "cache-control",
    "content-disposition",
    "content-encoding",
    "content-language",
    "content-length",
    "content-location",
    "content-range",
    "content-type",
    "cookie",
    "date",
    "etag",
    "expect",
    "expires",
    "from",
    "host",
    "if-match",
    "if-modified-since",
    "if-none-match",
    "if-range",
    "if-unmodified-since",
    "last-modified",
    "link",
    "location",
    "max-forwards",
    "proxy-authenticate",
    "proxy-authorization",
    "range",
    "referer",
    "refresh",
    "retry-after",
    "server",
    "set-cookie",
    "strict-transport-security",
    "transfer-encoding",
    "user-agent",
    "vary",
    "via",
    "www-authenticate",
];
const FIRST_STATIC_NAME: usize = 15;
/// `:status` in the static table.
const STATUS_INDEX: usize = 8;

/// Writes an answer's head (its status, then its fields) as an HPACK block.
pub(super) fn encode_head(out: &mut Vec<u8>, status: StatusCode, headers: &HeaderMap) {
    let indexed = match status.as_u16() {
        200 => Some(8),
        204 => Some(9),
        206 => Some(10),
        304 => Some(11),
        400 => Some(12),
        404 => Some(13),
        500 => Some(14),
        _ => None,
    };
    match indexed {
        Some(index) => integer(out, 0x80, 7, index),
        None => {
            integer(out, 0, 4, STATUS_INDEX);
            string(out, status.as_str().as_bytes());
        }
    }
    encode_fields(out, headers);
}

/// Writes fields (trailers, or the rest of a head) as an HPACK block, leaving out those
/// HTTP/2 forbids.
pub(super) fn encode_fields(out: &mut Vec<u8>, headers: &HeaderMap) {
    for (name, value) in headers {
        if CONNECTION_SPECIFIC.contains(name) {
            continue;
        }
        // A literal field without indexing (RFC 7541 §6.2.2), its name by index when the
        // static table has it.
        match STATIC_NAMES.iter().position(|known| *known == name.as_str()) {
            Some(at) => integer(out, 0, 4, FIRST_STATIC_NAME + at),
            None => {
                out.push(0);
                string(out, name.as_str().as_bytes());
            }
        }
        string(out, value.as_bytes());
    }
}

/// An HPACK integer (RFC 7541 §5.1) in a first byte holding `first`'s flags and a prefix
/// of `bits` bits.
fn integer(out: &mut Vec<u8>, first: u8, bits: u32, value: usize) {
    let most = (1usize << bits) - 1;
    if value < most {
        out.push(first | value as u8);
        return;
    }
    out.push(first | most as u8);
    let mut rest = value - most;
    while rest >= 0x80 {
        out.push((rest & 0x7f) as u8 | 0x80);
        rest >>= 7;
    }
    out.push(rest as u8);
}

/// An HPACK string literal, not Huffman-coded (RFC 7541 §5.2).
fn string(out: &mut Vec<u8>, bytes: &[u8]) {
    integer(out, 0, 7, bytes.len());
    out.extend_from_slice(bytes);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decoded(block: &[u8]) -> Vec<(String, String)> {
        let mut fields = Vec::new();
        loona_hpack::Decoder::new()
            .decode_with_cb(block, |name, value| {
                fields
                    .push((String::from_utf8_lossy(&name).into_owned(), String::from_utf8_lossy(&value).into_owned()));
            })
            .unwrap();
        fields
    }

    #[test]
    fn an_answers_head_decodes_to_what_was_written() {
        let mut headers = HeaderMap::new();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
        headers.insert("x-long", HeaderValue::from_str(&"v".repeat(300)).unwrap());
        headers.insert(header::CONNECTION, HeaderValue::from_static("close"));
        headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Basic"));
        for (status, text) in
            [(StatusCode::OK, "200"), (StatusCode::IM_A_TEAPOT, "418"), (StatusCode::NOT_FOUND, "404")]
        {
            let mut block = Vec::new();
            encode_head(&mut block, status, &headers);
            let fields = decoded(&block);
            assert_eq!(fields[0], (":status".to_owned(), text.to_owned()));
            let rest: Vec<_> = fields[1..].iter().map(|(n, v)| (n.as_str(), v.len())).collect();
            assert_eq!(rest, [("content-type", 10), ("x-long", 300), ("www-authenticate", 5)], "connection left out");
        }
    }

    fn gathered(fields: &[(&str, &str)]) -> Result<Request<()>, Unmade> {
        let mut gathered = Gathered::default();
        for (name, value) in fields {
            gathered.field(name.as_bytes(), value.as_bytes(), false);
        }
        gathered.request()
    }

    const GET: [(&str, &str); 4] =
        [(":method", "GET"), (":scheme", "https"), (":authority", "a.test"), (":path", "/p?q=1")];

    #[test]
    fn a_request_is_made_of_its_pseudo_fields_and_its_cookies_become_one() {
        let mut fields = GET.to_vec();
        fields.extend([("cookie", "a=1"), ("accept", "*/*"), ("cookie", "b=2")]);
        let Ok(request) = gathered(&fields) else { panic!("not a request") };
        assert_eq!(request.method(), Method::GET);
        assert_eq!(request.uri().to_string(), "https://a.test/p?q=1");
        assert_eq!(request.headers()["cookie"], "a=1; b=2");
        assert_eq!(request.headers()["accept"], "*/*");
    }

    #[test]
    fn malformed_requests_are_told_apart() {
        let cases: [&[(&str, &str)]; 8] = [
            &[(":method", "GET"), (":path", "/")],
            &[(":method", "GET"), (":scheme", "http"), (":path", "")],
            &[(":scheme", "http"), (":path", "/")],
            &[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":method", "GET")],
            &[(":method", "GET"), ("accept", "x"), (":scheme", "http"), (":path", "/")],
            &[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":protocol", "websocket")],
            &[(":method", "GET"), (":scheme", "http"), (":path", "/"), ("Accept", "x")],
            &[(":method", "GET"), (":scheme", "http"), (":path", "/"), ("transfer-encoding", "chunked")],
        ];
        for fields in cases {
            assert!(matches!(gathered(fields), Err(Unmade::Malformed(_))), "{fields:?}");
        }
        let mut fields = GET.to_vec();
        fields.push(("te", "trailers"));
        assert!(gathered(&fields).is_ok(), "TE: trailers is the one TE allowed");
        let long = "x".repeat(MAX_HEAD_BYTES);
        fields.push(("x-long", &long));
        assert!(matches!(gathered(&fields), Err(Unmade::TooLarge)));
    }

    #[test]
    fn random_header_blocks_decode_or_fail_without_a_panic() {
        // A fixed xorshift sequence: 20,000 blocks of up to 64 bytes, each through one
        // decoder (whose table the earlier ones changed), as a connection's would go.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut decoder = loona_hpack::Decoder::new();
        let mut decoded = 0;
        for _ in 0..20_000 {
            let length = (next() % 64) as usize;
            let block: Vec<u8> = (0..length).map(|_| next() as u8).collect();
            let mut gathered = Gathered::default();
            if decoder.decode_with_cb(&block, |name, value| gathered.field(&name, &value, false)).is_ok() {
                decoded += 1;
                let _ = gathered.request();
            }
        }
        assert!(decoded > 0, "some random blocks are valid HPACK");
    }
}
