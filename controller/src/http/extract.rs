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

/// The signed-in user and the app the path's `{app}` names, when the user may see it.
#[derive(Debug, Clone)]
pub struct VisibleApp {
    pub user: UserRow,
    pub app: AppRow,
}

impl FromRequestParts<Arc<Controller>> for VisibleApp {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, controller: &Arc<Controller>) -> Result<Self, ApiError> {
        let CurrentUser(user) = CurrentUser::from_request_parts(parts, controller).await?;
        let params = RawPathParams::from_request_parts(parts, controller)
            .await
            .map_err(|e| ApiError::BadRequest(e.body_text()))?;
        let name = params.iter().find_map(|(key, value)| (key == "app").then_some(value)).unwrap_or_default();
        let app = controller.app_for(&user, name).await?;
        Ok(Self { user, app })
    }
}
