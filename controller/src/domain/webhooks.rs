//! Outgoing webhooks: where an app's events (or, for admins, every app's and the
//! platform's) are POSTed. The controller keeps the list and the delivery queue;
//! [`crate::webhooks`] delivers.

use skiff_api::{EventKind, Webhook, WebhookCreate, WebhookDelivery};

use crate::db::{AppRow, UserRow};
use crate::error::ApiError;
use crate::events::Event;
use crate::state::Controller;

/// The most deliveries a listing shows.
const DELIVERIES_SHOWN: u32 = 50;

/// Webhooks of one app (`Some`) or of the platform (`None`).
pub struct Webhooks<'a>(&'a Controller);

impl Controller {
    pub fn webhooks(&self) -> Webhooks<'_> {
        Webhooks(self)
    }
}

fn missing(id: &str) -> ApiError {
    ApiError::NotFound(format!("no webhook {id} here; see `skiff webhooks`"))
}

/// Records a change to an app's webhooks (a config event) or the platform's.
async fn announce(c: &Controller, user: &UserRow, app: Option<&AppRow>, message: String) {
    match app {
        Some(app) => c.events.emit(&app.name, Event::new(EventKind::Config, message).by(&user.username)).await,
        None => c.events.emit_platform(Event::new(EventKind::Platform, message).by(&user.username)).await,
    }
}

impl Webhooks<'_> {
    /// The webhooks of an app (`Some`) or of the platform (`None`), without their secrets.
    pub async fn list(&self, app: Option<&AppRow>) -> Result<Vec<Webhook>, ApiError> {
        Ok(self.0.db.webhooks(app).await?)
    }

    /// Adds a webhook; the answer carries its secret (made here when none is given), the
    /// only time it is shown. An app's webhook must not reach the platform or the networks
    /// around it; platform webhooks, set by admins, may point anywhere.
    pub async fn add(&self, user: &UserRow, app: Option<&AppRow>, body: &WebhookCreate) -> Result<Webhook, ApiError> {
        let c = self.0;
        let url = body.url.trim();
        let parsed =
            reqwest::Url::parse(url).map_err(|e| ApiError::BadRequest(format!("`{url}` is not a URL: {e}")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ApiError::BadRequest(format!("`{url}`: webhooks are http:// or https:// URLs")));
        }
        let host = parsed.host_str().ok_or_else(|| ApiError::BadRequest(format!("`{url}` names no host")))?;
        let port = parsed.port_or_known_default().unwrap_or(80);
        if app.is_some() {
            c.check_outbound("webhooks", host.trim_start_matches('[').trim_end_matches(']'), port).await?;
        }
        let secret = super::shared_secret(body.secret.as_deref(), "a webhook's secret")?;
        let events: Vec<EventKind> = if body.events.is_empty() {
            EventKind::ALL.into_iter().filter(|kind| app.is_none() || *kind != EventKind::Platform).collect()
        } else if app.is_some() && body.events.contains(&EventKind::Platform) {
            return Err(ApiError::BadRequest("`platform` events go to platform webhooks only (--platform)".into()));
        } else {
            EventKind::ALL.into_iter().filter(|kind| body.events.contains(kind)).collect()
        };
        let webhook = c.db.add_webhook(app, url, &events, &secret, body.format).await?;
        let message = format!("{} added webhook {} ({url})", user.username, webhook.id);
        announce(c, user, app, message).await;
        Ok(Webhook { secret: Some(secret), ..webhook })
    }

    /// Removes a webhook by its id, with the deliveries it had queued.
    pub async fn remove(&self, user: &UserRow, app: Option<&AppRow>, id: &str) -> Result<(), ApiError> {
        let c = self.0;
        let number: i64 = id.parse().map_err(|_| missing(id))?;
        if !c.db.remove_webhook(app, number).await? {
            return Err(missing(id));
        }
        announce(c, user, app, format!("{} removed webhook {id}", user.username)).await;
        Ok(())
    }

    /// A webhook's newest deliveries, newest first.
    pub async fn deliveries(&self, app: Option<&AppRow>, id: &str) -> Result<Vec<WebhookDelivery>, ApiError> {
        let number: i64 = id.parse().map_err(|_| missing(id))?;
        self.0.db.webhook_deliveries(app, number, DELIVERIES_SHOWN).await?.ok_or_else(|| missing(id))
    }
}
