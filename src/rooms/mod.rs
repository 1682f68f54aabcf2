//! Meeting rooms, as `raum sfu`, standalone mode and the gateway's local backend all
//! use them: a room's settings built from a `MeetingSpec` (every default in one
//! place), a handle to a running room, and the participant's session that joins a
//! WebSocket to it.
//!
//! - [`room`]: the room task, the tokio driver of the sans-IO media core
//!   ([`crate::media::room::RoomCore`]) on the meeting's one UDP socket and, with
//!   [`ice_tcp`], its TCP port for participants whose network blocks UDP;
//! - [`session`]: one participant's signaling WebSocket, relayed to the room;
//! - [`contract`]: how a room runs as its own process, `raum sfu` in a meeting's pod
//!   (ports, flags, environment), rendered by the operator and parsed by `raum sfu`.

pub mod contract;
pub mod ice_tcp;
pub mod room;
pub mod session;

use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::{Notify, mpsc, oneshot};

use crate::api::MeetingSpec;

/// How long a participant's media may take to connect before the room drops them.
pub const DEFAULT_ICE_TIMEOUT: Duration = Duration::from_secs(30);

/// What a room enforces (defined with the media core that enforces it; built here, from
/// a meeting's spec, with every default in one place).
pub use crate::media::room::RoomSettings;

impl RoomSettings {
    /// The settings of a meeting with this spec.
    pub fn from_spec(spec: &MeetingSpec) -> Self {
        Self {
            max_participants: spec.max_participants,
            audio: spec.media.audio,
            video: spec.media.video,
            chat: spec.chat.enabled,
            max_video_kbps: spec.media.max_video_bitrate_kbps,
            ice_timeout: DEFAULT_ICE_TIMEOUT,
            participants_may_unmute: spec.participants_may_unmute,
            lobby: spec.lobby,
            without_host: spec.without_host,
            screen_share: spec.screen_share,
        }
    }
}

impl Default for RoomSettings {
    /// The settings of a meeting whose spec sets nothing but its title.
    fn default() -> Self {
        let spec: MeetingSpec =
            serde_json::from_value(serde_json::json!({"title": "-"})).expect("a minimal spec");
        Self::from_spec(&spec)
    }
}

/// TURN for a room's participants: the secret the room shares with the TURN server,
/// the server's URLs, and how long a credential lasts. Each participant gets a
/// credential of its own at `welcome`, for this room's SFU address only.
#[derive(Clone, Debug)]
pub struct TurnOffer {
    /// Shared with the TURN server.
    pub secret: crate::turn_credentials::TurnSecret,
    /// `turn:` and `turns:` URLs, as the browser is given them.
    pub urls: Vec<String>,
    /// How long a credential is valid: a whole meeting, since browsers refresh their
    /// allocations with the credential they were given.
    pub lifetime: Duration,
}

/// How long a TURN credential lasts: a school day, well within
/// [`crate::turn_credentials::MAX_LIFETIME_SECS`].
pub const TURN_CREDENTIAL_LIFETIME: Duration = Duration::from_secs(10 * 3600);

impl TurnOffer {
    /// The `iceServers` for a participant `who` (an opaque id) of the room whose UDP
    /// media address is `relay_to`, issued at `now`.
    pub fn ice_servers(
        &self,
        who: &str,
        relay_to: std::net::SocketAddr,
        now: std::time::SystemTime,
    ) -> Vec<crate::signaling::IceServer> {
        let expires = now
            .duration_since(std::time::SystemTime::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs()
            + self.lifetime.as_secs();
        let c = self.secret.issue(who, relay_to, expires);
        vec![crate::signaling::IceServer {
            urls: self.urls.clone(),
            username: c.username,
            credential: c.password,
        }]
    }
}

/// Whether `url` is a TURN URL raum hands to browsers: `turn:` or `turns:`, a host (a
/// name, an IPv4 address or a bracketed IPv6 one), a port, and at most
/// `?transport=udp|tcp`. Nothing else (browsers reject the whole configuration for
/// one bad URL, which would cost every participant their media).
pub fn valid_turn_url(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("turn:")
        .or_else(|| url.strip_prefix("turns:"))
    else {
        return false;
    };
    let (hostport, query) = match rest.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (rest, None),
    };
    if !matches!(query, None | Some("transport=udp") | Some("transport=tcp")) {
        return false;
    }
    let Some((host, port)) = hostport.rsplit_once(':') else {
        return false;
    };
    let port_ok = !port.is_empty()
        && port.len() <= 5
        && port.bytes().all(|b| b.is_ascii_digit())
        && port.parse::<u16>().is_ok_and(|p| p > 0);
    let host_ok = if let Some(v6) = host.strip_prefix('[').and_then(|h| h.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !host.is_empty()
            && host.len() <= 253
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    port_ok && host_ok
}

/// Where a room's media comes in: its UDP socket, its ICE-TCP listener, the address
/// its candidates name, and the TURN servers its participants are offered.
pub struct Network {
    /// The UDP media socket.
    pub udp: tokio::net::UdpSocket,
    /// The ICE-TCP listener, if the room has one.
    pub tcp: Option<tokio::net::TcpListener>,
    /// What the candidates name (as seen from outside).
    pub advertised: room::Advertised,
    /// TURN, if participants are offered it.
    pub turn: Option<TurnOffer>,
}

/// A running room, as sessions and status pages reach it. Cheap to share behind an
/// `Arc`; dropping the last command sender ends the room.
#[derive(Debug)]
pub struct RoomHandle {
    /// The room task's commands (a bounded queue).
    pub commands: mpsc::Sender<room::Command>,
    /// Hex SHA-256 of the meeting's join token.
    pub token_sha256: String,
    /// Hex SHA-256 of the meeting's host token: who joins with it is a host.
    pub host_token_sha256: Option<String>,
    /// Chat switched on.
    pub chat: bool,
    /// When the room started.
    pub started: Instant,
    /// Every session holds a clone until it ends; [`Sessions::all_ended`] learns when
    /// all have (a WebSocket outlives an HTTP server's graceful shutdown).
    sessions: mpsc::Sender<()>,
    /// Ends the room (apart from the command queue, so it cannot be lost in a full one).
    stop: Arc<Notify>,
}

/// Learns when every session of a room has ended.
pub struct Sessions(mpsc::Receiver<()>);

impl Sessions {
    /// Resolves once no session holds the room's session token any more (and the
    /// handle is gone).
    pub async fn all_ended(mut self) {
        let _ = self.0.recv().await;
    }
}

/// Starts a room with `settings` on `network`, for the meeting whose token has the
/// digest `token_sha256` (and whose host link's token has `host_token_sha256`).
/// Returns its handle, the room task and what tells when its sessions have ended.
pub fn start(
    settings: RoomSettings,
    network: Network,
    token_sha256: String,
    host_token_sha256: Option<String>,
) -> Result<(RoomHandle, tokio::task::JoinHandle<()>, Sessions), room::Error> {
    let chat = settings.chat;
    let room = room::Room::new(settings, network)?;
    let (commands, rx) = mpsc::channel(room::COMMAND_QUEUE);
    let stop = Arc::new(Notify::new());
    let task = tokio::spawn(room.run(rx, stop.clone()));
    let (sessions, sessions_rx) = mpsc::channel(1);
    let handle = RoomHandle {
        commands,
        token_sha256,
        host_token_sha256,
        chat,
        started: Instant::now(),
        sessions,
        stop,
    };
    Ok((handle, task, Sessions(sessions_rx)))
}

impl RoomHandle {
    /// The room's counters, or `None` if it does not answer within a second (or its
    /// queue is full).
    pub async fn stats(&self) -> Option<room::Stats> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .try_send(room::Command::Stats { reply: tx })
            .ok()?;
        tokio::time::timeout(Duration::from_secs(1), rx)
            .await
            .ok()?
            .ok()
    }

