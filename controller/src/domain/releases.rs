//! Releases: a build and a config, numbered per app. Made by a successful build, an image
//! deploy, a config change and a rollback; every one is announced and wakes the scheduler
//! in [`Releases::created`].

use std::collections::BTreeMap;
use std::time::Duration;

use skiff_api::{
    AppJson, BuildCreate, BuildKind, BuildRecorded, BuildStatus, ConfigChange, ConfigChanged, Healthcheck, ProcessType,
    Release, ReleaseState,
};

use skiff_api::rules::{ConfigError, check_config};

use super::formation::{MAX_SCALE, check_healthcheck};
use crate::db::{AppRow, NewRelease, SettingsKind, UserRow};
use crate::error::ApiError;
use crate::events::Event;
use crate::state::Controller;
use skiff_api::EventKind;

/// The longest a read of a pending release waits for it to change.
const LONGEST_RELEASE_WAIT: Duration = Duration::from_secs(10);
/// How often a waiting read of a release reads it again by itself: a change made by
/// another replica wakes no one here.
const RELEASE_LOOK_AGAIN: Duration = Duration::from_millis(25);

/// An app's releases and the config they carry.
pub struct Releases<'a>(&'a Controller);

impl Controller {
    pub fn releases(&self) -> Releases<'_> {
        Releases(self)
    }
}

/// Sets (`Some`) and unsets (`None`) config keys.
fn apply_change(config: &mut BTreeMap<String, String>, change: &ConfigChange) {
    for (name, value) in change {
        match value {
            Some(value) => config.insert(name.clone(), value.clone()),
            None => config.remove(name),
        };
    }
}

/// What a config change says it did: `alice set A, B unset C`.
fn change_summary(user: &UserRow, change: &ConfigChange) -> String {
    let set: Vec<&str> = change.iter().filter(|(_, v)| v.is_some()).map(|(k, _)| k.as_str()).collect();
    let unset: Vec<&str> = change.iter().filter(|(_, v)| v.is_none()).map(|(k, _)| k.as_str()).collect();
    let mut summary = user.username.to_string();
    if !set.is_empty() {
        summary.push_str(&format!(" set {}", set.join(", ")));
    }
    if !unset.is_empty() {
        summary.push_str(&format!(" unset {}", unset.join(", ")));
    }
    summary
}

