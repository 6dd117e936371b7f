//! Canary releases on the wire: the traffic split in the route feed, the per-release
//! samples routers report, and the comparison `skiff canary` shows.
//!
//! Latency is counted in logarithmic buckets, four per doubling from 0.1 ms: compact
//! enough for every router to report each second, fine enough for quantiles within 10%
//! and for a rank-sum test on the whole distribution.

use std::net::SocketAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::AppName;

/// The number of latency buckets; the last one takes everything from about 56 s.
pub const LATENCY_BUCKETS: u16 = 80;
/// The lower bound of the first bucket, in milliseconds.
const FIRST_BUCKET_MS: f64 = 0.1;
/// Buckets per doubling.
const BUCKETS_PER_DOUBLING: f64 = 4.0;

/// The bucket a latency falls in.
pub fn latency_bucket(took: Duration) -> u16 {
    let millis = took.as_secs_f64() * 1000.0;
    if millis <= FIRST_BUCKET_MS {
        return 0;
    }
    let index = ((millis / FIRST_BUCKET_MS).log2() * BUCKETS_PER_DOUBLING).floor();
    // Saturating: NaN and huge values land in the last bucket.
    (index as u16).min(LATENCY_BUCKETS - 1)
}

/// A latency that stands for bucket `bucket`: the geometric middle of its bounds, in
/// milliseconds.
pub fn bucket_millis(bucket: u16) -> f64 {
    FIRST_BUCKET_MS * 2f64.powf((f64::from(bucket) + 0.5) / BUCKETS_PER_DOUBLING)
}

/// Which side of a canary a request went to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Arm {
    /// The release that served before the canary.
    Baseline,
    /// The release on trial.
    Canary,
}

impl Arm {
    /// Both arms, baseline first.
    pub const BOTH: [Self; 2] = [Self::Baseline, Self::Canary];
}

impl std::fmt::Display for Arm {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Baseline => "baseline",
            Self::Canary => "canary",
        })
    }
}

/// An app's canary in the route feed: which share of requests goes to which backends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CanaryRoute {
    /// The canary's id, under which routers report its samples.
    pub id: i64,
    /// The release on trial.
    pub release: u32,
    /// The share of requests it gets, in percent (1–99).
    pub percent: u8,
    /// Whether a client always reaches the same side (chosen by its address).
    #[serde(default)]
    pub sticky: bool,
    /// The canary release's ready `web` backends (the route's own are the baseline's).
    pub backends: Vec<SocketAddr>,
}

/// One latency bucket of one arm: how many requests, and how many of them answered 5xx.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BucketCount {
    /// See [`latency_bucket`].
    pub bucket: u16,
    pub requests: u64,
    pub errors: u64,
}

/// What one router counted for one arm of a canary since its last report.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CanarySample {
    pub canary: i64,
    pub app: AppName,
    pub arm: Arm,
    /// Non-empty buckets only.
    pub buckets: Vec<BucketCount>,
}

/// `POST /v2/hooks/canary-samples` (routers, service token).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CanarySamples {
    pub samples: Vec<CanarySample>,
}

/// `POST /v2/apps/{app}/canary`: put a build on trial beside the current release.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CanaryCreate {
    /// The release whose build (with the app's current config) goes on trial.
    pub release: u32,
    #[serde(flatten)]
    pub trial: CanaryTrial,
}

/// How a canary runs: its share of traffic, how long, and what evidence it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CanaryTrial {
    /// The share of requests, in percent (1–99).
    pub percent: u8,
    /// How long it runs before the judge decides, in seconds.
    pub duration_secs: u64,
    /// Whether each client stays on one side.
    #[serde(default)]
    pub sticky: bool,
    /// The fewest requests each side needs for a verdict; fewer at the deadline: not
    /// promoted. Default 50.
    #[serde(default = "default_min_requests")]
    pub min_requests: u64,
}

/// The fewest requests per arm a canary is judged on, unless told otherwise.
pub const DEFAULT_MIN_REQUESTS: u64 = 50;

fn default_min_requests() -> u64 {
    DEFAULT_MIN_REQUESTS
}

impl CanaryTrial {
    /// The window's length.
    pub fn duration(&self) -> Duration {
        Duration::from_secs(self.duration_secs)
    }
}

/// Where a canary is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum CanaryState {
    /// Taking its share of traffic.
    Running,
    /// Passed (or promoted by hand): its release is the app's.
    Promoted,
    /// Judged worse than the baseline: rolled back.
    Failed,
    /// Too few requests by the deadline: not promoted.
    Inconclusive,
    /// Ended by hand.
    Aborted,
    /// A newer release of the app came first.
    Superseded,
}

/// One arm's numbers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ArmSummary {
    pub requests: u64,
    /// Answers with a 5xx status.
    pub errors: u64,
    /// Milliseconds; absent without requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p50_ms: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub p99_ms: Option<f64>,
}

/// What the judge says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Not enough evidence yet.
    Wait,
    Pass,
    Fail,
    /// The deadline came with too few requests.
    Inconclusive,
}

/// One metric's comparison.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct MetricJudgement {
    /// `error rate` or `latency`.
    pub metric: String,
    pub passed: bool,
    /// A failed critical metric fails the canary whatever the score.
    pub critical: bool,
    /// The numbers behind it, in words.
    pub detail: String,
}

/// The judge's score and verdict over the evidence so far.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Judgement {
    /// 0–100: the share of metrics that passed.
    pub score: u8,
    pub verdict: Verdict,
    /// Why, in one line.
    pub reason: String,
    pub metrics: Vec<MetricJudgement>,
}

/// `GET /v2/apps/{app}/canary`: the app's running canary, or its last one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Canary {
    pub id: i64,
    pub app: AppName,
    /// The release on trial.
    pub release: u32,
    /// The release it is compared with.
    pub baseline: u32,
    pub trial: CanaryTrial,
    pub state: CanaryState,
    pub started_at: String,
    /// When the judge decides at the latest.
    pub ends_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<String>,
    pub baseline_metrics: ArmSummary,
    pub canary_metrics: ArmSummary,
    /// The judgement now (running) or the one that ended it.
    pub judgement: Judgement,
}

/// The requests an app answered through one router since that router's last report
/// (`POST /v2/hooks/traffic`), by latency bucket with their 5xx answers: the controller
/// adds them up per minute for the dashboard's charts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TrafficSample {
    pub app: AppName,
    pub buckets: Vec<BucketCount>,
}

/// A router's traffic report.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct TrafficSamples {
    pub samples: Vec<TrafficSample>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_logarithmic_and_bounded() {
        assert_eq!(latency_bucket(Duration::ZERO), 0);
        assert_eq!(latency_bucket(Duration::from_micros(100)), 0);
        assert_eq!(latency_bucket(Duration::from_micros(200)), 4, "four buckets per doubling");
        assert_eq!(latency_bucket(Duration::from_secs(3600)), LATENCY_BUCKETS - 1);
        for millis in [0.3, 1.0, 7.0, 42.0, 900.0, 12_000.0] {
            let bucket = latency_bucket(Duration::from_secs_f64(millis / 1000.0));
            let middle = bucket_millis(bucket);
            assert!((middle / millis - 1.0).abs() < 0.1, "{millis} ms in bucket {bucket} ({middle} ms)");
        }
    }
}
