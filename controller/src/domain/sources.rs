//! Apps built from a source repository (Heroku's GitHub integration, Spinnaker's Igor,
//! Screwdriver's SCM webhooks): `apps:connect` links an app to a repository and branch;
//! the repository's host sends push events to `/v2/hooks/scm/{app}`, which are verified
//! ([`push_event`]) and passed to the builder, which fetches the pushed commit and builds it
//! through the same pipeline as `git push`; `builds:create` builds by hand.

pub mod push_event;

use std::time::Duration;

use http::HeaderMap;
use skiff_api::{AppSource, AppSourceCreate, BuildTrigger, EventKind, SourceBuild, SourceBuildAnswer};

use self::push_event::{EventKind as HostEvent, Refusal};
use crate::db::{AppRow, SourceRow, UserRow};
use crate::error::ApiError;
use crate::events::Event;
use crate::state::Controller;

/// How long the builder may take to take a build in.
const BUILDER_TIMEOUT: Duration = Duration::from_secs(10);

/// An app's source repository.
pub struct Sources<'a>(&'a Controller);

impl Controller {
    pub fn sources(&self) -> Sources<'_> {
        Sources(self)
    }
}

/// A push event's outcome: the status to answer with and what happened.
pub struct Received {
    pub accepted: bool,
    pub answer: SourceBuildAnswer,
}

/// The host of an scp-like repository address (`git@host:path`), which git reaches over ssh.
fn scp_like(repo: &str) -> Option<&str> {
    if repo.contains("://") {
        return None;
    }
    let (authority, _path) = repo.split_once(':')?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, host)| host);
    (!host.is_empty() && !host.contains('/') && !repo.starts_with('-')).then_some(host)
}

fn not_connected(app: &str) -> ApiError {
    ApiError::NotFound(format!("app `{app}` is not connected to a repository; see `skiff apps:connect`"))
}

fn view(app: &AppRow, row: SourceRow) -> AppSource {
    AppSource {
        repo: skiff_api::drain::masked_url(&row.repo),
        branch: row.branch,
        hook_path: format!("/v2/hooks/scm/{}", app.name),
        secret: None,
        deploy_key: row.deploy_key.as_deref().and_then(crate::keys::public_line),
        connected_by: row.connected_by,
        created_at: row.created_at,
    }
}

/// A branch name git would take, and nothing a command line could read as an option.
fn check_branch(branch: &str) -> Result<(), ApiError> {
    let fine = !branch.is_empty()
        && branch.len() <= 200
        && !branch.starts_with(['-', '/', '.'])
        && !branch.ends_with(['/', '.'])
        && !branch.contains("..")
        && !branch.ends_with(".lock")
        && branch.bytes().all(|b| b.is_ascii_alphanumeric() || b"._/-".contains(&b));
    if fine { Ok(()) } else { Err(ApiError::BadRequest(format!("`{branch}` is not a branch name"))) }
}

