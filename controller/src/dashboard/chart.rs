//! An app's traffic as charts, SVG written on the server (no script): requests and 5xx
//! answers per minute, and p50/p95/p99 latency, over the last hour (a point a minute) or
//! day (a point per five minutes), with a dashed line at every release made in the window.

use std::fmt::Write as _;

use skiff_api::{BucketCount, Release};

use super::html::escape;
use crate::db::TrafficMinute;
use crate::domain::quantile;

/// A window of traffic: how many points, and how many minutes each covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub points: usize,
    pub minutes_per_point: i64,
}

impl Window {
    pub const HOUR: Self = Self { points: 60, minutes_per_point: 1 };
    pub const DAY: Self = Self { points: 288, minutes_per_point: 5 };

    /// The first minute of the window that ends with minute `now`.
    pub fn start(&self, now: i64) -> i64 {
        now - (self.points as i64) * self.minutes_per_point + 1
    }

    /// The point minute `minute` falls in.
    fn point(&self, start: i64, minute: i64) -> Option<usize> {
        let index = (minute - start).div_euclid(self.minutes_per_point);
        usize::try_from(index).ok().filter(|i| *i < self.points)
    }
}

/// The window's traffic by point: every bucket counted in it.
pub fn by_point(window: Window, start: i64, minutes: &[TrafficMinute]) -> Vec<Vec<BucketCount>> {
    let mut points = vec![Vec::<BucketCount>::new(); window.points];
    for minute in minutes {
        let Some(point) = window.point(start, minute.minute) else { continue };
        for count in &minute.buckets {
            match points[point].iter_mut().find(|c| c.bucket == count.bucket) {
                Some(kept) => {
                    kept.requests += count.requests;
                    kept.errors += count.errors;
                }
                None => points[point].push(*count),
            }
        }
    }
    points
}

/// One line of a chart: its name (and CSS class) and a value per point, if any.
pub struct Line {
    pub name: &'static str,
    pub values: Vec<Option<f64>>,
}

/// Requests and 5xx answers per minute, at each point.
pub fn rates(window: Window, points: &[Vec<BucketCount>]) -> [Line; 2] {
    let per_minute = |f: fn(&BucketCount) -> u64| -> Vec<Option<f64>> {
        points.iter().map(|p| Some(p.iter().map(f).sum::<u64>() as f64 / window.minutes_per_point as f64)).collect()
    };
    [
        Line { name: "requests", values: per_minute(|c| c.requests) },
        Line { name: "errors", values: per_minute(|c| c.errors) },
    ]
}

/// The latency quantiles at each point that had requests, in milliseconds.
pub fn latencies(points: &[Vec<BucketCount>]) -> [Line; 3] {
    let at = |q: f64| points.iter().map(|p| quantile(p, q)).collect();
    [
        Line { name: "p50", values: at(0.5) },
        Line { name: "p95", values: at(0.95) },
        Line { name: "p99", values: at(0.99) },
    ]
}

