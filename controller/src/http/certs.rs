//! `/v2/apps/{app}/certs` (upload a PEM chain and key, attach to and detach from the app's
//! domains, remove), `/v2/apps/{app}/acme` (certificates by themselves) and
//! `/v2/apps/{app}/tls` (force HTTPS, HSTS).

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use skiff_api::{AutoCertificates, Certificate, CertificateCreate, DomainCreate, TlsSettings};

use super::extract::VisibleApp;
use crate::error::ApiError;
use crate::state::Controller;

pub(super) fn routes() -> Router<Arc<Controller>> {
    Router::new()
        .route("/v2/apps/{app}/certs", get(list).post(add))
        .route("/v2/apps/{app}/certs/{name}", delete(remove))
        .route("/v2/apps/{app}/certs/{name}/domains", post(attach))
        .route("/v2/apps/{app}/certs/{name}/domains/{domain}", delete(detach))
        .route("/v2/apps/{app}/acme", get(auto).put(enable_auto).delete(disable_auto))
        .route("/v2/apps/{app}/tls", get(tls).put(set_tls))
}

async fn list(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
) -> Result<Json<Vec<Certificate>>, ApiError> {
    Ok(Json(c.certificates().list(&app).await?))
}

async fn add(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(body): Json<CertificateCreate>,
) -> Result<(StatusCode, Json<Certificate>), ApiError> {
    Ok((StatusCode::CREATED, Json(c.certificates().add(&user, &app, body).await?)))
}

async fn remove(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Path((_, name)): Path<(String, String)>,
) -> Result<StatusCode, ApiError> {
    c.certificates().remove(&user, &app, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn attach(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Path((_, name)): Path<(String, String)>,
    Json(body): Json<DomainCreate>,
) -> Result<StatusCode, ApiError> {
    c.certificates().attach(&user, &app, &name, &body.domain).await?;
    Ok(StatusCode::CREATED)
}

async fn detach(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Path((_, name, domain)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    c.certificates().detach(&user, &app, &name, &domain).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn auto(
    State(c): State<Arc<Controller>>,
    VisibleApp { app, .. }: VisibleApp,
) -> Result<Json<AutoCertificates>, ApiError> {
    Ok(Json(c.certificates().auto(&app).await?))
}

async fn enable_auto(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
) -> Result<Json<AutoCertificates>, ApiError> {
    Ok(Json(c.certificates().enable_auto(&user, &app).await?))
}

async fn disable_auto(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
) -> Result<StatusCode, ApiError> {
    c.certificates().disable_auto(&user, &app).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn tls(VisibleApp { app, .. }: VisibleApp) -> Json<TlsSettings> {
    Json(app.tls)
}

async fn set_tls(
    State(c): State<Arc<Controller>>,
    VisibleApp { user, app }: VisibleApp,
    Json(tls): Json<TlsSettings>,
) -> Result<Json<TlsSettings>, ApiError> {
    c.certificates().set_tls(&user, &app, tls).await?;
    Ok(Json(tls))
}
