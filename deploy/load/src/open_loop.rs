//! Open-loop HTTP/1.1 load: requests leave on a fixed schedule whatever the server does,
//! and each one's latency counts from when it was due, not from when it could be sent.
//!
//! A closed-loop client (wrk, h2load, ab) sends the next request when the last answer came
//! back, so a server that stalls is asked less and the stall hides from its percentiles
//! ("coordinated omission"). Here request `i` of the run is due at `start + i / rate`, on
//! keep-alive connection `i mod connections`; a connection whose last request is still
//! out sends the next as soon as that one is answered, and the wait counts in the next
//! one's latency (as wrk2 does). One thread, one epoll set, timeouts in nanoseconds: the
//! client sends on time (its own lateness is reported beside the latencies) and uses a
//! small part of a core at the rates the benchmarks ask for.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs as _};
use std::num::NonZeroU64;
use std::os::fd::AsFd as _;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rustix::event::{Timespec, epoll};

use crate::report::Report;
use crate::response;

/// What `skiff-load http` is asked to do.
#[derive(Debug, clap::Args)]
pub struct Options {
    /// `http://HOST:PORT/PATH`: plain HTTP/1.1, keep-alive.
    pub url: String,
    /// Requests per second, offered whatever the answers do.
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
    /// Extra request headers, `Name: value` (for example `Host: app.example.com`).
    #[arg(long = "header", short = 'H')]
    pub headers: Vec<String>,
}

/// How long requests still out at the end may take before they count as errors.
const LAST_ANSWERS: Duration = Duration::from_secs(2);

/// Where to connect, and the request to send there.
struct Target {
    address: SocketAddr,
    request: Vec<u8>,
}

impl Target {
    fn new(options: &Options) -> anyhow::Result<Self> {
        let rest = options.url.strip_prefix("http://").context("the URL must start with http://")?;
        let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
        let path = if path.is_empty() { "/" } else { path };
        let address = authority
            .to_socket_addrs()
            .with_context(|| format!("cannot resolve {authority} (give HOST:PORT)"))?
            .next()
            .with_context(|| format!("{authority} has no address"))?;
        let has_host = options.headers.iter().any(|h| h.to_ascii_lowercase().starts_with("host:"));
        let mut request = format!("GET {path} HTTP/1.1\r\n");
        if !has_host {
            request.push_str(&format!("Host: {authority}\r\n"));
        }
        for header in &options.headers {
            request.push_str(header);
            request.push_str("\r\n");
        }
        request.push_str("\r\n");
        Ok(Self { address, request: request.into_bytes() })
    }
}

/// One keep-alive connection and the request it has out.
struct Connection {
    stream: TcpStream,
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
    if !positive(options.rate) || options.connections == 0 || !positive(options.duration) || options.warmup < 0.0 {
        bail!("the rate, connections and duration must be above zero, the warm-up at least zero");
    }
    let target = Target::new(options)?;
    // Timers as precise as the kernel allows: sends are due every few microseconds.
    let _ = rustix::thread::set_current_timer_slack(NonZeroU64::new(1));
    let poll = epoll::create(epoll::CreateFlags::CLOEXEC)?;
    let connect = |index: usize| -> anyhow::Result<TcpStream> {
        let stream =
            TcpStream::connect(target.address).with_context(|| format!("cannot connect to {}", target.address))?;
        stream.set_nodelay(true)?;
        stream.set_nonblocking(true)?;
        epoll::add(&poll, stream.as_fd(), epoll::EventData::new_u64(index as u64), epoll::EventFlags::IN)?;
        Ok(stream)
    };
    let mut connections = (0..options.connections)
        .map(|index| {
            let stream = connect(index)?;
            Ok(Connection { stream, sent: 0, out: None, free_since: Instant::now(), read: Vec::with_capacity(4096) })
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
            let at = due(start, options.rate, connection.sent * count + index as u64);
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
            if at >= measure_from && connection.free_since <= at {
                report.lateness.push((now - at).as_nanos() as u64);
            }
            send(&mut connection.stream, &target.request)?;
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
            let open = read_answers(connection, &mut chunk, measure_from, &mut report);
            if !open {
                // The server closed it (or broke it): what was out failed; connect again.
                if connection.out.take().is_some_and(|at| at >= measure_from) {
                    report.errors += 1;
                }
                connection.free_since = Instant::now();
                let _ = epoll::delete(&poll, connection.stream.as_fd());
                connection.stream = connect(index)?;
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
fn read_answers(connection: &mut Connection, chunk: &mut [u8], measure_from: Instant, report: &mut Report) -> bool {
    match connection.stream.read(chunk) {
        Ok(0) => return false,
        Ok(n) => connection.read.extend_from_slice(&chunk[..n]),
        Err(error) if error.kind() == ErrorKind::WouldBlock || error.kind() == ErrorKind::Interrupted => return true,
        Err(_) => return false,
    }
    loop {
        let answer = match response::parse(&connection.read) {
            Ok(Some(answer)) => answer,
            Ok(None) => return true,
            Err(_) => return false,
        };
        let now = Instant::now();
        connection.read.drain(..answer.length);
        // An answer nothing asked for is as wrong as a broken one.
        let Some(at) = connection.out.take() else { return false };
        connection.free_since = now;
        if at >= measure_from {
            if answer.status >= 500 {
                report.errors += 1;
            } else {
                report.latencies.push((now - at).as_nanos() as u64);
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
        let refused = run(&Options {
            url: "https://127.0.0.1:1/".to_owned(),
            ..options(stalling_server(Duration::ZERO..Duration::ZERO), 1.0)
        });
        assert!(refused.unwrap_err().to_string().contains("http://"));
        let nobody = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
        let error = run(&options(nobody, 1.0)).unwrap_err();
        assert!(format!("{error:#}").contains("cannot connect"), "{error:#}");
    }
}
