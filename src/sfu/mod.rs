//! `raum sfu`: the WebRTC SFU of one meeting, in the meeting's pod. It binds the
//! meeting's signaling port, its one UDP media port and the TCP port of its ICE-TCP
//! candidate, runs one room
//! ([`crate::rooms`]) and serves it over HTTP ([`server`]). Its flags are the
//! operator's side of [`crate::rooms::contract`].

pub mod server;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use clap::Args as ClapArgs;
use tracing::info;

use crate::rooms::contract::{ENV_ADVERTISE_IP, ENV_TOKEN_SHA256, MEDIA_PORT, SIGNALING_PORT};
use crate::rooms::room::Advertised;
use crate::rooms::{self, DEFAULT_ICE_TIMEOUT, RoomSettings};
use crate::token::{is_digest, token_digest};

/// Flags of `raum sfu`.
#[derive(Debug, ClapArgs)]
#[command(group(clap::ArgGroup::new("token_source").required(true).args(["token", "token_sha256"])))]
pub struct Args {
    /// Where signaling (/ws), /healthz, /readyz, /status and /metrics are served.
    #[arg(long, default_value_t = SocketAddr::from(([0, 0, 0, 0], SIGNALING_PORT)), value_name = "ADDR")]
    pub listen: SocketAddr,

    /// The one UDP port every participant's media uses.
    #[arg(long, default_value_t = MEDIA_PORT)]
    pub media_port: u16,

    /// The address the media port is bound to.
    #[arg(long, default_value = "0.0.0.0", value_name = "IP")]
    pub media_bind: IpAddr,

    /// The IP participants reach the media port at (a node's or load balancer's public
    /// address; NAT 1:1). Repeatable; the first is used for now. Default: the bind
    /// address, when it is not 0.0.0.0.
    #[arg(
        long = "advertise-ip",
        env = ENV_ADVERTISE_IP,
        value_name = "IP",
        value_delimiter = ','
    )]
    pub advertise_ips: Vec<IpAddr>,

    /// The port participants reach the media port at (e.g. a NodePort). Default: the
    /// media port.
    #[arg(long)]
    pub advertise_port: Option<u16>,

    /// The TCP port of the passive ICE-TCP candidate (RFC 6544), for participants
    /// whose network lets no UDP out. Bound to the media bind address. Default: the
    /// media port's number (0 with an ephemeral media port).
    #[arg(long, conflicts_with = "no_ice_tcp")]
    pub media_tcp_port: Option<u16>,

    /// The port participants reach the ICE-TCP port at (e.g. its NodePort). Default:
    /// the ICE-TCP port.
    #[arg(long, conflicts_with = "no_ice_tcp")]
    pub advertise_tcp_port: Option<u16>,

    /// No ICE-TCP candidate: media over UDP only.
    #[arg(long)]
    pub no_ice_tcp: bool,

    /// A TURN server participants are offered (`turn:host:3478?transport=udp`,
    /// `turns:host:443?transport=tcp`, ...); repeatable. Each participant gets a
    /// credential of its own at `welcome`, under the secret in RAUM_TURN_SECRET.
    #[arg(long = "turn-url", value_name = "URL", requires = "turn_secret")]
    pub turn_urls: Vec<String>,

    /// The secret shared with the TURN server (at least 16 bytes).
    #[arg(long, env = crate::rooms::contract::ENV_TURN_SECRET, hide_env_values = true, hide = true)]
    pub turn_secret: Option<String>,

    /// The TURN secret is this meeting's key, derived from the TURN server's secret
    /// for this id (the Meeting's UID, on Kubernetes): credentials name it, so the
    /// TURN server derives the same key.
    #[arg(long, value_name = "ID", requires = "turn_urls")]
    pub turn_key_id: Option<String>,

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
    #[arg(long, env = ENV_TOKEN_SHA256, conflicts_with = "token")]
    pub token_sha256: Option<String>,

    /// The hex SHA-256 of the meeting's host link's token: whoever joins with that
    /// token is a host. Without it, nobody is.
    #[arg(long, env = crate::rooms::contract::ENV_HOST_TOKEN_SHA256)]
    pub host_token_sha256: Option<String>,

    /// A participant whose media has not connected this long after joining is dropped.
    #[arg(long, default_value_t = humantime::Duration::from(DEFAULT_ICE_TIMEOUT))]
    pub ice_timeout: humantime::Duration,

    /// After a host muted a participant, only a host lifts it.
    #[arg(long)]
    pub no_participant_unmute: bool,

    /// Participants wait in a lobby until a host admits them.
    #[arg(long)]
    pub lobby: bool,

    /// While no host is in the meeting: `open` (participants meet without one) or
    /// `wait` (they wait until a host has joined).
    #[arg(long, default_value = "open")]
    pub without_host: crate::api::meeting::WithoutHost,

    /// Who may share a screen: `everyone`, `hosts` or `nobody`.
    #[arg(long, default_value = "everyone")]
    pub screen_share: crate::api::meeting::ScreenShare,
}

