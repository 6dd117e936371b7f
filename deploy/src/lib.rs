//! `skiffd`: the launcher that runs any subset of Skiff's components in one process.
//!
//! Layout: [`Settings`] is every knob (flags and `SKIFF_*` environment variables);
//! [`start`] binds the chosen components' listeners and runs them until their
//! [`Platform`] is stopped. Components still talk to each other only over their network
//! protocols, even in one process, so any of them can move to another machine by
//! configuration alone.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use arc_swap::ArcSwap;
use clap::{Args, Parser, Subcommand};
use skiff_api::StackName;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

/// How long shutdown waits for in-flight work.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

#[derive(Debug, Parser)]
#[command(name = "skiffd", version, about = "Run Skiff's components")]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every component in one process, on embedded defaults (SQLite, local files, Docker).
    All(Settings),
    /// The controller API and scheduler.
    Controller(Settings),
    /// The SSH builder.
    Builder(Settings),
    /// The registry.
    Registry(Settings),
    /// The HTTP router.
    Router(Settings),
    /// The logger.
    Logger(Settings),
    /// Internal: run by git as a repository hook (`skiffd hook pre-receive`).
    #[command(hide = true)]
    Hook(HookArgs),
}

#[derive(Debug, Args)]
pub struct HookArgs {
    /// The hook git runs.
    pub hook: String,
}

