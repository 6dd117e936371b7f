//! Skiff's wire contract: the JSON types the controller API speaks and the validated
//! names every component agrees on. No IO, no server dependencies, so the CLI and every
//! service can share it.
//!
//! Layout:
//! - [`name`]: validated names (`AppName`, `Username`, `StackName`, `ProcessType`).
//! - [`wire`]: request and response bodies of the controller API, the route feed and the
//!   builder/registry hooks.

pub mod name;
pub mod wire;

pub use name::{AppName, Digest, DigestAlgorithm, NameError, ProcessType, StackName, Username};
pub use wire::*;
