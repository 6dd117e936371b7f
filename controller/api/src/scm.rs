//! Builds from a source repository (Heroku's GitHub integration, Spinnaker's Igor): an app
//! connected to a git repository and branch is built when the repository's host signals
//! a push (GitHub, GitLab or Gitea webhooks), or by hand.

use serde::{Deserialize, Serialize};

use crate::{AppName, Username};

/// An app's source repository: `GET`/`PUT /v2/apps/{app}/source`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AppSource {
    /// Where the builder fetches from: `https://…`, `http://…`, `git://…`, `ssh://…`
    /// (`git@host:path`) with the app's deploy key, or (admins) a path on the builder's
    /// machine.
    pub repo: String,
    /// The branch whose pushes are built.
    pub branch: String,
    /// The path the repository's host sends push events to, on the controller.
    pub hook_path: String,
    /// The secret the host signs events with: only in the answer that connects the app.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
    /// For an ssh repository: the public key the builder fetches with, to add to the
    /// repository as a read-only deploy key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deploy_key: Option<String>,
    /// Whose builds these are.
    pub connected_by: Username,
    pub created_at: String,
}

/// `PUT /v2/apps/{app}/source`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct AppSourceCreate {
    pub repo: String,
    /// `main` when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub branch: Option<String>,
    /// At least 16 characters; made by the platform when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

/// `POST /v2/apps/{app}/builds`: build a commit of the connected repository now.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct BuildTrigger {
    /// A commit, branch or tag; the connected branch's newest commit when absent.
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
}

/// What the controller asks the builder to build (`POST /v2/builds` on the builder).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SourceBuild {
    pub app: AppName,
    pub repo: String,
    /// What to fetch: a branch, tag or commit.
    pub reference: String,
    /// The commit to build, when the push named one (it must be what `reference` fetches
    /// or an ancestor of it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// Whose build it is.
    pub username: Username,
    /// Why: `github push`, `skiff builds:create`….
    pub trigger: String,
    /// The private deploy key (OpenSSH) to fetch an ssh repository with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ssh_key: Option<String>,
}

/// The answer to a push event, or to a build asked for by hand.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "schema", derive(schemars::JsonSchema))]
pub struct SourceBuildAnswer {
    /// Whether a build was started (or queued behind the app's running one).
    pub building: bool,
    /// What happens, or why nothing does.
    pub message: String,
}
