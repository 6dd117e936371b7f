//! HTTPS for an axum service (the `tls` feature): a listener whose connections arrive
//! with their TLS handshake done, so `axum::serve` serves them as it serves plain TCP.
//!
//! Handshakes run in tasks of their own, each with a deadline: a client that stalls in
//! its handshake holds up no other.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::sign::CertifiedKey;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;

/// How long a client may take over its handshake.
const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// Connections that finished their TLS handshake, accepted from a TCP listener.
pub struct HttpsListener {
    address: SocketAddr,
    handshaken: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    accepting: tokio::task::JoinHandle<()>,
}

/// A server configuration presenting `key` to every client, with rustls' safe defaults.
///
/// # Errors
/// When rustls refuses its defaults.
pub fn server_config(key: Arc<CertifiedKey>) -> Result<rustls::ServerConfig, rustls::Error> {
    let resolver = Arc::new(rustls::sign::SingleCertAndKey::from(key));
    Ok(rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::aws_lc_rs::default_provider()))
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(resolver))
}

impl HttpsListener {
    /// Accepts on `listener`, handshaking with `config` (offering HTTP/1.1 by ALPN).
    ///
    /// # Errors
    /// When the listener has no local address.
    pub fn new(listener: TcpListener, mut config: rustls::ServerConfig) -> std::io::Result<Self> {
        let address = listener.local_addr()?;
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let (ready, handshaken) = mpsc::channel(64);
        let accepting = tokio::spawn(async move {
            loop {
                let (stream, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of descriptors, say: wait instead of spinning.
                        tracing::warn!(%error, "https: accept failed");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let (acceptor, ready) = (acceptor.clone(), ready.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_DEADLINE, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => {
                            let _ = ready.send((stream, peer)).await;
                        }
                        Ok(Err(error)) => tracing::debug!(%error, %peer, "https: handshake failed"),
                        Err(_) => tracing::debug!(%peer, "https: handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { address, handshaken, accepting })
    }
}

impl Drop for HttpsListener {
    fn drop(&mut self) {
        self.accepting.abort();
    }
}

impl axum::serve::Listener for HttpsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.handshaken.recv().await {
            Some(accepted) => accepted,
            // The accepting task never ends on its own while the listener lives.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.address)
    }
}
