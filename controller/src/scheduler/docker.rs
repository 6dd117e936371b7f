//! The Docker backend of [`ContainerRuntime`]: one engine, through bollard.
//!
//! Every app container, one-offs included, is confined: it sits on its app's own network
//! ([`super::networks`]), where it reaches the app's other containers and no other app's,
//! runs without `NET_RAW` and with `no-new-privileges`, and has the operator's process and
//! CPU-share limits. The routers reach it at its address on that network (or, where they
//! cannot route there, through a port published on 127.0.0.1).
//!
//! A release's first web container may be one started ahead, before the release existed
//! (`docker/warm.rs`): a push then waits for no container to be made or started. An app's
//! first may run in the network namespace of a pause container started before the app
//! existed (`docker/pause.rs`): it has the pause container's address.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use bollard::Docker;
use bollard::container::LogOutput;
use bollard::models::{
    ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum, EndpointSettings, HostConfig, NetworkingConfig,
    PortBinding, PortMap,
};
use bollard::query_parameters::{
    CreateContainerOptions, ListContainersOptions, LogsOptions, RemoveContainerOptions, StopContainerOptions,
};
use futures_util::StreamExt;
use skiff_api::{AppName, ProcessType, RunOutput};
use skiff_registry_client::RegistryClient;

use super::images::Images;
use super::networks::{Addressing, AppNetworks, NetworkDriver, Networking};
use super::runtime::{
    APP_ID_LABEL, CONTAINER_PORT, Container, ContainerRuntime, NodeState, ONE_OFF_LABEL, RuntimeError, StartSpec,
};

mod pause;
mod warm;

/// The label naming the port a container's app listens on.
const PORT_LABEL: &str = "skiff.port";

/// How every app container is confined, whatever its app asks for.
#[derive(Debug, Clone)]
pub struct Confinement {
    /// The networks app containers sit on, and how the routers reach them.
    pub networking: Networking,
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
    images: Images,
    networks: AppNetworks,
    pids: i64,
    cpu_shares: i64,
    /// The platform's registry, read for release images' layers (warm containers).
    registry: Arc<RegistryClient>,
    /// Warm containers being adopted by this process.
    adopting: Arc<Mutex<HashSet<String>>>,
    /// Apps whose warm container this process is making: the value turns `true` (or its
    /// sender goes) when it is made.
    warming: Arc<Mutex<HashMap<AppName, tokio::sync::watch::Receiver<bool>>>>,
    /// This process's pause containers.
    pauses: Arc<Mutex<pause::Pauses>>,
    /// Told when a spare pause container is made, and when a making of spares ends.
    spares_changed: Arc<tokio::sync::Notify>,
}

/// A container about to be made: what it runs and where it sits.
struct Creating {
    name: String,
    body: ContainerCreateBody,
    /// Its name on the app's network besides its own (the process type), if any.
    alias: Option<String>,
}

impl DockerRuntime {
    /// Connects to the local engine and negotiates the API version (engines down to API
    /// 1.41 work).
    ///
    /// # Errors
    /// When the engine is unreachable.
    pub async fn connect(
        platform: &str,
        registry_host: &str,
        service_token: &str,
        registry: Arc<RegistryClient>,
        confinement: Confinement,
    ) -> Result<Self, RuntimeError> {
        let docker = skiff_service::docker::connect().await?;
        let images = Images::new(docker.clone(), registry_host, service_token);
        let networks = AppNetworks::new(docker.clone(), platform, confinement.networking, NetworkDriver::Bridge);
        Ok(Self {
            docker,
            platform: platform.to_owned(),
            images,
            networks,
            pids: confinement.pids,
            cpu_shares: confinement.cpu_shares,
            registry,
            adopting: Arc::default(),
            warming: Arc::default(),
            pauses: Arc::default(),
            spares_changed: Arc::default(),
        })
    }

