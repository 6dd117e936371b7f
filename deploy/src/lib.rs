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
use clap::{Args, Parser, Subcommand};
use skiff_api::StackName;
use skiff_service::https::HttpsListener;
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub mod backup;

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
    /// Take a snapshot of the platform's state (database, registry, identity) into a
    /// directory or an S3 bucket.
    Backup(BackupArgs),
    /// Bring a snapshot back onto an empty data directory (and database).
    Restore(RestoreArgs),
    /// Internal: run by git as a repository hook (`skiffd hook pre-receive`).
    #[command(hide = true)]
    Hook(HookArgs),
}

#[derive(Debug, Args)]
pub struct HookArgs {
    /// The hook git runs.
    pub hook: String,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// Where to: a directory, or `s3://BUCKET?endpoint=…` (as SKIFF_STORE_URL) [default:
    /// SKIFF_BACKUP_TO].
    #[arg(long)]
    pub to: Option<String>,
    #[command(flatten)]
    pub settings: Settings,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// Where the snapshots are: a directory, or `s3://BUCKET?endpoint=…`.
    #[arg(long)]
    pub from: String,
    /// Which snapshot [default: the newest].
    #[arg(long)]
    pub snapshot: Option<String>,
    /// List the snapshots there and restore nothing.
    #[arg(long)]
    pub list: bool,
    #[command(flatten)]
    pub settings: Settings,
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
    /// Where the registry also serves HTTPS, for engines on other machines (a swarm's
    /// nodes), which pull only over TLS from addresses other than their own loopback
    /// [default: none].
    #[arg(long, env = "SKIFF_REGISTRY_TLS_LISTEN")]
    pub registry_tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for the registry's HTTPS [default: one from the local CA for
    /// the host of SKIFF_REGISTRY_ADDRESS, else of SKIFF_REGISTRY_TLS_LISTEN].
    #[arg(long, env = "SKIFF_REGISTRY_TLS_CERT", requires = "registry_tls_key")]
    pub registry_tls_cert: Option<PathBuf>,
    /// PEM private key for SKIFF_REGISTRY_TLS_CERT.
    #[arg(long, env = "SKIFF_REGISTRY_TLS_KEY", requires = "registry_tls_cert")]
    pub registry_tls_key: Option<PathBuf>,
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
    /// Builder health and metrics listen address (`/healthz`, `/readyz`, `/metrics`).
    #[arg(long, env = "SKIFF_BUILDER_HTTP_LISTEN", default_value = "127.0.0.1:7703")]
    pub builder_http_listen: SocketAddr,
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
    /// Milliseconds the router waits for a connection to an app's container before it tries
    /// the app's next one (a container that just stopped refuses at once; one on a node that
    /// vanished never answers).
    #[arg(long, env = "SKIFF_ROUTER_CONNECT_TIMEOUT", default_value_t = 5000)]
    pub router_connect_timeout: u64,
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
    /// Where app containers run: `docker` (the local engine), `swarm` (a Docker Swarm,
    /// through the manager at DOCKER_HOST or the local socket) or `memory` (small HTTP
    /// servers inside skiffd that answer like apps; for measuring or trying the controller
    /// and router without an engine).
    #[arg(long, env = "SKIFF_RUNTIME", value_enum, default_value = "docker")]
    pub runtime: Runtime,
    /// The registry's address as engines pull from it (`HOST:PORT`), when it is not the
    /// address of SKIFF_REGISTRY_URL: on a swarm, one every node reaches [default: the
    /// registry URL's].
    #[arg(long, env = "SKIFF_REGISTRY_ADDRESS")]
    pub registry_address: Option<String>,
    /// Each app's containers sit on a Docker network of the app's own, named
    /// `<this>-<platform id>-<app>`: they reach each other there by process type (`web`,
    /// `worker`, …) and no other app's containers.
    #[arg(long, env = "SKIFF_DOCKER_NETWORK", default_value = "skiff-apps")]
    pub docker_network: String,
    /// The IPv4 block apps' networks are cut from, a /24 per app.
    #[arg(long, env = "SKIFF_DOCKER_SUBNET", default_value = "10.199.0.0/16")]
    pub docker_subnet: skiff_controller::scheduler::SubnetPool,
    /// How routers and health checks reach app containers: `direct` (at each container's
    /// address on its app's network) or `published` (through a port Docker publishes on
    /// 127.0.0.1, for routers that cannot route to those networks; slower: Docker's
    /// userland proxy carries every request).
    #[arg(long, env = "SKIFF_DOCKER_ADDRESSING", default_value = "direct")]
    pub docker_addressing: skiff_controller::scheduler::Addressing,
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
    /// Seconds a release's `release` command (the Procfile's release phase) may run before
    /// the release fails.
    #[arg(long, env = "SKIFF_RELEASE_TIMEOUT", default_value_t = 3600)]
    pub release_timeout: u64,
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
    /// The wall clock scheduled jobs follow: the system's (tests move it forward).
    #[arg(skip)]
    pub clock: skiff_controller::clock::Clock,
    /// A PEM file of CA certificates trusted for webhooks over HTTPS, beside the system's.
    #[arg(long, env = "SKIFF_WEBHOOK_CA")]
    pub webhook_ca: Option<PathBuf>,
    /// The ACME directory apps' automatic certificates (`skiff certs:auto`) come from.
    #[arg(long, env = "SKIFF_ACME_DIRECTORY", default_value = skiff_controller::acme::LETS_ENCRYPT)]
    pub acme_directory: String,
    /// The address the ACME server may write to about the platform's certificates.
    #[arg(long, env = "SKIFF_ACME_EMAIL")]
    pub acme_email: Option<String>,
    /// A PEM file of CA certificates trusted for the ACME server, beside the system's (a
    /// private ACME server).
    #[arg(long, env = "SKIFF_ACME_CA")]
    pub acme_ca: Option<PathBuf>,
    /// How domains are proven to the ACME server: `http-01` (the routers' HTTP port must be
    /// the domains' port 80) or `tls-alpn-01` (their HTTPS port must be the domains' 443);
    /// the other when the server does not offer it.
    #[arg(long, env = "SKIFF_ACME_CHALLENGE", default_value = "http-01")]
    pub acme_challenge: skiff_api::AcmeChallengeKind,
    /// Seconds before expiry an automatic certificate is renewed.
    #[arg(long, env = "SKIFF_ACME_RENEW_BEFORE", default_value_t = 30 * 24 * 3600)]
    pub acme_renew_before: u64,
    /// Seconds after a failed order before it is tried again; the wait doubles after each
    /// failure, to a day.
    #[arg(long, env = "SKIFF_ACME_RETRY", default_value_t = 60)]
    pub acme_retry: u64,
    /// Seconds between looks for certificates due (new domains and apps wake it at once).
    #[arg(long, env = "SKIFF_ACME_INTERVAL", default_value_t = 30)]
    pub acme_interval: u64,
    /// Networks that URLs given by tenants (app drains, app webhooks) may reach although they are
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
    /// Where snapshots of the platform go on a schedule: a directory or
    /// `s3://BUCKET?endpoint=…` [default: none, no scheduled snapshots].
    #[arg(long, env = "SKIFF_BACKUP_TO", hide_env_values = true)]
    pub backup_to: Option<String>,
    /// Seconds between scheduled snapshots.
    #[arg(long, env = "SKIFF_BACKUP_INTERVAL", default_value_t = 86_400)]
    pub backup_interval: u64,
    /// How many snapshots a target keeps, newest first; 0 keeps all.
    #[arg(long, env = "SKIFF_BACKUP_KEEP", default_value_t = 7)]
    pub backup_keep: usize,
    /// Program git runs as the pre-receive hook [default: this executable].
    #[arg(long, env = "SKIFF_BUILDER_HOOK_PROGRAM")]
    pub hook_program: Option<PathBuf>,
}

