//! The build pipeline for a pushed revision.
//!
//! Detection, in order:
//! 1. `Dockerfile`: the Docker engine builds the pushed tree and pushes the image to
//!    Skiff's registry. A Procfile, if present, names the process types; otherwise `web`
//!    runs the image's own command.
//! 2. Buildpack: `BUILDPACK_URL`, or an installed buildpack that detects the app, compiles
//!    the tree in a build container of the stack (see [`crate::buildpack`]); the result is
//!    pushed like a Procfile app.
//! 3. Procfile app: the pushed tree (`git archive`, so nothing is checked out) becomes one
//!    layer under `/app` on top of the app's stack image; the stack's layers are mounted
//!    in the registry, not uploaded again.
//!
//! Images are tagged `git-<sha>`. Every build, succeeded or failed, is recorded with its
//! log; a succeeded one becomes the app's next release.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use skiff_api::{
    AppJson, AppName, BuildCreate, BuildKind, BuildStatus, ImageUse, PhaseState, ProcessType, Release, ReleaseState,
    RunOutput, StackName, Username,
};
use skiff_client::{Client, ClientError};
use skiff_registry_client::image::{BaseImage, Layer, push_image};
use skiff_registry_client::{RegistryClient, RegistryError};
use tokio::process::Command;

use crate::buildpack::{self, BuildDir, BuildpackError};
use crate::engine::{BasePulls, Engine, EngineError};
use crate::hook::{Output, RefUpdate};
use crate::procfile::{self, ProcfileError};

/// The largest pushed tree accepted, as an uncompressed tar.
const MAX_TREE_BYTES: usize = 1 << 30;

/// A push being built.
#[derive(Debug, Clone)]
pub struct Push {
    pub app: AppName,
    /// The app's unique id.
    pub id: i64,
    pub user: Username,
    pub stack: StackName,
    pub url: String,
    /// The app's config: Dockerfile build arguments.
    pub config: BTreeMap<String, String>,
}

/// Everything a build needs.
pub struct Context<'a> {
    pub push: &'a Push,
    /// The builder's data directory (buildpacks, caches, build directories).
    pub data_dir: &'a Path,
    /// The app's bare repository.
    pub repo: &'a Path,
    pub update: &'a RefUpdate,
    /// git's quarantine variables: the pushed objects are only visible through them.
    pub git_env: &'a [(String, String)],
    pub registry: &'a RegistryClient,
    pub controller: &'a Client,
    pub engine: &'a Engine,
}

