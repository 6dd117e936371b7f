//! Connections to apps' backends: HTTP/1.1, kept alive and reused per backend address.
//!
//! A request takes the connection to its backend that was used last (or opens one within
//! the connect timeout) and gives it back once the answer's body has been read to its
//! end; a connection whose answer was cut short, or that was upgraded, is never reused.
//! A request that a reused connection could not even start (the app closed it while it
//! sat idle) is sent on a new one: it never reached the app. A connection idle for longer
//! than the idle limit is not used again, and [`Upstreams::sweep`] closes it: with a limit
//! shorter than app servers' own keep-alive timeouts, the router never sends a request on
//! a connection the app is closing at that moment (which would fail the request).
//!
//! This is what hyper-util's pooled client does, minus what the request path paid for
//! it: a task spawned per request to hand the connection back, and a pool keyed by
//! hashed scheme and authority strings.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes, BytesMut};
use http::{Request, Response, StatusCode};
use http_body_util::{Either, Empty, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::framing::{ChunkPart, Scan};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the router sends upstream: the client's body, or nothing when a body-less request
/// is sent again.
pub type UpstreamBody = Either<Limited<crate::proxy::ClientBody>, Empty<Bytes>>;

/// A connection waiting for its next request.
struct Idle<C> {
    connection: C,
    since: Instant,
}

/// A kept-alive connection: whether the app has closed it (or it broke).
trait Reusable {
    fn is_closed(&self) -> bool;
}

impl Reusable for SendRequest<UpstreamBody> {
    fn is_closed(&self) -> bool {
        SendRequest::is_closed(self)
    }
}

/// Connections waiting for their next request, per backend; the one used last is taken
/// first.
struct Pool<C> {
    /// Hashed with foldhash (the keys are backend addresses from the route table).
    idle: Mutex<HashMap<SocketAddr, Vec<Idle<C>>, foldhash::fast::RandomState>>,
}

impl<C> Default for Pool<C> {
    fn default() -> Self {
        Self { idle: Mutex::default() }
    }
}

impl<C: Reusable> Pool<C> {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<SocketAddr, Vec<Idle<C>>, foldhash::fast::RandomState>> {
        self.idle.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The connection to `backend` used last, if one is open and has been idle for less
    /// than `limit`.
    fn take(&self, backend: SocketAddr, limit: Duration) -> Option<C> {
        let mut idle = self.lock();
        let waiting = idle.get_mut(&backend)?;
        while let Some(Idle { connection, since }) = waiting.pop() {
            if !connection.is_closed() && since.elapsed() < limit {
                return Some(connection);
            }
        }
        None
    }

    fn give_back(&self, backend: SocketAddr, connection: C) {
        if connection.is_closed() {
            return;
        }
        self.lock().entry(backend).or_default().push(Idle { connection, since: Instant::now() });
    }

    /// Closes connections idle for `limit` or longer, and forgets closed ones.
    fn sweep(&self, limit: Duration) {
        let mut idle = self.lock();
        for waiting in idle.values_mut() {
            waiting.retain(|i| i.since.elapsed() < limit && !i.connection.is_closed());
        }
        idle.retain(|_, waiting| !waiting.is_empty());
    }
}

/// A connection to a backend that the router reads and writes itself (the relay's, for
/// requests without a body), with the bytes read from it that are not used yet.
pub struct Plain {
    pub stream: TcpStream,
    pub buffer: BytesMut,
}

impl Reusable for Plain {
    /// Whether anything arrived since the last read that emptied the socket: the app
    /// closed the connection, or sent bytes no request asked for. Either way it is not
    /// used again. (tokio forgets a socket's readiness after a read that did not fill
    /// the buffer, so nothing is read here.)
    fn is_closed(&self) -> bool {
        let mut context = Context::from_waker(std::task::Waker::noop());
        self.stream.poll_read_ready(&mut context).is_ready()
    }
}

/// Kept-alive HTTP/1.1 connections to backends: hyper's, for requests with a body or an
/// upgrade, and plain ones for requests without a body (the relay's, and those that
/// hyper's server takes).
pub struct Upstreams {
    hyper: Pool<SendRequest<UpstreamBody>>,
    plain: Pool<Plain>,
    connect_timeout: Duration,
    /// How long a connection may wait for its next request.
    idle_limit: Duration,
    /// Each connection's task, which reads and writes its socket.
    connections: TaskTracker,
}

/// Why a request got no answer from a backend.
#[derive(Debug)]
pub struct UpstreamError {
    stage: Stage,
    source: BoxError,
}

/// How far a failed request got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    /// No connection could be made: the request never left the router.
    Connect,
    /// It was sent, and the connection failed before any byte of an answer came.
    Unanswered,
    /// The answer broke off or was not HTTP, or the client's body failed.
    Exchange,
}

impl UpstreamError {
    pub fn connect(source: impl Into<BoxError>) -> Self {
        Self { stage: Stage::Connect, source: source.into() }
    }

    pub fn unanswered(source: impl Into<BoxError>) -> Self {
        Self { stage: Stage::Unanswered, source: source.into() }
    }

    pub fn exchange(source: impl Into<BoxError>) -> Self {
        Self { stage: Stage::Exchange, source: source.into() }
    }

    /// Whether no connection could be made: the request may go to another backend.
    pub fn is_connect(&self) -> bool {
        self.stage == Stage::Connect
    }

    /// Whether the app (or its node) went away before answering anything: an idempotent
    /// request may go to another backend (RFC 9110 §9.2.2).
    pub fn is_unanswered(&self) -> bool {
        self.stage == Stage::Unanswered
    }
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stage = match self.stage {
            Stage::Connect => "connecting to the app",
            Stage::Unanswered => "waiting for the app's answer",
            Stage::Exchange => "exchanging with the app",
        };
        write!(f, "{stage}: {}", self.source)
    }
}

