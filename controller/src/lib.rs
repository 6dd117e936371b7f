//! Skiff's controller: the platform's source of truth and its scheduler.
//!
//! Layout:
//! - [`access`]: what the router lets through to an app (body size, client addresses).
//! - [`certs`]: TLS certificates and HTTPS policy per app.
//! - [`config`]: the controller's settings.
//! - [`coordination`]: how replicas share work (alone, or through Redis).
//! - [`db`]: the database (sqlx; SQLite by default) and its queries.
//! - [`drains`]: the log drain API.
//! - [`events`]: platform events in apps' log streams.
//! - [`auth`]: passwords, API tokens and the request extractors that check them.
//! - [`keys`]: OpenSSH public keys and their fingerprints.
//! - [`http`]: the REST API (axum) and its [`http::ApiError`].
//! - [`openapi`]: the API's OpenAPI document.
//! - [`retention`]: which images the registry keeps, and its garbage collection.
//! - [`routes`]: the router feed, a versioned route table with long-poll reads.
//! - [`scheduler`]: the reconcile loop over a [`scheduler::ContainerRuntime`].
//! - [`stacks`]: turning a root filesystem tarball into a stack image in the registry.
//! - [`throttle`]: failed sign-ins counted per user name and client address.

pub mod access;
pub mod auth;
pub mod certs;
pub mod config;
pub mod coordination;
pub mod db;
pub mod drains;
pub mod events;
pub mod http;
pub mod keys;
pub mod openapi;
pub mod retention;
pub mod routes;
pub mod scheduler;
pub mod stacks;
pub mod throttle;

pub use config::Config;
pub use http::{Controller, serve};
