//! The build pipeline for a pushed revision.
//!
//! Procfile apps: the pushed tree (`git archive`, so nothing is checked out) becomes one
//! layer under `/app` on top of the app's stack image; the stack's layers are mounted in
//! the registry, not uploaded again. The image is tagged `git-<sha>`, and the controller
//! turns it into the next release.

use std::path::Path;
use std::time::Instant;

use skiff_api::{AppName, BuildCreate, Release, StackName, Username};
use skiff_client::{Client, ClientError};
use skiff_registry_client::image::{BaseImage, Layer, push_image};
use skiff_registry_client::{RegistryClient, RegistryError};
use tokio::process::Command;

use crate::hook::{Output, RefUpdate};
use crate::procfile::{self, ProcfileError};

/// The largest pushed tree accepted, as an uncompressed tar.
const MAX_TREE_BYTES: usize = 1 << 30;

/// A push being built.
#[derive(Debug, Clone)]
pub struct Push {
    pub app: AppName,
    pub user: Username,
    pub stack: StackName,
    pub url: String,
}

/// Why a build failed; the message is shown to the pusher.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("no Procfile found; add one with a line like `web: ./server --port $PORT`")]
    NoProcfile,
    #[error(transparent)]
    Procfile(#[from] ProcfileError),
    #[error("the pushed tree is larger than {} MiB", MAX_TREE_BYTES >> 20)]
    TooLarge,
    #[error("git failed: {0}")]
    Git(String),
    #[error("stack `{0}` is not available ({1}); an admin can import it with `skiff stacks:import {0} DIR`")]
    Stack(StackName, RegistryError),
    #[error("pushing the image failed: {0}")]
    Registry(#[from] RegistryError),
    #[error("the controller refused the release: {0}")]
    Controller(#[from] ClientError),
}

/// Runs a git command against the pushed (quarantined) objects; returns stdout, or
/// `None` when git exits non-zero.
async fn git(repo: &Path, git_env: &[(String, String)], args: &[&str]) -> Result<Option<Vec<u8>>, BuildError> {
    let output = Command::new("git")
        .arg("--git-dir")
        .arg(repo)
        .args(args)
        .envs(git_env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| BuildError::Git(e.to_string()))?;
    Ok(output.status.success().then_some(output.stdout))
}

/// Builds `update.new` and creates a release from it.
///
/// # Errors
/// See [`BuildError`]; nothing is released when a step fails.
pub async fn run(
    push: &Push,
    repo: &Path,
    update: &RefUpdate,
    git_env: &[(String, String)],
    registry: &RegistryClient,
    controller: &Client,
    out: &mut Output,
) -> Result<Release, BuildError> {
    let started = Instant::now();
    let sha = update.new.as_str();
    let short = &sha[..7.min(sha.len())];
    out.step(&format!("Building {} from {short} on stack {}", push.app, push.stack)).await;

    let procfile_text =
        git(repo, git_env, &["cat-file", "blob", &format!("{sha}:Procfile")]).await?.ok_or(BuildError::NoProcfile)?;
    let processes = procfile::parse(&String::from_utf8_lossy(&procfile_text))?;
    let types: Vec<&str> = processes.keys().map(|p| p.as_str()).collect();
    out.step(&format!("Procfile declares types -> {}", types.join(", "))).await;

    let tar = git(repo, git_env, &["archive", "--format=tar", "--prefix=app/", sha])
        .await?
        .ok_or_else(|| BuildError::Git(format!("cannot archive {short}")))?;
    if tar.len() > MAX_TREE_BYTES {
        return Err(BuildError::TooLarge);
    }
    let layer =
        tokio::task::spawn_blocking(move || Layer::from_tar(&tar)).await.map_err(|e| BuildError::Git(e.to_string()))?;
    out.step(&format!("Compressed app layer: {} KiB", layer.blob.len().div_ceil(1024))).await;

    let stack_repo = format!("stacks/{}", push.stack);
    let base = BaseImage::fetch(registry, &stack_repo, "latest")
        .await
        .map_err(|e| BuildError::Stack(push.stack.clone(), e))?;
    let procfile_label = serde_json::to_string(&processes).expect("maps serialize");
    let digest = push_image(registry, push.app.as_str(), &format!("git-{short}"), Some(&base), layer, |config| {
        let settings = &mut config["config"];
        if !settings.is_object() {
            *settings = serde_json::json!({});
        }
        settings["WorkingDir"] = "/app".into();
        settings["Labels"] = serde_json::json!({ "skiff.procfile": procfile_label, "skiff.git-sha": sha });
    })
    .await?;
    out.step(&format!("Pushed image {}@{digest}", push.app)).await;

    let release = controller
        .create_build(&BuildCreate {
            app: push.app.clone(),
            username: push.user.clone(),
            image: format!("{}@{digest}", push.app),
            git_sha: sha.to_owned(),
            procfile: processes,
        })
        .await?;
    out.step(&format!("Released v{} in {:.1}s", release.version, started.elapsed().as_secs_f64())).await;
    out.detail(&format!("{} deployed to Skiff", push.url)).await;
    Ok(release)
}
