//! Requests without a body over HTTP/1.1 (GETs and their kind: most of an app's traffic)
//! relayed without hyper: the router reads the head itself, writes the app's head with
//! the forwarded headers added, and copies the answer back as it comes (its framing kept:
//! a chunked answer stays chunked), over plain kept-alive connections to the app. hyper's
//! server and client cost several times the user time per request, in their dispatch
//! between tasks and in building header maps that a proxy only copies.
//!
//! Everything else leaves the relay before any of it is read, with the bytes already
//! received: a request with a body, an upgrade, HTTP/1.0, HTTP/2's preface, a head the
//! relay does not take (malformed, too large, trusted proxies' headers it cannot read,
//! `Connection` naming other headers), and every request the router answers itself
//! (unknown hosts, redirects, maintenance and the like). hyper's server then serves the
//! connection from that request on (the router's own HTTP/2 server one that began with
//! HTTP/2's preface), with the request path that handles all of them.

use std::cell::RefCell;
use std::io;
use std::net::IpAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Instant, SystemTime};

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Sleep;
use tokio_util::sync::CancellationToken;

use super::failover::{AnswerTimer, Resend, Tried, Unanswered, try_backends};
use super::parking::PARK_AFTER;
use super::{MAX_HEAD_BYTES, Origin, Proxy, Timeouts};
use crate::framing::{Chunked, Scan};
use crate::idle::Activity;
use crate::policy::{self, Decision, Facts, Failure, Forwarding, Page};
use crate::table::{Backends, Table};
use crate::upstream::{Answer, Framing, MAX_FIELDS, PLAIN_READ, Plain, UpstreamError, malformed, read_answer};

/// How much room a client connection's buffer has for each read.
const CLIENT_READ: usize = 4 * 1024;

/// How the relay left a connection.
pub(super) enum Left {
    /// It is closed (or is to be).
    Closed,
    /// hyper's server (or the router's HTTP/2 server) takes it from the request in the
    /// buffer on.
    HandedOver,
    /// It has waited for its next request for a while, nothing read: it may park until
    /// the deadline.
    Idle(tokio::time::Instant),
}

/// A request the relay takes, read from its head.
struct Request<'a> {
    method: &'a str,
    path: &'a str,
    host: &'a str,
    client: IpAddr,
    request_id: policy::RequestId<'a>,
    app: &'a skiff_api::AppName,
    backends: Backends,
    /// The HSTS max-age to add to the answer (HTTPS only), 0 for none.
    hsts_max_age: u64,
    /// Whether the client asked to close the connection after this request.
    close: bool,
    /// The head's length in the buffer.
    length: usize,
}

/// Serves requests from `io` (`buffer` holding what was read of it) for as long as the
/// relay takes them: until the connection closes, or a request for hyper's server comes
/// (left at the start of `buffer`).
///
/// Between requests a connection waits with as little as it can: for its next byte, its
/// deadline (the header read timeout or the idle timeout, whichever comes first) or the
/// shutdown; a request is served in a future of its own, boxed. What serving takes beyond
/// that (the buffers, the timers) is made for a stretch of requests and goes with it: a
/// connection that waits for [`PARK_AFTER`] leaves to park, and one that parked comes back
/// with no buffer. One idle watch runs over all of them (one timer for the stretch rather
/// than one more per request): it closes the connection when no byte moves for the idle
/// timeout (an app that stalls, a client that stops reading); between requests the
/// deadline comes first.
pub(super) async fn serve<I>(
    proxy: &Proxy,
    origin: &Origin,
    io: &mut I,
    buffer: &mut BytesMut,
    timeouts: Timeouts,
    activity: &Activity,
    shutdown: &CancellationToken,
) -> Left
where
    I: AsyncRead + AsyncWrite + Readable + Unpin,
{
    tokio::select! {
        biased;
        left = serve_requests(proxy, origin, io, buffer, timeouts, shutdown) => left,
        () = activity.idle_for(timeouts.idle) => Left::Closed,
    }
}

