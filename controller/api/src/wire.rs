//! Request and response bodies. Times are RFC 3339 strings in UTC.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use serde::{Deserialize, Serialize};

use crate::{AppName, ProcessType, StackName, Username};

/// The body of every error answer: `{"code": "...", "message": "..."}`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ErrorBody {
    /// A stable code: `unauthenticated`, `forbidden`, `not_found`, `conflict`, `bad_request`, `unavailable`, `too_many_attempts` or `internal`.
    pub code: String,
    /// What went wrong and what to do next, for people.
    pub message: String,
}

/// `POST /v2/auth/register` and `POST /v2/auth/login`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Credentials {
    /// The account's user name.
    pub username: Username,
    /// Its password (at least 8 characters when registering).
    pub password: String,
}

/// A freshly issued API token.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Session {
    /// Who signed in.
    pub username: Username,
    /// Whether they are an admin.
    pub admin: bool,
    /// The API token, shown once; send it as `Authorization: Bearer <token>`.
    pub token: String,
}

/// `GET /v2/auth/whoami`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct User {
    /// The user's name.
    pub username: Username,
    /// Whether the user is an admin.
    pub admin: bool,
}

/// `POST /v2/keys`: an OpenSSH public key line (`ssh-ed25519 AAAA… comment`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct KeyCreate {
    /// An OpenSSH public key line, as in a `.pub` file.
    pub public_key: String,
}

/// A registered SSH key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Key {
    /// The key's id, for `keys:remove`.
    pub id: i64,
    /// `SHA256:<base64>`, as `ssh-keygen -l` prints it.
    pub fingerprint: String,
    /// The comment at the end of the key line (often `user@host`).
    pub comment: String,
    /// When it was added, RFC 3339.
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
    /// The app's name, also its host name under the platform's domain.
    pub name: AppName,
    /// Who owns it.
    pub owner: Username,
    /// The stack it builds on.
    pub stack: StackName,
    /// Where the app answers, e.g. `http://name.localhost:8080`.
    pub url: String,
    /// Where to push, e.g. `ssh://git@127.0.0.1:2222/name.git`.
    pub git_url: String,
    /// When it was created, RFC 3339.
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
    /// The domain, exact (`www.example.com`) or a wildcard (`*.example.com`).
    pub domain: String,
    /// When it was added, RFC 3339.
    pub created_at: String,
}

/// `POST /v2/apps/{app}/domains`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct DomainCreate {
    /// The domain to add or attach, exact or a wildcard.
    pub domain: String,
}

/// `POST /v2/apps/{app}/perms` (add a collaborator) and `POST /v2/apps/{app}/transfer`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct UserRef {
    /// The user meant.
    pub username: Username,
}

/// `POST /v2/apps/{app}/maintenance`.
#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Maintenance {
    /// Whether the router answers the app's requests with a maintenance page.
    pub enabled: bool,
}

/// A numbered, immutable release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Release {
    /// The app it belongs to.
    pub app: AppName,
    /// Its number: 1 for an app's first release, one more for each after.
    pub version: u32,
    /// Image reference by digest, e.g. `127.0.0.1:7701/name@sha256:…`.
    pub image: String,
    /// The build it runs.
    pub build: Option<i64>,
    /// The pushed commit it was built from, when it came from a push.
    pub git_sha: Option<String>,
    /// Process types and their commands (an empty command runs the image's own).
    pub procfile: BTreeMap<ProcessType, String>,
    /// The app's config (environment) in this release.
    #[serde(default)]
    pub config: BTreeMap<String, String>,
    /// How its rollout went.
    pub state: ReleaseState,
    /// Why it failed to start, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub failure: Option<String>,
    /// Who made it.
    pub created_by: Username,
    /// When it was made, RFC 3339.
    pub created_at: String,
    /// What made it, in words (`alice deployed 1a2b3c4`, `bob set GREETING`).
    pub summary: String,
    /// Its release phase, when its Procfile has a `release` command: the command runs
    /// once, in a container of this release, before the release gets any traffic; the
    /// release fails if the command does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<ReleasePhase>,
}

/// A release's `release` command: where it is and what it printed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReleasePhase {
    /// Where the command is.
    pub state: PhaseState,
    /// What it printed so far, standard output and error as they came (the last 64 KiB).
    pub output: String,
}

/// Where a release's `release` command is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum PhaseState {
    /// Waiting for its turn, or running.
    Running,
    /// It exited with status 0: the release rolls out.
    Succeeded,
    /// It exited otherwise or ran out of time: the release failed.
    Failed,
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
    /// It runs as a canary beside the current release, on trial (`skiff canary`).
    Trial,
}

/// `PATCH /v2/apps/{app}/config`: keys to set (a value) or unset (`null`), all at once.
pub type ConfigChange = BTreeMap<String, Option<String>>;