impl Args {
    /// What the room enforces.
    pub fn room_settings(&self) -> RoomSettings {
        RoomSettings {
            max_participants: self.max_participants,
            audio: !self.no_audio,
            video: !self.no_video,
            chat: !self.no_chat,
            max_video_kbps: self.max_video_bitrate_kbps,
            ice_timeout: self.ice_timeout.into(),
            participants_may_unmute: !self.no_participant_unmute,
            lobby: self.lobby,
            without_host: self.without_host,
            screen_share: self.screen_share,
        }
    }

    /// The TURN participants are offered, if any.
    pub fn turn_offer(&self) -> Result<Option<rooms::TurnOffer>, Error> {
        let Some(secret) = &self.turn_secret else {
            return Ok(None);
        };
        if self.turn_urls.is_empty() {
            return Ok(None);
        }
        if secret.len() < 16 {
            return Err(Error::ShortTurnSecret);
        }
        if let Some(bad) = self.turn_urls.iter().find(|u| !rooms::valid_turn_url(u)) {
            return Err(Error::BadTurnUrl(bad.clone()));
        }
        use crate::turn_credentials::{TurnSecret, valid_key_id};
        let secret = match &self.turn_key_id {
            None => TurnSecret::from_bytes(secret.as_bytes()),
            Some(id) if valid_key_id(id) => TurnSecret::for_meeting(secret.as_bytes(), id),
            Some(_) => return Err(Error::BadTurnKeyId),
        };
        Ok(Some(rooms::TurnOffer {
            secret,
            urls: self.turn_urls.clone(),
            lifetime: rooms::TURN_CREDENTIAL_LIFETIME,
        }))
    }

    /// The token's digest (lower-case hex), from `--token` or `--token-sha256`.
    pub fn token_sha256(&self) -> Result<String, Error> {
        match (&self.token, &self.token_sha256) {
            (Some(t), _) => Ok(token_digest(t)),
            (None, Some(d)) if is_digest(d) => Ok(d.to_ascii_lowercase()),
            _ => Err(Error::BadDigest),
        }
    }
}

/// Why the SFU cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No address to advertise.
    #[error(
        "--advertise-ip (or {ENV_ADVERTISE_IP}) is required when the media port is bound to {0}"
    )]
    NoAdvertiseIp(IpAddr),
    /// The TURN secret is too short.
    #[error("the TURN secret (RAUM_TURN_SECRET) must be at least 16 bytes")]
    ShortTurnSecret,
    /// A TURN URL is not one.
    #[error("--turn-url {0:?} is not a turn: or turns: URL with a host and port")]
    BadTurnUrl(String),
    /// The TURN key id is not one.
    #[error(
        "--turn-key-id must be 1 to {} letters, digits, '-' or '_'",
        crate::turn_credentials::MAX_KEY_ID
    )]
    BadTurnKeyId,
    /// The token digest is not 64 hex digits.
    #[error("--token-sha256 must be 64 hexadecimal digits")]
    BadDigest,
    /// The host token digest is not 64 hex digits.
    #[error("--host-token-sha256 must be 64 hexadecimal digits")]
    BadHostDigest,
    /// The room could not start.
    #[error("cannot start the room: {0}")]
    Room(#[from] rooms::room::Error),
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
}

/// How long the SFU waits for participants to be told the meeting ended before it exits.
const GOODBYE: Duration = Duration::from_millis(1500);

