//! Drains: every line of an app (or, for a platform-wide drain, of every app) forwarded to
//! a syslog server over TCP or TLS, or POSTed in batches to an HTTP(S) endpoint.
//!
//! Ingestion never waits for a drain: each drain has a bounded queue, and a line that
//! finds it full is dropped and counted. A delivery that fails keeps its batch and is
//! retried with backoff (1 s doubling to a minute), so a drain that comes back receives
//! what was queued while it was away. The set of drains follows the controller: read every
//! couple of seconds, and at once when the controller asks (`POST /v2/drains/sync`, after
//! a drain is added or removed), so that a drain gets every line taken in after
//! `drains:add` returns.
//!
//! An app's drain reaches only addresses the outbound guard allows (checked for every
//! address its name resolves to, when it connects), and sends at most so many lines a
//! second. A drain that delivers into this logger's own syslog port (a platform drain, or
//! one the operator allowed there) is recognised by its connection and not taken in
//! again, so no line goes round.

pub use skiff_service::outbound::tls_config;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use skiff_api::{Drain, DrainProtocol, DrainStatus, DrainTarget, LogLine, LogSource, OutboundPolicy};
use skiff_service::outbound;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Lines sent in one write or one HTTP request at most.
const MAX_BATCH: usize = 500;
/// How long a connect, a write or an HTTP answer may take.
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest wait between retries of a failing drain.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// A drain, as TLS refusals name it.
const DRAIN: outbound::Peer = outbound::Peer { what: "the drain", ca_setting: "SKIFF_LOGGER_DRAIN_CA" };
/// How often the set of drains is read from the controller.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(2);

/// How drains deliver.
#[derive(Debug, Clone)]
pub struct DrainOptions {
    /// TLS client settings ([`tls_config`]).
    pub tls: Arc<rustls::ClientConfig>,
    /// Lines a drain may queue while it is slow or down.
    pub queue_capacity: usize,
    /// Which addresses an app's drains may reach; platform drains may reach any.
    pub outbound: OutboundPolicy,
    /// Lines a second an app's drain may send (bursts up to a second's worth); platform
    /// drains are not limited.
    pub lines_per_second: u32,
}

/// One running drain.
struct Running {
    drain: Drain,
    queue: mpsc::Sender<LogLine>,
    counters: Arc<Counters>,
    stop: CancellationToken,
    /// An app drain's rate limit.
    limit: Option<Mutex<Bucket>>,
}

/// A token bucket: `rate` lines a second, at most a second's worth saved up.
struct Bucket {
    tokens: f64,
    last: Instant,
    rate: f64,
}

impl Bucket {
    fn new(rate: u32) -> Self {
        let rate = f64::from(rate.max(1));
        Self { tokens: rate, last: Instant::now(), rate }
    }

    /// Whether one more line may go now.
    fn take(&mut self, now: Instant) -> bool {
        self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.rate);
        self.last = now;
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// The local addresses of this logger's own drain connections: a syslog connection coming
/// from one of them is a drain delivering into this logger.
#[derive(Debug, Default)]
struct OwnConnections(Mutex<HashSet<SocketAddr>>);

impl OwnConnections {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<SocketAddr>> {
        self.0.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Keeps a connection's local address in [`OwnConnections`] while the connection lives.
struct Registered {
    address: SocketAddr,
    own: Arc<OwnConnections>,
}

impl Drop for Registered {
    fn drop(&mut self) {
        self.own.lock().remove(&self.address);
    }
}

#[derive(Default)]
struct Counters {
    delivered: AtomicU64,
    dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

impl Counters {
    fn failed(&self, error: Option<String>) {
        *self.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner) = error;
    }
}

/// The drains the logger forwards to.
pub struct Drains {
    running: RwLock<HashMap<i64, Running>>,
    options: DrainOptions,
    own: Arc<OwnConnections>,
    shutdown: CancellationToken,
    /// Reads of the controller's drains asked for so far.
    asked: AtomicU64,
    /// Wakes the follower for a read.
    ask: Notify,
    /// The number of asked reads the newest applied read covers.
    applied: watch::Sender<u64>,
}

impl std::fmt::Debug for Drains {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Drains").field("options", &self.options).finish_non_exhaustive()
    }
}

impl Drains {
    /// No drains yet. Deliveries stop at `shutdown`.
    pub fn new(options: DrainOptions, shutdown: CancellationToken) -> Arc<Self> {
        let options = DrainOptions { queue_capacity: options.queue_capacity.max(1), ..options };
        Arc::new(Self {
            running: RwLock::new(HashMap::new()),
            options,
            own: Arc::default(),
            shutdown,
            asked: AtomicU64::new(0),
            ask: Notify::new(),
            applied: watch::Sender::new(0),
        })
    }

