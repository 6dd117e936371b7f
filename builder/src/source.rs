//! Builds from a source repository, asked for by the controller (a verified push event, or
//! `skiff builds:create`): the builder fetches the commit into the app's repository and
//! builds it through the same pipeline as a `git push`, its log kept with the build.
//!
//! One build at a time per app, sharing the push lock with `git push`. A push that comes
//! while the app builds waits, and a newer one replaces it (only the newest commit is
//! built); a commit that is an ancestor of the last one built (an event that came late)
//! is not built, so an older commit is never deployed after a newer one.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use skiff_api::{SourceBuild, SourceBuildAnswer};
use tokio::process::Command;

use crate::build::{self, Push};
use crate::hook::{Output, RefUpdate};
use crate::repo;
use crate::ssh::{Builder, lock};

/// How long a fetch may take.
const FETCH_TIMEOUT: Duration = Duration::from_secs(600);
/// How long a build from source waits for a `git push` to the app to end.
const LOCK_WAIT: Duration = Duration::from_secs(1800);
/// Where fetched commits are kept in the app's repository.
const FETCHED: &str = "refs/skiff/source";
/// The branch builds are recorded on, as for pushes.
const DEPLOYED: &str = "refs/heads/main";

/// Runs git on `repo`; its trimmed standard output, or why it failed.
async fn git(repo: &Path, args: &[&str], timeout: Duration) -> Result<String, String> {
    git_with(repo, args, None, timeout).await
}

/// Runs git on `repo`, reaching ssh repositories with the private key in `ssh_key` (a
/// file) when there is one.
async fn git_with(repo: &Path, args: &[&str], ssh_key: Option<&Path>, timeout: Duration) -> Result<String, String> {
    let mut command = Command::new("git");
    if let Some(key) = ssh_key {
        // The host's key is learnt on first use, per builder, as `git clone` would.
        let known_hosts = key.parent().unwrap_or(key).join("known_hosts");
        command.env(
            "GIT_SSH_COMMAND",
            format!(
                "ssh -i '{}' -o IdentitiesOnly=yes -o BatchMode=yes -o StrictHostKeyChecking=accept-new -o UserKnownHostsFile='{}'",
                key.display(),
                known_hosts.display()
            ),
        );
    }
    let run = command
        .arg("--git-dir")
        .arg(repo)
        .args(["-c", "credential.helper=", "-c", "core.askPass=true"])
        .args(args)
        .env("GIT_TERMINAL_PROMPT", "0")
        .kill_on_drop(true)
        .output();
    let output = tokio::time::timeout(timeout, run)
        .await
        .map_err(|_| format!("git {} took over {} s", args[0], timeout.as_secs()))?
        .map_err(|e| format!("cannot run git: {e}"))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
    } else {
        Err(String::from_utf8_lossy(&output.stderr).trim().to_owned())
    }
}

/// A deploy key written for one fetch (owner-only), gone when dropped.
struct DeployKey {
    path: std::path::PathBuf,
}

impl DeployKey {
    async fn write(data_dir: &Path, private: &str) -> Result<Self, String> {
        use std::os::unix::fs::OpenOptionsExt as _;
        let dir = data_dir.join("deploy-keys");
        tokio::fs::create_dir_all(&dir).await.map_err(|e| format!("cannot keep the deploy key: {e}"))?;
        let path = dir.join(format!("{:032x}", rand::random::<u128>()));
        let mut text = private.to_owned();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        let written = path.clone();
        tokio::task::spawn_blocking(move || {
            use std::io::Write as _;
            let mut file = std::fs::OpenOptions::new().write(true).create_new(true).mode(0o600).open(&written)?;
            file.write_all(text.as_bytes())
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("cannot keep the deploy key: {e}"))?;
        Ok(Self { path })
    }
}

impl Drop for DeployKey {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Builder {
    /// Takes a build in: started now, or queued behind the app's running one.
    pub fn take_source_build(self: &Arc<Self>, wanted: SourceBuild) -> SourceBuildAnswer {
        let app = wanted.app.clone();
        let what =
            wanted.commit.as_deref().map_or_else(|| wanted.reference.clone(), |c| c[..7.min(c.len())].to_owned());
        let mut queue = lock(&self.source_queue);
        if let Some(next) = queue.get_mut(&app) {
            let replaced = next.replace(wanted).is_some();
            let message = if replaced {
                format!("building {what} after the running build of {app}, instead of the push that waited")
            } else {
                format!("building {what} after the running build of {app}")
            };
            return SourceBuildAnswer { building: true, message };
        }
        queue.insert(app.clone(), None);
        drop(queue);
        let builder = self.clone();
        tokio::spawn(async move {
            let mut next = Some(wanted);
            while let Some(wanted) = next {
                if let Err(error) = builder.build_source(&wanted).await {
                    tracing::warn!(app = %wanted.app, %error, "builder.source.failed");
                }
                let mut queue = lock(&builder.source_queue);
                next = queue.get_mut(&wanted.app).and_then(Option::take);
                if next.is_none() {
                    queue.remove(&wanted.app);
                }
            }
        });
        SourceBuildAnswer { building: true, message: format!("building {what}") }
    }

