//! The platform at a glance, for operators (`skiff platform:status`): every component's
//! readiness and version (routers: those that follow this controller's route feed), the queues that grow when something downstream is slow
//! (webhook deliveries, drained log lines), the certificate that expires first, and how
//! much the data directory holds.

use std::path::{Path, PathBuf};
use std::time::Duration;

use skiff_api::{CertificateExpiry, ComponentStatus, DrainStatus, PlatformStatus};

use crate::db::UserRow;
use crate::error::ApiError;
use crate::state::Controller;

/// How long each component may take to answer.
const ASK_TIMEOUT: Duration = Duration::from_secs(3);
/// The longest a router that follows the route feed goes without asking (it asks again as
/// each long poll ends, and they last 25 s).
const ROUTER_ASKS_WITHIN: Duration = Duration::from_secs(60);
/// The most directory entries counted for the data directory's size.
const MAX_ENTRIES: usize = 1_000_000;

/// The directory of an embedded (SQLite) database, from its URL.
fn data_dir(database_url: &str) -> Option<PathBuf> {
    let path = database_url.strip_prefix("sqlite://")?.split('?').next()?;
    Path::new(path).parent().map(Path::to_owned)
}

/// Bytes of the files under `dir` (at most [`MAX_ENTRIES`] of them counted).
fn bytes_under(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_owned()];
    let mut seen = 0;
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            seen += 1;
            if seen > MAX_ENTRIES {
                return total;
            }
            match entry.metadata() {
                Ok(meta) if meta.is_dir() => pending.push(entry.path()),
                Ok(meta) => total += meta.len(),
                Err(_) => {}
            }
        }
    }
    total
}

impl Controller {
    /// The platform's state (admins).
    pub async fn platform_status(&self, user: &UserRow) -> Result<PlatformStatus, ApiError> {
        if !user.admin {
            return Err(ApiError::Forbidden("only admins see the platform's status".into()));
        }
        let own = self.readiness().report().await;
        let mut components = vec![ComponentStatus {
            name: "controller".into(),
            url: String::new(),
            ready: own.ready,
            detail: own.text,
            version: Some(crate::VERSION.to_owned()),
        }];
        let others = [
            ("registry", &self.config.registry_url),
            ("logger", &self.config.logger_url),
            ("builder", &self.config.builder_url),
        ];
        for (name, url) in others {
            components.push(self.component(name, url).await);
        }
        components.extend(self.routers());
        let drains = self.logger_request(reqwest::Method::GET, "/v2/drains").timeout(ASK_TIMEOUT).send().await;
        let drain_lines_queued = match drains {
            Ok(answer) => answer.json::<Vec<DrainStatus>>().await.ok().map(|d| d.iter().map(|s| s.queued).sum()),
            Err(_) => None,
        };
        let soonest_certificate = self
            .db
            .soonest_certificate()
            .await?
            .map(|(app, name, expires_at)| CertificateExpiry { app, name, expires_at });
        let data_dir_bytes = match data_dir(&self.config.database_url) {
            Some(dir) => tokio::task::spawn_blocking(move || bytes_under(&dir)).await.ok(),
            None => None,
        };
        Ok(PlatformStatus {
            version: crate::VERSION.to_owned(),
            components,
            webhook_deliveries_pending: self.db.pending_deliveries().await?,
            drain_lines_queued,
            soonest_certificate,
            data_dir_bytes,
        })
    }

    /// The routers that follow this controller's route feed: ready while they keep asking
    /// (a router asks again at least every [`ROUTER_ASKS_WITHIN`]).
    fn routers(&self) -> Vec<ComponentStatus> {
        let current = self.routes.current().version;
        self.routes
            .readers()
            .into_iter()
            .map(|reader| {
                let silent = reader.asked.elapsed();
                let ready = silent <= ROUTER_ASKS_WITHIN;
                let table = if reader.holds == current {
                    format!("route table v{current} (current)")
                } else {
                    format!("route table v{} (current v{current})", reader.holds)
                };
                let detail = if ready {
                    format!("{table}; following the route feed")
                } else {
                    format!("{table}; has not asked for the route feed for {} s", silent.as_secs())
                };
                ComponentStatus {
                    name: "router".into(),
                    url: reader.name,
                    ready,
                    detail,
                    version: Some(reader.version),
                }
            })
            .collect()
    }

    /// Applies image retention and collects the registry's garbage now (admins); a dry
    /// run changes nothing and reports what a collection would delete; `grace` spares
    /// blobs younger than that many seconds.
    pub async fn collect_garbage(
        &self,
        user: &UserRow,
        dry_run: bool,
        grace: Option<u64>,
    ) -> Result<serde_json::Value, ApiError> {
        if !user.admin {
            return Err(ApiError::Forbidden("only admins collect garbage".into()));
        }
        let what =
            if dry_run { "listed what registry garbage collection would delete" } else { "collected registry garbage" };
        let event = crate::events::Event::new(skiff_api::EventKind::Platform, format!("{} {what}", user.username));
        self.events.emit_platform(event.by(&user.username)).await;
        crate::retention::pass(&self.db, &self.registry, self.config.release_retention, dry_run, grace)
            .await
            .map_err(|e| ApiError::Unavailable(format!("garbage collection failed: {e}")))
    }

    /// Asks a component at `url` whether it is ready.
    async fn component(&self, name: &str, url: &str) -> ComponentStatus {
        let asked = self.http.get(format!("{url}/readyz")).timeout(ASK_TIMEOUT).send().await;
        let (ready, detail, version) = match asked {
            Ok(answer) => {
                let version =
                    answer.headers().get(skiff_client::VERSION_HEADER).and_then(|v| v.to_str().ok()).map(str::to_owned);
                let ready = answer.status().is_success();
                (ready, answer.text().await.unwrap_or_default().trim().to_owned(), version)
            }
            Err(error) => (false, format!("does not answer: {error}"), None),
        };
        ComponentStatus { name: name.to_owned(), url: url.to_owned(), ready, detail, version }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_data_directory_is_the_embedded_databases() {
        assert_eq!(data_dir("sqlite:///var/lib/skiff/skiff.db?mode=rwc"), Some(PathBuf::from("/var/lib/skiff")));
        assert_eq!(data_dir("postgres://skiff@db/skiff"), None);
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("repos")).unwrap();
        std::fs::write(dir.path().join("skiff.db"), [0u8; 100]).unwrap();
        std::fs::write(dir.path().join("repos/a"), [0u8; 23]).unwrap();
        assert_eq!(bytes_under(dir.path()), 123);
    }
}
