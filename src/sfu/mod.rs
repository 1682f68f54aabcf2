//! `raum sfu`: the WebRTC SFU of one meeting (work in progress: the signaling protocol
//! and the UDP demultiplexer exist; the media loop does not yet, so `raum sfu` still
//! says it is not available).
//!
//! Design (see docs/architecture.md): the sans-IO `rtc` core (the crate under
//! `webrtc` 0.21) drives every participant's peer connection from one task that owns
//! the meeting's single UDP socket; [`udp_mux`] routes datagrams to peer connections;
//! [`signaling`] is the JSON protocol over each participant's WebSocket.

pub mod signaling;
pub mod udp_mux;
