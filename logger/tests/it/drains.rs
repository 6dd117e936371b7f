//! Drains against receiving servers on loopback: plain syslog over TCP, syslog over TLS,
//! HTTPS; a drain that is down, then comes back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use skiff_api::{Drain, DrainStatus, LogLine, LogSource, OutboundPolicy};
use skiff_logger::Buffers;
use skiff_logger::drain::{DrainOptions, Drains, tls_config};
use skiff_logger::syslog::{Ingest, serve_tcp};
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

/// Drains that may reach the receivers these tests run on loopback (the outbound guard
/// refuses loopback by default), queueing `capacity` lines each.
pub fn loopback_drains(tls: Arc<rustls::ClientConfig>, capacity: usize, shutdown: &CancellationToken) -> Arc<Drains> {
    let options = DrainOptions {
        tls,
        queue_capacity: capacity,
        outbound: OutboundPolicy::parse("127.0.0.0/8").unwrap(),
        lines_per_second: 100_000,
    };
    Drains::new(options, shutdown.clone())
}

/// A line of `app`'s `web.1` at a fixed time.
pub fn line(app: &str, message: &str) -> LogLine {
    LogLine {
        time: "2026-11-24T20:20:16Z".into(),
        app: app.parse().unwrap(),
        source: LogSource::App,
        process: "web.1".into(),
        release: None,
        message: message.into(),
    }
}

fn drain(id: i64, url: String, app: Option<&str>) -> Drain {
    Drain { id, url, app: app.map(|a| a.parse().unwrap()), created_at: String::new(), status: None }
}

/// Reads one octet-counted frame; `None` at EOF.
async fn read_frame(reader: &mut (impl AsyncBufRead + Unpin)) -> Option<String> {
    let mut count = Vec::new();
    reader.read_until(b' ', &mut count).await.ok()?;
    let length: usize = std::str::from_utf8(&count).ok()?.trim().parse().ok()?;
    let mut frame = vec![0; length];
    reader.read_exact(&mut frame).await.ok()?;
    Some(String::from_utf8(frame).unwrap())
}

/// A syslog receiver: every frame of every connection, in arrival order.
fn receive_syslog(listener: TcpListener) -> mpsc::UnboundedReceiver<String> {
    let (frames, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let frames = frames.clone();
            tokio::spawn(async move {
                let mut reader = BufReader::new(stream);
                while let Some(frame) = read_frame(&mut reader).await {
                    let _ = frames.send(frame);
                }
            });
        }
    });
    received
}

/// A syslog receiver over TLS: every frame of every connection that completes a handshake.
fn receive_syslog_tls(listener: TcpListener, tls: tokio_rustls::TlsAcceptor) -> mpsc::UnboundedReceiver<String> {
    let (frames, received) = mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (tls, frames) = (tls.clone(), frames.clone());
            tokio::spawn(async move {
                let Ok(stream) = tls.accept(stream).await else { return };
                let mut reader = BufReader::new(stream);
                while let Some(frame) = read_frame(&mut reader).await {
                    let _ = frames.send(frame);
                }
            });
        }
    });
    received
}

async fn next(received: &mut mpsc::UnboundedReceiver<String>) -> String {
    tokio::time::timeout(Duration::from_secs(10), received.recv()).await.expect("a frame within 10 s").unwrap()
}

/// Polls a drain's status until `done` holds (bounded).
async fn wait_status(drains: &Drains, id: i64, done: impl Fn(&DrainStatus) -> bool) -> DrainStatus {
    let there = || async {
        let status = drains.status().into_iter().find(|s| s.id == id).unwrap();
        done(&status).then_some(status)
    };
    let status = skiff_testing::eventually(Duration::from_secs(10), there).await;
    status.unwrap_or_else(|| panic!("drain {id} never got there: {:?}", drains.status()))
}

