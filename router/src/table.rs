//! The route table: host → app → backends. Built whole from a [`RouteTable`] snapshot and
//! swapped in atomically; requests in flight keep the snapshot they started with.

use std::collections::HashMap;
use std::hash::BuildHasher as _;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use std::net::IpAddr;

use skiff_api::{AppName, Arm, Cidr, Route, RouteTable, TlsSettings};

use crate::tls::Certificates;

/// How long a backend that refused a connection is tried only after the others.
const SET_ASIDE: Duration = Duration::from_secs(10);

/// What an app's route asks of every request: HTTPS handling, which clients may reach
/// it, and how large a body may be.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    pub tls: TlsSettings,
    pub max_body: Option<u64>,
    allow: Vec<Cidr>,
    deny: Vec<Cidr>,
}

impl Policy {
    fn of(route: &Route) -> Self {
        let parse = |entries: &[String]| -> Vec<Cidr> {
            entries
                .iter()
                .filter_map(|entry| match entry.parse() {
                    Ok(cidr) => Some(cidr),
                    Err(error) => {
                        tracing::warn!(app = %route.app, %error, "router.table: address left out");
                        None
                    }
                })
                .collect()
        };
        Self {
            tls: route.tls,
            max_body: route.access.max_body_bytes,
            allow: parse(&route.access.allow),
            deny: parse(&route.access.deny),
        }
    }

    /// Whether a client at `address` may reach the app.
    pub fn admits(&self, address: IpAddr) -> bool {
        (self.allow.is_empty() || self.allow.iter().any(|c| c.contains(address)))
            && !self.deny.iter().any(|c| c.contains(address))
    }
}

/// Milliseconds since the router's first look at the clock: the clock of `aside_until`,
/// shared by every table so that a backend's state means the same in the next one.
fn millis_now() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    u64::try_from(START.get_or_init(Instant::now).elapsed().as_millis()).unwrap_or(u64::MAX)
}

/// One backend's load and health. Kept from table to table while the backend stays in its
/// app's route, so that a swap (every deploy, scale or domain change makes one) forgets
/// neither the requests in flight nor a backend that just refused connections.
#[derive(Debug, Default)]
struct BackendState {
    /// Requests sent to it whose answer has not ended yet.
    outstanding: AtomicUsize,
    /// Until when (see [`millis_now`]) it is tried last; 0: never set aside.
    aside_until: AtomicU64,
}

/// Backends that take turns, and each one's state.
#[derive(Debug)]
struct Pool {
    backends: Vec<SocketAddr>,
    states: Vec<Arc<BackendState>>,
    /// The round-robin position.
    next: AtomicUsize,
}

impl Pool {
    /// `backends`, with the state each had in `kept` (see [`Table::next`]).
    fn new(app: &AppName, backends: &[SocketAddr], kept: &HashMap<(&AppName, SocketAddr), &Arc<BackendState>>) -> Self {
        let states =
            backends.iter().map(|b| kept.get(&(app, *b)).map_or_else(Arc::default, |s| Arc::clone(s))).collect();
        Self { backends: backends.to_vec(), states, next: AtomicUsize::new(0) }
    }

    fn is_aside(&self, index: usize, now: u64) -> bool {
        self.states[index].aside_until.load(Ordering::Relaxed) > now
    }

    fn states(&self) -> impl Iterator<Item = (SocketAddr, &Arc<BackendState>)> {
        self.backends.iter().copied().zip(&self.states)
    }
}

/// A release on trial: its backends and the share of requests they get.
#[derive(Debug)]
struct CanarySplit {
    id: i64,
    percent: u8,
    sticky: bool,
    pool: Pool,
    /// Requests split so far (by request, not sticky); kept from table to table while the
    /// canary runs, so that swaps do not restart its turn.
    counted: Arc<AtomicU64>,
}

impl CanarySplit {
    /// Whether this request goes to the canary: exactly `percent` of every hundred in
    /// turn, or, sticky, by a hash of the client's address (the same side every time).
    fn takes(&self, client: IpAddr) -> bool {
        let percent = u64::from(self.percent);
        if self.sticky {
            let hash = foldhash::fast::FixedState::with_seed(self.id as u64).hash_one(client);
            return hash % 100 < percent;
        }
        let n = self.counted.fetch_add(1, Ordering::Relaxed);
        (n + 1) * percent / 100 != n * percent / 100
    }
}

