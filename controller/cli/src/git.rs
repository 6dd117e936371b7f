//! The `skiff` git remote of the current directory: reading the app it names, adding it.

use std::path::Path;
use std::process::Command;

use skiff_api::AppName;

/// The app named by a git URL like `ssh://git@127.0.0.1:2222/shop.git`.
pub fn app_of_url(url: &str) -> Option<AppName> {
    let last = url.trim().trim_end_matches('/').rsplit(['/', ':']).next()?;
    last.strip_suffix(".git").unwrap_or(last).parse().ok()
}

fn git(cwd: &Path, args: &[&str]) -> Option<String> {
    let output = Command::new("git").arg("-C").arg(cwd).args(args).output().ok()?;
    output.status.success().then(|| String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// The app of the `skiff` remote in `cwd`, if any.
pub fn remote_app(cwd: &Path) -> Option<AppName> {
    app_of_url(&git(cwd, &["remote", "get-url", "skiff"])?)
}

/// Whether `cwd` is inside a git work tree.
pub fn in_repository(cwd: &Path) -> bool {
    git(cwd, &["rev-parse", "--is-inside-work-tree"]).as_deref() == Some("true")
}

/// Points the `skiff` remote of `cwd` at `url`, adding it if needed.
///
/// # Errors
/// When git refuses.
pub fn set_remote(cwd: &Path, url: &str) -> anyhow::Result<()> {
    if git(cwd, &["remote", "get-url", "skiff"]).is_some() {
        git(cwd, &["remote", "set-url", "skiff", url])
    } else {
        git(cwd, &["remote", "add", "skiff", url])
    }
    .map(drop)
    .ok_or_else(|| anyhow::anyhow!("git could not set the `skiff` remote"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_name_their_app() {
        assert_eq!(app_of_url("ssh://git@127.0.0.1:2222/shop.git"), Some("shop".parse().unwrap()));
        assert_eq!(app_of_url("git@host:shop.git"), Some("shop".parse().unwrap()));
        assert_eq!(app_of_url("ssh://git@127.0.0.1:2222/Bad App.git"), None);
    }
}
