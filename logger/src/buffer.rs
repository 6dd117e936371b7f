//! Per-app ring buffers of recent lines, and the live feed that `logs -f` follows. The
//! oldest line goes when a buffer is full.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use skiff_api::{AppName, LogLine};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{broadcast, mpsc};

use crate::drain::Drains;

/// Lines a slow follower may fall behind by before it skips ahead.
const LIVE_BACKLOG: usize = 4096;

/// What the logger took in since it started.
#[derive(Debug, Default)]
pub struct Stats {
    /// Lines kept (from containers and syslog).
    pub lines: AtomicU64,
    /// Syslog messages or connections refused (no app named, broken framing).
    pub rejected: AtomicU64,
    /// Lines not shared with other replicas because Redis was slow or away.
    pub unshared: AtomicU64,
    /// Container lines read again after a restart, already taken in before it.
    pub replayed: AtomicU64,
}

/// Every app's recent lines.
#[derive(Debug)]
pub struct Buffers {
    pub stats: Stats,
    capacity: usize,
    apps: Mutex<HashMap<AppName, VecDeque<LogLine>>>,
    live: broadcast::Sender<LogLine>,
    drains: Option<Arc<Drains>>,
    /// Where lines taken in here go to reach other replicas.
    share: Option<mpsc::Sender<LogLine>>,
}

impl Buffers {
    /// Buffers keeping at most `capacity` lines per app.
    pub fn new(capacity: usize) -> Self {
        Self::with_drains(capacity, None)
    }

    /// Buffers that also hand every line to `drains`.
    pub fn with_drains(capacity: usize, drains: Option<Arc<Drains>>) -> Self {
        Self {
            stats: Stats::default(),
            capacity: capacity.max(1),
            apps: Mutex::new(HashMap::new()),
            live: broadcast::Sender::new(LIVE_BACKLOG),
            drains,
            share: None,
        }
    }

    /// These buffers, also handing every line taken in here to `share` (see
    /// [`crate::shared`]); never waits: a line that finds it full is counted in
    /// [`Stats::unshared`].
    pub fn sharing(self, share: mpsc::Sender<LogLine>) -> Self {
        Self { share: Some(share), ..self }
    }

    /// The most lines kept per app.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The drains lines are handed to.
    pub fn drains(&self) -> Option<&Arc<Drains>> {
        self.drains.as_ref()
    }

    /// Appends a line taken in here to its app's buffer and hands it to followers, drains
    /// and other replicas.
    pub fn push(&self, line: LogLine) {
        self.stats.lines.fetch_add(1, Ordering::Relaxed);
        let mut apps = self.lock();
        // Under the lock, so that drains and replicas see lines in the order kept here.
        if let Some(drains) = &self.drains {
            drains.offer(&line);
        }
        if let Some(share) = &self.share
            && share.try_send(line.clone()).is_err()
        {
            self.stats.unshared.fetch_add(1, Ordering::Relaxed);
        }
        Self::keep(&mut apps, self.capacity, &self.live, line);
    }

    /// Appends a line another replica took in: kept and followed here, but not drained
    /// again (its replica did) nor shared again.
    pub fn push_shared(&self, line: LogLine) {
        let mut apps = self.lock();
        Self::keep(&mut apps, self.capacity, &self.live, line);
    }

    /// Keeps a container line read again after a restart, taken in before it: not drained,
    /// shared or counted again; not even kept when the buffers are shared (the other
    /// replicas' lists hold it already).
    pub fn push_replayed(&self, line: LogLine) {
        self.stats.replayed.fetch_add(1, Ordering::Relaxed);
        if self.share.is_none() {
            let mut apps = self.lock();
            Self::keep(&mut apps, self.capacity, &self.live, line);
        }
    }

    fn keep(
        apps: &mut HashMap<AppName, VecDeque<LogLine>>,
        capacity: usize,
        live: &broadcast::Sender<LogLine>,
        line: LogLine,
    ) {
        let buffer = apps.entry(line.app.clone()).or_default();
        if buffer.len() == capacity {
            buffer.pop_front();
        }
        buffer.push_back(line.clone());
        // No follower is not an error.
        let _ = live.send(line);
    }

    /// The last `n` lines of an app, and every line pushed after them (of every app): no
    /// line is missed or repeated between the two.
    pub fn tail_and_follow(&self, app: &AppName, n: usize) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let apps = self.lock();
        let receiver = self.live.subscribe();
        let tail = apps
            .get(app)
            .map_or_else(Vec::new, |buffer| buffer.iter().skip(buffer.len().saturating_sub(n)).cloned().collect());
        (tail, receiver)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<AppName, VecDeque<LogLine>>> {
        // A poisoned lock means a push panicked; the buffers themselves stay consistent.
        self.apps.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::LogSource;

    fn line(app: &str, message: &str) -> LogLine {
        LogLine {
            time: String::new(),
            app: app.parse().unwrap(),
            source: LogSource::App,
            process: "web".into(),
            release: None,
            message: message.into(),
        }
    }

    #[test]
    fn buffers_keep_the_newest_lines_per_app() {
        let buffers = Buffers::new(2);
        for m in ["1", "2", "3"] {
            buffers.push(line("a", m));
        }
        buffers.push(line("b", "x"));
        let tail: Vec<String> =
            buffers.tail_and_follow(&"a".parse().unwrap(), 10).0.into_iter().map(|l| l.message).collect();
        assert_eq!(tail, ["2", "3"]);
        assert_eq!(buffers.tail_and_follow(&"a".parse().unwrap(), 1).0[0].message, "3");
        assert!(buffers.tail_and_follow(&"c".parse().unwrap(), 5).0.is_empty());
    }
}