/// Every setting, each with its `SKIFF_*` variable.
#[derive(Debug, Clone, Args)]
pub struct Settings {
    /// Where state lives: database, blobs, repositories, keys [default: ~/.local/share/skiff].
    #[arg(long, env = "SKIFF_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Secret shared by the components [default: generated once into <data-dir>/service-token].
    #[arg(long, env = "SKIFF_SERVICE_TOKEN", hide_env_values = true)]
    pub service_token: Option<String>,
    /// Platform domain: apps answer at http://<app>.<domain>.
    #[arg(long, env = "SKIFF_DOMAIN", default_value = "localhost")]
    pub domain: String,
    /// Controller API listen address.
    #[arg(long, env = "SKIFF_CONTROLLER_LISTEN", default_value = "127.0.0.1:7700")]
    pub controller_listen: SocketAddr,
    /// Registry listen address.
    #[arg(long, env = "SKIFF_REGISTRY_LISTEN", default_value = "127.0.0.1:7701")]
    pub registry_listen: SocketAddr,
    /// Logger HTTP API listen address.
    #[arg(long, env = "SKIFF_LOGGER_LISTEN", default_value = "127.0.0.1:7702")]
    pub logger_listen: SocketAddr,
    /// Logger syslog listen address (UDP and TCP).
    #[arg(long, env = "SKIFF_LOGGER_SYSLOG_LISTEN", default_value = "127.0.0.1:7514")]
    pub syslog_listen: SocketAddr,
    /// Logger syslog-over-TLS (RFC 5425) listen address.
    #[arg(long, env = "SKIFF_LOGGER_SYSLOG_TLS_LISTEN", default_value = "127.0.0.1:6514")]
    pub syslog_tls_listen: SocketAddr,
    /// The syslog-over-TLS certificate (PEM chain) [default: one for `localhost` from the
    /// local CA in <data-dir>/router/ca.crt].
    #[arg(long, env = "SKIFF_LOGGER_TLS_CERT", requires = "logger_tls_key")]
    pub logger_tls_cert: Option<PathBuf>,
    /// Its PEM private key.
    #[arg(long, env = "SKIFF_LOGGER_TLS_KEY", requires = "logger_tls_cert")]
    pub logger_tls_key: Option<PathBuf>,
    /// Builder SSH listen address.
    #[arg(long, env = "SKIFF_BUILDER_LISTEN", default_value = "127.0.0.1:2222")]
    pub builder_listen: SocketAddr,
    /// Router HTTP listen address.
    #[arg(long, env = "SKIFF_ROUTER_LISTEN", default_value = "127.0.0.1:8080")]
    pub router_listen: SocketAddr,
    /// Router HTTPS listen address.
    #[arg(long, env = "SKIFF_ROUTER_TLS_LISTEN", default_value = "127.0.0.1:8443")]
    pub router_tls_listen: SocketAddr,
    /// The router's default certificate (PEM chain), served for names without their own
    /// [default: one made for *.<domain> once, kept in <data-dir>/router/tls.crt].
    #[arg(long, env = "SKIFF_ROUTER_TLS_CERT", requires = "router_tls_key")]
    pub router_tls_cert: Option<PathBuf>,
    /// The default certificate's PEM private key.
    #[arg(long, env = "SKIFF_ROUTER_TLS_KEY", requires = "router_tls_cert")]
    pub router_tls_key: Option<PathBuf>,
    /// Controller URL for the other components [default: http://<controller-listen>].
    #[arg(long, env = "SKIFF_CONTROLLER_URL")]
    pub controller_url: Option<String>,
    /// Registry URL for the other components [default: http://<registry-listen>].
    #[arg(long, env = "SKIFF_REGISTRY_URL")]
    pub registry_url: Option<String>,
    /// Where other registries on the same S3 store reach this one, to pass it requests for
    /// the uploads it holds [default: http://<registry-listen>].
    #[arg(long, env = "SKIFF_REGISTRY_PEER_URL")]
    pub registry_peer_url: Option<String>,
    /// Logger URL for the controller [default: http://<logger-listen>].
    #[arg(long, env = "SKIFF_LOGGER_URL")]
    pub logger_url: Option<String>,
    /// A fixed route table for a router without a controller: `HOST=ADDR[,ADDR…]` entries
    /// separated by spaces.
    #[arg(long, env = "SKIFF_ROUTER_ROUTES")]
    pub router_routes: Option<String>,
    /// Seconds an app may take to start answering a request before the router answers 504.
    #[arg(long, env = "SKIFF_ROUTER_RESPONSE_TIMEOUT", default_value_t = 30)]
    pub router_response_timeout: u64,
    /// Seconds a client connection may go without a byte either way before the router
    /// closes it (idle HTTP/2 connections, stalled request bodies, quiet WebSockets).
    #[arg(long, env = "SKIFF_ROUTER_IDLE_TIMEOUT", default_value_t = 60)]
    pub router_idle_timeout: u64,
    /// Proxies in front of the router whose X-Forwarded-* headers are believed (addresses
    /// or blocks separated by commas or spaces, e.g. `10.0.0.0/8`) [default: none].
    #[arg(long, env = "SKIFF_ROUTER_TRUSTED_PROXIES", default_value = "")]
    pub router_trusted_proxies: String,
    /// Router worker threads, each serving client connections with its own event loop; 0
    /// for one per CPU.
    #[arg(long, env = "SKIFF_ROUTER_THREADS", default_value_t = 0)]
    pub router_threads: usize,
    /// Send an access line per request into the app's log stream.
    #[arg(long, env = "SKIFF_ROUTER_ACCESS_LOG", default_value_t = true, action = clap::ArgAction::Set)]
    pub router_access_log: bool,
    /// How many recent releases of each app keep their images in the registry.
    #[arg(long, env = "SKIFF_RELEASE_RETENTION", default_value_t = 10)]
    pub release_retention: usize,
    /// Seconds between image retention passes and registry garbage collections.
    #[arg(long, env = "SKIFF_GC_INTERVAL", default_value_t = 3600)]
    pub gc_interval: u64,
    /// Who may create accounts after the first (admin) one: open, admin_only or disabled.
    #[arg(long, env = "SKIFF_REGISTRATION", default_value = "admin_only")]
    pub registration: skiff_controller::config::Registration,
    /// Stack for apps that name none.
    #[arg(long, env = "SKIFF_DEFAULT_STACK", default_value = "busybox")]
    pub default_stack: StackName,
    /// Registries other than the platform's whose images Dockerfile builds and `deploy
    /// --image` may use: `host[:port]` names, comma-separated, or `*` for any [default:
    /// none; the engine pulls from them without the platform's credentials].
    #[arg(long, env = "SKIFF_ALLOWED_REGISTRIES", value_delimiter = ',')]
    pub allowed_registries: Vec<String>,
    /// Where app containers run: `docker` (the local engine) or `memory` (small HTTP
    /// servers inside skiffd that answer like apps; for measuring or trying the controller
    /// and router without an engine).
    #[arg(long, env = "SKIFF_RUNTIME", value_enum, default_value = "docker")]
    pub runtime: Runtime,
    /// The Docker network app containers sit on; Skiff makes it, with inter-container
    /// traffic off, when it does not exist, so that containers of different apps cannot
    /// reach each other.
    #[arg(long, env = "SKIFF_DOCKER_NETWORK", default_value = "skiff-apps")]
    pub docker_network: String,
    /// Memory of an app container whose app set none with `limits:set`, in MiB.
    #[arg(long, env = "SKIFF_DEFAULT_MEMORY", default_value_t = 512)]
    pub default_memory: u64,
    /// The most memory an app may ask for with `limits:set`, in MiB.
    #[arg(long, env = "SKIFF_MAX_MEMORY", default_value_t = 8192)]
    pub max_memory: u64,
    /// The most processes (and threads) an app container may run.
    #[arg(long, env = "SKIFF_DEFAULT_PIDS", default_value_t = 512)]
    pub default_pids: i64,
    /// Each app container's CPU weight against the others (1024 is Docker's default).
    #[arg(long, env = "SKIFF_DEFAULT_CPU_SHARES", default_value_t = 1024)]
    pub default_cpu_shares: i64,
    /// Seconds between reconcile passes when nothing changes.
    #[arg(long, env = "SKIFF_RECONCILE_INTERVAL", default_value_t = 10)]
    pub reconcile_interval: u64,
    /// Seconds a new container may take to answer HTTP on $PORT.
    #[arg(long, env = "SKIFF_BOOT_TIMEOUT", default_value_t = 60)]
    pub boot_timeout: u64,
    /// Seconds a container leaving service (replaced, scaled down) keeps running after
    /// routers stop sending it requests, so that requests in flight finish.
    #[arg(long, env = "SKIFF_DRAIN_SECONDS", default_value_t = 5)]
    pub drain_seconds: u64,
    /// Recent log lines kept per app.
    #[arg(long, env = "SKIFF_LOGGER_LINES", default_value_t = 10_000)]
    pub log_lines: usize,
    /// The longest syslog message kept, in bytes; longer ones are cut and marked.
    #[arg(long, env = "SKIFF_LOGGER_MAX_MESSAGE", default_value_t = skiff_logger::syslog::DEFAULT_MAX_MESSAGE)]
    pub max_log_message: usize,
    /// Lines each log drain may queue while it is slow or down; more are dropped and counted.
    #[arg(long, env = "SKIFF_LOGGER_DRAIN_QUEUE", default_value_t = 10_000)]
    pub drain_queue: usize,
    /// A PEM file of CA certificates trusted for TLS drains, beside the system's (a drain
    /// that presents one of them itself, as a self-signed one does, is trusted too).
    #[arg(long, env = "SKIFF_LOGGER_DRAIN_CA")]
    pub drain_ca: Option<PathBuf>,
    /// Lines a second each app's drain may send (bursts up to a second's worth); more are
    /// dropped and counted. Platform drains are not limited.
    #[arg(long, env = "SKIFF_LOGGER_DRAIN_RATE", default_value_t = 1000)]
    pub drain_rate: u32,
    /// Networks that URLs given by tenants (app drains) may reach although they are
    /// loopback, private, link-local or otherwise internal: comma-separated addresses or
    /// blocks (`10.1.0.0/16,127.0.0.1`) [default: none].
    #[arg(long, env = "SKIFF_OUTBOUND_ALLOW", default_value = "", value_parser = skiff_api::OutboundPolicy::parse)]
    pub outbound_allow: skiff_api::OutboundPolicy,
    /// The largest push accepted, in MiB of packed git objects.
    #[arg(long, env = "SKIFF_BUILDER_MAX_PUSH_MB", default_value_t = 1024)]
    pub max_push_mb: u64,
    /// Seconds a build may be silent before the pusher sees `... still working`.
    #[arg(long, env = "SKIFF_BUILDER_KEEPALIVE", default_value_t = 10)]
    pub builder_keepalive: u64,
    /// Builds that may run at once.
    #[arg(long, env = "SKIFF_BUILDER_MAX_BUILDS", default_value_t = 2)]
    pub max_builds: usize,
    /// The registry's blob store: `s3://BUCKET?endpoint=http://HOST:PORT[&region=R]`
    /// (credentials in AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or `access_key_id=` and
    /// `secret_access_key=` in the URL) [default: files in <data-dir>/store].
    #[arg(long, env = "SKIFF_STORE_URL", hide_env_values = true)]
    pub store_url: Option<String>,
    /// The controller's database: `postgres://USER@HOST:PORT/DB` [default: SQLite in
    /// <data-dir>/skiff.db].
    #[arg(long, env = "SKIFF_DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis, for controller replicas to share work and logger replicas to share log
    /// buffers: `redis://HOST:PORT/DB` [default: none; one replica of each].
    #[arg(long, env = "SKIFF_REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Names this platform's containers, so platforms can share a Docker engine
    /// [default: generated once into <data-dir>/platform-id].
    #[arg(long, env = "SKIFF_PLATFORM_ID")]
    pub platform_id: Option<String>,
    /// Program git runs as the pre-receive hook [default: this executable].
    #[arg(long, env = "SKIFF_BUILDER_HOOK_PROGRAM")]
    pub hook_program: Option<PathBuf>,
}