impl std::error::Error for UpstreamError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

impl Upstreams {
    pub fn new(connect_timeout: Duration, idle_limit: Duration, connections: TaskTracker) -> Arc<Self> {
        Arc::new(Self { hyper: Pool::default(), plain: Pool::default(), connect_timeout, idle_limit, connections })
    }

    /// Sends `request` (whose URI is in origin form, with a `Host` header) to `backend`.
    ///
    /// # Errors
    ///
    /// [`UpstreamError::is_connect`] when no connection could be made; otherwise the
    /// exchange failed (the app broke off, or the client's body did).
    pub async fn send(
        self: &Arc<Self>,
        backend: SocketAddr,
        mut request: Request<UpstreamBody>,
    ) -> Result<Response<Pooled>, UpstreamError> {
        // Bounded: each pass that goes round again used up an idle connection; a new
        // connection always ends the loop.
        loop {
            let (mut sender, reused) = match self.hyper.take(backend, self.idle_limit) {
                Some(sender) => (sender, true),
                // Boxed: connecting is rare, and its state would otherwise make every
                // request's future larger (and costlier to move).
                None => (Box::pin(self.connect(backend)).await?, false),
            };
            if reused && sender.ready().await.is_err() {
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    let reusable = response.status() != http::StatusCode::SWITCHING_PROTOCOLS;
                    let home = reusable.then(|| (self.clone(), backend, sender));
                    return Ok(response.map(|body| Pooled { body, home, ended: false }));
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if reused => request = unsent,
                    _ => return Err(UpstreamError::exchange(error.into_error())),
                },
            }
        }
    }

    async fn connect_tcp(&self, backend: SocketAddr) -> Result<TcpStream, UpstreamError> {
        let stream = match tokio::time::timeout(self.connect_timeout, TcpStream::connect(backend)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(error)) => return Err(UpstreamError::connect(error)),
            Err(_) => {
                let waited = self.connect_timeout.as_secs_f32();
                return Err(UpstreamError::connect(format!("no connection within {waited} s")));
            }
        };
        let _ = stream.set_nodelay(true);
        let _ = notice_dead_peers(&stream);
        Ok(stream)
    }

    async fn connect(&self, backend: SocketAddr) -> Result<SendRequest<UpstreamBody>, UpstreamError> {
        let stream = self.connect_tcp(backend).await?;
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .writev(false)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::connect)?;
        self.connections.spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, %backend, "router.upstream.connection");
            }
        });
        Ok(sender)
    }

    /// Sends a request `head` (of a request without a body) to `backend` over a plain
    /// kept-alive connection, and reads until the first bytes of the answer are in the
    /// connection's buffer. When a reused connection fails before any byte of an answer
    /// came (the app closed it while it sat idle), a `replayable` request is sent again
    /// on a new one; the app may have seen it, so others are not.
    ///
    /// # Errors
    ///
    /// [`UpstreamError::is_connect`] when no connection could be made;
    /// [`UpstreamError::is_unanswered`] when the app (or its node) went away before
    /// answering anything.
    pub async fn send_plain(&self, backend: SocketAddr, head: &[u8], replayable: bool) -> Result<Plain, UpstreamError> {
        if let Some(mut connection) = self.plain.take(backend, self.idle_limit) {
            match exchange_head(&mut connection, head).await {
                Ok(()) => return Ok(connection),
                // The app may have seen it; or its peer is gone (no reset, only silence).
                Err(error) if !replayable || error.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(UpstreamError::unanswered(error));
                }
                // The app closed it while it sat idle: a new one.
                Err(_) => {}
            }
        }
        let mut connection = Plain { stream: Box::pin(self.connect_tcp(backend)).await?, buffer: BytesMut::new() };
        exchange_head(&mut connection, head).await.map_err(UpstreamError::unanswered)?;
        Ok(connection)
    }

    /// Keeps a plain connection whose last answer was read to its end for the next request.
    pub fn give_back_plain(&self, backend: SocketAddr, connection: Plain) {
        self.plain.give_back(backend, connection);
    }

    /// Closes connections idle for longer than the limit (and forgets closed ones), every
    /// half limit, until `shutdown`.
    pub async fn sweep(self: Arc<Self>, shutdown: CancellationToken) {
        let limit = self.idle_limit;
        loop {
            tokio::select! {
                () = tokio::time::sleep(limit / 2) => {}
                () = shutdown.cancelled() => return,
            }
            self.hyper.sweep(limit);
            self.plain.sweep(limit);
        }
    }
}

