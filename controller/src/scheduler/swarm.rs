//! The Swarm backend of [`ContainerRuntime`]: apps on a Docker Swarm, through a manager's
//! engine API.
//!
//! Each container Skiff starts is a one-replica Swarm service (its id is the service's):
//! Skiff's own rollout decides when each replica starts and stops, one at a time and
//! health-gated, which Swarm's rolling update of a many-replica service cannot do for
//! a replica of Skiff's choosing. Swarm places each service on a node (spreading them by
//! the tasks each node runs), pulls its image there from Skiff's registry with the
//! platform's credentials, and attaches it to its app's overlay network, where the app's
//! containers reach each other by process type. Restarts are Skiff's (the restart policy
//! is `none`), so a crash is seen, counted and backed off as on one engine.
//!
//! The manager's engine pulls a web container's image too, to read the port its app
//! listens on (the image's `EXPOSE`, else 5000) as the Docker backend does.
//!
//! The routers reach a web task at its node's address and a port Swarm publishes in host
//! mode on that node: the packets go through the node's kernel (a DNAT rule), not through
//! a userland proxy, and not through the routing mesh, which needs IPVS. A task whose node
//! is down counts as stopped, so its routes go and the scheduler starts it elsewhere.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;

use async_trait::async_trait;
use bollard::Docker;
use bollard::models::{
    EndpointPortConfig, EndpointPortConfigPublishModeEnum, EndpointSpec, Limit, NetworkAttachmentConfig,
    NodeSpecAvailabilityEnum, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated, ServiceSpecModeReplicatedJob,
    Task, TaskSpec, TaskSpecContainerSpec, TaskSpecPlacement, TaskSpecResources, TaskSpecRestartPolicy,
    TaskSpecRestartPolicyConditionEnum, TaskState,
};
use bollard::query_parameters::{ListServicesOptions, ListTasksOptions, LogsOptions, UpdateNodeOptions};
use skiff_api::{AppName, ProcessType, RunOutput};

use super::docker::{finish_one_off, forward_output, labels, platform_filter};
use super::images::Images;
use super::networks::{AppNetworks, NetworkDriver, Networking};
use super::runtime::{
    APP_ID_LABEL, Availability, CONTAINER_PORT, Container, ContainerRuntime, JoinCommand, Node, NodeState,
    ONE_OFF_LABEL, RuntimeError, StartSpec,
};

/// A swarm, through one of its managers.
#[derive(Debug, Clone)]
pub struct SwarmRuntime {
    docker: Docker,
    platform: String,
    images: Images,
    networks: AppNetworks,
    pids: i64,
    /// Held while a container's node is chosen and its service made, so that two starts
    /// do not both pick the same emptiest node.
    placing: Arc<tokio::sync::Mutex<()>>,
}

/// The label naming the node Skiff placed a service on.
const NODE_LABEL: &str = "skiff.node";

/// The port a service's container listens on, and whether it is published.
#[derive(Debug, Clone, Copy)]
enum Port {
    /// A one-off job: the default port, nothing published.
    OneOff,
    /// A container with nothing to serve: the default port, nothing published.
    Unpublished,
    /// A web container: its app's port, published in host mode on its node.
    Published(u16),
}

/// A task as Skiff reads it: its service, state, node and published port.
struct TaskView {
    state: TaskState,
    exit_code: Option<i64>,
    node: Option<String>,
    published: Option<u16>,
}

impl SwarmRuntime {
    /// Connects to a manager's engine (`DOCKER_HOST`, or the local socket).
    ///
    /// # Errors
    /// When the engine is unreachable.
    pub async fn connect(
        platform: &str,
        registry_host: &str,
        service_token: &str,
        networking: Networking,
        pids: i64,
    ) -> Result<Self, RuntimeError> {
        let docker = skiff_service::docker::connect().await?;
        let images = Images::new(docker.clone(), registry_host, service_token);
        let networks = AppNetworks::new(docker.clone(), platform, networking, NetworkDriver::Overlay);
        Ok(Self { docker, platform: platform.to_owned(), images, networks, pids, placing: Arc::default() })
    }

