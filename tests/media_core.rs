//! The sans-IO media core on a virtual clock: a `RoomCore` and real WebRTC peers of
//! the `rtc` crate (its sans-IO `RTCPeerConnection`, with its default interceptors:
//! NACK, reports, transport-wide congestion control) exchange datagrams in memory, as
//! str0m's tests do. Time only moves when the test moves it, so nothing here sleeps
//! and every run is the same run. The network between them can lose, reorder and stop
//! delivering.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use raum::media::room::{Advertised, Outbound, PeerId, RoomCore};
use raum::media::{Remote, Transport};
use raum::rooms::RoomSettings;
use raum::signaling::{ClientMessage, ErrorCode, Role, ServerMessage};
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
use rtc::peer_connection::transport::{CandidateConfig, CandidateHostConfig, RTCIceCandidate};
use rtc::peer_connection::{RTCPeerConnection, RTCPeerConnectionBuilder};
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodingParameters, RTCRtpEncodingParameters, RTCRtpHeaderExtensionCapability, RtpCodecKind,
};
use rtc::rtp_transceiver::{RTCRtpReceiverId, RTCRtpSenderId};
use rtc::sansio::Protocol;
use rtc::shared::{TaggedBytesMut, TransportContext, TransportProtocol};

const ROOM: &str = "127.0.0.1:50000";
const MAGIC: &[u8] = b"raum-test";
/// A VP8 payload descriptor (start of partition 0) and a keyframe's first byte.
const VP8_KEYFRAME: &[u8] = &[0x10, 0x00];
const STEP: Duration = Duration::from_millis(2);

fn room_addr() -> SocketAddr {
    ROOM.parse().unwrap()
}

/// What one client received of one publisher's track.
#[derive(Debug, Default)]
struct Stream {
    seqs: Vec<u16>,
    /// Simulcast: the layer, keyframe flag and VP8 picture ID of each packet.
    frames: Vec<(u8, bool, u16)>,
    /// Payloads that did not name this publisher and kind, or were cut.
    corrupt: u64,
}

/// A participant: an `rtc` peer connection, joined to the room.
struct Client {
    name: String,
    id: PeerId,
    addr: SocketAddr,
    /// How its datagrams reach the room (ICE-TCP: the driver's framing is not the
    /// core's business, so here only the path's name changes).
    transport: Transport,
    pc: RTCPeerConnection,
    messages: Vec<ServerMessage>,
    closed: bool,
    audio: Option<(RTCRtpSenderId, u32)>,
    video: Option<(RTCRtpSenderId, u32)>,
    seq: u16,
    connected: bool,
    receivers: HashMap<RTCRtpReceiverId, (String, RtpCodecKind)>,
    received: HashMap<(String, RtpCodecKind), Stream>,
    /// The sequence numbers it sent, by kind.
    sent: HashMap<RtpCodecKind, u64>,
    /// Simulcast video: its sender, the three layers' SSRCs, its mid, and per layer
    /// packets sent, whether a keyframe is due, and whether the layer is on.
    simulcast: Option<Simulcast>,
    /// Keyframe requests it received, by media SSRC.
    plis: Vec<u32>,
    /// The audio level its microphone sends (RFC 6464: 0 loudest, 127 silence).
    level: u8,
    /// A screen share it sends (a second video track), if any, and its transceiver.
    screen: Option<(RTCRtpSenderId, u32)>,
    screen_transceiver: Option<rtc::rtp_transceiver::RTCRtpTransceiverId>,
}

struct Simulcast {
    sender: RTCRtpSenderId,
    ssrcs: [u32; 3],
    mid: String,
    sent: [u16; 3],
    frames: [u16; 3],
    keyframe_due: [bool; 3],
    on: [bool; 3],
    rid_ids: Option<(u8, u8)>,
}

const RIDS: [&str; 3] = ["q", "h", "f"];

/// Opus and VP8 as the web client sends them.
fn codec(kind: RtpCodecKind) -> rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
    match kind {
        RtpCodecKind::Audio => rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
            mime_type: "audio/opus".into(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
            rtcp_feedback: vec![],
        },
        _ => rtc::rtp_transceiver::rtp_sender::RTCRtpCodec {
            mime_type: "video/VP8".into(),
            clock_rate: 90000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
    }
}

impl Client {
    fn new(name: &str, n: u8, now: Instant) -> Client {
        let mut media = MediaEngine::default();
        media.register_default_codecs().unwrap();
        // The browser's microphone says how loud it is.
        media
            .register_header_extension(
                RTCRtpHeaderExtensionCapability {
                    uri: raum::media::sdp::ext::AUDIO_LEVEL.into(),
                },
                RtpCodecKind::Audio,
                None,
            )
            .unwrap();

        let registry = register_default_interceptors(Registry::new(), &mut media).unwrap();
        // Liveness as a browser judges it. These peers (rtc 0.21) count only STUN
        // responses as proof the path lives, not the media arriving on it, and drop all
        // media while they think it dead: with a quarter of the downlink lost, two
        // keepalive responses lost in a row (1 in 16) left a peer 5 s without one,
        // "disconnected" and deaf to a track opening just then (1 in about 6,000
        // joins of the lossy-downlink test). Chromium counts every packet received, and
        // consent expires after 30 s without a response (RFC 7675), so that is the
        // limit here too. No test here watches these peers' own connection state go
        // down; the room's timeouts are what the tests of lost participants measure.
        let settings = SettingEngineBuilder::new()
            .with_ice_timeouts(Some(Duration::from_secs(30)), None, None)
            .build();
        let pc = RTCPeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_setting_engine(settings)
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .build(now)
            .unwrap();
        Client {
            name: name.to_owned(),
            id: 0,
            addr: format!("127.0.1.{n}:40000").parse().unwrap(),
            transport: Transport::Udp,
            pc,
            messages: Vec::new(),
            closed: false,
            audio: None,
            video: None,
            seq: 0,
            connected: false,
            receivers: HashMap::new(),
            received: HashMap::new(),
            sent: HashMap::new(),
            simulcast: None,
            plis: Vec::new(),
            level: 127,
            screen: None,
            screen_transceiver: None,
        }
    }

    /// Adds a camera sending three simulcast layers (rids q, h, f: lowest first).
    fn add_simulcast_video(&mut self) {
        let ssrcs = [0, 1, 2].map(|i| 0x2000_0000 + self.id * 16 + i);
        let track = MediaStreamTrack::new(
            format!("client-{}", self.id),
            format!("video-{}", self.id),
            format!("video-{}", self.id),
            RtpCodecKind::Video,
            (0..3)
                .map(|i| RTCRtpEncodingParameters {
                    rtp_coding_parameters: RTCRtpCodingParameters {
                        rid: RIDS[i].into(),
                        ssrc: Some(ssrcs[i]),
                        ..Default::default()
                    },
                    codec: codec(RtpCodecKind::Video),
                    ..Default::default()
                })
                .collect(),
        );
        let sender = self.pc.add_track(track).unwrap();
        self.simulcast = Some(Simulcast {
            sender,
            ssrcs,
            mid: String::new(),
            sent: [0; 3],
            frames: [0; 3],
            keyframe_due: [true; 3],
            on: [true; 3],
            rid_ids: None,
        });
    }

