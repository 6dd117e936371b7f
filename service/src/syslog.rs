//! Lines from Skiff's own components into an app's log stream, as syslog over UDP to the
//! logger. Sending never waits: a full socket buffer drops the line rather than slow the
//! sender down.

use std::net::SocketAddr;

use skiff_api::AppName;

/// Sends lines under one source (`router`, `platform`).
#[derive(Debug)]
pub struct Sender {
    socket: tokio::net::UdpSocket,
    source: &'static str,
}

impl Sender {
    /// A sender to the logger's syslog address.
    ///
    /// # Errors
    /// When no local UDP socket can be had.
    pub async fn connect(logger: SocketAddr, source: &'static str) -> std::io::Result<Self> {
        let local = if logger.is_ipv4() { "127.0.0.1:0" } else { "[::1]:0" };
        let socket = tokio::net::UdpSocket::bind(local).await?;
        socket.connect(logger).await?;
        Ok(Self { socket, source })
    }

    /// Puts `message` into `app`'s stream.
    pub fn send(&self, app: &AppName, message: &str) {
        let now =
            time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
        let _ = self.socket.try_send(line(app, self.source, &now, message).as_bytes());
    }
}

/// An RFC 5424 message (facility local0, severity info) whose APP-NAME is
/// `<app>.<source>`, e.g. `shop.router`: the logger files it in `shop`'s stream under that
/// source. `timestamp` is RFC 3339.
pub fn line(app: &AppName, source: &str, timestamp: &str, message: &str) -> String {
    format!("<134>1 {timestamp} - {app}.{source} - - - {message}")
}
