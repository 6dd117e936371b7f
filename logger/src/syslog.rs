//! Syslog in: a lenient parser for RFC 5424 and RFC 3164 messages, and the UDP, TCP and
//! TLS (RFC 5425) listeners (TCP and TLS frames are octet-counted or newline-terminated,
//! detected per frame).
//!
//! A message's APP-NAME (RFC 5424) or TAG (RFC 3164) names the app, optionally followed by
//! `.<process>`: `myapp.web.1` lands in `myapp`'s stream as process `web.1`. Messages that
//! name no known-shaped app are counted and dropped.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use skiff_api::{AppName, LogLine, LogSource};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, BufReader};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::buffer::Buffers;

/// The largest message kept unless configured otherwise; longer ones are cut and marked
/// with [`TRUNCATED`].
pub const DEFAULT_MAX_MESSAGE: usize = 64 * 1024;
/// Ends a message that was cut.
pub const TRUNCATED: &str = " [truncated]";

/// A parsed message: who sent it and what it says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub timestamp: Option<String>,
    pub app_name: String,
    pub text: String,
}

/// Parses one message (without framing). Never fails: what cannot be read stays in `text`.
pub fn parse(raw: &str) -> Message {
    let raw = raw.trim_end_matches(['\n', '\r', '\0']);
    let after_pri = raw
        .strip_prefix('<')
        .and_then(|r| r.split_once('>'))
        .filter(|(pri, _)| !pri.is_empty() && pri.len() <= 3 && pri.bytes().all(|b| b.is_ascii_digit()))
        .map_or(raw, |(_, rest)| rest);
    if let Some(rest) = after_pri.strip_prefix("1 ") {
        // RFC 5424: TIMESTAMP HOSTNAME APP-NAME PROCID MSGID SD [MSG]
        let mut fields = rest.splitn(6, ' ');
        let timestamp = fields.next().filter(|t| *t != "-" && !t.is_empty()).map(str::to_owned);
        let _host = fields.next();
        let app_name = fields.next().unwrap_or("-").to_owned();
        let _procid = fields.next();
        let _msgid = fields.next();
        let rest = fields.next().unwrap_or("");
        let text = strip_structured_data(rest).trim_start_matches('\u{feff}').to_owned();
        return Message { timestamp, app_name, text };
    }
    // RFC 3164: [Mmm dd hh:mm:ss ][HOSTNAME ]TAG[pid]: MSG
    let rest = if after_pri.len() >= 16 && after_pri.as_bytes()[3] == b' ' && after_pri.as_bytes()[15] == b' ' {
        &after_pri[16..]
    } else {
        after_pri
    };
    let (head, text) = rest.split_once(": ").unwrap_or(("", rest));
    let tag = head.rsplit(' ').next().unwrap_or("");
    let app_name = tag.split('[').next().unwrap_or("").to_owned();
    Message { timestamp: None, app_name, text: text.to_owned() }
}

