//! One meeting's room: every participant's peer connection, driven by one task that owns
//! the meeting's single UDP socket.
//!
//! The task is the only owner of the peer connections (the sans-IO `rtc` core), so the
//! media path takes no locks: a datagram is routed by [`Demux`], handed to its peer
//! connection, and the RTP packets that come out are forwarded to the other
//! participants' senders (SSRC and payload type rewritten, nothing decoded).
//! Participants' WebSocket sessions talk to the task through [`Command`]s and receive
//! [`Outbound`] messages.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::RTCConfigurationBuilder;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::peer_connection::configuration::setting_engine::SettingEngineBuilder;
use rtc::peer_connection::event::{RTCPeerConnectionEvent, RTCTrackEvent};
use rtc::peer_connection::message::{RTCMessage, TaggedRTCMessage};
use rtc::peer_connection::sdp::RTCSessionDescription;
use rtc::peer_connection::state::RTCPeerConnectionState;
use rtc::peer_connection::transport::{
    CandidateConfig, CandidateHostConfig, RTCIceCandidate, RTCIceCandidateInit,
};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};
use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tracing::{debug, info, warn};

use super::RoomSettings;
use super::udp_mux::Demux;
use crate::signaling::{ClientMessage, ErrorCode, PeerInfo, ServerMessage};
use crate::telemetry::Redacted;

/// The shortest time between two keyframe requests to one publisher's track.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);

/// A participant's id within the room.
pub type PeerId = u32;

/// What the room sends a participant's session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outbound {
    /// A signaling message.
    Message(ServerMessage),
    /// Close the WebSocket (after the messages before this one).
    Close,
}

/// What a participant's session asks of the room.
#[derive(Debug)]
pub enum Command {
    /// Join with a display name (the token was checked by the session).
    Join {
        /// Display name.
        name: String,
        /// Where the room sends this participant's messages.
        outbound: mpsc::UnboundedSender<Outbound>,
        /// The participant's id, or why not.
        reply: oneshot::Sender<Result<PeerId, ErrorCode>>,
    },
    /// A message from a joined participant.
    Message {
        /// Who.
        peer: PeerId,
        /// What.
        msg: ClientMessage,
    },
    /// The participant's WebSocket closed.
    Gone {
        /// Who.
        peer: PeerId,
    },
    /// Counters, for /status and /metrics.
    Stats {
        /// Where to answer.
        reply: oneshot::Sender<Stats>,
    },
    /// How many participants are in the room (cheaper than `Stats`).
    Participants {
        /// Where to answer.
        reply: oneshot::Sender<u32>,
    },
    /// The meeting is over: tell everyone and stop.
    Shutdown,
}

/// Counters of the room (no personal data).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Participants now.
    pub participants: u32,
    /// UDP datagrams received.
    pub datagrams_in: u64,
    /// UDP datagrams sent.
    pub datagrams_out: u64,
    /// Bytes received.
    pub bytes_in: u64,
    /// Bytes sent.
    pub bytes_out: u64,
    /// Datagrams from addresses that belong to no participant.
    pub datagrams_unrouted: u64,
    /// Datagrams a peer connection refused (bad STUN, DTLS or SRTP).
    pub datagrams_refused: u64,
    /// RTP packets received from publishers.
    pub rtp_in: u64,
    /// RTP packets forwarded to subscribers.
    pub rtp_forwarded: u64,
    /// RTP packets that could not be forwarded.
    pub rtp_dropped: u64,
    /// Keyframe requests sent to publishers (for new subscribers, and subscribers'
    /// own requests passed on).
    pub plis_sent: u64,
    /// Subscribers' keyframe requests received.
    pub keyframe_requests_in: u64,
    /// Packets retransmitted from the send buffer in answer to subscribers' NACKs
    /// (counted by the peer connections, so for the current participants only).
    pub retransmits: u64,
}

/// A track a participant publishes.
#[derive(Clone, Debug)]
struct Published {
    /// When a keyframe was last requested for this track (the rate limit).
    last_keyframe_request: Option<Instant>,
    track_id: String,
    kind: RtpCodecKind,
    codec: RTCRtpCodec,
    receiver: RTCRtpReceiverId,
    ssrc: u32,
}