/// Why a build failed; the message is shown to the pusher.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no Procfile or Dockerfile found; add a Procfile with a line like `web: ./server --port $PORT`")]
    NoProcfile,
    #[error(transparent)]
    Procfile(#[from] ProcfileError),
    #[error("the pushed tree is larger than {} MiB", MAX_TREE_BYTES >> 20)]
    TooLarge,
    #[error("git failed: {0}")]
    Git(String),
    #[error("stack `{0}` is not available ({1}); an admin can import it with `skiff stacks:import {0} DIR`")]
    Stack(StackName, RegistryError),
    #[error(transparent)]
    Engine(#[from] EngineError),
    #[error(transparent)]
    Buildpack(#[from] BuildpackError),
    #[error("pushing the image failed: {0}")]
    Registry(#[from] RegistryError),
    #[error("the controller refused the release: {0}")]
    Controller(#[from] ClientError),
    #[error("the Dockerfile cannot be built here: {0}")]
    Dockerfile(String),
    #[error("cannot check the Dockerfile's images with the controller: {0}")]
    ImageCheck(ClientError),
    #[error("v{0} failed to start: {1}; the previous release keeps serving (see `skiff logs`)")]
    Rollout(u32, String),
    #[error(transparent)]
    AppJson(#[from] skiff_api::AppJsonError),
    #[error("app.json requires config the app lacks: {0}; set it with `skiff config:set KEY=VALUE` and push again")]
    MissingConfig(String),
}

/// Runs a git command against the pushed (quarantined) objects; returns stdout, or
/// `None` when git exits non-zero.
async fn git(ctx: &Context<'_>, args: &[&str]) -> Result<Option<Vec<u8>>, BuildError> {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(ctx.repo)
        .args(args)
        .envs(ctx.git_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| BuildError::Git(e.to_string()))?;
    Ok(output.status.success().then_some(output.stdout))
}

/// The longest commit subject kept with a build.
const MAX_SUBJECT: usize = 200;

/// The pushed commit's subject line (its first `MAX_SUBJECT` characters), if git says.
async fn commit_subject(ctx: &Context<'_>) -> Option<String> {
    let out = git(ctx, &["log", "-1", "--format=%s", &ctx.update.new]).await.ok()??;
    let subject: String = String::from_utf8_lossy(&out).trim().chars().take(MAX_SUBJECT).collect();
    (!subject.is_empty()).then_some(subject)
}

/// The pushed tree as a tar, with every path under `prefix`.
async fn tree_tar(ctx: &Context<'_>, prefix: &str) -> Result<Vec<u8>, BuildError> {
    let prefix = format!("--prefix={prefix}");
    let tar = git(ctx, &["archive", "--format=tar", &prefix, &ctx.update.new])
        .await?
        .ok_or_else(|| BuildError::Git(format!("cannot archive {}", ctx.update.new)))?;
    if tar.len() > MAX_TREE_BYTES {
        return Err(BuildError::TooLarge);
    }
    Ok(tar)
}

/// Builds the pushed revision, records the build, and releases it when it succeeded.
///
/// # Errors
/// See [`BuildError`]; nothing is released when a step fails.
pub async fn run(ctx: &Context<'_>, out: &mut Output) -> Result<Released, BuildError> {
    let started = Instant::now();
    let sha = ctx.update.new.as_str();
    let short = &sha[..7.min(sha.len())];
    out.step(&format!("Building {} from {short}", ctx.push.app)).await;
    let mut kind = BuildKind::Procfile;
    let result = async {
        let manifest = app_json(ctx, out).await?;
        let (image, procfile) = build(ctx, &mut kind, out).await?;
        Ok((image, procfile, manifest))
    }
    .await;
    let message = commit_subject(ctx).await;
    let mut record = BuildCreate {
        app: ctx.push.app.clone(),
        username: ctx.push.user.clone(),
        kind,
        status: BuildStatus::Failed,
        image: None,
        git_sha: Some(sha.to_owned()),
        procfile: BTreeMap::new(),
        duration_ms: started.elapsed().as_millis() as u64,
        log: String::new(),
        app_json: None,
        message,
    };
    match result {
        Ok((image, procfile, manifest)) => {
            record.status = BuildStatus::Succeeded;
            record.image = Some(image);
            record.procfile = procfile;
            let postdeploy = manifest.as_ref().and_then(|m| m.scripts.postdeploy.clone());
            record.app_json = manifest;
            record.log = out.log().to_owned();
            let release =
                ctx.controller.create_build(&record).await?.release.ok_or_else(|| {
                    ClientError::Invalid("the controller recorded the build but made no release".into())
                })?;
            out.step(&format!("Released v{}; starting it", release.version)).await;
            let rollout = follow_rollout(ctx, release, started, out).await;
            if let Err(error) = &rollout {
                out.step(&error.to_string()).await;
            }
            Ok(Released { release: rollout?, postdeploy })
        }
        Err(error) => {
            out.step(&format!("Build failed: {error}")).await;
            out.detail("the running release is unchanged").await;
            record.log = out.log().to_owned();
            if let Err(e) = ctx.controller.create_build(&record).await {
                tracing::warn!(error = %e, app = %ctx.push.app, "builder.build.unrecorded");
            }
            Err(error)
        }
    }
}

/// How long a push waits to see its release start.
const ROLLOUT_WAIT: Duration = Duration::from_secs(120);

/// How long one look at a pending release waits for it to change: the controller answers
/// as the release changes, so the pusher hears that it is up at once.
const ROLLOUT_LOOK: Duration = Duration::from_secs(5);
/// The least time between two looks (a controller that does not wait answers at once).
const ROLLOUT_POLL: Duration = Duration::from_millis(25);

/// Waits until the release runs (or failed to start) and tells the pusher.
async fn follow_rollout(
    ctx: &Context<'_>,
    release: Release,
    started: Instant,
    out: &mut Output,
) -> Result<Release, BuildError> {
    let deadline = Instant::now() + ROLLOUT_WAIT;
    let mut phase = PhaseShown::default();
    loop {
        let asked = Instant::now();
        let look = ROLLOUT_LOOK.min(deadline.saturating_duration_since(asked));
        let current = ctx.controller.release(&ctx.push.app, release.version, look).await?;
        phase.show(&current, out).await;
        match current.state {
            ReleaseState::Deployed => {
                let took = started.elapsed().as_secs_f64();
                out.step(&format!("v{} is up in {took:.1}s: {}", current.version, ctx.push.url)).await;
                return Ok(current);
            }
            ReleaseState::Failed => {
                let reason = current.failure.unwrap_or_default();
                return Err(BuildError::Rollout(current.version, reason));
            }
            ReleaseState::Superseded => {
                out.step(&format!("v{} never ran: a newer release was deployed first", current.version)).await;
                return Ok(current);
            }
            ReleaseState::Trial => {
                let app = &ctx.push.app;
                out.step(&format!("v{} is on trial as a canary; see `skiff canary -a {app}`", current.version)).await;
                return Ok(current);
            }
            ReleaseState::Pending if Instant::now() >= deadline => {
                out.step(&format!(
                    "v{} is still starting; follow it with `skiff ps -a {}`",
                    current.version, ctx.push.app
                ))
                .await;
                return Ok(current);
            }
            ReleaseState::Pending => tokio::time::sleep_until((asked + ROLLOUT_POLL).into()).await,
        }
    }
}

/// How much of a release's release phase the pusher has seen.
#[derive(Default)]
struct PhaseShown {
    started: bool,
    /// Bytes of its output printed.
    printed: usize,
}

impl PhaseShown {
    /// Tells the pusher that the release command runs, and each whole line it printed
    /// since the last look (the rest too once it ended).
    async fn show(&mut self, release: &Release, out: &mut Output) {
        let Some(phase) = &release.phase else { return };
        if !self.started {
            self.started = true;
            let command = release.procfile.iter().find(|(p, _)| ProcessType::is_release(p.as_str()));
            let command = command.map_or("", |(_, command)| command.as_str());
            out.step(&format!("Running the release command: {command}")).await;
        }
        // The controller keeps the last 64 KiB: past that, `skiff logs` has the lines.
        let fresh = phase.output.get(self.printed..).unwrap_or_default();
        let whole = match phase.state {
            PhaseState::Running => fresh.rfind('\n').map_or(0, |end| end + 1),
            PhaseState::Succeeded | PhaseState::Failed => fresh.len(),
        };
        for line in fresh[..whole].lines() {
            out.detail(line).await;
        }
        self.printed = if fresh.is_empty() { phase.output.len() } else { self.printed + whole };
    }
}

/// A push that was released: its release, and the pushed `app.json`'s
/// `scripts.postdeploy` (which a new review app runs).
pub struct Released {
    pub release: Release,
    pub postdeploy: Option<String>,
}

/// Runs `command` (a pushed `app.json`'s `scripts.postdeploy`) on the review app the push
/// made, showing its output as it comes; whether it succeeded.
pub async fn postdeploy(ctx: &Context<'_>, command: String, out: &mut Output) -> bool {
    out.step(&format!("Running postdeploy: {command}")).await;
    let request = skiff_api::RunRequest { command, timeout_secs: None };
    let mut lines = match ctx.controller.postdeploy(&ctx.push.app, &request).await {
        Ok(lines) => Box::pin(lines),
        Err(error) => {
            out.step(&format!("postdeploy could not run: {error}")).await;
            return false;
        }
    };
    let mut status = None;
    while let Some(line) = futures_util::StreamExt::next(&mut lines).await {
        match line {
            Ok(RunOutput::Out(text) | RunOutput::Err(text)) => {
                for line in text.lines() {
                    out.detail(line).await;
                }
            }
            Ok(RunOutput::Exit(code)) => status = Some(code),
            Err(error) => {
                out.step(&format!("postdeploy's output broke off: {error}")).await;
                return false;
            }
        }
    }
    match status {
        Some(0) => true,
        other => {
            let code = other.map_or_else(|| "no status".to_owned(), |c| format!("status {c}"));
            out.step(&format!("postdeploy failed ({code}); the review app runs, set it up by hand")).await;
            false
        }
    }
}

/// The pushed tree's `app.json`, when it has one: it must read, and the app's config must
/// hold every key it requires (the rest it gives values as the release is made).
async fn app_json(ctx: &Context<'_>, out: &mut Output) -> Result<Option<AppJson>, BuildError> {
    let sha = ctx.update.new.as_str();
    let Some(text) = git(ctx, &["cat-file", "blob", &format!("{sha}:app.json")]).await? else { return Ok(None) };
    let manifest = AppJson::parse(&String::from_utf8_lossy(&text))?;
    let missing: Vec<String> = manifest
        .missing_env(&ctx.push.config)
        .into_iter()
        .map(|(key, description)| description.map_or_else(|| key.to_owned(), |d| format!("{key} ({d})")))
        .collect();
    if !missing.is_empty() {
        return Err(BuildError::MissingConfig(missing.join(", ")));
    }
    out.step("app.json found: formation, env and health checks apply to this release").await;
    Ok(Some(manifest))
}

/// Detects the kind of app and builds it; returns the image and the process types.
async fn build(
    ctx: &Context<'_>,
    kind: &mut BuildKind,
    out: &mut Output,
) -> Result<(String, BTreeMap<ProcessType, String>), BuildError> {
    let sha = ctx.update.new.as_str();
    let short = &sha[..7.min(sha.len())];
    let tag = format!("git-{short}");
    let processes = match git(ctx, &["cat-file", "blob", &format!("{sha}:Procfile")]).await? {
        Some(text) => Some(procfile::parse(&String::from_utf8_lossy(&text))?),
        None => None,
    };
    if let Some(processes) = &processes {
        let types: Vec<&str> = processes.keys().map(|p| p.as_str()).collect();
        out.step(&format!("Procfile declares types -> {}", types.join(", "))).await;
    }

    if let Some(dockerfile) = git(ctx, &["cat-file", "blob", &format!("{sha}:Dockerfile")]).await? {
        *kind = BuildKind::Dockerfile;
        out.step("Dockerfile app detected; building with the Docker engine").await;
        let pulls = check_base_images(ctx, &String::from_utf8_lossy(&dockerfile)).await?;
        let context = tree_tar(ctx, "").await?;
        let repository = format!("{}/{}", ctx.engine.registry_host(), ctx.push.app);
        let build_args = ctx.push.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        ctx.engine.build(context, &format!("{repository}:{tag}"), build_args, &pulls, out).await?;
        ctx.engine.push(&repository, &tag).await?;
        let digest = ctx.registry.manifest_digest(ctx.push.app.as_str(), &tag).await?;
        out.step(&format!("Pushed image {}@{digest}", ctx.push.app)).await;
        let processes = processes.unwrap_or_else(|| [(ProcessType::web(), String::new())].into());
        return Ok((format!("{}@{digest}", ctx.push.app), processes));
    }

    if let Some(built) = build_with_buildpack(ctx, processes.clone(), kind, out).await? {
        return Ok(built);
    }

    let processes = processes.ok_or(BuildError::NoProcfile)?;
    out.step(&format!("Procfile app on stack {}", ctx.push.stack)).await;
    let tar = tree_tar(ctx, "app/").await?;
    let image = push_on_stack(ctx, tar, &processes, &BTreeMap::new(), out).await?;
    Ok((image, processes))
}

/// A build may use only images its pusher may pull (stacks, their apps' images, and
/// registries the operator allows): every image the Dockerfile names is checked by the
/// controller before the engine sees it, so no image another tenant pushed, even one the
/// engine already holds, can be built upon. The `ONBUILD` triggers of base images in
/// Skiff's registry run in this build too: the images they name are checked the same way.
///
/// The engine then fetches them with a token that may pull only those repositories, as
/// the pusher (and, unless a base image is another registry's, always from the registry:
/// a name the engine already holds is not taken on trust).
async fn check_base_images(ctx: &Context<'_>, dockerfile: &str) -> Result<BasePulls, BuildError> {
    let named =
        crate::dockerfile::images(dockerfile, &ctx.push.config).map_err(|e| BuildError::Dockerfile(e.to_string()))?;
    let mut images: Vec<String> = named.iter().map(|n| n.image.clone()).collect();
    for base in named.iter().filter(|n| n.base) {
        check_image_use(ctx, &base.image).await?;
        let triggers = onbuild_triggers(ctx, &base.image).await?;
        let triggered = crate::dockerfile::images(&triggers.join("\n"), &BTreeMap::new())
            .map_err(|e| BuildError::Dockerfile(format!("{}'s ONBUILD triggers: {e}", base.image)))?;
        images.extend(triggered.into_iter().map(|n| n.image));
    }
    for image in &images {
        check_image_use(ctx, image).await?;
    }
    let ours = |image: &str| {
        skiff_api::ImageRef::parse(image).ok().filter(|reference| reference.is_on(ctx.engine.registry_host()))
    };
    let repositories: Vec<String> = images.iter().filter_map(|image| ours(image)).map(|r| r.repository).collect();
    let token = ctx.registry.pull_token(ctx.push.user.as_str(), &repositories).await?;
    let always = named.iter().filter(|n| n.base).all(|n| ours(&n.image).is_some());
    Ok(BasePulls { token, always })
}

async fn check_image_use(ctx: &Context<'_>, image: &str) -> Result<(), BuildError> {
    let request = ImageUse { username: ctx.push.user.clone(), image: image.to_owned() };
    ctx.controller.check_image_use(&request).await.map_err(|e| match e {
        ClientError::Api { message, .. } => BuildError::Dockerfile(message),
        other => BuildError::ImageCheck(other),
    })
}

/// The `ONBUILD` triggers of a (permitted) base image in Skiff's registry; none for images
/// of other registries, which the operator chose to trust.
async fn onbuild_triggers(ctx: &Context<'_>, image: &str) -> Result<Vec<String>, BuildError> {
    let Ok(reference) = skiff_api::ImageRef::parse(image) else { return Ok(Vec::new()) };
    if !reference.is_on(ctx.engine.registry_host()) {
        return Ok(Vec::new());
    }
    let tag = reference.reference.trim_start_matches([':', '@']);
    let tag = if tag.is_empty() { "latest" } else { tag };
    let base = BaseImage::fetch(ctx.registry, &reference.repository, tag)
        .await
        .map_err(|e| BuildError::Dockerfile(format!("cannot read {image} to check its ONBUILD triggers: {e}")))?;
    let triggers = base.config["config"]["OnBuild"].as_array().cloned().unwrap_or_default();
    Ok(triggers.iter().filter_map(|t| t.as_str().map(str::to_owned)).collect())
}

/// Builds with a buildpack when one is named or detected; `None` when none applies.
async fn build_with_buildpack(
    ctx: &Context<'_>,
    processes: Option<BTreeMap<ProcessType, String>>,
    kind: &mut BuildKind,
    out: &mut Output,
) -> Result<Option<(String, BTreeMap<ProcessType, String>)>, BuildError> {
    let work = ctx.data_dir.join("builds").join(format!("{:016x}", rand::random::<u64>()));
    tokio::fs::create_dir_all(&work).await.map_err(BuildpackError::Io)?;
    let result = async {
        let (buildpacks, named) = buildpack::candidates(ctx.data_dir, &ctx.push.config, &work).await?;
        if buildpacks.is_empty() {
            return Ok(None);
        }
        let stack = format!("{}/stacks/{}:latest", ctx.engine.registry_host(), ctx.push.stack);
        let dir = BuildDir::prepare(work.join("tree"), tree_tar(ctx, "").await?, &ctx.push.config).await?;
        let mut chosen = None;
        for candidate in &buildpacks {
            if dir.detect(ctx.engine, ctx.push.app.as_str(), &stack, candidate, out).await? {
                chosen = Some(candidate);
                break;
            }
        }
        let buildpack = match chosen {
            Some(buildpack) => buildpack,
            None if named => return Err(BuildpackError::NotDetected(buildpacks[0].name.clone()).into()),
            None => return Ok(None),
        };
        *kind = BuildKind::Buildpack;
        out.step(&format!("Buildpack {} detected; compiling on stack {}", buildpack.name, ctx.push.stack)).await;
        let cache = ctx.data_dir.join("cache").join(format!("{}-{}", ctx.push.app, ctx.push.id));
        dir.compile(ctx.engine, ctx.push.app.as_str(), &stack, buildpack, &cache, out).await?;
        let release = dir.release(ctx.engine, ctx.push.app.as_str(), &stack, buildpack, out).await?;
        let processes = match processes {
            Some(processes) => processes,
            // bin/compile may write the Procfile; else bin/release names the types.
            None => match tokio::fs::read_to_string(dir.app().join("Procfile")).await {
                Ok(text) => procfile::parse(&text)?,
                Err(_) if !release.default_process_types.is_empty() => {
                    let types: Vec<&str> = release.default_process_types.keys().map(|p| p.as_str()).collect();
                    out.step(&format!("Default types from bin/release -> {}", types.join(", "))).await;
                    release.default_process_types
                }
                Err(_) => return Err(BuildError::NoProcfile),
            },
        };
        let tar = dir.tar().await?;
        let image = push_on_stack(ctx, tar, &processes, &release.config_vars, out).await?;
        Ok(Some((image, processes)))
    }
    .await;
    let _ = tokio::fs::remove_dir_all(&work).await;
    result
}

/// Pushes `tar` (paths under `app/`) as one layer on the app's stack image, with
/// `env_defaults` added to the image's environment (the app's config overrides them);
/// returns the image as `<app>@<digest>`.
async fn push_on_stack(
    ctx: &Context<'_>,
    tar: Vec<u8>,
    processes: &BTreeMap<ProcessType, String>,
    env_defaults: &BTreeMap<String, String>,
    out: &mut Output,
) -> Result<String, BuildError> {
    let sha = ctx.update.new.as_str();
    let tag = format!("git-{}", &sha[..7.min(sha.len())]);
    if tar.len() > MAX_TREE_BYTES {
        return Err(BuildError::TooLarge);
    }
    let layer =
        tokio::task::spawn_blocking(move || Layer::from_tar(&tar)).await.map_err(|e| BuildError::Git(e.to_string()))?;
    out.step(&format!("Compressed app layer: {} KiB", layer.blob.len().div_ceil(1024))).await;
    let stack_repo = format!("stacks/{}", ctx.push.stack);
    let base = BaseImage::fetch(ctx.registry, &stack_repo, "latest")
        .await
        .map_err(|e| BuildError::Stack(ctx.push.stack.clone(), e))?;
    let procfile_label = serde_json::to_string(processes).expect("maps serialize");
    let digest = push_image(ctx.registry, ctx.push.app.as_str(), &tag, Some(&base), layer, |config| {
        let settings = &mut config["config"];
        if !settings.is_object() {
            *settings = serde_json::json!({});
        }
        settings["WorkingDir"] = "/app".into();
        if !env_defaults.is_empty() {
            let mut env: Vec<serde_json::Value> = settings["Env"].as_array().cloned().unwrap_or_default();
            let set = |name: &str| env.iter().any(|e| e.as_str().is_some_and(|e| e.split('=').next() == Some(name)));
            let added: Vec<serde_json::Value> =
                env_defaults.iter().filter(|(name, _)| !set(name)).map(|(n, v)| format!("{n}={v}").into()).collect();
            env.extend(added);
            settings["Env"] = env.into();
        }
        settings["Labels"] = serde_json::json!({ "skiff.procfile": procfile_label, "skiff.git-sha": sha });
    })
    .await?;
    out.step(&format!("Pushed image {}@{digest}", ctx.push.app)).await;
    Ok(format!("{}@{digest}", ctx.push.app))
}