/// Where app containers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    Docker,
    Memory,
}

/// Which components to run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Component {
    Controller,
    Builder,
    Registry,
    Router,
    Logger,
}

const ALL: &[Component] =
    &[Component::Registry, Component::Logger, Component::Controller, Component::Router, Component::Builder];

/// Where the running components listen.
#[derive(Debug, Clone, Default)]
pub struct Addresses {
    pub controller: Option<SocketAddr>,
    pub registry: Option<SocketAddr>,
    pub logger: Option<SocketAddr>,
    pub syslog: Option<SocketAddr>,
    pub syslog_tls: Option<SocketAddr>,
    pub builder: Option<SocketAddr>,
    pub router: Option<SocketAddr>,
    pub router_tls: Option<SocketAddr>,
}

/// Running components.
pub struct Platform {
    pub addresses: Addresses,
    shutdown: CancellationToken,
    tasks: TaskTracker,
}

impl Platform {
    /// Stops accepting work, lets in-flight requests finish (bounded), and returns.
    /// Containers keep running.
    pub async fn stop(self) {
        self.shutdown.cancel();
        self.tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, self.tasks.wait()).await.is_err() {
            tracing::warn!("skiffd.shutdown: gave up waiting for in-flight work");
        }
    }
}

fn default_data_dir() -> PathBuf {
    std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."))
        .join("skiff")
}

