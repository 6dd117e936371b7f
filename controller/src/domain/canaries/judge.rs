//! The canary judge, as Kayenta judges: each metric of the canary is compared with the
//! baseline's by a statistical test with a minimum effect size, the score is the share of
//! metrics that passed (0–100), and a failed critical metric fails the canary whatever
//! the score. Pure: the routers' counts in, a [`Judgement`] out.
//!
//! - **Error rate** (critical): a one-sided two-proportion z-test; the canary fails when
//!   its 5xx rate is higher with p < [`ALPHA`] *and* by more than
//!   [`MIN_ERROR_RATE_INCREASE`].
//! - **Latency**: a one-sided Mann–Whitney U (rank-sum) test over the latency buckets
//!   (ties within a bucket corrected for); the canary fails when it is slower with
//!   p < [`ALPHA`], a canary request is slower than a baseline one in more than
//!   [`MAX_SLOWER_SHARE`] of pairs, *and* its median falls in a higher bucket (about 19%
//!   slower or more), so that noise does not fail a good release.
//!
//! Before the deadline the judge fails a canary only on conclusive evidence (p <
//! [`EARLY_ALPHA`]) and otherwise waits; at the deadline it passes or fails, unless a side
//! has fewer than the minimum requests (inconclusive: not promoted).

use skiff_api::canary::bucket_millis;
use skiff_api::{ArmSummary, BucketCount, Judgement, MetricJudgement, Verdict};

/// The significance a metric fails at, at the deadline.
pub const ALPHA: f64 = 0.01;
/// The significance a metric fails at before the deadline: the judge looks every second,
/// so it ends a canary early only on much stronger evidence.
pub const EARLY_ALPHA: f64 = 0.001;
/// The smallest increase of the 5xx rate that fails a canary (one percentage point).
pub const MIN_ERROR_RATE_INCREASE: f64 = 0.01;
/// The share of (canary, baseline) request pairs in which the canary may be slower
/// before the difference counts (0.5: no difference).
pub const MAX_SLOWER_SHARE: f64 = 0.65;
/// The score a canary needs to pass (with no critical metric failed).
pub const PASS_SCORE: u8 = 75;

/// One side's counts, summed.
#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    requests: u64,
    errors: u64,
}

fn totals(counts: &[BucketCount]) -> Totals {
    counts
        .iter()
        .fold(Totals::default(), |t, c| Totals { requests: t.requests + c.requests, errors: t.errors + c.errors })
}

/// One side's requests, errors and latency quantiles.
pub fn summary(counts: &[BucketCount]) -> ArmSummary {
    let Totals { requests, errors } = totals(counts);
    ArmSummary { requests, errors, p50_ms: quantile(counts, 0.5), p99_ms: quantile(counts, 0.99) }
}

/// The latency below which a share `q` of requests fall, in milliseconds.
pub(crate) fn quantile(counts: &[BucketCount], q: f64) -> Option<f64> {
    let total = totals(counts).requests;
    let mut sorted: Vec<&BucketCount> = counts.iter().filter(|c| c.requests > 0).collect();
    sorted.sort_by_key(|c| c.bucket);
    let rank = (q * total as f64).ceil().max(1.0) as u64;
    let mut seen = 0;
    sorted
        .into_iter()
        .find(|c| {
            seen += c.requests;
            seen >= rank
        })
        .map(|c| bucket_millis(c.bucket))
}

/// The probability that a standard normal variable exceeds `z`.
fn upper_tail(z: f64) -> f64 {
    0.5 * erfc(z / std::f64::consts::SQRT_2)
}

/// The complementary error function (Numerical Recipes' `erfcc`, relative error below
/// 1.2e-7 everywhere).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let poly = -z * z - 1.265_512_23
        + t * (1.000_023_68
            + t * (0.374_091_96
                + t * (0.096_784_18
                    + t * (-0.186_288_06
                        + t * (0.278_868_07
                            + t * (-1.135_203_98 + t * (1.488_515_87 + t * (-0.822_152_23 + t * 0.170_872_77))))))));
    let r = t * poly.exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// A metric's test: how strong the evidence that the canary is worse (its p-value), and
/// whether the difference is large enough to matter.
struct Test {
    p: f64,
    large_enough: bool,
    detail: String,
}

impl Test {
    fn fails_at(&self, alpha: f64) -> bool {
        self.large_enough && self.p < alpha
    }
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 { 0.0 } else { 100.0 * part as f64 / whole as f64 }
}

fn error_rate(baseline: Totals, canary: Totals) -> Test {
    let (n1, n2) = (baseline.requests as f64, canary.requests as f64);
    let (r1, r2) = (baseline.errors as f64 / n1.max(1.0), canary.errors as f64 / n2.max(1.0));
    let pooled = (baseline.errors + canary.errors) as f64 / (n1 + n2).max(1.0);
    let spread = (pooled * (1.0 - pooled) * (1.0 / n1.max(1.0) + 1.0 / n2.max(1.0))).sqrt();
    let p = if spread > 0.0 { upper_tail((r2 - r1) / spread) } else { 1.0 };
    let detail = format!(
        "5xx {:.1}% on the canary ({} of {}) against {:.1}% on the baseline ({} of {}), p = {p:.2e}",
        percent(canary.errors, canary.requests),
        canary.errors,
        canary.requests,
        percent(baseline.errors, baseline.requests),
        baseline.errors,
        baseline.requests,
    );
    Test { p, large_enough: r2 - r1 > MIN_ERROR_RATE_INCREASE, detail }
}

