//! Pause containers: network namespaces started ahead, as Kubernetes keeps a pod's.
//!
//! Most of a `docker start` on this kind of engine is the making of the container's network
//! namespace: a container started in another container's namespace starts in 80–90 ms,
//! against about 200 on a namespace of its own. And a namespace's first join of a user
//! network takes the engine 120–130 ms, half of it starting the engine's DNS resolver in the
//! namespace, which stays when the namespace leaves the network; the join can only begin
//! once the namespace is there. So each controller keeps [`SPARES`] pause containers started
//! ahead, each running nothing but a shell that waits on its open standard input: each is
//! made on the platform's pauses' network (internal, its containers unable to reach each
//! other) and taken off it at once, which leaves a namespace with loopback only and its
//! resolver running. The warm container made for an app's first release (`warm.rs`) starts
//! in one of those namespaces, and the pause container joins the app's network (made
//! meanwhile) as `web` at the same time, in 45–65 ms: a push at once after `apps:create`
//! waits for the longer of the two instead of both one after the other. Two, because apps
//! often come in pairs made together (a pipeline's staging and production).
//!
//! The web container's address is the pause container's (`docker inspect` shows its network
//! mode as `container:<id>`), and the pause container goes when the web container goes.
//! Pause containers carry the platform's label and no app's (labels are set at making,
//! before the app exists); they are named `skiff-pause-…` (with the app's name once taken).
//! One that no container runs in goes at the controller's sweep after [`UNUSED_FOR`],
//! unless it is one of this process's spares; a spare that stopped goes and is made again.
//! A controller that stops removes its spares.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bollard::models::{
    ContainerCreateBody, ContainerSummary, ContainerSummaryStateEnum, HostConfig, NetworkDisconnectRequest,
};
use bollard::query_parameters::{CreateContainerOptions, RenameContainerOptions};
use skiff_api::AppName;

use super::DockerRuntime;
use crate::scheduler::runtime::RuntimeError;

/// The label of a pause container.
const PAUSE_LABEL: &str = "skiff.pause";
/// Pause containers are named with this.
const PAUSE_NAME: &str = "skiff-pause-";
/// A pause container no container runs in goes at the sweep once this old (another
/// process's spare, or one left by a controller that stopped).
const UNUSED_FOR: Duration = Duration::from_secs(15 * 60);
/// How many pause containers each controller keeps started ahead.
const SPARES: usize = 2;
/// How long after a warm container is made spares are made again: a push that follows at
/// once is over by then, and with it the engine's work for it.
const QUIET: Duration = Duration::from_secs(1);
/// How many times in a row a spare's making is tried (a second apart) before the next
/// sweep or making tries again.
const MAKING_ATTEMPTS: u32 = 3;
/// What a pause container runs: a shell waiting on its standard input, which the engine
/// holds open and nobody writes to.
const WAIT: &str = "read -r _";
/// The most processes a pause container may run.
const PAUSE_PIDS: i64 = 4;

/// This process's pause containers: the spares, and those taken and not yet run in.
#[derive(Debug, Default)]
pub(super) struct Pauses {
    /// The spares, started and on no network.
    spares: Vec<String>,
    /// The image spares are made of (the last stack held).
    image: Option<String>,
    /// Whether spares are being made.
    making: bool,
    /// The controller is stopping: no more spares are made.
    closed: bool,
    /// Taken, with no container in their namespace yet: the sweep leaves them.
    taken: HashSet<String>,
}

/// The container whose network namespace a container runs in, from its network mode.
pub(super) fn namespace_owner(network_mode: Option<&str>) -> Option<&str> {
    network_mode?.strip_prefix("container:")
}

