//! The registry's plain HTTP/1.1 connections.
//!
//! A pull is bodiless requests (`GET` and `HEAD`): they are read and answered here, and a
//! blob kept in a local file is sent from that file by the kernel (`sendfile(2)`), never
//! copied through the registry's memory; a part of the file not in the page cache is read
//! into it on a blocking thread first, so that a cold blob's disk reads never hold up the
//! other connections of the worker thread sending it. The first request with a body (an
//! upload), or anything else this reader does not take (HTTP/1.0, an upgrade, a head it
//! cannot parse or that is too large), hands the connection to hyper for the rest of its
//! life, with the bytes already read; hyper answers it as it answers every HTTPS
//! connection.

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime};

use axum::Router;
use axum::body::{Body, HttpBody as _};
use axum::extract::ConnectInfo;
use bytes::{Buf as _, Bytes, BytesMut};
use futures_util::StreamExt as _;
use http::{HeaderName, Method, Request, Response, StatusCode, Version, header};
use hyper_util::rt::{TokioIo, TokioTimer};
use skiff_store::FileRegion;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, Interest, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tower::ServiceExt as _;

/// The longest request head read here; a longer one is hyper's to refuse.
const MAX_HEAD: usize = 64 * 1024;
/// The most headers a request read here may have; one with more is hyper's.
const MAX_HEADERS: usize = 64;
/// How long a connection may take to send its next request's head, from the last answer.
const IDLE_LIMIT: Duration = Duration::from_secs(120);
/// A response's head and body pieces are gathered into one write up to this size.
const GATHERED: usize = 16 * 1024;
/// A blob's file is sent this much at a time, each part read into the page cache first
/// when it is not there.
const SENT_AT_ONCE: u64 = 4 << 20;
/// What a blocking thread reads a part of a file with.
const LOAD_BUFFER: usize = 64 * 1024;

/// Serves plain HTTP connections from `listener` until `shutdown`; answers being sent
/// finish, connections waiting for a request close.
pub(super) async fn serve(listener: TcpListener, routes: Router, shutdown: CancellationToken) -> io::Result<()> {
    let connections = TaskTracker::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors, most likely: give connections time to close.
                    tracing::warn!(%error, "registry.accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            () = shutdown.cancelled() => break,
        };
        let _ = stream.set_nodelay(true);
        connections.spawn(serve_connection(stream, peer, routes.clone(), shutdown.clone()));
    }
    connections.close();
    connections.wait().await;
    Ok(())
}

/// What comes next on a connection, as far as this reader is concerned.
enum Next {
    /// A bodiless HTTP/1.1 request, answered here: the request, its head's length, and
    /// whether the client asked to close the connection after it.
    Answer(Box<Request<Body>>, usize, bool),
    /// Anything else: hyper serves the connection from here on.
    HandOver,
    /// The client closed the connection between requests.
    Closed,
}

async fn serve_connection(mut stream: TcpStream, peer: SocketAddr, routes: Router, shutdown: CancellationToken) {
    let mut read = BytesMut::with_capacity(4096);
    loop {
        // At the shutdown a connection waiting for a request, or within one's head, closes;
        // one being answered is not waiting here.
        let next = tokio::select! {
            next = tokio::time::timeout(IDLE_LIMIT, next_request(&mut stream, &mut read, peer)) => next,
            () = shutdown.cancelled() => return,
        };
        let (request, head_length, close) = match next {
            Ok(Ok(Next::Answer(request, head_length, close))) => (request, head_length, close),
            Ok(Ok(Next::HandOver)) => return hand_over(stream, read.freeze(), peer, routes, shutdown).await,
            Ok(Ok(Next::Closed)) => return,
            Ok(Err(error)) => return tracing::debug!(%error, "registry.connection: reading a request"),
            Err(_) => return tracing::debug!("registry.connection: idle for too long"),
        };
        read.advance(head_length);
        let head_only = request.method() == Method::HEAD;
        let Ok(response) = routes.clone().oneshot(*request).await;
        match send(&mut stream, response, head_only, close).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(error) => return tracing::debug!(%error, "registry.connection: sending an answer"),
        }
    }
}

/// Reads the next request head into `read`.
async fn next_request(stream: &mut TcpStream, read: &mut BytesMut, peer: SocketAddr) -> io::Result<Next> {
    loop {
        if !read.is_empty() {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let mut head = httparse::Request::new(&mut headers);
            match head.parse(read) {
                Ok(httparse::Status::Complete(length)) => {
                    return Ok(match answerable(&head, peer) {
                        Some((request, close)) => Next::Answer(Box::new(request), length, close),
                        None => Next::HandOver,
                    });
                }
                Ok(httparse::Status::Partial) if read.len() < MAX_HEAD => {}
                _ => return Ok(Next::HandOver),
            }
        }
        if stream.read_buf(read).await? == 0 {
            return if read.is_empty() {
                Ok(Next::Closed)
            } else {
                Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection within a request head",
                ))
            };
        }
    }
}

