//! The router on 127.0.0.1 with hand-made upstreams: routing answers, forwarded headers,
//! Upgrade tunnels, route changes under a kept-alive connection, and stopped backends.

mod hardening;
mod http2;
mod relay;
mod tls;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use skiff_api::{Route, RouteTable};
use skiff_router::Table;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

struct Router {
    address: SocketAddr,
    table: Arc<ArcSwap<Table>>,
    shutdown: CancellationToken,
}

impl Drop for Router {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn snapshot(version: u64, routes: &[(&str, Vec<SocketAddr>)]) -> Table {
    Table::from_snapshot(&RouteTable {
        version,
        routes: routes
            .iter()
            .map(|(app, backends)| Route {
                app: app.parse().unwrap(),
                hosts: vec![format!("{app}.localhost")],
                backends: backends.clone(),
                maintenance: false,
                tls: Default::default(),
                access: Default::default(),
                canary: None,
            })
            .collect(),
        certificates: Vec::new(),
        challenges: Vec::new(),
    })
}

async fn router(table: Table) -> Router {
    router_with(table, skiff_router::Config::default()).await
}

async fn router_with(table: Table, config: skiff_router::Config) -> Router {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let table = Arc::new(ArcSwap::from_pointee(table));
    let shutdown = CancellationToken::new();
    tokio::spawn(skiff_router::serve(listener.into(), table.clone(), config, shutdown.clone()));
    Router { address, table, shutdown }
}

/// An upstream that answers every request with its own head as the body, keeping the
/// connection alive; a request with `Upgrade` gets a 101 and then an echo of every byte.
async fn upstream(name: &'static str) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut stream = BufReader::new(stream);
                loop {
                    let mut head = String::new();
                    loop {
                        let mut line = String::new();
                        if stream.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        head.push_str(&line);
                        if line == "\r\n" {
                            break;
                        }
                    }
                    if head.to_ascii_lowercase().contains("\r\nupgrade:") {
                        let answer = "HTTP/1.1 101 Switching Protocols\r\nConnection: upgrade\r\nUpgrade: echo\r\n\r\n";
                        stream.get_mut().write_all(answer.as_bytes()).await.unwrap();
                        let mut buf = [0u8; 1024];
                        loop {
                            let n = stream.read(&mut buf).await.unwrap_or(0);
                            if n == 0 || stream.get_mut().write_all(&buf[..n]).await.is_err() {
                                return;
                            }
                        }
                    }
                    let body = format!("{name}\n{head}");
                    let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len());
                    if stream.get_mut().write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

/// Sends one GET on `stream` and reads one answer: (status, body).
async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(
    stream: &mut BufReader<S>,
    host: &str,
    extra: &str,
) -> (u16, String) {
    send(stream, &format!("GET /path?q=1 HTTP/1.1\r\nHost: {host}\r\n{extra}\r\n")).await
}

/// Sends `request` as it is on `stream` and reads one answer: (status, body).
async fn send<S: AsyncRead + AsyncWrite + Unpin>(stream: &mut BufReader<S>, request: &str) -> (u16, String) {
    stream.get_mut().write_all(request.as_bytes()).await.unwrap();
    let mut status = String::new();
    stream.read_line(&mut status).await.unwrap();
    let code = status.split_whitespace().nth(1).and_then(|c| c.parse().ok()).unwrap_or(0);
    let mut length = 0;
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            length = value.trim().parse().unwrap();
        }
        if line == "\r\n" {
            break;
        }
    }
    let mut body = vec![0u8; length];
    stream.read_exact(&mut body).await.unwrap();
    (code, String::from_utf8_lossy(&body).into_owned())
}

async fn connect(router: &Router) -> BufReader<TcpStream> {
    BufReader::new(TcpStream::connect(router.address).await.unwrap())
}

