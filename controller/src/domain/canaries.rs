//! Canary releases (Kayenta's job): a release on trial runs beside the app's current one
//! (the baseline) and the routers send it a share of the app's requests, counting each
//! side's requests, 5xx answers and latencies. The [`judge`] compares the two as the
//! counts come in; at the end of the window (or as soon as the evidence of a worse canary
//! is conclusive) the canary is promoted (its release rolls out) or rolled back (its
//! release fails, its containers go, the baseline keeps serving).
//!
//! Everything lives in the database: the split (the route feed is built from it), the
//! counts (each router adds its own), and the state; so a canary outlives a controller
//! restart, every router applies the same split, and with several controllers the first
//! to end a canary ends it.

pub mod judge;

use std::time::Duration;

use skiff_api::{Canary, CanaryCreate, CanaryState, CanaryTrial, Judgement, Release, ReleaseState, Verdict};

use crate::db::{AppRow, CanaryRow, NewRelease, UserRow};
use crate::error::ApiError;
use crate::events::Event;
use crate::state::Controller;
use skiff_api::EventKind;

/// The longest window a canary may run.
const MAX_WINDOW: Duration = Duration::from_secs(7 * 24 * 3600);
/// How often running canaries are judged.
pub const JUDGE_EVERY: Duration = Duration::from_secs(1);

/// Apps' canaries.
pub struct Canaries<'a>(&'a Controller);

impl Controller {
    pub fn canaries(&self) -> Canaries<'_> {
        Canaries(self)
    }
}

/// Refuses a trial that makes no sense, saying why.
pub fn check_trial(trial: &CanaryTrial) -> Result<(), ApiError> {
    if !(1..=99).contains(&trial.percent) {
        return Err(ApiError::BadRequest(format!("a canary takes 1 to 99 percent of requests, not {}", trial.percent)));
    }
    if trial.duration_secs == 0 || trial.duration() > MAX_WINDOW {
        return Err(ApiError::BadRequest(format!(
            "a canary runs for 1 s to {} days, not {} s",
            MAX_WINDOW.as_secs() / 86_400,
            trial.duration_secs
        )));
    }
    if trial.min_requests == 0 {
        return Err(ApiError::BadRequest("a canary needs at least 1 request per side to be judged".into()));
    }
    Ok(())
}

