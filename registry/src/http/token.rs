//! Docker's token flow: `GET /v2/token` for clients, and pull-only tokens for builds (`POST
//! /_skiff/tokens`).

use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::{HeaderMap, StatusCode};

use super::{LOG_IN, Registry, ServiceCaller, client_address, repo_param};
use crate::auth::Credentials;
use crate::error::OciError;
use crate::token::{Access, Claims};

/// `GET /v2/token?service=skiff&scope=repository:NAME:pull,push` (any number of scopes)
/// with Basic credentials: a token for what they may do there, as Docker's token flow
/// expects (`token` and `access_token`, `expires_in`, `issued_at`). Without a scope (what
/// `docker login` asks), a token that only proves the login.
pub(super) async fn issue_token(
    State(registry): State<Arc<Registry>>,
    extensions: http::Extensions,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Result<Response, OciError> {
    let credentials = Credentials::from_request(&headers, client_address(&extensions))
        .ok_or_else(|| OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", LOG_IN))?;
    let unauthorized = || OciError::new(StatusCode::UNAUTHORIZED, "UNAUTHORIZED", "wrong user name or password");
    let scopes = query.iter().filter(|(k, _)| k == "scope").filter_map(|(_, v)| crate::token::parse_scope(v)).collect();
    let access = registry.token_access(&credentials, scopes).await?.ok_or_else(unauthorized)?;
    let now = time::OffsetDateTime::now_utc();
    let subject = credentials.username.clone().unwrap_or_else(|| "token".into());
    let claims = Claims { subject, expires: now.unix_timestamp() + crate::token::LIFETIME_SECS, access };
    let token = registry.tokens.issue(&claims);
    let issued_at = now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default();
    tracing::debug!(subject = claims.subject, scopes = claims.access.len(), "registry.token");
    Ok(axum::Json(serde_json::json!({
        "token": token,
        "access_token": token,
        "expires_in": crate::token::LIFETIME_SECS,
        "issued_at": issued_at,
    }))
    .into_response())
}

#[derive(serde::Deserialize)]
pub(super) struct PullTokenRequest {
    subject: String,
    repositories: Vec<String>,
}

/// `POST /_skiff/tokens {"subject": "alice", "repositories": [...]}`: a token that may pull
/// those repositories and nothing else, for the builder to hand the engine for one build
/// (the builder has checked with the controller that the subject may pull them).
pub(super) async fn issue_pull_token(
    State(registry): State<Arc<Registry>>,
    _: ServiceCaller,
    axum::Json(body): axum::Json<PullTokenRequest>,
) -> Result<Response, OciError> {
    let mut access = Vec::with_capacity(body.repositories.len());
    for repository in body.repositories {
        let repository = repo_param(&repository)?.as_str().to_owned();
        access.push(Access { repository, pull: true, push: false, refused: false });
    }
    let expires = time::OffsetDateTime::now_utc().unix_timestamp() + crate::token::LIFETIME_SECS;
    let token = registry.tokens.issue(&Claims { subject: body.subject, expires, access });
    Ok(axum::Json(serde_json::json!({ "token": token })).into_response())
}
