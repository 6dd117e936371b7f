//! A platform per test: temporary data directory, ports chosen by the kernel, its own
//! platform id (so its containers are its own), an admin logged in through the CLI.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, Once};
use std::time::{Duration, Instant};

use tempfile::TempDir;

/// How much of what this process's platforms log is kept: the latest half at least.
const LOG_KEPT: usize = 8 << 20;

/// What the platforms of this test process log, at `info` and above (each platform runs in
/// this process, so they log into one subscriber; a line names its app, not its platform).
static PLATFORM_LOG: Mutex<Vec<u8>> = Mutex::new(Vec::new());

/// Sends this process's `tracing` lines to [`PLATFORM_LOG`], once.
fn capture_platform_log() {
    static CAPTURING: Once = Once::new();
    CAPTURING.call_once(|| {
        let subscriber = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_env_filter(tracing_subscriber::EnvFilter::new("info,russh=warn"))
            .with_writer(|| LogWriter)
            .finish();
        // Another subscriber set first (none is) would leave the log empty.
        let _ = tracing::subscriber::set_global_default(subscriber);
    });
}

/// Appends to [`PLATFORM_LOG`], dropping its older half when it grows past [`LOG_KEPT`].
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        let mut log = PLATFORM_LOG.lock().expect("log");
        if log.len() + bytes.len() > LOG_KEPT {
            log.drain(..LOG_KEPT / 2);
        }
        log.extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The lines logged by this process's platforms so far that contain one of `words`: for a