/// The answer to a config change: the new config, and the release it made (if the app
/// had one to base it on).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ConfigChanged {
    /// The whole config after the change.
    pub config: BTreeMap<String, String>,
    /// The release the change made; none while the app has no build.
    pub release: Option<Release>,
}

/// How many containers of a process type run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Formation {
    /// The process type.
    pub process: ProcessType,
    /// How many of its containers run.
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
    /// The release to go back to; the newest good one before the current when absent.
    pub version: Option<u32>,
}

/// A running (or stopped) container of an app.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Process {
    /// The container's id, shortened (`-` for a process type between crashes).
    pub id: String,
    /// Its process type.
    pub process: String,
    /// The release it runs.
    pub release: u32,
    /// `running`, `exited`, or `crashed` (backing off before the next start).
    pub state: String,
    /// When it started (RFC 3339), if it runs.
    pub started_at: Option<String>,
    /// For a process type that keeps crashing (state `crashed`, no container): its last
    /// crash and when it starts again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crash: Option<CrashReport>,
    /// The cluster node it runs on (`hostname (address)`); absent on a single engine.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
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
    /// The app built.
    pub app: AppName,
    /// Who pushed.
    pub username: Username,
    /// How it was built.
    pub kind: BuildKind,
    /// Whether it succeeded.
    pub status: BuildStatus,
    /// Skiff's registry: `name@sha256:…`; elsewhere: a full reference. Absent when failed.
    pub image: Option<String>,
    /// The pushed commit.
    pub git_sha: Option<String>,
    /// Process types and commands; an empty command runs the image's own.
    pub procfile: BTreeMap<ProcessType, String>,
    /// How long the build took, in milliseconds.
    pub duration_ms: u64,
    /// Everything the pusher saw.
    pub log: String,
    /// The pushed tree's `app.json`, when it has one: applied as the release is made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_json: Option<crate::AppJson>,
    /// The pushed commit's subject line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// A recorded build.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Build {
    /// The build's id, for `builds:info`.
    pub id: i64,
    /// The app built.
    pub app: AppName,
    /// How it was built.
    pub kind: BuildKind,
    /// Whether it succeeded.
    pub status: BuildStatus,
    /// The image it made, when it succeeded.
    pub image: Option<String>,
    /// The pushed commit.
    pub git_sha: Option<String>,
    /// The process types it found.
    pub procfile: BTreeMap<ProcessType, String>,
    /// Who pushed.
    pub created_by: Username,
    /// When it was recorded, RFC 3339.
    pub created_at: String,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
    /// The full build log; only in `builds/{id}`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub log: Option<String>,
    /// The pushed commit's subject line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// The answer to [`BuildCreate`]: the build, and the release it made if it succeeded.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BuildRecorded {
    /// The build as recorded.
    pub build: Build,
    /// The release it made, when it succeeded.
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
    /// The user the key belongs to.
    pub username: Username,
}

/// `GET /v2/hooks/apps/{app}/access/{username}` (builder): what a push needs to know.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PushGrant {
    /// The app pushed to.
    pub app: AppName,
    /// The app's unique id: a destroyed app's name may come back, its repository may not.
    pub id: i64,
    /// The stack it builds on.
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
    /// The pusher.
    pub username: Username,
    /// The image their build would use, as the Dockerfile names it.
    pub image: String,
}

/// A stack (base image) known to the platform.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Stack {
    /// The stack's name, as apps name it.
    pub name: StackName,
    /// Repository and digest within Skiff's registry: `stacks/name@sha256:…`.
    pub image: String,
}

/// A node of the cluster: `GET /v2/nodes` (admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NodeView {
    /// The orchestrator's id of the node.
    pub id: String,
    pub hostname: String,
    /// The address the cluster reaches it at.
    pub address: String,
    /// `ready`, `down`, … as the orchestrator reports it.
    pub state: String,
    /// `active` (takes containers), `pause` (keeps what it runs; Skiff moves its
    /// containers off) or `drain` (runs nothing).
    pub availability: String,
    /// Whether it manages the cluster.
    pub manager: bool,
    /// The app containers on it.
    pub containers: Vec<NodeContainer>,
}

/// An app container on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NodeContainer {
    pub app: AppName,
    pub process: String,
    pub release: u32,
    /// The container's id, shortened.
    pub id: String,
}

/// What a new node needs to join: `GET /v2/nodes/join` (admins).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct NodeJoin {
    /// The orchestrator's join command, with its token.
    pub command: String,
    /// The registry every node pulls apps' images from (`HOST:PORT`).
    pub registry: String,
    /// The CA certificate (PEM) a node's engine must trust for that registry, kept in
    /// `/etc/docker/certs.d/<registry>/ca.crt`; absent when the operator gave the registry
    /// a certificate of their own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registry_ca: Option<String>,
}

