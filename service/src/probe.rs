//! Readiness: named checks of what a service depends on, run together, each with a
//! deadline, so that one hung dependency shows as that dependency and never hangs `/readyz`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

/// How long one check may take before it counts as failed.
const CHECK_DEADLINE: Duration = Duration::from_secs(2);

type CheckFuture = Pin<Box<dyn Future<Output = Result<(), String>> + Send>>;
type Check = Arc<dyn Fn() -> CheckFuture + Send + Sync>;

/// A service's readiness checks.
#[derive(Clone, Default)]
pub struct Readiness {
    checks: Vec<(&'static str, Check)>,
}

impl std::fmt::Debug for Readiness {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.checks.iter().map(|(name, _)| name)).finish()
    }
}

/// What the checks found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Every check passed.
    pub ready: bool,
    /// One line per check: `database ok`, or `redis: connection refused`.
    pub text: String,
}

impl Readiness {
    /// No checks: always ready.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a check: `Ok` when `name` answers, otherwise what is wrong.
    #[must_use]
    pub fn check<F, Fut>(mut self, name: &'static str, check: F) -> Self
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), String>> + Send + 'static,
    {
        self.checks.push((name, Arc::new(move || Box::pin(check()) as CheckFuture)));
        self
    }

    /// Runs every check at once.
    pub async fn report(&self) -> Report {
        let runs = self.checks.iter().map(|(name, check)| async move {
            let outcome = match tokio::time::timeout(CHECK_DEADLINE, check()).await {
                Ok(outcome) => outcome,
                Err(_) => Err(format!("no answer within {} s", CHECK_DEADLINE.as_secs())),
            };
            (*name, outcome)
        });
        let outcomes = futures_util::future::join_all(runs).await;
        let ready = outcomes.iter().all(|(_, outcome)| outcome.is_ok());
        let mut text = String::new();
        for (name, outcome) in outcomes {
            match outcome {
                Ok(()) => text.push_str(&format!("{name} ok\n")),
                Err(error) => text.push_str(&format!("{name}: {error}\n")),
            }
        }
        if text.is_empty() {
            text.push_str("ok\n");
        }
        Report { ready, text }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn every_check_is_reported_and_one_failure_is_enough() {
        let readiness = Readiness::new()
            .check("database", || async { Ok(()) })
            .check("redis", || async { Err("connection refused".to_owned()) });
        let report = readiness.report().await;
        assert!(!report.ready);
        assert_eq!(report.text, "database ok\nredis: connection refused\n");
        assert!(Readiness::new().report().await.ready, "nothing to wait for");
    }

    #[tokio::test(start_paused = true)]
    async fn a_hung_check_fails_after_its_deadline_without_holding_the_others() {
        let readiness = Readiness::new().check("engine", std::future::pending).check("database", || async { Ok(()) });
        let report = readiness.report().await;
        assert!(!report.ready);
        assert_eq!(report.text, "engine: no answer within 2 s\ndatabase ok\n");
    }
}