    /// One frame (one packet) of each simulcast layer that is on: a keyframe when one
    /// is due (the first, and after a keyframe request), else an interframe. The
    /// payload names the client, the layer and the frame.
    fn send_simulcast(&mut self, now: Instant) {
        let Some(sc) = self.simulcast.as_mut() else {
            return;
        };
        let Some(mut s) = self.pc.rtp_sender(sc.sender) else {
            return;
        };
        let params = s.get_parameters();
        let Some(pt) = params.rtp_parameters.codecs.first().map(|c| c.payload_type) else {
            return;
        };
        if sc.rid_ids.is_none() {
            let id = |uri: &str| {
                params
                    .rtp_parameters
                    .header_extensions
                    .iter()
                    .find(|h| h.uri == uri)
                    .map(|h| h.id as u8)
            };
            sc.rid_ids = id(raum::media::sdp::ext::MID).zip(id(raum::media::sdp::ext::RID));
        }
        let Some((mid_id, rid_id)) = sc.rid_ids else {
            return;
        };
        for (layer, rid) in RIDS.iter().enumerate() {
            if !sc.on[layer] {
                continue;
            }
            // Frames of 1, 2 and 5 packets: about 260, 530 and 1,300 kbit/s.
            sc.frames[layer] = sc.frames[layer].wrapping_add(1);
            let n = sc.frames[layer];
            // The rtc crate does not hand a sender's keyframe requests to the
            // application, so besides answering them (when it does) the camera
            // sends a keyframe every 10 frames, each layer at another time.
            let key = std::mem::take(&mut sc.keyframe_due[layer])
                || (n + 3 * layer as u16).is_multiple_of(10);
            let packets = [1, 2, 5][layer];
            for k in 0..packets {
                sc.sent[layer] = sc.sent[layer].wrapping_add(1);
                let seq = sc.sent[layer];
                let mut text = MAGIC.to_vec();
                text.extend_from_slice(format!("{}:Video:{layer}:{n}:", self.id).as_bytes());
                text.resize(1000, 0xcd);
                let (w, h) = (320 << layer, 180 << layer);
                let pid = n % 0x8000;
                let payload = if key && k == 0 {
                    raum::media::vp8::keyframe_payload(pid, n as u8, w, h, &text)
                } else {
                    raum::media::vp8::interframe_payload(pid, n as u8, k == 0, &text)
                };
                let mut header = rtc::rtp::header::Header {
                    version: 2,
                    payload_type: pt,
                    sequence_number: seq.wrapping_add(1000 * layer as u16),
                    timestamp: u32::from(n).wrapping_mul(3000),
                    ssrc: sc.ssrcs[layer],
                    marker: k + 1 == packets,
                    ..Default::default()
                };
                header
                    .set_extension(mid_id, bytes::Bytes::from(sc.mid.clone().into_bytes()))
                    .unwrap();
                header
                    .set_extension(rid_id, bytes::Bytes::from_static(rid.as_bytes()))
                    .unwrap();
                let _ = s.write_rtp(
                    now,
                    rtc::rtp::Packet {
                        header,
                        payload: bytes::Bytes::from(payload),
                    },
                );
            }
        }
    }

    fn add_track(&mut self, kind: RtpCodecKind) -> (RTCRtpSenderId, u32) {
        let ssrc = 0x1000_0000 + self.id * 16 + if kind == RtpCodecKind::Audio { 1 } else { 2 };
        let label = if kind == RtpCodecKind::Audio {
            "audio"
        } else {
            "video"
        };
        let track = MediaStreamTrack::new(
            format!("client-{}", self.id),
            format!("{label}-{}", self.id),
            format!("{label}-{}", self.id),
            kind,
            vec![RTCRtpEncodingParameters {
                rtp_coding_parameters: RTCRtpCodingParameters {
                    ssrc: Some(ssrc),
                    ..Default::default()
                },
                codec: codec(kind),
                ..Default::default()
            }],
        );
        (self.pc.add_track(track).unwrap(), ssrc)
    }

    /// Its first offer: a microphone and a camera (or a simulcast camera added
    /// before).
    fn offer(&mut self, now: Instant, audio: bool, video: bool) -> String {
        if audio {
            self.audio = Some(self.add_track(RtpCodecKind::Audio));
        }
        if video {
            self.video = Some(self.add_track(RtpCodecKind::Video));
        }
        let host = CandidateHostConfig {
            base_config: CandidateConfig {
                network: "udp".into(),
                address: self.addr.ip().to_string(),
                port: self.addr.port(),
                component: 1,
                ..Default::default()
            },
            ..Default::default()
        }
        .new_candidate_host()
        .unwrap();
        self.pc
            .add_local_candidate(RTCIceCandidate::from(&host).to_json().unwrap())
            .unwrap();
        let offer = self.pc.create_offer(None).unwrap();
        self.pc.set_local_description(now, offer).unwrap();
        let sdp = self.pc.local_description().unwrap().sdp;
        if let Some(sc) = self.simulcast.as_mut() {
            // The mid of the (only) video section.
            let video = sdp.split("m=video").nth(1).unwrap_or_default();
            sc.mid = video
                .lines()
                .find_map(|l| l.strip_prefix("a=mid:"))
                .unwrap_or_default()
                .trim()
                .to_owned();
        }
        sdp
    }

    /// Sends one packet of `kind` whose payload names this client, the kind and the
    /// sequence number.
    fn send_media(&mut self, now: Instant, kind: RtpCodecKind) {
        let Some((sender, ssrc)) = (match kind {
            RtpCodecKind::Audio => self.audio,
            _ => self.video,
        }) else {
            return;
        };
        let Some(mut s) = self.pc.rtp_sender(sender) else {
            return;
        };
        let params = s.get_parameters();
        let Some(pt) = params.rtp_parameters.codecs.first().map(|c| c.payload_type) else {
            return;
        };
        let level_id = params
            .rtp_parameters
            .header_extensions
            .iter()
            .find(|h| h.uri == raum::media::sdp::ext::AUDIO_LEVEL)
            .map(|h| h.id as u8);
        let n = self.sent.entry(kind).or_default();
        *n += 1;
        let seq = *n as u16;
        // Video starts with a VP8 descriptor of a keyframe (the room switches a
        // subscriber on at a keyframe): every packet is one here.
        let mut payload = if kind == RtpCodecKind::Audio {
            Vec::new()
        } else {
            VP8_KEYFRAME.to_vec()
        };
        payload.extend_from_slice(MAGIC);
        payload.extend_from_slice(format!("{}:{kind:?}:{seq}:", self.id).as_bytes());
        let size = if kind == RtpCodecKind::Audio {
            120
        } else {
            1100
        };
        payload.resize(size, 0xab);
        let mut packet = rtc::rtp::Packet {
            header: rtc::rtp::header::Header {
                version: 2,
                payload_type: pt,
                sequence_number: seq,
                timestamp: u32::from(seq).wrapping_mul(if kind == RtpCodecKind::Audio {
                    960
                } else {
                    3000
                }),
                ssrc,
                marker: kind != RtpCodecKind::Audio,
                ..Default::default()
            },
            payload: bytes::Bytes::from(payload),
        };
        if kind == RtpCodecKind::Audio
            && let Some(id) = level_id
        {
            // The voice-activity bit and the level.
            let v = 0x80 | self.level.min(127);
            packet
                .header
                .set_extension(id, bytes::Bytes::copy_from_slice(&[v]))
                .unwrap();
        }
        let _ = s.write_rtp(now, packet);
        self.seq = self.seq.wrapping_add(1);
    }

    /// How many packets of `from`'s `kind` it received.
    fn count(&self, from: PeerId, kind: RtpCodecKind) -> usize {
        self.received
            .get(&(from.to_string(), kind))
            .map_or(0, |s| s.seqs.len())
    }

    /// Its path to the room.
    fn path(&self) -> Remote {
        Remote {
            transport: self.transport,
            addr: self.addr,
        }
    }

    fn stream(&self, from: PeerId, kind: RtpCodecKind) -> Option<&Stream> {
        self.received.get(&(from.to_string(), kind))
    }