    /// What every container's host settings start from: no `NET_RAW`, no new
    /// privileges, the process and CPU-share limits, and an init process as PID 1 (it
    /// forwards SIGTERM, so apps that never installed a handler still stop promptly).
    fn confined(&self, limits: &skiff_api::Limits) -> HostConfig {
        HostConfig {
            cap_drop: Some(vec!["NET_RAW".into()]),
            security_opt: Some(vec!["no-new-privileges".into()]),
            pids_limit: Some(self.pids),
            cpu_shares: Some(self.cpu_shares),
            init: Some(true),
            memory: limits.memory_mb.map(|mb| (mb as i64) << 20),
            nano_cpus: limits.cpu.map(|cores| (cores * 1e9) as i64),
            ..Default::default()
        }
    }

    /// Pulls a container's image while its app's network is found or made (two engine
    /// round trips at once, the network's a bridge and its rules on an app's first
    /// deploy); returns the network.
    async fn prepare(&self, spec: &StartSpec) -> Result<String, RuntimeError> {
        let (pulled, network) = tokio::join!(self.images.pull(&spec.image), self.networks.ensure(&spec.app));
        pulled?;
        network
    }

    /// Creates a container on its app's `network` and returns its id. The network is made
    /// again if it went away meanwhile (the app's last container was removed as this one
    /// was being made).
    async fn create(&self, app: &AppName, mut network: String, creating: Creating) -> Result<String, RuntimeError> {
        let mut attempts_left = 2;
        loop {
            let endpoint = EndpointSettings { aliases: creating.alias.clone().map(|a| vec![a]), ..Default::default() };
            let mut body = creating.body.clone();
            body.networking_config =
                Some(NetworkingConfig { endpoints_config: Some(HashMap::from([(network.clone(), endpoint)])) });
            let host_config = body.host_config.get_or_insert_with(HostConfig::default);
            host_config.network_mode = Some(network.clone());
            let options = CreateContainerOptions { name: Some(creating.name.clone()), ..Default::default() };
            match self.docker.create_container(Some(options), body).await {
                Ok(created) => return Ok(created.id),
                Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, message })
                    if attempts_left > 1 && message.contains("network") =>
                {
                    attempts_left -= 1;
                    network = self.networks.ensure(app).await?;
                }
                Err(error) => return Err(error.into()),
            }
        }
    }

    /// Where the routers reach a web container: its address on its app's network (any
    /// network, for containers made before apps had networks of their own), or its port
    /// published on 127.0.0.1.
    fn address(
        &self,
        app: &AppName,
        port: u16,
        networks: Option<&HashMap<String, EndpointSettings>>,
        published: Option<u16>,
    ) -> Option<SocketAddr> {
        match self.networks.addressing() {
            Addressing::Published => published.map(|port| SocketAddr::from(([127, 0, 0, 1], port))),
            Addressing::Direct => {
                let networks = networks?;
                let own = networks.get(&self.networks.name(app));
                let ip = own.into_iter().chain(networks.values()).find_map(|endpoint| {
                    endpoint.ip_address.as_deref().filter(|ip| !ip.is_empty())?.parse::<IpAddr>().ok()
                })?;
                Some(SocketAddr::new(ip, port))
            }
        }
    }
}

impl DockerRuntime {
    /// Every container with this platform's label, running or not.
    async fn platform_containers(&self) -> Result<Vec<ContainerSummary>, RuntimeError> {
        let options =
            ListContainersOptions { all: true, filters: Some(platform_filter(&self.platform)), ..Default::default() };
        Ok(self.docker.list_containers(Some(options)).await?)
    }

    /// The port binding that publishes a web container's `port` on 127.0.0.1, where the
    /// routers reach containers that way.
    fn published(&self, port: u16) -> Option<PortMap> {
        (self.networks.addressing() == Addressing::Published).then(|| {
            let binding = PortBinding { host_ip: Some("127.0.0.1".into()), host_port: Some(String::new()) };
            HashMap::from([(format!("{port}/tcp"), Some(vec![binding]))])
        })
    }