/// Where app containers run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Runtime {
    Docker,
    Swarm,
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
    pub registry_tls: Option<SocketAddr>,
    pub logger: Option<SocketAddr>,
    pub syslog: Option<SocketAddr>,
    pub syslog_tls: Option<SocketAddr>,
    pub builder: Option<SocketAddr>,
    pub builder_http: Option<SocketAddr>,
    pub router: Option<SocketAddr>,
    pub router_tls: Option<SocketAddr>,
}

/// Running components.
pub struct Platform {
    pub addresses: Addresses,
    supervisor: Supervisor,
}

impl Platform {
    /// Waits until a component fails, and says which and why (every other component is
    /// stopping by then).
    pub async fn failed(&self) -> String {
        let mut failure = self.supervisor.failure.subscribe();
        match failure.wait_for(Option::is_some).await {
            Ok(why) => why.clone().unwrap_or_default(),
            // The platform keeps its sender: this does not happen.
            Err(_) => std::future::pending().await,
        }
    }

    /// Stops accepting work, lets in-flight requests finish (bounded), and returns.
    /// Containers keep running.
    pub async fn stop(self) {
        let Supervisor { shutdown, tasks, .. } = self.supervisor;
        shutdown.cancel();
        tasks.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tasks.wait()).await.is_err() {
            tracing::warn!("skiffd.shutdown: gave up waiting for in-flight work");
        }
    }
}

