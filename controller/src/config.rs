//! The controller's settings, built by the launcher from its command line and environment.

use std::net::SocketAddr;
use std::time::Duration;

use skiff_api::StackName;

/// Who may create accounts once the first (admin) account exists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Registration {
    /// Anyone who can reach the controller.
    Open,
    /// Admins, for others (the default).
    #[default]
    AdminOnly,
    /// Nobody.
    Disabled,
}

/// Text that names no registration mode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a registration mode; use open, admin_only or disabled")]
pub struct UnknownRegistration(pub String);

impl std::str::FromStr for Registration {
    type Err = UnknownRegistration;
    fn from_str(value: &str) -> Result<Self, UnknownRegistration> {
        match value {
            "open" => Ok(Self::Open),
            "admin_only" | "admin-only" => Ok(Self::AdminOnly),
            "disabled" => Ok(Self::Disabled),
            other => Err(UnknownRegistration(other.to_owned())),
        }
    }
}

/// Controller settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// The database: `sqlite://PATH?mode=rwc` or `postgres://USER@HOST/DB`.
    pub database_url: String,
    /// The platform's service token, shared with the builder, registry and router.
    pub service_token: String,
    /// Registry base URL for the controller's own pushes (stacks), e.g. `http://127.0.0.1:7701`.
    pub registry_url: String,
    /// Registry host as the Docker engine pulls from it, e.g. `127.0.0.1:7701`.
    pub registry_host: String,
    /// The CA certificate (PEM) engines trust for `registry_host`, when the platform's
    /// local CA issued its certificate (a swarm's nodes need it).
    pub registry_ca: Option<String>,
    /// Other registries whose images builds and `deploy --image` may use (`host[:port]`,
    /// or `*` for any); none by default: only the platform's own registry.
    pub allowed_registries: Vec<String>,
    /// Which addresses URLs given by tenants (app drains, app webhooks) may reach.
    pub outbound: skiff_api::OutboundPolicy,
    /// The wall clock scheduled jobs follow.
    pub clock: crate::clock::Clock,
    /// Whom webhooks over HTTPS trust (`skiff_service::outbound::tls_config`).
    pub webhook_tls: std::sync::Arc<rustls::ClientConfig>,
    /// Memory of an app container whose app set none, in MiB.
    pub default_memory_mb: u64,
    /// The most memory an app may ask for, in MiB.
    pub max_memory_mb: u64,
    /// Logger HTTP API base URL, e.g. `http://127.0.0.1:7702`.
    pub logger_url: String,
    /// Where apps answer: `http://<app>.<domain>:<router port>`.
    pub domain: String,
    /// The router's public HTTP port, for app URLs.
    pub router_port: u16,
    /// The builder's HTTP base URL, for builds from source repositories.
    pub builder_url: String,
    /// The builder's SSH address, for git URLs.
    pub builder_ssh: SocketAddr,
    /// How many recent releases of each app keep their images.
    pub release_retention: usize,
    /// Who may create accounts after the first.
    pub registration: Registration,
    /// The stack new apps build on unless they name one.
    pub default_stack: StackName,
    /// How often the reconcile loop runs when nothing pokes it.
    pub reconcile_interval: Duration,
    /// How long a new container may take to accept connections on `$PORT`.
    pub boot_timeout: Duration,
    /// How long a release's `release` command may run before the release fails.
    pub release_timeout: Duration,
    /// How long a container leaving service keeps running after routers stop sending it
    /// requests, so that requests in flight finish.
    pub drain_period: Duration,
    /// Where and how certificates for custom domains are ordered.
    pub acme: crate::acme::AcmeConfig,
}

impl Config {
    /// An app's public URL.
    pub fn app_url(&self, app: &str) -> String {
        format!("http://{app}.{}:{}", self.domain, self.router_port)
    }

    /// A container's limits: what its app asked for, the operator's default memory where
    /// it asked for none, and never more memory than the operator's most.
    pub fn container_limits(&self, asked: skiff_api::Limits) -> skiff_api::Limits {
        let memory = asked.memory_mb.unwrap_or(self.default_memory_mb).min(self.max_memory_mb);
        skiff_api::Limits { memory_mb: Some(memory), ..asked }
    }

    /// An app's git URL.
    pub fn git_url(&self, app: &str) -> String {
        format!("ssh://git@{}/{app}.git", self.builder_ssh)
    }
}
