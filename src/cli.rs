//! The command line: `raum <subcommand>`. One binary, one image; each subcommand is one
//! component of raum (see docs/architecture.md).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

/// raum: privacy-first video conferences on your own Kubernetes cluster.
#[derive(Debug, Parser)]
#[command(name = "raum", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// How process logs are written (to stderr). The filter comes from RAUM_LOG.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "RAUM_LOG_FORMAT"
    )]
    pub log_format: LogFormat,

    /// The component to run.
    #[command(subcommand)]
    pub command: Command,
}

/// raum's components.
// Parsed once at start-up; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Reconcile Meeting and RetentionPolicy objects (runs as a Deployment with leader
    /// election).
    Operator(OperatorArgs),
    /// Serve join URLs and the web client, proxy signaling to each meeting's SFU and
    /// write the shared access log.
    Gateway(GatewayArgs),
    /// The WebRTC SFU of one meeting (runs in the meeting's ephemeral pod).
    Sfu(SfuArgs),
    /// One pruning run of the shared access log, honouring holds (runs in the
    /// RetentionPolicy's CronJob).
    Prune(PruneArgs),
    /// Benchmark running SFUs with synthetic WebRTC participants (see
    /// docs/benchmarks.md).
    Loadtest(LoadtestArgs),
    /// Print the CustomResourceDefinitions generated from raum's Rust types.
    Crd(CrdArgs),
    /// Gateway, SFU rooms, access log and daily pruning in one process, with meetings
    /// from YAML files; no Kubernetes needed.
    Standalone(StandaloneArgs),
}

/// What `raum gateway` and `raum standalone` share: how the web front end behaves.
#[derive(Debug, Args)]
pub struct WebArgs {
    /// The directory the access log is written to (shared with the pruning Job).
    #[arg(long, env = "RAUM_ACCESS_LOG_DIR", value_name = "DIR")]
    pub access_log_dir: Option<PathBuf>,

    /// This instance's name in access-log file names (letters, digits, - and _).
    /// Default: the pod name or host name.
    #[arg(long, env = "POD_NAME", value_name = "NAME")]
    pub instance: Option<String>,

    /// Believe X-Forwarded-For only from these proxies (CIDRs or addresses,
    /// comma-separated or repeated). Default: nobody.
    #[arg(long = "trusted-proxy", value_name = "CIDR", value_delimiter = ',')]
    pub trusted_proxies: Vec<String>,

    /// How many days access-log entries are kept, as the privacy notice states it (keep
    /// it equal to the RetentionPolicy's maxAge).
    #[arg(long, default_value_t = 56, value_name = "DAYS")]
    pub retention_days: u32,

    /// A directory with privacy.en.html and/or privacy.de.html: the privacy notice's
    /// own wording (HTML fragments) instead of the built-in one.
    #[arg(long, value_name = "DIR")]
    pub privacy_notice_dir: Option<PathBuf>,

    /// Access-log entries are made durable at least this often.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub flush_interval: std::time::Duration,
}

/// Flags of `raum gateway`.
#[derive(Debug, Args)]
pub struct GatewayArgs {
    /// How to reach the API server.
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// The public base URL participants use (as given to the operator); WebSocket
    /// connections from pages of any other origin are refused.
    #[arg(long, env = "RAUM_PUBLIC_URL", value_name = "URL")]
    pub public_url: String,

    /// Where the gateway listens.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,

    /// Watch Meetings in this namespace only; repeat for several. Default: all.
    #[arg(long = "namespace", value_name = "NAMESPACE")]
    pub namespaces: Vec<String>,

    /// The web front end.
    #[command(flatten)]
    pub web: WebArgs,
}

/// Flags of `raum standalone`.
#[derive(Debug, Args)]
pub struct StandaloneArgs {
    /// Where meetings (Meeting YAML files) and an optional RetentionPolicy YAML live;
    /// files added, changed or removed while running are picked up.
    #[arg(long, default_value = "raum-data/meetings", value_name = "DIR")]
    pub meetings_dir: PathBuf,

    /// The file holding the key join tokens are derived from (created if missing).
    #[arg(long, default_value = "raum-data/url-key", value_name = "FILE")]
    pub key_file: PathBuf,

    /// Where the gateway listens.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,

    /// The public base URL of join links. Default: http://<listen address>.
    #[arg(long, value_name = "URL")]
    pub public_url: Option<String>,