#[tokio::test]
async fn syslog_drains_get_their_apps_lines_and_platform_drains_every_line() {
    let shutdown = CancellationToken::new();
    let (app_listener, all_listener) =
        (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
    let app_url = format!("syslog://127.0.0.1:{}", app_listener.local_addr().unwrap().port());
    let all_url = format!("syslog://127.0.0.1:{}", all_listener.local_addr().unwrap().port());
    let (mut app_frames, mut all_frames) = (receive_syslog(app_listener), receive_syslog(all_listener));
    let drains = loopback_drains(tls_config(None).unwrap(), 100, &shutdown);
    drains.set(vec![drain(1, app_url, Some("shop")), drain(2, all_url, None)]);
    let buffers = Buffers::with_drains(100, Some(drains.clone()));

    buffers.push(line("shop", "first"));
    buffers.push(line("blog", "other app"));
    buffers.push(line("shop", "second ünïcode"));

    assert_eq!(next(&mut app_frames).await, "<190>1 2026-11-24T20:20:16Z skiff shop web.1 - - first");
    assert!(next(&mut app_frames).await.ends_with("- - second ünïcode"), "the blog line is not shop's");
    let all: Vec<String> =
        [next(&mut all_frames).await, next(&mut all_frames).await, next(&mut all_frames).await].into();
    assert!(all[1].contains(" skiff blog web.1 - - other app"), "{all:?}");
    let status = wait_status(&drains, 1, |s| s.delivered == 2).await;
    assert_eq!((status.dropped, status.last_error), (0, None));

    drains.set(vec![drain(2, format!("syslog://127.0.0.1:{}", 1), None)]);
    assert_eq!(drains.status().len(), 1, "a drain the controller no longer lists stops");
    shutdown.cancel();
}

#[tokio::test]
async fn a_dead_drain_never_blocks_ingestion_and_gets_its_queue_when_it_returns() {
    let shutdown = CancellationToken::new();
    let port = {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let drains = loopback_drains(tls_config(None).unwrap(), 10, &shutdown);
    drains.set(vec![drain(7, format!("syslog://127.0.0.1:{port}"), Some("shop"))]);
    let buffers = Buffers::with_drains(10_000, Some(drains.clone()));

    let started = std::time::Instant::now();
    for n in 0..1000 {
        buffers.push(line("shop", &format!("line {n}")));
    }
    assert!(started.elapsed() < Duration::from_secs(2), "ingestion does not wait for the drain");
    let failing = wait_status(&drains, 7, |s| s.last_error.is_some()).await;
    assert!(failing.last_error.as_deref().unwrap().contains("cannot connect"), "{failing:?}");
    assert_eq!(failing.delivered, 0);
    assert!(failing.dropped >= 1000 - 10 - 500, "a full queue drops and counts: {failing:?}");
    let kept = 1000 - failing.dropped;

    // The drain comes back: what it had queued (and the batch in hand) arrives.
    let mut frames = receive_syslog(TcpListener::bind(("127.0.0.1", port)).await.unwrap());
    let back = wait_status(&drains, 7, |s| s.delivered == kept).await;
    assert_eq!((back.queued, back.last_error), (0, None));
    for _ in 0..kept {
        assert!(next(&mut frames).await.contains("- - line "));
    }
    assert_eq!(buffers.tail_and_follow(&"shop".parse().unwrap(), 10_000).0.len(), 1000, "the buffer lost nothing");
    shutdown.cancel();
}

/// A self-signed certificate for `localhost`, its key, and its PEM in a file for
/// [`tls_config`].
fn certificate()
-> (rustls::pki_types::CertificateDer<'static>, rustls::pki_types::PrivateKeyDer<'static>, tempfile::NamedTempFile) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pem.path(), certified.cert.pem()).unwrap();
    let key = rustls::pki_types::PrivateKeyDer::Pkcs8(certified.signing_key.serialize_der().into());
    (certified.cert.der().clone(), key, pem)
}

fn acceptor(
    cert: rustls::pki_types::CertificateDer<'static>,
    key: rustls::pki_types::PrivateKeyDer<'static>,
) -> tokio_rustls::TlsAcceptor {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    tokio_rustls::TlsAcceptor::from(Arc::new(config))
}

#[tokio::test]
async fn tls_drains_check_the_certificate() {
    let shutdown = CancellationToken::new();
    let (cert, key, pem) = certificate();
    let tls = acceptor(cert, key);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address: SocketAddr = listener.local_addr().unwrap();
    let mut received = receive_syslog_tls(listener, tls);
    let url = format!("syslog+tls://localhost:{}", address.port());

    // Trusted through the extra CA file: delivered.
    let trusted = loopback_drains(tls_config(Some(pem.path())).unwrap(), 100, &shutdown);
    trusted.set(vec![drain(1, url.clone(), Some("shop"))]);
    Buffers::with_drains(10, Some(trusted.clone())).push(line("shop", "over tls"));
    assert!(next(&mut received).await.ends_with("- - over tls"));

    // Not trusted: nothing is sent, and the reason is reported.
    let untrusted = loopback_drains(tls_config(None).unwrap(), 100, &shutdown);
    untrusted.set(vec![drain(2, url, Some("shop"))]);
    Buffers::with_drains(10, Some(untrusted.clone())).push(line("shop", "must not arrive"));
    let status = wait_status(&untrusted, 2, |s| s.last_error.is_some()).await;
    assert!(status.last_error.unwrap().contains("certificate"));
    assert!(tokio::time::timeout(Duration::from_millis(300), received.recv()).await.is_err());
    shutdown.cancel();
}