/// One app's routes in the router feed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Route {
    /// The app routed.
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
    /// A release on trial beside the one `backends` run, with its share of requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<crate::CanaryRoute>,
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

/// Text that is not an address or an address block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{}` is not an address or block like 10.0.0.0/8 or 2001:db8::/32", .0.escape_debug())]
pub struct CidrError(pub String);

impl std::str::FromStr for Cidr {
    type Err = CidrError;

    fn from_str(text: &str) -> Result<Self, CidrError> {
        let bad = || CidrError(text.to_owned());
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
    /// The event's id, in the order events happened.
    pub id: i64,
    /// Absent for platform-wide events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app: Option<AppName>,
    /// What it is about.
    pub kind: crate::EventKind,
    /// What happened, naming who did it.
    pub message: String,
    /// When it happened, RFC 3339.
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
    /// Its PEM private key.
    pub key_pem: String,
}

/// An app's TLS certificate: `GET /v2/apps/{app}/certs`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Certificate {
    /// The name it was added under.
    pub name: String,
    /// The subject's common name.
    pub common_name: String,
    /// The names the certificate covers (its subject alternative names).
    pub names: Vec<String>,
    /// The app's domains it is served for.
    pub domains: Vec<String>,
    /// When the certificate stops being valid (RFC 3339).
    pub expires_at: String,
    /// When it was added, RFC 3339.
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

/// `GET /v2/apps/{app}/acme`: whether an app's custom domains get certificates by
/// themselves (ACME), and how each domain's is coming along.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AutoCertificates {
    /// Set with `PUT`, unset with `DELETE`.
    pub enabled: bool,
    /// The app's custom domains, by name (none while disabled).
    pub domains: Vec<AutoCertificate>,
}

/// Where a domain's automatic certificate is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum AutoCertificateState {
    /// Not ordered yet, or an order is waiting for the ACME server.
    Pending,
    /// Issued and served; renewed before it expires.
    Valid,
    /// The last attempt failed; it is tried again at `next_attempt_at`.
    Failed,
}

/// One domain's automatic certificate.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AutoCertificate {
    pub domain: String,
    pub state: AutoCertificateState,
    /// Whether an order is under way at the ACME server (it goes on after a restart).
    pub ordering: bool,
    /// Until when the certificate served for it is valid (RFC 3339), once one was issued.
    pub valid_until: Option<String>,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it is ordered (or renewed) next, RFC 3339.
    pub next_attempt_at: Option<String>,
}

/// How a domain is proven to an ACME server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub enum AcmeChallengeKind {
    /// An answer over plain HTTP, on port 80 (RFC 8555 §8.3).
    #[default]
    #[serde(rename = "http-01")]
    Http01,
    /// A certificate offered for the ALPN protocol `acme-tls/1`, on port 443 (RFC 8737).
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

impl std::str::FromStr for AcmeChallengeKind {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "http-01" => Ok(Self::Http01),
            "tls-alpn-01" => Ok(Self::TlsAlpn01),
            other => Err(format!("`{other}` is not an ACME challenge the routers answer; use http-01 or tls-alpn-01")),
        }
    }
}

/// An answer to an ACME challenge, in the route feed. HTTP-01: the router answers
/// `GET http://{domain}/.well-known/acme-challenge/{token}` with `key_authorization`.
/// TLS-ALPN-01: to a handshake for `domain` that asks for `acme-tls/1`, it offers a
/// self-signed certificate holding the key authorization's SHA-256 digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AcmeChallenge {
    pub domain: String,
    pub token: String,
    pub key_authorization: String,
    #[serde(default)]
    pub kind: AcmeChallengeKind,
}

/// `GET /v2/routes?after=N`: the whole route table at a version. The call waits until the
/// table's version differs from `after` (or a timeout passes), so a loop of calls is a
/// stream of changes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct RouteTable {
    /// Bumped at every change; a reader asks for the table after the version it has.
    pub version: u64,
    /// Every app's hosts and backends.
    pub routes: Vec<Route>,
    /// The certificates attached to apps' domains.
    #[serde(default)]
    pub certificates: Vec<RouteCertificate>,
    /// Answers to ACME challenges under way.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub challenges: Vec<AcmeChallenge>,
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
    /// When it was taken in, RFC 3339.
    pub time: String,
    /// The app whose stream it is in.
    pub app: AppName,
    /// Where it came from: the app, the router or the platform.
    pub source: LogSource,
    /// Process and instance, e.g. `web.1`; the component name for platform lines.
    pub process: String,
    /// The release the container runs, for an app container's own output.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub release: Option<u32>,
    /// The line, without its trailing newline.
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
    /// Whether the user may pull from the repository.
    pub pull: bool,
    /// Whether the user may push to it.
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
    /// How readiness is checked.
    pub kind: CheckKind,
    /// For an HTTP check, the path to ask (a 2xx or 3xx answer passes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// Seconds a new container has to pass (default: the platform's boot timeout).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
}

