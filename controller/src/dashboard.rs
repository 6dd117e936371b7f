//! The dashboard: the platform in a browser, served by the controller at `/dashboard`,
//! HTML written on the server (a script is needed only to follow logs live), every asset
//! embedded in the binary.
//!
//! - **Sessions**: signing in with a Skiff user name and password (counted and refused
//!   like the API's sign-ins, per user name and address) makes a session token that works
//!   for [`SESSION`], kept in an `HttpOnly`, `SameSite=Strict` cookie (`Secure` when the
//!   request came over HTTPS); signing out revokes it. A session sees what its user sees
//!   through the API, with the same checks (the domain operations are the same).
//! - **CSRF**: every form that changes something carries a token derived from the session
//!   (HMAC with the service token) and is refused without it, or from another site
//!   (`Sec-Fetch-Site`, `Origin`).
//! - **Content**: every value from users and apps is escaped ([`html`]); a
//!   Content-Security-Policy allows only the dashboard's own stylesheet and script (which
//!   follows a log live, adding lines as text), no frame, forms to itself only.

mod activity;
mod chart;
mod html;
mod logs;
mod pages;
mod platform;
mod settings;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{Form, FromRequestParts, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use hmac::{Hmac, Mac as _};
use http::request::Parts;
use skiff_api::{Credentials, secrets_match};

use crate::auth::token_hash;
use crate::db::UserRow;
use crate::error::ApiError;
use crate::http::extract::ClientAddress;
use crate::state::Controller;
use html::{Frame, escape, page};

/// How long a dashboard session lasts.
pub const SESSION: Duration = Duration::from_secs(12 * 3600);
/// The session cookie's name.
const COOKIE: &str = "skiff_session";
/// The dashboard's stylesheet.
const STYLESHEET: &str = include_str!("dashboard/skiff.css");
/// The script that follows an app's log live, the dashboard's only one.
const LOGS_SCRIPT: &str = include_str!("dashboard/logs.js");
/// What pages may load: the dashboard's own stylesheet and script, and its own event
/// streams; nothing else, from anywhere.
const CONTENT_SECURITY_POLICY: &str = "default-src 'none'; style-src 'self'; script-src 'self'; \
     connect-src 'self'; img-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

pub(crate) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/dashboard", get(pages::apps))
        .route("/dashboard/", get(|| async { Redirect::to("/dashboard") }))
        .route("/dashboard/login", get(login_form).post(login))
        .route("/dashboard/logout", axum::routing::post(logout))
        .route("/dashboard/apps/{app}", get(pages::app))
        .route("/dashboard/apps/{app}/rollback/{version}", get(pages::confirm_rollback).post(pages::rollback))
        .route("/dashboard/apps/{app}/builds/{id}", get(pages::build))
        .route("/dashboard/apps/{app}/logs", get(logs::page_of_logs))
        .route("/dashboard/apps/{app}/logs/stream", get(logs::stream_of_logs))
        .route("/dashboard/apps/{app}/activity", get(activity::of_app))
        .route("/dashboard/apps/{app}/{action}", axum::routing::post(settings::act))
        .route("/dashboard/platform", get(platform::platform))
        .route("/dashboard/platform/activity", get(activity::of_platform))
        .route("/dashboard/platform/gc", axum::routing::post(platform::collect_garbage))
        .route("/dashboard/assets/skiff.css", get(|| asset("text/css; charset=utf-8", STYLESHEET)))
        .route("/dashboard/assets/logs.js", get(|| asset("text/javascript; charset=utf-8", LOGS_SCRIPT)))
        .layer(axum::middleware::map_response(secure_headers))
}

/// Headers on every dashboard answer.
async fn secure_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_SECURITY_POLICY, HeaderValue::from_static(CONTENT_SECURITY_POLICY));
    headers.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    headers.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.entry(header::CACHE_CONTROL).or_insert(HeaderValue::from_static("no-store"));
    response
}

/// One of the dashboard's embedded assets.
async fn asset(content_type: &'static str, body: &'static str) -> Response {
    let cache = HeaderValue::from_static("public, max-age=3600");
    ([(header::CONTENT_TYPE, HeaderValue::from_static(content_type)), (header::CACHE_CONTROL, cache)], body)
        .into_response()
}

/// The signed-in user of a dashboard request, and the session's CSRF token.
pub(crate) struct Signed {
    pub user: UserRow,
    pub csrf: String,
    token: String,
}

