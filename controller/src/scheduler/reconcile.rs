//! The reconcile loop: observe, plan, act, publish routes. A round runs when poked (a new
//! release, a destroyed app), on an interval, and whenever an app's steps finish.
//!
//! Each round observes every app and plans for the apps that have nothing under way; each
//! such app's steps then run in a task of their own. An app whose containers are slow to
//! boot, fail their health check or crash is busy only with itself: other apps' rollouts
//! go on in the next rounds, and each app's release settles (deployed) as soon as that
//! app has nothing left to start, whatever any other app is doing.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::StreamExt as _;
use skiff_api::{
    AppName, CanaryRoute, Healthcheck, Limits, PhaseState, ProcessType, ReleaseState, Route, RouteCertificate,
};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::health::{BootFailure, Check};
use super::hold::Hold;
use super::plan::{Desired, Observed, OnTrial, Removal, Step, default_quantity, plan, pull_reference, release_env};
use super::runtime::{Container, ContainerRuntime, StartSpec};
use crate::config::Config;
use crate::coordination::Coordination;
use crate::db::SettingsKind;
use crate::db::{Db, DbError};
use crate::events::Event;
use crate::events::Events;
use crate::routes::RouteFeed;
use skiff_api::EventKind;

mod phase;

/// At most this many rounds of steps per app in one [`Scheduler::pass`] (start new →
/// remove old → settle).
const ROUNDS_PER_PASS: usize = 4;
/// At most this many containers are created or removed at once, over all apps. Waiting
/// for a container to become ready holds no permit.
const PARALLEL_STEPS: usize = 8;
/// At most this many containers are probed at once.
const PARALLEL_PROBES: usize = 32;

/// An app's id, and its limits and health checks by process type.
#[derive(Clone, Copy)]
struct ProcessSettings<'a> {
    app_id: i64,
    limits: Option<&'a BTreeMap<ProcessType, Limits>>,
    checks: Option<&'a BTreeMap<ProcessType, Healthcheck>>,
}

/// Why a pass failed.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Db(#[from] DbError),
    #[error(transparent)]
    Runtime(#[from] super::runtime::RuntimeError),
}

/// The scheduler: owns the loop and the handle that pokes it. Clones share everything
/// (an app's steps run on a clone, in a task of their own).
#[derive(Clone)]
pub struct Scheduler {
    db: Db,
    runtime: Arc<dyn ContainerRuntime>,
    routes: Arc<RouteFeed>,
    config: Arc<Config>,
    coordination: Arc<Coordination>,
    events: Arc<Events>,
    /// Containers draining and process types backing off.
    hold: Arc<std::sync::Mutex<Hold>>,
    /// Engine calls (create, remove) under way, over all apps.
    engine_calls: Arc<Semaphore>,
}

/// Apps whose steps are under way, each app's in a task of its own.
#[derive(Default)]
struct Rollouts {
    tasks: JoinSet<Result<(), ReconcileError>>,
    busy: HashMap<tokio::task::Id, AppName>,
}

impl Rollouts {
    fn busy_apps(&self) -> HashSet<AppName> {
        self.busy.values().cloned().collect()
    }

    fn start(
        &mut self,
        app: AppName,
        steps: impl std::future::Future<Output = Result<(), ReconcileError>> + Send + 'static,
    ) {
        let id = self.tasks.spawn(steps).id();
        self.busy.insert(id, app);
    }

    /// Waits for the next app whose steps finished; `None` when none are under way.
    async fn finished(&mut self) -> Option<Result<(), ReconcileError>> {
        let joined = self.tasks.join_next_with_id().await?;
        Some(match joined {
            Ok((id, result)) => {
                self.busy.remove(&id);
                result
            }
            Err(error) => {
                let app = self.busy.remove(&error.id());
                tracing::error!(?app, %error, "controller.reconcile.steps_panicked");
                Ok(())
            }
        })
    }
}

impl Scheduler {
    pub fn new(
        db: Db,
        runtime: Arc<dyn ContainerRuntime>,
        routes: Arc<RouteFeed>,
        config: Arc<Config>,
        coordination: Arc<Coordination>,
        events: Arc<Events>,
    ) -> Self {
        Self {
            db,
            runtime,
            routes,
            config,
            coordination,
            events,
            hold: Default::default(),
            engine_calls: Arc::new(Semaphore::new(PARALLEL_STEPS)),
        }
    }

