//! Where outbound webhooks may go: the guard against server-side request forgery (SSRF).
//!
//! Customers register URLs and the server POSTs call events to them from inside our network. A
//! URL naming `127.0.0.1`, `10.0.0.5` or the cloud metadata service at `169.254.169.254` would
//! turn webhooks into a way to reach what only the server can reach, so every target passes two
//! checks:
//!
//! - [`check_url`] at registration, without the network: syntax, scheme, `https` in production,
//!   no credentials, no fragment, and a host that is an IP literal (or `localhost`) must be
//!   public.
//! - [`resolve`] at each delivery: resolves the host once, refuses it unless every address is
//!   public, and returns the one address to connect to. The client connects to exactly that
//!   address and never resolves again, so a name that answers differently the second time (DNS
//!   rebinding) cannot swap it. A redirect would name a target nobody checked: delivery does not
//!   follow them.
//!
//! [`TargetPolicy::allow_private`] lifts the address checks for development and tests. Error
//! messages are fixed texts: they never echo the URL.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use awc::http::Uri;

/// Longest URL accepted, in bytes: room for any real endpoint, and a bound on what we store.
pub const MAX_URL_LEN: usize = 2048;

/// How long resolving a target's host may take; past it the host counts as unresolved.
pub const RESOLVE_TIMEOUT: Duration = Duration::from_secs(5);

/// Where outbound webhooks may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TargetPolicy {
    /// `WEBHOOK_ALLOW_PRIVATE=true`: loopback, private, link-local and metadata addresses allowed
    /// (development, tests).
    pub allow_private: bool,
    /// `APP_ENV=production`: only `https` URLs.
    pub require_https: bool,
}

/// A webhook URL that passed the checks made without the network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TargetUrl {
    uri: Uri,
    text: String,
    host: String,
    port: u16,
}

impl TargetUrl {
    /// The URL, as `http::Uri` writes it (`http://example.com` gains its `/`).
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// The parsed URL, for building the request.
    pub fn uri(&self) -> &Uri {
        &self.uri
    }

    /// The host: a DNS name, or an IP address (IPv6 without its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }

    /// The port: the URL's own, or 80 for `http` and 443 for `https`.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Whether the URL is `https`.
    pub fn is_https(&self) -> bool {
        self.uri
            .scheme_str()
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("https"))
    }
}

/// Why a webhook target was refused. The messages are fixed: none echoes the URL.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not an absolute URL, or a host that is neither a DNS name nor a plain IP address.
    #[error("not a valid URL")]
    Invalid,
    /// Longer than [`MAX_URL_LEN`].
    #[error("URL longer than {MAX_URL_LEN} bytes")]
    TooLong,
    /// A scheme other than `http` or `https`, or none.
    #[error("URL scheme must be http or https")]
    UnsupportedScheme,
    /// An `http` URL where the policy requires `https`.
    #[error("URL must use https")]
    HttpsRequired,
    /// Credentials (`user:password@`) in the URL.
    #[error("URL must not contain credentials")]
    Credentials,
    /// No host.
    #[error("URL has no host")]
    NoHost,
    /// A `#fragment`, which is never sent and usually a mistake.
    #[error("URL must not contain a fragment")]
    Fragment,
    /// The host is, names or resolves to an address that is not public (loopback, private,
    /// link-local, metadata, reserved).
    #[error("URL points to a private or reserved address")]
    ForbiddenAddress,
    /// The host did not resolve, resolved to nothing, or took longer than [`RESOLVE_TIMEOUT`].
    #[error("URL host did not resolve")]
    Unresolved,
}

