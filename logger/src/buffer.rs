//! Per-app ring buffers of recent lines. The oldest line goes when a buffer is full.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use skiff_api::{AppName, LogLine};

/// Every app's recent lines.
#[derive(Debug)]
pub struct Buffers {
    capacity: usize,
    apps: Mutex<HashMap<AppName, VecDeque<LogLine>>>,
}

impl Buffers {
    /// Buffers keeping at most `capacity` lines per app.
    pub fn new(capacity: usize) -> Self {
        Self { capacity: capacity.max(1), apps: Mutex::new(HashMap::new()) }
    }

    /// Appends a line to its app's buffer.
    pub fn push(&self, line: LogLine) {
        let mut apps = self.lock();
        let buffer = apps.entry(line.app.clone()).or_default();
        if buffer.len() == self.capacity {
            buffer.pop_front();
        }
        buffer.push_back(line);
    }

    /// The last `n` lines of an app, oldest first.
    pub fn tail(&self, app: &AppName, n: usize) -> Vec<LogLine> {
        let apps = self.lock();
        apps.get(app)
            .map_or_else(Vec::new, |buffer| buffer.iter().skip(buffer.len().saturating_sub(n)).cloned().collect())
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
        let tail: Vec<String> = buffers.tail(&"a".parse().unwrap(), 10).into_iter().map(|l| l.message).collect();
        assert_eq!(tail, ["2", "3"]);
        assert_eq!(buffers.tail(&"a".parse().unwrap(), 1)[0].message, "3");
        assert!(buffers.tail(&"c".parse().unwrap(), 5).is_empty());
    }
}
