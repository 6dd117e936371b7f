//! `cron:*`: scheduled jobs, run in one-off containers of the app's current release.

use std::io::Write;

use clap::Subcommand;
use skiff_api::{CronCreate, CronJob, CronRunState, CronSource};

use crate::Context;
use crate::args::{AppArg, JsonArg};
use crate::commands::{app_name, client};
use crate::one_off::shell_line;
use crate::output::{ago, json, table};

#[derive(Debug, Subcommand)]
pub(crate) enum CronVerb {
    /// List scheduled jobs with when each runs next and how its last run went.
    #[command(name = "cron")]
    Cron {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Schedule a command: five cron fields ('*/10 * * * *') or @hourly, @daily, @weekly,
    /// @monthly, @yearly; it runs in a one-off container of the current release, its output
    /// in `skiff logs` (process `cron`).
    #[command(name = "cron:add")]
    CronAdd {
        #[command(flatten)]
        app: AppArg,
        /// The time zone the schedule is read in (an IANA name: Europe/Paris).
        #[arg(long, default_value = "UTC")]
        tz: String,
        /// The schedule, quoted.
        schedule: String,
        /// The command and its arguments (after `--`).
        #[arg(required = true, trailing_var_arg = true, allow_hyphen_values = true, value_name = "COMMAND")]
        command: Vec<String>,
    },
    /// Stop a scheduled job.
    #[command(name = "cron:remove")]
    CronRemove {
        #[command(flatten)]
        app: AppArg,
        id: i64,
    },
    /// Run a scheduled job now, beside its schedule.
    #[command(name = "cron:run")]
    CronRun {
        #[command(flatten)]
        app: AppArg,
        id: i64,
    },
}

/// How a job's last run went, in a few words.
fn last_run(job: &CronJob) -> String {
    let Some(run) = &job.last_run else { return "never ran".into() };
    let took = run.duration_ms.map_or_else(String::new, |ms| format!(" in {:.1} s", ms as f64 / 1000.0));
    let when = ago(&run.due_at);
    match run.state {
        CronRunState::Running => format!("running (due {when})"),
        CronRunState::Succeeded => format!("succeeded{took}, {when}"),
        CronRunState::Failed => format!("failed: {}{took}, {when}", run.reason.as_deref().unwrap_or("")),
        CronRunState::Skipped => format!("skipped: {}, {when}", run.reason.as_deref().unwrap_or("")),
    }
}

pub(crate) async fn execute(
    verb: CronVerb,
    context: &Context,
    out: &mut impl Write,
    _err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        CronVerb::Cron { app, json: flag } => {
            let jobs = client(context)?.cron_jobs(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &jobs);
            }
            let rows = jobs
                .iter()
                .map(|job| {
                    let source = if job.source == CronSource::AppJson { "app.json" } else { "cli" };
                    vec![
                        job.id.to_string(),
                        job.schedule.clone(),
                        job.timezone.clone(),
                        job.command.clone(),
                        source.to_owned(),
                        job.next_run_at.clone(),
                        last_run(job),
                    ]
                })
                .collect();
            table(out, context.colour, &["ID", "SCHEDULE", "TZ", "COMMAND", "FROM", "NEXT RUN", "LAST RUN"], rows)
        }
        CronVerb::CronAdd { app, tz, schedule, command } => {
            let app = app_name(context, app)?;
            let create = CronCreate { schedule, command: shell_line(&command), timezone: Some(tz) };
            let job = client(context)?.add_cron_job(&app, &create).await?;
            writeln!(
                out,
                "Scheduled job {} on {app}: `{}` at `{}` ({}); next run {}",
                job.id, job.command, job.schedule, job.timezone, job.next_run_at
            )?;
            Ok(())
        }
        CronVerb::CronRemove { app, id } => {
            client(context)?.remove_cron_job(&app_name(context, app)?, id).await?;
            writeln!(out, "Removed scheduled job {id}")?;
            Ok(())
        }
        CronVerb::CronRun { app, id } => {
            let app = app_name(context, app)?;
            let run = client(context)?.run_cron_job(&app, id).await?;
            match run.state {
                CronRunState::Skipped => writeln!(out, "Job {id} not run: {}", run.reason.unwrap_or_default())?,
                _ => writeln!(
                    out,
                    "Running job {id} on {app}; its output is in `skiff logs -p cron`, its end in `skiff cron`"
                )?,
            }
            Ok(())
        }
    }
}
