//! Plain connections spoken to byte by byte: pulls answered by the registry's own reader
//! (blobs sent from their files), uploads handed to hyper on the same connection, and
//! clients that close early or speak oddly.

use std::time::Duration;

use base64::Engine as _;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::harness::{Registry, SERVICE_TOKEN, sha256};

/// One answer read off a connection.
#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

/// A client connection that reads answers in the order the requests went.
struct Connection {
    stream: TcpStream,
    read: Vec<u8>,
}

impl Connection {
    async fn open(registry: &Registry) -> Self {
        let stream = TcpStream::connect(registry.base.trim_start_matches("http://")).await.unwrap();
        Self { stream, read: Vec::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    /// Reads more bytes; false when the registry closed the connection.
    async fn fill(&mut self) -> bool {
        let mut piece = vec![0; 64 * 1024];
        let n = tokio::time::timeout(Duration::from_secs(10), self.stream.read(&mut piece)).await.unwrap().unwrap();
        self.read.extend_from_slice(&piece[..n]);
        n > 0
    }

    async fn take(&mut self, n: usize) -> Vec<u8> {
        while self.read.len() < n {
            assert!(self.fill().await, "the registry closed the connection within an answer");
        }
        self.read.drain(..n).collect()
    }

    async fn line(&mut self) -> String {
        loop {
            if let Some(end) = self.read.windows(2).position(|w| w == b"\r\n") {
                let line = String::from_utf8(self.take(end + 2).await).unwrap();
                return line.trim_end().to_owned();
            }
            assert!(self.fill().await, "the registry closed the connection within a head");
        }
    }

    /// The next answer, its body read by its length (none for a `HEAD`) or its chunks.
    async fn answer(&mut self, to_head: bool) -> Answer {
        let status_line = self.line().await;
        let status = status_line.split(' ').nth(1).unwrap().parse().unwrap();
        let mut headers = Vec::new();
        loop {
            let line = self.line().await;
            if line.is_empty() {
                break;
            }
            let (name, value) = line.split_once(':').unwrap();
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut answer = Answer { status, headers, body: Vec::new() };
        if to_head {
            return answer;
        }
        if answer.header("transfer-encoding") == Some("chunked") {
            loop {
                let size = usize::from_str_radix(&self.line().await, 16).unwrap();
                let chunk = self.take(size).await;
                assert_eq!(self.line().await, "");
                if size == 0 {
                    break;
                }
                answer.body.extend(chunk);
            }
        } else {
            let length = answer.header("content-length").expect("a length or chunks").parse().unwrap();
            answer.body = self.take(length).await;
        }
        answer
    }

    /// Whether the registry closed the connection (after every answer was read).
    async fn closed(&mut self) -> bool {
        !self.fill().await && self.read.is_empty()
    }
}

fn authorization() -> String {
    format!("Basic {}", base64::engine::general_purpose::STANDARD.encode(format!("skiff:{SERVICE_TOKEN}")))
}

fn get(method: &str, path: &str, extra: &str) -> Vec<u8> {
    format!("{method} {path} HTTP/1.1\r\nHost: registry\r\nAuthorization: {}\r\n{extra}\r\n", authorization())
        .into_bytes()
}

#[tokio::test]
async fn pulls_are_answered_on_one_connection_and_an_upload_on_it_is_still_served() {
    let registry = Registry::start().await;
    let layer: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    let (manifest_digest, manifest) = registry.push_image("app", "v1", &layer).await;
    let layer_digest = sha256(&layer);
    let blob = format!("/v2/app/blobs/{layer_digest}");

    let mut connection = Connection::open(&registry).await;
    // Five requests sent at once: each answered in turn.
    let mut requests = get("GET", "/v2/app/manifests/v1", "");
    requests.extend(get("HEAD", &blob, ""));
    requests.extend(get("GET", &blob, ""));
    requests.extend(get("GET", &blob, "Range: bytes=1000-2999999\r\n"));
    requests.extend(get(
        "GET",
        "/v2/app/blobs/sha256:0000000000000000000000000000000000000000000000000000000000000000",
        "",
    ));
    connection.send(&requests).await;

    let answer = connection.answer(false).await;
    assert_eq!((answer.status, answer.body.as_slice()), (200, manifest.as_slice()));
    assert_eq!(answer.header("docker-content-digest"), Some(manifest_digest.as_str()));
    assert!(answer.header("date").is_some(), "{answer:?}");
    let answer = connection.answer(true).await;
    assert_eq!((answer.status, answer.header("content-length")), (200, Some("3000000")));
    let answer = connection.answer(false).await;
    assert_eq!(answer.status, 200);
    assert!(answer.body == layer, "the whole layer, byte for byte");
    let answer = connection.answer(false).await;
    assert_eq!((answer.status, answer.header("content-range")), (206, Some("bytes 1000-2999999/3000000")));
    assert!(answer.body == layer[1000..], "the range, byte for byte");
    let answer = connection.answer(false).await;
    assert_eq!(answer.status, 404);
    assert!(String::from_utf8_lossy(&answer.body).contains("BLOB_UNKNOWN"), "{answer:?}");

    // An upload (a request with a body) on the same connection: hyper serves the rest.
    connection.send(&get("POST", "/v2/copy/blobs/uploads/", "Content-Length: 0\r\n")).await;
    let started = connection.answer(false).await;
    assert_eq!(started.status, 202, "{started:?}");
    let location = started.header("location").unwrap().to_owned();
    let separator = if location.contains('?') { '&' } else { '?' };
    let body = b"copied bytes";
    let mut put = get("PUT", &format!("{location}{separator}digest={}", sha256(body)), "");
    put.truncate(put.len() - 2);
    put.extend_from_slice(format!("Content-Length: {}\r\n\r\n", body.len()).as_bytes());
    put.extend_from_slice(body);
    connection.send(&put).await;
    assert_eq!(connection.answer(false).await.status, 201);
    connection.send(&get("GET", &format!("/v2/copy/blobs/{}", sha256(body)), "")).await;
    let answer = connection.answer(false).await;
    assert_eq!((answer.status, answer.body.as_slice()), (200, &body[..]));

    // A client that asks to close gets its answer, then the end of the connection.
    let mut connection = Connection::open(&registry).await;
    connection.send(&get("GET", &blob, "Connection: close\r\n")).await;
    let answer = connection.answer(false).await;
    assert_eq!((answer.status, answer.header("connection")), (200, Some("close")));
    assert!(answer.body == layer);
    assert!(connection.closed().await, "closed after the answer it asked to be the last");
}

#[tokio::test]
async fn clients_that_leave_early_or_speak_oddly_harm_no_one() {
    let registry = Registry::start().await;
    let layer: Vec<u8> = (0..8_000_000u32).map(|i| (i % 241) as u8).collect();
    let digest = registry.push_blob("app", &layer).await;
    let blob = format!("/v2/app/blobs/{digest}");

    // Leaves within the blob: a few bytes read, then the connection dropped.
    let mut early = Connection::open(&registry).await;
    early.send(&get("GET", &blob, "")).await;
    assert!(early.fill().await);
    drop(early);
    // Leaves within its request head; another stops within its second head and stays.
    let mut partial = Connection::open(&registry).await;
    partial.send(b"GET /v2/app/blobs/").await;
    drop(partial);
    let mut stalled = Connection::open(&registry).await;
    let mut requests = get("HEAD", &blob, "");
    requests.extend_from_slice(b"GET /v2/app/blobs/");
    stalled.send(&requests).await;
    assert_eq!(stalled.answer(true).await.status, 200);
    // HTTP/1.0 and a head that is not HTTP: hyper's to answer.
    let mut old = Connection::open(&registry).await;
    old.send(format!("GET {blob} HTTP/1.0\r\nAuthorization: {}\r\n\r\n", authorization()).as_bytes()).await;
    let answer = old.answer(false).await;
    assert_eq!(answer.status, 200);
    assert!(answer.body == layer);
    let mut garbled = Connection::open(&registry).await;
    garbled.send(b"\x00\x01 not a request\r\n\r\n").await;
    assert_eq!(garbled.answer(false).await.status, 400);
    // A head larger than the registry's own reader takes: hyper's to answer, in full.
    let mut large = Connection::open(&registry).await;
    let padding = "x".repeat(100 * 1024);
    large.send(&get("GET", &blob, &format!("X-Padding: {padding}\r\n"))).await;
    let answer = large.answer(false).await;
    assert_eq!(answer.status, 200);
    assert!(answer.body == layer);

    // And a pull after all of them is whole.
    let mut connection = Connection::open(&registry).await;
    connection.send(&get("GET", &blob, "")).await;
    let answer = connection.answer(false).await;
    assert_eq!(answer.status, 200);
    assert!(answer.body == layer);
    // The registry stops without waiting for the stalled head, or for the kept-alive
    // connection, and closes both.
    tokio::time::timeout(Duration::from_secs(5), registry.stop()).await.expect("stops at once");
    assert!(stalled.closed().await && connection.closed().await);
}
