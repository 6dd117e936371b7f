//! The SSH exec command a git client sends, parsed and validated before anything runs.

use skiff_api::AppName;

/// The git services the builder offers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Service {
    /// `git push`.
    ReceivePack,
    /// `git clone` / `git fetch`.
    UploadPack,
}

impl Service {
    /// The git subcommand that implements it.
    pub fn git_subcommand(self) -> &'static str {
        match self {
            Self::ReceivePack => "receive-pack",
            Self::UploadPack => "upload-pack",
        }
    }
}

/// A validated git command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitCommand {
    pub service: Service,
    pub app: AppName,
}

/// Why a command was refused; the message is shown to the user.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    #[error(
        "only git pushes and clones are accepted here; add the remote with `skiff git:remote -a APP` and run `git push skiff main`"
    )]
    NotGit,
    #[error("`{0}` is not a valid app name")]
    BadApp(String),
}

/// Parses `git-receive-pack '/app.git'` (and the scp-style `'app'`, with or without
/// quotes, `.git` or a leading slash).
///
/// # Errors
/// Anything but `git-receive-pack` / `git-upload-pack` with one valid app name.
pub fn parse(command: &[u8]) -> Result<GitCommand, CommandError> {
    let command = std::str::from_utf8(command).map_err(|_| CommandError::NotGit)?.trim();
    let (service, argument) = command.split_once(' ').ok_or(CommandError::NotGit)?;
    let service = match service {
        "git-receive-pack" => Service::ReceivePack,
        "git-upload-pack" => Service::UploadPack,
        _ => return Err(CommandError::NotGit),
    };
    let argument = argument.trim();
    let unquoted = argument.strip_prefix('\'').and_then(|a| a.strip_suffix('\'')).unwrap_or(argument);
    let path = unquoted.strip_prefix('/').unwrap_or(unquoted);
    let path = path.strip_suffix('/').unwrap_or(path);
    let name = path.strip_suffix(".git").unwrap_or(path);
    let app = name.parse().map_err(|_| CommandError::BadApp(name.chars().take(64).collect()))?;
    Ok(GitCommand { service, app })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_commands_name_a_valid_app() {
        let push = |app: &str| Ok(GitCommand { service: Service::ReceivePack, app: app.parse().unwrap() });
        assert_eq!(parse(b"git-receive-pack '/shop.git'"), push("shop"));
        assert_eq!(parse(b"git-receive-pack 'shop'"), push("shop"));
        assert_eq!(parse(b"git-receive-pack shop.git"), push("shop"));
        assert_eq!(
            parse(b"git-upload-pack '/shop.git'"),
            Ok(GitCommand { service: Service::UploadPack, app: "shop".parse().unwrap() })
        );
    }

    #[test]
    fn anything_else_is_refused_before_it_runs() {
        for command in [&b"ls /"[..], b"git-receive-pack", b"sh -c id", b"scp -t /", b"\xff\xfe", b""] {
            assert_eq!(parse(command), Err(CommandError::NotGit), "{command:?}");
        }
        for hostile in [
            &b"git-receive-pack '/a;rm -rf /.git'"[..],
            b"git-receive-pack '$(id).git'",
            b"git-receive-pack '`id`'",
            b"git-receive-pack '../../etc.git'",
            b"git-receive-pack '-upload-pack=x'",
            b"git-receive-pack 'Shop.git'",
            b"git-receive-pack 'a\nb'",
        ] {
            assert!(matches!(parse(hostile), Err(CommandError::BadApp(_))), "{hostile:?}");
        }
    }
}
