//! Callbacks go to URLs a client chose, so they must not reach inside: [`PublicOnly`] is a
//! `reqwest` DNS resolver that keeps only public addresses of a name, and [`is_public`] is the
//! test, also applied to IP-literal hosts (which `reqwest` never passes to a resolver).
//!
//! The check runs when the connection is made, on the very addresses it connects to, so a name
//! that resolves differently between a check and the connect (DNS rebinding) cannot slip
//! through. Refused: loopback, private (RFC 1918), link-local (169.254/16, including the
//! 169.254.169.254 metadata endpoint; fe80::/10), CGNAT 100.64/10, 0/8 and the unspecified
//! addresses, broadcast, multicast, documentation and benchmarking ranges, reserved 240/4,
//! unique-local fc00::/7, site-local fec0::/10, the IETF special block 2001::/23, discard
//! 100::/64, and IPv6 forms that embed an IPv4 address (mapped, compatible, NAT64 64:ff9b::/96,
//! 6to4 2002::/16) whenever the embedded address is refused.

use std::error::Error;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Whether `ip` is a public unicast address a callback may connect to.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => is_public_v4(v4),
        IpAddr::V6(v6) => match embedded_v4(v6) {
            Some(v4) => is_public_v4(v4),
            None => is_public_v6(v6),
        },
    }
}

fn is_public_v4(ip: Ipv4Addr) -> bool {
    let [a, b, c, _] = ip.octets();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_private()
        || ip.is_link_local()
        || ip.is_broadcast()
        || ip.is_multicast()
        || ip.is_documentation()
        || a == 0
        || (a == 100 && (b & 0xc0) == 64)
        || (a == 192 && b == 0 && c == 0)
        || (a == 198 && (b & 0xfe) == 18)
        || a >= 240)
}

fn is_public_v6(ip: Ipv6Addr) -> bool {
    let s = ip.segments();
    !(ip.is_unspecified()
        || ip.is_loopback()
        || ip.is_multicast()
        || ip.is_unique_local()
        || ip.is_unicast_link_local()
        || (s[0] & 0xffc0) == 0xfec0
        || (s[0] == 0x2001 && s[1] < 0x0200)
        || (s[0] == 0x2001 && s[1] == 0x0db8)
        || (s[0] == 0x0100 && s[1] == 0 && s[2] == 0 && s[3] == 0))
}

/// The IPv4 address inside an IPv4-mapped, IPv4-compatible, NAT64 or 6to4 address.
fn embedded_v4(ip: Ipv6Addr) -> Option<Ipv4Addr> {
    let s = ip.segments();
    let v4 = |hi: u16, lo: u16| Ipv4Addr::from((u32::from(hi) << 16) | u32::from(lo));
    if let Some(v4) = ip.to_ipv4_mapped() {
        return Some(v4);
    }
    match s {
        // ::a.b.c.d (deprecated "compatible"); :: and ::1 are classified as IPv6.
        [0, 0, 0, 0, 0, 0, hi, lo] if hi != 0 => Some(v4(hi, lo)),
        [0x64, 0xff9b, 0, 0, 0, 0, hi, lo] => Some(v4(hi, lo)),
        [0x2002, hi, lo, ..] => Some(v4(hi, lo)),
        _ => None,
    }
}

/// A name whose addresses are all refused.
#[derive(Debug)]
pub struct NotPublic {
    /// The name.
    pub host: String,
    /// What it resolved to.
    pub addrs: Vec<IpAddr>,
}

impl fmt::Display for NotPublic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} resolves to no public address ({:?}); callbacks only go to public addresses",
            self.host, self.addrs
        )
    }
}

impl Error for NotPublic {}

/// Wraps a resolver and drops every address that is not [`is_public`]; a name left with none
/// fails to resolve with [`NotPublic`].
pub struct PublicOnly<R>(pub R);

impl<R: Resolve> Resolve for PublicOnly<R> {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        let resolving = self.0.resolve(name);
        Box::pin(async move {
            let all: Vec<SocketAddr> = resolving.await?.collect();
            let public: Vec<SocketAddr> =
                all.iter().copied().filter(|a| is_public(a.ip())).collect();
            if public.is_empty() {
                let addrs = all.iter().map(SocketAddr::ip).collect();
                return Err(Box::new(NotPublic { host, addrs }) as _);
            }
            Ok(Box::new(public.into_iter()) as Addrs)
        })
    }
}

/// The operating system's resolver (`getaddrinfo`, through tokio).
pub struct SystemResolver;

impl Resolve for SystemResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let host = name.as_str().to_owned();
        Box::pin(async move {
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;
    use std::str::FromStr;

    use super::*;

    #[test]
    fn only_public_unicast_addresses_are_public() {
        let refused = [
            "127.0.0.1",
            "127.5.6.7",
            "10.0.0.5",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "100.127.255.254",
            "0.0.0.0",
            "0.1.2.3",
            "255.255.255.255",
            "224.0.0.1",
            "192.0.2.1",
            "198.51.100.1",
            "203.0.113.1",
            "198.18.0.1",
            "192.0.0.8",
            "240.0.0.1",
            "::",
            "::1",
            "fe80::1",
            "fc00::1",
            "fd12:3456::1",
            "fec0::1",
            "ff02::1",
            "2001:db8::1",
            "2001::1",
            "100::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.5",
            "::ffff:169.254.169.254",
            "::10.0.0.5",
            "64:ff9b::a00:5",
            "2002:a00:5::1",
        ];
        for ip in refused {
            assert!(!is_public(ip.parse().unwrap()), "{ip} must be refused");
        }
        let public = [
            "93.184.216.34",
            "8.8.8.8",
            "100.128.0.1",
            "172.32.0.1",
            "2606:4700::1111",
            "2a00:1450:4001::1",
            "::ffff:93.184.216.34",
            "64:ff9b::808:808",
        ];
        for ip in public {
            assert!(is_public(ip.parse().unwrap()), "{ip} must be allowed");
        }
    }

    /// Names to fixed addresses.
    struct Map(HashMap<&'static str, Vec<IpAddr>>);

    impl Resolve for Map {
        fn resolve(&self, name: Name) -> Resolving {
            let addrs = self.0.get(name.as_str()).cloned().unwrap_or_default();
            Box::pin(async move {
                Ok(Box::new(addrs.into_iter().map(|ip| SocketAddr::new(ip, 0))) as Addrs)
            })
        }
    }

    async fn resolve(r: &impl Resolve, host: &str) -> Result<Vec<IpAddr>, String> {
        match r.resolve(Name::from_str(host).unwrap()).await {
            Ok(addrs) => Ok(addrs.map(|a| a.ip()).collect()),
            Err(e) => Err(e.to_string()),
        }
    }

    #[tokio::test]
    async fn private_answers_are_dropped_and_a_name_with_only_those_fails() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        let r = PublicOnly(Map(HashMap::from([
            ("inside.example", vec![ip("10.0.0.5")]),
            ("metadata.example", vec![ip("169.254.169.254")]),
            ("mixed.example", vec![ip("127.0.0.1"), ip("93.184.216.34")]),
        ])));
        let e = resolve(&r, "inside.example").await.unwrap_err();
        assert!(
            e.contains("no public address") && e.contains("10.0.0.5"),
            "{e}"
        );
        assert!(resolve(&r, "metadata.example").await.is_err());
        assert_eq!(
            resolve(&r, "mixed.example").await.unwrap(),
            [ip("93.184.216.34")]
        );
    }
}
