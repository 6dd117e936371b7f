//! HTTP/1.1 connections the controller opens itself (webhooks, the ACME server): to an
//! address the outbound guard allows, over TLS checked with the given trust.

use std::sync::Arc;
use std::time::Duration;

use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use skiff_api::OutboundPolicy;
use skiff_service::outbound;
use tokio::io::{AsyncRead, AsyncWrite};

trait Stream: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Stream for T {}

/// How a connection is secured: over TLS with this trust (and a name for the peer in
/// refusals), or in the clear.
pub enum Security<'a> {
    Tls(&'a Arc<rustls::ClientConfig>, outbound::Peer),
    Plain,
}

/// An HTTP/1.1 connection to `host:port` within `timeout` (connect, TLS and handshake
/// each), ready to send requests; its driver runs on its own task.
///
/// # Errors
/// A refusal by `guard`, or why connecting, TLS or the handshake failed, in words.
pub async fn connect<B>(
    host: &str,
    port: u16,
    guard: Option<&OutboundPolicy>,
    security: Security<'_>,
    timeout: Duration,
) -> Result<SendRequest<B>, String>
where
    B: hyper::body::Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let tcp = outbound::tcp(host, port, guard, timeout).await?;
    let stream: Box<dyn Stream> = match security {
        Security::Tls(config, peer) => Box::new(outbound::tls(tcp, host, config, peer, timeout).await?),
        Security::Plain => Box::new(tcp),
    };
    let (connection, driver) =
        tokio::time::timeout(timeout, hyper::client::conn::http1::handshake(TokioIo::new(stream)))
            .await
            .map_err(|_| "HTTP handshake timed out".to_owned())?
            .map_err(|e| format!("HTTP handshake failed: {e}"))?;
    tokio::spawn(driver);
    Ok(connection)
}
