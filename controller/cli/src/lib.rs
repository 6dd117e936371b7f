//! The `skiff` CLI: Heroku/Deis-style `topic:command` verbs over the controller API.
//!
//! Layout:
//! - [`config`]: the stored login (URL, user, token).
//! - [`git`]: the `skiff` git remote of the current directory.
//! - [`output`]: aligned tables and JSON.
//!
//! [`run`] takes its environment as a [`Context`] and writes to the given streams, so tests
//! drive the real CLI in-process.

pub mod config;
pub mod dotenv;
pub mod git;
pub mod output;

use std::ffi::OsString;
use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Parser, Subcommand};
use skiff_api::{
    AccessPolicy, AppCreate, AppName, CertificateCreate, Credentials, Drain, DrainStatus, LogLine, ProcessType,
    StackName, TlsSettings, Username,
};
use skiff_client::{Client, LogQuery};

use crate::output::{ago, json, table};

/// Where the CLI runs: its configuration directory, working directory and overrides.
#[derive(Debug, Clone)]
pub struct Context {
    /// Holds `skiff/config.json`.
    pub config_dir: PathBuf,
    /// The directory whose git remote names the default app.
    pub cwd: PathBuf,
    /// The user's home (for `~/.ssh/id_*.pub`).
    pub home: PathBuf,
    /// `SKIFF_URL`.
    pub url: Option<String>,
    /// `SKIFF_TOKEN`.
    pub token: Option<String>,
    /// Colour tables (on a terminal, without `NO_COLOR`).
    pub colour: bool,
    /// Show progress with a spinner (standard error is a terminal).
    pub live_progress: bool,
}

impl Context {
    /// The context of the running process.
    pub fn from_environment() -> Self {
        let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from);
        let config_dir = std::env::var_os("XDG_CONFIG_HOME").map_or_else(|| home.join(".config"), PathBuf::from);
        Self {
            config_dir,
            cwd: std::env::current_dir().unwrap_or_else(|_| PathBuf::from(".")),
            home,
            url: std::env::var("SKIFF_URL").ok().filter(|v| !v.is_empty()),
            token: std::env::var("SKIFF_TOKEN").ok().filter(|v| !v.is_empty()),
            colour: output::colour_wanted(),
            live_progress: std::io::IsTerminal::is_terminal(&std::io::stderr()),
        }
    }
}

#[derive(Debug, Parser)]
#[command(name = "skiff", version, about = "Deploy and run apps on a Skiff platform", disable_help_subcommand = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Args)]
struct AuthArgs {
    /// Controller URL (default: the stored one, else http://127.0.0.1:7700).
    #[arg(long)]
    url: Option<String>,
    /// User name (asked for when absent).
    #[arg(long, short)]
    username: Option<Username>,
    /// Password (read from standard input when absent).
    #[arg(long, short)]
    password: Option<String>,
}

#[derive(Debug, Args)]
struct AppArg {
    /// The app (default: the one the `skiff` git remote names).
    #[arg(long = "app", short = 'a')]
    app: Option<AppName>,
}

/// An app, or with `--platform` the whole platform.
#[derive(Debug, Args)]
struct ScopeArg {
    #[command(flatten)]
    app: AppArg,
    /// The platform's instead of an app's (admins).
    #[arg(long, conflicts_with = "app")]
    platform: bool,
}

#[derive(Debug, Args)]
struct WaitArg {
    /// Wait until the new release runs (or fails), showing progress.
    #[arg(long)]
    wait: bool,
}