#[tokio::test]
async fn unknown_hosts_get_404_and_apps_without_backends_503() {
    let router = router(snapshot(1, &[("idle", vec![])])).await;
    let mut stream = connect(&router).await;
    let (status, body) = exchange(&mut stream, "nobody.localhost", "").await;
    assert_eq!(status, 404, "{body}");
    let (status, body) = exchange(&mut stream, "idle.localhost:8080", "").await;
    assert_eq!(status, 503);
    assert!(body.contains("no running web process"), "{body}");
    let metrics = "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";
    stream.get_mut().write_all(metrics.as_bytes()).await.unwrap();
    let mut status_line = String::new();
    stream.read_line(&mut status_line).await.unwrap();
    assert!(status_line.starts_with("HTTP/1.1 200"), "{status_line}");
}

#[tokio::test]
async fn requests_carry_forwarded_headers_and_hop_by_hop_headers_stop() {
    let app = upstream("one").await;
    let router = router(snapshot(1, &[("shop", vec![app])])).await;
    let mut stream = connect(&router).await;
    let (status, body) = exchange(
        &mut stream,
        "shop.localhost",
        "X-Forwarded-For: 6.6.6.6\r\nKeep-Alive: timeout=5\r\nX-Secret: kept\r\nForwarded: for=6.6.6.6\r\n\
         X-Real-IP: 6.6.6.6\r\n",
    )
    .await;
    assert_eq!(status, 200);
    let body = body.to_ascii_lowercase();
    assert!(body.starts_with("one\nget /path?q=1 http/1.1"), "{body}");
    assert!(body.contains("x-forwarded-for: 127.0.0.1\r\n"), "the client's own value is replaced: {body}");
    assert!(!body.contains("6.6.6.6"), "nor Forwarded nor X-Real-IP pass as the client sent them: {body}");
    assert!(body.contains("x-real-ip: 127.0.0.1\r\n"), "{body}");
    assert!(body.contains("x-forwarded-proto: http"), "{body}");
    assert!(body.contains(&format!("x-forwarded-port: {}", router.address.port())), "{body}");
    assert!(body.contains("x-forwarded-host: shop.localhost"), "{body}");
    let request_id = body.split("x-request-id: ").nth(1).and_then(|rest| rest.split("\r\n").next()).unwrap_or("");
    assert!(request_id.len() == 32 && request_id.bytes().all(|b| b.is_ascii_hexdigit()), "a new id: {body}");
    assert!(body.contains("via: 1.1 skiff"), "{body}");
    assert!(body.contains("x-secret: kept"), "{body}");
    assert!(!body.contains("keep-alive:"), "{body}");

    // Two Host headers are refused, whichever the router would have read.
    let (status, body) = exchange(&mut stream, "shop.localhost", "Host: other.localhost\r\n").await;
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("two Host headers"), "{body}");

    // A request id the client gives is passed on; each request without one gets its own.
    let (_, body) = exchange(&mut stream, "shop.localhost", "X-Request-Id: trace-7\r\n").await;
    assert!(body.to_ascii_lowercase().contains("x-request-id: trace-7\r\n"), "{body}");
    let (_, again) = exchange(&mut stream, "shop.localhost", "").await;
    assert!(!again.to_ascii_lowercase().contains(&format!("x-request-id: {request_id}")), "{again}");
}