    /// How many are in the room, or `None` if it does not answer within `limit`.
    pub async fn participants(&self, limit: Duration) -> Option<u32> {
        let (tx, rx) = oneshot::channel();
        self.commands
            .try_send(room::Command::Participants { reply: tx })
            .ok()?;
        tokio::time::timeout(limit, rx).await.ok()?.ok()
    }

    /// Tells everyone the meeting ended and stops the room.
    pub fn shut_down(&self) {
        // A permit is kept if the room is not waiting right now.
        self.stop.notify_one();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn turn_urls_are_checked_before_a_browser_sees_them() {
        for good in [
            "turn:198.18.0.1:3478?transport=udp",
            "turn:turn.example.org:3478?transport=tcp",
            "turns:turn.example.org:443?transport=tcp",
            "turn:[2001:db8::1]:3478",
        ] {
            assert!(valid_turn_url(good), "{good}");
        }
        for bad in [
            "",
            "stun:198.18.0.1:3478",
            "turn:",
            "turn:198.18.0.1",
            "turn:198.18.0.1:",
            "turn:198.18.0.1:0",
            "turn:198.18.0.1:99999",
            "turn:198.18.0.1:3478?transport=sctp",
            "turn:198.18.0.1:3478?transport=udp&x=1",
            "turn:user@host:3478",
            "turn:2001:db8::1:3478",
            "turn:[not-v6]:3478",
            "turn:host name:3478",
            "https://turn.example.org:443",
        ] {
            assert!(!valid_turn_url(bad), "{bad}");
        }
    }

    #[test]
    fn settings_come_from_the_spec_with_the_crds_defaults() {
        let s = RoomSettings::default();
        assert_eq!(
            s,
            RoomSettings {
                max_participants: crate::api::meeting::DEFAULT_MAX_PARTICIPANTS,
                audio: true,
                video: true,
                chat: true,
                max_video_kbps: crate::api::meeting::DEFAULT_MAX_VIDEO_BITRATE_KBPS,
                ice_timeout: DEFAULT_ICE_TIMEOUT,
                participants_may_unmute: true,
                lobby: false,
                without_host: crate::api::meeting::WithoutHost::Open,
                screen_share: crate::api::meeting::ScreenShare::Everyone,
            }
        );
        let strict: MeetingSpec = serde_yaml::from_str(
            "title: t\nparticipantsMayUnmute: false\nlobby: true\nwithoutHost: wait\nscreenShare: hosts\n",
        )
        .unwrap();
        let s = RoomSettings::from_spec(&strict);
        assert!(!s.participants_may_unmute);
        assert!(s.lobby);
        assert_eq!(s.without_host, crate::api::meeting::WithoutHost::Wait);
        assert_eq!(s.screen_share, crate::api::meeting::ScreenShare::Hosts);
        assert!(serde_yaml::from_str::<MeetingSpec>("title: t\nwithoutHost: later\n").is_err());
        let spec: MeetingSpec = serde_yaml::from_str(
            "title: t\nmaxParticipants: 7\nmedia: {video: false, maxVideoBitrateKbps: 300}\nchat: {enabled: false}\n",
        )
        .unwrap();
        let s = RoomSettings::from_spec(&spec);
        assert_eq!(
            (
                s.max_participants,
                s.audio,
                s.video,
                s.chat,
                s.max_video_kbps
            ),
            (7, true, false, false, 300)
        );
    }
}
