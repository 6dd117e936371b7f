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

use bytes::{Bytes, BytesMut};
use http::{Request, Response};
use http_body_util::{Either, Empty, Limited};
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// What the router sends upstream: the client's body, or nothing when a body-less request
/// is sent again.
pub type UpstreamBody = Either<Limited<Incoming>, Empty<Bytes>>;

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

/// Kept-alive HTTP/1.1 connections to backends: hyper's, for requests that hyper's server
/// took, and plain ones for the relay.
pub struct Upstreams {
    idle: Pool<SendRequest<UpstreamBody>>,
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
    /// Whether no connection could be made (the request never left the router).
    connect: bool,
    source: BoxError,
}

impl UpstreamError {
    pub fn connect(source: impl Into<BoxError>) -> Self {
        Self { connect: true, source: source.into() }
    }

    pub fn exchange(source: impl Into<BoxError>) -> Self {
        Self { connect: false, source: source.into() }
    }

    /// Whether no connection could be made: the request may go to another backend.
    pub fn is_connect(&self) -> bool {
        self.connect
    }
}

impl std::fmt::Display for UpstreamError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stage = if self.connect { "connecting to the app" } else { "exchanging with the app" };
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
        Arc::new(Self { idle: Pool::default(), plain: Pool::default(), connect_timeout, idle_limit, connections })
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
            let (mut sender, reused) = match self.take_idle(backend) {
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

    fn take_idle(&self, backend: SocketAddr) -> Option<SendRequest<UpstreamBody>> {
        self.idle.take(backend, self.idle_limit)
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

    fn give_back(&self, backend: SocketAddr, sender: SendRequest<UpstreamBody>) {
        self.idle.give_back(backend, sender);
    }

    /// Sends a request `head` (of a request without a body) to `backend` over a plain
    /// kept-alive connection, and reads until the first bytes of the answer are in the
    /// connection's buffer. When a reused connection fails before any byte of an answer
    /// came (the app closed it while it sat idle), a `replayable` request is sent again
    /// on a new one; the app may have seen it, so others are not.
    ///
    /// # Errors
    ///
    /// [`UpstreamError::is_connect`] when no connection could be made; otherwise the app
    /// broke off before answering.
    pub async fn send_plain(&self, backend: SocketAddr, head: &[u8], replayable: bool) -> Result<Plain, UpstreamError> {
        let reused = self.plain.take(backend, self.idle_limit);
        let retry = replayable && reused.is_some();
        let mut connection = match reused {
            Some(connection) => connection,
            None => Plain { stream: Box::pin(self.connect_tcp(backend)).await?, buffer: BytesMut::new() },
        };
        match exchange_head(&mut connection, head).await {
            Ok(()) => Ok(connection),
            Err(_) if retry => {
                let stream = Box::pin(self.connect_tcp(backend)).await?;
                let mut connection = Plain { stream, buffer: BytesMut::new() };
                exchange_head(&mut connection, head).await.map_err(UpstreamError::exchange)?;
                Ok(connection)
            }
            Err(error) => Err(UpstreamError::exchange(error)),
        }
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
            self.idle.sweep(limit);
            self.plain.sweep(limit);
        }
    }
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
            upstreams.give_back(backend, sender);
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

    #[tokio::test]
    async fn a_backend_that_refuses_is_a_connect_error() {
        let refusing = TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap();
        let upstreams = Upstreams::new(Duration::from_secs(5), Duration::from_secs(5), TaskTracker::new());
        let Err(error) = upstreams.send(refusing, get()).await else { panic!("a refused connection answered") };
        assert!(error.is_connect(), "{error}");
    }
}
