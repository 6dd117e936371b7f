//! `apps:*`, `perms:*` and `domains:*`: apps, who shares them, and the names they answer to.

use std::io::Write;

use anyhow::bail;
use clap::Subcommand;
use skiff_api::{AppCreate, AppName, StackName, Username};

use crate::args::{AppArg, JsonArg};
use crate::commands::{app_name, ask, client};
use crate::output::{ago, json, table};
use crate::{Context, git};

#[derive(Debug, Subcommand)]
pub(crate) enum AppsVerb {
    /// List apps.
    #[command(name = "apps")]
    Apps(JsonArg),
    /// Create an app; inside a git repository, add a `skiff` remote for it.
    #[command(name = "apps:create")]
    AppsCreate {
        /// The name (random when absent).
        name: Option<AppName>,
        /// The stack to build on (the platform's default when absent).
        #[arg(long)]
        stack: Option<StackName>,
        /// Do not add a git remote.
        #[arg(long)]
        no_remote: bool,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Show an app.
    #[command(name = "apps:info")]
    AppsInfo {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Destroy an app with its containers and routes.
    #[command(name = "apps:destroy")]
    AppsDestroy {
        #[command(flatten)]
        app: AppArg,
        /// The app's name, to skip the question.
        #[arg(long)]
        confirm: Option<String>,
    },
    /// Open the app's URL in a browser (or print it).
    #[command(name = "apps:open")]
    AppsOpen {
        #[command(flatten)]
        app: AppArg,
    },
    /// Give an app to another user.
    #[command(name = "apps:transfer")]
    AppsTransfer {
        username: Username,
        #[command(flatten)]
        app: AppArg,
    },
    /// List an app's collaborators.
    #[command(name = "perms")]
    Perms {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Let another user deploy and manage an app.
    #[command(name = "perms:add")]
    PermsAdd {
        username: Username,
        #[command(flatten)]
        app: AppArg,
    },
    /// Take a collaborator off an app.
    #[command(name = "perms:remove")]
    PermsRemove {
        username: Username,
        #[command(flatten)]
        app: AppArg,
    },
    /// List an app's custom domains.
    #[command(name = "domains")]
    Domains {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Route a custom domain (www.example.com, or *.example.com) to an app.
    #[command(name = "domains:add")]
    DomainsAdd {
        domain: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Stop routing a custom domain to an app.
    #[command(name = "domains:remove")]
    DomainsRemove {
        domain: String,
        #[command(flatten)]
        app: AppArg,
    },
}

pub(crate) async fn execute(
    verb: AppsVerb,
    context: &Context,
    out: &mut impl Write,
    _err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        AppsVerb::Apps(flag) => {
            let apps = client(context)?.apps().await?;
            if flag.json {
                return json(out, &apps);
            }
            let rows = apps
                .iter()
                .map(|a| {
                    let release = a.release.map_or_else(|| "-".to_owned(), |v| format!("v{v}"));
                    vec![a.name.to_string(), a.owner.to_string(), release, a.url.clone()]
                })
                .collect();
            table(out, context.colour, &["NAME", "OWNER", "RELEASE", "URL"], rows)
        }
        AppsVerb::AppsCreate { name, stack, no_remote, json: flag } => {
            let app = client(context)?.create_app(&AppCreate { name, stack }).await?;
            let remote = !no_remote && git::in_repository(&context.cwd);
            if remote {
                git::set_remote(&context.cwd, &app.git_url)?;
            }
            if flag.json {
                return json(out, &app);
            }
            writeln!(out, "Created {} on stack {}", app.name, app.stack)?;
            writeln!(out, "  url: {}", app.url)?;
            writeln!(out, "  git: {}", app.git_url)?;
            if remote {
                writeln!(out, "Added git remote `skiff`; deploy with `git push skiff main`")?;
            }
            Ok(())
        }
        AppsVerb::AppsInfo { app, json: flag } => {
            let app = client(context)?.app(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &app);
            }
            let release = app.release.map_or_else(|| "none yet; `git push skiff main`".to_owned(), |v| format!("v{v}"));
            for (key, value) in [
                ("name", app.name.to_string()),
                ("owner", app.owner.to_string()),
                ("stack", app.stack.to_string()),
                ("release", release),
                ("url", app.url),
                ("git", app.git_url),
                ("created", ago(&app.created_at)),
            ] {
                writeln!(out, "{key:>8}: {value}")?;
            }
            Ok(())
        }
        AppsVerb::AppsDestroy { app, confirm } => {
            let app = app_name(context, app)?;
            let confirm = match confirm {
                Some(confirm) => confirm,
                None => {
                    ask(&format!("This destroys {app} with its containers and releases. Type its name to confirm: "))?
                }
            };
            if confirm != app.as_str() {
                bail!("confirmation `{confirm}` does not match `{app}`; nothing was destroyed");
            }
            client(context)?.destroy_app(&app).await?;
            writeln!(out, "Destroyed {app}")?;
            Ok(())
        }
        AppsVerb::AppsOpen { app } => {
            let app = client(context)?.app(&app_name(context, app)?).await?;
            // A browser when one is at hand; the URL either way.
            let opened = std::process::Command::new("xdg-open")
                .arg(&app.url)
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            writeln!(out, "{}{}", app.url, if opened { "" } else { " (no browser found; open it yourself)" })?;
            Ok(())
        }
        AppsVerb::AppsTransfer { username, app } => {
            let app = client(context)?.transfer(&app_name(context, app)?, &username).await?;
            writeln!(out, "Transferred {} to {}", app.name, app.owner)?;
            Ok(())
        }
        AppsVerb::Perms { app, json: flag } => {
            let users = client(context)?.perms(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &users);
            }
            for user in users {
                writeln!(out, "{user}")?;
            }
            Ok(())
        }
        AppsVerb::PermsAdd { username, app } => {
            let app = app_name(context, app)?;
            client(context)?.add_perm(&app, &username).await?;
            writeln!(out, "{username} can now deploy and manage {app}")?;
            Ok(())
        }
        AppsVerb::PermsRemove { username, app } => {
            let app = app_name(context, app)?;
            client(context)?.remove_perm(&app, &username).await?;
            writeln!(out, "{username} no longer collaborates on {app}")?;
            Ok(())
        }
        AppsVerb::Domains { app, json: flag } => {
            let domains = client(context)?.domains(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &domains);
            }
            let rows = domains.iter().map(|d| vec![d.domain.clone(), ago(&d.created_at)]).collect();
            table(out, context.colour, &["DOMAIN", "ADDED"], rows)
        }
        AppsVerb::DomainsAdd { domain, app } => {
            let app = app_name(context, app)?;
            client(context)?.add_domain(&app, &domain).await?;
            writeln!(out, "Routing {domain} to {app}; point its DNS at the router")?;
            Ok(())
        }
        AppsVerb::DomainsRemove { domain, app } => {
            let app = app_name(context, app)?;
            client(context)?.remove_domain(&app, &domain).await?;
            writeln!(out, "No longer routing {domain} to {app}")?;
            Ok(())
        }
    }
}
