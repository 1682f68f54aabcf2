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

/// A running room, as sessions and status pages reach it. Cheap to share behind an
/// `Arc`; dropping the last command sender ends the room.
#[derive(Debug)]
pub struct RoomHandle {
    /// The room task's commands (a bounded queue).
    pub commands: mpsc::Sender<room::Command>,
    /// Hex SHA-256 of the meeting's join token.
    pub token_sha256: String,
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

/// Starts a room with `settings` on `socket` (and ICE-TCP on `tcp`, if given),
/// advertising `advertised` in its ICE candidates, for the meeting whose token has the
/// digest `token_sha256`. Returns its handle, the room task and what tells when its
/// sessions have ended.
pub fn start(
    settings: RoomSettings,
    advertised: room::Advertised,
    socket: tokio::net::UdpSocket,
    tcp: Option<tokio::net::TcpListener>,
    token_sha256: String,
) -> Result<(RoomHandle, tokio::task::JoinHandle<()>, Sessions), room::Error> {
    let chat = settings.chat;
    let room = room::Room::new(settings, advertised, socket, tcp)?;
    let (commands, rx) = mpsc::channel(room::COMMAND_QUEUE);
    let stop = Arc::new(Notify::new());
    let task = tokio::spawn(room.run(rx, stop.clone()));
    let (sessions, sessions_rx) = mpsc::channel(1);
    let handle = RoomHandle {
        commands,
        token_sha256,
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
            }
        );
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
