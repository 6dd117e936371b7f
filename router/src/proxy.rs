//! The request path and the server loop.

use std::convert::Infallible;
use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use bytes::Bytes;
use http::header::{self, HeaderName, HeaderValue};
use http::{Request, Response, StatusCode, Uri};
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Either, Empty, Full, Limited};
use hyper::body::{Body, Incoming};
use hyper::service::service_fn;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

mod failover;
mod http2;
mod parking;
mod relay;

use crate::policy::{self, Decision, Endpoint, Failure, Forwarding, Page};
use crate::table::{Backends, Table};
use crate::upstream::{PlainBody, Pooled, UpstreamBody, UpstreamError, Upstreams};
use failover::{AnswerTimer, Resend, Tried, Unanswered, try_backends};

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;
/// An app's answer: over one of hyper's kept-alive HTTP/1.1 connections, over HTTP/2 for
/// gRPC, or over a plain kept-alive connection.
type AnswerBody = Either<Pooled, Either<Incoming, PlainBody>>;
/// A client's request body: read by hyper's server (HTTP/1.1), or by the router's own
/// (HTTP/2).
pub type ClientBody = Either<Incoming, http2::RequestBody>;

/// How a request goes to its app.
#[derive(Debug, Clone, Copy)]
enum Carrier {
    /// gRPC: HTTP/2 with prior knowledge.
    H2c,
    /// Without a body: a plain kept-alive connection, as the relay's requests.
    Plain,
    /// With a body, or an upgrade: one of hyper's kept-alive HTTP/1.1 connections.
    Hyper,
}

/// Router settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// How long a client may take to send a request head.
    pub header_read_timeout: Duration,
    /// How long a client connection may go without a byte either way before it is closed
    /// (idle HTTP/2 connections, stalled request bodies, quiet WebSockets).
    pub idle_timeout: Duration,
    /// How long an upstream may take to accept a connection.
    pub connect_timeout: Duration,
    /// How long an app may take to start answering (its response head) before the client
    /// gets a 504; a response already under way streams for as long as it takes.
    pub response_timeout: Duration,
    /// The logger's syslog address for access lines; none are sent without one.
    pub access_log: Option<SocketAddr>,
    /// Proxies in front of the router (a load balancer, a TLS terminator) whose
    /// `X-Forwarded-*` headers are believed; everyone else's are replaced.
    pub trusted_proxies: Vec<skiff_api::Cidr>,
    /// Worker threads serving client connections, each with its own event loop; 0 for
    /// one per CPU.
    pub threads: usize,
    /// Where requests of apps' canaries are counted, for the controller's judge.
    pub canary_counts: Arc<crate::canary::CanaryCounts>,
    /// Every app's requests, for `/metrics` and the controller's history.
    pub metrics: Arc<crate::metrics::Metrics>,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(30),
            access_log: None,
            trusted_proxies: Vec::new(),
            threads: 0,
            canary_counts: Arc::default(),
            metrics: Arc::new(crate::metrics::Metrics::new(worker_threads(0))),
        }
    }
}

/// How long a connection to an app may wait for its next request before it is closed:
/// less than app servers' own keep-alive timeouts (gunicorn's 2 s, Node's and uvicorn's
/// 5 s), so that the router does not send a request on a connection as the app closes it.
const UPSTREAM_IDLE_LIMIT: Duration = Duration::from_secs(1);
/// Concurrent HTTP/2 streams per client connection.
const MAX_STREAMS: u32 = 200;
/// The largest request head (request line and headers) taken; larger ones get 431.
pub(crate) const MAX_HEAD_BYTES: usize = 64 * 1024;

// Header names the router reads on every request, parsed once.
const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Where a request goes.
struct Target<'a> {
    host: &'a HeaderValue,
    /// The client the router believes it is (behind trusted proxies, the one they name).
    client: std::net::IpAddr,
    /// The request's path and query.
    path: &'a str,
    backends: Backends,
    origin: &'a Origin,
    app: &'a str,
    /// The largest request body the app takes, in bytes.
    max_body: Option<u64>,
    request_id: &'a HeaderValue,
}

/// Where a client connection comes from, with the forwarded headers that say so, made
/// once per connection rather than per request.
struct Origin {
    peer: SocketAddr,
    entry: Entry,
    /// The peer's address, as `X-Forwarded-For` gives it.
    address: HeaderValue,
    /// Whether the peer is a trusted proxy, whose forwarded headers are believed.
    trusted: bool,
}

impl Origin {
    fn new(peer: SocketAddr, entry: Entry, trusted: bool) -> Self {
        let address = HeaderValue::from_str(&peer.ip().to_string()).expect("addresses are ascii");
        Self { peer, entry, address, trusted }
    }

    /// What the router says, in the head it forwards, of a request from this connection.
    fn forwarding<'a>(
        &'a self,
        host: &'a str,
        client: std::net::IpAddr,
        given: policy::Given<'a>,
        request_id: &'a str,
        via: &'static str,
    ) -> Forwarding<'a> {
        Forwarding {
            trusted: self.trusted,
            https: self.entry.https,
            peer: self.peer.ip(),
            peer_text: self.address.as_bytes(),
            port: self.entry.port.as_bytes(),
            host,
            client,
            given,
            request_id,
            via,
        }
    }
}

/// The router's sockets: plain HTTP, and HTTPS with its TLS settings.
pub struct Listeners {
    pub http: TcpListener,
    pub https: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
}

