//! `app.json` in a pushed tree: Heroku's app manifest (Dokku reads the same file), the
//! parts that apply to Skiff. Unknown keys are ignored, as Heroku and Dokku do.
//!
//! ```json
//! {
//!   "formation": { "web": { "quantity": 2 }, "worker": { "quantity": 1 } },
//!   "env": {
//!     "GREETING": "hello",
//!     "SECRET_KEY": { "description": "signs sessions", "generator": "secret" },
//!     "DATABASE_URL": { "description": "where the data lives", "required": true }
//!   },
//!   "scripts": { "postdeploy": "./seed-database" },
//!   "healthchecks": { "web": [{ "type": "startup", "path": "/health", "attempts": 3 }] }
//! }
//! ```

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::{CheckKind, Healthcheck, ProcessType};

/// The parts of an `app.json` that Skiff applies.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AppJson {
    /// How many containers of each process type run once the app is first deployed (a
    /// process type already scaled keeps its scale).
    #[serde(default)]
    pub formation: BTreeMap<ProcessType, FormationEntry>,
    /// Config keys the app expects: values for keys the app's config lacks, secrets
    /// generated once, and keys without which a push is refused.
    #[serde(default)]
    pub env: BTreeMap<String, EnvEntry>,
    /// Commands run at points of the app's life.
    #[serde(default)]
    pub scripts: Scripts,
    /// Readiness checks per process type, in Dokku's format.
    #[serde(default)]
    pub healthchecks: BTreeMap<ProcessType, Vec<DokkuCheck>>,
    /// Scheduled jobs, in Dokku's format; they replace the app's `app.json` jobs on each
    /// deploy.
    #[serde(default)]
    pub cron: Vec<CronEntry>,
}

/// One entry of `cron`: `{"command": "…", "schedule": "@daily"}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct CronEntry {
    pub command: String,
    pub schedule: String,
}

/// One process type's entry of `formation`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct FormationEntry {
    /// How many containers (Heroku's default: 1).
    #[serde(default = "one")]
    pub quantity: u32,
}

fn one() -> u32 {
    1
}

/// One key of `env`: a plain value, or a description of what the key holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(untagged)]
pub enum EnvEntry {
    /// The value the key takes when the app's config lacks it.
    Value(String),
    /// What the key is for, and where its value comes from.
    Described(EnvSpec),
}

/// A described key of `env`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct EnvSpec {
    /// What the key is for, shown when it is missing.
    #[serde(default)]
    pub description: Option<String>,
    /// The value it takes when the app's config lacks it.
    #[serde(default)]
    pub value: Option<String>,
    /// `secret`: a random value (64 hexadecimal digits) is made once, when the app's
    /// config lacks the key.
    #[serde(default)]
    pub generator: Option<String>,
    /// Whether a push is refused while the app's config lacks the key and nothing gives it
    /// a value (Heroku's default: required).
    #[serde(default)]
    pub required: Option<bool>,
}

/// `scripts`: commands run at points of the app's life.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct Scripts {
    /// Runs once, in a one-off container, after a review app's first deploy.
    #[serde(default)]
    pub postdeploy: Option<String>,
}

/// One of a process type's checks in Dokku's `healthchecks` format.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
#[serde(rename_all = "camelCase")]
pub struct DokkuCheck {
    /// `startup` (the default), `readiness` or `liveness`.
    #[serde(default, rename = "type")]
    pub kind: Option<String>,
    /// The request path an HTTP check asks (a 2xx or 3xx answer passes).
    #[serde(default)]
    pub path: Option<String>,
    /// Seconds each attempt may take (Dokku's default: 5).
    #[serde(default)]
    pub timeout: Option<u64>,
    /// How many attempts (Dokku's default: 3).
    #[serde(default)]
    pub attempts: Option<u64>,
    /// Seconds between attempts (Dokku's default: 5).
    #[serde(default)]
    pub wait: Option<u64>,
    /// Seconds before the first attempt (Dokku's default: 0).
    #[serde(default)]
    pub initial_delay: Option<u64>,
}

/// An `app.json` that is not JSON, or not of the expected shape.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("app.json is not valid: {message} (line {line}, column {column})")]
pub struct AppJsonError {
    /// What is wrong, as the JSON parser says it.
    pub message: String,
    /// Where, counting from 1.
    pub line: usize,
    /// Where on that line, counting from 1.
    pub column: usize,
}

impl AppJson {
    /// Reads an `app.json`.
    ///
    /// # Errors
    /// When the text is not JSON, or a known key holds the wrong kind of value; the error
    /// says where.
    pub fn parse(text: &str) -> Result<Self, AppJsonError> {
        serde_json::from_str(text).map_err(|error| {
            let full = error.to_string();
            // serde_json ends its message with " at line L column C"; the position is ours to say.
            let message = full.rsplit_once(" at line ").map_or(full.as_str(), |(message, _)| message).to_owned();
            AppJsonError { message, line: error.line(), column: error.column() }
        })
    }