    fn handle_signaling(&mut self, now: Instant, msg: ServerMessage) -> Option<ClientMessage> {
        self.messages.push(msg.clone());
        match msg {
            ServerMessage::Answer { sdp } => {
                self.pc
                    .set_remote_description(now, RTCSessionDescription::answer(sdp).unwrap())
                    .unwrap();
                None
            }
            ServerMessage::Offer { sdp } => {
                self.pc
                    .set_remote_description(now, RTCSessionDescription::offer(sdp).unwrap())
                    .unwrap();
                let answer = self.pc.create_answer(None).unwrap();
                self.pc.set_local_description(now, answer).unwrap();
                Some(ClientMessage::Answer {
                    sdp: self.pc.local_description().unwrap().sdp,
                })
            }
            _ => None,
        }
    }

    /// Events and received media.
    fn poll(&mut self) {
        while let Some(ev) = self.pc.poll_event() {
            match ev {
                RTCPeerConnectionEvent::OnConnectionStateChangeEvent(
                    RTCPeerConnectionState::Connected,
                ) => self.connected = true,
                RTCPeerConnectionEvent::OnTrack(RTCTrackEvent::OnOpen(init)) => {
                    let kind = self
                        .pc
                        .rtp_receiver(init.receiver_id)
                        .map(|r| r.track().kind())
                        .unwrap();
                    let stream = init
                        .stream_ids
                        .first()
                        .map(|s| s.to_string())
                        .unwrap_or_default();
                    self.receivers.insert(init.receiver_id, (stream, kind));
                }
                _ => {}
            }
        }
        while let Some(TaggedRTCMessage { message, .. }) = self.pc.poll_read() {
            if let RTCMessage::RtcpPacket(_, packets) = &message {
                for p in packets {
                    if let Some(pli) = p
                        .as_any()
                        .downcast_ref::<rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication>()
                    {
                        self.plis.push(pli.media_ssrc);
                        if let Some(sc) = self.simulcast.as_mut()
                            && let Some(l) = sc.ssrcs.iter().position(|s| *s == pli.media_ssrc)
                        {
                            sc.keyframe_due[l] = true;
                        }
                    }
                }
            }
            if let RTCMessage::RtpPacket(track_id, packet) = message {
                // Which publisher: the stream id of the receiver this track belongs to.
                let owner = self
                    .receivers
                    .values()
                    .find(|(s, k)| {
                        let label = if *k == RtpCodecKind::Audio {
                            "audio"
                        } else {
                            "video"
                        };
                        track_id.as_str() == format!("{s}-{label}")
                    })
                    .cloned();
                let Some((stream, kind)) = owner else {
                    continue;
                };
                let entry = self.received.entry((stream.clone(), kind)).or_default();
                let simulcast = kind == RtpCodecKind::Video
                    && !packet.payload.starts_with(VP8_KEYFRAME)
                    && packet.payload.len() > 8;
                let p = if kind == RtpCodecKind::Audio {
                    &packet.payload[..]
                } else if simulcast {
                    let at = packet
                        .payload
                        .windows(MAGIC.len())
                        .position(|w| w == MAGIC)
                        .unwrap_or(packet.payload.len());
                    &packet.payload[at..]
                } else {
                    packet
                        .payload
                        .strip_prefix(VP8_KEYFRAME)
                        .unwrap_or_default()
                };
                // A screen share (stream `<id>-screen`) is its publisher's too.
                let publisher = stream.strip_suffix("-screen").unwrap_or(&stream);
                let expect = format!("{publisher}:{kind:?}:");
                let ok = p.starts_with(MAGIC) && p[MAGIC.len()..].starts_with(expect.as_bytes());
                if ok {
                    entry.seqs.push(packet.header.sequence_number);
                    if simulcast {
                        let d = raum::media::vp8::Descriptor::parse(&packet.payload).unwrap();
                        let rest = &p[MAGIC.len() + expect.len()..];
                        entry.frames.push((
                            rest[0] - b'0',
                            d.keyframe,
                            d.read_picture_id(&packet.payload).unwrap(),
                        ));
                    }
                } else {
                    entry.corrupt += 1;
                }
            }
        }
    }
}

/// What the network between the clients and the room does to a datagram.
type Fate = Box<dyn FnMut(Direction, &[u8]) -> bool>;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Direction {
    /// From the room to client `n`.
    Down(usize),
    /// From client `n` to the room.
    Up(usize),
}

/// The room, its clients and the network between them.
struct World {
    start: Instant,
    now: Instant,
    room: RoomCore,
    clients: Vec<Client>,
    /// Decides whether each datagram is delivered.
    deliver: Fate,
    /// Datagrams held back one step, to reorder them.
    reorder: bool,
    held: Vec<(Direction, Vec<u8>)>,
    /// Clients that stopped reading.
    deaf: Vec<usize>,
    /// A narrow link to one client: its rate in bits per second, when it is free
    /// again, what is on its way (and when it arrives), and the bytes it delivered.
    link: Option<Link>,
    /// Datagrams the room sent to a path no client has.
    strays: u64,
}

struct Link {
    client: usize,
    bps: u64,
    free_at: Instant,
    queue: std::collections::VecDeque<(Instant, Vec<u8>)>,
    delivered: u64,
    /// Bytes the room sent into it (delivered or dropped).
    offered: u64,
}

impl World {
    fn new(settings: RoomSettings) -> World {
        Self::advertising(settings, Advertised::udp(room_addr()))
    }

    fn advertising(settings: RoomSettings, advertised: Advertised) -> World {
        let now = Instant::now();
        World {
            strays: 0,
            start: now,
            now,
            room: RoomCore::new(settings, advertised, now).unwrap(),
            clients: Vec::new(),
            deliver: Box::new(|_, _| true),
            reorder: false,
            held: Vec::new(),
            deaf: Vec::new(),
            link: None,
        }
    }

    /// From now on what the room sends client `i` goes through a link of `bps`
    /// with a queue of at most 100 ms (then it drops, as `tc tbf latency 100ms`).
    fn narrow(&mut self, i: usize, bps: u64) {
        self.link = Some(Link {
            client: i,
            bps,
            free_at: self.now,
            queue: Default::default(),
            delivered: 0,
            offered: 0,
        });
    }

    /// Delivers what the narrow link has carried by now.
    fn drain_link(&mut self) {
        let now = self.now;
        let mut due = Vec::new();
        if let Some(l) = self.link.as_mut() {
            while l.queue.front().is_some_and(|(at, _)| *at <= now) {
                let (_, b) = l.queue.pop_front().unwrap();
                l.delivered += b.len() as u64;
                due.push((Direction::Down(l.client), b));
            }
        }
        for (d, b) in due {
            self.arrive(d, b);
        }
    }

    /// A client joins and offers its media; returns its index.
    fn join(&mut self, name: &str, audio: bool, video: bool) -> usize {
        self.join_over(name, audio, video, Transport::Udp)
    }

    /// Client `i` sends `msg`.
    fn say(&mut self, i: usize, msg: ClientMessage) {
        let (now, id) = (self.now, self.clients[i].id);
        self.room.handle_message(now, id, msg);
    }

    /// A client joins with the host link's token.
    fn join_host(&mut self, name: &str, audio: bool, video: bool) -> usize {
        self.join_full(name, audio, video, Transport::Udp, Role::Host)
    }

    /// The same over `transport`.
    fn join_over(&mut self, name: &str, audio: bool, video: bool, transport: Transport) -> usize {
        self.join_full(name, audio, video, transport, Role::Participant)
    }

    fn join_full(
        &mut self,
        name: &str,
        audio: bool,
        video: bool,
        transport: Transport,
        role: Role,
    ) -> usize {
        let n = self.clients.len();
        let mut c = Client::new(name, n as u8 + 1, self.now);
        c.transport = transport;
        c.id = self
            .room
            .join_as(self.now, name.to_owned(), Vec::new(), role)
            .expect("joined");
        let sdp = c.offer(self.now, audio, video);
        self.room
            .handle_message(self.now, c.id, ClientMessage::Offer { sdp, screen: None });
        self.clients.push(c);
        self.pump();
        n
    }