fn latency(baseline: &[BucketCount], canary: &[BucketCount]) -> Test {
    let buckets = |counts: &[BucketCount]| {
        let mut by_bucket = std::collections::BTreeMap::<u16, f64>::new();
        for c in counts {
            *by_bucket.entry(c.bucket).or_default() += c.requests as f64;
        }
        by_bucket
    };
    let (base, can) = (buckets(baseline), buckets(canary));
    let (n1, n2) = (base.values().sum::<f64>(), can.values().sum::<f64>());
    // U: over every (canary, baseline) pair, 1 when the canary request was slower, ½ for
    // a tie (the same bucket).
    let mut u = 0.0;
    let mut below = 0.0;
    let mut ties = 0.0;
    let every: std::collections::BTreeSet<u16> = base.keys().chain(can.keys()).copied().collect();
    for bucket in every {
        let b = base.get(&bucket).copied().unwrap_or(0.0);
        let c = can.get(&bucket).copied().unwrap_or(0.0);
        u += c * (below + 0.5 * b);
        below += b;
        let t = b + c;
        ties += t * t * t - t;
    }
    let n = n1 + n2;
    let pairs = n1 * n2;
    let slower = if pairs > 0.0 { u / pairs } else { 0.5 };
    let variance = if n > 1.0 { pairs / 12.0 * ((n + 1.0) - ties / (n * (n - 1.0))) } else { 0.0 };
    let p = if variance > 0.0 { upper_tail((u - pairs / 2.0) / variance.sqrt()) } else { 1.0 };
    let ms = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"));
    let detail = format!(
        "the canary slower in {:.0}% of request pairs (p50 {} against {}, p99 {} against {}), p = {p:.2e}",
        slower * 100.0,
        ms(quantile(canary, 0.5)),
        ms(quantile(baseline, 0.5)),
        ms(quantile(canary, 0.99)),
        ms(quantile(baseline, 0.99)),
    );
    // The typical request must be slower too (its bucket higher), not only the tail of a
    // freshly started container.
    let typical_slower = quantile(canary, 0.5) > quantile(baseline, 0.5);
    Test { p, large_enough: slower > MAX_SLOWER_SHARE && typical_slower, detail }
}

