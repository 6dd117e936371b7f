//! The platform's maintenance endpoints (`/_skiff/`, service token only): garbage
//! collection, image retention, forgetting a repository.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Response};
use http::StatusCode;
use skiff_api::Digest;

use super::{Registry, ServiceCaller, repo_param};
use crate::error::OciError;

/// Blobs younger than this survive a collection (their manifest may not be pushed yet).
pub(super) const DEFAULT_GC_GRACE: std::time::Duration = std::time::Duration::from_secs(3600);

/// `POST /_skiff/gc?dry_run=true&grace_secs=3600`: one collection at a time.
pub(super) async fn collect_garbage(
    State(registry): State<Arc<Registry>>,
    _: ServiceCaller,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Response, OciError> {
    let dry_run = query.get("dry_run").is_some_and(|v| v == "true" || v == "1");
    let grace =
        query.get("grace_secs").and_then(|g| g.parse().ok()).map_or(DEFAULT_GC_GRACE, std::time::Duration::from_secs);
    let _one_at_a_time = registry.gc.lock().await;
    let report = crate::gc::collect(&registry.meta, registry.store.as_ref(), grace, dry_run).await?;
    tracing::info!(deleted = report.deleted.len(), bytes = report.bytes, dry_run, "registry.gc");
    Ok(axum::Json(report).into_response())
}

/// `POST /_skiff/retain/<repo>` with `{"manifests": [digest, …]}`: unlinks every other
/// manifest of the repository.
pub(super) async fn retain(
    State(registry): State<Arc<Registry>>,
    _: ServiceCaller,
    axum::extract::Path(repo): axum::extract::Path<String>,
    axum::Json(body): axum::Json<RetainBody>,
) -> Result<Response, OciError> {
    let repo = repo_param(&repo)?;
    let keep = body.manifests.into_iter().collect();
    let unlinked = crate::gc::retain(&registry.meta, &repo, &keep).await?;
    Ok(axum::Json(serde_json::json!({ "unlinked": unlinked })).into_response())
}

#[derive(serde::Deserialize)]
pub(super) struct RetainBody {
    manifests: Vec<Digest>,
}

/// `DELETE /_skiff/repositories/<repo>`: forgets a repository (its blobs go at the next
/// collection).
pub(super) async fn forget_repository(
    State(registry): State<Arc<Registry>>,
    _: ServiceCaller,
    axum::extract::Path(repo): axum::extract::Path<String>,
) -> Result<Response, OciError> {
    registry.meta.remove_repository(&repo_param(&repo)?).await?;
    Ok(StatusCode::NO_CONTENT.into_response())
}
