//! Review apps (Heroku's): with review apps on for a pipeline, a push of a branch other
//! than main to one of its apps (`git push skiff feature-x`) makes the app
//! `<app>-<branch>` and deploys the branch there, and later pushes of the branch update it;
//! deleting the branch (`git push skiff :feature-x`) destroys it, and so does a stretch of
//! days without a push. A review app belongs to its parent app's owner; the parent's
//! collaborators and the pusher may use it. It starts with the pipeline's review config
//! (the pushed `app.json`'s `env` fills in the rest), and its `app.json`'s
//! `scripts.postdeploy` runs once, after its first deploy.

use std::collections::{BTreeMap, HashMap};

use skiff_api::rules::check_config;
use skiff_api::{
    AppName, PushGrant, ReviewApp, ReviewAppGrant, ReviewAppPush, ReviewAppSettings, RunOutput, RunRequest,
};
use tokio::sync::mpsc;

use crate::db::{AppRow, UserRow};
use crate::error::ApiError;
use crate::events::Event;
use crate::state::Controller;
use skiff_api::EventKind;

/// The most days a review app may go without a push.
const MAX_DAYS: u32 = 365;

/// Review apps of the platform's pipelines.
pub struct ReviewApps<'a>(&'a Controller);

impl Controller {
    pub fn review_apps(&self) -> ReviewApps<'_> {
        ReviewApps(self)
    }
}

