//! Readiness checks of new and running containers.
//!
//! A bare TCP connect proves nothing here: the engine's port proxy accepts connections
//! before the app listens, then closes them. So an HTTP check waits for an answer, and a
//! TCP check waits to see the connection stay open.

use std::net::SocketAddr;
use std::time::Duration;

use skiff_api::{CheckKind, Healthcheck, ProcessType};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::runtime::{Container, ContainerRuntime, NodeState, RuntimeError};

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a TCP connection must stay open to count.
const TCP_SETTLE: Duration = Duration::from_millis(300);

/// What ready means for one process type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Check {
    /// Any HTTP answer, or with a path, a 2xx or 3xx answer there.
    Http { path: Option<String> },
    /// The connection stays open.
    Tcp,
    /// The container keeps running (nothing to probe).
    Running,
}

impl Check {
    /// The check of a process type: its configured one, else HTTP for `web` and
    /// "keeps running" for the rest.
    pub fn of(process: &str, configured: Option<&Healthcheck>) -> Self {
        match configured {
            Some(Healthcheck { kind: CheckKind::Http, path, .. }) => Check::Http { path: path.clone() },
            Some(Healthcheck { kind: CheckKind::Tcp, .. }) => Check::Tcp,
            Some(Healthcheck { kind: CheckKind::None, .. }) => Check::Running,
            None if ProcessType::is_web(process) => Check::Http { path: None },
            None => Check::Running,
        }
    }

    /// Probes a running container whose `$PORT` is published at `address`.
    pub async fn probe(&self, address: Option<SocketAddr>) -> bool {
        match (self, address) {
            (Check::Running, _) => true,
            (_, None) => false,
            (Check::Http { path }, Some(address)) => {
                matches!(tokio::time::timeout(PROBE_TIMEOUT, http(address, path.as_deref())).await, Ok(Some(true)))
            }
            (Check::Tcp, Some(address)) => {
                matches!(tokio::time::timeout(PROBE_TIMEOUT, tcp(address)).await, Ok(Some(true)))
            }
        }
    }
}

/// Whether an HTTP request gets an answer (with `path`: a 2xx or 3xx one).
async fn http(address: SocketAddr, path: Option<&str>) -> Option<bool> {
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let request = format!("GET {} HTTP/1.0\r\nHost: skiff-healthcheck\r\n\r\n", path.unwrap_or("/"));
    stream.write_all(request.as_bytes()).await.ok()?;
    let mut head = [0u8; 16];
    let n = stream.read(&mut head).await.ok()?;
    Some(match path {
        None => n > 0,
        Some(_) => status_is_ok(&head[..n]),
    })
}

/// `HTTP/1.x 2xx` or `3xx`.
fn status_is_ok(head: &[u8]) -> bool {
    head.starts_with(b"HTTP/1.") && head.len() >= 10 && matches!(head[9], b'2' | b'3')
}

/// Whether a connection stays open for a moment (the port proxy closes it at once when the
/// app does not listen).
async fn tcp(address: SocketAddr) -> Option<bool> {
    let mut stream = tokio::net::TcpStream::connect(address).await.ok()?;
    let mut byte = [0u8; 1];
    Some(match tokio::time::timeout(TCP_SETTLE, stream.read(&mut byte)).await {
        Err(_) => true,
        Ok(Ok(n)) => n > 0,
        Ok(Err(_)) => false,
    })
}

/// Why a new container never became ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BootFailure {
    /// It stopped while starting; `reason` says how (see [`exit_reason`]).
    Exited {
        reason: String,
        /// The shell could not run its command or did not find it (status 126 or 127).
        missing_command: bool,
    },
    /// It kept running but did not pass its check in time; `what` is what the check asked.
    NotReady { process: String, what: String, timeout: Duration },
    /// Its node stopped taking work (drained or lost) before it ran: it is no fault of
    /// the app's, and another is started elsewhere.
    NodeGone { process: String },
}

impl std::fmt::Display for BootFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Exited { reason, missing_command } => {
                let hint = if *missing_command {
                    " (its command is not in the image: is the stack the right one?)"
                } else {
                    ""
                };
                write!(f, "{reason} while starting{hint}")
            }
            Self::NotReady { process, what, timeout } => {
                write!(f, "{process} did not {what} within {} s", timeout.as_secs())
            }
            Self::NodeGone { process } => write!(f, "the node {process} was placed on left before it ran"),
        }
    }
}

/// The pause between looks at a booting container: the first, doubled up to the last.
const BOOT_PROBE_PAUSE: std::ops::Range<Duration> = Duration::from_millis(10)..Duration::from_millis(100);

