//! The [`ContainerRuntime`] seam and its Docker backend.
//!
//! Containers carry the labels `skiff.app`, `skiff.release` and `skiff.process`; the
//! runtime finds Skiff's containers by them, so the controller keeps no container state
//! of its own and a restarted controller picks up where it left off.
//!
//! Every app container, one-offs included, is confined: it sits on the platform's Docker
//! network, on which containers cannot reach each other (the routers reach them through
//! their ports published on 127.0.0.1), runs without `NET_RAW` and with
//! `no-new-privileges`, and has the operator's process and CPU-share limits.

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::Docker;
use bollard::auth::DockerCredentials;
use bollard::container::LogOutput;
use bollard::models::{ContainerCreateBody, ContainerSummaryStateEnum, HostConfig, NetworkCreateRequest, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptions, CreateImageOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions,
    StopContainerOptions,
};
use futures_util::{StreamExt, TryStreamExt};
use skiff_api::{AppName, ProcessType, RunOutput};

/// Marks one-off containers (`skiff run`); the scheduler leaves them alone.
pub const ONE_OFF_LABEL: &str = "skiff.one-off";

/// The port an app listens on inside its container (`$PORT`), unless its image exposes
/// one.
pub const CONTAINER_PORT: u16 = 5000;
/// The label naming the port a container's app listens on.
const PORT_LABEL: &str = "skiff.port";

/// A runtime failure.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("docker engine: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("container {0} has no port published on 127.0.0.1")]
    NoPort(String),
    #[error("in-process container: {0}")]
    Memory(#[from] std::io::Error),
    #[error(
        "the Docker network `{0}` lets containers reach each other; remove it (Skiff makes it anew with \
         inter-container traffic off) or name another with SKIFF_DOCKER_NETWORK"
    )]
    OpenNetwork(String),
}

/// What to start.
#[derive(Debug, Clone, PartialEq)]
pub struct StartSpec {
    pub app: AppName,
    pub release: u32,
    pub generation: u32,
    pub process: String,
    /// A reference the engine can pull, e.g. `127.0.0.1:7701/app@sha256:…`.
    pub image: String,
    /// Run with `/bin/sh -c`; empty runs the image's own command.
    pub command: String,
    pub env: Vec<(String, String)>,
    pub limits: skiff_api::Limits,
}

/// A container of Skiff's, as the runtime sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Container {
    pub id: String,
    pub app: AppName,
    pub release: u32,
    pub generation: u32,
    pub process: String,
    pub running: bool,
    /// A `skiff run` container, which the scheduler leaves alone.
    pub one_off: bool,
    /// Unix seconds when it was created.
    pub created: i64,
    /// The host port (on 127.0.0.1) that reaches `$PORT`.
    pub host_port: Option<u16>,
}

/// Runs containers.
#[async_trait]
pub trait ContainerRuntime: Send + Sync + 'static {
    /// Every container with Skiff's labels, running or not.
    async fn list(&self) -> Result<Vec<Container>, RuntimeError>;
    /// Pulls the image if needed, then creates and starts a container.
    async fn start(&self, spec: &StartSpec) -> Result<Container, RuntimeError>;
    /// Runs a one-off container to completion (or `timeout`), sending its output to
    /// `output`, and removes it; returns its exit status. A closed `output` (the client
    /// went away) stops it.
    async fn run_one_off(
        &self,
        spec: &StartSpec,
        timeout: std::time::Duration,
        output: tokio::sync::mpsc::Sender<RunOutput>,
    ) -> Result<i64, RuntimeError>;
    /// The exit status of a container that stopped; `None` while it runs.
    async fn exit_code(&self, id: &str) -> Result<Option<i64>, RuntimeError>;
    /// Whether a stopped container was killed for using more than its memory limit.
    async fn out_of_memory(&self, _id: &str) -> Result<bool, RuntimeError> {
        Ok(false)
    }
    /// Stops (gracefully, then by force) and removes a container; absent is fine.
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;
    /// Whether the engine answers.
    async fn ping(&self) -> Result<(), RuntimeError> {
        self.list().await.map(drop)
    }
}

/// How every app container is confined, whatever its app asks for.
#[derive(Debug, Clone)]
pub struct Confinement {
    /// The Docker network app containers sit on; made (with inter-container traffic
    /// off) when it does not exist.
    pub network: String,
    /// The most processes (and threads) a container may run.
    pub pids: i64,
    /// Each container's CPU weight against the others (Docker's default is 1024).
    pub cpu_shares: i64,
}

