//! The stored login: `<config dir>/skiff/config.json`, mode 0600, holding the controller
//! URL, the user name and the token. `SKIFF_URL` and `SKIFF_TOKEN` override it.

use std::path::{Path, PathBuf};

use anyhow::Context as _;
use serde::{Deserialize, Serialize};

/// The controller URL used when none is configured.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7700";

/// What `auth:login` keeps.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Stored {
    pub url: Option<String>,
    pub username: Option<String>,
    pub token: Option<String>,
}

fn path(dir: &Path) -> PathBuf {
    dir.join("skiff").join("config.json")
}

/// Reads the stored login; absent means empty.
///
/// # Errors
/// When the file exists but cannot be read or parsed.
pub fn load(dir: &Path) -> anyhow::Result<Stored> {
    let path = path(dir);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not valid; delete it and log in again", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Stored::default()),
        Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
    }
}

/// Writes the stored login with mode 0600.
///
/// # Errors
/// When the file cannot be written.
pub fn save(dir: &Path, stored: &Stored) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let path = path(dir);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("cannot write {}", path.display()))?;
    file.write_all(&serde_json::to_vec_pretty(stored)?)?;
    Ok(())
}
