//! Where webhooks and OTLP exports may be sent. Link-local addresses (169.254.0.0/16, fe80::/10,
//! where clouds serve instance metadata and credentials), cloud metadata hosts and non-unicast
//! addresses are always refused. Loopback and private ranges (RFC 1918, unique local, carrier
//! NAT, ...) only when `[outbox] allow_private_destinations` lists them; the default lists
//! loopback, since a backend on the same host is the common on-prem case. Everything else
//! (public addresses) is allowed.
//!
//! A destination is checked twice: when it is set (config file or API: the host as written,
//! since a name is not resolved then) and when connecting, on every address DNS answered
//! (`GuardedResolver`, the resolver of the outbox's HTTP agents), so a name that resolves, or
//! later moves, into a refused range is refused before any connection is made.
//!
//! Must not: resolve names outside the resolver, or know about settings and the store.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use ureq::unversioned::resolver::{DefaultResolver, ResolvedSocketAddrs, Resolver};
use ureq::unversioned::transport::NextTimeout;

/// An address range, `10.0.0.0/8` or `fd00::/8` (a bare address is a range of one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    network: IpAddr,
    prefix: u8,
}

impl Cidr {
    const fn v4(a: u8, b: u8, c: u8, d: u8, prefix: u8) -> Cidr {
        Cidr {
            network: IpAddr::V4(Ipv4Addr::new(a, b, c, d)),
            prefix,
        }
    }

    const fn v6(segments: [u16; 8], prefix: u8) -> Cidr {
        let [a, b, c, d, e, f, g, h] = segments;
        Cidr {
            network: IpAddr::V6(Ipv6Addr::new(a, b, c, d, e, f, g, h)),
            prefix,
        }
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.network, ip) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Cidr, String> {
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let network: IpAddr = address.trim().parse().map_err(|_| {
            format!(
                "`{text}` is not an address range; write it like \"10.0.0.0/8\" or \"fd00::/8\""
            )
        })?;
        let max = if network.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("`{text}`: the prefix length must be 0 to {max}"))?,
        };
        Ok(Cidr { network, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

impl Serialize for Cidr {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// `[outbox] allow_private_destinations` by default: loopback.
pub fn default_allowed() -> Vec<Cidr> {
    vec![
        Cidr::v4(127, 0, 0, 0, 8),
        Cidr::v6([0, 0, 0, 0, 0, 0, 0, 1], 128),
    ]
}

/// Ranges never sent to, whatever the config allows.
const LINK_LOCAL: [Cidr; 2] = [
    Cidr::v4(169, 254, 0, 0, 16),
    Cidr::v6([0xfe80, 0, 0, 0, 0, 0, 0, 0], 10),
];

/// Metadata services outside the link-local range (AWS over IPv6, Alibaba Cloud).
const METADATA_ADDRESSES: [Cidr; 2] = [
    Cidr::v6([0xfd00, 0x0ec2, 0, 0, 0, 0, 0, 0x0254], 128),
    Cidr::v4(100, 100, 100, 200, 32),
];

/// Names of cloud metadata services (GCP, AWS); refused before they are even looked up.
const METADATA_HOSTS: [&str; 5] = [
    "metadata.google.internal",
    "metadata.goog",
    "metadata",
    "instance-data",
    "instance-data.ec2.internal",
];

/// Non-public ranges a destination needs `allow_private_destinations` for, with their names.
const PRIVATE: [(Cidr, &str); 15] = [
    (Cidr::v4(127, 0, 0, 0, 8), "loopback"),
    (Cidr::v4(10, 0, 0, 0, 8), "private (RFC 1918)"),
    (Cidr::v4(172, 16, 0, 0, 12), "private (RFC 1918)"),
    (Cidr::v4(192, 168, 0, 0, 16), "private (RFC 1918)"),
    (Cidr::v4(100, 64, 0, 0, 10), "shared (carrier-grade NAT)"),
    (
        Cidr::v4(192, 0, 0, 0, 24),
        "reserved (IETF protocol assignments)",
    ),
    (Cidr::v4(198, 18, 0, 0, 15), "reserved (benchmarking)"),
    (Cidr::v4(192, 0, 2, 0, 24), "reserved (documentation)"),
    (Cidr::v4(198, 51, 100, 0, 24), "reserved (documentation)"),
    (Cidr::v4(203, 0, 113, 0, 24), "reserved (documentation)"),
    (Cidr::v4(240, 0, 0, 0, 4), "reserved"),
    (Cidr::v6([0, 0, 0, 0, 0, 0, 0, 1], 128), "loopback"),
    (
        Cidr::v6([0xfc00, 0, 0, 0, 0, 0, 0, 0], 7),
        "private (unique local)",
    ),
    (
        Cidr::v6([0xfec0, 0, 0, 0, 0, 0, 0, 0], 10),
        "private (site-local)",
    ),
    (
        Cidr::v6([0x2001, 0x0db8, 0, 0, 0, 0, 0, 0], 32),
        "reserved (documentation)",
    ),
];

/// Why a destination is refused: the address (or host) and the rule it breaks.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error(
        "{host} is a cloud metadata host; metadata and link-local destinations are always refused"
    )]
    MetadataHost { host: String },
    #[error("{address} is link-local (169.254.0.0/16, fe80::/10) or a cloud metadata address; these destinations are always refused")]
    LinkLocal { address: IpAddr },
    #[error("{address} is not a unicast address (unspecified, multicast or broadcast); such destinations are always refused")]
    NotUnicast { address: IpAddr },
    #[error("{address} is a {kind} address ({range}); add the range to `[outbox] allow_private_destinations` in the config file to send there")]
    Private {
        address: IpAddr,
        kind: &'static str,
        range: Cidr,
    },
}