fn strip_structured_data(rest: &str) -> &str {
    if let Some(msg) = rest.strip_prefix("- ") {
        return msg;
    }
    if rest == "-" {
        return "";
    }
    // Skip `[...]` elements, honouring backslash escapes inside values.
    let bytes = rest.as_bytes();
    let mut i = 0;
    while bytes.get(i) == Some(&b'[') {
        let mut in_quotes = false;
        i += 1;
        while i < bytes.len() {
            match bytes[i] {
                b'\\' if in_quotes => i += 1,
                b'"' => in_quotes = !in_quotes,
                b']' if !in_quotes => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    rest.get(i..).unwrap_or("").strip_prefix(' ').unwrap_or(rest.get(i..).unwrap_or(""))
}

/// The app, process and source a message belongs to: `shop.web.1` is process `web.1` of
/// `shop`; `shop.router` and `shop.platform` are the router's and the platform's lines.
pub fn route(message: &Message) -> Option<(AppName, String, LogSource)> {
    let (app, process) = message.app_name.split_once('.').unwrap_or((&message.app_name, "syslog"));
    let source = match process {
        "router" => LogSource::Router,
        "platform" => LogSource::Platform,
        _ => LogSource::App,
    };
    Some((app.parse().ok()?, process.to_owned(), source))
}

/// Ingests parsed messages into the buffers and counts what it rejected (in the buffers'
/// [`crate::buffer::Stats`]).
#[derive(Debug)]
pub struct Ingest {
    buffers: Arc<Buffers>,
    /// Longer messages are cut; frames claiming more than 16 times this are refused.
    max_message: usize,
}

impl Ingest {
    /// Ingestion into `buffers`, cutting messages longer than `max_message` bytes.
    pub fn new(buffers: Arc<Buffers>, max_message: usize) -> Arc<Self> {
        Arc::new(Self { buffers, max_message: max_message.max(1) })
    }

    fn reject(&self) {
        self.buffers.stats.rejected.fetch_add(1, Ordering::Relaxed);
    }

    /// Takes one raw message.
    pub fn take(&self, raw: &[u8]) {
        let truncated = raw.len() > self.max_message;
        let raw = &raw[..raw.len().min(self.max_message)];
        let mut message = parse(&String::from_utf8_lossy(raw));
        if truncated {
            message.text.push_str(TRUNCATED);
        }
        match route(&message) {
            Some((app, process, source)) => self.buffers.push(LogLine {
                time: message.timestamp.unwrap_or_else(crate::docker::now),
                app,
                source,
                process,
                release: None,
                message: message.text,
            }),
            None => self.reject(),
        }
    }
}

/// How much the kernel may queue of datagrams not yet read: room for a burst of some ten
/// thousand short messages while the receiver is busy (the kernel's default holds a few
/// hundred, and what does not fit is dropped).
const UDP_RECEIVE_QUEUE: usize = 8 << 20;

/// Asks the kernel for a receive queue of [`UDP_RECEIVE_QUEUE`] bytes: past its usual cap
/// (`net.core.rmem_max`) where the process may, up to that cap otherwise.
fn widen_receive_queue(socket: &UdpSocket) {
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(socket, UDP_RECEIVE_QUEUE).is_ok() {
        return;
    }
    if let Err(error) = rustix::net::sockopt::set_socket_recv_buffer_size(socket, UDP_RECEIVE_QUEUE) {
        tracing::warn!(%error, "logger.syslog.udp: the receive queue stays at the kernel's default");
    }
}

/// Receives datagrams until `shutdown`.
pub async fn serve_udp(socket: UdpSocket, ingest: Arc<Ingest>, shutdown: CancellationToken) {
    widen_receive_queue(&socket);
    let mut buf = vec![0u8; 65_536];
    loop {
        tokio::select! {
            received = socket.recv_from(&mut buf) => match received {
                Ok((n, _)) => ingest.take(&buf[..n]),
                Err(error) => tracing::warn!(%error, "logger.syslog.udp"),
            },
            () = shutdown.cancelled() => return,
        }
    }
}

/// The TLS settings of the syslog-over-TLS listener, serving `key` to every client.
///
/// # Errors
/// When the TLS library refuses its defaults.
pub fn tls_acceptor(key: Arc<rustls::sign::CertifiedKey>) -> Result<tokio_rustls::TlsAcceptor, rustls::Error> {
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(skiff_service::https::server_config(key)?)))
}

/// How long a TLS client may take to finish its handshake.
const HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// Accepts TCP connections until `shutdown`, over TLS (RFC 5425) with `tls`; each
/// connection ends at EOF, on a framing error, or at shutdown.
pub async fn serve_tcp(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    ingest: Arc<Ingest>,
    shutdown: CancellationToken,
) {
    let tasks = TaskTracker::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let ingest = ingest.clone();
                    let shutdown = shutdown.clone();
                    let tls = tls.clone();
                    tasks.spawn(async move {
                        let frames = async {
                            match tls {
                                None => read_frames(BufReader::new(stream), peer, &ingest).await,
                                Some(tls) => {
                                    let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, tls.accept(stream))
                                        .await
                                        .map_err(|_| std::io::Error::new(std::io::ErrorKind::TimedOut, "TLS handshake"))??;
                                    read_frames(BufReader::new(stream), peer, &ingest).await
                                }
                            }
                        };
                        tokio::select! {
                            result = frames => {
                                if let Err(error) = result {
                                    ingest.reject();
                                    tracing::debug!(%error, "logger.syslog.tcp.closed");
                                }
                            }
                            () = shutdown.cancelled() => {}
                        }
                    });
                }
                Err(error) => tracing::warn!(%error, "logger.syslog.tcp.accept"),
            },
            () = shutdown.cancelled() => break,
        }
    }
    tasks.close();
    tasks.wait().await;
}