impl Releases<'_> {
    /// Announces a new release (of `kind`: `Config` for a config change, `Release`
    /// otherwise) and wakes the scheduler to roll it out.
    pub(super) async fn created(&self, app: &AppRow, release: &Release, kind: EventKind) {
        let message = format!("Release v{} created: {}", release.version, release.summary);
        let data = serde_json::json!({
            "version": release.version,
            "summary": release.summary,
            "image": release.image,
            "git_sha": release.git_sha,
        });
        self.0.announce_change(&app.name, Event::new(kind, message).by(&release.created_by).with(data)).await;
    }

    /// The app's releases, newest first; `limit` keeps the newest N only.
    pub async fn list(&self, app: &AppRow, limit: Option<u32>) -> Result<Vec<Release>, ApiError> {
        Ok(self.0.db.releases(app, limit).await?)
    }

    /// One release by number.
    pub async fn get(&self, app: &AppRow, version: u32) -> Result<Option<Release>, ApiError> {
        Ok(self.0.db.release(app, version).await?)
    }

    /// One release of an app: while it is pending, as soon as it changes (its state, or its
    /// release phase's output) or after `wait` (at most [`LONGEST_RELEASE_WAIT`]),
    /// whichever comes first; at once otherwise.
    pub async fn get_once_changed(
        &self,
        app: &AppRow,
        version: u32,
        wait: Duration,
    ) -> Result<Option<Release>, ApiError> {
        // Subscribed before the first read, so that no change after it goes unseen.
        let mut changes = self.0.db.release_changes();
        let Some(first) = self.get(app, version).await? else { return Ok(None) };
        let wait = wait.min(LONGEST_RELEASE_WAIT);
        if first.state != ReleaseState::Pending || wait.is_zero() {
            return Ok(Some(first));
        }
        let deadline = tokio::time::Instant::now() + wait;
        while tokio::time::Instant::now() < deadline {
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(RELEASE_LOOK_AGAIN) => {}
                () = tokio::time::sleep_until(deadline) => {}
            }
            let now = self.get(app, version).await?;
            if now.as_ref() != Some(&first) {
                return Ok(now);
            }
        }
        Ok(Some(first))
    }

    /// Records a build and, when it succeeded, makes it the app's next release.
    pub async fn record_build(&self, app: &AppRow, build: &BuildCreate) -> Result<BuildRecorded, ApiError> {
        let c = self.0;
        let recorded = c.db.create_build(app, build).await?;
        let outcome = if build.status == BuildStatus::Succeeded { "succeeded" } else { "failed" };
        let message = format!("Build {} {outcome} for {}", recorded.id, build.username);
        let data = serde_json::json!({ "id": recorded.id, "status": build.status, "git_sha": build.git_sha });
        c.events.emit(&app.name, Event::new(EventKind::Build, message).by(&build.username).with(data)).await;
        let (BuildStatus::Succeeded, Some(image)) = (&build.status, &build.image) else {
            return Ok(BuildRecorded { build: recorded, release: None });
        };
        let what = match &build.git_sha {
            Some(sha) => sha.get(..7).unwrap_or(sha).to_owned(),
            None => image.clone(),
        };
        let summary = format!("{} deployed {what}", build.username);
        if let Some(manifest) = &build.app_json {
            self.apply_app_json(app, build, manifest).await?;
        }
        let config = c.db.config(app).await?;
        let new = NewRelease {
            image,
            build: Some(recorded.id),
            git_sha: build.git_sha.as_deref(),
            procfile: &build.procfile,
            config: &config,
            created_by: &build.username,
            summary: &summary,
        };
        let release = c.db.create_release(app, &new).await?;
        self.created(app, &release, EventKind::Release).await;
        Ok(BuildRecorded { build: recorded, release: Some(release) })
    }

    /// Applies a pushed `app.json` before its build's release is made: values for the config
    /// keys the app lacks (a generated secret is made once), the scale of process types
    /// never scaled, and readiness checks.
    async fn apply_app_json(&self, app: &AppRow, build: &BuildCreate, manifest: &AppJson) -> Result<(), ApiError> {
        let c = self.0;
        let mut applied = Vec::new();
        // Checked first: a schedule that does not read refuses the push before anything changes.
        let cron = c.cron().app_json_jobs(&manifest.cron)?;
        let secret = || format!("{:032x}{:032x}", rand::random::<u128>(), rand::random::<u128>());
        let defaults = manifest.defaults(&c.db.config(app).await?, secret);
        if !defaults.is_empty() {
            let fill = |config: &mut BTreeMap<String, String>| {
                for (key, value) in &defaults {
                    config.entry(key.clone()).or_insert_with(|| value.clone());
                }
            };
            c.db.change_config(app, fill, check_config, None, &build.username, "app.json")
                .await?
                .map_err(|e| ApiError::BadRequest(format!("app.json's env: {e}")))?;
            applied.push(format!("set {}", defaults.keys().cloned().collect::<Vec<_>>().join(", ")));
        }
        let scaled = c.db.formation(app.id).await?;
        for (process, entry) in &manifest.formation {
            if build.procfile.contains_key(process) && !scaled.iter().any(|row| &row.process == process) {
                c.db.scale(app, process, entry.quantity.min(MAX_SCALE)).await?;
                applied.push(format!("{process}={}", entry.quantity.min(MAX_SCALE)));
            }
        }
        let checks: BTreeMap<ProcessType, Healthcheck> = manifest
            .readiness_checks()
            .into_iter()
            .filter(|(process, _)| build.procfile.contains_key(process))
            .collect();
        if !checks.is_empty() {
            checks.values().try_for_each(check_healthcheck)?;
            let mut settings: BTreeMap<ProcessType, Healthcheck> =
                c.db.settings(app.id, SettingsKind::Healthchecks).await?;
            let of: Vec<&str> = checks.keys().map(|p| p.as_str()).collect();
            applied.push(format!("health checks of {}", of.join(", ")));
            settings.extend(checks);
            c.db.set_settings(app.id, SettingsKind::Healthchecks, &settings).await?;
        }
        let replaced = c.db.replace_app_json_cron(app, &cron).await?;
        if replaced > 0 || !cron.is_empty() {
            let schedules: Vec<String> =
                cron.iter().map(|job| format!("`{}` at `{}`", job.command, job.schedule)).collect();
            applied
                .push(format!("cron: {}", if schedules.is_empty() { "none".to_owned() } else { schedules.join(", ") }));
        }
        if !applied.is_empty() {
            let message = format!("app.json applied: {}", applied.join("; "));
            c.events.emit(&app.name, Event::new(EventKind::Config, message).by(&build.username)).await;
        }
        Ok(())
    }

    /// Deploys an existing image (`skiff deploy IMAGE`) as a build of its own with one
    /// `web` process running the image's own command.
    pub async fn deploy_image(&self, user: &UserRow, app: &AppRow, image: &str) -> Result<BuildRecorded, ApiError> {
        let image = self.0.usable_image(user, image).await?.to_string();
        let build = BuildCreate {
            app: app.name.clone(),
            username: user.username.clone(),
            kind: BuildKind::Image,
            status: BuildStatus::Succeeded,
            image: Some(image),
            git_sha: None,
            procfile: [(ProcessType::web(), String::new())].into(),
            duration_ms: 0,
            log: String::new(),
            app_json: None,
            message: None,
        };
        self.record_build(app, &build).await
    }

    /// Sets and unsets config keys at once; with a release to base it on, the change
    /// makes a new release (the same build with the new config).
    pub async fn change_config(
        &self,
        user: &UserRow,
        app: &AppRow,
        change: &ConfigChange,
    ) -> Result<ConfigChanged, ApiError> {
        let c = self.0;
        if change.is_empty() {
            return Err(ApiError::BadRequest("no config keys given; use `skiff config:set KEY=VALUE`".into()));
        }
        let summary = change_summary(user, change);
        let base = c.running_release(app).await?;
        let (config, release) =
            c.db.change_config(
                app,
                |config| apply_change(config, change),
                check_config,
                base.as_ref(),
                &user.username,
                &summary,
            )
            .await?
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        match &release {
            Some(release) => self.created(app, release, EventKind::Config).await,
            None => c.events.emit(&app.name, Event::new(EventKind::Config, summary).by(&user.username)).await,
        }
        Ok(ConfigChanged { config, release })
    }

    /// A new release with an earlier release's build and config: `version`, or the
    /// newest good one before the current.
    pub async fn rollback(&self, user: &UserRow, app: &AppRow, version: Option<u32>) -> Result<Release, ApiError> {
        let c = self.0;
        let releases = c.db.releases(app, None).await?;
        let current = c.running_release(app).await?.map_or(0, |r| r.version);
        if version == Some(current) {
            return Err(ApiError::Conflict(format!(
                "v{current} is already the current release of {}; name an earlier one (see `skiff releases`)",
                app.name
            )));
        }
        // Releases are listed newest first.
        let target = releases
            .iter()
            .filter(|r| r.version != current && r.state != ReleaseState::Failed)
            .find(|r| version.map_or(r.version < current, |v| r.version == v))
            .ok_or_else(|| {
                let which = version.map_or_else(|| "an earlier release".to_owned(), |v| format!("release v{v}"));
                ApiError::NotFound(format!("{} has no {which} to roll back to; see `skiff releases`", app.name))
            })?;
        let summary = format!("{} rolled back to v{}", user.username, target.version);
        // The config and the release change together, as for a config change.
        let (_, release) =
            c.db.change_config(
                app,
                |config| config.clone_from(&target.config),
                |_| Ok::<(), ConfigError>(()),
                Some(target),
                &user.username,
                &summary,
            )
            .await?
            .map_err(|e| ApiError::BadRequest(e.to_string()))?;
        let release = release.ok_or_else(|| ApiError::Internal("a rollback made no release".into()))?;
        self.created(app, &release, EventKind::Release).await;
        Ok(release)
    }
}