impl Settings {
    /// Where state lives.
    pub fn data_dir(&self) -> PathBuf {
        self.data_dir.clone().unwrap_or_else(|| {
            std::env::var_os("XDG_DATA_HOME")
                .map(PathBuf::from)
                .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
                .unwrap_or_else(|| PathBuf::from("."))
                .join("skiff")
        })
    }

    /// The controller's database: the configured one, else SQLite in the data directory.
    pub fn database_url(&self, data_dir: &std::path::Path) -> String {
        self.database_url
            .clone()
            .unwrap_or_else(|| format!("sqlite://{}?mode=rwc", data_dir.join("skiff.db").display()))
    }
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
/// and every component learns the others' real addresses; then every component's
/// configuration is made and checked; then each runs as a named task of the platform's
/// supervisor. A component that cannot start (its database, engine or store unreachable)
/// or fails later stops the platform: [`Platform::failed`] says which and why.
///
/// # Errors
/// When a listener cannot be bound, the data directory cannot be prepared, or settings are
/// wrong (all of them at once).
pub async fn start(settings: &Settings, components: &[Component]) -> anyhow::Result<Platform> {
    let data_dir = settings.data_dir();
    std::fs::create_dir_all(&data_dir).with_context(|| format!("cannot create {}", data_dir.display()))?;
    let token = kept_value(settings.service_token.as_ref(), &data_dir, "service-token", 32)?;
    let platform = kept_value(settings.platform_id.as_ref(), &data_dir, "platform-id", 6)?;
    let runs = |c: Component| components.contains(&c);

    let Bound { registry, logger, syslog, controller, router, builder } = bind_all(settings, components).await?;
    let addresses = Addresses {
        registry: registry.as_ref().map(|(http, _)| http.local_addr()).transpose()?,
        registry_tls: registry
            .as_ref()
            .and_then(|(_, https)| https.as_ref())
            .map(TcpListener::local_addr)
            .transpose()?,
        logger: logger.as_ref().map(TcpListener::local_addr).transpose()?,
        syslog: syslog.as_ref().map(|(tcp, _, _)| tcp.local_addr()).transpose()?,
        syslog_tls: syslog.as_ref().map(|(_, _, tls)| tls.local_addr()).transpose()?,
        controller: controller.as_ref().map(TcpListener::local_addr).transpose()?,
        router: router.as_ref().map(|(http, _)| http.local_addr()).transpose()?,
        router_tls: router.as_ref().map(|(_, https)| https.local_addr()).transpose()?,
        builder: builder.as_ref().map(|(ssh, _)| ssh.local_addr()).transpose()?,
        builder_http: builder.as_ref().map(|(_, http)| http.local_addr()).transpose()?,
    };

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
        || (runs(Component::Router) && settings.router_tls_cert.is_none())
        || (runs(Component::Registry)
            && settings.registry_tls_listen.is_some()
            && settings.registry_tls_cert.is_none());
    let mut ca = match needs_ca {
        // Kept in `<data-dir>/router` (`ca.crt` is what clients trust).
        true => Some(skiff_service::ca::LocalCa::kept_in(&data_dir.join("router"))?),
        false => None,
    };

    // Every component's configuration, checked before any starts: all that is wrong with
    // the settings is reported at once.
    let mut problems = Problems::default();
    let known = Known { data_dir: &data_dir, token: &token, platform: &platform, controller_url: &controller_url };
    let registry = registry.map(|(http, https)| {
        let https = https.and_then(|listener| {
            let config = problems.note(registry_tls(settings, ca.as_ref().map(|(ca, _)| ca)))?;
            problems.note(HttpsListener::new(listener, config).context("cannot serve the registry over HTTPS"))
        });
        (http, https, registry_config(settings, &known, &addresses))
    });
    let logger = match (logger, syslog) {
        (Some(api), Some((tcp, udp, tls))) => {
            let acceptor = problems.note(logger_tls(settings, ca.as_ref().map(|(ca, _)| ca)));
            let config = logger_config(settings, &known, &mut problems);
            Some((api, tcp, udp, tls, acceptor, config))
        }
        _ => None,
    };
    let controller = controller.and_then(|listener| {
        let webhook_tls = skiff_service::outbound::tls_config(settings.webhook_ca.as_deref())
            .map_err(|e| anyhow::anyhow!("SKIFF_WEBHOOK_CA: {e}"));
        let webhook_tls = problems.note(webhook_tls)?;
        let acme_tls = skiff_service::outbound::tls_config(settings.acme_ca.as_deref())
            .map_err(|e| anyhow::anyhow!("SKIFF_ACME_CA: {e}"));
        let acme = acme_config(settings, problems.note(acme_tls)?);
        let config = controller_config(settings, &known, &addresses, &registry_url, &logger_url, webhook_tls, acme);
        Some((listener, config))
    });
    let router = router
        .map(|(http, https)| (http, https, router_config(settings, &known, syslog_address, ca.take(), &mut problems)));
    let builder =
        builder.map(|(ssh, http)| (ssh, http, problems.note(builder_config(settings, &known, &registry_url))));
    problems.into_result()?;

    let supervisor = Supervisor::default();
    let shutdown = supervisor.shutdown.clone();
    if let Some((http, https, config)) = registry {
        supervisor.spawn("registry", skiff_registry::run(config, http, https, shutdown.clone()));
    }
    if let Some((api, syslog_tcp, syslog_udp, tls, Some(acceptor), Some(config))) = logger {
        let listeners = skiff_logger::Listeners { api, syslog_tcp, syslog_udp, syslog_tls: (tls, acceptor) };
        supervisor.spawn("logger", skiff_logger::run(config, listeners, shutdown.clone()));
    }
    if let Some((listener, config)) = controller {
        supervisor.spawn("controller", skiff_controller::run(config, listener, shutdown.clone()));
        if settings.backup_to.is_some() {
            supervisor.spawn("backups", backup::every_interval(settings.clone(), shutdown.clone()));
        }
    }
    if let Some((http, https, Some(config))) = router {
        supervisor.spawn("router", skiff_router::run(config, http, https, shutdown.clone()));
    }
    if let Some((ssh, http, Some(config))) = builder {
        supervisor.spawn("builder", skiff_builder::run(config, ssh, http, shutdown.clone()));
    }
    Ok(Platform { addresses, supervisor })
}

/// The listeners of the components that run.
struct Bound {
    /// HTTP, and HTTPS when asked for.
    registry: Option<(TcpListener, Option<TcpListener>)>,
    logger: Option<TcpListener>,
    /// TCP, UDP, and TLS over TCP.
    syslog: Option<(TcpListener, UdpSocket, TcpListener)>,
    controller: Option<TcpListener>,
    /// HTTP and HTTPS.
    router: Option<(TcpListener, TcpListener)>,
    /// SSH, and HTTP for health and metrics.
    builder: Option<(TcpListener, TcpListener)>,
}

/// The syslog listeners: TCP and UDP on the same port. With port 0 the kernel picks a
/// port free for TCP; one whose UDP side something else holds is given back and another
/// picked.
async fn bind_syslog(address: SocketAddr) -> anyhow::Result<(TcpListener, UdpSocket)> {
    const TRIES: usize = 20;
    for _ in 1..TRIES {
        let tcp = bind(address, "logger syslog").await?;
        match UdpSocket::bind(tcp.local_addr()?).await {
            Ok(udp) => return Ok((tcp, udp)),
            Err(error) if address.port() == 0 && error.kind() == std::io::ErrorKind::AddrInUse => continue,
            Err(error) => return Err(error).context("cannot bind the syslog UDP port"),
        }
    }
    let tcp = bind(address, "logger syslog").await?;
    let udp = UdpSocket::bind(tcp.local_addr()?).await.context("cannot bind the syslog UDP port")?;
    Ok((tcp, udp))
}

/// Binds every listener of `components`.
async fn bind_all(settings: &Settings, components: &[Component]) -> anyhow::Result<Bound> {
    let runs = |c: Component| components.contains(&c);
    let mut bound = Bound { registry: None, logger: None, syslog: None, controller: None, router: None, builder: None };
    if runs(Component::Registry) {
        let https = match settings.registry_tls_listen {
            Some(address) => Some(bind(address, "registry tls").await?),
            None => None,
        };
        bound.registry = Some((bind(settings.registry_listen, "registry").await?, https));
    }
    if runs(Component::Logger) {
        bound.logger = Some(bind(settings.logger_listen, "logger").await?);
        let (tcp, udp) = bind_syslog(settings.syslog_listen).await?;
        let tls = bind(settings.syslog_tls_listen, "logger syslog tls").await?;
        bound.syslog = Some((tcp, udp, tls));
    }
    if runs(Component::Controller) {
        bound.controller = Some(bind(settings.controller_listen, "controller").await?);
    }
    if runs(Component::Router) {
        let http = bind(settings.router_listen, "router").await?;
        bound.router = Some((http, bind(settings.router_tls_listen, "router tls").await?));
    }
    if runs(Component::Builder) {
        let ssh = bind(settings.builder_listen, "builder").await?;
        bound.builder = Some((ssh, bind(settings.builder_http_listen, "builder http").await?));
    }
    Ok(bound)
}

/// What every component's configuration is made from, besides the settings.
struct Known<'a> {
    data_dir: &'a std::path::Path,
    token: &'a str,
    platform: &'a str,
    controller_url: &'a str,
}

