//! Bare repositories, one per app, and the pre-receive hook git runs in them.

use std::path::{Path, PathBuf};

use skiff_api::AppName;
use tokio::process::Command;

/// The bare repository of an app. The app's id is part of the path, so an app created
/// after another of the same name was destroyed starts with an empty repository.
pub fn path(data_dir: &Path, app: &AppName, id: i64) -> PathBuf {
    data_dir.join("repos").join(format!("{app}-{id}.git"))
}

/// Creates the bare repository if needed and (re)writes its pre-receive hook so that it
/// runs `<hook_program> hook pre-receive`.
///
/// # Errors
/// When `git init` fails or the hook cannot be written.
pub async fn prepare(data_dir: &Path, app: &AppName, id: i64, hook_program: &Path) -> std::io::Result<PathBuf> {
    let repo = path(data_dir, app, id);
    if !repo.join("HEAD").exists() {
        tokio::fs::create_dir_all(&repo).await?;
        let status = Command::new("git")
            .arg("init")
            .arg("--bare")
            .arg("--quiet")
            .arg("--initial-branch=main")
            .arg(&repo)
            .status()
            .await?;
        if !status.success() {
            return Err(std::io::Error::other(format!("git init --bare failed with {status}")));
        }
    }
    let hook = repo.join("hooks").join("pre-receive");
    tokio::fs::create_dir_all(repo.join("hooks")).await?;
    let script = format!("#!/bin/sh\nexec {} hook pre-receive\n", shell_quote(&hook_program.to_string_lossy()));
    let temp = repo.join("hooks").join(".pre-receive.tmp");
    tokio::fs::write(&temp, script).await?;
    set_executable(&temp).await?;
    tokio::fs::rename(&temp, &hook).await?;
    Ok(repo)
}

async fn set_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    tokio::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).await
}

/// Quotes a string for a POSIX shell: inside single quotes, with `'` as `'\''`.
fn shell_quote(value: &str) -> String {
    format!("'{}'", value.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_survives_hostile_paths() {
        assert_eq!(shell_quote("/usr/bin/skiffd"), "'/usr/bin/skiffd'");
        assert_eq!(shell_quote("/tmp/a'b $(x)"), r"'/tmp/a'\''b $(x)'");
    }

    #[tokio::test]
    async fn repositories_get_a_bare_repo_and_an_executable_hook() {
        let dir = tempfile::tempdir().unwrap();
        let app: AppName = "shop".parse().unwrap();
        let repo = prepare(dir.path(), &app, 7, Path::new("/opt/skiff/skiffd")).await.unwrap();
        assert!(repo.ends_with("repos/shop-7.git"));
        assert!(repo.join("HEAD").exists());
        let hook = std::fs::read_to_string(repo.join("hooks/pre-receive")).unwrap();
        assert!(hook.contains("exec '/opt/skiff/skiffd' hook pre-receive"));
        // Preparing again is harmless.
        prepare(dir.path(), &app, 7, Path::new("/opt/skiff/skiffd")).await.unwrap();
    }
}
