//! The router as a service: what it needs to run, and [`run`], which keeps the route
//! table (following the controller, or fixed) and serves HTTP and HTTPS until shutdown.

use std::sync::Arc;

use arc_swap::ArcSwap;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::proxy::{Config, Listeners, serve};
use crate::table::Table;
use crate::tls::{DefaultCertificate, server_config};

/// Where the route table comes from.
pub enum Routes {
    /// The controller's route feed.
    Follow { controller_url: String, service_token: String },
    /// A fixed table, for a router without a controller.
    Fixed(Box<Table>),
}

/// Everything the router needs to run.
pub struct ServiceConfig {
    pub router: Config,
    pub routes: Routes,
    /// What HTTPS serves for names without a certificate of their own.
    pub default_certificate: DefaultCertificate,
}

/// Why the router stopped.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("cannot set up HTTPS: {0}")]
    Tls(#[from] crate::tls::TlsError),
    #[error("the server failed: {0}")]
    Serve(#[from] std::io::Error),
}

/// Serves HTTP on `http` and HTTPS on `https` until `shutdown`.
///
/// # Errors
/// When HTTPS cannot be set up or the server fails.
pub async fn run(
    config: ServiceConfig,
    http: TcpListener,
    https: TcpListener,
    shutdown: CancellationToken,
) -> Result<(), RunError> {
    let tasks = TaskTracker::new();
    let table = match config.routes {
        Routes::Fixed(table) => Arc::new(ArcSwap::new(Arc::from(table))),
        Routes::Follow { controller_url, service_token } => {
            let table = Arc::new(ArcSwap::from_pointee(Table::default()));
            let client = skiff_client::Client::new(&controller_url, Some(service_token));
            let counts = config.router.canary_counts.clone();
            let reporting = client.clone();
            let stopped = shutdown.clone();
            tasks.spawn(async move { counts.report(reporting, stopped).await });
            tasks.spawn(crate::traffic::report(config.router.metrics.clone(), client.clone(), shutdown.clone()));
            let name = http.local_addr().map_or_else(|_| "router".to_owned(), |a| format!("http://{a}"));
            tasks.spawn(crate::feed::follow(client, table.clone(), name, shutdown.clone()));
            table
        }
    };
    let tls = server_config(table.clone(), config.default_certificate)?;
    let listeners = Listeners { http, https: Some((https, tls)) };
    let served = serve(listeners, table, config.router, shutdown.clone()).await;
    shutdown.cancel();
    tasks.close();
    tasks.wait().await;
    Ok(served?)
}
