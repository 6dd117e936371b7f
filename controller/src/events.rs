//! The audit trail: who did what and when. Every event is kept in the database (per app,
//! or platform-wide) and read back through `/v2/apps/{app}/events` and `/v2/events`; an
//! app's events also reach its log stream (`skiff logs --source platform`): builds,
//! releases created, started or failed, scaling and restarts, settings changed.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::routing::get;
use skiff_api::{AppName, Event};
use skiff_client::syslog::Sender;

use crate::auth::CurrentUser;
use crate::coordination::Coordination;
use crate::db::Db;
use crate::http::{ApiError, Controller};

/// Where events go.
#[derive(Debug)]
pub struct Events {
    db: Db,
    coordination: Arc<Coordination>,
    /// Without a logger, app events are only kept and traced.
    sender: Option<Sender>,
}

impl Events {
    /// Events kept in `db`, sent to the logger's syslog address and published to other
    /// listeners through `coordination`.
    pub async fn connect(db: Db, logger: SocketAddr, coordination: Arc<Coordination>) -> Self {
        let sender = match Sender::connect(logger, "platform").await {
            Ok(sender) => Some(sender),
            Err(error) => {
                tracing::warn!(%error, "controller.events: cannot reach the logger; events stay out of log streams");
                None
            }
        };
        Self { db, coordination, sender }
    }

    /// Records an event of `app`, in the audit trail and in its log stream.
    pub async fn emit(&self, app: &AppName, message: &str) {
        tracing::info!(%app, message, "controller.event");
        if let Some(sender) = &self.sender {
            sender.send(app, message);
        }
        self.keep(Some(app), message).await;
        self.coordination.publish_event(Some(app), message).await;
    }

    /// Records a platform-wide event (accounts, stacks, platform drains) in the audit trail.
    pub async fn emit_platform(&self, message: &str) {
        tracing::info!(message, "controller.event");
        self.keep(None, message).await;
        self.coordination.publish_event(None, message).await;
    }

    async fn keep(&self, app: Option<&AppName>, message: &str) {
        if let Err(error) = self.db.add_event(app, message).await {
            tracing::error!(%error, message, "controller.events: not kept");
        }
    }
}

/// The most events one read returns.
const MAX_EVENTS: u32 = 1000;

/// `GET /v2/apps/{app}/events` (anyone with access to the app) and `GET /v2/events`
/// (admins: every event, the platform's and every app's), both with `?n=` (default 100).
pub fn routes() -> axum::Router<Arc<Controller>> {
    axum::Router::new().route("/v2/apps/{app}/events", get(app_events)).route("/v2/events", get(all_events))
}

fn limit(query: &HashMap<String, String>) -> u32 {
    query.get("n").and_then(|n| n.parse().ok()).unwrap_or(100).min(MAX_EVENTS)
}

async fn app_events(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Event>>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    Ok(Json(c.db.events(Some(&app.name), limit(&query)).await?))
}

async fn all_events(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Vec<Event>>, ApiError> {
    if !user.admin {
        return Err(ApiError::Forbidden("only admins read the platform's events; add -a APP for an app's".into()));
    }
    Ok(Json(c.db.events(None, limit(&query)).await?))
}