    /// The node for a new container of `spec`'s process type: of the ready nodes that take
    /// work, the one with the fewest containers of that process type, then the fewest
    /// containers; `None` when no node takes work (Swarm then holds the task until one
    /// does).
    async fn choose_node(&self, spec: &StartSpec) -> Result<Option<String>, RuntimeError> {
        let nodes = self.nodes_by_id().await?;
        let mut load: HashMap<&str, (usize, usize)> = nodes
            .values()
            .filter(|node| node.state == "ready" && node.availability == Availability::Active)
            .map(|node| (node.id.as_str(), (0, 0)))
            .collect();
        let options = ListServicesOptions { filters: Some(platform_filter(&self.platform)), ..Default::default() };
        for service in self.docker.list_services(Some(options)).await? {
            let labels = service.spec.and_then(|s| s.labels).unwrap_or_default();
            let Some((same, total)) = labels.get(NODE_LABEL).and_then(|node| load.get_mut(node.as_str())) else {
                continue;
            };
            *total += 1;
            let app = spec.app.as_str();
            if labels.get("skiff.app").map(String::as_str) == Some(app)
                && labels.get("skiff.process") == Some(&spec.process)
            {
                *same += 1;
            }
        }
        Ok(load.into_iter().min_by_key(|(id, counts)| (*counts, *id)).map(|(id, _)| id.to_owned()))
    }