/// The request `head` says, when it is one answered here (a bodiless HTTP/1.1 `GET` or
/// `HEAD`), and whether the client asked to close the connection after it.
fn answerable(head: &httparse::Request<'_, '_>, peer: SocketAddr) -> Option<(Request<Body>, bool)> {
    let method = match head.method? {
        "GET" => Method::GET,
        "HEAD" => Method::HEAD,
        _ => return None,
    };
    if head.version? != 1 {
        return None;
    }
    let mut close = false;
    let mut request = Request::builder().method(method).uri(head.path?).version(Version::HTTP_11);
    for field in head.headers.iter() {
        let name = HeaderName::from_bytes(field.name.as_bytes()).ok()?;
        let bodiless = name != header::CONTENT_LENGTH || field.value == b"0";
        if !bodiless || [header::TRANSFER_ENCODING, header::UPGRADE, header::EXPECT].contains(&name) {
            return None;
        }
        if name == header::CONNECTION {
            close |= field.value.split(|b| *b == b',').any(|option| option.trim_ascii().eq_ignore_ascii_case(b"close"));
        }
        request = request.header(name, field.value);
    }
    let request = request.extension(ConnectInfo(peer)).body(Body::empty()).ok()?;
    Some((request, close))
}

/// Writes `response` (its head alone for a `HEAD` request); whether the connection may
/// carry another request.
async fn send(stream: &mut TcpStream, response: Response<Body>, head_only: bool, close: bool) -> io::Result<bool> {
    let (parts, body) = response.into_parts();
    let status = parts.status;
    let bodiless = head_only
        || status.is_informational()
        || status == StatusCode::NO_CONTENT
        || status == StatusCode::NOT_MODIFIED;
    let stated = parts.headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    let length = stated.or_else(|| body.size_hint().exact());
    let chunked = !bodiless && length.is_none();
    let close =
        close || parts.headers.get(header::CONNECTION).is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"close"));

    let mut out = Vec::with_capacity(512);
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        if name != header::CONNECTION && name != header::TRANSFER_ENCODING {
            field(&mut out, name.as_str(), value.as_bytes());
        }
    }
    if stated.is_none()
        && let Some(length) = length.filter(|_| status != StatusCode::NO_CONTENT && !status.is_informational())
    {
        field(&mut out, "content-length", length.to_string().as_bytes());
    }
    if chunked {
        field(&mut out, "transfer-encoding", b"chunked");
    }
    if !parts.headers.contains_key(header::DATE) {
        field(&mut out, "date", httpdate::fmt_http_date(SystemTime::now()).as_bytes());
    }
    if close {
        field(&mut out, "connection", b"close");
    }
    out.extend_from_slice(b"\r\n");

    if bodiless {
        stream.write_all(&out).await?;
        return Ok(!close);
    }
    if let Some(region) = parts.extensions.get::<FileRegion>().filter(|region| Some(region.len) == length) {
        stream.write_all(&out).await?;
        send_file(stream, region).await?;
        return Ok(!close);
    }
    let mut sent = 0u64;
    let mut pieces = body.into_data_stream();
    while let Some(piece) = pieces.next().await {
        let piece = piece.map_err(io::Error::other)?;
        if piece.is_empty() {
            continue;
        }
        sent += piece.len() as u64;
        if chunked {
            out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        }
        if out.len() + piece.len() <= GATHERED {
            out.extend_from_slice(&piece);
        } else {
            stream.write_all(&out).await?;
            out.clear();
            stream.write_all(&piece).await?;
        }
        if chunked {
            out.extend_from_slice(b"\r\n");
        }
    }
    if chunked {
        out.extend_from_slice(b"0\r\n\r\n");
    }
    stream.write_all(&out).await?;
    match length {
        // The client cannot tell where this answer ends: the connection cannot go on.
        Some(length) if length != sent => {
            Err(io::Error::other(format!("an answer of {length} bytes ended after {sent}")))
        }
        _ => Ok(!close),
    }
}

/// Appends the header field `name: value`.
fn field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// Has the kernel send `region` of its file to the client, a part at a time; a part whose
/// first or last byte is not in the page cache is read into it on a blocking thread first
/// (`sendfile(2)` would wait for the disk on this thread, and so would every connection it
/// serves).
async fn send_file(stream: &TcpStream, region: &FileRegion) -> io::Result<()> {
    let (mut offset, end) = (region.start, region.start + region.len);
    while offset < end {
        let part_end = end.min(offset + SENT_AT_ONCE);
        if !cached(&region.file, offset) || !cached(&region.file, part_end - 1) {
            let (file, from) = (region.file.clone(), offset);
            tokio::task::spawn_blocking(move || load(&file, from, part_end)).await.map_err(io::Error::other)??;
        }
        while offset < part_end {
            let count = usize::try_from(part_end - offset).unwrap_or(usize::MAX);
            let sent = stream
                .async_io(Interest::WRITABLE, || {
                    rustix::fs::sendfile(stream, &*region.file, Some(&mut offset), count).map_err(io::Error::from)
                })
                .await?;
            if sent == 0 {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "a blob's file ended before its stated size"));
            }
        }
    }
    Ok(())
}