impl From<TcpListener> for Listeners {
    fn from(http: TcpListener) -> Self {
        Self { http, https: None }
    }
}

/// Which listener a connection came in on.
#[derive(Debug, Clone)]
struct Entry {
    https: bool,
    /// The listener's port, as `X-Forwarded-Port` gives it (one value the listener's
    /// connections share).
    port: HeaderValue,
}

/// One worker thread's request path: what every thread shares, and the thread's own
/// connections to apps and tunnels.
struct Proxy {
    shared: Arc<Shared>,
    /// Upgraded connections (tunnels).
    tasks: TaskTracker,
    upstreams: Arc<Upstreams>,
    /// HTTP/2 with prior knowledge, for gRPC (apps serve it as h2c on `$PORT`).
    h2c: Client<HttpConnector, UpstreamBody>,
    /// The thread's number, which is also its shard of the metrics.
    index: usize,
    /// This thread's access lines, on their way to the logger.
    access: Option<Arc<crate::access::AccessLog>>,
    /// This thread's plain connections waiting for their next request.
    parked: Arc<parking::Lot>,
}

/// What every worker thread shares.
struct Shared {
    table: Arc<ArcSwap<Table>>,
    config: Config,
    /// The HTTPS listener's port, where plain requests to HTTPS-only apps are sent.
    https_port: Option<u16>,
    shutdown: CancellationToken,
}

/// The worker threads `threads` asks for: one per CPU for 0.
fn worker_threads(threads: usize) -> usize {
    match threads {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        threads => threads,
    }
}

/// Serves until `shutdown`; open connections finish their current request, then close.
///
/// Client connections are served by `config.threads` worker threads, each with an event
/// loop of its own (a single-threaded tokio runtime, as nginx runs one per worker
/// process), all accepting on the same sockets: a connection, its requests and its
/// connections to apps stay on the thread that accepted it, so the request path never
/// hands work from one thread to another. The route table and the access log are shared;
/// each thread counts its metrics in a shard of its own.
///
/// # Errors
///
/// When the listeners cannot be shared with the worker threads, or no thread starts.
pub async fn serve(
    listeners: Listeners,
    table: Arc<ArcSwap<Table>>,
    config: Config,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let https_port = listeners.https.as_ref().and_then(|(l, _)| l.local_addr().ok()).map(|a| a.port());
    let http = listeners.http.into_std()?;
    let https = listeners.https.map(|(listener, tls)| listener.into_std().map(|l| (l, tls))).transpose()?;
    let threads = worker_threads(config.threads);
    let shared = Arc::new(Shared { table, config, https_port, shutdown });
    let mut workers = Vec::new();
    for index in 0..threads {
        let http = http.try_clone()?;
        let https = https.as_ref().map(|(listener, tls)| listener.try_clone().map(|l| (l, tls.clone()))).transpose()?;
        let shared = shared.clone();
        let (finished, done) = tokio::sync::oneshot::channel::<()>();
        let started = std::thread::Builder::new().name(format!("skiff-router-{index}")).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(runtime) => runtime.block_on(work(http, https, shared, index)),
                Err(error) => tracing::error!(%error, "router: cannot start an event loop"),
            }
            drop(finished);
        });
        match started {
            Ok(_) => workers.push(done),
            Err(error) => tracing::error!(%error, "router: cannot start a worker thread"),
        }
    }
    if workers.is_empty() {
        return Err(std::io::Error::other("no router worker thread could start"));
    }
    for done in workers {
        let _ = done.await;
    }
    Ok(())
}

/// One worker thread's share of the work: accepts on the listeners until `shutdown`, with
/// its own connections to apps.
async fn work(
    http: std::net::TcpListener,
    https: Option<(std::net::TcpListener, Arc<rustls::ServerConfig>)>,
    shared: Arc<Shared>,
    index: usize,
) {
    let config = &shared.config;
    let shutdown = shared.shutdown.clone();
    let http = match TcpListener::from_std(http) {
        Ok(listener) => listener,
        Err(error) => return tracing::error!(%error, "router: cannot listen"),
    };
    let https = https.and_then(|(listener, tls)| match TcpListener::from_std(listener) {
        Ok(listener) => Some((listener, tls)),
        Err(error) => {
            tracing::error!(%error, "router: cannot listen for HTTPS");
            None
        }
    });
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(config.connect_timeout));
    connector.set_nodelay(true);
    let h2c =
        Client::builder(TokioExecutor::new()).pool_idle_timeout(UPSTREAM_IDLE_LIMIT).http2_only(true).build(connector);
    let upstream_connections = TaskTracker::new();
    let upstreams = Upstreams::new(config.connect_timeout, UPSTREAM_IDLE_LIMIT, upstream_connections.clone());
    let tunnels = TaskTracker::new();
    let connections = TaskTracker::new();
    let access = config.access_log.map(|logger| {
        let access = Arc::new(crate::access::AccessLog::default());
        let delivering = access.clone();
        let stopped = shutdown.clone();
        connections.spawn(async move { delivering.deliver(logger, stopped).await });
        access
    });
    let parked = parking::Lot::new(connections.clone());
    connections.spawn(parked.clone().keep(shutdown.clone()));
    let proxy = Arc::new(Proxy {
        shared: shared.clone(),
        tasks: tunnels.clone(),
        upstreams: upstreams.clone(),
        h2c,
        index,
        access,
        parked,
    });
    connections.spawn(upstreams.sweep(shutdown.clone()));
    let https = https.map(|(listener, tls)| {
        let accepting = accept(listener, Some(tls), proxy.clone(), config, &connections, shutdown.clone());
        connections.spawn(accepting)
    });
    accept(http, None, proxy, config, &connections, shutdown).await;
    if let Some(https) = https {
        let _ = https.await;
    }
    connections.close();
    connections.wait().await;
    tunnels.close();
    tunnels.wait().await;
    // Every request is done: the idle connections to apps close as the pool goes.
    upstream_connections.close();
    upstream_connections.wait().await;
}

