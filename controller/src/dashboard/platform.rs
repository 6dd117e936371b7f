//! The platform's page, for admins: every component's state, users, stacks, nodes, and
//! the registry's garbage collection (a dry run first, then for real, each a form).

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::html::{Html, escape};
use super::{Signed, error_page, refusal};
use crate::error::ApiError;
use crate::state::Controller;

/// A refusal for users who are not admins.
pub(super) fn admins_only(signed: &Signed) -> Option<Response> {
    (!signed.user.admin).then(|| refusal(StatusCode::FORBIDDEN, "The platform's pages are for admins."))
}

/// `GET /dashboard/platform`.
pub(crate) async fn platform(State(c): State<Arc<Controller>>, signed: Signed) -> Response {
    if let Some(refused) = admins_only(&signed) {
        return refused;
    }
    signed.answer("Platform", platform_page(&c, &signed, None).await)
}

/// `POST /dashboard/platform/gc` (`dry_run` for a dry run): the page again, with what the
/// collection did or would do.
pub(crate) async fn collect_garbage(
    State(c): State<Arc<Controller>>,
    signed: Signed,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = admins_only(&signed).or_else(|| signed.refuse_forged(&form)) {
        return refused;
    }
    let dry_run = form.contains_key("dry_run");
    let outcome = match c.collect_garbage(&signed.user, dry_run, None).await {
        Ok(report) => serde_json::to_string_pretty(&report).unwrap_or_default(),
        Err(error) => return error_page(error),
    };
    let heading = if dry_run { "A collection would delete" } else { "Collected" };
    signed.answer("Platform", platform_page(&c, &signed, Some((heading, &outcome))).await)
}

async fn platform_page(c: &Controller, signed: &Signed, collected: Option<(&str, &str)>) -> Result<String, ApiError> {
    let status = c.platform_status(&signed.user).await?;
    let mut html = Html::default();
    html.raw(r#"<h1>Platform</h1><p><a href="/dashboard/platform/activity">Audit trail of the platform and every app →</a></p>"#);
    html.raw("<h2>Components</h2>");
    let rows = status.components.iter().map(|component| {
        let state = if component.ready { "running" } else { "failed" };
        let label = if component.ready { "ready" } else { "not ready" };
        vec![
            escape(&component.name),
            escape(if component.url.is_empty() { "-" } else { &component.url }),
            format!(r#"<span class="state {state}">{label}</span>"#),
            escape(component.version.as_deref().unwrap_or("-")),
            escape(&component.detail.lines().collect::<Vec<_>>().join("; ")),
        ]
    });
    html.table("components", &["Component", "At", "State", "Version", "Checks"], rows.collect::<Vec<_>>());
    html.raw("<p>").text(&format!("Webhook deliveries pending: {}.", status.webhook_deliveries_pending));
    if let Some(queued) = status.drain_lines_queued {
        html.text(&format!(" Drain lines queued: {queued}."));
    }
    if let Some(cert) = &status.soonest_certificate {
        html.text(&format!(" First certificate to expire: {} of {}, {}.", cert.name, cert.app, cert.expires_at));
    }
    html.raw("</p>");

    html.raw("<h2>Users</h2>");
    let users = c.db.users().await?;
    let rows = users.iter().map(|u| vec![escape(u.username.as_str()), (if u.admin { "admin" } else { "" }).to_owned()]);
    html.table("users", &["User", "Role"], rows.collect::<Vec<_>>());

    html.raw("<h2>Stacks</h2>");
    let stacks = c.db.stacks().await?;
    let rows =
        stacks.iter().map(|(name, image)| vec![escape(name.as_str()), format!("<code>{}</code>", escape(image))]);
    html.table("stacks", &["Stack", "Image"], rows.collect::<Vec<_>>());

    html.raw("<h2>Nodes</h2>");
    match c.nodes().list(&signed.user).await {
        Ok(nodes) => {
            let rows = nodes
                .iter()
                .map(|n| vec![escape(&n.hostname), escape(&n.address), escape(&n.state), escape(&n.availability)]);
            html.table("nodes", &["Node", "Address", "State", "Availability"], rows.collect::<Vec<_>>());
        }
        Err(error) => {
            html.raw(r#"<p class="hint">"#).text(&error.to_string()).raw("</p>");
        }
    }

    html.raw("<h2>Registry garbage</h2><p>Images of releases beyond the retention, and blobs no image uses.</p><p>");
    html.raw(&format!(
        r#"<form method="post" action="/dashboard/platform/gc" class="inline"><input type="hidden" name="csrf" value="{}"><input type="hidden" name="dry_run" value="1"><button class="quiet">What would go</button></form> "#,
        escape(&signed.csrf)
    ));
    html.post_button("/dashboard/platform/gc", &signed.csrf, "Collect now", "danger").raw("</p>");
    if let Some((heading, outcome)) = collected {
        html.raw("<h3>").text(heading).raw(r#"</h3><pre class="report">"#).text(outcome).raw("</pre>");
    }
    Ok(html.into_string())
}
