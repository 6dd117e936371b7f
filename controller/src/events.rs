//! The audit trail: who did what and when. Every event is kept in the database (per app,
//! or platform-wide) and read back through the API; an app's events also reach its log
//! stream (`skiff logs --source platform`): builds, releases created, started or
//! failed, scaling and restarts, settings changed.

use std::net::SocketAddr;
use std::sync::Arc;

use skiff_api::AppName;
use skiff_service::syslog::Sender;

use crate::coordination::Coordination;
use crate::db::Db;

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
