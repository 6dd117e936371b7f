//! Steps that wait: a container leaving service drains for a grace period before it is
//! stopped (routers have swapped it out; requests in flight finish), and a process type
//! whose containers keep crashing is started again only after a growing pause (crash-loop
//! backoff: at once after the first crash, then 2, 4, 8… reconcile intervals, at most
//! [`MAX_BACKOFF`]). The count starts over after [`CRASH_MEMORY`] without a crash, and for
//! a new release or restart generation: a deploy that fixes the crash starts at once.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use skiff_api::AppName;

use super::plan::{Desired, Removal, Step};

/// The longest pause between restarts of a crashing process type.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A crash this long after the previous one starts the count afresh.
const CRASH_MEMORY: Duration = Duration::from_secs(600);

/// The pause before starting a process type again after its `crashes`-th crash in a row.
pub fn backoff(crashes: u32, interval: Duration) -> Duration {
    match crashes {
        0 | 1 => Duration::ZERO,
        n => interval.saturating_mul(1 << (n - 1).min(16)).min(MAX_BACKOFF),
    }
}

#[derive(Debug, Clone, Copy)]
struct Crashes {
    count: u32,
    last: Instant,
    /// The release and generation whose containers crashed.
    of: (u32, u32),
}

/// What waits, and until when.
#[derive(Debug, Default)]
pub struct Hold {
    /// Containers leaving service: whose, since when.
    leaving: HashMap<String, (AppName, Instant)>,
    /// Crashes in a row per app and process type.
    crashes: HashMap<(AppName, String), Crashes>,
}

