//! Who is asking: the client's IP address, and the operator's allow and deny lists.

use std::net::{IpAddr, SocketAddr};

use actix_web::http::header::HeaderMap;
use ipnet::IpNet;

/// Which client address to believe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProxyTrust {
    /// The TCP peer is the client; `Forwarded`/`X-Forwarded-For` are ignored (they are spoofable).
    None,
    /// This many reverse proxies of ours are in front, the last of them the TCP peer. Each
    /// appended the address it was reached from, so the client is the right-most address none of
    /// ours wrote: the `n`th from the right (the left-most when there are fewer). Entries further
    /// left came from the client and are ignored.
    Proxies(u8),
}

/// How clients are told apart for rate limits, blocks and lockouts: an IPv4 address on its own,
/// an IPv6 address by its network of `ipv6_prefix` bits. A subscriber is given a whole /64 and
/// may use any address in it, so per-address state would let one client rotate out of every
/// limit (`IPV6_CLIENT_PREFIX`, 64 by default).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientNetworks {
    ipv6_prefix: u8,
}

impl Default for ClientNetworks {
    fn default() -> Self {
        Self { ipv6_prefix: 64 }
    }
}

impl ClientNetworks {
    /// IPv6 clients keyed by their first `ipv6_prefix` bits (at most 128: each address its own).
    pub fn new(ipv6_prefix: u8) -> Self {
        Self {
            ipv6_prefix: ipv6_prefix.min(128),
        }
    }

    /// The key `ip`'s limits are kept under: an IPv4 address (also written IPv4-mapped) as is,
    /// an IPv6 address with the bits past the prefix cleared.
    pub fn key(self, ip: IpAddr) -> IpAddr {
        match ip.to_canonical() {
            IpAddr::V6(v6) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.ipv6_prefix))
                    .unwrap_or(0);
                IpAddr::V6((u128::from(v6) & mask).into())
            }
            v4 => v4,
        }
    }
}

/// The client's address under `trust`; `None` when there is no peer address at all. The standard
/// `Forwarded` header is read when present, `X-Forwarded-For` otherwise.
pub fn client_ip(
    peer: Option<SocketAddr>,
    headers: &HeaderMap,
    trust: ProxyTrust,
) -> Option<IpAddr> {
    if let ProxyTrust::Proxies(proxies) = trust {
        if let Some(ip) = forwarded_for(headers, proxies) {
            return Some(ip);
        }
    }
    peer.map(|peer| peer.ip())
}

/// The `proxies`th address from the right of the forwarding chain, or the left-most.
fn forwarded_for(headers: &HeaderMap, proxies: u8) -> Option<IpAddr> {
    let chain = |name: &str| -> Vec<&str> {
        headers
            .get_all(name)
            .filter_map(|value| value.to_str().ok())
            .flat_map(|value| value.split(','))
            .map(str::trim)
            .collect()
    };
    let forwarded = chain("forwarded");
    if !forwarded.is_empty() {
        let element = from_right(&forwarded, proxies)?;
        let value = element.split(';').find_map(|pair| {
            let (key, value) = pair.trim().split_once('=')?;
            key.trim()
                .eq_ignore_ascii_case("for")
                .then_some(value.trim())
        })?;
        return parse_address(value.trim_matches('"'));
    }
    parse_address(from_right(&chain("x-forwarded-for"), proxies)?)
}

/// The `proxies`th entry from the right of `chain`, or the left-most when it is shorter.
fn from_right<'a>(chain: &[&'a str], proxies: u8) -> Option<&'a str> {
    let at = chain.len().checked_sub(usize::from(proxies.max(1)));
    chain.get(at.unwrap_or(0)).copied()
}

/// An address as proxies write it: `1.2.3.4`, `1.2.3.4:5678`, `[::1]`, `[::1]:5678`, `::1`.
fn parse_address(text: &str) -> Option<IpAddr> {
    if let Ok(ip) = text.parse() {
        return Some(ip);
    }
    if let Ok(socket) = text.parse::<SocketAddr>() {
        return Some(socket.ip());
    }
    text.strip_prefix('[')?.strip_suffix(']')?.parse().ok()
}

/// A list of networks (`IP_ALLOW_LIST`, `IP_DENY_LIST`): CIDRs or single addresses.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpList(Vec<IpNet>);

impl IpList {
    /// Parses comma-separated entries (`54.172.60.0/23, 10.0.0.7`).
    pub fn parse(text: &str) -> Result<Self, String> {
        text.split(',')
            .map(str::trim)
            .filter(|entry| !entry.is_empty())
            .map(|entry| {
                entry
                    .parse::<IpNet>()
                    .or_else(|_| entry.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| format!("{entry:?} is not an IP address or CIDR network"))
            })
            .collect::<Result<_, _>>()
            .map(IpList)
    }

    /// Whether `ip` is in one of the networks (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = ip.to_canonical();
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// Whether the list is empty.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::{HeaderName, HeaderValue};

