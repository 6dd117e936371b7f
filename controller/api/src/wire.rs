//! Request and response bodies. Times are RFC 3339 strings in UTC.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{AppName, ProcessType, StackName, Username};

/// The body of every error answer: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ErrorBody {
    pub code: String,
    pub message: String,
}

/// `POST /v2/auth/register` and `POST /v2/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Credentials {
    pub username: Username,
    pub password: String,
}

/// A freshly issued API token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Session {
    pub username: Username,
    pub admin: bool,
    pub token: String,
}

/// `GET /v2/auth/whoami`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct User {
    pub username: Username,
    pub admin: bool,
}

/// `POST /v2/keys`: an OpenSSH public key line (`ssh-ed25519 AAAA… comment`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KeyCreate {
    pub public_key: String,
}

/// A registered SSH key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Key {
    pub id: i64,
    /// `SHA256:<base64>`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    pub comment: String,
    pub created_at: String,
}

/// `POST /v2/apps`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AppCreate {
    /// A random name is chosen when absent.
    pub name: Option<AppName>,
    /// The platform's default stack when absent.
    pub stack: Option<StackName>,
}

/// An app as the API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct App {
    pub name: AppName,
    pub owner: Username,
    pub stack: StackName,
    /// Where the app answers, e.g. `http://name.localhost:8080`.
    pub url: String,
    /// Where to push, e.g. `ssh://git@127.0.0.1:2222/name.git`.
    pub git_url: String,
    pub created_at: String,
    /// The current release, if any.
    pub release: Option<u32>,
    /// Requests get a maintenance page.
    #[serde(default)]
    pub maintenance: bool,
}

/// A custom domain of an app.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Domain {
    pub domain: String,
    pub created_at: String,
}

/// `POST /v2/apps/{app}/domains`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DomainCreate {
    pub domain: String,
}

/// `POST /v2/apps/{app}/perms` (add a collaborator) and `POST /v2/apps/{app}/transfer`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct UserRef {
    pub username: Username,
}

/// `POST /v2/apps/{app}/maintenance`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Maintenance {
    pub enabled: bool,
}

/// A numbered, immutable release.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Release {
    pub app: AppName,
    pub version: u32,
    /// Image reference by digest, e.g. `127.0.0.1:7701/name@sha256:…`.
    pub image: String,
    /// The build it runs.
    pub build: Option<i64>,
    pub git_sha: Option<String>,
    pub procfile: BTreeMap<ProcessType, String>,
    /// The app's config (environment) in this release.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    pub state: ReleaseState,
    /// Why it failed to start, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    pub created_by: Username,
    pub created_at: String,
    pub summary: String,
}

/// Where a release is in its rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum ReleaseState {
    /// Its containers are starting.
    Pending,
    /// It runs (or ran, before a newer release).
    Deployed,
    /// Its containers never became ready; the release before it kept serving.
    Failed,
    /// It never ran: a newer release was deployed before it started.
    Superseded,
}

/// `PATCH /v2/apps/{app}/config`: keys to set (a value) or unset (`null`), all at once.
pub type ConfigChange = BTreeMap<String, Option<String>>;

/// The answer to a config change: the new config, and the release it made (if the app
/// had one to base it on).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ConfigChanged {
    pub config: BTreeMap<String, String>,
    pub release: Option<Release>,
}

/// How many containers of a process type run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Formation {
    pub process: ProcessType,
    pub quantity: u32,
    /// The command from the current release's Procfile (empty: the image's own).
    pub command: String,
}

/// `POST /v2/apps/{app}/scale`: process type → quantity.
pub type Scale = BTreeMap<ProcessType, u32>;

/// `POST /v2/apps/{app}/ps/restart`: one process type, or every one.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Restart {
    /// Replace the containers of this process type without downtime (all types when neither
    /// this nor `container` is given).
    pub process: Option<ProcessType>,
    /// Replace this one container (its id, or a prefix of at least 4 characters, as
    /// `skiff ps` shows): it is stopped at once and the scheduler starts another.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub container: Option<String>,
}

