//! One meeting's room as a sans-IO state machine.
//!
//! Inputs: [`RoomCore::handle_datagram`] (from the meeting's one UDP port, or a
//! length-framed ICE-TCP connection to its TCP port, unframed by the driver),
//! [`RoomCore::join`], [`RoomCore::handle_message`] and [`RoomCore::leave`] (from the
//! participants' signaling), [`RoomCore::handle_timeout`] (when
//! [`RoomCore::poll_timeout`] says). Outputs: [`RoomCore::poll_transmit`] (datagrams)
//! and [`RoomCore::poll_outbound`] (signaling messages). Every input takes the time;
//! nothing in here reads a clock.
//!
//! The room is an ICE-lite agent with one UDP candidate (the advertised address) and,
//! where the driver listens for it, one passive ICE-TCP candidate, the DTLS
//! server of every participant, and the SDP offerer once a participant's first offer
//! (its own microphone and camera) is answered: it offers each participant one
//! `sendonly` section per track the others publish, recycling sections of those who
//! left. A published track opens with its first packet; from then on each packet is
//! decrypted once and, for every subscriber whose negotiation includes it, written with
//! that subscriber's SSRC, payload type and sequence numbers into a pooled buffer and
//! encrypted there (the routing table is `Track::legs`: integer keys, no lookups by
//! string). Video is kept for a second so subscribers' NACKs are answered; the
//! publisher gets NACKs for what it lost, receiver reports and transport-wide
//! congestion feedback; subscribers' keyframe requests reach the publisher at most
//! every [`KEYFRAME_REQUEST_INTERVAL`].

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use slab::Slab;
use tracing::{debug, info};

use super::downlink::Downlink;
use super::dtls::{Certificate, Dtls, Role};
use super::forwarder::{self, Forwarder, Layer};
use super::pool::{Buf, Pool};
use super::rtcp::{self, Packet, ReportBlock, SenderInfo};
use super::rtp::{self, Header, Unwrapper};
use super::sdp::{
    self, Candidate, Codec, Description, Direction, Kind, Local, LocalMedia, Sending, Setup,
};
use super::speaker;
use super::srtp::{self, StreamState};
use super::stun;
use super::twcc;
use super::vp8::Descriptor;
use super::{Remote, Transmit, random_bytes, random_token};
pub use crate::api::meeting::{ScreenShare, WithoutHost};
use crate::signaling::{
    ClientMessage, ErrorCode, IceServer, Knock, PeerInfo, Role as Access, ServerMessage, WaitReason,
};

/// The shortest time between two keyframe requests to one publisher's track.
pub const KEYFRAME_REQUEST_INTERVAL: Duration = Duration::from_millis(500);
/// How often the room looks at its timers (NACK retries, reports, feedback, ICE).
const TICK: Duration = Duration::from_millis(20);
/// How often publishers get receiver reports.
const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// A participant whose connection sends no connectivity check this long is gone
/// (browsers send one every few seconds).
const CONSENT_TIMEOUT: Duration = Duration::from_secs(30);
/// Video packets kept for retransmission (about a second at 2.5 Mbit/s).
const HISTORY: usize = 512;
/// A lost packet is asked for again after this, at most this often, this many times.
const NACK_DELAY: Duration = Duration::from_millis(10);
const NACK_RETRY: Duration = Duration::from_millis(60);
const NACK_TRIES: u8 = 3;
/// Lost packets tracked per track (a burst beyond that is left to a keyframe).
const NACK_MAX: usize = 200;
/// Addresses one participant may send media from at once (a network switch, IPv4 and
/// IPv6).
const PROVEN_ADDRESSES: usize = 4;
/// Packets one compound RTCP packet may ask for again (all its NACKs together).
const NACKED_PER_COMPOUND: usize = 64;
/// Retransmissions per subscription and second (a second of video at 1.2 Mbit/s).
const RTX_PER_SECOND: u16 = 128;
/// How often the room chooses each subscriber's layers (and tells publishers which
/// layers anyone needs).
const ALLOCATE_INTERVAL: Duration = Duration::from_millis(100);
/// A simulcast layer that sent nothing this long is not offered to subscribers (the
/// publisher's camera or uplink cannot give it, or it was switched off).
const LAYER_IDLE: Duration = Duration::from_millis(1000);
/// A publisher is told to switch layers off only after nobody needed them this long
/// (switching them on again is at once).
const LAYERS_OFF_AFTER: Duration = Duration::from_secs(2);
/// Simulcast layers a publisher may send.
pub const MAX_LAYERS: usize = 3;
/// The share of a subscriber's estimated downlink its media may fill (the rest is
/// headroom for RTCP, retransmissions and the estimate's error).
const DOWNLINK_SHARE: f64 = 0.9;
/// A subscriber moves up a layer only if the budget covers the step this many times.
const UPGRADE_HEADROOM: f64 = 1.15;
/// What one audio stream is reckoned at (Opus at 32 kbit/s, with headers).
const AUDIO_BPS: f64 = 50_000.0;
/// The payload types of what the room sends: Opus and VP8.
const SEND_PT_AUDIO: u8 = 111;
const SEND_PT_VIDEO: u8 = 96;

/// What a room enforces. `rooms::RoomSettings::from_spec` builds it from a meeting's
/// spec, with every default in one place.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RoomSettings {
    /// Most participants at once; one more is told the meeting is full.
    pub max_participants: u32,
    /// Participants may send audio.
    pub audio: bool,
    /// Participants may send video.
    pub video: bool,
    /// Participants may chat.
    pub chat: bool,
    /// The video bitrate a participant may send, in kbit/s (`b=AS` in the answer).
    pub max_video_kbps: u32,
    /// A participant whose media has not connected this long after joining is dropped.
    pub ice_timeout: Duration,
    /// Participants may unmute themselves after a host muted them.
    pub participants_may_unmute: bool,
    /// Participants wait in the lobby until a host admits them.
    pub lobby: bool,
    /// What happens while no host is in the room.
    pub without_host: WithoutHost,
    /// Who may share a screen.
    pub screen_share: ScreenShare,
}

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

/// Counters of the room (no personal data).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Participants now.
    pub participants: u32,
    /// People waiting to come in now (in the lobby, or for a host).
    pub waiting: u32,
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
    /// Datagrams refused: bad STUN, DTLS or SRTP, truncated packets, unknown streams.
    pub datagrams_refused: u64,
    /// Datagrams the socket would not take (its buffer full): dropped.
    pub send_drops: u64,
    /// RTP packets received from publishers.
    pub rtp_in: u64,
    /// RTP packets forwarded to subscribers.
    pub rtp_forwarded: u64,
    /// RTP packets that could not be forwarded.
    pub rtp_dropped: u64,
    /// RTP packets not forwarded because a host muted their sender.
    pub rtp_muted: u64,
    /// Keyframe requests sent to publishers (for new subscribers, and subscribers'
    /// own requests passed on).
    pub plis_sent: u64,
    /// Subscribers' keyframe requests received.
    pub keyframe_requests_in: u64,
    /// Packets retransmitted from the room's buffer in answer to subscribers' NACKs.
    pub retransmits: u64,
    /// NACKs sent to publishers for packets lost on their way to the room.
    pub nacks_sent: u64,
    /// Incoming video layers (simulcast encodings) that sent in the last second.
    pub video_layers_in: u32,
    /// Times a subscriber was switched to another layer of a publisher (starting and
    /// resuming included).
    pub layer_switches: u64,
    /// Video packets not sent to a subscriber because its tile is off screen.
    pub rtp_paused: u64,
    /// Active-speaker changes announced.
    pub speaker_changes: u64,
}

type PeerKey = usize;
type TrackKey = usize;
type LegKey = usize;

/// Where a participant's negotiation stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Negotiation {
    /// Joined; its first offer (its own media) has not come.
    AwaitingOffer,
    /// Nothing pending.
    Stable,
    /// The room offered and awaits the answer.
    OfferSent,
}

/// What a media section of a participant's session carries.
#[derive(Clone, Debug)]
enum SectionRole {
    /// The participant's own media (the room receives), with the codec and header
    /// extensions agreed, and the room's direction.
    Publish {
        track: Option<TrackKey>,
        codec: Codec,
        extmaps: Vec<(u8, String)>,
        direction: Direction,
        /// The simulcast layers it sends (rids, lowest first), empty without.
        rids: Vec<String>,
    },
    /// Another participant's track, sent by the room.
    Subscribe(LegKey),
    /// A section of a track that is gone, kept inactive until a new track of its kind
    /// reuses it.
    Idle,
    /// Refused (port 0).
    Rejected,
}

#[derive(Clone, Debug)]
struct Section {
    mid: String,
    kind: Kind,
    role: SectionRole,
}

/// A stream the room receives from a participant.
#[derive(Debug)]
struct Incoming {
    ssrc: u32,
    track: TrackKey,
    layer: Layer,
    srtp: StreamState,
}

struct Peer {
    id: PeerId,
    name: String,
    /// Participant or host: what the token it joined with made it.
    role: crate::signaling::Role,
    /// Its browser tab's seat (see [`ServerMessage::Welcome`]).
    seat: String,
    joined_at: Instant,
    audio_muted: bool,
    video_muted: bool,
    /// Its hand is raised.
    hand: bool,
    /// A host muted its audio (its RTP is dropped, not forwarded).
    forced_audio: bool,
    /// A host muted its video.
    forced_video: bool,
    /// Our ICE credentials for this participant.
    ufrag: String,
    pwd: String,
    /// Where its media goes to (the nominated or latest checked address).
    addr: Option<Remote>,
    /// The addresses it proved with a connectivity check, oldest first (at most
    /// [`PROVEN_ADDRESSES`]); media is accepted from these.
    proven: Vec<Remote>,
    last_check: Instant,
    remote_fingerprint: Option<String>,
    dtls_role: Role,
    dtls: Option<Dtls>,
    srtp_out: Option<srtp::Context>,
    srtp_in: Option<srtp::Context>,
    connected: bool,
    negotiation: Negotiation,
    needs_offer: bool,
    sdp_version: u64,
    sections: Vec<Section>,
    /// Streams it sends.
    incoming: Vec<Incoming>,
    /// The SRTP state of streams it stopped sending (at most [`RETIRED_STREAMS`]): a
    /// browser that shares its screen again keeps the SSRC and its rollover counter.
    retired: Vec<(u32, StreamState)>,
    /// It should be offered the open tracks it lacks once its negotiation is done
    /// (a track opened while it was negotiating and an idle section waits for it).
    resubscribe: bool,
    /// Tracks it publishes.
    tracks: Vec<TrackKey>,
    /// Tracks of others it receives.
    legs: Vec<LegKey>,
    /// Header extension ids it uses: mid, rid, audio level, transport-wide sequence
    /// number.
    mid_ext: Option<u8>,
    rid_ext: Option<u8>,
    audio_level_ext: Option<u8>,
    twcc_ext: Option<u8>,
    /// Its last layout (whose video, how large), if it sent one: video it does not
    /// show is paused, also video that starts later (a layout may name a participant
    /// whose camera is not there yet, because its microphone made the tile).
    layout: Option<Vec<(PeerId, u32, u32)>>,
    /// What it can receive (from its transport-wide feedback on what the room sends
    /// it, numbered with `twcc_ext`).
    downlink: Downlink,
    twcc: twcc::Recorder,
    /// Our SSRC for the RTCP we send it.
    rtcp_ssrc: u32,
    next_mid: u32,
}

impl Peer {
    /// As the others see it; `screen`: it shares a screen now.
    fn info(&self, screen: bool) -> PeerInfo {
        PeerInfo {
            id: self.id.to_string(),
            name: self.name.clone(),
            audio_muted: self.audio_muted,
            video_muted: self.video_muted,
            hand: self.hand,
            host: self.role == crate::signaling::Role::Host,
            screen,
        }
    }
}

/// What the room knows of a published stream to report on it.
#[derive(Clone, Copy, Debug, Default)]
struct Reception {
    seq: Unwrapper,
    first: Option<u64>,
    highest: u64,
    /// Which of the last [`ARRIVAL_WINDOW`] sequence numbers arrived: a late packet
    /// (reordered, or a retransmission) is forwarded once, a duplicate never.
    seen: Seen,
    received: u64,
    /// At the last report.
    expected_prior: u64,
    received_prior: u64,
    /// RFC 3550 interarrival jitter (timestamp units, scaled by 16).
    jitter: u32,
    last_transit: Option<i64>,
}

/// Sequence numbers (extended) below the highest one that a late packet may still have.
const ARRIVAL_WINDOW: u64 = 2048;

/// A bitmap of arrivals over the last [`ARRIVAL_WINDOW`] extended sequence numbers.
#[derive(Clone, Copy, Debug)]
struct Seen([u64; (ARRIVAL_WINDOW / 64) as usize]);

impl Default for Seen {
    fn default() -> Self {
        Self([0; (ARRIVAL_WINDOW / 64) as usize])
    }
}

impl Seen {
    fn get(&self, ext: u64) -> bool {
        let b = ext % ARRIVAL_WINDOW;
        self.0[(b / 64) as usize] & (1 << (b % 64)) != 0
    }

    fn set(&mut self, ext: u64, on: bool) {
        let b = ext % ARRIVAL_WINDOW;
        let w = &mut self.0[(b / 64) as usize];
        if on {
            *w |= 1 << (b % 64);
        } else {
            *w &= !(1 << (b % 64));
        }
    }

    /// The highest arrival moves from `from` to `to`: what lies between has not come.
    fn advance(&mut self, from: u64, to: u64) {
        if to - from >= ARRIVAL_WINDOW {
            *self = Self::default();
        } else {
            for skipped in from + 1..to {
                self.set(skipped, false);
            }
        }
        self.set(to, true);
    }
}

