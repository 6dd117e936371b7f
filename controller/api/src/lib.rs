//! Skiff's wire contract: the JSON types the controller API speaks and the validated
//! names every component agrees on. No IO, no server dependencies, so the CLI and every
//! service can share it.
//!
//! Layout:
//! - [`name`]: validated names (`AppName`, `Username`, `StackName`, `ProcessType`).
//! - [`wire`]: request and response bodies of the controller API, the route feed and the
//!   builder/registry hooks.
//! - [`canary`]: canary releases: the traffic split, routers' samples, the judge's view.
//! - [`cron`]: scheduled jobs and their runs.
//! - [`drain`]: log drains and their URLs.
//! - [`image`]: image references and which registry they name.
//! - [`outbound`]: which addresses tenant-given URLs may reach.
//! - [`webhook`]: outgoing webhooks, their deliveries and signatures.
//! - [`status`]: the platform at a glance, for operators.
//! - [`scm`]: apps built from a source repository's pushes.
//! - [`rules`]: what the platform accepts of what users set (config vars, custom domains,
//!   access policies).

pub mod app_json;
pub mod canary;
pub mod cron;
pub mod drain;
pub mod image;
pub mod name;
pub mod outbound;
pub mod rules;
pub mod scm;
pub mod status;
pub mod webhook;
pub mod wire;

pub use app_json::{AppJson, AppJsonError};
pub use canary::{
    Arm, ArmSummary, BucketCount, Canary, CanaryCreate, CanaryRoute, CanarySample, CanarySamples, CanaryState,
    CanaryTrial, DEFAULT_MIN_REQUESTS, Judgement, MetricJudgement, TrafficSample, TrafficSamples, Verdict,
};
pub use cron::{CronCreate, CronJob, CronRun, CronRunState, CronSource};
pub use drain::{Drain, DrainCreate, DrainProtocol, DrainStatus, DrainTarget, DrainUrlError};
pub use image::{ImageRef, ImageRefError};
pub use name::{AppName, Digest, DigestAlgorithm, NameError, PipelineName, ProcessType, StackName, Username};
pub use outbound::OutboundPolicy;
pub use scm::{AppSource, AppSourceCreate, BuildTrigger, SourceBuild, SourceBuildAnswer};
pub use status::{CertificateExpiry, ComponentStatus, PlatformStatus};
pub use webhook::{DeliveryState, EventKind, EventPayload, Webhook, WebhookCreate, WebhookDelivery, WebhookFormat};
pub use wire::*;

/// Compares two secrets (tokens, passwords) in time independent of where they differ.
pub fn secrets_match(a: &str, b: &str) -> bool {
    a.len() == b.len() && a.bytes().zip(b.bytes()).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