/// The ranges of `allow_private_destinations`, and the checks against them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DestinationPolicy {
    allowed: Vec<Cidr>,
}

impl Default for DestinationPolicy {
    fn default() -> Self {
        DestinationPolicy::new(default_allowed())
    }
}

impl DestinationPolicy {
    pub fn new(allowed: Vec<Cidr>) -> DestinationPolicy {
        DestinationPolicy { allowed }
    }

    /// Whether opslog may connect to `address`.
    pub fn check_address(&self, address: IpAddr) -> Result<(), Refused> {
        // An IPv4 address written as IPv6 (::ffff:a.b.c.d, 64:ff9b::a.b.c.d) reaches the IPv4 host.
        let address = embedded_ipv4(address).map_or(address, IpAddr::V4);
        if LINK_LOCAL
            .iter()
            .chain(METADATA_ADDRESSES.iter())
            .any(|range| range.contains(address))
        {
            return Err(Refused::LinkLocal { address });
        }
        let not_unicast = match address {
            IpAddr::V4(v4) => v4.octets()[0] == 0 || v4.is_multicast() || v4.is_broadcast(),
            IpAddr::V6(v6) => v6.is_unspecified() || v6.is_multicast(),
        };
        if not_unicast {
            return Err(Refused::NotUnicast { address });
        }
        let Some((range, kind)) = PRIVATE.iter().find(|(range, _)| range.contains(address)) else {
            return Ok(());
        };
        if self.allowed.iter().any(|allowed| allowed.contains(address)) {
            Ok(())
        } else {
            Err(Refused::Private {
                address,
                kind,
                range: *range,
            })
        }
    }

    /// Checks a host as written in a URL, without resolving it: metadata names, `localhost`
    /// (always loopback, RFC 6761) and addresses, also in the legacy forms (`2130706433`,
    /// `0x7f.1`) the system resolver would read as IPv4. Other names pass: they are checked when
    /// connecting.
    pub fn check_host(&self, host: &str) -> Result<(), Refused> {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        if METADATA_HOSTS.contains(&name.as_str()) {
            return Err(Refused::MetadataHost { host: name });
        }
        if name == "localhost" || name.ends_with(".localhost") {
            return self.check_address(IpAddr::V4(Ipv4Addr::LOCALHOST));
        }
        match host
            .parse::<IpAddr>()
            .ok()
            .or_else(|| legacy_ipv4(&name).map(IpAddr::V4))
        {
            Some(address) => self.check_address(address),
            None => Ok(()),
        }
    }

    /// Checks the host of `url` as written (see [`check_host`](Self::check_host)). A URL that
    /// does not parse passes: its own checks say what is wrong with it.
    pub fn check_url(&self, url: &str) -> Result<(), Refused> {
        match url.trim().parse::<http::Uri>() {
            Ok(uri) => uri.host().map_or(Ok(()), |host| self.check_host(host)),
            Err(_) => Ok(()),
        }
    }
}

/// An entry of `allow_private_destinations` may not reach into what is always refused.
pub fn check_allowed_range(range: &Cidr) -> Result<(), String> {
    let refused = LINK_LOCAL.iter().chain(METADATA_ADDRESSES.iter());
    for always in refused {
        if always.contains(range.network) || range.contains(always.network) {
            return Err(format!(
                "{range} overlaps {always}: link-local and cloud metadata addresses are always refused; list only loopback and private ranges"
            ));
        }
    }
    Ok(())
}