    /// A client joins with a microphone and a simulcast camera.
    fn join_simulcast(&mut self, name: &str) -> usize {
        let n = self.clients.len();
        let mut c = Client::new(name, n as u8 + 1, self.now);
        c.id = self.room.join(self.now, name.to_owned()).expect("joined");
        c.add_simulcast_video();
        let sdp = c.offer(self.now, true, false);
        self.room
            .handle_message(self.now, c.id, ClientMessage::Offer { sdp, screen: None });
        self.clients.push(c);
        self.pump();
        n
    }

    /// Client `i` shows the others' video in tiles of these sizes.
    fn layout(&mut self, i: usize, tiles: &[(PeerId, u32, u32)]) {
        let tiles = tiles
            .iter()
            .map(|&(id, width, height)| raum::signaling::Tile {
                id: id.to_string(),
                width,
                height,
            })
            .collect();
        let id = self.clients[i].id;
        self.room
            .handle_message(self.now, id, ClientMessage::Layout { tiles });
        self.pump();
    }

    fn client_of(&self, id: PeerId) -> Option<usize> {
        self.clients.iter().position(|c| c.id == id && !c.closed)
    }

    /// Moves signaling and datagrams until nothing moves.
    fn pump(&mut self) {
        for _ in 0..50 {
            let mut moved = false;
            while let Some((id, out)) = self.room.poll_outbound() {
                moved = true;
                let Some(i) = self.client_of(id) else {
                    continue;
                };
                match out {
                    Outbound::Close => self.clients[i].closed = true,
                    Outbound::Message(m) => {
                        let now = self.now;
                        if let Some(reply) = self.clients[i].handle_signaling(now, m) {
                            self.room.handle_message(now, id, reply);
                        }
                    }
                }
            }
            while let Some(t) = self.room.poll_transmit() {
                moved = true;
                let to = t.to;
                let bytes = t.buf.as_slice().to_vec();
                self.room.recycle(t.buf);
                let Some(i) = self.clients.iter().position(|c| c.path() == to) else {
                    self.strays += 1;
                    continue;
                };
                self.carry(Direction::Down(i), bytes);
            }
            for i in 0..self.clients.len() {
                while let Some(w) = self.clients[i].pc.poll_write() {
                    moved = true;
                    assert_eq!(
                        w.transport.peer_addr,
                        room_addr(),
                        "clients talk to the room only"
                    );
                    self.carry(Direction::Up(i), w.message.to_vec());
                }
                self.clients[i].poll();
            }
            if !moved {
                break;
            }
        }
    }

    fn carry(&mut self, dir: Direction, bytes: Vec<u8>) {
        if !(self.deliver)(dir, &bytes) {
            return;
        }
        if let Some(l) = self.link.as_mut()
            && dir == Direction::Down(l.client)
        {
            l.offered += bytes.len() as u64;
            if l.free_at.saturating_duration_since(self.now) > Duration::from_millis(100) {
                return; // the queue is full: dropped
            }
            let service = Duration::from_nanos(bytes.len() as u64 * 8 * 1_000_000_000 / l.bps);
            l.free_at = l.free_at.max(self.now) + service;
            l.queue.push_back((l.free_at, bytes));
            return;
        }
        if self.reorder && self.held.is_empty() {
            self.held.push((dir, bytes));
            return;
        }
        self.arrive(dir, bytes);
        if self.reorder
            && let Some((d, b)) = self.held.pop()
        {
            self.arrive(d, b);
        }
    }

    fn arrive(&mut self, dir: Direction, mut bytes: Vec<u8>) {
        match dir {
            Direction::Up(i) => {
                let from = self.clients[i].path();
                self.room.handle_datagram(self.now, from, &mut bytes);
            }
            Direction::Down(i) => {
                if self.deaf.contains(&i) || self.clients[i].closed {
                    return;
                }
                let c = &mut self.clients[i];
                let msg = TaggedBytesMut {
                    now: self.now,
                    transport: TransportContext {
                        local_addr: c.addr,
                        peer_addr: room_addr(),
                        ecn: None,
                        transport_protocol: TransportProtocol::UDP,
                    },
                    message: BytesMut::from(&bytes[..]),
                };
                let _ = c.pc.handle_read(msg);
            }
        }
    }

    /// Runs the clock for `d`: every client sends audio every 20 ms and video about
    /// 100 packets a second; every timer fires when due.
    fn run(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += STEP;
            let now = self.now;
            let t = now.duration_since(self.start).as_millis();
            for c in &mut self.clients {
                if c.closed || !c.connected {
                    continue;
                }
                if t.is_multiple_of(20) {
                    c.send_media(now, RtpCodecKind::Audio);
                }
                if t.is_multiple_of(10) {
                    c.send_media(now, RtpCodecKind::Video);
                }
                if t.is_multiple_of(30) {
                    c.send_simulcast(now);
                }
                if t.is_multiple_of(10) && c.screen.is_some() {
                    // A screen share is sent as the camera is (these clients have
                    // none when they share).
                    let camera = c.video.replace(c.screen.unwrap());
                    c.send_media(now, RtpCodecKind::Video);
                    c.video = camera;
                }
            }
            self.drain_link();
            if self.room.poll_timeout().is_some_and(|at| at <= now) {
                self.room.handle_timeout(now);
            }
            for c in &mut self.clients {
                if c.pc.poll_timeout().is_some_and(|at| at <= now) {
                    let _ = c.pc.handle_timeout(now);
                }
            }
            self.pump();
        }
    }
}

fn settings(max: u32) -> RoomSettings {
    RoomSettings {
        max_participants: max,
        ..RoomSettings::default()
    }
}

/// Whether `seqs` holds each number from its first to its last exactly once (in any
/// order), across the 16-bit wrap.
fn gapless(seqs: &[u16]) -> bool {
    let mut u = raum::media::rtp::Unwrapper::default();
    let mut ext: Vec<u64> = seqs.iter().map(|s| u.unwrap(*s)).collect();
    ext.sort_unstable();
    let n = ext.len() as u64;
    !ext.is_empty()
        && ext.windows(2).all(|w| w[1] == w[0] + 1)
        && ext[ext.len() - 1] - ext[0] + 1 == n
}

#[test]
fn three_participants_receive_each_others_media_unchanged_and_gapless() {
    let mut w = World::new(settings(10));
    let a = w.join("Ada", true, true);
    let b = w.join("Bea", true, true);
    let c = w.join("Cem", true, true);
    // Six seconds fill the video history (512 packets), so the pool is warm.
    w.run(Duration::from_secs(6));
    for (me, others) in [(a, [b, c]), (b, [a, c]), (c, [a, b])] {
        assert!(w.clients[me].connected, "{} connected", w.clients[me].name);
        for o in others {
            let id = w.clients[o].id;
            for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
                let s = w.clients[me].stream(id, kind).unwrap_or_else(|| {
                    panic!(
                        "{} got nothing of {}'s {kind:?}",
                        w.clients[me].name, w.clients[o].name
                    )
                });
                assert_eq!(s.corrupt, 0, "payloads arrive unchanged");
                assert!(s.seqs.len() > 40, "{} of {kind:?}", s.seqs.len());
                assert!(
                    gapless(&s.seqs),
                    "{}: {kind:?} from {} has gaps",
                    w.clients[me].name,
                    w.clients[o].name
                );
            }
        }
    }
    let st = w.room.stats();
    assert_eq!(st.participants, 3);
    assert_eq!(st.datagrams_refused, 0, "{st:?}");
    assert!(st.rtp_forwarded > 1000, "{st:?}");
    // A warm room allocates no buffers per packet: thousands more forwarded cost a
    // handful at most (the pool settling to the largest burst in flight).
    let (before, forwarded) = (w.room.buffers_allocated(), st.rtp_forwarded);
    w.run(Duration::from_secs(2));
    let more = w.room.stats().rtp_forwarded - forwarded;
    assert!(more > 1500, "{more}");
    assert!(
        w.room.buffers_allocated() - before < 16,
        "buffers are reused: {} new for {more} packets",
        w.room.buffers_allocated() - before
    );
}

