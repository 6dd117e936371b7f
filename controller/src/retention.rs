//! Image retention: the registry keeps the images of each app's last releases and of what
//! runs, and collects the rest. The job runs on an interval; `POST /v2/admin/gc` runs it at
//! once (or, as a dry run, only reports what a collection would delete).

use std::sync::Arc;
use std::time::Duration;

use skiff_api::Digest;
use skiff_registry_client::{RegistryClient, RegistryError};
use tokio_util::sync::CancellationToken;

use crate::db::{Db, DbError};

/// Why a retention pass failed.
#[derive(Debug, thiserror::Error)]
pub enum RetentionError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}

/// The digest of an image Skiff built (`<app>@<digest>`); other registries' images are
/// not Skiff's to collect.
fn own_digest(image: &str) -> Option<Digest> {
    if image.contains('/') {
        return None;
    }
    image.split_once('@')?.1.parse().ok()
}

/// Unlinks, app by app, every image but those of the last `keep` releases and the running
/// one; then collects blobs older than `grace` seconds (the registry's default when
/// `None`). A `dry_run` changes nothing and reports.
///
/// # Errors
/// When the database or the registry fails.
pub async fn pass(
    db: &Db,
    registry: &RegistryClient,
    keep: usize,
    dry_run: bool,
    grace: Option<u64>,
) -> Result<serde_json::Value, RetentionError> {
    if !dry_run {
        let running = db.current_releases_by_app().await?;
        for app in db.apps(None).await? {
            let releases = db.releases(&app, None).await?;
            let mut retained: Vec<Digest> =
                releases.iter().take(keep.max(1)).filter_map(|r| own_digest(&r.image)).collect();
            retained.extend(running.iter().filter(|(id, _)| *id == app.id).filter_map(|(_, r)| own_digest(&r.image)));
            registry.retain(app.name.as_str(), &retained).await?;
        }
    }
    Ok(registry.collect_garbage(dry_run, grace).await?)
}

/// Runs [`pass`] every `interval` until `shutdown`.
pub async fn run(db: Db, registry: Arc<RegistryClient>, keep: usize, interval: Duration, shutdown: CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
        match pass(&db, &registry, keep, false, None).await {
            Ok(report) => {
                tracing::info!(deleted = report["deleted"].as_array().map_or(0, Vec::len), "controller.retention")
            }
            Err(error) => tracing::warn!(%error, "controller.retention failed; trying again at the next interval"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_skiffs_own_images_are_collected() {
        let digest = format!("sha256:{}", "a".repeat(64));
        assert_eq!(own_digest(&format!("shop@{digest}")), digest.parse().ok());
        assert_eq!(own_digest(&format!("docker.io/library/nginx@{digest}")), None);
        assert_eq!(own_digest("shop:latest"), None);
    }
}