impl Signed {
    pub fn frame(&self) -> Frame<'_> {
        Frame { username: self.user.username.as_str(), csrf: &self.csrf, admin: self.user.admin }
    }

    /// `body` as a whole page titled `title` in this session's frame, or the error's page.
    pub fn answer(&self, title: &str, body: Result<String, ApiError>) -> Response {
        match body {
            Ok(body) => Html(page(title, Some(&self.frame()), &body)).into_response(),
            Err(error) => error_page(error),
        }
    }

    /// The refusal of a form without this session's CSRF token; `None` when it has it.
    pub fn refuse_forged(&self, form: &HashMap<String, String>) -> Option<Response> {
        match form.get("csrf") {
            Some(given) if secrets_match(given, &self.csrf) => None,
            _ => Some(refusal(
                StatusCode::FORBIDDEN,
                "This form is out of date or did not come from this dashboard; reload the page and try again.",
            )),
        }
    }
}

/// The session token's CSRF token: an HMAC of it under the service token.
fn csrf_token(service_token: &str, session: &str) -> String {
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(service_token.as_bytes()).expect("HMAC takes any key");
    mac.update(b"skiff dashboard csrf\0");
    mac.update(session.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

fn session_cookie(headers: &HeaderMap) -> Option<&str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .find_map(|pair| pair.trim().strip_prefix(COOKIE)?.strip_prefix('='))
        .filter(|token| !token.is_empty())
}

/// Whether a request that changes something came from another site.
fn cross_site(headers: &HeaderMap) -> bool {
    let fetch_site = headers.get("sec-fetch-site").and_then(|v| v.to_str().ok());
    if matches!(fetch_site, Some("cross-site" | "same-site")) {
        return true;
    }
    let host = headers.get(header::HOST).and_then(|v| v.to_str().ok());
    let origin = headers.get(header::ORIGIN).and_then(|v| v.to_str().ok());
    match (origin, host) {
        (Some("null"), _) => true,
        (Some(origin), Some(host)) => origin.split_once("://").map(|(_, authority)| authority) != Some(host),
        _ => false,
    }
}

impl FromRequestParts<Arc<Controller>> for Signed {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, c: &Arc<Controller>) -> Result<Self, Response> {
        let to_login = || {
            let next = parts.uri.path_and_query().map_or("/dashboard", |p| p.as_str());
            let target = format!("/dashboard/login?next={}", percent_encode(next));
            Redirect::to(&target).into_response()
        };
        let Some(token) = session_cookie(&parts.headers).map(str::to_owned) else { return Err(to_login()) };
        let user = c.db.user_by_token(&token_hash(&token)).await.map_err(|e| ApiError::from(e).into_response())?;
        let Some(user) = user else { return Err(to_login()) };
        if parts.method != http::Method::GET && cross_site(&parts.headers) {
            return Err(refusal(StatusCode::FORBIDDEN, "Changes are made from this dashboard's own pages only."));
        }
        Ok(Self { csrf: csrf_token(&c.config.service_token, &token), user, token })
    }
}

/// A page that says why a request was refused.
pub(crate) fn refusal(status: StatusCode, why: &str) -> Response {
    let body = format!(
        r#"<section class="refusal"><h1>{}</h1><p>{}</p><p><a href="/dashboard">Back to the apps</a></p></section>"#,
        status.canonical_reason().unwrap_or("Refused"),
        escape(why)
    );
    (status, Html(page("Refused", None, &body))).into_response()
}

/// An API error as a page.
pub(crate) fn error_page(error: ApiError) -> Response {
    let message = error.to_string();
    // The API's answer says which status (and logs an internal cause, never shown).
    let status = error.into_response().status();
    if status == StatusCode::INTERNAL_SERVER_ERROR {
        return refusal(status, "Something went wrong on the platform; the operator's logs say what.");
    }
    refusal(status, &message)
}

pub(crate) fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'/' => (b as char).to_string(),
            other => format!("%{other:02X}"),
        })
        .collect()
}

/// Where to go after signing in: a dashboard path, never another site.
fn next_page(next: Option<&String>) -> String {
    next.filter(|n| n.starts_with("/dashboard") && !n.starts_with("//") && !n.contains('\\'))
        .cloned()
        .unwrap_or_else(|| "/dashboard".to_owned())
}