/// The local Docker engine, through bollard.
///
/// Every container also carries `skiff.platform=<id>`, and only containers with this
/// platform's id are listed, so several Skiff platforms can share one engine.
#[derive(Debug, Clone)]
pub struct DockerRuntime {
    docker: Docker,
    platform: String,
    /// Credentials the engine presents to Skiff's registry.
    registry_credentials: DockerCredentials,
    confinement: Confinement,
}

impl DockerRuntime {
    /// Connects to the local engine and negotiates the API version (engines down to API
    /// 1.41 work), and makes the confinement's network if it does not exist.
    ///
    /// # Errors
    /// When the engine is unreachable, or the network lets containers reach each other.
    pub async fn connect(
        platform: &str,
        registry_host: &str,
        service_token: &str,
        confinement: Confinement,
    ) -> Result<Self, RuntimeError> {
        let docker = skiff_service::docker::connect().await?;
        let registry_credentials = DockerCredentials {
            username: Some("skiff".into()),
            password: Some(service_token.into()),
            serveraddress: Some(registry_host.into()),
            ..Default::default()
        };
        ensure_network(&docker, &confinement.network).await?;
        Ok(Self { docker, platform: platform.to_owned(), registry_credentials, confinement })
    }

    /// What every container's host settings start from: its network, no `NET_RAW`, no
    /// new privileges, the process and CPU-share limits, and an init process as PID 1
    /// (it forwards SIGTERM, so apps that never installed a handler still stop promptly).
    fn confined(&self) -> HostConfig {
        HostConfig {
            network_mode: Some(self.confinement.network.clone()),
            cap_drop: Some(vec!["NET_RAW".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            pids_limit: Some(self.confinement.pids),
            cpu_shares: Some(self.confinement.cpu_shares),
            init: Some(true),
            ..Default::default()
        }
    }

    /// Pulls an image (a no-op when the engine has it). The platform's credentials go
    /// only to the platform's registry; other registries are asked anonymously.
    async fn pull(&self, image: &str) -> Result<(), RuntimeError> {
        let (from_image, tag) = Self::pull_args(image);
        let pull = CreateImageOptions { from_image: Some(from_image), tag: Some(tag), ..Default::default() };
        let ours = self
            .registry_credentials
            .serveraddress
            .as_deref()
            .is_some_and(|registry| skiff_api::ImageRef::parse(image).is_ok_and(|image| image.is_on(registry)));
        self.docker
            .create_image(Some(pull), None, ours.then(|| self.registry_credentials.clone()))
            .try_collect::<Vec<_>>()
            .await?;
        Ok(())
    }

    /// The port the app listens on: the image's lowest exposed TCP port (a Dockerfile's
    /// `EXPOSE`, as Deis and Dokku use it), else [`CONTAINER_PORT`].
    async fn app_port(&self, image: &str) -> u16 {
        let Ok(inspected) = self.docker.inspect_image(image).await else { return CONTAINER_PORT };
        let exposed = inspected.config.and_then(|c| c.exposed_ports).unwrap_or_default();
        exposed_port(&exposed).unwrap_or(CONTAINER_PORT)
    }

    /// Splits `name@digest` or `name:tag` into what `POST /images/create` wants.
    fn pull_args(image: &str) -> (String, String) {
        if let Some((name, digest)) = image.split_once('@') {
            return (name.to_owned(), digest.to_owned());
        }
        match image.rsplit_once(':') {
            Some((name, tag)) if !tag.contains('/') => (name.to_owned(), tag.to_owned()),
            _ => (image.to_owned(), "latest".to_owned()),
        }
    }
}

/// Makes the network app containers sit on, with inter-container traffic off, unless it
/// exists; refuses one that lets containers reach each other.
async fn ensure_network(docker: &Docker, name: &str) -> Result<(), RuntimeError> {
    const ICC: &str = "com.docker.network.bridge.enable_icc";
    // Engines before API 1.44 make a second network of the same name when asked twice:
    // platforms in this process make it one at a time.
    static MAKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _alone = MAKING.lock().await;
    let inspected = match docker.inspect_network(name, None).await {
        Ok(inspected) => inspected,
        Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {
            let create = NetworkCreateRequest {
                name: name.to_owned(),
                driver: Some("bridge".into()),
                options: Some(HashMap::from([(ICC.to_owned(), "false".to_owned())])),
                labels: Some(HashMap::from([("skiff.network".to_owned(), "apps".to_owned())])),
                ..Default::default()
            };
            docker.create_network(create).await?;
            docker.inspect_network(name, None).await?
        }
        Err(error) => return Err(error.into()),
    };
    let isolated = inspected.options.is_some_and(|options| options.get(ICC).is_some_and(|v| v == "false"));
    if isolated { Ok(()) } else { Err(RuntimeError::OpenNetwork(name.to_owned())) }
}

/// A container as its labels describe it.
struct Labelled<'a> {
    id: String,
    labels: &'a HashMap<String, String>,
    running: bool,
    created: i64,
    host_port: Option<u16>,
}

impl Labelled<'_> {
    fn container(self) -> Option<Container> {
        let labels = self.labels;
        Some(Container {
            id: self.id,
            app: labels.get("skiff.app")?.parse().ok()?,
            release: labels.get("skiff.release")?.parse().ok()?,
            generation: labels.get("skiff.generation").and_then(|g| g.parse().ok()).unwrap_or(0),
            process: labels.get("skiff.process")?.clone(),
            running: self.running,
            one_off: labels.contains_key(ONE_OFF_LABEL),
            created: self.created,
            host_port: self.host_port,
        })
    }
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn list(&self) -> Result<Vec<Container>, RuntimeError> {
        let options = ListContainersOptions {
            all: true,
            filters: Some(HashMap::from([("label".to_owned(), vec![format!("skiff.platform={}", self.platform)])])),
            ..Default::default()
        };
        let summaries = self.docker.list_containers(Some(options)).await?;
        Ok(summaries
            .into_iter()
            .filter_map(|s| {
                let running = s.state == Some(ContainerSummaryStateEnum::RUNNING);
                let labels = s.labels.unwrap_or_default();
                let port = labels.get(PORT_LABEL).and_then(|p| p.parse().ok()).unwrap_or(CONTAINER_PORT);
                let host_port = s
                    .ports
                    .unwrap_or_default()
                    .iter()
                    .find(|p| p.private_port == port && p.ip.as_deref() == Some("127.0.0.1"))
                    .and_then(|p| p.public_port);
                Labelled { id: s.id?, labels: &labels, running, created: s.created.unwrap_or(0), host_port }.container()
            })
            .collect())
    }

