//! Requests without a body, which the router relays itself: answers keep their framing
//! (lengths, chunks and trailers, HEAD, close-delimited), pipelined requests are answered
//! in order, interim answers are passed over, broken answers become 502s, app connections
//! are reused only when clean, a request with a body on the same connection goes to
//! hyper's server, and an answer that stalls or a client that stops reading is cut off at
//! the idle timeout.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use crate::{connect, exchange, router, send, snapshot, upstream};

/// An app that answers each request with the bytes `answer` gives for its path (and
/// closes the connection after it when the path ends in `/close`); counts connections.
async fn scripted(answer: fn(&str) -> String) -> (SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let accepted = Arc::new(AtomicUsize::new(0));
    let counted = accepted.clone();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            counted.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let mut read = Vec::new();
                let mut buffer = [0u8; 4096];
                loop {
                    let Some(end) = read.windows(4).position(|w| w == b"\r\n\r\n") else {
                        match stream.read(&mut buffer).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => read.extend_from_slice(&buffer[..n]),
                        }
                        continue;
                    };
                    let head = String::from_utf8_lossy(&read[..end]).into_owned();
                    read.drain(..end + 4);
                    let path = head.split_whitespace().nth(1).unwrap_or_default().to_owned();
                    if stream.write_all(answer(&path).as_bytes()).await.is_err() || path.ends_with("/close") {
                        return;
                    }
                }
            });
        }
    });
    (address, accepted)
}

fn framed(path: &str) -> String {
    match path {
        "/length" => "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nlength".into(),
        "/chunked" => {
            "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3;x=y\r\nchu\r\n5\r\nnked!\r\n0\r\nX-Sum: 8\r\n\r\n"
                .into()
        }
        "/interim" => {
            "HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nfinal".into()
        }
        "/empty" => "HTTP/1.1 204 No Content\r\n\r\n".into(),
        "/stray" => "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nokSTRAY".into(),
        "/broken" => "HTTP/1.1 2xx Nonsense\r\n\r\n".into(),
        // No length: the body ends when the app closes the connection.
        "/until/close" => "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nuntil the end".into(),
        _ => "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n".into(),
    }
}

fn get(path: &str) -> String {
    format!("GET {path} HTTP/1.1\r\nHost: app.localhost\r\n\r\n")
}

#[tokio::test]
async fn answers_keep_their_framing_and_pipelined_requests_are_answered_in_order() {
    let (app, _) = scripted(framed).await;
    let router = router(snapshot(1, &[("app", vec![app])])).await;
    let requests = [
        get("/length"),
        get("/chunked"),
        "HEAD /length HTTP/1.1\r\nHost: app.localhost\r\n\r\n".into(),
        get("/empty"),
        get("/interim"),
        get("/until/close"),
    ]
    .concat();
    let answer = crate::hardening::raw(router.address, &requests).await;
    // Bodies are not followed by a line end: status lines are found wherever they start.
    let statuses: Vec<&str> =
        answer.match_indices("HTTP/1.1 ").filter_map(|(at, _)| answer[at..].lines().next()).collect();
    assert_eq!(
        statuses,
        [
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 204 No Content",
            "HTTP/1.1 200 OK",
            "HTTP/1.1 200 OK"
        ],
        "{answer}"
    );
    // The chunks and their trailer pass as they came.
    assert!(answer.contains("\r\n\r\n3;x=y\r\nchu\r\n5\r\nnked!\r\n0\r\nX-Sum: 8\r\n\r\nHTTP/1.1 200 OK"), "{answer}");
    // HEAD's answer has the length but no body, 204's nothing: the next status follows.
    let after_head = answer.split("HTTP/1.1 204").next().unwrap();
    assert!(after_head.ends_with("Content-Length: 6\r\n") || after_head.ends_with("\r\n\r\n"), "{answer}");
    assert_eq!(answer.matches("length").count(), 1, "one body of /length: {answer}");
    assert!(!answer.contains("Early Hints"), "the interim answer is passed over: {answer}");
    assert!(answer.contains("\r\n\r\nfinal"), "{answer}");
    // The client learns that the close-delimited body ends with the connection.
    assert!(answer.to_ascii_lowercase().contains("connection: close\r\n"), "{answer}");
    assert!(answer.ends_with("\r\n\r\nuntil the end"), "{answer}");
}

#[tokio::test]
async fn a_broken_answer_is_a_502_and_a_connection_with_stray_bytes_is_not_reused() {
    let (app, accepted) = scripted(framed).await;
    let router = router(snapshot(1, &[("app", vec![app])])).await;
    let mut client = connect(&router).await;
    assert_eq!(send(&mut client, &get("/broken")).await.0, 502);
    assert_eq!(send(&mut client, &get("/length")).await, (200, "length".into()), "the client connection goes on");
    let before = accepted.load(Ordering::SeqCst);
    assert_eq!(send(&mut client, &get("/stray")).await, (200, "ok".into()));
    assert_eq!(send(&mut client, &get("/length")).await, (200, "length".into()));
    assert_eq!(accepted.load(Ordering::SeqCst), before + 1, "a new connection after the stray bytes");
    // A clean answer leaves its connection for the next request.
    assert_eq!(send(&mut client, &get("/length")).await, (200, "length".into()));
    assert_eq!(accepted.load(Ordering::SeqCst), before + 1);
}

