//! The registry driven over HTTP on 127.0.0.1: the OCI conformance checklist (pull, push,
//! content discovery, content management) and hostile input.

mod connections;
mod discovery;
mod gc;
mod harness;
mod management;
mod probes;
mod pull;
mod push;
mod security;
mod shared;
mod tokens;