/// Waits until a new container is ready: a `web` one answers HTTP on its port, others
/// keep running for a second. `Err` says why it never became ready.
pub(super) async fn boot(
    runtime: &dyn ContainerRuntime,
    container: &Container,
    check: &Check,
    timeout: Duration,
) -> Result<Result<(), BootFailure>, RuntimeError> {
    let deadline = tokio::time::Instant::now() + timeout;
    // A process with nothing to probe is ready once it has kept running for a second.
    let mut settle = container.running.then(|| tokio::time::Instant::now() + Duration::from_secs(1));
    let mut address = container.address;
    // Most apps listen within milliseconds of starting: looked at soon, then less often.
    let mut pause = BOOT_PROBE_PAUSE.start;
    loop {
        if runtime.exit_code(&container.id).await?.is_some() {
            let reason = exit_reason(runtime, &container.id, &container.process).await?;
            // 126 and 127 are the shell's "cannot run" and "not found".
            let missing_command = reason.ends_with("status 126") || reason.ends_with("status 127");
            return Ok(Err(BootFailure::Exited { reason, missing_command }));
        }
        // A container an orchestrator has yet to place runs (and gets its address) later,
        // unless its node stops taking work first.
        if settle.is_none()
            && let Some(now) = runtime.find(&container.id).await?
        {
            if now.node_state != NodeState::Up {
                return Ok(Err(BootFailure::NodeGone { process: container.process.clone() }));
            }
            if now.running {
                settle = Some(tokio::time::Instant::now() + Duration::from_secs(1));
                address = now.address;
            }
        }
        let ready = match check {
            Check::Running => settle.is_some_and(|settle| tokio::time::Instant::now() >= settle),
            _ => check.probe(address).await,
        };
        if ready {
            return Ok(Ok(()));
        }
        if tokio::time::Instant::now() >= deadline {
            let what = match check {
                Check::Http { path: Some(path) } => format!("answer {path} with a 2xx or 3xx status on $PORT"),
                Check::Http { path: None } => "answer HTTP on $PORT (listen on 0.0.0.0:$PORT)".to_owned(),
                Check::Tcp => "accept TCP connections on $PORT".to_owned(),
                Check::Running => "keep running".to_owned(),
            };
            return Ok(Err(BootFailure::NotReady { process: container.process.clone(), what, timeout }));
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(BOOT_PROBE_PAUSE.end);
    }
}

/// Why a container stopped: killed for memory, or its exit status.
pub(super) async fn exit_reason(
    runtime: &dyn ContainerRuntime,
    id: &str,
    process: &str,
) -> Result<String, RuntimeError> {
    if runtime.out_of_memory(id).await? {
        return Ok(format!("{process} was killed for using more than its memory limit"));
    }
    Ok(match runtime.exit_code(id).await? {
        Some(code) => format!("{process} exited with status {code}"),
        None => format!("{process} exited"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_default_by_process_type() {
        assert_eq!(Check::of("web", None), Check::Http { path: None });
        assert_eq!(Check::of("worker", None), Check::Running);
        let tcp = Healthcheck { kind: CheckKind::Tcp, path: None, timeout_secs: None };
        assert_eq!(Check::of("web", Some(&tcp)), Check::Tcp);
    }

    #[test]
    fn only_2xx_and_3xx_pass_a_path_check() {
        assert!(status_is_ok(b"HTTP/1.1 200 OK"));
        assert!(status_is_ok(b"HTTP/1.0 302 Found"));
        assert!(!status_is_ok(b"HTTP/1.1 503 Service"));
        assert!(!status_is_ok(b"garbage"));
    }

    #[tokio::test]
    async fn probes_tell_listening_from_closing() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let server = tokio::spawn(async move {
            for answer in [&b"HTTP/1.1 404 Not Found\r\n\r\n"[..], b"HTTP/1.1 200 OK\r\n\r\n"] {
                let (mut stream, _) = listener.accept().await.unwrap();
                let mut buf = [0u8; 256];
                let _ = stream.read(&mut buf).await;
                stream.write_all(answer).await.unwrap();
            }
            // A connection that is accepted and closed at once, like the port proxy's.
            let (stream, _) = listener.accept().await.unwrap();
            drop(stream);
        });
        let health = Check::Http { path: Some("/health".into()) };
        assert!(!health.probe(Some(address)).await, "404 fails a path check");
        assert!(health.probe(Some(address)).await, "200 passes");
        assert!(!Check::Tcp.probe(Some(address)).await, "a connection closed at once fails");
        server.await.unwrap();
        assert!(!Check::Http { path: None }.probe(None).await);
    }
}
