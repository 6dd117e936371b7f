//! What the router lets through to an app: `GET`/`PUT /v2/apps/{app}/access` (the largest
//! request body, client addresses allowed and denied). The router gets it in the route feed.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use skiff_api::{AccessPolicy, Cidr};

use crate::auth::CurrentUser;
use crate::http::{ApiError, Controller};

/// Entries an allow or deny list may hold.
const MAX_ENTRIES: usize = 100;
/// The largest body limit that may be set (10 GiB).
const MAX_BODY_LIMIT: u64 = 10 << 30;

/// The access routes.
pub fn routes() -> Router<Arc<Controller>> {
    Router::new().route("/v2/apps/{app}/access", get(show).put(set))
}

/// Checks a policy, saying what is wrong with it.
///
/// # Errors
/// An address that does not parse, too many entries, or a body limit out of range.
pub fn check(policy: &AccessPolicy) -> Result<(), String> {
    for list in [&policy.allow, &policy.deny] {
        if list.len() > MAX_ENTRIES {
            return Err(format!("at most {MAX_ENTRIES} addresses may be allowed or denied"));
        }
        for entry in list {
            entry.parse::<Cidr>()?;
        }
    }
    match policy.max_body_bytes {
        Some(limit) if limit == 0 || limit > MAX_BODY_LIMIT => {
            Err(format!("the body limit must be between 1 byte and {} GiB", MAX_BODY_LIMIT >> 30))
        }
        _ => Ok(()),
    }
}

async fn show(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
) -> Result<Json<AccessPolicy>, ApiError> {
    Ok(Json(c.app_for(&user, &app).await?.access))
}

async fn set(
    State(c): State<Arc<Controller>>,
    CurrentUser(user): CurrentUser,
    Path(app): Path<String>,
    Json(policy): Json<AccessPolicy>,
) -> Result<Json<AccessPolicy>, ApiError> {
    let app = c.app_for(&user, &app).await?;
    check(&policy).map_err(ApiError::BadRequest)?;
    c.db.set_access(app.id, &policy).await?;
    let body = policy.max_body_bytes.map_or_else(|| "no body limit".to_owned(), |b| format!("bodies up to {b} bytes"));
    let allow = if policy.allow.is_empty() { "everyone".to_owned() } else { policy.allow.join(", ") };
    let deny = if policy.deny.is_empty() { String::new() } else { format!(" but {}", policy.deny.join(", ")) };
    c.events.emit(&app.name, &format!("{} set access: {allow}{deny}, {body}", user.username)).await;
    c.coordination.changed().await;
    Ok(Json(policy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn policies_are_checked() {
        let good = AccessPolicy {
            max_body_bytes: Some(1 << 20),
            allow: vec!["10.0.0.0/8".into()],
            deny: vec!["10.0.0.7".into()],
        };
        assert!(check(&good).is_ok());
        assert!(check(&AccessPolicy { allow: vec!["10.0.0.0/40".into()], ..Default::default() }).is_err());
        assert!(check(&AccessPolicy { max_body_bytes: Some(0), ..Default::default() }).is_err());
        let many = AccessPolicy { deny: vec!["192.0.2.1".into(); MAX_ENTRIES + 1], ..Default::default() };
        assert!(check(&many).is_err());
    }
}
