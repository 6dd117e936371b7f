//! Buildpack builds, as Heroku and Deis run them: the buildpack's `bin/detect` and
//! `bin/compile` run in a throwaway container of the app's stack, with the pushed tree at
//! `/app`, a per-app cache directory that survives between builds at `/cache`, and the
//! app's config as one file per variable in `/env`. The compiled `/app` becomes the app
//! layer.
//!
//! Which buildpack: `BUILDPACK_URL` in the app's config (a directory the builder can read,
//! or a git URL), else the first of `<data>/buildpacks/*` (in name order) whose `bin/detect`
//! accepts the app; with none, the app builds as a plain Procfile app.
//!
//! After `bin/compile`, the buildpack's `bin/release` (when it has one) prints YAML with
//! `default_process_types` (used when the app has no Procfile) and `config_vars`
//! (defaults that the app's config overrides), as Heroku's buildpack API says.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use skiff_api::ProcessType;
use tokio::process::Command;

use crate::engine::{BuildContainer, Engine, EngineError};
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
    #[error("buildpack {0} failed: bin/release exited with status {1}")]
    ReleaseFailed(String, i64),
    #[error("buildpack {0}'s bin/release printed what Skiff cannot read: {1}")]
    ReleaseUnreadable(String, ReleaseFileError),
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

    /// The app and the buildpack, mounted read-only (for `bin/detect` and `bin/release`).
    fn read_only(&self, buildpack: &Buildpack) -> Vec<String> {
        vec![format!("{}:/app:ro", self.app().display()), format!("{}:/buildpack:ro", buildpack.dir.display())]
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
        let binds = self.read_only(buildpack);
        Ok(engine
            .run(
                BuildContainer { app, image: stack, binds, env: Vec::new(), command: "/buildpack/bin/detect /app" },
                out,
                None,
            )
            .await?
            == 0)
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
        let status = engine
            .run(
                BuildContainer { app, image: stack, binds, env, command: "/buildpack/bin/compile /app /cache /env" },
                out,
                None,
            )
            .await?;
        if status == 0 { Ok(()) } else { Err(BuildpackError::Compile(buildpack.name.clone(), status)) }
    }

    /// Runs a buildpack's `bin/release` on the compiled app, when it has one, and reads
    /// what it prints.
    ///
    /// # Errors
    /// When `bin/release` fails or prints something unreadable, or the engine fails.
    pub async fn release(
        &self,
        engine: &Engine,
        app: &str,
        stack: &str,
        buildpack: &Buildpack,
        out: &mut Output,
    ) -> Result<BuildpackRelease, BuildpackError> {
        if !buildpack.dir.join("bin/release").is_file() {
            return Ok(BuildpackRelease::default());
        }
        let binds = self.read_only(buildpack);
        let mut printed = String::new();
        let status = engine
            .run(
                BuildContainer { app, image: stack, binds, env: Vec::new(), command: "/buildpack/bin/release /app" },
                out,
                Some(&mut printed),
            )
            .await?;
        if status != 0 {
            return Err(BuildpackError::ReleaseFailed(buildpack.name.clone(), status));
        }
        BuildpackRelease::parse(&printed).map_err(|e| BuildpackError::ReleaseUnreadable(buildpack.name.clone(), e))
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

/// What a buildpack's `bin/release` says of the app it compiled.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BuildpackRelease {
    /// Process types for an app without a Procfile.
    pub default_process_types: BTreeMap<ProcessType, String>,
    /// Environment defaults; the app's config wins over them.
    pub config_vars: BTreeMap<String, String>,
}

/// A line of `bin/release`'s output that Skiff cannot read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct ReleaseFileError {
    pub line: usize,
    pub problem: ReleaseProblem,
}

/// What is wrong with a line of `bin/release`'s output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ReleaseProblem {
    #[error("`{0}` is not `key: value`")]
    NotKeyValue(String),
    #[error("`{0}` should be a mapping, one `key: value` a line")]
    NotMapping(String),
    #[error("`{0}` has no closing quote")]
    Unclosed(String),
    #[error("`{0}` ends in a lone `\\`")]
    LoneBackslash(String),
    #[error("process type `{0}`: {1}")]
    ProcessType(String, skiff_api::NameError),
}