    /// Asks the follower to read the drains from the controller now; `true` once a read
    /// that began after this call is applied, `false` if none was within `limit`.
    pub async fn sync(&self, limit: Duration) -> bool {
        let ticket = self.asked.fetch_add(1, Ordering::SeqCst) + 1;
        self.ask.notify_one();
        let mut applied = self.applied.subscribe();
        matches!(tokio::time::timeout(limit, applied.wait_for(|done| *done >= ticket)).await, Ok(Ok(_)))
    }

    /// Queues a line for every drain that wants it; never waits. A line over an app
    /// drain's rate, or that finds its queue full, is dropped and counted.
    pub fn offer(&self, line: &LogLine) {
        let running = self.running.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let now = Instant::now();
        for drain in running.values() {
            if drain.drain.app.as_ref().is_some_and(|app| *app != line.app) {
                continue;
            }
            let within_rate = drain
                .limit
                .as_ref()
                .is_none_or(|bucket| bucket.lock().unwrap_or_else(std::sync::PoisonError::into_inner).take(now));
            if !within_rate || drain.queue.try_send(line.clone()).is_err() {
                drain.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Whether a connection from `peer` is one of this logger's own drains delivering
    /// into it.
    pub fn is_own(&self, peer: SocketAddr) -> bool {
        self.own.lock().contains(&peer)
    }

    /// Makes `wanted` the set of drains: new ones start, missing ones stop (dropping what
    /// they had queued), and unchanged ones keep their queue and counters.
    pub fn set(&self, wanted: Vec<Drain>) {
        let mut running = self.running.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        running.retain(|id, drain| {
            let keep = wanted.iter().any(|w| w.id == *id && w.url == drain.drain.url && w.app == drain.drain.app);
            if !keep {
                drain.stop.cancel();
            }
            keep
        });
        for drain in wanted {
            if running.contains_key(&drain.id) {
                continue;
            }
            let target = match DrainTarget::parse(&drain.url) {
                Ok(target) => target,
                Err(error) => {
                    tracing::warn!(id = drain.id, %error, "logger.drain.invalid");
                    continue;
                }
            };
            let (queue, lines) = mpsc::channel(self.options.queue_capacity);
            let counters = Arc::new(Counters::default());
            let stop = self.shutdown.child_token();
            // Platform drains, set by admins, may point anywhere and are not limited.
            let app_drain = drain.app.is_some();
            let delivery = Delivery {
                target,
                tls: self.options.tls.clone(),
                counters: counters.clone(),
                guard: app_drain.then(|| self.options.outbound.clone()),
                own: self.own.clone(),
            };
            tokio::spawn(delivery.run(lines, stop.clone()));
            tracing::info!(id = drain.id, url = %drain.url, "logger.drain.start");
            let limit = app_drain.then(|| Mutex::new(Bucket::new(self.options.lines_per_second)));
            running.insert(drain.id, Running { drain, queue, counters, stop, limit });
        }
    }

    /// Every drain's deliveries, by id.
    pub fn status(&self) -> Vec<DrainStatus> {
        let running = self.running.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut status: Vec<DrainStatus> = running
            .iter()
            .map(|(id, drain)| DrainStatus {
                id: *id,
                delivered: drain.counters.delivered.load(Ordering::Relaxed),
                dropped: drain.counters.dropped.load(Ordering::Relaxed),
                queued: (drain.queue.max_capacity() - drain.queue.capacity()) as u64,
                last_error: drain.counters.last_error.lock().unwrap_or_else(std::sync::PoisonError::into_inner).clone(),
            })
            .collect();
        status.sort_by_key(|s| s.id);
        status
    }
}

/// Reads the set of drains from the controller every couple of seconds, and when asked
/// ([`Drains::sync`]), until `shutdown`. While the controller is away the drains keep
/// running as they were.
pub async fn follow(client: skiff_client::Client, drains: Arc<Drains>, shutdown: CancellationToken) {
    let mut reported = false;
    loop {
        // Every ask made before this read began is answered by it.
        let covers = drains.asked.load(Ordering::SeqCst);
        match client.drain_targets().await {
            Ok(wanted) => {
                reported = false;
                drains.set(wanted);
                drains.applied.send_modify(|done| *done = (*done).max(covers));
            }
            Err(error) if !reported => {
                reported = true;
                tracing::warn!(%error, "logger.drain.follow: keeping the drains as they are");
            }
            Err(_) => {}
        }
        tokio::select! {
            () = tokio::time::sleep(FOLLOW_INTERVAL) => {}
            () = drains.ask.notified() => {}
            () = shutdown.cancelled() => return,
        }
    }
}

/// An RFC 5424 message for a drain, octet-counted (RFC 6587): what Heroku's drains send.
pub fn frame(line: &LogLine) -> String {
    let time = if line.time.is_empty() { "-" } else { line.time.as_str() };
    let process = if line.process.is_empty() { "-" } else { line.process.as_str() };
    // local7 (23) × 8 + severity: info (6), or notice (5) for the platform's own lines.
    let priority = if line.source == LogSource::Platform { 189 } else { 190 };
    let message = format!("<{priority}>1 {time} skiff {} {process} - - {}", line.app, line.message);
    format!("{} {message}", message.len())
}

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

enum Connection {
    Syslog(Box<dyn Stream>),
    Http(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
}

/// A connection to a drain, known as this logger's own while it is open.
struct Open {
    connection: Connection,
    _own: Registered,
}

struct Delivery {
    target: DrainTarget,
    tls: Arc<rustls::ClientConfig>,
    counters: Arc<Counters>,
    /// The outbound guard, for an app's drain.
    guard: Option<OutboundPolicy>,
    own: Arc<OwnConnections>,
}

impl Delivery {
    async fn run(self, mut lines: mpsc::Receiver<LogLine>, stop: CancellationToken) {
        let mut connection = None;
        let mut batch: Vec<LogLine> = Vec::new();
        let mut backoff = Duration::from_secs(1);
        loop {
            if batch.is_empty() {
                tokio::select! {
                    line = lines.recv() => match line {
                        Some(line) => batch.push(line),
                        None => return,
                    },
                    () = stop.cancelled() => return,
                }
            }
            while batch.len() < MAX_BATCH {
                match lines.try_recv() {
                    Ok(line) => batch.push(line),
                    Err(_) => break,
                }
            }
            let sent = tokio::select! {
                sent = tokio::time::timeout(IO_TIMEOUT * 2, self.send(&mut connection, &batch)) => {
                    sent.unwrap_or_else(|_| Err("timed out".into()))
                }
                () = stop.cancelled() => return,
            };
            match sent {
                Ok(()) => {
                    self.counters.delivered.fetch_add(batch.len() as u64, Ordering::Relaxed);
                    self.counters.failed(None);
                    batch.clear();
                    backoff = Duration::from_secs(1);
                }
                Err(error) => {
                    tracing::debug!(%error, host = %self.target.host, "logger.drain.failed");
                    self.counters.failed(Some(error));
                    connection = None;
                    tokio::select! {
                        () = tokio::time::sleep(backoff) => {}
                        () = stop.cancelled() => return,
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }

    async fn send(&self, open: &mut Option<Open>, batch: &[LogLine]) -> Result<(), String> {
        if open.is_none() {
            *open = Some(self.connect().await?);
        }
        let frames: String = batch.iter().map(frame).collect();
        match &mut open.as_mut().expect("connected above").connection {
            Connection::Syslog(stream) => {
                stream.write_all(frames.as_bytes()).await.map_err(|e| format!("write failed: {e}"))?;
                stream.flush().await.map_err(|e| format!("write failed: {e}"))
            }
            Connection::Http(sender) => {
                sender.ready().await.map_err(|e| format!("connection lost: {e}"))?;
                let authority = match self.target.port {
                    80 | 443 => self.target.host.clone(),
                    port => format!("{}:{port}", self.target.host),
                };
                let mut request = hyper::Request::post(&self.target.path)
                    .header(hyper::header::HOST, authority)
                    .header(hyper::header::CONTENT_TYPE, "application/logplex-1")
                    .header("Logplex-Msg-Count", batch.len())
                    .header(hyper::header::USER_AGENT, "skiff-logger");
                if let Some(userinfo) = &self.target.userinfo {
                    use base64::Engine as _;
                    let credentials = base64::engine::general_purpose::STANDARD.encode(userinfo);
                    request = request.header(hyper::header::AUTHORIZATION, format!("Basic {credentials}"));
                }
                let request = request.body(Full::new(Bytes::from(frames))).map_err(|e| e.to_string())?;
                let response = sender.send_request(request).await.map_err(|e| format!("request failed: {e}"))?;
                let status = response.status();
                // Read the answer so that the connection can carry the next batch.
                let _ = response.into_body().collect().await;
                if status.is_success() { Ok(()) } else { Err(format!("the drain answered {status}")) }
            }
        }
    }

    async fn connect(&self) -> Result<Open, String> {
        let tcp = outbound::tcp(&self.target.host, self.target.port, self.guard.as_ref(), IO_TIMEOUT).await?;
        let local = tcp.local_addr().map_err(|e| format!("cannot connect: {e}"))?;
        self.own.lock().insert(local);
        let registered = Registered { address: local, own: self.own.clone() };
        let stream: Box<dyn Stream> = if self.target.protocol.tls() {
            Box::new(outbound::tls(tcp, &self.target.host, &self.tls, DRAIN, IO_TIMEOUT).await?)
        } else {
            Box::new(tcp)
        };
        match self.target.protocol {
            DrainProtocol::Syslog | DrainProtocol::SyslogTls => {
                Ok(Open { connection: Connection::Syslog(stream), _own: registered })
            }
            DrainProtocol::Http | DrainProtocol::Https => {
                let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| format!("HTTP handshake failed: {e}"))?;
                tokio::spawn(async move {
                    if let Err(error) = driver.await {
                        tracing::debug!(%error, "logger.drain.http.closed");
                    }
                });
                Ok(Open { connection: Connection::Http(sender), _own: registered })
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_octet_counted_rfc5424() {
        let line = LogLine {
            time: "2026-11-24T20:20:16Z".into(),
            app: "shop".parse().unwrap(),
            source: LogSource::App,
            process: "web.1a2b".into(),
            release: None,
            message: "héllo".into(),
        };
        let frame = frame(&line);
        let (count, message) = frame.split_once(' ').unwrap();
        assert_eq!(count.parse::<usize>().unwrap(), message.len(), "the count is of bytes");
        assert_eq!(message, "<190>1 2026-11-24T20:20:16Z skiff shop web.1a2b - - héllo");
    }
}
