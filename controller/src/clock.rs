//! The controller's wall clock for schedules. It reads the system's time; tests move it
//! forward ([`Clock::advance`]) to see a schedule come due without waiting for it. And the
//! system's time in Unix milliseconds, for queues and leases ([`now_ms`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

/// Now, in Unix milliseconds (the system's time; queues and leases keep it).
pub fn now_ms() -> i64 {
    i64::try_from(time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// A duration in milliseconds, as queues and leases add it to [`now_ms`].
pub fn millis(duration: Duration) -> i64 {
    i64::try_from(duration.as_millis()).unwrap_or(i64::MAX)
}

/// The system's time, plus however far tests moved it.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    ahead_ms: Arc<AtomicI64>,
}

impl Clock {
    /// Now.
    pub fn now(&self) -> jiff::Timestamp {
        let ahead = jiff::SignedDuration::from_millis(self.ahead_ms.load(Ordering::Relaxed));
        jiff::Timestamp::now().checked_add(ahead).unwrap_or(jiff::Timestamp::MAX)
    }

    /// Moves this clock (and every copy of it) forward by `by`.
    pub fn advance(&self, by: Duration) {
        let by = i64::try_from(by.as_millis()).unwrap_or(i64::MAX);
        self.ahead_ms.fetch_add(by, Ordering::Relaxed);
    }
}
