//! `raum sfu`: the WebRTC SFU of one meeting (work in progress: the signaling protocol,
//! the UDP demultiplexer and the room's media loop exist and are tested with real
//! WebRTC peers; the HTTP/WebSocket front end does not yet, so `raum sfu` still says
//! it is not available).
//!
//! Design (see docs/architecture.md): the sans-IO `rtc` core (the crate under
//! `webrtc` 0.21) drives every participant's peer connection from one task that owns
//! the meeting's single UDP socket; [`udp_mux`] routes datagrams to peer connections;
//! [`signaling`] is the JSON protocol over each participant's WebSocket.

pub mod room;
pub mod signaling;
pub mod udp_mux;
