//! The [`ContainerRuntime`] seam: what the scheduler needs of an engine.
//!
//! Containers carry the labels `skiff.app`, `skiff.app-id`, `skiff.release` and
//! `skiff.process`; a runtime finds Skiff's containers by them, so the controller keeps no
//! container state of its own and a restarted controller picks up where it left off. The
//! app's id tells apart the containers of an app and of one destroyed before it under the
//! same name: the plan, the route feed and warm containers take only the app's own.
//!
//! Backends: [`super::docker`] (one Docker engine) and [`super::memory`] (servers in this
//! process). A backend on another orchestrator (Kubernetes, say) needs what this trait
//! asks: list the platform's workloads with their labels and an address the routers can
//! reach, start one from an image with env, command and limits, run a one-off to
//! completion with its output, tell an exit status, and remove one.

use std::net::SocketAddr;

use async_trait::async_trait;
use skiff_api::{AppName, RunOutput};

/// Marks one-off containers (`skiff run`); the scheduler leaves them alone.
pub const ONE_OFF_LABEL: &str = "skiff.one-off";
/// The id of the app a container is of: a destroyed app's name may come back, and a
/// container of the destroyed app is never taken for the new one's.
pub const APP_ID_LABEL: &str = "skiff.app-id";

/// The port an app listens on inside its container (`$PORT`), unless its image exposes
/// one.
pub const CONTAINER_PORT: u16 = 5000;

/// A runtime failure.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("docker engine: {0}")]
    Docker(#[from] bollard::errors::Error),
    #[error("container {0} has no address the routers can reach")]
    NoAddress(String),
    #[error("in-process container: {0}")]
    Memory(#[from] std::io::Error),
    #[error("every /24 of the apps' subnet pool {0} is taken; give a larger one with SKIFF_DOCKER_SUBNET")]
    SubnetsExhausted(String),
    #[error("the Docker network {0} vanished as it was made")]
    NetworkVanished(String),
    #[error("this runtime runs on one engine and has no nodes (SKIFF_RUNTIME=swarm has)")]
    NoCluster,
    #[error("no node is named {0}")]
    NoSuchNode(String),
    #[error("the platform's registry: {0}")]
    Registry(#[from] skiff_registry_client::RegistryError),
    #[error("cannot warm a container: {0}")]
    Warm(String),
}

/// What to start.
#[derive(Debug, Clone, PartialEq)]
pub struct StartSpec {
    pub app: AppName,
    pub app_id: i64,
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
    /// `None` for a container made before Skiff labelled containers with it.
    pub app_id: Option<i64>,
    pub release: u32,
    pub generation: u32,
    pub process: String,
    pub running: bool,
    /// A `skiff run` container, which the scheduler leaves alone.
    pub one_off: bool,
    /// Unix seconds when it was created.
    pub created: i64,
    /// Where the routers and health checks reach its `$PORT` (`web` containers only).
    pub address: Option<SocketAddr>,
    /// The cluster node it runs on (`None` on a single engine).
    pub node: Option<String>,
    /// Whether that node keeps it.
    pub node_state: NodeState,
}

/// What a container's node means for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum NodeState {
    /// The node is up and takes work.
    #[default]
    Up,
    /// The node is being drained: the container moves elsewhere, replaced first.
    Leaving,
    /// The node is down: the container is gone with it.
    Lost,
}

/// A node of a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    pub id: String,
    pub hostname: String,
    /// The address other nodes reach it at.
    pub address: String,
    /// `ready`, `down`, …, as the orchestrator says.
    pub state: String,
    pub availability: Availability,
    pub manager: bool,
}

/// Whether a node takes work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// It takes new containers.
    Active,
    /// It keeps what it runs and takes nothing new (Skiff moves its containers off).
    Pause,
    /// It runs nothing.
    Drain,
}

impl std::fmt::Display for Availability {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Active => "active",
            Self::Pause => "pause",
            Self::Drain => "drain",
        })
    }
}

/// How a cluster is joined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JoinCommand {
    /// The command a new worker runs, with its token.
    pub command: String,
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
    /// The container with this id, if it exists.
    async fn find(&self, id: &str) -> Result<Option<Container>, RuntimeError> {
        Ok(self.list().await?.into_iter().find(|container| container.id == id))
    }
    /// The exit status of a container that stopped; `None` while it runs.
    async fn exit_code(&self, id: &str) -> Result<Option<i64>, RuntimeError>;
    /// Whether a stopped container was killed for using more than its memory limit.
    async fn out_of_memory(&self, _id: &str) -> Result<bool, RuntimeError> {
        Ok(false)
    }
    /// Starts a container ahead for the web container of a release still being built
    /// (`spec.image`: the app's stack, by tag), for [`Self::start`] to take over, where the
    /// backend can (the Docker backend's warm containers); a no-op elsewhere.
    async fn warm(&self, _spec: &StartSpec) -> Result<(), RuntimeError> {
        Ok(())
    }
    /// Has the backend hold an image it will need soon (a stack just imported, by digest),
    /// where it keeps images (the Docker backend: the engine pulls it, and returns once a
    /// pause container waits); a no-op elsewhere.
    async fn hold(&self, _image: &str) -> Result<(), RuntimeError> {
        Ok(())
    }
    /// Removes an app's containers started ahead that were not taken over.
    async fn unwarm(&self, _app: &AppName) -> Result<(), RuntimeError> {
        Ok(())
    }
    /// Removes every app's containers started ahead that waited too long or stopped.
    async fn expire_warm(&self) -> Result<(), RuntimeError> {
        Ok(())
    }
    /// Called as the controller stops: removes what the backend keeps started ahead for no
    /// container in particular (the Docker backend's spare pause containers), and makes no
    /// more of it.
    async fn shut_down(&self) {}
    /// Stops (gracefully, then by force) and removes a container; absent is fine.
    async fn remove(&self, id: &str) -> Result<(), RuntimeError>;
    /// Whether the engine answers.
    async fn ping(&self) -> Result<(), RuntimeError> {
        self.list().await.map(drop)
    }
    /// The cluster's nodes; none on a single engine.
    async fn nodes(&self) -> Result<Vec<Node>, RuntimeError> {
        Ok(Vec::new())
    }
    /// Sets whether a node (by id or host name) takes work.
    async fn set_availability(&self, _node: &str, _availability: Availability) -> Result<Node, RuntimeError> {
        Err(RuntimeError::NoCluster)
    }
    /// What a new worker runs to join the cluster.
    async fn join_command(&self) -> Result<JoinCommand, RuntimeError> {
        Err(RuntimeError::NoCluster)
    }
}
