//! The SSH server. Public-key authentication only: the key's fingerprint is resolved to a
//! user by the controller. Each exec request must be a git command for an app the user may
//! access; it runs the real `git receive-pack` / `git upload-pack` with the channel as its
//! stdin and stdout and stderr as SSH extended data. Nothing goes through a shell.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use russh::keys::ssh_key::private::Ed25519Keypair;
use russh::keys::{HashAlg, PrivateKey};
use russh::server::{Auth, ChannelOpenHandle, Msg, Session};
use russh::{Channel, ChannelId, ChannelMsg, ChannelReadHalf, ChannelWriteHalf, MethodKind, MethodSet};
use skiff_api::{AppName, ReviewAppGrant, ReviewAppPush, Username};
use skiff_client::{Client, ClientError};
use skiff_registry_client::RegistryClient;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio::process::Command;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::build::{self, Push};
use crate::command::{self, Service};
use crate::engine::Engine;
use crate::hook::{HookRequest, Output, RefUpdate};
use crate::{Config, repo};

/// The longest hook request line accepted.
const MAX_HOOK_REQUEST: u64 = 1 << 20;

/// A push registered for its hook to find.
struct PushEntry {
    push: Push,
    repo: PathBuf,
    /// Cancelled when the pusher goes away: the build stops and nothing is released.
    gone: CancellationToken,
}

/// The builder's shared state.
pub struct Builder {
    pub(crate) config: Config,
    pub(crate) controller: Client,
    pub(crate) registry: RegistryClient,
    pub(crate) engine: Engine,
    host_key: PrivateKey,
    hook_socket: PathBuf,
    pushes: Mutex<HashMap<String, Arc<PushEntry>>>,
    locked_apps: Mutex<HashSet<AppName>>,
    pub(crate) builds: Semaphore,
    /// Builds from source repositories: an entry per app being built, holding the build
    /// wanted next (a newer push replaces an older one still waiting).
    pub(crate) source_queue: Mutex<HashMap<AppName, Option<skiff_api::SourceBuild>>>,
    /// How pushes ended, for `/metrics`.
    outcomes: Outcomes,
}

/// How pushes ended: released, failed, or abandoned by the pusher.
#[derive(Debug, Default)]
struct Outcomes {
    released: AtomicU64,
    failed: AtomicU64,
    abandoned: AtomicU64,
}

/// Holds an app's push lock; dropping it (the push ended, or its connection did) frees it.
pub(crate) struct AppLock {
    builder: Arc<Builder>,
    app: AppName,
}

impl Drop for AppLock {
    fn drop(&mut self) {
        lock(&self.builder.locked_apps).remove(&self.app);
    }
}

/// Keeps a push findable by its hook while git runs.
struct PushRegistration {
    builder: Arc<Builder>,
    id: String,
}

impl Drop for PushRegistration {
    fn drop(&mut self) {
        if let Some(entry) = lock(&self.builder.pushes).remove(&self.id) {
            entry.gone.cancel();
        }
    }
}

