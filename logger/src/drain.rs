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

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use skiff_api::{Drain, DrainProtocol, DrainStatus, DrainTarget, LogLine, LogSource};
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, mpsc, watch};
use tokio_util::sync::CancellationToken;

/// Lines sent in one write or one HTTP request at most.
const MAX_BATCH: usize = 500;
/// How long a connect, a write or an HTTP answer may take.
const IO_TIMEOUT: Duration = Duration::from_secs(15);
/// The longest wait between retries of a failing drain.
const MAX_BACKOFF: Duration = Duration::from_secs(60);
/// How often the set of drains is read from the controller.
const FOLLOW_INTERVAL: Duration = Duration::from_secs(2);

/// Reads trusted roots for TLS drains: the system's, plus the PEM certificates in
/// `extra_ca` (for drains behind a private CA). A drain that presents one of the `extra_ca`
/// certificates itself is trusted too, even when that certificate is marked as a CA (as
/// `openssl req -x509` makes self-signed ones), which the usual checks refuse.
///
/// # Errors
/// When `extra_ca` cannot be read or holds no certificate.
pub fn tls_config(extra_ca: Option<&std::path::Path>) -> Result<Arc<rustls::ClientConfig>, String> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    let system = rustls_native_certs::load_native_certs();
    roots.add_parsable_certificates(system.certs);
    let mut pinned = Vec::new();
    if let Some(path) = extra_ca {
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
            .and_then(Iterator::collect)
            .map_err(|e| format!("cannot read CA certificates from {}: {e}", path.display()))?;
        if certs.is_empty() {
            return Err(format!("{} holds no PEM certificate", path.display()));
        }
        roots.add_parsable_certificates(certs.iter().cloned());
        pinned = certs;
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let webpki = rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
        .build()
        .map_err(|e| format!("no usable trusted certificate: {e}"))?;
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustedOrPinned { webpki, pinned }))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// The usual certificate checks, and besides them: a drain that presents, as its own
/// certificate, exactly one the operator trusts (`SKIFF_LOGGER_DRAIN_CA`) is trusted.
/// The handshake's signatures are checked the usual way either way.
#[derive(Debug)]
struct TrustedOrPinned {
    webpki: Arc<rustls::client::WebPkiServerVerifier>,
    pinned: Vec<rustls::pki_types::CertificateDer<'static>>,
}

impl rustls::client::danger::ServerCertVerifier for TrustedOrPinned {
    fn verify_server_cert(
        &self,
        end_entity: &rustls::pki_types::CertificateDer<'_>,
        intermediates: &[rustls::pki_types::CertificateDer<'_>],
        server_name: &rustls::pki_types::ServerName<'_>,
        ocsp_response: &[u8],
        now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        match self.webpki.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now) {
            Err(_) if self.pinned.iter().any(|pinned| pinned.as_ref() == end_entity.as_ref()) => {
                Ok(rustls::client::danger::ServerCertVerified::assertion())
            }
            checked => checked,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls12_signature(message, cert, signature)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls::pki_types::CertificateDer<'_>,
        signature: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        self.webpki.verify_tls13_signature(message, cert, signature)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.webpki.supported_verify_schemes()
    }
}

/// A failed TLS handshake with a drain, in words an operator can act on.
fn handshake_failure(error: &std::io::Error) -> String {
    use rustls::{CertificateError, Error};
    let trust = "; trust its CA, or the drain's own certificate, with SKIFF_LOGGER_DRAIN_CA";
    let Some(Error::InvalidCertificate(refused)) = error.get_ref().and_then(|e| e.downcast_ref::<Error>()) else {
        return format!("TLS handshake failed: {error}");
    };
    match refused {
        CertificateError::UnknownIssuer => format!("the drain's certificate is not signed by a trusted CA{trust}"),
        // webpki's CaUsedAsEndEntity reaches rustls as an `Other` error.
        CertificateError::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
            format!("the drain presents a CA certificate as its own (a self-signed one made as a CA){trust}")
        }
        refused => format!("the drain's certificate is refused: {refused}"),
    }
}

/// One running drain.
struct Running {
    drain: Drain,
    queue: mpsc::Sender<LogLine>,
    counters: Arc<Counters>,
    stop: CancellationToken,
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
    tls: Arc<rustls::ClientConfig>,
    queue_capacity: usize,
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
        f.debug_struct("Drains").field("queue_capacity", &self.queue_capacity).finish_non_exhaustive()
    }
}

impl Drains {
    /// No drains yet; each added drain queues at most `queue_capacity` lines. Deliveries
    /// stop at `shutdown`.
    pub fn new(tls: Arc<rustls::ClientConfig>, queue_capacity: usize, shutdown: CancellationToken) -> Arc<Self> {
        Arc::new(Self {
            running: RwLock::new(HashMap::new()),
            tls,
            queue_capacity: queue_capacity.max(1),
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

    /// Queues a line for every drain that wants it; never waits.
    pub fn offer(&self, line: &LogLine) {
        let running = self.running.read().unwrap_or_else(std::sync::PoisonError::into_inner);
        for drain in running.values() {
            if drain.drain.app.as_ref().is_some_and(|app| *app != line.app) {
                continue;
            }
            if drain.queue.try_send(line.clone()).is_err() {
                drain.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
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
            let (queue, lines) = mpsc::channel(self.queue_capacity);
            let counters = Arc::new(Counters::default());
            let stop = self.shutdown.child_token();
            let delivery = Delivery { target, tls: self.tls.clone(), counters: counters.clone() };
            tokio::spawn(delivery.run(lines, stop.clone()));
            tracing::info!(id = drain.id, url = %drain.url, "logger.drain.start");
            running.insert(drain.id, Running { drain, queue, counters, stop });
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

struct Delivery {
    target: DrainTarget,
    tls: Arc<rustls::ClientConfig>,
    counters: Arc<Counters>,
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

    async fn send(&self, connection: &mut Option<Connection>, batch: &[LogLine]) -> Result<(), String> {
        if connection.is_none() {
            *connection = Some(self.connect().await?);
        }
        let frames: String = batch.iter().map(frame).collect();
        match connection.as_mut().expect("connected above") {
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

    async fn connect(&self) -> Result<Connection, String> {
        let address = (self.target.host.as_str(), self.target.port);
        let tcp = tokio::time::timeout(IO_TIMEOUT, TcpStream::connect(address))
            .await
            .map_err(|_| "connect timed out".to_owned())?
            .map_err(|e| format!("cannot connect: {e}"))?;
        let _ = tcp.set_nodelay(true);
        let stream: Box<dyn Stream> = if self.target.protocol.tls() {
            let name = rustls::pki_types::ServerName::try_from(self.target.host.clone())
                .map_err(|e| format!("not a TLS server name: {e}"))?;
            let connector = tokio_rustls::TlsConnector::from(self.tls.clone());
            let tls = tokio::time::timeout(IO_TIMEOUT, connector.connect(name, tcp))
                .await
                .map_err(|_| "TLS handshake timed out".to_owned())?
                .map_err(|e| handshake_failure(&e))?;
            Box::new(tls)
        } else {
            Box::new(tcp)
        };
        match self.target.protocol {
            DrainProtocol::Syslog | DrainProtocol::SyslogTls => Ok(Connection::Syslog(stream)),
            DrainProtocol::Http | DrainProtocol::Https => {
                let (sender, driver) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                    .await
                    .map_err(|e| format!("HTTP handshake failed: {e}"))?;
                tokio::spawn(async move {
                    if let Err(error) = driver.await {
                        tracing::debug!(%error, "logger.drain.http.closed");
                    }
                });
                Ok(Connection::Http(sender))
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
