//! `releases:canary`, `canary`, `canary:promote` and `canary:abort`: a release on trial
//! beside the current one, judged on its share of the app's requests.

use std::io::Write;

use clap::{Args, Subcommand};
use skiff_api::{ArmSummary, Canary, CanaryCreate, CanaryState, CanaryTrial, DEFAULT_MIN_REQUESTS};

use crate::Context;
use crate::args::{AppArg, JsonArg, parse_duration, parse_version};
use crate::commands::{app_name, client, text_of};
use crate::output::{json, table};

#[derive(Debug, Subcommand)]
pub(crate) enum CanaryVerb {
    /// Put a release's build (with the app's current config) on trial beside the
    /// current release: it gets a share of the requests, and is promoted or rolled back
    /// on how its error rate and latency compare.
    #[command(name = "releases:canary")]
    ReleasesCanary {
        /// The release whose build goes on trial, e.g. v7.
        #[arg(value_parser = parse_version)]
        version: u32,
        #[command(flatten)]
        app: AppArg,
        /// The share of requests it gets (1–99).
        #[arg(long)]
        percent: u8,
        /// How long it runs before the judge decides: 90s, 10m, 2h.
        #[arg(long = "for", value_parser = parse_duration)]
        duration: u64,
        #[command(flatten)]
        trial: TrialArgs,
    },
    /// Show the app's running canary (or its last one): both sides' numbers and the
    /// judge's score.
    #[command(name = "canary")]
    Canary {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Promote the running canary now: its release rolls out.
    #[command(name = "canary:promote")]
    CanaryPromote {
        #[command(flatten)]
        app: AppArg,
    },
    /// Roll the running canary back now: the current release keeps serving.
    #[command(name = "canary:abort")]
    CanaryAbort {
        #[command(flatten)]
        app: AppArg,
    },
}

/// How a canary is judged, beyond its share and window.
#[derive(Debug, Args)]
pub(crate) struct TrialArgs {
    /// Keep each client on one side (chosen by its address) instead of splitting by request.
    #[arg(long)]
    pub(crate) sticky: bool,
    /// The fewest requests each side needs to be judged; fewer at the end: not promoted.
    #[arg(long, default_value_t = DEFAULT_MIN_REQUESTS)]
    pub(crate) min_requests: u64,
}

impl TrialArgs {
    pub(crate) fn trial(&self, percent: u8, duration_secs: u64) -> CanaryTrial {
        CanaryTrial { percent, duration_secs, sticky: self.sticky, min_requests: self.min_requests }
    }
}

pub(crate) async fn execute(
    verb: CanaryVerb,
    context: &Context,
    out: &mut impl Write,
    _err: &mut impl Write,
) -> anyhow::Result<()> {
    let client = client(context)?;
    match verb {
        CanaryVerb::ReleasesCanary { version, app, percent, duration, trial } => {
            let app = app_name(context, app)?;
            let create = CanaryCreate { release: version, trial: trial.trial(percent, duration) };
            let canary = client.start_canary(&app, &create).await?;
            writeln!(
                out,
                "Canary v{} of {app} started: {}% of requests for {} s beside v{}; see `skiff canary -a {app}`",
                canary.release, canary.trial.percent, canary.trial.duration_secs, canary.baseline
            )?;
            Ok(())
        }
        CanaryVerb::Canary { app, json: flag } => {
            let app = app_name(context, app)?;
            let canary = client.canary(&app).await?;
            if flag.json {
                return json(out, &canary);
            }
            show(out, context.colour, &canary)
        }
        CanaryVerb::CanaryPromote { app } => {
            let app = app_name(context, app)?;
            let canary = client.end_canary(&app, true).await?;
            writeln!(
                out,
                "Promoted canary v{} of {app}: it rolls out in place of v{}",
                canary.release, canary.baseline
            )?;
            Ok(())
        }
        CanaryVerb::CanaryAbort { app } => {
            let app = app_name(context, app)?;
            let canary = client.end_canary(&app, false).await?;
            writeln!(out, "Rolled canary v{} of {app} back: v{} keeps serving", canary.release, canary.baseline)?;
            Ok(())
        }
    }
}

fn show(out: &mut impl Write, colour: bool, canary: &Canary) -> anyhow::Result<()> {
    let sticky = if canary.trial.sticky { ", sticky by client" } else { "" };
    let until = match canary.state {
        CanaryState::Running => format!("until {}", canary.ends_at),
        _ => format!("ended {}", canary.ended_at.as_deref().unwrap_or("-")),
    };
    writeln!(
        out,
        "Canary v{} of {} against v{}: {}, {}% of requests{sticky}, {until}",
        canary.release,
        canary.app,
        canary.baseline,
        text_of(&canary.state),
        canary.trial.percent
    )?;
    let ms = |value: Option<f64>| value.map_or_else(|| "-".to_owned(), |v| format!("{v:.1} ms"));
    let row = |side: &str, arm: &ArmSummary| {
        let rate = if arm.requests == 0 { 0.0 } else { 100.0 * arm.errors as f64 / arm.requests as f64 };
        vec![side.to_owned(), arm.requests.to_string(), format!("{rate:.1}%"), ms(arm.p50_ms), ms(arm.p99_ms)]
    };
    let rows = vec![
        row(&format!("baseline v{}", canary.baseline), &canary.baseline_metrics),
        row(&format!("canary v{}", canary.release), &canary.canary_metrics),
    ];
    table(out, colour, &["SIDE", "REQUESTS", "5XX", "P50", "P99"], rows)?;
    let judgement = &canary.judgement;
    writeln!(out, "Score {}, {}: {}", judgement.score, text_of(&judgement.verdict), judgement.reason)?;
    for metric in &judgement.metrics {
        let mark = if metric.passed { "pass" } else { "FAIL" };
        let critical = if metric.critical { " (critical)" } else { "" };
        writeln!(out, "  {mark} {}{critical}: {}", metric.metric, metric.detail)?;
    }
    Ok(())
}