impl Canaries<'_> {
    /// Puts `create.release`'s build, with the app's current config, on trial.
    pub async fn start(&self, user: &UserRow, app: &AppRow, create: &CanaryCreate) -> Result<Canary, ApiError> {
        let c = self.0;
        check_trial(&create.trial)?;
        let source = c.db.release(app, create.release).await?.ok_or_else(|| {
            ApiError::NotFound(format!("{} has no release v{}; see `skiff releases`", app.name, create.release))
        })?;
        let config = c.db.config(app).await?;
        let summary = format!("{} put the build of v{} on trial", user.username, source.version);
        let new = NewRelease {
            image: &source.image,
            build: source.build,
            git_sha: source.git_sha.as_deref(),
            procfile: &source.procfile,
            config: &config,
            created_by: &user.username,
            summary: &summary,
        };
        let (_, canary) = self.start_with(app, &new, &create.trial).await?;
        self.view(canary).await
    }

    /// Makes `new` the app's next release, on trial under `trial` (which the caller
    /// checked with [`check_trial`]).
    pub(super) async fn start_with(
        &self,
        app: &AppRow,
        new: &NewRelease<'_>,
        trial: &CanaryTrial,
    ) -> Result<(Release, CanaryRow), ApiError> {
        let c = self.0;
        let (release, canary) = c.db.create_trial_release(app, new, trial).await?.ok_or_else(|| {
            ApiError::Conflict(format!(
                "{} runs no release to compare a canary with; deploy one first (`git push skiff main`)",
                app.name
            ))
        })?;
        let sticky = if trial.sticky { ", sticky by client" } else { "" };
        let message = format!(
            "Canary v{} started ({}): {}% of requests{sticky} for {} s, compared with v{}",
            release.version, release.summary, trial.percent, trial.duration_secs, canary.baseline
        );
        let data =
            serde_json::json!({ "version": release.version, "baseline": canary.baseline, "percent": trial.percent });
        c.announce_change(&app.name, Event::new(EventKind::Release, message).by(&release.created_by).with(data)).await;
        Ok((release, canary))
    }

    /// The app's running canary, or its last one, with the judgement so far.
    pub async fn latest(&self, app: &AppRow) -> Result<Canary, ApiError> {
        let canary = self.0.db.latest_canary(app).await?.ok_or_else(|| {
            ApiError::NotFound(format!(
                "{} has had no canary; start one with `skiff releases:canary -a {} vN --percent 10 --for 10m`",
                app.name, app.name
            ))
        })?;
        self.view(canary).await
    }

    async fn view(&self, row: CanaryRow) -> Result<Canary, ApiError> {
        let (baseline, canary) = self.0.db.canary_counts(row.id).await?;
        let judgement = match &row.judgement {
            Some(ended) => ended.clone(),
            None => judge::judge(&baseline, &canary, row.trial.min_requests, is_past(&row.ends_at)),
        };
        Ok(Canary {
            id: row.id,
            app: row.app,
            release: row.release,
            baseline: row.baseline,
            trial: row.trial,
            state: row.state,
            started_at: row.started_at,
            ends_at: row.ends_at,
            ended_at: row.ended_at,
            baseline_metrics: judge::summary(&baseline),
            canary_metrics: judge::summary(&canary),
            judgement,
        })
    }

    /// Ends the app's running canary by hand: promoted (rolled out) or aborted (rolled back).
    pub async fn end_by_hand(&self, user: &UserRow, app: &AppRow, promote: bool) -> Result<Canary, ApiError> {
        let c = self.0;
        let row = c.db.latest_canary(app).await?.filter(|row| row.state == CanaryState::Running);
        let row = row.ok_or_else(|| ApiError::Conflict(format!("{} has no canary running", app.name)))?;
        let (baseline, canary) = c.db.canary_counts(row.id).await?;
        let mut judgement = judge::judge(&baseline, &canary, row.trial.min_requests, is_past(&row.ends_at));
        let (state, verb) =
            if promote { (CanaryState::Promoted, "promoted") } else { (CanaryState::Aborted, "aborted") };
        judgement.reason = format!("{verb} by {} (the judge said: {})", user.username, judgement.reason);
        self.end(&row, state, &judgement).await?;
        let row = c.db.latest_canary(app).await?.ok_or_else(|| ApiError::Internal("the canary went away".into()))?;
        self.view(row).await
    }

    /// Ends a canary and says so; `false` when someone else ended it first.
    async fn end(&self, row: &CanaryRow, state: CanaryState, judgement: &Judgement) -> Result<bool, ApiError> {
        let c = self.0;
        if !c.db.end_canary(row, state, judgement).await? {
            return Ok(false);
        }
        let outcome = match state {
            CanaryState::Promoted => format!("promoted; rolling it out in place of v{}", row.baseline),
            _ => format!("not promoted; v{} keeps serving", row.baseline),
        };
        let message = format!("Canary v{} {outcome}: {}", row.release, judgement.reason);
        let data = serde_json::json!({ "version": row.release, "baseline": row.baseline, "score": judgement.score });
        c.announce_change(&row.app, Event::new(EventKind::Deploy, message).with(data)).await;
        tracing::info!(app = %row.app, release = row.release, ?state, score = judgement.score, "controller.canary.ended");
        Ok(true)
    }

    /// Judges every running canary once, ending those with a verdict.
    pub async fn judge_running(&self) -> Result<(), ApiError> {
        let c = self.0;
        for (row, release) in c.db.running_canaries().await? {
            if release.state == ReleaseState::Failed {
                let reason = release.failure.unwrap_or_else(|| "its release failed".into());
                let judgement = Judgement {
                    score: 0,
                    verdict: Verdict::Fail,
                    reason: format!("v{}: {reason}", row.release),
                    metrics: vec![],
                };
                self.end(&row, CanaryState::Failed, &judgement).await?;
                continue;
            }
            let (baseline, canary) = c.db.canary_counts(row.id).await?;
            let judgement = judge::judge(&baseline, &canary, row.trial.min_requests, is_past(&row.ends_at));
            let state = match judgement.verdict {
                Verdict::Wait => continue,
                Verdict::Pass => CanaryState::Promoted,
                Verdict::Fail => CanaryState::Failed,
                Verdict::Inconclusive => CanaryState::Inconclusive,
            };
            self.end(&row, state, &judgement).await?;
        }
        Ok(())
    }
}

/// Whether an RFC 3339 time has passed (an unreadable one has).
fn is_past(at: &str) -> bool {
    time::OffsetDateTime::parse(at, &time::format_description::well_known::Rfc3339)
        .map_or(true, |at| at <= time::OffsetDateTime::now_utc())
}

/// Judges running canaries every [`JUDGE_EVERY`] until `shutdown`.
pub async fn judge_canaries(controller: std::sync::Arc<Controller>, shutdown: tokio_util::sync::CancellationToken) {
    loop {
        tokio::select! {
            () = tokio::time::sleep(JUDGE_EVERY) => {}
            () = shutdown.cancelled() => return,
        }
        if let Err(error) = controller.canaries().judge_running().await {
            tracing::warn!(%error, "controller.canary: judging failed; trying again");
        }
    }
}
