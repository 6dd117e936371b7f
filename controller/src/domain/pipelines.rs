//! Pipelines (Heroku's): apps in stages, development → staging → production, and the
//! promotion of an app's build to the apps of the next stage: the same image, by digest,
//! with each target app's own config; nothing is built again.
//!
//! Who may do what: anyone signed in makes pipelines; a pipeline is seen by its owner, by
//! admins and by whoever may see one of its apps (who then sees those apps only); its owner
//! (or an admin) puts apps in it, which they must be able to see, and destroys it; whoever
//! may see an app takes it out of its pipeline, and promotes its build to apps they may
//! deploy to.

use skiff_api::{
    AppName, CanaryTrial, Digest, Pipeline, PipelineApp, PipelineName, Promotion, Release, ReleaseState, Stage,
};
use skiff_registry_client::RegistryError;

use crate::db::{AppRow, NewRelease, PipelineRow, UserRow};
use crate::error::ApiError;
use crate::events::Event;
use crate::state::Controller;
use skiff_api::EventKind;

/// The platform's pipelines.
pub struct Pipelines<'a>(&'a Controller);

impl Controller {
    pub fn pipelines(&self) -> Pipelines<'_> {
        Pipelines(self)
    }
}

impl Pipelines<'_> {
    /// Makes a pipeline owned by `user`.
    pub async fn create(&self, user: &UserRow, name: &PipelineName) -> Result<Pipeline, ApiError> {
        let c = self.0;
        let row = c.db.create_pipeline(name, user).await?.ok_or_else(|| {
            ApiError::Conflict(format!("a pipeline named `{name}` exists already; pick another name"))
        })?;
        let message = format!("{} created pipeline {name}", user.username);
        c.events.emit_platform(Event::new(EventKind::Platform, message).by(&user.username)).await;
        self.view(row, Vec::new()).await
    }

    /// The pipelines `user` may see.
    pub async fn list(&self, user: &UserRow) -> Result<Vec<Pipeline>, ApiError> {
        let apps = self.apps_of(user).await?;
        let mut seen = Vec::new();
        for row in self.0.db.pipelines().await? {
            let members = self.members_seen(&row, &apps).await?;
            if may_see(user, &row, &members) {
                seen.push(self.view(row, members).await?);
            }
        }
        Ok(seen)
    }

    /// One pipeline, when `user` may see it.
    pub async fn info(&self, user: &UserRow, name: &str) -> Result<Pipeline, ApiError> {
        let (row, members) = self.visible_with_members(user, name).await?;
        self.view(row, members).await
    }

    /// Destroys a pipeline (its owner or an admin); its apps stay.
    pub async fn destroy(&self, user: &UserRow, name: &str) -> Result<(), ApiError> {
        let row = self.owned(user, name).await?;
        self.0.db.delete_pipeline(row.id).await?;
        let message = format!("{} destroyed pipeline {}", user.username, row.name);
        self.0.events.emit_platform(Event::new(EventKind::Platform, message).by(&user.username)).await;
        Ok(())
    }

    /// Puts `app` in the pipeline at `stage` (or moves it there within the pipeline).
    pub async fn add(&self, user: &UserRow, name: &str, app: &AppRow, stage: Stage) -> Result<Pipeline, ApiError> {
        let c = self.0;
        let row = self.owned(user, name).await?;
        if let Some((other, _)) = c.db.coupling(app.id).await?
            && other.id != row.id
        {
            return Err(ApiError::Conflict(format!(
                "{} is in pipeline {} already; take it out first with `skiff pipelines:remove -a {}`",
                app.name, other.name, app.name
            )));
        }
        c.db.couple(row.id, app.id, stage).await?;
        let message = format!("{} put {} in pipeline {} ({stage})", user.username, app.name, row.name);
        c.events.emit(&app.name, Event::new(EventKind::App, message).by(&user.username)).await;
        let members = self.members_seen(&row, &self.apps_of(user).await?).await?;
        self.view(row, members).await
    }

    /// Takes `app` out of its pipeline.
    pub async fn remove(&self, user: &UserRow, app: &AppRow) -> Result<(), ApiError> {
        let c = self.0;
        let Some((row, _)) = c.db.coupling(app.id).await? else {
            return Err(ApiError::NotFound(format!("{} is in no pipeline", app.name)));
        };
        c.db.uncouple(app.id).await?;
        let message = format!("{} took {} out of pipeline {}", user.username, app.name, row.name);
        c.events.emit(&app.name, Event::new(EventKind::App, message).by(&user.username)).await;
        Ok(())
    }

    /// Promotes `app`'s current build to the apps of the next stage of its pipeline, or to
    /// `promotion.to` (apps of the same pipeline): each gets a new release running the same
    /// image with its own config.
    pub async fn promote(&self, user: &UserRow, app: &AppRow, promotion: &Promotion) -> Result<Vec<Release>, ApiError> {
        let c = self.0;
        let Some((row, stage)) = c.db.coupling(app.id).await? else {
            return Err(ApiError::Conflict(format!(
                "{} is in no pipeline; add it with `skiff pipelines:add PIPELINE -a {}`",
                app.name, app.name
            )));
        };
        let members = c.db.pipeline_apps(row.id).await?;
        let mut targets = Vec::new();
        for target in &promotion.to {
            let target = c.app_for(user, target.as_str()).await?;
            if target.id == app.id || !members.iter().any(|(id, _)| *id == target.id) {
                return Err(ApiError::BadRequest(format!(
                    "{} is not another app of pipeline {}; see `skiff pipelines:info {}`",
                    target.name, row.name, row.name
                )));
            }
            targets.push(target);
        }
        if promotion.to.is_empty() {
            let next = stage.next().ok_or_else(|| {
                ApiError::BadRequest(format!("{} is in production, the last stage; name apps with --to", app.name))
            })?;
            for (id, _) in members.iter().filter(|(_, s)| *s == next) {
                let Some(target) = c.db.app_by_id(*id).await? else { continue };
                targets.push(c.app_for(user, target.name.as_str()).await?);
            }
            if targets.is_empty() {
                return Err(ApiError::BadRequest(format!("pipeline {} has no app in {next}", row.name)));
            }
        }
        for target in &targets {
            if target.stack != app.stack {
                return Err(ApiError::BadRequest(format!(
                    "cannot promote to {}: it builds on stack {}, and {}'s build was made on {}",
                    target.name, target.stack, app.name, app.stack
                )));
            }
        }
        let source = c.db.running_release(app).await?.filter(|r| r.state == ReleaseState::Deployed);
        let source = source.ok_or_else(|| {
            ApiError::Conflict(format!("{} runs no release to promote yet; deploy one first", app.name))
        })?;
        if let Some(trial) = &promotion.canary {
            super::canaries::check_trial(trial)?;
        }
        let mut made = Vec::new();
        for target in &targets {
            made.push(self.release_on(user, app, &source, target, promotion.canary.as_ref()).await?);
        }
        Ok(made)
    }

    /// A new release of `target` running `source`'s image, with `target`'s config; on
    /// trial beside `target`'s current release with a `canary`.
    async fn release_on(
        &self,
        user: &UserRow,
        app: &AppRow,
        source: &Release,
        target: &AppRow,
        canary: Option<&CanaryTrial>,
    ) -> Result<Release, ApiError> {
        let c = self.0;
        let image = self.promoted_image(&app.name, &target.name, &source.image).await?;
        let config = c.db.config(target).await?;
        let commit =
            source.git_sha.as_deref().map(|sha| format!(" ({})", sha.get(..7).unwrap_or(sha))).unwrap_or_default();
        let summary = format!("{} promoted v{} of {}{commit}", user.username, source.version, app.name);
        let new = NewRelease {
            image: &image,
            build: None,
            git_sha: source.git_sha.as_deref(),
            procfile: &source.procfile,
            config: &config,
            created_by: &user.username,
            summary: &summary,
        };
        if let Some(trial) = canary {
            return Ok(c.canaries().start_with(target, &new, trial).await?.0);
        }
        let release = c.db.create_release(target, &new).await?;
        c.releases().created(target, &release, EventKind::Release).await;
        Ok(release)
    }

    /// The image a promoted release of `to` runs: an image of another registry as it is;
    /// one of Skiff's (`from@digest`) put in `to`'s repository under the same digest, its
    /// blobs mounted rather than copied, so that it stays as long as `to`'s releases need it.
    async fn promoted_image(&self, from: &AppName, to: &AppName, image: &str) -> Result<String, ApiError> {
        if image.contains('/') {
            return Ok(image.to_owned());
        }
        let (_, digest) = image
            .split_once('@')
            .ok_or_else(|| ApiError::Internal(format!("{from}'s release names its image without a digest: {image}")))?;
        let registry = &self.0.registry;
        let unavailable = |e: RegistryError| ApiError::Unavailable(format!("cannot copy {image} to {to}: {e}"));
        // Children of an index first: the registry takes a manifest only once it has what
        // it refers to.
        let mut pending = vec![digest.to_owned()];
        let mut ordered = Vec::new();
        while let Some(digest) = pending.pop() {
            let (media_type, bytes) = registry.manifest(from.as_str(), &digest).await.map_err(unavailable)?;
            let document: serde_json::Value = serde_json::from_slice(&bytes)
                .map_err(|e| ApiError::Internal(format!("{from}'s manifest {digest} is not JSON: {e}")))?;
            let referred = |key: &str| -> Vec<String> {
                let items = document[key].as_array().cloned().unwrap_or_default();
                items.iter().filter_map(|item| item["digest"].as_str().map(str::to_owned)).collect()
            };
            for blob in document["config"]["digest"].as_str().map(str::to_owned).into_iter().chain(referred("layers")) {
                let blob: Digest = blob.parse().map_err(|_| ApiError::Internal(format!("a bad digest in {digest}")))?;
                if !registry.mount(to.as_str(), &blob, from.as_str()).await.map_err(unavailable)? {
                    return Err(ApiError::Unavailable(format!("the registry would not lend {blob} of {from} to {to}")));
                }
            }
            pending.extend(referred("manifests"));
            ordered.push((digest, media_type, bytes));
        }
        for (digest, media_type, bytes) in ordered.into_iter().rev() {
            registry.put_manifest(to.as_str(), &digest, &media_type, bytes).await.map_err(unavailable)?;
        }
        Ok(format!("{to}@{digest}"))
    }

    /// The pipeline named `name`, when `user` may see it.
    pub(super) async fn visible(&self, user: &UserRow, name: &str) -> Result<PipelineRow, ApiError> {
        Ok(self.visible_with_members(user, name).await?.0)
    }

    /// The pipeline named `name`, when `user` may see it, with the apps of it they see.
    async fn visible_with_members(
        &self,
        user: &UserRow,
        name: &str,
    ) -> Result<(PipelineRow, Vec<(AppRow, Stage)>), ApiError> {
        let not_found = || ApiError::NotFound(format!("pipeline `{name}` not found; see `skiff pipelines`"));
        let name: PipelineName = name.parse().map_err(|_| not_found())?;
        let row = self.0.db.pipeline(&name).await?.ok_or_else(not_found)?;
        let members = self.members_seen(&row, &self.apps_of(user).await?).await?;
        if may_see(user, &row, &members) { Ok((row, members)) } else { Err(not_found()) }
    }

    /// The apps `user` may see.
    async fn apps_of(&self, user: &UserRow) -> Result<Vec<AppRow>, ApiError> {
        Ok(self.0.db.apps((!user.admin).then_some(user.id)).await?)
    }

    /// The apps of the pipeline among `apps`, with their stages.
    async fn members_seen(&self, row: &PipelineRow, apps: &[AppRow]) -> Result<Vec<(AppRow, Stage)>, ApiError> {
        let members = self.0.db.pipeline_apps(row.id).await?;
        Ok(apps.iter().filter_map(|app| Some((app.clone(), members.iter().find(|(id, _)| *id == app.id)?.1))).collect())
    }

    /// The pipeline named `name`, when `user` may change it: its owner, or an admin.
    pub(super) async fn owned(&self, user: &UserRow, name: &str) -> Result<PipelineRow, ApiError> {
        let row = self.visible(user, name).await?;
        if user.admin || row.owner_id == user.id {
            Ok(row)
        } else {
            Err(ApiError::Forbidden(format!("only the owner of pipeline `{}` ({}) may do that", row.name, row.owner)))
        }
    }

    /// A pipeline with `members` (the apps of it the caller sees) and the release each
    /// runs, by stage then name.
    async fn view(&self, row: PipelineRow, members: Vec<(AppRow, Stage)>) -> Result<Pipeline, ApiError> {
        let mut apps = Vec::new();
        for (app, stage) in members {
            let release = self.0.db.running_release(&app).await?;
            apps.push(PipelineApp {
                app: app.name,
                stage,
                release: release.as_ref().map(|r| r.version),
                image: release.map(|r| r.image),
            });
        }
        apps.sort_by(|a, b| (a.stage, &a.app).cmp(&(b.stage, &b.app)));
        Ok(Pipeline { name: row.name, owner: row.owner, created_at: row.created_at, apps, review_apps: row.review })
    }
}

/// Whether `user` sees a pipeline: its owner and admins do, and whoever sees one of its
/// apps (`members`: those they see).
fn may_see(user: &UserRow, row: &PipelineRow, members: &[(AppRow, Stage)]) -> bool {
    user.admin || row.owner_id == user.id || !members.is_empty()
}
