//! The verbs, one module per topic, and what they share: the client from the stored login,
//! the app a command acts on, and questions asked at the terminal.

mod account;
mod apps;
mod canary;
mod completions;
mod config_vars;
mod cron;
mod git_remote;
mod logs;
mod nodes;
mod pipelines;
mod platform;
mod ps;
mod registry;
mod releases;
mod routing;
mod settings;
mod sources;
mod stacks;
mod trail;
mod webhooks;

use std::io::{BufRead, Write};

use anyhow::{Context as _, anyhow, bail};
use clap::Subcommand;
use skiff_api::AppName;
use skiff_client::Client;

use crate::args::AppArg;
use crate::{Context, config, git};

/// Every verb but `run` (which exits with its command's status), in the order `skiff --help`
/// lists them.
#[derive(Debug, Subcommand)]
pub(crate) enum Verb {
    #[command(flatten)]
    Account(account::AccountVerb),
    #[command(flatten)]
    Apps(apps::AppsVerb),
    #[command(flatten)]
    Trail(trail::TrailVerb),
    #[command(flatten)]
    Webhooks(webhooks::WebhooksVerb),
    #[command(flatten)]
    Cron(cron::CronVerb),
    #[command(flatten)]
    Sources(sources::SourcesVerb),
    #[command(flatten)]
    Routing(routing::RoutingVerb),
    #[command(flatten)]
    Completions(completions::CompletionsVerb),
    #[command(flatten)]
    Settings(settings::SettingsVerb),
    #[command(flatten)]
    Registry(registry::RegistryVerb),
    #[command(flatten)]
    ConfigVars(config_vars::ConfigVarsVerb),
    #[command(flatten)]
    Ps(ps::PsVerb),
    #[command(flatten)]
    Releases(releases::ReleasesVerb),
    #[command(flatten)]
    Canary(canary::CanaryVerb),
    #[command(flatten)]
    Pipelines(pipelines::PipelinesVerb),
    #[command(flatten)]
    Logs(logs::LogsVerb),
    #[command(flatten)]
    GitRemote(git_remote::GitRemoteVerb),
    #[command(flatten)]
    Stacks(stacks::StacksVerb),
    #[command(flatten)]
    Nodes(nodes::NodesVerb),
    #[command(flatten)]
    Platform(platform::PlatformVerb),
}

/// Runs one verb.
pub(crate) async fn execute(
    verb: Verb,
    context: &Context,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        Verb::Account(verb) => account::execute(verb, context, out, err).await,
        Verb::Apps(verb) => apps::execute(verb, context, out, err).await,
        Verb::Trail(verb) => trail::execute(verb, context, out, err).await,
        Verb::Webhooks(verb) => webhooks::execute(verb, context, out, err).await,
        Verb::Cron(verb) => cron::execute(verb, context, out, err).await,
        Verb::Sources(verb) => sources::execute(verb, context, out, err).await,
        Verb::Routing(verb) => routing::execute(verb, context, out, err).await,
        Verb::Completions(verb) => completions::execute(verb, context, out, err).await,
        Verb::Settings(verb) => settings::execute(verb, context, out, err).await,
        Verb::Registry(verb) => registry::execute(verb, context, out, err).await,
        Verb::ConfigVars(verb) => config_vars::execute(verb, context, out, err).await,
        Verb::Ps(verb) => ps::execute(verb, context, out, err).await,
        Verb::Releases(verb) => releases::execute(verb, context, out, err).await,
        Verb::Canary(verb) => canary::execute(verb, context, out, err).await,
        Verb::Pipelines(verb) => pipelines::execute(verb, context, out, err).await,
        Verb::Logs(verb) => logs::execute(verb, context, out, err).await,
        Verb::GitRemote(verb) => git_remote::execute(verb, context, out, err).await,
        Verb::Stacks(verb) => stacks::execute(verb, context, out, err).await,
        Verb::Nodes(verb) => nodes::execute(verb, context, out, err).await,
        Verb::Platform(verb) => platform::execute(verb, context, out, err).await,
    }
}

/// A controller client from the stored login and overrides.
pub(crate) fn client(context: &Context) -> anyhow::Result<Client> {
    let stored = config::load(&context.config_dir)?;
    let url = context.url.clone().or(stored.url).unwrap_or_else(|| config::DEFAULT_URL.to_owned());
    let token = context.token.clone().or(stored.token);
    if token.is_none() {
        bail!("not logged in; run `skiff auth:login` (or `skiff auth:register` for a new account)");
    }
    Ok(Client::noting_version(&url, token, context.server_version.clone()))
}

pub(crate) fn app_name(context: &Context, arg: AppArg) -> anyhow::Result<AppName> {
    arg.app.or_else(|| git::remote_app(&context.cwd)).ok_or_else(|| {
        anyhow!("no app given and no `skiff` git remote here; pass `-a APP` or run `skiff git:remote -a APP`")
    })
}

/// A unit enum as the text it serializes to.
pub(crate) fn text_of(value: &impl serde::Serialize) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(text)) => text,
        _ => "?".into(),
    }
}

pub(crate) fn ask(question: &str) -> anyhow::Result<String> {
    eprint!("{question}");
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).context("cannot read standard input")?;
    Ok(line.trim_end_matches(['\n', '\r']).to_owned())
}