/// A configured secret or id, else the one kept in `<data_dir>/<file>` (made on first use
/// from `bytes` random bytes, hex-encoded).
fn kept_value(
    configured: Option<&String>,
    data_dir: &std::path::Path,
    file: &str,
    bytes: usize,
) -> anyhow::Result<String> {
    if let Some(value) = configured {
        return Ok(value.clone());
    }
    let path = data_dir.join(file);
    if let Ok(token) = std::fs::read_to_string(&path) {
        return Ok(token.trim().to_owned());
    }
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let token = hex::encode((0..bytes).map(|_| rand::random::<u8>()).collect::<Vec<u8>>());
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(token.as_bytes())?;
    Ok(token)
}

async fn bind(address: SocketAddr, what: &str) -> anyhow::Result<TcpListener> {
    TcpListener::bind(address).await.with_context(|| {
        format!(
            "cannot listen on {address} for the {what}; is another Skiff running? (set SKIFF_{}_LISTEN)",
            what.to_uppercase().replace(' ', "_")
        )
    })
}

/// Starts `components` with `settings`. Listeners are bound first, so a port of 0 works
/// and every component learns the others' real addresses.
///
/// # Errors
/// When a listener cannot be bound, the data directory cannot be prepared, or the Docker
/// engine is unreachable.
pub async fn start(settings: &Settings, components: &[Component]) -> anyhow::Result<Platform> {
    let data_dir = settings.data_dir.clone().unwrap_or_else(default_data_dir);
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let token = kept_value(settings.service_token.as_ref(), &data_dir, "service-token", 32)?;
    let platform = kept_value(settings.platform_id.as_ref(), &data_dir, "platform-id", 6)?;
    let runs = |c: Component| components.contains(&c);

    let mut addresses = Addresses::default();
    let registry_listener =
        if runs(Component::Registry) { Some(bind(settings.registry_listen, "registry").await?) } else { None };
    let logger_listener =
        if runs(Component::Logger) { Some(bind(settings.logger_listen, "logger").await?) } else { None };
    let syslog_listeners = if runs(Component::Logger) {
        let tcp = bind(settings.syslog_listen, "logger syslog").await?;
        let udp = UdpSocket::bind(tcp.local_addr()?).await.context("cannot bind the syslog UDP port")?;
        let tls = bind(settings.syslog_tls_listen, "logger syslog tls").await?;
        Some((tcp, udp, tls))
    } else {
        None
    };
    let controller_listener =
        if runs(Component::Controller) { Some(bind(settings.controller_listen, "controller").await?) } else { None };
    let router_listener = if runs(Component::Router) {
        let http = bind(settings.router_listen, "router").await?;
        let https = bind(settings.router_tls_listen, "router tls").await?;
        Some((http, https))
    } else {
        None
    };
    let builder_listener =
        if runs(Component::Builder) { Some(bind(settings.builder_listen, "builder").await?) } else { None };
    addresses.registry = registry_listener.as_ref().map(TcpListener::local_addr).transpose()?;
    addresses.logger = logger_listener.as_ref().map(TcpListener::local_addr).transpose()?;
    addresses.syslog = syslog_listeners.as_ref().map(|(tcp, _, _)| tcp.local_addr()).transpose()?;
    addresses.syslog_tls = syslog_listeners.as_ref().map(|(_, _, tls)| tls.local_addr()).transpose()?;
    addresses.controller = controller_listener.as_ref().map(TcpListener::local_addr).transpose()?;
    addresses.router = router_listener.as_ref().map(|(http, _)| http.local_addr()).transpose()?;
    addresses.router_tls = router_listener.as_ref().map(|(_, https)| https.local_addr()).transpose()?;
    addresses.builder = builder_listener.as_ref().map(TcpListener::local_addr).transpose()?;

    let url = |configured: &Option<String>, bound: Option<SocketAddr>, default: SocketAddr| {
        configured.clone().unwrap_or_else(|| format!("http://{}", bound.unwrap_or(default)))
    };
    let controller_url = url(&settings.controller_url, addresses.controller, settings.controller_listen);
    let registry_url = url(&settings.registry_url, addresses.registry, settings.registry_listen);
    let logger_url = url(&settings.logger_url, addresses.logger, settings.logger_listen);
    // Where the router and the controller send their lines for apps' log streams.
    let syslog_address = addresses.syslog.unwrap_or(settings.syslog_listen);

    // The platform's local CA, read (or made) once for every component that needs it.
    let needs_ca = (runs(Component::Logger) && settings.logger_tls_cert.is_none())
        || (runs(Component::Router) && settings.router_tls_cert.is_none());
    let mut ca = if needs_ca { Some(local_ca(&data_dir)?) } else { None };

    let shutdown = CancellationToken::new();
    let tasks = TaskTracker::new();

    if let Some(listener) = registry_listener {
        // Repository metadata lives beside the blobs: in the bucket with S3, so that every
        // registry on it sees the same repositories.
        let (store, records): (Arc<dyn skiff_store::BlobStore>, Arc<dyn skiff_store::RecordStore>) =
            match &settings.store_url {
                Some(url) => {
                    let store = skiff_store::S3BlobStore::open(url, data_dir.join("store-staging"))
                        .await
                        .context("cannot use the S3 store (SKIFF_STORE_URL)")?;
                    let records = store.records("repositories");
                    (Arc::new(store), Arc::new(records))
                }
                None => (
                    Arc::new(skiff_store::FsBlobStore::open(data_dir.join("store")).await?),
                    Arc::new(skiff_store::FsRecordStore::new(data_dir.join("registry/repositories"))),
                ),
            };
        // Registries sharing a bucket pass each other requests for the uploads they hold.
        let peer_url = settings
            .store_url
            .as_ref()
            .map(|_| url(&settings.registry_peer_url, addresses.registry, settings.registry_listen));
        let config = skiff_registry::Config { service_token: token.clone(), peer_url };
        let authorizer = skiff_registry::auth::ControllerAuthorizer::new(&controller_url, &token);
        let registry = skiff_registry::Registry::new(config, store, records, Arc::new(authorizer));
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            if let Err(error) = skiff_registry::serve(listener, registry, shutdown).await {
                tracing::error!(%error, "registry.serve");
            }
        });
    }

    if let (Some(listener), Some((tcp, udp, tcp_tls))) = (logger_listener, syslog_listeners) {
        let tls = skiff_logger::drain::tls_config(settings.drain_ca.as_deref())
            .map_err(|e| anyhow::anyhow!("SKIFF_LOGGER_DRAIN_CA: {e}"))?;
        let options = skiff_logger::drain::DrainOptions {
            tls,
            queue_capacity: settings.drain_queue,
            outbound: settings.outbound_allow.clone(),
            lines_per_second: settings.drain_rate,
        };
        let drains = skiff_logger::drain::Drains::new(options, shutdown.clone());
        let client = skiff_client::Client::new(&controller_url, Some(token.clone()));
        tasks.spawn(skiff_logger::drain::follow(client, drains.clone(), shutdown.clone()));
        let buffers = skiff_logger::Buffers::with_drains(settings.log_lines, Some(drains));
        let buffers = match &settings.redis_url {
            Some(url) => {
                let sharing = skiff_logger::shared::Sharing::connect(url)
                    .await
                    .context("cannot reach Redis (SKIFF_REDIS_URL)")?;
                let (share, taken) = tokio::sync::mpsc::channel(skiff_logger::shared::QUEUE);
                let buffers = Arc::new(buffers.sharing(share));
                let loaded = sharing.load(&buffers).await.context("cannot read the shared log buffers from Redis")?;
                tracing::info!(loaded, "logger.shared: recent lines loaded");
                tasks.spawn(sharing.run(buffers.clone(), taken, shutdown.clone()));
                buffers
            }
            None => Arc::new(buffers),
        };
        let positions = skiff_logger::positions::Positions::load(data_dir.join("logger/positions.json"));
        let collector = skiff_logger::docker::Collector::connect(&platform, buffers.clone(), positions).await.context(
            "the logger cannot reach the Docker engine (is dockerd running? is /var/run/docker.sock readable?)",
        )?;
        let ingest = skiff_logger::syslog::Ingest::new(buffers.clone(), settings.max_log_message);
        tasks.spawn(collector.run(shutdown.clone()));
        tasks.spawn(skiff_logger::syslog::serve_udp(udp, ingest.clone(), shutdown.clone()));
        tasks.spawn(skiff_logger::syslog::serve_tcp(tcp, None, ingest.clone(), shutdown.clone()));
        let acceptor = logger_tls(settings, ca.as_ref().map(|(ca, _)| ca))?;
        tasks.spawn(skiff_logger::syslog::serve_tcp(tcp_tls, Some(acceptor), ingest, shutdown.clone()));
        let (shutdown, token) = (shutdown.clone(), token.clone());
        tasks.spawn(async move {
            if let Err(error) = skiff_logger::http::serve(listener, buffers, &token, shutdown).await {
                tracing::error!(%error, "logger.serve");
            }
        });
    }

    if let Some(listener) = controller_listener {
        let registry_host = registry_url
            .split_once("://")
            .map_or(registry_url.as_str(), |(_, rest)| rest)
            .trim_end_matches('/')
            .to_owned();
        let config = Arc::new(skiff_controller::Config {
            database_url: settings
                .database_url
                .clone()
                .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join("skiff.db").display())),
            service_token: token.clone(),
            registry_url: registry_url.clone(),
            registry_host,
            allowed_registries: settings.allowed_registries.clone(),
            outbound: settings.outbound_allow.clone(),
            default_memory_mb: settings.default_memory,
            max_memory_mb: settings.max_memory,
            logger_url,
            domain: settings.domain.clone(),
            router_port: addresses.router.unwrap_or(settings.router_listen).port(),
            builder_ssh: addresses.builder.unwrap_or(settings.builder_listen),
            default_stack: settings.default_stack.clone(),
            registration: settings.registration,
            release_retention: settings.release_retention,
            reconcile_interval: Duration::from_secs(settings.reconcile_interval.max(1)),
            boot_timeout: Duration::from_secs(settings.boot_timeout.max(1)),
            drain_period: Duration::from_secs(settings.drain_seconds),
        });
        let db = skiff_controller::db::Db::open(&config.database_url)
            .await
            .context("cannot open the database (SKIFF_DATABASE_URL)")?;
        let runtime: Arc<dyn skiff_controller::scheduler::ContainerRuntime> = match settings.runtime {
            Runtime::Docker => Arc::new(
                skiff_controller::scheduler::DockerRuntime::connect(
                    &platform,
                    &config.registry_host,
                    &token,
                    skiff_controller::scheduler::Confinement {
                        network: settings.docker_network.clone(),
                        pids: settings.default_pids,
                        cpu_shares: settings.default_cpu_shares,
                    },
                )
                .await
                .context(
                    "the controller cannot reach the Docker engine \
                         (is dockerd running? is /var/run/docker.sock readable?)",
                )?,
            ),
            Runtime::Memory => Arc::new(skiff_controller::scheduler::MemoryRuntime::new()),
        };
        let routes = Arc::new(skiff_controller::routes::RouteFeed::default());
        let coordination = match &settings.redis_url {
            Some(url) => skiff_controller::coordination::Coordination::redis(url, shutdown.clone())
                .await
                .context("cannot reach Redis (SKIFF_REDIS_URL)")?,
            None => skiff_controller::coordination::Coordination::local(),
        };
        let events =
            Arc::new(skiff_controller::events::Events::connect(db.clone(), syslog_address, coordination.clone()).await);
        let scheduler = skiff_controller::scheduler::Scheduler::new(
            db.clone(),
            runtime.clone(),
            routes.clone(),
            config.clone(),
            coordination.clone(),
            events.clone(),
        );
        tasks.spawn(scheduler.run(shutdown.clone()));
        let retention_registry =
            Arc::new(skiff_registry_client::RegistryClient::new(&config.registry_url, "skiff", &token));
        tasks.spawn(skiff_controller::retention::run(
            db.clone(),
            retention_registry,
            settings.release_retention,
            Duration::from_secs(settings.gc_interval.max(60)),
            shutdown.clone(),
        ));
        let controller =
            skiff_controller::Controller::new(config, db, runtime, routes, coordination, events, shutdown.clone());
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            if let Err(error) = skiff_controller::serve(listener, controller, shutdown).await {
                tracing::error!(%error, "controller.serve");
            }
        });
    }

    if let Some((http, https)) = router_listener {
        let table = match &settings.router_routes {
            // A fixed table: no controller to follow.
            Some(spec) => Arc::new(ArcSwap::from_pointee(
                skiff_router::Table::from_static(spec).map_err(|e| anyhow::anyhow!("SKIFF_ROUTER_ROUTES: {e}"))?,
            )),
            None => {
                let table = Arc::new(ArcSwap::from_pointee(skiff_router::Table::default()));
                let client = skiff_client::Client::new(&controller_url, Some(token.clone()));
                tasks.spawn(skiff_router::feed::follow(client, table.clone(), shutdown.clone()));
                table
            }
        };
        let access_log = settings.router_access_log.then_some(syslog_address);
        let trusted_proxies = settings
            .router_trusted_proxies
            .split([',', ' '])
            .filter(|entry| !entry.is_empty())
            .map(|entry| entry.parse().map_err(|e| anyhow::anyhow!("SKIFF_ROUTER_TRUSTED_PROXIES: {e}")))
            .collect::<anyhow::Result<Vec<_>>>()?;
        let config = skiff_router::Config {
            access_log,
            trusted_proxies,
            response_timeout: Duration::from_secs(settings.router_response_timeout.max(1)),
            idle_timeout: Duration::from_secs(settings.router_idle_timeout.max(1)),
            threads: settings.router_threads,
            ..Default::default()
        };
        let default = router_default_certificate(settings, ca.take())?;
        let tls = skiff_router::tls::server_config(table.clone(), default).map_err(|e| anyhow::anyhow!(e))?;
        let listeners = skiff_router::Listeners { http, https: Some((https, tls)) };
        let shutdown = shutdown.clone();
        tasks.spawn(async move {
            if let Err(error) = skiff_router::serve(listeners, table, config, shutdown).await {
                tracing::error!(%error, "router: stopped");
            }
        });
    }

    if let Some(listener) = builder_listener {
        let hook_program = match &settings.hook_program {
            Some(program) => program.clone(),
            None => std::env::current_exe().context("cannot find the skiffd executable for the git hook")?,
        };
        let builder = skiff_builder::Builder::new(skiff_builder::Config {
            data_dir: data_dir.join("builder"),
            controller_url: controller_url.clone(),
            registry_url: registry_url.clone(),
            service_token: token.clone(),
            hook_program,
            max_builds: settings.max_builds,
            max_push_bytes: settings.max_push_mb.saturating_mul(1 << 20),
            keepalive: Duration::from_secs(settings.builder_keepalive.max(1)),
        })
        .await
        .context("cannot prepare the builder")?;
        let hooks = builder.bind_hooks().context("cannot bind the builder's hook socket")?;
        tasks.spawn(skiff_builder::serve(listener, hooks, builder, shutdown.clone()));
    }

    Ok(Platform { addresses, shutdown, tasks })
}