fn embedded_ipv4(address: IpAddr) -> Option<Ipv4Addr> {
    let IpAddr::V6(v6) = address else {
        return None;
    };
    if let Some(v4) = v6.to_ipv4_mapped() {
        return Some(v4);
    }
    const NAT64: Cidr = Cidr::v6([0x64, 0xff9b, 0, 0, 0, 0, 0, 0], 96);
    NAT64
        .contains(address)
        .then(|| Ipv4Addr::from(u128::from(v6) as u32))
}

/// IPv4 as `inet_aton` reads it: 1 to 4 parts, each decimal, `0x` hex or `0`-led octal, the
/// last part filling the remaining bytes (`127.1`, `2130706433`, `0x7f.0.0.1`).
fn legacy_ipv4(text: &str) -> Option<Ipv4Addr> {
    let parts: Vec<&str> = text.split('.').collect();
    if parts.is_empty() || parts.len() > 4 {
        return None;
    }
    let mut values = Vec::with_capacity(parts.len());
    for part in &parts {
        let value = if let Some(hex) = part.strip_prefix("0x").or_else(|| part.strip_prefix("0X")) {
            u32::from_str_radix(hex, 16).ok()?
        } else if part.len() > 1 && part.starts_with('0') {
            u32::from_str_radix(&part[1..], 8).ok()?
        } else {
            part.parse::<u32>().ok()?
        };
        values.push(value);
    }
    let (last, leading) = values.split_last()?;
    let mut address = 0u32;
    for (i, value) in leading.iter().enumerate() {
        if *value > 255 {
            return None;
        }
        address |= value << (24 - 8 * i);
    }
    let room = 32 - 8 * leading.len() as u32;
    if room < 32 && u64::from(*last) >= 1u64 << room {
        return None;
    }
    Some(Ipv4Addr::from(address | last))
}

/// The resolver of the outbox's HTTP agents: the system's answer, refused as a whole when any
/// address in it is refused, so no connection is ever opened to a refused address.
#[derive(Debug)]
pub struct GuardedResolver {
    policy: DestinationPolicy,
    system: DefaultResolver,
}

impl GuardedResolver {
    pub fn new(policy: DestinationPolicy) -> GuardedResolver {
        GuardedResolver {
            policy,
            system: DefaultResolver::default(),
        }
    }
}

impl Resolver for GuardedResolver {
    fn resolve(
        &self,
        uri: &http::Uri,
        config: &ureq::config::Config,
        timeout: NextTimeout,
    ) -> Result<ResolvedSocketAddrs, ureq::Error> {
        let refused = |refused: Refused| {
            ureq::Error::Io(std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!("destination refused before connecting: {refused}"),
            ))
        };
        if let Some(host) = uri.host() {
            let name = host.trim_end_matches('.').to_ascii_lowercase();
            if METADATA_HOSTS.contains(&name.as_str()) {
                return Err(refused(Refused::MetadataHost { host: name }));
            }
        }
        let addresses = self.system.resolve(uri, config, timeout)?;
        for address in addresses.iter() {
            self.policy.check_address(address.ip()).map_err(refused)?;
        }
        Ok(addresses)
    }
}

