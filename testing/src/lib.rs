//! What Skiff's tests share. Tests never sleep a fixed time to let something happen: they
//! wait, bounded, for it to be so, with [`eventually`].

use std::future::Future;
use std::time::Duration;

/// How often a condition is looked at.
const LOOK_EVERY: Duration = Duration::from_millis(25);

/// Looks at `check` until it yields a value or `limit` passes (then `None`): the value
/// comes as soon as it is there, and a test that waits in vain ends.
pub async fn eventually<T, F, Fut>(limit: Duration, mut check: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = check().await {
            return Some(value);
        }
        if tokio::time::Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(LOOK_EVERY).await;
    }
}

/// [`eventually`] for a condition that holds or does not.
pub async fn eventually_true<F, Fut>(limit: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    eventually(limit, || {
        let holds = check();
        async move { holds.await.then_some(()) }
    })
    .await
    .is_some()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicU32, Ordering};

    #[tokio::test(start_paused = true)]
    async fn a_value_comes_as_soon_as_it_is_there_and_a_wait_in_vain_ends() {
        let looks = AtomicU32::new(0);
        let third = eventually(Duration::from_secs(1), || async {
            let n = looks.fetch_add(1, Ordering::Relaxed) + 1;
            (n == 3).then_some(n)
        })
        .await;
        assert_eq!(third, Some(3));
        let started = tokio::time::Instant::now();
        assert!(!eventually_true(Duration::from_secs(2), || async { false }).await);
        assert!(started.elapsed() >= Duration::from_secs(2) && started.elapsed() < Duration::from_secs(3));
    }
}
