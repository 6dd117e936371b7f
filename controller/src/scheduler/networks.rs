//! One Docker network per app.
//!
//! Every app's containers (one-offs included) sit on a bridge network of the app's own,
//! named `<prefix>-<platform>-<app>`, with a `/24` of the platform's subnet pool. On it,
//! containers of the app reach each other by name (each process type is an alias:
//! `web`, `worker`, …, resolving to every container of that type). Docker keeps bridge
//! networks apart, so containers of different apps cannot reach each other. The host
//! reaches every network, which is how the routers and the health checks reach a
//! container at its own address, with no userland proxy on the way.

use std::collections::HashMap;
use std::net::Ipv4Addr;

use bollard::Docker;
use bollard::models::{Ipam, IpamConfig, NetworkCreateRequest};
use bollard::query_parameters::ListNetworksOptions;
use skiff_api::AppName;

use super::runtime::RuntimeError;

/// The label on networks Skiff made for an app.
const NETWORK_LABEL: &str = "skiff.network";

/// The block of IPv4 addresses apps' networks are cut from, one `/24` each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SubnetPool {
    network: Ipv4Addr,
    prefix: u8,
}

/// A subnet pool that cannot hold `/24`s.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not an IPv4 block of at least one /24 like 10.199.0.0/16 (each app's network takes a /24 of it)")]
pub struct SubnetPoolError(String);

impl std::str::FromStr for SubnetPool {
    type Err = SubnetPoolError;

    fn from_str(text: &str) -> Result<Self, SubnetPoolError> {
        let bad = || SubnetPoolError(text.to_owned());
        let (address, prefix) = text.split_once('/').ok_or_else(bad)?;
        let network: Ipv4Addr = address.parse().map_err(|_| bad())?;
        let prefix: u8 = prefix.parse().ok().filter(|p| (8..=24).contains(p)).ok_or_else(bad)?;
        if network.to_bits() & !mask(prefix) != 0 {
            return Err(bad());
        }
        Ok(Self { network, prefix })
    }
}

impl std::fmt::Display for SubnetPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl SubnetPool {
    /// Its `/24`s, in order, as `(network, 24)`.
    fn blocks(&self) -> impl Iterator<Item = (u32, u8)> + use<> {
        let first = self.network.to_bits();
        (0..1u32 << (24 - self.prefix)).map(move |n| (first + (n << 8), 24))
    }
}

/// The netmask of a prefix length.
fn mask(prefix: u8) -> u32 {
    u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0)
}

/// Whether two IPv4 blocks share an address.
fn overlap((a, a_prefix): (u32, u8), (b, b_prefix): (u32, u8)) -> bool {
    let shorter = mask(a_prefix.min(b_prefix));
    a & shorter == b & shorter
}

/// An IPv4 block as Docker writes it (`172.17.0.0/16`).
fn parse_block(text: &str) -> Option<(u32, u8)> {
    let (address, prefix) = text.split_once('/')?;
    Some((address.parse::<Ipv4Addr>().ok()?.to_bits(), prefix.parse().ok().filter(|p| *p <= 32)?))
}

/// Where app containers sit and how the routers reach them.
#[derive(Debug, Clone)]
pub struct Networking {
    /// Apps' networks are named `<prefix>-<platform>-<app>`.
    pub prefix: String,
    /// The block apps' networks are cut from.
    pub subnets: SubnetPool,
    /// How the routers reach a container.
    pub addressing: Addressing,
}

/// How the routers (and health checks) reach an app container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Addressing {
    /// At the container's own address on its app's network.
    #[default]
    Direct,
    /// Through a port published on 127.0.0.1 (Docker's userland proxy): for routers on
    /// this host that cannot route to the containers' networks.
    Published,
}

/// Addressing that is neither `direct` nor `published`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a way to reach containers: direct or published")]
pub struct AddressingError(String);

impl std::str::FromStr for Addressing {
    type Err = AddressingError;

    fn from_str(text: &str) -> Result<Self, AddressingError> {
        match text {
            "direct" => Ok(Self::Direct),
            "published" => Ok(Self::Published),
            _ => Err(AddressingError(text.to_owned())),
        }
    }
}