/// `POST /v2/apps/{app}/releases/rollback`: the version to go back to (default: the one
/// before the current).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Rollback {
    pub version: Option<u32>,
}

/// A running (or stopped) container of an app.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Process {
    pub id: String,
    pub process: String,
    pub release: u32,
    pub state: String,
    /// When it started (RFC 3339), if it runs.
    pub started_at: Option<String>,
    /// For a process type that keeps crashing (state `crashed`, no container): its last
    /// crash and when it starts again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash: Option<CrashReport>,
}

/// The last crash of a process type that backs off before starting again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CrashReport {
    /// What happened (`worker exited with status 1 while starting`).
    pub reason: String,
    /// Crashes in a row.
    pub in_a_row: u32,
    /// When (RFC 3339).
    pub crashed_at: String,
    /// When its next container starts (RFC 3339).
    pub restart_at: String,
}

/// How a build made its image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum BuildKind {
    /// The pushed `Dockerfile`, built by the Docker engine.
    Dockerfile,
    /// A buildpack's `bin/compile` on the app's stack.
    Buildpack,
    /// The pushed tree as a layer on the app's stack.
    Procfile,
    /// An existing image (`skiff deploy --image`).
    Image,
}

/// Whether a build produced an image.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    Succeeded,
    Failed,
}

/// `POST /v2/hooks/builds` (builder, service token): a finished build. A succeeded build
/// becomes the app's next release.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BuildCreate {
    pub app: AppName,
    pub username: Username,
    pub kind: BuildKind,
    pub status: BuildStatus,
    /// Skiff's registry: `name@sha256:…`; elsewhere: a full reference. Absent when failed.
    pub image: Option<String>,
    pub git_sha: Option<String>,
    /// Process types and commands; an empty command runs the image's own.
    pub procfile: BTreeMap<ProcessType, String>,
    pub duration_ms: u64,
    /// Everything the pusher saw.
    pub log: String,
}

/// A recorded build.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Build {
    pub id: i64,
    pub app: AppName,
    pub kind: BuildKind,
    pub status: BuildStatus,
    pub image: Option<String>,
    pub git_sha: Option<String>,
    pub procfile: BTreeMap<ProcessType, String>,
    pub created_by: Username,
    pub created_at: String,
    pub duration_ms: u64,
    /// The full build log; only in `builds/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
}

/// The answer to [`BuildCreate`]: the build, and the release it made if it succeeded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BuildRecorded {
    pub build: Build,
    pub release: Option<Release>,
}

/// `POST /v2/apps/{app}/deploy`: release an existing image.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DeployImage {
    /// A reference the platform's Docker engine can pull, e.g. `registry.example:5000/team/api:1.4`.
    pub image: String,
}

/// `GET /v2/hooks/keys/{fingerprint}` (builder): who owns a key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KeyOwner {
    pub username: Username,
}

/// `GET /v2/hooks/apps/{app}/access/{username}` (builder): what a push needs to know.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PushGrant {
    pub app: AppName,
    /// The app's unique id: a destroyed app's name may come back, its repository may not.
    pub id: i64,
    pub stack: StackName,
    /// Where the app answers once deployed.
    pub url: String,
    /// The app's config: build arguments for Dockerfile builds, the environment of
    /// buildpacks (`BUILDPACK_URL` picks one).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

/// `POST /v2/hooks/images/use`: may `username` build from `image` (a Dockerfile's `FROM`
/// or `COPY --from`)? 204, or 403 with the reason.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ImageUse {
    pub username: Username,
    pub image: String,
}

/// A stack (base image) known to the platform.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Stack {
    pub name: StackName,
    /// Repository and digest within Skiff's registry: `stacks/name@sha256:…`.
    pub image: String,
}

