//! What runs of an app: how many containers of each process type, their limits and
//! health checks, restarts, and the processes as they are.

use std::collections::BTreeMap;

use serde::Serialize;
use serde::de::DeserializeOwned;
use skiff_api::{Formation as Scaled, Healthcheck, Limits, Process, ProcessType, Restart, Scale, SettingsChange};

use crate::db::{AppRow, SettingsKind, UserRow};
use crate::error::ApiError;
use crate::events::Event;
use crate::scheduler::plan::default_quantity;
use crate::state::Controller;
use skiff_api::EventKind;

/// The most containers one process type may run.
pub(crate) const MAX_SCALE: u32 = 100;

/// An app's process types and their containers.
pub struct Formation<'a>(&'a Controller);

impl Controller {
    pub fn formation(&self) -> Formation<'_> {
        Formation(self)
    }
}

impl Formation<'_> {
    /// Each process type of the running release, with its scale and command.
    pub async fn of(&self, app: &AppRow) -> Result<Vec<Scaled>, ApiError> {
        let c = self.0;
        let rows = c.db.formation(app.id).await?;
        let procfile = match c.running_release(app).await? {
            Some(release) => release.procfile,
            None => Default::default(),
        };
        Ok(procfile
            .into_iter()
            .filter(|(process, _)| !ProcessType::is_release(process.as_str()))
            .map(|(process, command)| {
                let quantity = rows
                    .iter()
                    .find(|r| r.process == process)
                    .map_or_else(|| default_quantity(process.as_str()), |r| r.quantity);
                Scaled { process, quantity, command }
            })
            .collect())
    }

    /// Sets how many containers of each named process type run.
    pub async fn scale(&self, user: &UserRow, app: &AppRow, scale: &Scale) -> Result<Vec<Scaled>, ApiError> {
        let c = self.0;
        let release = c.current_release(app).await?;
        for (process, quantity) in scale {
            if !release.procfile.contains_key(process) {
                let known: Vec<&str> = release.procfile.keys().map(|p| p.as_str()).collect();
                return Err(ApiError::BadRequest(format!(
                    "v{} has no `{process}` process type; it has: {}",
                    release.version,
                    known.join(", ")
                )));
            }
            if ProcessType::is_release(process.as_str()) {
                return Err(ApiError::BadRequest(
                    "`release` runs once for each new release, before it gets traffic; it is not scaled".into(),
                ));
            }
            if *quantity > MAX_SCALE {
                return Err(ApiError::BadRequest(format!("at most {MAX_SCALE} containers per process type")));
            }
        }
        for (process, quantity) in scale {
            c.db.scale(app, process, *quantity).await?;
        }
        let scaled: Vec<String> = scale.iter().map(|(p, q)| format!("{p}={q}")).collect();
        let message = format!("Scaled to {} by {}", scaled.join(" "), user.username);
        let formation: serde_json::Map<String, serde_json::Value> =
            scale.iter().map(|(p, q)| (p.to_string(), serde_json::Value::from(*q))).collect();
        let event = Event::new(EventKind::Scale, message)
            .by(&user.username)
            .with(serde_json::json!({ "formation": formation }));
        c.announce_change(&app.name, event).await;
        self.of(app).await
    }

    /// The app's containers, and the process types that crash and back off (which have
    /// no container most of the time) with their last crash.
    pub async fn processes(&self, app: &AppRow) -> Result<Vec<Process>, ApiError> {
        let c = self.0;
        let containers =
            c.runtime.list().await.map_err(|e| ApiError::Unavailable(format!("cannot list containers: {e}")))?;
        let nodes = match containers.iter().any(|container| container.node.is_some()) {
            true => c.runtime.nodes().await.map_err(|e| ApiError::Unavailable(format!("cannot list nodes: {e}")))?,
            false => Vec::new(),
        };
        let mut processes: Vec<Process> = containers
            .into_iter()
            .filter(|container| container.app == app.name)
            .map(|container| Process {
                node: container.node.as_deref().map(|id| match nodes.iter().find(|node| node.id == id) {
                    Some(node) => format!("{} ({})", node.hostname, node.address),
                    None => id.chars().take(12).collect(),
                }),
                id: container.id.chars().take(12).collect(),
                process: container.process,
                release: container.release,
                state: if container.running { "running" } else { "exited" }.into(),
                started_at: time::OffsetDateTime::from_unix_timestamp(container.created)
                    .ok()
                    .and_then(|t| t.format(&time::format_description::well_known::Rfc3339).ok()),
                crash: None,
            })
            .collect();
        let crashes = c.db.crashes(app).await?;
        if !crashes.is_empty() {
            let running = c.running_release(app).await?.map(|r| r.version);
            let formation = self.of(app).await?;
            for (process, release, crash) in crashes {
                let scaled_up = formation.iter().any(|f| f.process.as_str() == process && f.quantity > 0);
                if Some(release) == running && scaled_up {
                    let state = "crashed".into();
                    processes.push(Process {
                        id: "-".into(),
                        process,
                        release,
                        state,
                        started_at: None,
                        crash: Some(crash),
                        node: None,
                    });
                }
            }
        }
        processes.sort_by(|a, b| a.process.cmp(&b.process).then_with(|| a.started_at.cmp(&b.started_at)));
        Ok(processes)
    }

    /// Replaces an app's containers (of one type, or all, or one container) without
    /// downtime: new ones start, and the old ones go once the new ones are ready.
    pub async fn restart(&self, user: &UserRow, app: &AppRow, restart: Restart) -> Result<(), ApiError> {
        let c = self.0;
        if let Some(id) = &restart.container {
            return self.restart_container(user, app, id).await;
        }
        let release = c.current_release(app).await?;
        let processes: Vec<_> = match restart.process {
            Some(process) if release.procfile.contains_key(&process) => vec![process],
            Some(process) => {
                return Err(ApiError::BadRequest(format!("v{} has no `{process}` process type", release.version)));
            }
            None => release.procfile.keys().cloned().collect(),
        };
        let with_defaults: Vec<_> = processes
            .into_iter()
            .map(|p| {
                let quantity = default_quantity(p.as_str());
                (p, quantity)
            })
            .collect();
        c.db.restart(app, &with_defaults).await?;
        let restarted: Vec<&str> = with_defaults.iter().map(|(p, _)| p.as_str()).collect();
        let message = format!("Restarting {} by {}", restarted.join(", "), user.username);
        c.announce_change(&app.name, Event::new(EventKind::Scale, message).by(&user.username)).await;
        Ok(())
    }

    /// Stops one of an app's containers; the scheduler replaces it.
    async fn restart_container(&self, user: &UserRow, app: &AppRow, id: &str) -> Result<(), ApiError> {
        let c = self.0;
        let missing = || ApiError::NotFound(format!("{} has no container {id}; see `skiff ps`", app.name));
        if id.len() < 4 || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(missing());
        }
        let containers =
            c.runtime.list().await.map_err(|e| ApiError::Unavailable(format!("cannot list containers: {e}")))?;
        let mut matching = containers.iter().filter(|k| k.app == app.name && !k.one_off && k.id.starts_with(id));
        let (Some(container), None) = (matching.next(), matching.next()) else { return Err(missing()) };
        c.runtime.remove(&container.id).await.map_err(|e| ApiError::Unavailable(format!("cannot stop {id}: {e}")))?;
        let short: String = container.id.chars().take(12).collect();
        let message = format!("Restarting container {short} ({}) by {}", container.process, user.username);
        c.announce_change(&app.name, Event::new(EventKind::Scale, message).by(&user.username)).await;
        Ok(())
    }

    /// Per-process settings of one kind.
    pub async fn settings<T: DeserializeOwned>(
        &self,
        app: &AppRow,
        kind: SettingsKind,
    ) -> Result<BTreeMap<ProcessType, T>, ApiError> {
        Ok(self.0.db.settings(app.id, kind).await?)
    }

    /// Changes memory and CPU limits within the platform's bounds.
    pub async fn change_limits(
        &self,
        user: &UserRow,
        app: &AppRow,
        change: SettingsChange<Limits>,
    ) -> Result<BTreeMap<ProcessType, Limits>, ApiError> {
        let most = self.0.config.max_memory_mb;
        let check = |limits: &Limits| {
            if limits.memory_mb.is_some_and(|mb| !(4..=most).contains(&mb)) {
                return Err(ApiError::BadRequest(format!(
                    "memory must be between 4 MiB and {most} MiB (this platform's most)"
                )));
            }
            if limits.cpu.is_some_and(|cpu| !(0.01..=256.0).contains(&cpu)) {
                return Err(ApiError::BadRequest("cpu must be between 0.01 and 256 cores".into()));
            }
            Ok(())
        };
        self.change_settings(user, app, SettingsKind::Limits, change, check).await
    }

    /// Changes health checks: a request path and a timeout.
    pub async fn change_healthchecks(
        &self,
        user: &UserRow,
        app: &AppRow,
        change: SettingsChange<Healthcheck>,
    ) -> Result<BTreeMap<ProcessType, Healthcheck>, ApiError> {
        self.change_settings(user, app, SettingsKind::Healthchecks, change, check_healthcheck).await
    }

    /// Applies a per-process settings change after `check`ing each new value, and
    /// replaces the affected containers.
    async fn change_settings<T: Serialize + DeserializeOwned>(
        &self,
        user: &UserRow,
        app: &AppRow,
        kind: SettingsKind,
        change: SettingsChange<T>,
        check: impl Fn(&T) -> Result<(), ApiError>,
    ) -> Result<BTreeMap<ProcessType, T>, ApiError> {
        let c = self.0;
        let release = c.current_release(app).await?;
        let mut settings: BTreeMap<ProcessType, T> = c.db.settings(app.id, kind).await?;
        // Only the process types whose setting changed get new containers.
        let processes: Vec<(ProcessType, u32)> =
            change.keys().map(|p| (p.clone(), default_quantity(p.as_str()))).collect();
        for (process, value) in change {
            if !release.procfile.contains_key(&process) {
                return Err(ApiError::BadRequest(format!("v{} has no `{process}` process type", release.version)));
            }
            match value {
                Some(value) => {
                    check(&value)?;
                    settings.insert(process, value);
                }
                None => {
                    settings.remove(&process);
                }
            }
        }
        c.db.set_settings(app.id, kind, &settings).await?;
        c.db.restart(app, &processes).await?;
        let what = if kind == SettingsKind::Limits { "limits" } else { "health checks" };
        let of: Vec<&str> = processes.iter().map(|(p, _)| p.as_str()).collect();
        let message = format!("{} changed {what} of {}; replacing those containers", user.username, of.join(", "));
        c.announce_change(&app.name, Event::new(EventKind::Config, message).by(&user.username)).await;
        Ok(settings)
    }
}

/// A health check's path must be a request path, and its timeout between 1 and 3600 s.
pub(crate) fn check_healthcheck(health: &Healthcheck) -> Result<(), ApiError> {
    if let Some(path) = &health.path
        && (!path.starts_with('/') || path.len() > 1024 || path.bytes().any(|b| b.is_ascii_control() || b == b' '))
    {
        return Err(ApiError::BadRequest(format!("`{path}` is not a request path like /health")));
    }
    if health.timeout_secs.is_some_and(|t| !(1..=3600).contains(&t)) {
        return Err(ApiError::BadRequest("the timeout must be between 1 and 3600 seconds".into()));
    }
    Ok(())
}
