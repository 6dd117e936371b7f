//! Keeps the router's table in step with the controller's route feed. When the
//! controller is unreachable the router keeps serving the last table it had and retries
//! with backoff.

use std::sync::Arc;
use std::time::Duration;

use arc_swap::ArcSwap;
use skiff_client::Client;
use tokio_util::sync::CancellationToken;

use crate::table::Table;

/// Long-polls the controller until `shutdown`, swapping in each new table; `name` (the
/// router's address) tells the controller who follows it.
pub async fn follow(client: Client, table: Arc<ArcSwap<Table>>, name: String, shutdown: CancellationToken) {
    let mut backoff = Duration::from_millis(100);
    loop {
        let version = table.load().version;
        let next = tokio::select! {
            next = client.routes(version, &name, skiff_service::VERSION) => next,
            () = shutdown.cancelled() => return,
        };
        match next {
            Ok(snapshot) => {
                backoff = Duration::from_millis(100);
                if snapshot.version != version {
                    tracing::info!(version = snapshot.version, routes = snapshot.routes.len(), "router.table.swap");
                    table.store(Arc::new(table.load().next(&snapshot)));
                }
            }
            Err(error) => {
                tracing::warn!(%error, "router.feed.unreachable; keeping the last table");
                tokio::select! {
                    () = tokio::time::sleep(backoff) => {}
                    () = shutdown.cancelled() => return,
                }
                backoff = (backoff * 2).min(Duration::from_secs(5));
            }
        }
    }
}
