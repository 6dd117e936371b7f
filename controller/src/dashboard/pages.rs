//! The dashboard's pages: the apps a user sees, one app (releases, processes, config,
//! domains, certificates, collaborators, activity), and rolling back with a confirmation.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Form, Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use skiff_api::{Release, ReleaseState};

use super::html::{Html, escape, time};
use super::{Signed, error_page, refusal, version_of};
use crate::db::AppRow;
use crate::error::ApiError;
use crate::state::Controller;

/// Apps on one page of the apps page.
const APPS_PER_PAGE: usize = 100;
/// Events shown on an app's page.
const RECENT_EVENTS: u32 = 20;
/// Releases (and builds) listed on an app's page.
const RECENT_RELEASES: usize = 20;
/// Releases read for an app's page: the newest, whose lines the traffic charts draw.
const CHARTED_RELEASES: u32 = 200;

/// An app's state in a word: maintenance, not deployed, crashed, deploying, stopped or
/// running; from its newest release's state, whether a process keeps crashing, and how
/// many run.
fn state_of(app: &AppRow, newest: Option<ReleaseState>, crashing: bool, running: usize) -> &'static str {
    match newest {
        _ if app.maintenance => "maintenance",
        None => "not deployed",
        Some(_) if crashing => "crashed",
        Some(ReleaseState::Pending) => "deploying",
        Some(_) if running == 0 => "stopped",
        Some(_) => "running",
    }
}

/// Running processes by type: `web 2, worker 1`.
fn counts<'a>(running: impl Iterator<Item = &'a str>) -> String {
    let mut by_type: BTreeMap<&str, usize> = BTreeMap::new();
    for process in running {
        *by_type.entry(process).or_default() += 1;
    }
    if by_type.is_empty() {
        return "none".to_owned();
    }
    by_type.iter().map(|(kind, n)| format!("{kind} {n}")).collect::<Vec<_>>().join(", ")
}

/// A unit enum's word on the wire (`succeeded`, `deployed`).
pub(super) fn enum_word(value: &impl serde::Serialize) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