#[tokio::test]
async fn an_app_that_closes_connections_unannounced_answers_every_request() {
    // Every connection is closed after one answer that says nothing of it.
    let (app, accepted) = scripted(|_| "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok".into()).await;
    let router = router(snapshot(1, &[("app", vec![app])])).await;
    let mut client = connect(&router).await;
    for round in 0..20 {
        let path = if round % 2 == 0 { "/close" } else { "/x/close" };
        assert_eq!(send(&mut client, &get(path)).await, (200, "ok".into()), "round {round}");
        // Sometimes the close arrives before the next request, sometimes not.
        if round % 4 == 0 {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    assert_eq!(accepted.load(Ordering::SeqCst), 20);
}

#[tokio::test]
async fn a_request_with_a_body_goes_on_to_hypers_server_on_the_same_connection() {
    let app = upstream("app").await;
    let router = router(snapshot(1, &[("app", vec![app])])).await;
    let mut client = connect(&router).await;
    let (status, relayed) = exchange(&mut client, "app.localhost", "").await;
    assert_eq!(status, 200);
    assert!(relayed.contains("via: 1.1 skiff"), "{relayed}");
    let post = "POST /form HTTP/1.1\r\nHost: app.localhost\r\nForwarded: for=6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\n\
                Content-Length: 5\r\n\r\nhello";
    let (status, served) = send(&mut client, post).await;
    assert_eq!(status, 200);
    assert!(served.starts_with("app\nPOST /form HTTP/1.1"), "{served}");
    // Both ways give the app the same headers (hyper's server writes names in lower case).
    for header in [
        "x-forwarded-for: 127.0.0.1",
        "x-forwarded-proto: http",
        "x-forwarded-host: app.localhost",
        "via: 1.1 skiff",
        "x-real-ip: 127.0.0.1",
    ] {
        assert!(relayed.to_ascii_lowercase().contains(header), "relayed: {relayed}");
        assert!(served.to_ascii_lowercase().contains(header), "served: {served}");
    }
    assert!(!served.contains("6.6.6.6"), "an untrusted client's Forwarded and X-Real-IP stop here: {served}");
    let (status, after) = exchange(&mut client, "app.localhost", "").await;
    // (The test app leaves bodies unread: the POST's is in front of this head.)
    assert_eq!((status, after.contains("GET /path?q=1 HTTP/1.1")), (200, true), "{after}");
}

/// curl's bodies and statuses for `paths` through the router (one connection), with
/// `options` of curl's.
async fn curl_bodies(router: SocketAddr, options: &[&str], paths: &[&str]) -> String {
    let urls: Vec<String> = paths.iter().map(|p| format!("http://{router}{p}")).collect();
    let output = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "-H", "Host: app.localhost", "-w", "|%{http_code}|%{http_version}\\n"])
        .args(options)
        .args(&urls)
        .output()
        .await
        .expect("curl runs");
    String::from_utf8_lossy(&output.stdout).into_owned() + &String::from_utf8_lossy(&output.stderr)
}

#[tokio::test]
async fn curl_gets_every_framing_over_http1_and_http2() {
    let (app, _) = scripted(framed).await;
    let router = router(snapshot(1, &[("app", vec![app])])).await;
    let paths = ["/length", "/chunked", "/interim", "/empty", "/until/close", "/length"];
    let bodies = |version: &str| {
        format!(
            "length|200|{version}\nchunked!|200|{version}\nfinal|200|{version}\n|204|{version}\nuntil the end|200|{version}\nlength|200|{version}\n"
        )
    };
    // The relay.
    assert_eq!(curl_bodies(router.address, &[], &paths).await, bodies("1.1"));
    // hyper's server (HTTP/1.1 handed over: `Connection` names a header; HTTP/2), with the
    // answers read from plain connections and their chunks undone.
    let handed_over = ["-H", "Connection: keep-alive, x-hop", "-H", "X-Hop: 1"];
    assert_eq!(curl_bodies(router.address, &handed_over, &paths).await, bodies("1.1"));
    // One curl per request: curl (7.88) breaks off a reused HTTP/2 connection with prior
    // knowledge ("Error in the HTTP2 framing layer"), against HAProxy as well.
    let mut http2 = String::new();
    for path in paths {
        http2 += &curl_bodies(router.address, &["--http2-prior-knowledge"], &[path]).await;
    }
    assert_eq!(http2, bodies("2"));
    // HEAD: the length, no body.
    for options in [&["-I"][..], &["-I", "--http2-prior-knowledge"]] {
        let head = curl_bodies(router.address, options, &["/length"]).await.to_ascii_lowercase();
        assert!(head.contains("content-length: 6") && !head.contains("\r\n\r\nlength"), "{head}");
    }
}