    /// A container of `spec` that was just started, as the scheduler sees it: running or
    /// not, and where a running web container is reached.
    async fn started(
        &self,
        id: &str,
        spec: &StartSpec,
        port: u16,
        labels: &HashMap<String, String>,
    ) -> Result<Container, RuntimeError> {
        let web = ProcessType::is_web(&spec.process);
        let inspected = self.docker.inspect_container(id, None).await?;
        let running = inspected.state.and_then(|s| s.running).unwrap_or(false);
        let network_mode = inspected.host_config.and_then(|h| h.network_mode);
        let settings = match pause::namespace_owner(network_mode.as_deref()) {
            // Its network is its pause container's.
            Some(owner) => self.docker.inspect_container(owner, None).await?.network_settings,
            None => inspected.network_settings,
        }
        .unwrap_or_default();
        let published = settings
            .ports
            .and_then(|ports| ports.get(&format!("{port}/tcp")).cloned().flatten())
            .and_then(|bindings| bindings.into_iter().find_map(|b| b.host_port?.parse().ok()));
        let address = self.address(&spec.app, port, settings.networks.as_ref(), published).filter(|_| web && running);
        // A container that already exited has no address; the caller sees its exit status.
        if web && running && address.is_none() {
            return Err(RuntimeError::NoAddress(id.to_owned()));
        }
        let created = time::OffsetDateTime::now_utc().unix_timestamp();
        Labelled { id: id.to_owned(), labels, running, created, address }
            .container()
            .ok_or_else(|| RuntimeError::NoAddress(id.to_owned()))
    }
}

/// A container as its labels describe it.
struct Labelled<'a> {
    id: String,
    labels: &'a HashMap<String, String>,
    running: bool,
    created: i64,
    address: Option<SocketAddr>,
}

impl Labelled<'_> {
    fn container(self) -> Option<Container> {
        let labels = self.labels;
        Some(Container {
            id: self.id,
            app: labels.get("skiff.app")?.parse().ok()?,
            app_id: labels.get(APP_ID_LABEL).and_then(|id| id.parse().ok()),
            release: labels.get("skiff.release")?.parse().ok()?,
            generation: labels.get("skiff.generation").and_then(|g| g.parse().ok()).unwrap_or(0),
            process: labels.get("skiff.process")?.clone(),
            running: self.running,
            one_off: labels.contains_key(ONE_OFF_LABEL),
            created: self.created,
            address: self.address,
            node: None,
            node_state: NodeState::Up,
        })
    }
}

/// The labels' port, or [`CONTAINER_PORT`].
fn labelled_port(labels: &HashMap<String, String>) -> u16 {
    labels.get(PORT_LABEL).and_then(|p| p.parse().ok()).unwrap_or(CONTAINER_PORT)
}

/// Whether the labels name a `web` container.
fn labelled_web(labels: &HashMap<String, String>) -> bool {
    labels.get("skiff.process").is_some_and(|p| ProcessType::is_web(p))
}

#[async_trait]
impl ContainerRuntime for DockerRuntime {
    async fn list(&self) -> Result<Vec<Container>, RuntimeError> {
        let summaries = self.platform_containers().await?;
        // The networks of the containers others run in the namespace of.
        let owners: HashSet<&str> = summaries
            .iter()
            .filter_map(|s| pause::namespace_owner(s.host_config.as_ref()?.network_mode.as_deref()))
            .collect();
        let networks_of: HashMap<String, _> = summaries
            .iter()
            .filter(|s| s.id.as_deref().is_some_and(|id| owners.contains(id)))
            .filter_map(|s| Some((s.id.clone()?, s.network_settings.as_ref()?.networks.clone()?)))
            .collect();
        Ok(summaries
            .into_iter()
            .filter(|s| !warm::is_unadopted(s.names.as_ref()))
            .filter_map(|s| {
                let running = s.state == Some(ContainerSummaryStateEnum::RUNNING);
                let labels = s.labels.unwrap_or_default();
                let port = labelled_port(&labels);
                let published = s
                    .ports
                    .unwrap_or_default()
                    .iter()
                    .find(|p| p.private_port == port && p.ip.as_deref() == Some("127.0.0.1"))
                    .and_then(|p| p.public_port);
                let owner = pause::namespace_owner(s.host_config.as_ref().and_then(|h| h.network_mode.as_deref()));
                let networks = match owner {
                    Some(owner) => networks_of.get(owner).cloned(),
                    None => s.network_settings.and_then(|n| n.networks),
                };
                let app: AppName = labels.get("skiff.app")?.parse().ok()?;
                let address = if labelled_web(&labels) && running {
                    self.address(&app, port, networks.as_ref(), published)
                } else {
                    None
                };
                Labelled { id: s.id?, labels: &labels, running, created: s.created.unwrap_or(0), address }.container()
            })
            .collect())
    }