#[tokio::test]
async fn a_trusted_proxys_forwarded_headers_are_kept_and_name_the_client() {
    let app = upstream("one").await;
    let config = skiff_router::Config { trusted_proxies: vec!["127.0.0.0/8".parse().unwrap()], ..Default::default() };
    let router = router_with(snapshot(1, &[("shop", vec![app])]), config).await;
    let mut stream = connect(&router).await;
    let forwarded = "X-Forwarded-For: 203.0.113.9, 10.0.0.1\r\nX-Forwarded-Proto: https\r\nX-Forwarded-Port: 443\r\n\
                     Forwarded: for=203.0.113.9;proto=https\r\n";
    let (status, body) = exchange(&mut stream, "shop.localhost", forwarded).await;
    assert_eq!(status, 200);
    let body = body.to_ascii_lowercase();
    assert!(body.contains("x-forwarded-for: 203.0.113.9, 10.0.0.1, 127.0.0.1\r\n"), "appended: {body}");
    assert!(body.contains("forwarded: for=203.0.113.9;proto=https\r\n"), "a trusted proxy's is kept: {body}");
    assert!(body.contains("x-real-ip: 10.0.0.1\r\n"), "the client it names: {body}");
    assert!(body.contains("x-forwarded-proto: https") && body.contains("x-forwarded-port: 443"), "{body}");

    // Access rules apply to the client the trusted proxy names, not to the proxy.
    let mut table = RouteTable { version: 2, ..RouteTable::default() };
    table.routes.push(Route {
        app: "shop".parse().unwrap(),
        hosts: vec!["shop.localhost".into()],
        backends: vec![app],
        maintenance: false,
        tls: Default::default(),
        access: skiff_api::AccessPolicy { deny: vec!["10.0.0.1".into()], ..Default::default() },
        canary: None,
    });
    router.table.store(Arc::new(Table::from_snapshot(&table)));
    let (status, body) = exchange(&mut stream, "shop.localhost", "X-Forwarded-For: 10.0.0.1\r\n").await;
    assert_eq!(status, 403, "{body}");
    assert!(body.contains("(10.0.0.1)"), "{body}");
    let (status, _) = exchange(&mut stream, "shop.localhost", "X-Forwarded-For: 10.0.0.2\r\n").await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn upgrades_become_tunnels() {
    let app = upstream("ws").await;
    let router = router(snapshot(1, &[("chat", vec![app])])).await;
    let mut stream = connect(&router).await;
    let request = "GET /socket HTTP/1.1\r\nHost: chat.localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n";
    stream.get_mut().write_all(request.as_bytes()).await.unwrap();
    let mut status = String::new();
    stream.read_line(&mut status).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 101"), "{status}");
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
    }
    for message in ["hello", "over the tunnel"] {
        stream.get_mut().write_all(message.as_bytes()).await.unwrap();
        let mut echoed = vec![0u8; message.len()];
        stream.read_exact(&mut echoed).await.unwrap();
        assert_eq!(echoed, message.as_bytes());
    }
}

#[tokio::test]
async fn a_quiet_tunnel_is_closed_after_the_idle_timeout_and_a_chatty_one_is_not() {
    let app = upstream("ws").await;
    let config = skiff_router::Config { idle_timeout: Duration::from_millis(600), ..Default::default() };
    let router = router_with(snapshot(1, &[("chat", vec![app])]), config).await;
    let mut stream = connect(&router).await;
    let request = "GET /socket HTTP/1.1\r\nHost: chat.localhost\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n";
    stream.get_mut().write_all(request.as_bytes()).await.unwrap();
    loop {
        let mut line = String::new();
        stream.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
    }
    // A message every 200 ms for 1.5 s: never 600 ms of silence.
    for _ in 0..8 {
        tokio::time::sleep(Duration::from_millis(200)).await;
        stream.get_mut().write_all(b"ping").await.unwrap();
        let mut echoed = [0u8; 4];
        stream.read_exact(&mut echoed).await.unwrap();
        assert_eq!(&echoed, b"ping", "the tunnel stays open while it is used");
    }
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "then, quiet, it is closed");
}

#[tokio::test]
async fn a_route_change_keeps_open_connections_working() {
    let (one, two) = (upstream("one").await, upstream("two").await);
    let router = router(snapshot(1, &[("shop", vec![one])])).await;
    let mut stream = connect(&router).await;
    let (_, body) = exchange(&mut stream, "shop.localhost", "").await;
    assert!(body.starts_with("one"), "{body}");
    router.table.store(Arc::new(snapshot(2, &[("shop", vec![two])])));
    for _ in 0..3 {
        let (status, body) = exchange(&mut stream, "shop.localhost", "").await;
        assert_eq!(status, 200);
        assert!(body.starts_with("two"), "the same connection follows the new table: {body}");
    }
}

/// An address nothing listens on, like a container that has just stopped.
async fn refusing() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0").await.unwrap().local_addr().unwrap()
}

