//! Log drains: where an app's log lines (or, for admins, every app's) are also sent. The
//! logger delivers; the controller keeps the list, guards where app drains may point,
//! and has the logger read a change at once.

use std::time::Duration;

use skiff_api::{Drain, DrainCreate, DrainStatus, DrainTarget};

use crate::db::{AppRow, UserRow};
use crate::error::ApiError;
use crate::events::Event;
use crate::state::Controller;
use skiff_api::EventKind;

/// How long a listing waits for the logger's delivery counts.
const STATUS_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a change waits for the logger to apply it.
const SYNC_TIMEOUT: Duration = Duration::from_secs(6);

/// Log drains of one app (`Some`) or of the platform (`None`).
pub struct Drains<'a>(&'a Controller);

impl Controller {
    pub fn drains(&self) -> Drains<'_> {
        Drains(self)
    }
}

/// The drains with the logger's counts; without them when the logger does not answer.
async fn with_status(c: &Controller, mut drains: Vec<Drain>) -> Vec<Drain> {
    let status: Vec<DrainStatus> =
        match c.logger_request(reqwest::Method::GET, "/v2/drains").timeout(STATUS_TIMEOUT).send().await {
            Ok(response) => response.json().await.unwrap_or_default(),
            Err(error) => {
                tracing::warn!(%error, "controller.drains: the logger did not report deliveries");
                Vec::new()
            }
        };
    for drain in &mut drains {
        drain.status = status.iter().find(|s| s.id == drain.id).cloned();
    }
    drains
}

/// Has the logger read the drains now, so that a new drain gets every line taken in
/// after its request is answered. A logger that does not answer picks the change up on
/// its next read (within seconds).
async fn sync_logger(c: &Controller) {
    let sync = c.logger_request(reqwest::Method::POST, "/v2/drains/sync");
    let synced = sync.timeout(SYNC_TIMEOUT).send().await.map(|r| r.status());
    if !matches!(synced, Ok(status) if status.is_success()) {
        tracing::warn!(?synced, "controller.drains: the logger did not confirm the change; it reads it within seconds");
    }
}

impl Drains<'_> {
    /// The drains of an app (`Some`) or of the platform (`None`), their URLs' secrets
    /// masked, with the logger's delivery counts.
    pub async fn list(&self, app: Option<&AppRow>) -> Result<Vec<Drain>, ApiError> {
        let c = self.0;
        let mut drains = c.db.drains(app).await?;
        for drain in &mut drains {
            drain.url = skiff_api::drain::masked_url(&drain.url);
        }
        Ok(with_status(c, drains).await)
    }

    /// Every drain as stored, for the logger.
    pub async fn all(&self) -> Result<Vec<Drain>, ApiError> {
        Ok(self.0.db.all_drains().await?)
    }

    /// Adds a drain. An app's drain must not reach the platform or the networks around
    /// it; platform drains, set by admins, may point anywhere. The logger checks again at
    /// every connect.
    pub async fn add(&self, user: &UserRow, app: Option<&AppRow>, body: &DrainCreate) -> Result<Drain, ApiError> {
        let c = self.0;
        let url = body.url.trim();
        let target = DrainTarget::parse(url).map_err(|e| ApiError::BadRequest(e.to_string()))?;
        if app.is_some() {
            c.check_outbound("drains", &target.host, target.port).await?;
        }
        let drain =
            c.db.add_drain(app, url)
                .await?
                .ok_or_else(|| ApiError::Conflict(format!("{url} is a drain already; see `skiff drains`")))?;
        sync_logger(c).await;
        match app {
            Some(app) => {
                let message = format!("{} added drain {}", user.username, drain.id);
                c.events.emit(&app.name, Event::new(EventKind::Config, message).by(&user.username)).await;
            }
            None => {
                let message = format!("{} added platform drain {}", user.username, drain.id);
                c.events.emit_platform(Event::new(EventKind::Platform, message).by(&user.username)).await;
            }
        }
        Ok(Drain { url: skiff_api::drain::masked_url(&drain.url), ..drain })
    }

    /// Removes a drain by its id.
    pub async fn remove(&self, user: &UserRow, app: Option<&AppRow>, id: &str) -> Result<(), ApiError> {
        let c = self.0;
        let missing = || ApiError::NotFound(format!("no drain {id} here; see `skiff drains`"));
        let id: i64 = id.parse().map_err(|_| missing())?;
        if !c.db.remove_drain(app, id).await? {
            return Err(missing());
        }
        sync_logger(c).await;
        match app {
            Some(app) => {
                let message = format!("{} removed drain {id}", user.username);
                c.events.emit(&app.name, Event::new(EventKind::Config, message).by(&user.username)).await;
            }
            None => {
                let message = format!("{} removed platform drain {id}", user.username);
                c.events.emit_platform(Event::new(EventKind::Platform, message).by(&user.username)).await;
            }
        }
        Ok(())
    }
}
