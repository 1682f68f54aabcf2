//! A WebRTC participant on the same sans-IO parts as the room: the load generator's
//! synthetic participants are real peers (ICE, DTLS, SRTP) and cheap enough that one
//! core can receive what the room sends thirty of them. It offers a microphone and a
//! camera as a browser does, is the controlling ICE agent (the room is ICE-lite) and
//! the DTLS client, answers the room's offers by receiving every section, and hands
//! out every RTP packet it receives, decrypted.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::dtls::{Certificate, Dtls, Role};
use super::pool::{Buf, Pool};
use super::rtp::{self, Header};
use super::sdp::{self, Codec, Description, Direction, Kind, Local, LocalMedia, Sending, Setup};
use super::srtp::{self, StreamState};
use super::stun;
use super::{Transmit, random_bytes, random_token};

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
    /// SSRC and stream state of what we send, by kind.
    audio: (u32, StreamState, u16),
    video: (u32, StreamState, u16),
    /// Receive state per SSRC the room sends (few: a linear list).
    incoming: Vec<(u32, StreamState)>,
    transmits: Vec<Transmit>,
    pool: Pool,
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
    /// A participant whose media leaves from `local`.
    pub fn new(local: SocketAddr, name: &str) -> Result<Self, Error> {
        let ssrc = |k: u32| u32::from_be_bytes(random_bytes::<4>()) & !0xf | k;
        let sending = |kind: Kind, ssrc: u32| LocalMedia {
            mid: if kind == Kind::Audio { "0" } else { "1" }.into(),
            kind,
            direction: Direction::SendRecv,
            codec: Some(codec(kind)),
            extmaps: vec![],
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
            rids: vec![],
        };
        let (a, v) = (ssrc(1), ssrc(2));
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
            audio: (a, StreamState::default(), 0),
            video: (v, StreamState::default(), 0),
            incoming: Vec::new(),
            transmits: Vec::new(),
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
                candidates: vec![(self.local.ip(), self.local.port())],
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
                    extmaps: vec![],
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
        self.transmits.pop()
    }

    /// Gives a sent datagram's buffer back.
    pub fn recycle(&mut self, buf: Buf) {
        self.pool.give(buf);
    }

    /// When [`Client::handle_timeout`] is due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let dtls = self.dtls.as_ref().and_then(Dtls::poll_timeout);
        match (self.next_check, dtls) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Connectivity checks and DTLS retransmissions.
    pub fn handle_timeout(&mut self, now: Instant) {
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
        self.transmits.push(Transmit { to: r.addr, buf });
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
            self.transmits.push(Transmit { to: r.addr, buf: b });
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
                self.transmits.push(Transmit { to: from, buf });
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
                }
                self.flush_dtls();
                None
            }
            Some(128..=191) if rtp::is_rtcp(datagram) => {
                // Keyframe requests and reports: the synthetic media needs none.
                let _ = self.srtp_in.as_mut()?.unprotect_rtcp(datagram);
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
                Some(Received {
                    ssrc,
                    sequence: header.sequence(),
                    payload: &packet[header.payload_offset..],
                })
            }
            _ => None,
        }
    }

    /// Sends one RTP packet of `kind` with `payload` (timestamp `ts`).
    pub fn send_rtp(&mut self, kind: Kind, ts: u32, marker: bool, payload: &[u8]) {
        let (Some(out), Some(r)) = (self.srtp_out.as_mut(), &self.remote) else {
            return;
        };
        let (ssrc, state, seq, pt) = match kind {
            Kind::Audio => (&self.audio.0, &mut self.audio.1, &mut self.audio.2, OPUS_PT),
            _ => (&self.video.0, &mut self.video.1, &mut self.video.2, VP8_PT),
        };
        *seq = seq.wrapping_add(1);
        let mut buf = self.pool.take();
        let space = buf.space();
        if payload.len() + 12 + srtp::MAX_OVERHEAD > space.len() {
            return;
        }
        space[0] = 0x80;
        space[1] = pt | if marker { 0x80 } else { 0 };
        space[2..4].copy_from_slice(&seq.to_be_bytes());
        space[4..8].copy_from_slice(&ts.to_be_bytes());
        space[8..12].copy_from_slice(&ssrc.to_be_bytes());
        space[12..12 + payload.len()].copy_from_slice(payload);
        let Ok(n) = out.protect_rtp(space, 12 + payload.len(), state) else {
            return;
        };
        buf.set_len(n);
        self.transmits.push(Transmit { to: r.addr, buf });
    }
}

/// An RTP packet the room sent us, decrypted.
#[derive(Debug)]
pub struct Received<'a> {
    /// The stream.
    pub ssrc: u32,
    /// Its sequence number.
    pub sequence: u16,
    /// Its payload.
    pub payload: &'a [u8],
}
