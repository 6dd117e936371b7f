//! HTTPS through the router with curl (and a page in Chromium over HTTP/2): certificates
//! chosen by SNI for two domains, the default certificate for every other name, HTTP/2 by
//! ALPN, force-HTTPS redirects and HSTS.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use skiff_api::{Route, RouteCertificate, RouteTable, TlsSettings};
use skiff_router::Table;
use skiff_router::tls::{DefaultCertificate, LocalCa};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::upstream;

/// A self-signed certificate and key for `names`, as PEM.
fn certificate(names: &[&str]) -> (String, String) {
    let made = rcgen::generate_simple_self_signed(names.iter().map(|n| (*n).to_owned()).collect::<Vec<_>>()).unwrap();
    (made.cert.pem(), made.signing_key.serialize_pem())
}

/// curl against `url` with `name` resolved to the router, trusting `ca`; the status
/// line's code (0 when curl failed), the headers and body, and curl's exit status.
async fn curl(ca: &Path, name: &str, port: u16, url: &str) -> (u16, String, i32) {
    curl_with(&[], ca, name, port, url).await
}

/// [`curl`] with more of curl's options.
async fn curl_with(options: &[&str], ca: &Path, name: &str, port: u16, url: &str) -> (u16, String, i32) {
    let resolve = format!("{name}:{port}:127.0.0.1");
    let output = tokio::process::Command::new("curl")
        .args(options)
        .args(["-sS", "-i", "--cacert"])
        .arg(ca)
        .args(["--resolve", &resolve, "-w", "\nversion=%{http_version}", url])
        .output()
        .await
        .expect("curl runs (apt-get install curl)");
    let text = String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr);
    let status = text.split_whitespace().nth(1).and_then(|s| s.parse().ok()).unwrap_or(0);
    (status, text.to_ascii_lowercase(), output.status.code().unwrap_or(-1))
}

/// A route table with one app, `shop.localhost`, at `backend`.
fn shop_at(backend: std::net::SocketAddr) -> Arc<ArcSwap<Table>> {
    let route = Route {
        app: "shop".parse().unwrap(),
        hosts: vec!["shop.localhost".into()],
        backends: vec![backend],
        maintenance: false,
        tls: TlsSettings::default(),
        access: Default::default(),
        canary: None,
    };
    let table = RouteTable { version: 1, routes: vec![route], certificates: Vec::new(), challenges: Vec::new() };
    Arc::new(ArcSwap::from_pointee(Table::from_snapshot(&table)))
}