impl Hold {
    /// Records a crash at `now` of one of `app`'s `process` containers, of release and
    /// generation `of`; says how many in a row and the pause before the next start.
    pub fn crashed(
        &mut self,
        app: &AppName,
        process: &str,
        of: (u32, u32),
        now: Instant,
        interval: Duration,
    ) -> (u32, Duration) {
        let entry =
            self.crashes.entry((app.clone(), process.to_owned())).or_insert(Crashes { count: 0, last: now, of });
        if now.duration_since(entry.last) > CRASH_MEMORY || entry.of != of {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = now;
        entry.of = of;
        (entry.count, backoff(entry.count, interval))
    }

    /// Whether a container is leaving service (draining before it stops).
    pub fn is_leaving(&self, id: &str) -> bool {
        self.leaving.contains_key(id)
    }

    /// The crashes in a row of `app`'s `process` and the pause before its next start.
    pub fn crashes(&self, app: &AppName, process: &str, interval: Duration) -> (u32, Duration) {
        self.crashes
            .get(&(app.clone(), process.to_owned()))
            .map_or((0, Duration::ZERO), |c| (c.count, backoff(c.count, interval)))
    }

    /// The steps due at `now`, and when the first held one falls due. A container that
    /// exited counts as a crash of its process type (before its replacement is planned, so
    /// the replacement waits out the new backoff); a container that leaves service is
    /// removed `drain` after it first came up for removal; a start of a crashing process
    /// type waits out its backoff. The apps in `busy` were not planned for (their steps are
    /// under way): their containers keep their place.
    pub fn due(
        &mut self,
        steps: Vec<Step>,
        busy: &HashSet<AppName>,
        now: Instant,
        drain: Duration,
        interval: Duration,
    ) -> (Vec<Step>, Option<Instant>) {
        let mut next: Option<Instant> = None;
        let mut wait = |until: Instant| next = Some(next.map_or(until, |n| n.min(until)));
        let proposed: Vec<String> = steps
            .iter()
            .filter_map(|s| match s {
                Step::Remove { id, .. } => Some(id.clone()),
                Step::Start(_) => None,
            })
            .collect();
        // A container no longer up for removal (a rollback brought it back) starts over.
        self.leaving.retain(|id, (app, _)| proposed.contains(id) || busy.contains(app));
        for step in &steps {
            if let Step::Remove { app, process, release, generation, reason, .. } = step
                && *reason == Removal::Exited
            {
                self.crashed(app, process, (*release, *generation), now, interval);
            }
        }
        let mut due = Vec::with_capacity(steps.len());
        for step in steps {
            let until = match &step {
                // Gone already: nothing is left to drain.
                Step::Remove { reason: Removal::Exited | Removal::NodeLost, .. } => None,
                Step::Remove { id, app, .. } => {
                    Some(self.leaving.entry(id.clone()).or_insert((app.clone(), now)).1 + drain)
                }
                Step::Start(Desired { spec, .. }) => self
                    .crashes
                    .get(&(spec.app.clone(), spec.process.clone()))
                    .filter(|c| c.of == (spec.release, spec.generation))
                    .map(|c| c.last + backoff(c.count, interval)),
            };
            match until {
                Some(until) if until > now => wait(until),
                _ => due.push(step),
            }
        }
        (due, next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scheduler::StartSpec;
    use crate::scheduler::health::Check;

    fn start(app: &str, release: u32) -> Step {
        Step::Start(Desired {
            spec: StartSpec {
                app: app.parse().unwrap(),
                app_id: 1,
                release,
                generation: 0,
                process: "web".into(),
                image: "img".into(),
                command: "serve".into(),
                env: Vec::new(),
                limits: Default::default(),
            },
            quantity: 1,
            check: Check::Running,
            boot_timeout: Duration::from_secs(1),
            on_trial: None,
        })
    }

    fn remove(id: &str, reason: Removal) -> Step {
        let app = "shop".parse().unwrap();
        Step::Remove { id: id.into(), app, process: "web".into(), release: 1, generation: 0, reason }
    }

    const SECOND: Duration = Duration::from_secs(1);

    /// The steps due at `now` when no app is busy, with a reconcile interval of a second.
    fn due_when_free(hold: &mut Hold, steps: Vec<Step>, now: Instant, drain: Duration) -> (Vec<Step>, Option<Instant>) {
        hold.due(steps, &HashSet::new(), now, drain, SECOND)
    }

    #[test]
    fn backoff_doubles_from_the_second_crash_up_to_a_limit() {
        let pauses: Vec<u64> = (1..=12).map(|n| backoff(n, Duration::from_secs(10)).as_secs()).collect();
        assert_eq!(pauses, [0, 20, 40, 80, 160, 300, 300, 300, 300, 300, 300, 300]);
    }

    #[test]
    fn leaving_containers_drain_and_exited_ones_go_at_once() {
        let mut hold = Hold::default();
        let t0 = Instant::now();
        let steps =
            vec![remove("old", Removal::Replaced), remove("dead", Removal::Exited), remove("lost", Removal::NodeLost)];
        let (due, next) = due_when_free(&mut hold, steps.clone(), t0, 5 * SECOND);
        assert_eq!(due.len(), 2, "the exited one and the one whose node is down");
        assert_eq!(hold.crashes(&"shop".parse().unwrap(), "web", SECOND).0, 1, "a lost node is no crash");
        assert_eq!(next, Some(t0 + 5 * SECOND));
        let (due, _) = due_when_free(&mut hold, vec![remove("old", Removal::Replaced)], t0 + 3 * SECOND, 5 * SECOND);
        assert!(due.is_empty(), "still draining");
        let (due, next) = due_when_free(&mut hold, vec![remove("old", Removal::Replaced)], t0 + 5 * SECOND, 5 * SECOND);
        assert_eq!((due.len(), next), (1, None), "drained");
        // Brought back (no longer proposed), then proposed again: drains afresh.
        due_when_free(&mut hold, Vec::new(), t0 + 6 * SECOND, 5 * SECOND);
        let (due, _) = due_when_free(&mut hold, vec![remove("old", Removal::ScaledDown)], t0 + 7 * SECOND, 5 * SECOND);
        assert!(due.is_empty());
    }

    #[test]
    fn a_busy_apps_draining_containers_keep_draining_while_it_is_not_planned_for() {
        let mut hold = Hold::default();
        let t0 = Instant::now();
        let busy: HashSet<AppName> = ["shop".parse().unwrap()].into();
        due_when_free(&mut hold, vec![remove("old", Removal::ScaledDown)], t0, 5 * SECOND);
        hold.due(Vec::new(), &busy, t0 + 2 * SECOND, 5 * SECOND, SECOND);
        assert!(hold.is_leaving("old"), "still out of the routes");
        let (due, _) = due_when_free(&mut hold, vec![remove("old", Removal::ScaledDown)], t0 + 5 * SECOND, 5 * SECOND);
        assert_eq!(due.len(), 1, "drained since it first came up, not since the app was free again");
    }

    #[test]
    fn a_crashing_process_type_starts_again_after_its_backoff_and_recovers() {
        let (mut hold, app) = (Hold::default(), "shop".parse().unwrap());
        let t0 = Instant::now();
        assert_eq!(hold.crashed(&app, "web", (2, 0), t0, SECOND), (1, Duration::ZERO));
        assert_eq!(due_when_free(&mut hold, vec![start("shop", 2)], t0, SECOND).0.len(), 1, "at once after one crash");
        assert_eq!(hold.crashed(&app, "web", (2, 0), t0, SECOND), (2, 2 * SECOND));
        let (due, next) = due_when_free(&mut hold, vec![start("shop", 2), start("other", 2)], t0 + SECOND, SECOND);
        assert_eq!((due.len(), next), (1, Some(t0 + 2 * SECOND)), "another app is not held");
        assert_eq!(
            due_when_free(&mut hold, vec![start("shop", 3)], t0 + SECOND, SECOND).0.len(),
            1,
            "nor a new release"
        );
        assert_eq!(due_when_free(&mut hold, vec![start("shop", 2)], t0 + 2 * SECOND, SECOND).0.len(), 1);
        assert_eq!(hold.crashed(&app, "web", (2, 0), t0 + 3 * SECOND, SECOND).0, 3, "crashes add up");
        assert_eq!(hold.crashed(&app, "web", (3, 0), t0 + 3 * SECOND, SECOND).0, 1, "a new release starts over");
        let later = t0 + CRASH_MEMORY + 4 * SECOND;
        assert_eq!(hold.crashed(&app, "web", (3, 0), later, SECOND).0, 1, "and so does a quiet spell");
    }
}