pub(super) fn badge(state: &str) -> String {
    format!(r#"<span class="state {}">{}</span>"#, state.replace(' ', "-"), escape(state))
}

fn app_link(app: &str) -> String {
    format!(r#"<a href="/dashboard/apps/{0}">{0}</a>"#, escape(app))
}

/// `/dashboard`: every app the user sees, [`APPS_PER_PAGE`] at a time (`?page=N`).
pub(crate) async fn apps(
    State(c): State<Arc<Controller>>,
    signed: Signed,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let page_number = query.get("page").and_then(|p| p.parse::<usize>().ok()).unwrap_or(1).max(1);
    signed.answer("Apps", apps_page(&c, &signed, page_number).await)
}

async fn apps_page(c: &Controller, signed: &Signed, page_number: usize) -> Result<String, ApiError> {
    // A query per kind of fact and one look at the engine, however many apps there are.
    let rows = c.db.apps((!signed.user.admin).then_some(signed.user.id)).await?;
    let overview = c.db.release_overview().await?;
    let containers = c.runtime.list().await.unwrap_or_default();
    let pages = rows.len().div_ceil(APPS_PER_PAGE).max(1);
    let page_number = page_number.min(pages);
    let shown = rows.iter().skip((page_number - 1) * APPS_PER_PAGE).take(APPS_PER_PAGE);
    let mut table = Vec::with_capacity(APPS_PER_PAGE);
    for row in shown {
        let facts = overview.get(&row.id).cloned().unwrap_or_default();
        let running: Vec<&str> = containers
            .iter()
            .filter(|k| k.app == row.name && k.running && !k.one_off)
            .map(|k| k.process.as_str())
            .collect();
        let newest_state = facts.newest.as_ref().map(|(_, state, _)| *state);
        let state = state_of(row, newest_state, facts.crashing, running.len());
        let url = c.config.app_url(row.name.as_str());
        table.push(vec![
            app_link(row.name.as_str()),
            badge(state),
            facts.current.map_or_else(|| "-".to_owned(), |v| format!("v{v}")),
            format!(r#"<a href="{0}">{0}</a>"#, escape(&url)),
            escape(&counts(running.into_iter())),
            facts.newest.as_ref().map_or_else(|| "-".to_owned(), |(_, _, at)| time(at)),
        ]);
    }
    let mut html = Html::default();
    html.raw("<h1>Apps</h1>");
    if rows.is_empty() {
        html.raw(r#"<p class="hint">No apps yet: <code>skiff apps:create</code>, then <code>git push skiff main</code>.</p>"#);
    }
    html.table("apps", &["App", "State", "Release", "URL", "Processes", "Last deploy"], table);
    if pages > 1 {
        let first = (page_number - 1) * APPS_PER_PAGE + 1;
        let last = (page_number * APPS_PER_PAGE).min(rows.len());
        html.raw(r#"<p class="pages">"#);
        if page_number > 1 {
            html.raw(&format!(r#"<a href="/dashboard?page={}">← Previous</a> "#, page_number - 1));
        }
        html.text(&format!("Apps {first}–{last} of {}", rows.len()));
        if page_number < pages {
            html.raw(&format!(r#" <a href="/dashboard?page={}">Next →</a>"#, page_number + 1));
        }
        html.raw("</p>");
    }
    Ok(html.into_string())
}

/// The app's traffic over the last hour (or day, `day`), with its releases marked.
async fn traffic_section(c: &Controller, app: &AppRow, releases: &[Release], day: bool) -> Result<String, ApiError> {
    use super::chart::{Window, by_point, latencies, markers, rates, svg};
    let window = if day { Window::DAY } else { Window::HOUR };
    let now = time::OffsetDateTime::now_utc().unix_timestamp().div_euclid(60);
    let start = window.start(now);
    let minutes = c.db.traffic(app.id, start).await?;
    let points = by_point(window, start, &minutes);
    let marked = markers(window, start, releases);
    let clock = |minute: i64| {
        time::OffsetDateTime::from_unix_timestamp(minute * 60)
            .map(|t| format!("{:02}:{:02} UTC", t.hour(), t.minute()))
            .unwrap_or_default()
    };
    let times = (clock(start), clock(now));
    let name = escape(app.name.as_str());
    let mut html = Html::default();
    html.raw("<h2>Traffic</h2><p class=\"range\">");
    if day {
        html.raw(&format!(r#"<a href="/dashboard/apps/{name}">Last hour</a> · <strong>Last day</strong>"#));
    } else {
        html.raw(&format!(r#"<strong>Last hour</strong> · <a href="/dashboard/apps/{name}?range=day">Last day</a>"#));
    }
    html.raw("</p>");
    html.raw(&svg(
        "Requests and 5xx answers per minute",
        "/min",
        &rates(window, &points),
        &marked,
        (&times.0, &times.1),
    ));
    html.raw(&svg("Latency (p50, p95, p99)", "ms", &latencies(&points), &marked, (&times.0, &times.1)));
    Ok(html.into_string())
}

/// `/dashboard/apps/{app}`: one app; `?reveal=config` shows config values, `?range=day`
/// the last day's traffic.
pub(crate) async fn app(
    State(c): State<Arc<Controller>>,
    signed: Signed,
    Path(name): Path<String>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let reveal = query.get("reveal").is_some_and(|r| r == "config");
    let day = query.get("range").is_some_and(|r| r == "day");
    let result = async {
        let app = c.app_for(&signed.user, &name).await?;
        app_page(&c, &app, &signed.csrf, reveal, day).await
    };
    signed.answer(&name, result.await)
}

async fn app_page(c: &Controller, app: &AppRow, csrf: &str, reveal: bool, day: bool) -> Result<String, ApiError> {
    let view = c.app_view(app).await?;
    let releases = c.releases().list(app, Some(CHARTED_RELEASES)).await?;
    let traffic = traffic_section(c, app, &releases, day).await?;
    let processes = c.formation().processes(app).await.unwrap_or_default();
    let name = app.name.as_str();
    let mut html = Html::default();
    let running: Vec<&str> = processes.iter().filter(|p| p.state == "running").map(|p| p.process.as_str()).collect();
    let crashing = processes.iter().any(|p| p.state == "crashed");
    let state = state_of(app, releases.first().map(|r| r.state), crashing, running.len());
    html.raw("<h1>").text(name).raw(" ").raw(&badge(state)).raw("</h1>");
    html.raw(r#"<dl class="summary"><dt>URL</dt><dd>"#)
        .raw(&format!(r#"<a href="{0}">{0}</a>"#, escape(&view.url)))
        .raw("</dd><dt>Release</dt><dd>")
        .text(&view.release.map_or_else(|| "none yet".to_owned(), |v| format!("v{v}")))
        .raw("</dd><dt>Owner</dt><dd>")
        .text(view.owner.as_str())
        .raw("</dd><dt>Stack</dt><dd>")
        .text(view.stack.as_str())
        .raw("</dd><dt>Git</dt><dd><code>")
        .text(&view.git_url)
        .raw("</code></dd></dl>");

    html.raw(&format!(r#"<p><a class="button" href="/dashboard/apps/{}/logs">Logs</a></p>"#, escape(name)));
    html.raw(&traffic);

    html.raw("<h2>Releases</h2>");
    let rows = releases.iter().take(RECENT_RELEASES).map(|release| {
        let current = Some(release.version) == view.release;
        let action = if current {
            "current".to_owned()
        } else if release.state == ReleaseState::Deployed || release.state == ReleaseState::Superseded {
            format!(
                r#"<a class="button" href="/dashboard/apps/{}/rollback/{}">Roll back to v{}</a>"#,
                escape(name),
                release.version,
                release.version
            )
        } else {
            String::new()
        };
        vec![
            format!("v{}", release.version),
            escape(&release.summary),
            escape(release.created_by.as_str()),
            time(&release.created_at),
            badge(
                &serde_json::to_value(release.state)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
                    .unwrap_or_default(),
            ),
            action,
        ]
    });
    html.table("releases", &["Version", "What", "By", "When", "State", ""], rows.collect::<Vec<_>>());

    html.raw("<h2>Formation</h2>");
    let formation = c.formation().of(app).await?;
    let rows = formation.iter().map(|scaled| {
        let form = format!(
            r#"<form method="post" action="/dashboard/apps/{name}/scale" class="inline"><input type="hidden" name="csrf" value="{csrf}"><input type="hidden" name="process" value="{process}"><input type="number" name="quantity" min="0" max="100" value="{quantity}" aria-label="{process} processes"> <button>Scale</button></form>"#,
            name = escape(name),
            csrf = escape(csrf),
            process = escape(scaled.process.as_str()),
            quantity = scaled.quantity,
        );
        vec![escape(scaled.process.as_str()), format!("<code>{}</code>", escape(&scaled.command)), form]
    });
    html.table("formation", &["Type", "Command", "Processes"], rows.collect::<Vec<_>>());
    if !formation.is_empty() {
        html.raw("<p>")
            .post_button(&format!("/dashboard/apps/{name}/restart"), csrf, "Restart every process", "quiet")
            .raw("</p>");
    }

    html.raw("<h2>Processes</h2>");
    let rows = processes.iter().map(|p| {
        let state = match &p.crash {
            Some(crash) => format!("{} ({})", badge(&p.state), escape(&crash.reason)),
            None => badge(&p.state),
        };
        vec![
            escape(&p.process),
            escape(&p.id),
            format!("v{}", p.release),
            state,
            escape(p.node.as_deref().unwrap_or("this host")),
            p.started_at.as_deref().map_or_else(|| "-".to_owned(), time),
        ]
    });
    html.table("processes", &["Type", "Id", "Release", "State", "Node", "Started"], rows.collect::<Vec<_>>());

    html.raw("<h2>Builds</h2>");
    let builds = c.db.builds(app, Some(RECENT_RELEASES as u32)).await?;
    let rows = builds.iter().take(RECENT_RELEASES).map(|build| {
        vec![
            format!(r#"<a href="/dashboard/apps/{}/builds/{}">{}</a>"#, escape(name), build.id, build.id),
            badge(&enum_word(&build.status)),
            escape(build.git_sha.as_deref().map_or("-", |sha| sha.get(..7).unwrap_or(sha))),
            escape(build.message.as_deref().unwrap_or("")),
            escape(build.created_by.as_str()),
            time(&build.created_at),
            format!("{:.1} s", build.duration_ms as f64 / 1000.0),
        ]
    });
    html.table("builds", &["Build", "Status", "Commit", "Message", "By", "When", "Took"], rows.collect::<Vec<_>>());

    super::settings::config(c, app, csrf, reveal, &mut html).await?;
    super::settings::domains_and_certificates(c, app, csrf, &mut html).await?;
    super::settings::drains(c, app, csrf, &mut html).await?;
    super::settings::collaborators(c, app, csrf, &mut html).await?;

    html.raw("<h2>Activity</h2>");
    let events = c.db.events(Some(&app.name), RECENT_EVENTS).await?;
    html.raw(&super::activity::table(&events, false));
    html.raw(&format!(r#"<p><a href="/dashboard/apps/{}/activity">The whole audit trail →</a></p>"#, escape(name)));
    Ok(html.into_string())
}

/// `GET /dashboard/apps/{app}/rollback/{version}`: asks before rolling back.
pub(crate) async fn confirm_rollback(
    State(c): State<Arc<Controller>>,
    signed: Signed,
    Path((name, version)): Path<(String, String)>,
) -> Response {
    let Some(version) = version_of(&version) else { return refusal(StatusCode::NOT_FOUND, "No such release.") };
    let app = match c.app_for(&signed.user, &name).await {
        Ok(app) => app,
        Err(error) => return error_page(error),
    };
    let current = c.app_view(&app).await.ok().and_then(|v| v.release);
    let mut html = Html::default();
    html.raw(r#"<section class="confirm"><h1>Roll back "#)
        .text(app.name.as_str())
        .raw(&format!(" to v{version}?</h1><p>"))
        .text(&format!(
            "A new release is made with v{version}'s build and config; {} stops serving once it runs.",
            current.map_or_else(|| "nothing".to_owned(), |v| format!("v{v}"))
        ))
        .raw("</p>")
        .post_button(
            &format!("/dashboard/apps/{}/rollback/{version}", app.name),
            &signed.csrf,
            &format!("Roll back to v{version}"),
            "danger",
        )
        .raw(&format!(r#" <a href="/dashboard/apps/{}">Cancel</a></section>"#, escape(app.name.as_str())));
    signed.answer("Roll back", Ok(html.into_string()))
}

/// `POST /dashboard/apps/{app}/rollback/{version}`: rolls back, then shows the app.
pub(crate) async fn rollback(
    State(c): State<Arc<Controller>>,
    signed: Signed,
    Path((name, version)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = signed.refuse_forged(&form) {
        return refused;
    }
    let Some(version) = version_of(&version) else { return refusal(StatusCode::NOT_FOUND, "No such release.") };
    let done = async {
        let app = c.app_for(&signed.user, &name).await?;
        c.releases().rollback(&signed.user, &app, Some(version)).await
    };
    match done.await {
        Ok(_) => Redirect::to(&format!("/dashboard/apps/{name}")).into_response(),
        Err(error) => error_page(error),
    }
}

/// `GET /dashboard/apps/{app}/builds/{id}`: one build and its log.
pub(crate) async fn build(
    State(c): State<Arc<Controller>>,
    signed: Signed,
    Path((name, id)): Path<(String, String)>,
) -> Response {
    let found = async {
        let app = c.app_for(&signed.user, &name).await?;
        let id: i64 = id.parse().map_err(|_| ApiError::NotFound(format!("{name} has no build {id}")))?;
        let build = c.db.build(&app, id).await?;
        build.ok_or_else(|| ApiError::NotFound(format!("{name} has no build {id}")))
    };
    let build = match found.await {
        Ok(build) => build,
        Err(error) => return error_page(error),
    };
    let app_name = escape(build.app.as_str());
    let mut html = Html::default();
    html.raw(&format!(r#"<p><a href="/dashboard/apps/{app_name}">← {app_name}</a></p>"#))
        .raw(&format!("<h1>Build {} of {app_name} ", build.id))
        .raw(&badge(&enum_word(&build.status)))
        .raw(r#"</h1><dl class="summary"><dt>Commit</dt><dd><code>"#)
        .text(build.git_sha.as_deref().unwrap_or("-"))
        .raw("</code> ")
        .text(build.message.as_deref().unwrap_or(""))
        .raw("</dd><dt>Image</dt><dd><code>")
        .text(build.image.as_deref().unwrap_or("-"))
        .raw("</code></dd><dt>By</dt><dd>")
        .text(build.created_by.as_str())
        .raw("</dd><dt>When</dt><dd>")
        .raw(&time(&build.created_at))
        .raw(&format!(
            "</dd><dt>Took</dt><dd>{:.1} s</dd></dl><h2>Log</h2><pre class=\"log\">",
            build.duration_ms as f64 / 1000.0
        ))
        .text(build.log.as_deref().unwrap_or("(no log kept)"))
        .raw("</pre>");
    let title = format!("Build {} of {}", build.id, build.app);
    signed.answer(&title, Ok(html.into_string()))
}
