//! The reconcile plan: pure, deterministic, table-tested.
//!
//! A container is *current* when it runs the desired release and generation of its
//! process type (a restart bumps the generation). Per process type the plan starts
//! current containers up to the desired quantity and removes extras; it removes older
//! containers only once enough current ones are ready, so a rollout never leaves a process
//! type with fewer ready containers than it had.

use skiff_api::{AppName, ProcessType};

use super::runtime::{NodeState, StartSpec};

/// One process type of an app's current release, and how many should run.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    /// What each of its containers runs.
    pub spec: StartSpec,
    pub quantity: u32,
    pub check: super::health::Check,
    /// How long a new container has to pass its check.
    pub boot_timeout: std::time::Duration,
    /// Set for a canary's `web`: a release on trial beside the app's current one.
    pub on_trial: Option<OnTrial>,
}

/// A canary's share of its app's requests, for the route feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OnTrial {
    pub canary: i64,
    pub percent: u8,
    pub sticky: bool,
}

impl Desired {
    /// Whether as many of its containers as asked for run and are ready.
    pub fn is_up(&self, observed: &[Observed]) -> bool {
        observed.iter().filter(|c| self.is_current(c) && c.running && c.ready).count() >= self.quantity as usize
    }

    fn is_current(&self, container: &Observed) -> bool {
        container.node_state == NodeState::Up && self.made(container)
    }

    /// Whether `container` was made for it: its app (not one destroyed before under the
    /// same name), process type, release and generation, wherever it runs.
    pub fn made(&self, container: &Observed) -> bool {
        let spec = &self.spec;
        container.app == spec.app
            && container.app_id.is_none_or(|id| id == spec.app_id)
            && container.process == spec.process
            && container.release == spec.release
            && container.generation == spec.generation
    }
}

/// A container that exists, as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub id: String,
    pub app: AppName,
    /// `None` for a container made before Skiff labelled containers with it.
    pub app_id: Option<i64>,
    pub release: u32,
    pub generation: u32,
    pub process: String,
    pub running: bool,
    /// Serving: a `web` container answers HTTP on its port; others run.
    pub ready: bool,
    /// Whether its node keeps it.
    pub node_state: NodeState,
}

/// Why a container is removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Removal {
    /// Its process type runs fewer containers now.
    ScaledDown,
    /// No release runs its process type any more.
    Unused,
    /// It stopped on its own (a crash, or a command that ended).
    Exited,
    /// A restart, or new limits or health checks, gave its process type fresh containers
    /// of the same release, which are ready.
    Renewed,
    /// A newer release's containers are ready.
    Replaced,
    /// Its release no longer runs: a canary that ended without being promoted.
    Withdrawn,
    /// Its node is being drained, and its replacements elsewhere are ready.
    Evacuated,
    /// Its node went down.
    NodeLost,
}

impl std::fmt::Display for Removal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::ScaledDown => "scaled down",
            Self::Unused => "no release runs this process type",
            Self::Exited => "container exited",
            Self::Renewed => "replaced by a fresh container of the same release",
            Self::Replaced => "replaced by a newer release",
            Self::Withdrawn => "its release was withdrawn (a canary that was not promoted)",
            Self::Evacuated => "its node is being drained; replaced on another",
            Self::NodeLost => "its node is down; starting another elsewhere",
        })
    }
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq)]
pub enum Step {
    /// Start one container of a process type.
    Start(Desired),
    /// Remove a container (stopping it first).
    Remove { id: String, app: AppName, process: String, release: u32, generation: u32, reason: Removal },
}

impl Step {
    /// The app whose container it starts or removes.
    pub fn app(&self) -> &AppName {
        match self {
            Self::Start(desired) => &desired.spec.app,
            Self::Remove { app, .. } => app,
        }
    }
}

fn remove(container: &Observed, reason: Removal) -> Step {
    Step::Remove {
        id: container.id.clone(),
        app: container.app.clone(),
        process: container.process.clone(),
        release: container.release,
        generation: container.generation,
        reason,
    }
}

/// Decides what to start and what to remove.
pub fn plan(desired: &[Desired], observed: &[Observed]) -> Vec<Step> {
    let mut steps = Vec::new();
    for want in desired {
        let mut current: Vec<&Observed> = observed.iter().filter(|c| want.is_current(c) && c.running).collect();
        let quantity = want.quantity as usize;
        for _ in current.len()..quantity {
            steps.push(Step::Start(want.clone()));
        }
        if current.len() > quantity {
            // Keep ready containers over unready ones; the order is otherwise by id.
            current.sort_by(|a, b| b.ready.cmp(&a.ready).then_with(|| a.id.cmp(&b.id)));
            steps.extend(current[quantity..].iter().map(|c| remove(c, Removal::ScaledDown)));
        }
    }
    for container in observed {
        // A process type runs one release, or two while a canary is on trial: a container
        // goes by the one it runs, else by the current (not on trial) one.
        let of_type = || desired.iter().filter(|d| d.spec.app == container.app && d.spec.process == container.process);
        let want = of_type()
            .find(|d| d.is_current(container))
            .or_else(|| of_type().find(|d| d.on_trial.is_none()))
            .or_else(|| of_type().next());
        let reason = match want {
            None => Some(Removal::Unused),
            Some(_) if container.node_state == NodeState::Lost => Some(Removal::NodeLost),
            Some(_) if !container.running => Some(Removal::Exited),
            Some(want) if want.is_current(container) => None,
            Some(want) => {
                let ready = observed.iter().filter(|c| want.is_current(c) && c.ready).count();
                let reason = if container.node_state == NodeState::Leaving {
                    Removal::Evacuated
                } else if container.release == want.spec.release {
                    Removal::Renewed
                } else if container.release > want.spec.release {
                    Removal::Withdrawn
                } else {
                    Removal::Replaced
                };
                (ready >= want.quantity as usize).then_some(reason)
            }
        };
        if let Some(reason) = reason {
            steps.push(remove(container, reason));
        }
    }
    steps
}

