//! The logger's read API: `GET /v2/apps/{app}/logs?n=&process=&source=&follow=&since=`.
//! Without `follow` the answer is a JSON array; with it, a stream of JSON lines (the tail,
//! then every new line) that ends when the client goes or the logger shuts down; `since`
//! (RFC 3339) leaves out the lines taken in before it (the controller gives the app's
//! creation, so that an app made again under a destroyed app's name sees none of its). And
//! `GET /v2/drains`: each drain's deliveries; `POST /v2/drains/sync`: read the drains from
//! the controller now (answers once they apply; the controller asks after every change).
//! Everything under `/v2/` takes only the platform's service token: the controller asks on
//! its users' behalf, having checked what each may read.

use std::collections::HashMap;
use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use skiff_api::{AppName, DrainStatus, LogLine, LogSource};
use skiff_service::Readiness;
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_util::sync::CancellationToken;

use crate::buffer::Buffers;

/// The most lines one read returns.
const MAX_LINES: usize = 10_000;

/// Which lines a reader wants.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    pub app: Option<AppName>,
    /// A process type (`web`) or instance (`web.1a2b3c`).
    pub process: Option<String>,
    pub source: Option<LogSource>,
    /// Unix nanoseconds: lines taken in before are left out (a line whose time does not
    /// read passes).
    pub since: Option<i128>,
}

impl Filter {
    /// Whether `line` passes.
    pub fn matches(&self, line: &LogLine) -> bool {
        self.app.as_ref().is_none_or(|app| &line.app == app)
            && self.process.as_ref().is_none_or(|p| line.process == *p || line.process.starts_with(&format!("{p}.")))
            && self.source.is_none_or(|s| line.source == s)
            && self.since.is_none_or(|since| taken_in(&line.time).is_none_or(|at| at >= since))
    }
}

/// An RFC 3339 time as Unix nanoseconds.
fn taken_in(time: &str) -> Option<i128> {
    time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339)
        .ok()
        .map(time::OffsetDateTime::unix_timestamp_nanos)
}

#[derive(Clone)]
struct Reader {
    buffers: Arc<Buffers>,
    shutdown: CancellationToken,
}

/// The API as an axum router; `/v2/` answers only requests with `service_token`.
pub fn router(buffers: Arc<Buffers>, service_token: &str, readiness: Readiness, shutdown: CancellationToken) -> Router {
    let expected = Arc::<str>::from(format!("Bearer {service_token}"));
    let platform_only = axum::middleware::from_fn(move |request: axum::extract::Request, next: Next| {
        let expected = expected.clone();
        async move {
            let given = request.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or("");
            if skiff_api::secrets_match(given, &expected) {
                next.run(request).await
            } else {
                (StatusCode::UNAUTHORIZED, "the platform's service token is required").into_response()
            }
        }
    });
    let api = Router::new()
        .route("/v2/apps/{app}/logs", get(tail))
        .route("/v2/drains", get(drains_status))
        .route("/v2/drains/sync", post(drains_sync))
        .layer(platform_only);
    let metrics_of = buffers.clone();
    Router::new()
        .merge(skiff_service::routes(readiness, Arc::new(move || metrics(&metrics_of))))
        .merge(api)
        .with_state(Reader { buffers, shutdown })
}

/// Serves until `shutdown`; follow streams end then too.
pub async fn serve(
    listener: TcpListener,
    buffers: Arc<Buffers>,
    service_token: &str,
    readiness: Readiness,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let app = router(buffers, service_token, readiness, shutdown.clone());
    axum::serve(listener, app).with_graceful_shutdown(async move { shutdown.cancelled().await }).await
}

/// Prometheus metrics: lines taken in and rejected, and each drain's deliveries.
fn metrics(buffers: &Buffers) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let stats = &buffers.stats;
    let one = |value: &std::sync::atomic::AtomicU64| [(String::new(), value.load(Relaxed))];
    let drains = buffers.drains().map(|d| d.status()).unwrap_or_default();
    let per_drain = |pick: fn(&DrainStatus) -> u64| -> Vec<(String, u64)> {
        drains.iter().map(|d| (format!("{{drain=\"{}\"}}", d.id), pick(d))).collect()
    };
    skiff_service::Text::new()
        .counter("skiff_logger_lines_total", "Lines kept, from containers and syslog.", &one(&stats.lines))
        .counter("skiff_logger_rejected_total", "Syslog messages and connections refused.", &one(&stats.rejected))
        .counter(
            "skiff_logger_replayed_total",
            "Container lines read again after a restart, taken in before it.",
            &one(&stats.replayed),
        )
        .counter(
            "skiff_logger_unshared_total",
            "Lines not shared with other replicas (Redis slow or away).",
            &one(&stats.unshared),
        )
        .counter("skiff_logger_drain_delivered_total", "Lines a drain accepted.", &per_drain(|d| d.delivered))
        .counter(
            "skiff_logger_drain_dropped_total",
            "Lines dropped because a drain's queue was full.",
            &per_drain(|d| d.dropped),
        )
        .finish()
}

/// Every drain's deliveries since the logger started.
async fn drains_status(State(reader): State<Reader>) -> Json<Vec<DrainStatus>> {
    Json(reader.buffers.drains().map(|drains| drains.status()).unwrap_or_default())
}

/// How long a sync waits for the controller's answer.
const SYNC_LIMIT: std::time::Duration = std::time::Duration::from_secs(5);

