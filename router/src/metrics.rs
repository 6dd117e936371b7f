//! Per-app request metrics in Prometheus' text format: requests by status class, upstream
//! errors, and a latency histogram. Served at `/metrics` on the router's own address (any
//! host that is not an app's). The same counts, in the canaries' finer latency buckets,
//! are what the router reports to the controller for its per-minute history
//! ([`crate::traffic`]).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use skiff_api::canary::{LATENCY_BUCKETS, latency_bucket};
use skiff_api::{AppName, BucketCount};

/// Histogram bucket bounds, in seconds.
const BUCKETS: [f64; 10] = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 5.0];

#[derive(Debug, Clone)]
struct AppMetrics {
    /// By status class: 1xx … 5xx.
    classes: [u64; 5],
    upstream_errors: u64,
    /// Cumulative counts per bucket, then the +Inf count.
    buckets: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
    /// Requests and 5xx answers by [`latency_bucket`].
    latency: Vec<(u64, u64)>,
}

impl Default for AppMetrics {
    fn default() -> Self {
        Self {
            classes: [0; 5],
            upstream_errors: 0,
            buckets: [0; BUCKETS.len()],
            count: 0,
            sum: 0.0,
            latency: vec![(0, 0); usize::from(LATENCY_BUCKETS)],
        }
    }
}

impl AppMetrics {
    /// Counts one answered request.
    fn record(&mut self, status: u16, took: Duration, upstream_error: bool) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.classes[class] += 1;
        self.upstream_errors += u64::from(upstream_error);
        let seconds = took.as_secs_f64();
        for (bound, count) in BUCKETS.iter().zip(self.buckets.iter_mut()) {
            if seconds <= *bound {
                *count += 1;
            }
        }
        self.count += 1;
        self.sum += seconds;
        if let Some(bucket) = self.latency.get_mut(usize::from(latency_bucket(took))) {
            bucket.0 += 1;
            bucket.1 += u64::from(status >= 500);
        }
    }

    fn add(&mut self, other: &Self) {
        for (mine, theirs) in self.latency.iter_mut().zip(&other.latency) {
            mine.0 += theirs.0;
            mine.1 += theirs.1;
        }
        for (mine, theirs) in self.classes.iter_mut().zip(other.classes) {
            *mine += theirs;
        }
        for (mine, theirs) in self.buckets.iter_mut().zip(other.buckets) {
            *mine += theirs;
        }
        self.upstream_errors += other.upstream_errors;
        self.count += other.count;
        self.sum += other.sum;
    }
}

type AppsMetrics = BTreeMap<AppName, AppMetrics>;

/// Every app's metrics, in one shard per router thread (each thread counts into its own,
/// so that threads never wait for each other's lock), summed when rendered.
#[derive(Debug)]
pub struct Metrics {
    shards: Box<[Mutex<AppsMetrics>]>,
    /// Access lines dropped because the logger was too slow or away.
    access_lines_dropped: AtomicU64,
}

impl Metrics {
    /// Metrics counted by `shards` threads.
    pub fn new(shards: usize) -> Self {
        Self { shards: (0..shards.max(1)).map(|_| Mutex::default()).collect(), access_lines_dropped: AtomicU64::new(0) }
    }

    /// Counts an access line the logger did not get.
    pub fn access_line_dropped(&self) {
        self.access_lines_dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one answered request, in the counting thread's `shard`.
    pub fn record(&self, shard: usize, app: &AppName, status: u16, took: Duration, upstream_error: bool) {
        let mut apps = self.shards[shard % self.shards.len()].lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        match apps.get_mut(app) {
            Some(entry) => entry.record(status, took, upstream_error),
            // The app's name is copied only the first time it is seen.
            None => apps.entry(app.clone()).or_default().record(status, took, upstream_error),
        }
    }

    /// Every app's counts summed over the shards.
    fn totals(&self) -> AppsMetrics {
        let mut apps = AppsMetrics::new();
        for shard in &self.shards {
            for (app, counted) in shard.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).iter() {
                apps.entry(app.clone()).or_default().add(counted);
            }
        }
        apps
    }