    /// The service that runs `spec`: one task, Skiff's labels, the app's network, limits,
    /// no restarts of Swarm's own, and for web the app's `port` published in host mode.
    fn service(&self, spec: &StartSpec, network: String, labels: HashMap<String, String>, port: Port) -> ServiceSpec {
        let (one_off, web, port) = match port {
            Port::OneOff => (true, false, CONTAINER_PORT),
            Port::Unpublished => (false, false, CONTAINER_PORT),
            Port::Published(port) => (false, true, port),
        };
        let mut env = vec![format!("PORT={port}")];
        env.extend(spec.env.iter().map(|(k, v)| format!("{k}={v}")));
        let command = (!spec.command.is_empty()).then(|| vec!["/bin/sh".into(), "-c".into(), spec.command.clone()]);
        let mode = if one_off {
            ServiceSpecMode {
                replicated_job: Some(ServiceSpecModeReplicatedJob {
                    max_concurrent: Some(1),
                    total_completions: Some(1),
                }),
                ..Default::default()
            }
        } else {
            ServiceSpecMode { replicated: Some(ServiceSpecModeReplicated { replicas: Some(1) }), ..Default::default() }
        };
        let name = format!(
            "skiff-{}-{}-{}-{:06x}",
            self.platform,
            spec.app,
            if one_off { "run" } else { spec.process.as_str() },
            rand::random::<u32>() & 0xff_ffff
        );
        ServiceSpec {
            name: Some(name),
            labels: Some(labels.clone()),
            task_template: Some(TaskSpec {
                container_spec: Some(TaskSpecContainerSpec {
                    image: Some(spec.image.clone()),
                    labels: Some(labels),
                    command,
                    env: Some(env),
                    init: Some(true),
                    capability_drop: Some(vec!["CAP_NET_RAW".into()]),
                    stop_grace_period: Some(10_000_000_000),
                    ..Default::default()
                }),
                resources: Some(TaskSpecResources {
                    limits: Some(Limit {
                        memory_bytes: spec.limits.memory_mb.map(|mb| (mb as i64) << 20),
                        nano_cpus: spec.limits.cpu.map(|cores| (cores * 1e9) as i64),
                        pids: Some(self.pids),
                    }),
                    ..Default::default()
                }),
                restart_policy: Some(TaskSpecRestartPolicy {
                    condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                    ..Default::default()
                }),
                networks: Some(vec![NetworkAttachmentConfig {
                    target: Some(network),
                    aliases: (!one_off).then(|| vec![spec.process.clone()]),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            mode: Some(mode),
            endpoint_spec: web.then(|| EndpointSpec {
                ports: Some(vec![EndpointPortConfig {
                    target_port: Some(i64::from(port)),
                    publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// Every node of the swarm, by id.
    async fn nodes_by_id(&self) -> Result<HashMap<String, Node>, RuntimeError> {
        let nodes = self.docker.list_nodes(None).await?;
        Ok(nodes.into_iter().filter_map(read_node).map(|node| (node.id.clone(), node)).collect())
    }

    /// The node named by id, id prefix or host name (only when one node has it).
    async fn node_named(&self, name: &str) -> Result<bollard::models::Node, RuntimeError> {
        let nodes = self.docker.list_nodes(None).await?;
        let matches = |node: &&bollard::models::Node| {
            node.id.as_deref().is_some_and(|id| id == name || (name.len() >= 4 && id.starts_with(name)))
                || node.description.as_ref().and_then(|d| d.hostname.as_deref()) == Some(name)
        };
        let mut found = nodes.iter().filter(matches);
        match (found.next(), found.next()) {
            (Some(node), None) => Ok(node.clone()),
            _ => Err(RuntimeError::NoSuchNode(name.to_owned())),
        }
    }

    /// The newest task of each of `services`. Every task is listed and those of other
    /// services left out: a filter by service fails whole when one of them was removed
    /// meanwhile.
    async fn newest_tasks(&self, services: &HashSet<String>) -> Result<HashMap<String, Task>, RuntimeError> {
        if services.is_empty() {
            return Ok(HashMap::new());
        }
        let mut newest: HashMap<String, Task> = HashMap::new();
        for task in self.docker.list_tasks(None::<ListTasksOptions>).await? {
            let Some(service) = task.service_id.clone().filter(|id| services.contains(id)) else { continue };
            if newest.get(&service).is_none_or(|known| version(known) < version(&task)) {
                newest.insert(service, task);
            }
        }
        Ok(newest)
    }

    /// The service's newest task, read; `None` before Swarm made one.
    async fn task_of(&self, service: &str) -> Result<Option<TaskView>, RuntimeError> {
        let options =
            ListTasksOptions { filters: Some(HashMap::from([("service".to_owned(), vec![service.to_owned()])])) };
        let tasks = self.docker.list_tasks(Some(options)).await?;
        let newest = tasks.into_iter().max_by_key(version);
        Ok(newest.map(|task| view(&task)))
    }
}

/// A task's place in the swarm's history: later tasks of a service have higher ones.
fn version(task: &Task) -> u64 {
    task.version.as_ref().and_then(|v| v.index).unwrap_or(0)
}

/// A swarm node as Skiff shows it.
fn read_node(node: bollard::models::Node) -> Option<Node> {
    let status = node.status.unwrap_or_default();
    let spec = node.spec.unwrap_or_default();
    let availability = match spec.availability {
        Some(NodeSpecAvailabilityEnum::PAUSE) => Availability::Pause,
        Some(NodeSpecAvailabilityEnum::DRAIN) => Availability::Drain,
        _ => Availability::Active,
    };
    Some(Node {
        id: node.id?,
        hostname: node.description.and_then(|d| d.hostname).unwrap_or_default(),
        address: status.addr.unwrap_or_default(),
        state: status.state.map_or_else(|| "unknown".to_owned(), |s| s.to_string()),
        availability,
        manager: node.manager_status.is_some(),
    })
}

fn view(task: &Task) -> TaskView {
    let status = task.status.clone().unwrap_or_default();
    TaskView {
        state: status.state.unwrap_or(TaskState::NEW),
        exit_code: status.container_status.and_then(|c| c.exit_code),
        node: task.node_id.clone(),
        published: status
            .port_status
            .and_then(|p| p.ports)
            .unwrap_or_default()
            .into_iter()
            .find_map(|p| u16::try_from(p.published_port?).ok()),
    }
}

/// Whether a task has stopped for good (or never will run).
fn finished(state: TaskState) -> bool {
    matches!(
        state,
        TaskState::COMPLETE
            | TaskState::SHUTDOWN
            | TaskState::FAILED
            | TaskState::REJECTED
            | TaskState::REMOVE
            | TaskState::ORPHANED
    )
}

/// Unix seconds of an RFC 3339 time.
fn unix_seconds(text: Option<&str>) -> i64 {
    text.and_then(|t| time::OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok())
        .map_or(0, |t| t.unix_timestamp())
}

#[async_trait]
impl ContainerRuntime for SwarmRuntime {
    async fn list(&self) -> Result<Vec<Container>, RuntimeError> {
        let options = ListServicesOptions { filters: Some(platform_filter(&self.platform)), ..Default::default() };
        let services = self.docker.list_services(Some(options)).await?;
        let ids = services.iter().filter_map(|service| service.id.clone()).collect();
        let (tasks, nodes) = (self.newest_tasks(&ids).await?, self.nodes_by_id().await?);
        Ok(services
            .into_iter()
            .filter_map(|service| {
                let id = service.id?;
                let labels = service.spec?.labels.unwrap_or_default();
                let task = tasks.get(&id).map(view);
                // Its task's node, or before Swarm placed it, the node Skiff chose.
                let node = task
                    .as_ref()
                    .and_then(|t| t.node.as_deref())
                    .or_else(|| labels.get(NODE_LABEL).map(String::as_str))
                    .and_then(|node| nodes.get(node));
                let node_state = match node {
                    Some(node) if node.state != "ready" => NodeState::Lost,
                    Some(node) if node.availability != Availability::Active => NodeState::Leaving,
                    _ => NodeState::Up,
                };
                let running = task.as_ref().is_some_and(|t| t.state == TaskState::RUNNING)
                    && node.is_some()
                    && node_state != NodeState::Lost;
                let web = labels.get("skiff.process").is_some_and(|p| ProcessType::is_web(p));
                let address = match (&task, node) {
                    (Some(task), Some(node)) if web && running => {
                        Some(SocketAddr::new(node.address.parse().ok()?, task.published?))
                    }
                    _ => None,
                };
                Some(Container {
                    id,
                    app: labels.get("skiff.app")?.parse().ok()?,
                    app_id: labels.get(APP_ID_LABEL).and_then(|id| id.parse().ok()),
                    release: labels.get("skiff.release")?.parse().ok()?,
                    generation: labels.get("skiff.generation").and_then(|g| g.parse().ok()).unwrap_or(0),
                    process: labels.get("skiff.process")?.clone(),
                    running,
                    one_off: labels.contains_key(ONE_OFF_LABEL),
                    created: unix_seconds(service.created_at.as_deref()),
                    address,
                    node: node.map(|n| n.id.clone()),
                    node_state,
                })
            })
            .collect())
    }

    async fn start(&self, spec: &StartSpec) -> Result<Container, RuntimeError> {
        // The manager reads the app's port from the image; the node pulls it for itself.
        let port = if ProcessType::is_web(&spec.process) {
            self.images.pull(&spec.image).await?;
            Port::Published(self.images.app_port(&spec.image).await)
        } else {
            Port::Unpublished
        };
        let mut labels = labels(spec, &self.platform);
        let network = self.networks.ensure(&spec.app).await?;
        let placing = self.placing.lock().await;
        let node = self.choose_node(spec).await?;
        if let Some(node) = &node {
            labels.insert(NODE_LABEL.to_owned(), node.clone());
        }
        let mut service = self.service(spec, network, labels, port);
        if let (Some(node), Some(task)) = (&node, service.task_template.as_mut()) {
            // Placed by Skiff; a container whose node is lost is replaced by Skiff elsewhere.
            task.placement =
                Some(TaskSpecPlacement { constraints: Some(vec![format!("node.id=={node}")]), ..Default::default() });
        }
        let created = self.docker.create_service(service, Some(self.images.credentials().clone())).await?;
        drop(placing);
        let id = created.id.ok_or_else(|| RuntimeError::NoAddress("a service Swarm gave no id".into()))?;
        Ok(Container {
            id,
            app: spec.app.clone(),
            app_id: Some(spec.app_id),
            release: spec.release,
            generation: spec.generation,
            process: spec.process.clone(),
            // Swarm has yet to place it: the boot check waits for it to run and answer.
            running: false,
            one_off: false,
            created: time::OffsetDateTime::now_utc().unix_timestamp(),
            address: None,
            node: None,
            node_state: NodeState::Up,
        })
    }

    async fn run_one_off(
        &self,
        spec: &StartSpec,
        timeout: std::time::Duration,
        output: tokio::sync::mpsc::Sender<RunOutput>,
    ) -> Result<i64, RuntimeError> {
        let mut labels = labels(spec, &self.platform);
        labels.insert(ONE_OFF_LABEL.to_owned(), "true".to_owned());
        let network = self.networks.ensure(&spec.app).await?;
        let service = self.service(spec, network, labels, Port::OneOff);
        let created = self.docker.create_service(service, Some(self.images.credentials().clone())).await?;
        let id = created.id.ok_or_else(|| RuntimeError::NoAddress("a job Swarm gave no id".into()))?;
        let run = async {
            // The job's output, from whichever node runs it, once it has finished.
            let code = loop {
                match self.task_of(&id).await? {
                    Some(task) if finished(task.state) => break task.exit_code.unwrap_or(-1),
                    _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
                }
            };
            let options = LogsOptions { follow: false, stdout: true, stderr: true, ..Default::default() };
            forward_output(self.docker.service_logs(&id, Some(options)), &output).await?;
            Ok(Some(code))
        };
        finish_one_off(self, &id, timeout, &output, run).await
    }

    async fn exit_code(&self, id: &str) -> Result<Option<i64>, RuntimeError> {
        let task = match self.task_of(id).await {
            Ok(task) => task,
            Err(RuntimeError::Docker(bollard::errors::Error::DockerResponseServerError {
                status_code: 404, ..
            })) => return Ok(Some(-1)),
            Err(error) => return Err(error),
        };
        let Some(task) = task else { return Ok(None) };
        if finished(task.state) {
            return Ok(Some(task.exit_code.unwrap_or(-1)));
        }
        // A task on a node that went down will not run again.
        let node = match task.node.as_deref() {
            Some(node) if task.state == TaskState::RUNNING => self.nodes_by_id().await?.remove(node),
            _ => return Ok(None),
        };
        Ok(node.is_none_or(|node| node.state != "ready").then_some(-1))
    }

    async fn nodes(&self) -> Result<Vec<Node>, RuntimeError> {
        let mut nodes: Vec<Node> = self.nodes_by_id().await?.into_values().collect();
        nodes.sort_by(|a, b| (!a.manager, &a.hostname, &a.address).cmp(&(!b.manager, &b.hostname, &b.address)));
        Ok(nodes)
    }

    async fn set_availability(&self, name: &str, availability: Availability) -> Result<Node, RuntimeError> {
        let node = self.node_named(name).await?;
        let id = node.id.clone().ok_or_else(|| RuntimeError::NoSuchNode(name.to_owned()))?;
        let version = node.version.as_ref().and_then(|v| v.index).unwrap_or(0);
        let mut spec = node.spec.clone().unwrap_or_default();
        spec.availability = Some(match availability {
            Availability::Active => NodeSpecAvailabilityEnum::ACTIVE,
            Availability::Pause => NodeSpecAvailabilityEnum::PAUSE,
            Availability::Drain => NodeSpecAvailabilityEnum::DRAIN,
        });
        let options = UpdateNodeOptions { version: i64::try_from(version).unwrap_or(i64::MAX) };
        self.docker.update_node(&id, spec, options).await?;
        let updated = self.docker.inspect_node(&id).await?;
        read_node(updated).ok_or(RuntimeError::NoSuchNode(id))
    }

    async fn join_command(&self) -> Result<JoinCommand, RuntimeError> {
        let swarm = self.docker.inspect_swarm().await?;
        let token = swarm.join_tokens.and_then(|t| t.worker).unwrap_or_default();
        let managers: Vec<String> =
            self.docker.list_nodes(None).await?.into_iter().filter_map(|node| node.manager_status?.addr).collect();
        Ok(JoinCommand { command: format!("docker swarm join --token {token} {}", managers.join(" ")) })
    }

    async fn remove(&self, id: &str) -> Result<(), RuntimeError> {
        let app = match self.docker.inspect_service(id, None).await {
            Ok(service) => service.spec.and_then(|s| s.labels?.get("skiff.app")?.parse::<AppName>().ok()),
            Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => return Ok(()),
            Err(error) => return Err(error.into()),
        };
        match self.docker.delete_service(id).await {
            Ok(()) | Err(bollard::errors::Error::DockerResponseServerError { status_code: 404, .. }) => {}
            Err(error) => return Err(error.into()),
        }
        let Some(app) = app else { return Ok(()) };
        let labels = vec![format!("skiff.platform={}", self.platform), format!("skiff.app={app}")];
        let filters = HashMap::from([("label".to_owned(), labels)]);
        let others =
            self.docker.list_services(Some(ListServicesOptions { filters: Some(filters), ..Default::default() }));
        if others.await?.is_empty() {
            self.networks.remove_once_left(&app);
        }
        Ok(())
    }
}
