//! Scheduling: make the containers that run match the releases that should.
//!
//! Layout:
//! - [`plan`]: the pure decision, desired (current releases) × actual (containers by label)
//!   → steps.
//! - [`health`]: readiness checks (HTTP, TCP, running).
//! - [`hold`]: steps that wait: containers draining before they stop, crash-loop backoff.
//! - [`runtime`]: the [`ContainerRuntime`] seam.
//! - [`docker`]: its backend on one Docker engine (bollard), with [`networks`]: a network
//!   per app, on which the routers reach containers at their own addresses.
//! - [`images`]: pulling app images (from Skiff's registry with the platform's
//!   credentials) and reading the port their app listens on, for both backends.
//! - [`swarm`]: its backend on a Docker Swarm: a one-task service per container.
//! - [`memory`]: a runtime whose containers live in this process (tests, measurements).
//! - [`reconcile`]: the loop that observes, plans, runs steps and publishes routes.
//!
//! A rollout, step by step: a new release appears → the plan starts its `web` container
//! → the loop waits until it accepts TCP connections at its address → routes switch
//! to it → the old release's containers drain for the grace period, then stop. Until the
//! new container is ready, the old one keeps serving.

pub mod docker;
pub mod health;
pub mod hold;
pub mod images;
pub mod memory;
pub mod networks;
pub mod plan;
pub mod reconcile;
pub mod runtime;
pub mod swarm;

pub use docker::{Confinement, DockerRuntime};
pub use memory::MemoryRuntime;
pub use networks::{Addressing, Networking, SubnetPool};
pub use plan::{Desired, Observed, Removal, Step, plan};
pub use reconcile::Scheduler;
pub use runtime::{ContainerRuntime, RuntimeError, StartSpec};
pub use swarm::SwarmRuntime;
