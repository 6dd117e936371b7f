//! What a run measured, in one line a script can read.

use std::fmt;
use std::time::Duration;

/// Latencies (nanoseconds) of the measured requests, and what else the run counted.
#[derive(Debug, Default)]
pub struct Report {
    pub latencies: Vec<u64>,
    /// How late the client itself sent requests that found their connection free: what the
    /// client adds to every latency (it should be small beside them).
    pub lateness: Vec<u64>,
    /// Requests answered with a 5xx, cut off, or not answered before the run ended.
    pub errors: u64,
    /// Connections made again after the server closed one (or, with `--reconnect`, after
    /// every answer).
    pub reconnects: u64,
    /// Answers over a TLS session that resumed an earlier one.
    pub resumed: u64,
    pub offered_rate: f64,
    pub measured: Duration,
}

/// The `q` quantile (0 to 1) of sorted values, in milliseconds; 0 without values.
pub fn quantile(sorted: &[u64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1] as f64 / 1e6
}

impl Report {
    pub fn sort(&mut self) {
        self.latencies.sort_unstable();
        self.lateness.sort_unstable();
    }

    /// Answered requests per second over the measured time.
    pub fn achieved_rate(&self) -> f64 {
        self.latencies.len() as f64 / self.measured.as_secs_f64().max(1e-9)
    }
}

/// `requests=N errors=N reconnects=N resumed=N offered=R achieved=R p50=MS p90=MS p99=MS
/// p999=MS max=MS client_late_p99=MS` (sorted first).
impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let l = &self.latencies;
        write!(
            f,
            "requests={} errors={} reconnects={} resumed={} offered={:.0} achieved={:.0} p50={:.3} p90={:.3} p99={:.3} p999={:.3} max={:.3} client_late_p99={:.3}",
            l.len(),
            self.errors,
            self.reconnects,
            self.resumed,
            self.offered_rate,
            self.achieved_rate(),
            quantile(l, 0.5),
            quantile(l, 0.9),
            quantile(l, 0.99),
            quantile(l, 0.999),
            quantile(l, 1.0),
            quantile(&self.lateness, 0.99),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_are_values_that_were_measured() {
        let values: Vec<u64> = (1..=1000).map(|ms| ms * 1_000_000).collect();
        assert_eq!(quantile(&values, 0.5), 500.0);
        assert_eq!(quantile(&values, 0.99), 990.0);
        assert_eq!(quantile(&values, 0.999), 999.0);
        assert_eq!(quantile(&values, 1.0), 1000.0);
        assert_eq!(quantile(&values[..1], 0.5), 1.0);
        assert_eq!(quantile(&[], 0.5), 0.0);
    }

    #[test]
    fn the_line_says_every_number() {
        let mut report = Report {
            latencies: vec![3_000_000, 1_000_000, 2_000_000],
            errors: 1,
            offered_rate: 3.0,
            measured: Duration::from_secs(1),
            ..Report::default()
        };
        report.sort();
        let line = report.to_string();
        assert!(
            line.starts_with("requests=3 errors=1 reconnects=0 resumed=0 offered=3 achieved=3 p50=2.000"),
            "{line}"
        );
        assert!(line.contains("max=3.000") && line.ends_with("client_late_p99=0.000"), "{line}");
    }
}