/// Accepts connections on one listener until `shutdown`, each served on `connections`.
fn accept(
    listener: TcpListener,
    tls: Option<Arc<rustls::ServerConfig>>,
    proxy: Arc<Proxy>,
    config: &Config,
    connections: &TaskTracker,
    shutdown: CancellationToken,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let port = HeaderValue::from(listener.local_addr().map_or(0, |a| a.port()));
    let entry = Entry { https: tls.is_some(), port };
    let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
    let timeouts = Timeouts { header_read: config.header_read_timeout, idle: config.idle_timeout };
    let connections = connections.clone();
    async move {
        loop {
            let (stream, peer) = tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        tracing::warn!(%error, "router.accept");
                        continue;
                    }
                },
                () = shutdown.cancelled() => break,
            };
            let _ = stream.set_nodelay(true);
            let origin = Arc::new(Origin::new(peer, entry.clone(), proxy.trusts(peer.ip())));
            let accepted = Accepted { proxy: proxy.clone(), origin, timeouts, shutdown: shutdown.clone() };
            // Each a task of its own type, so that a plain connection's task has no room for
            // a TLS session's state, and no future wraps another's arguments.
            match &acceptor {
                None => connections.spawn(serve_and_park(stream, accepted)),
                Some(acceptor) => connections.spawn(serve_tls(acceptor.clone(), stream, accepted)),
            };
        }
    }
}

/// What serving an accepted client connection takes.
struct Accepted {
    proxy: Arc<Proxy>,
    origin: Arc<Origin>,
    timeouts: Timeouts,
    shutdown: CancellationToken,
}

/// Serves one HTTPS connection: HTTP/2 when ALPN chose it, otherwise as plain ones.
async fn serve_tls(acceptor: tokio_rustls::TlsAcceptor, stream: tokio::net::TcpStream, accepted: Accepted) {
    // The handshake is bounded like a request head.
    match tokio::time::timeout(accepted.timeouts.header_read, acceptor.accept(stream)).await {
        Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(b"h2") => {
            http2::serve(stream, Bytes::new(), accepted).await;
        }
        // An ACME server that checked a challenge's certificate: nothing more is said.
        Ok(Ok(stream)) if stream.get_ref().1.alpn_protocol() == Some(crate::tls::ACME_TLS_ALPN) => {
            tracing::debug!("router.tls: TLS-ALPN-01 challenge answered");
        }
        Ok(Ok(stream)) => serve_and_park(stream, accepted).await,
        Ok(Err(error)) => tracing::debug!(%error, "router.tls.handshake"),
        Err(_) => tracing::debug!("router.tls.handshake: timed out"),
    }
}

/// How long a client may take over a request head, and go without a byte.
#[derive(Debug, Clone, Copy)]
struct Timeouts {
    header_read: Duration,
    idle: Duration,
}

/// How long a connection closing for idleness may take to say goodbye.
const IDLE_GOODBYE: Duration = Duration::from_secs(1);

/// Serves an HTTP/1.1 connection, plain or over TLS (its handshake done, HTTP/2 not
/// chosen), which parks in its worker's lot while it waits for its next request.
async fn serve_and_park<I>(io: I, accepted: Accepted)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + relay::Readable + Unpin + Send + 'static,
    parking::Waiting: From<I>,
{
    if let Some((io, accepted, deadline)) = serve_connection(io, accepted).await {
        let lot = accepted.proxy.parked.clone();
        lot.park(io.into(), accepted, deadline);
    }
}

/// Serves one client connection that has not chosen HTTP/2 by ALPN: the relay takes its
/// requests while they are ones it takes; the router's HTTP/2 server a connection that
/// begins with HTTP/2's preface; hyper's server the rest of the connection. A connection
/// that may park comes back once it has waited a while for its next request, with its
/// deadline.
async fn serve_connection<I>(io: I, accepted: Accepted) -> Option<(I, Accepted, tokio::time::Instant)>
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + relay::Readable + Unpin + Send + 'static,
{
    let Accepted { proxy, origin, timeouts, shutdown } = &accepted;
    let activity = crate::idle::Activity::new();
    let mut io = crate::idle::Watched::new(io, activity.clone());
    let mut buffer = bytes::BytesMut::new();
    match relay::serve(proxy, origin, &mut io, &mut buffer, *timeouts, &activity, shutdown).await {
        relay::Left::Closed => {}
        relay::Left::Idle(deadline) => return Some((io.into_inner(), accepted, deadline)),
        relay::Left::HandedOver => {
            // Boxed: either server's connection state is larger than the relay's, and
            // most connections never need it.
            let io = io.into_inner();
            if http2::begins(&buffer) {
                Box::pin(http2::serve(io, buffer.freeze(), accepted)).await;
            } else {
                Box::pin(serve_with_hyper(io, buffer.freeze(), accepted)).await;
            }
        }
    }
    None
}

