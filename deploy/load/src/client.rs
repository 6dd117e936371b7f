//! A blocking HTTP/1.1 client for the registry load, made to cost its CPU as little as a
//! client can: one kept-alive connection, request bodies sent from their files with
//! `sendfile(2)` (the client copies nothing), answers read and dropped (or hashed) as they
//! arrive, and the registry token flow done once per repository (a `401` with a `Bearer`
//! challenge → a token from the realm, asked with Basic credentials; a `Basic` challenge →
//! the credentials themselves), as Docker and skopeo do.

use std::collections::HashMap;
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::TcpStream;

use anyhow::{Context as _, bail};
use base64::Engine as _;
use sha2::Digest as _;

use crate::response;

/// What a request sends after its head.
#[derive(Clone, Copy)]
pub enum Body<'a> {
    Empty,
    Bytes(&'a [u8]),
    /// The whole file, sent by the kernel.
    File(&'a File, u64),
}

impl Body<'_> {
    fn length(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Bytes(bytes) => bytes.len() as u64,
            Body::File(_, length) => *length,
        }
    }
}

/// What becomes of an answer's body.
pub enum Sink<'a> {
    /// Kept in [`Answer::body`] (manifests, tokens, errors).
    Keep,
    /// Counted and dropped.
    Drop,
    /// Counted, hashed and dropped.
    Hash(&'a mut sha2::Sha256),
}

/// An answer: its status, head, and body (when kept) or only its length.
pub struct Answer {
    pub status: u16,
    pub head: String,
    pub body: Vec<u8>,
    pub body_length: u64,
}

impl Answer {
    pub fn header(&self, name: &str) -> Option<&str> {
        response::header(&self.head, name)
    }

    /// Fails unless the status is `expected`, with what the server said.
    pub fn expect(self, expected: u16, what: &str) -> anyhow::Result<Self> {
        if self.status != expected {
            bail!(
                "{what}: {} (expected {expected}): {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            );
        }
        Ok(self)
    }
}

/// A connection to one server (`HOST:PORT`), and the authorizations it has earned.
pub struct Client {
    authority: String,
    stream: Option<TcpStream>,
    /// Bytes read past the last answer.
    buffer: Vec<u8>,
    /// `user:password`, base64, for Basic challenges and token realms.
    credentials: Option<String>,
    /// The `Authorization` value that works for each repository.
    authorizations: HashMap<String, String>,
}

/// The `HOST:PORT` and path of an `http://` URL.
pub fn split_url(url: &str) -> anyhow::Result<(&str, &str)> {
    let rest = url.strip_prefix("http://").with_context(|| format!("{url}: only http:// URLs are supported"))?;
    Ok(rest.split_at(rest.find('/').unwrap_or(rest.len())))
}

impl Client {
    /// A client of the server at `authority` (`HOST:PORT`), with `user:password`
    /// credentials for registries that ask for them.
    pub fn new(authority: &str, credentials: Option<&str>) -> Self {
        Self {
            authority: authority.to_owned(),
            stream: None,
            buffer: Vec::new(),
            credentials: credentials.map(|c| base64::engine::general_purpose::STANDARD.encode(c)),
            authorizations: HashMap::new(),
        }
    }

    /// Sends a request about `repository` and reads its answer, authenticating first when
    /// the server asks to.
    pub fn send(
        &mut self,
        method: &str,
        target: &str,
        repository: &str,
        headers: &[(&str, &str)],
        body: Body,
        mut sink: Sink,
    ) -> anyhow::Result<Answer> {
        let authorization = self.authorizations.get(repository).cloned();
        let answer = self.exchange(method, target, authorization.as_deref(), headers, body, &mut sink)?;
        if answer.status != 401 {
            return Ok(answer);
        }
        // No authorization yet, or one for less than this request needs (a token to pull,
        // say, when it pushes): the challenge says what to ask for.
        let challenge = answer.header("www-authenticate").unwrap_or_default().to_owned();
        let fresh = self.authorize(&challenge).with_context(|| format!("authenticating for {repository}"))?;
        if authorization.as_ref() == Some(&fresh) {
            return Ok(answer);
        }
        self.authorizations.insert(repository.to_owned(), fresh.clone());
        self.exchange(method, target, Some(&fresh), headers, body, &mut sink)
    }

