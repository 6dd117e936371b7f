//! The route table: host → app → backends. Built whole from a [`RouteTable`] snapshot and
//! swapped in atomically; requests in flight keep the snapshot they started with.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use skiff_api::{AppName, RouteTable};

/// One app's backends and its round-robin position.
#[derive(Debug)]
pub struct AppRoute {
    pub app: AppName,
    backends: Vec<SocketAddr>,
    next: AtomicUsize,
}

/// What a host leads to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lookup {
    /// No app has this host.
    UnknownHost,
    /// The app exists but nothing runs.
    NoBackend(AppName),
    /// Send the request here.
    Backend(AppName, SocketAddr),
}

/// An immutable table.
#[derive(Debug, Default)]
pub struct Table {
    pub version: u64,
    hosts: HashMap<String, Arc<AppRoute>>,
}

impl Table {
    /// Builds a table from the controller's snapshot.
    pub fn from_snapshot(snapshot: &RouteTable) -> Self {
        let mut hosts = HashMap::new();
        for route in &snapshot.routes {
            let entry = Arc::new(AppRoute {
                app: route.app.clone(),
                backends: route.backends.clone(),
                next: AtomicUsize::new(0),
            });
            for host in &route.hosts {
                hosts.insert(host.to_ascii_lowercase(), entry.clone());
            }
        }
        Self { version: snapshot.version, hosts }
    }

    /// Where a request for `host` (a `Host` header value, port allowed) goes.
    pub fn lookup(&self, host: &str) -> Lookup {
        let name = host
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name);
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        let Some(route) = self.hosts.get(&name) else {
            return Lookup::UnknownHost;
        };
        if route.backends.is_empty() {
            return Lookup::NoBackend(route.app.clone());
        }
        let index = route.next.fetch_add(1, Ordering::Relaxed) % route.backends.len();
        Lookup::Backend(route.app.clone(), route.backends[index])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::Route;

    fn table() -> Table {
        Table::from_snapshot(&RouteTable {
            version: 3,
            routes: vec![
                Route {
                    app: "shop".parse().unwrap(),
                    hosts: vec!["shop.localhost".into()],
                    backends: vec![([127, 0, 0, 1], 1001).into(), ([127, 0, 0, 1], 1002).into()],
                },
                Route { app: "idle".parse().unwrap(), hosts: vec!["idle.localhost".into()], backends: vec![] },
            ],
        })
    }

    #[test]
    fn hosts_resolve_case_and_port_insensitively() {
        let table = table();
        assert!(matches!(table.lookup("SHOP.localhost:8080"), Lookup::Backend(..)));
        assert!(matches!(table.lookup("shop.localhost."), Lookup::Backend(..)));
        assert_eq!(table.lookup("other.localhost"), Lookup::UnknownHost);
        assert_eq!(table.lookup("idle.localhost"), Lookup::NoBackend("idle".parse().unwrap()));
    }

    #[test]
    fn backends_take_turns() {
        let table = table();
        let picks: Vec<Lookup> = (0..4).map(|_| table.lookup("shop.localhost")).collect();
        assert_ne!(picks[0], picks[1]);
        assert_eq!(picks[0], picks[2]);
        assert_eq!(picks[1], picks[3]);
    }
}