/// One encoding of a published track (a simulcast layer; a track without simulcast
/// has one).
struct Encoding {
    /// Its rid (simulcast), or none.
    rid: Option<String>,
    ssrc: Option<u32>,
    /// Video packets for retransmission, by sequence number modulo [`HISTORY`].
    history: Vec<Option<(u16, Buf)>>,
    last_keyframe_request: Option<Instant>,
    reception: Reception,
    /// The publisher's last sender report, its middle NTP bits and when it came.
    last_sr: Option<(u32, Instant)>,
    /// Packets lost on the way in, to NACK: (extended seq, first noticed, tries, last).
    lost: Vec<(u64, Instant, u8, Option<Instant>)>,
    /// Width and height of its last keyframe.
    size: Option<(u16, u16)>,
    /// When its last packet came.
    last_packet: Option<Instant>,
    /// The SSRC it had before it started again under another.
    retired: Option<u32>,
    /// Bytes since the last allocation, and the bitrate they make (smoothed).
    bytes: u64,
    bps: f64,
}

impl Encoding {
    fn new(kind: Kind, rid: Option<String>, ssrc: Option<u32>) -> Self {
        Self {
            rid,
            ssrc,
            history: if kind == Kind::Video {
                (0..HISTORY).map(|_| None).collect()
            } else {
                Vec::new()
            },
            last_keyframe_request: None,
            reception: Reception::default(),
            last_sr: None,
            lost: Vec::new(),
            size: None,
            last_packet: None,
            retired: None,
            bytes: 0,
            bps: 0.0,
        }
    }

    fn active(&self, now: Instant) -> bool {
        self.last_packet
            .is_some_and(|t| now.saturating_duration_since(t) < LAYER_IDLE)
    }
}

/// A track a participant publishes.
struct Track {
    publisher: PeerKey,
    publisher_id: PeerId,
    /// A screen share (else a microphone or camera): shown large by everyone, never
    /// paused by a layout.
    screen: bool,
    kind: Kind,
    /// The payload type agreed with the publisher.
    pt: u8,
    clock: u32,
    /// Its first packet arrived: it is offered to the others.
    open: bool,
    legs: Vec<LegKey>,
    /// Its encodings, lowest first (simulcast), or its one.
    encodings: Vec<Encoding>,
    /// Encodings the publisher was last told to send (simulcast only), and since when
    /// fewer would do.
    layers_told: u8,
    fewer_since: Option<Instant>,
}

/// What a subscriber shows of a publisher's video.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Want {
    /// No layout yet: the best there is.
    Best,
    /// A tile of this size in pixels.
    Tile(u32, u32),
    /// Not on screen.
    Hidden,
}

/// One subscriber's copy of a track.
struct Leg {
    track: TrackKey,
    subscriber: PeerKey,
    ssrc: u32,
    pt: u8,
    /// Added to the publisher's sequence numbers (so the subscriber's start at random):
    /// audio, which has one encoding and is never paused.
    seq_delta: u16,
    /// Video: the layer it gets and the rewriting that keeps its stream continuous.
    video: Option<Forwarder>,
    want: Want,
    /// The highest layer it may get: what its tile needs, within its downlink's
    /// estimate (`None`: paused, off screen or no room for it).
    allowed: Option<Layer>,
    /// The subscriber has answered an offer that includes it.
    negotiated: bool,
    srtp: StreamState,
    packets: u32,
    octets: u32,
    /// Retransmissions in the second since `rtx_since`.
    rtx_since: Instant,
    rtx_sent: u16,
}

/// Why the room could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No DTLS certificate.
    #[error(transparent)]
    Dtls(#[from] super::dtls::Error),
}

/// What one compound RTCP packet asks for, collected before acting on it (reused, so
/// RTCP allocates nothing either).
#[derive(Default)]
struct RtcpWork {
    keyframes: Vec<(TrackKey, Layer)>,
    nacks: Vec<(LegKey, u16)>,
    srs: Vec<((TrackKey, Layer), SenderInfo)>,
}

/// Where participants reach the room: the address in its candidates, the UDP port and,
/// if the driver accepts ICE-TCP, the TCP port.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Advertised {
    /// The address (a load balancer's, the node's, or the host's).
    pub ip: IpAddr,
    /// The UDP port.
    pub udp_port: u16,
    /// The TCP port of the passive ICE-TCP candidate, if there is one.
    pub tcp_port: Option<u16>,
}

impl Advertised {
    /// UDP only, at `addr`.
    pub fn udp(addr: std::net::SocketAddr) -> Self {
        Self {
            ip: addr.ip(),
            udp_port: addr.port(),
            tcp_port: None,
        }
    }

    /// The candidates, UDP first (browsers prefer it by priority too).
    fn candidates(&self) -> Vec<Candidate> {
        let mut c = vec![Candidate::udp(self.ip, self.udp_port)];
        c.extend(self.tcp_port.map(|port| Candidate::tcp(self.ip, port)));
        c
    }
}

/// Most seats a room remembers as removed; beyond that a removal still disconnects.
pub const MAX_REMOVED: usize = 10_000;
/// Most seats a room remembers as admitted from the lobby (so a reconnect does not
/// wait again); beyond that a reconnect waits.
pub const MAX_ADMITTED: usize = 10_000;
/// Streams whose SRTP state a participant keeps after it stopped sending them.
const RETIRED_STREAMS: usize = 8;
/// Hosts who may join beyond `max_participants`: a full class must not keep its
/// teacher out.
pub const HOST_SEATS: u32 = 5;

/// Who asks to join a room: what its session learned from the `join` message and the
/// token.
#[derive(Clone, Debug)]
pub struct Arrival {
    /// Display name.
    pub name: String,
    /// Participant or host, from the token.
    pub role: Access,
    /// The seat it had before in this browser tab, if any.
    pub seat: Option<String>,
    /// TURN servers with its own credential, for its `welcome`.
    pub ice_servers: Vec<IceServer>,
}

/// What a participant's media section carries, as its offer says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Carries {
    /// Its microphone or camera.
    Media,
    /// The screen share the offer names, which the room allows.
    Screen,
    /// The screen share the offer names, which the room refused: nothing.
    RefusedScreen,
}

/// Someone waiting to come in.
#[derive(Debug)]
struct Waiting {
    id: PeerId,
    name: String,
    seat: String,
    ice_servers: Vec<IceServer>,
    reason: WaitReason,
}

/// One meeting's media.
pub struct RoomCore {
    settings: RoomSettings,
    /// A host locked the meeting: only hosts may join.
    locked: bool,
    /// A host ended the meeting: nobody may join.
    ended: bool,
    /// A host's "mute everyone" (audio, video): it holds for who joins later too.
    mute_all: (bool, bool),
    /// Who waits to come in, in the order they came (at most `max_participants`).
    waiting: Vec<Waiting>,
    /// Seats a host removed: they stay out (at most [`MAX_REMOVED`]).
    removed: std::collections::HashSet<String>,
    /// Seats that were in the room: joining again (a reconnect) they need not wait
    /// (at most [`MAX_ADMITTED`]).
    admitted: std::collections::HashSet<String>,
    advertised: Advertised,
    cert: Certificate,
    epoch: Instant,
    session_id: u64,
    peers: Slab<Peer>,
    ids: HashMap<PeerId, PeerKey>,
    next_id: PeerId,
    ufrags: HashMap<String, PeerKey>,
    addrs: HashMap<Remote, PeerKey>,
    tracks: Slab<Track>,
    legs: Slab<Leg>,
    transmits: VecDeque<Transmit>,
    outbound: VecDeque<(PeerId, Outbound)>,
    pool: Pool,
    scratch: Vec<u8>,
    rtcp_work: RtcpWork,
    stats: Stats,
    speakers: speaker::Detector,
    next_allocate: Instant,
    next_tick: Instant,
    next_feedback: Instant,
    next_report: Instant,
}

fn opus() -> Codec {
    Codec {
        pt: SEND_PT_AUDIO,
        name: "opus".into(),
        clock: 48000,
        channels: 2,
        fmtp: Some("minptime=10;useinbandfec=1".into()),
        feedback: vec![],
    }
}

fn vp8() -> Codec {
    Codec {
        pt: SEND_PT_VIDEO,
        name: "VP8".into(),
        clock: 90000,
        channels: 0,
        fmtp: None,
        feedback: vec!["nack".into(), "nack pli".into(), "ccm fir".into()],
    }
}

/// The codec the room accepts from a publisher's offer of `kind`: the first Opus or
/// VP8, with the feedback the room gives.
fn accept_codec(kind: Kind, offered: &[Codec]) -> Option<Codec> {
    let (name, clock) = match kind {
        Kind::Audio => ("opus", 48000),
        Kind::Video => ("VP8", 90000),
        Kind::Other => return None,
    };
    let c = offered
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(name) && c.clock == clock)?;
    let supported = ["nack", "nack pli", "ccm fir", "transport-cc"];
    Some(Codec {
        feedback: c
            .feedback
            .iter()
            .filter(|f| {
                supported.contains(&f.as_str())
                    && (kind == Kind::Video || f.as_str() == "transport-cc")
            })
            .cloned()
            .collect(),
        ..c.clone()
    })
}

/// The header extensions the room understands on what publishers send.
fn accept_extmaps(offered: &[(u8, String)]) -> Vec<(u8, String)> {
    offered
        .iter()
        .filter(|(id, uri)| {
            (1..=14).contains(id)
                && [
                    sdp::ext::MID,
                    sdp::ext::RID,
                    sdp::ext::AUDIO_LEVEL,
                    sdp::ext::TRANSPORT_CC,
                ]
                .contains(&uri.as_str())
        })
        .cloned()
        .collect()
}

impl RoomCore {
    /// A room with `settings`, whose ICE candidates name `advertised`.
    pub fn new(
        settings: RoomSettings,
        advertised: Advertised,
        now: Instant,
    ) -> Result<Self, Error> {
        Ok(Self {
            settings,
            advertised,
            cert: Certificate::generate()?,
            epoch: now,
            session_id: u64::from_be_bytes(random_bytes::<8>()) >> 2,
            peers: Slab::new(),
            ids: HashMap::new(),
            next_id: 1,
            locked: false,
            ended: false,
            mute_all: (false, false),
            waiting: Vec::new(),
            removed: std::collections::HashSet::new(),
            admitted: std::collections::HashSet::new(),
            ufrags: HashMap::new(),
            addrs: HashMap::new(),
            tracks: Slab::new(),
            legs: Slab::new(),
            transmits: VecDeque::new(),
            outbound: VecDeque::new(),
            pool: Pool::default(),
            scratch: Vec::with_capacity(1500),
            rtcp_work: RtcpWork::default(),
            stats: Stats::default(),
            speakers: speaker::Detector::default(),
            next_allocate: now + ALLOCATE_INTERVAL,
            next_tick: now + TICK,
            next_feedback: now + twcc::INTERVAL,
            next_report: now + REPORT_INTERVAL,
        })
    }

    /// The most participants it admits.
    pub fn max_participants(&self) -> u32 {
        self.settings.max_participants
    }

    /// The room's counters now.
    pub fn stats(&self) -> Stats {
        Stats {
            participants: self.peers.len() as u32,
            waiting: self.waiting.len() as u32,
            ..self.stats
        }
    }

    /// How many are in the room.
    pub fn participants(&self) -> u32 {
        self.peers.len() as u32
    }

    /// Buffers the pool has ever allocated (a warm room allocates none per packet).
    pub fn buffers_allocated(&self) -> u64 {
        self.pool.allocated
    }

    /// The socket would not take a datagram: it was dropped (counted).
    pub fn note_send_drop(&mut self) {
        self.stats.send_drops += 1;
    }

