//! The controller as a service: what it needs to run, and [`run`], which opens the
//! database, reaches the engine and Redis, and runs the scheduler, the image retention
//! loop and the API until shutdown.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use skiff_registry_client::RegistryClient;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::config::Config;
use crate::coordination::Coordination;
use crate::db::{Db, DbError};
use crate::events::Events;
use crate::routes::RouteFeed;
use crate::scheduler::{
    Confinement, ContainerRuntime, DockerRuntime, MemoryRuntime, RuntimeError, Scheduler, SwarmRuntime,
};
use crate::state::Controller;

/// Where app containers run.
#[derive(Debug, Clone)]
pub enum Engine {
    /// The local Docker engine; `platform` names this platform's containers on it.
    Docker { platform: String, confinement: Confinement },
    /// A Docker Swarm, through a manager's engine; its process limit applies, CPU shares
    /// do not (Swarm has none).
    Swarm { platform: String, confinement: Confinement },
    /// Small HTTP servers inside the process that answer like apps.
    Memory,
}

/// Everything the controller needs to run.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub controller: Config,
    pub engine: Engine,
    /// Redis, for replicas to share work.
    pub redis_url: Option<String>,
    /// The logger's syslog address, for events in apps' log streams.
    pub syslog: SocketAddr,
    /// Time between image retention passes and registry garbage collections.
    pub gc_interval: Duration,
}

/// Why the controller stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot open the database (SKIFF_DATABASE_URL): {0}")]
    Database(#[from] DbError),
    #[error("cannot reach the Docker engine (is dockerd running? is /var/run/docker.sock readable?): {0}")]
    Engine(#[from] RuntimeError),
    #[error("cannot reach Redis (SKIFF_REDIS_URL): {0}")]
    Redis(#[from] redis::RedisError),
    #[error("the API server failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// Every minute, removes warm containers nobody used (see `scheduler::docker::warm`).
async fn expire_warm_containers(runtime: Arc<dyn ContainerRuntime>, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(std::time::Duration::from_secs(60)) => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(error) = runtime.expire_warm().await {
            tracing::info!(%error, "controller.warm.expiry_failed");
        }
    }
}

/// Has the engine hold the default stack from the start: its image, and where the engine
/// can, a pause container for the first app made on it (see `scheduler::docker::pause`).
async fn hold_default_stack(db: Db, runtime: Arc<dyn ContainerRuntime>, settings: Arc<Config>) {
    let stacks = match db.stacks().await {
        Ok(stacks) => stacks,
        Err(error) => return tracing::info!(%error, "controller.stack.unread"),
    };
    if let Some((_, image)) = stacks.into_iter().find(|(name, _)| *name == settings.default_stack) {
        crate::stacks::hold(runtime.as_ref(), &settings.registry_host, &image).await;
    }
}

/// Runs the controller until `shutdown`, then waits for its loops to finish.
///
/// # Errors
/// When the database, the engine or Redis cannot be reached at start, or the API fails.
pub async fn run(config: ServiceConfig, listener: TcpListener, shutdown: CancellationToken) -> Result<(), RunError> {
    let settings = Arc::new(config.controller);
    let db = Db::open(&settings.database_url).await?;
    let registry = Arc::new(RegistryClient::new(&settings.registry_url, "skiff", &settings.service_token));
    let runtime: Arc<dyn ContainerRuntime> = match config.engine {
        Engine::Docker { platform, confinement } => Arc::new(
            DockerRuntime::connect(
                &platform,
                &settings.registry_host,
                &settings.service_token,
                registry.clone(),
                confinement,
            )
            .await?,
        ),
        Engine::Swarm { platform, confinement } => Arc::new(
            SwarmRuntime::connect(
                &platform,
                &settings.registry_host,
                &settings.service_token,
                confinement.networking,
                confinement.pids,
            )
            .await?,
        ),
        Engine::Memory => Arc::new(MemoryRuntime::new()),
    };
    let coordination = match &config.redis_url {
        Some(url) => Coordination::redis(url, shutdown.clone()).await?,
        None => Coordination::local(),
    };
    let routes = Arc::new(RouteFeed::default());
    let events = Arc::new(Events::connect(db.clone(), config.syslog, coordination.clone()).await);
    let tasks = TaskTracker::new();
    let scheduler = Scheduler::new(
        db.clone(),
        runtime.clone(),
        routes.clone(),
        settings.clone(),
        coordination.clone(),
        events.clone(),
    );
    tasks.spawn(scheduler.run(shutdown.clone()));
    tasks.spawn(expire_warm_containers(runtime.clone(), shutdown.clone()));
    tasks.spawn(hold_default_stack(db.clone(), runtime.clone(), settings.clone()));
    let (keep, interval) = (settings.release_retention, config.gc_interval);
    tasks.spawn(crate::retention::run(db.clone(), registry, keep, interval, shutdown.clone()));
    let expiry = settings.reconcile_interval;
    let controller = Controller::new(settings, db, runtime.clone(), routes, coordination, events, shutdown.clone());
    tasks.spawn(crate::domain::expire_review_apps(controller.clone(), expiry, shutdown.clone()));
    tasks.spawn(crate::domain::judge_canaries(controller.clone(), shutdown.clone()));
    tasks.spawn(crate::webhooks::deliver(controller.clone(), shutdown.clone()));
    tasks.spawn(crate::domain::run_scheduled_jobs(controller.clone(), shutdown.clone()));
    tasks.spawn(crate::acme::order_certificates(controller.clone(), shutdown.clone()));
    let served = crate::http::serve(listener, controller, shutdown.clone()).await;
    // The API ended: at shutdown, or because it failed, when the loops stop too.
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    runtime.shut_down().await;
    Ok(served?)
}
