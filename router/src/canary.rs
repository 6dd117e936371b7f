//! Per-release counts of canaries: each request of an app with a canary is counted on its
//! side (requests, 5xx, latency bucket), and every second the counts so far go to the
//! controller, which adds up what every router reports and judges the canary on it.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use skiff_api::canary::{LATENCY_BUCKETS, latency_bucket};
use skiff_api::{AppName, Arm, BucketCount, CanarySample, CanarySamples};
use tokio_util::sync::CancellationToken;

use crate::table::CanaryPick;

/// How often counts go to the controller.
const REPORT_EVERY: Duration = Duration::from_secs(1);

/// Requests and 5xx answers per latency bucket.
#[derive(Debug, Clone)]
struct Counts {
    requests: [u64; LATENCY_BUCKETS as usize],
    errors: [u64; LATENCY_BUCKETS as usize],
}

impl Default for Counts {
    fn default() -> Self {
        Self { requests: [0; LATENCY_BUCKETS as usize], errors: [0; LATENCY_BUCKETS as usize] }
    }
}

/// Each side's counts of a canary, by canary and side, with the canary's app.
type CountsBySide = HashMap<(i64, Arm), (AppName, Counts)>;

/// Counts of every running canary not yet reported.
#[derive(Debug, Default)]
pub struct CanaryCounts {
    counts: Mutex<CountsBySide>,
}

impl CanaryCounts {
    /// Counts an answered request of a canary.
    pub fn record(&self, app: &AppName, pick: CanaryPick, status: u16, took: Duration) {
        let bucket = usize::from(latency_bucket(took));
        let mut counts = self.lock();
        // The app's name is copied only the first time a side is counted.
        let (_, entry) = counts.entry((pick.id, pick.arm)).or_insert_with(|| (app.clone(), Counts::default()));
        entry.requests[bucket] += 1;
        entry.errors[bucket] += u64::from(status >= 500);
    }

    /// The counts so far, which are forgotten here.
    pub fn take(&self) -> CanarySamples {
        let counts = std::mem::take(&mut *self.lock());
        let samples = counts
            .into_iter()
            .map(|((canary, arm), (app, counts))| {
                let buckets = (0..LATENCY_BUCKETS)
                    .zip(counts.requests.iter().zip(&counts.errors))
                    .filter(|(_, (requests, _))| **requests > 0)
                    .map(|(bucket, (requests, errors))| BucketCount { bucket, requests: *requests, errors: *errors })
                    .collect();
                CanarySample { canary, app, arm, buckets }
            })
            .collect();
        CanarySamples { samples }
    }

    /// Puts back counts the controller did not take, to go with the next report.
    pub fn restore(&self, samples: CanarySamples) {
        let mut counts = self.lock();
        for sample in samples.samples {
            let (_, entry) =
                counts.entry((sample.canary, sample.arm)).or_insert_with(|| (sample.app, Counts::default()));
            for count in sample.buckets {
                let bucket = usize::from(count.bucket.min(LATENCY_BUCKETS - 1));
                entry.requests[bucket] += count.requests;
                entry.errors[bucket] += count.errors;
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, CountsBySide> {
        self.counts.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Sends the counts to the controller every second until `shutdown`, then once more.
    /// Counts the controller does not take wait for the next report.
    pub async fn report(&self, client: skiff_client::Client, shutdown: CancellationToken) {
        loop {
            let stopping = tokio::select! {
                () = tokio::time::sleep(REPORT_EVERY) => false,
                () = shutdown.cancelled() => true,
            };
            let samples = self.take();
            if !samples.samples.is_empty()
                && let Err(error) = client.canary_samples(&samples).await
            {
                tracing::warn!(%error, "router.canary: the controller did not take the counts; keeping them");
                self.restore(samples);
            }
            if stopping {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_kept_per_canary_and_side_until_taken() {
        let counts = CanaryCounts::default();
        let app: AppName = "shop".parse().unwrap();
        let canary = CanaryPick { id: 7, arm: Arm::Canary };
        let baseline = CanaryPick { arm: Arm::Baseline, ..canary };
        counts.record(&app, canary, 500, Duration::from_millis(2));
        counts.record(&app, canary, 200, Duration::from_millis(2));
        counts.record(&app, baseline, 200, Duration::from_millis(40));
        let mut taken = counts.take().samples;
        taken.sort_by_key(|s| s.arm);
        assert_eq!(taken.len(), 2);
        assert_eq!(taken[1].arm, Arm::Canary);
        let bucket = latency_bucket(Duration::from_millis(2));
        assert_eq!(taken[1].buckets, vec![BucketCount { bucket, requests: 2, errors: 1 }]);
        assert!(counts.take().samples.is_empty(), "taken counts are forgotten");

        counts.restore(CanarySamples { samples: taken.clone() });
        counts.record(&app, baseline, 200, Duration::from_millis(40));
        let mut again = counts.take().samples;
        again.sort_by_key(|s| s.arm);
        assert_eq!(again[0].buckets[0].requests, 2, "restored counts add to new ones");
        assert_eq!(again[1].buckets, taken[1].buckets);
    }
}