#[tokio::test]
async fn a_refused_connection_sends_body_less_requests_to_the_next_backend_and_never_resends_a_body() {
    let (gone, live) = (refusing().await, upstream("live").await);
    let alone = router(snapshot(1, &[("shop", vec![gone])])).await;
    // On a fresh table the first request goes to the first backend: the stopped one.
    let for_gets = router(snapshot(1, &[("shop", vec![gone, live])])).await;
    let for_posts = router(snapshot(1, &[("shop", vec![gone, live])])).await;
    let mut stream = connect(&for_gets).await;
    for _ in 0..4 {
        let (status, body) = exchange(&mut stream, "shop.localhost", "").await;
        assert_eq!(status, 200, "{body}");
        assert!(body.starts_with("live"), "{body}");
    }
    let post = "POST /orders HTTP/1.1\r\nHost: shop.localhost\r\nContent-Length: 5\r\n\r\nhello";
    let (status, body) = send(&mut connect(&for_posts).await, post).await;
    assert_eq!(status, 502, "the POST that met the stopped backend is not replayed: {body}");
    for _ in 0..2 {
        let (status, body) = send(&mut connect(&for_posts).await, post).await;
        assert_eq!(status, 200, "the stopped backend is set aside, so later POSTs reach the live one: {body}");
    }
    let (status, body) = exchange(&mut connect(&alone).await, "shop.localhost", "").await;
    assert_eq!(status, 502, "with no other backend the client hears the failure: {body}");
}

/// An upstream that reads each request's head and closes the connection without a word,
/// like an app whose node went away while the request was on its way.
async fn dying() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let mut stream = BufReader::new(stream);
            let mut line = String::new();
            while stream.read_line(&mut line).await.unwrap_or(0) > 0 && line != "\r\n" {
                line.clear();
            }
        }
    });
    address
}

#[tokio::test]
async fn a_backend_that_dies_before_answering_sends_idempotent_requests_to_the_next_backend() {
    let (gone, live) = (dying().await, upstream("live").await);
    for method in ["GET", "DELETE", "OPTIONS"] {
        // On a fresh table the first request goes to the first backend: the dying one.
        let router = router(snapshot(1, &[("shop", vec![gone, live])])).await;
        let request = format!("{method} /orders/1 HTTP/1.1\r\nHost: shop.localhost\r\n\r\n");
        let (status, body) = send(&mut connect(&router).await, &request).await;
        assert_eq!(status, 200, "{method} went to the live backend: {body}");
    }
    let router = router(snapshot(1, &[("shop", vec![gone, live])])).await;
    let post = "POST /orders HTTP/1.1\r\nHost: shop.localhost\r\nContent-Length: 0\r\n\r\n";
    let (status, body) = send(&mut connect(&router).await, post).await;
    assert_eq!(status, 502, "a POST the app may have seen is not sent again: {body}");
    let (status, body) = send(&mut connect(&router).await, post).await;
    assert_eq!(status, 200, "the dying backend is set aside: {body}");
}

/// An upstream that accepts connections and never answers.
async fn silent() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    address
}

#[tokio::test]
async fn an_app_that_never_answers_gets_a_504_after_the_response_timeout() {
    let address = silent().await;
    let config = skiff_router::Config { response_timeout: Duration::from_millis(300), ..Default::default() };
    let router = router_with(snapshot(1, &[("shop", vec![address])]), config).await;
    let (status, body) = exchange(&mut connect(&router).await, "shop.localhost", "").await;
    assert_eq!(status, 504, "{body}");
    assert!(body.contains("shop did not answer within 0.3 s"), "{body}");
}

#[tokio::test]
async fn each_request_on_a_kept_alive_connection_gets_the_whole_response_timeout() {
    let (hanging, good) = (silent().await, upstream("good").await);
    let config = skiff_router::Config { response_timeout: Duration::from_millis(300), ..Default::default() };
    let router = router_with(snapshot(1, &[("shop", vec![hanging]), ("good", vec![good])]), config).await;
    let mut stream = connect(&router).await;
    // Answered and unanswered requests in turn on one connection, in a stretch of requests
    // and after a pause long enough for the connection to park between two of them.
    for pause in [0, 0, 400, 0] {
        tokio::time::sleep(Duration::from_millis(pause)).await;
        let (status, _) = exchange(&mut stream, "good.localhost", "").await;
        assert_eq!(status, 200);
        let asked = std::time::Instant::now();
        let (status, body) = exchange(&mut stream, "shop.localhost", "").await;
        let waited = asked.elapsed();
        assert_eq!(status, 504, "{body}");
        assert!(waited >= Duration::from_millis(300) && waited < Duration::from_secs(3), "answered after {waited:?}");
    }
}