/// Everything wrong with the settings, gathered so that one start reports all of it.
#[derive(Debug, Default)]
struct Problems(Vec<String>);

impl Problems {
    /// The value, or `None` with the problem noted.
    fn note<T>(&mut self, result: anyhow::Result<T>) -> Option<T> {
        result.map_err(|problem| self.0.push(format!("{problem:#}"))).ok()
    }

    fn into_result(self) -> anyhow::Result<()> {
        match self.0.as_slice() {
            [] => Ok(()),
            [one] => Err(anyhow::anyhow!("{one}")),
            many => Err(anyhow::anyhow!("{} settings are wrong:\n  {}", many.len(), many.join("\n  "))),
        }
    }
}

/// Runs components as named tasks: the first that fails (or stops on its own while the
/// platform runs) stops every other, and its error is the platform's.
#[derive(Debug, Default)]
struct Supervisor {
    shutdown: CancellationToken,
    tasks: TaskTracker,
    failure: Arc<tokio::sync::watch::Sender<Option<String>>>,
}

impl Supervisor {
    fn spawn<E: std::fmt::Display>(
        &self,
        name: &'static str,
        component: impl std::future::Future<Output = Result<(), E>> + Send + 'static,
    ) {
        let (shutdown, failure) = (self.shutdown.clone(), self.failure.clone());
        self.tasks.spawn(async move {
            let why = match component.await {
                Err(error) => format!("the {name} failed: {error}"),
                Ok(()) if shutdown.is_cancelled() => return,
                Ok(()) => format!("the {name} stopped on its own"),
            };
            tracing::error!(component = name, error = %why, "skiffd.component_failed");
            failure.send_if_modified(|first| first.is_none() && first.replace(why).is_none());
            shutdown.cancel();
        });
    }
}

