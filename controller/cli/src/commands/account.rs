//! `auth:*` and `keys:*`: signing up and in, and the SSH keys `git push` uses.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow};
use clap::Subcommand;
use skiff_api::Credentials;
use skiff_client::Client;

use crate::args::{AuthArgs, JsonArg};
use crate::commands::{ask, client};
use crate::output::{json, table};
use crate::{Context, config};

#[derive(Debug, Subcommand)]
pub(crate) enum AccountVerb {
    /// Create an account (the first one becomes admin) and log in.
    #[command(name = "auth:register")]
    AuthRegister(AuthArgs),
    /// Log in and store the token.
    #[command(name = "auth:login")]
    AuthLogin(AuthArgs),
    /// Forget the stored token.
    #[command(name = "auth:logout")]
    AuthLogout,
    /// Show who you are logged in as.
    #[command(name = "auth:whoami")]
    AuthWhoami(JsonArg),
    /// List your SSH keys.
    #[command(name = "keys")]
    Keys(JsonArg),
    /// Add an SSH public key (default: ~/.ssh/id_ed25519.pub or ~/.ssh/id_rsa.pub).
    #[command(name = "keys:add")]
    KeysAdd { path: Option<PathBuf> },
    /// Remove an SSH key by id.
    #[command(name = "keys:remove")]
    KeysRemove { id: i64 },
}

pub(crate) async fn execute(
    verb: AccountVerb,
    context: &Context,
    out: &mut impl Write,
    _err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        AccountVerb::AuthRegister(args) => authenticate(context, args, true, out).await,
        AccountVerb::AuthLogin(args) => authenticate(context, args, false, out).await,
        AccountVerb::AuthLogout => {
            // Revoke the token on the controller when it can be reached; forget it either way.
            if let Ok(client) = client(context) {
                let _ = client.logout().await;
            }
            let mut stored = config::load(&context.config_dir)?;
            stored.token = None;
            config::save(&context.config_dir, &stored)?;
            writeln!(out, "Logged out")?;
            Ok(())
        }
        AccountVerb::AuthWhoami(flag) => {
            let user = client(context)?.whoami().await?;
            if flag.json {
                return json(out, &user);
            }
            writeln!(out, "{}{}", user.username, if user.admin { " (admin)" } else { "" })?;
            Ok(())
        }
        AccountVerb::Keys(flag) => {
            let keys = client(context)?.keys().await?;
            if flag.json {
                return json(out, &keys);
            }
            let rows = keys.iter().map(|k| vec![k.id.to_string(), k.fingerprint.clone(), k.comment.clone()]).collect();
            table(out, context.colour, &["ID", "FINGERPRINT", "COMMENT"], rows)
        }
        AccountVerb::KeysAdd { path } => {
            let path = match path {
                Some(path) => path,
                None => default_key(context)?,
            };
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let key = client(context)?.add_key(text.trim()).await?;
            writeln!(out, "Added key {} ({})", key.fingerprint, path.display())?;
            Ok(())
        }
        AccountVerb::KeysRemove { id } => {
            client(context)?.remove_key(id).await?;
            writeln!(out, "Removed key {id}")?;
            Ok(())
        }
    }
}

pub(crate) async fn authenticate(
    context: &Context,
    args: AuthArgs,
    register: bool,
    out: &mut impl Write,
) -> anyhow::Result<()> {
    let stored = config::load(&context.config_dir)?;
    let url = args.url.or(context.url.clone()).or(stored.url.clone()).unwrap_or_else(|| config::DEFAULT_URL.to_owned());
    let username = match args.username {
        Some(username) => username,
        None => ask("username: ")?.parse().context("invalid user name")?,
    };
    let password = match args.password {
        Some(password) => password,
        // No echo on a terminal; piped input is read as a line.
        None => rpassword::prompt_password("password: ").or_else(|_| ask(""))?,
    };
    // An admin who is logged in creates accounts for others and stays logged in as before.
    let token = context.token.clone().or(stored.token).filter(|_| register);
    let creating_for_other = token.is_some();
    let client = Client::noting_version(&url, token, context.server_version.clone());
    let credentials = Credentials { username, password };
    let session = if register { client.register(&credentials).await? } else { client.login(&credentials).await? };
    if creating_for_other {
        writeln!(out, "Created user {}; they log in with `skiff auth:login`", session.username)?;
        return Ok(());
    }
    config::save(
        &context.config_dir,
        &config::Stored {
            url: Some(url.clone()),
            username: Some(session.username.to_string()),
            token: Some(session.token),
        },
    )?;
    let role = if session.admin { " (admin)" } else { "" };
    writeln!(out, "Logged in to {url} as {}{role}", session.username)?;
    Ok(())
}

pub(crate) fn default_key(context: &Context) -> anyhow::Result<PathBuf> {
    ["id_ed25519.pub", "id_ecdsa.pub", "id_rsa.pub"]
        .iter()
        .map(|name| context.home.join(".ssh").join(name))
        .find(|path| path.exists())
        .ok_or_else(|| anyhow!("no key in ~/.ssh; create one with `ssh-keygen -t ed25519` or pass a .pub file"))
}
