//! The router's HTTP/2 server: bodies streamed both ways within the windows, many streams
//! on one connection, and what hostile or broken frames get (a reset stream, or a GOAWAY
//! with the error RFC 9113 names), written frame by frame.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::BodyExt as _;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use super::{Router, router, snapshot};

/// An HTTP/1.1 app that streams every POST's body back as it comes, and answers
/// `GET /bytes/N` with N bytes.
async fn echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|request: http::Request<hyper::body::Incoming>| async move {
                let body = match request.uri().path().strip_prefix("/bytes/") {
                    Some(count) => {
                        let count: usize = count.parse().unwrap();
                        let bytes: Vec<u8> = (0..count).map(|i| (i % 251) as u8).collect();
                        http_body_util::Either::Left(http_body_util::Full::new(Bytes::from(bytes)))
                    }
                    None => http_body_util::Either::Right(request.into_body()),
                };
                Ok::<_, std::convert::Infallible>(http::Response::new(body))
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    address
}

async fn h2_client(router: &Router) -> hyper::client::conn::http2::SendRequest<http_body_util::Full<Bytes>> {
    let stream = TcpStream::connect(router.address).await.unwrap();
    let executor = hyper_util::rt::TokioExecutor::new();
    let (sender, connection) =
        hyper::client::conn::http2::handshake(executor, hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    sender
}

fn pattern(length: usize, seed: u8) -> Bytes {
    (0..length).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)).collect::<Vec<u8>>().into()
}

#[tokio::test]
async fn bodies_stream_both_ways_far_past_the_windows_on_many_streams_at_once() {
    let app = echo().await;
    let router = router(snapshot(1, &[("echo", vec![app])])).await;
    let sender = h2_client(&router).await;
    // Four uploads of 3 MiB at once, each echoed back as it arrives: far past every
    // window (64 KiB the client's, 256 KiB and 1 MiB the router's).
    let uploads = (0..4u8).map(|seed| {
        let mut sender = sender.clone();
        async move {
            let body = pattern(3 << 20, seed);
            let request = http::Request::post("http://echo.localhost/echo")
                .body(http_body_util::Full::new(body.clone()))
                .unwrap();
            let response = sender.send_request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            let echoed = response.into_body().collect().await.unwrap().to_bytes();
            assert!(echoed == body, "stream {seed}: {} bytes came back of {}", echoed.len(), body.len());
        }
    });
    futures_util::future::join_all(uploads).await;

    // 500 requests at once on one connection: the client keeps to the 200 streams the
    // router allows, and every one is answered.
    let gets = (0..500).map(|_| {
        let mut sender = sender.clone();
        async move {
            let request =
                http::Request::get("http://echo.localhost/bytes/1000").body(http_body_util::Full::default()).unwrap();
            let response = sender.send_request(request).await.unwrap();
            response.into_body().collect().await.unwrap().to_bytes().len()
        }
    });
    let lengths = futures_util::future::join_all(gets).await;
    assert!(lengths.iter().all(|&length| length == 1000), "every answer whole");

    // curl, with its own windows, downloads 8 MiB.
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "-H", "Host: echo.localhost", "-o", "/dev/null"])
        .args(["-w", "%{http_version} %{size_download}", &format!("http://{}/bytes/8388608", router.address)])
        .output()
        .await
        .expect("curl runs");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "2 8388608", "{}", String::from_utf8_lossy(&output.stderr));
}

/// A client writing HTTP/2 frames by hand.
struct Raw {
    stream: TcpStream,
    read: Vec<u8>,
    encoder: loona_hpack::Encoder<'static>,
}

/// A frame: its type, flags, stream and payload.
type Frame = (u8, u8, u32, Vec<u8>);

const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const WINDOW_UPDATE: u8 = 8;
const CONTINUATION: u8 = 9;
const END_STREAM: u8 = 0x1;
const END_HEADERS: u8 = 0x4;