/// The registry's configuration.
fn registry_config(settings: &Settings, known: &Known, addresses: &Addresses) -> skiff_registry::ServiceConfig {
    let bound = addresses.registry.unwrap_or(settings.registry_listen);
    // Registries sharing a bucket pass each other requests for the uploads they hold.
    let peer_url = settings
        .store_url
        .as_ref()
        .map(|_| settings.registry_peer_url.clone().unwrap_or_else(|| format!("http://{bound}")));
    let storage = match &settings.store_url {
        Some(url) => skiff_registry::Storage::S3 { url: url.clone(), staging: known.data_dir.join("store-staging") },
        None => skiff_registry::Storage::Files(known.data_dir.to_owned()),
    };
    skiff_registry::ServiceConfig {
        registry: skiff_registry::Config { service_token: known.token.to_owned(), peer_url },
        storage,
        controller_url: known.controller_url.to_owned(),
    }
}

/// The logger's configuration.
fn logger_config(settings: &Settings, known: &Known, problems: &mut Problems) -> Option<skiff_logger::ServiceConfig> {
    let tls = skiff_logger::drain::tls_config(settings.drain_ca.as_deref())
        .map_err(|e| anyhow::anyhow!("SKIFF_LOGGER_DRAIN_CA: {e}"));
    let drains = skiff_logger::drain::DrainOptions {
        tls: problems.note(tls)?,
        queue_capacity: settings.drain_queue,
        outbound: settings.outbound_allow.clone(),
        lines_per_second: settings.drain_rate,
    };
    Some(skiff_logger::ServiceConfig {
        platform: known.platform.to_owned(),
        service_token: known.token.to_owned(),
        controller_url: known.controller_url.to_owned(),
        lines_per_app: settings.log_lines,
        max_message: settings.max_log_message,
        drains,
        redis_url: settings.redis_url.clone(),
        positions: known.data_dir.join("logger/positions.json"),
    })
}