/// [`serve`] without the idle watch.
async fn serve_requests<I>(
    proxy: &Proxy,
    origin: &Origin,
    io: &mut I,
    buffer: &mut BytesMut,
    timeouts: Timeouts,
    shutdown: &CancellationToken,
) -> Left
where
    I: AsyncRead + AsyncWrite + Readable + Unpin,
{
    // Timers are made once for the stretch and moved on for each request (why: see
    // `AnswerTimer`).
    let mut waiting = std::pin::pin!(tokio::time::sleep(PARK_AFTER));
    let answering = std::pin::pin!(tokio::time::sleep(proxy.shared.config.response_timeout));
    let mut kept = Kept { out: Vec::new(), answering };
    loop {
        let now = tokio::time::Instant::now();
        let deadline = now + timeouts.header_read.min(timeouts.idle);
        if buffer.is_empty() {
            let park = Some(now + PARK_AFTER).filter(|at| *at < deadline);
            waiting.as_mut().reset(park.unwrap_or(deadline));
            let readable = tokio::select! {
                biased;
                () = std::future::poll_fn(|cx| io.poll_readable(cx)) => true,
                () = waiting.as_mut() => false,
                () = shutdown.cancelled() => return Left::Closed,
            };
            match (readable, park) {
                (true, _) => {}
                (false, Some(_)) => return Left::Idle(deadline),
                (false, None) => return Left::Closed,
            }
        }
        match Box::pin(serve_one(proxy, origin, io, buffer, deadline, shutdown, &mut kept)).await {
            Served::Again => {}
            Served::Close => return Left::Closed,
            Served::HandOver => return Left::HandedOver,
        }
    }
}

/// What became of the connection after one request.
enum Served {
    /// It waits for the next request.
    Again,
    /// It is closed (or is to be).
    Close,
    /// The request at the start of the buffer is for hyper's server.
    HandOver,
}

/// What serving a request takes that is kept over a stretch of requests.
struct Kept<'a> {
    /// Where the app's head is written, and then the client's answer head.
    out: Vec<u8>,
    /// The app's answer's timer.
    answering: Pin<&'a mut Sleep>,
}

/// Reads a request's head (by `deadline`), and relays it if the relay takes it.
async fn serve_one<I>(
    proxy: &Proxy,
    origin: &Origin,
    io: &mut I,
    buffer: &mut BytesMut,
    deadline: tokio::time::Instant,
    shutdown: &CancellationToken,
    kept: &mut Kept<'_>,
) -> Served
where
    I: AsyncRead + AsyncWrite + Readable + Unpin,
{
    if !read_head(io, buffer, deadline, shutdown).await {
        return Served::Close;
    }
    let started = Instant::now();
    let table = proxy.shared.table.load();
    // Room for the head and the forwarded headers added to it, taken once.
    let out = &mut kept.out;
    out.clear();
    out.reserve(buffer.len().min(MAX_HEAD_BYTES) + 512);
    let mut id_room = [0; 32];
    let Some(request) = prepare(proxy, origin, &table, buffer, &mut id_room, out) else {
        return Served::HandOver;
    };
    let (close, length) = (request.close, request.length);
    let open = proxy.relay(&request, started, out, io, kept.answering.as_mut()).await;
    drop(request);
    buffer.advance(length);
    if !open || close {
        let _ = io.shutdown().await;
        return Served::Close;
    }
    Served::Again
}

