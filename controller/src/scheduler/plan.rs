//! The reconcile plan: pure, deterministic, table-tested.

use std::collections::BTreeSet;

use skiff_api::AppName;

/// The `web` process an app's current release should run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    pub app: AppName,
    pub release: u32,
    pub image: String,
    /// The Procfile's `web` command; empty runs the image's own command.
    pub command: String,
}

/// A container that exists, as the runtime reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observed {
    pub id: String,
    pub app: AppName,
    pub release: u32,
    pub process: String,
    pub running: bool,
    /// Accepts connections on its published port.
    pub ready: bool,
}

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Start the desired `web` container of a release.
    Start(Desired),
    /// Remove a container (stopping it first).
    Remove { id: String, app: AppName, release: u32, reason: &'static str },
}

/// Decides what to start and what to remove.
///
/// - A desired release without a running container of its own gets one started.
/// - A container whose app has no desired release (destroyed, or no `web`) is removed.
/// - A container that exited is removed (a running one of its release is started anew).
/// - A container of an older release is removed once one of the desired release is ready;
///   until then it keeps serving.
pub fn plan(desired: &[Desired], observed: &[Observed]) -> Vec<Step> {
    let mut steps = Vec::new();
    for want in desired {
        let running_current =
            observed.iter().any(|c| c.app == want.app && c.release == want.release && c.process == "web" && c.running);
        if !running_current {
            steps.push(Step::Start(want.clone()));
        }
    }
    let ready_apps: BTreeSet<(&AppName, u32)> =
        observed.iter().filter(|c| c.ready && c.process == "web").map(|c| (&c.app, c.release)).collect();
    for container in observed {
        let want = desired.iter().find(|d| d.app == container.app);
        let reason = match want {
            None => Some("app has no release to run"),
            Some(_) if !container.running => Some("container exited"),
            Some(want) if container.release != want.release && ready_apps.contains(&(&want.app, want.release)) => {
                Some("replaced by a newer release")
            }
            Some(_) => None,
        };
        if let Some(reason) = reason {
            steps.push(Step::Remove {
                id: container.id.clone(),
                app: container.app.clone(),
                release: container.release,
                reason,
            });
        }
    }
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(app: &str, release: u32) -> Desired {
        Desired { app: app.parse().unwrap(), release, image: format!("img-{release}"), command: "serve".into() }
    }

    fn seen(id: &str, app: &str, release: u32, running: bool, ready: bool) -> Observed {
        Observed { id: id.into(), app: app.parse().unwrap(), release, process: "web".into(), running, ready }
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

    #[test]
    fn a_new_release_starts_without_touching_the_old_one() {
        let steps = plan(&[want("a", 2)], &[seen("old", "a", 1, true, true)]);
        assert_eq!(steps, vec![Step::Start(want("a", 2))]);
    }

    #[test]
    fn the_old_release_goes_once_the_new_one_is_ready() {
        let steps = plan(&[want("a", 2)], &[seen("old", "a", 1, true, true), seen("new", "a", 2, true, true)]);
        assert_eq!(removed(&steps), vec!["old"]);
        assert!(!steps.iter().any(|s| matches!(s, Step::Start(_))));
    }

    #[test]
    fn a_new_container_that_is_not_ready_keeps_the_old_one() {
        let steps = plan(&[want("a", 2)], &[seen("old", "a", 1, true, true), seen("new", "a", 2, true, false)]);
        assert!(steps.is_empty());
    }

    #[test]
    fn exited_containers_are_replaced() {
        let steps = plan(&[want("a", 1)], &[seen("dead", "a", 1, false, false)]);
        assert_eq!(steps.len(), 2);
        assert!(steps.contains(&Step::Start(want("a", 1))));
        assert_eq!(removed(&steps), vec!["dead"]);
    }

    #[test]
    fn containers_of_destroyed_apps_are_removed() {
        let steps = plan(&[], &[seen("orphan", "gone", 3, true, true)]);
        assert_eq!(removed(&steps), vec!["orphan"]);
    }

    #[test]
    fn a_converged_platform_has_nothing_to_do() {
        assert!(plan(&[want("a", 1)], &[seen("c", "a", 1, true, true)]).is_empty());
    }
}
