//! Following app containers' output through the Docker API.
//!
//! The logger lists this platform's containers (label `skiff.platform`) at start and whenever the
//! engine reports a container start, and follows each one's stdout and stderr from the
//! beginning of its log. Containers keep the engine's default log driver, so an app's
//! start never depends on the logger being up, and a restarted logger reads every line
//! again from the engine.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::query_parameters::{EventsOptions, ListContainersOptions, LogsOptions};
use futures_util::StreamExt;
use skiff_api::{AppName, LogLine, LogSource};
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::buffer::Buffers;
use crate::positions::Positions;

/// The current time as RFC 3339.
pub fn now() -> String {
    time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

/// Follows every Skiff container's output into the buffers.
pub struct Collector {
    docker: Docker,
    /// Only containers labelled `skiff.platform=<platform>` are followed.
    platform: String,
    buffers: Arc<Buffers>,
    positions: Positions,
    following: Mutex<HashSet<String>>,
    tasks: TaskTracker,
}

/// How often read positions are saved.
const SAVE_POSITIONS: Duration = Duration::from_secs(1);

impl Collector {
    /// Connects to the local Docker engine; read positions are kept in `positions`.
    ///
    /// # Errors
    /// When the engine is unreachable.
    pub async fn connect(
        platform: &str,
        buffers: Arc<Buffers>,
        positions: Positions,
    ) -> Result<Arc<Self>, bollard::errors::Error> {
        let docker = skiff_service::docker::connect().await?;
        Ok(Arc::new(Self {
            docker,
            platform: platform.to_owned(),
            buffers,
            positions,
            following: Mutex::new(HashSet::new()),
            tasks: TaskTracker::new(),
        }))
    }

    /// Whether the engine answers.
    ///
    /// # Errors
    /// The engine's error.
    pub async fn ping(&self) -> Result<(), bollard::errors::Error> {
        self.docker.ping().await.map(drop)
    }

    /// Runs until `shutdown`: follows running containers and every one that starts, and
    /// saves read positions every second (and at the end).
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let saver = {
            let collector = self.clone();
            let shutdown = shutdown.clone();
            tokio::spawn(async move {
                loop {
                    let stop = tokio::select! {
                        () = tokio::time::sleep(SAVE_POSITIONS) => false,
                        () = shutdown.cancelled() => true,
                    };
                    let live = collector.lock().clone();
                    if let Err(error) = collector.positions.save(&live) {
                        tracing::warn!(%error, "logger.docker: read positions not saved");
                    }
                    if stop {
                        return;
                    }
                }
            })
        };
        let filters = HashMap::from([
            ("type".to_owned(), vec!["container".to_owned()]),
            ("event".to_owned(), vec!["start".to_owned()]),
            ("label".to_owned(), vec![format!("skiff.platform={}", self.platform)]),
        ]);
        while !shutdown.is_cancelled() {
            let mut events =
                self.docker.events(Some(EventsOptions { filters: Some(filters.clone()), ..Default::default() }));
            self.follow_running(&shutdown).await;
            loop {
                tokio::select! {
                    event = events.next() => match event {
                        Some(Ok(_)) => self.follow_running(&shutdown).await,
                        Some(Err(error)) => {
                            tracing::warn!(%error, "logger.docker.events");
                            break;
                        }
                        None => break,
                    },
                    () = shutdown.cancelled() => break,
                }
            }
            tokio::select! {
                () = tokio::time::sleep(Duration::from_secs(1)) => {}
                () = shutdown.cancelled() => {}
            }
        }
        self.tasks.close();
        self.tasks.wait().await;
        let _ = saver.await;
    }

    async fn follow_running(self: &Arc<Self>, shutdown: &CancellationToken) {
        let options = ListContainersOptions {
            filters: Some(HashMap::from([("label".to_owned(), vec![format!("skiff.platform={}", self.platform)])])),
            ..Default::default()
        };
        let containers = match self.docker.list_containers(Some(options)).await {
            Ok(containers) => containers,
            Err(error) => {
                tracing::warn!(%error, "logger.docker.list");
                return;
            }
        };
        for container in containers {
            let (Some(id), Some(labels)) = (container.id, container.labels) else {
                continue;
            };
            let Some(app) = labels.get("skiff.app").and_then(|a| a.parse::<AppName>().ok()) else {
                continue;
            };
            let process = labels.get("skiff.process").cloned().unwrap_or_else(|| "web".into());
            let release = labels.get("skiff.release").and_then(|r| r.parse().ok());
            if !self.lock().insert(id.clone()) {
                continue;
            }
            let collector = self.clone();
            let shutdown = shutdown.clone();
            self.tasks.spawn(async move {
                tokio::select! {
                    () = collector.follow(&id, app, process, release) => {}
                    () = shutdown.cancelled() => {}
                }
                collector.lock().remove(&id);
            });
        }
    }

    async fn follow(&self, id: &str, app: AppName, process: String, release: Option<u32>) {
        let options = LogsOptions { follow: true, stdout: true, stderr: true, timestamps: true, ..Default::default() };
        let instance = format!("{process}.{}", &id[..id.len().min(6)]);
        let mut stream = self.docker.logs(id, Some(options));
        while let Some(item) = stream.next().await {
            let bytes = match item {
                Ok(LogOutput::StdOut { message } | LogOutput::StdErr { message } | LogOutput::Console { message }) => {
                    message
                }
                Ok(LogOutput::StdIn { .. }) => continue,
                Err(error) => {
                    tracing::debug!(%error, container = id, "logger.docker.follow.ended");
                    return;
                }
            };
            for raw in String::from_utf8_lossy(&bytes).lines() {
                let (time, message) = raw.split_once(' ').unwrap_or(("", raw));
                let line = LogLine {
                    time: time.to_owned(),
                    app: app.clone(),
                    source: LogSource::App,
                    process: instance.clone(),
                    release,
                    message: message.to_owned(),
                };
                match time::OffsetDateTime::parse(time, &time::format_description::well_known::Rfc3339) {
                    Ok(at) if self.positions.seen_before(id, at) => self.buffers.push_replayed(line),
                    Ok(at) => {
                        self.positions.advance(id, at);
                        self.buffers.push(line);
                    }
                    Err(_) => self.buffers.push(line),
                }
            }
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<String>> {
        self.following.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
