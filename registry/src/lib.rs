//! Skiff's registry: the OCI distribution API over a [`BlobStore`].
//!
//! Layout:
//! - [`auth`]: credentials and the [`auth::Authorizer`] that decides pulls and pushes.
//! - [`endpoint`]: pure decoding of a request into an [`Endpoint`].
//! - [`oci`]: OCI documents (manifests, indexes, descriptors) and what they refer to, pure.
//! - [`error`]: the OCI error envelope.
//! - [`meta`]: per-repository metadata (manifest media types, tags) on the filesystem.
//! - [`upload`]: blob upload sessions.
//! - [`token`]: Docker's token flow (short-lived signed tokens for pulls and pushes).
//! - [`gc`]: online garbage collection (mark and sweep with a grace period).
//! - [`http`]: the server: one module per resource (blobs, uploads, manifests, lists,
//!   tokens, the platform's maintenance endpoints) behind one decoding dispatcher.
//! - [`service`]: what the registry needs to run, and [`run`] (store, authorizer, server).
//!
//! Blobs are content-addressed in the store; a repository holds links to the blobs and
//! manifests pushed or mounted into it, and its tags, so a blob is readable only through
//! a repository that has it. Every request authenticates (HTTP Basic, as `docker login`
//! stores it, a bearer API token, or a token from Docker's token flow at `/v2/token`): the
//! platform's service token may do anything, other credentials are checked by the
//! controller.

pub mod auth;
pub mod endpoint;
pub mod error;
pub mod gc;
pub mod http;
pub mod meta;
pub mod oci;
pub mod service;
pub mod token;
pub mod upload;

pub use http::{Config, Registry, router, serve};
pub use service::{RunError, ServiceConfig, Storage, run};
