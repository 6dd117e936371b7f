//! The router feed: a versioned route table. Publishing an identical table is a no-op;
//! any change bumps the version. Readers long-poll with the version they have and get the
//! table as soon as it differs (or after a timeout), so a loop of reads is a change stream.
//! The version a reader asks after is the one it has: that tells when a table reached a
//! router (an ACME challenge's answer must have before the ACME server checks it). Routers
//! name themselves as they read, so the controller knows which follow it
//! (`skiff platform:status`).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use skiff_api::{AcmeChallenge, Route, RouteCertificate, RouteTable};
use tokio::sync::watch;

/// The route table and its change notifications.
#[derive(Debug)]
pub struct RouteFeed {
    table: watch::Sender<RouteTable>,
    /// The newest version a reader has said it holds.
    taken: watch::Sender<u64>,
    /// Routers that read the feed, by the name they give.
    readers: Mutex<HashMap<String, Reader>>,
}

/// A router that reads the feed, when it last asked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reader {
    /// The name it gives (its HTTP address).
    pub name: String,
    /// Its version.
    pub version: String,
    /// The table version it said it holds.
    pub holds: u64,
    /// When it last asked.
    pub asked: Instant,
}

/// How long a reader that stopped asking is still listed.
const FORGET_READERS_AFTER: Duration = Duration::from_secs(3600);

impl Default for RouteFeed {
    fn default() -> Self {
        Self {
            table: watch::Sender::new(RouteTable { version: 1, ..RouteTable::default() }),
            taken: watch::Sender::new(0),
            readers: Mutex::default(),
        }
    }
}

impl RouteFeed {
    /// Replaces the routes, certificates and challenge answers; bumps the version (and says
    /// `true`) only when they changed.
    pub fn publish(
        &self,
        mut routes: Vec<Route>,
        certificates: Vec<RouteCertificate>,
        challenges: Vec<AcmeChallenge>,
    ) -> bool {
        routes.sort_by(|a, b| a.app.cmp(&b.app));
        for route in &mut routes {
            route.backends.sort();
        }
        self.table.send_if_modified(|table| {
            if table.routes == routes && table.certificates == certificates && table.challenges == challenges {
                return false;
            }
            table.routes = routes;
            table.certificates = certificates;
            table.challenges = challenges;
            table.version += 1;
            true
        })
    }

    /// The current table.
    pub fn current(&self) -> RouteTable {
        self.table.borrow().clone()
    }

    /// Notes that the router `name` (at `version`) holds table `holds`, and forgets
    /// routers that have not asked for a long while.
    pub fn note_reader(&self, name: &str, version: &str, holds: u64) {
        let mut readers = self.readers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let asked = Instant::now();
        readers.retain(|_, reader| asked.duration_since(reader.asked) < FORGET_READERS_AFTER);
        readers.insert(name.to_owned(), Reader { name: name.to_owned(), version: version.to_owned(), holds, asked });
    }

    /// The routers that read the feed lately, by name.
    pub fn readers(&self) -> Vec<Reader> {
        let readers = self.readers.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut listed: Vec<Reader> = readers.values().cloned().collect();
        listed.sort_by(|a, b| a.name.cmp(&b.name));
        listed
    }

    /// The table once its version differs from `after`, or the current one after `wait`.
    pub async fn next(&self, after: u64, wait: Duration) -> RouteTable {
        self.taken.send_if_modified(|taken| {
            let newer = after > *taken;
            *taken = (*taken).max(after);
            newer
        });
        let mut receiver = self.table.subscribe();
        let changed = receiver.wait_for(|table| table.version != after);
        match tokio::time::timeout(wait, changed).await {
            Ok(Ok(table)) => table.clone(),
            _ => self.current(),
        }
    }

    /// Whether, within `wait`, a table holding the answer to challenge `token` was
    /// published and a reader then said it holds it.
    pub async fn served(&self, token: &str, wait: Duration) -> bool {
        let reached = async {
            let mut tables = self.table.subscribe();
            let version = tables.wait_for(|t| t.challenges.iter().any(|c| c.token == token)).await.ok()?.version;
            self.taken.subscribe().wait_for(|taken| *taken >= version).await.ok().map(|_| ())
        };
        matches!(tokio::time::timeout(wait, reached).await, Ok(Some(())))
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
        feed.publish(vec![route("a", 1)], vec![], vec![]);
        let v = feed.current().version;
        feed.publish(vec![route("a", 1)], vec![], vec![]);
        assert_eq!(feed.current().version, v);
        feed.publish(vec![route("a", 2)], vec![], vec![]);
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
        feed.publish(vec![route("b", 3)], vec![], vec![]);
        let table = reader.await.unwrap();
        assert_eq!(table.version, v + 1);
        assert_eq!(table.routes, vec![route("b", 3)]);
        // Without a change the read ends at the timeout with the same version.
        assert_eq!(feed.next(v + 1, Duration::from_secs(30)).await.version, v + 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_challenge_is_served_once_a_reader_holds_a_table_with_it() {
        let feed = std::sync::Arc::new(RouteFeed::default());
        let challenge = AcmeChallenge {
            domain: "www.shop.test".into(),
            token: "t1".into(),
            key_authorization: "k".into(),
            kind: Default::default(),
        };
        assert!(!feed.served("t1", Duration::from_secs(1)).await, "nothing published");
        let waiting = {
            let feed = feed.clone();
            tokio::spawn(async move { feed.served("t1", Duration::from_secs(30)).await })
        };
        tokio::task::yield_now().await;
        feed.publish(vec![], vec![], vec![challenge]);
        let version = feed.current().version;
        // A reader that still holds the table before is not enough.
        let _ = feed.next(version - 1, Duration::ZERO).await;
        tokio::task::yield_now().await;
        assert!(!waiting.is_finished());
        let _ = feed.next(version, Duration::ZERO).await;
        assert!(waiting.await.unwrap());
    }
}
