//! Hostile and heavy clients: request smuggling attempts, a thousand slowloris
//! connections, and route changes every 100 ms under load.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::{router, snapshot, upstream};

/// An upstream that keeps every byte it is sent, for checking what got through.
async fn recording() -> (SocketAddr, Arc<std::sync::Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let seen = Arc::new(std::sync::Mutex::new(Vec::new()));
    let kept = seen.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            let kept = kept.clone();
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    kept.lock().unwrap().extend_from_slice(&buf[..n]);
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok").await;
                }
            });
        }
    });
    (address, seen)
}

/// Sends raw bytes (one request or several) and reads the answers until the router closes
/// the connection (bounded).
pub(crate) async fn raw(router: SocketAddr, request: &str) -> String {
    let mut stream = TcpStream::connect(router).await.unwrap();
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut answer)).await;
    read.expect("the router closes").unwrap();
    String::from_utf8_lossy(&answer).into_owned()
}

#[tokio::test]
async fn smuggling_attempts_are_refused_with_400() {
    let (app, seen) = recording().await;
    let router = router(snapshot(1, &[("shop", vec![app])])).await;
    // Content-Length beside Transfer-Encoding, in either order, after a good request on the
    // same connection: the good one is served, the other refused, and the connection closes
    // (RFC 9112 §6.3), so the request hidden after the body is never read as one.
    let good = "GET /first HTTP/1.1\r\nHost: shop.localhost\r\n\r\n";
    for lengths in
        ["Content-Length: 6\r\nTransfer-Encoding: chunked", "Transfer-Encoding: chunked\r\nContent-Length: 6"]
    {
        let hidden = format!(
            "{good}POST / HTTP/1.1\r\nHost: shop.localhost\r\n{lengths}\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: shop.localhost\r\n\r\n"
        );
        let answer = raw(router.address, &hidden).await.to_ascii_lowercase();
        assert!(answer.starts_with("http/1.1 200"), "{answer}");
        let refused = &answer[answer.find("\r\n\r\nok").expect("the first answer") + 6..];
        assert!(refused.starts_with("http/1.1 400"), "{lengths}: {answer}");
        assert_eq!(answer.matches("http/1.1 ").count(), 2, "then the connection closes: {answer}");
        assert!(refused.contains("connection: close"), "{answer}");
    }
    let cases = [
        (
            "an invalid chunk size",
            "POST / HTTP/1.1\r\nHost: shop.localhost\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nhello\r\n0\r\n\r\n",
        ),
        ("a folded header (obs-fold)", "GET / HTTP/1.1\r\nHost: shop.localhost\r\nX-Folded: a\r\n b\r\n\r\n"),
        ("a space before the colon", "GET / HTTP/1.1\r\nHost : shop.localhost\r\n\r\n"),
        (
            "Transfer-Encoding that does not end in chunked",
            "POST / HTTP/1.1\r\nHost: shop.localhost\r\nTransfer-Encoding: chunked, identity\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        ),
    ];
    for (what, request) in cases {
        let answer = raw(router.address, request).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{what}: {answer}");
    }
    let seen = String::from_utf8_lossy(&seen.lock().unwrap()).into_owned();
    assert_eq!(seen.matches("GET /first ").count(), 2, "{seen}");
    assert!(!seen.contains("POST") && !seen.contains("/smuggled") && !seen.contains("X-Folded"), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_slowloris_connections_do_not_starve_other_clients() {
    let app = upstream("one").await;
    let router = router(snapshot(1, &[("shop", vec![app])])).await;
    // Each sends half a request head and then nothing.
    let mut idle = Vec::new();
    for _ in 0..1000 {
        let mut stream = TcpStream::connect(router.address).await.unwrap();
        stream.write_all(b"GET / HTTP/1.1\r\nHost: shop.localhost\r\nX-Slow: ").await.unwrap();
        idle.push(stream);
    }
    let client = reqwest::Client::new();
    let started = Instant::now();
    for _ in 0..20 {
        let response = client
            .get(format!("http://{}/", router.address))
            .header("Host", "shop.localhost")
            .timeout(Duration::from_secs(2))
            .send()
            .await
            .expect("served beside a thousand idle heads");
        assert_eq!(response.status(), 200);
    }
    assert!(started.elapsed() < Duration::from_secs(10), "took {:?}", started.elapsed());
    drop(idle);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_changing_every_100ms_under_load_fail_no_request() {
    let (a, b) = (upstream("a").await, upstream("b").await);
    let router = router(snapshot(1, &[("shop", vec![a])])).await;
    let deadline = Instant::now() + Duration::from_secs(3);
    let swapper = {
        let table = router.table.clone();
        tokio::spawn(async move {
            let sets = [vec![a], vec![b], vec![a, b]];
            let mut version = 1;
            while Instant::now() < deadline {
                tokio::time::sleep(Duration::from_millis(100)).await;
                version += 1;
                let backends = sets[version as usize % sets.len()].clone();
                table.store(Arc::new(snapshot(version, &[("shop", backends)])));
            }
            version
        })
    };
    let (served, failed) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let mut clients = Vec::new();
    for _ in 0..8 {
        let (served, failed, address) = (served.clone(), failed.clone(), router.address);
        clients.push(tokio::spawn(async move {
            // One kept-alive connection per client, across every swap.
            let client = reqwest::Client::new();
            while Instant::now() < deadline {
                let answer = client
                    .get(format!("http://{address}/"))
                    .header("Host", "shop.localhost")
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await;
                match answer {
                    Ok(response) if response.status() == 200 => served.fetch_add(1, Ordering::Relaxed),
                    _ => failed.fetch_add(1, Ordering::Relaxed),
                };
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    let swaps = swapper.await.unwrap();
    let (served, failed) = (served.load(Ordering::Relaxed), failed.load(Ordering::Relaxed));
    assert!(swaps >= 20, "the table changed {swaps} times");
    assert!(served > 500, "served {served}");
    assert_eq!(failed, 0, "of {served} requests");
}

#[tokio::test]
async fn access_policies_refuse_addresses_and_oversized_bodies() {
    let app = upstream("one").await;
    let table = |allow: &[&str], deny: &[&str], max_body_bytes: Option<u64>| {
        skiff_router::Table::from_snapshot(&skiff_api::RouteTable {
            version: 1,
            routes: vec![skiff_api::Route {
                app: "shop".parse().unwrap(),
                hosts: vec!["shop.localhost".into()],
                backends: vec![app],
                maintenance: false,
                tls: Default::default(),
                access: skiff_api::AccessPolicy {
                    max_body_bytes,
                    allow: allow.iter().map(|a| (*a).to_owned()).collect(),
                    deny: deny.iter().map(|d| (*d).to_owned()).collect(),
                },
                canary: None,
            }],
            certificates: Vec::new(),
            challenges: Vec::new(),
        })
    };
    let router = router(table(&["10.0.0.0/8"], &[], None)).await;
    let get = "GET / HTTP/1.1\r\nHost: shop.localhost\r\nConnection: close\r\n\r\n";
    assert!(raw(router.address, get).await.starts_with("HTTP/1.1 403"), "only 10/8 may come in");
    router.table.store(Arc::new(table(&["127.0.0.0/8"], &["127.0.0.1"], None)));
    assert!(raw(router.address, get).await.starts_with("HTTP/1.1 403"), "denied wins over allowed");
    router.table.store(Arc::new(table(&["127.0.0.0/8", "::1"], &["127.0.0.2"], Some(10))));
    assert!(raw(router.address, get).await.starts_with("HTTP/1.1 200"));

    let post = |body: &str, chunked: bool| {
        let framing = if chunked {
            format!("Transfer-Encoding: chunked\r\n\r\n{:x}\r\n{body}\r\n0\r\n\r\n", body.len())
        } else {
            format!("Content-Length: {}\r\n\r\n{body}", body.len())
        };
        format!("POST / HTTP/1.1\r\nHost: shop.localhost\r\nConnection: close\r\n{framing}")
    };
    assert!(raw(router.address, &post("0123456789", false)).await.starts_with("HTTP/1.1 200"), "at the limit");
    let over = raw(router.address, &post("0123456789a", false)).await;
    assert!(over.starts_with("HTTP/1.1 413") && over.contains("at most 10 bytes"), "{over}");
    let streamed = raw(router.address, &post(&"x".repeat(100), true)).await;
    assert!(streamed.starts_with("HTTP/1.1 413"), "a chunked body is counted as it streams: {streamed}");
    assert!(raw(router.address, &post("small", true)).await.starts_with("HTTP/1.1 200"));
}

/// An upstream that takes `delay` to answer each request with its name.
pub(crate) async fn slow(name: &'static str, delay: Duration) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 4096];
                while let Ok(n) = stream.read(&mut buf).await {
                    if n == 0 {
                        return;
                    }
                    tokio::time::sleep(delay).await;
                    let answer = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{name}", name.len());
                    if stream.write_all(answer.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    address
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_go_to_the_backend_with_the_fewest_outstanding() {
    let (busy, idle) = (slow("busy", Duration::from_secs(2)).await, slow("idle", Duration::ZERO).await);
    let router = router(snapshot(1, &[("shop", vec![busy, idle])])).await;
    let get = |address: SocketAddr| async move {
        let response = reqwest::Client::new()
            .get(format!("http://{address}/"))
            .header("Host", "shop.localhost")
            .send()
            .await
            .unwrap();
        response.text().await.unwrap()
    };
    // The first request goes to `busy` (its turn) and stays outstanding for two seconds.
    let first = tokio::spawn(get(router.address));
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Round robin would send every other one of these to `busy` too.
    let mut answers = Vec::new();
    for _ in 0..4 {
        answers.push(get(router.address).await);
    }
    assert_eq!(answers, ["idle"; 4], "the idle backend takes them while the other is busy");
    assert_eq!(first.await.unwrap(), "busy");
}

#[tokio::test]
async fn request_heads_over_64_kib_are_refused() {
    let (app, _) = recording().await;
    let router = router(snapshot(1, &[("shop", vec![app])])).await;
    let within =
        format!("GET / HTTP/1.1\r\nHost: shop.localhost\r\nX-Big: {}\r\nConnection: close\r\n\r\n", "a".repeat(40_000));
    assert!(raw(router.address, &within).await.starts_with("HTTP/1.1 200"), "40 KB of headers pass");
    let over = format!(
        "GET / HTTP/1.1\r\nHost: shop.localhost\r\nX-Big: {}\r\nConnection: close\r\n\r\n",
        "a".repeat(100_000)
    );
    let answer = raw(router.address, &over).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{}", answer.lines().next().unwrap_or_default());
}
