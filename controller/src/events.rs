//! Platform events in apps' log streams (`skiff logs --source platform`): builds, releases
//! created, started or failed, scaling and restarts, containers started and stopped.

use std::net::SocketAddr;

use skiff_api::AppName;
use skiff_client::syslog::Sender;

/// Where events go; without a logger they are only traced.
#[derive(Debug, Default)]
pub struct Events {
    sender: Option<Sender>,
}

impl Events {
    /// Events sent to the logger's syslog address.
    pub async fn connect(logger: SocketAddr) -> Self {
        match Sender::connect(logger, "platform").await {
            Ok(sender) => Self { sender: Some(sender) },
            Err(error) => {
                tracing::warn!(%error, "controller.events: cannot reach the logger; events are only traced");
                Self::default()
            }
        }
    }

    /// Records an event in `app`'s stream.
    pub fn emit(&self, app: &AppName, message: &str) {
        tracing::info!(%app, message, "controller.event");
        if let Some(sender) = &self.sender {
            sender.send(app, message);
        }
    }
}