/// A sender on a subscriber's connection carrying one publisher's track.
#[derive(Clone, Copy, Debug)]
struct Outgoing {
    sender: RTCRtpSenderId,
    ssrc: u32,
    /// The payload type negotiated for the codec on this leg, once known.
    payload_type: Option<u8>,
    /// Whether the subscriber has answered an offer containing it.
    negotiated: bool,
}

struct Peer {
    name: String,
    pc: RTCPeerConnection,
    outbound: mpsc::UnboundedSender<Outbound>,
    published: Vec<Published>,
    /// (publisher, publisher's track id) -> sender on this connection.
    outgoing: HashMap<(PeerId, String), Outgoing>,
    /// The participant has sent its first offer and got the answer.
    ready: bool,
    /// An offer from the room awaits its answer.
    negotiating: bool,
    /// Tracks changed since the last offer.
    needs_offer: bool,
    connected: bool,
    joined_at: Instant,
    audio_muted: bool,
    video_muted: bool,
}

impl Peer {
    fn send(&self, msg: ServerMessage) {
        let _ = self.outbound.send(Outbound::Message(msg));
    }

    fn info(&self, id: PeerId) -> PeerInfo {
        PeerInfo {
            id: id.to_string(),
            name: self.name.clone(),
            audio_muted: self.audio_muted,
            video_muted: self.video_muted,
        }
    }
}

/// The room task's state.
pub struct Room {
    settings: RoomSettings,
    /// The address put in the SFU's ICE candidate (NAT 1:1: may differ from the bound one).
    advertised: SocketAddr,
    socket: UdpSocket,
    demux: Demux<PeerId>,
    peers: HashMap<PeerId, Peer>,
    next_id: PeerId,
    stats: Stats,
}

/// Every participant's ICE password is random; the ufrag also names the participant
/// in the demux.
fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes
        .iter()
        .map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char)
        .collect()
}

fn random_ssrc() -> u32 {
    let mut b = [0u8; 4];
    getrandom::fill(&mut b).expect("the OS random source works");
    u32::from_be_bytes(b)
}

impl Room {
    /// A room with `settings` on `socket`, whose ICE candidate names `advertised`.
    pub fn new(settings: RoomSettings, advertised: SocketAddr, socket: UdpSocket) -> Self {
        Self {
            settings,
            advertised,
            socket,
            demux: Demux::default(),
            peers: HashMap::new(),
            next_id: 1,
            stats: Stats::default(),
        }
    }