// Error codes.
const PROTOCOL_ERROR: u32 = 1;
const FLOW_CONTROL_ERROR: u32 = 3;
const FRAME_SIZE_ERROR: u32 = 6;
const COMPRESSION_ERROR: u32 = 9;
const ENHANCE_YOUR_CALM: u32 = 0xb;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let mut frame = (payload.len() as u32).to_be_bytes()[1..].to_vec();
    frame.extend_from_slice(&[kind, flags]);
    frame.extend_from_slice(&stream.to_be_bytes());
    frame.extend_from_slice(payload);
    frame
}

impl Raw {
    /// Connects and sends the preface and empty SETTINGS.
    async fn open(router: &Router) -> Self {
        let mut raw = Self::connect(router).await;
        raw.send(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), frame(SETTINGS, 0, 0, &[])].concat()).await;
        raw
    }

    async fn connect(router: &Router) -> Self {
        let stream = TcpStream::connect(router.address).await.unwrap();
        Self { stream, read: Vec::new(), encoder: loona_hpack::Encoder::new() }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
    }

    fn block(&mut self, fields: &[(&str, &str)]) -> Vec<u8> {
        self.encoder.encode(fields.iter().map(|(name, value)| (name.as_bytes(), value.as_bytes())))
    }

    fn get(&mut self, stream: u32, path: &str) -> Vec<u8> {
        let block =
            self.block(&[(":method", "GET"), (":scheme", "http"), (":authority", "echo.localhost"), (":path", path)]);
        frame(HEADERS, END_HEADERS | END_STREAM, stream, &block)
    }

    /// The next frame, or none once the router closed the connection.
    async fn next(&mut self) -> Option<Frame> {
        loop {
            if self.read.len() >= 9 {
                let length = u32::from_be_bytes([0, self.read[0], self.read[1], self.read[2]]) as usize;
                if self.read.len() >= 9 + length {
                    let frame: Vec<u8> = self.read.drain(..9 + length).collect();
                    let stream = u32::from_be_bytes([frame[5], frame[6], frame[7], frame[8]]);
                    return Some((frame[3], frame[4], stream, frame[9..].to_vec()));
                }
            }
            let mut buffer = [0u8; 16384];
            let read = tokio::time::timeout(Duration::from_secs(5), self.stream.read(&mut buffer)).await;
            match read.expect("the router answers within 5 s") {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.read.extend_from_slice(&buffer[..n]),
            }
        }
    }

    /// The first frame of `kind` (on `stream`, if given), skipping the others.
    async fn next_of(&mut self, kind: u8, stream: Option<u32>) -> Option<Frame> {
        while let Some(frame) = self.next().await {
            if frame.0 == kind && stream.is_none_or(|s| s == frame.2) {
                return Some(frame);
            }
        }
        None
    }

    /// The error code of the GOAWAY the router ends the connection with; it then closes.
    async fn goaway(&mut self) -> u32 {
        let (_, _, _, payload) = self.next_of(GOAWAY, None).await.expect("a GOAWAY");
        assert!(self.next().await.is_none(), "the connection is closed after the GOAWAY");
        u32::from_be_bytes(payload[4..8].try_into().unwrap())
    }

    /// An answer's status and body on `stream`.
    async fn answer(&mut self, stream: u32) -> (String, Vec<u8>) {
        let (_, flags, _, block) = self.next_of(HEADERS, Some(stream)).await.expect("an answer");
        let mut status = String::new();
        loona_hpack::Decoder::new()
            .decode_with_cb(&block, |name, value| {
                if &*name == b":status" {
                    status = String::from_utf8_lossy(&value).into_owned();
                }
            })
            .unwrap();
        let mut body = Vec::new();
        let mut ended = flags & END_STREAM != 0;
        while !ended {
            let (_, flags, _, payload) = self.next_of(DATA, Some(stream)).await.expect("the answer's body");
            body.extend_from_slice(&payload);
            ended = flags & END_STREAM != 0;
        }
        (status, body)
    }
}