/// How many containers a process type runs until it is scaled: one `web`, no others.
pub fn default_quantity(process: &str) -> u32 {
    u32::from(ProcessType::is_web(process))
}

/// A container's environment: the release's config, and who it is.
pub fn release_env(release: &skiff_api::Release, process: &str) -> Vec<(String, String)> {
    let mut env: Vec<(String, String)> = release.config.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    env.push(("SKIFF_APP".into(), release.app.to_string()));
    env.push(("SKIFF_RELEASE".into(), format!("v{}", release.version)));
    env.push(("SKIFF_PROCESS_TYPE".into(), process.to_owned()));
    env
}

/// Images built by Skiff are stored as `<app>@<digest>` in its registry; others carry their
/// registry host.
pub fn pull_reference(registry_host: &str, image: &str) -> String {
    if image.contains('/') { image.to_owned() } else { format!("{registry_host}/{image}") }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(app: &str, release: u32, quantity: u32) -> Desired {
        Desired {
            spec: StartSpec {
                app: app.parse().unwrap(),
                app_id: 1,
                release,
                generation: 0,
                process: "web".into(),
                image: format!("img-{release}"),
                command: "serve".into(),
                env: Vec::new(),
                limits: Default::default(),
            },
            quantity,
            check: super::super::health::Check::Running,
            boot_timeout: std::time::Duration::from_secs(1),
            on_trial: None,
        }
    }

    fn seen(id: &str, app: &str, release: u32, running: bool, ready: bool) -> Observed {
        Observed {
            id: id.into(),
            app: app.parse().unwrap(),
            app_id: Some(1),
            release,
            generation: 0,
            process: "web".into(),
            running,
            ready,
            node_state: NodeState::Up,
        }
    }

    fn on(node_state: NodeState, mut container: Observed) -> Observed {
        container.node_state = node_state;
        container
    }

    fn reasons(steps: &[Step]) -> Vec<Removal> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Remove { reason, .. } => Some(*reason),
                Step::Start(_) => None,
            })
            .collect()
    }

    fn removed(steps: &[Step]) -> Vec<&str> {
        steps
            .iter()
            .filter_map(|s| match s {
                Step::Remove { id, .. } => Some(id.as_str()),
                Step::Start(_) => None,
            })
            .collect()
    }

    fn started(steps: &[Step]) -> usize {
        steps.iter().filter(|s| matches!(s, Step::Start(_))).count()
    }

    #[test]
    fn a_new_release_starts_without_touching_the_old_one() {
        let steps = plan(&[want("a", 2, 1)], &[seen("old", "a", 1, true, true)]);
        assert_eq!(steps, vec![Step::Start(want("a", 2, 1))]);
    }

    #[test]
    fn the_old_release_goes_once_the_new_one_is_ready() {
        let steps = plan(&[want("a", 2, 1)], &[seen("old", "a", 1, true, true), seen("new", "a", 2, true, true)]);
        assert_eq!(removed(&steps), vec!["old"]);
        assert_eq!(started(&steps), 0);
    }

    #[test]
    fn a_new_container_that_is_not_ready_keeps_the_old_one() {
        let steps = plan(&[want("a", 2, 1)], &[seen("old", "a", 1, true, true), seen("new", "a", 2, true, false)]);
        assert!(steps.is_empty());
    }

    #[test]
    fn old_containers_stay_until_every_new_one_is_ready() {
        let observed = [
            seen("old1", "a", 1, true, true),
            seen("old2", "a", 1, true, true),
            seen("new1", "a", 2, true, true),
            seen("new2", "a", 2, true, false),
        ];
        assert!(plan(&[want("a", 2, 2)], &observed).is_empty());
    }

    #[test]
    fn scaling_starts_and_removes_current_containers() {
        let steps = plan(&[want("a", 1, 3)], &[seen("c1", "a", 1, true, true)]);
        assert_eq!(started(&steps), 2);
        let steps = plan(
            &[want("a", 1, 1)],
            &[seen("c1", "a", 1, true, true), seen("c2", "a", 1, true, false), seen("c3", "a", 1, true, true)],
        );
        let mut gone = removed(&steps);
        gone.sort();
        assert_eq!(gone, vec!["c2", "c3"], "the ready c1 stays");
        let steps = plan(&[want("a", 1, 0)], &[seen("c1", "a", 1, true, true)]);
        assert_eq!(removed(&steps), vec!["c1"]);
    }

    #[test]
    fn a_container_of_a_destroyed_app_of_the_same_name_is_never_the_new_apps() {
        // The new app (id 1) has the name, release and generation of a destroyed one
        // (id 2) whose container the engine still holds.
        let mut destroyed = seen("theirs", "a", 1, true, true);
        destroyed.app_id = Some(2);
        let steps = plan(&[want("a", 1, 1)], std::slice::from_ref(&destroyed));
        assert_eq!(steps, vec![Step::Start(want("a", 1, 1))], "the new app gets a container of its own");
        let steps = plan(&[want("a", 1, 1)], &[destroyed, seen("ours", "a", 1, true, true)]);
        assert_eq!(removed(&steps), vec!["theirs"]);
        // A container made before containers carried the app's id is the app's.
        let mut unlabelled = seen("old", "a", 1, true, true);
        unlabelled.app_id = None;
        assert!(plan(&[want("a", 1, 1)], &[unlabelled]).is_empty());
    }

    #[test]
    fn a_restart_replaces_containers_like_a_release() {
        let mut restarted = want("a", 1, 1);
        restarted.spec.generation = 1;
        let steps = plan(std::slice::from_ref(&restarted), &[seen("c1", "a", 1, true, true)]);
        assert_eq!(steps, vec![Step::Start(restarted.clone())]);
        let mut fresh = seen("c2", "a", 1, true, true);
        fresh.generation = 1;
        let steps = plan(&[restarted], &[seen("c1", "a", 1, true, true), fresh]);
        assert_eq!(reasons(&steps), [Removal::Renewed], "no newer release was made");
    }

    #[test]
    fn a_container_on_a_draining_node_moves_new_one_first() {
        let leaving = on(NodeState::Leaving, seen("c1", "a", 1, true, true));
        let steps = plan(&[want("a", 1, 1)], std::slice::from_ref(&leaving));
        assert_eq!((started(&steps), removed(&steps)), (1, vec![]), "it keeps serving until another is ready");
        let steps = plan(&[want("a", 1, 1)], &[leaving.clone(), seen("c2", "a", 1, true, false)]);
        assert!(steps.is_empty(), "its replacement is not ready yet");
        let steps = plan(&[want("a", 1, 1)], &[leaving, seen("c2", "a", 1, true, true)]);
        assert_eq!((removed(&steps), reasons(&steps)), (vec!["c1"], vec![Removal::Evacuated]));
    }

    #[test]
    fn a_container_on_a_lost_node_is_replaced_at_once_and_is_no_crash() {
        let lost = on(NodeState::Lost, seen("c1", "a", 1, false, false));
        let steps = plan(&[want("a", 1, 1)], &[lost, seen("c2", "a", 1, true, true)]);
        assert_eq!((removed(&steps), reasons(&steps)), (vec!["c1"], vec![Removal::NodeLost]));
        let lost = on(NodeState::Lost, seen("c1", "a", 1, false, false));
        let steps = plan(&[want("a", 1, 2)], &[lost, seen("c2", "a", 1, true, true)]);
        assert_eq!(started(&steps), 1);
    }

    #[test]
    fn exited_containers_are_replaced() {
        let steps = plan(&[want("a", 1, 1)], &[seen("dead", "a", 1, false, false)]);
        assert_eq!(started(&steps), 1);
        assert_eq!(removed(&steps), vec!["dead"]);
    }

    #[test]
    fn containers_of_destroyed_apps_are_removed() {
        let steps = plan(&[], &[seen("orphan", "gone", 3, true, true)]);
        assert_eq!(removed(&steps), vec!["orphan"]);
    }

    #[test]
    fn a_converged_platform_has_nothing_to_do() {
        assert!(plan(&[want("a", 1, 1)], &[seen("c", "a", 1, true, true)]).is_empty());
    }

    #[test]
    fn a_canary_runs_beside_the_current_release_and_goes_when_it_ends() {
        let mut canary = want("a", 3, 1);
        canary.on_trial = Some(OnTrial { canary: 1, percent: 10, sticky: false });
        let both = [want("a", 2, 2), canary.clone()];
        let steps = plan(&both, &[seen("b1", "a", 2, true, true), seen("b2", "a", 2, true, true)]);
        assert_eq!(steps, vec![Step::Start(canary)], "the baseline stays whole");
        let running = [seen("b1", "a", 2, true, true), seen("b2", "a", 2, true, true), seen("c1", "a", 3, true, true)];
        assert!(plan(&both, &running).is_empty(), "both sides keep running");
        // Rolled back: the canary's container goes, the baseline stays.
        let steps = plan(&[want("a", 2, 2)], &running);
        assert_eq!((removed(&steps), reasons(&steps)), (vec!["c1"], vec![Removal::Withdrawn]));
        // Promoted: the canary's release scales up, then the baseline goes.
        let steps = plan(&[want("a", 3, 2)], &running);
        assert_eq!((started(&steps), removed(&steps)), (1, vec![]));
    }
}
