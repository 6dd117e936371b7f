//! HTTP/1.1 load, plain or over TLS, open loop by default: requests leave on a fixed
//! schedule whatever the server does, and each one's latency counts from when it was due,
//! not from when it could be sent.
//!
//! A closed-loop client (wrk, h2load, ab) sends the next request when the last answer came
//! back, so a server that stalls is asked less and the stall hides from its percentiles
//! ("coordinated omission"). Here request `i` of the run is due at `start + i / rate`, on
//! keep-alive connection `i mod connections`; a connection whose last request is still
//! out sends the next as soon as that one is answered, and the wait counts in the next
//! one's latency (as wrk2 does). One thread, one epoll set, timeouts in nanoseconds: the
//! client sends on time (its own lateness is reported beside the latencies) and uses a
//! small part of a core at the rates the benchmarks ask for.
//!
//! `--rate 0` is closed loop instead (each connection asks again as soon as it is
//! answered: a server's maximum), and `--reconnect` makes a connection for every request
//! (over TLS a full handshake each, or a resumed one with `--resume`): handshakes per
//! second.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::num::NonZeroU64;
use std::os::fd::AsFd as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rustix::event::{Timespec, epoll};

use crate::report::Report;
use crate::response;
use crate::tls::{self, Tls};
use crate::websocket;

/// What `skiff-load http` is asked to do.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// `http://HOST:PORT/PATH`, or `https://` (with `--ca`): HTTP/1.1, keep-alive.
    pub url: String,
    /// Requests per second, offered whatever the answers do; 0 for closed loop (each
    /// connection asks again as soon as it is answered).
    #[arg(long)]
    pub rate: f64,
    /// Keep-alive connections the requests are spread over.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Seconds measured.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    /// Seconds of load before measuring (connections and caches warm up).
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Extra request headers, `Name: value` (for example `Host: app.example.com`, which
    /// is also the name TLS asks for).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
    /// A new connection for every request.
    #[arg(long)]
    pub reconnect: bool,
    /// PEM certificates to trust, for `https://`.
    #[arg(long)]
    pub ca: Option<std::path::PathBuf>,
    /// The TLS version: 1.2 or 1.3 (without it, both, and the server picks).
    #[arg(long)]
    pub tls_version: Option<String>,
    /// Resume TLS sessions (tickets, or session ids with TLS 1.2) on new connections.
    #[arg(long)]
    pub resume: bool,
    /// Upgrade each connection to a WebSocket at the URL's path and send binary messages
    /// instead of requests; each answer is the message's echo.
    #[arg(long)]
    pub websocket: bool,
    /// The size of each WebSocket message, in bytes.
    #[arg(long, default_value_t = 32)]
    pub message_size: usize,
}

/// How long requests still out at the end may take before they count as errors.
const LAST_ANSWERS: Duration = Duration::from_secs(2);

/// Where to connect, and the request to send there.
struct Target {
    address: SocketAddr,
    /// What each request (or WebSocket message) sends.
    request: Vec<u8>,
    tls: Option<Tls>,
    /// For WebSockets: the host and path to upgrade at.
    websocket: Option<(String, String)>,
}

impl Target {
    fn new(options: &Options) -> anyhow::Result<Self> {
        let (https, rest) = match (options.url.strip_prefix("http://"), options.url.strip_prefix("https://")) {
            (Some(rest), _) => (false, rest),
            (_, Some(rest)) => (true, rest),
            _ => bail!("the URL must start with http:// or https://"),
        };
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let address = authority
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {authority} (give HOST:PORT)"))?
            .next()
            .with_context(|| format!("{authority} has no address"))?;
        let host = options
            .headers
            .iter()
            .find_map(|h| h.split_once(':').filter(|(name, _)| name.eq_ignore_ascii_case("host")))
            .map(|(_, value)| value.trim().to_owned());
        let mut request = format!("GET {path} HTTP/1.1\r\n");
        if host.is_none() {
            request.push_str(&format!("Host: {authority}\r\n"));
        }
        for header in &options.headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        let tls = match (https, &options.ca) {
            (false, _) => None,
            (true, None) => bail!("https:// needs --ca, the certificates to trust"),
            (true, Some(ca)) => {
                let name = host.clone().unwrap_or_else(|| address.ip().to_string());
                Some(Tls::new(ca, &name, options.tls_version.as_deref(), options.resume, options.connections)?)
            }
        };
        if !options.websocket {
            return Ok(Self { address, request: request.into_bytes(), tls, websocket: None });
        }
        if https || options.reconnect {
            bail!("WebSockets are measured over plain kept-alive connections (no https://, no --reconnect)");
        }
        let host = host.unwrap_or_else(|| authority.to_owned());
        let message = websocket::message(options.message_size);
        Ok(Self { address, request: message, tls, websocket: Some((host, path.to_owned())) })
    }
}