/// Checks made at registration, without the network: syntax, scheme, `https` if required, no
/// userinfo, no fragment, and a host that is an IP literal must be public unless private targets
/// are allowed. `localhost` and `*.localhost` always mean loopback, so they are refused by name
/// unless private targets are allowed.
///
/// A DNS name must be ASCII (IDNs in their `xn--` form) and may not end in a number: `127.1`,
/// `2130706433` and `0x7f.1` are IPv4 addresses to a resolver, so they are refused as invalid.
pub fn check_url(url: &str, policy: TargetPolicy) -> Result<TargetUrl, TargetError> {
    if url.len() > MAX_URL_LEN {
        return Err(TargetError::TooLong);
    }
    // `http::Uri` drops a fragment without a word, so look for one before parsing.
    if url.contains('#') {
        return Err(TargetError::Fragment);
    }
    let uri: Uri = url.parse().map_err(|_| TargetError::Invalid)?;
    let https = match uri.scheme_str() {
        Some(scheme) if scheme.eq_ignore_ascii_case("https") => true,
        Some(scheme) if scheme.eq_ignore_ascii_case("http") => false,
        _ => return Err(TargetError::UnsupportedScheme),
    };
    if policy.require_https && !https {
        return Err(TargetError::HttpsRequired);
    }
    let authority = uri.authority().ok_or(TargetError::NoHost)?;
    if authority.as_str().contains('@') {
        return Err(TargetError::Credentials);
    }
    let host = authority.host();
    if host.is_empty() {
        return Err(TargetError::NoHost);
    }
    // Not `port_u16()`: it reads an out-of-range port such as `:99999` as no port at all.
    let port = match authority
        .as_str()
        .strip_prefix(host)
        .and_then(|rest| rest.strip_prefix(':'))
    {
        Some(digits) if !digits.is_empty() => match digits.parse::<u16>() {
            Ok(0) | Err(_) => return Err(TargetError::Invalid),
            Ok(port) => port,
        },
        _ if https => 443,
        _ => 80,
    };
    let private = match literal_ip(host)? {
        Some(ip) => !is_public(ip),
        None => is_localhost(host),
    };
    if private && !policy.allow_private {
        return Err(TargetError::ForbiddenAddress);
    }
    let host = host
        .strip_prefix('[')
        .and_then(|inner| inner.strip_suffix(']'))
        .unwrap_or(host)
        .to_owned();
    Ok(TargetUrl {
        text: uri.to_string(),
        uri,
        host,
        port,
    })
}

/// Checks made at delivery: resolves the host once and returns the addresses to connect to, in
/// the resolver's order, after checking that every one is public (unless private targets are
/// allowed). The caller connects to these addresses only (the next when one refuses): no
/// second lookup, so DNS rebinding cannot swap them.
pub async fn resolve(
    url: &TargetUrl,
    policy: TargetPolicy,
) -> Result<Vec<SocketAddr>, TargetError> {
    let lookup = tokio::net::lookup_host((url.host(), url.port()));
    let addrs: Vec<SocketAddr> = match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
        Ok(Ok(addrs)) => addrs.collect(),
        Ok(Err(_)) | Err(_) => return Err(TargetError::Unresolved),
    };
    // Every address, not only the one we use: a name that mixes public and private answers is
    // not one we trust to keep answering the public one.
    if !policy.allow_private && addrs.iter().any(|addr| !is_public(addr.ip())) {
        return Err(TargetError::ForbiddenAddress);
    }
    if addrs.is_empty() {
        return Err(TargetError::Unresolved);
    }
    Ok(addrs)
}

/// Whether an address may receive webhooks when private targets are not allowed: not loopback,
/// private, shared (CGNAT), link-local (the cloud metadata service), documentation, benchmarking,
/// multicast or reserved. IPv6 addresses that embed an IPv4 one (mapped, compatible, NAT64,
/// 6to4) are judged by the IPv4 address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(ip) => is_public_v4(ip),
        IpAddr::V6(ip) => is_public_v6(ip),
    }
}

