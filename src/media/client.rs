//! A WebRTC participant on the same sans-IO parts as the room: the load generator's
//! synthetic participants are real peers (ICE, DTLS, SRTP) and cheap enough that one
//! core can receive what the room sends thirty of them. It offers a microphone and a
//! camera as a browser does, is the controlling ICE agent (the room is ICE-lite) and
//! the DTLS client, answers the room's offers by receiving every section, and hands
//! out every RTP packet it receives, decrypted.
//!
//! A simulcast client sends its camera as three layers (rids `q`, `h`, `f`, named in
//! the `sdes:mid` and `sdes:rtp-stream-id` header extensions, as a browser does), its
//! microphone's level in the audio-level extension, notes the room's keyframe
//! requests for the caller to answer, and reports the arrival of the room's
//! transport-wide numbered packets every [`twcc::INTERVAL`], so the room estimates its
//! downlink as it does a browser's.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::dtls::{Certificate, Dtls, Role};
use super::pool::{Buf, Pool};
use super::rtcp::{self, Packet};
use super::rtp::{self, Header};
use super::sdp::{
    self, Candidate, Codec, Description, Direction, Kind, Local, LocalMedia, Sending, Setup,
};
use super::srtp::{self, StreamState};
use super::stun;
use super::twcc;
use super::{Transmit, random_bytes, random_token};

/// The simulcast layers' rids, lowest first (as the web client sends them).
pub const RIDS: [&str; 3] = ["q", "h", "f"];
/// The header extension ids a simulcast client offers.
const MID_EXT: u8 = 1;
const RID_EXT: u8 = 2;
const AUDIO_LEVEL_EXT: u8 = 3;
const TWCC_EXT: u8 = 4;

/// How often connectivity checks are sent until one succeeds, and then as consent.
const CHECK_EVERY: Duration = Duration::from_millis(200);
const CONSENT_EVERY: Duration = Duration::from_secs(5);