fn login_page(next: &str, message: Option<&str>) -> String {
    let message = message.map_or_else(String::new, |m| format!(r#"<p class="error">{}</p>"#, escape(m)));
    let body = format!(
        r#"<section class="login"><h1>Sign in</h1>{message}<form method="post" action="/dashboard/login">
<input type="hidden" name="next" value="{}">
<label>User name <input name="username" autocomplete="username" required autofocus></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button>Sign in</button></form><p class="hint">The same account as <code>skiff auth:login</code>.</p></section>"#,
        escape(next)
    );
    page("Sign in", None, &body)
}

async fn login_form(Query(query): Query<HashMap<String, String>>) -> Html<String> {
    Html(login_page(&next_page(query.get("next")), None))
}

async fn login(
    State(c): State<Arc<Controller>>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    let next = next_page(form.get("next"));
    if cross_site(&headers) {
        return refusal(StatusCode::FORBIDDEN, "Sign in from this dashboard's own page.");
    }
    let username = form.get("username").map_or("", String::as_str).trim();
    let Ok(username) = username.parse() else {
        return (StatusCode::FORBIDDEN, Html(login_page(&next, Some("Wrong user name or password.")))).into_response();
    };
    let credentials = Credentials { username, password: form.get("password").cloned().unwrap_or_default() };
    match c.accounts().dashboard_session(address, &credentials, SESSION).await {
        Ok(session) => {
            let https = headers.get("x-forwarded-proto").is_some_and(|p| p.as_bytes() == b"https");
            let secure = if https { "; Secure" } else { "" };
            let cookie = format!(
                "{COOKIE}={}; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
                session.token,
                SESSION.as_secs()
            );
            let mut response = Redirect::to(&next).into_response();
            if let Ok(cookie) = HeaderValue::from_str(&cookie) {
                response.headers_mut().insert(header::SET_COOKIE, cookie);
            }
            response
        }
        Err(ApiError::TooManyAttempts(wait)) => {
            let message = format!("Too many failed sign-ins; try again in {} s.", wait.as_secs().max(1));
            let mut response = (StatusCode::TOO_MANY_REQUESTS, Html(login_page(&next, Some(&message)))).into_response();
            response.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(wait.as_secs().max(1)));
            response
        }
        Err(ApiError::Forbidden(_)) => {
            (StatusCode::FORBIDDEN, Html(login_page(&next, Some("Wrong user name or password.")))).into_response()
        }
        Err(error) => error_page(error),
    }
}

async fn logout(
    State(c): State<Arc<Controller>>,
    signed: Signed,
    Form(form): Form<HashMap<String, String>>,
) -> Response {
    if let Some(refused) = signed.refuse_forged(&form) {
        return refused;
    }
    if let Err(error) = c.accounts().revoke(&signed.token).await {
        return error_page(error);
    }
    let mut response = Redirect::to("/dashboard/login").into_response();
    let expired = HeaderValue::from_static("skiff_session=; Path=/dashboard; HttpOnly; SameSite=Strict; Max-Age=0");
    response.headers_mut().insert(header::SET_COOKIE, expired);
    response
}

/// A path parameter that is an app's release version.
fn version_of(text: &str) -> Option<u32> {
    text.strip_prefix('v').unwrap_or(text).parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_same_site_requests_change_things() {
        let headers = |pairs: &[(&'static str, &'static str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(*name, HeaderValue::from_static(value));
            }
            map
        };
        assert!(!cross_site(&headers(&[("host", "skiff.test:7700")])));
        assert!(!cross_site(&headers(&[("host", "skiff.test:7700"), ("origin", "http://skiff.test:7700")])));
        assert!(!cross_site(&headers(&[("sec-fetch-site", "same-origin")])));
        assert!(cross_site(&headers(&[("host", "skiff.test:7700"), ("origin", "https://evil.test")])));
        assert!(cross_site(&headers(&[("origin", "null")])));
        assert!(cross_site(&headers(&[("sec-fetch-site", "cross-site")])));
    }

    #[test]
    fn sign_in_goes_back_only_to_the_dashboard() {
        for (given, expected) in [
            (Some("/dashboard/apps/shop"), "/dashboard/apps/shop"),
            (Some("https://evil.test/"), "/dashboard"),
            (Some("//evil.test/dashboard"), "/dashboard"),
            (None, "/dashboard"),
        ] {
            assert_eq!(next_page(given.map(str::to_owned).as_ref()), expected);
        }
        assert_eq!(percent_encode("/dashboard/apps/a?b=c&d"), "/dashboard/apps/a%3Fb%3Dc%26d");
    }

    #[test]
    fn the_session_cookie_is_found_among_others() {
        let mut headers = HeaderMap::new();
        headers.insert(header::COOKIE, HeaderValue::from_static("theme=dark; skiff_session=abc123; x=y"));
        assert_eq!(session_cookie(&headers), Some("abc123"));
        assert_ne!(csrf_token("service", "abc123"), csrf_token("service", "abc124"));
        assert_ne!(csrf_token("service", "abc123"), csrf_token("other", "abc123"));
    }
}