    /// A datagram left: counted.
    pub fn note_sent(&mut self, bytes: usize) {
        self.stats.datagrams_out += 1;
        self.stats.bytes_out += bytes as u64;
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Gives a sent datagram's buffer back.
    pub fn recycle(&mut self, buf: Buf) {
        self.pool.give(buf);
    }

    /// The next signaling message for a participant.
    pub fn poll_outbound(&mut self) -> Option<(PeerId, Outbound)> {
        self.outbound.pop_front()
    }

    /// When [`RoomCore::handle_timeout`] should be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.peers.is_empty() {
            return None;
        }
        let dtls = self
            .peers
            .iter()
            .filter_map(|(_, p)| p.dtls.as_ref()?.poll_timeout())
            .min();
        Some(dtls.map_or(self.next_tick, |d| d.min(self.next_tick)))
    }

    fn send(&mut self, peer: PeerId, msg: ServerMessage) {
        self.outbound.push_back((peer, Outbound::Message(msg)));
    }

    /// Sends `msg` to everyone in the room.
    fn broadcast(&mut self, msg: &ServerMessage) {
        for &peer in self.ids.keys() {
            self.outbound
                .push_back((peer, Outbound::Message(msg.clone())));
        }
    }

    fn close(&mut self, peer: PeerId) {
        self.outbound.push_back((peer, Outbound::Close));
    }

    fn others(&self, except: PeerKey) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(k, _)| *k != except)
            .map(|(_, p)| p.id)
            .collect()
    }

    // ---- signaling ------------------------------------------------------------------

    /// A participant joins with its display name (its token was checked).
    pub fn join(&mut self, now: Instant, name: String) -> Result<PeerId, ErrorCode> {
        self.join_with(now, name, Vec::new())
    }

    /// The same, with TURN servers for its `welcome` (its credential is its own).
    pub fn join_with(
        &mut self,
        now: Instant,
        name: String,
        ice_servers: Vec<IceServer>,
    ) -> Result<PeerId, ErrorCode> {
        self.join_as(now, name, ice_servers, crate::signaling::Role::Participant)
    }

    /// The same, in `role` (which the driver took from the token it joined with).
    pub fn join_as(
        &mut self,
        now: Instant,
        name: String,
        ice_servers: Vec<IceServer>,
        role: crate::signaling::Role,
    ) -> Result<PeerId, ErrorCode> {
        self.arrive(
            now,
            Arrival {
                name,
                role,
                seat: None,
                ice_servers,
            },
        )
    }

    /// Someone asks to come in. They get an id either way: joined (`welcome` is
    /// queued for them) or waiting (`waiting`; `welcome` or a refusal follows later).
    pub fn arrive(&mut self, now: Instant, a: Arrival) -> Result<PeerId, ErrorCode> {
        let host = a.role == Access::Host;
        if self.ended {
            return Err(ErrorCode::MeetingEnded);
        }
        if !host && a.seat.as_ref().is_some_and(|s| self.removed.contains(s)) {
            return Err(ErrorCode::Removed);
        }
        if self.locked && !host {
            return Err(ErrorCode::Locked);
        }
        let seat = a.seat.unwrap_or_else(|| random_token(16));
        // Who was in already (a reconnect) comes back in.
        let wait = if host || self.admitted.contains(&seat) {
            None
        } else if self.settings.lobby {
            Some(WaitReason::Lobby)
        } else if self.settings.without_host == WithoutHost::Wait && !self.host_present() {
            Some(WaitReason::NoHost)
        } else {
            None
        };
        if let Some(reason) = wait {
            if self.waiting.len() >= self.settings.max_participants as usize {
                return Err(ErrorCode::RoomFull);
            }
            let id = self.next_id;
            self.next_id += 1;
            self.send(id, ServerMessage::Waiting { reason });
            if reason == WaitReason::Lobby {
                let knock = Knock {
                    id: id.to_string(),
                    name: a.name.clone(),
                };
                for h in self.hosts() {
                    self.send(
                        h,
                        ServerMessage::LobbyJoined {
                            peer: knock.clone(),
                        },
                    );
                }
            }
            self.waiting.push(Waiting {
                id,
                name: a.name,
                seat,
                ice_servers: a.ice_servers,
                reason,
            });
            info!(waiting = self.waiting.len(), "participant waits");
            return Ok(id);
        }
        let cap = self.settings.max_participants + if host { HOST_SEATS } else { 0 };
        if self.peers.len() as u32 >= cap {
            return Err(ErrorCode::RoomFull);
        }
        let id = self.next_id;
        self.next_id += 1;
        let first_host = host && !self.host_present();
        self.enter(now, id, a.name, a.role, seat, a.ice_servers);
        if first_host {
            self.host_arrived(now);
        }
        Ok(id)
    }

    /// Whether a host is in the room.
    fn host_present(&self) -> bool {
        self.peers.iter().any(|(_, p)| p.role == Access::Host)
    }

    /// The hosts' ids.
    fn hosts(&self) -> Vec<PeerId> {
        self.peers
            .iter()
            .filter(|(_, p)| p.role == Access::Host)
            .map(|(_, p)| p.id)
            .collect()
    }

    /// The first host came: who waited for one comes in (as far as there is room).
    fn host_arrived(&mut self, now: Instant) {
        let (come, stay): (Vec<Waiting>, Vec<Waiting>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|w| w.reason == WaitReason::NoHost);
        self.waiting = stay;
        for w in come {
            if self.peers.len() as u32 >= self.settings.max_participants {
                self.send(
                    w.id,
                    ServerMessage::error(ErrorCode::RoomFull, "the meeting is full"),
                );
                self.close(w.id);
                continue;
            }
            self.let_in(now, w);
        }
    }

    /// Someone who waited comes in.
    fn let_in(&mut self, now: Instant, w: Waiting) {
        self.enter(
            now,
            w.id,
            w.name,
            Access::Participant,
            w.seat,
            w.ice_servers,
        );
    }

    /// `id` comes into the room: it gets `welcome`, the others `peer-joined`.
    fn enter(
        &mut self,
        now: Instant,
        id: PeerId,
        name: String,
        role: Access,
        seat: String,
        ice_servers: Vec<IceServer>,
    ) {
        if role == Access::Participant && self.admitted.len() < MAX_ADMITTED {
            self.admitted.insert(seat.clone());
        }
        let ufrag = random_token(16);
        // A "mute everyone" holds for latecomers (else rejoining would lift it).
        let (forced_audio, forced_video) = if role == crate::signaling::Role::Host {
            (false, false)
        } else {
            self.mute_all
        };
        let peer = Peer {
            id,
            name,
            role,
            seat: seat.clone(),
            joined_at: now,
            audio_muted: forced_audio,
            video_muted: forced_video,
            hand: false,
            forced_audio,
            forced_video,
            ufrag: ufrag.clone(),
            pwd: random_token(24),
            addr: None,
            proven: Vec::new(),
            last_check: now,
            remote_fingerprint: None,
            dtls_role: Role::Server,
            dtls: None,
            srtp_out: None,
            srtp_in: None,
            connected: false,
            negotiation: Negotiation::AwaitingOffer,
            needs_offer: false,
            sdp_version: 1,
            sections: Vec::new(),
            incoming: Vec::new(),
            retired: Vec::new(),
            resubscribe: false,
            tracks: Vec::new(),
            legs: Vec::new(),
            mid_ext: None,
            rid_ext: None,
            audio_level_ext: None,
            twcc_ext: None,
            layout: None,
            downlink: Downlink::new(self.epoch),
            twcc: twcc::Recorder::default(),
            rtcp_ssrc: u32::from_be_bytes(random_bytes::<4>()),
            next_mid: 0,
        };
        let others: Vec<PeerInfo> = self
            .peers
            .iter()
            .map(|(_, p)| p.info(p.tracks.iter().any(|t| self.tracks[*t].screen)))
            .collect();
        let info = peer.info(false);
        let key = self.peers.insert(peer);
        self.ids.insert(id, key);
        self.ufrags.insert(ufrag, key);
        let lobby = if role == Access::Host {
            self.waiting
                .iter()
                .filter(|w| w.reason == WaitReason::Lobby)
                .map(|w| Knock {
                    id: w.id.to_string(),
                    name: w.name.clone(),
                })
                .collect()
        } else {
            Vec::new()
        };
        self.send(
            id,
            ServerMessage::Welcome {
                id: id.to_string(),
                role,
                peers: others,
                ice_servers,
                seat,
                lobby,
            },
        );
        if forced_audio || forced_video {
            self.send(
                id,
                ServerMessage::MutedByHost {
                    audio: forced_audio,
                    video: forced_video,
                },
            );
        }
        if let Some(speaker) = self.speakers.speaker() {
            self.send(
                id,
                ServerMessage::Speaker {
                    id: speaker.to_string(),
                },
            );
        }
        for other in self.others(key) {
            self.send(other, ServerMessage::PeerJoined { peer: info.clone() });
        }
        info!(participants = self.peers.len(), "participant joined");
    }

    /// A participant's WebSocket closed (or it said `leave`): it is gone.
    pub fn leave(&mut self, now: Instant, id: PeerId) {
        let Some(key) = self.ids.remove(&id) else {
            self.stop_waiting(id);
            return;
        };
        let peer = self.peers.remove(key);
        self.speakers.forget(id);
        self.ufrags.remove(&peer.ufrag);
        self.addrs.retain(|_, k| *k != key);
        // Its subscriptions go.
        for leg in peer.legs {
            let l = self.legs.remove(leg);
            if let Some(t) = self.tracks.get_mut(l.track) {
                t.legs.retain(|x| *x != leg);
            }
        }
        // Its tracks go, and with them the others' sections for them.
        let mut shared = false;
        for track in peer.tracks {
            shared |= self.drop_track(track).screen;
        }
        if shared {
            self.broadcast(&ServerMessage::Screen {
                id: id.to_string(),
                sharing: false,
            });
        }
        for other in self.others(usize::MAX) {
            self.send(other, ServerMessage::PeerLeft { id: id.to_string() });
        }
        self.offer_where_needed(now);
        info!(participants = self.peers.len(), "participant left");
    }

    /// Forgets a published track, and with it the others' sections for it (they go
    /// idle, to be renegotiated).
    fn drop_track(&mut self, track: TrackKey) -> Track {
        let t = self.tracks.remove(track);
        for &leg in &t.legs {
            let l = self.legs.remove(leg);
            if let Some(sub) = self.peers.get_mut(l.subscriber) {
                sub.legs.retain(|x| *x != leg);
                for s in &mut sub.sections {
                    if matches!(s.role, SectionRole::Subscribe(k) if k == leg) {
                        s.role = SectionRole::Idle;
                        sub.needs_offer = true;
                    }
                }
            }
        }
        t
    }

    /// `key` stops publishing `track` (its browser stopped sending it, or stopped a
    /// screen share, or a host ended the share). Its section receives nothing more;
    /// `tell`: offer `key` that (when the room, not its own offer, ended it).
    fn unpublish(&mut self, key: PeerKey, track: TrackKey, tell: bool) {
        let t = self.drop_track(track);
        let p = &mut self.peers[key];
        p.tracks.retain(|x| *x != track);
        for s in &mut p.sections {
            if let SectionRole::Publish {
                track: t @ Some(_),
                direction,
                rids,
                ..
            } = &mut s.role
                && *t == Some(track)
            {
                *t = None;
                *direction = Direction::Inactive;
                rids.clear();
                p.needs_offer |= tell;
            }
        }
        for i in p.incoming.iter().filter(|i| i.track == track) {
            p.retired.retain(|(ssrc, _)| *ssrc != i.ssrc);
            p.retired.push((i.ssrc, i.srtp));
        }
        let excess = p.retired.len().saturating_sub(RETIRED_STREAMS);
        p.retired.drain(..excess);
        p.incoming.retain(|i| i.track != track);
        if t.screen {
            let id = p.id.to_string();
            info!("screen share ended");
            self.broadcast(&ServerMessage::Screen { id, sharing: false });
        }
    }

    /// Most media sections one participant's session may have: each of the others'
    /// microphone and camera (hosts beyond the limit included), one screen share, its
    /// own media, and a few refused ones.
    fn max_sections(&self) -> usize {
        2 * (self.settings.max_participants + HOST_SEATS) as usize + 1 + 8
    }

    /// Whether `key` may start sharing its screen in the section `mid` of `d`; if not,
    /// it is told why.
    fn may_share(&mut self, key: PeerKey, mid: &str, d: &Description) -> bool {
        let p = &self.peers[key];
        let id = p.id;
        let section_ok = d.media.iter().any(|m| {
            m.mid.as_deref() == Some(mid)
                && m.kind == Kind::Video
                && m.port != 0
                && m.direction.sends()
        });
        if !section_ok {
            self.send(
                id,
                ServerMessage::error(
                    ErrorCode::BadRequest,
                    "the screen share names no video section this offer sends",
                ),
            );
            return false;
        }
        let already_mine = p.tracks.iter().any(|t| self.tracks[*t].screen);
        let other = self
            .tracks
            .iter()
            .any(|(_, t)| t.screen && t.publisher != key);
        let refusal = match self.settings.screen_share {
            _ if p.forced_video => Some("a host switched your video off"),
            ScreenShare::Nobody => Some("screen sharing is off in this meeting"),
            ScreenShare::Hosts if p.role != Access::Host => {
                Some("only hosts may share a screen in this meeting")
            }
            _ if other => Some("someone else is sharing a screen; one at a time"),
            _ if !self.settings.video => Some("video is off in this meeting"),
            _ => None,
        };
        match refusal {
            Some(why) if !already_mine => {
                self.send(id, ServerMessage::error(ErrorCode::ScreenRefused, why));
                false
            }
            _ => true,
        }
    }

    /// A section the room knew, as the participant's new offer has it: a track it
    /// publishes stops when the section no longer sends (or stops being what it was),
    /// and a section that sends again publishes again.
    fn renegotiated_section(
        &mut self,
        key: PeerKey,
        s: Section,
        m: &sdp::Media,
        carries: Carries,
    ) -> Section {
        match s.role {
            SectionRole::Publish { track: Some(t), .. } => {
                let sends = m.port != 0 && m.direction.sends();
                if sends
                    && carries != Carries::RefusedScreen
                    && self.tracks[t].screen == (carries == Carries::Screen)
                {
                    return s;
                }
                self.unpublish(key, t, false);
                self.new_remote_section(key, m, carries)
            }
            SectionRole::Publish { track: None, .. } => self.new_remote_section(key, m, carries),
            _ => s,
        }
    }

    /// `id` no longer waits (it left, or was let in or turned away); hosts who saw it
    /// knock are told.
    fn stop_waiting(&mut self, id: PeerId) -> Option<Waiting> {
        let i = self.waiting.iter().position(|w| w.id == id)?;
        let w = self.waiting.remove(i);
        if w.reason == WaitReason::Lobby {
            for h in self.hosts() {
                self.send(h, ServerMessage::LobbyLeft { id: id.to_string() });
            }
        }
        Some(w)
    }

    /// How many wait to come in.
    pub fn waiting(&self) -> u32 {
        self.waiting.len() as u32
    }

    /// Tells everyone the meeting ended and forgets them.
    pub fn shutdown(&mut self, now: Instant) {
        for w in std::mem::take(&mut self.waiting) {
            self.send(
                w.id,
                ServerMessage::error(ErrorCode::MeetingEnded, "the meeting has ended"),
            );
            self.close(w.id);
        }
        let ids: Vec<PeerId> = self.ids.keys().copied().collect();
        for id in ids {
            self.send(
                id,
                ServerMessage::error(ErrorCode::MeetingEnded, "the meeting has ended"),
            );
            self.close(id);
            self.leave(now, id);
        }
        // Nobody is left to tell who left.
        self.outbound
            .retain(|(_, m)| !matches!(m, Outbound::Message(ServerMessage::PeerLeft { .. })));
    }

    /// A signaling message from a joined participant.
    pub fn handle_message(&mut self, now: Instant, id: PeerId, msg: ClientMessage) {
        let Some(&key) = self.ids.get(&id) else {
            if self.waiting.iter().any(|w| w.id == id) {
                if msg == ClientMessage::Leave {
                    self.close(id);
                    self.stop_waiting(id);
                } else {
                    self.send(
                        id,
                        ServerMessage::error(
                            ErrorCode::BadRequest,
                            "you are waiting to be let in; only leave is possible",
                        ),
                    );
                }
            }
            return;
        };
        let host_only = matches!(
            msg,
            ClientMessage::MuteParticipant { .. }
                | ClientMessage::LowerHand { .. }
                | ClientMessage::MuteEveryone { .. }
                | ClientMessage::Remove { .. }
                | ClientMessage::Lock { .. }
                | ClientMessage::EndMeeting
                | ClientMessage::Admit { .. }
                | ClientMessage::Refuse { .. }
        );
        if host_only && self.peers[key].role != crate::signaling::Role::Host {
            self.send(
                id,
                ServerMessage::error(ErrorCode::Forbidden, "only a host may do that"),
            );
            return;
        }
        match msg {
            ClientMessage::Join { .. } => self.send(
                id,
                ServerMessage::error(ErrorCode::BadRequest, "already joined"),
            ),
            ClientMessage::Offer { sdp, screen } => self.offer(now, key, &sdp, screen.as_deref()),
            ClientMessage::Answer { sdp } => self.answer(now, key, &sdp),
            // ICE-lite: the participant's checks find the room; its candidates are not
            // needed.
            ClientMessage::Candidate { .. } => {}
            ClientMessage::Chat { text } => {
                if !self.settings.chat {
                    return;
                }
                let from = id.to_string();
                for other in self.others(key) {
                    self.send(
                        other,
                        ServerMessage::Chat {
                            from: from.clone(),
                            text: text.clone(),
                        },
                    );
                }
            }
            ClientMessage::Mute { audio, video } => {
                let p = &mut self.peers[key];
                // Unmuting what a host muted: only if the meeting lets participants.
                let held_audio = p.forced_audio && !audio;
                let held_video = p.forced_video && !video;
                if (held_audio || held_video) && !self.settings.participants_may_unmute {
                    let (forced_audio, forced_video) = (p.forced_audio, p.forced_video);
                    self.send(
                        id,
                        ServerMessage::error(
                            ErrorCode::Forbidden,
                            "a host muted you; only a host can lift it",
                        ),
                    );
                    self.send(
                        id,
                        ServerMessage::MutedByHost {
                            audio: forced_audio,
                            video: forced_video,
                        },
                    );
                    return;
                }
                if held_audio {
                    p.forced_audio = false;
                }
                if held_video {
                    p.forced_video = false;
                }
                p.audio_muted = audio;
                p.video_muted = video;
                for other in self.others(key) {
                    self.send(
                        other,
                        ServerMessage::Mute {
                            id: id.to_string(),
                            audio,
                            video,
                        },
                    );
                }
            }
            ClientMessage::Layout { tiles } => self.layout(now, key, &tiles),
            ClientMessage::Leave => {
                self.close(id);
                self.leave(now, id);
            }
            ClientMessage::Hand { raised } => self.hand(key, raised),
            ClientMessage::LowerHand { id: target } => match self.target(&target) {
                Some(t) => self.hand(t, false),
                None => self.no_such_participant(id),
            },
            ClientMessage::MuteParticipant {
                id: target,
                audio,
                video,
            } => match self.target(&target) {
                Some(t) => {
                    self.host_mute(t, audio, video);
                    self.offer_where_needed(now);
                }
                None => self.no_such_participant(id),
            },
            ClientMessage::MuteEveryone { audio, video } => {
                self.mute_all = (
                    audio.unwrap_or(self.mute_all.0),
                    video.unwrap_or(self.mute_all.1),
                );
                let targets: Vec<PeerKey> = self
                    .peers
                    .iter()
                    .filter(|(_, p)| p.role != crate::signaling::Role::Host)
                    .map(|(k, _)| k)
                    .collect();
                for t in targets {
                    self.host_mute(t, audio, video);
                }
                self.offer_where_needed(now);
            }
            ClientMessage::Remove { id: target } => match self.target(&target) {
                Some(t) if t == key => self.send(
                    id,
                    ServerMessage::error(
                        ErrorCode::BadRequest,
                        "leave instead of removing yourself",
                    ),
                ),
                Some(t) => {
                    let gone = self.peers[t].id;
                    if self.removed.len() < MAX_REMOVED {
                        self.removed.insert(self.peers[t].seat.clone());
                    }
                    self.send(
                        gone,
                        ServerMessage::error(
                            ErrorCode::Removed,
                            "a host removed you from the meeting",
                        ),
                    );
                    self.close(gone);
                    self.leave(now, gone);
                }
                None => self.no_such_participant(id),
            },
            ClientMessage::Lock { locked } => {
                if self.locked != locked {
                    self.locked = locked;
                    self.broadcast(&ServerMessage::Locked { locked });
                }
            }
            ClientMessage::Admit { id: target } => self.admit(now, id, &target),
            ClientMessage::Refuse { id: target } => {
                let w = target
                    .parse::<PeerId>()
                    .ok()
                    .and_then(|t| self.stop_waiting(t));
                match w {
                    Some(w) => {
                        self.send(
                            w.id,
                            ServerMessage::error(ErrorCode::Refused, "a host did not let you in"),
                        );
                        self.close(w.id);
                    }
                    None => self.no_such_participant(id),
                }
            }
            ClientMessage::EndMeeting => {
                info!("a host ended the meeting");
                self.ended = true;
                self.shutdown(now);
            }
        }
    }

    /// Host `by` lets `target` in from the lobby, if there is room.
    fn admit(&mut self, now: Instant, by: PeerId, target: &str) {
        let Some(t) = target
            .parse::<PeerId>()
            .ok()
            .filter(|t| self.waiting.iter().any(|w| w.id == *t))
        else {
            return self.no_such_participant(by);
        };
        if self.peers.len() as u32 >= self.settings.max_participants {
            return self.send(
                by,
                ServerMessage::error(
                    ErrorCode::BadRequest,
                    "the meeting is full: nobody can come in until someone leaves",
                ),
            );
        }
        if let Some(w) = self.stop_waiting(t) {
            self.let_in(now, w);
        }
    }

    /// `key`'s hand goes up or down; everyone (`key` too) is told, once per change.
    fn hand(&mut self, key: PeerKey, raised: bool) {
        let p = &mut self.peers[key];
        if p.hand == raised {
            return;
        }
        p.hand = raised;
        let id = p.id.to_string();
        self.broadcast(&ServerMessage::Hand { id, raised });
    }

    /// The participant a host message names, if it is here.
    fn target(&self, id: &str) -> Option<PeerKey> {
        id.parse::<PeerId>()
            .ok()
            .and_then(|id| self.ids.get(&id).copied())
    }

    fn no_such_participant(&mut self, to: PeerId) {
        // Someone who left meanwhile is no error of the host's, but nothing happens.
        self.send(
            to,
            ServerMessage::error(ErrorCode::BadRequest, "no such participant (any more)"),
        );
    }

    /// A host mutes (`true`) or lifts the mute (`false`) of `key`'s audio and video
    /// (`None`: as it is). Muting takes effect at once: the room drops that media on
    /// arrival.
    fn host_mute(&mut self, key: PeerKey, audio: Option<bool>, video: Option<bool>) {
        let p = &mut self.peers[key];
        let before = (p.forced_audio, p.forced_video, p.audio_muted, p.video_muted);
        let audio = audio.unwrap_or(p.forced_audio);
        let video = video.unwrap_or(p.forced_video);
        p.forced_audio = audio;
        p.forced_video = video;
        p.audio_muted |= audio;
        p.video_muted |= video;
        let (id, audio_muted, video_muted) = (p.id, p.audio_muted, p.video_muted);
        if before == (audio, video, audio_muted, video_muted) {
            return;
        }
        self.send(id, ServerMessage::MutedByHost { audio, video });
        for other in self.others(key) {
            self.send(
                other,
                ServerMessage::Mute {
                    id: id.to_string(),
                    audio: audio_muted,
                    video: video_muted,
                },
            );
        }
        // Video off ends a screen share too (a frozen one would stay large for all).
        if video {
            let screens: Vec<TrackKey> = self.peers[key]
                .tracks
                .iter()
                .copied()
                .filter(|t| self.tracks[*t].screen)
                .collect();
            for t in screens {
                self.unpublish(key, t, true);
            }
        }
    }

    /// What a subscriber shows: each video leg gets the tile's size, or is hidden.
    fn layout(&mut self, now: Instant, key: PeerKey, tiles: &[crate::signaling::Tile]) {
        let mut unknown = false;
        let mut wants: Vec<(PeerId, u32, u32)> = Vec::with_capacity(tiles.len());
        for t in tiles {
            match t.id.parse::<PeerId>() {
                Ok(id) if id > 0 && id < self.next_id => match wants.iter_mut().find(|w| w.0 == id)
                {
                    // The same video twice: the larger tile counts.
                    Some(w) => {
                        w.1 = w.1.max(t.width);
                        w.2 = w.2.max(t.height);
                    }
                    None => wants.push((id, t.width, t.height)),
                },
                // An id that was never given out (one that left is no error: the
                // layout may have crossed its leaving).
                _ => unknown = true,
            }
        }
        for i in 0..self.peers[key].legs.len() {
            let leg_key = self.peers[key].legs[i];
            let track = &self.tracks[self.legs[leg_key].track];
            let (publisher, screen) = (track.publisher_id, track.screen);
            let leg = &mut self.legs[leg_key];
            if leg.video.is_some() && !screen {
                leg.want = want_in(Some(&wants), publisher);
            }
        }
        self.peers[key].layout = Some(wants);
        if unknown {
            let id = self.peers[key].id;
            self.send(
                id,
                ServerMessage::error(
                    ErrorCode::BadRequest,
                    "the layout names someone who is not in the meeting",
                ),
            );
        }
        self.allocate(now);
    }

    fn refuse_and_drop(&mut self, now: Instant, key: PeerKey, message: &str) {
        let id = self.peers[key].id;
        self.send(id, ServerMessage::error(ErrorCode::BadRequest, message));
        self.close(id);
        self.leave(now, id);
    }

    /// The participant's offer: its own media (first), or later changes.
    fn offer(&mut self, now: Instant, key: PeerKey, sdp: &str, screen: Option<&str>) {
        let id = self.peers[key].id;
        if self.peers[key].negotiation == Negotiation::OfferSent {
            self.send(
                id,
                ServerMessage::error(ErrorCode::BadRequest, "answer the pending offer first"),
            );
            return;
        }
        let d = match Description::parse(sdp) {
            Ok(d) => d,
            Err(e) => {
                debug!(peer = id, error = %e, "offer refused");
                return self.refuse_and_drop(now, key, "the offer could not be used");
            }
        };
        // Every section stays for the session (mids are never reused), so the total is
        // bounded: the participant's own media and one section per track of the others.
        let cap = self.max_sections();
        if d.media.len() > cap {
            return self.refuse_and_drop(
                now,
                key,
                "the offer has too many or repeated media sections",
            );
        }
        let mut mids: Vec<&str> = d.media.iter().filter_map(|m| m.mid.as_deref()).collect();
        mids.sort_unstable();
        let duplicate = mids.windows(2).any(|w| w[0] == w[1]);
        let new = d
            .media
            .iter()
            .filter(|m| {
                !self.peers[key]
                    .sections
                    .iter()
                    .any(|s| Some(&s.mid) == m.mid.as_ref())
            })
            .count();
        if duplicate || self.peers[key].sections.len() + new > cap {
            return self.refuse_and_drop(
                now,
                key,
                "the offer has too many or repeated media sections",
            );
        }
        if self.apply_remote_transport(now, key, &d).is_err() {
            return self.refuse_and_drop(now, key, "the offer could not be used");
        }
        let first = self.peers[key].negotiation == Negotiation::AwaitingOffer;
        let (screen, refused) = match screen {
            Some(mid) if self.may_share(key, mid, &d) => (Some(mid), None),
            Some(mid) => (None, Some(mid)),
            None => (None, None),
        };
        // Sections: existing ones by mid keep their role (a track of the
        // participant's own stops or starts with the section's direction); new ones
        // are the participant's own media (or refused).
        let mut sections = Vec::with_capacity(d.media.len());
        for m in &d.media {
            let existing = self.peers[key]
                .sections
                .iter()
                .find(|s| Some(&s.mid) == m.mid.as_ref())
                .cloned();
            let mid = m.mid.as_deref();
            let carries = if mid.is_some() && mid == screen {
                Carries::Screen
            } else if mid.is_some() && mid == refused {
                Carries::RefusedScreen
            } else {
                Carries::Media
            };
            let section = match existing {
                Some(s) => self.renegotiated_section(key, s, m, carries),
                None => self.new_remote_section(key, m, carries),
            };
            sections.push(section);
        }
        // Sections the offer left out: a refused one whose m-line the browser reused
        // for a new mid is gone; others (an offer must not leave them out) stay, so
        // mids stay unique.
        let mut known: Vec<Section> = std::mem::take(&mut self.peers[key].sections);
        known.retain(|s| {
            !sections.iter().any(|n| n.mid == s.mid) && !matches!(s.role, SectionRole::Rejected)
        });
        sections.extend(known);
        self.peers[key].sections = sections;
        let answer = self.render(key);
        self.peers[key].negotiation = Negotiation::Stable;
        self.send(id, ServerMessage::Answer { sdp: answer });
        if first {
            self.subscribe_to_everyone(key);
        }
        self.offer_where_needed(now);
    }

    /// Takes the participant's ICE and DTLS parameters from its description.
    fn apply_remote_transport(
        &mut self,
        now: Instant,
        key: PeerKey,
        d: &Description,
    ) -> Result<(), ()> {
        let p = &mut self.peers[key];
        if let Some(fp) = &p.remote_fingerprint
            && !fp.eq_ignore_ascii_case(&d.fingerprint)
        {
            // A new certificate means a new DTLS association: not supported mid-call.
            return Err(());
        }
        if p.dtls.is_none() {
            p.dtls_role = match d.setup {
                Setup::Passive => Role::Client,
                Setup::ActPass | Setup::Active => Role::Server,
            };
            p.dtls = Some(Dtls::new(&self.cert, p.dtls_role, &d.fingerprint, now).map_err(|_| ())?);
            p.remote_fingerprint = Some(d.fingerprint.clone());
        }
        // Header extension ids, from any section.
        for m in &d.media {
            for (id, uri) in &m.extmaps {
                let slot = match uri.as_str() {
                    sdp::ext::MID => &mut p.mid_ext,
                    sdp::ext::RID => &mut p.rid_ext,
                    sdp::ext::AUDIO_LEVEL => &mut p.audio_level_ext,
                    sdp::ext::TRANSPORT_CC => &mut p.twcc_ext,
                    _ => continue,
                };
                if (1..=14).contains(id) {
                    *slot = Some(*id);
                }
            }
        }
        Ok(())
    }

    /// A section the participant's offer adds: its microphone or camera or screen share
    /// (one each), or something refused.
    fn new_remote_section(&mut self, key: PeerKey, m: &sdp::Media, carries: Carries) -> Section {
        let screen = carries == Carries::Screen;
        let mid = m.mid.clone().unwrap_or_default();
        let rejected = Section {
            mid: mid.clone(),
            kind: m.kind,
            role: SectionRole::Rejected,
        };
        if m.port == 0 || m.kind == Kind::Other {
            return rejected;
        }
        let Some(codec) = accept_codec(m.kind, &m.codecs) else {
            return rejected;
        };
        let allowed = match m.kind {
            Kind::Audio => self.settings.audio,
            Kind::Video => self.settings.video,
            Kind::Other => false,
        };
        let p = &self.peers[key];
        let has_one = p
            .tracks
            .iter()
            .any(|t| self.tracks[*t].kind == m.kind && self.tracks[*t].screen == screen);
        let publisher_id = p.id;
        // A refused screen share is not taken for a camera either.
        let publishes =
            allowed && m.direction.sends() && !has_one && carries != Carries::RefusedScreen;
        let extmaps = accept_extmaps(&m.extmaps);
        // Simulcast: one encoding per rid (lowest first, as the web client sends
        // them); the packets say their rid.
        let rids: Vec<String> = if m.kind == Kind::Video && m.rids.len() > 1 {
            m.rids.iter().take(MAX_LAYERS).cloned().collect()
        } else {
            Vec::new()
        };
        let track = publishes.then(|| {
            let encodings = if rids.is_empty() {
                vec![Encoding::new(m.kind, None, m.ssrcs.first().copied())]
            } else {
                rids.iter()
                    .map(|r| Encoding::new(m.kind, Some(r.clone()), None))
                    .collect()
            };
            let t = self.tracks.insert(Track {
                publisher: key,
                publisher_id,
                screen,
                kind: m.kind,
                pt: codec.pt,
                clock: codec.clock,
                open: false,
                legs: Vec::new(),
                layers_told: encodings.len() as u8,
                encodings,
                fewer_since: None,
            });
            let p = &mut self.peers[key];
            p.tracks.push(t);
            if let (true, Some(&ssrc)) = (rids.is_empty(), m.ssrcs.first()) {
                // A stream sent before (a screen shared again) goes on where it was.
                let srtp = p
                    .retired
                    .iter()
                    .position(|(s, _)| *s == ssrc)
                    .map_or_else(StreamState::default, |i| p.retired.swap_remove(i).1);
                p.incoming.push(Incoming {
                    ssrc,
                    track: t,
                    layer: 0,
                    srtp,
                });
            }
            t
        });
        if screen && track.is_some() {
            info!("screen share started");
            self.broadcast(&ServerMessage::Screen {
                id: publisher_id.to_string(),
                sharing: true,
            });
        }
        Section {
            mid,
            kind: m.kind,
            role: SectionRole::Publish {
                track,
                codec,
                extmaps,
                direction: if publishes {
                    Direction::RecvOnly
                } else {
                    Direction::Inactive
                },
                rids: if publishes { rids } else { Vec::new() },
            },
        }
    }

    /// The participant's answer to the room's offer.
    fn answer(&mut self, now: Instant, key: PeerKey, sdp: &str) {
        let id = self.peers[key].id;
        if self.peers[key].negotiation != Negotiation::OfferSent {
            self.send(
                id,
                ServerMessage::error(ErrorCode::BadRequest, "there is no offer to answer"),
            );
            return;
        }
        let d = match Description::parse(sdp) {
            Ok(d) => d,
            Err(e) => {
                debug!(peer = id, error = %e, "answer refused");
                return self.refuse_and_drop(now, key, "the answer could not be used");
            }
        };
        if self.apply_remote_transport(now, key, &d).is_err() {
            return self.refuse_and_drop(now, key, "the answer could not be used");
        }
        self.peers[key].negotiation = Negotiation::Stable;
        // Subscriptions in the answer are live now; refused ones stop.
        let mut fresh: Vec<TrackKey> = Vec::new();
        let sections = self.peers[key].sections.clone();
        for s in &sections {
            let SectionRole::Subscribe(leg) = s.role else {
                continue;
            };
            let accepted = d
                .media
                .iter()
                .find(|m| m.mid.as_deref() == Some(s.mid.as_str()))
                .is_some_and(|m| m.port != 0);
            let l = &mut self.legs[leg];
            if accepted && !l.negotiated {
                l.negotiated = true;
                fresh.push(l.track);
            }
        }
        // Video waits for a keyframe of its layer: allocating asks for one.
        if !fresh.is_empty() {
            self.allocate(now);
        }
        if std::mem::take(&mut self.peers[key].resubscribe) {
            self.subscribe_to_everyone(key);
        }
        self.offer_where_needed(now);
    }

    /// A new participant's first negotiation is done: it gets every open track.
    fn subscribe_to_everyone(&mut self, key: PeerKey) {
        let open: Vec<TrackKey> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.open && t.publisher != key)
            .map(|(k, _)| k)
            .collect();
        for t in open {
            self.add_leg(key, t);
        }
    }

    /// Gives `subscriber` a section sending `track` (reusing an idle one of its kind).
    fn add_leg(&mut self, subscriber: PeerKey, track: TrackKey) {
        let sub = &self.peers[subscriber];
        if sub.negotiation == Negotiation::AwaitingOffer
            || sub.legs.iter().any(|l| self.legs[*l].track == track)
        {
            return;
        }
        let kind = self.tracks[track].kind;
        let clock = self.tracks[track].clock;
        // A screen share is shown by everyone, whatever their layout says.
        let want = if self.tracks[track].screen {
            Want::Best
        } else {
            want_in(sub.layout.as_deref(), self.tracks[track].publisher_id)
        };
        // An idle section is reused only between negotiations: the answer to an offer
        // still pending would otherwise seem to accept a track it never saw.
        let idle = (sub.negotiation == Negotiation::Stable)
            .then(|| {
                sub.sections
                    .iter()
                    .position(|s| s.kind == kind && matches!(s.role, SectionRole::Idle))
            })
            .flatten();
        // While it negotiates, an idle section of the kind waits for the answer rather
        // than a new section growing its session (a track that stops and starts
        // again while others negotiate would otherwise add one each time).
        if idle.is_none()
            && sub.negotiation == Negotiation::OfferSent
            && sub
                .sections
                .iter()
                .any(|s| s.kind == kind && matches!(s.role, SectionRole::Idle))
        {
            self.peers[subscriber].resubscribe = true;
            return;
        }
        let sub = &self.peers[subscriber];
        if sub.sections.len() >= self.max_sections() {
            debug!("a subscriber has as many sections as a session may have");
            return;
        }
        let mid = match idle {
            Some(i) => sub.sections[i].mid.clone(),
            None => format!("r{}", sub.next_mid),
        };
        // Unique among what this subscriber receives: one SSRC twice under one SRTP
        // key would reuse GCM nonces.
        let ssrc = loop {
            let ssrc = u32::from_be_bytes(random_bytes::<4>());
            if ssrc != sub.rtcp_ssrc && !sub.legs.iter().any(|l| self.legs[*l].ssrc == ssrc) {
                break ssrc;
            }
        };
        let leg = self.legs.insert(Leg {
            track,
            subscriber,
            ssrc,
            pt: if kind == Kind::Audio {
                SEND_PT_AUDIO
            } else {
                SEND_PT_VIDEO
            },
            seq_delta: u16::from_be_bytes(random_bytes::<2>()),
            video: (kind == Kind::Video)
                .then(|| Forwarder::new(u16::from_be_bytes(random_bytes::<2>()), clock)),
            // A subscriber that sends layouts shows a new video if its last layout
            // has a tile for it (the microphone's track may have made the tile),
            // else once its next one has.
            want,
            allowed: None,
            negotiated: false,
            srtp: StreamState::default(),
            packets: 0,
            octets: 0,
            rtx_since: self.epoch,
            rtx_sent: 0,
        });
        self.tracks[track].legs.push(leg);
        let sub = &mut self.peers[subscriber];
        sub.legs.push(leg);
        match idle {
            Some(i) => sub.sections[i].role = SectionRole::Subscribe(leg),
            None => {
                sub.next_mid += 1;
                sub.sections.push(Section {
                    mid,
                    kind,
                    role: SectionRole::Subscribe(leg),
                });
            }
        }
        sub.needs_offer = true;
    }

    /// Offers every participant whose sections changed and that is not negotiating.
    fn offer_where_needed(&mut self, _now: Instant) {
        let ready: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.needs_offer && p.negotiation == Negotiation::Stable)
            .map(|(k, _)| k)
            .collect();
        for key in ready {
            let sdp = self.render(key);
            let p = &mut self.peers[key];
            p.needs_offer = false;
            p.negotiation = Negotiation::OfferSent;
            let id = p.id;
            self.send(id, ServerMessage::Offer { sdp });
        }
    }

    /// The participant's session as the room describes it now (an answer or an offer).
    fn render(&mut self, key: PeerKey) -> String {
        let p = &mut self.peers[key];
        p.sdp_version += 1;
        let local = Local {
            ufrag: p.ufrag.clone(),
            pwd: p.pwd.clone(),
            fingerprint: self.cert.fingerprint().to_owned(),
            setup: match p.dtls_role {
                Role::Server => Setup::Passive,
                Role::Client => Setup::Active,
            },
            ice_lite: true,
            candidates: self.advertised.candidates(),
            session_id: self.session_id,
            version: p.sdp_version,
        };
        let kbps = self.settings.max_video_kbps;
        let media: Vec<LocalMedia> = p
            .sections
            .iter()
            .map(|s| {
                let max_kbps = (s.kind == Kind::Video).then_some(kbps);
                match &s.role {
                    SectionRole::Publish {
                        codec,
                        extmaps,
                        direction,
                        rids,
                        ..
                    } => LocalMedia {
                        mid: s.mid.clone(),
                        kind: s.kind,
                        direction: *direction,
                        codec: Some(codec.clone()),
                        extmaps: extmaps.clone(),
                        sending: None,
                        rejected: false,
                        // With simulcast the limit is the highest layer's; the lower
                        // ones (a third and a tenth of its bitrate in the web
                        // client's ladder) come on top, within half of it.
                        max_kbps: if rids.is_empty() {
                            max_kbps
                        } else {
                            max_kbps.map(|k| k + k / 2)
                        },
                        rids: rids.clone(),
                    },
                    SectionRole::Subscribe(leg) => {
                        let l = &self.legs[*leg];
                        let t = &self.tracks[l.track];
                        // A screen share is a stream of its own, so browsers show it
                        // apart from the camera.
                        let stream = if t.screen {
                            format!("{}-screen", t.publisher_id)
                        } else {
                            t.publisher_id.to_string()
                        };
                        let kind = if s.kind == Kind::Audio {
                            "audio"
                        } else {
                            "video"
                        };
                        // Numbered for the subscriber's transport-wide feedback, with
                        // the id it uses itself (one id per extension in a bundle).
                        let mut codec = if s.kind == Kind::Audio { opus() } else { vp8() };
                        let mut extmaps = vec![];
                        if let Some(id) = p.twcc_ext {
                            codec.feedback.push("transport-cc".into());
                            extmaps.push((id, sdp::ext::TRANSPORT_CC.to_owned()));
                        }
                        LocalMedia {
                            mid: s.mid.clone(),
                            kind: s.kind,
                            direction: Direction::SendOnly,
                            codec: Some(codec),
                            extmaps,
                            sending: Some(Sending {
                                ssrc: l.ssrc,
                                track: format!("{stream}-{kind}"),
                                stream,
                            }),
                            rejected: false,
                            max_kbps: None,
                            rids: vec![],
                        }
                    }
                    SectionRole::Idle => LocalMedia {
                        mid: s.mid.clone(),
                        kind: s.kind,
                        direction: Direction::Inactive,
                        codec: Some(if s.kind == Kind::Audio { opus() } else { vp8() }),
                        extmaps: vec![],
                        sending: None,
                        rejected: false,
                        max_kbps: None,
                        rids: vec![],
                    },
                    SectionRole::Rejected => LocalMedia {
                        mid: s.mid.clone(),
                        kind: s.kind,
                        direction: Direction::Inactive,
                        codec: None,
                        extmaps: vec![],
                        sending: None,
                        rejected: true,
                        max_kbps: None,
                        rids: vec![],
                    },
                }
            })
            .collect();
        sdp::render(&local, &media)
    }

    // ---- datagrams ------------------------------------------------------------------

    /// Whether media from `remote` reaches a participant: a path some participant
    /// proved with a connectivity check and still uses. The driver closes an ICE-TCP
    /// connection whose path is not (or no longer) one.
    pub fn knows(&self, remote: Remote) -> bool {
        self.addrs.contains_key(&remote)
    }

    /// A datagram arrived on the meeting's port from `from`. It is decrypted in place
    /// (so `datagram` is changed).
    pub fn handle_datagram(&mut self, now: Instant, from: impl Into<Remote>, datagram: &mut [u8]) {
        let from = from.into();
        self.stats.datagrams_in += 1;
        self.stats.bytes_in += datagram.len() as u64;
        if stun::is_stun(datagram) {
            return self.stun(now, from, datagram);
        }
        let Some(&key) = self.addrs.get(&from) else {
            self.stats.datagrams_unrouted += 1;
            return;
        };
        match datagram.first() {
            Some(20..=63) => self.dtls(now, key, datagram),
            Some(128..=191) if rtp::is_rtcp(datagram) => self.rtcp_in(now, key, datagram),
            Some(128..=191) => self.rtp_in(now, key, datagram),
            _ => self.stats.datagrams_refused += 1,
        }
    }

    fn stun(&mut self, now: Instant, from: Remote, datagram: &[u8]) {
        let Ok(m) = stun::Message::parse(datagram) else {
            self.stats.datagrams_refused += 1;
            return;
        };
        if m.kind != stun::BINDING_REQUEST {
            // Responses and indications: an ICE-lite agent sends no requests.
            return;
        }
        let key = m
            .local_ufrag()
            .and_then(|u| std::str::from_utf8(u).ok())
            .and_then(|u| self.ufrags.get(u))
            .copied();
        let Some(key) = key else {
            self.stats.datagrams_unrouted += 1;
            return;
        };
        if self.addrs.get(&from).is_some_and(|k| *k != key) {
            // Another participant's address: no one takes it over.
            self.stats.datagrams_refused += 1;
            return;
        }
        let p = &mut self.peers[key];
        if m.verify(p.pwd.as_bytes()).is_err() {
            self.stats.datagrams_refused += 1;
            return;
        }
        let mut buf = self.pool.take();
        let n = stun::Builder::new(buf.space(), stun::BINDING_SUCCESS, &m.transaction)
            .xor_mapped(from.addr)
            .finish(Some(p.pwd.as_bytes()));
        buf.set_len(n);
        self.transmits.push_back(Transmit { to: from, buf });
        p.last_check = now;
        // Media is accepted from the few addresses it proved lately; it goes to the
        // nominated one (or the first proved, or the newest: a network switch).
        if let Some(i) = p.proven.iter().position(|a| *a == from) {
            p.proven.remove(i);
        } else {
            self.addrs.insert(from, key);
        }
        p.proven.push(from);
        if p.proven.len() > PROVEN_ADDRESSES
            && let Some(i) = p.proven.iter().position(|a| Some(*a) != p.addr)
        {
            let old = p.proven.remove(i);
            self.addrs.remove(&old);
        }
        if m.use_candidate || p.addr.is_none() || p.addr == Some(from) {
            p.addr = Some(from);
        }
        self.flush_dtls(key);
    }

    fn dtls(&mut self, now: Instant, key: PeerKey, datagram: &[u8]) {
        let p = &mut self.peers[key];
        let Some(dtls) = p.dtls.as_mut() else {
            self.stats.datagrams_refused += 1;
            return;
        };
        match dtls.handle(now, datagram) {
            Ok(Some(keys)) => {
                p.srtp_out = Some(keys.ours);
                p.srtp_in = Some(keys.theirs);
                p.connected = true;
                debug!(peer = p.id, "media connected");
            }
            Ok(None) => {}
            Err(_) => self.stats.datagrams_refused += 1,
        }
        self.flush_dtls(key);
    }

    /// Sends what DTLS queued for the participant (once its address is known).
    fn flush_dtls(&mut self, key: PeerKey) {
        let p = &mut self.peers[key];
        let (Some(addr), Some(dtls)) = (p.addr, p.dtls.as_mut()) else {
            return;
        };
        while let Some(d) = dtls.poll_transmit() {
            self.transmits.push_back(Transmit {
                to: addr,
                buf: self.pool.copy_of(&d),
            });
        }
    }

    /// An RTP packet from a publisher: decrypted once, written for every subscriber
    /// that gets its layer.
    fn rtp_in(&mut self, now: Instant, key: PeerKey, datagram: &mut [u8]) {
        let p = &mut self.peers[key];
        let forced = (p.forced_audio, p.forced_video);
        let Some(srtp_in) = p.srtp_in.as_mut() else {
            self.stats.datagrams_refused += 1;
            return;
        };
        // What a pooled buffer cannot hold cannot be forwarded or kept for NACKs.
        if datagram.len() > super::pool::BUF_LEN {
            self.stats.datagrams_refused += 1;
            return;
        }
        let Some(header) = Header::parse(datagram) else {
            self.stats.datagrams_refused += 1;
            return;
        };
        let ssrc = header.ssrc();
        let mut restarted = None;
        let decrypted = match p.incoming.iter_mut().find(|i| i.ssrc == ssrc) {
            Some(incoming) => srtp_in
                .unprotect_rtp(datagram, &mut incoming.srtp)
                .map(|len| (incoming.track, incoming.layer, len)),
            None => {
                // An SSRC the SDP did not name: its section's mid says which track,
                // its rid which layer.
                let mid = p.mid_ext.and_then(|id| header.extension(id));
                let track = mid.and_then(|mid| {
                    p.sections.iter().find_map(|s| match &s.role {
                        SectionRole::Publish { track: Some(t), .. } if s.mid.as_bytes() == mid => {
                            Some(*t)
                        }
                        _ => None,
                    })
                });
                let rid = p.rid_ext.and_then(|id| header.extension(id));
                let layer = track.and_then(|t| {
                    let encodings = &self.tracks[t].encodings;
                    if encodings.len() == 1 {
                        return Some(0);
                    }
                    // A rid the room did not accept is refused.
                    encodings.iter().position(|e| {
                        rid.is_some_and(|r| e.rid.as_deref().map(str::as_bytes) == Some(r))
                    })
                });
                let (Some(track), Some(layer)) = (track, layer) else {
                    self.stats.datagrams_refused += 1;
                    return;
                };
                if p.incoming.len() >= 16 {
                    self.stats.datagrams_refused += 1;
                    return;
                }
                // Only a packet that authenticates makes its SSRC known.
                let mut srtp = StreamState::default();
                let layer = layer as Layer;
                // A straggler of the SSRC a layer left behind is not taken back.
                if self.tracks[track].encodings[usize::from(layer)].retired == Some(ssrc) {
                    self.stats.datagrams_refused += 1;
                    return;
                }
                srtp_in.unprotect_rtp(datagram, &mut srtp).map(|len| {
                    // A layer that starts again under a new SSRC starts afresh, and its
                    // subscribers wait for its next keyframe (numbering starts anew).
                    let kind = self.tracks[track].kind;
                    if let Some(e) = self.tracks[track].encodings.get_mut(usize::from(layer))
                        && e.ssrc.is_some_and(|old| old != ssrc)
                    {
                        let old = e.ssrc;
                        p.incoming.retain(|i| Some(i.ssrc) != old);
                        let rid = e.rid.take();
                        *e = Encoding::new(kind, rid, None);
                        e.retired = old;
                        restarted = Some((track, layer));
                    }
                    p.incoming.push(Incoming {
                        ssrc,
                        track,
                        layer,
                        srtp,
                    });
                    (track, layer, len)
                })
            }
        };
        let Ok((track_key, layer, len)) = decrypted else {
            self.stats.datagrams_refused += 1;
            return;
        };
        if let Some((track, layer)) = restarted {
            for &l in &self.tracks[track].legs {
                if let Some(f) = self.legs[l].video.as_mut() {
                    f.restart(layer);
                }
            }
        }
        let packet = &datagram[..len];
        let Some(header) = Header::parse(packet) else {
            self.stats.datagrams_refused += 1;
            return;
        };
        if let Some(id) = p.twcc_ext
            && let Some(v) = header.extension(id)
            && v.len() >= 2
        {
            let at = now.saturating_duration_since(self.epoch).as_micros() as i64;
            p.twcc.record(u16::from_be_bytes([v[0], v[1]]), at);
        }
        let level = p
            .audio_level_ext
            .and_then(|id| header.extension(id))
            .and_then(|v| v.first())
            .map(|b| b & 0x7f);
        self.stats.rtp_in += 1;
        let Some(track) = self.tracks.get_mut(track_key) else {
            return;
        };
        // The payload type negotiated for this track, nothing else (no RTX, RED or
        // another codec relabelled as this one).
        if header.payload_type() != track.pt {
            self.stats.rtp_dropped += 1;
            return;
        }
        // Muted by a host: dropped here, whatever the participant's browser does.
        if (track.kind == Kind::Audio && forced.0) || (track.kind == Kind::Video && forced.1) {
            self.stats.rtp_muted += 1;
            return;
        }
        let payload = &packet[header.payload_offset..];
        // Only video is read past its header.
        let vp8 = if track.kind != Kind::Video {
            Descriptor::default()
        } else {
            match Descriptor::parse(payload) {
                Some(d) => d,
                // Padding (a sender probing its bandwidth) carries no descriptor.
                None if header.padding_only() => Descriptor::default(),
                None => {
                    self.stats.rtp_dropped += 1;
                    return;
                }
            }
        };
        if track.kind == Kind::Audio
            && let Some(level) = level
        {
            self.speakers.note(track.publisher_id, level);
        }
        let clock = track.clock;
        let kind = track.kind;
        let Some(encoding) = track.encodings.get_mut(usize::from(layer)) else {
            return;
        };
        if encoding.ssrc.is_none() {
            encoding.ssrc = Some(ssrc);
        }
        // Reception statistics and losses to ask for again.
        let arrival_rtp = (now.saturating_duration_since(self.epoch).as_micros() as u64
            * u64::from(clock)
            / 1_000_000) as i64;
        let Some(ext_seq) = note_reception(
            encoding,
            kind,
            header.sequence(),
            header.timestamp(),
            arrival_rtp,
            now,
        ) else {
            // A duplicate (or a retransmission of what arrived after all).
            return;
        };
        encoding.last_packet = Some(now);
        encoding.bytes += packet.len() as u64;
        if let Some(size) = vp8.size {
            encoding.size = Some(size);
        }
        let seq = header.sequence();
        if !encoding.history.is_empty() {
            let slot = usize::from(seq) % HISTORY;
            let buf = match encoding.history[slot].take() {
                Some((_, mut b)) => {
                    let n = packet.len().min(b.space().len());
                    b.space()[..n].copy_from_slice(&packet[..n]);
                    b.set_len(n);
                    b
                }
                None => self.pool.copy_of(packet),
            };
            encoding.history[slot] = Some((seq, buf));
        }
        if !track.open {
            track.open = true;
            let subscribers: Vec<PeerKey> = self
                .peers
                .iter()
                .filter(|(k, _)| *k != key)
                .map(|(k, _)| k)
                .collect();
            for s in subscribers {
                self.add_leg(s, track_key);
            }
            self.offer_where_needed(now);
            return;
        }
        // Forward: the routing table is the track's legs; video goes to those whose
        // forwarder takes this layer.
        let incoming = forwarder::Incoming {
            layer,
            ext_seq,
            timestamp: header.timestamp(),
            payload,
            vp8,
        };
        let track = &self.tracks[track_key];
        for &leg_key in &track.legs {
            let leg = &mut self.legs[leg_key];
            if !leg.negotiated {
                continue;
            }
            let (sequence, timestamp, rewrite) = match leg.video.as_mut() {
                Some(f) => match f.decide(now, &incoming) {
                    Some(m) => {
                        if m.switched {
                            self.stats.layer_switches += 1;
                        }
                        (
                            m.sequence,
                            m.timestamp,
                            Some((vp8, m.picture_id, m.tl0_pic_idx)),
                        )
                    }
                    None => {
                        if f.target().is_none() {
                            self.stats.rtp_paused += 1;
                        }
                        continue;
                    }
                },
                None => (seq.wrapping_add(leg.seq_delta), header.timestamp(), None),
            };
            let sub = &mut self.peers[leg.subscriber];
            let (Some(addr), Some(out)) = (sub.addr, sub.srtp_out.as_mut()) else {
                self.stats.rtp_dropped += 1;
                continue;
            };
            let mut buf = self.pool.take();
            let to = Rewritten {
                sequence,
                timestamp,
                vp8: rewrite,
            };
            let via = (out, sub.twcc_ext, &mut sub.downlink);
            match forward_into(&mut buf, packet, &header, to, leg, via, now) {
                Some(()) => {
                    self.transmits.push_back(Transmit { to: addr, buf });
                    self.stats.rtp_forwarded += 1;
                }
                None => {
                    self.pool.give(buf);
                    self.stats.rtp_dropped += 1;
                }
            }
        }
    }

    /// RTCP from a participant: reports, keyframe requests, NACKs.
    fn rtcp_in(&mut self, now: Instant, key: PeerKey, datagram: &mut [u8]) {
        let p = &mut self.peers[key];
        let Some(srtp_in) = p.srtp_in.as_mut() else {
            self.stats.datagrams_refused += 1;
            return;
        };
        let Ok(len) = srtp_in.unprotect_rtcp(datagram) else {
            self.stats.datagrams_refused += 1;
            return;
        };
        let compound = &datagram[..len];
        let RtcpWork {
            mut keyframes,
            mut nacks,
            mut srs,
        } = std::mem::take(&mut self.rtcp_work);
        for packet in rtcp::packets(compound) {
            match packet {
                Packet::Pli { media } => {
                    self.stats.keyframe_requests_in += 1;
                    keyframes.extend(self.leg_of(key, media).and_then(|l| self.layer_of(l)));
                }
                Packet::Fir { .. } => {
                    for media in packet.fir_ssrcs() {
                        self.stats.keyframe_requests_in += 1;
                        keyframes.extend(self.leg_of(key, media).and_then(|l| self.layer_of(l)));
                    }
                }
                Packet::Nack { media, .. } => {
                    if let Some(leg) = self.leg_of(key, media) {
                        for seq in packet.nacked() {
                            if nacks.len() >= NACKED_PER_COMPOUND {
                                break;
                            }
                            if !nacks.contains(&(leg, seq)) {
                                nacks.push((leg, seq));
                            }
                        }
                    }
                }
                Packet::TransportCc(raw) => {
                    // Feedback on what the room sent this participant.
                    let read = self.peers[key].downlink.on_feedback(now, raw);
                    self.stats.datagrams_refused += u64::from(!read);
                }
                Packet::SenderReport(info, _) => {
                    let track = self.peers[key]
                        .incoming
                        .iter()
                        .find(|i| i.ssrc == info.ssrc)
                        .map(|i| (i.track, i.layer));
                    if let Some(t) = track {
                        srs.push((t, info));
                    }
                }
                _ => {}
            }
        }
        for (track, layer) in keyframes.drain(..) {
            self.request_keyframe(now, track, layer);
        }
        for (leg, seq) in nacks.drain(..) {
            self.retransmit(now, leg, seq);
        }
        for (track, info) in srs.drain(..) {
            self.forward_sender_report(now, track, &info);
        }
        self.rtcp_work = RtcpWork {
            keyframes,
            nacks,
            srs,
        };
    }

    /// The subscription of participant `key` whose SSRC is `ssrc`.
    fn leg_of(&self, key: PeerKey, ssrc: u32) -> Option<LegKey> {
        self.peers[key]
            .legs
            .iter()
            .copied()
            .find(|l| self.legs[*l].ssrc == ssrc)
    }

    /// The track and layer a subscription of video gets (or waits for).
    fn layer_of(&self, leg: LegKey) -> Option<(TrackKey, Layer)> {
        let l = &self.legs[leg];
        let f = l.video.as_ref()?;
        Some((l.track, f.current().or(f.target())?))
    }

    /// Sends a subscriber a packet it lost again, from the track's history.
    fn retransmit(&mut self, now: Instant, leg_key: LegKey, out_seq: u16) {
        let leg = &mut self.legs[leg_key];
        // A budget per subscription, so NACKs cannot make the room send more than a
        // second's worth of a camera again each second.
        if now.saturating_duration_since(leg.rtx_since) >= Duration::from_secs(1) {
            leg.rtx_since = now;
            leg.rtx_sent = 0;
        }
        if leg.rtx_sent >= RTX_PER_SECOND {
            self.stats.rtp_dropped += 1;
            return;
        }
        leg.rtx_sent += 1;
        // Only video is kept; which layer and rewrite the number came from.
        let Some((layer, in_seq, rewrite)) = leg.video.as_ref().and_then(|f| f.original(out_seq))
        else {
            return;
        };
        let track = &self.tracks[leg.track];
        let Some(Some((seq, stored))) = track
            .encodings
            .get(usize::from(layer))
            .and_then(|e| e.history.get(usize::from(in_seq) % HISTORY))
        else {
            return;
        };
        if *seq != in_seq {
            return;
        }
        let Some(header) = Header::parse(stored.as_slice()) else {
            return;
        };
        let payload = &stored.as_slice()[header.payload_offset..];
        let vp8 = Descriptor::parse(payload).unwrap_or_default();
        // The rewrite adds modulo 2^16 in the end: the low bits are enough.
        let m = rewrite.apply(u64::from(in_seq), header.timestamp(), &vp8, payload);
        let sub = &mut self.peers[leg.subscriber];
        let (Some(addr), Some(out)) = (sub.addr, sub.srtp_out.as_mut()) else {
            return;
        };
        let mut buf = self.pool.take();
        let to = Rewritten {
            sequence: m.sequence,
            timestamp: m.timestamp,
            vp8: Some((vp8, m.picture_id, m.tl0_pic_idx)),
        };
        let via = (out, sub.twcc_ext, &mut sub.downlink);
        if forward_into(&mut buf, stored.as_slice(), &header, to, leg, via, now).is_some() {
            self.transmits.push_back(Transmit { to: addr, buf });
            self.stats.retransmits += 1;
        } else {
            self.pool.give(buf);
        }
    }

    /// Passes a publisher's sender report on to the track's subscribers (their
    /// browsers need it to play audio and video in sync).
    fn forward_sender_report(
        &mut self,
        now: Instant,
        (track_key, layer): (TrackKey, Layer),
        info: &SenderInfo,
    ) {
        let track = &mut self.tracks[track_key];
        let Some(encoding) = track.encodings.get_mut(usize::from(layer)) else {
            return;
        };
        encoding.last_sr = Some((rtcp::ntp_middle(info.ntp), now));
        for i in 0..track.legs.len() {
            let leg = &self.legs[self.tracks[track_key].legs[i]];
            if !leg.negotiated {
                continue;
            }
            // Video: only the report of the layer the subscriber gets, in its timeline.
            let rtp_time = match &leg.video {
                None => info.rtp_time,
                Some(f) => match f.current_rewrite() {
                    Some((l, rewrite)) if l == layer => rewrite.timestamp(info.rtp_time),
                    _ => continue,
                },
            };
            self.scratch.clear();
            rtcp::write_sr(
                &mut self.scratch,
                &SenderInfo {
                    ssrc: leg.ssrc,
                    ntp: info.ntp,
                    rtp_time,
                    packets: leg.packets,
                    octets: leg.octets,
                },
            );
            let to = leg.subscriber;
            self.send_rtcp(to);
        }
    }

    /// Protects `self.scratch` for participant `key` and sends it.
    fn send_rtcp(&mut self, key: PeerKey) {
        let p = &mut self.peers[key];
        let (Some(addr), Some(out)) = (p.addr, p.srtp_out.as_mut()) else {
            return;
        };
        if self.scratch.len() + srtp::MAX_OVERHEAD > super::pool::BUF_LEN {
            return;
        }
        let mut buf = self.pool.copy_of(&self.scratch);
        let len = buf.len();
        match out.protect_rtcp(buf.space(), len) {
            Ok(n) => {
                buf.set_len(n);
                self.transmits.push_back(Transmit { to: addr, buf });
            }
            Err(_) => self.pool.give(buf),
        }
    }

    /// Asks a publisher for a keyframe of `track`, at most every
    /// [`KEYFRAME_REQUEST_INTERVAL`]: a keyframe is large, and many subscribers asking
    /// at once must not make the publisher send one each.
    fn request_keyframe(&mut self, now: Instant, track_key: TrackKey, layer: Layer) {
        let Some(track) = self.tracks.get_mut(track_key) else {
            return;
        };
        if track.kind != Kind::Video {
            return;
        }
        let publisher = track.publisher;
        let Some(encoding) = track.encodings.get_mut(usize::from(layer)) else {
            return;
        };
        if encoding
            .last_keyframe_request
            .is_some_and(|t| now.saturating_duration_since(t) < KEYFRAME_REQUEST_INTERVAL)
        {
            return;
        }
        let Some(media) = encoding.ssrc else {
            return;
        };
        encoding.last_keyframe_request = Some(now);
        let sender = self.peers[publisher].rtcp_ssrc;
        self.scratch.clear();
        rtcp::write_pli(&mut self.scratch, sender, media);
        self.send_rtcp(publisher);
        self.stats.plis_sent += 1;
    }

    // ---- timers ---------------------------------------------------------------------

    /// The time [`RoomCore::poll_timeout`] named has come (or passed).
    pub fn handle_timeout(&mut self, now: Instant) {
        // DTLS retransmissions.
        let handshaking: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| {
                p.dtls
                    .as_ref()
                    .is_some_and(|d| d.poll_timeout().is_some_and(|t| t <= now))
            })
            .map(|(k, _)| k)
            .collect();
        for key in handshaking {
            if let Some(d) = self.peers[key].dtls.as_mut()
                && d.handle_timeout(now).is_err()
            {
                self.stats.datagrams_refused += 1;
            }
            self.flush_dtls(key);
        }
        if now < self.next_tick {
            return;
        }
        self.next_tick = now + TICK;
        self.nack_lost(now);
        if now >= self.next_allocate {
            let last = self
                .next_allocate
                .checked_sub(ALLOCATE_INTERVAL)
                .unwrap_or(now);
            let elapsed = now.saturating_duration_since(last);
            self.next_allocate = now + ALLOCATE_INTERVAL;
            self.measure_encodings(elapsed);
            self.allocate(now);
        }
        if let Some(speaker) = self.speakers.tick(now) {
            self.stats.speaker_changes += 1;
            for other in self.others(usize::MAX) {
                self.send(
                    other,
                    ServerMessage::Speaker {
                        id: speaker.to_string(),
                    },
                );
            }
        }
        if now >= self.next_feedback {
            self.next_feedback = now + twcc::INTERVAL;
            self.congestion_feedback();
        }
        if now >= self.next_report {
            self.next_report = now + REPORT_INTERVAL;
            self.receiver_reports(now);
        }
        // Participants whose media never connected, or stopped proving it is there.
        let gone: Vec<(PeerId, &'static str)> = self
            .peers
            .iter()
            .filter_map(|(_, p)| {
                if !p.connected
                    && now.saturating_duration_since(p.joined_at) > self.settings.ice_timeout
                {
                    Some((p.id, "media did not connect in time"))
                } else if p.connected
                    && now.saturating_duration_since(p.last_check) > CONSENT_TIMEOUT
                {
                    Some((p.id, "the media connection was lost"))
                } else {
                    None
                }
            })
            .collect();
        for (id, why) in gone {
            self.send(id, ServerMessage::error(ErrorCode::BadRequest, why));
            self.close(id);
            self.leave(now, id);
        }
    }

    /// Chooses every subscriber's layer of every video it receives, asks publishers
    /// for the keyframes that switches wait for, and tells publishers how many layers
    /// anyone needs.
    fn allocate(&mut self, now: Instant) {
        self.stats.video_layers_in = self
            .tracks
            .iter()
            .filter(|(_, t)| t.kind == Kind::Video)
            .map(|(_, t)| t.encodings.iter().filter(|e| e.active(now)).count() as u32)
            .sum();
        let keys: Vec<PeerKey> = self.peers.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.fit_to_downlink(key, now);
        }
        let mut keyframes = std::mem::take(&mut self.rtcp_work.keyframes);
        for (_, leg) in self.legs.iter_mut() {
            let Some(f) = leg.video.as_mut() else {
                continue;
            };
            let track = &self.tracks[leg.track];
            let target = choose_layer(&track.encodings, leg.allowed, now);
            if f.target() != target {
                f.set_target(target);
            }
            if leg.negotiated
                && f.wants_keyframe()
                && let Some(t) = target
                && !keyframes.contains(&(leg.track, t))
            {
                keyframes.push((leg.track, t));
            }
        }
        for (track, layer) in keyframes.drain(..) {
            self.request_keyframe(now, track, layer);
        }
        self.rtcp_work.keyframes = keyframes;
        // How many layers each publisher's video is needed in.
        let mut tell = Vec::new();
        for (_, track) in self.tracks.iter_mut() {
            if track.kind != Kind::Video || !track.open {
                continue;
            }
            let needed = track
                .legs
                .iter()
                .map(|l| self.legs[*l].allowed.map_or(0, |a| a + 1))
                .max()
                .unwrap_or(0)
                // The lowest layer stays on: a newcomer (or a tile scrolled into view)
                // starts at once, and browsers do not reliably start encoding again
                // once every encoding was switched off.
                .max(1);
            if needed > track.layers_told {
                track.layers_told = needed;
                track.fewer_since = None;
                tell.push((track.publisher_id, needed));
            } else if needed < track.layers_told {
                let since = *track.fewer_since.get_or_insert(now);
                if now.saturating_duration_since(since) >= LAYERS_OFF_AFTER {
                    track.layers_told = needed;
                    track.fewer_since = None;
                    tell.push((track.publisher_id, needed));
                }
            } else {
                track.fewer_since = None;
            }
        }
        for (publisher, active) in tell {
            self.send(publisher, ServerMessage::Layers { active });
        }
    }

    /// Chooses the highest layer each of a subscriber's videos may get: what its tile
    /// needs, as far as its downlink's estimate goes. Audio is never cut for video:
    /// its share comes off first. Then every video on screen gets its lowest layer,
    /// the active speaker's first (so it is cut last), then larger tiles before smaller
    /// ones; what is left raises them, in the same order, towards what their tiles need.
    fn fit_to_downlink(&mut self, key: PeerKey, now: Instant) {
        let p = &self.peers[key];
        let speaker = self.speakers.speaker();
        let mut videos: Vec<(LegKey, Option<usize>, (bool, u64))> = p
            .legs
            .iter()
            .filter_map(|&l| {
                let leg = &self.legs[l];
                leg.video.as_ref()?;
                let t = &self.tracks[leg.track];
                let ideal = match leg.want {
                    Want::Hidden => None,
                    Want::Best => Some(t.encodings.len() - 1),
                    Want::Tile(w, h) => Some(ideal_layer(&t.encodings, w, h)),
                };
                let area = match leg.want {
                    Want::Tile(w, h) => u64::from(w) * u64::from(h),
                    _ => u64::MAX,
                };
                Some((l, ideal, (Some(t.publisher_id) == speaker, area)))
            })
            .collect();
        let Some(estimate) = p.downlink.estimate() else {
            for (l, ideal, _) in videos {
                self.legs[l].allowed = ideal.map(|i| i as Layer);
            }
            return;
        };
        let audio = p
            .legs
            .iter()
            .filter(|l| self.legs[**l].video.is_none())
            .count() as f64;
        let mut budget = estimate as f64 * DOWNLINK_SHARE - audio * AUDIO_BPS;
        videos.sort_by_key(|(_, _, (speaking, area))| std::cmp::Reverse((*speaking, *area)));
        let mut allowed: Vec<Option<usize>> = vec![None; videos.len()];
        for (i, (l, ideal, _)) in videos.iter().enumerate() {
            let encodings = &self.tracks[self.legs[*l].track].encodings;
            let cost = layer_bps(encodings, 0, now);
            if ideal.is_some() && budget >= cost {
                budget -= cost;
                allowed[i] = Some(0);
            }
        }
        for (i, (l, ideal, _)) in videos.iter().enumerate() {
            let (Some(ideal), Some(mut at)) = (*ideal, allowed[i]) else {
                continue;
            };
            let encodings = &self.tracks[self.legs[*l].track].encodings;
            let current = self.legs[*l].allowed.map(usize::from);
            while at < ideal {
                let more =
                    (layer_bps(encodings, at + 1, now) - layer_bps(encodings, at, now)).max(0.0);
                // A layer above the one allowed now needs headroom: without it, a
                // budget near the boundary (bitrates vary frame by frame) switches up
                // and down every allocation.
                let need = if current.is_none_or(|c| at + 1 > c) {
                    more * UPGRADE_HEADROOM
                } else {
                    more
                };
                if budget < need {
                    break;
                }
                budget -= more;
                at += 1;
            }
            allowed[i] = Some(at);
        }
        for ((l, _, _), a) in videos.iter().zip(allowed) {
            self.legs[*l].allowed = a.map(|a| a as Layer);
        }
    }

    /// The bitrate of every encoding over the last allocation interval, smoothed.
    fn measure_encodings(&mut self, elapsed: Duration) {
        let secs = elapsed.as_secs_f64().max(0.001);
        for (_, t) in self.tracks.iter_mut() {
            for e in &mut t.encodings {
                let now_bps = e.bytes as f64 * 8.0 / secs;
                e.bps = if e.bps == 0.0 {
                    now_bps
                } else {
                    0.8 * e.bps + 0.2 * now_bps
                };
                e.bytes = 0;
            }
        }
    }

    /// NACKs to publishers for what they sent that has not arrived.
    fn nack_lost(&mut self, now: Instant) {
        let mut batches: Vec<(PeerKey, u32, Vec<u16>)> = Vec::new();
        for (_, track) in self.tracks.iter_mut() {
            for encoding in &mut track.encodings {
                if encoding.lost.is_empty() || track.kind != Kind::Video {
                    encoding.lost.clear();
                    continue;
                }
                let Some(media) = encoding.ssrc else {
                    continue;
                };
                let mut ask = Vec::new();
                encoding.lost.retain_mut(|(seq, first, tries, last)| {
                    if *tries >= NACK_TRIES
                        || now.saturating_duration_since(*first) > Duration::from_secs(1)
                    {
                        return false;
                    }
                    let due = match last {
                        None => now.saturating_duration_since(*first) >= NACK_DELAY,
                        Some(l) => now.saturating_duration_since(*l) >= NACK_RETRY,
                    };
                    if due {
                        ask.push(*seq as u16);
                        *tries += 1;
                        *last = Some(now);
                    }
                    true
                });
                if !ask.is_empty() {
                    batches.push((track.publisher, media, ask));
                }
            }
        }
        for (publisher, media, lost) in batches {
            let sender = self.peers[publisher].rtcp_ssrc;
            self.scratch.clear();
            rtcp::write_nack(&mut self.scratch, sender, media, &lost);
            self.send_rtcp(publisher);
            self.stats.nacks_sent += 1;
        }
    }

    /// Transport-wide congestion control feedback to every publisher that numbers its
    /// packets.
    fn congestion_feedback(&mut self) {
        let keys: Vec<PeerKey> = self
            .peers
            .iter()
            .filter(|(_, p)| p.twcc_ext.is_some() && p.srtp_out.is_some())
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            let p = &mut self.peers[key];
            let Some(media) = p.incoming.first().map(|i| i.ssrc) else {
                continue;
            };
            self.scratch.clear();
            if p.twcc.feedback(p.rtcp_ssrc, media, &mut self.scratch) {
                self.send_rtcp(key);
            }
        }
    }

    /// Receiver reports on every stream each publisher sends.
    fn receiver_reports(&mut self, now: Instant) {
        let keys: Vec<PeerKey> = self.peers.iter().map(|(k, _)| k).collect();
        for key in keys {
            let p = &self.peers[key];
            let mut blocks = Vec::new();
            for i in &p.incoming {
                let Some(t) = self
                    .tracks
                    .get_mut(i.track)
                    .and_then(|t| t.encodings.get_mut(usize::from(i.layer)))
                else {
                    continue;
                };
                let Some(first) = t.reception.first else {
                    continue;
                };
                let r = &mut t.reception;
                let expected = r.highest - first + 1;
                let lost = expected.saturating_sub(r.received);
                let expected_interval = expected - r.expected_prior;
                let received_interval = r.received - r.received_prior;
                r.expected_prior = expected;
                r.received_prior = r.received;
                let lost_interval = expected_interval.saturating_sub(received_interval);
                let fraction = (lost_interval << 8)
                    .checked_div(expected_interval)
                    .map_or(0, |f| f.min(255) as u8);
                let (last_sr, dlsr) = match t.last_sr {
                    Some((mid, at)) => {
                        let d = now.saturating_duration_since(at);
                        (mid, (d.as_secs_f64() * 65536.0) as u32)
                    }
                    None => (0, 0),
                };
                blocks.push(ReportBlock {
                    ssrc: i.ssrc,
                    fraction_lost: fraction,
                    lost: lost.min(0x7f_ffff) as i32,
                    highest: r.highest as u32,
                    jitter: r.jitter >> 4,
                    last_sr,
                    delay_since_last_sr: dlsr,
                });
            }
            if blocks.is_empty() {
                continue;
            }
            self.scratch.clear();
            rtcp::write_rr(&mut self.scratch, self.peers[key].rtcp_ssrc, &blocks);
            self.send_rtcp(key);
        }
    }
}

