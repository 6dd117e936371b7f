//! The failover loop both engines send a request through: the app's backends in the
//! route table's order until one answers.

use std::future::Future;
use std::net::SocketAddr;
use std::time::Duration;

use crate::table::{Backends, Outstanding};
use crate::upstream::UpstreamError;

/// Why no backend answered.
pub(super) enum Unanswered {
    /// The last one tried gave no answer head within the response timeout.
    TimedOut,
    /// The last one tried failed (or the client's body did).
    Failed(UpstreamError),
}

/// How trying the backends ended: the answer (or why there is none), from which backend,
/// and the request counted as outstanding there until the guard goes.
pub(super) struct Tried<T> {
    pub answer: Result<T, Unanswered>,
    pub backend: SocketAddr,
    pub outstanding: Outstanding,
}

/// Tries `backends` in order with `attempt(backend, again, state)` until one answers. A
/// backend that refuses the connection is set aside (tried last for a while) and, while
/// another follows and the request may go `again` (it has no body, or it was never read),
/// the next one gets the request. One that breaks off, answers garbage or gives no answer
/// head within `response_timeout` is set aside too, and the client gets the failure (a
/// client's own broken body, `client_failed`, is not the backend's fault).
///
/// `state` goes through every attempt and comes back with the outcome (an attempt cut off
/// by the timeout loses it: the default comes back).
pub(super) async fn try_backends<T, C, F, Fut>(
    app: &str,
    backends: &Backends,
    response_timeout: Duration,
    replayable: bool,
    mut state: C,
    mut attempt: F,
    client_failed: impl Fn(&UpstreamError) -> bool,
) -> (Tried<T>, C)
where
    C: Default,
    F: FnMut(SocketAddr, bool, C) -> Fut,
    Fut: Future<Output = (Result<T, UpstreamError>, C)>,
{
    let mut candidates = backends.iter().peekable();
    loop {
        let backend = candidates.next().expect("a route with backends");
        let outstanding = backends.track(backend);
        let again = replayable && candidates.peek().is_some();
        let answer = match tokio::time::timeout(response_timeout, attempt(backend, again, state)).await {
            Ok((Ok(answer), kept)) => {
                state = kept;
                Ok(answer)
            }
            Ok((Err(error), kept)) => {
                state = kept;
                if !client_failed(&error) {
                    backends.set_aside(backend);
                }
                if error.is_connect() && again {
                    tracing::warn!(%error, app, %backend, "router.upstream: trying the next backend");
                    continue;
                }
                Err(Unanswered::Failed(error))
            }
            Err(_) => {
                state = C::default();
                backends.set_aside(backend);
                tracing::warn!(app, %backend, "router.upstream: no answer within {response_timeout:?}");
                Err(Unanswered::TimedOut)
            }
        };
        return (Tried { answer, backend, outstanding }, state);
    }
}
