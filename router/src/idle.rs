//! Idle client connections: one on which no byte moved either way for the idle timeout is
//! closed (an HTTP/2 client gets a GOAWAY first). This covers HTTP/2 connections without
//! streams (hyper has no idle timeout for them), request bodies that stall, and tunnels
//! (WebSockets and other upgrades) gone quiet; HTTP/1 keep-alive connections between
//! requests are also closed by the header read timeout.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::task::{Context, Poll, Waker};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// Looks for silence this many times per idle timeout.
const LOOKS: u32 = 4;

/// Whether bytes moved on a connection: a count of reads and writes, so that the request
/// path reads no clock; the idle watch looks at it a few times per timeout.
#[derive(Debug, Default)]
pub struct Activity {
    moves: AtomicU64,
}

impl Activity {
    pub fn new() -> Arc<Self> {
        Arc::default()
    }

    fn touch(&self) {
        self.moves.fetch_add(1, Ordering::Relaxed);
    }

    /// Returns once nothing has moved for `timeout` (at most a quarter more).
    ///
    /// It runs beside the connection's work in one task, polled each time the task is
    /// woken, several times a request: its timer is looked at only once it has fired (or
    /// the task's waker changed), a load of its state rather than a poll that registers
    /// the waker again.
    pub async fn idle_for(&self, timeout: Duration) {
        let look = timeout / LOOKS;
        let mut quiet = 0;
        let mut seen = self.moves.load(Ordering::Relaxed);
        let mut timer = std::pin::pin!(tokio::time::sleep(look));
        let mut registered: Option<Waker> = None;
        std::future::poll_fn(|cx| {
            if !timer.is_elapsed() && registered.as_ref().is_some_and(|waker| waker.will_wake(cx.waker())) {
                return Poll::Pending;
            }
            loop {
                if timer.as_mut().poll(cx).is_pending() {
                    registered = Some(cx.waker().clone());
                    return Poll::Pending;
                }
                let now = self.moves.load(Ordering::Relaxed);
                quiet = if now == seen { quiet + 1 } else { 0 };
                seen = now;
                if quiet == LOOKS {
                    return Poll::Ready(());
                }
                timer.as_mut().reset(tokio::time::Instant::now() + look);
            }
        })
        .await;
    }
}

/// A connection that records its activity, and on a client connection shows every byte
/// read to the request framing [`Screen`](crate::framing::Screen). Bytes already read from
/// the connection (by the relay) can be put back in front.
pub struct Watched<I> {
    io: I,
    activity: Arc<Activity>,
    /// What only connections served by hyper have: boxed, so that the many waiting for
    /// their next request in the relay hold a pointer instead.
    handed_over: Option<Box<HandedOver>>,
}

/// A connection's state from when hyper serves it.
#[derive(Default)]
struct HandedOver {
    screen: Option<crate::framing::Screen>,
    /// Bytes read before the connection's own.
    prefix: bytes::Bytes,
}

impl<I> Watched<I> {
    pub fn new(io: I, activity: Arc<Activity>) -> Self {
        Self { io, activity, handed_over: None }
    }

    /// Reads `prefix` first, then the connection.
    pub fn after(mut self, prefix: bytes::Bytes) -> Self {
        self.handed_over.get_or_insert_default().prefix = prefix;
        self
    }

    pub fn get_ref(&self) -> &I {
        &self.io
    }

    pub fn into_inner(self) -> I {
        self.io
    }

    /// Shows every byte read to `screen`.
    pub fn screened(mut self, screen: crate::framing::Screen) -> Self {
        self.handed_over.get_or_insert_default().screen = Some(screen);
        self
    }
}

impl<I: AsyncRead + Unpin> AsyncRead for Watched<I> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        let before = buf.filled().len();
        let this = &mut *self;
        let polled = match &mut this.handed_over {
            Some(handed_over) if !handed_over.prefix.is_empty() => {
                let taken = handed_over.prefix.len().min(buf.remaining());
                buf.put_slice(&handed_over.prefix.split_to(taken));
                Poll::Ready(Ok(()))
            }
            _ => Pin::new(&mut this.io).poll_read(cx, buf),
        };
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            this.activity.touch();
            if let Some(screen) = this.handed_over.as_mut().and_then(|h| h.screen.as_mut()) {
                screen.read(&buf.filled()[before..]);
            }
        }
        polled
    }
}

impl<I: AsyncWrite + Unpin> AsyncWrite for Watched<I> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bytes: &[u8]) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write(cx, bytes);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let polled = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.activity.touch();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.io.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::time::Instant;

    #[tokio::test(start_paused = true)]
    async fn reads_and_writes_put_the_idle_deadline_off() {
        let (near, mut far) = tokio::io::duplex(64);
        let activity = Activity::new();
        let mut watched = Watched::new(near, activity.clone());
        let started = Instant::now();
        activity.idle_for(Duration::from_secs(8)).await;
        assert_eq!(started.elapsed(), Duration::from_secs(8), "silence from the start");

        // A write at 5 s and a read at 11 s: silent for 8 s only from the read on.
        let started = Instant::now();
        let traffic = async {
            tokio::time::sleep(Duration::from_secs(5)).await;
            watched.write_all(b"x").await.unwrap();
            tokio::time::sleep(Duration::from_secs(6)).await;
            far.write_all(b"y").await.unwrap();
            let mut byte = [0u8; 1];
            watched.read_exact(&mut byte).await.unwrap();
        };
        tokio::join!(traffic, activity.idle_for(Duration::from_secs(8)));
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(19) && took <= Duration::from_secs(21), "{took:?}");
    }
}