/// The kind of network apps get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NetworkDriver {
    /// A bridge on one engine.
    Bridge,
    /// A swarm-wide overlay (VXLAN) that one-off containers may join too.
    Overlay,
}

/// A network to make: what `POST /networks/create` is given besides its subnet.
struct Network {
    name: String,
    driver: &'static str,
    attachable: Option<bool>,
    internal: Option<bool>,
    options: Option<HashMap<String, String>>,
    labels: HashMap<String, String>,
}

/// The apps' networks of one platform on one engine (or swarm).
#[derive(Debug, Clone)]
pub struct AppNetworks {
    docker: Docker,
    platform: String,
    settings: Networking,
    driver: NetworkDriver,
}

impl AppNetworks {
    pub fn new(docker: Docker, platform: &str, settings: Networking, driver: NetworkDriver) -> Self {
        Self { docker, platform: platform.to_owned(), settings, driver }
    }

    pub fn addressing(&self) -> Addressing {
        self.settings.addressing
    }

    /// The name of an app's network.
    pub fn name(&self, app: &AppName) -> String {
        format!("{}-{}-{app}", self.settings.prefix, self.platform)
    }

    /// The id of the app's network, made with a free `/24` of the pool when there is none.
    ///
    /// # Errors
    /// When the engine fails, or every `/24` of the pool is taken.
    pub async fn ensure(&self, app: &AppName) -> Result<String, RuntimeError> {
        let overlay = self.driver == NetworkDriver::Overlay;
        let network = Network {
            name: self.name(app),
            driver: if overlay { "overlay" } else { "bridge" },
            attachable: overlay.then_some(true),
            internal: None,
            options: None,
            labels: HashMap::from([
                (NETWORK_LABEL.to_owned(), "app".to_owned()),
                ("skiff.platform".to_owned(), self.platform.clone()),
                ("skiff.app".to_owned(), app.to_string()),
            ]),
        };
        self.ensure_network(network).await
    }

    /// The id of the network this platform's pause containers join once as they are made
    /// (`docker/pause.rs`), made when there is none: a bridge on this engine, internal, on
    /// which containers cannot reach each other. Its name cannot be an app's.
    ///
    /// # Errors
    /// As [`Self::ensure`].
    pub async fn ensure_pauses(&self) -> Result<String, RuntimeError> {
        let network = Network {
            name: format!("{}-{}.pauses", self.settings.prefix, self.platform),
            driver: "bridge",
            attachable: None,
            internal: Some(true),
            options: Some(HashMap::from([("com.docker.network.bridge.enable_icc".to_owned(), "false".to_owned())])),
            labels: HashMap::from([
                (NETWORK_LABEL.to_owned(), "pauses".to_owned()),
                ("skiff.platform".to_owned(), self.platform.clone()),
            ]),
        };
        self.ensure_network(network).await
    }

    async fn ensure_network(&self, network: Network) -> Result<String, RuntimeError> {
        // Engines before API 1.44 make a second network of the same name when asked twice:
        // platforms in this process make networks one at a time, and when controllers in
        // other processes raced, every one of them settles on the lowest id.
        static MAKING: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
        let _alone = MAKING.lock().await;
        let Network { name, driver, attachable, internal, options, labels } = network;
        if let Some(id) = self.existing(&name).await? {
            return Ok(id);
        }
        for _ in 0..3 {
            let taken = self.taken_blocks().await?;
            let Some((network, prefix)) =
                self.settings.subnets.blocks().find(|block| !taken.iter().any(|used| overlap(*block, *used)))
            else {
                return Err(RuntimeError::SubnetsExhausted(self.settings.subnets.to_string()));
            };
            let subnet = format!("{}/{prefix}", Ipv4Addr::from_bits(network));
            let create = NetworkCreateRequest {
                name: name.clone(),
                driver: Some(driver.into()),
                attachable,
                internal,
                options: options.clone(),
                ipam: Some(Ipam {
                    config: Some(vec![IpamConfig { subnet: Some(subnet), ..Default::default() }]),
                    ..Default::default()
                }),
                labels: Some(labels.clone()),
                ..Default::default()
            };
            match self.docker.create_network(create).await {
                Ok(_) => return self.existing(&name).await?.ok_or(RuntimeError::NetworkVanished(name)),
                // Another engine client took the block between listing and creating.
                Err(bollard::errors::Error::DockerResponseServerError { message, .. })
                    if message.contains("overlaps") => {}
                Err(error) => return Err(error.into()),
            }
        }
        Err(RuntimeError::SubnetsExhausted(self.settings.subnets.to_string()))
    }

