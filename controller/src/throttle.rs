//! Failed sign-ins (the API's login, the registry's Basic auth and token endpoint), counted
//! per user name and per client address over a sliding window: past the limit, further
//! attempts are refused (429, with how long to wait) until the oldest failure leaves the
//! window. A successful sign-in is never delayed. Counts are kept per controller replica.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a failure counts.
pub const WINDOW: Duration = Duration::from_secs(300);
/// Failures for one user name within the window, from anywhere.
pub const PER_USER: usize = 10;
/// Failures from one client address within the window, for any user names.
pub const PER_ADDRESS: usize = 30;
/// Keys kept at most; beyond, those without a failure in the window are forgotten.
const MAX_KEYS: usize = 100_000;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Address(IpAddr),
}

/// Who is signing in: a user name (absent for a bare token) and where from.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub username: Option<&'a str>,
    pub address: Option<IpAddr>,
}

impl Attempt<'_> {
    fn keys(&self) -> impl Iterator<Item = (Key, usize)> + '_ {
        let user = self.username.map(|name| (Key::User(name.to_ascii_lowercase()), PER_USER));
        let address = self.address.map(|address| (Key::Address(address), PER_ADDRESS));
        user.into_iter().chain(address)
    }
}

/// Recent failures by user name and client address.
#[derive(Debug, Default)]
pub struct LoginThrottle {
    failures: Mutex<HashMap<Key, VecDeque<Instant>>>,
}

impl LoginThrottle {
    /// `Err(wait)` when the attempt's user name or address has failed too often lately.
    pub fn check(&self, attempt: Attempt<'_>, now: Instant) -> Result<(), Duration> {
        let mut failures = self.lock();
        let mut wait = Duration::ZERO;
        for (key, limit) in attempt.keys() {
            if let Some(times) = failures.get_mut(&key) {
                forget_old(times, now);
                if times.len() >= limit
                    && let Some(oldest) = times.front()
                {
                    wait = wait.max(WINDOW.saturating_sub(now.duration_since(*oldest)));
                }
            }
        }
        if wait.is_zero() { Ok(()) } else { Err(wait.max(Duration::from_secs(1))) }
    }

    /// Counts a failed attempt.
    pub fn failed(&self, attempt: Attempt<'_>, now: Instant) {
        let mut failures = self.lock();
        if failures.len() >= MAX_KEYS {
            failures.retain(|_, times| {
                forget_old(times, now);
                !times.is_empty()
            });
        }
        for (key, limit) in attempt.keys() {
            let times = failures.entry(key).or_default();
            forget_old(times, now);
            times.push_back(now);
            // Only the newest `limit` matter.
            while times.len() > limit {
                times.pop_front();
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, VecDeque<Instant>>> {
        self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn forget_old(times: &mut VecDeque<Instant>, now: Instant) {
    while times.front().is_some_and(|t| now.duration_since(*t) >= WINDOW) {
        times.pop_front();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attempt<'a>(user: &'a str, address: &str) -> Attempt<'a> {
        Attempt { username: Some(user), address: Some(address.parse().unwrap()) }
    }

    #[test]
    fn a_user_name_guessed_at_too_often_waits_out_the_window() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        for n in 0..PER_USER {
            assert!(throttle.check(attempt("alice", "192.0.2.1"), t0).is_ok(), "attempt {n}");
            throttle.failed(attempt("alice", &format!("192.0.2.{}", n % 3)), t0);
        }
        // From any address, and whatever the case of the name.
        let wait = throttle.check(attempt("ALICE", "198.51.100.7"), t0 + Duration::from_secs(60)).unwrap_err();
        assert_eq!(wait, WINDOW - Duration::from_secs(60));
        assert!(throttle.check(attempt("bob", "198.51.100.7"), t0).is_ok(), "another user is not held");
        assert!(throttle.check(attempt("alice", "192.0.2.1"), t0 + WINDOW).is_ok(), "the window passed");
    }

    #[test]
    fn an_address_guessing_many_names_is_held_and_bare_tokens_count_by_address() {
        let throttle = LoginThrottle::default();
        let t0 = Instant::now();
        for n in 0..PER_ADDRESS {
            throttle.failed(attempt(&format!("user{n}"), "203.0.113.9"), t0);
        }
        assert!(throttle.check(attempt("someone", "203.0.113.9"), t0).is_err());
        assert!(throttle.check(attempt("someone", "203.0.113.10"), t0).is_ok());
        let token = Attempt { username: None, address: Some("203.0.113.9".parse().unwrap()) };
        assert!(throttle.check(token, t0).is_err(), "a bare token from there too");
        let nowhere = Attempt { username: None, address: None };
        assert!(throttle.check(nowhere, t0).is_ok(), "nothing to count by");
    }
}
