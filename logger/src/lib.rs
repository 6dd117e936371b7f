//! Skiff's logger: collects every app container's output and syslog messages into a
//! per-app buffer of recent lines, served over HTTP.
//!
//! Layout:
//! - [`buffer`]: the per-app ring buffers.
//! - [`syslog`]: parsing RFC 5424 / RFC 3164 messages and the UDP and TCP listeners.
//! - [`docker`]: following containers' stdout/stderr through the Docker API.
//! - [`drain`]: forwarding lines to syslog and HTTPS drains.
//! - [`positions`]: how far each container's output was read, across restarts.
//! - [`shared`]: buffers shared by logger replicas through Redis.
//! - [`http`]: the read API (`GET /v2/apps/{app}/logs?n=`, `GET /v2/drains`).
//! - [`service`]: what the logger needs to run, and [`run`], which starts every part.

pub mod buffer;
pub mod docker;
pub mod drain;
pub mod http;
pub mod positions;
pub mod service;
pub mod shared;
pub mod syslog;

pub use buffer::Buffers;
pub use service::{Listeners, RunError, ServiceConfig, run};
