//! The extractors that authenticate requests: [`CurrentUser`] for people, [`Service`] for
//! Skiff's own components, and [`VisibleApp`] for the app a path names.

use std::sync::Arc;

use axum::extract::{FromRequestParts, RawPathParams};
use http::request::Parts;
use skiff_api::secrets_match;

use crate::auth::token_hash;
use crate::db::{AppRow, UserRow};
use crate::error::ApiError;
use crate::state::Controller;

/// The address a request came from, when the server knows it.
#[derive(Debug, Clone, Copy)]
pub struct ClientAddress(pub Option<std::net::IpAddr>);

impl<S: Send + Sync> FromRequestParts<S> for ClientAddress {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        let connected = parts.extensions.get::<axum::extract::ConnectInfo<std::net::SocketAddr>>();
        Ok(Self(connected.map(|info| info.0.ip())))
    }
}

pub(super) fn bearer(parts: &Parts) -> Option<&str> {
    parts.headers.get(http::header::AUTHORIZATION)?.to_str().ok()?.strip_prefix("Bearer ").map(str::trim)
}

/// The user a request's bearer token belongs to.
#[derive(Debug, Clone)]
pub struct CurrentUser(pub UserRow);

impl FromRequestParts<Arc<Controller>> for CurrentUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, controller: &Arc<Controller>) -> Result<Self, ApiError> {
        let token = bearer(parts).ok_or(ApiError::Unauthenticated)?;
        let user = controller.db.user_by_token(&token_hash(token)).await?.ok_or(ApiError::TokenRejected)?;
        Ok(Self(user))
    }
}

/// The user a request's bearer token belongs to, when it carries a valid one.
#[derive(Debug, Clone)]
pub struct MaybeUser(pub Option<UserRow>);

impl FromRequestParts<Arc<Controller>> for MaybeUser {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, controller: &Arc<Controller>) -> Result<Self, ApiError> {
        match bearer(parts) {
            Some(token) => Ok(Self(controller.db.user_by_token(&token_hash(token)).await?)),
            None => Ok(Self(None)),
        }
    }
}

/// A request from one of Skiff's components, carrying the service token.
#[derive(Debug, Clone, Copy)]
pub struct Service;

impl FromRequestParts<Arc<Controller>> for Service {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, controller: &Arc<Controller>) -> Result<Self, ApiError> {
        match bearer(parts) {
            Some(token) if secrets_match(token, &controller.config.service_token) => Ok(Self),
            _ => Err(ApiError::Forbidden("this endpoint is for Skiff's own components".into())),
        }
    }
}

/// The signed-in user and the path's parameters.
async fn user_and_path(
    parts: &mut Parts,
    controller: &Arc<Controller>,
) -> Result<(UserRow, Vec<(String, String)>), ApiError> {
    let CurrentUser(user) = CurrentUser::from_request_parts(parts, controller).await?;
    let params =
        RawPathParams::from_request_parts(parts, controller).await.map_err(|e| ApiError::BadRequest(e.body_text()))?;
    Ok((user, params.iter().map(|(key, value)| (key.to_owned(), value.to_owned())).collect()))
}

/// The path parameter `name`.
fn param<'a>(params: &'a [(String, String)], name: &str) -> Option<&'a str> {
    params.iter().find_map(|(key, value)| (key == name).then_some(value.as_str()))
}

/// The signed-in user and the app the path's `{app}` names, when the user may see it.
#[derive(Debug, Clone)]
pub struct VisibleApp {
    pub user: UserRow,
    pub app: AppRow,
}

impl FromRequestParts<Arc<Controller>> for VisibleApp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, controller: &Arc<Controller>) -> Result<Self, ApiError> {
        let (user, params) = user_and_path(parts, controller).await?;
        let app = controller.app_for(&user, param(&params, "app").unwrap_or_default()).await?;
        Ok(Self { user, app })
    }
}

/// What a resource that exists per app and platform-wide (drains, webhooks) is reached
/// through: the app of `/v2/apps/{app}/…` (anyone who sees it), or the platform for the
/// same path without an app (admins only). `id` is the path's `{id}`, when it has one.
#[derive(Debug, Clone)]
pub struct AppOrPlatform {
    pub user: UserRow,
    pub app: Option<AppRow>,
    pub id: String,
}

impl FromRequestParts<Arc<Controller>> for AppOrPlatform {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, controller: &Arc<Controller>) -> Result<Self, ApiError> {
        let (user, params) = user_and_path(parts, controller).await?;
        let id = param(&params, "id").unwrap_or_default().to_owned();
        if let Some(name) = param(&params, "app") {
            let app = controller.app_for(&user, name).await?;
            return Ok(Self { user, app: Some(app), id });
        }
        if !user.admin {
            let what = parts.uri.path().trim_start_matches("/v2/").split('/').next().unwrap_or_default();
            return Err(ApiError::Forbidden(format!(
                "only admins manage platform-wide {what}; add one to an app with -a APP"
            )));
        }
        Ok(Self { user, app: None, id })
    }
}
