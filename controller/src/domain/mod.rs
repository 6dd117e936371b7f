//! What the controller does, named by what it acts on: [`Accounts`], [`Apps`],
//! [`Releases`], [`Formation`], [`Domains`], [`Certificates`], [`Drains`], [`OneOffs`],
//! [`Nodes`], [`Pipelines`], [`ReviewApps`], [`Canaries`], [`Webhooks`], [`Cron`] and [`Sources`]. An operation
//! checks its input, writes the database, records the event and wakes the scheduler in
//! one place; the HTTP layer (`crate::http`) only turns requests into calls and results
//! into answers. Each is reached from the shared state:
//! `controller.releases().rollback(…)`.

mod accounts;
mod apps;
mod canaries;
mod certs;
mod cron;
mod domains;
mod drains;
mod formation;
mod nodes;
pub(crate) mod one_offs;
mod pipelines;
mod releases;
mod review_apps;
mod sources;
mod status;
mod webhooks;

pub use accounts::Accounts;
pub use apps::Apps;
pub(crate) use canaries::judge::quantile;
pub use canaries::{Canaries, judge_canaries};
pub use certs::{CertificateError, Certificates, Inspected, covers, inspect};
pub use cron::{Cron, run_scheduled_jobs};
pub use domains::Domains;
pub use drains::Drains;
pub use formation::Formation;
pub use nodes::Nodes;
pub use one_offs::OneOffs;
pub use pipelines::Pipelines;
pub use releases::Releases;
pub use review_apps::{ReviewApps, expire_review_apps};
pub use sources::{Received, Sources};
pub use webhooks::Webhooks;

/// The shortest secret shared with another system (webhook receivers, repository hosts).
const MIN_SECRET: usize = 16;

/// A secret to share with another system: the one given (`what`, checked for length), or
/// a new random one.
fn shared_secret(given: Option<&str>, what: &str) -> Result<String, crate::error::ApiError> {
    match given.map(str::trim) {
        Some(secret) if secret.chars().count() < MIN_SECRET => {
            Err(crate::error::ApiError::BadRequest(format!("{what} has {MIN_SECRET} characters at least")))
        }
        Some(secret) => Ok(secret.to_owned()),
        None => Ok(format!("{:032x}", rand::random::<u128>())),
    }
}