/// IPv4 networks that never receive webhooks: first address and prefix length.
const FORBIDDEN_V4: [(Ipv4Addr, u8); 15] = [
    (Ipv4Addr::new(0, 0, 0, 0), 8),       // "this network"
    (Ipv4Addr::new(10, 0, 0, 0), 8),      // private
    (Ipv4Addr::new(100, 64, 0, 0), 10),   // shared address space (CGNAT)
    (Ipv4Addr::new(127, 0, 0, 0), 8),     // loopback
    (Ipv4Addr::new(169, 254, 0, 0), 16),  // link-local, cloud metadata at 169.254.169.254
    (Ipv4Addr::new(172, 16, 0, 0), 12),   // private
    (Ipv4Addr::new(192, 0, 0, 0), 24),    // IETF protocol assignments
    (Ipv4Addr::new(192, 0, 2, 0), 24),    // documentation (TEST-NET-1)
    (Ipv4Addr::new(192, 88, 99, 0), 24),  // 6to4 relay anycast
    (Ipv4Addr::new(192, 168, 0, 0), 16),  // private
    (Ipv4Addr::new(198, 18, 0, 0), 15),   // benchmarking
    (Ipv4Addr::new(198, 51, 100, 0), 24), // documentation (TEST-NET-2)
    (Ipv4Addr::new(203, 0, 113, 0), 24),  // documentation (TEST-NET-3)
    (Ipv4Addr::new(224, 0, 0, 0), 4),     // multicast
    (Ipv4Addr::new(240, 0, 0, 0), 4),     // reserved, broadcast 255.255.255.255
];

/// IPv6 networks that never receive webhooks: first address and prefix length.
const FORBIDDEN_V6: [(Ipv6Addr, u8); 9] = [
    (Ipv6Addr::UNSPECIFIED, 128),                         // ::
    (Ipv6Addr::LOCALHOST, 128),                           // ::1
    (Ipv6Addr::new(0xfc00, 0, 0, 0, 0, 0, 0, 0), 7), // unique local, AWS metadata fd00:ec2::254
    (Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 0), 10), // link-local
    (Ipv6Addr::new(0xfec0, 0, 0, 0, 0, 0, 0, 0), 10), // site-local (deprecated, still routed inside)
    (Ipv6Addr::new(0xff00, 0, 0, 0, 0, 0, 0, 0), 8),  // multicast
    (Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0), 32), // documentation
    (Ipv6Addr::new(0x100, 0, 0, 0, 0, 0, 0, 0), 64),  // discard-only
    (Ipv6Addr::new(0x64, 0xff9b, 1, 0, 0, 0, 0, 0), 48), // local-use NAT64: the operator's networks
];

/// IPv6 networks whose last 32 bits are an IPv4 address, judged by that address.
const EMBED_V4_LAST: [(Ipv6Addr, u8); 3] = [
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0xffff, 0, 0), 96), // IPv4-mapped ::ffff:a.b.c.d
    (Ipv6Addr::new(0, 0, 0, 0, 0, 0, 0, 0), 96),      // IPv4-compatible ::a.b.c.d
    (Ipv6Addr::new(0x64, 0xff9b, 0, 0, 0, 0, 0, 0), 96), // NAT64 64:ff9b::a.b.c.d
];

/// 6to4, `2002::/16`: the IPv4 address is bits 16 to 48.
const SIX_TO_FOUR: (Ipv6Addr, u8) = (Ipv6Addr::new(0x2002, 0, 0, 0, 0, 0, 0, 0), 16);

/// [`is_public`] for IPv4.
fn is_public_v4(ip: Ipv4Addr) -> bool {
    let bits = u32::from(ip);
    !FORBIDDEN_V4.iter().any(|&(net, len)| {
        let mask = u32::MAX.checked_shl(32 - u32::from(len)).unwrap_or(0);
        bits & mask == u32::from(net) & mask
    })
}

/// [`is_public`] for IPv6.
fn is_public_v6(ip: Ipv6Addr) -> bool {
    let bits = u128::from(ip);
    let within = |&(net, len): &(Ipv6Addr, u8)| {
        let mask = u128::MAX.checked_shl(128 - u32::from(len)).unwrap_or(0);
        bits & mask == u128::from(net) & mask
    };
    if FORBIDDEN_V6.iter().any(within) {
        false
    } else if EMBED_V4_LAST.iter().any(within) {
        is_public_v4(Ipv4Addr::from(bits as u32))
    } else if within(&SIX_TO_FOUR) {
        is_public_v4(Ipv4Addr::from((bits >> 80) as u32))
    } else {
        true
    }
}

/// The IP address a URL's host spells literally, or `None` for a DNS name. Refuses a host that
/// is neither, and a name ending in a number (another spelling of an IPv4 address).
fn literal_ip(host: &str) -> Result<Option<IpAddr>, TargetError> {
    if let Some(inner) = host.strip_prefix('[') {
        let inner = inner.strip_suffix(']').ok_or(TargetError::Invalid)?;
        let ip: Ipv6Addr = inner.parse().map_err(|_| TargetError::Invalid)?;
        return Ok(Some(IpAddr::V6(ip)));
    }
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(Some(IpAddr::V4(ip)));
    }
    let name = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_'));
    if !name || ends_in_number(host) {
        return Err(TargetError::Invalid);
    }
    Ok(None)
}

