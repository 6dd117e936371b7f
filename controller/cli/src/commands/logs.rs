//! `logs`: an app's log lines, recent and live.

use std::io::Write;

use clap::Subcommand;
use skiff_api::LogLine;
use skiff_client::LogQuery;

use crate::Context;
use crate::args::{AppArg, JsonArg};
use crate::commands::{app_name, client};
use crate::output::json;

#[derive(Debug, Subcommand)]
pub(crate) enum LogsVerb {
    /// Show an app's recent log lines, and follow new ones with -f.
    #[command(name = "logs")]
    Logs {
        #[command(flatten)]
        app: AppArg,
        /// How many recent lines.
        #[arg(long, short = 'n', default_value_t = 100)]
        num: usize,
        /// Keep printing new lines as they arrive (Ctrl-C to stop).
        #[arg(long, short = 'f', visible_alias = "tail")]
        follow: bool,
        /// Only this process type (`web`) or instance (`web.1a2b3c`).
        #[arg(long, short = 'p')]
        process: Option<String>,
        /// Only lines from this source.
        #[arg(long, value_parser = ["app", "router", "platform"])]
        source: Option<String>,
        #[command(flatten)]
        json: JsonArg,
    },
}

pub(crate) async fn execute(
    verb: LogsVerb,
    context: &Context,
    out: &mut impl Write,
    _err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        LogsVerb::Logs { app, num, follow, process, source, json: flag } => {
            let app = app_name(context, app)?;
            let source = source.map(|s| serde_json::from_value(serde_json::Value::String(s))).transpose()?;
            let query = LogQuery { lines: num, process, source };
            let print = |out: &mut dyn Write, line: &LogLine| -> anyhow::Result<()> {
                if flag.json {
                    writeln!(out, "{}", serde_json::to_string(line)?)?;
                } else {
                    writeln!(out, "{} {}[{}]: {}", line.time, line.app, line.process, line.message)?;
                }
                Ok(())
            };
            if follow {
                let mut lines = std::pin::pin!(client(context)?.follow_logs(&app, &query).await?);
                while let Some(line) = futures_util::StreamExt::next(&mut lines).await {
                    print(out, &line?)?;
                    out.flush()?;
                }
                return Ok(());
            }
            let lines = client(context)?.logs(&app, &query).await?;
            if flag.json {
                return json(out, &lines);
            }
            for line in &lines {
                print(out, line)?;
            }
            Ok(())
        }
    }
}