/// Serves one HTTP/1 client connection with hyper's server; `read` is what the relay read
/// of it before handing it over.
async fn serve_with_hyper<I>(io: I, read: Bytes, accepted: Accepted)
where
    I: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let Accepted { proxy, origin, timeouts, shutdown } = accepted;
    let verdict = Arc::new(crate::framing::Verdict::default());
    let screen = crate::framing::Screen::new(verdict.clone());
    let service = service_fn(move |request: Request<Incoming>| {
        let proxy = proxy.clone();
        let origin = origin.clone();
        let refused = verdict.refuses_next();
        // Boxed: a request's future is some kilobytes, moved as a pointer.
        Box::pin(async move {
            if refused {
                return Ok::<_, Infallible>(page(
                    StatusCode::BAD_REQUEST,
                    "a request gives its body's length either by Content-Length or by Transfer-Encoding, not both",
                ));
            }
            Ok(proxy.handle(request.map(Either::Left), &origin).await)
        })
    });
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(timeouts.header_read)
        .max_header_size(MAX_HEAD_BYTES)
        .max_buf_size(MAX_HEAD_BYTES)
        .writev(false);
    let activity = crate::idle::Activity::new();
    let io = crate::idle::Watched::new(io, activity.clone()).after(read).screened(screen);
    let connection = builder.serve_connection(TokioIo::new(io), service).with_upgrades();
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%error, "router.connection");
            }
        }
        () = activity.idle_for(timeouts.idle) => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(IDLE_GOODBYE, connection).await;
        }
        () = shutdown.cancelled() => {
            connection.as_mut().graceful_shutdown();
            let _ = connection.await;
        }
    }
}