    async fn start(&self, spec: &StartSpec) -> Result<Container, RuntimeError> {
        // Only web containers get a port; others have nothing to serve.
        let web = ProcessType::is_web(&spec.process);
        if web
            && !spec.command.is_empty()
            && let Some(adopted) = self.adopt(spec).await
        {
            return Ok(adopted);
        }
        if web {
            self.forgo_first_release_warm(&spec.app);
        }
        let network = self.prepare(spec).await?;
        let port = if web { self.images.app_port(&spec.image).await } else { CONTAINER_PORT };
        let mut labels = labels(spec, &self.platform);
        labels.insert(PORT_LABEL.to_owned(), port.to_string());
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
            exposed_ports: web.then(|| vec![format!("{port}/tcp")]),
            host_config: Some(HostConfig {
                port_bindings: if web { self.published(port) } else { None },
                ..self.confined(&spec.limits)
            }),
            ..Default::default()
        };
        let creating = Creating { name: warm::container_name(spec), body, alias: Some(spec.process.clone()) };
        let id = self.create(&spec.app, network, creating).await?;
        self.docker.start_container(&id, None).await?;
        self.started(&id, spec, port, &labels).await
    }

    async fn warm(&self, spec: &StartSpec) -> Result<(), RuntimeError> {
        self.make_warm(spec).await
    }

    async fn hold(&self, image: &str) -> Result<(), RuntimeError> {
        self.images.held_port(image).await?;
        // An app made on it soon starts in a namespace made ahead: the first is waited for.
        if self.networks.addressing() == Addressing::Direct {
            self.replenish_pause(Some(image));
            self.spare_made().await;
        }
        Ok(())
    }

    async fn unwarm(&self, app: &AppName) -> Result<(), RuntimeError> {
        self.remove_warm(app).await
    }

    async fn shut_down(&self) {
        self.close_pauses().await;
    }

    async fn expire_warm(&self) -> Result<(), RuntimeError> {
        let containers = self.platform_containers().await?;
        self.remove_expired_warm(&containers).await?;
        self.sweep_pauses(&containers).await;
        Ok(())
    }

    async fn run_one_off(
        &self,
        spec: &StartSpec,
        timeout: std::time::Duration,
        output: tokio::sync::mpsc::Sender<RunOutput>,
    ) -> Result<i64, RuntimeError> {
        let network = self.prepare(spec).await?;
        let mut labels = labels(spec, &self.platform);
        labels.insert(ONE_OFF_LABEL.to_owned(), "true".to_owned());
        let body = ContainerCreateBody {
            image: Some(spec.image.clone()),
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), spec.command.clone()]),
            entrypoint: Some(Vec::new()),
            env: Some(spec.env.iter().map(|(k, v)| format!("{k}={v}")).collect()),
            labels: Some(labels),
            host_config: Some(self.confined(&spec.limits)),
            ..Default::default()
        };
        let name = format!("skiff-{}-run-{:06x}", spec.app, rand::random::<u32>() & 0xff_ffff);
        let id = self.create(&spec.app, network, Creating { name, body, alias: None }).await?;
        let run = async {
            self.docker.start_container(&id, None).await?;
            let options = LogsOptions { follow: true, stdout: true, stderr: true, ..Default::default() };
            if !forward_output(self.docker.logs(&id, Some(options)), &output).await? {
                return Ok(None);
            }
            self.exit_code(&id).await
        };
        finish_one_off(self, &id, timeout, &output, run).await
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
        let (app, network_mode) = match self.docker.inspect_container(id, None).await {
            Ok(inspected) => (
                inspected.config.and_then(|c| c.labels?.get("skiff.app")?.parse::<AppName>().ok()),
                inspected.host_config.and_then(|h| h.network_mode),
            ),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        let stop = StopContainerOptions { t: Some(10), ..Default::default() };
        match self.docker.stop_container(id, Some(stop)).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 304 | 404, .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.remove_by_force(id).await?;
        // Its namespace goes with it, and with it the network's last endpoint.
        if let Some(owner) = pause::namespace_owner(network_mode.as_deref()) {
            self.force_remove(owner).await;
        }
        match app {
            Some(app) => self.networks.remove_if_unused(&app).await,
            None => Ok(()),
        }
    }
}