/// ICE-TCP, as the core sees it: the driver hands over each datagram unframed with
/// its path. A participant on TCP is answered on its TCP path only, and a UDP datagram
/// from the same address and port is another path, which it never proved.
#[test]
fn a_participant_on_ice_tcp_is_answered_on_its_tcp_path_only() {
    let mut w = World::advertising(
        settings(10),
        Advertised {
            ip: room_addr().ip(),
            udp_port: room_addr().port(),
            tcp_port: Some(443),
        },
    );
    let a = w.join("Ada", true, true);
    let b = w.join_over("Bea", true, true, Transport::Tcp);
    w.run(Duration::from_secs(3));
    let answer = w.clients[b]
        .messages
        .iter()
        .find_map(|m| match m {
            ServerMessage::Answer { sdp } => Some(sdp.clone()),
            _ => None,
        })
        .expect("an answer");
    assert!(
        answer.contains(&format!(
            " 1 tcp 2124414719 {} 443 typ host tcptype passive\r\n",
            room_addr().ip()
        )),
        "{answer}"
    );
    for (me, other) in [(a, b), (b, a)] {
        let id = w.clients[other].id;
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            let s = w.clients[me].stream(id, kind).expect("media arrives");
            assert!(s.seqs.len() > 20 && gapless(&s.seqs), "{kind:?}");
        }
    }
    assert_eq!(w.strays, 0, "nothing went to a path no one has");

    // The same address and port on UDP: not Bea's path.
    let before = w.room.stats();
    let bea_on_udp = Remote::udp(w.clients[b].addr);
    w.room.handle_datagram(
        w.now,
        bea_on_udp,
        &mut [0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
    );
    assert_eq!(
        w.room.stats().datagrams_unrouted,
        before.datagrams_unrouted + 1
    );
}