/// How long a backend's kernel may leave what the router sent unacknowledged, and stay
/// silent to keep-alive probes, before the connection fails: a node that is gone (its
/// engine killed, its link cut) sends no reset, and without this a request waiting on it
/// would wait for the response timeout, and an idle connection to it would look alive.
const DEAD_PEER: Duration = Duration::from_secs(3);

/// Makes the kernel fail a connection whose peer went silent within about [`DEAD_PEER`]:
/// probes after a second without traffic, one a second, and a limit on unacknowledged
/// data. A live app that is merely slow answers the probes, so a long request lives on.
fn notice_dead_peers(stream: &TcpStream) -> std::io::Result<()> {
    let socket = socket2::SockRef::from(stream);
    let probes = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(1))
        .with_interval(Duration::from_secs(1))
        .with_retries(3);
    socket.set_tcp_keepalive(&probes)?;
    socket.set_tcp_user_timeout(Some(DEAD_PEER))
}

/// Writes `head` and reads the first bytes of the answer.
async fn exchange_head(connection: &mut Plain, head: &[u8]) -> std::io::Result<()> {
    connection.stream.write_all(head).await?;
    connection.buffer.reserve(PLAIN_READ);
    match connection.stream.read_buf(&mut connection.buffer).await? {
        0 => Err(std::io::ErrorKind::UnexpectedEof.into()),
        _ => Ok(()),
    }
}

/// How much room a plain connection's buffer has for each read.
pub const PLAIN_READ: usize = 16 * 1024;

/// The most header fields a head may have (as hyper takes).
pub const MAX_FIELDS: usize = 100;

