//! HTTP/1.1 connections that wait for their next request, parked: a connection quiet for
//! a moment leaves its task (some 0.9 KiB with tokio's task cell) for a slot in its
//! worker's lot (the socket, over TLS its session too, what serving it takes, and a waker),
//! and gets a task again when the client sends its next request, closes, or the deadline
//! passes.
//!
//! Connections that are busy never park: a connection parks only after [`PARK_AFTER`]
//! without a byte, the relay's own wait. A TLS connection parks only when rustls holds no
//! decrypted bytes, so that its socket's readability says whether a request came.

use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_rustls::server::TlsStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::Accepted;
use super::relay::Readable as _;

/// How long a connection waits in its own task before it parks.
pub(super) const PARK_AFTER: Duration = Duration::from_millis(100);
/// How often the lot looks for connections past their deadline (closed up to this late).
const DEADLINE_LOOKS: Duration = Duration::from_secs(1);

/// One worker's parked connections.
pub(super) struct Lot {
    spaces: Mutex<Spaces>,
    /// Where a connection that wakes is served.
    connections: TaskTracker,
}

#[derive(Default)]
struct Spaces {
    slots: Vec<Option<Parked>>,
    free: Vec<usize>,
    /// Slots whose connection has something to read (or closed), with their tickets.
    rung: Vec<(usize, u32)>,
    /// The lot's own task, woken when a connection rings.
    keeper: Option<Waker>,
    /// Tells a slot's connections apart over time.
    next_ticket: u32,
    /// The router shuts down: nothing parks any more.
    closed: bool,
}

/// A client's connection between requests.
pub(super) enum Waiting {
    Plain(TcpStream),
    /// Boxed: a TLS session is larger than a plain connection's slot needs.
    Tls(Box<TlsStream<TcpStream>>),
}

impl Waiting {
    /// Whether a read would not wait; if it would, `waker` is woken once it would not.
    fn readable(&self, waker: &Waker) -> bool {
        let mut cx = Context::from_waker(waker);
        match self {
            Self::Plain(stream) => stream.poll_readable(&mut cx).is_ready(),
            Self::Tls(stream) => stream.poll_readable(&mut cx).is_ready(),
        }
    }

    /// Serves the connection in a task of `connections` again.
    fn serve(self, accepted: Accepted, connections: &TaskTracker) {
        match self {
            Self::Plain(stream) => connections.spawn(super::serve_and_park(stream, accepted)),
            Self::Tls(stream) => connections.spawn(super::serve_and_park(*stream, accepted)),
        };
    }
}

impl From<TcpStream> for Waiting {
    fn from(stream: TcpStream) -> Self {
        Self::Plain(stream)
    }
}

impl From<TlsStream<TcpStream>> for Waiting {
    fn from(stream: TlsStream<TcpStream>) -> Self {
        Self::Tls(Box::new(stream))
    }
}

struct Parked {
    stream: Waiting,
    accepted: Accepted,
    deadline: Instant,
    ticket: u32,
}

/// What a parked connection's socket wakes: it rings its slot.
struct Bell {
    lot: Arc<Lot>,
    slot: usize,
    ticket: u32,
}

impl Wake for Bell {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let mut spaces = self.lot.spaces();
        spaces.rung.push((self.slot, self.ticket));
        if let Some(keeper) = spaces.keeper.take() {
            keeper.wake();
        }
    }
}

impl Lot {
    pub(super) fn new(connections: TaskTracker) -> Arc<Self> {
        Arc::new(Self { spaces: Mutex::default(), connections })
    }

    fn spaces(&self) -> MutexGuard<'_, Spaces> {
        self.spaces.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Parks a connection that has nothing to read until it has, or `deadline` passes.
    pub(super) fn park(self: &Arc<Self>, stream: Waiting, accepted: Accepted, deadline: Instant) {
        let (slot, ticket) = {
            let mut spaces = self.spaces();
            if spaces.closed {
                return;
            }
            let ticket = spaces.next_ticket;
            spaces.next_ticket = ticket.wrapping_add(1);
            let slot = spaces.free.pop().unwrap_or_else(|| {
                spaces.slots.push(None);
                spaces.slots.len() - 1
            });
            (slot, ticket)
        };
        let bell = Waker::from(Arc::new(Bell { lot: self.clone(), slot, ticket }));
        // Registers the bell with the socket (outside the lock: a bell takes it).
        let ready = stream.readable(&bell);
        let mut spaces = self.spaces();
        if ready {
            spaces.free.push(slot);
            drop(spaces);
            stream.serve(accepted, &self.connections);
            return;
        }
        spaces.slots[slot] = Some(Parked { stream, accepted, deadline, ticket });
    }

    /// Keeps the lot until the shutdown: serves the connections that ring, and closes
    /// those whose deadline passes.
    pub(super) async fn keep(self: Arc<Self>, shutdown: CancellationToken) {
        let mut looks = tokio::time::interval(DEADLINE_LOOKS);
        looks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = shutdown.cancelled() => break,
                rung = std::future::poll_fn(|cx| self.poll_rung(cx)) => self.serve(rung),
                _ = looks.tick() => self.expire(),
            }
        }
        let parked = {
            let mut spaces = self.spaces();
            spaces.closed = true;
            std::mem::take(&mut spaces.slots)
        };
        // Closed: the shutdown closes connections between requests.
        drop(parked);
    }

    /// Ready with the slots that rang.
    fn poll_rung(&self, cx: &mut Context<'_>) -> Poll<Vec<(usize, u32)>> {
        let mut spaces = self.spaces();
        if !spaces.rung.is_empty() {
            return Poll::Ready(std::mem::take(&mut spaces.rung));
        }
        if !spaces.keeper.as_ref().is_some_and(|keeper| keeper.will_wake(cx.waker())) {
            spaces.keeper = Some(cx.waker().clone());
        }
        Poll::Pending
    }

    /// Gives the connections that rang a task again.
    fn serve(&self, rung: Vec<(usize, u32)>) {
        let mut woken = Vec::with_capacity(rung.len());
        {
            let mut spaces = self.spaces();
            for (slot, ticket) in rung {
                if let Some(parked) = spaces.take(slot, ticket) {
                    woken.push(parked);
                }
            }
        }
        for Parked { stream, accepted, .. } in woken {
            stream.serve(accepted, &self.connections);
        }
    }

    /// Closes the connections whose deadline passed: a look over every slot, the lot's
    /// only memory being one slot per connection parked at once.
    fn expire(&self) {
        let now = Instant::now();
        let mut expired = Vec::new();
        {
            let mut spaces = self.spaces();
            let Spaces { slots, free, .. } = &mut *spaces;
            for (slot, space) in slots.iter_mut().enumerate() {
                if space.as_ref().is_some_and(|parked| parked.deadline <= now) {
                    expired.extend(space.take());
                    free.push(slot);
                }
            }
        }
        // Closed outside the lock: a socket's bell takes it as the socket goes.
        drop(expired);
    }
}

impl Spaces {
    /// Takes the connection in `slot` if it is still the one `ticket` names.
    fn take(&mut self, slot: usize, ticket: u32) -> Option<Parked> {
        let space = self.slots.get_mut(slot)?;
        if space.as_ref().is_none_or(|parked| parked.ticket != ticket) {
            return None;
        }
        let parked = space.take();
        self.free.push(slot);
        parked
    }
}