/// The releases made in the window, at their points.
pub fn markers(window: Window, start: i64, releases: &[Release]) -> Vec<(usize, u32)> {
    releases
        .iter()
        .filter_map(|release| {
            let at = time::OffsetDateTime::parse(&release.created_at, &time::format_description::well_known::Rfc3339)
                .ok()?;
            Some((window.point(start, at.unix_timestamp().div_euclid(60))?, release.version))
        })
        .collect()
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 160.0;
const LEFT: f64 = 56.0;
const TOP: f64 = 14.0;
const BOTTOM: f64 = 18.0;

/// The smallest round number (1, 2 or 5 times a power of ten) at or above `value`.
fn round_up(value: f64) -> f64 {
    if value <= 0.0 || !value.is_finite() {
        return 1.0;
    }
    let power = 10f64.powf(value.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * power).find(|v| *v >= value).unwrap_or(10.0 * power)
}

/// A chart: `lines` over the window's points, a dashed line at each marker, the top value
/// of the axis with `unit`, and the window's first and last times.
pub fn svg(title: &str, unit: &str, lines: &[Line], markers: &[(usize, u32)], times: (&str, &str)) -> String {
    let points = lines.first().map_or(0, |l| l.values.len()).max(2);
    let top = round_up(lines.iter().flat_map(|l| l.values.iter().flatten()).fold(0.0, |a: f64, b| a.max(*b)));
    let x = |i: usize| LEFT + (WIDTH - LEFT - 4.0) * i as f64 / (points - 1) as f64;
    let y = |v: f64| TOP + (HEIGHT - TOP - BOTTOM) * (1.0 - v / top);
    let mut out = String::new();
    let _ = write!(
        out,
        r#"<figure class="chart"><figcaption>{}</figcaption><svg viewBox="0 0 {WIDTH} {HEIGHT}" role="img" aria-label="{}">"#,
        escape(title),
        escape(title)
    );
    let _ = write!(
        out,
        r#"<line class="axis" x1="{LEFT}" y1="{b}" x2="{WIDTH}" y2="{b}"/><text class="label" x="{l}" y="{t}" text-anchor="end">{} {}</text><text class="label" x="{l}" y="{b}" text-anchor="end">0</text>"#,
        top,
        escape(unit),
        b = HEIGHT - BOTTOM,
        l = LEFT - 4.0,
        t = TOP + 4.0,
    );
    let _ = write!(
        out,
        r#"<text class="label" x="{LEFT}" y="{HEIGHT}">{}</text><text class="label" x="{WIDTH}" y="{HEIGHT}" text-anchor="end">{}</text>"#,
        escape(times.0),
        escape(times.1)
    );
    // A line per release; one label per point however many releases it holds (`v1–v3`).
    let mut labelled: Vec<(usize, u32, u32)> = Vec::new();
    for (point, version) in markers {
        let at = x(*point);
        let _ = write!(
            out,
            r#"<g class="release"><title>v{version}</title><line x1="{at:.1}" y1="{TOP}" x2="{at:.1}" y2="{}"/></g>"#,
            HEIGHT - BOTTOM
        );
        match labelled.iter_mut().find(|(p, _, _)| p == point) {
            Some((_, first, last)) => {
                *first = (*first).min(*version);
                *last = (*last).max(*version);
            }
            None => labelled.push((*point, *version, *version)),
        }
    }
    for (point, first, last) in labelled {
        let label = if first == last { format!("v{first}") } else { format!("v{first}–v{last}") };
        let (at, y) = (x(point), TOP - 3.0);
        let _ = write!(out, r#"<text class="release-label" x="{at:.1}" y="{y}">{label}</text>"#);
    }
    for line in lines {
        // A line breaks where a point has no value.
        let mut runs: Vec<Vec<String>> = vec![Vec::new()];
        for (i, value) in line.values.iter().enumerate() {
            match value {
                Some(v) => runs.last_mut().expect("one run at least").push(format!("{:.1},{:.1}", x(i), y(*v))),
                None if runs.last().is_some_and(|r| !r.is_empty()) => runs.push(Vec::new()),
                None => {}
            }
        }
        for run in runs.iter().filter(|r| !r.is_empty()) {
            let _ = write!(out, r#"<polyline class="{}" points="{}"/>"#, line.name, run.join(" "));
        }
    }
    out.push_str("</svg><p class=\"legend\">");
    for line in lines {
        let _ = write!(out, r#"<span class="key {0}">{0}</span> "#, line.name);
    }
    out.push_str("</p></figure>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn count(bucket: u16, requests: u64, errors: u64) -> BucketCount {
        BucketCount { bucket, requests, errors }
    }

    #[test]
    fn minutes_are_added_up_into_their_points() {
        let start = 1000;
        let minutes = vec![
            TrafficMinute { minute: 1000, buckets: vec![count(10, 4, 1)] },
            TrafficMinute { minute: 1003, buckets: vec![count(10, 6, 0), count(30, 2, 2)] },
            TrafficMinute { minute: 1004, buckets: vec![count(30, 1, 0)] },
            TrafficMinute { minute: 999, buckets: vec![count(1, 100, 0)] },
        ];
        let window = Window { points: 2, minutes_per_point: 5 };
        let points = by_point(window, start, &minutes);
        assert_eq!(points[0], vec![count(10, 10, 1), count(30, 3, 2)], "before the window: left out");
        assert!(points[1].is_empty());
        let [requests, errors] = rates(window, &points);
        assert_eq!((requests.values[0], errors.values[0]), (Some(2.6), Some(0.6)));
        let [p50, _, p99] = latencies(&points);
        assert!(p50.values[0].unwrap() < p99.values[0].unwrap());
        assert_eq!(p50.values[1], None, "no requests, no latency");
        assert_eq!(Window::HOUR.start(2000), 1941);
    }

    #[test]
    fn charts_draw_lines_markers_and_labels_and_escape_them() {
        let lines = [Line { name: "requests", values: vec![Some(1.0), None, Some(3.0), Some(4.0)] }];
        let svg = svg("<b>Requests</b>", "/min", &lines, &[(2, 7)], ("10:00", "11:00"));
        assert!(svg.contains("&lt;b&gt;Requests"), "{svg}");
        assert_eq!(svg.matches("<polyline").count(), 2, "broken where a point is missing: {svg}");
        assert!(svg.contains("<title>v7</title>") && svg.contains(">5 /min<"), "{svg}");
        let crowded = super::svg("t", "", &lines, &[(2, 7), (2, 8), (3, 9)], ("", ""));
        assert!(crowded.contains(">v7–v8</text>") && crowded.contains(">v9</text>"), "one label a point: {crowded}");
        assert_eq!(round_up(0.0), 1.0);
        assert_eq!(round_up(37.0), 50.0);
        assert_eq!(round_up(120.0), 200.0);
    }
}