/// What a subscriber with `layout` (none sent yet: `None`) wants of `publisher`'s video.
fn want_in(layout: Option<&[(PeerId, u32, u32)]>, publisher: PeerId) -> Want {
    let Some(layout) = layout else {
        return Want::Best;
    };
    match layout.iter().find(|t| t.0 == publisher) {
        Some(&(_, w, h)) => Want::Tile(w, h),
        None => Want::Hidden,
    }
}

/// The size layer `i` of `encodings` has: what its last keyframe said, else what the
/// web client's ladder gives it (the highest 1280 × 720, each lower one half of that).
fn layer_size(encodings: &[Encoding], i: usize) -> (u32, u32) {
    match encodings[i].size {
        Some((w, h)) => (u32::from(w), u32::from(h)),
        None => {
            let down = (encodings.len() - 1 - i) as u32;
            (1280 >> down, 720 >> down)
        }
    }
}

/// The lowest layer that fills a tile of `w` × `h` (in width and in height: the web
/// client's tiles crop, `object-fit: cover`), or the highest if none does.
fn ideal_layer(encodings: &[Encoding], w: u32, h: u32) -> usize {
    (0..encodings.len())
        .find(|&i| {
            let (lw, lh) = layer_size(encodings, i);
            lw >= w && lh >= h
        })
        .unwrap_or(encodings.len() - 1)
}