    /// Every app's requests and 5xx answers so far, by latency bucket (only the buckets
    /// that have any).
    pub fn traffic(&self) -> BTreeMap<AppName, Vec<BucketCount>> {
        self.totals()
            .into_iter()
            .map(|(app, counted)| {
                let buckets = (0..LATENCY_BUCKETS)
                    .zip(counted.latency)
                    .filter(|(_, (requests, _))| *requests > 0)
                    .map(|(bucket, (requests, errors))| BucketCount { bucket, requests, errors })
                    .collect();
                (app, buckets)
            })
            .collect()
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let apps = self.totals();
        let mut out = String::new();
        let _ = writeln!(out, "# HELP skiff_router_requests_total Requests answered, by app and status class.");
        let _ = writeln!(out, "# TYPE skiff_router_requests_total counter");
        for (app, m) in &apps {
            for (index, count) in m.classes.iter().enumerate() {
                let _ = writeln!(out, "skiff_router_requests_total{{app=\"{app}\",class=\"{}xx\"}} {count}", index + 1);
            }
        }
        let _ = writeln!(out, "# HELP skiff_router_upstream_errors_total Requests whose app did not answer.");
        let _ = writeln!(out, "# TYPE skiff_router_upstream_errors_total counter");
        for (app, m) in &apps {
            let _ = writeln!(out, "skiff_router_upstream_errors_total{{app=\"{app}\"}} {}", m.upstream_errors);
        }
        let _ = writeln!(out, "# HELP skiff_router_request_duration_seconds Time to the answer's head, by app.");
        let _ = writeln!(out, "# TYPE skiff_router_request_duration_seconds histogram");
        for (app, m) in &apps {
            for (bound, count) in BUCKETS.iter().zip(m.buckets.iter()) {
                let _ = writeln!(
                    out,
                    "skiff_router_request_duration_seconds_bucket{{app=\"{app}\",le=\"{bound}\"}} {count}"
                );
            }
            let _ =
                writeln!(out, "skiff_router_request_duration_seconds_bucket{{app=\"{app}\",le=\"+Inf\"}} {}", m.count);
            let _ = writeln!(out, "skiff_router_request_duration_seconds_sum{{app=\"{app}\"}} {}", m.sum);
            let _ = writeln!(out, "skiff_router_request_duration_seconds_count{{app=\"{app}\"}} {}", m.count);
        }
        let _ =
            writeln!(out, "# HELP skiff_router_access_lines_dropped_total Access lines the logger was too slow for.");
        let _ = writeln!(out, "# TYPE skiff_router_access_lines_dropped_total counter");
        let dropped = self.access_lines_dropped.load(Ordering::Relaxed);
        let _ = writeln!(out, "skiff_router_access_lines_dropped_total {dropped}");
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_counted_by_class_and_bucket_across_shards() {
        let metrics = Metrics::new(2);
        let app: AppName = "shop".parse().unwrap();
        metrics.record(0, &app, 200, Duration::from_millis(3), false);
        metrics.record(1, &app, 502, Duration::from_millis(30), true);
        let text = metrics.render();
        assert!(text.contains("skiff_router_requests_total{app=\"shop\",class=\"2xx\"} 1"), "{text}");
        assert!(text.contains("skiff_router_requests_total{app=\"shop\",class=\"5xx\"} 1"), "{text}");
        assert!(text.contains("skiff_router_upstream_errors_total{app=\"shop\"} 1"), "{text}");
        assert!(text.contains("skiff_router_request_duration_seconds_bucket{app=\"shop\",le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("skiff_router_request_duration_seconds_bucket{app=\"shop\",le=\"0.05\"} 2"), "{text}");
        assert!(text.contains("skiff_router_request_duration_seconds_count{app=\"shop\"} 2"), "{text}");
        let traffic = metrics.traffic();
        let buckets = &traffic[&app];
        assert_eq!(buckets.iter().map(|b| (b.requests, b.errors)).collect::<Vec<_>>(), [(1, 0), (1, 1)]);
        assert_eq!(buckets[0].bucket, latency_bucket(Duration::from_millis(3)));
    }
}