/// failing test's message.
pub fn logged(words: &[&str]) -> String {
    let log = PLATFORM_LOG.lock().expect("log");
    String::from_utf8_lossy(&log)
        .lines()
        .filter(|line| words.iter().any(|w| line.contains(w)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Fails the test with a clear message unless the real tools it needs are present.
pub fn require_tools() {
    capture_platform_log();
    let docker = Command::new("docker").arg("info").output();
    assert!(
        docker.is_ok_and(|o| o.status.success()),
        "these tests need a running Docker engine (`docker info` failed); deploy/test.sh installs and starts one"
    );
    for (tool, package) in [("git", "git"), ("ssh", "openssh-client"), ("ssh-keygen", "openssh-client")] {
        let found = Command::new(tool).arg("-V").output().or_else(|_| Command::new(tool).arg("--version").output());
        assert!(found.is_ok(), "these tests need `{tool}`; install it with `apt-get install {package}`");
    }
    assert!(
        Path::new("/bin/busybox").exists(),
        "these tests need /bin/busybox; install it with `apt-get install busybox-static`"
    );
}

const EVERY_COMPONENT: &[skiffd::Component] = &[
    skiffd::Component::Registry,
    skiffd::Component::Logger,
    skiffd::Component::Controller,
    skiffd::Component::Router,
    skiffd::Component::Builder,
];

/// A running platform and a logged-in admin.
pub struct Platform {
    pub dir: TempDir,
    pub platform: Option<skiffd::Platform>,
    pub addresses: skiffd::Addresses,
    pub platform_id: String,
    pub settings: skiffd::Settings,
}

impl Platform {
    pub async fn start() -> Self {
        Self::start_with(None, None).await
    }

    /// A platform with an admin logged in, the busybox stack, an SSH key and the example
    /// app created as `app` (not pushed yet); returns it with the repository and the key.
    pub async fn with_example(app: &str) -> (Self, PathBuf, PathBuf) {
        Self::start().await.with_app(app).await
    }

    /// This platform with an admin logged in, the busybox stack, an SSH key and the example
    /// app created as `app` (not pushed yet); returns it with the repository and the key.
    pub async fn with_app(self, app: &str) -> (Self, PathBuf, PathBuf) {
        let (platform, repo, key) = self.with_example_repo().await;
        platform.cli_ok(&repo, &["apps:create", app]).await;
        (platform, repo, key)
    }

    /// This platform with an admin logged in, the busybox stack, an SSH key and the example
    /// app's repository (no app made yet); returns it with the repository and the key.
    pub async fn with_example_repo(self) -> (Self, PathBuf, PathBuf) {
        let platform = self;
        let home = platform.dir.path().to_owned();
        platform.cli_ok(&home, &["auth:register", "-u", "admin", "-p", "correct-horse"]).await;
        platform.import_busybox_stack().await;
        let key = platform.add_ssh_key().await;
        let repo = example_repo(&platform, &key);
        (platform, repo, key)
    }

    /// A platform whose controller keeps its data in a fresh database of the Postgres
    /// server deploy/test.sh starts.
    pub async fn start_on_postgres() -> Self {
        let url = std::env::var("SKIFF_TEST_POSTGRES_URL")
            .expect("this test needs Postgres: run deploy/test.sh, which installs and starts one");
        let name = format!("skiff_platform_{:08x}", rand_u32());
        let admin = skiff_controller::db::Db::open(&url).await.expect("Postgres answers");
        admin.execute_admin(&format!("CREATE DATABASE {name}")).await.expect("a test database");
        let (base, _) = url.rsplit_once('/').expect("the URL names a database");
        Self::start_with(Some(format!("{base}/{name}")), None).await
    }

    /// A platform whose controller coordinates with others through the Redis server
    /// deploy/test.sh starts (see [`Platform::controller_replica`]).
    pub async fn start_on_redis() -> Self {
        let url = std::env::var("SKIFF_TEST_REDIS_URL")
            .expect("this test needs Redis: run deploy/test.sh, which installs and starts one");
        Self::start_with(None, Some(url)).await
    }

    async fn start_with(database_url: Option<String>, redis_url: Option<String>) -> Self {
        Self::start_changed(database_url, redis_url, |_| {}).await
    }

    /// A platform on embedded defaults with some settings changed.
    pub async fn start_with_settings(change: impl FnOnce(&mut skiffd::Settings)) -> Self {
        Self::start_changed(None, None, change).await
    }

    async fn start_changed(
        database_url: Option<String>,
        redis_url: Option<String>,
        change: impl FnOnce(&mut skiffd::Settings),
    ) -> Self {
        require_tools();
        let dir = tempfile::tempdir().expect("temp dir");
        let platform_id = format!("test{:08x}", rand_u32());
        let mut settings = settings_in(dir.path(), &platform_id, database_url, redis_url);
        change(&mut settings);
        let platform = skiffd::start(&settings, EVERY_COMPONENT).await.expect("platform starts");
        let addresses = platform.addresses.clone();
        Self { dir, platform: Some(platform), addresses, platform_id, settings }
    }

    /// A platform's data directory and settings, not started, every listener on a port of
    /// its own picked now: another `skiffd` may run it first, and [`Platform::restart`]
    /// then starts this one on the same ports.
    pub fn unstarted() -> Self {
        require_tools();
        let dir = tempfile::tempdir().expect("temp dir");
        let platform_id = format!("test{:08x}", rand_u32());
        let mut settings = settings_in(dir.path(), &platform_id, None, None);
        let port = || -> SocketAddr { std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap() };
        let addresses = skiffd::Addresses {
            controller: Some(port()),
            registry: Some(port()),
            logger: Some(port()),
            syslog: Some(port()),
            syslog_tls: Some(port()),
            builder: Some(port()),
            builder_http: Some(port()),
            router: Some(port()),
            router_tls: Some(port()),
            registry_tls: None,
        };
        let a = &addresses;
        settings.controller_listen = a.controller.unwrap();
        settings.registry_listen = a.registry.unwrap();
        settings.logger_listen = a.logger.unwrap();
        settings.syslog_listen = a.syslog.unwrap();
        settings.syslog_tls_listen = a.syslog_tls.unwrap();
        settings.builder_listen = a.builder.unwrap();
        settings.builder_http_listen = a.builder_http.unwrap();
        settings.router_listen = a.router.unwrap();
        settings.router_tls_listen = a.router_tls.unwrap();
        Self { dir, platform: None, addresses, platform_id, settings }
    }

    /// A second controller on the same database, engine and Redis, reaching this
    /// platform's registry, logger and router: a replica.
    pub async fn controller_replica(&self) -> skiffd::Platform {
        let a = &self.addresses;
        let settings = skiffd::Settings {
            registry_url: Some(format!("http://{}", a.registry.unwrap())),
            logger_url: Some(format!("http://{}", a.logger.unwrap())),
            syslog_listen: a.syslog.unwrap(),
            router_listen: a.router.unwrap(),
            builder_listen: a.builder.unwrap(),
            ..self.settings.clone()
        };
        skiffd::start(&settings, &[skiffd::Component::Controller]).await.expect("the replica starts")
    }

    /// Stops this platform and starts every component but the controller again, on the
    /// addresses they had, following a controller that the caller runs at `controller`
    /// (with [`Platform::controller_env`]).
    pub async fn restart_without_controller(&mut self, controller: SocketAddr) {
        self.stop().await;
        let a = &self.addresses;
        let settings = skiffd::Settings {
            controller_url: Some(format!("http://{controller}")),
            registry_listen: a.registry.unwrap(),
            logger_listen: a.logger.unwrap(),
            syslog_listen: a.syslog.unwrap(),
            syslog_tls_listen: a.syslog_tls.unwrap(),
            router_listen: a.router.unwrap(),
            router_tls_listen: a.router_tls.unwrap(),
            builder_listen: a.builder.unwrap(),
            ..self.settings.clone()
        };
        let components = [
            skiffd::Component::Registry,
            skiffd::Component::Logger,
            skiffd::Component::Router,
            skiffd::Component::Builder,
        ];
        // Another socket of the machine may hold one of the ports for a moment (as the
        // source port of a connection of its own): a few more tries.
        let mut tries = 10;
        let platform = loop {
            match skiffd::start(&settings, &components).await {
                Ok(platform) => break platform,
                Err(error) if tries > 1 && format!("{error:#}").contains("Address already in use") => {
                    tries -= 1;
                    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                }
                Err(error) => panic!("the platform starts again: {error:?}"),
            }
        };
        self.addresses = skiffd::Addresses { controller: Some(controller), ..platform.addresses.clone() };
        self.platform = Some(platform);
    }

    /// The environment of a `skiffd controller` process that takes this platform's
    /// controller's place (after [`Platform::restart_without_controller`]).
    pub fn controller_env(&self) -> Vec<(&'static str, String)> {
        let a = &self.addresses;
        let s = &self.settings;
        let mut env = vec![
            ("SKIFF_DATA_DIR", s.data_dir.as_ref().unwrap().display().to_string()),
            ("SKIFF_PLATFORM_ID", self.platform_id.clone()),
            ("SKIFF_CONTROLLER_LISTEN", a.controller.unwrap().to_string()),
            ("SKIFF_REGISTRY_URL", format!("http://{}", a.registry.unwrap())),
            ("SKIFF_LOGGER_URL", format!("http://{}", a.logger.unwrap())),
            ("SKIFF_LOGGER_SYSLOG_LISTEN", a.syslog.unwrap().to_string()),
            ("SKIFF_ROUTER_LISTEN", a.router.unwrap().to_string()),
            ("SKIFF_BUILDER_LISTEN", a.builder.unwrap().to_string()),
            ("SKIFF_RECONCILE_INTERVAL", s.reconcile_interval.to_string()),
            ("SKIFF_BOOT_TIMEOUT", s.boot_timeout.to_string()),
            ("SKIFF_RELEASE_TIMEOUT", s.release_timeout.to_string()),
            ("SKIFF_RELEASE_RETENTION", s.release_retention.to_string()),
        ];
        let shared = [
            ("SKIFF_DATABASE_URL", s.database_url.clone()),
            ("SKIFF_REDIS_URL", s.redis_url.clone()),
            ("SKIFF_REGISTRY_ADDRESS", s.registry_address.clone()),
            ("SKIFF_RUNTIME", (s.runtime == skiffd::Runtime::Swarm).then(|| "swarm".to_owned())),
        ];
        env.extend(shared.into_iter().filter_map(|(name, value)| Some((name, value?))));
        env
    }

    pub fn controller_url(&self) -> String {
        format!("http://{}", self.addresses.controller.unwrap())
    }

    pub fn router(&self) -> SocketAddr {
        self.addresses.router.unwrap()
    }

    /// The CLI's context for running in `cwd`.
    pub fn cli_context(&self, cwd: &Path) -> skiff_cli::Context {
        self.cli_context_of("config", cwd)
    }

    /// The CLI's context with its own stored login (`profile`), as a second user has.
    pub fn cli_context_of(&self, profile: &str, cwd: &Path) -> skiff_cli::Context {
        skiff_cli::Context {
            config_dir: self.dir.path().join(profile),
            cwd: cwd.to_owned(),
            home: self.dir.path().join("home"),
            url: Some(self.controller_url()),
            token: None,
            colour: false,
            live_progress: false,
            server_version: Default::default(),
        }
    }

    /// Runs the `skiff` CLI in `cwd`; returns (status, stdout, stderr).
    pub async fn cli(&self, cwd: &Path, args: &[&str]) -> (u8, String, String) {
        self.cli_as("config", cwd, args).await
    }

    /// Runs the `skiff` CLI with the stored login of `profile`.
    pub async fn cli_as(&self, profile: &str, cwd: &Path, args: &[&str]) -> (u8, String, String) {
        let context = self.cli_context_of(profile, cwd);
        let mut out = Vec::new();
        let mut err = Vec::new();
        let argv = std::iter::once("skiff").chain(args.iter().copied());
        let status = skiff_cli::run(argv, &context, &mut out, &mut err).await;
        (status, String::from_utf8_lossy(&out).into_owned(), String::from_utf8_lossy(&err).into_owned())
    }

    /// Runs the CLI and requires success; returns stdout.
    pub async fn cli_ok(&self, cwd: &Path, args: &[&str]) -> String {
        let (status, out, err) = self.cli(cwd, args).await;
        assert_eq!(status, 0, "skiff {args:?} failed: {err}{out}");
        out
    }

    /// Builds a busybox root filesystem the way deploy/stacks/busybox.sh does and imports it.
    pub async fn import_busybox_stack(&self) {
        let rootfs = self.dir.path().join("rootfs");
        for sub in ["bin", "etc", "tmp", "app"] {
            std::fs::create_dir_all(rootfs.join(sub)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        let applets = Command::new("/bin/busybox").arg("--list").output().expect("busybox lists its applets");
        for applet in String::from_utf8_lossy(&applets.stdout).lines().filter(|a| *a != "busybox") {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        std::fs::write(rootfs.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").unwrap();
        let out = self.cli_ok(self.dir.path(), &["stacks:import", "busybox", rootfs.to_str().unwrap()]).await;
        assert!(out.contains("Imported stack busybox"), "{out}");
    }

    /// An SSH key pair registered for the admin; returns the private key path.
    pub async fn add_ssh_key(&self) -> PathBuf {
        let key = self.dir.path().join("id_ed25519");
        let status = Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "test@skiff", "-f"])
            .arg(&key)
            .status()
            .expect("ssh-keygen runs");
        assert!(status.success());
        let public = format!("{}.pub", key.display());
        self.cli_ok(self.dir.path(), &["keys:add", &public]).await;
        key
    }

    /// A `git` runner for `cwd` that can move to another thread.
    pub fn git_command(&self, cwd: &Path, key: &Path) -> impl Fn(&[&str]) -> (bool, String) + Send + 'static {
        let (cwd, key) = (cwd.to_owned(), key.to_owned());
        move |args| run_git(&cwd, &key, args)
    }

    /// `git` in `cwd`, with the OpenSSH client using `key`; returns (success, combined output).
    /// Commits everything in `repo` with `message` and pushes it to the `skiff` remote:
    /// (pushed, git's output).
    pub fn commit_and_push(&self, repo: &Path, key: &Path, message: &str) -> (bool, String) {
        for args in [&["add", "-A"][..], &["commit", "-qm", message]] {
            let (ok, out) = self.git(repo, key, args);
            assert!(ok, "{out}");
        }
        self.git(repo, key, &["push", "skiff", "main"])
    }

    pub fn git(&self, cwd: &Path, key: &Path, args: &[&str]) -> (bool, String) {
        run_git(cwd, key, args)
    }

    /// The name of `app`'s network.
    pub fn app_network(&self, app: &str) -> String {
        format!("skiff-apps-{}-{app}", self.platform_id)
    }

    /// This platform's app containers: (id, `skiff.release` label, running). Warm containers
    /// not yet adopted (`skiff-warm-…`, started ahead for a push) are not apps' yet, nor are
    /// pause containers (`skiff-pause-…`, network namespaces started ahead).
    pub fn containers(&self) -> Vec<(String, String, bool)> {
        self.listed()
            .into_iter()
            .filter(|(_, name, _, _)| !name.starts_with("skiff-warm-") && !name.starts_with("skiff-pause-"))
            .map(|(id, _, r, s)| (id, r, s))
            .collect()
    }

    /// The `skiff.app-id` labels of this platform's containers (warm ones too), each once.
    pub fn app_ids(&self) -> Vec<String> {
        let mut ids: Vec<String> =
            self.ps(&["{{.Label \"skiff.app-id\"}}"], Some("label=skiff.app-id")).into_iter().flatten().collect();
        ids.sort();
        ids.dedup();
        ids
    }

    /// This platform's pause containers (`skiff-pause-…`): (full id, name, running).
    pub fn pause_containers(&self) -> Vec<(String, String, bool)> {
        self.ps(&["{{.ID}}", "{{.Names}}", "{{.State}}"], Some("label=skiff.pause"))
            .into_iter()
            .filter_map(|fields| match &fields[..] {
                [id, name, state] => Some((id.clone(), name.clone(), state == "running")),
                _ => None,
            })
            .collect()
    }

    /// Every container with this platform's label (pause containers too, which have no
    /// release): (id, name, `skiff.release` label, running).
    fn listed(&self) -> Vec<(String, String, String, bool)> {
        self.ps(&["{{.ID}}", "{{.Names}}", "{{.Label \"skiff.release\"}}", "{{.State}}"], None)
            .into_iter()
            .filter_map(|fields| match &fields[..] {
                [id, name, release, state] => Some((id.clone(), name.clone(), release.clone(), state == "running")),
                _ => None,
            })
            .collect()
    }

    /// `docker ps -a` of this platform's containers (and `filter`'s, if given): each one's
    /// `fields` (Go templates), an empty one kept as empty.
    fn ps(&self, fields: &[&str], filter: Option<&str>) -> Vec<Vec<String>> {
        let mut ps = Command::new("docker");
        ps.args(["ps", "-a", "--no-trunc", "--format", &fields.join("\t")]);
        ps.args(["--filter", &format!("label=skiff.platform={}", self.platform_id)]);
        ps.args(filter.map(|filter| ["--filter", filter]).into_iter().flatten());
        let listed = ps.output().expect("docker ps");
        String::from_utf8_lossy(&listed.stdout)
            .lines()
            .map(|line| line.split('\t').map(str::to_owned).collect())
            .collect()
    }

    /// Removes this platform's containers (the platform itself leaves them running by
    /// design), then its apps' networks. The platform's background work may make one just
    /// after a look (a warm container for an app made at the test's end, a rollout step):
    /// the engine is looked at until it has shown none for half a second (three seconds at
    /// most).
    pub fn remove_containers(&self) {
        let (quiet_for, deadline) = (Duration::from_millis(500), Instant::now() + Duration::from_secs(3));
        let mut quiet_since = Instant::now();
        loop {
            let ids: Vec<String> = self.listed().into_iter().map(|(id, ..)| id).collect();
            if !ids.is_empty() {
                let _ = Command::new("docker").arg("rm").arg("-f").args(&ids).output();
                quiet_since = Instant::now();
            }
            if quiet_since.elapsed() >= quiet_for || Instant::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let label = format!("label=skiff.platform={}", self.platform_id);
        // On a swarm, its services, and their tasks before the networks they sit on.
        let services = Command::new("docker").args(["service", "ls", "-q", "--filter", &label]).output();
        let services = services.map(|out| String::from_utf8_lossy(&out.stdout).into_owned()).unwrap_or_default();
        if !services.trim().is_empty() {
            let _ = Command::new("docker").args(["service", "rm"]).args(services.split_whitespace()).output();
            for _ in 0..100 {
                let tasks = Command::new("docker").args(["ps", "-aq", "--filter", &label]).output();
                if tasks.is_ok_and(|out| out.stdout.is_empty()) {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
        }
        let _ = Command::new("docker").args(["network", "prune", "-f", "--filter", &label]).output();
    }

    /// Stops the platform and starts it again with its settings (as they are now), on new
    /// ports.
    pub async fn restart(&mut self) {
        self.stop().await;
        let platform = skiffd::start(&self.settings, EVERY_COMPONENT).await.expect("the platform starts again");
        self.addresses = platform.addresses.clone();
        self.platform = Some(platform);
    }

    /// Stops the platform; its containers keep running until the harness is dropped.
    pub async fn stop(&mut self) {
        if let Some(platform) = self.platform.take() {
            platform.stop().await;
        }
    }
}

impl Drop for Platform {
    fn drop(&mut self) {
        // Stopped first where the test's runtime can wait for it, so that its scheduler does
        // not start again what is removed.
        if let Some(platform) = self.platform.take()
            && let Ok(runtime) = tokio::runtime::Handle::try_current()
            && runtime.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread
        {
            tokio::task::block_in_place(|| runtime.block_on(platform.stop()));
        }
        // Leave no containers or networks behind, whether the test passed or not.
        self.remove_containers();
    }
}

/// The settings of a test platform in `dir`: every listener on a port the kernel picks.
fn settings_in(
    dir: &Path,
    platform_id: &str,
    database_url: Option<String>,
    redis_url: Option<String>,
) -> skiffd::Settings {
    let loopback: SocketAddr = "127.0.0.1:0".parse().unwrap();
    skiffd::Settings {
        data_dir: Some(dir.join("data")),
        service_token: None,
        domain: "localhost".into(),
        controller_listen: loopback,
        registry_listen: loopback,
        logger_listen: loopback,
        syslog_listen: loopback,
        syslog_tls_listen: loopback,
        logger_tls_cert: None,
        logger_tls_key: None,
        builder_listen: loopback,
        builder_http_listen: loopback,
        router_listen: loopback,
        router_tls_listen: loopback,
        router_tls_cert: None,
        router_tls_key: None,
        controller_url: None,
        registry_url: None,
        registry_peer_url: None,
        logger_url: None,
        default_stack: "busybox".parse().unwrap(),
        allowed_registries: Vec::new(),
        registry_address: None,
        registry_tls_listen: None,
        registry_tls_cert: None,
        registry_tls_key: None,
        docker_network: "skiff-apps".into(),
        docker_subnet: "10.199.0.0/16".parse().unwrap(),
        docker_addressing: skiff_controller::scheduler::Addressing::Direct,
        default_memory: 512,
        max_memory: 8192,
        default_pids: 512,
        default_cpu_shares: 1024,
        runtime: skiffd::Runtime::Docker,
        reconcile_interval: 1,
        boot_timeout: 30,
        release_timeout: 60,
        drain_seconds: 1,
        log_lines: 1000,
        drain_queue: 1000,
        max_log_message: skiff_logger::syslog::DEFAULT_MAX_MESSAGE,
        drain_ca: None,
        webhook_ca: None,
        acme_directory: skiff_controller::acme::LETS_ENCRYPT.to_owned(),
        acme_email: None,
        acme_ca: None,
        acme_challenge: Default::default(),
        acme_renew_before: 30 * 24 * 3600,
        acme_retry: 60,
        acme_interval: 30,
        clock: Default::default(),
        drain_rate: 1000,
        // The tests' drain receivers listen on loopback.
        outbound_allow: skiff_api::OutboundPolicy::parse("127.0.0.0/8").unwrap(),
        max_builds: 2,
        builder_keepalive: 1,
        max_push_mb: 1,
        platform_id: Some(platform_id.to_owned()),
        database_url,
        redis_url,
        store_url: None,
        registration: skiff_controller::config::Registration::AdminOnly,
        release_retention: 1,
        router_routes: None,
        router_access_log: true,
        router_threads: 0,
        router_trusted_proxies: String::new(),
        router_response_timeout: 30,
        router_connect_timeout: 5000,
        router_idle_timeout: 60,
        gc_interval: 3600,
        hook_program: Some(PathBuf::from(env!("CARGO_BIN_EXE_skiffd"))),
        backup_to: None,
        backup_interval: 86_400,
        backup_keep: 7,
    }
}

fn rand_u32() -> u32 {
    rand::random()
}

/// An HTTP GET through the router with a `Host` header: (status, body).
pub async fn get_via_router(router: SocketAddr, host: &str) -> Option<(u16, String)> {
    let response = reqwest::Client::new()
        .get(format!("http://{router}/"))
        .header("Host", host)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    let status = response.status().as_u16();
    Some((status, response.text().await.unwrap_or_default()))
}

pub use skiff_testing::eventually;

/// A CGI script that answers the release serving it and its GREETING.
const STATE_SCRIPT: &str =
    "#!/bin/sh\nprintf 'Content-Type: text/plain\\r\\n\\r\\n'; echo \"$SKIFF_RELEASE $GREETING\"\n";

/// Adds `/cgi-bin/state` to the example app in `repo` (not committed): it answers the
/// release serving it and its `GREETING`.
pub fn add_state_script(repo: &Path) {
    let script = repo.join("public/cgi-bin/state");
    std::fs::create_dir_all(script.parent().unwrap()).unwrap();
    std::fs::write(&script, STATE_SCRIPT).unwrap();
    std::fs::set_permissions(&script, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
}

/// What `/cgi-bin/state` of `host` answers through the router.
pub async fn state(platform: &Platform, host: &str) -> Option<String> {
    let response = reqwest::Client::new()
        .get(format!("http://{}/cgi-bin/state", platform.router()))
        .header("Host", host)
        .timeout(Duration::from_secs(5))
        .send()
        .await
        .ok()?;
    (response.status() == 200).then_some(response.text().await.ok()?.trim().to_owned())
}

/// Copies the example app into a new git repository with one commit on `main`.
pub fn example_repo(platform: &Platform, key: &Path) -> PathBuf {
    let repo = platform.dir.path().join("example");
    copy_dir(&Path::new(env!("CARGO_MANIFEST_DIR")).join("example"), &repo);
    for args in [&["init", "-q", "-b", "main"][..], &["add", "-A"], &["commit", "-qm", "example app"]] {
        let (ok, out) = platform.git(&repo, key, args);
        assert!(ok, "git {args:?}: {out}");
    }
    repo
}

pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_dir(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), target).unwrap();
        }
    }
}

/// `git` in `cwd`, with the OpenSSH client using `key`, not yet run.
pub fn git_process(cwd: &Path, key: &Path, args: &[&str]) -> Command {
    let ssh = format!(
        "ssh -i {} -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR",
        key.display()
    );
    let mut command = Command::new("git");
    command
        .current_dir(cwd)
        .env("GIT_SSH_COMMAND", ssh)
        .args(["-c", "user.name=Skiff Test", "-c", "user.email=test@skiff.invalid"])
        .args(args);
    command
}

/// `git` in `cwd`, with the OpenSSH client using `key`; returns (success, combined output).
fn run_git(cwd: &Path, key: &Path, args: &[&str]) -> (bool, String) {
    let output = git_process(cwd, key, args).output().expect("git runs");
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    (output.status.success(), text)
}

/// One `skiffd` component as its own process, its output kept in a file for a failing
/// test to show ([`Skiffd::log_tail`]); killed with SIGKILL (nothing flushed, nothing said
/// goodbye to) by [`Skiffd::kill`] or when dropped.
pub struct Skiffd {
    child: std::process::Child,
    log: tempfile::NamedTempFile,
}

impl Skiffd {
    pub fn start<K, V>(component: &str, env: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: AsRef<std::ffi::OsStr>,
        V: AsRef<std::ffi::OsStr>,
    {
        let log = tempfile::NamedTempFile::new().expect("a log file");
        let output = log.reopen().expect("the log file");
        let child = Command::new(env!("CARGO_BIN_EXE_skiffd"))
            .arg(component)
            .envs(env)
            .stdout(output.try_clone().expect("the log file"))
            .stderr(output)
            .spawn()
            .expect("skiffd runs");
        Self { child, log }
    }

    /// The last `lines` lines it printed.
    pub fn log_tail(&self, lines: usize) -> String {
        let printed = std::fs::read_to_string(self.log.path()).unwrap_or_default();
        let all: Vec<&str> = printed.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }

    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Skiffd {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The container whose network namespace a container runs in, if it runs in another's.
pub fn namespace_owner(container: &str) -> Option<String> {
    inspect(container, "{{.HostConfig.NetworkMode}}").strip_prefix("container:").map(str::to_owned)
}

/// What `docker inspect --format FORMAT` says of a container.
pub fn inspect(container: &str, format: &str) -> String {
    let inspected = std::process::Command::new("docker")
        .args(["inspect", "--format", format, container])
        .output()
        .expect("docker inspect");
    String::from_utf8_lossy(&inspected.stdout).trim().to_owned()
}