    /// Runs rounds until `shutdown`; containers keep running after it (steps under way are
    /// dropped; the next controller adopts what they started).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut rollouts = Rollouts::default();
        loop {
            if let Err(error) = self.round(&mut rollouts).await {
                tracing::warn!(%error, "controller.reconcile failed; retrying");
            }
            tokio::select! {
                () = self.coordination.poked() => {}
                () = tokio::time::sleep(self.config.reconcile_interval) => {}
                Some(result) = rollouts.finished() => {
                    if let Err(error) = result {
                        tracing::warn!(%error, "controller.reconcile.steps failed; retrying");
                    }
                }
                () = shutdown.cancelled() => return,
            }
        }
    }

    /// One pass, for tests and tools: rounds until every app converged (at most a few
    /// rounds of steps each), waiting for each round's steps; then routes are published.
    /// Only the apps this replica may act on are changed (all of them, without other
    /// replicas).
    ///
    /// # Errors
    /// The first database or engine error.
    pub async fn pass(&self) -> Result<(), ReconcileError> {
        let mut rollouts = Rollouts::default();
        for _ in 0..ROUNDS_PER_PASS {
            self.round(&mut rollouts).await?;
            if rollouts.busy.is_empty() {
                return Ok(());
            }
            while let Some(result) = rollouts.finished().await {
                result?;
            }
        }
        let desired = self.desired().await?;
        let observed = self.observe(&desired).await?;
        Ok(self.publish(&desired, &observed).await?)
    }

    /// Observes every app, publishes routes, settles the releases of apps that have nothing
    /// left to start, and sets the steps of every app that has none under way going.
    async fn round(&self, rollouts: &mut Rollouts) -> Result<(), ReconcileError> {
        let desired = self.desired().await?;
        let observed = self.observe(&desired).await?;
        let mut ours = HashMap::new();
        for app in desired.iter().map(|d| &d.spec.app).chain(observed.iter().map(|(o, _)| &o.app)) {
            if !ours.contains_key(app) {
                // Asked for busy apps too: it renews their locks.
                ours.insert(app.clone(), self.coordination.may_act(app).await);
            }
        }
        let busy = rollouts.busy_apps();
        let free = |app: &AppName| ours[app] && !busy.contains(app);
        let acting: Vec<Desired> = desired.iter().filter(|d| free(&d.spec.app)).cloned().collect();
        let seen: Vec<Observed> = observed.iter().map(|(o, _)| o).filter(|o| free(&o.app)).cloned().collect();
        let planned = plan(&acting, &seen);
        let starting: HashSet<AppName> = planned
            .iter()
            .filter_map(|step| match step {
                Step::Start(d) => Some(d.spec.app.clone()),
                Step::Remove { .. } => None,
            })
            .collect();
        let (steps, next) =
            self.hold().due(planned, &busy, now(), self.config.drain_period, self.config.reconcile_interval);
        // Routes go to the ready containers, and not to those that just started to drain,
        // before anything stops.
        self.publish(&desired, &observed).await?;
        self.settle(&acting, &seen, &starting).await?;
        if let Some(next) = next {
            // Held steps fall due without waiting for the next interval.
            let coordination = self.coordination.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(next.into()).await;
                coordination.poke();
            });
        }
        let mut by_app: BTreeMap<AppName, Vec<Step>> = BTreeMap::new();
        for step in steps {
            by_app.entry(step.app().clone()).or_default().push(step);
        }
        for (app, steps) in by_app {
            let scheduler = self.clone();
            rollouts.start(app, async move { scheduler.act_all(steps).await });
        }
        self.start_release_phases(rollouts, &ours).await
    }

    /// Runs the `release` command of each app's newest release that waits for one, unless
    /// the app has steps under way or another replica acts on it.
    async fn start_release_phases(
        &self,
        rollouts: &mut Rollouts,
        ours: &HashMap<AppName, bool>,
    ) -> Result<(), ReconcileError> {
        let busy = rollouts.busy_apps();
        for (app_id, release) in self.db.releases_awaiting_phase().await? {
            let app = release.app.clone();
            if busy.contains(&app) {
                continue;
            }
            let may_act = match ours.get(&app) {
                Some(ours) => *ours,
                None => self.coordination.may_act(&app).await,
            };
            if may_act {
                let scheduler = self.clone();
                rollouts.start(app, async move { scheduler.release_phase(app_id, release).await });
            }
        }
        Ok(())
    }

    /// A release whose containers are all up is up, even while the containers it replaces
    /// still drain; only apps with nothing left to start are looked at.
    async fn settle(&self, acting: &[Desired], seen: &[Observed], starting: &HashSet<AppName>) -> Result<(), DbError> {
        // A canary's release is deployed only once it is promoted.
        let releases: HashSet<(&AppName, u32)> = acting
            .iter()
            .filter(|d| !starting.contains(&d.spec.app) && d.on_trial.is_none())
            .map(|d| (&d.spec.app, d.spec.release))
            .collect();
        for (app, release) in releases {
            let mut of_release = acting.iter().filter(|d| &d.spec.app == app && d.spec.release == release);
            if of_release.all(|d| d.is_up(seen))
                && self.db.settle_release(app, release, ReleaseState::Deployed, None).await?
            {
                let up = Event::new(EventKind::Deploy, format!("Release v{release} is up"));
                self.events.emit(app, up.with(serde_json::json!({ "version": release }))).await;
            }
        }
        Ok(())
    }

    /// One app's steps; they are independent: old containers go only once enough new ones
    /// are ready, which the plan saw before.
    async fn act_all(&self, steps: Vec<Step>) -> Result<(), ReconcileError> {
        let results: Vec<Result<(), ReconcileError>> =
            futures_util::stream::iter(steps.into_iter().map(|step| self.act(step)))
                .buffer_unordered(PARALLEL_STEPS)
                .collect()
                .await;
        results.into_iter().collect()
    }

    async fn desired(&self) -> Result<Vec<Desired>, DbError> {
        let mut desired = Vec::new();
        // Five queries whatever the number of apps.
        let mut formations = self.db.formations().await?;
        let all_limits: HashMap<i64, BTreeMap<ProcessType, Limits>> =
            self.db.all_settings(SettingsKind::Limits).await?;
        let all_checks: HashMap<i64, BTreeMap<ProcessType, Healthcheck>> =
            self.db.all_settings(SettingsKind::Healthchecks).await?;
        let mut web_by_app: HashMap<i64, (u32, u32)> = HashMap::new();
        for (app_id, release) in self.db.current_releases_by_app().await? {
            let formation = formations.remove(&app_id).unwrap_or_default();
            // The release command ran before this release became current; nothing keeps it running.
            for (process, command) in release.procfile.iter().filter(|(p, _)| !ProcessType::is_release(p.as_str())) {
                let row = formation.iter().find(|f| &f.process == process);
                let quantity = row.map_or_else(|| default_quantity(process.as_str()), |f| f.quantity);
                let generation = row.map_or(0, |f| f.generation);
                if ProcessType::is_web(process.as_str()) {
                    web_by_app.insert(app_id, (quantity, generation));
                }
                let settings =
                    ProcessSettings { app_id, limits: all_limits.get(&app_id), checks: all_checks.get(&app_id) };
                desired.push(self.process_desired(&release, process, command, quantity, generation, settings));
            }
        }
        // A canary runs its share of the app's web containers (one at least) beside them.
        for (canary, release) in self.db.running_canaries().await? {
            let phase_done = release.phase.as_ref().is_none_or(|p| p.state == PhaseState::Succeeded);
            let web = release.procfile.iter().find(|(p, _)| ProcessType::is_web(p.as_str()));
            let (Some(&(quantity, generation)), Some((process, command)), ReleaseState::Trial, true) =
                (web_by_app.get(&canary.app_id), web, release.state, phase_done)
            else {
                continue;
            };
            if quantity == 0 {
                continue;
            }
            let share = (u64::from(quantity) * u64::from(canary.trial.percent)).div_ceil(100).max(1);
            let settings = ProcessSettings {
                app_id: canary.app_id,
                limits: all_limits.get(&canary.app_id),
                checks: all_checks.get(&canary.app_id),
            };
            let mut want = self.process_desired(
                &release,
                process,
                command,
                u32::try_from(share).unwrap_or(1),
                generation,
                settings,
            );
            want.on_trial =
                Some(OnTrial { canary: canary.id, percent: canary.trial.percent, sticky: canary.trial.sticky });
            desired.push(want);
        }
        Ok(desired)
    }

    /// What `quantity` containers of `release`'s `process` run, under the app's limits
    /// and health checks.
    fn process_desired(
        &self,
        release: &skiff_api::Release,
        process: &ProcessType,
        command: &str,
        quantity: u32,
        generation: u32,
        settings: ProcessSettings<'_>,
    ) -> Desired {
        let check = settings.checks.and_then(|checks| checks.get(process));
        let limits = settings.limits.and_then(|limits| limits.get(process)).copied().unwrap_or_default();
        Desired {
            spec: StartSpec {
                app: release.app.clone(),
                app_id: settings.app_id,
                release: release.version,
                generation,
                process: process.to_string(),
                image: pull_reference(&self.config.registry_host, &release.image),
                command: command.to_owned(),
                env: release_env(release, process.as_str()),
                limits: self.config.container_limits(limits),
            },
            quantity,
            check: Check::of(process.as_str(), check),
            boot_timeout: check.and_then(|c| c.timeout_secs).map_or(self.config.boot_timeout, Duration::from_secs),
            on_trial: None,
        }
    }

    async fn observe(&self, desired: &[Desired]) -> Result<Vec<(Observed, Option<SocketAddr>)>, ReconcileError> {
        let containers = self.runtime.list().await?;
        // Probed a few at a time: a pass over many containers waits for the slowest few,
        // not for all of them in turn.
        let probes = containers.into_iter().filter(|c| !c.one_off).map(|container| async move {
            let address = container.address;
            let mut seen = observe(&container);
            // Current containers must pass the configured check; older ones, deployed under
            // whatever check held then, keep serving while they answer at all.
            let current = desired.iter().find(|d| d.made(&seen));
            let check = current.map_or_else(|| Check::of(&seen.process, None), |d| d.check.clone());
            seen.ready = seen.running && check.probe(address).await;
            (seen, address)
        });
        Ok(futures_util::stream::iter(probes).buffered(PARALLEL_PROBES).collect().await)
    }

    async fn publish(&self, desired: &[Desired], observed: &[(Observed, Option<SocketAddr>)]) -> Result<(), DbError> {
        let apps = self.db.apps(None).await?;
        let domains = self.db.domains(None).await?;
        let leaving: std::collections::HashSet<&str> = {
            let hold = self.hold();
            observed.iter().map(|(o, _)| o.id.as_str()).filter(|id| hold.is_leaving(id)).collect()
        };
        let routes = apps
            .into_iter()
            .map(|app| {
                let ready: Vec<(&Observed, SocketAddr)> = observed
                    .iter()
                    .filter(|(o, _)| {
                        o.app == app.name
                            && o.app_id.is_none_or(|id| id == app.id)
                            && o.ready
                            && ProcessType::is_web(&o.process)
                            && !leaving.contains(o.id.as_str())
                    })
                    .filter_map(|(o, a)| Some((o, (*a)?)))
                    .collect();
                let web = |trial: bool| {
                    desired.iter().find(|d| {
                        d.spec.app == app.name && ProcessType::is_web(&d.spec.process) && d.on_trial.is_some() == trial
                    })
                };
                let of = |want: &Desired| -> Vec<SocketAddr> {
                    let of_want = |o: &Observed| o.release == want.spec.release && o.generation == want.spec.generation;
                    ready.iter().filter(|(o, _)| of_want(o)).map(|(_, a)| *a).collect()
                };
                let canary = web(true).and_then(|want| {
                    let trial = want.on_trial?;
                    Some(CanaryRoute {
                        id: trial.canary,
                        release: want.spec.release,
                        percent: trial.percent,
                        sticky: trial.sticky,
                        backends: of(want),
                    })
                });
                let on_trial = canary.as_ref().map(|c| c.release);
                let of_current = web(false).map(of).unwrap_or_default();
                // Until the current release is ready, older ones keep serving (a canary's
                // containers serve only its share).
                let backends = if of_current.is_empty() {
                    ready.iter().filter(|(o, _)| Some(o.release) != on_trial).map(|(_, a)| *a).collect()
                } else {
                    of_current
                };
                let mut hosts = vec![format!("{}.{}", app.name, self.config.domain)];
                hosts.extend(domains.iter().filter(|(id, _, _)| *id == app.id).map(|(_, domain, _)| domain.clone()));
                let (maintenance, tls, access) = (app.maintenance, app.tls, app.access);
                Route { hosts, app: app.name, backends, maintenance, tls, access, canary }
            })
            .collect();
        let certificates = self
            .db
            .certs_with_keys(None)
            .await?
            .into_iter()
            .filter(|(cert, _, _)| !cert.domains.is_empty())
            .map(|(cert, chain_pem, key_pem)| RouteCertificate { hosts: cert.domains, chain_pem, key_pem })
            .collect();
        let challenges = self.db.acme_challenges().await?;
        if self.routes.publish(routes, certificates, challenges) {
            // Other replicas look again at once rather than at their next interval.
            self.coordination.announce().await;
        }
        Ok(())
    }

    async fn act(&self, step: Step) -> Result<(), ReconcileError> {
        match step {
            Step::Start(Desired { spec, check, boot_timeout, .. }) => {
                tracing::info!(app = %spec.app, release = spec.release, process = spec.process, "controller.reconcile.start");
                let started = {
                    let _permit = self.engine_calls.acquire().await;
                    self.runtime.start(&spec).await
                };
                let failure = match started {
                    Ok(container) => {
                        match super::health::boot(self.runtime.as_ref(), &container, &check, boot_timeout).await? {
                            Ok(()) => {
                                self.db.clear_crash(&spec.app, &spec.process).await?;
                                None
                            }
                            Err(BootFailure::NodeGone { .. }) => {
                                // Not the app's doing: the next round starts another elsewhere.
                                self.remove(&container.id).await?;
                                let what = format!("{} of v{}", spec.process, spec.release);
                                let message = format!("{what}: its node left before it ran; starting another");
                                self.events.emit(&spec.app, Event::new(EventKind::Crash, message)).await;
                                None
                            }
                            Err(failure) => {
                                self.remove(&container.id).await?;
                                Some(failure.to_string())
                            }
                        }
                    }
                    Err(error) => Some(format!("{} could not start: {error}", spec.process)),
                };
                if let Some(reason) = failure {
                    // A pending release that cannot start fails, and the one before it keeps
                    // serving; a running release's container is simply tried again later.
                    let failed =
                        self.db.settle_release(&spec.app, spec.release, ReleaseState::Failed, Some(&reason)).await?;
                    let outcome = if failed {
                        "; the previous release keeps serving".to_owned()
                    } else {
                        let of = (spec.release, spec.generation);
                        let interval = self.config.reconcile_interval;
                        let (crashes, pause) = self.hold().crashed(&spec.app, &spec.process, of, now(), interval);
                        // Kept where `skiff ps` on any replica finds it.
                        self.db.record_crash(&spec.app, &spec.process, spec.release, &reason, crashes, pause).await?;
                        crash_outcome(crashes, pause)
                    };
                    // A release that runs already did start: only this container of it failed.
                    let what = if failed {
                        format!("Release v{}", spec.release)
                    } else {
                        format!("{} of v{}", spec.process, spec.release)
                    };
                    let kind = if failed { EventKind::Release } else { EventKind::Crash };
                    let data =
                        serde_json::json!({ "process": spec.process, "version": spec.release, "reason": reason });
                    let event = Event::new(kind, format!("{what} failed to start: {reason}{outcome}")).with(data);
                    self.events.emit(&spec.app, event).await;
                    tracing::warn!(app = %spec.app, release = spec.release, reason, failed, "controller.reconcile.boot_failed");
                }
            }
            Step::Remove { id, app, process, release, reason, .. } => {
                tracing::info!(%app, release, %reason, container = %id, "controller.reconcile.remove");
                let short: String = id.chars().take(12).collect();
                // The hold counted the crash when it let this step through.
                let outcome = if reason == Removal::Exited {
                    let (crashes, pause) = self.hold().crashes(&app, &process, self.config.reconcile_interval);
                    let what = super::health::exit_reason(self.runtime.as_ref(), &id, &process).await?;
                    self.db.record_crash(&app, &process, release, &what, crashes, pause).await?;
                    crash_outcome(crashes, pause)
                } else {
                    String::new()
                };
                let kind = match reason {
                    Removal::Exited | Removal::NodeLost => EventKind::Crash,
                    Removal::ScaledDown => EventKind::Scale,
                    _ => EventKind::Deploy,
                };
                let data = serde_json::json!({ "process": process, "version": release, "container": short });
                let message = format!("Stopping container {short} of v{release}: {reason}{outcome}");
                self.events.emit(&app, Event::new(kind, message).with(data)).await;
                self.remove(&id).await?;
            }
        }
        Ok(())
    }
}

impl Scheduler {
    async fn remove(&self, id: &str) -> Result<(), ReconcileError> {
        let _permit = self.engine_calls.acquire().await;
        Ok(self.runtime.remove(id).await?)
    }

    fn hold(&self) -> std::sync::MutexGuard<'_, Hold> {
        self.hold.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// The scheduler's clock: tokio's, so that tests can move it (`tokio::time::advance`)
/// instead of waiting out a drain or a backoff.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// What follows a crash, for its event: when another container starts.
fn crash_outcome(crashes: u32, pause: Duration) -> String {
    if pause.is_zero() {
        "; starting another".into()
    } else {
        format!("; {crashes} crashes in a row, starting another in {} s", pause.as_secs())
    }
}

/// A container as the plan sees it, not yet probed.
fn observe(container: &Container) -> Observed {
    Observed {
        id: container.id.clone(),
        app: container.app.clone(),
        app_id: container.app_id,
        release: container.release,
        generation: container.generation,
        process: container.process.clone(),
        running: container.running,
        ready: false,
        node_state: container.node_state,
    }
}
