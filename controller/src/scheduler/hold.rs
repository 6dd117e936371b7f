//! Steps that wait: a container leaving service drains for a grace period before it is
//! stopped (routers have swapped it out; requests in flight finish), and a process type
//! whose containers keep crashing is started again only after a growing pause (crash-loop
//! backoff: at once after the first crash, then 2, 4, 8… reconcile intervals, at most
//! [`MAX_BACKOFF`]).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use skiff_api::AppName;

use super::plan::Step;

/// The longest pause between restarts of a crashing process type.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);
/// A crash this long after the previous one starts the count afresh.
const CRASH_MEMORY: Duration = Duration::from_secs(600);

/// Why a container is removed when it crashed (rather than left service).
pub const EXITED: &str = "container exited";

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
}

/// What waits, and until when.
#[derive(Debug, Default)]
pub struct Hold {
    /// Containers leaving service, since when.
    leaving: HashMap<String, Instant>,
    /// Crashes in a row per app and process type.
    crashes: HashMap<(AppName, String), Crashes>,
}

impl Hold {
    /// Records a crash of one of `app`'s `process` containers at `now`; says how many in a
    /// row and the pause before the next start.
    pub fn crashed(&mut self, app: &AppName, process: &str, now: Instant, interval: Duration) -> (u32, Duration) {
        let entry = self.crashes.entry((app.clone(), process.to_owned())).or_insert(Crashes { count: 0, last: now });
        if now.duration_since(entry.last) > CRASH_MEMORY {
            entry.count = 0;
        }
        entry.count += 1;
        entry.last = now;
        (entry.count, backoff(entry.count, interval))
    }

    /// Forgets `app`'s `process` crashes: a container of it became ready.
    pub fn recovered(&mut self, app: &AppName, process: &str) {
        self.crashes.remove(&(app.clone(), process.to_owned()));
    }

    /// The steps due at `now`, and when the first held one falls due. A container that
    /// leaves service (not one that exited) is removed `drain` after it first came up for
    /// removal; a start of a crashing process type waits out its backoff.
    pub fn due(
        &mut self,
        steps: Vec<Step>,
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
        self.leaving.retain(|id, _| proposed.contains(id));
        let mut due = Vec::with_capacity(steps.len());
        for step in steps {
            let until = match &step {
                Step::Remove { reason, .. } if *reason == EXITED => None,
                Step::Remove { id, .. } => Some(*self.leaving.entry(id.clone()).or_insert(now) + drain),
                Step::Start(desired) => self
                    .crashes
                    .get(&(desired.spec.app.clone(), desired.spec.process.clone()))
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
    use crate::scheduler::plan::Desired;

    fn start(app: &str) -> Step {
        Step::Start(Desired {
            spec: StartSpec {
                app: app.parse().unwrap(),
                release: 2,
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
        })
    }

    fn remove(id: &str, reason: &'static str) -> Step {
        Step::Remove { id: id.into(), app: "shop".parse().unwrap(), process: "web".into(), release: 1, reason }
    }

    const SECOND: Duration = Duration::from_secs(1);

    #[test]
    fn backoff_doubles_from_the_second_crash_up_to_a_limit() {
        let pauses: Vec<u64> = (1..=12).map(|n| backoff(n, Duration::from_secs(10)).as_secs()).collect();
        assert_eq!(pauses, [0, 20, 40, 80, 160, 300, 300, 300, 300, 300, 300, 300]);
    }

    #[test]
    fn leaving_containers_drain_and_exited_ones_go_at_once() {
        let mut hold = Hold::default();
        let t0 = Instant::now();
        let steps = vec![remove("old", "replaced by a newer release"), remove("dead", EXITED)];
        let (due, next) = hold.due(steps.clone(), t0, 5 * SECOND, SECOND);
        assert_eq!(due.len(), 1, "the exited one only");
        assert_eq!(next, Some(t0 + 5 * SECOND));
        let (due, _) =
            hold.due(vec![remove("old", "replaced by a newer release")], t0 + 3 * SECOND, 5 * SECOND, SECOND);
        assert!(due.is_empty(), "still draining");
        let (due, next) =
            hold.due(vec![remove("old", "replaced by a newer release")], t0 + 5 * SECOND, 5 * SECOND, SECOND);
        assert_eq!((due.len(), next), (1, None), "drained");
        // Brought back (no longer proposed), then proposed again: drains afresh.
        hold.due(Vec::new(), t0 + 6 * SECOND, 5 * SECOND, SECOND);
        let (due, _) = hold.due(vec![remove("old", "scaled down")], t0 + 7 * SECOND, 5 * SECOND, SECOND);
        assert!(due.is_empty());
    }

    #[test]
    fn a_crashing_process_type_starts_again_after_its_backoff_and_recovers() {
        let (mut hold, app) = (Hold::default(), "shop".parse().unwrap());
        let t0 = Instant::now();
        assert_eq!(hold.crashed(&app, "web", t0, SECOND), (1, Duration::ZERO));
        assert_eq!(hold.due(vec![start("shop")], t0, SECOND, SECOND).0.len(), 1, "at once after one crash");
        assert_eq!(hold.crashed(&app, "web", t0, SECOND), (2, 2 * SECOND));
        let (due, next) = hold.due(vec![start("shop"), start("other")], t0 + SECOND, SECOND, SECOND);
        assert_eq!((due.len(), next), (1, Some(t0 + 2 * SECOND)), "another app is not held");
        assert_eq!(hold.due(vec![start("shop")], t0 + 2 * SECOND, SECOND, SECOND).0.len(), 1);
        hold.recovered(&app, "web");
        assert_eq!(hold.crashed(&app, "web", t0 + 3 * SECOND, SECOND).0, 1, "counting starts over");
        assert_eq!(hold.crashed(&app, "web", t0 + CRASH_MEMORY + 4 * SECOND, SECOND).0, 1, "and after a quiet spell");
    }
}