    /// The id of the network named `name`, if there is one: the lowest, when a race made two.
    async fn existing(&self, name: &str) -> Result<Option<String>, RuntimeError> {
        let options =
            ListNetworksOptions { filters: Some(HashMap::from([("name".to_owned(), vec![name.to_owned()])])) };
        let networks = self.docker.list_networks(Some(options)).await?;
        Ok(networks.into_iter().filter(|n| n.name.as_deref() == Some(name)).filter_map(|n| n.id).min())
    }

    /// Every IPv4 block any network of the engine uses.
    async fn taken_blocks(&self) -> Result<Vec<(u32, u8)>, RuntimeError> {
        let networks = self.docker.list_networks(None::<ListNetworksOptions>).await?;
        Ok(networks
            .into_iter()
            .flat_map(|n| n.ipam.and_then(|ipam| ipam.config).unwrap_or_default())
            .filter_map(|config| parse_block(config.subnet.as_deref()?))
            .collect())
    }

    /// Removes the app's network unless something still uses it (the engine refuses to
    /// remove a network with containers or services on it).
    ///
    /// # Errors
    /// When the engine cannot list networks.
    pub async fn remove_if_unused(&self, app: &AppName) -> Result<(), RuntimeError> {
        if let Some(id) = self.existing(&self.name(app)).await?
            && let Err(error) = self.docker.remove_network(&id).await
        {
            tracing::debug!(%error, %app, "scheduler: kept the app's network, still in use");
        }
        Ok(())
    }

    /// Removes the app's network once the tasks of its removed services have left it:
    /// Swarm takes a task off its node some seconds after its service goes (its stop grace
    /// period), so this tries every two seconds for a minute, in the background. A
    /// container of the app started meanwhile keeps the network (the engine refuses).
    pub fn remove_once_left(&self, app: &AppName) {
        let (networks, app) = (self.clone(), app.clone());
        tokio::spawn(async move {
            for _ in 0..30 {
                tokio::time::sleep(std::time::Duration::from_secs(2)).await;
                let Ok(Some(id)) = networks.existing(&networks.name(&app)).await else { return };
                if networks.docker.remove_network(&id).await.is_ok() {
                    return;
                }
            }
            tracing::debug!(%app, "scheduler: kept the app's network, still in use after a minute");
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pools_are_ipv4_blocks_holding_a_slash_24() {
        let pool: SubnetPool = "10.199.0.0/16".parse().unwrap();
        assert_eq!(pool.to_string(), "10.199.0.0/16");
        assert_eq!(pool.blocks().count(), 256);
        let blocks: Vec<_> = pool.blocks().take(2).map(|(n, p)| format!("{}/{p}", Ipv4Addr::from_bits(n))).collect();
        assert_eq!(blocks, ["10.199.0.0/24", "10.199.1.0/24"]);
        assert_eq!("192.0.2.0/24".parse::<SubnetPool>().unwrap().blocks().count(), 1);
        for bad in
            ["10.199.0.0/25", "10.199.0.0", "10.199.1.0/16", "2001:db8::/32", "10.199.0.0/x", "/16", "10.0.0.0/7"]
        {
            assert!(bad.parse::<SubnetPool>().is_err(), "{bad}");
        }
    }

    #[test]
    fn blocks_overlap_when_one_holds_the_others_network() {
        let block = |text| parse_block(text).unwrap();
        assert!(overlap(block("10.199.0.0/16"), block("10.199.7.0/24")));
        assert!(overlap(block("10.199.7.0/24"), block("10.199.0.0/16")));
        assert!(overlap(block("10.199.7.0/24"), block("10.199.7.0/24")));
        assert!(!overlap(block("10.199.7.0/24"), block("10.199.8.0/24")));
        assert!(!overlap(block("172.17.0.0/16"), block("10.199.0.0/24")));
        assert!(overlap(block("0.0.0.0/0"), block("10.199.0.0/24")));
        assert_eq!(parse_block("fd00::/64"), None);
    }
}