/// One of the router's pages as a response.
fn render(page: Page) -> Response<ProxyBody> {
    let mut response = self::page(page.status, &page.text);
    if let Some(location) = page.location.and_then(|l| HeaderValue::from_str(&l).ok()) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    if let Some(seconds) = page.retry_after {
        response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn page(status: StatusCode, text: &str) -> Response<ProxyBody> {
    let mut response = Response::new(Full::new(Bytes::from(format!("{text}\n"))).map_err(|e| match e {}).boxed());
    *response.status_mut() = status;
    response.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; charset=utf-8"));
    response
}

/// What is known of a request once it is answered.
struct AccessLine<'a> {
    app: &'a skiff_api::AppName,
    method: &'a str,
    path: &'a str,
    host: &'a str,
    request_id: &'a str,
    client: std::net::IpAddr,
    status: u16,
    started: std::time::Instant,
    /// The side of the app's canary the request went to.
    canary: Option<crate::table::CanaryPick>,
}

impl Proxy {
    /// Counts an answered request in its app's metrics and sends its access line.
    fn log_access(&self, line: &AccessLine<'_>) {
        let AccessLine { app, method, path, host, request_id, client, status, started, canary } = *line;
        let took = started.elapsed();
        let upstream_error = status == StatusCode::BAD_GATEWAY || status == StatusCode::GATEWAY_TIMEOUT;
        self.shared.config.metrics.record(self.index, app, status, took, upstream_error);
        if let Some(pick) = canary {
            self.shared.config.canary_counts.record(app, pick, status, took);
        }
        if let Some(access) = &self.access {
            let level = if status >= 500 { "error" } else { "info" };
            let took = took.as_millis();
            let sent = access.send(app, |line| {
                write!(
                    line,
                    "at={level} method={method} path=\"{path}\" host={host} request_id={request_id} fwd=\"{client}\" status={status} service={took}ms"
                )?;
                match canary {
                    Some(pick) => write!(line, " canary={}", pick.arm),
                    None => Ok(()),
                }
            });
            if !sent {
                self.shared.config.metrics.access_line_dropped();
            }
        }
    }

    /// Whether `address` is one of the trusted proxies.
    fn trusts(&self, address: std::net::IpAddr) -> bool {
        self.shared.config.trusted_proxies.iter().any(|proxy| proxy.contains(address))
    }

    /// The client the router believes a request comes from (see [`policy::client_address`]).
    fn client_address<'a>(&self, forwarded: impl Iterator<Item = &'a [u8]>, origin: &Origin) -> std::net::IpAddr {
        policy::client_address(&self.shared.config.trusted_proxies, origin.peer.ip(), origin.trusted, forwarded)
    }

    async fn handle(&self, request: Request<ClientBody>, origin: &Origin) -> Response<ProxyBody> {
        let started = std::time::Instant::now();
        let entry = &origin.entry;
        // Two Host headers leave the app to guess which one the client meant.
        if request.headers().get_all(header::HOST).iter().nth(1).is_some() {
            return page(StatusCode::BAD_REQUEST, "a request names its host once: it has two Host headers");
        }
        let forwarded = request.headers().get_all(X_FORWARDED_FOR).into_iter().map(HeaderValue::as_bytes);
        let client = self.client_address(forwarded, origin);
        // Header values share the request's bytes: kept without copying them.
        let host_value = request.headers().get(header::HOST).cloned().unwrap_or_else(|| {
            let authority = request.uri().authority().map_or("", |a| a.as_str());
            HeaderValue::from_str(authority).unwrap_or(HeaderValue::from_static(""))
        });
        let host = host_value.to_str().unwrap_or("");
        let method = request.method().clone();
        // Kept as the client's header value when it passes on, made once otherwise.
        let given_id = request.headers().get(X_REQUEST_ID);
        let request_id = match policy::request_id(given_id.map(HeaderValue::as_bytes), &mut [0; 32]) {
            policy::RequestId::Given(_) => given_id.cloned().expect("a given id is the client's"),
            policy::RequestId::Made(made) => HeaderValue::from_str(made).expect("hex digits are a header value"),
        };
        let request_id_text = request_id.to_str().unwrap_or_default();
        let path_and_query = request.uri().path_and_query().cloned();
        let path = path_and_query.as_ref().map_or("/", |p| p.as_str());
        let table = self.shared.table.load();
        let facts = policy::Facts { host, path, client, https: entry.https, https_port: self.shared.https_port };
        let mut canary = None;
        let (app, mut response, hsts) = match policy::decide(&table, &facts) {
            // The router's own endpoints answer on any host that is not an app's.
            Decision::Router(Endpoint::Metrics) => {
                let mut response = page(StatusCode::OK, self.shared.config.metrics.render().trim_end());
                response
                    .headers_mut()
                    .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
                return response;
            }
            Decision::Router(Endpoint::Live) => return page(StatusCode::OK, "ok"),
            // A router that has not heard from the controller yet knows no app.
            Decision::Router(Endpoint::Ready) if table.version == 0 => {
                return page(StatusCode::SERVICE_UNAVAILABLE, "route table: not received from the controller yet");
            }
            Decision::Router(Endpoint::Ready) => return page(StatusCode::OK, "route table ok"),
            Decision::Router(Endpoint::NoApp) => return render(policy::no_app(host)),
            Decision::Challenge(answer) => return page(StatusCode::OK, answer),
            Decision::Answer { app, page, hsts } => (app, render(page), hsts),
            Decision::Forward { app, backends, max_body, hsts } => {
                canary = backends.canary();
                let target = Target {
                    host: &host_value,
                    client,
                    path,
                    backends,
                    origin,
                    app: app.as_str(),
                    request_id: &request_id,
                    max_body,
                };
                (app, self.forward(request, target).await, hsts)
            }
        };
        if hsts > 0
            && let Ok(value) = HeaderValue::from_str(&format!("max-age={hsts}"))
        {
            response.headers_mut().insert(header::STRICT_TRANSPORT_SECURITY, value);
        }
        let line = AccessLine {
            app,
            method: method.as_str(),
            path,
            host,
            request_id: request_id_text,
            client,
            status: response.status().as_u16(),
            started,
            canary,
        };
        self.log_access(&line);
        response
    }

    async fn forward(&self, mut request: Request<ClientBody>, target: Target<'_>) -> Response<ProxyBody> {
        let Target { host, client, path, backends, origin, app, request_id, max_body } = target;
        let declared = request.headers().get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
        if let (Some(limit), Some(length)) = (max_body, declared)
            && length > limit
        {
            return render(policy::failure_page(app, Failure::BodyTooLarge(limit)));
        }
        // Upstreams speak HTTP/1.1, whatever the client spoke; an HTTP/2 request names its
        // host in `:authority`, which becomes `Host`. gRPC needs HTTP/2 (and trailers) end
        // to end: it goes to the app over HTTP/2 with prior knowledge.
        // `Via` names the protocol the request came in with (RFC 9110 §7.6.3).
        let via = if request.version() == http::Version::HTTP_2 { "2 skiff" } else { "1.1 skiff" };
        let grpc = request.version() == http::Version::HTTP_2
            && request
                .headers()
                .get(header::CONTENT_TYPE)
                .is_some_and(|t| t.as_bytes().starts_with(b"application/grpc"));
        if !grpc {
            *request.version_mut() = http::Version::HTTP_11;
        }
        if !request.headers().contains_key(header::HOST) {
            request.headers_mut().insert(header::HOST, host.clone());
        }
        // An Upgrade (WebSocket and the like) keeps its Connection and Upgrade headers and
        // becomes a tunnel once the app answers 101.
        let upgrade = request.headers().get(header::UPGRADE).cloned();
        let client_upgrade = upgrade.is_some().then(|| hyper::upgrade::on(&mut request));
        let headers = request.headers_mut();
        let mut given = policy::Given::default();
        for (name, value) in headers.iter() {
            given.note(name.as_str(), value.as_bytes());
        }
        // Copied: the header map changes below.
        let forwarded_for = given.forwarded_for.map(<[u8]>::to_vec);
        let given = policy::Given { forwarded_for: forwarded_for.as_deref(), ..given };
        let forwarding = origin.forwarding(
            host.to_str().unwrap_or_default(),
            client,
            given,
            request_id.to_str().unwrap_or_default(),
            via,
        );
        let known = Known { peer: &origin.address, port: &origin.entry.port, host, request_id };
        edit_request_headers(headers, &forwarding, &known);
        if let Some(protocol) = upgrade {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, protocol);
        }
        if grpc {
            // The one `TE` HTTP/2 allows, and gRPC servers require.
            headers.insert(header::TE, HeaderValue::from_static("trailers"));
        }
        // A request without a body can be sent again: when a backend refuses the connection
        // (its container just stopped), or dies before answering an idempotent request (its
        // node is gone), the app's next backend gets it. One with a body is never sent twice.
        let replayable = client_upgrade.is_none() && request.body().is_end_stream();
        let resend = Resend::of(replayable, request.method().is_idempotent());
        let carrier = match (grpc, replayable) {
            (true, _) => Carrier::H2c,
            (false, true) => Carrier::Plain,
            (false, false) => Carrier::Hyper,
        };
        let limit = max_body.map_or(usize::MAX, |l| usize::try_from(l).unwrap_or(usize::MAX));
        let request = request.map(|body| Either::Left(Limited::new(body, limit)));
        let mut request = request;
        if !grpc && request.uri().scheme().is_some() {
            // HTTP/1.1 apps get the origin form (`/path?query`) an HTTP/2 client's
            // `:scheme` and `:authority` are not part of.
            *request.uri_mut() = origin_form(request.uri());
        }
        let response_timeout = self.shared.config.response_timeout;
        // The request goes through the attempts: a copy without a body is kept for the next
        // backend while the request may go again.
        let attempt = |backend: SocketAddr, again: bool, next: Option<Request<UpstreamBody>>| async move {
            let Some(mut request) = next else {
                return (Err(UpstreamError::exchange("the request went to an earlier backend")), None);
            };
            if grpc {
                // The HTTP/2 client picks its connection by the absolute form.
                match format!("http://{backend}{path}").parse::<Uri>() {
                    Ok(uri) => *request.uri_mut() = uri,
                    Err(error) => return (Err(UpstreamError::exchange(error)), None),
                }
            }
            let (head, body) = request.into_parts();
            let next = again.then(|| Request::from_parts(head.clone(), Either::Right(Empty::new())));
            (self.exchange(backend, Request::from_parts(head, body), carrier).await, next)
        };
        let client_failed = |error: &UpstreamError| client_body_failed(error);
        let timer =
            AnswerTimer { timeout: response_timeout, timer: std::pin::pin!(tokio::time::sleep(response_timeout)) };
        let (Tried { answer, backend, outstanding }, _) =
            try_backends(app, &backends, timer, resend, Some(request), attempt, client_failed).await;
        match answer {
            Ok(mut response) if response.status() == StatusCode::SWITCHING_PROTOCOLS => {
                let upstream_upgrade = hyper::upgrade::on(&mut response);
                if let Some(client_upgrade) = client_upgrade {
                    self.tunnel(client_upgrade, upstream_upgrade, app.to_owned());
                }
                response.map(BodyExt::boxed)
            }
            Ok(response) => {
                let (mut parts, body) = response.into_parts();
                strip_hop_by_hop(&mut parts.headers);
                // Outstanding until the answer's body is done (or dropped).
                let body = body.map_frame(move |frame| {
                    let _ = &outstanding;
                    frame
                });
                Response::from_parts(parts, body.boxed())
            }
            Err(Unanswered::TimedOut) => render(policy::failure_page(app, Failure::TimedOut(response_timeout))),
            Err(Unanswered::Failed(error)) if body_over_limit(&error) => {
                render(policy::failure_page(app, Failure::BodyTooLarge(max_body.unwrap_or_default())))
            }
            Err(Unanswered::Failed(error)) if client_body_failed(&error) => {
                tracing::debug!(%error, app, "router.request_body");
                render(policy::failure_page(app, Failure::ClientBody))
            }
            Err(Unanswered::Failed(error)) => {
                tracing::warn!(%error, app, %backend, "router.upstream");
                render(policy::failure_page(app, Failure::NoAnswer))
            }
        }
    }

    /// Sends a request to `backend` by `carrier`.
    async fn exchange(
        &self,
        backend: SocketAddr,
        request: Request<UpstreamBody>,
        carrier: Carrier,
    ) -> Result<Response<AnswerBody>, UpstreamError> {
        match carrier {
            Carrier::H2c => match self.h2c.request(request).await {
                Ok(response) => Ok(response.map(|body| Either::Right(Either::Left(body)))),
                Err(error) if error.is_connect() => Err(UpstreamError::connect(error)),
                Err(error) => Err(UpstreamError::exchange(error)),
            },
            Carrier::Plain => {
                let (parts, _) = request.into_parts();
                let mut head = Vec::with_capacity(512);
                let target = parts.uri.path_and_query().map_or("/", |p| p.as_str());
                for part in [parts.method.as_str(), " ", target, " HTTP/1.1\r\n"] {
                    head.extend_from_slice(part.as_bytes());
                }
                for (name, value) in &parts.headers {
                    relay::field_line(&mut head, name.as_str().as_bytes(), value.as_bytes());
                }
                head.extend_from_slice(b"\r\n");
                let mut connection = self.upstreams.send_plain(backend, &head, parts.method.is_idempotent()).await?;
                let bodiless = parts.method == http::Method::HEAD;
                let (answer, response) = crate::upstream::read_answer(&mut connection, bodiless, |answer, fields| {
                    let mut response = Response::new(());
                    *response.status_mut() = answer.status;
                    let headers = response.headers_mut();
                    headers.reserve(fields.len());
                    for field in fields.iter().filter(|f| answer.passes_on(f.name)) {
                        if let (Ok(name), Ok(value)) =
                            (HeaderName::from_bytes(field.name.as_bytes()), HeaderValue::from_bytes(field.value))
                        {
                            headers.append(name, value);
                        }
                    }
                    response
                })
                .await
                .map_err(UpstreamError::exchange)?;
                let body = PlainBody::new(connection, &answer, self.upstreams.clone(), backend);
                Ok(response.map(|()| Either::Right(Either::Right(body))))
            }
            Carrier::Hyper => Ok(self.upstreams.send(backend, request).await?.map(Either::Left)),
        }
    }

    /// Copies bytes both ways between an upgraded client connection and the upgraded
    /// upstream one until either side closes, nothing moves for the idle timeout, or the
    /// router shuts down.
    fn tunnel(&self, client: hyper::upgrade::OnUpgrade, upstream: hyper::upgrade::OnUpgrade, app: String) {
        let shutdown = self.shared.shutdown.clone();
        let idle_timeout = self.shared.config.idle_timeout;
        self.tasks.spawn(async move {
            let (client, upstream) = match tokio::try_join!(client, upstream) {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::debug!(%error, app, "router.upgrade");
                    return;
                }
            };
            let activity = crate::idle::Activity::new();
            let mut client = crate::idle::Watched::new(TokioIo::new(client), activity.clone());
            let mut upstream = TokioIo::new(upstream);
            tokio::select! {
                result = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {
                    if let Err(error) = result {
                        tracing::debug!(%error, app, "router.tunnel");
                    }
                }
                () = activity.idle_for(idle_timeout) => tracing::debug!(app, "router.tunnel: idle"),
                () = shutdown.cancelled() => {}
            }
        });
    }
}

