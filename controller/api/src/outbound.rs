//! The one guard for every address a tenant makes the platform connect to (drains now,
//! webhooks next): by default nothing on loopback, unspecified, link-local, private,
//! shared (carrier-grade NAT), multicast or broadcast addresses, so that a tenant cannot
//! aim the platform at its own services or the networks around it. The operator allows
//! networks with `SKIFF_OUTBOUND_ALLOW`. Pure: callers resolve names and check every
//! address they would connect to, at the moment they connect.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::Cidr;

/// Which addresses tenant-given URLs may reach.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OutboundPolicy {
    /// Networks the operator allows although they are refused by default.
    allowed: Vec<Cidr>,
}

impl OutboundPolicy {
    /// The default guard, with `allowed` networks let through.
    pub fn new(allowed: Vec<Cidr>) -> Self {
        Self { allowed }
    }

    /// Reads a comma-separated list of networks (`10.0.0.0/8,127.0.0.1`); empty for none.
    ///
    /// # Errors
    /// Names the entry that is not an address or block.
    pub fn parse(list: &str) -> Result<Self, crate::wire::CidrError> {
        let allowed =
            list.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::parse).collect::<Result<_, _>>()?;
        Ok(Self { allowed })
    }

    /// Why `address` may not be reached, or `None` when it may.
    pub fn refusal(&self, address: IpAddr) -> Option<&'static str> {
        if self.allowed.iter().any(|network| network.contains(address)) {
            return None;
        }
        match address {
            IpAddr::V4(v4) => refused_v4(v4),
            IpAddr::V6(v6) => match embedded_v4(v6) {
                Some(v4) => refused_v4(v4),
                None => refused_v6(v6),
            },
        }
    }
}

fn refused_v4(address: Ipv4Addr) -> Option<&'static str> {
    let [a, b, ..] = address.octets();
    if address.is_unspecified() || a == 0 {
        Some("an unspecified address")
    } else if address.is_loopback() {
        Some("a loopback address")
    } else if address.is_private() {
        Some("a private address")
    } else if address.is_link_local() {
        Some("a link-local address")
    } else if a == 100 && (64..128).contains(&b) {
        Some("a shared (carrier-grade NAT) address")
    } else if address.is_multicast() || address.is_broadcast() || a >= 240 {
        Some("a multicast, broadcast or reserved address")
    } else {
        None
    }
}

fn refused_v6(address: Ipv6Addr) -> Option<&'static str> {
    let first = address.segments()[0];
    if address.is_unspecified() {
        Some("an unspecified address")
    } else if address.is_loopback() {
        Some("a loopback address")
    } else if first & 0xfe00 == 0xfc00 {
        Some("a private (unique local) address")
    } else if first & 0xffc0 == 0xfe80 {
        Some("a link-local address")
    } else if address.is_multicast() {
        Some("a multicast address")
    } else {
        None
    }
}

/// The IPv4 address inside an IPv4-mapped (`::ffff:a.b.c.d`), IPv4-compatible or NAT64
/// (`64:ff9b::a.b.c.d`) address: it reaches that IPv4 address.
fn embedded_v4(address: Ipv6Addr) -> Option<Ipv4Addr> {
    if let Some(v4) = address.to_ipv4_mapped() {
        return Some(v4);
    }
    let segments = address.segments();
    let low = Ipv4Addr::from(((u32::from(segments[6])) << 16) | u32::from(segments[7]));
    let nat64 = segments[..6] == [0x64, 0xff9b, 0, 0, 0, 0];
    let compatible = segments[..6] == [0; 6] && !address.is_loopback() && !address.is_unspecified();
    (nat64 || compatible).then_some(low)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_platform_and_the_networks_around_it_are_refused_by_default() {
        let policy = OutboundPolicy::default();
        let refused = [
            "127.0.0.1",
            "127.0.0.2",
            "0.0.0.0",
            "10.1.2.3",
            "172.17.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::a9fe:a9fe",
            "::7f00:1",
        ];
        for address in refused {
            assert!(policy.refusal(address.parse().unwrap()).is_some(), "{address}");
        }
        for address in ["93.184.216.34", "8.8.8.8", "2606:4700::1111", "::ffff:8.8.8.8"] {
            assert_eq!(policy.refusal(address.parse().unwrap()), None, "{address}");
        }
        assert_eq!(policy.refusal("169.254.169.254".parse().unwrap()), Some("a link-local address"));
    }

    #[test]
    fn the_operator_allows_networks() {
        let policy = OutboundPolicy::parse(" 10.0.0.0/8, 127.0.0.1 ,").unwrap();
        assert_eq!(policy.refusal("10.9.9.9".parse().unwrap()), None);
        assert_eq!(policy.refusal("127.0.0.1".parse().unwrap()), None);
        assert!(policy.refusal("127.0.0.2".parse().unwrap()).is_some());
        assert!(policy.refusal("192.168.0.1".parse().unwrap()).is_some());
        assert!(OutboundPolicy::parse("10.0.0.0/33").is_err());
        assert_eq!(OutboundPolicy::parse("").unwrap(), OutboundPolicy::default());
    }
}