    /// Runs until [`Command::Shutdown`] or until every command sender is gone.
    pub async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        let mut buf = vec![0u8; 2048];
        loop {
            self.flush(Instant::now()).await;
            let now = Instant::now();
            let deadline = self
                .peers
                .values_mut()
                .filter_map(|p| p.pc.poll_timeout())
                .min()
                .unwrap_or(now + Duration::from_secs(1))
                .min(now + Duration::from_secs(1));
            tokio::select! {
                cmd = commands.recv() => match cmd {
                    None | Some(Command::Shutdown) => {
                        self.shutdown();
                        return;
                    }
                    Some(cmd) => self.command(cmd, Instant::now()),
                },
                _ = tokio::time::sleep_until(deadline.into()) => self.timeouts(Instant::now()),
                r = self.socket.recv_from(&mut buf) => match r {
                    Ok((n, from)) => self.datagram(&buf[..n], from, Instant::now()),
                    Err(e) => debug!(error = %e, "udp receive"),
                },
            }
        }
    }

    fn shutdown(&mut self) {
        for (_, mut p) in self.peers.drain() {
            p.send(ServerMessage::error(
                ErrorCode::MeetingEnded,
                "the meeting has ended",
            ));
            let _ = p.outbound.send(Outbound::Close);
            let _ = p.pc.close();
        }
    }

    fn datagram(&mut self, data: &[u8], from: SocketAddr, now: Instant) {
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += data.len() as u64;
        let Some(id) = self.demux.route(data, from) else {
            self.stats.datagrams_unrouted += 1;
            return;
        };
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        let msg = TaggedBytesMut {
            now,
            transport: TransportContext {
                local_addr: self.advertised,
                peer_addr: from,
                ecn: None,
                transport_protocol: TransportProtocol::UDP,
            },
            message: BytesMut::from(data),
        };
        // A refused datagram (bad STUN, DTLS or SRTP) is counted, not logged: the
        // error names the sender's address.
        if peer.pc.handle_read(msg).is_err() {
            self.stats.datagrams_refused += 1;
        }
    }

    fn timeouts(&mut self, now: Instant) {
        let mut late = Vec::new();
        for (id, p) in &mut self.peers {
            if p.pc.poll_timeout().is_some_and(|t| t <= now) {
                let _ = p.pc.handle_timeout(now);
            }
            if !p.connected && now.duration_since(p.joined_at) > self.settings.ice_timeout {
                late.push(*id);
            }
        }
        for id in late {
            if let Some(p) = self.peers.get(&id) {
                p.send(ServerMessage::error(
                    ErrorCode::BadRequest,
                    "media did not connect in time",
                ));
                let _ = p.outbound.send(Outbound::Close);
            }
            self.remove(id, now);
        }
    }

    fn command(&mut self, cmd: Command, now: Instant) {
        match cmd {
            Command::Join {
                name,
                outbound,
                reply,
            } => {
                let _ = reply.send(self.join(name, outbound, now));
            }
            Command::Message { peer, msg } => self.message(peer, msg, now),
            Command::Gone { peer } => self.remove(peer, now),
            Command::Participants { reply } => {
                let _ = reply.send(self.peers.len() as u32);
            }
            Command::Stats { reply } => {
                let mut s = self.stats;
                s.participants = self.peers.len() as u32;
                // NACK handling lives in the interceptors; retransmissions are counted
                // in the peer connections' statistics. (Their `nack_count` stayed 0
                // in a test where a NACK was answered, so NACKs are not exported.)
                for p in self.peers.values_mut() {
                    let report = p.pc.get_stats(now, rtc::statistics::StatsSelector::None);
                    s.retransmits += report
                        .outbound_rtp_streams()
                        .map(|o| o.retransmitted_packets_sent)
                        .sum::<u64>();
                }
                let _ = reply.send(s);
            }
            Command::Shutdown => unreachable!("handled by run"),
        }
    }

    fn join(
        &mut self,
        name: String,
        outbound: mpsc::UnboundedSender<Outbound>,
        now: Instant,
    ) -> Result<PeerId, ErrorCode> {
        if self.peers.len() as u32 >= self.settings.max_participants {
            return Err(ErrorCode::RoomFull);
        }
        let ufrag = random_token(16);
        let pc = new_peer_connection(&ufrag, now).map_err(|e| {
            warn!(error = %e, "cannot create a peer connection");
            ErrorCode::BadRequest
        })?;
        let id = self.next_id;
        self.next_id += 1;
        self.demux.register(&ufrag, id);
        let peer = Peer {
            name,
            pc,
            outbound,
            published: Vec::new(),
            outgoing: HashMap::new(),
            ready: false,
            negotiating: false,
            needs_offer: false,
            connected: false,
            joined_at: now,
            audio_muted: false,
            video_muted: false,
        };
        let others: Vec<PeerInfo> = self.peers.iter().map(|(i, p)| p.info(*i)).collect();
        peer.send(ServerMessage::Welcome {
            id: id.to_string(),
            peers: others,
        });
        let info = peer.info(id);
        for p in self.peers.values() {
            p.send(ServerMessage::PeerJoined { peer: info.clone() });
        }
        self.peers.insert(id, peer);
        info!(participants = self.peers.len(), "participant joined");
        Ok(id)
    }

    fn remove(&mut self, id: PeerId, now: Instant) {
        let Some(mut gone) = self.peers.remove(&id) else {
            return;
        };
        let _ = gone.pc.close();
        self.demux.remove(id);
        for p in self.peers.values_mut() {
            let senders: Vec<RTCRtpSenderId> = p
                .outgoing
                .iter()
                .filter(|((publisher, _), _)| *publisher == id)
                .map(|(_, o)| o.sender)
                .collect();
            p.outgoing.retain(|(publisher, _), _| *publisher != id);
            for s in senders {
                let _ = p.pc.remove_track(s);
                p.needs_offer = true;
            }
            p.send(ServerMessage::PeerLeft { id: id.to_string() });
        }
        self.offer_where_needed(now);
        info!(participants = self.peers.len(), "participant left");
    }

    fn message(&mut self, id: PeerId, msg: ClientMessage, now: Instant) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        match msg {
            ClientMessage::Join { .. } => {
                peer.send(ServerMessage::error(
                    ErrorCode::BadRequest,
                    "already joined",
                ));
            }
            ClientMessage::Offer { sdp } => {
                if peer.negotiating {
                    peer.send(ServerMessage::error(
                        ErrorCode::BadRequest,
                        "answer the pending offer first",
                    ));
                    return;
                }
                match answer(&mut peer.pc, sdp, self.advertised, now) {
                    Ok(sdp) => {
                        let sdp = limit_video_bitrate(&sdp, self.settings.max_video_kbps);
                        peer.send(ServerMessage::Answer { sdp });
                        let first = !peer.ready;
                        peer.ready = true;
                        if first {
                            self.subscribe_to_everyone(id);
                        }
                        self.offer_where_needed(now);
                    }
                    Err(e) => {
                        debug!(peer = id, error = %e, "offer refused");
                        peer.send(ServerMessage::error(
                            ErrorCode::BadRequest,
                            "the offer could not be used",
                        ));
                        let _ = peer.outbound.send(Outbound::Close);
                        self.remove(id, now);
                    }
                }
            }
            ClientMessage::Answer { sdp } => {
                if !peer.negotiating {
                    peer.send(ServerMessage::error(
                        ErrorCode::BadRequest,
                        "there is no offer to answer",
                    ));
                    return;
                }
                let result = RTCSessionDescription::answer(sdp)
                    .map_err(Redacted::of("parsing the answer"))
                    .and_then(|d| {
                        peer.pc
                            .set_remote_description(now, d)
                            .map_err(Redacted::of("applying the answer"))
                    });
                match result {
                    Ok(()) => {
                        peer.negotiating = false;
                        self.after_answer(id, now);
                        self.offer_where_needed(now);
                    }
                    Err(e) => {
                        debug!(peer = id, error = %e, "answer refused");
                        peer.send(ServerMessage::error(
                            ErrorCode::BadRequest,
                            "the answer could not be used",
                        ));
                        let _ = peer.outbound.send(Outbound::Close);
                        self.remove(id, now);
                    }
                }
            }
            ClientMessage::Candidate { candidate } => {
                let init =
                    candidate.map_or_else(RTCIceCandidateInit::default, |c| RTCIceCandidateInit {
                        candidate: c.candidate,
                        sdp_mid: c.sdp_mid,
                        sdp_mline_index: c.sdp_m_line_index,
                        username_fragment: c.username_fragment,
                        url: None,
                    });
                if let Err(e) = peer
                    .pc
                    .add_remote_candidate(init)
                    .map_err(Redacted::of("adding a candidate"))
                {
                    debug!(peer = id, error = %e, "candidate refused");
                    peer.send(ServerMessage::error(
                        ErrorCode::BadRequest,
                        "the candidate could not be used",
                    ));
                }
            }
            ClientMessage::Chat { text } => {
                let from = id.to_string();
                for (other, p) in &self.peers {
                    if *other != id {
                        p.send(ServerMessage::Chat {
                            from: from.clone(),
                            text: text.clone(),
                        });
                    }
                }
            }
            ClientMessage::Mute { audio, video } => {
                peer.audio_muted = audio;
                peer.video_muted = video;
                for (other, p) in &self.peers {
                    if *other != id {
                        p.send(ServerMessage::Mute {
                            id: id.to_string(),
                            audio,
                            video,
                        });
                    }
                }
            }
            ClientMessage::Leave => {
                let _ = peer.outbound.send(Outbound::Close);
                self.remove(id, now);
            }
        }
    }

    /// A new participant's connection is ready: give it a sender for every track the
    /// others publish.
    fn subscribe_to_everyone(&mut self, subscriber: PeerId) {
        let tracks: Vec<(PeerId, Published)> = self
            .peers
            .iter()
            .filter(|(id, _)| **id != subscriber)
            .flat_map(|(id, p)| p.published.iter().map(|t| (*id, t.clone())))
            .collect();
        for (publisher, track) in tracks {
            self.add_outgoing(subscriber, publisher, &track);
        }
    }

    fn add_outgoing(&mut self, subscriber: PeerId, publisher: PeerId, track: &Published) {
        let Some(sub) = self.peers.get_mut(&subscriber) else {
            return;
        };
        if !sub.ready
            || sub
                .outgoing
                .contains_key(&(publisher, track.track_id.clone()))
        {
            return;
        }
        let ssrc = random_ssrc();
        let media = MediaStreamTrack::new(
            publisher.to_string(),
            format!("{publisher}-{}", track.track_id),
            format!("{publisher}-{}", track.track_id),
            track.kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: track.codec.clone(),
                ..Default::default()
            }],
        );
        match sub.pc.add_track(media) {
            Ok(sender) => {
                sub.outgoing.insert(
                    (publisher, track.track_id.clone()),
                    Outgoing {
                        sender,
                        ssrc,
                        payload_type: None,
                        negotiated: false,
                    },
                );
                sub.needs_offer = true;
            }
            Err(e) => debug!(subscriber, error = %e, "cannot add a track"),
        }
    }

    /// After a subscriber answered: its new senders are live; ask their publishers
    /// for a keyframe so the new video starts at once.
    fn after_answer(&mut self, subscriber: PeerId, now: Instant) {
        let Some(sub) = self.peers.get_mut(&subscriber) else {
            return;
        };
        let mut wanted = Vec::new();
        for ((publisher, track_id), out) in sub.outgoing.iter_mut() {
            if !out.negotiated {
                out.negotiated = true;
                wanted.push((*publisher, track_id.clone()));
            }
        }
        for (publisher, track_id) in wanted {
            self.request_keyframe(publisher, &track_id, now);
        }
    }

    /// Asks a publisher for a keyframe of one video track, at most every
    /// [`KEYFRAME_REQUEST_INTERVAL`]: a keyframe is large, and many subscribers asking at
    /// once must not make the publisher send one each.
    fn request_keyframe(&mut self, publisher: PeerId, track_id: &str, now: Instant) {
        let Some(p) = self.peers.get_mut(&publisher) else {
            return;
        };
        let Some(track) = p
            .published
            .iter_mut()
            .find(|t| t.track_id == track_id && t.kind == RtpCodecKind::Video)
        else {
            return;
        };
        if track
            .last_keyframe_request
            .is_some_and(|t| now.duration_since(t) < KEYFRAME_REQUEST_INTERVAL)
        {
            return;
        }
        track.last_keyframe_request = Some(now);
        let (receiver, ssrc) = (track.receiver, track.ssrc);
        if let Some(mut rx) = p.pc.rtp_receiver(receiver) {
            let pli = PictureLossIndication {
                sender_ssrc: 0,
                media_ssrc: ssrc,
            };
            if rx.write_rtcp(now, vec![Box::new(pli)]).is_ok() {
                self.stats.plis_sent += 1;
            }
        }
    }

    fn offer_where_needed(&mut self, now: Instant) {
        let ids: Vec<PeerId> = self.peers.keys().copied().collect();
        for id in ids {
            let Some(p) = self.peers.get_mut(&id) else {
                continue;
            };
            if !p.ready || p.negotiating || !p.needs_offer {
                continue;
            }
            let offer =
                p.pc.create_offer(None)
                    .and_then(|o| p.pc.set_local_description(now, o))
                    .map(|()| p.pc.local_description().map(|d| d.sdp).unwrap_or_default());
            match offer {
                Ok(sdp) => {
                    p.negotiating = true;
                    p.needs_offer = false;
                    p.send(ServerMessage::Offer { sdp });
                }
                Err(e) => warn!(peer = id, error = %e, "cannot create an offer"),
            }
        }
    }

    /// Drains every peer connection: events, RTP to forward, datagrams to send.
    async fn flush(&mut self, now: Instant) {
        let mut opened: Vec<(PeerId, Published)> = Vec::new();
        let mut forward: Vec<(PeerId, String, rtc::rtp::Packet)> = Vec::new();
        let mut keyframe_requests: Vec<String> = Vec::new();
        for (id, p) in &mut self.peers {
            while let Some(ev) = p.pc.poll_event() {
                match ev {
                    RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                        if let Some(rx) = p.pc.rtp_receiver(init.receiver_id) {
                            let track = rx.track();
                            let kind = track.kind();
                            let allowed = match kind {
                                RtpCodecKind::Audio => self.settings.audio,
                                RtpCodecKind::Video => self.settings.video,
                                _ => false,
                            };
                            // A kind the meeting switched off is never published, nor a
                            // second track of a kind (one microphone, one camera): their
                            // packets find no subscriber and are dropped.
                            if !allowed || p.published.iter().any(|t| t.kind == kind) {
                                continue;
                            }
                            if let Some(codec) = track.codec(init.ssrc).cloned() {
                                let published = Published {
                                    last_keyframe_request: None,
                                    track_id: init.track_id.to_string(),
                                    kind,
                                    codec,
                                    receiver: init.receiver_id,
                                    ssrc: init.ssrc,
                                };
                                p.published.push(published.clone());
                                opened.push((*id, published));
                            }
                        }
                    }
                    RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                        RTCPeerConnectionState::Connected,
                    ) => {
                        p.connected = true;
                    }
                    _ => {}
                }
            }
            while let Some(TaggedRTCMessage { message, .. }) = p.pc.poll_read() {
                match message {
                    RTCMessage::RtpPacket(track_id, packet) => {
                        forward.push((*id, track_id.to_string(), packet))
                    }
                    RTCMessage::RtcpPacket(track_id, packets)
                        if packets
                            .iter()
                            .any(|p| super::keyframes::is_keyframe_request(p.as_ref())) =>
                    {
                        keyframe_requests.push(track_id.to_string());
                    }
                    _ => {}
                }
            }
        }
        for (publisher, track) in opened {
            let subscribers: Vec<PeerId> = self
                .peers
                .keys()
                .copied()
                .filter(|i| *i != publisher)
                .collect();
            for s in subscribers {
                self.add_outgoing(s, publisher, &track);
            }
        }
        if !forward.is_empty() || self.peers.values().any(|p| p.needs_offer) {
            self.offer_where_needed(now);
        }
        for track in keyframe_requests {
            self.stats.keyframe_requests_in += 1;
            // Our senders' track ids are `<publisher>-<publisher's track id>`.
            if let Some((publisher, source)) = track.split_once('-')
                && let Ok(publisher) = publisher.parse()
            {
                self.request_keyframe(publisher, source, now);
            }
        }
        for (publisher, track_id, packet) in forward {
            self.stats.rtp_in += 1;
            self.forward(publisher, &track_id, packet, now);
        }
        for p in self.peers.values_mut() {
            while let Some(out) = p.pc.poll_write() {
                match self
                    .socket
                    .send_to(&out.message, out.transport.peer_addr)
                    .await
                {
                    Ok(n) => {
                        self.stats.datagrams_out += 1;
                        self.stats.bytes_out += n as u64;
                    }
                    Err(e) => debug!(error = %e, "udp send"),
                }
            }
        }
    }

    fn forward(
        &mut self,
        publisher: PeerId,
        track_id: &str,
        packet: rtc::rtp::Packet,
        now: Instant,
    ) {
        let key = (publisher, track_id.to_owned());
        let codec = self
            .peers
            .get(&publisher)
            .and_then(|p| p.published.iter().find(|t| t.track_id == track_id))
            .map(|t| t.codec.clone());
        let Some(codec) = codec else { return };
        for (id, sub) in &mut self.peers {
            if *id == publisher {
                continue;
            }
            let Some(out) = sub.outgoing.get_mut(&key) else {
                continue;
            };
            if !out.negotiated {
                continue;
            }
            let Some(mut sender) = sub.pc.rtp_sender(out.sender) else {
                continue;
            };
            if out.payload_type.is_none() {
                out.payload_type = sender
                    .get_parameters()
                    .rtp_parameters
                    .codecs
                    .iter()
                    .find(|c| c.rtp_codec.mime_type.eq_ignore_ascii_case(&codec.mime_type))
                    .map(|c| c.payload_type);
            }
            let Some(pt) = out.payload_type else {
                self.stats.rtp_dropped += 1;
                continue;
            };
            let mut p = packet.clone();
            p.header.ssrc = out.ssrc;
            p.header.payload_type = pt;
            // Header extensions were negotiated on the publisher's leg, not this one.
            p.header.extension = false;
            p.header.extensions.clear();
            match sender.write_rtp(now, p) {
                Ok(()) => self.stats.rtp_forwarded += 1,
                Err(_) => self.stats.rtp_dropped += 1,
            }
        }
    }
}