#[tokio::test]
async fn a_backend_that_timed_out_is_tried_last_for_a_while() {
    let hanging = silent().await;
    let good = upstream("good").await;
    let config = skiff_router::Config { response_timeout: Duration::from_millis(300), ..Default::default() };
    let router = router_with(snapshot(1, &[("shop", vec![hanging, good])]), config).await;
    let mut statuses = Vec::new();
    for _ in 0..6 {
        statuses.push(exchange(&mut connect(&router).await, "shop.localhost", "").await.0);
    }
    // Round robin sends the first request to the hanging backend; after its 504 every
    // request goes to the good one, ahead of its turn.
    assert_eq!(statuses, [504, 200, 200, 200, 200, 200]);
}

#[tokio::test]
async fn clients_that_never_finish_a_request_head_or_go_idle_are_cut_off() {
    let app = upstream("one").await;
    let config = skiff_router::Config { header_read_timeout: Duration::from_millis(300), ..Default::default() };
    let router = router_with(snapshot(1, &[("shop", vec![app])]), config).await;
    let mut stream = connect(&router).await;
    stream.get_mut().write_all(b"GET / HTTP/1.1\r\nHost: shop.loc").await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the router closes the connection instead of waiting for the head");
    let rest = String::from_utf8_lossy(&rest);
    assert!(rest.is_empty() || rest.starts_with("HTTP/1.1 408"), "{rest}");

    let mut idle = connect(&router).await;
    let (status, _) = exchange(&mut idle, "shop.localhost", "").await;
    assert_eq!(status, 200);
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), idle.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "a kept-alive connection that sends nothing more is closed too");
}

#[tokio::test]
async fn connections_parked_between_requests_serve_on_close_at_their_deadline_and_at_shutdown() {
    let app = upstream("one").await;
    let config = skiff_router::Config { header_read_timeout: Duration::from_millis(1500), ..Default::default() };
    let router = router_with(snapshot(1, &[("shop", vec![app])]), config).await;
    // Quiet for longer than a connection waits in its task: parked, then woken by the next
    // request, many times over on the same connections.
    let mut kept: Vec<_> = futures_util::future::join_all((0..20).map(|_| connect(&router))).await;
    for round in 0..3 {
        for stream in &mut kept {
            let (status, body) = exchange(stream, "shop.localhost", "").await;
            assert_eq!((status, body.lines().next()), (200, Some("one")), "round {round}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A parked connection whose client closes it gives its slot back; the others go on.
    drop(kept.pop());
    let (status, _) = exchange(&mut kept[0], "shop.localhost", "").await;
    assert_eq!(status, 200);

    // Parked past the header read timeout: closed.
    let started = std::time::Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), kept[1].read_to_end(&mut rest)).await;
    assert!(read.is_ok() && rest.is_empty(), "a parked connection is closed at its deadline");
    let waited = started.elapsed();
    assert!(waited >= Duration::from_millis(1000), "not before its deadline: {waited:?}");

    // A shutdown closes the parked connections at once.
    let mut parked = connect(&router).await;
    let (status, _) = exchange(&mut parked, "shop.localhost", "").await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    router.shutdown.cancel();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_millis(500), parked.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the shutdown closes a parked connection");
}

#[tokio::test]
async fn ambiguous_request_framing_is_refused_before_it_reaches_the_app() {
    let app = upstream("one").await;
    let router = router(snapshot(1, &[("shop", vec![app])])).await;
    let smuggled = "POST / HTTP/1.1\r\nHost: shop.localhost\r\nContent-Length: 4\r\nContent-Length: 40\r\n\r\nabcd";
    let mut stream = connect(&router).await;
    stream.get_mut().write_all(smuggled.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await.unwrap().unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(!answer.contains("\r\n\r\none\n"), "the app never saw the request: {answer}");
}

#[tokio::test]
async fn http2_clients_with_prior_knowledge_are_served() {
    let app = upstream("one").await;
    let router = router(snapshot(1, &[("shop", vec![app])])).await;
    let url = format!("http://{}/h2?x=1", router.address);
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "--http2-prior-knowledge", "-H", "Host: shop.localhost", "-w", "\nversion=%{http_version}", &url])
        .output()
        .await
        .expect("curl runs (apt-get install curl)");
    let text = String::from_utf8_lossy(&output.stdout).to_ascii_lowercase();
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert!(text.contains("version=2"), "the client spoke HTTP/2: {text}");
    assert!(text.starts_with("one\nget /h2?x=1 http/1.1"), "the upstream got HTTP/1.1: {text}");
    assert!(text.contains("host: shop.localhost"), "{text}");
    assert!(text.contains("via: 2 skiff"), "Via names the protocol the router received: {text}");
}