/// Reads until `buffer` holds a whole head; false when the connection closed, broke, timed
/// out or is to close for the shutdown first. A head that never ends within the limit is
/// left to hyper's server, which refuses it.
async fn read_head<I>(
    io: &mut I,
    buffer: &mut BytesMut,
    deadline: tokio::time::Instant,
    shutdown: &CancellationToken,
) -> bool
where
    I: AsyncRead + Readable + Unpin,
{
    // Bytes already looked at for the head's end (each read's are looked at once, so that
    // a head sent a byte at a time costs no more than one sent whole).
    let mut looked = 0;
    if head_ends_after(buffer, &mut looked) {
        return true;
    }
    loop {
        if buffer.is_empty() && shutdown.is_cancelled() {
            return false;
        }
        let between_requests = buffer.is_empty();
        let read = async {
            // A connection with no buffer (new, or back from parking) takes one once it has
            // bytes to read.
            if buffer.capacity() == 0 {
                std::future::poll_fn(|cx| io.poll_readable(cx)).await;
            }
            buffer.reserve(CLIENT_READ);
            io.read_buf(buffer).await
        };
        let read = tokio::select! {
            biased;
            read = tokio::time::timeout_at(deadline, read) => read,
            // Between requests the shutdown closes the connection; a head under way is
            // read and answered first.
            () = shutdown.cancelled(), if between_requests => return false,
        };
        match read {
            Ok(Ok(0) | Err(_)) | Err(_) => return false,
            Ok(Ok(_)) if head_ends_after(buffer, &mut looked) || buffer.len() > MAX_HEAD_BYTES => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Whether `bytes` hold the empty line that ends a head (after CRLF or a bare LF), looking
/// from `looked` on (less the three bytes an end may have begun in) and moving it on.
fn head_ends_after(bytes: &[u8], looked: &mut usize) -> bool {
    let from = looked.saturating_sub(3);
    *looked = bytes.len();
    let mut rest = &bytes[from..];
    while let Some(at) = rest.iter().position(|&b| b == b'\n') {
        rest = &rest[at + 1..];
        if rest.first() == Some(&b'\n') || rest.starts_with(b"\r\n") {
            return true;
        }
    }
    false
}

/// Reads the request at the start of `bytes` and, if the relay takes it, writes the head
/// to send the app into `out`.
fn prepare<'a>(
    proxy: &Proxy,
    origin: &Origin,
    table: &'a Table,
    bytes: &'a [u8],
    id_room: &'a mut policy::IdRoom,
    out: &mut Vec<u8>,
) -> Option<Request<'a>> {
    // Left uninitialised: httparse writes the fields it finds.
    let mut fields = [const { std::mem::MaybeUninit::uninit() }; MAX_FIELDS];
    let mut head = httparse::Request::new(&mut []);
    let Ok(httparse::Status::Complete(length)) = head.parse_with_uninit_headers(bytes, &mut fields) else {
        return None;
    };
    let (Some(method), Some(path), Some(1)) = (head.method, head.path, head.version) else { return None };
    if method == "CONNECT" || !path.starts_with('/') || length > MAX_HEAD_BYTES {
        return None;
    }
    let mut host = None;
    let mut close = false;
    let mut request_id = None;
    let mut given = policy::Given::default();
    for field in head.headers.iter() {
        let name = field.name;
        let value = field.value;
        if name.eq_ignore_ascii_case("host") {
            if host.is_some() {
                return None;
            }
            host = Some(std::str::from_utf8(value).ok()?);
        } else if name.eq_ignore_ascii_case("content-length") {
            // A body is hyper's to read.
            if value.trim_ascii() != b"0" {
                return None;
            }
        } else if ["transfer-encoding", "upgrade", "expect"].iter().any(|n| name.eq_ignore_ascii_case(n)) {
            return None;
        } else if name.eq_ignore_ascii_case("connection") {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    close = true;
                } else if !token.eq_ignore_ascii_case(b"keep-alive") && !token.is_empty() {
                    // It names other headers as hop-by-hop.
                    return None;
                }
            }
        } else if name.eq_ignore_ascii_case("x-request-id") {
            // The first one counts.
            request_id.get_or_insert(value);
        } else {
            given.note(name, value);
        }
    }
    let host = host?;
    let values = head.headers.iter().filter(|f| f.name.eq_ignore_ascii_case("x-forwarded-for")).map(|f| f.value);
    let client = proxy.client_address(values, origin);
    let entry = &origin.entry;
    let facts = Facts { host, path, client, https: entry.https, https_port: proxy.shared.https_port };
    // Everything the router answers itself is hyper's.
    let Decision::Forward { app, backends, hsts, .. } = policy::decide(table, &facts) else { return None };
    let request_id = policy::request_id(request_id, id_room);
    let forwarding = origin.forwarding(host, client, given, &request_id, "1.1 skiff");
    write_app_head(out, method, path, head.headers, &forwarding);
    Some(Request { method, path, host, client, request_id, app, backends, hsts_max_age: hsts, close, length })
}