impl DockerRuntime {
    /// Removes container `id` by force and at once, leaving its app's network: gone already,
    /// or going (409: another removal of it is in progress), is fine.
    async fn remove_by_force(&self, id: &str) -> Result<(), RuntimeError> {
        let remove = RemoveContainerOptions { force: true, ..Default::default() };
        match self.docker.remove_container(id, Some(remove)).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404 | 409, .. }) => Ok(()),
            Err(error) => Err(error.into()),
        }
    }

    /// [`Self::remove_by_force`], for what is only tidied away: a failure is logged.
    async fn force_remove(&self, id: &str) {
        if let Err(error) = self.remove_by_force(id).await {
            tracing::info!(%error, container = id, "controller.container.unremoved");
        }
    }
}

/// The labels every container (or service) of `spec` carries.
pub(super) fn labels(spec: &StartSpec, platform: &str) -> HashMap<String, String> {
    HashMap::from([
        ("skiff.app".to_owned(), spec.app.to_string()),
        (APP_ID_LABEL.to_owned(), spec.app_id.to_string()),
        ("skiff.release".to_owned(), spec.release.to_string()),
        ("skiff.process".to_owned(), spec.process.clone()),
        ("skiff.generation".to_owned(), spec.generation.to_string()),
        ("skiff.platform".to_owned(), platform.to_owned()),
    ])
}

/// An engine filter for what carries this platform's label.
pub(super) fn platform_filter(platform: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([("label".to_owned(), vec![format!("skiff.platform={platform}")])])
}

/// Sends a one-off's output on to its client as it comes; `false` once the client went
/// away.
pub(super) async fn forward_output(
    logs: impl futures_util::Stream<Item = Result<LogOutput, bollard::errors::Error>>,
    output: &tokio::sync::mpsc::Sender<RunOutput>,
) -> Result<bool, RuntimeError> {
    let mut logs = std::pin::pin!(logs);
    while let Some(item) = logs.next().await {
        let line = match item? {
            LogOutput::StdErr { message } => RunOutput::Err(String::from_utf8_lossy(&message).into_owned()),
            LogOutput::StdOut { message } | LogOutput::Console { message } => {
                RunOutput::Out(String::from_utf8_lossy(&message).into_owned())
            }
            LogOutput::StdIn { .. } => continue,
        };
        if output.send(line).await.is_err() {
            return Ok(false);
        }
    }
    Ok(true)
}

/// Waits at most `timeout` for a one-off's `run` to give its exit status (`None`: its
/// client went away, -1), then removes it, whatever happened; a timeout is status 124,
/// and the client is told.
pub(super) async fn finish_one_off(
    runtime: &(impl ContainerRuntime + ?Sized),
    id: &str,
    timeout: std::time::Duration,
    output: &tokio::sync::mpsc::Sender<RunOutput>,
    run: impl Future<Output = Result<Option<i64>, RuntimeError>>,
) -> Result<i64, RuntimeError> {
    let status = match tokio::time::timeout(timeout, run).await {
        Ok(Ok(code)) => code.unwrap_or(-1),
        Ok(Err(error)) => {
            runtime.remove(id).await?;
            return Err(error);
        }
        Err(_) => {
            let _ = output.send(RunOutput::Err(format!("skiff: timed out after {} s\n", timeout.as_secs()))).await;
            124
        }
    };
    runtime.remove(id).await?;
    Ok(status)
}