/// Whether a request failed because its body went past the app's limit.
fn body_over_limit(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source()).any(|e| e.is::<http_body_util::LengthLimitError>())
}

/// Whether a request failed because the client's body did (a malformed chunk, a client
/// that went away mid-body) rather than the app.
fn client_body_failed(error: &(dyn std::error::Error + 'static)) -> bool {
    std::iter::successors(Some(error), |e| e.source())
        .any(|e| e.downcast_ref::<hyper::Error>().is_some_and(hyper::Error::is_user))
}

/// `uri` without its scheme and authority.
fn origin_form(uri: &Uri) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.path_and_query =
        Some(uri.path_and_query().cloned().unwrap_or_else(|| http::uri::PathAndQuery::from_static("/")));
    Uri::from_parts(parts).unwrap_or_else(|_| Uri::from_static("/"))
}

/// The app's request headers from the client's, as the policy says: the fields that
/// describe the connection (those `Connection` names too) or that the router sets go, and
/// the router's are added, with the values `known` has ready made. The relay writes the
/// same edits as bytes (`relay::write_app_head`).
fn edit_request_headers(headers: &mut http::HeaderMap, forwarding: &Forwarding<'_>, known: &Known<'_>) {
    strip_connection_named(headers);
    if headers.keys().any(|name| policy::drops(name.as_str(), forwarding.trusted)) {
        let dropped: Vec<HeaderName> =
            headers.keys().filter(|name| policy::drops(name.as_str(), forwarding.trusted)).cloned().collect();
        for name in dropped {
            headers.remove(name);
        }
    }
    // Room for the headers added, in one growth of the map at most.
    headers.reserve(8);
    for (field, value) in policy::added(forwarding) {
        let value = match value {
            policy::Value::Peer => known.peer.clone(),
            policy::Value::Port => known.port.clone(),
            policy::Value::Host => known.host.clone(),
            policy::Value::Scheme(scheme) => HeaderValue::from_static(scheme),
            policy::Value::Via => HeaderValue::from_static(forwarding.via),
            policy::Value::RequestId => known.request_id.clone(),
            policy::Value::Text(text) => match HeaderValue::try_from(text) {
                Ok(value) => value,
                Err(_) => continue,
            },
        };
        headers.append(field_name(field), value);
    }
}