/// Where and how the controller orders certificates.
fn acme_config(settings: &Settings, tls: Arc<rustls::ClientConfig>) -> skiff_controller::acme::AcmeConfig {
    skiff_controller::acme::AcmeConfig {
        directory: settings.acme_directory.clone(),
        email: settings.acme_email.clone(),
        renew_before: Duration::from_secs(settings.acme_renew_before),
        first_retry: Duration::from_secs(settings.acme_retry.max(1)),
        check_every: Duration::from_secs(settings.acme_interval.max(1)),
        challenge: settings.acme_challenge,
        ..skiff_controller::acme::AcmeConfig::new(tls)
    }
}

/// The controller's configuration.
fn controller_config(
    settings: &Settings,
    known: &Known,
    addresses: &Addresses,
    registry_url: &str,
    logger_url: &str,
    webhook_tls: Arc<rustls::ClientConfig>,
    acme: skiff_controller::acme::AcmeConfig,
) -> skiff_controller::ServiceConfig {
    let registry_host = settings.registry_address.clone().unwrap_or_else(|| {
        registry_url.split_once("://").map_or(registry_url, |(_, rest)| rest).trim_end_matches('/').to_owned()
    });
    let controller = skiff_controller::Config {
        database_url: settings.database_url(known.data_dir),
        service_token: known.token.to_owned(),
        registry_url: registry_url.to_owned(),
        registry_host,
        // Made before any component's configuration when the registry serves HTTPS.
        registry_ca: (settings.registry_tls_listen.is_some() && settings.registry_tls_cert.is_none())
            .then(|| std::fs::read_to_string(known.data_dir.join("router/ca.crt")).ok())
            .flatten(),
        allowed_registries: settings.allowed_registries.clone(),
        outbound: settings.outbound_allow.clone(),
        webhook_tls,
        clock: settings.clock.clone(),
        default_memory_mb: settings.default_memory,
        max_memory_mb: settings.max_memory,
        logger_url: logger_url.to_owned(),
        domain: settings.domain.clone(),
        router_port: addresses.router.unwrap_or(settings.router_listen).port(),
        builder_url: format!("http://{}", addresses.builder_http.unwrap_or(settings.builder_http_listen)),
        builder_ssh: addresses.builder.unwrap_or(settings.builder_listen),
        default_stack: settings.default_stack.clone(),
        registration: settings.registration,
        release_retention: settings.release_retention,
        reconcile_interval: Duration::from_secs(settings.reconcile_interval.max(1)),
        boot_timeout: Duration::from_secs(settings.boot_timeout.max(1)),
        release_timeout: Duration::from_secs(settings.release_timeout.max(1)),
        drain_period: Duration::from_secs(settings.drain_seconds),
        acme,
    };
    let confinement = skiff_controller::scheduler::Confinement {
        networking: skiff_controller::scheduler::Networking {
            prefix: settings.docker_network.clone(),
            subnets: settings.docker_subnet,
            addressing: settings.docker_addressing,
        },
        pids: settings.default_pids,
        cpu_shares: settings.default_cpu_shares,
    };
    let platform = known.platform.to_owned();
    let engine = match settings.runtime {
        Runtime::Docker => skiff_controller::Engine::Docker { platform, confinement },
        Runtime::Swarm => skiff_controller::Engine::Swarm { platform, confinement },
        Runtime::Memory => skiff_controller::Engine::Memory,
    };
    skiff_controller::ServiceConfig {
        controller,
        engine,
        redis_url: settings.redis_url.clone(),
        syslog: addresses.syslog.unwrap_or(settings.syslog_listen),
        gc_interval: Duration::from_secs(settings.gc_interval.max(60)),
    }
}