fn read_file(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// The platform's local CA, made once and kept in `<data-dir>/router` (`ca.crt` is what
/// clients trust), with the path of its certificate.
fn local_ca(data_dir: &std::path::Path) -> anyhow::Result<(skiff_router::tls::LocalCa, PathBuf)> {
    use skiff_router::tls::LocalCa;
    let dir = data_dir.join("router");
    let (cert, key) = (dir.join("ca.crt"), dir.join("ca.key"));
    if !key.exists() {
        let (cert_pem, key_pem) = LocalCa::generate().map_err(|e| anyhow::anyhow!("cannot make the local CA: {e}"))?;
        std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
        use std::os::unix::fs::OpenOptionsExt as _;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&key)
            .with_context(|| format!("cannot write {}", key.display()))?;
        std::io::Write::write_all(&mut file, key_pem.as_bytes())?;
        std::fs::write(&cert, cert_pem).with_context(|| format!("cannot write {}", cert.display()))?;
    }
    let ca = LocalCa::from_key_pem(&read_file(&key)?).map_err(|e| anyhow::anyhow!("{}: {e}", key.display()))?;
    Ok((ca, cert))
}

/// What the router serves for names without a certificate of their own: the configured
/// certificate, else certificates from the platform's local CA (trust its `ca.crt` to
/// browse `https://<app>.<domain>`).
fn router_default_certificate(
    settings: &Settings,
    ca: Option<(skiff_router::tls::LocalCa, PathBuf)>,
) -> anyhow::Result<skiff_router::tls::DefaultCertificate> {
    use skiff_router::tls::{DefaultCertificate, certified_key};
    if let (Some(cert), Some(key)) = (&settings.router_tls_cert, &settings.router_tls_key) {
        let key = certified_key(&read_file(cert)?, &read_file(key)?)
            .map_err(|e| anyhow::anyhow!("SKIFF_ROUTER_TLS_CERT/SKIFF_ROUTER_TLS_KEY: {e}"))?;
        return Ok(DefaultCertificate::Fixed(key));
    }
    let (ca, cert) = ca.ok_or_else(|| anyhow::anyhow!("the router has neither a certificate nor the local CA"))?;
    tracing::info!(ca = %cert.display(), "router.tls: HTTPS certificates come from the local CA; trust its certificate");
    DefaultCertificate::issued(ca, &settings.domain).map_err(|e| anyhow::anyhow!("SKIFF_DOMAIN: {e}"))
}

