//! The failover loop both engines send a request through: the app's backends in the
//! route table's order until one answers.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::time::Duration;

use tokio::time::{Instant, Sleep};

use crate::table::{Backends, Outstanding};
use crate::upstream::UpstreamError;

/// Why no backend answered.
pub(super) enum Unanswered {
    /// The last one tried gave no answer head within the response timeout.
    TimedOut,
    /// The last one tried failed (or the client's body did).
    Failed(UpstreamError),
}

/// After which failed attempts a request may go to the app's next backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Resend {
    /// None: its body went with the first attempt (or it is an upgrade).
    Never,
    /// Those that never reached the app: no connection could be made.
    Unsent,
    /// Those too where the app (or its node) went away before answering anything: the
    /// request is idempotent, so the app may see it twice (RFC 9110 §9.2.2).
    Unanswered,
}

impl Resend {
    /// For a request that can be sent again (it has no body, or none was read) or not.
    pub fn of(replayable: bool, idempotent: bool) -> Self {
        match (replayable, idempotent) {
            (false, _) => Self::Never,
            (true, false) => Self::Unsent,
            (true, true) => Self::Unanswered,
        }
    }

    fn after(self, error: &UpstreamError) -> bool {
        match self {
            Self::Never => false,
            Self::Unsent => error.is_connect(),
            Self::Unanswered => error.is_connect() || error.is_unanswered(),
        }
    }
}

/// How long an app has to answer: each attempt gets `timeout` from its start, timed by
/// `timer`. A caller that serves requests one after another passes the same timer for all
/// of them (a timer moved later is one write, where a new one is an insertion into the
/// runtime's timer wheel and a removal from it).
pub(super) struct AnswerTimer<'a> {
    pub timeout: Duration,
    pub timer: Pin<&'a mut Sleep>,
}

/// How trying the backends ended: the answer (or why there is none), from which backend,
/// and the request counted as outstanding there until the guard goes.
pub(super) struct Tried<T> {
    pub answer: Result<T, Unanswered>,
    pub backend: SocketAddr,
    pub outstanding: Outstanding,
}

/// Tries `backends` in order with `attempt(backend, again, state)` until one answers. A
/// backend that fails is set aside (tried last for a while) and, while another follows
/// and the request may go `again` after that failure ([`Resend`]: a refused connection,
/// or for an idempotent request a connection that died before any answer), the next one
/// gets the request. Otherwise (the answer broke off or was garbage, no answer head came
/// within the timeout of `answer_timer`) the client gets the failure (a client's own broken
/// body, `client_failed`, is not the backend's fault, and does not set the backend aside).
///
/// `state` goes through every attempt and comes back with the outcome (an attempt cut off
/// by the timeout loses it: the default comes back).
pub(super) async fn try_backends<T, C, F, Fut>(
    app: &str,
    backends: &Backends,
    answer_timer: AnswerTimer<'_>,
    resend: Resend,
    mut state: C,
    mut attempt: F,
    client_failed: impl Fn(&UpstreamError) -> bool,
) -> (Tried<T>, C)
where
    C: Default,
    F: FnMut(SocketAddr, bool, C) -> Fut,
    Fut: Future<Output = (Result<T, UpstreamError>, C)>,
{
    let AnswerTimer { timeout, mut timer } = answer_timer;
    let mut candidates = backends.iter().peekable();
    loop {
        let backend = candidates.next().expect("a route with backends");
        let outstanding = backends.track(backend);
        let again = resend != Resend::Never && candidates.peek().is_some();
        timer.as_mut().reset(Instant::now() + timeout);
        let attempted = tokio::select! {
            biased;
            attempted = attempt(backend, again, state) => Ok(attempted),
            () = timer.as_mut() => Err(()),
        };
        let answer = match attempted {
            Ok((Ok(answer), kept)) => {
                state = kept;
                Ok(answer)
            }
            Ok((Err(error), kept)) => {
                state = kept;
                if !client_failed(&error) {
                    backends.set_aside(backend);
                }
                if again && resend.after(&error) {
                    tracing::warn!(%error, app, %backend, "router.upstream: trying the next backend");
                    continue;
                }
                Err(Unanswered::Failed(error))
            }
            Err(()) => {
                state = C::default();
                backends.set_aside(backend);
                tracing::warn!(app, %backend, "router.upstream: no answer within {timeout:?}");
                Err(Unanswered::TimedOut)
            }
        };
        return (Tried { answer, backend, outstanding }, state);
    }
}