/// One app's routes in the router feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Route {
    pub app: AppName,
    /// Host names that reach the app (without port), lowercase; `*.example.com` matches
    /// every name under `example.com`.
    pub hosts: Vec<String>,
    /// Answer every request with a maintenance page.
    #[serde(default)]
    pub maintenance: bool,
    /// Healthy `web` backends; empty means "answer 503".
    pub backends: Vec<SocketAddr>,
    /// How the app wants HTTPS handled.
    #[serde(default)]
    pub tls: TlsSettings,
    /// Which clients and bodies the router lets through.
    #[serde(default)]
    pub access: AccessPolicy,
}

/// What the router lets through to an app: `GET`/`PUT /v2/apps/{app}/access`, and in the
/// route feed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AccessPolicy {
    /// The largest request body in bytes (larger ones get 413); `null`: no limit.
    #[serde(default)]
    pub max_body_bytes: Option<u64>,
    /// Client addresses allowed in (`10.0.0.0/8`, `192.0.2.7`, `2001:db8::/32`); empty: all.
    #[serde(default)]
    pub allow: Vec<String>,
    /// Client addresses refused (403), even when also allowed.
    #[serde(default)]
    pub deny: Vec<String>,
}

/// An address block: `192.0.2.0/24`, `2001:db8::/32`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cidr {
    network: std::net::IpAddr,
    prefix: u8,
}

impl std::str::FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || format!("`{}` is not an address or block like 10.0.0.0/8 or 2001:db8::/32", text.escape_debug());
        let (address, prefix) = text.split_once('/').map_or((text, None), |(a, p)| (a, Some(p)));
        let network: std::net::IpAddr = address.parse().map_err(|_| bad())?;
        let bits = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= bits).ok_or_else(bad)?,
            None => bits,
        };
        Ok(Self { network, prefix })
    }
}

impl Cidr {
    /// Whether `address` is in the block (an IPv4-mapped IPv6 address counts as IPv4).
    pub fn contains(&self, address: std::net::IpAddr) -> bool {
        let address = match address {
            std::net::IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, std::net::IpAddr::V4),
            v4 => v4,
        };
        let (network, address, bits) = match (self.network, address) {
            (std::net::IpAddr::V4(n), std::net::IpAddr::V4(a)) => {
                (u128::from(n.to_bits()), u128::from(a.to_bits()), 32)
            }
            (std::net::IpAddr::V6(n), std::net::IpAddr::V6(a)) => (n.to_bits(), a.to_bits(), 128),
            _ => return false,
        };
        let host_bits = bits - u32::from(self.prefix);
        host_bits >= bits || (network >> host_bits) == (address >> host_bits)
    }
}

/// An entry of the audit trail: `GET /v2/apps/{app}/events`, `GET /v2/events`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Event {
    pub id: i64,
    /// Absent for platform-wide events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppName>,
    /// What happened, naming who did it.
    pub message: String,
    pub created_at: String,
}

/// An app's HTTPS policy: `GET`/`PUT /v2/apps/{app}/tls`, and in the route feed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TlsSettings {
    /// Redirect plain HTTP requests to HTTPS (308).
    #[serde(default)]
    pub force_https: bool,
    /// Send `Strict-Transport-Security: max-age=N` on HTTPS answers; 0 sends none.
    #[serde(default)]
    pub hsts_max_age: u64,
}

/// A certificate the router serves for some hosts (chosen by SNI), in the route feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RouteCertificate {
    /// Exact names or `*.example.com`.
    pub hosts: Vec<String>,
    /// The PEM chain, leaf first.
    pub chain_pem: String,
    pub key_pem: String,
}

/// An app's TLS certificate: `GET /v2/apps/{app}/certs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Certificate {
    pub name: String,
    pub common_name: String,
    /// The names the certificate covers (its subject alternative names).
    pub names: Vec<String>,
    /// The app's domains it is served for.
    pub domains: Vec<String>,
    /// When the certificate stops being valid (RFC 3339).
    pub expires_at: String,
    pub created_at: String,
}