/// One keep-alive connection and the request it has out.
struct Connection {
    stream: TcpStream,
    /// The TLS session, for `https://`.
    session: Option<rustls::ClientConnection>,
    /// Requests this connection has sent: the next is the run's request
    /// `sent * connections + index`.
    sent: u64,
    /// When the request out was due.
    out: Option<Instant>,
    /// Since when no request has been out.
    free_since: Instant,
    read: Vec<u8>,
}

/// When the run's request `number` is due.
fn due(start: Instant, rate: f64, number: u64) -> Instant {
    start + Duration::from_secs_f64(number as f64 / rate)
}

fn timespec(duration: Duration) -> Timespec {
    Timespec { tv_sec: duration.as_secs() as _, tv_nsec: duration.subsec_nanos() as _ }
}

/// Runs the load and says what it measured.
pub fn run(options: &Options) -> anyhow::Result<Report> {
    let positive = |value: f64| value.is_finite() && value > 0.0;
    let closed_loop = options.rate == 0.0;
    if !(closed_loop || positive(options.rate)) || options.connections == 0 || !positive(options.duration) {
        bail!("the rate must be 0 (closed loop) or above, the connections and duration above zero");
    }
    if !options.warmup.is_finite() || options.warmup < 0.0 {
        bail!("the warm-up is at least zero");
    }
    let target = Target::new(options)?;
    // Timers as precise as the kernel allows: sends are due every few microseconds.
    let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(1));
    let poll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let connect = |index: usize| -> anyhow::Result<(TcpStream, Option<rustls::ClientConnection>)> {
        let mut stream =
            TcpStream::connect(target.address).with_context(|| format!("cannot connect to {}", target.address))?;
        stream.set_nodelay(true)?;
        if let Some((host, path)) = &target.websocket {
            websocket::upgrade(&mut stream, host, path)?;
        }
        stream.set_nonblocking(true)?;
        epoll::add(&poll, stream.as_fd(), epoll::EventData::new_u64(index as u64), epoll::EventFlags::IN)?;
        Ok((stream, target.tls.as_ref().map(|tls| tls.session(index)).transpose()?))
    };
    let mut connections = (0..options.connections)
        .map(|index| {
            let (stream, session) = connect(index)?;
            let (free_since, read) = (Instant::now(), Vec::with_capacity(4096));
            Ok(Connection { stream, session, sent: 0, out: None, free_since, read })
        })
        .collect::<anyhow::Result<Vec<_>>>()?;

    let count = options.connections as u64;
    let start = Instant::now();
    let measure_from = start + Duration::from_secs_f64(options.warmup);
    let end = measure_from + Duration::from_secs_f64(options.duration);
    let mut report = Report { offered_rate: options.rate, measured: end - measure_from, ..Report::default() };
    let mut events = Vec::with_capacity(options.connections.min(1024));
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let now = Instant::now();
        let mut wake = end + LAST_ANSWERS;
        let mut busy = false;
        for (index, connection) in connections.iter_mut().enumerate() {
            if connection.out.is_some() {
                busy = true;
                continue;
            }
            let at = if closed_loop { now } else { due(start, options.rate, connection.sent * count + index as u64) };
            if at >= end {
                continue;
            }
            busy = true;
            if at > now {
                wake = wake.min(at);
                continue;
            }
            // The client's own lateness: only where the connection was free when the
            // request was due (otherwise the wait was for the server's last answer).
            if at >= measure_from && connection.free_since <= at && !closed_loop {
                report.lateness.push((now - at).as_nanos() as u64);
            }
            match &mut connection.session {
                Some(session) => tls::send(session, &mut connection.stream, &target.request)?,
                None => send(&mut connection.stream, &target.request)?,
            }
            connection.sent += 1;
            connection.out = Some(at);
        }
        if !busy {
            break;
        }
        if now >= end + LAST_ANSWERS {
            report.errors += connections.iter().filter(|c| c.out.is_some_and(|at| at >= measure_from)).count() as u64;
            break;
        }
        events.clear();
        let timeout = timespec(wake.saturating_duration_since(now));
        match epoll::wait(&poll, rustix::buffer::spare_capacity(&mut events), Some(&timeout)) {
            Ok(_) => {}
            Err(rustix::io::Errno::INTR) => continue,
            Err(error) => return Err(error.into()),
        }
        for event in &events {
            let index = event.data.u64() as usize;
            let connection = &mut connections[index];
            let open = read_answers(connection, &mut chunk, target.websocket.is_some(), measure_from, &mut report);
            if !open || (options.reconnect && connection.out.is_none()) {
                // The server closed it (or broke it): what was out failed. Connect again
                // (and so, with --reconnect, after every answer).
                if connection.out.take().is_some_and(|at| at >= measure_from) {
                    report.errors += 1;
                }
                connection.free_since = Instant::now();
                let _ = epoll::delete(&poll, connection.stream.as_fd());
                (connection.stream, connection.session) = connect(index)?;
                connection.read.clear();
                report.reconnects += 1;
            }
        }
    }
    report.sort();
    Ok(report)
}

