//! Buildpack builds, as Heroku and Deis run them: the buildpack's `bin/detect` and
//! `bin/compile` run in a throwaway container of the app's stack, with the pushed tree at
//! `/app`, a per-app cache directory that survives between builds at `/cache`, and the
//! app's config as one file per variable in `/env`. The compiled `/app` becomes the app
//! layer.
//!
//! Which buildpack: `BUILDPACK_URL` in the app's config (a directory the builder can read,
//! or a git URL), else the first of `<data>/buildpacks/*` (in name order) whose `bin/detect`
//! accepts the app; with none, the app builds as a plain Procfile app.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tokio::process::Command;

use crate::engine::{Engine, EngineError};
use crate::hook::Output;

/// A buildpack on the builder's disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Buildpack {
    /// How it was named: a path or URL, or its directory name.
    pub name: String,
    pub dir: PathBuf,
}

/// Why a buildpack build failed.
#[derive(Debug, thiserror::Error)]
pub enum BuildpackError {
    #[error("BUILDPACK_URL `{0}` is neither a readable directory nor a git URL")]
    Unusable(String),
    #[error("cannot fetch buildpack {0}: {1}")]
    Fetch(String, String),
    #[error("buildpack {0} does not support this app (bin/detect said no)")]
    NotDetected(String),
    #[error("buildpack {0} failed: bin/compile exited with status {1}")]
    Compile(String, i64),
    #[error("the build directory failed: {0}")]
    Io(#[from] std::io::Error),
    #[error(transparent)]
    Engine(#[from] EngineError),
}

fn is_git_url(url: &str) -> bool {
    url.contains("://") || url.starts_with("git@") || url.ends_with(".git")
}

/// The buildpack `BUILDPACK_URL` names (fetched into `work` when it is a git URL), or
/// every installed one.
///
/// # Errors
/// When `BUILDPACK_URL` cannot be used or fetched.
pub async fn candidates(
    data_dir: &Path,
    config: &BTreeMap<String, String>,
    work: &Path,
) -> Result<(Vec<Buildpack>, bool), BuildpackError> {
    if let Some(url) = config.get("BUILDPACK_URL").filter(|u| !u.is_empty()) {
        let path = Path::new(url);
        if path.is_absolute() && path.join("bin/compile").is_file() {
            return Ok((vec![Buildpack { name: url.clone(), dir: path.to_owned() }], true));
        }
        if !is_git_url(url) || url.starts_with('-') {
            return Err(BuildpackError::Unusable(url.clone()));
        }
        let (url_part, branch) = url.split_once('#').map_or((url.as_str(), None), |(u, b)| (u, Some(b)));
        let dir = work.join("buildpack");
        let mut clone = Command::new("git");
        clone.args(["clone", "--quiet", "--depth", "1"]);
        if let Some(branch) = branch {
            clone.args(["--branch", branch]);
        }
        let output = clone.arg("--").arg(url_part).arg(&dir).output().await?;
        if !output.status.success() {
            let reason = String::from_utf8_lossy(&output.stderr).trim().to_owned();
            return Err(BuildpackError::Fetch(url.clone(), reason));
        }
        return Ok((vec![Buildpack { name: url.clone(), dir }], true));
    }
    let mut installed = Vec::new();
    if let Ok(mut entries) = tokio::fs::read_dir(data_dir.join("buildpacks")).await {
        while let Some(entry) = entries.next_entry().await? {
            if entry.path().join("bin/detect").is_file() {
                installed.push(Buildpack { name: entry.file_name().to_string_lossy().into_owned(), dir: entry.path() });
            }
        }
    }
    installed.sort_by(|a, b| a.name.cmp(&b.name));
    Ok((installed, false))
}

/// A prepared build: `<work>/root/app` holds the tree, `<work>/env` the config.
pub struct BuildDir {
    pub work: PathBuf,
}

impl BuildDir {
    pub fn app(&self) -> PathBuf {
        self.work.join("root").join("app")
    }

    fn env(&self) -> PathBuf {
        self.work.join("env")
    }

    /// Unpacks `tree` (a tar) into the app directory and writes the config files.
    ///
    /// # Errors
    /// When the directories cannot be written.
    pub async fn prepare(
        work: PathBuf,
        tree: Vec<u8>,
        config: &BTreeMap<String, String>,
    ) -> Result<Self, BuildpackError> {
        let dir = Self { work };
        tokio::fs::create_dir_all(dir.app()).await?;
        tokio::fs::create_dir_all(dir.env()).await?;
        untar(&dir.app(), tree).await?;
        for (name, value) in config {
            tokio::fs::write(dir.env().join(name), value).await?;
        }
        Ok(dir)
    }

    /// Runs a buildpack's `bin/detect`; `true` when it accepts the app.
    ///
    /// # Errors
    /// When the engine fails.
    pub async fn detect(
        &self,
        engine: &Engine,
        app: &str,
        stack: &str,
        buildpack: &Buildpack,
        out: &mut Output,
    ) -> Result<bool, BuildpackError> {
        let binds =
            vec![format!("{}:/app:ro", self.app().display()), format!("{}:/buildpack:ro", buildpack.dir.display())];
        Ok(engine.run(app, stack, binds, Vec::new(), "/buildpack/bin/detect /app", out).await? == 0)
    }

    /// Runs a buildpack's `bin/compile` with the app's cache directory.
    ///
    /// # Errors
    /// When compile fails or the engine does.
    pub async fn compile(
        &self,
        engine: &Engine,
        app: &str,
        stack: &str,
        buildpack: &Buildpack,
        cache: &Path,
        out: &mut Output,
    ) -> Result<(), BuildpackError> {
        tokio::fs::create_dir_all(cache).await?;
        let binds = vec![
            format!("{}:/app", self.app().display()),
            format!("{}:/buildpack:ro", buildpack.dir.display()),
            format!("{}:/cache", cache.display()),
            format!("{}:/env:ro", self.env().display()),
        ];
        let env = vec!["STACK=skiff".to_owned()];
        let status = engine.run(app, stack, binds, env, "/buildpack/bin/compile /app /cache /env", out).await?;
        if status == 0 { Ok(()) } else { Err(BuildpackError::Compile(buildpack.name.clone(), status)) }
    }

    /// The compiled tree as a tar with every path under `app/`.
    ///
    /// # Errors
    /// When `tar` fails.
    pub async fn tar(&self) -> Result<Vec<u8>, BuildpackError> {
        let output = Command::new("tar")
            .arg("--numeric-owner")
            .arg("-C")
            .arg(self.work.join("root"))
            .args(["-cf", "-", "app"])
            .output()
            .await?;
        if !output.status.success() {
            return Err(std::io::Error::other(String::from_utf8_lossy(&output.stderr).into_owned()).into());
        }
        Ok(output.stdout)
    }

    /// Removes the build directory.
    pub async fn remove(self) {
        let _ = tokio::fs::remove_dir_all(&self.work).await;
    }
}

/// Unpacks a tar into `dir` with the system's `tar`, which refuses paths that leave it.
async fn untar(dir: &Path, tree: Vec<u8>) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    let mut child = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(dir)
        .stdin(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin.write_all(&tree).await?;
    }
    let output = child.wait_with_output().await?;
    if output.status.success() {
        Ok(())
    } else {
        Err(std::io::Error::other(format!("tar failed: {}", String::from_utf8_lossy(&output.stderr).trim())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_urls_are_told_from_paths() {
        assert!(is_git_url("https://example.com/buildpack.git"));
        assert!(is_git_url("file:///srv/buildpacks/tiny"));
        assert!(is_git_url("git@example.com:team/buildpack"));
        assert!(!is_git_url("/srv/buildpacks/tiny"));
        assert!(!is_git_url("tiny"));
    }

    #[tokio::test]
    async fn installed_buildpacks_are_listed_in_name_order() {
        let data = tempfile::tempdir().unwrap();
        for name in ["b-python", "a-static", "not-a-buildpack"] {
            std::fs::create_dir_all(data.path().join("buildpacks").join(name).join("bin")).unwrap();
        }
        for name in ["b-python", "a-static"] {
            std::fs::write(data.path().join("buildpacks").join(name).join("bin/detect"), "#!/bin/sh\n").unwrap();
        }
        let (found, named) = candidates(data.path(), &BTreeMap::new(), data.path()).await.unwrap();
        assert!(!named);
        let names: Vec<&str> = found.iter().map(|b| b.name.as_str()).collect();
        assert_eq!(names, ["a-static", "b-python"]);
        let config = BTreeMap::from([("BUILDPACK_URL".to_owned(), "nonsense".to_owned())]);
        assert!(matches!(candidates(data.path(), &config, data.path()).await, Err(BuildpackError::Unusable(_))));
    }
}
