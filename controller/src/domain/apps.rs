//! Apps: creating and destroying them, who owns them and who collaborates on them, and
//! maintenance mode.

use std::collections::BTreeMap;

use skiff_api::{AccessPolicy, App, AppCreate, AppName, BuildKind, Limits, ProcessType, Username};

use crate::db::{AppRow, SettingsKind, UserRow};
use crate::error::ApiError;
use crate::events::Event;
use crate::state::Controller;
use skiff_api::EventKind;

/// Apps and their sharing.
pub struct Apps<'a>(&'a Controller);

impl Controller {
    pub fn apps(&self) -> Apps<'_> {
        Apps(self)
    }
}

/// A memorable name for an app made without one (`brisk-harbor-0421`).
fn random_app_name() -> AppName {
    const FIRST: &[&str] = &["brisk", "calm", "dusky", "eager", "fancy", "gentle", "hidden", "lucky", "quiet", "sunny"];
    const SECOND: &[&str] = &["harbor", "island", "lagoon", "mast", "oar", "reef", "sail", "tide", "wave", "wharf"];
    let n = rand::random::<u32>();
    let name = format!(
        "{}-{}-{:04}",
        FIRST[n as usize % FIRST.len()],
        SECOND[(n / 16) as usize % SECOND.len()],
        (n / 256) % 10_000
    );
    name.parse().expect("generated names are valid")
}

