//! A small OCI distribution client for Skiff's own services: the builder pushes app images
//! with it and the controller pushes imported stacks.
//!
//! Layout:
//! - [`client`]: blob and manifest calls over HTTP.
//! - [`image`]: Docker v2 schema 2 manifests, layers, and assembling an image from a base
//!   image plus one new layer.

pub mod client;
pub mod image;

pub use client::{RegistryClient, RegistryError};
pub use image::{Layer, Manifest};