#[tokio::test]
async fn a_self_signed_ca_certificate_the_operator_trusts_is_accepted_and_refusals_say_why() {
    let shutdown = CancellationToken::new();
    // As `openssl req -x509` makes them: self-signed and marked as a CA.
    let key = rcgen::KeyPair::generate().unwrap();
    let mut params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let cert = params.self_signed(&key).unwrap();
    let pem = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(pem.path(), cert.pem()).unwrap();
    let private = rustls::pki_types::PrivateKeyDer::Pkcs8(key.serialize_der().into());
    let tls = acceptor(cert.der().clone(), private);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut received = receive_syslog_tls(listener, tls);
    let url = format!("syslog+tls://localhost:{port}");

    let trusted = loopback_drains(tls_config(Some(pem.path())).unwrap(), 100, &shutdown);
    trusted.set(vec![drain(1, url.clone(), Some("shop"))]);
    Buffers::with_drains(10, Some(trusted.clone())).push(line("shop", "pinned"));
    assert!(next(&mut received).await.ends_with("- - pinned"));

    let untrusted = loopback_drains(tls_config(None).unwrap(), 100, &shutdown);
    untrusted.set(vec![drain(2, url, Some("shop"))]);
    Buffers::with_drains(10, Some(untrusted.clone())).push(line("shop", "must not arrive"));
    let error = wait_status(&untrusted, 2, |s| s.last_error.is_some()).await.last_error.unwrap();
    assert!(
        error.contains("presents a CA certificate as its own") && error.contains("SKIFF_LOGGER_DRAIN_CA"),
        "{error}"
    );
    shutdown.cancel();
}

#[tokio::test]
async fn https_drains_post_logplex_batches() {
    let shutdown = CancellationToken::new();
    let (cert, key, pem) = certificate();
    let tls = acceptor(cert, key);
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let (requests, mut received) = mpsc::unbounded_channel::<(hyper::HeaderMap, Bytes, String)>();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let (tls, requests) = (tls.clone(), requests.clone());
            tokio::spawn(async move {
                let Ok(stream) = tls.accept(stream).await else { return };
                let service = hyper::service::service_fn(move |request: hyper::Request<hyper::body::Incoming>| {
                    let requests = requests.clone();
                    async move {
                        let (parts, body) = request.into_parts();
                        let body = body.collect().await?.to_bytes();
                        let path = parts.uri.path_and_query().map(ToString::to_string).unwrap_or_default();
                        let _ = requests.send((parts.headers, body, path));
                        Ok::<_, hyper::Error>(hyper::Response::new(Full::new(Bytes::new())))
                    }
                });
                let _ =
                    hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
            });
        }
    });
    let drains = loopback_drains(tls_config(Some(pem.path())).unwrap(), 100, &shutdown);
    drains.set(vec![drain(3, format!("https://user:secret@localhost:{port}/logs?token=x"), Some("shop"))]);
    let buffers = Buffers::with_drains(10, Some(drains.clone()));
    buffers.push(line("shop", "one"));
    buffers.push(line("shop", "two"));

    let mut frames = Vec::new();
    while frames.len() < 2 {
        let (headers, body, path) =
            tokio::time::timeout(Duration::from_secs(10), received.recv()).await.expect("a POST").unwrap();
        assert_eq!(path, "/logs?token=x");
        assert_eq!(headers["content-type"], "application/logplex-1");
        assert_eq!(headers["authorization"], "Basic dXNlcjpzZWNyZXQ=");
        let count: usize = headers["logplex-msg-count"].to_str().unwrap().parse().unwrap();
        let mut reader = BufReader::new(&body[..]);
        for _ in 0..count {
            frames.push(read_frame(&mut reader).await.unwrap());
        }
    }
    assert!(frames[0].ends_with("- - one") && frames[1].ends_with("- - two"), "{frames:?}");
    wait_status(&drains, 3, |s| s.delivered == 2).await;
    shutdown.cancel();
}

