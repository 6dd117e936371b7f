//! Every app's traffic, reported to the controller for its per-minute history (the
//! dashboard's charts): every [`REPORT_EVERY`] the requests and 5xx answers since the last
//! report, by latency bucket, taken as differences of [`Metrics::traffic`]'s totals. A
//! report the controller does not take is sent again, added to, with the next one.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use skiff_api::{AppName, BucketCount, TrafficSample, TrafficSamples};
use tokio_util::sync::CancellationToken;

use crate::metrics::Metrics;

/// How often the counts go to the controller.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// What each app counted between `before` and `now` (totals of the same router; a count
/// lower than before means the counts started again, and the whole of it is new).
fn since(
    before: &BTreeMap<AppName, Vec<BucketCount>>,
    now: &BTreeMap<AppName, Vec<BucketCount>>,
) -> Vec<TrafficSample> {
    now.iter()
        .filter_map(|(app, buckets)| {
            let earlier = before.get(app);
            let buckets: Vec<BucketCount> = buckets
                .iter()
                .filter_map(|count| {
                    let was = earlier.and_then(|e| e.iter().find(|b| b.bucket == count.bucket)).copied();
                    let was = was.filter(|was| was.requests <= count.requests).unwrap_or_default();
                    let requests = count.requests - was.requests;
                    (requests > 0).then(|| BucketCount {
                        bucket: count.bucket,
                        requests,
                        errors: count.errors.saturating_sub(was.errors),
                    })
                })
                .collect();
            (!buckets.is_empty()).then(|| TrafficSample { app: app.clone(), buckets })
        })
        .collect()
}

/// Reports to the controller until `shutdown`, then once more.
pub async fn report(metrics: Arc<Metrics>, client: skiff_client::Client, shutdown: CancellationToken) {
    let mut reported = BTreeMap::new();
    loop {
        let stopping = tokio::select! {
            () = tokio::time::sleep(REPORT_EVERY) => false,
            () = shutdown.cancelled() => true,
        };
        let now = metrics.traffic();
        let samples = since(&reported, &now);
        if !samples.is_empty() {
            match client.traffic(&TrafficSamples { samples }).await {
                Ok(()) => reported = now,
                Err(error) => {
                    tracing::warn!(%error, "router.traffic: the controller did not take the counts; sending them again")
                }
            }
        }
        if stopping {
            return;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn counts(pairs: &[(u16, u64, u64)]) -> Vec<BucketCount> {
        pairs.iter().map(|&(bucket, requests, errors)| BucketCount { bucket, requests, errors }).collect()
    }

    #[test]
    fn reports_carry_what_was_counted_since_the_last_one() {
        let shop: AppName = "shop".parse().unwrap();
        let blog: AppName = "blog".parse().unwrap();
        let before = BTreeMap::from([(shop.clone(), counts(&[(10, 5, 1)]))]);
        let now =
            BTreeMap::from([(shop.clone(), counts(&[(10, 8, 1), (20, 2, 2)])), (blog.clone(), counts(&[(3, 1, 0)]))]);
        let samples = since(&before, &now);
        assert_eq!(samples.len(), 2);
        assert_eq!(samples[0], TrafficSample { app: blog, buckets: counts(&[(3, 1, 0)]) });
        assert_eq!(samples[1], TrafficSample { app: shop.clone(), buckets: counts(&[(10, 3, 0), (20, 2, 2)]) });
        assert!(since(&now, &now).is_empty(), "nothing new, nothing sent");
        // Counts that went down started again.
        let restarted = BTreeMap::from([(shop.clone(), counts(&[(10, 2, 0)]))]);
        assert_eq!(since(&now, &restarted), [TrafficSample { app: shop, buckets: counts(&[(10, 2, 0)]) }]);
    }
}
