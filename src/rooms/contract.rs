//! How a room runs as its own process: `raum sfu` in a meeting's pod. The operator
//! renders a [`Launch`] into the pod's arguments and environment; `raum sfu` parses
//! them back with its own flags (a unit test there parses what is rendered here, so
//! the two cannot drift apart).

use std::net::IpAddr;

use super::RoomSettings;

/// The SFU's HTTP port: WebSocket signaling, health, status and metrics.
pub const SIGNALING_PORT: u16 = 8080;
/// The SFU's one UDP port for every participant's media, inside the pod.
pub const MEDIA_PORT: u16 = 50000;
/// The SFU's ICE-TCP port inside the pod: the same number as the media port, on TCP.
pub const MEDIA_TCP_PORT: u16 = MEDIA_PORT;
/// The environment variable with the hex SHA-256 of the meeting's join token.
pub const ENV_TOKEN_SHA256: &str = "RAUM_TOKEN_SHA256";
/// The environment variable with the hex SHA-256 of the meeting's host token.
pub const ENV_HOST_TOKEN_SHA256: &str = "RAUM_HOST_TOKEN_SHA256";
/// The environment variable with the secret shared with the TURN server (from a
/// Secret, when the chart has TURN).
pub const ENV_TURN_SECRET: &str = "RAUM_TURN_SECRET";
/// The environment variable with the address to advertise (when the pod takes the
/// node's IP from the downward API).
pub const ENV_ADVERTISE_IP: &str = "RAUM_ADVERTISE_IP";

/// Which address the SFU puts in its ICE candidate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Advertise {
    /// These addresses (a load balancer's or the nodes' public IPs).
    Ips(Vec<IpAddr>),
    /// The IP of the node the pod runs on, filled in at start.
    NodeIp,
}

/// A value of the SFU's environment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EnvValue {
    /// This literal.
    Literal(String),
    /// The node's IP (`status.hostIP` through the downward API).
    NodeIp,
    /// A key of a Secret in the pod's namespace.
    Secret {
        /// The Secret.
        name: String,
        /// The key in its data.
        key: &'static str,
    },
}

/// The key in a meeting's TURN Secret that holds its meeting key.
pub const TURN_SECRET_KEY: &str = "key";

/// TURN for a meeting's participants, as the SFU is started with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LaunchTurn {
    /// The TURN server's URLs, as browsers are given them.
    pub urls: Vec<String>,
    /// The meeting key's id (the Meeting's UID).
    pub key_id: String,
    /// The Secret (in the meeting's namespace) whose [`TURN_SECRET_KEY`] holds the
    /// meeting key.
    pub secret_name: String,
}

/// Everything a `raum sfu` process is started with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Launch {
    /// What the room enforces.
    pub settings: RoomSettings,
    /// The address in the ICE candidate.
    pub advertise: Advertise,
    /// The port in the UDP ICE candidate (a NodePort, or [`MEDIA_PORT`]).
    pub advertise_port: u16,
    /// The port in the ICE-TCP candidate (its NodePort, or [`MEDIA_TCP_PORT`]).
    pub advertise_tcp_port: u16,
    /// Hex SHA-256 of the meeting's join token.
    pub token_sha256: String,
    /// Hex SHA-256 of the meeting's host token.
    pub host_token_sha256: String,
    /// TURN, when the cluster has it.
    pub turn: Option<LaunchTurn>,
}

impl Launch {
    /// The container's arguments: `sfu` and its flags.
    pub fn args(&self) -> Vec<String> {
        let s = &self.settings;
        let mut args = vec![
            "sfu".to_owned(),
            format!("--listen=0.0.0.0:{SIGNALING_PORT}"),
            format!("--media-port={MEDIA_PORT}"),
            format!("--advertise-port={}", self.advertise_port),
            format!("--media-tcp-port={MEDIA_TCP_PORT}"),
            format!("--advertise-tcp-port={}", self.advertise_tcp_port),
            format!("--max-participants={}", s.max_participants),
            format!("--max-video-bitrate-kbps={}", s.max_video_kbps),
            format!(
                "--ice-timeout={}",
                humantime::format_duration(s.ice_timeout)
            ),
        ];
        if !s.audio {
            args.push("--no-audio".to_owned());
        }
        if !s.video {
            args.push("--no-video".to_owned());
        }
        if !s.chat {
            args.push("--no-chat".to_owned());
        }
        if !s.participants_may_unmute {
            args.push("--no-participant-unmute".to_owned());
        }
        if s.lobby {
            args.push("--lobby".to_owned());
        }
        args.push(format!("--without-host={}", s.without_host.as_str()));
        args.push(format!("--screen-share={}", s.screen_share.as_str()));
        if let Advertise::Ips(ips) = &self.advertise {
            args.extend(ips.iter().map(|ip| format!("--advertise-ip={ip}")));
        }
        if let Some(turn) = &self.turn {
            args.extend(turn.urls.iter().map(|u| format!("--turn-url={u}")));
            args.push(format!("--turn-key-id={}", turn.key_id));
        }
        args
    }

    /// The container's environment. The token's digest goes here rather than into the
    /// arguments, and the node's IP can only come from here.
    pub fn env(&self) -> Vec<(&'static str, EnvValue)> {
        let mut env = vec![
            (
                ENV_TOKEN_SHA256,
                EnvValue::Literal(self.token_sha256.clone()),
            ),
            (
                ENV_HOST_TOKEN_SHA256,
                EnvValue::Literal(self.host_token_sha256.clone()),
            ),
        ];
        if self.advertise == Advertise::NodeIp {
            env.push((ENV_ADVERTISE_IP, EnvValue::NodeIp));
        }
        if let Some(turn) = &self.turn {
            env.push((
                ENV_TURN_SECRET,
                EnvValue::Secret {
                    name: turn.secret_name.clone(),
                    key: TURN_SECRET_KEY,
                },
            ));
        }
        env
    }
}