/// Reads RFC 6587 frames: a leading digit means octet counting, anything else a
/// newline-terminated message. A connection that turns out to be one of this logger's own
/// drains (checked once its first bytes came, by then the drain knows its connection) is
/// closed unread: its lines were taken in already.
async fn read_frames<R: tokio::io::AsyncBufRead + Unpin>(
    mut reader: R,
    peer: std::net::SocketAddr,
    ingest: &Ingest,
) -> std::io::Result<()> {
    let mut frame = Vec::new();
    let mut checked = false;
    loop {
        let first = match reader.fill_buf().await?.first() {
            Some(b) => *b,
            None => return Ok(()),
        };
        if !checked {
            checked = true;
            if ingest.buffers.drains().is_some_and(|drains| drains.is_own(peer)) {
                tracing::warn!(%peer, "logger.syslog.tcp: a drain of this logger delivers into it; refused");
                return Ok(());
            }
        }
        frame.clear();
        if first.is_ascii_digit() {
            (&mut reader).take(12).read_until(b' ', &mut frame).await?;
            let length: usize = std::str::from_utf8(&frame)
                .ok()
                .and_then(|s| s.trim_end().parse().ok())
                .filter(|n| *n > 0 && *n <= ingest.max_message.saturating_mul(16) && !frame.starts_with(b"0"))
                .ok_or_else(|| std::io::Error::new(std::io::ErrorKind::InvalidData, "invalid octet count"))?;
            frame.resize(length, 0);
            reader.read_exact(&mut frame).await?;
        } else {
            (&mut reader).take(ingest.max_message as u64 * 16).read_until(b'\n', &mut frame).await?;
        }
        if !frame.iter().all(|b| b.is_ascii_whitespace()) {
            ingest.take(&frame);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_udp_receive_queue_is_widened() {
        let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let before = rustix::net::sockopt::socket_recv_buffer_size(&socket).unwrap();
        widen_receive_queue(&socket);
        let after = rustix::net::sockopt::socket_recv_buffer_size(&socket).unwrap();
        // The kernel reports twice what it grants, and without the privilege to pass its
        // cap grants at most the cap.
        let cap: usize = std::fs::read_to_string("/proc/sys/net/core/rmem_max").unwrap().trim().parse().unwrap();
        assert!(after >= 2 * UDP_RECEIVE_QUEUE.min(cap), "{before} → {after} bytes (cap {cap})");
        assert!(after > before, "{before} → {after} bytes");
    }

    #[test]
    fn rfc5424_messages_name_their_app() {
        let m = parse("<30>1 2026-11-24T20:20:16.652145Z vm shop.web.1 2676 shop.web.1 - line-from-stdout\n");
        assert_eq!(m.app_name, "shop.web.1");
        assert_eq!(m.text, "line-from-stdout");
        assert_eq!(m.timestamp.as_deref(), Some("2026-11-24T20:20:16.652145Z"));
        assert_eq!(route(&m), Some(("shop".parse().unwrap(), "web.1".into(), LogSource::App)));
        let router = parse("<134>1 2026-11-24T20:20:16Z - shop.router - - - at=info status=200");
        assert_eq!(route(&router), Some(("shop".parse().unwrap(), "router".into(), LogSource::Router)));
    }

    #[test]
    fn structured_data_is_skipped() {
        let m = parse(r#"<165>1 2003-10-11T22:14:15.003Z host app - ID47 [ex@32473 a="x\]y"][b c="d"] hello"#);
        assert_eq!(m.text, "hello");
    }

    #[test]
    fn rfc3164_messages_name_their_app_by_tag() {
        let m = parse("<13>Nov 24 20:20:16 vm shop[123]: hello there");
        assert_eq!(m.app_name, "shop");
        assert_eq!(m.text, "hello there");
        let m = parse("<13>shop: no timestamp");
        assert_eq!(m.app_name, "shop");
    }

    #[test]
    fn messages_are_cut_at_the_configured_size() {
        let buffers = Arc::new(Buffers::new(10));
        let ingest = Ingest::new(buffers.clone(), 40);
        let head = "<14>1 - - shop.web.1 - - - ";
        let long = format!("{head}{}", "x".repeat(100));
        ingest.take(long.as_bytes());
        ingest.take(b"<14>1 - - shop.web.1 - - - short");
        let kept = buffers.tail_and_follow(&"shop".parse().unwrap(), 10).0;
        assert_eq!(
            kept[0].message,
            format!("{}{TRUNCATED}", "x".repeat(40 - head.len())),
            "40 bytes of the raw message"
        );
        assert_eq!(kept[1].message, "short");
    }

    #[test]
    fn garbage_never_panics_and_routes_nowhere() {
        for raw in ["", "<", "<999999>", "<13>1 ", "\u{0}\u{1}", "<1>1 - - - - - ["] {
            let m = parse(raw);
            let _ = route(&m);
        }
        assert_eq!(route(&parse("<13>Bad App!: x")), None);
    }
}
