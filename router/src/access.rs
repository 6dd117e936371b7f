//! Access lines into apps' log streams, batched: each worker thread writes the lines its
//! event loop produced since its last write to the logger in one go, over TCP with RFC
//! 6587 octet counting, instead of one datagram (one system call) per request.
//!
//! Lines wait in a bounded buffer while the logger is slow or away; past
//! [`MAX_PENDING`] bytes they are dropped and counted, so the router never waits for its
//! logger. A logger that goes away is reconnected to, with a pause between attempts.

use std::io::Write as _;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use skiff_api::AppName;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// The most bytes of lines waiting for the logger; more are dropped.
pub const MAX_PENDING: usize = 4 << 20;
/// The pause before connecting to the logger again.
const RECONNECT: Duration = Duration::from_millis(500);

/// One worker thread's access lines on their way to the logger.
#[derive(Debug, Default)]
pub struct AccessLog {
    pending: Mutex<Pending>,
    wake: Notify,
}

#[derive(Debug, Default)]
struct Pending {
    /// Framed lines waiting to be written.
    framed: Vec<u8>,
    /// One line being formatted.
    line: Vec<u8>,
    /// The second `timestamp` was formatted for, and its text (`2026-12-06T07:01:02`).
    second: u64,
    timestamp: String,
}

impl AccessLog {
    /// Queues a line for `app`'s stream under the source `router`, its message written by
    /// `format` straight into the line; `false` when it was dropped (the logger is too slow
    /// or away).
    pub fn send(&self, app: &AppName, format: impl FnOnce(&mut Vec<u8>) -> std::io::Result<()>) -> bool {
        let mut pending = self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if pending.framed.len() >= MAX_PENDING {
            return false;
        }
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        if pending.second != now.as_secs() || pending.timestamp.is_empty() {
            pending.second = now.as_secs();
            pending.timestamp = whole_second(now.as_secs());
        }
        let Pending { framed, line, timestamp, .. } = &mut *pending;
        line.clear();
        // As skiff_service::syslog::line writes it: facility local0, severity info.
        let head = write!(line, "<134>1 {timestamp}.{:06}Z - {app}.router - - - ", now.subsec_micros());
        if head.and_then(|()| format(line)).is_err() {
            return false;
        }
        let _ = write!(framed, "{} ", line.len());
        framed.extend_from_slice(line);
        drop(pending);
        self.wake.notify_one();
        true
    }

    /// Writes queued lines to the logger at `logger` until `shutdown`, then writes what is
    /// left (if the logger takes it).
    pub async fn deliver(&self, logger: SocketAddr, shutdown: CancellationToken) {
        let mut batch = Vec::new();
        'connecting: loop {
            let mut stream = tokio::select! {
                () = shutdown.cancelled() => return,
                connected = TcpStream::connect(logger) => match connected {
                    Ok(stream) => stream,
                    Err(error) => {
                        tracing::debug!(%error, %logger, "router.access_log: cannot reach the logger");
                        tokio::time::sleep(RECONNECT).await;
                        continue 'connecting;
                    }
                },
            };
            let _ = stream.set_nodelay(true);
            loop {
                let stopping = tokio::select! {
                    () = shutdown.cancelled() => true,
                    () = self.wake.notified() => false,
                };
                // Everything queued since the last write, in one write.
                std::mem::swap(
                    &mut batch,
                    &mut self.pending.lock().unwrap_or_else(std::sync::PoisonError::into_inner).framed,
                );
                if !batch.is_empty() {
                    if let Err(error) = stream.write_all(&batch).await {
                        tracing::debug!(%error, "router.access_log: the logger went away");
                        batch.clear();
                        continue 'connecting;
                    }
                    batch.clear();
                }
                if stopping {
                    return;
                }
            }
        }
    }
}

/// `YYYY-MM-DDTHH:MM:SS` (UTC) of a Unix second.
fn whole_second(seconds: u64) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp(i64::try_from(seconds).unwrap_or(0))
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_framed_with_their_length_and_stamped_to_the_microsecond() {
        let log = AccessLog::default();
        let app: AppName = "shop".parse().unwrap();
        assert!(log.send(&app, |line| write!(line, "status=200")));
        assert!(log.send(&app, |line| write!(line, "status=404")));
        let framed = String::from_utf8(log.pending.lock().unwrap().framed.clone()).unwrap();
        let (length, rest) = framed.split_once(' ').unwrap();
        let first = &rest[..length.parse::<usize>().unwrap()];
        assert!(first.starts_with("<134>1 20") && first.ends_with("Z - shop.router - - - status=200"), "{first}");
        let stamp = first.split(' ').nth(1).unwrap();
        assert!(time::OffsetDateTime::parse(stamp, &time::format_description::well_known::Rfc3339).is_ok(), "{stamp}");
        assert!(rest[first.len()..].trim_start().split_once(' ').unwrap().1.ends_with("status=404"));
    }

    #[test]
    fn a_full_buffer_drops_and_counts() {
        let log = AccessLog::default();
        let app: AppName = "shop".parse().unwrap();
        let big = "x".repeat(64 << 10);
        let taken =
            (0..100).take_while(|_| log.send(&app, |line| std::io::Write::write_all(line, big.as_bytes()))).count();
        assert_eq!(taken, MAX_PENDING / (64 << 10), "lines past the limit are dropped");
        assert!(log.pending.lock().unwrap().framed.len() < MAX_PENDING + (128 << 10));
    }

    #[test]
    fn whole_seconds_read_as_rfc_3339() {
        assert_eq!(whole_second(0), "1970-01-01T00:00:00");
        assert_eq!(whole_second(1_796_000_000), "2026-11-30T00:53:20");
    }
}
