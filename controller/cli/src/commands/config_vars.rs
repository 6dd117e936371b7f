//! `config:*`: an app's config vars, and `.env` files.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context as _, anyhow, bail};
use clap::Subcommand;
use skiff_api::AppName;

use crate::args::{AppArg, JsonArg, WaitArg, parse_config_pair};
use crate::commands::{app_name, client};
use crate::output::json;
use crate::rollout::follow_rollout;
use crate::{Context, dotenv};

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigVarsVerb {
    /// Show an app's config (environment).
    #[command(name = "config")]
    Config {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Write the app's config to a .env file (default: .env).
    #[command(name = "config:pull")]
    ConfigPull {
        /// The file to write.
        #[arg(long, default_value = ".env")]
        file: PathBuf,
        /// Replace the file if it exists.
        #[arg(long)]
        overwrite: bool,
        #[command(flatten)]
        app: AppArg,
    },
    /// Set the app's config from a .env file (default: .env); makes a new release.
    #[command(name = "config:push")]
    ConfigPush {
        /// The file to read.
        #[arg(long, default_value = ".env")]
        file: PathBuf,
        #[command(flatten)]
        app: AppArg,
    },
    /// Print one config value.
    #[command(name = "config:get")]
    ConfigGet {
        key: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Set config values (KEY=VALUE ...); makes a new release.
    #[command(name = "config:set")]
    ConfigSet {
        #[arg(required = true, value_name = "KEY=VALUE", value_parser = parse_config_pair)]
        pairs: Vec<(String, String)>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// Unset config keys; makes a new release.
    #[command(name = "config:unset")]
    ConfigUnset {
        #[arg(required = true, value_name = "KEY")]
        keys: Vec<String>,
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        wait: WaitArg,
    },
}

pub(crate) async fn execute(
    verb: ConfigVarsVerb,
    context: &Context,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        ConfigVarsVerb::Config { app, json: flag } => {
            let config = client(context)?.config(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &config);
            }
            let width = config.keys().map(String::len).max().unwrap_or(0);
            for (key, value) in &config {
                writeln!(out, "{key:<width$}  {value}")?;
            }
            Ok(())
        }
        ConfigVarsVerb::ConfigPull { file, overwrite, app } => {
            let app = app_name(context, app)?;
            let path = context.cwd.join(&file);
            if path.exists() && !overwrite {
                bail!("{} exists; pass --overwrite to replace it", file.display());
            }
            let config = client(context)?.config(&app).await?;
            std::fs::write(&path, dotenv::render(&config))
                .with_context(|| format!("cannot write {}", path.display()))?;
            writeln!(out, "Wrote {} keys of {app} to {}", config.len(), file.display())?;
            Ok(())
        }
        ConfigVarsVerb::ConfigPush { file, app } => {
            let app = app_name(context, app)?;
            let path = context.cwd.join(&file);
            let text = std::fs::read_to_string(&path).with_context(|| format!("cannot read {}", path.display()))?;
            let pairs = dotenv::parse(&text)?;
            if pairs.is_empty() {
                bail!("{} sets nothing", file.display());
            }
            let change = pairs.into_iter().map(|(k, v)| (k, Some(v))).collect();
            let changed = client(context)?.change_config(&app, &change).await?;
            report_config(out, &app, changed.release.map(|r| r.version))
        }
        ConfigVarsVerb::ConfigGet { key, app } => {
            let config = client(context)?.config(&app_name(context, app)?).await?;
            let value = config.get(&key).ok_or_else(|| anyhow!("{key} is not set; see `skiff config`"))?;
            writeln!(out, "{value}")?;
            Ok(())
        }
        ConfigVarsVerb::ConfigSet { pairs, app, wait } => {
            let app = app_name(context, app)?;
            let change = pairs.into_iter().map(|(key, value)| (key, Some(value))).collect();
            let changed = client(context)?.change_config(&app, &change).await?;
            let version = changed.release.map(|r| r.version);
            report_config(out, &app, version)?;
            follow_rollout(context, &app, version.filter(|_| wait.wait), err).await
        }
        ConfigVarsVerb::ConfigUnset { keys, app, wait } => {
            let app = app_name(context, app)?;
            let change = keys.into_iter().map(|k| (k, None)).collect();
            let changed = client(context)?.change_config(&app, &change).await?;
            let version = changed.release.map(|r| r.version);
            report_config(out, &app, version)?;
            follow_rollout(context, &app, version.filter(|_| wait.wait), err).await
        }
    }
}

pub(crate) fn report_config(out: &mut impl Write, app: &AppName, release: Option<u32>) -> anyhow::Result<()> {
    match release {
        Some(version) => writeln!(out, "Config of {app} updated; released v{version}")?,
        None => writeln!(out, "Config of {app} updated; it applies from the first release")?,
    }
    Ok(())
}
