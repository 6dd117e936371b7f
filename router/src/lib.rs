//! Skiff's router: a reverse proxy from `Host` to an app's healthy backends (its own relay for
//! requests without a body over HTTP/1.1, hyper for the rest).
//!
//! Layout:
//! - [`table`]: the route table, plain data swapped atomically; lookups are pure.
//! - [`canary`]: per-release counts of apps' canaries, reported to the controller.
//! - [`feed`]: keeps the table in step with the controller's route feed.
//! - [`policy`]: what the router does with a request (route, refusal, redirect, the
//!   forwarded headers), decided once, pure, for both engines to render.
//! - [`proxy`]: the request path and the server loop; requests without a body over
//!   HTTP/1.1 are relayed by the router itself, everything else goes through hyper.
//! - [`idle`]: closing client connections on which nothing moved for a while.
//! - [`framing`]: refusing request heads that give a body's length two ways; following
//!   apps' chunked answers.
//! - [`metrics`]: per-app Prometheus metrics, at `/metrics` on any host that is not an app's.
//! - [`traffic`]: the same counts reported to the controller, for its per-minute history.
//! - [`upstream`]: kept-alive connections to apps' backends, and reading apps' answers.
//! - [`tls`]: HTTPS certificates chosen by SNI from the table, and the listener's TLS settings.
//! - [`service`]: what the router needs to run, and [`run`] (route table, HTTP and HTTPS).
//!
//! The request path: read the head (bounded by a header timeout) → look the host up in
//! the current table snapshot → unknown host: 404; app without backends: 503 → otherwise
//! forward to the backend with the fewest requests outstanding over a pooled connection
//! and stream the answer back.

pub mod access;
pub mod canary;
pub mod feed;
pub mod framing;
pub mod idle;
pub mod metrics;
pub mod policy;
pub mod proxy;
pub mod service;
pub mod table;
pub mod tls;
pub mod traffic;
pub mod upstream;

pub use proxy::{Config, Listeners, serve};
pub use service::{Routes, RunError, ServiceConfig, run};
pub use table::{Backends, Lookup, Table};
