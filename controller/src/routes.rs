//! The router feed: a versioned route table. Publishing an identical table is a no-op;
//! any change bumps the version. Readers long-poll with the version they have and get the
//! table as soon as it differs (or after a timeout), so a loop of reads is a change stream.

use std::time::Duration;

use skiff_api::{Route, RouteCertificate, RouteTable};
use tokio::sync::watch;

/// The route table and its change notifications.
#[derive(Debug)]
pub struct RouteFeed {
    table: watch::Sender<RouteTable>,
}

impl Default for RouteFeed {
    fn default() -> Self {
        Self { table: watch::Sender::new(RouteTable { version: 1, ..RouteTable::default() }) }
    }
}

impl RouteFeed {
    /// Replaces the routes and certificates; bumps the version (and says `true`) only when
    /// they changed.
    pub fn publish(&self, mut routes: Vec<Route>, certificates: Vec<RouteCertificate>) -> bool {
        routes.sort_by(|a, b| a.app.cmp(&b.app));
        for route in &mut routes {
            route.backends.sort();
        }
        self.table.send_if_modified(|table| {
            if table.routes == routes && table.certificates == certificates {
                return false;
            }
            table.routes = routes;
            table.certificates = certificates;
            table.version += 1;
            true
        })
    }

    /// The current table.
    pub fn current(&self) -> RouteTable {
        self.table.borrow().clone()
    }

    /// The table once its version differs from `after`, or the current one after `wait`.
    pub async fn next(&self, after: u64, wait: Duration) -> RouteTable {
        let mut receiver = self.table.subscribe();
        let changed = receiver.wait_for(|table| table.version != after);
        match tokio::time::timeout(wait, changed).await {
            Ok(Ok(table)) => table.clone(),
            _ => self.current(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(app: &str, port: u16) -> Route {
        Route {
            app: app.parse().unwrap(),
            hosts: vec![format!("{app}.localhost")],
            backends: vec![([127, 0, 0, 1], port).into()],
            maintenance: false,
            tls: Default::default(),
            access: Default::default(),
            canary: None,
        }
    }

    #[tokio::test]
    async fn identical_tables_keep_their_version() {
        let feed = RouteFeed::default();
        feed.publish(vec![route("a", 1)], vec![]);
        let v = feed.current().version;
        feed.publish(vec![route("a", 1)], vec![]);
        assert_eq!(feed.current().version, v);
        feed.publish(vec![route("a", 2)], vec![]);
        assert_eq!(feed.current().version, v + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn readers_wait_for_a_change() {
        let feed = std::sync::Arc::new(RouteFeed::default());
        let v = feed.current().version;
        let reader = {
            let feed = feed.clone();
            tokio::spawn(async move { feed.next(v, Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        feed.publish(vec![route("b", 3)], vec![]);
        let table = reader.await.unwrap();
        assert_eq!(table.version, v + 1);
        assert_eq!(table.routes, vec![route("b", 3)]);
        // Without a change the read ends at the timeout with the same version.
        assert_eq!(feed.next(v + 1, Duration::from_secs(30)).await.version, v + 1);
    }
}
