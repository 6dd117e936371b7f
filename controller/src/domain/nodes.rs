//! The cluster's nodes (admins): what runs where, draining a node with no failed request,
//! and what a new node needs to join.
//!
//! Draining is Skiff's, not the orchestrator's: the node is paused (it keeps what it runs
//! and takes nothing new), the scheduler replaces each of its containers elsewhere, new
//! one ready first, as in a rollout; once none is left, the node is set to drain.

use std::time::Duration;

use skiff_api::{NodeContainer, NodeJoin, NodeView};

use crate::db::UserRow;
use crate::error::ApiError;
use crate::events::Event;
use crate::scheduler::runtime::{Availability, RuntimeError};
use crate::state::Controller;
use skiff_api::EventKind;

/// How often a draining node is looked at until its containers have moved.
const DRAIN_CHECK: Duration = Duration::from_secs(1);

/// The cluster's nodes.
pub struct Nodes<'a>(&'a Controller);

impl Controller {
    pub fn nodes(&self) -> Nodes<'_> {
        Nodes(self)
    }
}

fn admin_only(user: &UserRow) -> Result<(), ApiError> {
    if user.admin { Ok(()) } else { Err(ApiError::Forbidden("only admins manage nodes".into())) }
}

fn engine_error(error: RuntimeError) -> ApiError {
    match error {
        RuntimeError::NoCluster => ApiError::Conflict(error.to_string()),
        RuntimeError::NoSuchNode(_) => ApiError::NotFound(error.to_string()),
        other => ApiError::Unavailable(format!("the engine did not answer: {other}")),
    }
}

impl Nodes<'_> {
    /// Every node with the app containers on it.
    pub async fn list(&self, user: &UserRow) -> Result<Vec<NodeView>, ApiError> {
        admin_only(user)?;
        let c = self.0;
        let nodes = c.runtime.nodes().await.map_err(engine_error)?;
        let containers = c.runtime.list().await.map_err(engine_error)?;
        Ok(nodes
            .into_iter()
            .map(|node| NodeView {
                containers: containers
                    .iter()
                    .filter(|container| container.node.as_deref() == Some(node.id.as_str()) && !container.one_off)
                    .map(|container| NodeContainer {
                        app: container.app.clone(),
                        process: container.process.clone(),
                        release: container.release,
                        id: container.id.chars().take(12).collect(),
                    })
                    .collect(),
                id: node.id,
                hostname: node.hostname,
                address: node.address,
                state: node.state,
                availability: node.availability.to_string(),
                manager: node.manager,
            })
            .collect())
    }

    /// Moves every app container off a node, new ones ready first, then drains it.
    pub async fn drain(&self, user: &UserRow, name: &str) -> Result<NodeView, ApiError> {
        admin_only(user)?;
        let c = self.0;
        let node = c.runtime.set_availability(name, Availability::Pause).await.map_err(engine_error)?;
        let message = format!("{} drains node {} ({})", user.username, node.hostname, node.address);
        c.events.emit_platform(Event::new(EventKind::Platform, message).by(&user.username)).await;
        // The scheduler moves the node's containers at once.
        c.coordination.changed().await;
        let (runtime, id, shutdown) = (c.runtime.clone(), node.id.clone(), c.shutdown.clone());
        // Once its containers have moved, nothing else may start there either.
        let deadline = c.config.boot_timeout * 4 + c.config.drain_period + Duration::from_secs(60);
        tokio::spawn(async move {
            let moved = async {
                loop {
                    let containers = runtime.list().await.unwrap_or_default();
                    if !containers.iter().any(|container| container.node.as_deref() == Some(id.as_str())) {
                        break;
                    }
                    tokio::time::sleep(DRAIN_CHECK).await;
                }
            };
            tokio::select! {
                () = shutdown.cancelled() => return,
                moved = tokio::time::timeout(deadline, moved) => if moved.is_err() {
                    tracing::warn!(node = %id, "controller.nodes: containers did not all move; draining anyway");
                },
            }
            if let Err(error) = runtime.set_availability(&id, Availability::Drain).await {
                tracing::warn!(%error, node = %id, "controller.nodes: cannot set the node to drain");
            }
        });
        self.one(user, &node.id).await
    }

    /// Lets a node take containers again.
    pub async fn activate(&self, user: &UserRow, name: &str) -> Result<NodeView, ApiError> {
        admin_only(user)?;
        let c = self.0;
        let node = c.runtime.set_availability(name, Availability::Active).await.map_err(engine_error)?;
        let message = format!("{} activated node {} ({})", user.username, node.hostname, node.address);
        c.events.emit_platform(Event::new(EventKind::Platform, message).by(&user.username)).await;
        self.one(user, &node.id).await
    }

    /// What a new node runs to join, and what it must trust.
    pub async fn join(&self, user: &UserRow) -> Result<NodeJoin, ApiError> {
        admin_only(user)?;
        let c = self.0;
        let join = c.runtime.join_command().await.map_err(engine_error)?;
        Ok(NodeJoin {
            command: join.command,
            registry: c.config.registry_host.clone(),
            registry_ca: c.config.registry_ca.clone(),
        })
    }

    async fn one(&self, user: &UserRow, id: &str) -> Result<NodeView, ApiError> {
        let nodes = self.list(user).await?;
        nodes.into_iter().find(|node| node.id == id).ok_or_else(|| ApiError::NotFound(format!("no node {id}")))
    }
}