/// What layer `i` costs a subscriber, in bits per second: what it measured lately if
/// it is being sent (at least 20 kbit/s: a camera switched off sends black frames at
/// a few), else what the web client's ladder gives it (1.5 Mbit/s at the top, then
/// 500 and 150 kbit/s; 1 Mbit/s without simulcast).
fn layer_bps(encodings: &[Encoding], i: usize, now: Instant) -> f64 {
    let e = &encodings[i];
    if e.active(now) && e.bps > 0.0 {
        return e.bps.max(20_000.0);
    }
    if encodings.len() == 1 {
        return 1_000_000.0;
    }
    match encodings.len() - 1 - i {
        0 => 1_500_000.0,
        1 => 500_000.0,
        _ => 150_000.0,
    }
}

/// The layer a subscriber allowed up to `allowed` gets: that one if it is being sent,
/// else the best one sent below it, else the lowest one sent above it (`None`:
/// paused).
fn choose_layer(encodings: &[Encoding], allowed: Option<Layer>, now: Instant) -> Option<Layer> {
    let ideal = usize::from(allowed?).min(encodings.len() - 1);
    let active = |i: &usize| encodings[*i].active(now);
    let layer = (0..=ideal)
        .rev()
        .find(active)
        .or_else(|| (ideal + 1..encodings.len()).find(active))
        .unwrap_or(ideal);
    Some(layer as Layer)
}