impl Apps<'_> {
    /// The apps `user` may see: their own and those shared with them (every app for an admin).
    pub async fn list(&self, user: &UserRow) -> Result<Vec<App>, ApiError> {
        let c = self.0;
        let rows = c.db.apps((!user.admin).then_some(user.id)).await?;
        let mut apps = Vec::with_capacity(rows.len());
        for row in &rows {
            apps.push(c.app_view(row).await?);
        }
        Ok(apps)
    }

    /// Creates an app owned by `user`, on the stack named (or the platform's default).
    pub async fn create(&self, user: &UserRow, body: AppCreate) -> Result<App, ApiError> {
        let c = self.0;
        let name = body.name.unwrap_or_else(random_app_name);
        // A stack named here must exist; the default one may be imported after the app is
        // made (the first push says so if it still is not there).
        if let Some(stack) = &body.stack
            && !c.db.stacks().await?.iter().any(|(known, _)| known == stack)
        {
            return Err(ApiError::BadRequest(format!("there is no stack `{stack}`; see `skiff stacks`")));
        }
        let stack = body.stack.unwrap_or_else(|| c.config.default_stack.clone());
        let app =
            c.db.create_app(&name, user, &stack)
                .await?
                .ok_or_else(|| ApiError::Conflict(format!("app `{name}` already exists; choose another name")))?;
        let message = format!("{} created the app on stack {stack}", user.username);
        c.announce_change(&app.name, Event::new(EventKind::App, message).by(&user.username)).await;
        // Its first push is likely to come soon.
        if let Err(error) = self.warm(&app).await {
            tracing::info!(app = %app.name, %error, "controller.warm.failed");
        }
        c.app_view(&app).await
    }

    /// Starts the web container of the app's next release ahead, where the engine can
    /// (`scheduler::docker::warm`): not for an app whose last build was a Dockerfile's
    /// (its image is not its stack's) or that runs no web container. The container is made
    /// in a task of its own; whether one is being made.
    pub async fn warm(&self, app: &AppRow) -> Result<bool, ApiError> {
        let c = self.0;
        let last_build = c.db.builds(app, Some(1)).await?;
        let web = c.db.formation(app.id).await?.into_iter().find(|f| ProcessType::is_web(f.process.as_str()));
        // As the scheduler reads the formation: a type never scaled runs its default quantity.
        let (quantity, generation) = web.map_or_else(
            || (crate::scheduler::plan::default_quantity(ProcessType::web().as_str()), 0),
            |f| (f.quantity, f.generation),
        );
        if quantity == 0 || last_build.first().is_some_and(|b| b.kind == BuildKind::Dockerfile) {
            return Ok(false);
        }
        let release = c.db.releases(app, Some(1)).await?.first().map_or(1, |r| r.version + 1);
        let limits: BTreeMap<ProcessType, Limits> = c.db.settings(app.id, SettingsKind::Limits).await?;
        let spec = crate::scheduler::StartSpec {
            app: app.name.clone(),
            app_id: app.id,
            release,
            generation,
            process: ProcessType::web().to_string(),
            image: format!("{}/stacks/{}:latest", c.config.registry_host, app.stack),
            command: String::new(),
            env: Vec::new(),
            limits: c.config.container_limits(limits.get(&ProcessType::web()).copied().unwrap_or_default()),
        };
        let runtime = c.runtime.clone();
        tokio::spawn(async move {
            if let Err(error) = runtime.warm(&spec).await {
                tracing::info!(app = %spec.app, %error, "controller.warm.failed");
            }
        });
        Ok(true)
    }

    /// Destroys an app: its containers go, its trail is retired, and its images go at the
    /// registry's next collection.
    pub async fn destroy(&self, user: &UserRow, app: &AppRow) -> Result<(), ApiError> {
        let c = self.0;
        c.db.delete_app(app.id).await?;
        c.events
            .emit(
                &app.name,
                Event::new(EventKind::App, format!("{} destroyed the app", user.username)).by(&user.username),
            )
            .await;
        // The trail stays, platform-wide; an app made later with this name starts afresh.
        c.db.retire_events(&app.name).await?;
        if let Err(error) = c.registry.forget(app.name.as_str()).await {
            tracing::warn!(%error, app = %app.name, "controller.destroy: the registry kept the repository");
        }
        if let Err(error) = c.runtime.unwarm(&app.name).await {
            tracing::warn!(%error, app = %app.name, "controller.destroy: a warm container stayed");
        }
        self.remove_containers(&app.name).await;
        c.coordination.changed().await;
        Ok(())
    }

    /// Stops and removes every container of a destroyed app, all at once, before the
    /// destroy returns: the logger files their lines under the app's name, so none may
    /// still run when an app of the same name is made. One the engine keeps is logged;
    /// the scheduler, which tells it from the new app's by its app id, removes it.
    async fn remove_containers(&self, app: &AppName) {
        let runtime = &self.0.runtime;
        let containers = match runtime.list().await {
            Ok(containers) => containers,
            Err(error) => {
                tracing::warn!(%error, %app, "controller.destroy: the containers could not be listed");
                return;
            }
        };
        let removals = containers.iter().filter(|container| &container.app == app).map(|container| async move {
            if let Err(error) = runtime.remove(&container.id).await {
                tracing::warn!(%error, %app, container = %container.id, "controller.destroy: a container stayed");
            }
        });
        futures_util::future::join_all(removals).await;
    }

    /// Gives the app to another user.
    pub async fn transfer(&self, user: &UserRow, app: &AppRow, to: &Username) -> Result<App, ApiError> {
        let c = self.0;
        let other = c.user_named(to).await?;
        c.db.transfer(app.id, other.id).await?;
        let message = format!("{} transferred the app to {}", user.username, other.username);
        c.events.emit(&app.name, Event::new(EventKind::App, message).by(&user.username)).await;
        self.reread(app).await
    }

    /// Turns maintenance mode (the router answers 503 for the app) on or off.
    pub async fn set_maintenance(&self, user: &UserRow, app: &AppRow, enabled: bool) -> Result<App, ApiError> {
        let c = self.0;
        c.db.set_maintenance(app.id, enabled).await?;
        let state = if enabled { "on" } else { "off" };
        let message = format!("{} turned maintenance mode {state}", user.username);
        c.announce_change(&app.name, Event::new(EventKind::Config, message).by(&user.username)).await;
        self.reread(app).await
    }

    async fn reread(&self, app: &AppRow) -> Result<App, ApiError> {
        let c = self.0;
        let app = c.db.app(&app.name).await?.ok_or_else(|| ApiError::Internal(format!("{} vanished", app.name)))?;
        c.app_view(&app).await
    }

    /// The users an app is shared with.
    pub async fn collaborators(&self, app: &AppRow) -> Result<Vec<Username>, ApiError> {
        Ok(self.0.db.perms(app.id).await?)
    }

    /// Shares the app with another user.
    pub async fn add_collaborator(&self, user: &UserRow, app: &AppRow, other: &Username) -> Result<(), ApiError> {
        let c = self.0;
        let other = c.user_named(other).await?;
        if other.id == app.owner_id {
            return Err(ApiError::Conflict(format!("{} owns {}", other.username, app.name)));
        }
        if !c.db.add_perm(app.id, other.id).await? {
            return Err(ApiError::Conflict(format!("{} already collaborates on {}", other.username, app.name)));
        }
        let message = format!("{} added {} as a collaborator", user.username, other.username);
        c.events.emit(&app.name, Event::new(EventKind::App, message).by(&user.username)).await;
        Ok(())
    }

    /// Stops sharing the app with a user.
    pub async fn remove_collaborator(&self, user: &UserRow, app: &AppRow, other: &Username) -> Result<(), ApiError> {
        let c = self.0;
        let other = c.user_named(other).await?;
        if !c.db.remove_perm(app.id, other.id).await? {
            return Err(ApiError::NotFound(format!("{} does not collaborate on {}", other.username, app.name)));
        }
        let message = format!("{} removed collaborator {}", user.username, other.username);
        c.events.emit(&app.name, Event::new(EventKind::App, message).by(&user.username)).await;
        Ok(())
    }

    /// Sets what the router lets through to the app.
    pub async fn set_access(&self, user: &UserRow, app: &AppRow, policy: &AccessPolicy) -> Result<(), ApiError> {
        let c = self.0;
        policy.check().map_err(|e| ApiError::BadRequest(e.to_string()))?;
        c.db.set_access(app.id, policy).await?;
        let body =
            policy.max_body_bytes.map_or_else(|| "no body limit".to_owned(), |b| format!("bodies up to {b} bytes"));
        let allow = if policy.allow.is_empty() { "everyone".to_owned() } else { policy.allow.join(", ") };
        let deny = if policy.deny.is_empty() { String::new() } else { format!(" but {}", policy.deny.join(", ")) };
        let message = format!("{} set access: {allow}{deny}, {body}", user.username);
        c.announce_change(&app.name, Event::new(EventKind::Config, message).by(&user.username)).await;
        Ok(())
    }
}