impl Sources<'_> {
    /// Checks where the builder would fetch from: an `https://`, `http://`, `git://` or
    /// `ssh://` URL (or `user@host:path`) that the outbound guard lets through (admins:
    /// anywhere), or (admins only) a path on the builder's machine. Whether it is reached
    /// over ssh.
    async fn check_repo(&self, user: &UserRow, repo: &str) -> Result<bool, ApiError> {
        if repo.starts_with('/') || repo.starts_with("file://") {
            return if user.admin {
                Ok(false)
            } else {
                Err(ApiError::Forbidden("only admins connect apps to paths on the builder's machine".into()))
            };
        }
        let (host, port, ssh) = match scp_like(repo) {
            Some(host) => (host.to_owned(), 22, true),
            None => {
                let url = reqwest::Url::parse(repo)
                    .map_err(|e| ApiError::BadRequest(format!("`{repo}` is not a repository URL: {e}")))?;
                let default_port = match url.scheme() {
                    "https" | "http" => url.port_or_known_default().unwrap_or(443),
                    "git" => 9418,
                    "ssh" => 22,
                    other => {
                        return Err(ApiError::BadRequest(format!(
                            "`{other}://` repositories are not supported; use https://, ssh:// or git://"
                        )));
                    }
                };
                let host = url.host_str().ok_or_else(|| ApiError::BadRequest(format!("`{repo}` names no host")))?;
                (
                    host.trim_start_matches('[').trim_end_matches(']').to_owned(),
                    url.port().unwrap_or(default_port),
                    url.scheme() == "ssh",
                )
            }
        };
        if !user.admin {
            self.0.check_outbound("repositories", &host, port).await?;
        }
        Ok(ssh)
    }

    /// Connects the app to a repository; the answer carries the secret the repository's
    /// host signs push events with (made here when none is given), the only time it is
    /// shown.
    pub async fn connect(&self, user: &UserRow, app: &AppRow, body: &AppSourceCreate) -> Result<AppSource, ApiError> {
        let c = self.0;
        let repo = body.repo.trim();
        let ssh = self.check_repo(user, repo).await?;
        let branch = body.branch.as_deref().unwrap_or("main").trim();
        check_branch(branch)?;
        let secret = super::shared_secret(body.secret.as_deref(), "a hook secret")?;
        // The app keeps its deploy key across reconnections, so that the repository's
        // host need not learn a new one.
        let deploy_key = match (ssh, c.db.source(app).await?.and_then(|old| old.deploy_key)) {
            (false, _) => None,
            (true, Some(kept)) => Some(kept),
            (true, None) => Some(
                crate::keys::new_deploy_key(&format!("skiff-{}", app.name))
                    .map_err(|e| ApiError::Internal(format!("cannot make a deploy key: {e}")))?,
            ),
        };
        let row = SourceRow {
            repo: repo.to_owned(),
            branch: branch.to_owned(),
            secret: secret.clone(),
            deploy_key,
            connected_by: user.username.clone(),
            created_at: crate::db::now(),
        };
        c.db.set_source(app, &row).await?;
        let message =
            format!("{} connected the app to {} ({branch})", user.username, skiff_api::drain::masked_url(repo));
        c.events.emit(&app.name, Event::new(EventKind::Config, message).by(&user.username)).await;
        Ok(AppSource { secret: Some(secret), ..view(app, row) })
    }

    /// The app's repository.
    pub async fn show(&self, app: &AppRow) -> Result<AppSource, ApiError> {
        let row = self.0.db.source(app).await?.ok_or_else(|| not_connected(app.name.as_str()))?;
        Ok(view(app, row))
    }

    /// Disconnects the app: push events are refused from now on.
    pub async fn disconnect(&self, user: &UserRow, app: &AppRow) -> Result<(), ApiError> {
        let c = self.0;
        if !c.db.remove_source(app).await? {
            return Err(not_connected(app.name.as_str()));
        }
        let message = format!("{} disconnected the app from its repository", user.username);
        c.events.emit(&app.name, Event::new(EventKind::Config, message).by(&user.username)).await;
        Ok(())
    }

    /// Takes a push event for the app named `name`: verified with the app's secret, a
    /// replay refused, a push to the connected branch built, anything else answered with
    /// why nothing is built.
    pub async fn receive(&self, name: &str, headers: &HeaderMap, body: &[u8]) -> Result<Received, ApiError> {
        let c = self.0;
        let app = match name.parse() {
            Ok(parsed) => c.db.app(&parsed).await?,
            Err(_) => None,
        };
        let Some(app) = app else { return Err(not_connected(name)) };
        let source = c.db.source(&app).await?.ok_or_else(|| not_connected(name))?;
        let event = push_event::read(headers, body, &source.secret).map_err(|refusal| {
            tracing::warn!(app = %app.name, %refusal, "controller.scm.refused");
            match refusal {
                Refusal::Malformed { .. } | Refusal::UnknownHost => ApiError::BadRequest(refusal.to_string()),
                Refusal::Unsigned(_) | Refusal::BadSignature(_) => ApiError::Forbidden(refusal.to_string()),
            }
        })?;
        if let Some(delivery) = &event.delivery
            && !c.db.take_source_delivery(&app, delivery).await?
        {
            tracing::warn!(app = %app.name, delivery, "controller.scm.replayed");
            return Err(ApiError::Conflict(format!("delivery {delivery} was taken already; a replay is not built")));
        }
        let ignored =
            |message: String| Ok(Received { accepted: false, answer: SourceBuildAnswer { building: false, message } });
        let wanted = format!("refs/heads/{}", source.branch);
        match event.kind {
            HostEvent::Ping => ignored(format!("pong: pushes to {} build {}", source.branch, app.name)),
            HostEvent::Other(kind) => ignored(format!("ignored: {kind} events build nothing; only pushes do")),
            HostEvent::Push { reference, .. } if reference != wanted => {
                ignored(format!("ignored: {reference} is not the connected branch ({wanted})"))
            }
            HostEvent::Push { after, .. } if after.bytes().all(|b| b == b'0') => {
                ignored(format!("ignored: {wanted} was deleted"))
            }
            HostEvent::Push { reference, after } => {
                let short = &after[..7];
                let trigger = format!("{} push of {short} to {}", event.host, source.branch);
                let build = SourceBuild {
                    app: app.name.clone(),
                    repo: source.repo.clone(),
                    reference,
                    commit: Some(after),
                    username: source.connected_by.clone(),
                    trigger,
                    ssh_key: source.deploy_key.clone(),
                };
                Ok(Received { accepted: true, answer: self.build(&app, &build).await? })
            }
        }
    }

    /// Builds a commit, branch or tag of the connected repository now (`builds:create`).
    pub async fn build_now(
        &self,
        user: &UserRow,
        app: &AppRow,
        trigger: &BuildTrigger,
    ) -> Result<SourceBuildAnswer, ApiError> {
        let source = self.0.db.source(app).await?.ok_or_else(|| not_connected(app.name.as_str()))?;
        let reference = trigger.reference.clone().unwrap_or_else(|| source.branch.clone());
        let is_commit = reference.len() == 40 && reference.bytes().all(|b| b.is_ascii_hexdigit());
        if !is_commit {
            check_branch(&reference)?;
        }
        let build = SourceBuild {
            app: app.name.clone(),
            repo: source.repo,
            // A commit is fetched with the branch it is on.
            reference: if is_commit { format!("refs/heads/{}", source.branch) } else { reference.clone() },
            commit: is_commit.then(|| reference.to_ascii_lowercase()),
            username: user.username.clone(),
            trigger: format!("{} asked for a build of {reference}", user.username),
            ssh_key: source.deploy_key,
        };
        self.build(app, &build).await
    }

    /// Has the builder build it.
    async fn build(&self, app: &AppRow, build: &SourceBuild) -> Result<SourceBuildAnswer, ApiError> {
        let c = self.0;
        let sent = c
            .http
            .post(format!("{}/v2/builds", c.config.builder_url))
            .bearer_auth(&c.config.service_token)
            .json(build)
            .timeout(BUILDER_TIMEOUT)
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .map_err(|e| ApiError::Unavailable(format!("the builder cannot take the build now: {e}")))?;
        let answer: SourceBuildAnswer =
            sent.json().await.map_err(|e| ApiError::Unavailable(format!("the builder's answer does not read: {e}")))?;
        let message = format!("{}: {}", build.trigger, answer.message);
        c.events.emit(&app.name, Event::new(EventKind::Build, message).by(&build.username)).await;
        Ok(answer)
    }
}