/// How an answer's body ends (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    Length(u64),
    Chunked,
    /// When the app closes the connection.
    Close,
}

/// What an answer's head says about its body and its connection.
#[derive(Debug)]
pub struct Answer {
    pub status: StatusCode,
    /// The head's length in the connection's buffer.
    pub length: usize,
    pub framing: Framing,
    /// Whether the answer gives Transfer-Encoding (which overrules a Content-Length).
    pub transfer_encoded: bool,
    /// Whether the app keeps the connection open after this answer.
    pub keep_alive: bool,
}

/// Answer headers that describe one connection. Transfer-Encoding is not among them: the
/// relay passes chunks on as they came (hyper's server frames bodies itself and drops it).
const ANSWER_HOP_BY_HOP: [&str; 6] =
    ["connection", "keep-alive", "proxy-connection", "trailer", "upgrade", "proxy-authorization"];

impl Answer {
    /// Whether the connection can take another request once this answer's body is read.
    pub fn reusable(&self) -> bool {
        self.keep_alive && self.framing != Framing::Close
    }

    /// Whether the answer's header `name` goes on to the client: not one that describes
    /// the connection to the app, nor a Content-Length that Transfer-Encoding overrules.
    pub fn passes_on(&self, name: &str) -> bool {
        let overruled = self.transfer_encoded && name.eq_ignore_ascii_case("content-length");
        !overruled && !ANSWER_HOP_BY_HOP.iter().any(|n| name.eq_ignore_ascii_case(n))
    }
}

fn too_large() -> std::io::Error {
    malformed(&format!("the answer's head is larger than {} KiB", crate::proxy::MAX_HEAD_BYTES / 1024))
}

/// An error for bytes from an app that break HTTP.
pub fn malformed(what: &str) -> std::io::Error {
    std::io::Error::new(std::io::ErrorKind::InvalidData, what.to_owned())
}

/// An answer head, as far as it has come.
enum Head<T> {
    Whole(Answer, T),
    /// An interim (1xx) answer of this length, passed over.
    Interim(usize),
    Partial,
}