#[test]
fn a_late_joiner_gets_everyone_a_keyframe_request_and_a_leaver_stops() {
    let mut w = World::new(settings(10));
    let a = w.join("Ada", true, true);
    let b = w.join("Bea", true, true);
    w.run(Duration::from_secs(2));
    let plis = w.room.stats().plis_sent;
    let d = w.join("Dan", true, true);
    w.run(Duration::from_secs(2));
    let (ida, idb, idd) = (w.clients[a].id, w.clients[b].id, w.clients[d].id);
    assert!(w.clients[d].count(ida, RtpCodecKind::Video) > 50);
    assert!(w.clients[d].count(idb, RtpCodecKind::Video) > 50);
    assert!(w.clients[a].count(idd, RtpCodecKind::Audio) > 25);
    assert!(
        w.room.stats().plis_sent >= plis + 2,
        "a keyframe request upstream for each video the new subscriber gets"
    );
    assert!(
        w.clients[a]
            .messages
            .iter()
            .any(|m| matches!(m, ServerMessage::PeerJoined { peer } if peer.name == "Dan"))
    );
    // Bea leaves: the others learn it and get nothing more of her.
    w.room.handle_message(w.now, idb, ClientMessage::Leave);
    w.clients[b].closed = true;
    w.pump();
    for me in [a, d] {
        assert!(
            w.clients[me]
                .messages
                .iter()
                .any(|m| matches!(m, ServerMessage::PeerLeft { id } if *id == idb.to_string()))
        );
    }
    w.run(Duration::from_millis(200));
    let (ab, db) = (
        w.clients[a].count(idb, RtpCodecKind::Video),
        w.clients[d].count(idb, RtpCodecKind::Video),
    );
    let (ad, da) = (
        w.clients[a].count(idd, RtpCodecKind::Video),
        w.clients[d].count(ida, RtpCodecKind::Video),
    );
    w.run(Duration::from_secs(1));
    assert_eq!(w.clients[a].count(idb, RtpCodecKind::Video), ab);
    assert_eq!(w.clients[d].count(idb, RtpCodecKind::Video), db);
    assert!(
        w.clients[a].count(idd, RtpCodecKind::Video) > ad + 50,
        "the others go on"
    );
    assert!(w.clients[d].count(ida, RtpCodecKind::Video) > da + 50);
    assert_eq!(w.room.participants(), 2);
    // Bea's sections in the others' sessions are idle now, and a newcomer's video
    // takes one over instead of adding a section.
    let e = w.join("Eva", true, true);
    w.run(Duration::from_secs(1));
    assert!(w.clients[a].count(w.clients[e].id, RtpCodecKind::Video) > 30);
    let last_offer = w.clients[a]
        .messages
        .iter()
        .rev()
        .find_map(|m| match m {
            ServerMessage::Offer { sdp } => Some(sdp.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        last_offer.matches("m=video").count(),
        3,
        "own camera, Dan's, and Bea's section reused for Eva's:\n{last_offer}"
    );
}

/// A link that loses every 20th video datagram in one direction.
fn lossy(up: bool) -> Fate {
    let mut n = 0u32;
    Box::new(move |dir, bytes| {
        let video_sized =
            bytes.len() > 600 && (128..192).contains(&bytes[0]) && !(192..224).contains(&bytes[1]);
        let hit = match dir {
            Direction::Up(_) => up,
            Direction::Down(_) => !up,
        };
        if hit && video_sized {
            n += 1;
            return !n.is_multiple_of(20);
        }
        true
    })
}

#[test]
fn losses_on_the_way_to_a_subscriber_are_repaired_from_the_rooms_buffer() {
    let mut w = World::new(settings(10));
    let a = w.join("Ada", true, true);
    let b = w.join("Bea", true, true);
    w.run(Duration::from_secs(1));
    w.deliver = lossy(false);
    w.run(Duration::from_secs(3));
    w.deliver = Box::new(|_, _| true);
    w.run(Duration::from_millis(500));
    let st = w.room.stats();
    assert!(
        st.retransmits > 10,
        "NACKs answered from the buffer: {st:?}"
    );
    for (me, other) in [(a, b), (b, a)] {
        let s = w.clients[me]
            .stream(w.clients[other].id, RtpCodecKind::Video)
            .unwrap();
        assert!(
            gapless(&s.seqs),
            "repaired: {} of {}",
            s.seqs.len(),
            w.clients[me].name
        );
        assert_eq!(s.corrupt, 0);
    }
}

#[test]
fn losses_on_the_way_to_the_room_are_asked_for_again() {
    let mut w = World::new(settings(10));
    let a = w.join("Ada", true, true);
    let b = w.join("Bea", true, true);
    w.run(Duration::from_secs(1));
    w.deliver = lossy(true);
    w.run(Duration::from_secs(3));
    w.deliver = Box::new(|_, _| true);
    w.run(Duration::from_millis(500));
    let st = w.room.stats();
    assert!(
        st.nacks_sent > 5,
        "the room asked the publishers again: {st:?}"
    );
    for (me, other) in [(a, b), (b, a)] {
        let s = w.clients[me]
            .stream(w.clients[other].id, RtpCodecKind::Video)
            .unwrap();
        assert!(
            gapless(&s.seqs),
            "{}: recovered upstream",
            w.clients[me].name
        );
    }
}

#[test]
fn reordered_datagrams_arrive_once_each() {
    let mut w = World::new(settings(10));
    let a = w.join("Ada", true, true);
    let b = w.join("Bea", true, true);
    w.run(Duration::from_secs(1));
    w.reorder = true;
    w.run(Duration::from_secs(2));
    w.reorder = false;
    w.run(Duration::from_millis(200));
    for (me, other) in [(a, b), (b, a)] {
        for kind in [RtpCodecKind::Audio, RtpCodecKind::Video] {
            let s = w.clients[me].stream(w.clients[other].id, kind).unwrap();
            assert!(gapless(&s.seqs), "{kind:?} to {}", w.clients[me].name);
            assert_eq!(s.corrupt, 0);
        }
    }
}

#[test]
fn a_subscriber_that_stops_reading_costs_the_others_nothing() {
    let mut w = World::new(settings(10));
    let a = w.join("Ada", true, true);
    let b = w.join("Bea", true, true);
    let c = w.join("Cem", true, true);
    w.run(Duration::from_secs(6));
    w.deaf.push(c);
    let before = w.clients[a].count(w.clients[b].id, RtpCodecKind::Video);
    let allocated = w.room.buffers_allocated();
    w.run(Duration::from_secs(2));
    assert!(w.clients[a].count(w.clients[b].id, RtpCodecKind::Video) > before + 150);
    assert!(
        w.room.buffers_allocated() <= allocated + 16,
        "the room's memory does not grow for the one who stopped"
    );
}

#[test]
fn a_participant_whose_media_never_connects_is_dropped_after_the_timeout() {
    let mut w = World::new(RoomSettings {
        ice_timeout: Duration::from_secs(5),
        ..settings(10)
    });
    let a = w.join("Ada", true, true);
    // Silent joins but never sends a datagram.
    let silent = w.room.join(w.now, "Silent".into()).unwrap();
    w.run(Duration::from_secs(4));
    assert_eq!(w.room.participants(), 2);
    let mut told = Vec::new();
    w.run(Duration::from_millis(1500));
    assert_eq!(w.room.participants(), 1);
    // (The harness routes the silent one's messages nowhere; Ada heard it left.)
    told.extend(
        w.clients[a]
            .messages
            .iter()
            .filter(|m| matches!(m, ServerMessage::PeerLeft { id } if *id == silent.to_string())),
    );
    assert_eq!(told.len(), 1);
}

/// What a hostile or broken network sends: each is refused and counted, and the
/// call goes on.
#[test]
fn bad_datagrams_are_dropped_and_counted_and_the_media_keeps_flowing() {
    let mut w = World::new(settings(10));
    let a = w.join("Ada", true, true);
    let b = w.join("Bea", true, true);
    w.run(Duration::from_secs(1));
    let before = w.room.stats();
    let stranger: SocketAddr = "127.0.9.9:9999".parse().unwrap();
    let known = w.clients[a].addr;
    let now = w.now;
    // From an address nobody proved.
    w.room.handle_datagram(
        now,
        stranger,
        &mut vec![0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3],
    );
    // STUN with a username nobody has.
    let mut stun = [0u8; 600];
    let n =
        raum::media::stun::Builder::new(&mut stun, raum::media::stun::BINDING_REQUEST, &[1; 12])
            .username(b"nobody:x")
            .finish(Some(b"whatever"));
    w.room
        .handle_datagram(now, stranger, &mut stun[..n].to_vec());
    // STUN with a known ufrag but the wrong password.
    let ufrag = w.clients[a]
        .pc
        .remote_description()
        .unwrap()
        .sdp
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .unwrap()
        .trim()
        .to_owned();
    let n =
        raum::media::stun::Builder::new(&mut stun, raum::media::stun::BINDING_REQUEST, &[2; 12])
            .username(format!("{ufrag}:x").as_bytes())
            .finish(Some(b"not the password"));
    w.room
        .handle_datagram(now, stranger, &mut stun[..n].to_vec());
    // Truncated RTP and RTCP, and SRTP that does not authenticate, from Ada's address.
    w.room
        .handle_datagram(now, known, &mut [0x80, 96, 0, 1, 0, 0]);
    w.room
        .handle_datagram(now, known, &mut [0x80, 200, 0, 6, 0, 0]);
    let mut forged = vec![0x80, 96, 0, 9, 0, 0, 0, 1, 0x10, 0, 0, 1];
    forged.extend_from_slice(&[0xee; 100]);
    w.room.handle_datagram(now, known, &mut forged);
    let mut forged_rtcp = vec![0x80, 201, 0, 1, 0, 0, 0, 1];
    forged_rtcp.extend_from_slice(&[0xee; 30]);
    w.room.handle_datagram(now, known, &mut forged_rtcp);
    // Garbage of every first byte.
    for first in 0..=255u8 {
        w.room.handle_datagram(now, known, &mut [first; 40]);
        w.room.handle_datagram(now, known, &mut [first]);
        w.room.handle_datagram(now, known, &mut []);
    }
    let after = w.room.stats();
    assert!(
        after.datagrams_unrouted >= before.datagrams_unrouted + 2,
        "{after:?}"
    );
    assert!(
        after.datagrams_refused >= before.datagrams_refused + 5,
        "{after:?}"
    );
    let count = w.clients[b].count(w.clients[a].id, RtpCodecKind::Video);
    w.run(Duration::from_secs(1));
    assert!(w.clients[b].count(w.clients[a].id, RtpCodecKind::Video) > count + 50);
    assert_eq!(w.room.participants(), 2);
}

#[test]
fn offers_that_cannot_be_used_end_the_session_with_a_reason() {
    let mut w = World::new(settings(10));
    let a = w.join("Ada", true, true);
    let id = w.room.join(w.now, "Mallory".into()).unwrap();
    w.room.handle_message(
        w.now,
        id,
        ClientMessage::Offer {
            sdp: "v=0\r\nm=audio 9 X 111\r\n".into(),
            screen: None,
        },
    );
    let mut got = Vec::new();
    while let Some(m) = w.room.poll_outbound() {
        got.push(m);
    }
    assert!(got.iter().any(|(to, m)| *to == id
        && matches!(m, Outbound::Message(ServerMessage::Error { message, .. }) if message.contains("could not be used"))));
    assert!(got.iter().any(|(to, m)| *to == id && *m == Outbound::Close));
    assert_eq!(w.room.participants(), 1);
    // An answer with no offer outstanding is refused, the session stays.
    let ida = w.clients[a].id;
    w.room.handle_message(
        w.now,
        ida,
        ClientMessage::Answer {
            sdp: "v=0\r\n".into(),
        },
    );
    let got: Vec<_> = std::iter::from_fn(|| w.room.poll_outbound()).collect();
    assert!(got.iter().any(|(_, m)| matches!(m, Outbound::Message(ServerMessage::Error { message, .. }) if message.contains("no offer"))));
    assert_eq!(w.room.participants(), 1);
}

/// A small deterministic generator (xorshift64*), so a failure names its seed.
struct Noise(u64);

impl Noise {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// Random and mutated datagrams (STUN, DTLS, RTP and RTCP shapes, the room's own
/// valid STUN with flipped bits) from a participant's own address and from strangers,
/// and mutated SDP offers and answers: nothing panics, and the media keeps flowing.
#[test]
fn mutated_datagrams_and_sdp_never_panic_the_room() {
    let mut w = World::new(settings(10));
    let a = w.join("Ada", true, true);
    let b = w.join("Bea", true, true);
    w.run(Duration::from_secs(1));
    let known = w.clients[a].addr;
    let stranger: SocketAddr = "127.0.9.9:9999".parse().unwrap();
    let ufrag = w.clients[a]
        .pc
        .remote_description()
        .unwrap()
        .sdp
        .lines()
        .find_map(|l| l.strip_prefix("a=ice-ufrag:"))
        .unwrap()
        .trim()
        .to_owned();
    let mut stun = [0u8; 600];
    let n =
        raum::media::stun::Builder::new(&mut stun, raum::media::stun::BINDING_REQUEST, &[3; 12])
            .username(format!("{ufrag}:x").as_bytes())
            .priority(1)
            .controlling(7)
            .use_candidate()
            .finish(Some(b"not the password"));
    let stun = stun[..n].to_vec();
    let mut noise = Noise(0x5eed_0f5e_ed0f_5eed);
    for round in 0..20_000 {
        let mut d: Vec<u8> = match round % 4 {
            // The valid STUN shape with a few bits flipped and a random cut.
            0 => {
                let mut d = stun.clone();
                for _ in 0..1 + noise.below(4) {
                    let i = noise.below(d.len());
                    d[i] ^= 1 << noise.below(8);
                }
                d.truncate(noise.below(d.len() + 1));
                d
            }
            // Random bytes with a first byte from each demultiplexing range.
            r => {
                let first = [0u8, 20, 128, 200][r] as usize + noise.below(40);
                let len = noise.below(1500);
                let mut d: Vec<u8> = (0..len).map(|_| noise.next() as u8).collect();
                if let Some(x) = d.first_mut() {
                    *x = first as u8;
                }
                if r == 3 && d.len() > 1 {
                    // An RTCP packet type.
                    d[1] = 192 + noise.below(20) as u8;
                }
                d
            }
        };
        let from = if round % 2 == 0 { known } else { stranger };
        w.room.handle_datagram(w.now, from, &mut d);
    }
    // Mutated SDP: Ada's own description, with lines dropped, doubled, cut and
    // respaced, as the first offer of a participant who then leaves.
    let sdp = w.clients[a].pc.local_description().unwrap().sdp;
    let lines: Vec<&str> = sdp.lines().collect();
    for round in 0..300 {
        let mut m: Vec<String> = Vec::new();
        for l in &lines {
            match noise.below(12) {
                0 => {}
                1 => {
                    m.push((*l).to_owned());
                    m.push((*l).to_owned());
                }
                2 => m.push(l[..noise.below(l.len() + 1)].to_owned()),
                3 => m.push(l.replace(' ', "  ")),
                _ => m.push((*l).to_owned()),
            }
        }
        let text = m.join("\r\n");
        let id = w.room.join(w.now, format!("Fuzz {round}")).unwrap();
        w.room.handle_message(
            w.now,
            id,
            ClientMessage::Offer {
                sdp: text,
                screen: None,
            },
        );
        w.room.leave(w.now, id);
    }
    let count = w.clients[b].count(w.clients[a].id, RtpCodecKind::Video);
    w.run(Duration::from_secs(1));
    assert!(w.clients[b].count(w.clients[a].id, RtpCodecKind::Video) > count + 50);
    assert_eq!(w.room.participants(), 2);
}

/// The layers of the video frames `me` received from `from` since frame `since`.
fn layers_since(w: &World, me: usize, from: PeerId, since: usize) -> Vec<u8> {
    w.clients[me]
        .stream(from, RtpCodecKind::Video)
        .map(|s| {
            s.frames[since.min(s.frames.len())..]
                .iter()
                .map(|f| f.0)
                .collect()
        })
        .unwrap_or_default()
}

fn frames(w: &World, me: usize, from: PeerId) -> usize {
    w.clients[me]
        .stream(from, RtpCodecKind::Video)
        .map_or(0, |s| s.frames.len())
}

#[test]
fn simulcast_a_layer_per_tile_switched_at_keyframes_one_continuous_stream() {
    let mut w = World::new(settings(10));
    let a = w.join_simulcast("Ada");
    let b = w.join("Bea", true, false);
    w.run(Duration::from_secs(2));
    let ida = w.clients[a].id;
    let st = w.room.stats();
    assert_eq!(st.video_layers_in, 3, "three incoming encodings: {st:?}");
    // Without a layout Bea gets the best layer.
    let n = frames(&w, b, ida);
    assert!(n > 20, "{n} frames: {st:?}");
    let got = layers_since(&w, b, ida, n - 10);
    assert!(got.iter().all(|l| *l == 2), "{got:?}");

    // A small tile: the lowest layer, from its keyframe on.
    let before = frames(&w, b, ida);
    w.layout(b, &[(ida, 160, 90)]);
    w.run(Duration::from_secs(1));
    let got = layers_since(&w, b, ida, before);
    let first_low = got.iter().position(|l| *l == 0).expect("switched down");
    assert!(got[first_low..].iter().all(|l| *l == 0), "{got:?}");
    assert!(got[..first_low].iter().all(|l| *l == 2), "{got:?}");
    // A big tile: up again. A middle one: the middle layer.
    let before = frames(&w, b, ida);
    w.layout(b, &[(ida, 1200, 700)]);
    w.run(Duration::from_secs(1));
    assert_eq!(layers_since(&w, b, ida, before).last(), Some(&2));
    let before = frames(&w, b, ida);
    w.layout(b, &[(ida, 600, 340)]);
    w.run(Duration::from_secs(1));
    assert_eq!(layers_since(&w, b, ida, before).last(), Some(&1));

    // Everything Bea got is one stream: no gap in sequence numbers or picture IDs,
    // each switch at a keyframe of the new layer.
    let s = w.clients[b].stream(ida, RtpCodecKind::Video).unwrap();
    assert_eq!(s.corrupt, 0);
    assert!(
        gapless(&s.seqs),
        "sequence numbers continue across switches"
    );
    for pair in s.frames.windows(2) {
        let (x, y) = (pair[0], pair[1]);
        // A frame's packets share its picture ID; the next frame's is one more.
        assert!(
            y.2 == x.2 || y.2 == (x.2 + 1) % 0x8000,
            "picture IDs continue: {x:?} {y:?}"
        );
        if y.0 != x.0 {
            assert!(y.1, "a switch lands on a keyframe: {x:?} {y:?}");
        }
    }
    let st = w.room.stats();
    assert!(st.layer_switches >= 4, "{st:?}");

    // Off screen: nothing more, counted; back on screen: a keyframe first.
    w.layout(b, &[]);
    w.run(Duration::from_millis(300));
    let paused_at = frames(&w, b, ida);
    let paused = w.room.stats().rtp_paused;
    w.run(Duration::from_secs(1));
    assert_eq!(frames(&w, b, ida), paused_at, "paused");
    assert!(w.room.stats().rtp_paused > paused + 20);
    w.layout(b, &[(ida, 160, 90)]);
    w.run(Duration::from_secs(1));
    let s = w.clients[b].stream(ida, RtpCodecKind::Video).unwrap();
    assert!(s.frames.len() > paused_at + 10, "resumed");
    assert!(s.frames[paused_at].1, "resumes with a keyframe");
    assert!(gapless(&s.seqs), "no gap across the pause either");
}

#[test]
fn publishers_are_told_which_layers_anyone_needs() {
    let mut w = World::new(settings(10));
    let a = w.join_simulcast("Ada");
    let b = w.join("Bea", true, false);
    let c = w.join("Cem", true, false);
    w.run(Duration::from_secs(1));
    let ida = w.clients[a].id;
    let told = |w: &World| {
        w.clients[a]
            .messages
            .iter()
            .filter_map(|m| match m {
                ServerMessage::Layers { active } => Some(*active),
                _ => None,
            })
            .collect::<Vec<u8>>()
    };
    // Both show Ada small: after a while, only the lowest layer is needed.
    w.layout(b, &[(ida, 320, 180)]);
    w.layout(c, &[(ida, 300, 150)]);
    w.run(Duration::from_secs(1));
    assert_eq!(told(&w), Vec::<u8>::new(), "not at once");
    w.run(Duration::from_secs(2));
    assert_eq!(told(&w), [1]);
    // Cem enlarges Ada: all three at once.
    w.layout(c, &[(ida, 1280, 720)]);
    w.run(Duration::from_millis(200));
    assert_eq!(told(&w), [1, 3]);
    // Nobody shows Ada: the lowest layer stays on (a tile scrolled into view, or a
    // newcomer, starts at once).
    w.layout(b, &[]);
    w.layout(c, &[]);
    w.run(Duration::from_secs(3));
    assert_eq!(told(&w), [1, 3, 1]);
}

#[test]
fn a_publisher_sending_fewer_layers_is_forwarded_what_it_sends() {
    let mut w = World::new(settings(10));
    let a = w.join_simulcast("Ada");
    let b = w.join("Bea", true, false);
    w.run(Duration::from_secs(1));
    let ida = w.clients[a].id;
    // Ada's camera or uplink gives only the lowest layer now.
    w.clients[a].simulcast.as_mut().unwrap().on = [true, false, false];
    w.run(Duration::from_secs(2));
    let before = frames(&w, b, ida);
    w.run(Duration::from_secs(1));
    let got = layers_since(&w, b, ida, before);
    assert!(got.len() > 20 && got.iter().all(|l| *l == 0), "{got:?}");
    // And switches layers off and on again: back to the best.
    w.clients[a].simulcast.as_mut().unwrap().on = [true, true, true];
    w.run(Duration::from_secs(1));
    assert_eq!(layers_since(&w, b, ida, before).last(), Some(&2));
    assert_eq!(w.room.stats().datagrams_refused, 0);
}

#[test]
fn a_narrow_downlink_gets_lower_layers_and_stays_under_it_audio_intact() {
    let mut w = World::new(settings(10));
    let a = w.join_simulcast("Ada");
    let b = w.join("Bea", true, false);
    let c = w.join("Cem", true, false);
    w.run(Duration::from_secs(2));
    let ida = w.clients[a].id;
    // Both show Ada large; Bea's downlink is 1 Mbit/s, less than Ada's top layer.
    w.layout(b, &[(ida, 1280, 720)]);
    w.layout(c, &[(ida, 1280, 720)]);
    w.narrow(b, 1_000_000);
    w.run(Duration::from_secs(10));
    let (vb, vc) = (frames(&w, b, ida), frames(&w, c, ida));
    let audio_b = w.clients[b].count(ida, RtpCodecKind::Audio);
    let offered = w.link.as_ref().unwrap().offered;
    w.run(Duration::from_secs(5));
    // Over the last 5 s: what the room sent Bea fits her link, in a lower layer; Cem
    // keeps the top one.
    let rate = (w.link.as_ref().unwrap().offered - offered) * 8 / 5;
    assert!(rate <= 1_000_000, "{rate} bit/s sent into a 1 Mbit/s link");
    assert!(rate > 300_000, "{rate} bit/s: video still comes");
    let got_b = layers_since(&w, b, ida, vb);
    let got_c = layers_since(&w, c, ida, vc);
    assert!(got_b.len() > 100, "{} packets", got_b.len());
    assert!(got_b.iter().all(|l| *l < 2), "Bea: lower layers: {got_b:?}");
    assert!(got_c.iter().all(|l| *l == 2), "Cem: the top layer");
    // Audio got through whole: 50 packets a second, none missing.
    let audio = w.clients[b].count(ida, RtpCodecKind::Audio) - audio_b;
    assert!(audio >= 245, "{audio} audio packets in 5 s");
    let s = w.clients[b].stream(ida, RtpCodecKind::Audio).unwrap();
    let tail = &s.seqs[s.seqs.len() - audio..];
    assert!(gapless(tail), "no audio lost");
}

#[test]
fn a_layout_may_name_a_camera_before_it_starts() {
    let mut w = World::new(settings(10));
    let b = w.join("Bea", true, false);
    let a = w.join_simulcast("Ada");
    let ida = w.clients[a].id;
    // Bea's page made Ada's tile (for her microphone, say) before Ada's video came.
    w.layout(b, &[(ida, 160, 90)]);
    w.run(Duration::from_secs(2));
    let got = layers_since(&w, b, ida, 0);
    assert!(got.len() > 20, "Ada's video comes: {got:?}");
    assert!(got.iter().all(|l| *l == 0), "in the tile's layer: {got:?}");
}

/// The active speakers `me` was told of, in order.
fn speakers(w: &World, me: usize) -> Vec<&str> {
    w.clients[me]
        .messages
        .iter()
        .filter_map(|m| match m {
            ServerMessage::Speaker { id } => Some(id.as_str()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_active_speaker_follows_a_voice_that_stays_loudest_not_a_blip() {
    let mut w = World::new(settings(10));
    let a = w.join("Ada", true, false);
    let b = w.join("Bea", true, false);
    let c = w.join("Cem", true, false);
    w.run(Duration::from_secs(1));
    let (ida, idb) = (w.clients[a].id.to_string(), w.clients[b].id.to_string());
    // Ada talks (-20 dBov), the others are silent.
    w.clients[a].level = 20;
    w.run(Duration::from_secs(2));
    assert_eq!(speakers(&w, c), [&ida], "Ada is the speaker");
    // Bea coughs, louder than Ada, for 200 ms: nothing changes.
    w.clients[b].level = 5;
    w.run(Duration::from_millis(200));
    w.clients[b].level = 127;
    w.run(Duration::from_secs(2));
    assert_eq!(speakers(&w, c), [&ida], "a blip does not take the floor");
    // Bea talks on for a while, louder than Ada: she is the speaker, told once to
    // everyone (Ada herself included).
    w.clients[b].level = 10;
    w.run(Duration::from_millis(1800));
    assert_eq!(speakers(&w, c), [&ida, &idb]);
    assert_eq!(speakers(&w, a), [&ida, &idb]);
    // Everyone silent: the last speaker stays (no flicker to nobody).
    w.clients[a].level = 127;
    w.clients[b].level = 127;
    w.run(Duration::from_secs(2));
    assert_eq!(speakers(&w, c), [&ida, &idb]);
    assert!(w.room.stats().speaker_changes >= 2);
}

#[path = "media_core/lesson.rs"]
mod lesson;

/// A quarter of the datagrams to the participants lost from the first one on
/// (handshake included), in 40 random patterns: every participant still connects
/// within the room's media timeout and hears the other. Before the DTLS repair in
/// src/media/dtls.rs, pattern 24 left a participant handshaking for good (the room
/// ignored its repeated ClientHello). Loss the other way is the participants' DTLS to
/// repair: these test peers' (`rtc`, with the same flaw) cannot, browsers can; both
/// directions of raum's own DTLS are in its unit tests.
#[test]
fn a_lossy_downlink_from_the_first_datagram_still_connects() {
    let mut failed = Vec::new();
    for seed in 1..=40u64 {
        let mut w = World::new(settings(10));
        let mut noise = Noise(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
        w.deliver = Box::new(move |dir, _| match dir {
            Direction::Down(_) => noise.below(100) >= 25,
            Direction::Up(_) => true,
        });
        let a = w.join("Ada", true, true);
        let b = w.join("Bea", true, true);
        w.run(Duration::from_secs(12));
        let ok = [(a, b), (b, a)].iter().all(|&(me, other)| {
            w.clients[me].connected
                && w.clients[me].count(w.clients[other].id, RtpCodecKind::Audio) > 0
        });
        if !ok {
            failed.push((seed, w.clients[a].connected, w.clients[b].connected));
        }
    }
    assert_eq!(failed, Vec::new(), "(seed, Ada connected, Bea connected)");
}
