//! The logger's syslog listeners driven by util-linux `logger(1)` and by hostile bytes,
//! read back through the HTTP API.

mod corpus;
mod drains;
mod rsyslog;
mod shared;

use std::net::SocketAddr;
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use skiff_api::LogLine;
use skiff_logger::Buffers;
use skiff_logger::syslog::Ingest;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio_util::sync::CancellationToken;

struct Logger {
    syslog: SocketAddr,
    api: SocketAddr,
    shutdown: CancellationToken,
}

impl Drop for Logger {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The platform's service token, which the logger's API requires.
const SERVICE_TOKEN: &str = "service-token-for-tests";

async fn logger() -> Logger {
    let buffers = Arc::new(Buffers::new(1000));
    let ingest = Ingest::new(buffers.clone(), skiff_logger::syslog::DEFAULT_MAX_MESSAGE);
    let tcp = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let syslog = tcp.local_addr().unwrap();
    let udp = UdpSocket::bind(syslog).await.unwrap();
    let api = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let api_address = api.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    tokio::spawn(skiff_logger::syslog::serve_udp(udp, ingest.clone(), shutdown.clone()));
    tokio::spawn(skiff_logger::syslog::serve_tcp(tcp, None, ingest, shutdown.clone()));
    let readiness = skiff_service::Readiness::new();
    tokio::spawn(skiff_logger::http::serve(api, buffers, SERVICE_TOKEN, readiness, shutdown.clone()));
    Logger { syslog, api: api_address, shutdown }
}

async fn lines(logger: &Logger, app: &str) -> Vec<LogLine> {
    let url = format!("http://{}/v2/apps/{app}/logs?n=1000", logger.api);
    let request = reqwest::Client::new().get(url).bearer_auth(SERVICE_TOKEN);
    request.send().await.unwrap().json().await.unwrap()
}

/// Polls until `app` has `count` lines (bounded).
async fn wait_for(logger: &Logger, app: &str, count: usize) -> Vec<LogLine> {
    let enough = || async {
        let found = lines(logger, app).await;
        (found.len() >= count).then_some(found)
    };
    match skiff_testing::eventually(Duration::from_secs(5), enough).await {
        Some(found) => found,
        None => lines(logger, app).await,
    }
}

fn logger_cli(logger: &Logger, args: &[&str], message: &str) {
    let port = logger.syslog.port().to_string();
    let status = Command::new("logger")
        .args(["-n", "127.0.0.1", "-P", &port])
        .args(args)
        .arg(message)
        .status()
        .expect("util-linux logger runs (apt-get install bsdutils)");
    assert!(status.success(), "logger {args:?}");
}

#[tokio::test]
async fn util_linux_logger_reaches_the_app_stream_in_every_format() {
    let logger = logger().await;
    let cases: [(&[&str], &str); 5] = [
        (&["-d", "--rfc5424", "-t", "shop.web.1"], "udp rfc5424"),
        (&["-d", "--rfc3164", "-t", "shop.web.2"], "udp rfc3164"),
        (&["-T", "--rfc5424", "-t", "shop.worker.1"], "tcp rfc5424 newline"),
        (&["-T", "--octet-count", "--rfc5424", "-t", "shop.worker.2"], "tcp rfc5424 octet counted"),
        (&["-T", "--octet-count", "--rfc3164", "-t", "shop.router"], "tcp rfc3164 octet counted"),
    ];
    for (args, message) in cases {
        logger_cli(&logger, args, message);
    }
    let found = wait_for(&logger, "shop", cases.len()).await;
    for (args, message) in cases {
        let tag = args[args.len() - 1];
        let process = tag.split_once('.').unwrap().1;
        assert!(
            found.iter().any(|l| l.message == message && l.process == process),
            "{message} as {process}: {found:?}"
        );
    }
    let router = found.iter().find(|l| l.process == "router").unwrap();
    assert_eq!(router.source, skiff_api::LogSource::Router);
}

#[tokio::test]
async fn hostile_bytes_cost_only_their_own_connection() {
    let logger = logger().await;
    // Random bytes, an invalid octet count, a huge one, a frame cut short, and a client that
    // never sends a newline: each is dropped or counted, and nobody else is disturbed.
    let mut quiet = TcpStream::connect(logger.syslog).await.unwrap();
    quiet.write_all(b"<13>partial message without an end").await.unwrap();
    for garbage in [
        &b"\x00\xff\xfe random \x01\x02\n"[..],
        b"0 <13>zero length\n",
        b"99999999999 <13>huge\n",
        b"12x <13>not a number\n",
        b"40 <13>1 - - shop.web.1 - - - cut short",
    ] {
        let mut stream = TcpStream::connect(logger.syslog).await.unwrap();
        stream.write_all(garbage).await.unwrap();
        stream.shutdown().await.unwrap();
    }
    let mut big = TcpStream::connect(logger.syslog).await.unwrap();
    let mut line = b"<13>shop.web.9: ".to_vec();
    line.extend(std::iter::repeat_n(b'x', 10 << 20));
    line.push(b'\n');
    big.write_all(&line).await.unwrap();
    big.shutdown().await.unwrap();
    let udp = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    udp.send_to(b"\xc3\x28 invalid utf-8 \xff", logger.syslog).await.unwrap();

    logger_cli(&logger, &["-T", "--octet-count", "--rfc5424", "-t", "shop.web.1"], "still here");
    let found = wait_for(&logger, "shop", 1).await;
    assert!(found.iter().any(|l| l.message == "still here"), "{found:?}");
    let long = found.iter().find(|l| l.process == "web.9").expect("the long line's start is kept");
    assert!(long.message.ends_with(skiff_logger::syslog::TRUNCATED), "and marked as cut");
    assert!(long.message.len() <= skiff_logger::syslog::DEFAULT_MAX_MESSAGE + skiff_logger::syslog::TRUNCATED.len());
    let metrics = reqwest::get(format!("http://{}/metrics", logger.api)).await.unwrap().text().await.unwrap();
    let rejected = metrics.lines().find_map(|l| l.strip_prefix("skiff_logger_rejected_total ")).unwrap();
    assert!(rejected.parse::<u64>().unwrap() >= 4, "rejections are counted: {metrics}");
    drop(quiet);
}

#[tokio::test]
async fn the_api_answers_only_the_platform() {
    let logger = logger().await;
    let http = reqwest::Client::new();
    for path in ["/v2/apps/shop/logs", "/v2/drains"] {
        let url = format!("http://{}{path}", logger.api);
        assert_eq!(http.get(&url).send().await.unwrap().status(), 401, "{path} without a token");
        assert_eq!(http.get(&url).bearer_auth("a-user-token").send().await.unwrap().status(), 401, "{path}");
    }
    let sync = http.post(format!("http://{}/v2/drains/sync", logger.api)).send().await.unwrap();
    assert_eq!(sync.status(), 401);
    let logs = http.get(format!("http://{}/v2/apps/shop/logs", logger.api)).bearer_auth(SERVICE_TOKEN);
    assert_eq!(logs.send().await.unwrap().status(), 200);
    for open in ["/healthz", "/metrics"] {
        assert_eq!(http.get(format!("http://{}{open}", logger.api)).send().await.unwrap().status(), 200, "{open}");
    }
    logger.shutdown.cancel();
}
