//! The audit trail: who did what and when. Every event is kept in the database (per app,
//! or platform-wide) and read back through the API; an app's events also reach its log
//! stream (`skiff logs --source platform`): builds, releases created, started or
//! failed, scaling and restarts, settings changed. Every event has a kind, and is queued
//! for the webhooks that take that kind ([`crate::webhooks`]).

use std::net::SocketAddr;
use std::sync::Arc;

use skiff_api::{AppName, EventKind, EventPayload};
use skiff_service::syslog::Sender;
use tokio::sync::Notify;

use crate::coordination::Coordination;
use crate::db::Db;

/// Something that happened: what it is about, in words, who did it (when someone did),
/// and its fields for webhooks.
#[derive(Debug, Clone)]
pub struct Event {
    kind: EventKind,
    message: String,
    actor: Option<String>,
    data: serde_json::Value,
}

impl Event {
    pub fn new(kind: EventKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), actor: None, data: serde_json::Value::Null }
    }

    /// Done by `actor` (a user name).
    #[must_use]
    pub fn by(mut self, actor: &impl ToString) -> Self {
        self.actor = Some(actor.to_string());
        self
    }

    /// With fields (`{"version": 3}`), for webhooks.
    #[must_use]
    pub fn with(mut self, data: serde_json::Value) -> Self {
        self.data = data;
        self
    }
}

/// Where events go.
#[derive(Debug)]
pub struct Events {
    db: Db,
    coordination: Arc<Coordination>,
    /// Without a logger, app events are only kept and traced.
    sender: Option<Sender>,
    /// Woken when a delivery is queued.
    queued: Arc<Notify>,
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
        Self { db, coordination, sender, queued: Arc::new(Notify::new()) }
    }

    /// Notified when a webhook delivery is queued on this controller.
    pub fn queued(&self) -> Arc<Notify> {
        self.queued.clone()
    }

    /// Records an event of `app`, in the audit trail and in its log stream, and queues it
    /// for webhooks.
    pub async fn emit(&self, app: &AppName, event: Event) {
        tracing::info!(%app, kind = %event.kind, message = event.message, "controller.event");
        if let Some(sender) = &self.sender {
            sender.send(app, &event.message);
        }
        self.coordination.publish_event(Some(app), &event.message).await;
        self.keep(Some(app), event).await;
    }

    /// Records a platform-wide event (accounts, stacks, platform drains) in the audit
    /// trail, and queues it for platform webhooks.
    pub async fn emit_platform(&self, event: Event) {
        tracing::info!(kind = %event.kind, message = event.message, "controller.event");
        self.coordination.publish_event(None, &event.message).await;
        self.keep(None, event).await;
    }

    async fn keep(&self, app: Option<&AppName>, event: Event) {
        let (id, time) = match self.db.add_event(app, event.kind, &event.message).await {
            Ok(kept) => kept,
            Err(error) => {
                tracing::error!(%error, message = event.message, "controller.events: not kept");
                return;
            }
        };
        let payload = EventPayload {
            id,
            kind: event.kind,
            time,
            actor: event.actor,
            app: app.cloned(),
            message: event.message,
            data: event.data,
        };
        match self.db.queue_deliveries(&payload, crate::clock::now_ms()).await {
            Ok(0) => {}
            Ok(_) => self.queued.notify_one(),
            Err(error) => tracing::error!(%error, id, "controller.events: not queued for webhooks"),
        }
    }
}