    /// The `Authorization` value that answers `challenge`.
    fn authorize(&mut self, challenge: &str) -> anyhow::Result<String> {
        let credentials = self.credentials.clone().context("the registry asks for credentials (give --user)")?;
        let Some(parameters) = challenge.strip_prefix("Bearer ") else {
            return Ok(format!("Basic {credentials}"));
        };
        let parameter = |name: &str| challenge_parameter(parameters, name);
        let realm = parameter("realm").context("a Bearer challenge without a realm")?;
        let mut query = Vec::new();
        for name in ["service", "scope"] {
            if let Some(value) = parameter(name) {
                query.push(format!("{name}={}", percent_encoded(&value)));
            }
        }
        let (authority, path) = split_url(&realm)?;
        let target = format!("{path}?{}", query.join("&"));
        let basic = format!("Basic {credentials}");
        let answer = if authority == self.authority {
            self.exchange("GET", &target, Some(&basic), &[], Body::Empty, &mut Sink::Keep)?
        } else {
            Client::new(authority, None).exchange("GET", &target, Some(&basic), &[], Body::Empty, &mut Sink::Keep)?
        }
        .expect(200, "token")?;
        let token: serde_json::Value =
            serde_json::from_slice(&answer.body).context("a token answer that is not JSON")?;
        let token =
            token["token"].as_str().or(token["access_token"].as_str()).context("a token answer without a token")?;
        Ok(format!("Bearer {token}"))
    }

    /// One request and its answer; a kept-alive connection the server has closed
    /// meanwhile is made again and the request sent once more.
    fn exchange(
        &mut self,
        method: &str,
        target: &str,
        authorization: Option<&str>,
        headers: &[(&str, &str)],
        body: Body,
        sink: &mut Sink,
    ) -> anyhow::Result<Answer> {
        let mut head = format!("{method} {target} HTTP/1.1\r\nHost: {}\r\nUser-Agent: skiff-load\r\n", self.authority);
        if let Some(authorization) = authorization {
            head.push_str(&format!("Authorization: {authorization}\r\n"));
        }
        for (name, value) in headers {
            head.push_str(&format!("{name}: {value}\r\n"));
        }
        if !matches!(method, "GET" | "HEAD") || body.length() > 0 {
            head.push_str(&format!("Content-Length: {}\r\n", body.length()));
        }
        head.push_str("\r\n");
        let reused = self.stream.is_some();
        match self.write(head.as_bytes(), body).and_then(|()| self.read_head()) {
            Ok(answer_head) => self.finish(method, answer_head, sink),
            Err(_) if reused && self.buffer.is_empty() => {
                self.stream = None;
                self.write(head.as_bytes(), body)?;
                let answer_head = self.read_head()?;
                self.finish(method, answer_head, sink)
            }
            Err(e) => Err(e),
        }
    }

    fn write(&mut self, head: &[u8], body: Body) -> anyhow::Result<()> {
        if self.stream.is_none() {
            let stream =
                TcpStream::connect(&self.authority).with_context(|| format!("connecting to {}", self.authority))?;
            stream.set_nodelay(true)?;
            self.stream = Some(stream);
            self.buffer.clear();
        }
        let stream = self.stream.as_mut().context("no connection")?;
        stream.write_all(head)?;
        match body {
            Body::Empty => {}
            Body::Bytes(bytes) => stream.write_all(bytes)?,
            Body::File(file, length) => {
                let mut offset = 0;
                while offset < length {
                    let count = usize::try_from(length - offset).unwrap_or(usize::MAX).min(1 << 30);
                    if rustix::fs::sendfile(&*stream, file, Some(&mut offset), count)? == 0 {
                        bail!("the file ended before its length");
                    }
                }
            }
        }
        Ok(())
    }

    /// Reads until a whole head is buffered.
    fn read_head(&mut self) -> anyhow::Result<response::Head> {
        loop {
            if let Some(head) = response::head(&self.buffer).map_err(|m| anyhow::anyhow!("{}", m.0))? {
                return Ok(head);
            }
            if self.fill()? == 0 {
                bail!("the server closed the connection before answering");
            }
        }
    }

    fn fill(&mut self) -> anyhow::Result<usize> {
        let stream = self.stream.as_mut().context("no connection")?;
        let at = self.buffer.len();
        self.buffer.resize(at + 64 * 1024, 0);
        let read = stream.read(&mut self.buffer[at..]);
        self.buffer.truncate(at + *read.as_ref().unwrap_or(&0));
        Ok(read?)
    }