/// Notes a packet of `track` (an encoding of `kind`) with `seq` and `ts` arriving at
/// `arrival` (in the track's clock); returns its extended sequence number, or `None`
/// for a duplicate. Gaps become NACK candidates; a packet that fills one is taken off
/// the list.
fn note_reception(
    track: &mut Encoding,
    kind: Kind,
    seq: u16,
    ts: u32,
    arrival: i64,
    now: Instant,
) -> Option<u64> {
    let r = &mut track.reception;
    let ext = r.seq.unwrap(seq);
    let transit = arrival - i64::from(ts);
    if let Some(last) = r.last_transit {
        let d = (transit - last)
            .unsigned_abs()
            .min(u64::from(u32::MAX) >> 4) as u32;
        // J += (|D| - J) / 16, kept scaled by 16.
        r.jitter = r.jitter.wrapping_add(d).wrapping_sub(r.jitter >> 4);
    }
    r.last_transit = Some(transit);
    match r.first {
        None => {
            r.first = Some(ext);
            r.highest = ext;
            r.seen.set(ext, true);
        }
        Some(_) if ext > r.highest => {
            if kind == Kind::Video && ext - r.highest <= NACK_MAX as u64 {
                for missing in r.highest + 1..ext {
                    if track.lost.len() < NACK_MAX {
                        track.lost.push((missing, now, 0, None));
                    }
                }
            }
            r.seen.advance(r.highest, ext);
            r.highest = ext;
        }
        Some(_) => {
            // Late: reordered, a recovered loss, or a duplicate.
            if r.highest - ext >= ARRIVAL_WINDOW || r.seen.get(ext) {
                return None;
            }
            r.seen.set(ext, true);
            if let Some(i) = track.lost.iter().position(|(s, ..)| *s == ext) {
                track.lost.swap_remove(i);
            }
        }
    }
    r.received += 1;
    Some(ext)
}