pub(crate) fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A poisoned set or map only means a holder panicked; the data is still consistent.
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Builder {
    /// Loads (or on first start generates and keeps) the host key.
    ///
    /// # Errors
    /// When the data directory or the host key cannot be read or written.
    pub async fn new(config: Config) -> std::io::Result<Arc<Self>> {
        tokio::fs::create_dir_all(&config.data_dir).await?;
        let key_path = config.data_dir.join("ssh_host_ed25519_key");
        let host_key = if key_path.exists() {
            PrivateKey::read_openssh_file(&key_path).map_err(std::io::Error::other)?
        } else {
            let key = PrivateKey::from(Ed25519Keypair::from_seed(&rand::random::<[u8; 32]>()));
            key.write_openssh_file(&key_path, russh::keys::ssh_key::LineEnding::LF).map_err(std::io::Error::other)?;
            key
        };
        let hook_socket = config.data_dir.join("hook.sock");
        let url_host = config.registry_url.split_once("://").map_or(config.registry_url.as_str(), |(_, h)| h);
        let registry_host = config.registry_address.as_deref().unwrap_or(url_host.trim_end_matches('/'));
        let engine = Engine::connect(registry_host, &config.service_token).map_err(std::io::Error::other)?;
        Ok(Arc::new(Self {
            controller: Client::new(&config.controller_url, Some(config.service_token.clone())),
            registry: RegistryClient::new(&config.registry_url, "skiff-builder", &config.service_token),
            builds: Semaphore::new(config.max_builds.max(1)),
            engine,
            host_key,
            hook_socket,
            pushes: Mutex::new(HashMap::new()),
            locked_apps: Mutex::new(HashSet::new()),
            source_queue: Mutex::new(HashMap::new()),
            outcomes: Outcomes::default(),
            config,
        }))
    }

    /// What the builder needs to build: the container engine.
    pub fn readiness(self: &Arc<Self>) -> skiff_service::Readiness {
        let builder = self.clone();
        skiff_service::Readiness::new().check("engine", move || {
            let builder = builder.clone();
            async move { builder.engine.ping().await.map_err(|e| e.to_string()) }
        })
    }

    /// The builder's `/metrics` page: pushes by how they ended.
    pub fn metrics(&self) -> String {
        let count = |n: &AtomicU64| n.load(Ordering::Relaxed);
        let outcomes = [
            ("released", count(&self.outcomes.released)),
            ("failed", count(&self.outcomes.failed)),
            ("abandoned", count(&self.outcomes.abandoned)),
        ];
        let values: Vec<(String, u64)> =
            outcomes.iter().map(|(outcome, n)| (format!("{{outcome=\"{outcome}\"}}"), *n)).collect();
        skiff_service::Text::new()
            .counter("skiff_builder_pushes_total", "Pushes built, by how they ended.", &values)
            .finish()
    }

    /// Binds the hook socket (replacing a stale one from an earlier run).
    ///
    /// # Errors
    /// When the socket cannot be bound.
    pub fn bind_hooks(&self) -> std::io::Result<UnixListener> {
        let _ = std::fs::remove_file(&self.hook_socket);
        UnixListener::bind(&self.hook_socket)
    }

    fn ssh_config(&self) -> russh::server::Config {
        russh::server::Config {
            methods: MethodSet::from(&[MethodKind::PublicKey][..]),
            keys: vec![self.host_key.clone()],
            auth_rejection_time: Duration::from_millis(300),
            auth_rejection_time_initial: Some(Duration::ZERO),
            inactivity_timeout: Some(Duration::from_secs(3600)),
            keepalive_interval: Some(Duration::from_secs(15)),
            nodelay: true,
            ..Default::default()
        }
    }

    pub(crate) fn lock_app(self: &Arc<Self>, app: &AppName) -> Option<AppLock> {
        lock(&self.locked_apps).insert(app.clone()).then(|| AppLock { builder: self.clone(), app: app.clone() })
    }

    /// Runs one exec request; returns the exit status for the client.
    async fn exec(
        self: &Arc<Self>,
        reader: &mut ChannelReadHalf,
        writer: &ChannelWriteHalf<Msg>,
        command: &[u8],
        user: &Username,
    ) -> Result<u32, String> {
        let command = command::parse(command).map_err(|e| e.to_string())?;
        let app = &command.app;
        let grant = self.controller.push_grant(app, user).await.map_err(|e| match e.status() {
            Some(status) if status.is_client_error() => {
                format!("app `{app}` does not exist or you have no access to it; see `skiff apps`")
            }
            _ => format!("cannot check access right now: {e}"),
        })?;
        let _lock =
            match command.service {
                Service::ReceivePack => Some(self.lock_app(app).ok_or_else(|| {
                    format!("another push to `{app}` is being built; push again when it has finished")
                })?),
                Service::UploadPack => None,
            };
        // A push's web container is started while the push is built (unless one waits).
        if matches!(command.service, Service::ReceivePack) {
            let controller = self.controller.clone();
            let app = app.clone();
            tokio::spawn(async move {
                if let Err(error) = controller.warm(&app).await {
                    tracing::info!(%app, %error, "builder.warm.failed");
                }
            });
        }
        let repo = repo::prepare(&self.config.data_dir, app, grant.id, &self.config.hook_program)
            .await
            .map_err(|e| format!("cannot prepare the repository: {e}"))?;
        let id = format!("{:032x}", rand::random::<u128>());
        let push = Push {
            app: grant.app,
            id: grant.id,
            user: user.clone(),
            stack: grant.stack,
            url: grant.url,
            config: grant.config,
        };
        let entry = PushEntry { push, repo: repo.clone(), gone: CancellationToken::new() };
        lock(&self.pushes).insert(id.clone(), Arc::new(entry));
        let _registration = PushRegistration { builder: self.clone(), id: id.clone() };

        let mut child = Command::new("git")
            .arg("-c")
            .arg(format!("receive.maxInputSize={}", self.config.max_push_bytes))
            .arg(command.service.git_subcommand())
            .arg(&repo)
            .env("SKIFF_HOOK_SOCKET", &self.hook_socket)
            .env("SKIFF_PUSH", &id)
            .env("SKIFF_HOOK_KEEPALIVE_SECS", self.config.keepalive.as_secs().max(1).to_string())
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run git: {e}"))?;
        let (Some(stdin), Some(mut stdout), Some(mut stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            return Err("git started without pipes".into());
        };
        // Ends only when the pusher goes away (the channel closes before git has finished);
        // the end of its input just closes git's stdin.
        let gone = async {
            let mut stdin = Some(stdin);
            while let Some(message) = reader.wait().await {
                match message {
                    ChannelMsg::Data { data } => {
                        if let Some(pipe) = stdin.as_mut()
                            && pipe.write_all(&data).await.is_err()
                        {
                            stdin = None;
                        }
                    }
                    ChannelMsg::Eof => stdin = None,
                    ChannelMsg::Close => return,
                    _ => {}
                }
            }
        };
        let outputs = async {
            let mut out = writer.make_writer();
            let mut err = writer.make_writer_ext(Some(1));
            let _ = tokio::join!(tokio::io::copy(&mut stdout, &mut out), tokio::io::copy(&mut stderr, &mut err));
        };
        tokio::select! {
            () = gone => {
                // Stop git; dropping the registration (on return) cancels the build, so
                // nothing is released, and dropping the lock frees the app.
                tracing::info!(app = %app, "builder.push.disconnected");
                let _ = child.kill().await;
                return Ok(1);
            }
            () = outputs => {}
        }
        let status = child.wait().await.map_err(|e| format!("git failed: {e}"))?;
        Ok(status.code().map_or(1, |c| c as u32))
    }

    /// Serves one hook connection: finds the push, builds it, answers the status.
    async fn hook(self: Arc<Self>, stream: UnixStream) {
        let (read, write) = stream.into_split();
        let mut out = Output::new(write);
        let mut line = String::new();
        let read = BufReader::new(read).take(MAX_HOOK_REQUEST).read_line(&mut line).await;
        let request: Option<HookRequest> = read.ok().and_then(|_| serde_json::from_str(&line).ok());
        let entry = request.as_ref().and_then(|r| lock(&self.pushes).get(&r.push).cloned());
        let (Some(request), Some(entry)) = (request, entry) else {
            out.step("this push is unknown to the builder; push again").await;
            return out.exit(1).await;
        };
        let deployable = |name: &str| name == "refs/heads/main" || name == "refs/heads/master";
        let (update, push, review_app) = match request.updates.iter().find(|u| deployable(&u.name) && !u.is_delete()) {
            Some(update) => (update, entry.push.clone(), None),
            None => {
                let branch = request.updates.iter().find(|u| u.name.starts_with("refs/heads/") && !deployable(&u.name));
                let Some(update) = branch else {
                    out.step("nothing to deploy: only pushes to main (or master) are built").await;
                    return out.exit(0).await;
                };
                match self.branch_pushed(&entry.push, update, &mut out).await {
                    Some((push, created)) => (update, push, Some(created)),
                    None => return out.exit(0).await,
                }
            }
        };
        let _permit = match self.builds.try_acquire() {
            Ok(permit) => permit,
            Err(_) => {
                out.step("waiting for a free build slot").await;
                match self.builds.acquire().await {
                    Ok(permit) => permit,
                    Err(_) => return out.exit(1).await,
                }
            }
        };
        let context = build::Context {
            push: &push,
            data_dir: &self.config.data_dir,
            repo: &entry.repo,
            update,
            git_env: &request.git_env,
            registry: &self.registry,
            controller: &self.controller,
            engine: &self.engine,
        };
        let result = tokio::select! {
            result = build::run(&context, &mut out) => result,
            () = entry.gone.cancelled() => {
                tracing::info!(app = %entry.push.app, "builder.push.abandoned");
                self.outcomes.abandoned.fetch_add(1, Ordering::Relaxed);
                self.engine.remove_builds(entry.push.app.as_str()).await;
                return;
            }
        };
        match result {
            Ok(build::Released { release, postdeploy }) => {
                tracing::info!(app = %push.app, version = release.version, "builder.push.released");
                self.outcomes.released.fetch_add(1, Ordering::Relaxed);
                let ran = match (review_app, postdeploy) {
                    (Some(true), Some(command)) => build::postdeploy(&context, command, &mut out).await,
                    _ => true,
                };
                out.exit(if ran { 0 } else { 1 }).await;
            }
            Err(error) => {
                tracing::info!(app = %entry.push.app, %error, "builder.push.failed");
                self.outcomes.failed.fetch_add(1, Ordering::Relaxed);
                out.exit(1).await;
            }
        }
    }
}

impl Builder {
    /// A push of a branch other than main: its review app to build (and whether the push
    /// made it), or `None` when there is nothing to build (the branch was deleted, and its
    /// review app with it; or its app makes no review apps), which the pusher is told.
    async fn branch_pushed(&self, push: &Push, update: &RefUpdate, out: &mut Output) -> Option<(Push, bool)> {
        let branch = update.name.trim_start_matches("refs/heads/").to_owned();
        let request = ReviewAppPush { app: push.app.clone(), branch: branch.clone(), username: push.user.clone() };
        let refused = |error: ClientError| match error {
            ClientError::Api { message, .. } => message,
            other => other.to_string(),
        };
        if update.is_delete() {
            let message = match self.controller.close_review_app(&request).await {
                Ok(Some(app)) => format!("Branch {branch} deleted: destroyed review app {app}"),
                Ok(None) => format!("Branch {branch} deleted; it had no review app"),
                Err(error) => refused(error),
            };
            out.step(&message).await;
            return None;
        }
        match self.controller.open_review_app(&request).await {
            Ok(ReviewAppGrant { grant, created }) => {
                let made = if created { "new review app" } else { "review app" };
                out.step(&format!("Branch {branch}: building {made} {}", grant.app)).await;
                let review = Push {
                    app: grant.app,
                    id: grant.id,
                    user: push.user.clone(),
                    stack: grant.stack,
                    url: grant.url,
                    config: grant.config,
                };
                Some((review, created))
            }
            Err(error) => {
                out.step(&format!("nothing to deploy: {}", refused(error))).await;
                None
            }
        }
    }
}

/// One SSH connection's handler.
struct Connection {
    builder: Arc<Builder>,
    tasks: TaskTracker,
    user: Option<Username>,
    channels: HashMap<ChannelId, Channel<Msg>>,
}

impl russh::server::Handler for Connection {
    type Error = russh::Error;

    async fn auth_publickey(
        &mut self,
        _user: &str,
        key: russh::server::VerifiedPublicKey<'_>,
    ) -> Result<Auth, Self::Error> {
        let fingerprint = key.public_key.fingerprint(HashAlg::Sha256).to_string();
        match self.builder.controller.key_owner(&fingerprint).await {
            Ok(owner) => {
                self.user = Some(owner.username);
                Ok(Auth::Accept)
            }
            Err(error) => {
                tracing::info!(%fingerprint, %error, "builder.ssh.key_rejected");
                Ok(Auth::reject())
            }
        }
    }

    async fn channel_open_session(
        &mut self,
        channel: Channel<Msg>,
        reply: ChannelOpenHandle,
        _session: &mut Session,
    ) -> Result<(), Self::Error> {
        self.channels.insert(channel.id(), channel);
        reply.accept().await;
        Ok(())
    }

    async fn exec_request(&mut self, id: ChannelId, data: &[u8], session: &mut Session) -> Result<(), Self::Error> {
        let (Some(channel), Some(user)) = (self.channels.remove(&id), self.user.clone()) else {
            return session.channel_failure(id);
        };
        session.channel_success(id)?;
        let builder = self.builder.clone();
        let command = data.to_vec();
        self.tasks.spawn(async move {
            let (mut reader, writer) = channel.split();
            let status = match builder.exec(&mut reader, &writer, &command, &user).await {
                Ok(status) => status,
                Err(message) => {
                    let _ = writer.extended_data_bytes(1, format!("skiff: {message}\n").into_bytes()).await;
                    1
                }
            };
            let _ = writer.exit_status(status).await;
            let _ = writer.eof().await;
            let _ = writer.close().await;
        });
        Ok(())
    }

    async fn shell_request(&mut self, id: ChannelId, session: &mut Session) -> Result<(), Self::Error> {
        session.channel_failure(id)
    }
}

/// Serves SSH and hook connections until `shutdown`.
pub async fn serve(ssh: TcpListener, hooks: UnixListener, builder: Arc<Builder>, shutdown: CancellationToken) {
    let config = Arc::new(builder.ssh_config());
    let tasks = TaskTracker::new();
    loop {
        tokio::select! {
            accepted = ssh.accept() => match accepted {
                Ok((stream, peer)) => {
                    let handler = Connection { builder: builder.clone(), tasks: tasks.clone(), user: None, channels: HashMap::new() };
                    let config = config.clone();
                    let shutdown = shutdown.clone();
                    tasks.spawn(async move {
                        match russh::server::run_stream(config, stream, handler).await {
                            Ok(session) => tokio::select! {
                                result = session => if let Err(error) = result {
                                    tracing::debug!(%error, %peer, "builder.ssh.session");
                                },
                                () = shutdown.cancelled() => {}
                            },
                            Err(error) => tracing::debug!(%error, %peer, "builder.ssh.handshake"),
                        }
                    });
                }
                Err(error) => tracing::warn!(%error, "builder.ssh.accept"),
            },
            accepted = hooks.accept() => match accepted {
                Ok((stream, _)) => {
                    tasks.spawn(builder.clone().hook(stream));
                }
                Err(error) => tracing::warn!(%error, "builder.hook.accept"),
            },
            () = shutdown.cancelled() => break,
        }
    }
    tasks.close();
    tasks.wait().await;
}
