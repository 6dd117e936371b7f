//! Debian's rsyslog as a real peer both ways: forwarding to Skiff's logger with octet
//! counting, and receiving from a Skiff drain.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use skiff_api::{Drain, LogLine, LogSource};
use skiff_logger::Buffers;
use skiff_logger::drain::{Drains, tls_config};
use tokio_util::sync::CancellationToken;

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
async fn a_skiff_drain_delivers_to_rsyslog() {
    let rsyslog = Rsyslog::start(
        "template(name=\"fields\" type=\"string\" string=\"%APP-NAME%|%PROCID%|%msg%\\n\")",
        "action(type=\"omfile\" file=\"{dir}/received.log\" template=\"fields\")",
    )
    .await;
    let shutdown = CancellationToken::new();
    let drains = Drains::new(tls_config(None).unwrap(), 100, shutdown.clone());
    let url = format!("syslog://127.0.0.1:{}", rsyslog.port);
    drains.set(vec![Drain { id: 1, url, app: Some("shop".parse().unwrap()), created_at: String::new(), status: None }]);
    let buffers = Buffers::with_drains(100, Some(drains));
    for n in 0..50 {
        buffers.push(LogLine {
            time: "2026-11-24T20:20:16.123456Z".into(),
            app: "shop".parse().unwrap(),
            source: LogSource::App,
            process: "web.1".into(),
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
