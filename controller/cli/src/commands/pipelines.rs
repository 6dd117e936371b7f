//! `pipelines:*`: apps in stages, and promoting a build from one stage to the next.

use std::io::Write;

use clap::Subcommand;
use skiff_api::{AppName, PipelineName, Promotion, Stage};

use crate::Context;
use crate::args::{AppArg, JsonArg, WaitArg};
use crate::commands::{app_name, client};
use crate::output::{json, table};
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
        #[command(flatten)]
        wait: WaitArg,
    },
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
        PipelinesVerb::PipelinesPromote { app, to, wait } => {
            let app = app_name(context, app)?;
            let releases = client.promote(&app, &Promotion { to }).await?;
            for release in &releases {
                writeln!(out, "Promoted to {}: v{} ({})", release.app, release.version, release.summary)?;
            }
            for release in releases.iter().filter(|_| wait.wait) {
                follow_rollout(context, &release.app, Some(release.version), err).await?;
            }
            Ok(())
        }
    }
}
