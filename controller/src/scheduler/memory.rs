//! A [`ContainerRuntime`] whose containers live in this process: for scheduler tests that
//! need no engine, and for measuring the controller apart from the engine
//! (`SKIFF_RUNTIME=memory`).
//!
//! A `web` container is a small HTTP server on 127.0.0.1 that answers every request with
//! `<app> v<release> <container id>`, so health checks, the route feed and the router all
//! see real backends. Other process types just run. A container's command decides how it
//! behaves:
//! - `exit N`: exits with status N as soon as it starts (a crash, or a command not found);
//! - `hang`: runs but never answers on its port (it never becomes ready);
//! - anything else: serves (web) or keeps running.
//!
//! One-off containers print their command and exit 0 (`exit N` exits with N; `hang` runs
//! until its timeout, then ends with 124 as a timed-out one-off does on an engine).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use skiff_api::RunOutput;

use super::runtime::{Container, ContainerRuntime, NodeState, RuntimeError, StartSpec};

/// Containers as tasks of this process.
#[derive(Default)]
pub struct MemoryRuntime {
    containers: Mutex<BTreeMap<String, Running>>,
    /// Containers started so far, removed or not.
    starts: AtomicU64,
}

struct Running {
    container: Container,
    /// The exit status once it stopped.
    exit: Option<i64>,
    /// Its HTTP server, if it serves one.
    server: Option<tokio::task::JoinHandle<()>>,
}

impl Running {
    fn stop(&mut self, status: i64) {
        self.container.running = false;
        self.exit = Some(status);
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

impl Drop for MemoryRuntime {
    fn drop(&mut self) {
        for running in self.lock().values_mut() {
            running.stop(137);
        }
    }
}

impl MemoryRuntime {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many containers were started so far.
    pub fn starts(&self) -> u64 {
        self.starts.load(Ordering::Relaxed)
    }

    /// Makes a running container exit with `status`, as a crash would.
    pub fn crash(&self, id: &str, status: i64) {
        if let Some(running) = self.lock().get_mut(id) {
            running.stop(status);
        }
    }

    /// A running container of `spec` with a new id (no address yet), counted as a start.
    fn new_container(&self, spec: &StartSpec) -> Container {
        let number = self.starts.fetch_add(1, Ordering::Relaxed);
        Container {
            id: format!("{:016x}{:048x}", rand::random::<u64>(), number),
            app: spec.app.clone(),
            app_id: Some(spec.app_id),
            release: spec.release,
            generation: spec.generation,
            process: spec.process.clone(),
            running: true,
            one_off: false,
            created: time::OffsetDateTime::now_utc().unix_timestamp(),
            address: None,
            node: None,
            node_state: NodeState::Up,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, Running>> {
        self.containers.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `exit N` → `Some(N)`.
    fn exit_status(command: &str) -> Option<i64> {
        command.strip_prefix("exit ")?.trim().parse().ok()
    }
}

/// Serves `answer` to every HTTP request on a fresh 127.0.0.1 port.
async fn serve(answer: String) -> std::io::Result<(u16, tokio::task::JoinHandle<()>)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    let app = axum::Router::new().fallback(move || {
        let answer = answer.clone();
        async move { answer }
    });
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((port, server))
}

/// A port nothing listens on.
fn closed_port() -> std::io::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

#[async_trait]
impl ContainerRuntime for MemoryRuntime {
    async fn list(&self) -> Result<Vec<Container>, RuntimeError> {
        Ok(self.lock().values().map(|running| running.container.clone()).collect())
    }

    async fn start(&self, spec: &StartSpec) -> Result<Container, RuntimeError> {
        let mut container = self.new_container(spec);
        let id = container.id.clone();
        let exit = Self::exit_status(&spec.command);
        let (host_port, server) = match (spec.process.as_str(), spec.command.as_str()) {
            _ if exit.is_some() => (None, None),
            ("web", "hang") => (Some(closed_port()?), None),
            ("web", _) => {
                let (port, server) = serve(format!("{} v{} {id}\n", spec.app, spec.release)).await?;
                (Some(port), Some(server))
            }
            _ => (None, None),
        };
        container.running = exit.is_none();
        container.address = host_port.map(|port| SocketAddr::from(([127, 0, 0, 1], port)));
        self.lock().insert(id, Running { container: container.clone(), exit, server });
        Ok(container)
    }

    async fn run_one_off(
        &self,
        spec: &StartSpec,
        timeout: std::time::Duration,
        output: tokio::sync::mpsc::Sender<RunOutput>,
    ) -> Result<i64, RuntimeError> {
        let container = Container { one_off: true, ..self.new_container(spec) };
        let id = container.id.clone();
        // Listed while it runs, as an engine lists it.
        self.lock().insert(id.clone(), Running { container, exit: None, server: None });
        let _ = output.send(RunOutput::Out(format!("{}\n", spec.command))).await;
        let status = if spec.command == "hang" {
            tokio::time::sleep(timeout).await;
            124
        } else {
            Self::exit_status(&spec.command).unwrap_or(0)
        };
        self.lock().remove(&id);
        Ok(status)
    }

    async fn exit_code(&self, id: &str) -> Result<Option<i64>, RuntimeError> {
        // A container that is gone exited, as far as anyone can tell.
        Ok(self.lock().get(id).map_or(Some(-1), |running| running.exit))
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        if let Some(mut running) = self.lock().remove(id) {
            running.stop(0);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(process: &str, command: &str) -> StartSpec {
        StartSpec {
            app: "shop".parse().unwrap(),
            app_id: 1,
            release: 3,
            generation: 0,
            process: process.into(),
            image: "shop@sha256:abc".into(),
            command: command.into(),
            env: Vec::new(),
            limits: Default::default(),
        }
    }

    #[tokio::test]
    async fn web_containers_answer_http_until_removed() {
        let runtime = MemoryRuntime::new();
        let web = runtime.start(&spec("web", "serve")).await.unwrap();
        let url = format!("http://{}/", web.address.unwrap());
        let body = reqwest::get(&url).await.unwrap().text().await.unwrap();
        assert_eq!(body, format!("shop v3 {}\n", web.id));
        assert_eq!(runtime.exit_code(&web.id).await.unwrap(), None, "it runs");
        runtime.remove(&web.id).await.unwrap();
        assert!(runtime.list().await.unwrap().is_empty());
        assert!(reqwest::get(&url).await.is_err(), "a removed container no longer answers");
    }

    #[tokio::test]
    async fn commands_choose_crashes_and_hangs() {
        let runtime = MemoryRuntime::new();
        let crashed = runtime.start(&spec("web", "exit 127")).await.unwrap();
        assert!(!crashed.running);
        assert_eq!(runtime.exit_code(&crashed.id).await.unwrap(), Some(127));
        let hung = runtime.start(&spec("web", "hang")).await.unwrap();
        assert!(hung.running);
        let url = format!("http://{}/", hung.address.unwrap());
        assert!(reqwest::get(&url).await.is_err(), "a hung container never answers");
        let worker = runtime.start(&spec("worker", "work")).await.unwrap();
        assert!(worker.running && worker.address.is_none());
        runtime.crash(&worker.id, 2);
        assert_eq!(runtime.exit_code(&worker.id).await.unwrap(), Some(2));
        assert_eq!(runtime.starts(), 3);
    }
}
