//! The audit trail, a page at a time, newest first: an app's (for whoever sees the app)
//! and the whole platform's, every app's included (for admins).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::response::Response;
use skiff_api::{AppName, Event};

use super::Signed;
use super::html::{Html, escape, time};
use crate::error::ApiError;
use crate::state::Controller;

/// Events on one page of the trail.
const EVENTS_PER_PAGE: u32 = 100;

/// The events as a table, newest first; with the app of each when `with_app`.
pub(super) fn table(events: &[Event], with_app: bool) -> String {
    let rows = events.iter().rev().map(|e| {
        let mut row = vec![time(&e.created_at), escape(e.kind.as_str())];
        if with_app {
            row.push(e.app.as_ref().map_or_else(|| "platform".to_owned(), |app| escape(app.as_str())));
        }
        row.push(escape(&e.message));
        row
    });
    let headers: &[&str] = if with_app { &["When", "Kind", "App", "What"] } else { &["When", "Kind", "What"] };
    let mut html = Html::default();
    html.table("events", headers, rows.collect::<Vec<_>>());
    html.into_string()
}

/// One page of the trail of `app` (or every event): those older than `?before=ID`.
async fn trail(
    c: &Controller,
    app: Option<&AppName>,
    query: &HashMap<String, String>,
    path: &str,
) -> Result<String, ApiError> {
    let before = query.get("before").and_then(|id| id.parse::<i64>().ok());
    let events = c.db.events_before(app, before, EVENTS_PER_PAGE).await?;
    let mut html = Html::default();
    html.raw(&table(&events, app.is_none()));
    html.raw(r#"<p class="pages">"#);
    if before.is_some() {
        html.raw(&format!(r#"<a href="{path}">Newest</a> "#));
    }
    match events.first() {
        Some(oldest) if events.len() == EVENTS_PER_PAGE as usize => {
            html.raw(&format!(r#"<a href="{path}?before={}">Older →</a>"#, oldest.id));
        }
        _ => {
            html.text("The trail starts here.");
        }
    }
    html.raw("</p>");
    Ok(html.into_string())
}

/// `GET /dashboard/apps/{app}/activity?before=ID`.
pub(crate) async fn of_app(
    State(c): State<Arc<Controller>>,
    signed: Signed,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let result = async {
        let app = c.app_for(&signed.user, &name).await?;
        let path = format!("/dashboard/apps/{}/activity", app.name);
        let events = trail(&c, Some(&app.name), &query, &path).await?;
        let shown = escape(app.name.as_str());
        Ok(format!(r#"<p><a href="/dashboard/apps/{shown}">← {shown}</a></p><h1>Activity of {shown}</h1>{events}"#))
    };
    signed.answer(&format!("Activity of {name}"), result.await)
}

/// `GET /dashboard/platform/activity?before=ID`: admins only.
pub(crate) async fn of_platform(
    State(c): State<Arc<Controller>>,
    signed: Signed,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = super::platform::admins_only(&signed) {
        return refused;
    }
    let events = trail(&c, None, &query, "/dashboard/platform/activity").await;
    signed.answer("Activity", events.map(|events| format!("<h1>Activity of the platform and every app</h1>{events}")))
}