/// Reads the drains from the controller now; 204 once they apply. Anyone may ask: the
/// drains come from the controller, under the service token, whoever asks.
async fn drains_sync(State(reader): State<Reader>) -> StatusCode {
    match reader.buffers.drains() {
        Some(drains) if drains.sync(SYNC_LIMIT).await => StatusCode::NO_CONTENT,
        Some(_) => StatusCode::SERVICE_UNAVAILABLE,
        None => StatusCode::NOT_FOUND,
    }
}

fn json_line(line: &LogLine) -> Vec<u8> {
    let mut bytes = serde_json::to_vec(line).expect("log lines serialize");
    bytes.push(b'\n');
    bytes
}

/// Sorts lines by their time (stable: lines of the same instant, or without a readable
/// time, keep their order of arrival). Lines from the engine, the router and the platform
/// arrive by different paths, so arrival order is not always time order.
fn in_time_order(lines: &mut [LogLine]) {
    lines.sort_by_cached_key(|line| taken_in(&line.time).unwrap_or(i128::MIN));
}

async fn tail(
    State(reader): State<Reader>,
    Path(app): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, StatusCode> {
    let app: AppName = app.parse().map_err(|_| StatusCode::BAD_REQUEST)?;
    let n = query.get("n").and_then(|n| n.parse().ok()).unwrap_or(100).min(MAX_LINES);
    let source = match query.get("source") {
        Some(source) => Some(
            serde_json::from_value::<LogSource>(serde_json::Value::String(source.clone()))
                .map_err(|_| StatusCode::BAD_REQUEST)?,
        ),
        None => None,
    };
    let since = query.get("since").map(|since| taken_in(since).ok_or(StatusCode::BAD_REQUEST)).transpose()?;
    let filter = Filter { app: Some(app.clone()), process: query.get("process").cloned(), source, since };
    // Take more than `n` from the buffer so that `n` remain after filtering.
    let (mut lines, live) = reader.buffers.tail_and_follow(&app, MAX_LINES);
    lines.retain(|line| filter.matches(line));
    in_time_order(&mut lines);
    let lines: Vec<LogLine> = lines.split_off(lines.len().saturating_sub(n));
    if query.get("follow").is_none_or(|f| f != "true" && f != "1") {
        return Ok(Json(lines).into_response());
    }
    let head = futures_util::stream::iter(lines.into_iter().map(|l| Ok::<_, std::io::Error>(json_line(&l))));
    let live =
        futures_util::stream::unfold((live, filter, reader.shutdown), |(mut live, filter, shutdown)| async move {
            loop {
                let received = tokio::select! {
                    received = live.recv() => received,
                    () = shutdown.cancelled() => return None,
                };
                match received {
                    Ok(line) if filter.matches(&line) => {
                        return Some((Ok(json_line(&line)), (live, filter, shutdown)));
                    }
                    Ok(_) | Err(broadcast::error::RecvError::Lagged(_)) => continue,
                    Err(broadcast::error::RecvError::Closed) => return None,
                }
            }
        });
    let body = Body::from_stream(futures_util::StreamExt::chain(head, live));
    Ok(([(header::CONTENT_TYPE, "application/x-ndjson")], body).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tail_is_in_time_order_whatever_the_precision_and_offset() {
        let at = |time: &str, message: &str| LogLine {
            time: time.into(),
            message: message.into(),
            ..line("web", LogSource::App)
        };
        let mut lines = vec![
            at("2026-12-06T10:00:01.65Z", "third"),
            at("2026-12-06T10:00:01.652145Z", "fourth"),
            at("2026-12-06T11:00:00.5+01:00", "second"),
            at("2026-12-06T10:00:00Z", "first"),
            at("2026-12-06T10:00:01.652145Z", "fifth"),
        ];
        in_time_order(&mut lines);
        let order: Vec<&str> = lines.iter().map(|l| l.message.as_str()).collect();
        assert_eq!(order, ["first", "second", "third", "fourth", "fifth"]);
    }

    fn line(process: &str, source: LogSource) -> LogLine {
        LogLine {
            time: String::new(),
            app: "a".parse().unwrap(),
            source,
            process: process.into(),
            release: None,
            message: "m".into(),
        }
    }

    #[test]
    fn filters_pick_process_types_instances_and_sources() {
        let web = Filter { process: Some("web".into()), ..Default::default() };
        assert!(web.matches(&line("web.1a2b3c", LogSource::App)));
        assert!(web.matches(&line("web", LogSource::App)));
        assert!(!web.matches(&line("worker.1", LogSource::App)));
        assert!(!web.matches(&line("webhook.1", LogSource::App)));
        let router = Filter { source: Some(LogSource::Router), ..Default::default() };
        assert!(router.matches(&line("router", LogSource::Router)));
        assert!(!router.matches(&line("web.1", LogSource::App)));
        let other = Filter { app: Some("b".parse().unwrap()), ..Default::default() };
        assert!(!other.matches(&line("web.1", LogSource::App)));
    }

    #[test]
    fn since_leaves_out_the_lines_taken_in_before_it() {
        let at = |time: &str| LogLine { time: time.into(), ..line("web.1", LogSource::App) };
        let since = Filter { since: taken_in("2026-12-07T07:42:58.896793161Z"), ..Default::default() };
        assert!(!since.matches(&at("2026-12-07T07:42:56.7Z")), "a destroyed app's line");
        assert!(!since.matches(&at("2026-12-07T08:42:58.8+01:00")), "an earlier instant in another offset");
        assert!(since.matches(&at("2026-12-07T07:42:58.896793161Z")), "the same instant");
        assert!(since.matches(&at("2026-12-07T07:42:59Z")));
        assert!(since.matches(&at("not a time")), "a line whose time does not read passes");
    }
}
