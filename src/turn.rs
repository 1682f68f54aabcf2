//! `raum turn`: a TURN server (RFC 8656) for participants whose network lets only TCP,
//! or only TLS on 443, out. It relays only to SFU media addresses: each credential
//! (issued by the SFU at `welcome`, [`crate::turn_credentials`]) names the one
//! address its allocations may reach. It logs nothing personal: no client address,
//! no username; counts only.
//!
//! The relay itself is [`crate::relay`] (standalone mode runs it too); this is its
//! command line, its listeners and its metrics.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Args as ClapArgs;
use tokio::sync::Notify;
use tracing::info;

use crate::relay::policy::{Limits, Policy};
use crate::relay::{self, Counters};
use crate::turn_credentials::TurnSecret;

/// The environment variable with the shared secret (what the chart sets from a
/// Secret; a pod has no volumes to read a file from).
pub const ENV_SECRET: &str = "RAUM_TURN_SECRET";

/// Flags of `raum turn`.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// TURN over UDP.
    #[arg(long, default_value = "0.0.0.0:3478", value_name = "ADDR")]
    pub listen_udp: SocketAddr,

    /// TURN over TCP.
    #[arg(long, default_value = "0.0.0.0:3478", value_name = "ADDR")]
    pub listen_tcp: SocketAddr,

    /// TURN over TLS (for networks that allow only TCP 443), with --tls-cert and
    /// --tls-key.
    #[arg(long, value_name = "ADDR", requires_all = ["tls_cert", "tls_key"])]
    pub listen_tls: Option<SocketAddr>,

    /// The TLS certificate chain (PEM).
    #[arg(long, value_name = "FILE", requires = "listen_tls")]
    pub tls_cert: Option<PathBuf>,

    /// The TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "listen_tls")]
    pub tls_key: Option<PathBuf>,

    /// The address relayed sockets are bound to: one the SFUs can be reached from.
    /// Default: the UDP listen address, when it is not 0.0.0.0.
    #[arg(long, value_name = "IP")]
    pub relay_ip: Option<IpAddr>,

    /// The public address a 1:1 NAT maps --relay-ip to (a cloud VM's public IP):
    /// clients are told their relayed address with it, and an SFU advertising it is
    /// reached at --relay-ip. Default: --relay-ip as it is.
    #[arg(long, value_name = "IP", requires = "relay_ip")]
    pub public_ip: Option<IpAddr>,

    /// The secret shared with the SFUs (at least 16 bytes).
    #[arg(long, env = ENV_SECRET, hide_env_values = true)]
    pub secret: String,

    /// The TURN realm.
    #[arg(long, default_value = "raum")]
    pub realm: String,

    /// Where /healthz and /metrics are served.
    #[arg(long, default_value = "0.0.0.0:9090", value_name = "ADDR")]
    pub metrics_listen: SocketAddr,

    /// Allocations one credential (one participant) may hold at once.
    #[arg(long, default_value_t = Limits::default().allocations_per_credential)]
    pub max_allocations_per_credential: usize,

    /// Allocations the server holds at once.
    #[arg(long, default_value_t = Limits::default().allocations)]
    pub max_allocations: usize,

    /// A network SFU media addresses are in (the nodes' or load balancers'
    /// addresses); repeatable. A credential naming an address outside every one is
    /// refused, so even someone holding the secret cannot aim the relay elsewhere.
    /// Default: none (the credential alone decides).
    #[arg(long = "sfu-network", value_name = "CIDR")]
    pub sfu_networks: Vec<ipnet::IpNet>,

    /// The ports SFU media addresses may have, `LOW-HIGH` (the cluster's NodePort
    /// range, 30000-32767 by default on Kubernetes). A credential naming another port
    /// is refused. Default: any.
    #[arg(long, value_name = "LOW-HIGH", value_parser = parse_port_range)]
    pub sfu_ports: Option<(u16, u16)>,

    /// What one allocation may relay, in kbit/s.
    #[arg(long, default_value_t = Limits::default().bytes_per_second * 8 / 1000)]
    pub max_kbps_per_allocation: u64,
}

/// `LOW-HIGH`, both ports, LOW at most HIGH.
fn parse_port_range(s: &str) -> Result<(u16, u16), String> {
    let bad = || format!("{s:?} is not a port range LOW-HIGH (1-65535, LOW at most HIGH)");
    let (low, high) = s.split_once('-').ok_or_else(bad)?;
    let (low, high): (u16, u16) = (
        low.parse().map_err(|_| bad())?,
        high.parse().map_err(|_| bad())?,
    );
    if low == 0 || low > high {
        return Err(bad());
    }
    Ok((low, high))
}

