//! `maintenance:*`, `certs:*`, `access:*` and `tls:*`: what the router does with an app's requests.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Subcommand;
use skiff_api::{AccessPolicy, AutoCertificateState, AutoCertificates, CertificateCreate, TlsSettings};

use crate::Context;
use crate::args::{AppArg, BodyLimit, JsonArg, parse_body_limit};
use crate::commands::{app_name, client};
use crate::output::{ago, json, table};

#[derive(Debug, Subcommand)]
pub(crate) enum RoutingVerb {
    /// Show whether an app is in maintenance mode.
    #[command(name = "maintenance")]
    MaintenanceStatus {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Answer every request to an app with a maintenance page (503).
    #[command(name = "maintenance:on")]
    MaintenanceOn {
        #[command(flatten)]
        app: AppArg,
    },
    /// Serve an app's requests again.
    #[command(name = "maintenance:off")]
    MaintenanceOff {
        #[command(flatten)]
        app: AppArg,
    },
    /// List an app's TLS certificates: the names they cover, where they are served, expiry.
    #[command(name = "certs")]
    Certs {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Add a TLS certificate: a PEM chain (leaf first) and its PEM private key.
    #[command(name = "certs:add")]
    CertsAdd {
        name: String,
        #[arg(value_name = "CERT.pem")]
        certificate: PathBuf,
        #[arg(value_name = "KEY.pem")]
        key: PathBuf,
        #[command(flatten)]
        app: AppArg,
    },
    /// Serve a certificate for one of the app's domains (see `skiff domains`).
    #[command(name = "certs:attach")]
    CertsAttach {
        name: String,
        domain: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Stop serving a certificate for a domain.
    #[command(name = "certs:detach")]
    CertsDetach {
        name: String,
        domain: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Get certificates for every custom domain of an app, and each one added later, from the platform's ACME server (renewed before expiry).
    #[command(name = "certs:auto")]
    CertsAuto {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Stop ordering and renewing certificates for an app (those issued are served until removed).
    #[command(name = "certs:auto:disable")]
    CertsAutoDisable {
        #[command(flatten)]
        app: AppArg,
    },
    /// Remove a TLS certificate.
    #[command(name = "certs:remove")]
    CertsRemove {
        name: String,
        #[command(flatten)]
        app: AppArg,
    },
    /// Show which client addresses may reach an app and how large a request body may be.
    #[command(name = "access")]
    Access {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Let only these addresses or blocks (10.0.0.0/8, 2001:db8::/32) reach an app, besides any allowed before.
    #[command(name = "access:allow")]
    AccessAllow {
        #[arg(required = true, value_name = "ADDRESS")]
        addresses: Vec<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Refuse these addresses or blocks (403), even when allowed.
    #[command(name = "access:deny")]
    AccessDeny {
        #[arg(required = true, value_name = "ADDRESS")]
        addresses: Vec<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Take addresses off both lists.
    #[command(name = "access:remove")]
    AccessRemove {
        #[arg(required = true, value_name = "ADDRESS")]
        addresses: Vec<String>,
        #[command(flatten)]
        app: AppArg,
    },
    /// Limit request bodies (413 beyond): a size like 512k, 10m or 1g, or `off`.
    #[command(name = "access:max-body")]
    AccessMaxBody {
        #[arg(value_parser = parse_body_limit, value_name = "SIZE")]
        size: BodyLimit,
        #[command(flatten)]
        app: AppArg,
    },
    /// Show an app's HTTPS policy.
    #[command(name = "tls")]
    Tls {
        #[command(flatten)]
        app: AppArg,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Redirect an app's plain HTTP requests to HTTPS, optionally with HSTS.
    #[command(name = "tls:enable")]
    TlsEnable {
        /// Also send Strict-Transport-Security with this max-age, in seconds.
        #[arg(long, value_name = "SECONDS", default_value_t = 0)]
        hsts: u64,
        #[command(flatten)]
        app: AppArg,
    },
    /// Serve an app over plain HTTP again, without HSTS.
    #[command(name = "tls:disable")]
    TlsDisable {
        #[command(flatten)]
        app: AppArg,
    },
}

pub(crate) async fn execute(
    verb: RoutingVerb,
    context: &Context,
    out: &mut impl Write,
    _err: &mut impl Write,
) -> anyhow::Result<()> {
    match verb {
        RoutingVerb::MaintenanceStatus { app, json: flag } => {
            let app = client(context)?.app(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &skiff_api::Maintenance { enabled: app.maintenance });
            }
            writeln!(out, "{}", if app.maintenance { "on" } else { "off" })?;
            Ok(())
        }
        RoutingVerb::MaintenanceOn { app } => {
            let app = client(context)?.maintenance(&app_name(context, app)?, true).await?;
            writeln!(out, "Maintenance mode is on for {}: requests get a 503 page", app.name)?;
            Ok(())
        }
        RoutingVerb::MaintenanceOff { app } => {
            let app = client(context)?.maintenance(&app_name(context, app)?, false).await?;
            writeln!(out, "Maintenance mode is off for {}", app.name)?;
            Ok(())
        }
        RoutingVerb::Certs { app, json: flag } => {
            let (client, app) = (client(context)?, app_name(context, app)?);
            let certs = client.certs(&app).await?;
            if flag.json {
                return json(out, &certs);
            }
            let rows = certs
                .iter()
                .map(|c| vec![c.name.clone(), c.names.join(", "), c.domains.join(", "), ago(&c.expires_at)])
                .collect();
            table(out, context.colour, &["NAME", "COVERS", "SERVED FOR", "EXPIRES"], rows)?;
            let auto = client.auto_certs(&app).await?;
            if auto.enabled {
                writeln!(out)?;
                report_auto_certs(out, context, &app, &auto)?;
            }
            Ok(())
        }
        RoutingVerb::CertsAuto { app, json: flag } => {
            let app = app_name(context, app)?;
            let auto = client(context)?.enable_auto_certs(&app).await?;
            if flag.json {
                return json(out, &auto);
            }
            report_auto_certs(out, context, &app, &auto)
        }
        RoutingVerb::CertsAutoDisable { app } => {
            let app = app_name(context, app)?;
            client(context)?.disable_auto_certs(&app).await?;
            writeln!(out, "Automatic certificates are off for {app}: none is ordered or renewed")?;
            writeln!(out, "Those issued are served until they expire or `skiff certs:remove auto-DOMAIN`")?;
            Ok(())
        }
        RoutingVerb::CertsAdd { name, certificate, key, app } => {
            let app = app_name(context, app)?;
            let read = |path: &PathBuf| {
                std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))
            };
            let create = CertificateCreate { name, certificate_chain: read(&certificate)?, private_key: read(&key)? };
            let cert = client(context)?.add_cert(&app, &create).await?;
            let covers = cert.names.join(", ");
            writeln!(out, "Added certificate {} to {app}: covers {covers}, expires {}", cert.name, cert.expires_at)?;
            writeln!(out, "Serve it with `skiff certs:attach {} DOMAIN`", cert.name)?;
            Ok(())
        }
        RoutingVerb::CertsAttach { name, domain, app } => {
            let app = app_name(context, app)?;
            client(context)?.attach_cert(&app, &name, &domain).await?;
            writeln!(out, "Serving certificate {name} for https://{domain}")?;
            Ok(())
        }
        RoutingVerb::CertsDetach { name, domain, app } => {
            let app = app_name(context, app)?;
            client(context)?.detach_cert(&app, &name, &domain).await?;
            writeln!(out, "No longer serving certificate {name} for {domain}")?;
            Ok(())
        }
        RoutingVerb::CertsRemove { name, app } => {
            let app = app_name(context, app)?;
            client(context)?.remove_cert(&app, &name).await?;
            writeln!(out, "Removed certificate {name} from {app}")?;
            Ok(())
        }
        RoutingVerb::Access { app, json: flag } => {
            let policy = client(context)?.access(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &policy);
            }
            report_access(out, &policy)
        }
        RoutingVerb::AccessAllow { addresses, app } => {
            change_access(context, app, out, |policy| policy.allow.extend(addresses)).await
        }
        RoutingVerb::AccessDeny { addresses, app } => {
            change_access(context, app, out, |policy| policy.deny.extend(addresses)).await
        }
        RoutingVerb::AccessRemove { addresses, app } => {
            change_access(context, app, out, |policy| {
                policy.allow.retain(|a| !addresses.contains(a));
                policy.deny.retain(|a| !addresses.contains(a));
            })
            .await
        }
        RoutingVerb::AccessMaxBody { size, app } => {
            change_access(context, app, out, |policy| policy.max_body_bytes = size.0).await
        }
        RoutingVerb::Tls { app, json: flag } => {
            let tls = client(context)?.tls(&app_name(context, app)?).await?;
            if flag.json {
                return json(out, &tls);
            }
            report_tls(out, &tls)
        }
        RoutingVerb::TlsEnable { hsts, app } => {
            let tls = TlsSettings { force_https: true, hsts_max_age: hsts };
            let tls = client(context)?.set_tls(&app_name(context, app)?, &tls).await?;
            report_tls(out, &tls)
        }
        RoutingVerb::TlsDisable { app } => {
            let tls = client(context)?.set_tls(&app_name(context, app)?, &TlsSettings::default()).await?;
            report_tls(out, &tls)
        }
    }
}

/// Reads an app's access policy, changes it, and stores it.
pub(crate) async fn change_access(
    context: &Context,
    app: AppArg,
    out: &mut impl Write,
    change: impl FnOnce(&mut AccessPolicy),
) -> anyhow::Result<()> {
    let app = app_name(context, app)?;
    let client = client(context)?;
    let mut policy = client.access(&app).await?;
    change(&mut policy);
    for list in [&mut policy.allow, &mut policy.deny] {
        let mut seen = std::collections::HashSet::new();
        list.retain(|a| seen.insert(a.clone()));
    }
    let policy = client.set_access(&app, &policy).await?;
    report_access(out, &policy)
}

pub(crate) fn report_access(out: &mut impl Write, policy: &AccessPolicy) -> anyhow::Result<()> {
    let list = |l: &[String]| if l.is_empty() { "-".to_owned() } else { l.join(", ") };
    let allow = if policy.allow.is_empty() { "every address".to_owned() } else { policy.allow.join(", ") };
    writeln!(out, "Allowed:  {allow}")?;
    writeln!(out, "Denied:   {}", list(&policy.deny))?;
    let body = policy.max_body_bytes.map_or_else(|| "no limit".to_owned(), |b| format!("{b} bytes"));
    writeln!(out, "Max body: {body}")?;
    Ok(())
}

pub(crate) fn report_tls(out: &mut impl Write, tls: &TlsSettings) -> anyhow::Result<()> {
    let https = if tls.force_https { "HTTPS only (plain HTTP is redirected)" } else { "HTTP and HTTPS" };
    let hsts = if tls.hsts_max_age > 0 { format!("max-age={}", tls.hsts_max_age) } else { "off".into() };
    writeln!(out, "{https}; HSTS {hsts}")?;
    Ok(())
}

/// Automatic certificates: on, and each custom domain's state.
fn report_auto_certs(
    out: &mut impl Write,
    context: &Context,
    app: &skiff_api::AppName,
    auto: &AutoCertificates,
) -> anyhow::Result<()> {
    writeln!(out, "Automatic certificates are on for {app} (ACME)")?;
    if auto.domains.is_empty() {
        writeln!(out, "{app} has no custom domain yet; each one added with `skiff domains:add` gets a certificate")?;
        return Ok(());
    }
    let rows = auto
        .domains
        .iter()
        .map(|d| {
            let state = match (d.state, d.ordering) {
                (AutoCertificateState::Pending, true) => "pending (ordered)".to_owned(),
                (state, _) => {
                    serde_json::to_value(state).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
                }
            };
            let valid_until = d.valid_until.as_deref().map_or_else(|| "-".to_owned(), ago);
            let next = d.next_attempt_at.as_deref().map_or_else(|| "now".to_owned(), ago);
            vec![d.domain.clone(), state, valid_until, next, d.last_error.clone().unwrap_or_default()]
        })
        .collect();
    table(out, context.colour, &["DOMAIN", "STATE", "VALID UNTIL", "NEXT", "LAST ERROR"], rows)
}