    fn headers(pairs: &[(&'static str, &'static str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_static(name),
                HeaderValue::from_static(value),
            );
        }
        map
    }

    const PEER: &str = "192.0.2.1:4000";

    #[test]
    fn forwarding_headers_are_ignored_unless_a_proxy_is_trusted() {
        let peer = Some(PEER.parse().unwrap());
        let spoofed = headers(&[("x-forwarded-for", "1.1.1.1"), ("forwarded", "for=2.2.2.2")]);
        assert_eq!(
            client_ip(peer, &spoofed, ProxyTrust::None),
            Some("192.0.2.1".parse().unwrap())
        );
        let proxied = headers(&[("x-forwarded-for", "6.6.6.6, 203.0.113.9")]);
        assert_eq!(
            client_ip(peer, &proxied, ProxyTrust::Proxies(1)),
            Some("203.0.113.9".parse().unwrap()),
            "the entry our proxy appended, not the client's own"
        );
        let forwarded = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=\"[2001:db8::1]:443\";proto=https",
        )]);
        assert_eq!(
            client_ip(peer, &forwarded, ProxyTrust::Proxies(1)),
            Some("2001:db8::1".parse().unwrap())
        );
        let garbage = headers(&[("x-forwarded-for", "not-an-ip")]);
        assert_eq!(
            client_ip(peer, &garbage, ProxyTrust::Proxies(1)),
            Some("192.0.2.1".parse().unwrap())
        );
    }

    #[test]
    fn the_standard_header_wins_and_the_client_is_the_right_most_hop_not_ours() {
        let peer = Some(PEER.parse().unwrap());
        let both = headers(&[
            ("x-forwarded-for", "6.6.6.6"),
            ("forwarded", "for=203.0.113.9;proto=https"),
        ]);
        assert_eq!(
            client_ip(peer, &both, ProxyTrust::Proxies(1)),
            Some("203.0.113.9".parse().unwrap()),
            "Forwarded before X-Forwarded-For"
        );
        // client (spoofing 6.6.6.6) → 198.51.100.7 (ours) → the peer (ours): two proxies.
        let chain = headers(&[
            ("x-forwarded-for", "6.6.6.6, 203.0.113.9"),
            ("x-forwarded-for", "198.51.100.7"),
        ]);
        let two = |headers| client_ip(peer, headers, ProxyTrust::Proxies(2));
        assert_eq!(two(&chain), Some("203.0.113.9".parse().unwrap()));
        let forwarded = headers(&[(
            "forwarded",
            "for=6.6.6.6, for=203.0.113.9, For=\"198.51.100.7:80\"",
        )]);
        assert_eq!(two(&forwarded), Some("203.0.113.9".parse().unwrap()));
        let short = headers(&[("x-forwarded-for", "203.0.113.9")]);
        assert_eq!(
            two(&short),
            Some("203.0.113.9".parse().unwrap()),
            "fewer hops than proxies: the left-most"
        );
    }

    #[test]
    fn ipv6_clients_are_keyed_by_their_network_and_ipv4_by_address() {
        let networks = ClientNetworks::default();
        let key = |ip: &str| networks.key(ip.parse().unwrap());
        assert_eq!(key("2001:db8:1:2:aaaa::1"), key("2001:db8:1:2:ffff::9"));
        assert_eq!(
            key("2001:db8:1:2:aaaa::1"),
            "2001:db8:1:2::".parse::<IpAddr>().unwrap()
        );
        assert_ne!(
            key("2001:db8:1:2::1"),
            key("2001:db8:1:3::1"),
            "another /64"
        );
        assert_eq!(
            key("::ffff:192.0.2.7"),
            "192.0.2.7".parse::<IpAddr>().unwrap()
        );
        assert_ne!(key("192.0.2.7"), key("192.0.2.8"));
        let each = ClientNetworks::new(128);
        assert_ne!(
            each.key("2001:db8::1".parse().unwrap()),
            each.key("2001:db8::2".parse().unwrap())
        );
        let all = ClientNetworks::new(0);
        assert_eq!(
            all.key("2001:db8::1".parse().unwrap()),
            all.key("fe80::1".parse().unwrap())
        );
    }

    #[test]
    fn lists_match_networks_and_single_addresses() {
        let list = IpList::parse("54.172.60.0/23, 10.0.0.7 ,2001:db8::/32").unwrap();
        assert!(list.contains("54.172.61.200".parse().unwrap()));
        assert!(list.contains("::ffff:10.0.0.7".parse().unwrap()));
        assert!(list.contains("2001:db8::5".parse().unwrap()));
        assert!(!list.contains("10.0.0.8".parse().unwrap()));
        assert!(IpList::parse("").unwrap().is_empty());
        assert!(IpList::parse("10.0.0.0/33").is_err());
        assert!(IpList::parse("example.com").is_err());
    }
}
