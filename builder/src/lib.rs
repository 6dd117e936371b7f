//! Skiff's builder: the SSH front door that turns `git push` into a release.
//!
//! Layout:
//! - [`command`]: pure parsing of the SSH exec command (`git-receive-pack '<app>.git'`).
//! - [`procfile`]: pure parsing of a Procfile.
//! - [`dockerfile`]: pure reading of the images a Dockerfile builds from.
//! - [`ssh`]: the russh server: public-key auth through the controller, one git process
//!   per exec request.
//! - [`repo`]: bare repositories and the pre-receive hook installed in them.
//! - [`hook`]: the hook's two ends: the client the hook program runs, and the builder's
//!   socket that receives pushes and streams build output back.
//! - [`build`]: the build pipeline (Dockerfile, buildpack or Procfile app → registry →
//!   release).
//! - [`buildpack`]: `bin/detect`, `bin/compile` and `bin/release` in a build container of
//!   the stack.
//! - [`engine`]: Dockerfile builds and pushes on the Docker engine.
//! - [`source`]: builds of a source repository's commits, asked for by the controller.
//!
//! The push pipeline: SSH auth (key fingerprint → user) → exec `git-receive-pack` for an
//! app the user may access (checked before git runs) → take the app's push lock → real
//! `git receive-pack` into `<data>/repos/<app>.git` → its pre-receive hook connects to the
//! builder's socket → the build runs here, its output flowing back through the hook as
//! `remote:` lines → success lets git update the ref; failure rejects the push and leaves
//! the running release alone.

pub mod build;
pub mod buildpack;
pub mod command;
pub mod dockerfile;
pub mod engine;
pub mod hook;
pub mod procfile;
pub mod repo;
pub mod source;
pub mod ssh;

use std::path::PathBuf;

pub use ssh::{Builder, serve};

/// Builder settings.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where repositories, the host key and the hook socket live.
    pub data_dir: PathBuf,
    /// The controller's base URL.
    pub controller_url: String,
    /// The registry's base URL, e.g. `http://127.0.0.1:7701`.
    pub registry_url: String,
    /// The registry's address as engines pull from it (`HOST:PORT`), when it is not the
    /// registry URL's: the name built images are pushed under and base images in Skiff's
    /// registry are pulled by, as the controller names them.
    pub registry_address: Option<String>,
    /// The platform's service token.
    pub service_token: String,
    /// The program git runs as the pre-receive hook, with arguments `hook pre-receive`
    /// (the `skiffd` binary).
    pub hook_program: PathBuf,
    /// How many builds may run at once.
    pub max_builds: usize,
    /// The largest pack a push may send, in bytes; git refuses bigger ones.
    pub max_push_bytes: u64,
    /// After this long without build output the pusher is told the build is still going.
    pub keepalive: std::time::Duration,
}

/// Why the builder stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot prepare the builder's data directory, host key or hook socket, or serve its health: {0}")]
    Prepare(#[from] std::io::Error),
}

/// Prepares the builder (data directory, host key, hook socket) and serves SSH on `ssh`,
/// and `/healthz`, `/readyz` and `/metrics` on `http`, until `shutdown`.
///
/// # Errors
/// When the builder cannot be prepared, or its HTTP server fails.
pub async fn run(
    config: Config,
    ssh: tokio::net::TcpListener,
    http: tokio::net::TcpListener,
    shutdown: tokio_util::sync::CancellationToken,
) -> Result<(), RunError> {
    let builder = Builder::new(config).await?;
    let hooks = builder.bind_hooks()?;
    let (readiness, metrics) = (builder.readiness(), builder.clone());
    let stop = shutdown.clone().cancelled_owned();
    let routes = skiff_service::routes(readiness, std::sync::Arc::new(move || metrics.metrics()))
        .route("/v2/builds", axum::routing::post(source_build))
        .with_state(builder.clone());
    let api = async { axum::serve(http, routes).with_graceful_shutdown(stop).await };
    let ((), served) = tokio::join!(serve(ssh, hooks, builder, shutdown), api);
    Ok(served?)
}

/// `POST /v2/builds` (service token): build a commit of a source repository.
async fn source_build(
    axum::extract::State(builder): axum::extract::State<std::sync::Arc<Builder>>,
    headers: axum::http::HeaderMap,
    axum::Json(wanted): axum::Json<skiff_api::SourceBuild>,
) -> Result<(axum::http::StatusCode, axum::Json<skiff_api::SourceBuildAnswer>), axum::http::StatusCode> {
    let token = headers.get(axum::http::header::AUTHORIZATION).and_then(|v| v.to_str().ok());
    let presented = token.and_then(|t| t.strip_prefix("Bearer ")).unwrap_or_default();
    if !skiff_api::secrets_match(presented, &builder.config.service_token) {
        return Err(axum::http::StatusCode::UNAUTHORIZED);
    }
    Ok((axum::http::StatusCode::ACCEPTED, axum::Json(builder.take_source_build(wanted))))
}