/// Whether the byte of `file` at `offset` is in the page cache: a read of it that may not
/// wait for the disk (`RWF_NOWAIT`) succeeds. A kernel that cannot tell is taken to say yes
/// (the part is sent as it is).
fn cached(file: &std::fs::File, offset: u64) -> bool {
    let mut byte = [0u8; 1];
    let read =
        rustix::io::preadv2(file, &mut [io::IoSliceMut::new(&mut byte)], offset, rustix::io::ReadWriteFlags::NOWAIT);
    !matches!(read, Err(rustix::io::Errno::AGAIN))
}

/// Reads `file` from `start` to `end` (or its end), which puts it in the page cache.
fn load(file: &std::fs::File, start: u64, end: u64) -> io::Result<()> {
    use std::os::unix::fs::FileExt as _;
    let mut buffer = vec![0u8; LOAD_BUFFER];
    let mut offset = start;
    while offset < end {
        let wanted = usize::try_from(end - offset).unwrap_or(usize::MAX).min(LOAD_BUFFER);
        match file.read_at(&mut buffer[..wanted], offset)? {
            0 => break,
            read => offset += read as u64,
        }
    }
    Ok(())
}

/// Serves the rest of a connection with hyper, `read` (bytes already read from it) first.
async fn hand_over(stream: TcpStream, read: Bytes, peer: SocketAddr, routes: Router, shutdown: CancellationToken) {
    let service = hyper::service::service_fn(move |mut request: Request<hyper::body::Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        routes.clone().oneshot(request.map(Body::new))
    });
    let connection = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(Rewound { read, stream }), service);
    tokio::pin!(connection);
    let served = tokio::select! {
        served = connection.as_mut() => served,
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            connection.await
        }
    };
    if let Err(error) = served {
        tracing::debug!(%error, "registry.connection");
    }
}

/// A connection some of whose bytes were read already: those are read again first.
struct Rewound {
    read: Bytes,
    stream: TcpStream,
}

impl AsyncRead for Rewound {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        if self.read.is_empty() {
            return Pin::new(&mut self.stream).poll_read(cx, buf);
        }
        let length = self.read.len().min(buf.remaining());
        buf.put_slice(&self.read.split_to(length));
        Poll::Ready(Ok(()))
    }
}

impl AsyncWrite for Rewound {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_blob_in_a_file_is_sent_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blob");
        std::fs::write(&path, b"0123456789abcdef").unwrap();
        let region = FileRegion { file: std::sync::Arc::new(std::fs::File::open(&path).unwrap()), start: 4, len: 8 };
        // The body says otherwise: what arrives tells which of the two was sent.
        let mut response = Response::new(Body::from("not these"));
        response.headers_mut().insert(header::CONTENT_LENGTH, 8.into());
        response.extensions_mut().insert(region);

        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (mut server, _) = listener.accept().await.unwrap();
        assert!(send(&mut server, response, false, false).await.unwrap(), "the connection goes on");
        drop(server);
        let mut answer = String::new();
        client.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
        assert!(answer.ends_with("\r\n\r\n456789ab"), "{answer}");
    }

    #[tokio::test]
    async fn a_blob_not_in_the_page_cache_is_read_into_it_and_sent_whole() {
        // On the repository's disk: a file in memory (tmpfs) never leaves the page cache.
        let dir = tempfile::tempdir_in(env!("CARGO_MANIFEST_DIR")).unwrap();
        let path = dir.path().join("blob");
        let content: Vec<u8> = (0..SENT_AT_ONCE * 2 + 12_345).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let last = content.len() as u64 - 1;
        // The kernel may keep a page the advice came too early for (still being written
        // back): asked again a few times.
        let cold = (0..20).any(|_| {
            file.sync_all().unwrap();
            rustix::fs::fadvise(&file, 0, None, rustix::fs::Advice::DontNeed).unwrap();
            let cold = !cached(&file, 0) && !cached(&file, SENT_AT_ONCE) && !cached(&file, last);
            if !cold {
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            cold
        });
        assert!(cold, "the file is cold");

        let region = FileRegion { file: std::sync::Arc::new(file), start: 1, len: last };
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let mut client = TcpStream::connect(listener.local_addr().unwrap()).await.unwrap();
        let (server, _) = listener.accept().await.unwrap();
        let receive = async {
            let mut received = Vec::new();
            client.read_to_end(&mut received).await.unwrap();
            received
        };
        let send = async {
            send_file(&server, &region).await.unwrap();
            drop(server);
        };
        let (received, ()) = tokio::join!(receive, send);
        assert!(received == content[1..], "{} bytes of {} arrived as written", received.len(), last);
        assert!(cached(&region.file, 1) && cached(&region.file, SENT_AT_ONCE) && cached(&region.file, last));
    }
}