    /// Reads the body after `head` into `sink`.
    fn finish(&mut self, method: &str, head: response::Head, sink: &mut Sink) -> anyhow::Result<Answer> {
        let text = String::from_utf8_lossy(&self.buffer[..head.length]).into_owned();
        self.buffer.drain(..head.length);
        let bodiless = method == "HEAD" || head.status == 204 || head.status == 304;
        let mut answer = Answer { status: head.status, head: text, body: Vec::new(), body_length: 0 };
        if !bodiless {
            answer.body_length = self.read_body(&head, sink, &mut answer.body)?;
        }
        if head.closes {
            self.stream = None;
        }
        Ok(answer)
    }

    /// Reads a body sized by `head` into `sink` (or `kept`); returns its length.
    fn read_body(&mut self, head: &response::Head, sink: &mut Sink, kept: &mut Vec<u8>) -> anyhow::Result<u64> {
        if head.chunked {
            // Only small answers (errors, tokens) come chunked: read them whole.
            let length = loop {
                if let Some(length) = response::chunked_length(&self.buffer).map_err(|m| anyhow::anyhow!("{}", m.0))? {
                    break length;
                }
                if self.fill()? == 0 {
                    bail!("the server closed the connection inside a chunked body");
                }
            };
            let chunked: Vec<u8> = self.buffer.drain(..length).collect();
            *kept = dechunked(&chunked);
            return Ok(kept.len() as u64);
        }
        let length = head.content_length.context("an answer with neither a length nor chunks")?;
        let mut left = length;
        while left > 0 {
            if self.buffer.is_empty() && self.fill()? == 0 {
                bail!("the server closed the connection {left} bytes before the body's end");
            }
            let take = usize::try_from(left).unwrap_or(usize::MAX).min(self.buffer.len());
            match sink {
                Sink::Keep => kept.extend_from_slice(&self.buffer[..take]),
                Sink::Drop => {}
                Sink::Hash(hasher) => hasher.update(&self.buffer[..take]),
            }
            self.buffer.drain(..take);
            left -= take as u64;
        }
        Ok(length)
    }
}

/// A parameter of a challenge (`realm="…",scope="repository:a:pull,push"`): values may
/// be quoted, and quoted ones may hold commas.
fn challenge_parameter(parameters: &str, name: &str) -> Option<String> {
    let mut rest = parameters.trim_start();
    while !rest.is_empty() {
        let (key, after) = rest.split_once('=')?;
        let (value, after) = match after.strip_prefix('"') {
            Some(quoted) => quoted.split_once('"')?,
            None => after.split_once(',').unwrap_or((after, "")),
        };
        if key.trim() == name {
            return Some(value.to_owned());
        }
        rest = after.trim_start_matches([',', ' ']);
    }
    None
}

/// A chunked body's data (the chunks' sizes and trailers taken out).
fn dechunked(mut chunked: &[u8]) -> Vec<u8> {
    let mut data = Vec::new();
    while let Some(line_end) = chunked.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&chunked[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or_default().trim(), 16).unwrap_or(0);
        if size == 0 {
            break;
        }
        let start = line_end + 2;
        data.extend_from_slice(&chunked[start..start + size]);
        chunked = &chunked[start + size + 2..];
    }
    data
}

fn percent_encoded(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenges_are_read_and_chunked_bodies_lose_their_framing() {
        assert_eq!(dechunked(b"5\r\nhello\r\n1;x\r\n!\r\n0\r\n\r\n"), b"hello!");
        let challenge = r#"realm="http://h/token",service="skiff",scope="repository:a/b:pull,push",x=y"#;
        assert_eq!(challenge_parameter(challenge, "scope").as_deref(), Some("repository:a/b:pull,push"));
        assert_eq!(challenge_parameter(challenge, "realm").as_deref(), Some("http://h/token"));
        assert_eq!(challenge_parameter(challenge, "x").as_deref(), Some("y"));
        assert_eq!(challenge_parameter(challenge, "error"), None);
        assert_eq!(percent_encoded("repository:a/b:pull,push"), "repository%3Aa%2Fb%3Apull%2Cpush");
    }
}
