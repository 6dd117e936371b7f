//! `pipelines:*`: apps in stages, and promoting a build from one stage to the next;
//! `reviewapps:*`: apps made for the branches pushed to a pipeline's apps.

use std::io::Write;

use clap::Subcommand;
use skiff_api::{AppName, PipelineName, Promotion, ReviewAppSettings, Stage};

use crate::Context;
use crate::args::{AppArg, JsonArg, WaitArg, parse_config_pair, parse_duration};
use crate::commands::canary::TrialArgs;
use crate::commands::{app_name, client};
use crate::output::{ago, json, table};
use crate::rollout::follow_rollout;

#[derive(Debug, Subcommand)]
pub(crate) enum PipelinesVerb {
    /// List the pipelines you can see.
    #[command(name = "pipelines")]
    Pipelines(JsonArg),
    /// Create a pipeline.
    #[command(name = "pipelines:create")]
    PipelinesCreate { name: PipelineName },
    /// Show a pipeline's apps by stage, with the release each runs.
    #[command(name = "pipelines:info")]
    PipelinesInfo {
        name: PipelineName,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Put an app in a pipeline at a stage (or move it to another stage).
    #[command(name = "pipelines:add")]
    PipelinesAdd {
        name: PipelineName,
        #[command(flatten)]
        app: AppArg,
        /// development, staging or production.
        #[arg(long)]
        stage: Stage,
    },
    /// Take an app out of its pipeline.
    #[command(name = "pipelines:remove")]
    PipelinesRemove {
        #[command(flatten)]
        app: AppArg,
    },
    /// Destroy a pipeline; its apps stay.
    #[command(name = "pipelines:destroy")]
    PipelinesDestroy { name: PipelineName },
    /// Release the app's running build on the apps of the next stage (or those named):
    /// the same image, each with its own config; nothing is built again.
    #[command(name = "pipelines:promote")]
    PipelinesPromote {
        #[command(flatten)]
        app: AppArg,
        /// Promote to these apps of the pipeline instead (comma-separated).
        #[arg(long, value_delimiter = ',')]
        to: Vec<AppName>,
        /// Put the build on trial on each target first, with this share of requests
        /// (1–99); promoted or rolled back on how it compares (`skiff canary`).
        #[arg(long, value_name = "PERCENT", requires = "canary_for", conflicts_with = "wait")]
        canary: Option<u8>,
        /// How long the canary runs before the judge decides: 90s, 10m, 2h.
        #[arg(long, value_name = "DURATION", value_parser = parse_duration, requires = "canary")]
        canary_for: Option<u64>,
        #[command(flatten)]
        trial: TrialArgs,
        #[command(flatten)]
        wait: WaitArg,
    },
    /// List a pipeline's review apps.
    #[command(name = "reviewapps")]
    ReviewApps {
        #[command(flatten)]
        pipeline: PipelineArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Make a review app `<app>-<branch>` for each branch pushed to an app of the pipeline
    /// (`git push skiff feature-x`; `git push skiff :feature-x` destroys it).
    #[command(name = "reviewapps:enable")]
    ReviewAppsEnable {
        #[command(flatten)]
        pipeline: PipelineArg,
        /// Destroy a review app after this many days without a push.
        #[arg(long, default_value_t = 5)]
        days: u32,
        /// Config every new review app starts with (KEY=VALUE, repeatable).
        #[arg(long = "config", value_name = "KEY=VALUE", value_parser = parse_config_pair)]
        config: Vec<(String, String)>,
    },
    /// Stop making review apps for the pipeline (those made stay until their branch goes).
    #[command(name = "reviewapps:disable")]
    ReviewAppsDisable {
        #[command(flatten)]
        pipeline: PipelineArg,
    },
}

/// The pipeline a review-app verb acts on.
#[derive(Debug, clap::Args)]
pub(crate) struct PipelineArg {
    /// The pipeline.
    #[arg(long = "pipeline", short = 'p')]
    pipeline: PipelineName,
}

pub(crate) async fn execute(
    verb: PipelinesVerb,
    context: &Context,
    out: &mut impl Write,
    err: &mut impl Write,
) -> anyhow::Result<()> {
    let client = client(context)?;
    match verb {
        PipelinesVerb::Pipelines(flag) => {
            let pipelines = client.pipelines().await?;
            if flag.json {
                return json(out, &pipelines);
            }
            let rows = pipelines
                .iter()
                .map(|p| {
                    let apps: Vec<String> = p.apps.iter().map(|a| format!("{} ({})", a.app, a.stage)).collect();
                    vec![p.name.to_string(), p.owner.to_string(), apps.join(", ")]
                })
                .collect();
            table(out, context.colour, &["NAME", "OWNER", "APPS"], rows)
        }
        PipelinesVerb::PipelinesCreate { name } => {
            client.create_pipeline(&name).await?;
            writeln!(out, "Created pipeline {name}; add apps with `skiff pipelines:add {name} -a APP --stage STAGE`")?;
            Ok(())
        }
        PipelinesVerb::PipelinesInfo { name, json: flag } => {
            let pipeline = client.pipeline(&name).await?;
            if flag.json {
                return json(out, &pipeline);
            }
            writeln!(out, "{} (owner {})", pipeline.name, pipeline.owner)?;
            let review = &pipeline.review_apps;
            match review.enabled {
                true => writeln!(out, "review apps: on, destroyed after {} days without a push", review.days)?,
                false => writeln!(out, "review apps: off")?,
            }
            let rows = pipeline
                .apps
                .iter()
                .map(|a| {
                    vec![
                        a.stage.to_string(),
                        a.app.to_string(),
                        a.release.map_or_else(|| "-".into(), |v| format!("v{v}")),
                        a.image.clone().unwrap_or_else(|| "-".into()),
                    ]
                })
                .collect();
            table(out, context.colour, &["STAGE", "APP", "RELEASE", "IMAGE"], rows)
        }
        PipelinesVerb::PipelinesAdd { name, app, stage } => {
            let app = app_name(context, app)?;
            client.couple(&name, &app, stage).await?;
            writeln!(out, "Added {app} to {name} as {stage}")?;
            Ok(())
        }
        PipelinesVerb::PipelinesRemove { app } => {
            let app = app_name(context, app)?;
            client.uncouple(&app).await?;
            writeln!(out, "Took {app} out of its pipeline")?;
            Ok(())
        }
        PipelinesVerb::PipelinesDestroy { name } => {
            client.destroy_pipeline(&name).await?;
            writeln!(out, "Destroyed pipeline {name}; its apps stay")?;
            Ok(())
        }
        PipelinesVerb::PipelinesPromote { app, to, canary, canary_for, trial, wait } => {
            let app = app_name(context, app)?;
            let canary = canary.zip(canary_for).map(|(percent, duration)| trial.trial(percent, duration));
            let releases = client.promote(&app, &Promotion { to, canary }).await?;
            for release in &releases {
                let how = if canary.is_some() { "Canary on" } else { "Promoted to" };
                writeln!(out, "{how} {}: v{} ({})", release.app, release.version, release.summary)?;
            }
            // A canary's release rolls out only once it passes.
            for release in releases.iter().filter(|_| wait.wait && canary.is_none()) {
                follow_rollout(context, &release.app, Some(release.version), err).await?;
            }
            Ok(())
        }
        PipelinesVerb::ReviewApps { pipeline, json: flag } => {
            let apps = client.review_apps(&pipeline.pipeline).await?;
            if flag.json {
                return json(out, &apps);
            }
            let rows = apps
                .iter()
                .map(|a| vec![a.app.to_string(), a.branch.clone(), a.url.clone(), ago(&a.pushed_at)])
                .collect();
            table(out, context.colour, &["APP", "BRANCH", "URL", "PUSHED"], rows)
        }
        PipelinesVerb::ReviewAppsEnable { pipeline, days, config } => {
            let settings = ReviewAppSettings { enabled: true, days, config: config.into_iter().collect() };
            client.configure_review_apps(&pipeline.pipeline, &settings).await?;
            writeln!(
                out,
                "Review apps on for {}: a branch pushed to one of its apps gets an app of its own, destroyed after {days} days without a push",
                pipeline.pipeline
            )?;
            Ok(())
        }
        PipelinesVerb::ReviewAppsDisable { pipeline } => {
            let current = client.pipeline(&pipeline.pipeline).await?.review_apps;
            let settings = ReviewAppSettings { enabled: false, ..current };
            client.configure_review_apps(&pipeline.pipeline, &settings).await?;
            writeln!(out, "Review apps off for {}", pipeline.pipeline)?;
            Ok(())
        }
    }
}
