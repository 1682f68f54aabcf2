//! `raum sfu`: the WebRTC SFU of one meeting. Standalone mode runs the same rooms and
//! sessions in its own process.
//!
//! Design (see docs/architecture.md): the sans-IO `rtc` core (the crate under
//! `webrtc` 0.21) drives every participant's peer connection from one task that owns
//! the meeting's single UDP socket; [`udp_mux`] routes datagrams to peer connections;
//! [`signaling`] is the JSON protocol over each participant's WebSocket.

pub mod keyframes;
pub mod loadtest;
pub mod room;
pub mod server;
pub mod signaling;
pub mod udp_mux;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tracing::info;

use crate::cli::SfuArgs;

/// Why the SFU cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No address to advertise.
    #[error(
        "--advertise-ip (or RAUM_ADVERTISE_IP) is required when the media port is bound to {0}"
    )]
    NoAdvertiseIp(std::net::IpAddr),
    /// The token digest is not 64 hex digits.
    #[error("--token-sha256 must be 64 hexadecimal digits")]
    BadDigest,
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
pub async fn run(args: SfuArgs) -> Result<(), Error> {
    let started = Instant::now();
    let token_sha256 = match (&args.token, &args.token_sha256) {
        (Some(t), _) => crate::operator::join_token::token_digest(t),
        (None, Some(d)) if d.len() == 64 && d.bytes().all(|b| b.is_ascii_hexdigit()) => {
            d.to_ascii_lowercase()
        }
        _ => return Err(Error::BadDigest),
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
    let advertised = SocketAddr::new(advertise_ip, args.advertise_port.unwrap_or(bound.port()));
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .map_err(|source| Error::Bind {
            what: "the signaling port",
            addr: args.listen,
            source,
        })?;
    let listening = listener.local_addr().unwrap_or(args.listen);
    info!(signaling = %listening, media = %bound, advertised = %advertised, "SFU listening");

    let (room_tx, room_rx) = mpsc::unbounded_channel();
    let room = room::Room::new(
        room::Config {
            advertised,
            max_participants: args.max_participants,
            ice_timeout: args.ice_timeout,
            audio: !args.no_audio,
            video: !args.no_video,
            max_video_kbps: args.max_video_bitrate_kbps,
        },
        socket,
    );
    let room_task = tokio::spawn(room.run(room_rx));
    let (sessions_tx, mut sessions_rx) = mpsc::channel::<()>(1);
    let shared = Arc::new(server::Shared {
        room: room_tx.clone(),
        token_sha256,
        chat: !args.no_chat,
        started,
        sessions: sessions_tx,
    });
    let app = server::router(shared);
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
    let _ = room_tx.send(room::Command::Shutdown);
    let _ = stop_tx.send(());
    // Participants get `meeting-ended` and their sockets close; whatever is still open
    // after the goodbye is cut, so the process ends well within 2 s.
    let _ = tokio::time::timeout(GOODBYE, async {
        let _ = room_task.await;
        let _ = server.await;
        // Every session has sent its last messages and closed its socket.
        let _ = sessions_rx.recv().await;
    })
    .await;
    Ok(())
}