#[tokio::test]
async fn idle_http2_connections_and_stalled_bodies_are_closed() {
    let app = upstream("one").await;
    let config = skiff_router::Config { idle_timeout: Duration::from_millis(500), ..Default::default() };
    let router = router_with(snapshot(1, &[("shop", vec![app])]), config).await;
    let stream = TcpStream::connect(router.address).await.unwrap();
    let executor = hyper_util::rt::TokioExecutor::new();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(executor, hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    let driver = tokio::spawn(connection);
    let request =
        http::Request::get("http://shop.localhost/").body(http_body_util::Empty::<bytes::Bytes>::new()).unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    http_body_util::BodyExt::collect(response.into_body()).await.unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), driver).await;
    assert!(closed.is_ok(), "an HTTP/2 connection with nothing going on is closed");

    let mut stalled = connect(&router).await;
    let head = "POST / HTTP/1.1\r\nHost: shop.localhost\r\nContent-Length: 100\r\n\r\nonly part of it";
    stalled.get_mut().write_all(head.as_bytes()).await.unwrap();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stalled.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "a body that stops arriving does not hold the connection open");
}

/// An HTTP/2 (h2c) upstream that answers like a gRPC server: the request's protocol and
/// `te` header in response headers, the request body echoed, then `grpc-status: 0` as a
/// trailer.
async fn grpc_upstream() -> SocketAddr {
    use http_body_util::BodyExt as _;
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|request: http::Request<hyper::body::Incoming>| async move {
                let version = format!("{:?}", request.version());
                let te = request.headers().get("te").cloned();
                let body = request.into_body().collect().await?.to_bytes();
                let mut trailers = http::HeaderMap::new();
                trailers.insert("grpc-status", http::HeaderValue::from_static("0"));
                let frames = vec![
                    Ok::<_, std::convert::Infallible>(hyper::body::Frame::data(body)),
                    Ok(hyper::body::Frame::trailers(trailers)),
                ];
                let mut response =
                    http::Response::new(http_body_util::StreamBody::new(futures_util::stream::iter(frames)));
                response.headers_mut().insert("content-type", http::HeaderValue::from_static("application/grpc"));
                response.headers_mut().insert("x-upstream-version", version.parse().unwrap());
                if let Some(te) = te {
                    response.headers_mut().insert("x-upstream-te", te);
                }
                Ok::<_, hyper::Error>(response)
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http2::Builder::new(hyper_util::rt::TokioExecutor::new())
                    .serve_connection(io, service)
                    .await;
            });
        }
    });
    address
}

#[tokio::test]
async fn grpc_goes_to_the_app_over_http2_with_its_trailers() {
    use http_body_util::BodyExt as _;
    let app = grpc_upstream().await;
    let router = router(snapshot(1, &[("rpc", vec![app])])).await;
    let stream = TcpStream::connect(router.address).await.unwrap();
    let executor = hyper_util::rt::TokioExecutor::new();
    let (mut sender, connection) =
        hyper::client::conn::http2::handshake(executor, hyper_util::rt::TokioIo::new(stream)).await.unwrap();
    tokio::spawn(connection);
    let message = bytes::Bytes::from_static(b"\0\0\0\0\x05hello");
    let request = http::Request::post("http://rpc.localhost/echo.Echo/Say")
        .header("content-type", "application/grpc")
        .header("te", "trailers")
        .body(http_body_util::Full::new(message.clone()))
        .unwrap();
    let response = sender.send_request(request).await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["x-upstream-version"], "HTTP/2.0", "the app got HTTP/2");
    assert_eq!(response.headers()["x-upstream-te"], "trailers");
    let collected = response.into_body().collect().await.unwrap();
    let trailers = collected.trailers().cloned().expect("the app's trailers reach the client");
    assert_eq!(trailers["grpc-status"], "0");
    assert_eq!(collected.to_bytes(), message, "the message went there and back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Python's grpcio (deploy/test.sh installs it)"]
