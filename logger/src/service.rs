//! The logger as a service: what it needs to run, and [`run`], which starts every part
//! (drains, Redis sharing, the container collector, the syslog listeners, the read API)
//! and waits for them at shutdown.

use std::path::PathBuf;
use std::sync::Arc;

use skiff_service::Readiness;
use tokio::net::{TcpListener, UdpSocket};
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::buffer::Buffers;
use crate::docker::Collector;
use crate::drain::{DrainOptions, Drains};
use crate::positions::Positions;
use crate::shared::{QUEUE, Sharing};
use crate::syslog::{Ingest, serve_tcp, serve_udp};

/// Everything the logger needs to run.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    /// Only containers labelled with this platform id are followed.
    pub platform: String,
    /// The platform's service token, which the read API requires.
    pub service_token: String,
    /// The controller, whose drain list the logger follows.
    pub controller_url: String,
    /// Recent lines kept per app.
    pub lines_per_app: usize,
    /// The longest syslog message kept, in bytes.
    pub max_message: usize,
    pub drains: DrainOptions,
    /// Redis, to share buffers with other logger replicas.
    pub redis_url: Option<String>,
    /// Where read positions in containers' output are kept across restarts.
    pub positions: PathBuf,
}

/// Where the logger listens.
pub struct Listeners {
    /// The read API.
    pub api: TcpListener,
    pub syslog_tcp: TcpListener,
    pub syslog_udp: UdpSocket,
    /// Syslog over TLS (RFC 5425), with its certificate.
    pub syslog_tls: (TcpListener, TlsAcceptor),
}

/// Why the logger stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot reach Redis (SKIFF_REDIS_URL): {0}")]
    Redis(#[from] redis::RedisError),
    #[error("cannot reach the Docker engine (is dockerd running? is /var/run/docker.sock readable?): {0}")]
    Engine(#[from] bollard::errors::Error),
    #[error("the read API failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// Runs the logger until `shutdown`, then waits for its parts to finish.
///
/// # Errors
/// When Redis or the engine cannot be reached at start, or the read API fails.
pub async fn run(config: ServiceConfig, listeners: Listeners, shutdown: CancellationToken) -> Result<(), RunError> {
    let tasks = TaskTracker::new();
    let drains = Drains::new(config.drains, shutdown.clone());
    let client = skiff_client::Client::new(&config.controller_url, Some(config.service_token.clone()));
    tasks.spawn(crate::drain::follow(client, drains.clone(), shutdown.clone()));
    let buffers = Buffers::with_drains(config.lines_per_app, Some(drains));
    let mut readiness = Readiness::new();
    let buffers = match &config.redis_url {
        Some(url) => {
            let sharing = Sharing::connect(url).await?;
            let (share, taken) = tokio::sync::mpsc::channel(QUEUE);
            let buffers = Arc::new(buffers.sharing(share));
            let loaded = sharing.load(&buffers).await?;
            tracing::info!(loaded, "logger.shared: recent lines loaded");
            let redis = sharing.connection();
            readiness = readiness.check("redis", move || {
                let mut redis = redis.clone();
                async move { redis::cmd("PING").query_async::<()>(&mut redis).await.map_err(|e| e.to_string()) }
            });
            tasks.spawn(sharing.run(buffers.clone(), taken, shutdown.clone()));
            buffers
        }
        None => Arc::new(buffers),
    };
    let positions = Positions::load(config.positions);
    let collector = Collector::connect(&config.platform, buffers.clone(), positions).await?;
    let engine = collector.clone();
    readiness = readiness.check("engine", move || {
        let engine = engine.clone();
        async move { engine.ping().await.map_err(|e| e.to_string()) }
    });
    tasks.spawn(collector.run(shutdown.clone()));
    let ingest = Ingest::new(buffers.clone(), config.max_message);
    tasks.spawn(serve_udp(listeners.syslog_udp, ingest.clone(), shutdown.clone()));
    tasks.spawn(serve_tcp(listeners.syslog_tcp, None, ingest.clone(), shutdown.clone()));
    let (tls, acceptor) = listeners.syslog_tls;
    tasks.spawn(serve_tcp(tls, Some(acceptor), ingest, shutdown.clone()));
    let served = crate::http::serve(listeners.api, buffers, &config.service_token, readiness, shutdown.clone()).await;
    // The API ended: at shutdown, or because it failed, when the rest stops too.
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    Ok(served?)
}