/// `PATCH /v2/apps/{app}/limits` and `…/healthchecks`: per process type, a new setting or
/// `null` to go back to the default.
pub type SettingsChange<T> = BTreeMap<ProcessType, Option<T>>;

/// `POST /v2/pipelines`: a new pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PipelineCreate {
    /// Its name, unique on the platform.
    pub name: crate::PipelineName,
}

/// A stage of a pipeline; a build is promoted from each to the next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Development,
    Staging,
    Production,
}

impl Stage {
    /// Every stage, in promotion order.
    pub const ALL: [Stage; 3] = [Stage::Development, Stage::Staging, Stage::Production];

    /// The stage a build of this stage is promoted to.
    pub fn next(self) -> Option<Stage> {
        match self {
            Stage::Development => Some(Stage::Staging),
            Stage::Staging => Some(Stage::Production),
            Stage::Production => None,
        }
    }

    /// Its name, as the API and the CLI spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::Development => "development",
            Stage::Staging => "staging",
            Stage::Production => "production",
        }
    }
}

impl std::fmt::Display for Stage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::str::FromStr for Stage {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        Stage::ALL
            .into_iter()
            .find(|stage| stage.as_str() == text)
            .ok_or_else(|| format!("`{text}` is not a stage: use development, staging or production"))
    }
}

/// A pipeline: apps in stages, and who made it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Pipeline {
    /// Its name.
    pub name: crate::PipelineName,
    /// Who made it (they, and admins, change it).
    pub owner: Username,
    /// When it was made, RFC 3339.
    pub created_at: String,
    /// Its apps (those the caller may see), by stage then name.
    pub apps: Vec<PipelineApp>,
    /// Whether a push of a branch to one of its apps makes a review app, and how.
    pub review_apps: ReviewAppSettings,
}

/// `PUT /v2/pipelines/{pipeline}/review-apps`: review apps of a pipeline, on or off.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReviewAppSettings {
    /// Whether a push of a branch other than main to an app of the pipeline makes (or
    /// updates) the review app `<app>-<branch>`.
    pub enabled: bool,
    /// A review app is destroyed once it went this many days without a push.
    #[serde(default = "default_review_days")]
    pub days: u32,
    /// The config every new review app starts with (`app.json`'s `env` fills the rest).
    #[serde(default)]
    pub config: BTreeMap<String, String>,
}

fn default_review_days() -> u32 {
    5
}

impl Default for ReviewAppSettings {
    fn default() -> Self {
        Self { enabled: false, days: default_review_days(), config: BTreeMap::new() }
    }
}

/// A review app: an app made for a branch of an app of a pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReviewApp {
    /// The review app.
    pub app: AppName,
    /// The app whose branch it runs.
    pub parent: AppName,
    /// The branch.
    pub branch: String,
    /// Where it answers.
    pub url: String,
    /// When its branch was last pushed, RFC 3339.
    pub pushed_at: String,
}

/// `POST /v2/hooks/review-apps` and `…/close`: a push of `branch` to `app` by `username`
/// (the builder's), making or updating the branch's review app, or (the branch deleted)
/// destroying it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReviewAppPush {
    /// The app pushed to.
    pub app: AppName,
    /// The branch pushed (without `refs/heads/`).
    pub branch: String,
    /// Who pushed.
    pub username: Username,
}

/// The review app a branch push builds for.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ReviewAppGrant {
    /// What the build needs of it, as for a push to the app itself.
    pub grant: PushGrant,
    /// Whether the push made it (its `app.json`'s `scripts.postdeploy` runs once it is up).
    pub created: bool,
}

/// An app of a pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PipelineApp {
    /// The app.
    pub app: AppName,
    /// Its stage.
    pub stage: Stage,
    /// The release it runs (or rolls out), if it has one.
    pub release: Option<u32>,
    /// That release's image.
    pub image: Option<String>,
}

/// `PUT /v2/pipelines/{pipeline}/apps/{app}`: the stage the app takes in the pipeline.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PipelineCoupling {
    /// The app's stage.
    pub stage: Stage,
}

/// `POST /v2/apps/{app}/promote`: where the app's current build goes.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Promotion {
    /// These apps of the pipeline; none: every app of the next stage.
    #[serde(default)]
    pub to: Vec<AppName>,
    /// Put the build on trial on each target instead of rolling it out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary: Option<crate::CanaryTrial>,
}

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

/// `GET /v2/version`: the controller's version (also in every answer's `Skiff-Version`
/// header).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Version {
    pub version: String,
}