fn new_peer_connection(
    ufrag: &str,
    now: Instant,
) -> Result<RTCPeerConnection, rtc::shared::error::Error> {
    let mut media = MediaEngine::default();
    media.register_default_codecs()?;
    // Subscribers' keyframe requests are marked for the application first; the default
    // chain (NACK responder and generator, reports, TWCC) follows.
    let registry = Registry::new().with(
        rtc::interceptor::Slot::from(14_000),
        super::keyframes::DeliverKeyframeRequests::default(),
    );
    let registry = register_default_interceptors(registry, &mut media)?;
    let settings = SettingEngineBuilder::new()
        .with_lite(true)
        .with_ice_credentials(ufrag.to_owned(), random_token(24))
        .build();
    RTCPeerConnectionBuilder::new()
        .with_configuration(RTCConfigurationBuilder::new().build())
        .with_media_engine(media)
        .with_setting_engine(settings)
        .with_interceptor_registry(registry)
        .build(now)
}

/// Answers a participant's offer; the answer carries the room's one candidate.
fn answer(
    pc: &mut RTCPeerConnection,
    sdp: String,
    advertised: SocketAddr,
    now: Instant,
) -> Result<String, Redacted> {
    let offer = RTCSessionDescription::offer(sdp).map_err(Redacted::of("parsing the offer"))?;
    pc.set_remote_description(now, offer)
        .map_err(Redacted::of("applying the offer"))?;
    let answer = pc
        .create_answer(None)
        .map_err(Redacted::of("creating the answer"))?;
    pc.set_local_description(now, answer)
        .map_err(Redacted::of("applying the answer"))?;
    if pc
        .local_description()
        .is_some_and(|d| !d.sdp.contains("a=candidate"))
    {
        let host = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".into(),
                address: advertised.ip().to_string(),
                port: advertised.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .map_err(Redacted::of("making the candidate"))?;
        let init = RTCIceCandidate::from(&host)
            .to_json()
            .map_err(Redacted::of("making the candidate"))?;
        pc.add_local_candidate(init)
            .map_err(Redacted::of("adding the candidate"))?;
        pc.add_local_candidate(RTCIceCandidateInit::default())
            .map_err(Redacted::of("ending the candidates"))?;
    }
    Ok(pc.local_description().map(|d| d.sdp).unwrap_or_default())
}