/// Writes a whole request. Requests are a few hundred bytes on a connection with nothing
/// else to send: the socket buffer takes them at once, but a full one is waited out.
fn send(stream: &mut TcpStream, request: &[u8]) -> anyhow::Result<()> {
    let mut written = 0;
    while written < request.len() {
        match stream.write(&request[written..]) {
            Ok(n) => written += n,
            Err(error) if error.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(error) => return Err(error).context("cannot send a request"),
        }
    }
    Ok(())
}

/// Reads what arrived and takes every whole answer from it; whether the connection stays
/// open (not closed by the server, no error, nothing that is not HTTP).
fn read_answers(
    connection: &mut Connection,
    chunk: &mut [u8],
    echoes: bool,
    measure_from: Instant,
    report: &mut Report,
) -> bool {
    let received = match &mut connection.session {
        Some(session) => tls::receive(session, &mut connection.stream, &mut connection.read, chunk),
        None => match connection.stream.read(chunk) {
            Ok(0) => false,
            Ok(n) => {
                connection.read.extend_from_slice(&chunk[..n]);
                true
            }
            Err(error) => error.kind() == ErrorKind::WouldBlock || error.kind() == ErrorKind::Interrupted,
        },
    };
    if !received {
        return false;
    }
    loop {
        let parsed = match echoes {
            true => websocket::parse(&connection.read)
                .map(|echo| echo.map(|length| response::Response { status: 200, length, closes: false })),
            false => response::parse(&connection.read),
        };
        let answer = match parsed {
            Ok(Some(answer)) => answer,
            Ok(None) => return true,
            Err(_) => return false,
        };
        let now = Instant::now();
        connection.read.drain(..answer.length);
        // An answer nothing asked for is as wrong as a broken one.
        let Some(at) = connection.out.take() else { return false };
        let resumed =
            connection.session.as_ref().and_then(|s| s.handshake_kind()) == Some(rustls::HandshakeKind::Resumed);
        connection.free_since = now;
        if at >= measure_from {
            if answer.status >= 500 {
                report.errors += 1;
            } else {
                report.latencies.push((now - at).as_nanos() as u64);
                report.resumed += u64::from(resumed);
            }
        }
        if answer.closes {
            return false;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::BufRead as _;
    use std::net::TcpListener;
    use std::sync::Arc;

    use super::*;

    /// A server answering every request at once, except that it answers nothing during
    /// `stall` (from its start).
    fn stalling_server(stall: std::ops::Range<Duration>) -> SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let started = Arc::new(std::sync::OnceLock::<Instant>::new());
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let (stream, started, stall) = (stream.unwrap(), started.clone(), stall.clone());
                std::thread::spawn(move || {
                    let start = *started.get_or_init(Instant::now);
                    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                    let mut writer = stream;
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if line == "\r\n" {
                            let elapsed = start.elapsed();
                            if stall.contains(&elapsed) {
                                std::thread::sleep(stall.end - elapsed);
                            }
                            let _ = writer.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                        }
                        line.clear();
                    }
                });
            }
        });
        address
    }

    fn options(address: SocketAddr, rate: f64) -> Options {
        Options {
            url: format!("http://{address}/"),
            rate,
            connections: 4,
            duration: 1.0,
            warmup: 0.0,
            headers: vec!["Host: app.example.com".to_owned()],
            reconnect: false,
            ca: None,
            tls_version: None,
            resume: false,
            websocket: false,
            message_size: 32,
        }
    }

    #[test]
    fn every_scheduled_request_is_sent_and_answered() {
        let address = stalling_server(Duration::ZERO..Duration::ZERO);
        let report = run(&options(address, 500.0)).unwrap();
        assert_eq!((report.latencies.len(), report.errors), (500, 0), "{report}");
        assert!(report.to_string().contains("achieved=500"), "{report}");
    }

    #[test]
    fn a_stall_shows_in_the_latency_of_every_request_due_during_it() {
        // A closed-loop client would see four slow answers (one per connection); here the
        // 300 ms stall delays the ~150 requests due while it lasts.
        let address = stalling_server(Duration::from_millis(300)..Duration::from_millis(600));
        let report = run(&options(address, 500.0)).unwrap();
        assert_eq!(report.latencies.len(), 500, "{report}");
        let slow = report.latencies.iter().filter(|&&l| l > 50_000_000).count();
        assert!((100..=170).contains(&slow), "{slow} slow answers: {report}");
        assert!(report.latencies[report.latencies.len() / 2] < 50_000_000, "most are fast: {report}");
    }

    #[test]
    fn bad_targets_are_refused_with_the_reason() {
        let address = stalling_server(Duration::ZERO..Duration::ZERO);
        let other = run(&Options { url: "ftp://127.0.0.1:1/".to_owned(), ..options(address, 1.0) });
        assert!(other.unwrap_err().to_string().contains("http:// or https://"));
        let untrusted = run(&Options { url: format!("https://{address}/"), ..options(address, 1.0) });
        assert!(untrusted.unwrap_err().to_string().contains("--ca"));
        let nobody = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let error = run(&options(nobody, 1.0)).unwrap_err();
        assert!(format!("{error:#}").contains("cannot connect"), "{error:#}");
    }

    /// An HTTPS server for `app.example.com` answering every request at once; its
    /// certificate's PEM, and a count of the handshakes that resumed a session.
    fn tls_server() -> (SocketAddr, tempfile_pem::Pem, Arc<std::sync::atomic::AtomicUsize>) {
        use rustls::pki_types::pem::PemObject as _;
        let certified = rcgen::generate_simple_self_signed(vec!["app.example.com".to_owned()]).unwrap();
        let pem = tempfile_pem::Pem::new(&certified.cert.pem());
        let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(certified.signing_key.serialize_pem().as_bytes());
        let config =
            rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_no_client_auth()
                .with_single_cert(vec![certified.cert.der().clone()], key.unwrap())
                .unwrap();
        let config = Arc::new(config);
        let resumed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        let counted = resumed.clone();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let (config, counted) = (config.clone(), counted.clone());
                std::thread::spawn(move || {
                    let session = rustls::ServerConnection::new(config).unwrap();
                    let mut tls = rustls::StreamOwned::new(session, stream.unwrap());
                    let mut reader = std::io::BufReader::new(&mut tls);
                    let mut line = String::new();
                    while reader.read_line(&mut line).is_ok_and(|n| n > 0) {
                        if line == "\r\n" {
                            let tls = reader.get_mut();
                            if tls.conn.handshake_kind() == Some(rustls::HandshakeKind::Resumed) {
                                counted.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            }
                            let _ = tls.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok");
                        }
                        line.clear();
                    }
                });
            }
        });
        (address, pem, resumed)
    }

    /// A PEM file that is removed when dropped.
    mod tempfile_pem {
        pub struct Pem(pub std::path::PathBuf);

        impl Pem {
            pub fn new(text: &str) -> Self {
                let path = std::env::temp_dir().join(format!(
                    "skiff-load-{}-{:?}.pem",
                    std::process::id(),
                    std::thread::current().id()
                ));
                std::fs::write(&path, text).unwrap();
                Self(path)
            }
        }

        impl Drop for Pem {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    #[test]
    fn https_requests_go_over_kept_alive_or_new_and_resumed_sessions() {
        let (address, ca, resumed) = tls_server();
        let https = |version: Option<&str>, reconnect: bool, resume: bool| Options {
            url: format!("https://{address}/"),
            ca: Some(ca.0.clone()),
            tls_version: version.map(str::to_owned),
            reconnect,
            resume,
            duration: 0.5,
            ..options(address, 0.0)
        };
        for version in [None, Some("1.2"), Some("1.3")] {
            let kept = run(&https(version, false, false)).unwrap();
            assert!(kept.latencies.len() > 50 && kept.errors == 0 && kept.reconnects == 0, "{kept}");
        }
        let full = run(&https(Some("1.3"), true, false)).unwrap();
        assert!(full.latencies.len() > 10 && full.errors == 0, "{full}");
        assert!(full.reconnects as usize >= full.latencies.len(), "a connection per request: {full}");
        assert_eq!(resumed.load(std::sync::atomic::Ordering::Relaxed), 0, "no session resumed");
        for version in ["1.2", "1.3"] {
            let before = resumed.load(std::sync::atomic::Ordering::Relaxed);
            let again = run(&https(Some(version), true, true)).unwrap();
            assert!(again.latencies.len() > 10 && again.errors == 0, "{again}");
            let resumptions = resumed.load(std::sync::atomic::Ordering::Relaxed) - before;
            assert!(resumptions * 2 > again.latencies.len(), "TLS {version}: {resumptions} resumed: {again}");
            assert!(again.resumed.abs_diff(resumptions as u64) <= 4, "the client counts them too: {again}");
        }
        let bad = run(&Options { tls_version: Some("1.1".to_owned()), ..https(None, false, false) });
        assert!(bad.unwrap_err().to_string().contains("1.2 or 1.3"));
    }

    /// A WebSocket server echoing every (short) message, answering the upgrade with
    /// `accept` for the accept key (`None`: the right one) after the head `status_line`.
    fn echo_server(status_line: &'static str, accept: Option<&'static str>) -> SocketAddr {
        use base64::Engine as _;
        use sha1::Digest as _;
        use std::io::Read as _;
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let mut stream = stream.unwrap();
                std::thread::spawn(move || {
                    let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                    let (mut line, mut key) = (String::new(), String::new());
                    while reader.read_line(&mut line).is_ok_and(|n| n > 2) {
                        if let Some(value) = line.strip_prefix("Sec-WebSocket-Key:") {
                            key = value.trim().to_owned();
                        }
                        line.clear();
                    }
                    let right = base64::engine::general_purpose::STANDARD
                        .encode(sha1::Sha1::digest(format!("{key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11")));
                    let answer = format!("{status_line}\r\nSec-WebSocket-Accept: {}\r\n\r\n", accept.unwrap_or(&right));
                    stream.write_all(answer.as_bytes()).unwrap();
                    let mut header = [0u8; 6];
                    while reader.read_exact(&mut header).is_ok() {
                        let mut payload = vec![0u8; usize::from(header[1] & 0x7f)];
                        reader.read_exact(&mut payload).unwrap();
                        let mut echo = vec![0x82, payload.len() as u8];
                        echo.extend(payload.iter().enumerate().map(|(i, b)| b ^ header[2 + i % 4]));
                        let _ = stream.write_all(&echo);
                    }
                });
            }
        });
        address
    }

    #[test]
    fn websocket_messages_are_echoed_on_schedule() {
        let address = echo_server("HTTP/1.1 101 Switching Protocols", None);
        let websocket = |size| Options { websocket: true, message_size: size, ..options(address, 500.0) };
        for size in [0, 32, 125] {
            let report = run(&websocket(size)).unwrap();
            assert_eq!((report.latencies.len(), report.errors), (500, 0), "{size} bytes: {report}");
        }
        let refused = run(&Options { websocket: true, ..options(echo_server("HTTP/1.1 200 OK", None), 1.0) });
        assert!(format!("{:#}", refused.unwrap_err()).contains("did not upgrade"));
        let forged = echo_server("HTTP/1.1 101 Switching Protocols", Some("x"));
        let forged = run(&Options { websocket: true, ..options(forged, 1.0) });
        assert!(format!("{:#}", forged.unwrap_err()).contains("Sec-WebSocket-Accept"));
    }
}
