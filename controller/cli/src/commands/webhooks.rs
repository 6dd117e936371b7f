//! `webhooks:*`: where an app's events (or, for admins, every app's) are POSTed, signed,
//! and how each delivery went.

use std::io::Write;

use clap::Subcommand;
use skiff_api::{EventKind, WebhookCreate, WebhookFormat};

use crate::Context;
use crate::args::{JsonArg, ScopeArg};
use crate::commands::client;
use crate::commands::trail::app_or_platform;
use crate::output::{ago, json, table};

#[derive(Debug, Subcommand)]
pub(crate) enum WebhooksVerb {
    /// List webhooks and the kinds of event each gets.
    #[command(name = "webhooks")]
    Webhooks {
        #[command(flatten)]
        scope: ScopeArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// POST an app's events to URL, signed with a secret (`Skiff-Signature`).
    #[command(name = "webhooks:add")]
    WebhooksAdd {
        url: String,
        /// The kinds of event to send (app, build, release, deploy, scale, crash, domain,
        /// config, cron; platform for platform webhooks) [default: all].
        #[arg(long, value_delimiter = ',')]
        events: Vec<EventKind>,
        /// The signing secret (16 characters or more) [default: one made and shown once].
        #[arg(long)]
        secret: Option<String>,
        /// The body: `skiff` (the event as JSON) or `slack` (`{"text": …}` for Slack and
        /// Mattermost).
        #[arg(long, default_value = "skiff", value_parser = parse_format)]
        format: WebhookFormat,
        #[command(flatten)]
        scope: ScopeArg,
    },
    /// Stop a webhook, and drop what it had queued.
    #[command(name = "webhooks:remove")]
    WebhooksRemove {
        id: i64,
        #[command(flatten)]
        scope: ScopeArg,
    },
    /// Show a webhook's newest deliveries: state, attempts, status, latency and error.
    #[command(name = "webhooks:deliveries")]
    WebhooksDeliveries {
        id: i64,
        #[command(flatten)]
        scope: ScopeArg,
        #[command(flatten)]
        json: JsonArg,
    },
}

fn parse_format(text: &str) -> Result<WebhookFormat, String> {
    match text {
        "skiff" => Ok(WebhookFormat::Skiff),
        "slack" => Ok(WebhookFormat::Slack),
        other => Err(format!("`{other}` is not a format; use skiff or slack")),
    }
}

pub(crate) async fn execute(
    verb: WebhooksVerb,
    context: &Context,
    out: &mut impl Write,
    _err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        WebhooksVerb::Webhooks { scope, json: flag } => {
            let webhooks = client(context)?.webhooks(app_or_platform(context, scope)?.as_ref()).await?;
            if flag.json {
                return json(out, &webhooks);
            }
            let rows = webhooks
                .iter()
                .map(|w| {
                    let events: Vec<&str> = w.events.iter().map(|e| e.as_str()).collect();
                    let format = if w.format == WebhookFormat::Slack { "slack" } else { "skiff" };
                    vec![w.id.to_string(), w.url.clone(), events.join(","), format.to_owned()]
                })
                .collect();
            table(out, context.colour, &["ID", "URL", "EVENTS", "FORMAT"], rows)
        }
        WebhooksVerb::WebhooksAdd { url, events, secret, format, scope } => {
            let scope = app_or_platform(context, scope)?;
            let create = WebhookCreate { url: url.clone(), events, secret, format };
            let webhook = client(context)?.add_webhook(scope.as_ref(), &create).await?;
            let whose = scope.map_or_else(|| "every app's".to_owned(), |app| format!("{app}'s"));
            writeln!(out, "Sending {whose} events to {url} (webhook {})", webhook.id)?;
            if create.secret.is_none()
                && let Some(secret) = webhook.secret
            {
                writeln!(out, "Signing secret (shown once; check Skiff-Signature with it): {secret}")?;
            }
            Ok(())
        }
        WebhooksVerb::WebhooksRemove { id, scope } => {
            let scope = app_or_platform(context, scope)?;
            client(context)?.remove_webhook(scope.as_ref(), id).await?;
            writeln!(out, "Removed webhook {id}")?;
            Ok(())
        }
        WebhooksVerb::WebhooksDeliveries { id, scope, json: flag } => {
            let scope = app_or_platform(context, scope)?;
            let deliveries = client(context)?.webhook_deliveries(scope.as_ref(), id).await?;
            if flag.json {
                return json(out, &deliveries);
            }
            let rows = deliveries
                .iter()
                .map(|d| {
                    let state = serde_json::to_value(d.state).ok().and_then(|v| v.as_str().map(str::to_owned));
                    vec![
                        d.event_id.to_string(),
                        d.event.to_string(),
                        ago(&d.created_at),
                        state.unwrap_or_default(),
                        d.attempts.to_string(),
                        d.status.map_or_else(|| "-".to_owned(), |s| s.to_string()),
                        d.latency_ms.map_or_else(|| "-".to_owned(), |l| format!("{l} ms")),
                        d.error.clone().unwrap_or_default(),
                    ]
                })
                .collect();
            table(
                out,
                context.colour,
                &["EVENT", "TYPE", "WHEN", "STATE", "ATTEMPTS", "STATUS", "LATENCY", "ERROR"],
                rows,
            )
        }
    }
}
