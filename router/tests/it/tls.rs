//! HTTPS through the router with curl (and a page in Chromium over HTTP/2): certificates
//! chosen by SNI for two domains, the default certificate for every other name, HTTP/2 by
//! ALPN, force-HTTPS redirects and HSTS.

use std::path::Path;
use std::sync::Arc;

use arc_swap::ArcSwap;
use skiff_api::{Route, RouteCertificate, RouteTable, TlsSettings};
use skiff_router::Table;
use skiff_router::tls::{DefaultCertificate, LocalCa};
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