    /// The keys a push needs and the app's `config` lacks: required, with neither a value
    /// nor a generator; each with its description.
    pub fn missing_env<'a>(&'a self, config: &BTreeMap<String, String>) -> Vec<(&'a str, Option<&'a str>)> {
        self.env
            .iter()
            .filter(|(key, _)| !config.contains_key(*key))
            .filter_map(|(key, entry)| match entry {
                EnvEntry::Described(spec)
                    if spec.required != Some(false) && spec.value.is_none() && spec.generator.is_none() =>
                {
                    Some((key.as_str(), spec.description.as_deref()))
                }
                _ => None,
            })
            .collect()
    }

    /// The values `env` gives keys the app's `config` lacks; a generated secret comes from
    /// `secret()`.
    pub fn defaults(
        &self,
        config: &BTreeMap<String, String>,
        mut secret: impl FnMut() -> String,
    ) -> BTreeMap<String, String> {
        self.env
            .iter()
            .filter(|(key, _)| !config.contains_key(*key))
            .filter_map(|(key, entry)| {
                let value = match entry {
                    EnvEntry::Value(value) => value.clone(),
                    EnvEntry::Described(EnvSpec { value: Some(value), .. }) => value.clone(),
                    EnvEntry::Described(EnvSpec { generator: Some(generator), .. }) if generator == "secret" => {
                        secret()
                    }
                    EnvEntry::Described(_) => return None,
                };
                Some((key.clone(), value))
            })
            .collect()
    }

    /// Skiff's readiness check for each process type with a startup or readiness check
    /// that asks a path: an HTTP check of the first such path, with as long to pass as
    /// Dokku would try (initial delay, then each attempt's timeout and wait). Others
    /// (liveness checks, checks without a path) have no Skiff counterpart and are left out.
    pub fn readiness_checks(&self) -> BTreeMap<ProcessType, Healthcheck> {
        self.healthchecks
            .iter()
            .filter_map(|(process, checks)| {
                let check = checks.iter().find(|c| {
                    c.path.is_some() && c.kind.as_deref().is_none_or(|k| k == "startup" || k == "readiness")
                })?;
                let attempts = check.attempts.unwrap_or(3).max(1);
                let each = check.timeout.unwrap_or(5) + check.wait.unwrap_or(5);
                let seconds = check.initial_delay.unwrap_or(0).saturating_add(attempts.saturating_mul(each));
                let health = Healthcheck {
                    kind: CheckKind::Http,
                    path: check.path.clone(),
                    timeout_secs: Some(seconds.clamp(1, 3600)),
                };
                Some((process.clone(), health))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_heroku_manifest_reads_with_unknown_keys_ignored() {
        let text = r#"{
            "name": "shop", "buildpacks": [{"url": "heroku/ruby"}],
            "formation": {"web": {"quantity": 2, "size": "standard-1X"}, "worker": {}},
            "env": {
                "GREETING": "hello",
                "SECRET_KEY": {"description": "signs sessions", "generator": "secret"},
                "DATABASE_URL": {"description": "where the data lives"},
                "OPTIONAL": {"required": false},
                "PORT_HINT": {"value": "8080"}
            },
            "scripts": {"postdeploy": "./seed", "dokku": {"predeploy": "x"}},
            "healthchecks": {"web": [
                {"type": "liveness", "path": "/alive"},
                {"type": "startup", "path": "/ready", "attempts": 4, "timeout": 2, "wait": 1, "initialDelay": 3}
            ]}
        }"#;
        let manifest = AppJson::parse(text).unwrap();
        let web: ProcessType = "web".parse().unwrap();
        assert_eq!(manifest.formation[&web].quantity, 2);
        assert_eq!(manifest.formation[&"worker".parse().unwrap()].quantity, 1, "Heroku's default quantity");
        assert_eq!(manifest.scripts.postdeploy.as_deref(), Some("./seed"));

        let config = BTreeMap::from([("GREETING".to_owned(), "kept".to_owned())]);
        assert_eq!(manifest.missing_env(&config), [("DATABASE_URL", Some("where the data lives"))]);
        let defaults = manifest.defaults(&config, || "s3cr3t".into());
        let expected = [("PORT_HINT", "8080"), ("SECRET_KEY", "s3cr3t")];
        assert_eq!(defaults, expected.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());

        let checks = manifest.readiness_checks();
        assert_eq!(checks[&web].path.as_deref(), Some("/ready"), "the liveness check has no counterpart");
        assert_eq!(checks[&web].timeout_secs, Some(3 + 4 * (2 + 1)));
    }

    #[test]
    fn a_malformed_manifest_says_where() {
        let error = AppJson::parse("{\n  \"formation\": {\"web\": {\"quantity\": 2,}}\n}").unwrap_err();
        assert_eq!((error.line, error.column), (2, 39));
        assert_eq!(error.to_string(), "app.json is not valid: trailing comma (line 2, column 39)");
        let error = AppJson::parse(r#"{"formation": {"web": {"quantity": "two"}}}"#).unwrap_err();
        assert!(error.message.starts_with("invalid type: string \"two\", expected u32"), "{error}");
        let error = AppJson::parse(r#"{"formation": {"Web!": {}}}"#).unwrap_err();
        assert!(error.message.contains("process type"), "{error}");
    }
}