    /// Fetches and builds one commit.
    async fn build_source(self: &Arc<Self>, wanted: &SourceBuild) -> Result<(), String> {
        let app = &wanted.app;
        let grant = self.controller.push_grant(app, &wanted.username).await.map_err(|e| e.to_string())?;
        let mut waited = Duration::ZERO;
        let _lock = loop {
            if let Some(lock) = self.lock_app(app) {
                break lock;
            }
            if waited >= LOCK_WAIT {
                return Err(format!("a push to {app} held it for over {} s", LOCK_WAIT.as_secs()));
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
            waited += Duration::from_secs(1);
        };
        let repo = repo::prepare(&self.config.data_dir, app, grant.id, &self.config.hook_program)
            .await
            .map_err(|e| format!("cannot prepare the repository: {e}"))?;
        let refspec = format!("+{}:{FETCHED}", wanted.reference);
        let key = match &wanted.ssh_key {
            Some(private) => Some(DeployKey::write(&self.config.data_dir, private).await?),
            None => None,
        };
        let fetch = ["fetch", "--no-tags", "--quiet", &wanted.repo, &refspec];
        git_with(&repo, &fetch, key.as_ref().map(|k| k.path.as_path()), FETCH_TIMEOUT)
            .await
            .map_err(|e| format!("cannot fetch {} from the repository: {e}", wanted.reference))?;
        drop(key);
        let commit = match &wanted.commit {
            Some(commit) => commit.clone(),
            None => git(&repo, &["rev-parse", FETCHED], FETCH_TIMEOUT).await?,
        };
        git(&repo, &["cat-file", "-e", &format!("{commit}^{{commit}}")], FETCH_TIMEOUT)
            .await
            .map_err(|_| format!("{commit} is not on {} of the repository", wanted.reference))?;
        let built = git(&repo, &["rev-parse", "--verify", "--quiet", DEPLOYED], FETCH_TIMEOUT).await.ok();
        if let Some(built) = &built
            && built != &commit
            && git(&repo, &["merge-base", "--is-ancestor", &commit, built], FETCH_TIMEOUT).await.is_ok()
        {
            tracing::info!(%app, commit, built, "builder.source.older");
            return Ok(());
        }
        let _permit = self.builds.acquire().await.map_err(|e| e.to_string())?;
        let push = Push {
            app: grant.app,
            id: grant.id,
            user: wanted.username.clone(),
            stack: grant.stack,
            url: grant.url,
            config: grant.config,
        };
        let update =
            RefUpdate { old: built.unwrap_or_else(|| "0".repeat(40)), new: commit.clone(), name: DEPLOYED.into() };
        let context = build::Context {
            push: &push,
            data_dir: &self.config.data_dir,
            repo: &repo,
            update: &update,
            git_env: &[],
            registry: &self.registry,
            controller: &self.controller,
            engine: &self.engine,
        };
        let mut out = Output::detached();
        out.step(&wanted.trigger).await;
        let released = build::run(&context, &mut out).await.map_err(|e| e.to_string())?;
        git(&repo, &["update-ref", DEPLOYED, &commit], FETCH_TIMEOUT).await?;
        tracing::info!(%app, version = released.release.version, commit, "builder.source.released");
        Ok(())
    }
}