/// Runs `raum sfu` until SIGTERM or Ctrl-C.
pub async fn run(args: Args) -> Result<(), Error> {
    let token_sha256 = args.token_sha256()?;
    let host_token_sha256 = match &args.host_token_sha256 {
        Some(d) if is_digest(d) => Some(d.to_ascii_lowercase()),
        Some(_) => return Err(Error::BadHostDigest),
        None => None,
    };
    let advertise_ip = match args.advertise_ips.first() {
        Some(ip) => *ip,
        None if !args.media_bind.is_unspecified() => args.media_bind,
        None => return Err(Error::NoAdvertiseIp(args.media_bind)),
    };
    let media_addr = SocketAddr::new(args.media_bind, args.media_port);
    let socket = tokio::net::UdpSocket::bind(media_addr)
        .await
        .map_err(|source| Error::Bind {
            what: "the media port",
            addr: media_addr,
            source,
        })?;
    let bound = socket.local_addr().unwrap_or(media_addr);
    let tcp = if args.no_ice_tcp {
        None
    } else {
        let port = args.media_tcp_port.unwrap_or(args.media_port);
        let addr = SocketAddr::new(args.media_bind, port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|source| Error::Bind {
                what: "the ICE-TCP port",
                addr,
                source,
            })?;
        Some(listener)
    };
    let tcp_bound = tcp.as_ref().and_then(|l| l.local_addr().ok());
    let advertised = Advertised {
        ip: advertise_ip,
        udp_port: args.advertise_port.unwrap_or(bound.port()),
        tcp_port: tcp_bound.map(|a| args.advertise_tcp_port.unwrap_or(a.port())),
    };
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| Error::Bind {
            what: "the signaling port",
            addr: args.listen,
            source,
        })?;
    let listening = listener.local_addr().unwrap_or(args.listen);
    // The SFU's own addresses, never a participant's.
    info!(
        signaling = %listening,
        media = %bound,
        ice_tcp = ?tcp_bound,
        advertised = %advertise_ip,
        advertised_udp = advertised.udp_port,
        advertised_tcp = ?advertised.tcp_port,
        "SFU listening"
    );

    let turn = args.turn_offer()?;
    let network = rooms::Network {
        udp: socket,
        tcp,
        advertised,
        turn,
    };
    let (room, room_task, sessions) = rooms::start(
        args.room_settings(),
        network,
        token_sha256,
        host_token_sha256,
    )?;
    let room = Arc::new(room);
    let app = server::router(room.clone());
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move {
                let _ = stop_rx.await;
            })
            .await;
    });

    crate::shutdown::signal().await;
    info!("meeting ended: telling participants and stopping");
    room.shut_down();
    let _ = stop_tx.send(());
    drop(room);
    // Participants get `meeting-ended` and their sockets close; whatever is still open
    // after the goodbye is cut, so the process ends well within 2 s.
    let _ = tokio::time::timeout(GOODBYE, async {
        let _ = room_task.await;
        let _ = server.await;
        // Every session has sent its last messages and closed its socket.
        sessions.all_ended().await;
    })
    .await;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::contract::{Advertise, EnvValue, Launch, LaunchTurn};
    use clap::{CommandFactory, FromArgMatches};

    #[derive(Debug, clap::Parser)]
    struct Cli {
        #[command(subcommand)]
        command: Sub,
    }

    #[derive(Debug, clap::Subcommand)]
    enum Sub {
        Sfu(Args),
    }

    /// Parses what the operator renders into a pod, as the container would: the
    /// arguments as they are, each environment variable as the flag that reads it.
    fn parse_launch(launch: &Launch, node_ip: IpAddr) -> Args {
        let cmd = Cli::command();
        let sfu = cmd.find_subcommand("sfu").unwrap();
        let mut argv = vec!["raum".to_owned()];
        argv.extend(launch.args());
        for (name, value) in launch.env() {
            let flag = sfu
                .get_arguments()
                .find(|a| a.get_env().is_some_and(|e| e == name))
                .unwrap_or_else(|| panic!("no flag of raum sfu reads {name}"));
            let value = match value {
                EnvValue::Literal(v) => v,
                EnvValue::NodeIp => node_ip.to_string(),
                // What the operator writes into that Secret: a meeting key.
                EnvValue::Secret { .. } => "0".repeat(64),
            };
            argv.push(format!("--{}={value}", flag.get_long().unwrap()));
        }
        let matches = cmd
            .try_get_matches_from(&argv)
            .unwrap_or_else(|e| panic!("{e}"));
        let Sub::Sfu(args) = Cli::from_arg_matches(&matches).unwrap().command;
        args
    }

    #[test]
    fn what_the_operator_renders_is_what_raum_sfu_parses() {
        let digest = token_digest("t");
        let turn = LaunchTurn {
            urls: vec![
                "turn:turn.example.org:3478?transport=udp".to_owned(),
                "turns:turn.example.org:443?transport=tcp".to_owned(),
            ],
            key_id: "0b6f7a52-9d1e-4c3a-8f21-5e6d7c8b9a01".to_owned(),
            secret_name: "raum-standup-turn".to_owned(),
        };
        for ((settings, advertise), turn) in [
            (
                RoomSettings::default(),
                Advertise::Ips(vec![
                    "203.0.113.10".parse().unwrap(),
                    "2001:db8::1".parse().unwrap(),
                ]),
            ),
            (
                RoomSettings {
                    max_participants: 7,
                    audio: false,
                    video: false,
                    chat: false,
                    max_video_kbps: 300,
                    ice_timeout: Duration::from_secs(45),
                    participants_may_unmute: false,
                    lobby: true,
                    without_host: crate::api::meeting::WithoutHost::Wait,
                    screen_share: crate::api::meeting::ScreenShare::Nobody,
                },
                Advertise::NodeIp,
            ),
        ]
        .into_iter()
        .zip([None, Some(turn.clone())])
        {
            let launch = Launch {
                settings: settings.clone(),
                advertise: advertise.clone(),
                advertise_port: 31000,
                advertise_tcp_port: 31001,
                token_sha256: digest.clone(),
                host_token_sha256: token_digest("h"),
                turn: turn.clone(),
            };
            let node: IpAddr = "198.51.100.4".parse().unwrap();
            let args = parse_launch(&launch, node);
            assert_eq!(args.room_settings(), settings);
            assert_eq!(args.token_sha256().unwrap(), digest);
            assert_eq!(args.host_token_sha256, Some(token_digest("h")));
            assert_eq!(args.advertise_port, Some(31000));
            assert_eq!(args.advertise_tcp_port, Some(31001));
            assert_eq!(args.media_tcp_port, Some(MEDIA_PORT));
            assert!(!args.no_ice_tcp);
            assert_eq!(args.media_port, MEDIA_PORT);
            assert_eq!(args.listen.port(), SIGNALING_PORT);
            let ips = match advertise {
                Advertise::Ips(ips) => ips,
                Advertise::NodeIp => vec![node],
            };
            assert_eq!(args.advertise_ips, ips);
            let offer = args.turn_offer().unwrap();
            assert_eq!(offer.is_some(), turn.is_some());
            if let (Some(offer), Some(turn)) = (offer, &turn) {
                assert_eq!(offer.urls, turn.urls);
                assert_eq!(args.turn_key_id.as_deref(), Some(turn.key_id.as_str()));
                let to: SocketAddr = "203.0.113.10:31000".parse().unwrap();
                let servers = offer.ice_servers("p1", to, std::time::SystemTime::now());
                assert!(
                    servers[0].username.contains(&turn.key_id),
                    "a meeting key's id"
                );
            }
        }
    }

    #[test]
    fn a_bad_digest_is_refused() {
        let args = |d: &str| Args {
            token_sha256: Some(d.to_owned()),
            token: None,
            ..parse_launch(
                &Launch {
                    settings: RoomSettings::default(),
                    advertise: Advertise::NodeIp,
                    advertise_port: 1,
                    advertise_tcp_port: 1,
                    token_sha256: token_digest("x"),
                    host_token_sha256: token_digest("y"),
                    turn: None,
                },
                "192.0.2.1".parse().unwrap(),
            )
        };
        assert!(matches!(args("abc").token_sha256(), Err(Error::BadDigest)));
        assert!(args(&"A".repeat(64)).token_sha256().is_ok());
    }
}
