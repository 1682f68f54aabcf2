//! The TURN relay (RFC 8656) as `raum turn` and standalone mode run it: raum's
//! [`policy`] in front of `turn-server-proto`'s sans-IO engines, driven by
//! [`driver`]. It relays only to SFU media addresses (each credential names the one
//! its allocations may reach) and logs nothing personal: no client address, no
//! username; counts only.
//!
//! - [`policy`]: pure decisions: credentials, where to, quotas and bandwidth;
//! - [`wire`]: message kinds, the requests the policy reads, refusals, TCP framing;
//! - [`driver`]: the tokio driver: listeners, relayed sockets, connections.

pub mod driver;
pub mod policy;
pub mod wire;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use tokio::sync::Notify;

use driver::Relay;
pub use driver::{Counters, Listeners};
use policy::Policy;

/// Why the relay cannot start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A port cannot be bound.
    #[error("cannot bind {what} {addr}: {source}")]
    Bind {
        /// Which.
        what: &'static str,
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The certificate or key cannot be used.
    #[error("cannot use the TLS certificate and key: {0}")]
    Tls(String),
}

/// The TLS configuration from PEM files.
pub fn tls_config(
    cert: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<rustls::ServerConfig>, Error> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let name = |p: &std::path::Path| p.display().to_string();
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .map_err(|e| Error::Tls(format!("{}: {e}", name(cert))))?
        .collect::<Result<_, _>>()
        .map_err(|e| Error::Tls(format!("{}: {e}", name(cert))))?;
    if certs.is_empty() {
        return Err(Error::Tls(format!("{}: no certificate in it", name(cert))));
    }
    let key =
        PrivateKeyDer::from_pem_file(key).map_err(|e| Error::Tls(format!("{}: {e}", name(key))))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| Error::Tls(e.to_string()))?;
    Ok(Arc::new(config))
}

/// The listeners, bound.
pub async fn bind(
    udp: Option<SocketAddr>,
    tcp: Option<SocketAddr>,
    tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
) -> Result<Listeners, Error> {
    let bind_err = |what, addr| move |source| Error::Bind { what, addr, source };
    let udp = match udp {
        Some(a) => Some(
            tokio::net::UdpSocket::bind(a)
                .await
                .map_err(bind_err("the TURN UDP port", a))?,
        ),
        None => None,
    };
    let tcp = match tcp {
        Some(a) => Some(
            tokio::net::TcpListener::bind(a)
                .await
                .map_err(bind_err("the TURN TCP port", a))?,
        ),
        None => None,
    };
    let tls = match tls {
        Some((a, config)) => Some((
            tokio::net::TcpListener::bind(a)
                .await
                .map_err(bind_err("the TURN TLS port", a))?,
            config,
        )),
        None => None,
    };
    Ok(Listeners { udp, tcp, tls })
}

/// Where a relay's allocated sockets are, and what clients are told they are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RelayAddress {
    /// The local address relayed sockets are bound to.
    pub local: IpAddr,
    /// The address clients are told (XOR-RELAYED-ADDRESS): `local`, or the public
    /// address a 1:1 NAT maps it to. An SFU address equal to it is on this host
    /// behind the same NAT, so the relay reaches it at `local` (the NAT would not
    /// carry a packet from the host back to itself).
    pub public: IpAddr,
}

impl RelayAddress {
    /// Relayed sockets on `ip`, told as they are.
    pub fn at(ip: IpAddr) -> Self {
        Self {
            local: ip,
            public: ip,
        }
    }

    /// Where the relay sends what is for `sfu`.
    pub fn reach(&self, sfu: SocketAddr) -> SocketAddr {
        if sfu.ip() == self.public {
            SocketAddr::new(self.local, sfu.port())
        } else {
            sfu
        }
    }
}

/// Starts a relay (also what standalone mode runs in its own process). Returns its
/// counters, updated every second, and its task.
pub fn start(
    listeners: Listeners,
    relay_ip: RelayAddress,
    policy: Policy,
    realm: String,
    stop: Arc<Notify>,
) -> (
    tokio::sync::watch::Receiver<Counters>,
    tokio::task::JoinHandle<()>,
) {
    let (relay, inputs) = Relay::start(listeners, relay_ip, policy, realm);
    let (tx, rx) = tokio::sync::watch::channel(Counters::default());
    let task = tokio::spawn(relay.run(inputs, stop, tx));
    (rx, task)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_sfu_behind_the_relays_own_nat_is_reached_at_the_local_address() {
        let nat = RelayAddress {
            local: "10.0.0.5".parse().unwrap(),
            public: "203.0.113.7".parse().unwrap(),
        };
        let here: SocketAddr = "203.0.113.7:40000".parse().unwrap();
        assert_eq!(
            nat.reach(here),
            "10.0.0.5:40000".parse::<SocketAddr>().unwrap()
        );
        let elsewhere: SocketAddr = "203.0.113.8:40000".parse().unwrap();
        assert_eq!(nat.reach(elsewhere), elsewhere);
        let plain = RelayAddress::at("10.0.0.5".parse().unwrap());
        assert_eq!(plain.reach(here), here);
    }
}