#[tokio::test]
async fn broken_frames_end_the_connection_with_the_error_they_are() {
    let app = echo().await;
    let router = router(snapshot(1, &[("echo", vec![app])])).await;
    let cases: Vec<(&str, Vec<u8>, u32)> = vec![
        ("a frame over 16 KiB", frame(DATA, 0, 1, &vec![0; 16_385]), FRAME_SIZE_ERROR),
        ("DATA on stream 0", frame(DATA, 0, 0, b"x"), PROTOCOL_ERROR),
        ("DATA on a stream never opened", frame(DATA, 0, 7, b"x"), PROTOCOL_ERROR),
        ("a header block that does not decode", frame(HEADERS, END_HEADERS, 1, &[0xff; 8]), COMPRESSION_ERROR),
        ("CONTINUATION without HEADERS", frame(CONTINUATION, END_HEADERS, 1, &[0x82]), PROTOCOL_ERROR),
        ("a window past 2^31 - 1", frame(WINDOW_UPDATE, 0, 0, &0x7fff_ffffu32.to_be_bytes()), FLOW_CONTROL_ERROR),
        ("a PING of 7 bytes", frame(PING, 0, 0, &[0; 7]), FRAME_SIZE_ERROR),
        ("SETTINGS of 5 bytes", frame(SETTINGS, 0, 0, &[0; 5]), FRAME_SIZE_ERROR),
    ];
    for (case, bytes, code) in cases {
        let mut raw = Raw::open(&router).await;
        raw.send(&bytes).await;
        assert_eq!(raw.goaway().await, code, "{case}");
    }

    // A preface broken after its first line is not HTTP/2: hyper's HTTP/1 server refuses it.
    let mut raw = Raw::connect(&router).await;
    raw.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n").await;
    let mut answer = String::new();
    let _ = raw.stream.read_to_string(&mut answer).await;
    assert!(answer.starts_with("HTTP/1.1 4") || answer.starts_with("HTTP/1.1 5"), "{answer:?}");

    let mut raw = Raw::connect(&router).await;
    let ping = frame(PING, 0, 0, &[0; 8]);
    raw.send(&[b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec(), ping].concat()).await;
    assert_eq!(raw.goaway().await, PROTOCOL_ERROR, "a first frame other than SETTINGS");

    let mut raw = Raw::open(&router).await;
    let get = raw.get(2, "/bytes/1");
    raw.send(&get).await;
    assert_eq!(raw.goaway().await, PROTOCOL_ERROR, "a client opening an even-numbered stream");

    // A header block that goes on and on in CONTINUATION frames (the "CONTINUATION
    // flood"): the router stops taking it at twice the request head limit.
    let mut raw = Raw::open(&router).await;
    raw.send(&frame(HEADERS, 0, 1, &[0x82])).await;
    for _ in 0..10 {
        let _ = raw.stream.write_all(&frame(CONTINUATION, 0, 1, &[0; 16_384])).await;
    }
    assert_eq!(raw.goaway().await, ENHANCE_YOUR_CALM, "a header block past 128 KiB");
}