#[tokio::test]
async fn https_serves_each_domain_its_certificate_and_the_default_to_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, pem: &str| {
        let path = dir.path().join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let (shop_cert, shop_key) = certificate(&["www.shop.test"]);
    let (blog_cert, blog_key) = certificate(&["*.blog.test"]);
    let (default_cert, default_key) = certificate(&["*.apps.test"]);
    let (shop_ca, blog_ca, default_ca) =
        (write("shop.pem", &shop_cert), write("blog.pem", &blog_cert), write("default.pem", &default_cert));

    let app = upstream("one").await;
    let route = |name: &str, hosts: &[&str], tls: TlsSettings| Route {
        app: name.parse().unwrap(),
        hosts: hosts.iter().map(|h| (*h).to_owned()).collect(),
        backends: vec![app],
        maintenance: false,
        tls,
        access: Default::default(),
        canary: None,
    };
    let table = Table::from_snapshot(&RouteTable {
        version: 1,
        routes: vec![
            route("shop", &["shop.apps.test", "www.shop.test"], TlsSettings::default()),
            route("blog", &["blog.apps.test", "*.blog.test"], TlsSettings { force_https: true, hsts_max_age: 600 }),
        ],
        certificates: vec![
            RouteCertificate { hosts: vec!["www.shop.test".into()], chain_pem: shop_cert, key_pem: shop_key },
            RouteCertificate { hosts: vec!["*.blog.test".into()], chain_pem: blog_cert, key_pem: blog_key },
        ],
        challenges: Vec::new(),
    });
    let table = Arc::new(ArcSwap::from_pointee(table));
    let (http, https) =
        (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
    let (http_port, port) = (http.local_addr().unwrap().port(), https.local_addr().unwrap().port());
    let default = skiff_router::tls::certified_key(&default_cert, &default_key).unwrap();
    let tls = skiff_router::tls::server_config(table.clone(), DefaultCertificate::Fixed(default)).unwrap();
    let shutdown = CancellationToken::new();
    let listeners = skiff_router::Listeners { http, https: Some((https, tls)) };
    tokio::spawn(skiff_router::serve(listeners, table, skiff_router::Config::default(), shutdown.clone()));

    // A domain with its own certificate, over HTTP/2 chosen by ALPN.
    let (status, text, _) = curl(&shop_ca, "www.shop.test", port, &format!("https://www.shop.test:{port}/x?y=1")).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("version=2"), "ALPN picked HTTP/2: {text}");
    assert!(text.contains("get /x?y=1 http/1.1") && text.contains("x-forwarded-proto: https"), "{text}");
    assert!(text.contains(&format!("x-forwarded-port: {port}")), "{text}");
    assert!(!text.contains("strict-transport-security"), "no HSTS unless the app asks: {text}");

    // Another domain, its wildcard certificate, and the app's HSTS.
    let (status, text, _) = curl(&blog_ca, "news.blog.test", port, &format!("https://news.blog.test:{port}/")).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("strict-transport-security: max-age=600"), "{text}");
    // The same over HTTP/1.1 (the relay, over TLS), then twice in one curl.
    let url = format!("https://news.blog.test:{port}/one");
    let (status, text, _) = curl_with(&["--http1.1"], &blog_ca, "news.blog.test", port, &url).await;
    assert_eq!(status, 200, "{text}");
    assert!(text.contains("version=1.1") && text.contains("strict-transport-security: max-age=600"), "{text}");
    assert!(text.contains("get /one http/1.1") && text.contains("x-forwarded-proto: https"), "{text}");
    let (status, text, _) = curl_with(&["--http1.1", &url], &blog_ca, "news.blog.test", port, &url).await;
    assert_eq!((status, text.matches("strict-transport-security: max-age=600").count()), (200, 2), "{text}");

    // Names without a certificate of their own get the default one; the wrong CA fails.
    let (status, text, _) = curl(&default_ca, "shop.apps.test", port, &format!("https://shop.apps.test:{port}/")).await;
    assert_eq!(status, 200, "{text}");
    let (status, text, code) = curl(&shop_ca, "shop.apps.test", port, &format!("https://shop.apps.test:{port}/")).await;
    assert!(status == 0 && code == 60, "the default certificate is not shop's: {text}");

    // Plain HTTP to an HTTPS-only app is redirected, path and query kept; others are served.
    let url = format!("http://news.blog.test:{http_port}/a/b?c=d");
    let (status, text, _) = curl(&default_ca, "news.blog.test", http_port, &url).await;
    assert_eq!(status, 308, "{text}");
    assert!(text.contains(&format!("location: https://news.blog.test:{port}/a/b?c=d")), "{text}");
    let url = format!("http://shop.apps.test:{http_port}/");
    assert_eq!(curl(&default_ca, "shop.apps.test", http_port, &url).await.0, 200);

    shutdown.cancel();
}