/// One app's backends, and the canary beside them.
#[derive(Debug)]
pub struct AppRoute {
    pub app: AppName,
    maintenance: bool,
    policy: Policy,
    pool: Pool,
    canary: Option<CanarySplit>,
}

impl AppRoute {
    fn pools(&self) -> impl Iterator<Item = &Pool> {
        std::iter::once(&self.pool).chain(self.canary.as_ref().map(|c| &c.pool))
    }
}

/// The canary a request took part in, and on which side.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CanaryPick {
    pub id: i64,
    pub arm: Arm,
}

/// An app's backends in the order to try them: this request's round-robin pick first,
/// then the others, with backends that recently refused a connection last. With a canary
/// running, only the backends of the side the request was sent to.
#[derive(Debug, Clone)]
pub struct Backends {
    route: Arc<AppRoute>,
    arm: Arm,
    first: usize,
}

impl Backends {
    fn pool(&self) -> &Pool {
        match (self.arm, &self.route.canary) {
            (Arm::Canary, Some(canary)) => &canary.pool,
            _ => &self.route.pool,
        }
    }

    /// The canary this request is part of.
    pub fn canary(&self) -> Option<CanaryPick> {
        let canary = self.route.canary.as_ref()?;
        Some(CanaryPick { id: canary.id, arm: self.arm })
    }

    /// The backends to try in order: those with the fewest requests outstanding first
    /// (ties in round-robin order), then those set aside.
    pub fn iter(&self) -> impl Iterator<Item = SocketAddr> + '_ {
        let pool = self.pool();
        let now = millis_now();
        let rotation = move || (0..pool.backends.len()).map(move |offset| (self.first + offset) % pool.backends.len());
        // Each backend's count is read once: other threads change the counts while this
        // one sorts, and a sort whose keys change under it has no order to find.
        let mut ready: Vec<(usize, usize)> = rotation()
            .filter(|&index| !pool.is_aside(index, now))
            .map(|index| (pool.states[index].outstanding.load(Ordering::Relaxed), index))
            .collect();
        // Stable: among equally busy backends the rotation decides.
        ready.sort_by_key(|&(outstanding, _)| outstanding);
        let aside = rotation().filter(move |&index| pool.is_aside(index, now));
        ready.into_iter().map(|(_, index)| index).chain(aside).map(move |index| pool.backends[index])
    }

    fn state(&self, backend: SocketAddr) -> Option<&Arc<BackendState>> {
        let pool = self.pool();
        let index = pool.backends.iter().position(|b| *b == backend)?;
        pool.states.get(index)
    }

    /// Counts a request to `backend` as outstanding until the returned guard is dropped.
    pub fn track(&self, backend: SocketAddr) -> Outstanding {
        let state = self.state(backend).cloned();
        if let Some(state) = &state {
            state.outstanding.fetch_add(1, Ordering::Relaxed);
        }
        Outstanding { state }
    }

    /// Tries `backend` only after the others for a while: it refused a connection.
    pub fn set_aside(&self, backend: SocketAddr) {
        if let Some(state) = self.state(backend) {
            let until = millis_now().saturating_add(SET_ASIDE.as_millis() as u64);
            state.aside_until.store(until, Ordering::Relaxed);
        }
    }
}