async fn a_real_grpc_client_reaches_a_real_grpc_server() {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/grpc_echo.py");
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut server = tokio::process::Command::new("python3")
        .args([script, "serve", &port.to_string()])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("python3 runs");
    let mut ready = String::new();
    let mut out = BufReader::new(server.stdout.take().unwrap());
    tokio::time::timeout(Duration::from_secs(30), out.read_line(&mut ready)).await.unwrap().unwrap();
    assert_eq!(ready.trim(), "ready", "the gRPC server starts (deploy/test.sh installs grpcio)");
    let router = router(snapshot(1, &[("rpc", vec![SocketAddr::from(([127, 0, 0, 1], port))])])).await;
    let output = tokio::process::Command::new("python3")
        .args([script, "call", &router.address.to_string(), "rpc.localhost"])
        .output()
        .await
        .unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "{text}{}", String::from_utf8_lossy(&output.stderr));
    assert_eq!(text.trim(), "echo:hello trailer", "the answer and the server's trailing metadata");
}

#[tokio::test]
async fn the_router_is_ready_once_it_has_a_route_table() {
    let waiting = router(Table::default()).await;
    let client = reqwest::Client::new();
    let ready = |router: &Router| client.get(format!("http://{}/readyz", router.address)).send();
    let answer = ready(&waiting).await.unwrap();
    assert_eq!(answer.status(), 503);
    assert!(answer.text().await.unwrap().contains("not received from the controller"));
    let live = client.get(format!("http://{}/healthz", waiting.address)).send().await.unwrap();
    assert_eq!(live.status(), 200, "alive all the same");
    waiting.table.store(Arc::new(snapshot(1, &[])));
    assert_eq!(ready(&waiting).await.unwrap().status(), 200, "ready once a table came");
}

#[tokio::test]
async fn a_canary_gets_its_share_and_each_side_is_counted() {
    let (baseline, canary) = (upstream("baseline").await, upstream("canary").await);
    let mut route = RouteTable { version: 1, ..Default::default() };
    route.routes.push(Route {
        app: "shop".parse().unwrap(),
        hosts: vec!["shop.localhost".into()],
        backends: vec![baseline],
        maintenance: false,
        tls: Default::default(),
        access: Default::default(),
        canary: Some(skiff_api::CanaryRoute { id: 3, release: 2, percent: 10, sticky: false, backends: vec![canary] }),
    });
    let config = skiff_router::Config::default();
    let counts = config.canary_counts.clone();
    let router = router_with(Table::from_snapshot(&route), config).await;
    let mut stream = connect(&router).await;
    let mut canary_answers = 0;
    for _ in 0..1000 {
        let (status, body) = exchange(&mut stream, "shop.localhost", "").await;
        assert_eq!(status, 200);
        canary_answers += usize::from(body.starts_with("canary\n"));
    }
    assert_eq!(canary_answers, 100, "10% of 1,000 requests in turn");
    // A request is counted as its answer ends, which may be just after the client read it.
    let mut samples = Vec::new();
    let requests = |samples: &[skiff_api::CanarySample], arm: skiff_api::Arm| -> u64 {
        samples.iter().filter(|s| s.arm == arm && s.canary == 3).flat_map(|s| &s.buckets).map(|b| b.requests).sum()
    };
    for _ in 0..50 {
        samples.extend(counts.take().samples);
        if requests(&samples, skiff_api::Arm::Baseline) + requests(&samples, skiff_api::Arm::Canary) >= 1000 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let counted = (requests(&samples, skiff_api::Arm::Baseline), requests(&samples, skiff_api::Arm::Canary));
    assert_eq!(counted, (900, 100));
}