/// Writes the head the app gets: the request line, the client's fields but those the
/// policy drops, then the router's. hyper's path makes the same edits to a header map
/// (`edit_request_headers`).
pub(super) fn write_app_head(
    out: &mut Vec<u8>,
    method: &str,
    path: &str,
    fields: &[httparse::Header<'_>],
    forwarding: &Forwarding<'_>,
) {
    for part in [method, " ", path, " HTTP/1.1\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
    for field in fields {
        if !policy::drops(field.name, forwarding.trusted) {
            field_line(out, field.name.as_bytes(), field.value);
        }
    }
    for (field, value) in policy::added(forwarding) {
        field_line(out, field.name().as_bytes(), forwarding.bytes(&value));
    }
    out.extend_from_slice(b"\r\n");
}

pub(super) fn field_line(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    for part in [name, b": ", value, b"\r\n"] {
        out.extend_from_slice(part);
    }
}

impl Proxy {
    /// Counts the request in the app's metrics and sends its access line.
    fn account(&self, request: &Request<'_>, status: u16, started: Instant) {
        let line = super::AccessLine {
            app: request.app,
            method: request.method,
            path: request.path,
            host: request.host,
            request_id: &request.request_id,
            client: request.client,
            status,
            started,
            canary: request.backends.canary(),
        };
        self.log_access(&line);
    }

    /// Sends `request` (whose head for the app is in `out`) to its app and copies the
    /// answer back, `answering` timing the answer; whether the client connection can take
    /// another request.
    async fn relay<I>(
        &self,
        request: &Request<'_>,
        started: Instant,
        out: &mut Vec<u8>,
        io: &mut I,
        answering: Pin<&mut Sleep>,
    ) -> bool
    where
        I: AsyncWrite + Unpin,
    {
        let Request { app, backends, .. } = request;
        let idempotent = request.method.parse::<http::Method>().is_ok_and(|m| m.is_idempotent());
        // The relay takes requests without a body only.
        let resend = Resend::of(true, idempotent);
        let response_timeout = self.shared.config.response_timeout;
        // The buffer goes through the attempts: the app's head, then the client's answer head.
        let attempt = |backend, _again, mut out: Vec<u8>| async move {
            let exchanged = async {
                let mut connection = self.upstreams.send_plain(backend, &out, idempotent).await?;
                out.clear();
                let bodiless = request.method == "HEAD";
                let written = read_answer(&mut connection, bodiless, |answer, fields| {
                    write_answer_head(&mut out, request, answer, fields);
                })
                .await;
                let (answer, ()) = written.map_err(UpstreamError::exchange)?;
                Ok::<_, UpstreamError>((connection, answer))
            }
            .await;
            (exchanged, out)
        };
        let timer = AnswerTimer { timeout: response_timeout, timer: answering };
        let (tried, kept) =
            try_backends(app.as_str(), backends, timer, resend, std::mem::take(out), attempt, |_| false).await;
        *out = kept;
        let Tried { answer, backend, outstanding } = tried;
        let (mut connection, answer) = match answer {
            Ok(exchanged) => exchanged,
            Err(Unanswered::Failed(error)) => {
                tracing::warn!(%error, %app, %backend, "router.upstream");
                let page = policy::failure_page(app.as_str(), Failure::NoAnswer);
                return self.answer_page(request, started, page, io).await;
            }
            Err(Unanswered::TimedOut) => {
                let page = policy::failure_page(app.as_str(), Failure::TimedOut(response_timeout));
                return self.answer_page(request, started, page, io).await;
            }
        };
        let passed = pass_body(&mut connection, &answer, out, io).await;
        drop(outstanding);
        self.account(request, answer.status.as_u16(), started);
        match passed {
            Ok(()) if answer.reusable() && connection.buffer.is_empty() => {
                self.upstreams.give_back_plain(backend, connection);
                true
            }
            Ok(()) => answer.framing != Framing::Close,
            Err(error) => {
                tracing::debug!(%error, %app, %backend, "router.relay");
                false
            }
        }
    }

    /// Answers `request` with one of the router's pages; whether the connection goes on.
    async fn answer_page<I>(&self, request: &Request<'_>, started: Instant, page: Page, io: &mut I) -> bool
    where
        I: AsyncWrite + Unpin,
    {
        let status = page.status;
        let body = format!("{}\n", page.text);
        let mut head = format!(
            "HTTP/1.1 {} {}\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: {}\r\ndate: ",
            status.as_str(),
            status.canonical_reason().unwrap_or_default(),
            body.len()
        );
        with_date(|date| head.push_str(date));
        head.push_str("\r\n");
        if request.hsts_max_age > 0 {
            head.push_str(&format!("strict-transport-security: max-age={}\r\n", request.hsts_max_age));
        }
        head.push_str("\r\n");
        head.push_str(&body);
        let written = write(io, head.as_bytes()).await;
        self.account(request, status.as_u16(), started);
        written.is_ok()
    }
}

/// Writes the head of the app's `answer` (with its `fields`) for the client into `out`.
fn write_answer_head(out: &mut Vec<u8>, request: &Request<'_>, answer: &Answer, fields: &[httparse::Header<'_>]) {
    let status = answer.status;
    for part in ["HTTP/1.1 ", status.as_str(), " ", status.canonical_reason().unwrap_or_default(), "\r\n"] {
        out.extend_from_slice(part.as_bytes());
    }
    let mut dated = false;
    for field in fields {
        let name = field.name;
        dated |= name.eq_ignore_ascii_case("date");
        // Transfer-Encoding is kept: the body is passed on as it came.
        let replaced = request.hsts_max_age > 0 && name.eq_ignore_ascii_case("strict-transport-security");
        if answer.passes_on(name) && !replaced {
            field_line(out, name.as_bytes(), field.value);
        }
    }
    if !dated {
        with_date(|date| field_line(out, b"date", date.as_bytes()));
    }
    if request.hsts_max_age > 0 {
        field_line(out, b"strict-transport-security", format!("max-age={}", request.hsts_max_age).as_bytes());
    }
    if request.close || answer.framing == Framing::Close {
        field_line(out, b"connection", b"close");
    }
    out.extend_from_slice(b"\r\n");
}

/// Copies the answer's body from the app to the client after its head (in `out`), as it
/// comes. Leaves in the connection's buffer any bytes past the answer.
async fn pass_body<I>(connection: &mut Plain, answer: &Answer, out: &mut Vec<u8>, io: &mut I) -> io::Result<()>
where
    I: AsyncWrite + Unpin,
{
    let buffer = &mut connection.buffer;
    buffer.advance(answer.length);
    let mut left = answer.framing;
    let mut scan = Scan::chunked_body();
    loop {
        let (take, done) = match left {
            Framing::Length(length) => {
                let take = usize::try_from(length).unwrap_or(usize::MAX).min(buffer.len());
                left = Framing::Length(length - take as u64);
                (take, length == take as u64)
            }
            Framing::Chunked => match scan.chunked_end(buffer) {
                Chunked::Ended(length) => (length, true),
                Chunked::More => (buffer.len(), false),
                Chunked::Malformed => return Err(malformed("the app's chunked body")),
            },
            Framing::Close => (buffer.len(), false),
        };
        if out.is_empty() {
            write(io, &buffer[..take]).await?;
        } else {
            // The head goes out with the first part of the body, in one write.
            out.extend_from_slice(&buffer[..take]);
            write(io, out).await?;
            out.clear();
        }
        buffer.advance(take);
        if done {
            return Ok(());
        }
        buffer.reserve(PLAIN_READ);
        if connection.stream.read_buf(buffer).await? == 0 {
            return match left {
                Framing::Close => Ok(()),
                _ => Err(io::ErrorKind::UnexpectedEof.into()),
            };
        }
    }
}

async fn write<I: AsyncWrite + Unpin>(io: &mut I, bytes: &[u8]) -> io::Result<()> {
    io.write_all(bytes).await?;
    io.flush().await
}

/// Calls `f` with the current time as an HTTP date, made once a second per thread.
pub(super) fn with_date(f: impl FnOnce(&str)) {
    thread_local! {
        static DATE: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
    }
    let now = SystemTime::now();
    let second = now.duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    DATE.with_borrow_mut(|(made, date)| {
        if *made != second || date.is_empty() {
            *made = second;
            *date = httpdate::fmt_http_date(now);
        }
        f(date);
    });
}

/// A client connection that can tell when a read would find bytes (or the end) without
/// reading, so that an idle one needs no buffer to wait with.
pub(super) trait Readable {
    /// Ready once a read would not wait (or might not).
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()>;
}

impl Readable for tokio::net::TcpStream {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        // An error is for the read to report.
        self.poll_read_ready(cx).map(|_| ())
    }
}

impl<I: Readable> Readable for tokio_rustls::server::TlsStream<I> {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        // rustls wants bytes from the socket when it holds no decrypted ones (nor a
        // `close_notify`): then a read waits for the socket; otherwise it would not wait.
        let (socket, tls) = self.get_ref();
        if tls.wants_read() { socket.poll_readable(cx) } else { Poll::Ready(()) }
    }
}

impl<I: Readable> Readable for crate::idle::Watched<I> {
    fn poll_readable(&self, cx: &mut Context<'_>) -> Poll<()> {
        self.get_ref().poll_readable(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_head_ends_at_its_empty_line_however_its_bytes_arrive() {
        for head in
            [&b"GET / HTTP/1.1\r\nHost: a\r\n\r\n"[..], b"GET / HTTP/1.1\nHost: a\n\n", b"GET / HTTP/1.1\r\n\r\n"]
        {
            for split in 1..head.len() {
                let mut looked = 0;
                assert!(!head_ends_after(&head[..split], &mut looked), "{head:?} split at {split}");
                for end in split + 1..head.len() {
                    assert!(!head_ends_after(&head[..end], &mut looked), "{head:?} at {end}");
                }
                assert!(head_ends_after(head, &mut looked), "{head:?} split at {split}");
            }
        }
    }
}