    async fn start(&self, spec: &StartSpec) -> Result<Container, RuntimeError> {
        self.pull(&spec.image).await?;

        // Only web containers get a port; others have nothing to serve.
        let web = ProcessType::is_web(&spec.process);
        let port = if web { self.app_port(&spec.image).await } else { CONTAINER_PORT };
        let labels = HashMap::from([
            ("skiff.app".to_owned(), spec.app.to_string()),
            ("skiff.release".to_owned(), spec.release.to_string()),
            ("skiff.process".to_owned(), spec.process.clone()),
            ("skiff.generation".to_owned(), spec.generation.to_string()),
            ("skiff.platform".to_owned(), self.platform.clone()),
            (PORT_LABEL.to_owned(), port.to_string()),
        ]);
        let port_key = format!("{port}/tcp");
        let bindings = HashMap::from([(
            port_key.clone(),
            Some(vec![PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) }]),
        )]);
        let mut env = vec![format!("PORT={port}")];
        env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            // A Procfile command replaces the image's entrypoint and command; without one
            // the image runs as built.
            cmd: (!spec.command.is_empty()).then(|| vec!["/bin/sh".into(), "-c".into(), spec.command.clone()]),
            entrypoint: (!spec.command.is_empty()).then(Vec::new),
            env: Some(env),
            labels: Some(labels.clone()),
            exposed_ports: web.then(|| vec![port_key.clone()]),
            host_config: Some(HostConfig {
                port_bindings: web.then_some(bindings),
                memory: spec.limits.memory_mb.map(|mb| (mb as i64) << 20),
                nano_cpus: spec.limits.cpu.map(|cores| (cores * 1e9) as i64),
                ..self.confined()
            }),
            ..Default::default()
        };
        let name =
            format!("skiff-{}-{}-v{}-{:06x}", spec.app, spec.process, spec.release, rand::random::<u32>() & 0xff_ffff);
        let created = self
            .docker
            .create_container(Some(CreateContainerOptions { name: Some(name), ..Default::default() }), body)
            .await?;
        self.docker.start_container(&created.id, None).await?;
        let inspected = self.docker.inspect_container(&created.id, None).await?;
        let host_port = inspected
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|ports| ports.get(&port_key).cloned().flatten())
            .and_then(|bindings| bindings.into_iter().find_map(|b| b.host_port?.parse().ok()));
        let running = inspected.state.and_then(|s| s.running).unwrap_or(false);
        // A container that already exited has no port; the caller sees its exit status.
        if web && running && host_port.is_none() {
            return Err(RuntimeError::NoPort(created.id));
        }
        let created_at = time::OffsetDateTime::now_utc().unix_timestamp();
        Labelled { id: created.id.clone(), labels: &labels, running, created: created_at, host_port }
            .container()
            .ok_or(RuntimeError::NoPort(created.id))
    }

    async fn run_one_off(
        &self,
        spec: &StartSpec,
        timeout: std::time::Duration,
        output: tokio::sync::mpsc::Sender<RunOutput>,
    ) -> Result<i64, RuntimeError> {
        self.pull(&spec.image).await?;
        let labels = HashMap::from([
            ("skiff.app".to_owned(), spec.app.to_string()),
            ("skiff.release".to_owned(), spec.release.to_string()),
            ("skiff.process".to_owned(), spec.process.clone()),
            ("skiff.platform".to_owned(), self.platform.clone()),
            (ONE_OFF_LABEL.to_owned(), "true".to_owned()),
        ]);
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), spec.command.clone()]),
            entrypoint: Some(Vec::new()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            host_config: Some(HostConfig {
                memory: spec.limits.memory_mb.map(|mb| (mb as i64) << 20),
                nano_cpus: spec.limits.cpu.map(|cores| (cores * 1e9) as i64),
                ..self.confined()
            }),
            ..Default::default()
        };
        let name = format!("skiff-{}-run-{:06x}", spec.app, rand::random::<u32>() & 0xff_ffff);
        let created = self
            .docker
            .create_container(Some(CreateContainerOptions { name: Some(name), ..Default::default() }), body)
            .await?;
        let id = created.id;
        let run = async {
            self.docker.start_container(&id, None).await?;
            let options = LogsOptions { follow: true, stdout: true, stderr: true, ..Default::default() };
            let mut logs = self.docker.logs(&id, Some(options));
            while let Some(item) = logs.next().await {
                let line = match item? {
                    LogOutput::StdErr { message } => RunOutput::Err(String::from_utf8_lossy(&message).into_owned()),
                    LogOutput::StdOut { message } | LogOutput::Console { message } => {
                        RunOutput::Out(String::from_utf8_lossy(&message).into_owned())
                    }
                    LogOutput::StdIn { .. } => continue,
                };
                if output.send(line).await.is_err() {
                    return Ok(None);
                }
            }
            self.exit_code(&id).await
        };
        let status = match tokio::time::timeout(timeout, run).await {
            Ok(Ok(Some(code))) => code,
            Ok(Ok(None)) => -1,
            Ok(Err(error)) => {
                self.remove(&id).await?;
                return Err(error);
            }
            Err(_) => {
                let _ = output.send(RunOutput::Err(format!("skiff: timed out after {} s\n", timeout.as_secs()))).await;
                124
            }
        };
        self.remove(&id).await?;
        Ok(status)
    }

    async fn exit_code(&self, id: &str) -> Result<Option<i64>, RuntimeError> {
        let state = self.docker.inspect_container(id, None).await?.state;
        Ok(match state {
            Some(state) if state.running == Some(true) => None,
            Some(state) => Some(state.exit_code.unwrap_or(-1)),
            None => Some(-1),
        })
    }

    async fn out_of_memory(&self, id: &str) -> Result<bool, RuntimeError> {
        let state = self.docker.inspect_container(id, None).await?.state;
        Ok(state.and_then(|s| s.oom_killed).unwrap_or(false))
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let stop = StopContainerOptions { t: Some(10), ..Default::default() };
        match self.docker.stop_container(id, Some(stop)).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 304 | 404, .. }) => {}
            Err(e) => return Err(e.into()),
        }
        let remove = RemoveContainerOptions { force: true, ..Default::default() };
        match self.docker.remove_container(id, Some(remove)).await {
            // Gone already, or going (409: another removal of it is in progress).
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404 | 409, .. }) => Ok(()),
            Err(e) => Err(e.into()),
        }
    }
}

/// The lowest TCP port of an image's exposed ports (`8080/tcp`, `53/udp`, …).
fn exposed_port(exposed: &[String]) -> Option<u16> {
    exposed.iter().filter_map(|p| p.strip_suffix("/tcp").unwrap_or(p).parse().ok()).min()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lowest_exposed_tcp_port_is_the_apps() {
        let exposed = ["9090/tcp".to_owned(), "53/udp".to_owned(), "8080/tcp".to_owned()];
        assert_eq!(exposed_port(&exposed), Some(8080));
        assert_eq!(exposed_port(&["7000".to_owned()]), Some(7000));
        assert_eq!(exposed_port(&[]), None);
    }

    #[test]
    fn image_references_split_for_pulling() {
        assert_eq!(
            DockerRuntime::pull_args("127.0.0.1:7701/app@sha256:abc"),
            ("127.0.0.1:7701/app".into(), "sha256:abc".into())
        );
        assert_eq!(DockerRuntime::pull_args("127.0.0.1:7701/app:v1"), ("127.0.0.1:7701/app".into(), "v1".into()));
        assert_eq!(DockerRuntime::pull_args("127.0.0.1:7701/app"), ("127.0.0.1:7701/app".into(), "latest".into()));
    }
}