/// Adds `b=AS:<kbps>` to every video section of `sdp` (after its `c=` line, where
/// RFC 4566 puts bandwidth lines), so the participant's browser sends at most that.
pub fn limit_video_bitrate(sdp: &str, kbps: u32) -> String {
    let mut out = String::with_capacity(sdp.len() + 32);
    let mut in_video = false;
    let mut pending = false;
    for line in sdp.split_inclusive('\n') {
        let text = line.trim_end();
        if text.starts_with("m=") {
            if pending {
                out.push_str(&format!("b=AS:{kbps}\r\n"));
            }
            in_video = text.starts_with("m=video");
            pending = in_video;
            out.push_str(line);
            continue;
        }
        if in_video && text.starts_with("b=") {
            continue; // ours replaces any other
        }
        if pending && !text.starts_with("i=") && !text.starts_with("c=") {
            out.push_str(&format!("b=AS:{kbps}\r\n"));
            pending = false;
        }
        out.push_str(line);
    }
    if pending {
        out.push_str(&format!("b=AS:{kbps}\r\n"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn video_sections_get_a_bandwidth_line_after_their_connection_line() {
        let sdp = "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\nb=AS:5000\r\na=mid:1\r\n";
        let limited = limit_video_bitrate(sdp, 800);
        assert_eq!(
            limited,
            "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\nc=IN IP4 0.0.0.0\r\na=mid:0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\nc=IN IP4 0.0.0.0\r\nb=AS:800\r\na=mid:1\r\n"
        );
        // A video section that ends the SDP right after its c= line.
        assert!(
            limit_video_bitrate("m=video 9 X 96\r\nc=IN IP4 0.0.0.0\r\n", 100)
                .ends_with("b=AS:100\r\n")
        );
        // No video: unchanged.
        let audio_only = "v=0\r\nm=audio 9 X 111\r\nc=IN IP4 0.0.0.0\r\n";
        assert_eq!(limit_video_bitrate(audio_only, 100), audio_only);
    }
}