/// The VP8 fields of a forwarded packet rewritten: its descriptor, the picture ID and
/// TL0PICIDX it gets.
type Vp8Rewrite = Option<(Descriptor, Option<u16>, Option<u8>)>;

/// How a packet is written for a subscriber.
struct Rewritten {
    sequence: u16,
    timestamp: u32,
    vp8: Vp8Rewrite,
}

/// Writes `packet` as `leg` carries it (`to`: its sequence number and timestamp, its
/// VP8 descriptor rewritten; numbered for the subscriber's transport-wide feedback
/// when it gives one) into `buf` and protects it with `out`.
fn forward_into(
    buf: &mut Buf,
    packet: &[u8],
    header: &Header<'_>,
    to: Rewritten,
    leg: &mut Leg,
    sub: (&mut srtp::Context, Option<u8>, &mut Downlink),
    now: Instant,
) -> Option<()> {
    let (out, twcc_ext, downlink) = sub;
    let space = buf.space();
    let room = space.len() - srtp::MAX_OVERHEAD;
    // The transport-wide number, for the subscriber's feedback (when it gives any).
    let stamp;
    let extensions: &[(u8, &[u8])] = match twcc_ext {
        Some(id) => {
            stamp = downlink
                .stamp(now, packet.len() + srtp::MAX_OVERHEAD)
                .to_be_bytes();
            &[(id, &stamp)]
        }
        None => &[],
    };
    let n = rtp::write_forwarded(
        &mut space[..room],
        packet,
        header,
        (leg.pt, to.sequence, to.timestamp, leg.ssrc),
        extensions,
    )?;
    let vp8 = to.vp8;
    if let Some((d, picture_id, tl0)) = vp8 {
        let payload = &mut space[n - (packet.len() - header.payload_offset)..n];
        if let Some(id) = picture_id {
            d.write_picture_id(payload, id);
        }
        if let Some(idx) = tl0 {
            d.write_tl0_pic_idx(payload, idx);
        }
    }
    let n = out.protect_rtp(space, n, &mut leg.srtp).ok()?;
    buf.set_len(n);
    leg.packets = leg.packets.wrapping_add(1);
    leg.octets = leg
        .octets
        .wrapping_add((packet.len() - header.payload_offset) as u32);
    Some(())
}