/// Reads the head of the app's answer to a request (`bodiless` for HEAD) from
/// `connection`, passing over interim (1xx) answers, and gives it with its fields to
/// `take`; the connection's buffer still starts with the head.
///
/// # Errors
///
/// When the app broke off, or its head is malformed or larger than [`MAX_HEAD_BYTES`](crate::proxy::MAX_HEAD_BYTES).
pub async fn read_answer<T>(
    connection: &mut Plain,
    bodiless: bool,
    mut take: impl FnMut(&Answer, &[httparse::Header<'_>]) -> T,
) -> std::io::Result<(Answer, T)> {
    loop {
        match answer_head(&connection.buffer, bodiless, &mut take)? {
            Head::Whole(answer, taken) => return Ok((answer, taken)),
            Head::Interim(length) => connection.buffer.advance(length),
            Head::Partial => {
                if connection.buffer.len() > crate::proxy::MAX_HEAD_BYTES {
                    return Err(too_large());
                }
                connection.buffer.reserve(PLAIN_READ);
                if connection.stream.read_buf(&mut connection.buffer).await? == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
            }
        }
    }
}

fn answer_head<T>(
    bytes: &[u8],
    bodiless: bool,
    take: &mut impl FnMut(&Answer, &[httparse::Header<'_>]) -> T,
) -> std::io::Result<Head<T>> {
    // Left uninitialised: httparse writes the fields it finds.
    let mut fields = [const { std::mem::MaybeUninit::uninit() }; MAX_FIELDS];
    let mut head = httparse::Response::new(&mut []);
    let length =
        match httparse::ParserConfig::default().parse_response_with_uninit_headers(&mut head, bytes, &mut fields) {
            Ok(httparse::Status::Complete(length)) if length <= crate::proxy::MAX_HEAD_BYTES => length,
            Ok(httparse::Status::Complete(_)) => return Err(too_large()),
            Ok(httparse::Status::Partial) => return Ok(Head::Partial),
            Err(error) => return Err(malformed(&format!("the app's answer: {error}"))),
        };
    let (Some(version), Some(code)) = (head.version, head.code) else { return Err(malformed("no status")) };
    match code {
        101 => return Err(malformed("the app switched protocols unasked")),
        100..=199 => return Ok(Head::Interim(length)),
        _ => {}
    }
    let status = StatusCode::from_u16(code).map_err(|_| malformed("a status out of range"))?;
    let mut keep_alive = version == 1;
    let mut content_length = None;
    let mut chunked = None;
    for field in head.headers.iter() {
        let name = field.name;
        if name.eq_ignore_ascii_case("content-length") {
            let value = std::str::from_utf8(field.value).ok().and_then(|v| v.trim().parse::<u64>().ok());
            match (content_length, value) {
                (_, None) => return Err(malformed("an invalid Content-Length")),
                (Some(earlier), Some(value)) if earlier != value => return Err(malformed("two Content-Lengths")),
                (_, value) => content_length = value,
            }
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            let last = field.value.rsplit(|&b| b == b',').next().unwrap_or_default().trim_ascii();
            chunked = Some(last.eq_ignore_ascii_case(b"chunked"));
        } else if name.eq_ignore_ascii_case("connection")
            && field.value.split(|&b| b == b',').any(|t| t.trim_ascii().eq_ignore_ascii_case(b"close"))
        {
            keep_alive = false;
        }
    }
    let framing = match (bodiless || code == 204 || code == 304, chunked, content_length) {
        (true, _, _) => Framing::Length(0),
        (false, Some(true), _) => Framing::Chunked,
        (false, Some(false), _) | (false, None, None) => Framing::Close,
        (false, None, Some(length)) => Framing::Length(length),
    };
    // With both lengths the chunks count, and the connection is not trusted again.
    if chunked.is_some() && content_length.is_some() {
        keep_alive = false;
    }
    let answer = Answer { status, length, framing, transfer_encoded: chunked.is_some(), keep_alive };
    let taken = take(&answer, head.headers);
    Ok(Head::Whole(answer, taken))
}

/// An answer's body read from a plain connection (chunks undone); the connection goes
/// back to the pool once the body has been read to its end, and is closed if it is
/// dropped before.
pub struct PlainBody {
    connection: Option<Plain>,
    framing: Framing,
    chunks: Scan,
    reusable: bool,
    home: (Arc<Upstreams>, SocketAddr),
}

impl PlainBody {
    /// The body of `answer`, whose head is at the start of the connection's buffer.
    pub fn new(mut connection: Plain, answer: &Answer, upstreams: Arc<Upstreams>, backend: SocketAddr) -> Self {
        connection.buffer.advance(answer.length);
        let mut body = Self {
            connection: Some(connection),
            framing: answer.framing,
            chunks: Scan::chunked_body(),
            reusable: answer.reusable(),
            home: (upstreams, backend),
        };
        if body.framing == Framing::Length(0) {
            body.end();
        }
        body
    }

    /// The body has been read: the connection goes back if it can take another request.
    fn end(&mut self) {
        if let Some(connection) = self.connection.take()
            && self.reusable
            && connection.buffer.is_empty()
        {
            let (upstreams, backend) = &self.home;
            upstreams.give_back_plain(*backend, connection);
        }
    }
}

/// Body parts larger than this are handed on in the connection's buffer; smaller ones
/// are copied out, so that the buffer is used again.
const COPIED_UP_TO: usize = 4 * 1024;

impl Body for PlainBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<std::io::Result<Frame<Bytes>>>> {
        let this = &mut *self;
        loop {
            let Some(connection) = this.connection.as_mut() else { return Poll::Ready(None) };
            let buffer = &mut connection.buffer;
            let (skip, data, ended) = match this.framing {
                Framing::Length(left) => {
                    let take = usize::try_from(left).unwrap_or(usize::MAX).min(buffer.len());
                    this.framing = Framing::Length(left - take as u64);
                    (0, take, left == take as u64)
                }
                Framing::Chunked => match this.chunks.next_data(buffer) {
                    ChunkPart::Data { framing, data } => (framing, data, false),
                    ChunkPart::End(framing) => (framing, 0, true),
                    ChunkPart::Malformed => return Poll::Ready(Some(Err(malformed("the app's chunked body")))),
                },
                Framing::Close => (0, buffer.len(), false),
            };
            buffer.advance(skip);
            let frame = match data {
                0 => None,
                small if small <= COPIED_UP_TO => {
                    let frame = Bytes::copy_from_slice(&buffer[..small]);
                    buffer.advance(small);
                    Some(frame)
                }
                large => Some(buffer.split_to(large).freeze()),
            };
            if ended {
                this.end();
            }
            if let Some(frame) = frame {
                return Poll::Ready(Some(Ok(Frame::data(frame))));
            }
            if ended {
                return Poll::Ready(None);
            }
            let Some(connection) = this.connection.as_mut() else { return Poll::Ready(None) };
            connection.buffer.reserve(PLAIN_READ);
            match tokio_util::io::poll_read_buf(Pin::new(&mut connection.stream), cx, &mut connection.buffer) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Ok(0)) if this.framing == Framing::Close => {
                    this.connection = None;
                    return Poll::Ready(None);
                }
                Poll::Ready(Ok(0)) => return Poll::Ready(Some(Err(std::io::ErrorKind::UnexpectedEof.into()))),
                Poll::Ready(Ok(_)) => {}
                Poll::Ready(Err(error)) => return Poll::Ready(Some(Err(error))),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.connection.is_none()
    }

    fn size_hint(&self) -> SizeHint {
        match self.framing {
            Framing::Length(left) => SizeHint::with_exact(left),
            _ => SizeHint::default(),
        }
    }
}

/// An answer's body; its connection goes back to the pool once it has been read to the end.
pub struct Pooled {
    body: Incoming,
    home: Option<(Arc<Upstreams>, SocketAddr, SendRequest<UpstreamBody>)>,
    ended: bool,
}

impl Body for Pooled {
    type Data = Bytes;
    type Error = hyper::Error;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, hyper::Error>>> {
        let polled = Pin::new(&mut self.body).poll_frame(cx);
        if let Poll::Ready(None) = polled {
            self.ended = true;
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if (self.ended || self.body.is_end_stream())
            && let Some((upstreams, backend, sender)) = self.home.take()
        {
            upstreams.hyper.give_back(backend, sender);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use http_body_util::BodyExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;
    use tokio::sync::mpsc;

    use super::*;

    /// An app that answers every request on a connection with `answer`; counts the
    /// connections it accepted, and says when one is closed by the router.
    async fn app(answer: &'static [u8]) -> (SocketAddr, Arc<AtomicUsize>, mpsc::UnboundedReceiver<()>) {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let accepted = Arc::new(AtomicUsize::new(0));
        let (closed, closes) = mpsc::unbounded_channel();
        let counted = accepted.clone();
        tokio::spawn(async move {
            while let Ok((mut stream, _)) = listener.accept().await {
                counted.fetch_add(1, Ordering::SeqCst);
                let closed = closed.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut buffer = [0u8; 1024];
                    loop {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => {
                                let _ = closed.send(());
                                return;
                            }
                            Ok(n) => head.extend_from_slice(&buffer[..n]),
                        }
                        if head.windows(4).any(|w| w == b"\r\n\r\n") {
                            head.clear();
                            if stream.write_all(answer).await.is_err() {
                                return;
                            }
                        }
                    }
                });
            }
        });
        (address, accepted, closes)
    }

    fn get() -> Request<UpstreamBody> {
        Request::builder().uri("/").header("host", "app").body(Either::Right(Empty::new())).unwrap()
    }

    const OK: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";

    /// Sends a GET to `backend` and reads the whole answer.
    async fn fetch(upstreams: &Arc<Upstreams>, backend: SocketAddr) -> Bytes {
        let response = upstreams.send(backend, get()).await.unwrap();
        response.into_body().collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_connection_is_reused_once_its_answer_was_read_to_the_end() {
        let (backend, accepted, _) = app(OK).await;
        let upstreams = Upstreams::new(Duration::from_secs(5), Duration::from_secs(5), TaskTracker::new());
        for _ in 0..5 {
            assert_eq!(fetch(&upstreams, backend).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn a_connection_whose_answer_was_cut_short_or_that_the_app_closes_is_not_reused() {
        // The router stops reading an answer midway (its client went away).
        let (backend, accepted, _) = app(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npart").await;
        let upstreams = Upstreams::new(Duration::from_secs(5), Duration::from_secs(5), TaskTracker::new());
        for _ in 0..2 {
            let response = upstreams.send(backend, get()).await.unwrap();
            drop(response);
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);

        // The app says it closes the connection after its answer.
        let (backend, accepted, _) = app(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok").await;
        for _ in 0..2 {
            assert_eq!(fetch(&upstreams, backend).await, "ok");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn connections_idle_past_the_limit_are_neither_reused_nor_kept() {
        let (backend, accepted, mut closes) = app(OK).await;
        let limit = Duration::from_millis(100);
        let upstreams = Upstreams::new(Duration::from_secs(5), limit, TaskTracker::new());
        for _ in 0..2 {
            fetch(&upstreams, backend).await;
            // The time under test passes: the connection outlives its limit.
            tokio::time::sleep(limit * 2).await;
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 2, "the first connection was too old to reuse");
        tokio::time::timeout(Duration::from_secs(5), closes.recv()).await.expect("the first connection is closed");
        let shutdown = CancellationToken::new();
        tokio::spawn(upstreams.clone().sweep(shutdown.clone()));
        tokio::time::timeout(Duration::from_secs(5), closes.recv()).await.expect("the sweep closes the second");
        shutdown.cancel();
    }

    /// Sends a GET to `backend` over a plain connection and reads the whole answer.
    async fn fetch_plain(upstreams: &Arc<Upstreams>, backend: SocketAddr) -> Bytes {
        let head = b"GET / HTTP/1.1\r\nHost: app\r\n\r\n";
        let mut connection = upstreams.send_plain(backend, head, true).await.unwrap();
        let (answer, ()) = read_answer(&mut connection, false, |_, _| ()).await.unwrap();
        PlainBody::new(connection, &answer, upstreams.clone(), backend).collect().await.unwrap().to_bytes()
    }

    #[tokio::test]
    async fn a_plain_connection_goes_back_once_its_chunked_answer_was_undone_to_the_end() {
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n3;x\r\n!!!\r\n0\r\n\r\n";
        let (backend, accepted, _) = app(chunked).await;
        let upstreams = Upstreams::new(Duration::from_secs(5), Duration::from_secs(5), TaskTracker::new());
        for _ in 0..3 {
            assert_eq!(fetch_plain(&upstreams, backend).await, "ok!!!");
        }
        assert_eq!(accepted.load(Ordering::SeqCst), 1);
        // A body dropped before its end takes its connection with it.
        let mut connection = upstreams.send_plain(backend, b"GET / HTTP/1.1\r\n\r\n", true).await.unwrap();
        let (answer, ()) = read_answer(&mut connection, false, |_, _| ()).await.unwrap();
        drop(PlainBody::new(connection, &answer, upstreams.clone(), backend));
        assert_eq!(fetch_plain(&upstreams, backend).await, "ok!!!");
        assert_eq!(accepted.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn a_backend_that_refuses_is_a_connect_error() {
        let refusing = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let upstreams = Upstreams::new(Duration::from_secs(5), Duration::from_secs(5), TaskTracker::new());
        let Err(error) = upstreams.send(refusing, get()).await else { panic!("a refused connection answered") };
        assert!(error.is_connect(), "{error}");
    }
}