/// The router's configuration.
fn router_config(
    settings: &Settings,
    known: &Known,
    syslog: SocketAddr,
    ca: Option<(skiff_service::ca::LocalCa, PathBuf)>,
    problems: &mut Problems,
) -> Option<skiff_router::ServiceConfig> {
    let routes = match &settings.router_routes {
        // A fixed table: no controller to follow.
        Some(spec) => skiff_router::Table::from_static(spec)
            .map(|table| skiff_router::Routes::Fixed(Box::new(table)))
            .map_err(|e| anyhow::anyhow!("SKIFF_ROUTER_ROUTES: {e}")),
        None => Ok(skiff_router::Routes::Follow {
            controller_url: known.controller_url.to_owned(),
            service_token: known.token.to_owned(),
        }),
    };
    let trusted_proxies = settings
        .router_trusted_proxies
        .split([',', ' '])
        .filter(|entry| !entry.is_empty())
        .map(|entry| entry.parse().map_err(|e| anyhow::anyhow!("SKIFF_ROUTER_TRUSTED_PROXIES: {e}")))
        .collect::<anyhow::Result<Vec<_>>>();
    let (routes, trusted_proxies, default_certificate) = (
        problems.note(routes),
        problems.note(trusted_proxies),
        problems.note(router_default_certificate(settings, ca)),
    );
    let router = skiff_router::Config {
        access_log: settings.router_access_log.then_some(syslog),
        trusted_proxies: trusted_proxies?,
        response_timeout: Duration::from_secs(settings.router_response_timeout.max(1)),
        connect_timeout: Duration::from_millis(settings.router_connect_timeout.max(1)),
        idle_timeout: Duration::from_secs(settings.router_idle_timeout.max(1)),
        threads: settings.router_threads,
        ..Default::default()
    };
    Some(skiff_router::ServiceConfig { router, routes: routes?, default_certificate: default_certificate? })
}

/// The builder's configuration.
fn builder_config(settings: &Settings, known: &Known, registry_url: &str) -> anyhow::Result<skiff_builder::Config> {
    let hook_program = match &settings.hook_program {
        Some(program) => program.clone(),
        None => std::env::current_exe().context("cannot find the skiffd executable for the git hook")?,
    };
    Ok(skiff_builder::Config {
        data_dir: known.data_dir.join("builder"),
        controller_url: known.controller_url.to_owned(),
        registry_url: registry_url.to_owned(),
        registry_address: settings.registry_address.clone(),
        service_token: known.token.to_owned(),
        hook_program,
        max_builds: settings.max_builds,
        max_push_bytes: settings.max_push_mb.saturating_mul(1 << 20),
        keepalive: Duration::from_secs(settings.builder_keepalive.max(1)),
    })
}

fn read_file(path: &std::path::Path) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
}

