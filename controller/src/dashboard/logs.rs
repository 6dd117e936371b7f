//! An app's log on the dashboard: the recent lines written on the server (filtered by
//! process and source), then, with the page's script, every new line as it happens,
//! through server-sent events that relay the logger's follow stream.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use futures_util::StreamExt as _;
use skiff_api::{LogLine, LogSource};

use super::html::{Html, escape};
use super::{Signed, error_page};
use crate::error::ApiError;
use crate::state::Controller;

/// Lines shown when the page opens.
const RECENT: &str = "200";

/// A log line as the dashboard shows it: `16:47:21 app[web.1]: message`, on one line.
fn shown(line: &LogLine) -> String {
    let source = match line.source {
        LogSource::App => "app",
        LogSource::Router => "router",
        LogSource::Platform => "platform",
    };
    let clock = line.time.get(11..19).unwrap_or(&line.time);
    let text = format!("{clock} {source}[{}]: {}", line.process, line.message);
    text.replace(['\r', '\n'], " ")
}

/// The filters a page or stream was asked for: `process` and `source`.
fn filters(query: &HashMap<String, String>) -> HashMap<String, String> {
    ["process", "source"]
        .into_iter()
        .filter_map(|key| Some((key.to_owned(), query.get(key).filter(|v| !v.is_empty())?.clone())))
        .collect()
}

fn query_string(filters: &HashMap<String, String>) -> String {
    let mut pairs: Vec<String> = filters.iter().map(|(k, v)| format!("{k}={}", super::percent_encode(v))).collect();
    pairs.sort();
    if pairs.is_empty() { String::new() } else { format!("?{}", pairs.join("&")) }
}

/// `GET /dashboard/apps/{app}/logs`.
pub(crate) async fn page_of_logs(
    State(c): State<Arc<Controller>>,
    signed: Signed,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let filters = filters(&query);
    let result = async {
        let app = c.app_for(&signed.user, &name).await?;
        let mut asked = filters.clone();
        asked.insert("n".into(), RECENT.into());
        let recent = match c.logs(&app, &asked).await {
            Ok(answer) => answer.json::<Vec<LogLine>>().await.map_err(|e| ApiError::Unavailable(e.to_string()))?,
            Err(ApiError::Unavailable(why)) => return Ok((app, Err(why))),
            Err(error) => return Err(error),
        };
        Ok((app, Ok(recent)))
    };
    let (app, recent) = match result.await {
        Ok(found) => found,
        Err(error) => return error_page(error),
    };
    let app_name = escape(app.name.as_str());
    let selected = |key: &str| filters.get(key).map_or("", String::as_str);
    let mut html = Html::default();
    html.raw(&format!(r#"<p><a href="/dashboard/apps/{app_name}">← {app_name}</a></p><h1>Logs of {app_name}</h1>"#));
    html.raw(&format!(
        r#"<form method="get" class="filters"><label>Process <input name="process" value="{}" placeholder="web, web.1, …"></label> <label>Source <select name="source">"#,
        escape(selected("process"))
    ));
    for (value, label) in [("", "all"), ("app", "app"), ("router", "router"), ("platform", "platform")] {
        let chosen = if selected("source") == value { " selected" } else { "" };
        html.raw(&format!(r#"<option value="{value}"{chosen}>{label}</option>"#));
    }
    html.raw(r#"</select></label> <button>Filter</button> <span id="log-status" class="hint"></span></form>"#);
    let stream = format!("/dashboard/apps/{}/logs/stream{}", app.name, query_string(&filters));
    html.raw(&format!(r#"<pre id="log" class="log" data-stream="{}">"#, escape(&stream)));
    match &recent {
        Ok(lines) => {
            for line in lines {
                html.text(&shown(line)).raw("\n");
            }
        }
        Err(why) => {
            html.text(why);
        }
    }
    html.raw(r#"</pre><script src="/dashboard/assets/logs.js"></script>"#);
    let title = format!("Logs of {}", app.name);
    signed.answer(&title, Ok(html.into_string()))
}

/// `GET /dashboard/apps/{app}/logs/stream`: server-sent events, one per line: the recent
/// lines, then each new one, until the client goes or the controller stops.
pub(crate) async fn stream_of_logs(
    State(c): State<Arc<Controller>>,
    signed: Signed,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let mut asked = filters(&query);
    asked.insert("n".into(), RECENT.into());
    asked.insert("follow".into(), "true".into());
    let answer = async {
        let app = c.app_for(&signed.user, &name).await?;
        c.logs(&app, &asked).await
    };
    let answer = match answer.await {
        Ok(answer) => answer,
        Err(error) => return error_page(error),
    };
    let events = futures_util::stream::unfold(
        (answer.bytes_stream(), Vec::<u8>::new()),
        |(mut bytes, mut pending)| async move {
            loop {
                if let Some(end) = pending.iter().position(|b| *b == b'\n') {
                    let line: Vec<u8> = pending.drain(..=end).collect();
                    let Ok(line) = serde_json::from_slice::<LogLine>(&line) else { continue };
                    let event = format!("data: {}\n\n", shown(&line));
                    return Some((Ok::<_, std::io::Error>(event), (bytes, pending)));
                }
                match bytes.next().await {
                    Some(Ok(chunk)) => pending.extend_from_slice(&chunk),
                    _ => return None,
                }
            }
        },
    );
    let shutdown = c.shutdown.clone();
    let events = events.take_until(async move { shutdown.cancelled().await });
    (
        [(header::CONTENT_TYPE, "text/event-stream"), (header::CACHE_CONTROL, "no-store")],
        axum::body::Body::from_stream(events),
    )
        .into_response()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_is_shown_on_one_line() {
        let line = LogLine {
            time: "2026-12-06T16:47:21.123Z".into(),
            app: "shop".parse().unwrap(),
            source: LogSource::App,
            process: "web.1".into(),
            release: Some(3),
            message: "two\nlines <b>".into(),
        };
        assert_eq!(shown(&line), "16:47:21 app[web.1]: two lines <b>");
        let query = HashMap::from([("process".to_owned(), "web".to_owned()), ("source".to_owned(), String::new())]);
        assert_eq!(query_string(&filters(&query)), "?process=web");
    }
}