    /// The address browsers send media to (the meeting rooms' UDP ports). Default:
    /// the listen address when it is a specific one.
    #[arg(long, value_name = "IP")]
    pub advertise_ip: Option<std::net::IpAddr>,

    /// How often the meetings directory is read again.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub rescan_interval: std::time::Duration,

    /// How long a meeting with neither endsAt nor duration lasts.
    #[arg(long, default_value = "8h", value_parser = humantime::parse_duration)]
    pub default_length: std::time::Duration,

    /// Create (or renew) a meeting called "demo" and print its URL.
    #[arg(long)]
    pub demo: bool,

    /// The web front end. The access log goes to raum-data/access-log unless given.
    #[command(flatten)]
    pub web: WebArgs,
}

/// Flags of the subcommands that talk to the Kubernetes API server.
#[derive(Debug, Args)]
pub struct ClusterArgs {
    /// The kubeconfig to use. Without it: $KUBECONFIG, then the in-cluster service
    /// account, then ~/.kube/config.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
}

/// How the SFU's UDP media port is reachable from participants.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
#[value(rename_all = "camelCase")]
pub enum MediaExposure {
    /// A NodePort Service: the SFU advertises the node's (or the given) IP and the
    /// allocated node port.
    NodePort,
    /// A ClusterIP Service only: media reaches the SFU through a TURN relay or, in
    /// tests, directly.
    #[value(name = "clusterIP")]
    ClusterIp,
}

/// Flags of `raum operator`.
#[derive(Debug, Args)]
pub struct OperatorArgs {
    /// How to reach the API server.
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// The gateway's public base URL; join URLs are this plus /j/<token>.
    #[arg(long, env = "RAUM_PUBLIC_URL", value_name = "URL")]
    pub public_url: String,

    /// Watch Meetings in this namespace only; repeat for several. Default: all.
    #[arg(long = "namespace", value_name = "NAMESPACE")]
    pub namespaces: Vec<String>,

    /// The raum image, run by the SFU pods (`raum sfu`) and the pruning Jobs
    /// (`raum prune`).
    #[arg(long, env = "RAUM_IMAGE", default_value = concat!("ghcr.io/raum-dev/raum:", env!("CARGO_PKG_VERSION")))]
    pub image: String,

    /// How long before a meeting's start its SFU pod is created.
    #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
    pub warm_up: std::time::Duration,

    /// How long a meeting with neither endsAt nor duration lasts.
    #[arg(long, default_value = "8h", value_parser = humantime::parse_duration)]
    pub default_length: std::time::Duration,

    /// How the SFU's UDP media port is exposed.
    #[arg(long, value_enum, default_value = "nodePort")]
    pub media_exposure: MediaExposure,

    /// The IP address the SFU advertises in its ICE candidates (a load balancer's or a
    /// node's public address); repeat for several. Default: the IP of the node the SFU
    /// pod runs on.
    #[arg(long = "advertise-ip", value_name = "IP")]
    pub advertise_ips: Vec<std::net::IpAddr>,

    /// Where /metrics, /healthz and /readyz are served.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    pub metrics_addr: std::net::SocketAddr,

    /// Give each SFU pod a NetworkPolicy: signaling only from the gateway and operator
    /// pods of the operator's namespace, media from anywhere.
    #[arg(long)]
    pub network_policies: bool,

    /// The operator's own namespace: it holds the leader-election Lease and the
    /// Secret with the join-URL key.
    #[arg(long, env = "POD_NAMESPACE", default_value = "raum-system")]
    pub operator_namespace: String,

    /// This replica's name in leader election and events.
    #[arg(long, env = "POD_NAME")]
    pub identity: Option<String>,

    /// The Secret (in the operator's namespace) holding the key join tokens are derived
    /// from. Created with a random key if missing. Changing the key changes every URL.
    #[arg(long, default_value = "raum-url-key")]
    pub url_key_secret: String,
}

/// Flags of `raum sfu`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("token_source").required(true).args(["token", "token_sha256"])))]
pub struct SfuArgs {
    /// Where signaling (/ws), /healthz, /readyz, /status and /metrics are served.
    #[arg(long, default_value = "0.0.0.0:8080", value_name = "ADDR")]
    pub listen: std::net::SocketAddr,

    /// The one UDP port every participant's media uses.
    #[arg(long, default_value_t = 50000)]
    pub media_port: u16,