#[tokio::test]
async fn an_answer_head_past_the_limit_is_a_502() {
    let (app, _) =
        scripted(|_| format!("HTTP/1.1 200 OK\r\nX-Big: {}\r\nContent-Length: 0\r\n\r\n", "a".repeat(70_000))).await;
    let router = router(snapshot(1, &[("app", vec![app])])).await;
    let mut client = connect(&router).await;
    let (status, body) = send(&mut client, &get("/")).await;
    assert_eq!((status, body.trim()), (502, "app app did not answer"));
}

#[tokio::test]
async fn a_shutdown_lets_the_request_under_way_finish_then_closes_the_connection() {
    let app = crate::hardening::slow("late", Duration::from_millis(300)).await;
    let router = router(snapshot(1, &[("app", vec![app])])).await;
    let mut client = connect(&router).await;
    client.get_mut().write_all(get("/").as_bytes()).await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    router.shutdown.cancel();
    let mut answer = String::new();
    let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_string(&mut answer)).await;
    read.expect("the connection is closed after the answer").unwrap();
    assert!(answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("\r\n\r\nlate"), "{answer}");
}

#[tokio::test]
async fn large_answers_stream_through_whole_in_every_framing() {
    fn large(path: &str) -> String {
        let body: String = (0..200_000).map(|i| format!("{:09}\n", i % 1_000_000_000)).collect();
        match path {
            "/chunked" => {
                let chunks: String = body
                    .as_bytes()
                    .chunks(7_000)
                    .map(|c| format!("{:x}\r\n{}\r\n", c.len(), String::from_utf8_lossy(c)))
                    .collect();
                format!("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n{chunks}0\r\n\r\n")
            }
            _ => format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n{body}", body.len()),
        }
    }
    let (app, accepted) = scripted(large).await;
    let router = router(snapshot(1, &[("app", vec![app])])).await;
    for options in [&[][..], &["--http2-prior-knowledge"]] {
        for path in ["/length", "/chunked"] {
            let url = format!("http://{}{path}", router.address);
            let output = tokio::process::Command::new("curl")
                .args(["-sS", "--max-time", "20", "-H", "Host: app.localhost"])
                .args(options)
                .arg(&url)
                .output()
                .await
                .expect("curl runs");
            let body = String::from_utf8_lossy(&output.stdout);
            assert_eq!(body.len(), 2_000_000, "{path} {options:?}: {}", String::from_utf8_lossy(&output.stderr));
            assert!(body.lines().enumerate().all(|(i, line)| line == format!("{i:09}")), "{path} {options:?}");
        }
    }
    assert!(accepted.load(Ordering::SeqCst) <= 2, "app connections reused after whole answers");
}

/// An app whose answer to `/stall` promises 1,000 bytes and sends ten, and whose answer to
/// `/big` is 64 MiB; it holds every connection open.
async fn stalling() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((mut stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut head = Vec::new();
                let mut buffer = [0u8; 1024];
                while !head.windows(4).any(|w| w == b"\r\n\r\n") {
                    match stream.read(&mut buffer).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => head.extend_from_slice(&buffer[..n]),
                    }
                }
                if head.starts_with(b"GET /big ") {
                    let body = vec![b'x'; 64 << 20];
                    let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
                    if stream.write_all(head.as_bytes()).await.is_err() || stream.write_all(&body).await.is_err() {
                        return;
                    }
                } else {
                    let _ = stream.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789").await;
                }
                tokio::time::sleep(Duration::from_secs(60)).await;
            });
        }
    });
    address
}

#[tokio::test]
async fn an_answer_that_stalls_or_a_client_that_stops_reading_is_cut_off_after_the_idle_timeout() {
    let app = stalling().await;
    let config = skiff_router::Config { idle_timeout: Duration::from_millis(500), ..Default::default() };
    let router = crate::router_with(snapshot(1, &[("app", vec![app])]), config).await;

    // The body stops coming: the client gets what came, then the connection closes.
    let mut client = connect(&router).await;
    let started = std::time::Instant::now();
    client.get_mut().write_all(get("/stall").as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), client.read_to_end(&mut answer)).await;
    assert!(read.is_ok(), "a stalled answer's connection is closed");
    let (waited, answer) = (started.elapsed(), String::from_utf8_lossy(&answer));
    assert!(answer.starts_with("HTTP/1.1 200 OK") && answer.ends_with("\r\n\r\n0123456789"), "{answer}");
    assert!(waited >= Duration::from_millis(450), "not before the idle timeout: {waited:?}");

    // The client reads the head and no more: once the buffers between are full nothing
    // moves, and the connection is closed with most of the answer never sent.
    let mut client = connect(&router).await;
    client.get_mut().write_all(get("/big").as_bytes()).await.unwrap();
    let mut status = String::new();
    tokio::io::AsyncBufReadExt::read_line(&mut client, &mut status).await.unwrap();
    assert!(status.starts_with("HTTP/1.1 200"), "{status}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut rest = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(10), client.read_to_end(&mut rest)).await;
    assert!(read.is_ok(), "the connection ends");
    assert!(rest.len() < 32 << 20, "the router stopped relaying: {} bytes came", rest.len());
}