#[tokio::test]
async fn the_local_ca_issues_certificates_for_routed_names() {
    let dir = tempfile::tempdir().unwrap();
    let (ca_pem, ca_key) = LocalCa::generate().unwrap();
    let ca_path = dir.path().join("ca.crt");
    std::fs::write(&ca_path, ca_pem).unwrap();
    let table = shop_at(upstream("one").await);
    let (http, https) =
        (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
    let port = https.local_addr().unwrap().port();
    // The CA is loaded from its key, as after a restart.
    let default = DefaultCertificate::issued(LocalCa::from_key_pem(&ca_key).unwrap(), "localhost").unwrap();
    let tls = skiff_router::tls::server_config(table.clone(), default).unwrap();
    let shutdown = CancellationToken::new();
    let listeners = skiff_router::Listeners { http, https: Some((https, tls)) };
    tokio::spawn(skiff_router::serve(listeners, table, skiff_router::Config::default(), shutdown.clone()));

    for _ in 0..2 {
        let (status, text, _) =
            curl(&ca_path, "shop.localhost", port, &format!("https://shop.localhost:{port}/")).await;
        assert_eq!(status, 200, "a certificate for shop.localhost that chains to the CA: {text}");
    }
    let (status, text, code) =
        curl(&ca_path, "nobody.localhost", port, &format!("https://nobody.localhost:{port}/")).await;
    assert!(status == 0 && code == 60, "names the table does not route get no certificate of their own: {text}");
    shutdown.cancel();
}

/// An app serving a page that, once loaded, fetches `/n/0` to `/n/29` at once and writes
/// the protocol the page came over and the sum of the answers into the page.
async fn page_app() -> std::net::SocketAddr {
    const PAGE: &str = "<html><body><p id=p>waiting</p><script>\
        const protocol = performance.getEntriesByType('navigation')[0].nextHopProtocol;\
        Promise.all([...Array(30).keys()].map(i => fetch('/n/' + i).then(r => r.text())))\
        .then(all => document.getElementById('p').textContent = 'protocol=' + protocol + ' sum=' + all.reduce((a, b) => a + Number(b), 0))\
        </script></body></html>";
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let service = hyper::service::service_fn(|request: http::Request<hyper::body::Incoming>| async move {
                let (body, kind) = match request.uri().path().strip_prefix("/n/") {
                    Some(n) => (n.to_owned(), "text/plain"),
                    None => (PAGE.to_owned(), "text/html"),
                };
                let mut response = http::Response::new(http_body_util::Full::new(bytes::Bytes::from(body)));
                response.headers_mut().insert("content-type", http::HeaderValue::from_static(kind));
                Ok::<_, std::convert::Infallible>(response)
            });
            tokio::spawn(async move {
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, service).await;
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs Debian's chromium (deploy/test.sh installs it)"]
async fn a_browser_loads_a_page_and_thirty_requests_at_once_over_http2() {
    let table = shop_at(page_app().await);
    let (cert, key) = certificate(&["shop.localhost"]);
    let default = skiff_router::tls::certified_key(&cert, &key).unwrap();
    let tls = skiff_router::tls::server_config(table.clone(), DefaultCertificate::Fixed(default)).unwrap();
    let (http, https) =
        (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
    let port = https.local_addr().unwrap().port();
    let shutdown = CancellationToken::new();
    let listeners = skiff_router::Listeners { http, https: Some((https, tls)) };
    tokio::spawn(skiff_router::serve(listeners, table, skiff_router::Config::default(), shutdown.clone()));

    let profile = tempfile::tempdir().unwrap();
    let run = tokio::process::Command::new("chromium")
        .args(["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        .args(["--ignore-certificate-errors", "--virtual-time-budget=10000", "--dump-dom"])
        .arg(format!("--user-data-dir={}", profile.path().display()))
        .arg(format!("https://shop.localhost:{port}/"))
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(std::time::Duration::from_secs(90), run)
        .await
        .expect("chromium loads the page within 90 s")
        .expect("chromium runs (apt-get install chromium)");
    let page = String::from_utf8_lossy(&output.stdout);
    // 0 + 1 + … + 29 = 435: every one of the thirty answers came back whole.
    assert!(page.contains("protocol=h2 sum=435"), "{page}{}", String::from_utf8_lossy(&output.stderr));
    shutdown.cancel();
}

/// A router serving `table` over HTTPS with a certificate for shop.localhost: its HTTPS
/// address, a client that trusts it, and the router's shutdown.
async fn https_router(
    table: Arc<ArcSwap<Table>>,
    config: skiff_router::Config,
) -> (std::net::SocketAddr, tokio_rustls::TlsConnector, CancellationToken) {
    let made = rcgen::generate_simple_self_signed(vec!["shop.localhost".to_owned()]).unwrap();
    let key = skiff_router::tls::certified_key(&made.cert.pem(), &made.signing_key.serialize_pem()).unwrap();
    let tls = skiff_router::tls::server_config(table.clone(), DefaultCertificate::Fixed(key)).unwrap();
    let (http, https) =
        (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
    let address = https.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let listeners = skiff_router::Listeners { http, https: Some((https, tls)) };
    tokio::spawn(skiff_router::serve(listeners, table, config, shutdown.clone()));
    let mut roots = rustls::RootCertStore::empty();
    roots.add(made.cert.der().clone()).unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let client = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    (address, tokio_rustls::TlsConnector::from(Arc::new(client)), shutdown)
}

/// A TLS connection to `address` for shop.localhost (HTTP/1.1: no ALPN).
async fn connect_tls(
    address: std::net::SocketAddr,
    connector: &tokio_rustls::TlsConnector,
) -> tokio_rustls::client::TlsStream<tokio::net::TcpStream> {
    let stream = tokio::net::TcpStream::connect(address).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("shop.localhost").unwrap();
    connector.connect(name, stream).await.unwrap()
}

/// Two requests written at once over TLS, the first of every length around the relay's
/// reads (4 KiB and twice that): however the router's reads fall, the second one's bytes
/// (held decrypted by rustls once the first is read) are answered at once, not left
/// waiting for bytes the client has already sent.
#[tokio::test]
async fn requests_written_together_over_tls_are_answered_however_the_reads_fall() {
    let table = shop_at(upstream("one").await);
    let (address, connector, shutdown) = https_router(table, skiff_router::Config::default()).await;
    let second = "GET /second HTTP/1.1\r\nHost: shop.localhost\r\nConnection: close\r\n\r\n";
    for length in (4088..=4104).chain(8184..=8200) {
        let head = "GET /first HTTP/1.1\r\nHost: shop.localhost\r\nX-Pad: \r\n\r\n";
        let first = head.replace("X-Pad: ", &format!("X-Pad: {}", "p".repeat(length - head.len())));
        assert_eq!(first.len(), length);
        let mut stream = connect_tls(address, &connector).await;
        stream.write_all(format!("{first}{second}").as_bytes()).await.unwrap();
        let mut answers = Vec::new();
        let read = tokio::time::timeout(std::time::Duration::from_secs(5), stream.read_to_end(&mut answers)).await;
        let answers = String::from_utf8_lossy(&answers);
        assert!(read.is_ok(), "a first request of {length} bytes: the second waited: {answers}");
        assert_eq!(answers.matches("HTTP/1.1 200").count(), 2, "a first request of {length} bytes: {answers}");
        assert!(answers.contains("GET /second HTTP/1.1"), "{answers}");
    }
    shutdown.cancel();
}

/// TLS connections park between requests as plain ones do (`main.rs`): woken by the next
/// request, many times over, closed at their deadline and at the shutdown.
#[tokio::test]
async fn tls_connections_parked_between_requests_serve_on_close_at_their_deadline_and_at_shutdown() {
    use std::time::{Duration, Instant};
    let table = shop_at(upstream("one").await);
    let config = skiff_router::Config { header_read_timeout: Duration::from_millis(1500), ..Default::default() };
    let (address, connector, shutdown) = https_router(table, config).await;
    let connecting = (0..10).map(|_| async { tokio::io::BufReader::new(connect_tls(address, &connector).await) });
    let mut kept: Vec<_> = futures_util::future::join_all(connecting).await;
    for round in 0..3 {
        for stream in &mut kept {
            let (status, body) = crate::exchange(stream, "shop.localhost", "").await;
            assert_eq!((status, body.lines().next()), (200, Some("one")), "round {round}");
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // A request written a byte at a time to a parked connection.
    let request = b"GET /slow HTTP/1.1\r\nHost: shop.localhost\r\n\r\n";
    for byte in request {
        kept[0].get_mut().write_all(&[*byte]).await.unwrap();
        kept[0].get_mut().flush().await.unwrap();
    }
    let (status, body) = crate::send(&mut kept[0], "").await;
    assert!(status == 200 && body.contains("GET /slow"), "{body}");

    let started = Instant::now();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), kept[1].read_to_end(&mut rest)).await;
    assert!(read.is_ok() && rest.is_empty(), "a parked TLS connection is closed at its deadline");
    assert!(started.elapsed() >= Duration::from_millis(1000), "not before: {:?}", started.elapsed());

    let mut parked = tokio::io::BufReader::new(connect_tls(address, &connector).await);
    assert_eq!(crate::exchange(&mut parked, "shop.localhost", "").await.0, 200);
    tokio::time::sleep(Duration::from_millis(300)).await;
    shutdown.cancel();
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_millis(500), parked.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the shutdown closes a parked TLS connection");
}