/// Why the TURN server cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The secret is too short to be one.
    #[error("the TURN secret must be at least 16 bytes (from --secret or {ENV_SECRET})")]
    ShortSecret,
    /// The public address is of another family than the relayed sockets'.
    #[error("--public-ip and --relay-ip must both be IPv4 or both IPv6")]
    PublicIpFamily,
    /// No address to bind relayed sockets to.
    #[error("--relay-ip is required when --listen-udp is {0}")]
    NoRelayIp(IpAddr),
    /// The relay cannot start.
    #[error(transparent)]
    Relay(#[from] relay::Error),
    /// The metrics port cannot be bound.
    #[error("cannot bind the metrics port {addr}: {source}")]
    Metrics {
        /// Where.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// Runs `raum turn` until SIGTERM or Ctrl-C.
pub async fn run(args: Args) -> Result<(), Error> {
    if args.secret.len() < 16 {
        return Err(Error::ShortSecret);
    }
    let relay_ip = match args.relay_ip {
        Some(ip) => ip,
        None if !args.listen_udp.ip().is_unspecified() => args.listen_udp.ip(),
        None => return Err(Error::NoRelayIp(args.listen_udp.ip())),
    };
    let public_ip = args.public_ip.unwrap_or(relay_ip);
    if public_ip.is_ipv4() != relay_ip.is_ipv4() {
        return Err(Error::PublicIpFamily);
    }
    let relay_ip = relay::RelayAddress {
        local: relay_ip,
        public: public_ip,
    };
    let tls = match (&args.listen_tls, &args.tls_cert, &args.tls_key) {
        (Some(a), Some(c), Some(k)) => Some((*a, relay::tls_config(c, k)?)),
        _ => None,
    };
    let listeners = relay::bind(Some(args.listen_udp), Some(args.listen_tcp), tls).await?;
    let metrics = tokio::net::TcpListener::bind(args.metrics_listen)
        .await
        .map_err(|source| Error::Metrics {
            addr: args.metrics_listen,
            source,
        })?;
    let limits = Limits {
        allocations_per_credential: args.max_allocations_per_credential,
        allocations: args.max_allocations,
        bytes_per_second: args.max_kbps_per_allocation * 1000 / 8,
        sfu_networks: args.sfu_networks.clone(),
        sfu_ports: args.sfu_ports,
        ..Limits::default()
    };
    let policy = Policy::new(TurnSecret::from_bytes(args.secret.as_bytes()), limits);
    info!(
        udp = %args.listen_udp,
        tcp = %args.listen_tcp,
        tls = ?args.listen_tls,
        relay_ip = %relay_ip.local,
        public_ip = %relay_ip.public,
        "TURN server listening"
    );
    let stop = Arc::new(Notify::new());
    let (counters, task) = relay::start(
        listeners,
        relay_ip,
        policy,
        args.realm.clone(),
        stop.clone(),
    );
    let app = metrics_router(counters);
    let server = tokio::spawn(async move {
        let _ = axum::serve(metrics, app).await;
    });
    crate::shutdown::signal().await;
    info!("stopping");
    stop.notify_one();
    let _ = tokio::time::timeout(Duration::from_secs(2), task).await;
    server.abort();
    Ok(())
}

/// `/healthz` and `/metrics` (counts only).
fn metrics_router(counters: tokio::sync::watch::Receiver<Counters>) -> axum::Router {
    use axum::routing::get;
    axum::Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route(
            "/metrics",
            get(move || {
                let c = *counters.borrow();
                async move { metrics_text(&c) }
            }),
        )
}

/// The counters in Prometheus' text format.
pub fn metrics_text(c: &Counters) -> String {
    use prometheus_client::encoding::text::encode;
    use prometheus_client::metrics::counter::ConstCounter;
    use prometheus_client::metrics::gauge::ConstGauge;
    use prometheus_client::registry::Registry;
    let mut registry = Registry::with_prefix("raum_turn");
    registry.register(
        "allocations",
        "Allocations now",
        ConstGauge::new(c.allocations as i64),
    );
    registry.register(
        "engine_users",
        "Credentials the protocol engines hold (each proved its password)",
        ConstGauge::new(c.engine_users as i64),
    );
    for (name, help, v) in [
        (
            "malformed",
            "Messages from clients dropped unread (not TURN, too large, malformed)",
            c.malformed,
        ),
        (
            "refused",
            "Requests refused (credential, peer that is not an SFU, quota)",
            c.refused,
        ),
        (
            "flood_dropped",
            "Allocate requests dropped by the per-address limit",
            c.flood_dropped,
        ),
        (
            "relay_dropped",
            "Relayed datagrams dropped (not the SFU, over bandwidth, full queue)",
            c.relay_dropped,
        ),
        ("relayed", "Datagrams relayed", c.relayed),
    ] {
        registry.register(name, help, ConstCounter::new(v));
    }
    let mut out = String::new();
    let _ = encode(&mut out, &registry);
    out
}
