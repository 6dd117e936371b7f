//! Debian's rsyslog as a real peer both ways: forwarding to Skiff's logger with octet
//! counting, in the clear and over TLS (RFC 5425), and receiving from a Skiff drain.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use std::sync::Arc;

use skiff_api::{Drain, LogLine, LogSource};
use skiff_logger::Buffers;
use skiff_logger::drain::tls_config;
use skiff_logger::syslog::{Ingest, serve_tcp, tls_acceptor};
use tokio_util::sync::CancellationToken;

use crate::drains::loopback_drains;
use crate::{logger, wait_for};

/// An rsyslogd in the foreground with a private configuration and work directory.
struct Rsyslog {
    child: Child,
    dir: tempfile::TempDir,
    /// Its TCP input.
    port: u16,
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

impl Rsyslog {
    /// Starts rsyslogd with the top-level statements `top` (templates) and a TCP input on
    /// a free port whose messages go through `rules` (`{dir}` is replaced with the work
    /// directory), and waits until it accepts.
    async fn start(top: &str, rules: &str) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let config = format!(
            "global(workDirectory=\"{dir}\")\n\
             module(load=\"imtcp\")\n\
             {top}\n\
             input(type=\"imtcp\" address=\"127.0.0.1\" port=\"{port}\" ruleset=\"main\")\n\
             ruleset(name=\"main\") {{\n{rules}\n}}\n",
            dir = dir.path().display(),
            rules = rules.replace("{dir}", &dir.path().display().to_string()),
        );
        let path = dir.path().join("rsyslog.conf");
        std::fs::write(&path, config).unwrap();
        let child = Command::new("rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(&path)
            .arg("-i")
            .arg(dir.path().join("rsyslog.pid"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("rsyslogd runs (apt-get install rsyslog; deploy/test.sh installs it)");
        // Built first, so that a failure below still stops rsyslogd.
        let rsyslog = Self { child, dir, port };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return rsyslog;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        panic!("rsyslogd never listened on {port}");
    }

    fn file(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

#[tokio::test]
#[ignore = "needs rsyslog (deploy/test.sh installs it)"]
async fn rsyslog_forwards_to_skiff_with_octet_counting() {
    let skiff = logger().await;
    let rules = format!(
        "action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{}\" protocol=\"tcp\" \
         TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\")",
        skiff.syslog.port()
    );
    let rsyslog = Rsyslog::start("", &rules).await;
    // util-linux logger → rsyslog's TCP input → rsyslog forwards to Skiff.
    let messages = ["first through rsyslog", "second, with ünïcode", "third [with brackets]"];
    for message in messages {
        let status = Command::new("logger")
            .args(["-n", "127.0.0.1", "-P", &rsyslog.port.to_string(), "-T", "--rfc5424", "-t", "shop.web.3"])
            .arg(message)
            .status()
            .unwrap();
        assert!(status.success());
    }
    let found = wait_for(&skiff, "shop", messages.len()).await;
    let got: Vec<&str> = found.iter().map(|l| l.message.as_str()).collect();
    assert_eq!(got, messages, "in order, whole, as process web.3");
    assert!(found.iter().all(|l| l.process == "web.3" && l.source == LogSource::App));
}

#[tokio::test]
#[ignore = "needs rsyslog (deploy/test.sh installs it)"]
async fn a_skiff_drain_delivers_to_rsyslog() {
    let rsyslog = Rsyslog::start(
        "template(name=\"fields\" type=\"string\" string=\"%APP-NAME%|%PROCID%|%msg%\\n\")",
        "action(type=\"omfile\" file=\"{dir}/received.log\" template=\"fields\")",
    )
    .await;
    let shutdown = CancellationToken::new();
    let drains = loopback_drains(tls_config(None).unwrap(), 100, &shutdown);
    let url = format!("syslog://127.0.0.1:{}", rsyslog.port);
    drains.set(vec![Drain { id: 1, url, app: Some("shop".parse().unwrap()), created_at: String::new(), status: None }]);
    let buffers = Buffers::with_drains(100, Some(drains));
    for n in 0..50 {
        buffers.push(LogLine {
            time: "2026-11-24T20:20:16.123456Z".into(),
            app: "shop".parse().unwrap(),
            source: LogSource::App,
            process: "web.1".into(),
            release: None,
            message: format!("numbered line {n}"),
        });
    }
    let path = rsyslog.file("received.log");
    let mut received = String::new();
    for _ in 0..200 {
        received = std::fs::read_to_string(&path).unwrap_or_default();
        if received.lines().count() >= 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let lines: Vec<&str> = received.lines().collect();
    assert_eq!(lines.len(), 50, "{received}");
    for (n, line) in lines.iter().enumerate() {
        assert_eq!(*line, format!("shop|web.1|numbered line {n}"));
    }
    shutdown.cancel();
}

/// A CA and a certificate it signed for `localhost`: (CA PEM, leaf chain PEM, leaf key PEM).
fn localhost_chain() -> (String, String, String) {
    let ca_key = rcgen::KeyPair::generate().unwrap();
    let mut ca_params = rcgen::CertificateParams::default();
    ca_params.distinguished_name.push(rcgen::DnType::CommonName, "test CA");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![rcgen::KeyUsagePurpose::KeyCertSign];
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let issuer = rcgen::Issuer::new(ca_params, ca_key);
    let leaf_key = rcgen::KeyPair::generate().unwrap();
    let mut leaf_params = rcgen::CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    leaf_params.distinguished_name.push(rcgen::DnType::CommonName, "localhost");
    let leaf = leaf_params.signed_by(&leaf_key, &issuer).unwrap();
    (ca.pem(), leaf.pem(), leaf_key.serialize_pem())
}

#[tokio::test]
#[ignore = "needs rsyslog (deploy/test.sh installs it)"]
async fn rsyslog_forwards_to_skiff_over_tls() {
    let (ca, chain, key) = localhost_chain();
    let buffers = Arc::new(Buffers::new(100));
    let ingest = Ingest::new(buffers.clone(), skiff_logger::syslog::DEFAULT_MAX_MESSAGE);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let key = certified_key(&chain, &key);
    let shutdown = CancellationToken::new();
    tokio::spawn(serve_tcp(listener, Some(tls_acceptor(key).unwrap()), ingest, shutdown.clone()));

    let dir = tempfile::tempdir().unwrap();
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&ca_path, ca).unwrap();
    let top = format!("global(DefaultNetstreamDriverCAFile=\"{}\")", ca_path.display());
    let rules = format!(
        "action(type=\"omfwd\" target=\"127.0.0.1\" port=\"{port}\" protocol=\"tcp\" StreamDriver=\"gtls\" \
         StreamDriverMode=\"1\" StreamDriverAuthMode=\"x509/name\" StreamDriverPermittedPeers=\"localhost\" \
         TCP_Framing=\"octet-counted\" template=\"RSYSLOG_SyslogProtocol23Format\")"
    );
    let rsyslog = Rsyslog::start(&top, &rules).await;
    let status = Command::new("logger")
        .args(["-n", "127.0.0.1", "-P", &rsyslog.port.to_string(), "-T", "--rfc5424", "-t", "shop.web.4"])
        .arg("sealed in TLS")
        .status()
        .unwrap();
    assert!(status.success());
    let mut found = Vec::new();
    for _ in 0..100 {
        found = buffers.tail_and_follow(&"shop".parse().unwrap(), 10).0;
        if !found.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        found.iter().map(|l| (l.process.as_str(), l.message.as_str())).collect::<Vec<_>>(),
        [("web.4", "sealed in TLS")]
    );
    shutdown.cancel();
}

/// A PEM chain and key as rustls serves them.
fn certified_key(chain: &str, key: &str) -> Arc<rustls::sign::CertifiedKey> {
    use rustls::pki_types::pem::PemObject as _;
    let chain =
        rustls::pki_types::CertificateDer::pem_slice_iter(chain.as_bytes()).collect::<Result<Vec<_>, _>>().unwrap();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(key.as_bytes()).unwrap();
    let key = rustls::crypto::aws_lc_rs::sign::any_supported_type(&key).unwrap();
    Arc::new(rustls::sign::CertifiedKey::new(chain, key))
}

#[tokio::test]
async fn a_plain_client_on_the_tls_port_is_refused_and_counted() {
    let (_, chain, key) = localhost_chain();
    let buffers = Arc::new(Buffers::new(100));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let shutdown = CancellationToken::new();
    let acceptor = tls_acceptor(certified_key(&chain, &key)).unwrap();
    tokio::spawn(serve_tcp(
        listener,
        Some(acceptor),
        Ingest::new(buffers.clone(), skiff_logger::syslog::DEFAULT_MAX_MESSAGE),
        shutdown.clone(),
    ));
    let mut plain = tokio::net::TcpStream::connect(address).await.unwrap();
    tokio::io::AsyncWriteExt::write_all(&mut plain, b"<13>1 - - shop.web.1 - - - not encrypted\n").await.unwrap();
    let mut rest = Vec::new();
    let _ =
        tokio::time::timeout(Duration::from_secs(5), tokio::io::AsyncReadExt::read_to_end(&mut plain, &mut rest)).await;
    assert!(buffers.tail_and_follow(&"shop".parse().unwrap(), 10).0.is_empty());
    assert_eq!(buffers.stats.rejected.load(std::sync::atomic::Ordering::Relaxed), 1);
    shutdown.cancel();
}
