//! Which IP address an access comes from, for the access log.
//!
//! The socket peer, unless the peer is a trusted proxy (an Ingress controller, a load
//! balancer): then the address that proxy reports in `X-Forwarded-For`. The header is
//! read from the right, skipping further trusted proxies; the first address that is not
//! trusted is the client. Anything a client wrote itself further left is ignored, so a
//! client cannot choose the address logged for it.

use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// The trusted proxies: CIDRs such as `10.0.0.0/8` or single addresses.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

/// A trusted-proxy entry that is neither a CIDR nor an address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("trusted proxy {0:?} is neither a CIDR (10.0.0.0/8) nor an IP address")]
pub struct BadProxy(pub String);

impl FromStr for TrustedProxies {
    type Err = BadProxy;

    /// Comma-separated CIDRs or addresses; empty means none.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| {
                p.parse::<IpNet>()
                    .or_else(|_| p.parse::<IpAddr>().map(IpNet::from))
                    .map_err(|_| BadProxy(p.to_owned()))
            })
            .collect::<Result<Vec<_>, _>>()
            .map(TrustedProxies)
    }
}

impl TrustedProxies {
    /// Whether `ip` is a trusted proxy (IPv4-mapped IPv6 addresses count as IPv4).
    pub fn trusts(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }

    /// The client's address for a request from `peer` with these `X-Forwarded-For`
    /// header values (in the order they appear).
    pub fn client_ip<'a>(
        &self,
        peer: IpAddr,
        forwarded_for: impl IntoIterator<Item = &'a str>,
    ) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let hops: Vec<&str> = forwarded_for
            .into_iter()
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .collect();
        let mut client = peer;
        for hop in hops.iter().rev() {
            // An unparseable hop means the chain cannot be followed further: the last
            // address we could trust to have seen the client is the answer.
            let Ok(ip) = hop.parse::<IpAddr>().map(canonical) else {
                break;
            };
            client = ip;
            if !self.trusts(ip) {
                break;
            }
        }
        client
    }
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_client_whatever_it_claims() {
        let t: TrustedProxies = "10.0.0.0/8".parse().unwrap();
        assert_eq!(
            t.client_ip(ip("203.0.113.7"), ["198.51.100.1"]),
            ip("203.0.113.7")
        );
        assert_eq!(
            TrustedProxies::default().client_ip(ip("10.1.2.3"), ["198.51.100.1"]),
            ip("10.1.2.3")
        );
    }

    #[test]
    fn behind_trusted_proxies_the_rightmost_untrusted_hop_is_the_client() {
        let t: TrustedProxies = "10.0.0.0/8, 192.0.2.10".parse().unwrap();
        // Client -> LB (192.0.2.10) -> ingress (10.0.0.5) -> gateway.
        assert_eq!(
            t.client_ip(ip("10.0.0.5"), ["203.0.113.7, 192.0.2.10"]),
            ip("203.0.113.7")
        );
        // A client that forges an address in front gets its real one logged.
        assert_eq!(
            t.client_ip(ip("10.0.0.5"), ["1.2.3.4, 203.0.113.7"]),
            ip("203.0.113.7")
        );
        // Several header lines count as one list.
        assert_eq!(
            t.client_ip(ip("10.0.0.5"), ["1.2.3.4", "203.0.113.7, 10.9.9.9"]),
            ip("203.0.113.7")
        );
        // No header: the proxy itself.
        assert_eq!(t.client_ip(ip("10.0.0.5"), []), ip("10.0.0.5"));
        // Garbage stops the walk at the last trusted hop.
        assert_eq!(
            t.client_ip(ip("10.0.0.5"), ["203.0.113.7, unknown"]),
            ip("10.0.0.5")
        );
        // IPv6 and IPv4-mapped peers.
        assert_eq!(
            t.client_ip(ip("::ffff:10.0.0.5"), ["2001:db8::7"]),
            ip("2001:db8::7")
        );
        assert_eq!(
            t.client_ip(ip("10.0.0.5"), ["::ffff:203.0.113.9"]),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn bad_entries_are_named() {
        assert_eq!(
            "10.0.0.0/8, nonsense".parse::<TrustedProxies>(),
            Err(BadProxy("nonsense".into()))
        );
        assert_eq!("".parse::<TrustedProxies>(), Ok(TrustedProxies::default()));
        assert!("10.0.0.0/33".parse::<TrustedProxies>().is_err());
    }
}