/// An HTTP agent for the outbox: status codes are answers, redirects are not followed, proxies
/// from the environment are not used (opslog must see where it connects), and every address is
/// checked against `policy` before connecting.
pub fn guarded_agent(policy: DestinationPolicy, user_agent: &str) -> ureq::Agent {
    let config = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .user_agent(user_agent)
        .build();
    ureq::Agent::with_parts(
        config,
        ureq::unversioned::transport::DefaultConnector::default(),
        GuardedResolver::new(policy),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn link_local_and_metadata_are_refused_whatever_is_allowed() {
        let everything =
            DestinationPolicy::new(vec!["0.0.0.0/0".parse().unwrap(), "::/0".parse().unwrap()]);
        for address in [
            "169.254.169.254",
            "169.254.0.1",
            "fe80::1",
            "::ffff:169.254.169.254",
            "fd00:ec2::254",
            "100.100.100.200",
        ] {
            let refused = everything.check_address(ip(address)).unwrap_err();
            assert!(
                matches!(refused, Refused::LinkLocal { .. }),
                "{address}: {refused}"
            );
            assert!(refused.to_string().contains("always refused"), "{refused}");
        }
        for host in [
            "metadata.google.internal",
            "METADATA.GOOGLE.INTERNAL.",
            "instance-data",
            "[fe80::1]",
            "169.254.169.254",
        ] {
            assert!(everything.check_host(host).is_err(), "{host}");
        }
        for address in ["0.0.0.0", "::", "224.0.0.1", "255.255.255.255", "ff02::1"] {
            assert!(
                matches!(
                    everything.check_address(ip(address)),
                    Err(Refused::NotUnicast { .. })
                ),
                "{address}"
            );
        }
    }

    #[test]
    fn private_ranges_need_to_be_allowed_and_loopback_is_by_default() {
        let default = DestinationPolicy::default();
        assert!(default.check_address(ip("127.0.0.1")).is_ok());
        assert!(default.check_address(ip("::1")).is_ok());
        assert!(default.check_address(ip("93.184.216.34")).is_ok());
        assert!(default.check_address(ip("2606:4700::1111")).is_ok());
        let refused = default.check_address(ip("10.1.2.3")).unwrap_err();
        assert_eq!(
            refused.to_string(),
            "10.1.2.3 is a private (RFC 1918) address (10.0.0.0/8); add the range to `[outbox] allow_private_destinations` in the config file to send there"
        );
        for address in [
            "172.16.0.1",
            "192.168.1.1",
            "100.64.0.1",
            "fd12::1",
            "::ffff:10.0.0.1",
            "64:ff9b::a00:1",
        ] {
            assert!(default.check_address(ip(address)).is_err(), "{address}");
        }
        let none = DestinationPolicy::new(Vec::new());
        assert!(matches!(
            none.check_address(ip("127.0.0.2")),
            Err(Refused::Private {
                kind: "loopback",
                ..
            })
        ));
        assert!(none.check_host("localhost").is_err());
        assert!(none.check_host("api.localhost.").is_err());
        assert!(none.check_host("[::1]").is_err());
        let lan = DestinationPolicy::new(vec!["10.20.0.0/16".parse().unwrap()]);
        assert!(lan.check_address(ip("10.20.3.4")).is_ok());
        assert!(lan.check_address(ip("10.21.3.4")).is_err());
    }

    #[test]
    fn hosts_are_read_as_the_system_resolver_would() {
        let none = DestinationPolicy::new(Vec::new());
        for host in [
            "2130706433",
            "127.1",
            "0x7f.0.0.1",
            "0177.0.0.1",
            "0x7f000001",
        ] {
            assert!(
                matches!(none.check_host(host), Err(Refused::Private { .. })),
                "{host}"
            );
        }
        assert_eq!(legacy_ipv4("10.1"), Some(Ipv4Addr::new(10, 0, 0, 1)));
        assert_eq!(legacy_ipv4("256.1.1.1"), None);
        assert_eq!(legacy_ipv4("backend"), None);
        assert!(
            none.check_host("backend.example.com").is_ok(),
            "names wait for DNS"
        );
        assert!(none.check_url("https://hooks.example.com/x").is_ok());
        assert!(none
            .check_url("http://169.254.169.254/latest/meta-data")
            .is_err());
        assert!(none.check_url("http://[::ffff:127.0.0.1]:8080/").is_err());
    }

    #[test]
    fn allowed_ranges_parse_and_may_not_cover_link_local() {
        assert_eq!(
            "10.0.0.0/8".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.0/8"
        );
        assert_eq!("::1".parse::<Cidr>().unwrap().to_string(), "::1/128");
        assert!("10.0.0.0/33"
            .parse::<Cidr>()
            .unwrap_err()
            .contains("0 to 32"));
        assert!("ten".parse::<Cidr>().is_err());
        assert!(check_allowed_range(&"169.254.0.0/16".parse().unwrap()).is_err());
        assert!(check_allowed_range(&"0.0.0.0/0".parse().unwrap()).is_err());
        assert!(check_allowed_range(&"10.0.0.0/8".parse().unwrap()).is_ok());
    }

    /// A name the system resolves to loopback is refused after DNS, before any connection.
    #[test]
    fn the_resolver_refuses_what_dns_answers_before_connecting() {
        let agent = guarded_agent(DestinationPolicy::new(Vec::new()), "opslog-test");
        let err = agent
            .post("http://localhost:9/never")
            .send("x")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("destination refused before connecting"),
            "{err}"
        );
        assert!(
            err.contains("loopback") && err.contains("allow_private_destinations"),
            "{err}"
        );
        let err = agent
            .get("http://metadata.google.internal/")
            .call()
            .unwrap_err()
            .to_string();
        assert!(err.contains("metadata"), "{err}");
    }
}