    /// The address the media port is bound to.
    #[arg(long, default_value = "0.0.0.0", value_name = "IP")]
    pub media_bind: std::net::IpAddr,

    /// The IP participants reach the media port at (a node's or load balancer's public
    /// address; NAT 1:1). Repeatable; the first is used for now. Default: the bind
    /// address, when it is not 0.0.0.0.
    #[arg(
        long = "advertise-ip",
        env = "RAUM_ADVERTISE_IP",
        value_name = "IP",
        value_delimiter = ','
    )]
    pub advertise_ips: Vec<std::net::IpAddr>,

    /// The port participants reach the media port at (e.g. a NodePort). Default: the
    /// media port.
    #[arg(long)]
    pub advertise_port: Option<u16>,

    /// The most participants at once; one more is told the meeting is full.
    #[arg(long, default_value_t = crate::api::meeting::DEFAULT_MAX_PARTICIPANTS)]
    pub max_participants: u32,

    /// The highest video bitrate a participant may send, in kbit/s (announced as
    /// `b=AS` in the SDP answer, which browsers honour).
    #[arg(long, default_value_t = crate::api::meeting::DEFAULT_MAX_VIDEO_BITRATE_KBPS)]
    pub max_video_bitrate_kbps: u32,

    /// Switch audio off: no participant's audio is forwarded.
    #[arg(long)]
    pub no_audio: bool,

    /// Switch video off: no participant's video is forwarded.
    #[arg(long)]
    pub no_video: bool,

    /// Switch the chat off.
    #[arg(long)]
    pub no_chat: bool,

    /// The meeting's join token.
    #[arg(long, env = "RAUM_TOKEN", hide_env_values = true)]
    pub token: Option<String>,

    /// The hex SHA-256 of the meeting's join token (what the operator gives the pod, so
    /// the pod spec does not hold the token).
    #[arg(long, env = "RAUM_TOKEN_SHA256", conflicts_with = "token")]
    pub token_sha256: Option<String>,

    /// A participant whose media has not connected this long after joining is dropped.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub ice_timeout: std::time::Duration,
}

/// Flags of `raum loadtest`.
#[derive(Debug, Args)]
pub struct LoadtestArgs {
    /// A running SFU's HTTP address (http://HOST:PORT), one meeting each; repeatable.
    #[arg(long, required = true, value_name = "URL")]
    pub target: Vec<String>,

    /// The meetings' join token.
    #[arg(long, env = "RAUM_TOKEN", hide_env_values = true)]
    pub token: String,

    /// Participants per meeting.
    #[arg(long, default_value_t = 5)]
    pub participants: usize,

    /// Video bitrate each participant sends, in kbit/s.
    #[arg(long, default_value_t = 1000)]
    pub video_kbps: u32,

    /// Size of each video packet's payload, in bytes.
    #[arg(long, default_value_t = 1200)]
    pub packet_size: usize,

    /// Time for negotiations to settle before measuring.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub warm_up: std::time::Duration,

    /// How long to measure.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: std::time::Duration,

    /// PIDs of the SFU processes, for their CPU time and memory; repeatable.
    #[arg(long)]
    pub sfu_pid: Vec<u32>,
}

/// Flags of `raum prune`.
#[derive(Debug, Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["policy", "policy_file"])))]
pub struct PruneArgs {
    /// How to reach the API server (with --policy).
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// The RetentionPolicy to follow, as NAMESPACE/NAME, read from the API server
    /// (again before each destructive step); the run's summary goes to its status.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub policy: Option<String>,

    /// A RetentionPolicy YAML file to follow instead (read again before each
    /// destructive step), for use without a cluster.
    #[arg(long, value_name = "FILE", conflicts_with = "policy")]
    pub policy_file: Option<PathBuf>,

    /// The directory holding the access-log files.
    #[arg(long, value_name = "DIR")]
    pub log_dir: PathBuf,

    /// Report what would be deleted and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// Flags of `raum crd`.
#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Write one file per CRD into this directory (as in the repository's crds/)
    /// instead of printing one YAML stream to stdout.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn unknown_subcommands_and_flags_are_usage_errors() {
        for args in [
            &["raum", "meet"][..],
            &["raum", "crd", "--nope"],
            &["raum"],
            &["raum", "operator", "--kubeconfig"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
