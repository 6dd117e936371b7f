//! How far the logger has read each container's output, kept in a file. After a restart
//! the logger reads every container's log from its start again (so that no line written
//! while it was down is lost); the lines up to the saved position were taken in before,
//! and are kept for reading but not drained or counted again.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Each container's last line time.
#[derive(Debug)]
pub struct Positions {
    path: PathBuf,
    /// As saved by the previous run.
    before: HashMap<String, OffsetDateTime>,
    now: Mutex<HashMap<String, OffsetDateTime>>,
    dirty: AtomicBool,
}

impl Positions {
    /// The positions kept in `path` (none when it is absent or unreadable).
    pub fn load(path: PathBuf) -> Self {
        let saved: HashMap<String, String> =
            std::fs::read(&path).ok().and_then(|bytes| serde_json::from_slice(&bytes).ok()).unwrap_or_default();
        let before: HashMap<String, OffsetDateTime> = saved
            .into_iter()
            .filter_map(|(id, time)| Some((id, OffsetDateTime::parse(&time, &Rfc3339).ok()?)))
            .collect();
        Self { path, now: Mutex::new(before.clone()), before, dirty: AtomicBool::new(false) }
    }

    /// Whether the line `container` wrote at `time` was taken in before a restart.
    pub fn seen_before(&self, container: &str, time: OffsetDateTime) -> bool {
        self.before.get(container).is_some_and(|last| time <= *last)
    }

    /// Records that `container`'s output was read up to `time`.
    pub fn advance(&self, container: &str, time: OffsetDateTime) {
        let mut now = self.lock();
        if now.get(container).is_none_or(|last| time > *last) {
            now.insert(container.to_owned(), time);
            self.dirty.store(true, Ordering::Relaxed);
        }
    }

    /// Writes the positions of the containers in `live` (the others are gone) when they
    /// changed: to a temporary file, then renamed over the old one.
    ///
    /// # Errors
    /// When the file cannot be written.
    pub fn save(&self, live: &HashSet<String>) -> std::io::Result<()> {
        if !self.dirty.swap(false, Ordering::Relaxed) {
            return Ok(());
        }
        let text: HashMap<String, String> = {
            let mut now = self.lock();
            now.retain(|id, _| live.contains(id));
            now.iter().filter_map(|(id, time)| Some((id.clone(), time.format(&Rfc3339).ok()?))).collect()
        };
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent)?;
        }
        let staging = self.path.with_extension("tmp");
        std::fs::write(&staging, serde_json::to_vec(&text)?)?;
        std::fs::rename(&staging, &self.path)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, OffsetDateTime>> {
        self.now.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(time: &str) -> OffsetDateTime {
        OffsetDateTime::parse(time, &Rfc3339).unwrap()
    }

    #[test]
    fn positions_survive_a_restart_and_forget_gone_containers() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("logger/positions.json");
        let first = Positions::load(path.clone());
        assert!(!first.seen_before("a", at("2026-11-24T20:00:00Z")), "nothing was seen before the first run");
        first.advance("a", at("2026-11-24T20:00:01.5Z"));
        first.advance("a", at("2026-11-24T20:00:01.25Z"));
        first.advance("gone", at("2026-11-24T20:00:00Z"));
        first.save(&HashSet::from(["a".to_owned()])).unwrap();

        let second = Positions::load(path);
        assert!(second.seen_before("a", at("2026-11-24T20:00:01.5Z")));
        assert!(second.seen_before("a", at("2026-11-24T20:00:01.25Z")), "times compare as times, not text");
        assert!(!second.seen_before("a", at("2026-11-24T20:00:01.500001Z")));
        assert!(!second.seen_before("gone", at("2026-11-24T19:00:00Z")), "gone containers are forgotten");
    }
}