/// `POST /v2/apps/{app}/certs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CertificateCreate {
    /// Letters, digits and dashes, like an app name.
    pub name: String,
    /// PEM certificates, the leaf first, then its intermediates.
    pub certificate_chain: String,
    /// The leaf's PEM private key (PKCS#8, PKCS#1 or SEC1).
    pub private_key: String,
}

/// `GET /v2/routes?after=N`: the whole route table at a version. The call waits until the
/// table's version differs from `after` (or a timeout passes), so a loop of calls is a
/// stream of changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RouteTable {
    pub version: u64,
    pub routes: Vec<Route>,
    #[serde(default)]
    pub certificates: Vec<RouteCertificate>,
}

/// Where a log line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum LogSource {
    App,
    Router,
    Platform,
}

/// One line of an app's log stream.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct LogLine {
    pub time: String,
    pub app: AppName,
    pub source: LogSource,
    /// Process and instance, e.g. `web.1`; the component name for platform lines.
    pub process: String,
    /// The release the container runs, for an app container's own output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<u32>,
    pub message: String,
}

/// `POST /v2/hooks/registry/access` (registry, service token): may these credentials pull
/// or push `repository`? Answered 401 when the credentials are wrong.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RegistryAccess {
    /// Absent for a bare bearer token.
    pub username: Option<String>,
    /// A password or an API token.
    pub secret: String,
    /// `None` asks only whether the credentials are valid (`docker login`).
    pub repository: Option<String>,
    /// The registry client's address, for counting failed sign-ins.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<String>,
}

/// What a registry client may do in a repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RegistryGrant {
    pub pull: bool,
    pub push: bool,
}

/// `POST /v2/apps/{app}/run`: a one-off command in a new container of the current release,
/// with the app's config. The answer streams [`RunOutput`] JSON lines.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RunRequest {
    /// Run with `/bin/sh -c`.
    pub command: String,
    /// Seconds before the command is killed (default 3600).
    pub timeout_secs: Option<u64>,
}

/// One line of a one-off command's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum RunOutput {
    /// Standard output.
    Out(String),
    /// Standard error.
    Err(String),
    /// The command's exit status; the last line.
    Exit(i64),
}

/// Resource limits of a process type's containers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Limits {
    /// Memory in MiB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// CPU in cores (0.5 is half a core).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpu: Option<f64>,
}

/// How a new container shows it is ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum CheckKind {
    /// It answers HTTP on `$PORT` (at `path` with a 2xx or 3xx status, when a path is set).
    Http,
    /// It accepts and keeps a TCP connection on `$PORT`.
    Tcp,
    /// It keeps running.
    None,
}

/// A process type's readiness check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Healthcheck {
    pub kind: CheckKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Seconds a new container has to pass (default: the platform's boot timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// `PATCH /v2/apps/{app}/limits` and `…/healthchecks`: per process type, a new setting or
/// `null` to go back to the default.
pub type SettingsChange<T> = BTreeMap<ProcessType, Option<T>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn address_blocks_contain_their_addresses() {
        let block: Cidr = "10.1.0.0/16".parse().unwrap();
        assert!(block.contains("10.1.200.3".parse().unwrap()));
        assert!(!block.contains("10.2.0.1".parse().unwrap()));
        assert!(block.contains("::ffff:10.1.0.9".parse().unwrap()), "IPv4-mapped IPv6 counts as IPv4");
        let one: Cidr = "192.0.2.7".parse().unwrap();
        assert!(one.contains("192.0.2.7".parse().unwrap()) && !one.contains("192.0.2.8".parse().unwrap()));
        let everyone: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(everyone.contains("203.0.113.1".parse().unwrap()));
        let v6: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(v6.contains("2001:db8:1::1".parse().unwrap()) && !v6.contains("2001:db9::1".parse().unwrap()));
        assert!(!v6.contains("10.0.0.1".parse().unwrap()));
        for bad in ["10.0.0.0/33", "10.0.0/8", "example.com", "::/129", "10.0.0.0/x", ""] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