#[derive(Debug, Args)]
struct JsonArg {
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run a one-off command in a new container of the current release; exits with its status.
    ///
    /// The command runs through `sh -c` in the container. One argument is a shell command
    /// line (`skiff run 'rake db:migrate && echo done'`); several are quoted one by one and
    /// run as they were typed (`skiff run -- sh -c 'echo first; echo second'`).
    #[command(name = "run")]
    Run {
        #[command(flatten)]
        app: AppArg,
        /// Seconds before the command is killed.
        #[arg(long, default_value_t = 3600)]
        timeout: u64,
        /// The command and its arguments (after `--`).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    #[command(flatten)]
    Verb(Verb),
}

/// Every verb but `run` (which exits with its command's status).
#[derive(Debug, Subcommand)]
enum Verb {
    /// Create an account (the first one becomes admin) and log in.
    #[command(name = "auth:register")]
    AuthRegister(AuthArgs),
    /// Log in and store the token.
    #[command(name = "auth:login")]
    AuthLogin(AuthArgs),
    /// Forget the stored token.
    #[command(name = "auth:logout")]
    AuthLogout,
    /// Show who you are logged in as.
    #[command(name = "auth:whoami")]
    AuthWhoami(JsonArg),
    /// List your SSH keys.
    #[command(name = "keys")]
    Keys(JsonArg),
    /// Add an SSH public key (default: ~/.ssh/id_ed25519.pub or ~/.ssh/id_rsa.pub).
    #[command(name = "keys:add")]
    KeysAdd { path: Option<PathBuf> },
    /// Remove an SSH key by id.
    #[command(name = "keys:remove")]
    KeysRemove { id: i64 },
    /// List apps.
    #[command(name = "apps")]
    Apps(JsonArg),
    /// Create an app; inside a git repository, add a `skiff` remote for it.
    #[command(name = "apps:create")]
    AppsCreate {
        /// The name (random when absent).
        name: Option<AppName>,
        /// The stack to build on (the platform's default when absent).
        #[arg(long)]
        stack: Option<StackName>,
        /// Do not add a git remote.
        #[arg(long)]
        no_remote: bool,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show an app.
    #[command(name = "apps:info")]
    AppsInfo {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Destroy an app with its containers and routes.
    #[command(name = "apps:destroy")]
    AppsDestroy {
        #[command(flatten)]
        app: AppArg,
        /// The app's name, to skip the question.
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Open the app's URL in a browser (or print it).
    #[command(name = "apps:open")]
    AppsOpen {
        #[command(flatten)]
        app: AppArg,
    },
    /// Give an app to another user.
    #[command(name = "apps:transfer")]
    AppsTransfer {
        username: Username,
        #[command(flatten)]
        app: AppArg,
    },
    /// List an app's collaborators.
    #[command(name = "perms")]
    Perms {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Let another user deploy and manage an app.
    #[command(name = "perms:add")]
    PermsAdd {
        username: Username,
        #[command(flatten)]
        app: AppArg,
    },
    /// Take a collaborator off an app.
    #[command(name = "perms:remove")]
    PermsRemove {
        username: Username,
        #[command(flatten)]
        app: AppArg,
    },
    /// List an app's custom domains.
    #[command(name = "domains")]
    Domains {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Route a custom domain (www.example.com, or *.example.com) to an app.
    #[command(name = "domains:add")]
    DomainsAdd {
        domain: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Stop routing a custom domain to an app.
    #[command(name = "domains:remove")]
    DomainsRemove {
        domain: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Show the audit trail: who did what and when, to an app or (admins) on the platform.
    #[command(name = "events")]
    Events {
        /// How many of the newest events.
        #[arg(short = 'n', long = "num", default_value_t = 50)]
        lines: u32,
        #[command(flatten)]
        scope: ScopeArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// List log drains with what each delivered and dropped.
    #[command(name = "drains")]
    Drains {
        #[command(flatten)]
        scope: ScopeArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Forward an app's log lines to syslog://HOST:PORT, syslog+tls://HOST:PORT or https://HOST/PATH.
    #[command(name = "drains:add")]
    DrainsAdd {
        url: String,
        #[command(flatten)]
        scope: ScopeArg,
    },
    /// Stop a log drain, by URL or id.
    #[command(name = "drains:remove")]
    DrainsRemove {
        #[arg(value_name = "URL|ID")]
        drain: String,
        #[command(flatten)]
        scope: ScopeArg,
    },
    /// Show whether an app is in maintenance mode.
    #[command(name = "maintenance")]
    MaintenanceStatus {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Answer every request to an app with a maintenance page (503).
    #[command(name = "maintenance:on")]
    MaintenanceOn {
        #[command(flatten)]
        app: AppArg,
    },
    /// Serve an app's requests again.
    #[command(name = "maintenance:off")]
    MaintenanceOff {
        #[command(flatten)]
        app: AppArg,
    },
    /// List an app's TLS certificates: the names they cover, where they are served, expiry.
    #[command(name = "certs")]
    Certs {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Add a TLS certificate: a PEM chain (leaf first) and its PEM private key.
    #[command(name = "certs:add")]
    CertsAdd {
        name: String,
        #[arg(value_name = "CERT.pem")]
        certificate: PathBuf,
        #[arg(value_name = "KEY.pem")]
        key: PathBuf,
        #[command(flatten)]
        app: AppArg,
    },
    /// Serve a certificate for one of the app's domains (see `skiff domains`).
    #[command(name = "certs:attach")]
    CertsAttach {
        name: String,
        domain: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Stop serving a certificate for a domain.
    #[command(name = "certs:detach")]
    CertsDetach {
        name: String,
        domain: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Remove a TLS certificate.
    #[command(name = "certs:remove")]
    CertsRemove {
        name: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Show which client addresses may reach an app and how large a request body may be.
    #[command(name = "access")]
    Access {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Let only these addresses or blocks (10.0.0.0/8, 2001:db8::/32) reach an app, besides any allowed before.
    #[command(name = "access:allow")]
    AccessAllow {
        #[arg(required = true, value_name = "ADDRESS")]
        addresses: Vec<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Refuse these addresses or blocks (403), even when allowed.
    #[command(name = "access:deny")]
    AccessDeny {
        #[arg(required = true, value_name = "ADDRESS")]
        addresses: Vec<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Take addresses off both lists.
    #[command(name = "access:remove")]
    AccessRemove {
        #[arg(required = true, value_name = "ADDRESS")]
        addresses: Vec<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Limit request bodies (413 beyond): a size like 512k, 10m or 1g, or `off`.
    #[command(name = "access:max-body")]
    AccessMaxBody {
        #[arg(value_parser = parse_body_limit, value_name = "SIZE")]
        size: BodyLimit,
        #[command(flatten)]
        app: AppArg,
    },
    /// Show an app's HTTPS policy.
    #[command(name = "tls")]
    Tls {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Redirect an app's plain HTTP requests to HTTPS, optionally with HSTS.
    #[command(name = "tls:enable")]
    TlsEnable {
        /// Also send Strict-Transport-Security with this max-age, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        hsts: u64,
        #[command(flatten)]
        app: AppArg,
    },
    /// Serve an app over plain HTTP again, without HSTS.
    #[command(name = "tls:disable")]
    TlsDisable {
        #[command(flatten)]
        app: AppArg,
    },
    /// Print a completion script for a shell (bash, zsh, fish, elvish, powershell).
    #[command(name = "completions")]
    Completions { shell: clap_complete::Shell },
    /// Show the memory and CPU limits of an app's process types.
    #[command(name = "limits")]
    Limits {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Limit a process type's containers: memory=256m (or 1g), cpu=0.5 (cores).
    #[command(name = "limits:set")]
    LimitsSet {
        process: ProcessType,
        #[arg(required = true, value_name = "memory=SIZE|cpu=CORES", value_parser = parse_limit)]
        limits: Vec<Limit>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Remove a process type's limits.
    #[command(name = "limits:unset")]
    LimitsUnset {
        process: ProcessType,
        #[command(flatten)]
        app: AppArg,
    },
    /// Show how new containers of each process type prove they are ready.
    #[command(name = "healthchecks")]
    Healthchecks {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Set a process type's readiness check: --http PATH, --tcp or --none.
    #[command(name = "healthchecks:set")]
    HealthchecksSet {
        process: ProcessType,
        /// Ready when PATH answers 2xx or 3xx on $PORT.
        #[arg(long, value_name = "PATH", conflicts_with_all = ["tcp", "none"])]
        http: Option<String>,
        /// Ready when $PORT keeps a TCP connection open.
        #[arg(long, conflicts_with = "none")]
        tcp: bool,
        /// Ready once the process keeps running.
        #[arg(long)]
        none: bool,
        /// Seconds a new container has to pass.
        #[arg(long)]
        timeout: Option<u64>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Go back to the default check (any HTTP answer for web; running for others).
    #[command(name = "healthchecks:unset")]
    HealthchecksUnset {
        process: ProcessType,
        #[command(flatten)]
        app: AppArg,
    },
    /// Drop the images of releases no longer kept and collect the registry's garbage (admins).
    #[command(name = "registry:gc")]
    RegistryGc {
        /// Only report what would be deleted.
        #[arg(long)]
        dry_run: bool,
        /// Spare blobs younger than this many seconds (default: the registry's hour).
        #[arg(long, value_name = "SECONDS")]
        grace: Option<u64>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show an app's config (environment).
    #[command(name = "config")]
    Config {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Write the app's config to a .env file (default: .env).
    #[command(name = "config:pull")]
    ConfigPull {
        /// The file to write.
        #[arg(long, default_value = ".env")]
        file: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        app: AppArg,
    },
    /// Set the app's config from a .env file (default: .env); makes a new release.
    #[command(name = "config:push")]
    ConfigPush {
        /// The file to read.
        #[arg(long, default_value = ".env")]
        file: PathBuf,
        #[command(flatten)]
        app: AppArg,
    },
    /// Print one config value.
    #[command(name = "config:get")]
    ConfigGet {
        key: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Set config values (KEY=VALUE ...); makes a new release.
    #[command(name = "config:set")]
    ConfigSet {
        #[arg(required = true, value_name = "KEY=VALUE", value_parser = parse_config_pair)]
        pairs: Vec<(String, String)>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Unset config keys; makes a new release.
    #[command(name = "config:unset")]
    ConfigUnset {
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// List an app's containers.
    #[command(name = "ps")]
    Ps {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Scale process types (TYPE=N ...), to 0 as well.
    #[command(name = "ps:scale")]
    PsScale {
        #[arg(required = true, value_name = "TYPE=N", value_parser = parse_scale_pair)]
        pairs: Vec<(ProcessType, u32)>,
        #[command(flatten)]
        app: AppArg,
        /// Wait until each type runs that many containers, showing progress.
        #[arg(long)]
        wait: bool,
    },
    /// Replace an app's containers (all, or one process type) without downtime.
    #[command(name = "ps:restart")]
    PsRestart {
        /// A process type (`web`), or one container's id as `skiff ps` shows it.
        #[arg(value_name = "TYPE|ID")]
        target: Option<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// List an app's builds.
    #[command(name = "builds")]
    Builds {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show one build with its full log.
    #[command(name = "builds:info")]
    BuildsInfo {
        /// The build's id (see `skiff builds`).
        id: i64,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Release an existing image (from Skiff's registry or any registry the engine reaches).
    #[command(name = "deploy")]
    Deploy {
        /// The image, e.g. `127.0.0.1:7701/app:tag` or `registry.example/team/api:1.4`.
        #[arg(long)]
        image: String,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Show one release.
    #[command(name = "releases:info")]
    ReleasesInfo {
        /// The version, e.g. v3.
        #[arg(value_parser = parse_version)]
        version: u32,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Make a new release from an earlier one's build and config (default: the previous).
    #[command(name = "releases:rollback")]
    ReleasesRollback {
        /// The version to go back to, e.g. v3.
        #[arg(value_parser = parse_version)]
        version: Option<u32>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// List an app's releases, newest first.
    #[command(name = "releases")]
    Releases {
        #[command(flatten)]
        app: AppArg,
        /// How many of the newest.
        #[arg(long, short = 'n', default_value_t = 15)]
        num: u32,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show an app's recent log lines, and follow new ones with -f.
    #[command(name = "logs")]
    Logs {
        #[command(flatten)]
        app: AppArg,
        /// How many recent lines.
        #[arg(long, short = 'n', default_value_t = 100)]
        num: usize,
        /// Keep printing new lines as they arrive (Ctrl-C to stop).
        #[arg(long, short = 'f', visible_alias = "tail")]
        follow: bool,
        /// Only this process type (`web`) or instance (`web.1a2b3c`).
        #[arg(long, short = 'p')]
        process: Option<String>,
        /// Only lines from this source.
        #[arg(long, value_parser = ["app", "router", "platform"])]
        source: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Add (or update) the `skiff` git remote of the current repository.
    #[command(name = "git:remote")]
    GitRemote {
        #[command(flatten)]
        app: AppArg,
    },
    /// List stacks (base images apps build on).
    #[command(name = "stacks")]
    Stacks(JsonArg),
    /// Import a root filesystem (a directory or a tarball) as a stack (admins only).
    #[command(name = "stacks:import")]
    StacksImport { name: StackName, source: PathBuf },
}

/// Runs the CLI; returns the exit status (0 success, 1 error, 2 usage).
pub async fn run(
    args: impl IntoIterator<Item = impl Into<OsString> + Clone>,
    context: &Context,
    out: &mut impl Write,
    err: &mut impl Write,
) -> u8 {
    let cli = match Cli::try_parse_from(args) {
        Ok(cli) => cli,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = if e.use_stderr() { write!(err, "{e}") } else { write!(out, "{e}") };
            return code;
        }
    };
    let result = match cli.command {
        Command::Run { app, timeout, command } => {
            run_command(context, app, timeout, shell_line(&command), out, err).await
        }
        Command::Verb(verb) => execute(verb, context, out, err).await.map(|()| 0),
    };
    match result {
        Ok(status) => status,
        Err(e) => {
            let _ = writeln!(err, "skiff: {e:#}");
            1
        }
    }
}

/// The shell command line that runs `args`: a single argument is a command line already;
/// several are each quoted, so the shell passes them on unchanged.
fn shell_line(args: &[String]) -> String {
    match args {
        [line] => line.clone(),
        args => args.iter().map(|arg| shell_quote(arg)).collect::<Vec<_>>().join(" "),
    }
}

/// `arg` as one shell word: bare when it holds only safe characters, otherwise in single
/// quotes (a quote inside becomes `'\''`).
fn shell_quote(arg: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c);
    if !arg.is_empty() && arg.chars().all(safe) { arg.to_owned() } else { format!("'{}'", arg.replace('\'', "'\\''")) }
}

/// A controller client from the stored login and overrides.
fn client(context: &Context) -> anyhow::Result<Client> {
    let stored = config::load(&context.config_dir)?;
    let url = context.url.clone().or(stored.url).unwrap_or_else(|| config::DEFAULT_URL.to_owned());
    let token = context.token.clone().or(stored.token);
    if token.is_none() {
        bail!("not logged in; run `skiff auth:login` (or `skiff auth:register` for a new account)");
    }
    Ok(Client::new(&url, token))
}

fn app_name(context: &Context, arg: AppArg) -> anyhow::Result<AppName> {
    arg.app.or_else(|| git::remote_app(&context.cwd)).ok_or_else(|| {
        anyhow!("no app given and no `skiff` git remote here; pass `-a APP` or run `skiff git:remote -a APP`")
    })
}

/// Reads an app's access policy, changes it, and stores it.
async fn change_access(
    context: &Context,
    app: AppArg,
    out: &mut impl Write,
    change: impl FnOnce(&mut AccessPolicy),
) -> anyhow::Result<()> {
    let app = app_name(context, app)?;
    let client = client(context)?;
    let mut policy = client.access(&app).await?;
    change(&mut policy);
    for list in [&mut policy.allow, &mut policy.deny] {
        let mut seen = std::collections::HashSet::new();
        list.retain(|a| seen.insert(a.clone()));
    }
    let policy = client.set_access(&app, &policy).await?;
    report_access(out, &policy)
}

fn report_access(out: &mut impl Write, policy: &AccessPolicy) -> anyhow::Result<()> {
    let list = |l: &[String]| if l.is_empty() { "-".to_owned() } else { l.join(", ") };
    let allow = if policy.allow.is_empty() { "every address".to_owned() } else { policy.allow.join(", ") };
    writeln!(out, "Allowed:  {allow}")?;
    writeln!(out, "Denied:   {}", list(&policy.deny))?;
    let body = policy.max_body_bytes.map_or_else(|| "no limit".to_owned(), |b| format!("{b} bytes"));
    writeln!(out, "Max body: {body}")?;
    Ok(())
}

/// A request body limit: a size, or none (`off`).
#[derive(Debug, Clone, Copy)]
struct BodyLimit(Option<u64>);

fn parse_body_limit(text: &str) -> Result<BodyLimit, String> {
    if text == "off" { Ok(BodyLimit(None)) } else { parse_bytes(text).map(|b| BodyLimit(Some(b))) }
}

/// One `limits:set` setting.
#[derive(Debug, Clone, Copy)]
enum Limit {
    MemoryMb(u64),
    Cpu(f64),
}

/// `memory=256m` or `cpu=0.5`.
fn parse_limit(text: &str) -> Result<Limit, String> {
    match text.split_once('=') {
        Some(("memory", size)) => parse_memory(size).map(Limit::MemoryMb),
        Some(("cpu", cores)) => match cores.parse::<f64>() {
            Ok(cores) if cores.is_finite() && cores > 0.0 => Ok(Limit::Cpu(cores)),
            _ => Err(format!("`{cores}` is not a number of cores like 0.5 or 2")),
        },
        _ => Err(format!("`{text}` is not memory=SIZE or cpu=CORES")),
    }
}

/// `KEY=VALUE` (the value may be empty and may hold `=`).
fn parse_config_pair(text: &str) -> Result<(String, String), String> {
    let (key, value) = text.split_once('=').ok_or_else(|| format!("`{text}` is not KEY=VALUE"))?;
    if key.is_empty() {
        return Err(format!("`{text}` has no key before `=`"));
    }
    Ok((key.to_owned(), value.to_owned()))
}

/// `TYPE=N`.
fn parse_scale_pair(text: &str) -> Result<(ProcessType, u32), String> {
    let (process, quantity) = text.split_once('=').ok_or_else(|| format!("`{text}` is not TYPE=N"))?;
    let process: ProcessType = process.parse().map_err(|e| format!("{e}"))?;
    let quantity = quantity.parse().map_err(|_| format!("`{quantity}` is not a number of containers"))?;
    Ok((process, quantity))
}

/// `512k`, `10m`, `1g` or a number of bytes.
fn parse_bytes(size: &str) -> Result<u64, String> {
    let lower = size.to_ascii_lowercase();
    let (number, shift) = match lower.chars().last() {
        Some('k') => (&lower[..lower.len() - 1], 10),
        Some('m') => (&lower[..lower.len() - 1], 20),
        Some('g') => (&lower[..lower.len() - 1], 30),
        _ => (lower.as_str(), 0),
    };
    let number: u64 = number.parse().map_err(|_| format!("`{size}` is not a size like 512k, 10m or 1g"))?;
    number.checked_shl(shift).filter(|n| n >> shift == number).ok_or_else(|| format!("`{size}` is too large"))
}

/// How often progress moves on.
const PROGRESS_TICK: std::time::Duration = std::time::Duration::from_millis(250);
/// How long `--wait` follows a rollout at most.
const ROLLOUT_WAIT: std::time::Duration = std::time::Duration::from_secs(300);

/// What one look at something `--wait` follows says.
enum Look {
    Done,
    /// Failed, and why (with what to do next).
    Failed(String),
    Pending,
}

/// How `--wait` words one thing it follows.
struct Waiting {
    /// The progress line, e.g. `Waiting for v3 of shop to start`.
    what: String,
    /// The progress line's end once done, before ` in 1.2s`.
    done: &'static str,
    /// The progress line's end when the wait runs out.
    still: &'static str,
    /// The error when the wait runs out.
    timed_out: String,
}

/// Looks every half second, with progress on `err`, until `look` says done or failed, or
/// [`ROLLOUT_WAIT`] passes.
async fn wait_for<F, Fut>(context: &Context, err: &mut impl Write, waiting: Waiting, mut look: F) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Look>>,
{
    let mut progress = output::Progress::start(err, context.live_progress, waiting.what);
    loop {
        match look().await? {
            Look::Done => {
                let took = progress.elapsed().as_secs_f64();
                progress.finish(&format!("{} in {took:.1}s", waiting.done));
                return Ok(());
            }
            Look::Failed(reason) => {
                progress.finish("failed");
                bail!(reason);
            }
            Look::Pending if progress.elapsed() > ROLLOUT_WAIT => {
                progress.finish(waiting.still);
                bail!(waiting.timed_out);
            }
            Look::Pending => {
                for _ in 0..2 {
                    tokio::time::sleep(PROGRESS_TICK).await;
                    progress.tick();
                }
            }
        }
    }
}

/// With a version, follows its rollout until the release runs or fails, showing progress
/// on `err`; a failed release is an error that says what to do next.
async fn follow_rollout(
    context: &Context,
    app: &AppName,
    version: Option<u32>,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    let Some(version) = version else { return Ok(()) };
    let client = &client(context)?;
    let waiting = Waiting {
        what: format!("Waiting for v{version} of {app} to start"),
        done: "up",
        still: "still starting",
        timed_out: format!(
            "v{version} is not up after {} s; see `skiff ps -a {app}` and `skiff logs -a {app}`",
            ROLLOUT_WAIT.as_secs()
        ),
    };
    wait_for(context, err, waiting, || async move {
        let release = client.release_of(app, version).await?;
        Ok(match release.state {
            skiff_api::ReleaseState::Deployed => Look::Done,
            skiff_api::ReleaseState::Failed => {
                let reason = release.failure.unwrap_or_else(|| "it never became ready".into());
                Look::Failed(format!(
                    "v{version} failed: {reason}; the previous release keeps serving (see `skiff logs -a {app}`)"
                ))
            }
            skiff_api::ReleaseState::Superseded => Look::Failed(format!(
                "v{version} never ran: a newer release was deployed first (see `skiff releases -a {app}`)"
            )),
            _ => Look::Pending,
        })
    })
    .await
}

/// Waits until `ps` shows exactly `scale`'s number of running containers of each type
/// (containers leaving service count until they stop).
async fn wait_for_scale(
    context: &Context,
    app: &AppName,
    scale: &std::collections::BTreeMap<ProcessType, u32>,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    let client = &client(context)?;
    let waiting = Waiting {
        what: format!("Waiting for {app} to scale"),
        done: "done",
        still: "still scaling",
        timed_out: format!(
            "{app} has not scaled after {} s; see `skiff ps -a {app}` and `skiff events -a {app}`",
            ROLLOUT_WAIT.as_secs()
        ),
    };
    wait_for(context, err, waiting, || async move {
        let containers = client.ps(app).await?;
        let running = |process: &ProcessType| {
            containers.iter().filter(|c| c.process == process.as_str() && c.state == "running").count()
        };
        let settled = scale.iter().all(|(process, quantity)| running(process) == *quantity as usize);
        Ok(if settled { Look::Done } else { Look::Pending })
    })
    .await
}

fn report_tls(out: &mut impl Write, tls: &TlsSettings) -> anyhow::Result<()> {
    let https = if tls.force_https { "HTTPS only (plain HTTP is redirected)" } else { "HTTP and HTTPS" };
    let hsts = if tls.hsts_max_age > 0 { format!("max-age={}", tls.hsts_max_age) } else { "off".into() };
    writeln!(out, "{https}; HSTS {hsts}")?;
    Ok(())
}

fn app_or_platform(context: &Context, arg: ScopeArg) -> anyhow::Result<Option<AppName>> {
    if arg.platform { Ok(None) } else { app_name(context, arg.app).map(Some) }
}

fn drain_state(drain: &Drain) -> String {
    match &drain.status {
        None => "unknown (logger unreachable)".into(),
        Some(DrainStatus { last_error: Some(error), .. }) => format!("failing: {error}"),
        Some(_) => "ok".into(),
    }
}

fn report_config(out: &mut impl Write, app: &AppName, release: Option<u32>) -> anyhow::Result<()> {
    match release {
        Some(version) => writeln!(out, "Config of {app} updated; released v{version}")?,
        None => writeln!(out, "Config of {app} updated; it applies from the first release")?,
    }
    Ok(())
}

/// `256m`, `1g` or `512` (MiB) as MiB.
fn parse_memory(size: &str) -> Result<u64, String> {
    let lower = size.to_ascii_lowercase();
    let (number, factor) = match lower.strip_suffix('g') {
        Some(number) => (number, 1024),
        None => (lower.strip_suffix('m').unwrap_or(&lower), 1),
    };
    let number: u64 = number.parse().map_err(|_| format!("`{size}` is not a size like 256m or 1g"))?;
    number.checked_mul(factor).ok_or_else(|| format!("`{size}` is too large"))
}

/// `v3` or `3`.
fn parse_version(text: &str) -> Result<u32, String> {
    text.trim_start_matches(['v', 'V']).parse().map_err(|_| format!("`{text}` is not a release version like v3"))
}

/// `skiff run`: streams the command's output; its exit status becomes ours (1 when it
/// does not fit a process exit status).
async fn run_command(
    context: &Context,
    app: AppArg,
    timeout: u64,
    command: String,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<u8> {
    let app = app_name(context, app)?;
    let request = skiff_api::RunRequest { command, timeout_secs: Some(timeout) };
    let mut output = std::pin::pin!(client(context)?.run(&app, &request).await?);
    while let Some(line) = futures_util::StreamExt::next(&mut output).await {
        match line? {
            skiff_api::RunOutput::Out(text) => {
                out.write_all(text.as_bytes())?;
                out.flush()?;
            }
            skiff_api::RunOutput::Err(text) => {
                err.write_all(text.as_bytes())?;
                err.flush()?;
            }
            skiff_api::RunOutput::Exit(status) => return Ok(u8::try_from(status).unwrap_or(1)),
        }
    }
    bail!("the connection ended before the command did; see `skiff ps -a {app}`")
}

/// A unit enum as the text it serializes to.
fn text_of(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => "?".into(),
    }
}

fn ask(question: &str) -> anyhow::Result<String> {
    eprint!("{question}");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}

async fn authenticate(context: &Context, args: AuthArgs, register: bool, out: &mut impl Write) -> anyhow::Result<()> {
    let stored = config::load(&context.config_dir)?;
    let url = args.url.or(context.url.clone()).or(stored.url.clone()).unwrap_or_else(|| config::DEFAULT_URL.to_owned());
    let username = match args.username {
        Some(username) => username,
        None => ask("username: ")?.parse().context("invalid user name")?,
    };
    let password = match args.password {
        Some(password) => password,
        // No echo on a terminal; piped input is read as a line.
        None => rpassword::prompt_password("password: ").or_else(|_| ask(""))?,
    };
    // An admin who is logged in creates accounts for others and stays logged in as before.
    let token = context.token.clone().or(stored.token).filter(|_| register);
    let creating_for_other = token.is_some();
    let client = Client::new(&url, token);
    let credentials = Credentials { username, password };
    let session = if register { client.register(&credentials).await? } else { client.login(&credentials).await? };
    if creating_for_other {
        writeln!(out, "Created user {}; they log in with `skiff auth:login`", session.username)?;
        return Ok(());
    }
    config::save(
        &context.config_dir,
        &config::Stored {
            url: Some(url.clone()),
            username: Some(session.username.to_string()),
            token: Some(session.token),
        },
    )?;
    let role = if session.admin { " (admin)" } else { "" };
    writeln!(out, "Logged in to {url} as {}{role}", session.username)?;
    Ok(())
}

fn default_key(context: &Context) -> anyhow::Result<PathBuf> {
    ["id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"]
        .iter()
        .map(|name| context.home.join(".ssh").join(name))
        .find(|path| path.exists())
        .ok_or_else(|| anyhow!("no key in ~/.ssh; create one with `ssh-keygen -t ed25519` or pass a .pub file"))
}

/// Tars a directory (through `tar`, which keeps links, devices and modes) or reads a tarball.
fn read_rootfs(source: &std::path::Path) -> anyhow::Result<Vec<u8>> {
    if source.is_dir() {
        let output = std::process::Command::new("tar")
            .arg("--numeric-owner")
            .arg("-C")
            .arg(source)
            .arg("-cf")
            .arg("-")
            .arg(".")
            .output()
            .context("cannot run tar")?;
        if !output.status.success() {
            bail!("tar failed: {}", String::from_utf8_lossy(&output.stderr).trim());
        }
        Ok(output.stdout)
    } else {
        std::fs::read(source).with_context(|| format!("cannot read {}", source.display()))
    }
}

async fn execute(verb: Verb, context: &Context, out: &mut impl Write, err: &mut impl Write) -> anyhow::Result<()> {
    match verb {
        Verb::AuthRegister(args) => authenticate(context, args, true, out).await,
        Verb::AuthLogin(args) => authenticate(context, args, false, out).await,
        Verb::AuthLogout => {
            // Revoke the token on the controller when it can be reached; forget it either way.
            if let Ok(client) = client(context) {
                let _ = client.logout().await;
            }
            let mut stored = config::load(&context.config_dir)?;
            stored.token = None;
            config::save(&context.config_dir, &stored)?;
            writeln!(out, "Logged out")?;
            Ok(())
        }
        Verb::AuthWhoami(flag) => {
            let user = client(context)?.whoami().await?;
            if flag.json {
                return json(out, &user);
            }
            writeln!(out, "{}{}", user.username, if user.admin { " (admin)" } else { "" })?;
            Ok(())
        }
        Verb::Keys(flag) => {
            let keys = client(context)?.keys().await?;
            if flag.json {
                return json(out, &keys);
            }
            let rows = keys.iter().map(|k| vec![k.id.to_string(), k.fingerprint.clone(), k.comment.clone()]).collect();
            table(out, context.colour, &["ID", "FINGERPRINT", "COMMENT"], rows)
        }
        Verb::KeysAdd { path } => {
            let path = match path {
                Some(path) => path,
                None => default_key(context)?,
            };
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let key = client(context)?.add_key(text.trim()).await?;
            writeln!(out, "Added key {} ({})", key.fingerprint, path.display())?;
            Ok(())
        }
        Verb::KeysRemove { id } => {
            client(context)?.remove_key(id).await?;
            writeln!(out, "Removed key {id}")?;
            Ok(())
        }
        Verb::Apps(flag) => {
            let apps = client(context)?.apps().await?;
            if flag.json {
                return json(out, &apps);
            }
            let rows = apps
                .iter()
                .map(|a| {
                    let release = a.release.map_or_else(|| "-".to_owned(), |v| format!("v{v}"));
                    vec![a.name.to_string(), a.owner.to_string(), release, a.url.clone()]
                })
                .collect();
            table(out, context.colour, &["NAME", "OWNER", "RELEASE", "URL"], rows)
        }
        Verb::AppsCreate { name, stack, no_remote, json: flag } => {
            let app = client(context)?.create_app(&AppCreate { name, stack }).await?;
            let remote = !no_remote && git::in_repository(&context.cwd);
            if remote {
                git::set_remote(&context.cwd, &app.git_url)?;
            }
            if flag.json {
                return json(out, &app);
            }
            writeln!(out, "Created {} on stack {}", app.name, app.stack)?;
            writeln!(out, "  url: {}", app.url)?;
            writeln!(out, "  git: {}", app.git_url)?;
            if remote {
                writeln!(out, "Added git remote `skiff`; deploy with `git push skiff main`")?;
            }
            Ok(())
        }
        Verb::AppsInfo { app, json: flag } => {
            let app = client(context)?.app(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &app);
            }
            let release = app.release.map_or_else(|| "none yet; `git push skiff main`".to_owned(), |v| format!("v{v}"));
            for (key, value) in [
                ("name", app.name.to_string()),
                ("owner", app.owner.to_string()),
                ("stack", app.stack.to_string()),
                ("release", release),
                ("url", app.url),
                ("git", app.git_url),
                ("created", ago(&app.created_at)),
            ] {
                writeln!(out, "{key:>8}: {value}")?;
            }
            Ok(())
        }
        Verb::AppsDestroy { app, confirm } => {
            let app = app_name(context, app)?;
            let confirm = match confirm {
                Some(confirm) => confirm,
                None => {
                    ask(&format!("This destroys {app} with its containers and releases. Type its name to confirm: "))?
                }
            };
            if confirm != app.as_str() {
                bail!("confirmation `{confirm}` does not match `{app}`; nothing was destroyed");
            }
            client(context)?.destroy_app(&app).await?;
            writeln!(out, "Destroyed {app}")?;
            Ok(())
        }
        Verb::AppsOpen { app } => {
            let app = client(context)?.app(&app_name(context, app)?).await?;
            // A browser when one is at hand; the URL either way.
            let opened = std::process::Command::new("xdg-open")
                .arg(&app.url)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            writeln!(out, "{}{}", app.url, if opened { "" } else { " (no browser found; open it yourself)" })?;
            Ok(())
        }
        Verb::AppsTransfer { username, app } => {
            let app = client(context)?.transfer(&app_name(context, app)?, &username).await?;
            writeln!(out, "Transferred {} to {}", app.name, app.owner)?;
            Ok(())
        }
        Verb::Perms { app, json: flag } => {
            let users = client(context)?.perms(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &users);
            }
            for user in users {
                writeln!(out, "{user}")?;
            }
            Ok(())
        }
        Verb::PermsAdd { username, app } => {
            let app = app_name(context, app)?;
            client(context)?.add_perm(&app, &username).await?;
            writeln!(out, "{username} can now deploy and manage {app}")?;
            Ok(())
        }
        Verb::PermsRemove { username, app } => {
            let app = app_name(context, app)?;
            client(context)?.remove_perm(&app, &username).await?;
            writeln!(out, "{username} no longer collaborates on {app}")?;
            Ok(())
        }
        Verb::Domains { app, json: flag } => {
            let domains = client(context)?.domains(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &domains);
            }
            let rows = domains.iter().map(|d| vec![d.domain.clone(), ago(&d.created_at)]).collect();
            table(out, context.colour, &["DOMAIN", "ADDED"], rows)
        }
        Verb::DomainsAdd { domain, app } => {
            let app = app_name(context, app)?;
            client(context)?.add_domain(&app, &domain).await?;
            writeln!(out, "Routing {domain} to {app}; point its DNS at the router")?;
            Ok(())
        }
        Verb::DomainsRemove { domain, app } => {
            let app = app_name(context, app)?;
            client(context)?.remove_domain(&app, &domain).await?;
            writeln!(out, "No longer routing {domain} to {app}")?;
            Ok(())
        }
        Verb::Events { lines, scope, json: flag } => {
            let events = client(context)?.events(app_or_platform(context, scope)?.as_ref(), lines).await?;
            if flag.json {
                return json(out, &events);
            }
            let rows = events
                .iter()
                .map(|e| {
                    let app = e.app.as_ref().map_or_else(|| "-".to_owned(), ToString::to_string);
                    vec![ago(&e.created_at), app, e.message.clone()]
                })
                .collect();
            table(out, context.colour, &["WHEN", "APP", "WHAT"], rows)
        }
        Verb::Drains { scope, json: flag } => {
            let drains = client(context)?.drains(app_or_platform(context, scope)?.as_ref()).await?;
            if flag.json {
                return json(out, &drains);
            }
            let rows = drains
                .iter()
                .map(|d| {
                    let number =
                        |pick: fn(&DrainStatus) -> u64| d.status.as_ref().map_or("-".into(), |s| pick(s).to_string());
                    let counts = [number(|s| s.delivered), number(|s| s.dropped), number(|s| s.queued)];
                    [vec![d.id.to_string(), d.url.clone()], counts.to_vec(), vec![drain_state(d)]].concat()
                })
                .collect();
            table(out, context.colour, &["ID", "URL", "DELIVERED", "DROPPED", "QUEUED", "STATE"], rows)
        }
        Verb::DrainsAdd { url, scope } => {
            let scope = app_or_platform(context, scope)?;
            let drain = client(context)?.add_drain(scope.as_ref(), &url).await?;
            match scope {
                Some(app) => writeln!(out, "Draining {app}'s logs to {url} (drain {})", drain.id)?,
                None => writeln!(out, "Draining every app's logs to {url} (drain {})", drain.id)?,
            }
            Ok(())
        }
        Verb::DrainsRemove { drain, scope } => {
            let scope = app_or_platform(context, scope)?;
            let client = client(context)?;
            let drains = client.drains(scope.as_ref()).await?;
            let found = drains
                .iter()
                .find(|d| d.url == drain || d.url == skiff_api::drain::masked_url(&drain) || d.id.to_string() == drain)
                .ok_or_else(|| anyhow!("no drain {drain} here; see `skiff drains`"))?;
            client.remove_drain(scope.as_ref(), found.id).await?;
            writeln!(out, "Removed drain {} ({})", found.id, found.url)?;
            Ok(())
        }
        Verb::MaintenanceStatus { app, json: flag } => {
            let app = client(context)?.app(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &skiff_api::Maintenance { enabled: app.maintenance });
            }
            writeln!(out, "{}", if app.maintenance { "on" } else { "off" })?;
            Ok(())
        }
        Verb::MaintenanceOn { app } => {
            let app = client(context)?.maintenance(&app_name(context, app)?, true).await?;
            writeln!(out, "Maintenance mode is on for {}: requests get a 503 page", app.name)?;
            Ok(())
        }
        Verb::MaintenanceOff { app } => {
            let app = client(context)?.maintenance(&app_name(context, app)?, false).await?;
            writeln!(out, "Maintenance mode is off for {}", app.name)?;
            Ok(())
        }
        Verb::Certs { app, json: flag } => {
            let certs = client(context)?.certs(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &certs);
            }
            let rows = certs
                .iter()
                .map(|c| vec![c.name.clone(), c.names.join(", "), c.domains.join(", "), ago(&c.expires_at)])
                .collect();
            table(out, context.colour, &["NAME", "COVERS", "SERVED FOR", "EXPIRES"], rows)
        }
        Verb::CertsAdd { name, certificate, key, app } => {
            let app = app_name(context, app)?;
            let read = |path: &PathBuf| {
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
            };
            let create = CertificateCreate { name, certificate_chain: read(&certificate)?, private_key: read(&key)? };
            let cert = client(context)?.add_cert(&app, &create).await?;
            let covers = cert.names.join(", ");
            writeln!(out, "Added certificate {} to {app}: covers {covers}, expires {}", cert.name, cert.expires_at)?;
            writeln!(out, "Serve it with `skiff certs:attach {} DOMAIN`", cert.name)?;
            Ok(())
        }
        Verb::CertsAttach { name, domain, app } => {
            let app = app_name(context, app)?;
            client(context)?.attach_cert(&app, &name, &domain).await?;
            writeln!(out, "Serving certificate {name} for https://{domain}")?;
            Ok(())
        }
        Verb::CertsDetach { name, domain, app } => {
            let app = app_name(context, app)?;
            client(context)?.detach_cert(&app, &name, &domain).await?;
            writeln!(out, "No longer serving certificate {name} for {domain}")?;
            Ok(())
        }
        Verb::CertsRemove { name, app } => {
            let app = app_name(context, app)?;
            client(context)?.remove_cert(&app, &name).await?;
            writeln!(out, "Removed certificate {name} from {app}")?;
            Ok(())
        }
        Verb::Access { app, json: flag } => {
            let policy = client(context)?.access(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &policy);
            }
            report_access(out, &policy)
        }
        Verb::AccessAllow { addresses, app } => {
            change_access(context, app, out, |policy| policy.allow.extend(addresses)).await
        }
        Verb::AccessDeny { addresses, app } => {
            change_access(context, app, out, |policy| policy.deny.extend(addresses)).await
        }
        Verb::AccessRemove { addresses, app } => {
            change_access(context, app, out, |policy| {
                policy.allow.retain(|a| !addresses.contains(a));
                policy.deny.retain(|a| !addresses.contains(a));
            })
            .await
        }
        Verb::AccessMaxBody { size, app } => {
            change_access(context, app, out, |policy| policy.max_body_bytes = size.0).await
        }
        Verb::Tls { app, json: flag } => {
            let tls = client(context)?.tls(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &tls);
            }
            report_tls(out, &tls)
        }
        Verb::TlsEnable { hsts, app } => {
            let tls = TlsSettings { force_https: true, hsts_max_age: hsts };
            let tls = client(context)?.set_tls(&app_name(context, app)?, &tls).await?;
            report_tls(out, &tls)
        }
        Verb::TlsDisable { app } => {
            let tls = client(context)?.set_tls(&app_name(context, app)?, &TlsSettings::default()).await?;
            report_tls(out, &tls)
        }
        Verb::Completions { shell } => {
            let mut command = <Cli as clap::CommandFactory>::command();
            clap_complete::generate(shell, &mut command, "skiff", out);
            Ok(())
        }
        Verb::Limits { app, json: flag } => {
            let limits = client(context)?.limits(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &limits);
            }
            let rows = limits
                .iter()
                .map(|(process, l)| {
                    let memory = l.memory_mb.map_or_else(|| "-".into(), |mb| format!("{mb}m"));
                    let cpu = l.cpu.map_or_else(|| "-".into(), |cpu| cpu.to_string());
                    vec![process.to_string(), memory, cpu]
                })
                .collect();
            table(out, context.colour, &["TYPE", "MEMORY", "CPU"], rows)
        }
        Verb::LimitsSet { process, limits, app } => {
            let app = app_name(context, app)?;
            let mut parsed = skiff_api::Limits::default();
            for limit in limits {
                match limit {
                    Limit::MemoryMb(mb) => parsed.memory_mb = Some(mb),
                    Limit::Cpu(cores) => parsed.cpu = Some(cores),
                }
            }
            let change = [(process.clone(), Some(parsed))].into();
            client(context)?.change_limits(&app, &change).await?;
            writeln!(out, "Limits of {process} set; replacing its containers")?;
            Ok(())
        }
        Verb::LimitsUnset { process, app } => {
            let app = app_name(context, app)?;
            client(context)?.change_limits(&app, &[(process.clone(), None)].into()).await?;
            writeln!(out, "Limits of {process} removed; replacing its containers")?;
            Ok(())
        }
        Verb::Healthchecks { app, json: flag } => {
            let checks = client(context)?.healthchecks(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &checks);
            }
            let rows = checks
                .iter()
                .map(|(process, c)| {
                    let timeout = c.timeout_secs.map_or_else(|| "-".into(), |t| format!("{t}s"));
                    vec![process.to_string(), text_of(&c.kind), c.path.clone().unwrap_or_else(|| "-".into()), timeout]
                })
                .collect();
            table(out, context.colour, &["TYPE", "CHECK", "PATH", "TIMEOUT"], rows)
        }
        Verb::HealthchecksSet { process, http, tcp, none, timeout, app } => {
            let app = app_name(context, app)?;
            let kind = match (&http, tcp, none) {
                (Some(_), _, _) => skiff_api::CheckKind::Http,
                (None, true, _) => skiff_api::CheckKind::Tcp,
                (None, false, true) => skiff_api::CheckKind::None,
                (None, false, false) => bail!("say how to check: --http PATH, --tcp or --none"),
            };
            let check = skiff_api::Healthcheck { kind, path: http, timeout_secs: timeout };
            client(context)?.change_healthchecks(&app, &[(process.clone(), Some(check))].into()).await?;
            writeln!(out, "Health check of {process} set; replacing its containers")?;
            Ok(())
        }
        Verb::HealthchecksUnset { process, app } => {
            let app = app_name(context, app)?;
            client(context)?.change_healthchecks(&app, &[(process.clone(), None)].into()).await?;
            writeln!(out, "Health check of {process} back to the default; replacing its containers")?;
            Ok(())
        }
        Verb::RegistryGc { dry_run, grace, json: flag } => {
            let report = client(context)?.collect_garbage(dry_run, grace).await?;
            if flag.json {
                return json(out, &report);
            }
            let deleted = report["deleted"].as_array().map_or(0, Vec::len);
            let bytes = report["bytes"].as_u64().unwrap_or(0);
            let verb = if dry_run { "Would delete" } else { "Deleted" };
            writeln!(out, "{verb} {deleted} blobs ({} KiB)", bytes.div_ceil(1024))?;
            Ok(())
        }
        Verb::Config { app, json: flag } => {
            let config = client(context)?.config(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &config);
            }
            let width = config.keys().map(String::len).max().unwrap_or(0);
            for (key, value) in &config {
                writeln!(out, "{key:<width$}  {value}")?;
            }
            Ok(())
        }
        Verb::ConfigPull { file, overwrite, app } => {
            let app = app_name(context, app)?;
            let path = context.cwd.join(&file);
            if path.exists() && !overwrite {
                bail!("{} exists; pass --overwrite to replace it", file.display());
            }
            let config = client(context)?.config(&app).await?;
            std::fs::write(&path, dotenv::render(&config))
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(out, "Wrote {} keys of {app} to {}", config.len(), file.display())?;
            Ok(())
        }
        Verb::ConfigPush { file, app } => {
            let app = app_name(context, app)?;
            let path = context.cwd.join(&file);
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let pairs = dotenv::parse(&text)?;
            if pairs.is_empty() {
                bail!("{} sets nothing", file.display());
            }
            let change = pairs.into_iter().map(|(k, v)| (k, Some(v))).collect();
            let changed = client(context)?.change_config(&app, &change).await?;
            report_config(out, &app, changed.release.map(|r| r.version))
        }
        Verb::ConfigGet { key, app } => {
            let config = client(context)?.config(&app_name(context, app)?).await?;
            let value = config.get(&key).ok_or_else(|| anyhow!("{key} is not set; see `skiff config`"))?;
            writeln!(out, "{value}")?;
            Ok(())
        }
        Verb::ConfigSet { pairs, app, wait } => {
            let app = app_name(context, app)?;
            let change = pairs.into_iter().map(|(key, value)| (key, Some(value))).collect();
            let changed = client(context)?.change_config(&app, &change).await?;
            let version = changed.release.map(|r| r.version);
            report_config(out, &app, version)?;
            follow_rollout(context, &app, version.filter(|_| wait.wait), err).await
        }
        Verb::ConfigUnset { keys, app, wait } => {
            let app = app_name(context, app)?;
            let change = keys.into_iter().map(|k| (k, None)).collect();
            let changed = client(context)?.change_config(&app, &change).await?;
            let version = changed.release.map(|r| r.version);
            report_config(out, &app, version)?;
            follow_rollout(context, &app, version.filter(|_| wait.wait), err).await
        }
        Verb::Ps { app, json: flag } => {
            let processes = client(context)?.ps(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &processes);
            }
            let rows = processes
                .iter()
                .map(|p| {
                    let state = match &p.crash {
                        Some(crash) => format!(
                            "crashed: {} ({} in a row; next start {})",
                            crash.reason,
                            crash.in_a_row,
                            ago(&crash.restart_at)
                        ),
                        None => p.state.clone(),
                    };
                    vec![
                        p.process.clone(),
                        p.id.clone(),
                        format!("v{}", p.release),
                        state,
                        p.started_at.as_deref().map_or_else(|| "-".into(), ago),
                    ]
                })
                .collect();
            table(out, context.colour, &["TYPE", "ID", "RELEASE", "STATE", "STARTED"], rows)
        }
        Verb::PsScale { pairs, app, wait } => {
            let app = app_name(context, app)?;
            let scale: std::collections::BTreeMap<ProcessType, u32> = pairs.into_iter().collect();
            let formation = client(context)?.scale(&app, &scale).await?;
            let summary: Vec<String> = formation.iter().map(|f| format!("{}={}", f.process, f.quantity)).collect();
            writeln!(out, "Scaled {app} to {}", summary.join(" "))?;
            if wait {
                wait_for_scale(context, &app, &scale, err).await?;
            }
            Ok(())
        }
        Verb::PsRestart { target, app } => {
            let app = app_name(context, app)?;
            let client = client(context)?;
            let containers = client.ps(&app).await?;
            let (restart, what) = match target {
                None => (skiff_api::Restart { process: None, container: None }, "all processes".to_owned()),
                Some(id) if id.len() >= 4 && containers.iter().any(|p| p.id.starts_with(&id)) => {
                    (skiff_api::Restart { process: None, container: Some(id.clone()) }, format!("container {id}"))
                }
                Some(process) => {
                    let process: ProcessType = process.parse().map_err(|_| {
                        anyhow!("`{process}` is neither a process type nor a container of {app}; see `skiff ps`")
                    })?;
                    let what = format!("{process} processes");
                    (skiff_api::Restart { process: Some(process), container: None }, what)
                }
            };
            client.restart(&app, &restart).await?;
            writeln!(out, "Restarting {what} of {app}")?;
            Ok(())
        }
        Verb::ReleasesInfo { version, app, json: flag } => {
            let app = app_name(context, app)?;
            let release = client(context)?.release_of(&app, version).await?;
            if flag.json {
                return json(out, &release);
            }
            let build = release.build.map_or_else(|| "-".into(), |b| b.to_string());
            let config: Vec<&str> = release.config.keys().map(String::as_str).collect();
            let processes: Vec<&str> = release.procfile.keys().map(|p| p.as_str()).collect();
            for (key, value) in [
                ("version", format!("v{}", release.version)),
                ("by", release.created_by.to_string()),
                ("created", ago(&release.created_at)),
                ("summary", release.summary.clone()),
                ("state", text_of(&release.state)),
                ("failure", release.failure.clone().unwrap_or_else(|| "-".into())),
                ("build", build),
                ("image", release.image.clone()),
                ("git", release.git_sha.clone().unwrap_or_else(|| "-".into())),
                ("types", processes.join(", ")),
                ("config", config.join(", ")),
            ] {
                writeln!(out, "{key:>8}: {value}")?;
            }
            Ok(())
        }
        Verb::ReleasesRollback { version, app, wait } => {
            let app = app_name(context, app)?;
            let release = client(context)?.rollback(&app, &skiff_api::Rollback { version }).await?;
            writeln!(out, "Rolled back {app}: {} (v{})", release.summary, release.version)?;
            follow_rollout(context, &app, Some(release.version).filter(|_| wait.wait), err).await
        }
        Verb::Builds { app, json: flag } => {
            let builds = client(context)?.builds(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &builds);
            }
            let rows = builds
                .iter()
                .map(|b| {
                    let what = b.git_sha.as_deref().map_or("-", |s| s.get(..7).unwrap_or(s));
                    vec![
                        b.id.to_string(),
                        text_of(&b.kind),
                        text_of(&b.status),
                        what.to_owned(),
                        format!("{:.1}s", b.duration_ms as f64 / 1000.0),
                        ago(&b.created_at),
                        b.created_by.to_string(),
                    ]
                })
                .collect();
            table(out, context.colour, &["ID", "KIND", "STATUS", "GIT", "TOOK", "CREATED", "BY"], rows)
        }
        Verb::BuildsInfo { id, app, json: flag } => {
            let build = client(context)?.build(&app_name(context, app)?, id).await?;
            if flag.json {
                return json(out, &build);
            }
            for (key, value) in [
                ("id", build.id.to_string()),
                ("kind", text_of(&build.kind)),
                ("status", text_of(&build.status)),
                ("git", build.git_sha.clone().unwrap_or_else(|| "-".into())),
                ("image", build.image.clone().unwrap_or_else(|| "-".into())),
                ("took", format!("{:.1}s", build.duration_ms as f64 / 1000.0)),
                ("by", build.created_by.to_string()),
                ("created", ago(&build.created_at)),
            ] {
                writeln!(out, "{key:>8}: {value}")?;
            }
            writeln!(out, "\n{}", build.log.unwrap_or_default().trim_end())?;
            Ok(())
        }
        Verb::Deploy { image, app, wait } => {
            let app = app_name(context, app)?;
            let recorded = client(context)?.deploy_image(&app, &image).await?;
            match &recorded.release {
                Some(release) => writeln!(out, "Deployed {image} to {app} as v{}", release.version)?,
                None => writeln!(out, "Recorded build {} of {app}", recorded.build.id)?,
            }
            follow_rollout(context, &app, recorded.release.map(|r| r.version).filter(|_| wait.wait), err).await
        }
        Verb::Releases { app, num, json: flag } => {
            let releases = client(context)?.releases(&app_name(context, app)?, Some(num)).await?;
            if flag.json {
                return json(out, &releases);
            }
            // Listed newest first: the first deployed one serves.
            let current = releases.iter().find(|r| r.state == skiff_api::ReleaseState::Deployed).map(|r| r.version);
            let rows = releases
                .iter()
                .map(|r| {
                    let summary = match &r.failure {
                        Some(failure) => format!("{} (failed: {failure})", r.summary),
                        None => r.summary.clone(),
                    };
                    let state = if Some(r.version) == current { "current".to_owned() } else { text_of(&r.state) };
                    vec![format!("v{}", r.version), state, ago(&r.created_at), r.created_by.to_string(), summary]
                })
                .collect();
            table(out, context.colour, &["VERSION", "STATE", "CREATED", "BY", "SUMMARY"], rows)
        }
        Verb::Logs { app, num, follow, process, source, json: flag } => {
            let app = app_name(context, app)?;
            let source = source.map(|s| serde_json::from_value(serde_json::Value::String(s))).transpose()?;
            let query = LogQuery { lines: num, process, source };
            let print = |out: &mut dyn Write, line: &LogLine| -> anyhow::Result<()> {
                if flag.json {
                    writeln!(out, "{}", serde_json::to_string(line)?)?;
                } else {
                    writeln!(out, "{} {}[{}]: {}", line.time, line.app, line.process, line.message)?;
                }
                Ok(())
            };
            if follow {
                let mut lines = std::pin::pin!(client(context)?.follow_logs(&app, &query).await?);
                while let Some(line) = futures_util::StreamExt::next(&mut lines).await {
                    print(out, &line?)?;
                    out.flush()?;
                }
                return Ok(());
            }
            let lines = client(context)?.logs(&app, &query).await?;
            if flag.json {
                return json(out, &lines);
            }
            for line in &lines {
                print(out, line)?;
            }
            Ok(())
        }
        Verb::GitRemote { app } => {
            let app = client(context)?.app(&app_name(context, app)?).await?;
            if !git::in_repository(&context.cwd) {
                bail!("{} is not inside a git repository; run `git init` first", context.cwd.display());
            }
            git::set_remote(&context.cwd, &app.git_url)?;
            writeln!(out, "Git remote `skiff` now points at {}", app.git_url)?;
            Ok(())
        }
        Verb::Stacks(flag) => {
            let stacks = client(context)?.stacks().await?;
            if flag.json {
                return json(out, &stacks);
            }
            let rows = stacks.iter().map(|s| vec![s.name.to_string(), s.image.clone()]).collect();
            table(out, context.colour, &["NAME", "IMAGE"], rows)
        }
        Verb::StacksImport { name, source } => {
            let client = client(context)?;
            // Refused before anything is packed or uploaded.
            if !client.whoami().await?.admin {
                bail!("only admins import stacks; ask an admin of this platform");
            }
            let archive = read_rootfs(&source)?;
            let what = format!("Uploading {} ({} KiB)", source.display(), archive.len().div_ceil(1024));
            let mut progress = output::Progress::start(err, context.live_progress, what);
            let upload = client.import_stack(&name, archive);
            tokio::pin!(upload);
            let stack = loop {
                tokio::select! {
                    stack = &mut upload => break stack,
                    () = tokio::time::sleep(PROGRESS_TICK) => progress.tick(),
                }
            };
            let seconds = progress.elapsed().as_secs_f64();
            progress.finish(if stack.is_ok() { "done" } else { "failed" });
            let stack = stack?;
            writeln!(out, "Imported stack {} as {} in {seconds:.1}s", stack.name, stack.image)?;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn several_run_arguments_reach_the_command_as_they_were_typed() {
        let typed = ["printf", "%s|", "echo first; echo second", "it's", "$HOME", "", "a\\b", "*"];
        let args: Vec<String> = typed.iter().map(|a| (*a).to_owned()).collect();
        let output = std::process::Command::new("sh").arg("-c").arg(shell_line(&args)).output().unwrap();
        assert_eq!(String::from_utf8_lossy(&output.stdout), "echo first; echo second|it's|$HOME||a\\b|*|");
        let line = vec!["echo first; echo second".to_owned()];
        assert_eq!(shell_line(&line), "echo first; echo second", "one argument is a command line");
    }

    #[test]
    fn sizes_read_in_bytes_and_mebibytes() {
        assert_eq!(parse_bytes("512k").unwrap(), 512 << 10);
        assert_eq!(parse_bytes("10M").unwrap(), 10 << 20);
        assert_eq!(parse_bytes("1g").unwrap(), 1 << 30);
        assert_eq!(parse_bytes("100").unwrap(), 100);
        assert!(parse_bytes("ten").is_err() && parse_bytes("99999999999999g").is_err() && parse_bytes("").is_err());
        assert_eq!(parse_memory("1g").unwrap(), 1024);
        assert_eq!(parse_memory("256m").unwrap(), 256);
    }
}