/// Whether a name's last label is a number (decimal, or hex after `0x`), as the WHATWG URL
/// standard puts it: resolvers read such a name as an IPv4 address.
fn ends_in_number(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host);
    let last = host.rsplit('.').next().unwrap_or(host);
    match last.strip_prefix("0x").or_else(|| last.strip_prefix("0X")) {
        Some(hex) => hex.bytes().all(|b| b.is_ascii_hexdigit()),
        None => !last.is_empty() && last.bytes().all(|b| b.is_ascii_digit()),
    }
}

/// Whether a name is `localhost` or under it, which always means loopback (RFC 6761).
fn is_localhost(host: &str) -> bool {
    let host = host.strip_suffix('.').unwrap_or(host).to_ascii_lowercase();
    host == "localhost" || host.ends_with(".localhost")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Production: public `https` targets only.
    const PRODUCTION: TargetPolicy = TargetPolicy {
        allow_private: false,
        require_https: true,
    };
    /// Public targets, `http` allowed.
    const PUBLIC: TargetPolicy = TargetPolicy {
        allow_private: false,
        require_https: false,
    };
    /// Development and tests: anything goes.
    const DEVELOPMENT: TargetPolicy = TargetPolicy {
        allow_private: true,
        require_https: false,
    };

    fn ip(text: &str) -> IpAddr {
        text.parse().expect("test address")
    }

    #[test]
    fn every_private_and_reserved_range_is_refused() {
        for addr in [
            "0.0.0.0",
            "0.255.1.2",
            "10.1.2.3",
            "100.64.0.1",
            "100.127.255.254",
            "127.0.0.1",
            "127.255.0.9",
            "169.254.169.254",
            "169.254.0.1",
            "172.16.0.1",
            "172.31.255.255",
            "192.0.0.8",
            "192.0.2.1",
            "192.88.99.1",
            "192.168.1.1",
            "198.18.0.1",
            "198.19.255.255",
            "198.51.100.7",
            "203.0.113.9",
            "224.0.0.1",
            "239.255.255.250",
            "240.0.0.1",
            "255.255.255.255",
            "::",
            "::1",
            "fc00::1",
            "fd00:ec2::254",
            "fe80::1",
            "febf::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "100::1",
            "64:ff9b:1::808:808",
        ] {
            assert!(!is_public(ip(addr)), "{addr} must not be public");
        }
    }

    #[test]
    fn ipv6_forms_embedding_ipv4_are_judged_by_the_ipv4_address() {
        for (addr, public) in [
            ("::ffff:127.0.0.1", false),
            ("::ffff:169.254.169.254", false),
            ("::ffff:8.8.8.8", true),
            ("::10.0.0.1", false),
            ("::8.8.8.8", true),
            ("64:ff9b::7f00:1", false),
            ("64:ff9b::a9fe:a9fe", false),
            ("64:ff9b::808:808", true),
            ("2002:7f00:1::", false),
            ("2002:c0a8:101::1", false),
            ("2002:808:808::1", true),
        ] {
            assert_eq!(is_public(ip(addr)), public, "{addr}");
        }
    }

    #[test]
    fn public_addresses_including_range_neighbours_are_allowed() {
        for addr in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "169.253.255.255",
            "172.15.255.255",
            "172.32.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700:4700::1111",
            "2001:4860:4860::8888",
        ] {
            assert!(is_public(ip(addr)), "{addr} must be public");
        }
    }

    #[test]
    fn public_http_and_https_urls_are_accepted() {
        let url = check_url("https://hooks.example.com/x?y=1", PRODUCTION).unwrap();
        assert_eq!(url.as_str(), "https://hooks.example.com/x?y=1");
        assert_eq!(
            (url.host(), url.port(), url.is_https()),
            ("hooks.example.com", 443, true)
        );

        let url = check_url("http://example.com:8080/", PUBLIC).unwrap();
        assert_eq!(
            (url.host(), url.port(), url.is_https()),
            ("example.com", 8080, false)
        );

        let url = check_url("http://[2606:4700:4700::1111]/", PUBLIC).unwrap();
        assert_eq!((url.host(), url.port()), ("2606:4700:4700::1111", 80));
    }

    #[test]
    fn unsafe_or_malformed_urls_are_refused() {
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_LEN));
        for (url, policy, error) in [
            ("ftp://example.com/", PUBLIC, TargetError::UnsupportedScheme),
            ("example.com/x", PUBLIC, TargetError::Invalid),
            ("not a url", PUBLIC, TargetError::Invalid),
            (&long, PUBLIC, TargetError::TooLong),
            (
                "http://example.com/",
                PRODUCTION,
                TargetError::HttpsRequired,
            ),
            (
                "http://user:pw@example.com/",
                PUBLIC,
                TargetError::Credentials,
            ),
            ("https://example.com/#frag", PUBLIC, TargetError::Fragment),
            ("http://127.0.0.1/", PUBLIC, TargetError::ForbiddenAddress),
            ("http://[::1]:8080/", PUBLIC, TargetError::ForbiddenAddress),
            (
                "http://[::ffff:10.0.0.1]/",
                PUBLIC,
                TargetError::ForbiddenAddress,
            ),
            (
                "http://169.254.169.254/latest/meta-data",
                PUBLIC,
                TargetError::ForbiddenAddress,
            ),
            ("http://localhost:9/", PUBLIC, TargetError::ForbiddenAddress),
            (
                "http://api.LOCALHOST./",
                PUBLIC,
                TargetError::ForbiddenAddress,
            ),
            ("http://2130706433/", PUBLIC, TargetError::Invalid),
            ("http://0x7f.1/", PUBLIC, TargetError::Invalid),
            ("http://127.1/", PUBLIC, TargetError::Invalid),
            ("http://exa%6dple.com/", PUBLIC, TargetError::Invalid),
            ("http://example.com:0/", PUBLIC, TargetError::Invalid),
            ("http://example.com:99999/", PUBLIC, TargetError::Invalid),
        ] {
            assert_eq!(check_url(url, policy), Err(error), "{url}");
        }
    }

    #[test]
    fn refusals_do_not_echo_the_url() {
        let error = check_url("http://169.254.169.254/latest/meta-data", PUBLIC).unwrap_err();
        let message = error.to_string();
        assert!(
            !message.contains("169.254") && !message.contains("meta-data"),
            "{message}"
        );
    }

    #[test]
    fn private_targets_are_accepted_when_allowed() {
        let url = check_url("http://127.0.0.1:9/", DEVELOPMENT).unwrap();
        assert_eq!((url.host(), url.port()), ("127.0.0.1", 9));
        assert!(check_url("http://localhost:9/", DEVELOPMENT).is_ok());
    }

    #[actix_rt::test]
    async fn localhost_resolves_to_loopback_when_private_targets_are_allowed() {
        let url = check_url("http://localhost:9/", DEVELOPMENT).unwrap();
        let addrs = resolve(&url, DEVELOPMENT).await.unwrap();
        assert!(!addrs.is_empty());
        for addr in addrs {
            assert!(addr.ip().is_loopback(), "{addr}");
            assert_eq!(addr.port(), 9);
        }
    }

    #[actix_rt::test]
    async fn a_name_resolving_to_loopback_is_refused_at_delivery() {
        let url = check_url("http://localhost:9/", DEVELOPMENT).unwrap();
        assert_eq!(
            resolve(&url, PUBLIC).await,
            Err(TargetError::ForbiddenAddress)
        );
    }

    #[actix_rt::test]
    async fn an_ip_literal_resolves_to_itself() {
        let url = check_url("http://127.0.0.1:5/", DEVELOPMENT).unwrap();
        assert_eq!(
            resolve(&url, DEVELOPMENT).await,
            Ok(vec![SocketAddr::from(([127, 0, 0, 1], 5))])
        );
        assert_eq!(
            resolve(&url, PUBLIC).await,
            Err(TargetError::ForbiddenAddress)
        );
    }
}