/// The header values hyper's path has ready for the fields the router adds.
struct Known<'a> {
    peer: &'a HeaderValue,
    port: &'a HeaderValue,
    host: &'a HeaderValue,
    request_id: &'a HeaderValue,
}

/// A field's name, made once.
fn field_name(field: policy::Field) -> HeaderName {
    const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
    const X_FORWARDED_PORT: HeaderName = HeaderName::from_static("x-forwarded-port");
    const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
    const X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");
    match field {
        policy::Field::ForwardedFor => X_FORWARDED_FOR,
        policy::Field::ForwardedProto => X_FORWARDED_PROTO,
        policy::Field::ForwardedPort => X_FORWARDED_PORT,
        policy::Field::ForwardedHost => X_FORWARDED_HOST,
        policy::Field::RealIp => X_REAL_IP,
        policy::Field::Via => header::VIA,
        policy::Field::RequestId => X_REQUEST_ID,
    }
}

/// Removes the headers a `Connection` header names.
fn strip_connection_named(headers: &mut http::HeaderMap) {
    if !headers.contains_key(header::CONNECTION) {
        return;
    }
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
}

/// Removes from an app's answer the headers that describe its connection to the router.
fn strip_hop_by_hop(headers: &mut http::HeaderMap) {
    // Most answers carry none: one look at the names before any removal.
    if !headers.keys().any(|name| policy::HOP_BY_HOP.contains(&name.as_str())) {
        return;
    }
    strip_connection_named(headers);
    for name in policy::HOP_BY_HOP {
        headers.remove(name);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The app's head fields as the relay writes them for a client head with `fields`.
    fn by_relay(fields: &[(&str, &str)], forwarding: &Forwarding<'_>) -> Vec<(String, String)> {
        let parsed: Vec<httparse::Header<'_>> =
            fields.iter().map(|(name, value)| httparse::Header { name, value: value.as_bytes() }).collect();
        let mut out = Vec::new();
        relay::write_app_head(&mut out, "GET", "/", &parsed, forwarding);
        let mut slots = [httparse::EMPTY_HEADER; 64];
        let mut head = httparse::Request::new(&mut slots);
        assert!(head.parse(&out).unwrap().is_complete(), "{}", String::from_utf8_lossy(&out));
        head.headers.iter().map(|f| (f.name.to_ascii_lowercase(), String::from_utf8_lossy(f.value).into())).collect()
    }

    /// The same through hyper's path.
    fn by_hyper(fields: &[(&str, &str)], forwarding: &Forwarding<'_>) -> Vec<(String, String)> {
        let mut headers = http::HeaderMap::new();
        for (name, value) in fields {
            headers.append(HeaderName::from_bytes(name.as_bytes()).unwrap(), HeaderValue::from_str(value).unwrap());
        }
        let value = |bytes: &[u8]| HeaderValue::from_bytes(bytes).unwrap();
        let (peer, port, host) =
            (value(forwarding.peer_text), value(forwarding.port), value(forwarding.host.as_bytes()));
        let request_id = value(forwarding.request_id.as_bytes());
        let known = Known { peer: &peer, port: &port, host: &host, request_id: &request_id };
        edit_request_headers(&mut headers, forwarding, &known);
        headers.iter().map(|(name, value)| (name.as_str().to_owned(), value.to_str().unwrap().to_owned())).collect()
    }

    /// Sorted by name, each name's values in order.
    fn normalised(mut fields: Vec<(String, String)>) -> Vec<(String, String)> {
        fields.sort_by(|a, b| a.0.cmp(&b.0));
        fields
    }

    #[test]
    fn both_engines_forward_the_same_head() {
        let peer: std::net::IpAddr = [10, 0, 0, 1].into();
        let outside: std::net::IpAddr = [203, 0, 113, 9].into();
        type Fields<'a> = &'a [(&'a str, &'a str)];
        /// What, trusted, over HTTPS, the client, the client's fields; fields the app must get.
        type Case<'a> = (&'a str, bool, bool, std::net::IpAddr, Fields<'a>, Fields<'a>);
        #[rustfmt::skip]
        let cases: &[Case<'_>] = &[
            ("a plain request", false, false, peer, &[("host", "shop.test"), ("accept", "*/*")],
                &[("x-forwarded-proto", "http"), ("x-real-ip", "10.0.0.1")]),
            ("spoofed forwarded headers from a stranger", false, true, peer,
                &[("host", "shop.test"), ("x-forwarded-for", "1.2.3.4"), ("x-forwarded-proto", "http"),
                  ("x-forwarded-host", "evil.test"), ("x-real-ip", "1.2.3.4"), ("forwarded", "for=1.2.3.4"),
                  ("x-forwarded-port", "1")],
                &[("x-forwarded-for", "10.0.0.1"), ("x-forwarded-proto", "https"), ("x-forwarded-host", "shop.test")]),
            ("a trusted proxy's headers", true, false, outside,
                &[("host", "shop.test"), ("x-forwarded-for", "203.0.113.9"), ("x-forwarded-proto", "https"),
                  ("forwarded", "for=203.0.113.9")],
                &[("x-forwarded-for", "203.0.113.9, 10.0.0.1"), ("x-forwarded-proto", "https"),
                  ("x-real-ip", "203.0.113.9"), ("forwarded", "for=203.0.113.9")]),
            ("hop-by-hop fields", false, false, peer,
                &[("host", "shop.test"), ("connection", "keep-alive"), ("keep-alive", "timeout=5"),
                  ("proxy-authorization", "Basic eA=="), ("proxy-connection", "keep-alive"), ("trailer", "x")],
                &[("x-forwarded-port", "8080")]),
            ("the client's ids and vias", false, false, peer,
                &[("host", "shop.test"), ("x-request-id", "abc"), ("x-request-id", "def"), ("via", "1.1 edge")],
                &[("x-request-id", "abc"), ("via", "1.1 edge")]),
            ("repeated fields keep their order", false, false, peer,
                &[("host", "shop.test"), ("cookie", "a=1"), ("cookie", "b=2"), ("accept", "text/html")],
                &[("cookie", "a=1")]),
        ];
        for (what, trusted, https, client, fields, expected) in cases {
            let mut given = policy::Given::default();
            for (name, value) in *fields {
                given.note(name, value.as_bytes());
            }
            let id = fields.iter().find(|(n, _)| *n == "x-request-id").map(|(_, v)| v.as_bytes());
            let mut room = [0; 32];
            let request_id = policy::request_id(id, &mut room);
            let forwarding = Forwarding {
                trusted: *trusted,
                https: *https,
                peer,
                peer_text: b"10.0.0.1",
                port: b"8080",
                host: "shop.test",
                client: *client,
                given,
                request_id: &request_id,
                via: "1.1 skiff",
            };
            let relayed = normalised(by_relay(fields, &forwarding));
            assert_eq!(relayed, normalised(by_hyper(fields, &forwarding)), "{what}");
            for (name, value) in *expected {
                assert!(relayed.iter().any(|(n, v)| n == name && v == value), "{what}: {name}: {value} in {relayed:?}");
            }
            for dropped in ["connection", "keep-alive", "proxy-authorization", "proxy-connection", "trailer"] {
                assert!(!relayed.iter().any(|(n, _)| n == dropped), "{what}: {dropped} in {relayed:?}");
            }
            let once = |name: &str| relayed.iter().filter(|(n, _)| n == name).count();
            assert_eq!((once("x-forwarded-for"), once("x-real-ip"), once("x-request-id")), (1, 1, 1), "{what}");
            if !trusted {
                assert_eq!(once("forwarded"), 0, "{what}: a stranger's Forwarded goes");
            }
        }
    }
}
