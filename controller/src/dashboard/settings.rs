//! What a user changes on an app's page, below its releases and processes: config,
//! domains and certificates, log drains, collaborators; each section a table with its
//! forms, and [`act`], where the forms post.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Form, Path, State};
use axum::response::{IntoResponse, Redirect, Response};
use skiff_api::CertificateCreate;

use super::html::{Html, escape, time};
use super::pages::{badge, enum_word};
use super::{Signed, error_page};
use crate::db::AppRow;
use crate::error::ApiError;
use crate::state::Controller;

/// Config: keys, values hidden unless `reveal`, set and unset forms (each makes a release).
pub(super) async fn config(
    c: &Controller,
    app: &AppRow,
    csrf: &str,
    reveal: bool,
    html: &mut Html,
) -> Result<(), ApiError> {
    let name = app.name.as_str();
    html.raw("<h2>Config</h2>");
    let config = c.db.config(app).await?;
    if !config.is_empty() {
        if reveal {
            html.raw(&format!(r#"<p><a href="/dashboard/apps/{}">Hide values</a></p>"#, escape(name)));
        } else {
            html.raw(&format!(r#"<p><a href="/dashboard/apps/{}?reveal=config">Show values</a></p>"#, escape(name)));
        }
    }
    let rows = config.iter().map(|(key, value)| {
        let shown = if reveal {
            format!("<code>{}</code>", escape(value))
        } else {
            r#"<span class="hidden">hidden</span>"#.to_owned()
        };
        let mut unset = Html::default();
        unset.form(
            &format!("/dashboard/apps/{name}/config"),
            csrf,
            &[("key", key), ("unset", "1")],
            &[],
            "Unset",
            "quiet",
        );
        vec![format!("<code>{}</code>", escape(key)), shown, unset.into_string()]
    });
    html.table("config", &["Key", "Value", ""], rows.collect::<Vec<_>>());
    html.raw("<p>");
    let inputs = [("key", "KEY"), ("value", "value")];
    html.form(&format!("/dashboard/apps/{name}/config"), csrf, &[], &inputs, "Set (makes a release)", "");
    html.raw("</p>");
    Ok(())
}

/// Domains (add, remove), automatic certificates (on, off, each domain's state) and
/// uploaded certificates (add, serve for a domain, remove).
pub(super) async fn domains_and_certificates(
    c: &Controller,
    app: &AppRow,
    csrf: &str,
    html: &mut Html,
) -> Result<(), ApiError> {
    let name = app.name.as_str();
    html.raw("<h2>Domains and certificates</h2>");
    let domains = c.domains().list(app).await?;
    let rows = domains.iter().map(|d| {
        let mut remove = Html::default();
        let action = format!("/dashboard/apps/{name}/domain-remove");
        remove.form(&action, csrf, &[("domain", &d.domain)], &[], "Remove", "quiet");
        vec![escape(&d.domain), time(&d.created_at), remove.into_string()]
    });
    html.table("domains", &["Domain", "Added", ""], rows.collect::<Vec<_>>());
    html.raw("<p>");
    let action = format!("/dashboard/apps/{name}/domain-add");
    html.form(&action, csrf, &[], &[("domain", "www.example.com")], "Add domain", "");
    let auto = c.certificates().auto(app).await?;
    let action = format!("/dashboard/apps/{name}/certs-auto");
    if auto.enabled {
        html.raw(" Automatic certificates are on. ");
        html.form(&action, csrf, &[("off", "1")], &[], "Turn off", "quiet");
    } else {
        html.raw(" ");
        html.form(&action, csrf, &[], &[], "Get certificates automatically", "quiet");
    }
    html.raw("</p>");
    if auto.enabled {
        let rows = auto.domains.iter().map(|d| {
            vec![
                escape(&d.domain),
                badge(&enum_word(&d.state)),
                d.valid_until.as_deref().map_or_else(|| "-".to_owned(), time),
                escape(d.last_error.as_deref().unwrap_or("")),
            ]
        });
        let headers = ["Domain", "Certificate", "Valid until", "Last error"];
        html.table("auto-certificates", &headers, rows.collect::<Vec<_>>());
    }
    let certificates = c.certificates().list(app).await?;
    let rows = certificates.iter().map(|cert| {
        let mut actions = Html::default();
        let named = [("name", cert.name.as_str())];
        let action = format!("/dashboard/apps/{name}/cert-attach");
        actions.form(&action, csrf, &named, &[("domain", "domain")], "Serve for it", "quiet");
        actions.form(&format!("/dashboard/apps/{name}/cert-remove"), csrf, &named, &[], "Remove", "quiet");
        vec![
            escape(&cert.name),
            escape(&cert.names.join(", ")),
            escape(&cert.domains.join(", ")),
            time(&cert.expires_at),
            actions.into_string(),
        ]
    });
    let headers = ["Certificate", "Covers", "Served for", "Expires", ""];
    html.table("certificates", &headers, rows.collect::<Vec<_>>());
    html.raw("<details><summary>Add a certificate</summary>");
    html.upload_form(
        &format!("/dashboard/apps/{name}/cert-add"),
        csrf,
        &[("name", "name (letters, digits, dashes)")],
        &[("certificate_chain", "PEM certificate chain, the leaf first"), ("private_key", "PEM private key")],
        "Add certificate",
    );
    html.raw("</details>");
    Ok(())
}

/// Log drains: where the app's lines also go, with the logger's delivery counts.
pub(super) async fn drains(c: &Controller, app: &AppRow, csrf: &str, html: &mut Html) -> Result<(), ApiError> {
    let name = app.name.as_str();
    html.raw("<h2>Log drains</h2>");
    let drains = c.drains().list(Some(app)).await?;
    let rows = drains.iter().map(|drain| {
        let count = |pick: fn(&skiff_api::DrainStatus) -> u64| {
            drain.status.as_ref().map_or_else(|| "-".to_owned(), |s| pick(s).to_string())
        };
        let mut remove = Html::default();
        let id = drain.id.to_string();
        remove.form(&format!("/dashboard/apps/{name}/drain-remove"), csrf, &[("id", &id)], &[], "Remove", "quiet");
        vec![
            format!("<code>{}</code>", escape(&drain.url)),
            count(|s| s.delivered),
            count(|s| s.dropped),
            count(|s| s.queued),
            escape(drain.status.as_ref().and_then(|s| s.last_error.as_deref()).unwrap_or("")),
            time(&drain.created_at),
            remove.into_string(),
        ]
    });
    let headers = ["Drain", "Delivered", "Dropped", "Queued", "Last error", "Added", ""];
    html.table("drains", &headers, rows.collect::<Vec<_>>());
    html.raw("<p>");
    let placeholder = [("url", "syslog+tls://logs.example.com:6514")];
    html.form(&format!("/dashboard/apps/{name}/drain-add"), csrf, &[], &placeholder, "Add drain", "");
    html.raw("</p>");
    Ok(())
}

/// Collaborators: who else may see and change the app (share, unshare).
pub(super) async fn collaborators(c: &Controller, app: &AppRow, csrf: &str, html: &mut Html) -> Result<(), ApiError> {
    let name = app.name.as_str();
    html.raw("<h2>Collaborators</h2>");
    let collaborators = c.apps().collaborators(app).await?;
    let rows = collaborators.iter().map(|u| {
        let mut remove = Html::default();
        let path = format!("/dashboard/apps/{name}/collaborator-remove");
        remove.form(&path, csrf, &[("user", u.as_str())], &[], "Remove", "quiet");
        vec![escape(u.as_str()), remove.into_string()]
    });
    html.table("collaborators", &["User", ""], rows.collect::<Vec<_>>());
    html.raw("<p>");
    html.form(&format!("/dashboard/apps/{name}/collaborator-add"), csrf, &[], &[("user", "user name")], "Share", "");
    html.raw("</p>");
    Ok(())
}

/// `POST /dashboard/apps/{app}/{action}`: `scale` (`process`, `quantity`), `restart`,
/// `config` (`key` and `value`, or `unset`), `domain-add` and `domain-remove` (`domain`),
/// `certs-auto` (on, or `off`), `cert-add` (`name`, `certificate_chain`, `private_key`),
/// `cert-attach` (`name`, `domain`), `cert-remove` (`name`), `drain-add` (`url`),
/// `drain-remove` (`id`), `collaborator-add` and `collaborator-remove` (`user`); then the
/// app's page again.
pub(crate) async fn act(
    State(c): State<Arc<Controller>>,
    signed: Signed,
    Path((name, action)): Path<(String, String)>,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = signed.refuse_forged(&form) {
        return refused;
    }
    let field = |key: &str| form.get(key).map_or("", |v| v.trim());
    let done = async {
        let app = c.app_for(&signed.user, &name).await?;
        let user = &signed.user;
        match action.as_str() {
            "scale" => {
                let process = field("process")
                    .parse()
                    .map_err(|_| ApiError::BadRequest(format!("`{}` is not a process type", field("process"))))?;
                let quantity = field("quantity")
                    .parse()
                    .map_err(|_| ApiError::BadRequest("the number of processes is a whole number".into()))?;
                c.formation().scale(user, &app, &[(process, quantity)].into()).await.map(drop)
            }
            "restart" => c.formation().restart(user, &app, skiff_api::Restart::default()).await,
            "config" => {
                let value = (!form.contains_key("unset")).then(|| form.get("value").cloned().unwrap_or_default());
                let change = [(field("key").to_owned(), value)].into();
                c.releases().change_config(user, &app, &change).await.map(drop)
            }
            "domain-add" => c.domains().add(user, &app, field("domain")).await,
            "domain-remove" => c.domains().remove(user, &app, field("domain")).await,
            "certs-auto" if form.contains_key("off") => c.certificates().disable_auto(user, &app).await,
            "certs-auto" => c.certificates().enable_auto(user, &app).await.map(drop),
            "cert-add" => {
                let body = CertificateCreate {
                    name: field("name").to_owned(),
                    certificate_chain: field("certificate_chain").to_owned(),
                    private_key: field("private_key").to_owned(),
                };
                c.certificates().add(user, &app, body).await.map(drop)
            }
            "cert-attach" => c.certificates().attach(user, &app, field("name"), field("domain")).await,
            "cert-remove" => c.certificates().remove(user, &app, field("name")).await,
            "drain-add" => {
                let body = skiff_api::DrainCreate { url: field("url").to_owned() };
                c.drains().add(user, Some(&app), &body).await.map(drop)
            }
            "drain-remove" => c.drains().remove(user, Some(&app), field("id")).await,
            "collaborator-add" | "collaborator-remove" => {
                let collaborator = field("user")
                    .parse()
                    .map_err(|_| ApiError::BadRequest(format!("`{}` is not a user name", field("user"))))?;
                if action == "collaborator-add" {
                    c.apps().add_collaborator(user, &app, &collaborator).await
                } else {
                    c.apps().remove_collaborator(user, &app, &collaborator).await
                }
            }
            _ => Err(ApiError::NotFound(format!("there is no `{action}` to do to an app"))),
        }
    };
    match done.await {
        Ok(()) => Redirect::to(&format!("/dashboard/apps/{name}")).into_response(),
        Err(error) => error_page(error),
    }
}