impl BuildpackRelease {
    /// Reads the YAML `bin/release` prints: the mappings `default_process_types` and
    /// `config_vars`, one `key: value` a line, values plain or quoted; other top-level keys
    /// (`addons`) are skipped.
    ///
    /// # Errors
    /// Says which line cannot be read and why.
    pub fn parse(text: &str) -> Result<Self, ReleaseFileError> {
        enum Section {
            ProcessTypes,
            ConfigVars,
            Other,
        }
        let mut release = Self::default();
        let mut section = Section::Other;
        for (number, line) in text.lines().enumerate().map(|(i, l)| (i + 1, l.trim_end())) {
            let at = |problem| ReleaseFileError { line: number, problem };
            let content = line.trim_start();
            let top_level = line.len() == content.len();
            let skipped = !top_level && matches!(section, Section::Other);
            if content.is_empty() || content.starts_with('#') || line == "---" || skipped {
                continue;
            }
            let (key, value) =
                content.split_once(':').ok_or_else(|| at(ReleaseProblem::NotKeyValue(content.to_owned())))?;
            let value = value.trim();
            if top_level {
                // A top-level key opens a section; only an empty mapping may follow one
                // that Skiff reads (others, such as `addons: []`, may hold anything).
                section = match key {
                    "default_process_types" => Section::ProcessTypes,
                    "config_vars" => Section::ConfigVars,
                    _ => Section::Other,
                };
                if !matches!(section, Section::Other) && !value.is_empty() && value != "{}" {
                    return Err(at(ReleaseProblem::NotMapping(key.to_owned())));
                }
                continue;
            }
            let value = unquote(value).map_err(at)?;
            match section {
                Section::ProcessTypes => {
                    let process: ProcessType =
                        key.trim().parse().map_err(|e| at(ReleaseProblem::ProcessType(key.to_owned(), e)))?;
                    release.default_process_types.insert(process, value);
                }
                Section::ConfigVars => {
                    release.config_vars.insert(key.trim().to_owned(), value);
                }
                // Skipped above.
                Section::Other => {}
            }
        }
        Ok(release)
    }
}

/// A YAML scalar as written on one line: plain, `'single'` (`''` is a quote) or
/// `"double"` (with `\"` and `\\` escapes).
fn unquote(value: &str) -> Result<String, ReleaseProblem> {
    if let Some(inner) = value.strip_prefix('\'') {
        let inner = inner.strip_suffix('\'').ok_or_else(|| ReleaseProblem::Unclosed(value.to_owned()))?;
        return Ok(inner.replace("''", "'"));
    }
    if let Some(inner) = value.strip_prefix('"') {
        let inner = inner.strip_suffix('"').ok_or_else(|| ReleaseProblem::Unclosed(value.to_owned()))?;
        let mut unescaped = String::with_capacity(inner.len());
        let mut chars = inner.chars();
        while let Some(c) = chars.next() {
            let c = if c == '\\' {
                chars.next().ok_or_else(|| ReleaseProblem::LoneBackslash(value.to_owned()))?
            } else {
                c
            };
            unescaped.push(c);
        }
        return Ok(unescaped);
    }
    Ok(value.to_owned())
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
    fn bin_release_output_gives_process_types_and_config_defaults() {
        let printed = "---\naddons: []\nother:\n  - heroku-postgresql\nconfig_vars:\n  LANG: en_US.UTF-8\n  QUOTED: \"a \\\"b\\\" c\"\n  SINGLE: 'it''s'\ndefault_process_types:\n  web: exec ./server --port \"$PORT\"\n  worker: bin/worker\n";
        let release = BuildpackRelease::parse(printed).unwrap();
        let types: Vec<(&str, &str)> =
            release.default_process_types.iter().map(|(p, c)| (p.as_str(), c.as_str())).collect();
        assert_eq!(types, [("web", "exec ./server --port \"$PORT\""), ("worker", "bin/worker")]);
        assert_eq!(release.config_vars["LANG"], "en_US.UTF-8");
        assert_eq!(release.config_vars["QUOTED"], "a \"b\" c");
        assert_eq!(release.config_vars["SINGLE"], "it's");
        assert_eq!(BuildpackRelease::parse("--- {}\n").ok(), None, "not a mapping");
        assert_eq!(BuildpackRelease::parse("").unwrap(), BuildpackRelease::default(), "nothing to say");
        assert_eq!(BuildpackRelease::parse("config_vars: {}\n").unwrap(), BuildpackRelease::default());
        let bad = BuildpackRelease::parse("default_process_types:\n  Web Server: x\n").unwrap_err();
        assert!(bad.line == 2 && matches!(bad.problem, ReleaseProblem::ProcessType(..)), "{bad}");
        assert!(bad.to_string().starts_with("line 2: process type"), "{bad}");
        let bad = BuildpackRelease::parse("config_vars:\n  A: \"open\n").unwrap_err();
        assert_eq!(bad.problem, ReleaseProblem::Unclosed("\"open".into()), "{bad}");
        assert!(bad.to_string().contains("no closing quote"), "{bad}");
        let bad = BuildpackRelease::parse("default_process_types: {web: x}\n").unwrap_err();
        assert!(bad.to_string().contains("should be a mapping"), "{bad}");
    }

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