/// The syslog-over-TLS listener's settings: the configured certificate, else one for
/// `localhost` from the local CA.
fn logger_tls(
    settings: &Settings,
    ca: Option<&skiff_router::tls::LocalCa>,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let key = match (&settings.logger_tls_cert, &settings.logger_tls_key) {
        (Some(cert), Some(key)) => skiff_router::tls::certified_key(&read_file(cert)?, &read_file(key)?)
            .map_err(|e| anyhow::anyhow!("SKIFF_LOGGER_TLS_CERT/SKIFF_LOGGER_TLS_KEY: {e}"))?,
        _ => ca
            .and_then(|ca| ca.issue("localhost"))
            .ok_or_else(|| anyhow::anyhow!("cannot issue the logger's certificate from the local CA"))?,
    };
    skiff_logger::syslog::tls_acceptor(key).map_err(|e| anyhow::anyhow!(e))
}

/// Runs a command until SIGINT or SIGTERM.
///
/// # Errors
/// When the components cannot start.
pub async fn run(cli: Cli) -> anyhow::Result<()> {
    let (settings, components): (Settings, &[Component]) = match cli.command {
        Command::All(s) => (s, ALL),
        Command::Controller(s) => (s, &[Component::Controller]),
        Command::Builder(s) => (s, &[Component::Builder]),
        Command::Registry(s) => (s, &[Component::Registry]),
        Command::Router(s) => (s, &[Component::Router]),
        Command::Logger(s) => (s, &[Component::Logger]),
        Command::Hook(_) => anyhow::bail!("`skiffd hook` is run by git, not by hand"),
    };
    let platform = start(&settings, components).await?;
    let a = &platform.addresses;
    let show = |address: Option<SocketAddr>| address.map_or_else(|| "-".to_owned(), |a| a.to_string());
    tracing::info!(
        controller = show(a.controller),
        registry = show(a.registry),
        logger = show(a.logger),
        syslog = show(a.syslog),
        syslog_tls = show(a.syslog_tls),
        builder = show(a.builder),
        router = show(a.router),
        router_tls = show(a.router_tls),
        "skiffd.ready"
    );
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    tracing::info!("skiffd.shutdown: finishing in-flight work");
    platform.stop().await;
    Ok(())
}

/// `skiffd hook pre-receive`, run by git inside the builder's repositories.
pub fn run_hook() -> std::process::ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(error) => {
            println!("skiff: hook cannot start: {error}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let status = runtime.block_on(skiff_builder::hook::pre_receive());
    std::process::ExitCode::from(u8::try_from(status).unwrap_or(1))
}