/// A request in flight to one backend (see [`Backends::track`]).
#[derive(Debug)]
pub struct Outstanding {
    state: Option<Arc<BackendState>>,
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        if let Some(state) = &self.state {
            state.outstanding.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// An entry of a fixed route table that is not `HOST=ADDR[,ADDR…]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not HOST=ADDR[,ADDR…] (e.g. shop.localhost=127.0.0.1:5000)")]
pub struct StaticRouteError(pub String);

/// What a host leads to.
#[derive(Debug, Clone)]
pub enum Lookup<'a> {
    /// No app has this host.
    UnknownHost,
    /// The app exists but nothing runs.
    NoBackend(&'a AppName),
    /// The app is in maintenance mode.
    Maintenance(&'a AppName),
    /// Send the request to these backends.
    Backend(&'a AppName, Backends),
}

/// An immutable table.
#[derive(Debug, Default)]
pub struct Table {
    pub version: u64,
    /// Hashed with foldhash, not SipHash: every request looks a host up here, and only
    /// the controller's routes are ever inserted (no collisions a client could provoke).
    hosts: HashMap<String, Arc<AppRoute>, foldhash::fast::RandomState>,
    /// `*.example.com` routes by suffix (`.example.com`), longest first.
    wildcards: Vec<(String, Arc<AppRoute>)>,
    /// What HTTPS clients are served, by the name they ask for.
    pub certificates: Certificates,
    /// Answers to ACME HTTP-01 challenges, by domain and token.
    challenges: HashMap<(String, String), String>,
}

impl Table {
    /// Builds a table from the controller's snapshot.
    pub fn from_snapshot(snapshot: &RouteTable) -> Self {
        Self::default().next(snapshot)
    }

    /// The table that follows this one: built from `snapshot`, with the state of every
    /// backend that stays in its app's route carried over.
    pub fn next(&self, snapshot: &RouteTable) -> Self {
        let kept: HashMap<(&AppName, SocketAddr), &Arc<BackendState>> = self
            .hosts
            .values()
            .chain(self.wildcards.iter().map(|(_, route)| route))
            .flat_map(|route| route.pools().flat_map(|pool| pool.states().map(|(b, state)| ((&route.app, b), state))))
            .collect();
        let counted: HashMap<i64, &Arc<AtomicU64>> = self
            .hosts
            .values()
            .filter_map(|route| route.canary.as_ref())
            .map(|canary| (canary.id, &canary.counted))
            .collect();
        let mut hosts = HashMap::default();
        let mut wildcards = Vec::new();
        for route in &snapshot.routes {
            // A canary with no backend ready takes no requests.
            let canary =
                route.canary.as_ref().filter(|c| !c.backends.is_empty() && c.percent > 0).map(|c| CanarySplit {
                    id: c.id,
                    percent: c.percent.min(100),
                    sticky: c.sticky,
                    pool: Pool::new(&route.app, &c.backends, &kept),
                    counted: counted.get(&c.id).map_or_else(Arc::default, |n| Arc::clone(n)),
                });
            let entry = Arc::new(AppRoute {
                app: route.app.clone(),
                maintenance: route.maintenance,
                policy: Policy::of(route),
                pool: Pool::new(&route.app, &route.backends, &kept),
                canary,
            });
            for host in &route.hosts {
                let host = host.to_ascii_lowercase();
                match host.strip_prefix('*') {
                    Some(suffix) => wildcards.push((suffix.to_owned(), entry.clone())),
                    None => {
                        hosts.insert(host, entry.clone());
                    }
                }
            }
        }
        wildcards.sort_by(|a, b| b.0.len().cmp(&a.0.len()).then_with(|| a.0.cmp(&b.0)));
        let certificates = Certificates::from_routes(&snapshot.certificates, &snapshot.challenges);
        let challenges = snapshot
            .challenges
            .iter()
            .filter(|c| c.kind == skiff_api::AcmeChallengeKind::Http01)
            .map(|c| ((c.domain.to_ascii_lowercase(), c.token.clone()), c.key_authorization.clone()))
            .collect();
        Self { version: snapshot.version, hosts, wildcards, certificates, challenges }
    }

    /// A fixed table from `HOST=ADDR[,ADDR…]` entries separated by spaces (a router that
    /// runs without a controller, e.g. in benchmarks). The app is the host's first label.
    ///
    /// # Errors
    /// The first entry that is not `HOST=ADDR[,ADDR…]`.
    pub fn from_static(spec: &str) -> Result<Self, StaticRouteError> {
        let mut routes = Vec::new();
        for entry in spec.split_whitespace() {
            let bad = || StaticRouteError(entry.to_owned());
            let (host, addresses) = entry.split_once('=').ok_or_else(bad)?;
            let app = host.split('.').next().and_then(|a| a.parse().ok()).ok_or_else(bad)?;
            let backends = addresses.split(',').map(|a| a.parse().map_err(|_| bad())).collect::<Result<_, _>>()?;
            routes.push(skiff_api::Route {
                app,
                hosts: vec![host.to_ascii_lowercase()],
                backends,
                maintenance: false,
                tls: Default::default(),
                access: Default::default(),
                canary: None,
            });
        }
        Ok(Self::from_snapshot(&RouteTable { version: 1, routes, ..RouteTable::default() }))
    }

    /// The answer to an ACME HTTP-01 challenge for `host` (port allowed) and `token`, while
    /// the controller has one under way.
    pub fn challenge_answer(&self, host: &str, token: &str) -> Option<&str> {
        if self.challenges.is_empty() {
            return None;
        }
        let name = host
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name);
        self.challenges.get(&(name.to_ascii_lowercase(), token.to_owned())).map(String::as_str)
    }

    /// Where a request for `host` (a `Host` header value, port allowed) goes.
    pub fn lookup(&self, host: &str) -> Lookup<'_> {
        self.lookup_with_policy(host, IpAddr::from([0, 0, 0, 0])).0
    }

    /// Where a request for `host` from `client` goes, and what the app asks of it.
    pub fn lookup_with_policy(&self, host: &str, client: IpAddr) -> (Lookup<'_>, Option<&Policy>) {
        let name = host
            .rsplit_once(':')
            .filter(|(_, port)| port.bytes().all(|b| b.is_ascii_digit()))
            .map_or(host, |(name, _)| name);
        let name = name.trim_end_matches('.');
        // Host names come lowercase nearly always: a copy only for the others.
        let name: std::borrow::Cow<'_, str> =
            if name.bytes().any(|b| b.is_ascii_uppercase()) { name.to_ascii_lowercase().into() } else { name.into() };
        let route = self.hosts.get(name.as_ref()).or_else(|| {
            self.wildcards
                .iter()
                .find(|(suffix, _)| name.ends_with(suffix.as_str()) && name.len() > suffix.len())
                .map(|(_, r)| r)
        });
        let Some(route) = route else { return (Lookup::UnknownHost, None) };
        let lookup = if route.maintenance {
            Lookup::Maintenance(&route.app)
        } else {
            let arm = match &route.canary {
                Some(canary) if canary.takes(client) => Arm::Canary,
                _ => Arm::Baseline,
            };
            let pool = if arm == Arm::Canary { route.canary.as_ref().map(|c| &c.pool) } else { Some(&route.pool) };
            match pool.filter(|pool| !pool.backends.is_empty()) {
                None => Lookup::NoBackend(&route.app),
                Some(pool) => {
                    let first = pool.next.fetch_add(1, Ordering::Relaxed) % pool.backends.len();
                    Lookup::Backend(&route.app, Backends { route: route.clone(), arm, first })
                }
            }
        };
        (lookup, Some(&route.policy))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use skiff_api::Route;

    fn table() -> Table {
        Table::from_snapshot(&snapshot(3))
    }

    fn snapshot(version: u64) -> RouteTable {
        RouteTable {
            version,
            routes: vec![
                Route {
                    app: "shop".parse().unwrap(),
                    hosts: vec!["shop.localhost".into(), "*.shop.example".into()],
                    backends: vec![([127, 0, 0, 1], 1001).into(), ([127, 0, 0, 1], 1002).into()],
                    maintenance: false,
                    tls: Default::default(),
                    access: Default::default(),
                    canary: None,
                },
                Route {
                    app: "idle".parse().unwrap(),
                    hosts: vec!["idle.localhost".into(), "www.shop.example".into()],
                    backends: vec![],
                    maintenance: false,
                    tls: Default::default(),
                    access: Default::default(),
                    canary: None,
                },
                Route {
                    app: "closed".parse().unwrap(),
                    hosts: vec!["closed.localhost".into()],
                    backends: vec![([127, 0, 0, 1], 1003).into()],
                    maintenance: true,
                    tls: Default::default(),
                    access: Default::default(),
                    canary: None,
                },
            ],
            certificates: Vec::new(),
            challenges: Vec::new(),
        }
    }

    #[test]
    fn hosts_resolve_case_and_port_insensitively() {
        let table = table();
        assert!(matches!(table.lookup("SHOP.localhost:8080"), Lookup::Backend(..)));
        assert!(matches!(table.lookup("shop.localhost."), Lookup::Backend(..)));
        assert!(matches!(table.lookup("other.localhost"), Lookup::UnknownHost));
        assert!(matches!(table.lookup("idle.localhost"), Lookup::NoBackend(app) if app.as_str() == "idle"));
    }

    #[test]
    fn wildcards_match_names_under_them_and_exact_names_win() {
        let table = table();
        assert!(matches!(table.lookup("api.shop.example"), Lookup::Backend(app, _) if app.as_str() == "shop"));
        assert!(matches!(table.lookup("a.b.shop.example:80"), Lookup::Backend(..)));
        assert!(matches!(table.lookup("www.shop.example"), Lookup::NoBackend(app) if app.as_str() == "idle"));
        assert!(matches!(table.lookup("shop.example"), Lookup::UnknownHost));
        assert!(matches!(table.lookup("evilshop.example"), Lookup::UnknownHost));
    }

    #[test]
    fn maintenance_mode_wins_over_backends() {
        assert!(matches!(table().lookup("closed.localhost"), Lookup::Maintenance(app) if app.as_str() == "closed"));
    }

    #[test]
    fn static_tables_parse_and_say_what_is_wrong() {
        let table = Table::from_static("shop.localhost=127.0.0.1:1,127.0.0.1:2 api.example.test=127.0.0.1:3").unwrap();
        assert!(matches!(table.lookup("shop.localhost"), Lookup::Backend(..)));
        assert!(matches!(table.lookup("api.example.test"), Lookup::Backend(app, _) if app.as_str() == "api"));
        assert!(Table::from_static("shop.localhost").unwrap_err().to_string().contains("HOST=ADDR"));
        assert!(Table::from_static("shop.localhost=nowhere").is_err());
    }

    #[test]
    fn backends_take_turns_and_the_others_follow_each_pick() {
        let table = table();
        let orders: Vec<Vec<SocketAddr>> = (0..4)
            .map(|_| match table.lookup("shop.localhost") {
                Lookup::Backend(_, backends) => backends.iter().collect(),
                other => panic!("{other:?}"),
            })
            .collect();
        let (first, second) = (([127, 0, 0, 1], 1001).into(), ([127, 0, 0, 1], 1002).into());
        assert_eq!(orders[0], vec![first, second]);
        assert_eq!(orders[1], vec![second, first]);
        assert_eq!(orders[2], orders[0]);
        assert_eq!(orders[3], orders[1]);
    }

    #[test]
    fn ordering_backends_holds_while_other_threads_change_their_counts() {
        // Many backends whose outstanding counts other threads change as this one orders
        // them: the order is taken from one reading of each count, so ordering never
        // meets counts that contradict each other (which makes the sort panic).
        let mut routes = snapshot(3);
        routes.routes[0].backends = (0..40).map(|n| SocketAddr::from(([127, 0, 0, 1], 2000 + n))).collect();
        let table = Table::from_snapshot(&routes);
        let Lookup::Backend(_, backends) = table.lookup("shop.localhost") else { panic!("a route") };
        let stop = std::sync::atomic::AtomicBool::new(false);
        // Stops the other threads however this one ends, a panic included.
        struct Stop<'a>(&'a std::sync::atomic::AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        std::thread::scope(|scope| {
            for _ in 0..2 {
                scope.spawn(|| {
                    let all: Vec<SocketAddr> = backends.iter().collect();
                    while !stop.load(Ordering::Relaxed) {
                        let held: Vec<Outstanding> = all.iter().map(|b| backends.track(*b)).collect();
                        drop(held);
                    }
                });
            }
            let _stop = Stop(&stop);
            for _ in 0..20_000 {
                assert_eq!(backends.iter().count(), 40);
            }
        });
    }

    #[test]
    fn a_backend_set_aside_comes_last_and_is_still_tried_when_alone() {
        let table = table();
        let order = |table: &Table| match table.lookup("shop.localhost") {
            Lookup::Backend(_, backends) => (backends.iter().collect::<Vec<_>>(), backends),
            other => panic!("{other:?}"),
        };
        let (first, second): (SocketAddr, SocketAddr) = (([127, 0, 0, 1], 1001).into(), ([127, 0, 0, 1], 1002).into());
        let (_, backends) = order(&table);
        backends.set_aside(first);
        for _ in 0..4 {
            assert_eq!(order(&table).0, vec![second, first]);
        }
        backends.set_aside(second);
        let (both_aside, _) = order(&table);
        assert_eq!(both_aside.len(), 2, "every backend is still tried: {both_aside:?}");
    }

    /// The order in which `table` tries the shop's backends (from a pick of its own).
    fn shop_backends(table: &Table) -> Backends {
        match table.lookup("shop.localhost") {
            Lookup::Backend(_, backends) => backends,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn backend_state_survives_a_table_swap() {
        let (first, second): (SocketAddr, SocketAddr) = (([127, 0, 0, 1], 1001).into(), ([127, 0, 0, 1], 1002).into());
        let before = table();
        shop_backends(&before).set_aside(first);
        let after = before.next(&snapshot(4));
        for _ in 0..4 {
            assert_eq!(shop_backends(&after).iter().collect::<Vec<_>>(), vec![second, first], "still set aside");
        }

        // Requests in flight when the table changes still count in the next one.
        let busy = before.next(&snapshot(5));
        let in_flight = shop_backends(&busy).track(second);
        let later = busy.next(&snapshot(6));
        let state = |table: &Table, index: usize| shop_backends(table).route.pool.states[index].clone();
        assert_eq!(state(&later, 1).outstanding.load(Ordering::Relaxed), 1);
        drop(in_flight);
        assert_eq!(state(&later, 1).outstanding.load(Ordering::Relaxed), 0);

        // A backend that leaves its route and comes back starts afresh.
        let mut without = snapshot(7);
        without.routes[0].backends = vec![second];
        let back = later.next(&without).next(&snapshot(8));
        assert!(!shop_backends(&back).route.pool.is_aside(0, millis_now()));
        assert!(shop_backends(&later).route.pool.is_aside(0, millis_now()), "the table it left keeps the old state");
    }

    fn with_canary(percent: u8, sticky: bool) -> Table {
        let mut routes = snapshot(9);
        routes.routes[0].canary = Some(skiff_api::CanaryRoute {
            id: 4,
            release: 7,
            percent,
            sticky,
            backends: vec![([127, 0, 0, 1], 1009).into()],
        });
        Table::from_snapshot(&routes)
    }

    fn side(table: &Table, client: IpAddr) -> Option<CanaryPick> {
        match table.lookup_with_policy("shop.localhost", client).0 {
            Lookup::Backend(_, backends) => {
                let canary = backends.canary();
                let canary_backend: SocketAddr = ([127, 0, 0, 1], 1009).into();
                let took_canary = backends.iter().any(|b| b == canary_backend);
                assert_eq!(took_canary, canary.is_some_and(|c| c.arm == Arm::Canary), "the side's own backends");
                canary
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn a_canary_takes_exactly_its_share_of_requests_in_turn() {
        let table = with_canary(10, false);
        let client = IpAddr::from([192, 0, 2, 1]);
        let picks: Vec<CanaryPick> = (0..1000).map(|_| side(&table, client).unwrap()).collect();
        let canary = picks.iter().filter(|p| p.arm == Arm::Canary).count();
        assert_eq!(canary, 100);
        assert!(picks.iter().all(|p| p.id == 4));
        // Spread out: never more than one canary request in ten in a row.
        for window in picks.chunks(10) {
            assert_eq!(window.iter().filter(|p| p.arm == Arm::Canary).count(), 1);
        }
        assert!(side(&self::table(), client).is_none(), "no canary, no side");
    }

    #[test]
    fn a_sticky_canary_keeps_each_client_on_one_side() {
        let table = with_canary(10, true);
        let clients: Vec<IpAddr> = (0..2000u32).map(|n| IpAddr::from((0xc000_0000u32 + n).to_be_bytes())).collect();
        let mut canary = 0;
        for client in &clients {
            let first = side(&table, *client).unwrap().arm;
            for _ in 0..3 {
                assert_eq!(side(&table, *client).unwrap().arm, first, "{client} changed sides");
            }
            canary += usize::from(first == Arm::Canary);
        }
        assert!((150..=250).contains(&canary), "{canary} of 2000 clients on the canary");
    }

    #[test]
    fn a_canary_without_backends_takes_nothing() {
        let mut routes = snapshot(9);
        routes.routes[0].canary =
            Some(skiff_api::CanaryRoute { id: 4, release: 7, percent: 50, sticky: false, backends: vec![] });
        let table = Table::from_snapshot(&routes);
        assert!((0..10).all(|_| side(&table, IpAddr::from([192, 0, 2, 1])).is_none()));
    }

    #[test]
    fn a_canary_keeps_its_turn_across_table_swaps() {
        let mut table = with_canary(10, false);
        let client = IpAddr::from([192, 0, 2, 1]);
        let mut canary = 0;
        for version in 0..200 {
            // A swap every five requests (another app deployed, a container ready).
            for _ in 0..5 {
                canary += usize::from(side(&table, client).unwrap().arm == Arm::Canary);
            }
            let mut routes = snapshot(10 + version);
            routes.routes[0].canary = Some(skiff_api::CanaryRoute {
                id: 4,
                release: 7,
                percent: 10,
                sticky: false,
                backends: vec![([127, 0, 0, 1], 1009).into()],
            });
            table = table.next(&routes);
        }
        assert_eq!(canary, 100, "10% of 1,000 requests");
    }
}