/// Drains with the default outbound guard, `lines_per_second` per app drain.
fn guarded_drains(lines_per_second: u32, shutdown: &CancellationToken) -> Arc<Drains> {
    let options = DrainOptions {
        tls: tls_config(None).unwrap(),
        queue_capacity: 1000,
        outbound: OutboundPolicy::default(),
        lines_per_second,
    };
    Drains::new(options, shutdown.clone())
}

#[tokio::test]
async fn a_drain_into_this_logger_itself_does_not_go_round() {
    let shutdown = CancellationToken::new();
    let drains = loopback_drains(tls_config(None).unwrap(), 1000, &shutdown);
    let buffers = Arc::new(Buffers::with_drains(10_000, Some(drains.clone())));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let ingest = Ingest::new(buffers.clone(), skiff_logger::syslog::DEFAULT_MAX_MESSAGE);
    tokio::spawn(serve_tcp(listener, None, ingest, shutdown.clone()));
    // An app's drain (allowed onto loopback here) and a platform drain, under two names of
    // this logger's own syslog port.
    let own = [
        drain(1, format!("syslog://127.0.0.1:{port}"), Some("shop")),
        drain(2, format!("syslog://127.1:{port}"), None),
    ];
    drains.set(own.to_vec());

    buffers.push(line("shop", "said once"));
    wait_status(&drains, 1, |s| s.delivered == 1).await;
    wait_status(&drains, 2, |s| s.delivered == 1).await;
    // Given time to go round, nothing comes back.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (kept, _) = buffers.tail_and_follow(&"shop".parse().unwrap(), 100);
    assert_eq!(kept.iter().map(|l| l.message.as_str()).collect::<Vec<_>>(), ["said once"]);
    let status = drains.status();
    assert!(status.iter().all(|s| s.delivered == 1), "each drain delivered the line once: {status:?}");
    shutdown.cancel();
}

#[tokio::test]
async fn an_apps_drain_reaches_no_internal_address_and_platform_drains_may() {
    let shutdown = CancellationToken::new();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut received = receive_syslog(listener);
    let drains = guarded_drains(1000, &shutdown);
    let internal = ["127.0.0.1", "127.1", "2130706433", "0.0.0.0", "[::1]", "localhost"];
    let mut wanted: Vec<Drain> =
        internal.iter().zip(1..).map(|(host, id)| drain(id, format!("syslog://{host}:{port}"), Some("shop"))).collect();
    wanted.push(drain(100, format!("syslog://127.0.0.1:{port}"), None));
    drains.set(wanted);
    Buffers::with_drains(10, Some(drains.clone())).push(line("shop", "for the platform drain only"));
    assert!(next(&mut received).await.ends_with("for the platform drain only"));
    for id in 1..=6 {
        let status = wait_status(&drains, id, |s| s.last_error.is_some()).await;
        let error = status.last_error.unwrap();
        assert!(error.starts_with("refused: ") && error.contains("SKIFF_OUTBOUND_ALLOW"), "{id}: {error}");
        assert_eq!(status.delivered, 0);
    }
    assert!(tokio::time::timeout(Duration::from_millis(300), received.recv()).await.is_err(), "nothing else came");
    shutdown.cancel();
}

#[tokio::test]
async fn an_apps_drain_sends_at_most_its_rate_and_platform_drains_everything() {
    let shutdown = CancellationToken::new();
    let (app_listener, all_listener) =
        (TcpListener::bind("127.0.0.1:0").await.unwrap(), TcpListener::bind("127.0.0.1:0").await.unwrap());
    let options = DrainOptions {
        tls: tls_config(None).unwrap(),
        queue_capacity: 1000,
        outbound: OutboundPolicy::parse("127.0.0.0/8").unwrap(),
        lines_per_second: 10,
    };
    let drains = Drains::new(options, shutdown.clone());
    drains.set(vec![
        drain(1, format!("syslog://{}", app_listener.local_addr().unwrap()), Some("shop")),
        drain(2, format!("syslog://{}", all_listener.local_addr().unwrap()), None),
    ]);
    let (_app_frames, _all_frames) = (receive_syslog(app_listener), receive_syslog(all_listener));
    let buffers = Buffers::with_drains(1000, Some(drains.clone()));
    for n in 0..200 {
        buffers.push(line("shop", &format!("line {n}")));
    }
    let limited = wait_status(&drains, 1, |s| s.delivered + s.dropped == 200 && s.queued == 0).await;
    assert!((10..=12).contains(&limited.delivered), "a second's worth goes: {limited:?}");
    wait_status(&drains, 2, |s| s.delivered == 200).await;
    shutdown.cancel();
}
