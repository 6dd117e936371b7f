//! HTTPS for skiff-load: rustls with ring, the TLS library Skiff's router serves with, over
//! the same non-blocking sockets as plain HTTP.

use std::io::{ErrorKind, Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::sync::Arc;

use anyhow::{Context as _, bail};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// How connections are secured: the trust, the versions, whether sessions are resumed.
/// Each connection slot is a client of its own, with its own sessions to resume, as
/// browsers coming back are (one shared store would hand every new connection the same
/// few tickets).
pub struct Tls {
    clients: Vec<Arc<ClientConfig>>,
    name: ServerName<'static>,
}

impl Tls {
    /// `clients` clients trusting the certificates in `ca` (PEM), for server `name`, with
    /// TLS `version` (`1.2` or `1.3`; both, the newest chosen, without one), resuming
    /// sessions or not.
    pub fn new(ca: &Path, name: &str, version: Option<&str>, resume: bool, clients: usize) -> anyhow::Result<Self> {
        let mut roots = RootCertStore::empty();
        for certificate in CertificateDer::pem_file_iter(ca).with_context(|| format!("cannot read {}", ca.display()))? {
            roots.add(certificate.with_context(|| format!("{} holds a bad certificate", ca.display()))?)?;
        }
        let versions: &[&rustls::SupportedProtocolVersion] = match version {
            None => rustls::DEFAULT_VERSIONS,
            Some("1.3") => &[&rustls::version::TLS13],
            Some("1.2") => &[&rustls::version::TLS12],
            Some(other) => bail!("TLS version {other}: give 1.2 or 1.3"),
        };
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let config = ClientConfig::builder_with_provider(provider)
            .with_protocol_versions(versions)?
            .with_root_certificates(roots)
            .with_no_client_auth();
        let clients = (0..clients)
            .map(|_| {
                let mut config = config.clone();
                config.resumption = match resume {
                    true => rustls::client::Resumption::in_memory_sessions(1),
                    false => rustls::client::Resumption::disabled(),
                };
                Arc::new(config)
            })
            .collect();
        let name = ServerName::try_from(name.to_owned()).with_context(|| format!("{name} is not a server name"))?;
        Ok(Self { clients, name })
    }

    /// A new session of client `index`, for a new connection.
    pub fn session(&self, index: usize) -> anyhow::Result<ClientConnection> {
        Ok(ClientConnection::new(self.clients[index].clone(), self.name.clone())?)
    }
}

/// Sends what the session has to send (handshake messages, records), waiting out a full
/// socket buffer.
pub fn flush(session: &mut ClientConnection, stream: &mut TcpStream) -> std::io::Result<()> {
    while session.wants_write() {
        match session.write_tls(stream) {
            Ok(_) => {}
            Err(error) if error.kind() == ErrorKind::WouldBlock => std::thread::yield_now(),
            Err(error) => return Err(error),
        }
    }
    Ok(())
}

/// Queues `plaintext` (sent once the handshake is done) and sends what can go.
pub fn send(session: &mut ClientConnection, stream: &mut TcpStream, plaintext: &[u8]) -> std::io::Result<()> {
    session.writer().write_all(plaintext)?;
    flush(session, stream)
}

/// Reads what arrived, answers the handshake, and appends the plaintext to `read`; false
/// when the connection ended or broke.
pub fn receive(session: &mut ClientConnection, stream: &mut TcpStream, read: &mut Vec<u8>, chunk: &mut [u8]) -> bool {
    match session.read_tls(stream) {
        Ok(0) => return false,
        Ok(_) => {}
        Err(error) if error.kind() == ErrorKind::WouldBlock || error.kind() == ErrorKind::Interrupted => return true,
        Err(_) => return false,
    }
    if session.process_new_packets().is_err() || flush(session, stream).is_err() {
        return false;
    }
    loop {
        match session.reader().read(chunk) {
            Ok(0) => return false,
            Ok(n) => read.extend_from_slice(&chunk[..n]),
            Err(error) if error.kind() == ErrorKind::WouldBlock => return true,
            Err(_) => return false,
        }
    }
}