impl DockerRuntime {
    fn pauses(&self) -> std::sync::MutexGuard<'_, Pauses> {
        self.pauses.lock().expect("pauses")
    }

    /// Takes one of this process's spare pause containers, if one runs: the caller starts a
    /// container in its namespace, then calls [`Self::settled`].
    pub(super) fn take_pause(&self) -> Option<String> {
        let mut pauses = self.pauses();
        let id = pauses.spares.pop()?;
        pauses.taken.insert(id.clone());
        Some(id)
    }

    /// A container now runs in the namespace of pause container `id` (or none will): the
    /// sweep may look at it again. It is named after `app`.
    pub(super) fn settled(&self, id: &str, app: &AppName) {
        self.pauses().taken.remove(id);
        let runtime = self.clone();
        let (id, app) = (id.to_owned(), app.clone());
        tokio::spawn(async move {
            let name = format!("{PAUSE_NAME}{app}-{:06x}", rand::random::<u32>() & 0xff_ffff);
            if let Err(error) = runtime.docker.rename_container(&id, RenameContainerOptions { name }).await {
                tracing::debug!(%error, "controller.pause.unrenamed");
            }
        });
    }

    /// [`Self::replenish_pause`] once the engine has had [`QUIET`] without a warm container
    /// made: called as each making ends.
    pub(super) fn replenish_pause_when_quiet(&self) {
        let runtime = self.clone();
        tokio::spawn(async move {
            tokio::time::sleep(QUIET).await;
            runtime.replenish_pause(None);
        });
    }

    /// Returns once a spare waits, or no spare is being made.
    pub(super) async fn spare_made(&self) {
        loop {
            let changed = self.spares_changed.notified();
            tokio::pin!(changed);
            changed.as_mut().enable();
            {
                let pauses = self.pauses();
                if !pauses.spares.is_empty() || !pauses.making {
                    return;
                }
            }
            changed.await;
        }
    }

    /// Makes spare pause containers in the background, one at a time, until there are
    /// [`SPARES`]; of `image` when given (it is remembered for the next ones), else of the
    /// last one given. Never beside the making of a warm container: the first push of an
    /// app made at once waits for that, and the engine does one thing at a time faster.
    pub(super) fn replenish_pause(&self, image: Option<&str>) {
        {
            let mut pauses = self.pauses();
            if let Some(image) = image {
                pauses.image = Some(image.to_owned());
            }
            if pauses.spares.len() >= SPARES || pauses.making || pauses.closed {
                return;
            }
            pauses.making = true;
        }
        let runtime = self.clone();
        tokio::spawn(async move {
            let mut failures = 0;
            loop {
                let image = {
                    let mut pauses = runtime.pauses();
                    let warming = !runtime.warming.lock().expect("warming").is_empty();
                    match pauses.image.clone() {
                        Some(image) if pauses.spares.len() < SPARES && !warming && !pauses.closed => image,
                        _ => {
                            pauses.making = false;
                            drop(pauses);
                            runtime.spares_changed.notify_waiters();
                            return;
                        }
                    }
                };
                match runtime.make_pause(&image).await {
                    Ok(id) => {
                        let closed = {
                            let mut pauses = runtime.pauses();
                            if !pauses.closed {
                                pauses.spares.push(id.clone());
                            }
                            pauses.closed
                        };
                        if !closed {
                            runtime.spares_changed.notify_waiters();
                            continue;
                        }
                        // Made as the controller stopped: it goes too.
                        runtime.force_remove(&id).await;
                    }
                    Err(error) if failures + 1 < MAKING_ATTEMPTS => {
                        tracing::info!(%error, %image, "controller.pause.failed");
                        failures += 1;
                        tokio::time::sleep(QUIET).await;
                        continue;
                    }
                    Err(error) => tracing::warn!(%error, %image, "controller.pause.failed"),
                }
                runtime.pauses().making = false;
                runtime.spares_changed.notify_waiters();
                return;
            }
        });
    }

    async fn make_pause(&self, image: &str) -> Result<String, RuntimeError> {
        let network = self.networks.ensure_pauses().await?;
        let body = ContainerCreateBody {
            image: Some(image.to_owned()),
            cmd: Some(vec!["/bin/sh".into(), "-c".into(), WAIT.into()]),
            entrypoint: Some(Vec::new()),
            open_stdin: Some(true),
            labels: Some(HashMap::from([
                ("skiff.platform".to_owned(), self.platform.clone()),
                (PAUSE_LABEL.to_owned(), "true".to_owned()),
            ])),
            host_config: Some(HostConfig {
                network_mode: Some(network.clone()),
                pids_limit: Some(PAUSE_PIDS),
                ..self.confined(&skiff_api::Limits::default())
            }),
            ..Default::default()
        };
        let name = format!("{PAUSE_NAME}{:06x}", rand::random::<u32>() & 0xff_ffff);
        let options = CreateContainerOptions { name: Some(name), ..Default::default() };
        let id = self.docker.create_container(Some(options), body).await?.id;
        // Started on the pauses' network and then taken off it, it holds a namespace with
        // loopback only and the engine's DNS resolver already running in it (a first join
        // of a user network starts it): its join of an app's network when taken is one
        // call, half as long.
        let leave = NetworkDisconnectRequest { container: id.clone(), force: Some(true) };
        let started = async {
            self.docker.start_container(&id, None).await?;
            self.docker.disconnect_network(&network, leave).await
        };
        if let Err(error) = started.await {
            self.force_remove(&id).await;
            return Err(error.into());
        }
        Ok(id)
    }

    /// Makes no more spares, and removes those there are.
    pub(super) async fn close_pauses(&self) {
        let spares = {
            let mut pauses = self.pauses();
            pauses.closed = true;
            std::mem::take(&mut pauses.spares)
        };
        for spare in spares {
            self.force_remove(&spare).await;
        }
    }

    /// Removes the pause containers no container runs in that are not this process's and
    /// waited too long, and this process's spares that stopped (one that went is found
    /// out as it is taken: the warm container is then made on no network), of the
    /// platform's `containers` as listed; then makes spares up to [`SPARES`].
    pub(super) async fn sweep_pauses(&self, containers: &[ContainerSummary]) {
        let in_use: HashSet<&str> = containers
            .iter()
            .filter_map(|c| namespace_owner(c.host_config.as_ref()?.network_mode.as_deref()))
            .collect();
        let now = time::OffsetDateTime::now_utc().unix_timestamp();
        for pause in containers.iter().filter(|c| is_pause(c)) {
            let Some(id) = pause.id.as_deref() else { continue };
            let (spare, taken) = {
                let pauses = self.pauses();
                (pauses.spares.iter().any(|spare| spare == id), pauses.taken.contains(id))
            };
            // A spare is listed as created when the listing began before its start ended.
            let stopped =
                matches!(pause.state, Some(ContainerSummaryStateEnum::EXITED | ContainerSummaryStateEnum::DEAD));
            let remove = if spare {
                stopped
            } else {
                !taken && !in_use.contains(id) && now - pause.created.unwrap_or(0) >= UNUSED_FOR.as_secs() as i64
            };
            if remove {
                self.pauses().spares.retain(|spare| spare != id);
                self.force_remove(id).await;
            }
        }
        self.replenish_pause(None);
    }
}

/// Whether a listed container is a pause container.
fn is_pause(summary: &ContainerSummary) -> bool {
    summary.labels.as_ref().is_some_and(|labels| labels.contains_key(PAUSE_LABEL))
}