#[tokio::test]
async fn a_malformed_request_resets_its_stream_and_the_connection_serves_on() {
    let app = echo().await;
    let router = router(snapshot(1, &[("echo", vec![app])])).await;
    let mut raw = Raw::open(&router).await;

    let ping = frame(PING, 0, 0, b"12345678");
    raw.send(&ping).await;
    let (_, flags, _, payload) = raw.next_of(PING, None).await.unwrap();
    assert_eq!((flags, payload.as_slice()), (1, &b"12345678"[..]), "a PING comes back acknowledged");

    let malformed: [&[(&str, &str)]; 4] = [
        &[(":method", "GET"), (":scheme", "http"), (":path", "/"), ("Capital", "x")],
        &[(":method", "GET"), (":scheme", "http"), (":path", "/"), ("connection", "close")],
        &[(":method", "GET"), (":path", "/")],
        &[(":method", "GET"), (":scheme", "http"), (":path", "/"), (":protocol", "websocket")],
    ];
    let mut stream = 1;
    for fields in malformed {
        let block = raw.block(fields);
        raw.send(&frame(HEADERS, END_HEADERS | END_STREAM, stream, &block)).await;
        let (_, _, _, payload) = raw.next_of(RST_STREAM, Some(stream)).await.expect("the stream is reset");
        assert_eq!(u32::from_be_bytes(payload[..4].try_into().unwrap()), PROTOCOL_ERROR, "{fields:?}");
        stream += 2;
    }

    // A body longer than its Content-Length.
    let block = raw.block(&[
        (":method", "POST"),
        (":scheme", "http"),
        (":authority", "echo.localhost"),
        (":path", "/echo"),
        ("content-length", "3"),
    ]);
    raw.send(&[frame(HEADERS, END_HEADERS, stream, &block), frame(DATA, END_STREAM, stream, b"four")].concat()).await;
    let (_, _, _, payload) = raw.next_of(RST_STREAM, Some(stream)).await.expect("the stream is reset");
    assert_eq!(u32::from_be_bytes(payload[..4].try_into().unwrap()), PROTOCOL_ERROR, "a body past its length");
    stream += 2;

    // Fields over the 64 KiB limit (spread over CONTINUATION frames) get a 431.
    let big = "b".repeat(70_000);
    let block = raw.block(&[
        (":method", "GET"),
        (":scheme", "http"),
        (":authority", "echo.localhost"),
        (":path", "/"),
        ("x-big", &big),
    ]);
    let (first, rest) = block.split_at(16_384);
    let mut frames = frame(HEADERS, END_STREAM, stream, first);
    let mut parts = rest.chunks(16_384).peekable();
    while let Some(part) = parts.next() {
        frames.extend(frame(CONTINUATION, if parts.peek().is_none() { END_HEADERS } else { 0 }, stream, part));
    }
    raw.send(&frames).await;
    assert_eq!(raw.answer(stream).await.0, "431");
    stream += 2;

    let get = raw.get(stream, "/bytes/5");
    raw.send(&get).await;
    assert_eq!(raw.answer(stream).await, ("200".to_owned(), vec![0, 1, 2, 3, 4]), "the connection serves on");
}

/// An app that answers nothing for `delay`.
async fn slow_app(delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = [0u8; 4096];
                let _ = stream.read(&mut head).await;
                tokio::time::sleep(delay).await;
                let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nslow").await;
            });
        }
    });
    address
}

#[tokio::test]
async fn streams_reset_as_fast_as_they_are_opened_end_the_connection() {
    let app = slow_app(Duration::from_secs(5)).await;
    let router = router(snapshot(1, &[("echo", vec![app])])).await;
    let mut raw = Raw::open(&router).await;
    // The "rapid reset" attack: each stream costs the router a request and the client
    // nothing.
    let mut frames = Vec::new();
    for stream in (1..).step_by(2).take(300) {
        frames.extend(raw.get(stream, "/"));
        frames.extend(frame(RST_STREAM, 0, stream, &8u32.to_be_bytes()));
    }
    let _ = raw.stream.write_all(&frames).await;
    assert_eq!(raw.goaway().await, ENHANCE_YOUR_CALM);
}

#[tokio::test]
async fn a_shutdown_says_goaway_and_lets_the_streams_under_way_finish() {
    let app = slow_app(Duration::from_millis(500)).await;
    let router = router(snapshot(1, &[("echo", vec![app])])).await;
    let mut raw = Raw::open(&router).await;
    let get = raw.get(1, "/");
    raw.send(&get).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    router.shutdown.cancel();
    let (_, _, _, payload) = raw.next_of(GOAWAY, None).await.expect("a GOAWAY at once");
    assert_eq!(&payload[..8], &[0, 0, 0, 1, 0, 0, 0, 0], "the last stream taken is 1, and no error");
    // A stream opened after the GOAWAY is not taken; the one under way is answered.
    let late = raw.get(3, "/");
    raw.send(&late).await;
    assert_eq!(raw.answer(1).await, ("200".to_owned(), b"slow".to_vec()));
    assert!(raw.next().await.is_none(), "then the connection closes, stream 3 never answered");
}
