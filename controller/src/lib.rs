//! Skiff's controller: the platform's source of truth and its scheduler.
//!
//! Layout, from the outside in:
//! - [`http`]: the REST API (axum), one module per resource, over the domain operations;
//!   [`dashboard`]: the same operations as web pages.
//! - [`domain`]: what the controller does, named by what it acts on ([`domain::Releases`],
//!   [`domain::Apps`], …): each operation validates, writes, records the event and wakes
//!   the scheduler in one place.
//! - [`state`]: the shared [`Controller`] state and the checks every operation starts with.
//! - [`error`]: [`error::ApiError`], what went wrong and what to do next.
//! - [`scheduler`]: the reconcile loop over a [`scheduler::ContainerRuntime`]. It knows
//!   nothing of HTTP or of the domain layer.
//! - [`db`]: the database (sqlx; SQLite by default, or Postgres), one module per table group.
//! - [`events`]: the audit trail, kept and sent to apps' log streams.
//! - [`coordination`]: how replicas share work (alone, or through Redis).
//! - [`routes`]: the router feed, a versioned route table with long-poll reads.
//! - [`retention`]: which images the registry keeps, and its garbage collection.
//! - [`acme`]: certificates ordered from an ACME server for apps' custom domains.
//! - [`outgoing`]: HTTP connections the controller opens (webhooks, the ACME server).
//! - [`stacks`]: turning a root filesystem tarball into a stack image in the registry.
//! - [`auth`]: passwords and API tokens; [`keys`]: OpenSSH public keys.
//! - [`throttle`]: failed sign-ins counted per user name and client address.
//! - [`config`]: the controller's settings; [`openapi`]: the API's OpenAPI document.
//! - [`service`]: what the controller needs to run, and [`run`], which starts every part.

pub mod acme;
pub mod auth;
pub mod clock;
pub mod config;
pub mod coordination;
pub mod cron;
pub mod dashboard;
pub mod db;
pub mod domain;
pub mod error;
pub mod events;
pub mod http;
pub mod keys;
pub mod openapi;
pub mod outgoing;
pub mod retention;
pub mod routes;
pub mod scheduler;
pub mod service;
pub mod stacks;
pub mod state;
pub mod throttle;
pub mod webhooks;

pub use config::Config;

/// The controller's version, in every answer's `Skiff-Version` header and `GET /v2/version`.
pub const VERSION: &str = skiff_service::VERSION;
pub use http::serve;
pub use service::{Engine, RunError, ServiceConfig, run};
pub use state::Controller;
