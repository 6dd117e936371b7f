//! The platform at a glance, for operators: `GET /v2/admin/status` (admins),
//! `skiff platform:status`.

use serde::{Deserialize, Serialize};

use crate::AppName;

/// One component's health.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct ComponentStatus {
    /// `controller`, `registry`, `logger`, `builder`.
    pub name: String,
    /// Where the controller reached it.
    pub url: String,
    /// Its readiness: every dependency it checks answers.
    pub ready: bool,
    /// What its readiness check said, a line per dependency (`database ok`), or why it
    /// could not be asked.
    pub detail: String,
    /// The version it says it is, when it answered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
}

/// The certificate that expires first.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CertificateExpiry {
    pub app: AppName,
    pub name: String,
    /// RFC 3339.
    pub expires_at: String,
}

/// `GET /v2/admin/status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct PlatformStatus {
    /// The controller's version.
    pub version: String,
    pub components: Vec<ComponentStatus>,
    /// Webhook deliveries waiting (for their turn or a retry).
    pub webhook_deliveries_pending: u64,
    /// Log lines the logger holds for drains that are slow or down; absent when the
    /// logger did not say.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drain_lines_queued: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub soonest_certificate: Option<CertificateExpiry>,
    /// Bytes the data directory holds, for an embedded (SQLite) database's platform.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_dir_bytes: Option<u64>,
}
