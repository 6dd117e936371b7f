//! Skiff's registry: the OCI distribution API over a [`BlobStore`].
//!
//! Layout:
//! - [`endpoint`]: pure decoding of a request into an [`Endpoint`].
//! - [`error`]: the OCI error envelope.
//! - [`meta`]: per-repository metadata (manifest media types, tags) on the filesystem.
//! - [`upload`]: blob upload sessions.
//! - [`http`]: the handlers and the server loop.
//!
//! Blobs are content-addressed in the store; repositories hold links to manifests and
//! tags. Pushes need the platform's service token (HTTP Basic, any user name); pulls are
//! open to loopback clients such as the platform's Docker engine.

pub mod endpoint;
pub mod error;
pub mod http;
pub mod meta;
pub mod upload;

pub use http::{Config, Registry, router, serve};