/// What the router serves for names without a certificate of their own: the configured
/// certificate, else certificates from the platform's local CA (trust its `ca.crt` to
/// browse `https://<app>.<domain>`).
fn router_default_certificate(
    settings: &Settings,
    ca: Option<(skiff_service::ca::LocalCa, PathBuf)>,
) -> anyhow::Result<skiff_router::tls::DefaultCertificate> {
    use skiff_router::tls::DefaultCertificate;
    use skiff_service::ca::certified_key;
    if let (Some(cert), Some(key)) = (&settings.router_tls_cert, &settings.router_tls_key) {
        let key = certified_key(&read_file(cert)?, &read_file(key)?)
            .map_err(|e| anyhow::anyhow!("SKIFF_ROUTER_TLS_CERT/SKIFF_ROUTER_TLS_KEY: {e}"))?;
        return Ok(DefaultCertificate::Fixed(key));
    }
    let (ca, cert) = ca.ok_or_else(|| anyhow::anyhow!("the router has neither a certificate nor the local CA"))?;
    tracing::info!(ca = %cert.display(), "router.tls: HTTPS certificates come from the local CA; trust its certificate");
    DefaultCertificate::issued(ca, &settings.domain).map_err(|e| anyhow::anyhow!("SKIFF_DOMAIN: {e}"))
}

/// The registry's HTTPS settings: the configured certificate, else one from the local CA
/// for the name engines pull by (SKIFF_REGISTRY_ADDRESS's host, else the HTTPS listener's
/// address).
fn registry_tls(
    settings: &Settings,
    ca: Option<&skiff_service::ca::LocalCa>,
) -> anyhow::Result<tokio_rustls::rustls::ServerConfig> {
    let key = match (&settings.registry_tls_cert, &settings.registry_tls_key) {
        (Some(cert), Some(key)) => skiff_service::ca::certified_key(&read_file(cert)?, &read_file(key)?)
            .map_err(|e| anyhow::anyhow!("SKIFF_REGISTRY_TLS_CERT/SKIFF_REGISTRY_TLS_KEY: {e}"))?,
        _ => {
            let listen = settings.registry_tls_listen.map(|a| a.ip().to_string()).unwrap_or_default();
            let name = match &settings.registry_address {
                Some(address) => address.rsplit_once(':').map_or(address.as_str(), |(host, _)| host),
                None => &listen,
            };
            let name = name.trim_start_matches('[').trim_end_matches(']');
            ca.and_then(|ca| ca.issue(name)).ok_or_else(|| {
                anyhow::anyhow!("cannot issue the registry's certificate for {name} from the local CA")
            })?
        }
    };
    skiff_service::https::server_config(key).context("cannot set up the registry's HTTPS")
}

/// The syslog-over-TLS listener's settings: the configured certificate, else one for
/// `localhost` from the local CA.
fn logger_tls(
    settings: &Settings,
    ca: Option<&skiff_service::ca::LocalCa>,
) -> anyhow::Result<tokio_rustls::TlsAcceptor> {
    let key = match (&settings.logger_tls_cert, &settings.logger_tls_key) {
        (Some(cert), Some(key)) => skiff_service::ca::certified_key(&read_file(cert)?, &read_file(key)?)
            .map_err(|e| anyhow::anyhow!("SKIFF_LOGGER_TLS_CERT/SKIFF_LOGGER_TLS_KEY: {e}"))?,
        _ => ca
            .and_then(|ca| ca.issue("localhost"))
            .ok_or_else(|| anyhow::anyhow!("cannot issue the logger's certificate from the local CA"))?,
    };
    skiff_logger::syslog::tls_acceptor(key).context("cannot set up syslog over TLS")
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
        Command::Backup(BackupArgs { to, settings }) => {
            let to = to.or_else(|| settings.backup_to.clone()).context("say where to: --to DIR or s3://…")?;
            let manifest = backup::backup(&settings, &to).await?;
            println!("Took {manifest}");
            return Ok(());
        }
        Command::Restore(RestoreArgs { from, snapshot, list, settings }) => {
            if list {
                for manifest in backup::list(&from).await? {
                    println!("{manifest}");
                }
                return Ok(());
            }
            let manifest = backup::restore(&settings, &from, snapshot.as_deref()).await?;
            println!("Restored {manifest}");
            println!("Start skiffd on this data directory: every app's current release starts again.");
            return Ok(());
        }
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
    let failure = tokio::select! {
        _ = tokio::signal::ctrl_c() => None,
        _ = terminate.recv() => None,
        why = platform.failed() => Some(why),
    };
    tracing::info!("skiffd.shutdown: finishing in-flight work");
    platform.stop().await;
    match failure {
        Some(why) => Err(anyhow::anyhow!(why)),
        None => Ok(()),
    }
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