/// Judges a canary on the counts so far; `at_deadline` once its window is over.
pub fn judge(baseline: &[BucketCount], canary: &[BucketCount], min_requests: u64, at_deadline: bool) -> Judgement {
    let (base, can) = (totals(baseline), totals(canary));
    let tests = [("error rate", true, error_rate(base, can)), ("latency", false, latency(baseline, canary))];
    let metrics: Vec<MetricJudgement> = tests
        .iter()
        .map(|(metric, critical, test)| MetricJudgement {
            metric: (*metric).to_owned(),
            passed: !test.fails_at(ALPHA),
            critical: *critical,
            detail: test.detail.clone(),
        })
        .collect();
    let passed = metrics.iter().filter(|m| m.passed).count();
    let score = u8::try_from(100 * passed / metrics.len()).unwrap_or(0);
    let failed = |alpha: f64| -> Vec<String> {
        tests
            .iter()
            .filter(|(_, _, t)| t.fails_at(alpha))
            .map(|(metric, _, t)| format!("{metric}: {}", t.detail))
            .collect()
    };
    let enough = base.requests >= min_requests && can.requests >= min_requests;
    let critical_failed = metrics.iter().any(|m| m.critical && !m.passed);
    let (verdict, reason) = if !enough {
        let counted = format!(
            "{} requests on the canary and {} on the baseline; at least {min_requests} each are needed",
            can.requests, base.requests
        );
        if at_deadline {
            (Verdict::Inconclusive, format!("too few requests to judge: {counted}"))
        } else {
            (Verdict::Wait, format!("waiting for requests: {counted}"))
        }
    } else if !at_deadline {
        let conclusive = failed(EARLY_ALPHA);
        if conclusive.is_empty() {
            (Verdict::Wait, format!("score {score} so far; judged at the end of the window"))
        } else {
            (Verdict::Fail, format!("score {score}; {}", conclusive.join("; ")))
        }
    } else if critical_failed || score < PASS_SCORE {
        (Verdict::Fail, format!("score {score}; {}", failed(ALPHA).join("; ")))
    } else {
        (Verdict::Pass, format!("score {score}: no metric of the canary is worse than the baseline's"))
    };
    Judgement { score, verdict, reason, metrics }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::canary::latency_bucket;
    use std::time::Duration;

    /// Counts of `requests` answers, `errors` of them 5xx, spread over latencies around
    /// `millis` (±30%, as a real app's vary).
    fn recorded(requests: u64, errors: u64, millis: f64) -> Vec<BucketCount> {
        let mut counts: std::collections::BTreeMap<u16, BucketCount> = Default::default();
        for n in 0..requests {
            let spread = 0.7 + 0.6 * ((n * 7919) % 1000) as f64 / 1000.0;
            let bucket = latency_bucket(Duration::from_secs_f64(millis * spread / 1000.0));
            let entry = counts.entry(bucket).or_insert(BucketCount { bucket, requests: 0, errors: 0 });
            entry.requests += 1;
            // Errors spread evenly over the requests.
            entry.errors += u64::from(errors > 0 && (n * errors) / requests != ((n + 1) * errors) / requests);
        }
        counts.into_values().collect()
    }

    struct Case {
        name: &'static str,
        baseline: Vec<BucketCount>,
        canary: Vec<BucketCount>,
        at_deadline: bool,
        verdict: Verdict,
        score: u8,
    }

    #[test]
    fn verdicts_on_recorded_samples() {
        let cases = [
            Case {
                name: "the same release on both sides passes",
                baseline: recorded(1800, 0, 3.0),
                canary: recorded(200, 0, 3.0),
                at_deadline: true,
                verdict: Verdict::Pass,
                score: 100,
            },
            Case {
                name: "one 500 in five fails on the error rate, before the deadline too",
                baseline: recorded(1800, 0, 3.0),
                canary: recorded(200, 40, 3.0),
                at_deadline: false,
                verdict: Verdict::Fail,
                score: 50,
            },
            Case {
                name: "the baseline's own errors do not fail an equally bad canary",
                baseline: recorded(1800, 90, 3.0),
                canary: recorded(200, 10, 3.0),
                at_deadline: true,
                verdict: Verdict::Pass,
                score: 100,
            },
            Case {
                name: "a few more errors, below the minimum effect, pass",
                baseline: recorded(5000, 0, 3.0),
                canary: recorded(2000, 10, 3.0),
                at_deadline: true,
                verdict: Verdict::Pass,
                score: 100,
            },
            Case {
                name: "twice as slow fails on latency",
                baseline: recorded(1800, 0, 3.0),
                canary: recorded(200, 0, 6.0),
                at_deadline: true,
                verdict: Verdict::Fail,
                score: 50,
            },
            Case {
                name: "5% slower is noise, not a failure",
                baseline: recorded(1800, 0, 3.0),
                canary: recorded(200, 0, 3.15),
                at_deadline: true,
                verdict: Verdict::Pass,
                score: 100,
            },
            Case {
                name: "a faster canary passes",
                baseline: recorded(1800, 0, 6.0),
                canary: recorded(200, 0, 3.0),
                at_deadline: true,
                verdict: Verdict::Pass,
                score: 100,
            },
            Case {
                name: "too few requests wait before the deadline",
                baseline: recorded(300, 0, 3.0),
                canary: recorded(12, 0, 3.0),
                at_deadline: false,
                verdict: Verdict::Wait,
                score: 100,
            },
            Case {
                name: "too few requests at the deadline are not promoted",
                baseline: recorded(300, 0, 3.0),
                canary: recorded(12, 12, 3.0),
                at_deadline: true,
                verdict: Verdict::Inconclusive,
                score: 50,
            },
            Case {
                name: "a healthy canary waits for the end of its window",
                baseline: recorded(1800, 0, 3.0),
                canary: recorded(200, 0, 3.0),
                at_deadline: false,
                verdict: Verdict::Wait,
                score: 100,
            },
        ];
        for case in cases {
            let judgement = judge(&case.baseline, &case.canary, 50, case.at_deadline);
            assert_eq!(
                (judgement.verdict, judgement.score),
                (case.verdict, case.score),
                "{}: {judgement:#?}",
                case.name
            );
        }
    }

    #[test]
    fn a_failure_names_the_metric_and_by_how_much() {
        let judgement = judge(&recorded(1800, 0, 3.0), &recorded(200, 40, 3.0), 50, true);
        assert_eq!(judgement.verdict, Verdict::Fail);
        assert!(judgement.reason.contains("error rate: 5xx 20.0% on the canary (40 of 200)"), "{}", judgement.reason);
        assert!(judgement.reason.contains("against 0.0% on the baseline"), "{}", judgement.reason);
        let error_rate = &judgement.metrics[0];
        assert!(error_rate.critical && !error_rate.passed);
    }

    #[test]
    fn summaries_give_counts_and_quantiles() {
        let summary = summary(&recorded(1000, 10, 10.0));
        assert_eq!((summary.requests, summary.errors), (1000, 10));
        let (p50, p99) = (summary.p50_ms.unwrap(), summary.p99_ms.unwrap());
        assert!((8.0..12.0).contains(&p50), "{p50}");
        assert!(p99 >= p50 && p99 < 15.0, "{p99}");
        assert_eq!(super::summary(&[]).p50_ms, None);
    }

    #[test]
    fn the_normal_tail_is_accurate() {
        assert!((upper_tail(0.0) - 0.5).abs() < 1e-7);
        assert!((upper_tail(1.959_964) - 0.025).abs() < 1e-6);
        assert!((upper_tail(-2.326_348) - 0.99).abs() < 1e-6);
    }
}