/// Why the client could not go on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A description from the room did not parse or lacked what is needed.
    #[error("the room's description cannot be used: {0}")]
    Sdp(#[from] sdp::Error),
    /// DTLS could not be set up.
    #[error(transparent)]
    Dtls(#[from] super::dtls::Error),
    /// The room's answer names no candidate.
    #[error("the room's answer has no usable candidate")]
    NoCandidate,
}

/// A synthetic participant's media connection.
pub struct Client {
    local: SocketAddr,
    ufrag: String,
    pwd: String,
    cert: Certificate,
    remote: Option<Remote>,
    dtls: Option<Dtls>,
    dtls_role: Role,
    srtp_out: Option<srtp::Context>,
    srtp_in: Option<srtp::Context>,
    checked: bool,
    next_check: Option<Instant>,
    tie_breaker: u64,
    transaction: u64,
    /// Our own sections (audio mid 0, video mid 1) and then the room's.
    sections: Vec<LocalMedia>,
    version: u64,
    session_id: u64,
    /// What we send: the microphone, and the camera's one stream or three layers.
    audio: Outgoing,
    video: Vec<Outgoing>,
    simulcast: bool,
    /// Receive state per SSRC the room sends (few: a linear list).
    incoming: Vec<(u32, StreamState)>,
    /// Arrivals of the room's transport-wide numbered packets, and when they are
    /// reported next (simulcast clients only).
    twcc: twcc::Recorder,
    next_feedback: Option<Instant>,
    epoch: Instant,
    feedback: Vec<u8>,
    /// Datagrams to send, oldest first (a frame's packets leave in order).
    transmits: VecDeque<Transmit>,
    pool: Pool,
}

/// One stream we send.
struct Outgoing {
    ssrc: u32,
    state: StreamState,
    seq: u16,
    /// The room asked for a keyframe of it.
    keyframe_wanted: bool,
}

impl Outgoing {
    fn new(ssrc: u32) -> Self {
        Self {
            ssrc,
            state: StreamState::default(),
            seq: 0,
            keyframe_wanted: false,
        }
    }
}

struct Remote {
    ufrag: String,
    pwd: String,
    addr: SocketAddr,
}

const OPUS_PT: u8 = 111;
const VP8_PT: u8 = 96;

fn codec(kind: Kind) -> Codec {
    match kind {
        Kind::Audio => Codec {
            pt: OPUS_PT,
            name: "opus".into(),
            clock: 48000,
            channels: 2,
            fmtp: Some("minptime=10;useinbandfec=1".into()),
            feedback: vec![],
        },
        _ => Codec {
            pt: VP8_PT,
            name: "VP8".into(),
            clock: 90000,
            channels: 0,
            fmtp: None,
            feedback: vec!["nack".into(), "nack pli".into()],
        },
    }
}

impl Client {
    /// A participant whose media leaves from `local`; with `simulcast`, its camera
    /// sends three layers and it reports what arrives (see the module's text).
    pub fn new(local: SocketAddr, name: &str, simulcast: bool) -> Result<Self, Error> {
        let ssrc = |k: u32| u32::from_be_bytes(random_bytes::<4>()) & !0xf | k;
        let extmaps = |kind: Kind| -> Vec<(u8, String)> {
            if !simulcast {
                return vec![];
            }
            let mut e = vec![(MID_EXT, sdp::ext::MID.to_owned())];
            match kind {
                Kind::Audio => e.push((AUDIO_LEVEL_EXT, sdp::ext::AUDIO_LEVEL.to_owned())),
                _ => e.push((RID_EXT, sdp::ext::RID.to_owned())),
            }
            e.push((TWCC_EXT, sdp::ext::TRANSPORT_CC.to_owned()));
            e
        };
        let sending = |kind: Kind, ssrc: u32| LocalMedia {
            mid: if kind == Kind::Audio { "0" } else { "1" }.into(),
            kind,
            direction: Direction::SendRecv,
            codec: Some(codec(kind)),
            extmaps: extmaps(kind),
            sending: Some(Sending {
                ssrc,
                stream: name.to_owned(),
                track: format!(
                    "{name}-{}",
                    if kind == Kind::Audio {
                        "audio"
                    } else {
                        "video"
                    }
                ),
            }),
            rejected: false,
            max_kbps: None,
            rids: if simulcast && kind == Kind::Video {
                RIDS.iter().map(|r| (*r).to_owned()).collect()
            } else {
                vec![]
            },
        };
        let (a, v) = (ssrc(1), ssrc(2));
        let video = if simulcast {
            (0..RIDS.len() as u32)
                .map(|i| Outgoing::new(ssrc(4 + i)))
                .collect()
        } else {
            vec![Outgoing::new(v)]
        };
        Ok(Self {
            local,
            ufrag: random_token(8),
            pwd: random_token(24),
            cert: Certificate::generate()?,
            remote: None,
            dtls: None,
            dtls_role: Role::Client,
            srtp_out: None,
            srtp_in: None,
            checked: false,
            next_check: None,
            tie_breaker: u64::from_be_bytes(random_bytes::<8>()),
            transaction: 1,
            sections: vec![sending(Kind::Audio, a), sending(Kind::Video, v)],
            version: 1,
            session_id: u64::from_be_bytes(random_bytes::<8>()) >> 2,
            audio: Outgoing::new(a),
            video,
            simulcast,
            incoming: Vec::new(),
            twcc: twcc::Recorder::default(),
            next_feedback: None,
            epoch: Instant::now(),
            feedback: Vec::with_capacity(1500),
            transmits: VecDeque::new(),
            pool: Pool::default(),
        })
    }

    fn local_description(&mut self) -> String {
        self.version += 1;
        sdp::render(
            &Local {
                ufrag: self.ufrag.clone(),
                pwd: self.pwd.clone(),
                fingerprint: self.cert.fingerprint().to_owned(),
                setup: match (&self.dtls, self.dtls_role) {
                    (None, _) => Setup::ActPass,
                    (Some(_), Role::Client) => Setup::Active,
                    (Some(_), Role::Server) => Setup::Passive,
                },
                ice_lite: false,
                candidates: vec![Candidate::udp(self.local.ip(), self.local.port())],
                session_id: self.session_id,
                version: self.version,
            },
            &self.sections,
        )
    }

    /// The first offer: a microphone and a camera.
    pub fn offer(&mut self) -> String {
        self.local_description()
    }

    /// The room's answer to our offer: where it is, how to check, whom to trust.
    pub fn answer(&mut self, now: Instant, sdp: &str) -> Result<(), Error> {
        let d = Description::parse(sdp)?;
        self.take_remote(now, &d)
    }

    fn take_remote(&mut self, now: Instant, d: &Description) -> Result<(), Error> {
        if self.remote.is_none() {
            let addr = d
                .candidates
                .iter()
                .find_map(|c| {
                    // `<foundation> <component> udp <priority> <ip> <port> typ host`
                    let f: Vec<&str> = c.split(' ').collect();
                    if f.len() < 6 || !f[2].eq_ignore_ascii_case("udp") {
                        return None;
                    }
                    let ip: std::net::IpAddr = f[4].parse().ok()?;
                    Some(SocketAddr::new(ip, f[5].parse().ok()?))
                })
                .ok_or(Error::NoCandidate)?;
            self.remote = Some(Remote {
                ufrag: d.ice_ufrag.clone(),
                pwd: d.ice_pwd.clone(),
                addr,
            });
            // raum's room answers `passive` (we are the DTLS client); an SFU that
            // answers `active` makes us the server.
            self.dtls_role = if d.setup == Setup::Active {
                Role::Server
            } else {
                Role::Client
            };
            self.dtls = Some(Dtls::new(&self.cert, self.dtls_role, &d.fingerprint, now)?);
            self.next_check = Some(now);
        }
        Ok(())
    }

    /// The room's offer (others' tracks came or went): we receive every section it
    /// sends in and answer.
    pub fn offer_from_room(&mut self, now: Instant, sdp: &str) -> Result<String, Error> {
        let d = Description::parse(sdp)?;
        self.take_remote(now, &d)?;
        let mut sections = Vec::with_capacity(d.media.len());
        for (i, m) in d.media.iter().enumerate() {
            let mid = m.mid.clone().unwrap_or_default();
            let ours = self.sections.iter().find(|s| s.mid == mid).cloned();
            let section = match ours {
                Some(s) if i < 2 => s,
                _ => LocalMedia {
                    mid,
                    kind: m.kind,
                    direction: if m.port == 0 || m.kind == Kind::Other {
                        Direction::Inactive
                    } else if m.direction.sends() {
                        Direction::RecvOnly
                    } else {
                        Direction::Inactive
                    },
                    codec: m.codecs.first().cloned(),
                    extmaps: if self.simulcast {
                        m.extmaps.clone()
                    } else {
                        vec![]
                    },
                    sending: None,
                    rejected: m.port == 0 || m.kind == Kind::Other || m.codecs.is_empty(),
                    max_kbps: None,
                    rids: vec![],
                },
            };
            sections.push(section);
        }
        self.sections = sections;
        Ok(self.local_description())
    }

    /// Whether the SRTP keys are there (media can flow).
    pub fn is_connected(&self) -> bool {
        self.srtp_out.is_some()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// Gives a sent datagram's buffer back.
    pub fn recycle(&mut self, buf: Buf) {
        self.pool.give(buf);
    }

    /// When [`Client::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let dtls = self.dtls.as_ref().and_then(Dtls::poll_timeout);
        [self.next_check, dtls, self.next_feedback]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether the room asked for a keyframe of simulcast layer `layer` (of the one
    /// camera stream: 0) since the last call.
    pub fn take_keyframe_request(&mut self, layer: usize) -> bool {
        self.video
            .get_mut(layer)
            .is_some_and(|o| std::mem::take(&mut o.keyframe_wanted))
    }

    /// Connectivity checks, DTLS retransmissions and transport-wide feedback.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_feedback.is_some_and(|t| t <= now) {
            self.next_feedback = Some(now + twcc::INTERVAL);
            self.send_feedback();
        }
        if self.next_check.is_some_and(|t| t <= now) {
            self.check();
            self.next_check = Some(
                now + if self.checked {
                    CONSENT_EVERY
                } else {
                    CHECK_EVERY
                },
            );
        }
        if let Some(d) = self.dtls.as_mut() {
            let _ = d.handle_timeout(now);
        }
        self.flush_dtls();
    }

    /// Reports what arrived since the last report.
    fn send_feedback(&mut self) {
        let (Some(out), Some(r)) = (self.srtp_out.as_mut(), &self.remote) else {
            return;
        };
        self.feedback.clear();
        let media = self.incoming.first().map_or(0, |i| i.0);
        if !self
            .twcc
            .feedback(self.audio.ssrc, media, &mut self.feedback)
        {
            return;
        }
        let mut buf = self.pool.take();
        let n = self.feedback.len();
        // A report of many hundred packets can outgrow a buffer: it is dropped, and the
        // estimate goes on from the next.
        if n + srtp::MAX_OVERHEAD > buf.space().len() {
            self.pool.give(buf);
            return;
        }
        buf.space()[..n].copy_from_slice(&self.feedback);
        let Ok(len) = out.protect_rtcp(buf.space(), n) else {
            self.pool.give(buf);
            return;
        };
        buf.set_len(len);
        self.transmits.push_back(Transmit {
            to: r.addr.into(),
            buf,
        });
    }

    fn check(&mut self) {
        let Some(r) = &self.remote else {
            return;
        };
        self.transaction += 1;
        let mut t = [0u8; 12];
        t[4..].copy_from_slice(&self.transaction.to_be_bytes());
        let mut buf = self.pool.take();
        let user = format!("{}:{}", r.ufrag, self.ufrag);
        let n = stun::Builder::new(buf.space(), stun::BINDING_REQUEST, &t)
            .username(user.as_bytes())
            .priority(2_130_706_431)
            .controlling(self.tie_breaker)
            .use_candidate()
            .finish(Some(r.pwd.as_bytes()));
        buf.set_len(n);
        self.transmits.push_back(Transmit {
            to: r.addr.into(),
            buf,
        });
    }

    fn flush_dtls(&mut self) {
        let (Some(r), Some(d)) = (&self.remote, self.dtls.as_mut()) else {
            return;
        };
        if !self.checked {
            return;
        }
        while let Some(p) = d.poll_transmit() {
            let b = self.pool.copy_of(&p);
            self.transmits.push_back(Transmit {
                to: r.addr.into(),
                buf: b,
            });
        }
    }

    /// A datagram from the room. RTP comes back decrypted in place as
    /// `Some(payload range, header)`: the caller reads what it needs.
    pub fn handle_datagram<'a>(
        &mut self,
        now: Instant,
        from: SocketAddr,
        datagram: &'a mut [u8],
    ) -> Option<Received<'a>> {
        if stun::is_stun(datagram) {
            let Ok(m) = stun::Message::parse(datagram) else {
                return None;
            };
            if m.kind == stun::BINDING_REQUEST && m.verify(self.pwd.as_bytes()).is_ok() {
                // A full ICE agent on the other side checks us too (raum's room is
                // ICE-lite and does not).
                let mut buf = self.pool.take();
                let n = stun::Builder::new(buf.space(), stun::BINDING_SUCCESS, &m.transaction)
                    .xor_mapped(from)
                    .finish(Some(self.pwd.as_bytes()));
                buf.set_len(n);
                self.transmits.push_back(Transmit {
                    to: from.into(),
                    buf,
                });
            } else if let Some(r) = &self.remote
                && m.kind == stun::BINDING_SUCCESS
                && m.verify(r.pwd.as_bytes()).is_ok()
                && !self.checked
            {
                self.checked = true;
                self.next_check = Some(now + CONSENT_EVERY);
                self.flush_dtls();
            }
            return None;
        }
        match datagram.first() {
            Some(20..=63) => {
                if let Some(d) = self.dtls.as_mut()
                    && let Ok(Some(keys)) = d.handle(now, datagram)
                {
                    self.srtp_out = Some(keys.ours);
                    self.srtp_in = Some(keys.theirs);
                    if self.simulcast {
                        self.next_feedback = Some(now + twcc::INTERVAL);
                    }
                }
                self.flush_dtls();
                None
            }
            Some(128..=191) if rtp::is_rtcp(datagram) => {
                // Keyframe requests are noted for the caller; reports and the rest
                // the synthetic media needs none of.
                let len = self.srtp_in.as_mut()?.unprotect_rtcp(datagram).ok()?;
                let mut want = |ssrc: u32| {
                    if let Some(o) = self.video.iter_mut().find(|o| o.ssrc == ssrc) {
                        o.keyframe_wanted = true;
                    }
                };
                for p in rtcp::packets(&datagram[..len]) {
                    match p {
                        Packet::Pli { media } => want(media),
                        Packet::Fir { .. } => p.fir_ssrcs().for_each(&mut want),
                        _ => {}
                    }
                }
                None
            }
            Some(128..=191) => {
                let srtp = self.srtp_in.as_mut()?;
                let ssrc = Header::parse(datagram)?.ssrc();
                let slot = match self.incoming.iter().position(|(s, _)| *s == ssrc) {
                    Some(i) => i,
                    None => {
                        self.incoming.push((ssrc, StreamState::default()));
                        self.incoming.len() - 1
                    }
                };
                let len = srtp
                    .unprotect_rtp(datagram, &mut self.incoming[slot].1)
                    .ok()?;
                let packet: &'a [u8] = &datagram[..len];
                let header = Header::parse(packet)?;
                if self.simulcast
                    && let Some(v) = header.extension(TWCC_EXT)
                    && v.len() >= 2
                {
                    let at = now.saturating_duration_since(self.epoch).as_micros() as i64;
                    self.twcc.record(u16::from_be_bytes([v[0], v[1]]), at);
                }
                Some(Received {
                    ssrc,
                    sequence: header.sequence(),
                    marker: header.marker(),
                    payload: &packet[header.payload_offset..],
                })
            }
            _ => None,
        }
    }

    /// Sends one RTP packet of the microphone with `payload` (timestamp `ts`); a
    /// simulcast client says its `level` (RFC 6464: 0 loudest, 127 silence).
    pub fn send_audio(&mut self, ts: u32, level: u8, payload: &[u8]) {
        // One-byte extensions (RFC 8285): the level, with the voice-activity bit
        // unless it is silence.
        let level = level.min(127);
        let voice = if level < 127 { 0x80 } else { 0 };
        let ext = [(AUDIO_LEVEL_EXT << 4), voice | level, 0, 0];
        let ext: &[u8] = if self.simulcast { &ext } else { &[] };
        self.send(None, (ts, false), ext, payload);
    }

    /// Sends one RTP packet of the camera, of simulcast layer `layer` (0 without
    /// simulcast), with `payload` (timestamp `ts`, `marker` on a frame's last packet).
    pub fn send_video(&mut self, layer: usize, ts: u32, marker: bool, payload: &[u8]) {
        if layer >= self.video.len() {
            return;
        }
        // The section's mid ("1") and the layer's rid, one word.
        let ext = [MID_EXT << 4, b'1', RID_EXT << 4, RIDS[layer].as_bytes()[0]];
        let ext: &[u8] = if self.simulcast { &ext } else { &[] };
        self.send(Some(layer), (ts, marker), ext, payload);
    }

    /// Writes, protects and queues one RTP packet of the microphone (`video`:
    /// `None`) or a camera layer; `ext` is the one-byte header extension elements, a
    /// whole number of 32-bit words.
    fn send(
        &mut self,
        video: Option<usize>,
        (ts, marker): (u32, bool),
        ext: &[u8],
        payload: &[u8],
    ) {
        let (Some(out), Some(r)) = (self.srtp_out.as_mut(), &self.remote) else {
            return;
        };
        let (stream, pt) = match video {
            None => (&mut self.audio, OPUS_PT),
            Some(layer) => (&mut self.video[layer], VP8_PT),
        };
        let (pool, transmits) = (&mut self.pool, &mut self.transmits);
        debug_assert!(ext.len().is_multiple_of(4));
        stream.seq = stream.seq.wrapping_add(1);
        let mut buf = pool.take();
        let space = buf.space();
        let header = 12 + if ext.is_empty() { 0 } else { 4 + ext.len() };
        if payload.len() + header + srtp::MAX_OVERHEAD > space.len() {
            pool.give(buf);
            return;
        }
        space[0] = 0x80 | if ext.is_empty() { 0 } else { 0x10 };
        space[1] = pt | if marker { 0x80 } else { 0 };
        space[2..4].copy_from_slice(&stream.seq.to_be_bytes());
        space[4..8].copy_from_slice(&ts.to_be_bytes());
        space[8..12].copy_from_slice(&stream.ssrc.to_be_bytes());
        if !ext.is_empty() {
            space[12..14].copy_from_slice(&[0xbe, 0xde]);
            space[14..16].copy_from_slice(&((ext.len() / 4) as u16).to_be_bytes());
            space[16..16 + ext.len()].copy_from_slice(ext);
        }
        space[header..header + payload.len()].copy_from_slice(payload);
        let Ok(n) = out.protect_rtp(space, header + payload.len(), &mut stream.state) else {
            pool.give(buf);
            return;
        };
        buf.set_len(n);
        transmits.push_back(Transmit {
            to: r.addr.into(),
            buf,
        });
    }
}

/// An RTP packet the room sent us, decrypted.
#[derive(Debug)]
pub struct Received<'a> {
    /// The stream.
    pub ssrc: u32,
    /// Its sequence number.
    pub sequence: u16,
    /// Its marker bit (a video frame's last packet).
    pub marker: bool,
    /// Its payload.
    pub payload: &'a [u8],
}