impl ReviewApps<'_> {
    /// Turns a pipeline's review apps on or off (its owner, or an admin).
    pub async fn configure(
        &self,
        user: &UserRow,
        pipeline: &str,
        settings: &ReviewAppSettings,
    ) -> Result<skiff_api::Pipeline, ApiError> {
        let c = self.0;
        let row = c.pipelines().owned(user, pipeline).await?;
        check_config(&settings.config).map_err(|e| ApiError::BadRequest(format!("review config: {e}")))?;
        if settings.days > MAX_DAYS {
            return Err(ApiError::BadRequest(format!("review apps live at most {MAX_DAYS} days without a push")));
        }
        c.db.set_review_apps(row.id, settings).await?;
        let state = if settings.enabled { "on" } else { "off" };
        let message = format!("{} turned review apps {state} for pipeline {}", user.username, row.name);
        c.events.emit_platform(Event::new(EventKind::Platform, message).by(&user.username)).await;
        c.pipelines().info(user, pipeline).await
    }

    /// A pipeline's review apps (those `user` may see).
    pub async fn list(&self, user: &UserRow, pipeline: &str) -> Result<Vec<ReviewApp>, ApiError> {
        let c = self.0;
        let row = c.pipelines().visible(user, pipeline).await?;
        let apps: HashMap<i64, AppRow> =
            c.db.apps((!user.admin).then_some(user.id)).await?.into_iter().map(|a| (a.id, a)).collect();
        let mut listed = Vec::new();
        for review in c.db.review_apps(Some(row.id)).await? {
            let (Some(app), Some(parent)) = (apps.get(&review.app_id), c.db.app_by_id(review.parent_id).await?) else {
                continue;
            };
            listed.push(ReviewApp {
                app: app.name.clone(),
                parent: parent.name,
                branch: review.branch,
                url: c.config.app_url(app.name.as_str()),
                pushed_at: review.pushed_at,
            });
        }
        Ok(listed)
    }

    /// The review app a push of a branch builds for: made if need be (the builder's).
    pub async fn open(&self, push: &ReviewAppPush) -> Result<ReviewAppGrant, ApiError> {
        let c = self.0;
        let user = c.user_named(&push.username).await?;
        let parent = c.app_for(&user, push.app.as_str()).await?;
        let (pipeline, _) = c.db.coupling(parent.id).await?.ok_or_else(|| {
            ApiError::Conflict(format!(
                "{} is in no pipeline, so a push of {} makes no review app; only main (or master) is built",
                parent.name, push.branch
            ))
        })?;
        if !pipeline.review.enabled {
            return Err(ApiError::Conflict(format!(
                "review apps are off for pipeline {}, so {} is not built (`skiff reviewapps:enable -p {}`)",
                pipeline.name, push.branch, pipeline.name
            )));
        }
        if let Some(review) = c.db.review_app(parent.id, &push.branch).await?
            && let Some(app) = c.db.app_by_id(review.app_id).await?
        {
            c.db.review_app_pushed(app.id).await?;
            return Ok(ReviewAppGrant { grant: self.grant(&app).await?, created: false });
        }
        let name = parent.name.review_app(&push.branch).ok_or_else(|| {
            ApiError::BadRequest(format!("branch `{}` makes no app name: name it with letters or digits", push.branch))
        })?;
        let owner = c.user_named(&parent.owner).await?;
        let app = c.db.create_app(&name, &owner, &parent.stack).await?.ok_or_else(|| {
            ApiError::Conflict(format!(
                "an app named {name} exists already, so branch {} has no review app",
                push.branch
            ))
        })?;
        for collaborator in c.db.perms(parent.id).await?.iter().chain(std::iter::once(&user.username)) {
            if let Some(other) = c.db.user_by_name(collaborator).await?
                && other.id != owner.id
            {
                c.db.add_perm(app.id, other.id).await?;
            }
        }
        let template = pipeline.review.config.clone();
        if !template.is_empty() {
            let fill = |config: &mut BTreeMap<String, String>| config.extend(template);
            c.db.change_config(&app, fill, check_config, None, &user.username, "review config")
                .await?
                .map_err(|e| ApiError::BadRequest(format!("pipeline {}'s review config: {e}", pipeline.name)))?;
        }
        c.db.add_review_app(app.id, parent.id, pipeline.id, &push.branch).await?;
        let message = format!("{} opened review app {name} for branch {}", user.username, push.branch);
        c.events.emit(&parent.name, Event::new(EventKind::App, message.clone()).by(&user.username)).await;
        c.events.emit(&name, Event::new(EventKind::App, message).by(&user.username)).await;
        Ok(ReviewAppGrant { grant: self.grant(&app).await?, created: true })
    }

    /// Destroys the review app of a deleted branch (the builder's); its name, if it had one.
    pub async fn close(&self, push: &ReviewAppPush) -> Result<Option<AppName>, ApiError> {
        let c = self.0;
        let user = c.user_named(&push.username).await?;
        let parent = c.app_for(&user, push.app.as_str()).await?;
        let Some(review) = c.db.review_app(parent.id, &push.branch).await? else { return Ok(None) };
        let Some(app) = c.db.app_by_id(review.app_id).await? else { return Ok(None) };
        let message = format!("{} deleted branch {}: destroying {}", user.username, push.branch, app.name);
        c.events.emit(&parent.name, Event::new(EventKind::App, message).by(&user.username)).await;
        c.apps().destroy(&user, &app).await?;
        Ok(Some(app.name))
    }

    /// Starts a review app's `scripts.postdeploy`, once in its life (the builder's, after
    /// the first deploy); its output, then its exit status, arrive on the receiver.
    pub async fn postdeploy(&self, app: &AppName, command: &str) -> Result<mpsc::Receiver<RunOutput>, ApiError> {
        let c = self.0;
        let app = c.db.app(app).await?.ok_or_else(|| ApiError::NotFound(format!("app `{app}` not found")))?;
        // It runs in a container of the app's release.
        c.current_release(&app).await?;
        if !c.db.claim_postdeploy(app.id).await? {
            return Err(ApiError::Conflict(format!("{}'s postdeploy script ran already", app.name)));
        }
        let owner = c.user_named(&app.owner).await?;
        c.one_offs().run(&owner, &app, &RunRequest { command: command.to_owned(), timeout_secs: None }).await
    }

    /// Destroys the review apps that went longer than their pipeline's days without a push.
    pub async fn expire(&self) -> Result<(), ApiError> {
        let c = self.0;
        let days: HashMap<i64, u32> = c.db.pipelines().await?.into_iter().map(|p| (p.id, p.review.days)).collect();
        let now = time::OffsetDateTime::now_utc();
        for review in c.db.review_apps(None).await? {
            let pushed = time::OffsetDateTime::parse(&review.pushed_at, &time::format_description::well_known::Rfc3339);
            let limit = time::Duration::days(i64::from(days.get(&review.pipeline_id).copied().unwrap_or(MAX_DAYS)));
            if pushed.is_ok_and(|at| now - at < limit) {
                continue;
            }
            let (Some(app), Some(parent)) =
                (c.db.app_by_id(review.app_id).await?, c.db.app_by_id(review.parent_id).await?)
            else {
                continue;
            };
            let owner = c.user_named(&app.owner).await?;
            let message = format!(
                "{} went {} days without a push to {}: destroying it",
                app.name,
                limit.whole_days(),
                review.branch
            );
            c.events.emit(&parent.name, Event::new(EventKind::App, message)).await;
            c.apps().destroy(&owner, &app).await?;
        }
        Ok(())
    }

    /// What a build of `app` needs.
    async fn grant(&self, app: &AppRow) -> Result<PushGrant, ApiError> {
        let c = self.0;
        Ok(PushGrant {
            app: app.name.clone(),
            id: app.id,
            stack: app.stack.clone(),
            url: c.config.app_url(app.name.as_str()),
            config: c.db.config(app).await?,
        })
    }
}

/// Destroys expired review apps every `interval` until `shutdown`.
pub async fn expire_review_apps(
    controller: std::sync::Arc<Controller>,
    interval: std::time::Duration,
    shutdown: tokio_util::sync::CancellationToken,
) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(error) = controller.review_apps().expire().await {
            tracing::warn!(%error, "controller.review_apps: expiry failed; trying again later");
        }
    }
}
