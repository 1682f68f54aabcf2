//! Session descriptions (RFC 8866, as JSEP uses them): what the SFU reads from a
//! participant's offer or answer, and the offers and answers it writes. One BUNDLE
//! group, `rtcp-mux`, one ICE ufrag/password and one DTLS fingerprint per session; one
//! codec per kind on what the SFU sends (Opus, VP8), since it forwards without
//! decoding.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::Transport;

/// One of our ICE candidates: a host candidate on UDP, or a passive ICE-TCP one
/// (RFC 6544: the peer connects, we accept).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Candidate {
    /// UDP or TCP.
    pub transport: Transport,
    /// The address.
    pub ip: IpAddr,
    /// The port.
    pub port: u16,
}

impl Candidate {
    /// A UDP host candidate.
    pub fn udp(ip: IpAddr, port: u16) -> Self {
        Self {
            transport: Transport::Udp,
            ip,
            port,
        }
    }

    /// A passive TCP host candidate.
    pub fn tcp(ip: IpAddr, port: u16) -> Self {
        Self {
            transport: Transport::Tcp,
            ip,
            port,
        }
    }
}

/// Host type preference (RFC 8445, 5.1.2.1).
const HOST_TYPE_PREFERENCE: u32 = 126;
/// Local preference of a passive TCP candidate (RFC 6544, 4.2): direction preference
/// 4 (passive) times 2^13, plus the highest other-preference. UDP candidates take
/// 65535, so a peer that can reach both prefers UDP.
const TCP_PASSIVE_LOCAL_PREFERENCE: u32 = (4 << 13) | 8191;

/// A media section's kind.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    /// `m=audio`.
    Audio,
    /// `m=video`.
    Video,
    /// Anything else (`application` for data channels): rejected.
    Other,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Audio => "audio",
            Kind::Video => "video",
            Kind::Other => "application",
        }
    }
}

/// A media section's direction, from the writer's point of view.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Direction {
    /// `a=sendrecv` (the default).
    SendRecv,
    /// `a=sendonly`.
    SendOnly,
    /// `a=recvonly`.
    RecvOnly,
    /// `a=inactive`.
    Inactive,
}

impl Direction {
    fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// Whether the writer sends media in this section.
    pub fn sends(self) -> bool {
        matches!(self, Direction::SendRecv | Direction::SendOnly)
    }
}

/// DTLS role in `a=setup`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setup {
    /// Either (offers).
    ActPass,
    /// DTLS client.
    Active,
    /// DTLS server.
    Passive,
}

/// One payload format of a media section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Codec {
    /// The payload type.
    pub pt: u8,
    /// The encoding name, as written (`opus`, `VP8`).
    pub name: String,
    /// The clock rate.
    pub clock: u32,
    /// Audio channels (0 when not given).
    pub channels: u8,
    /// `a=fmtp` parameters.
    pub fmtp: Option<String>,
    /// `a=rtcp-fb` values (`nack`, `nack pli`, `ccm fir`, `transport-cc`, ...).
    pub feedback: Vec<String>,
}

/// One media section, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Media {
    /// Its kind.
    pub kind: Kind,
    /// Port 0 means rejected (or stopped).
    pub port: u16,
    /// `a=mid`.
    pub mid: Option<String>,
    /// Its direction (from the writer's point of view).
    pub direction: Direction,
    /// Its payload formats, in preference order.
    pub codecs: Vec<Codec>,
    /// `a=extmap`: (id, URI).
    pub extmaps: Vec<(u8, String)>,
    /// SSRCs named by `a=ssrc` (first of each), in order.
    pub ssrcs: Vec<u32>,
    /// `a=ssrc-group:FID <media> <rtx>` pairs.
    pub rtx: Vec<(u32, u32)>,
    /// `a=msid:<stream> <track>`.
    pub msid: Option<(String, String)>,
    /// `a=rid:<id> send` values (simulcast layers the writer sends).
    pub rids: Vec<String>,
    /// `a=rtcp-mux` was present.
    pub rtcp_mux: bool,
}

/// A session description, as read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Description {
    /// The writer's ICE username fragment.
    pub ice_ufrag: String,
    /// The writer's ICE password.
    pub ice_pwd: String,
    /// The writer is an ICE-lite agent.
    pub ice_lite: bool,
    /// The writer's certificate fingerprint (SHA-256, as written).
    pub fingerprint: String,
    /// The writer's DTLS role.
    pub setup: Setup,
    /// The media sections, in order.
    pub media: Vec<Media>,
    /// The writer's ICE candidates (`a=candidate` values, without the prefix).
    pub candidates: Vec<String>,
}

/// Why a description was refused. Carries the first offending line's number, never
/// its content (a candidate line names an address).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not an SDP (does not start with `v=0`, or a line without `x=`).
    #[error("not a session description (line {0})")]
    Syntax(usize),
    /// An `m=` line that does not parse.
    #[error("a media line does not parse (line {0})")]
    MediaLine(usize),
    /// Something WebRTC needs is missing: ICE credentials, the fingerprint, the
    /// setup role, BUNDLE with rtcp-mux, a mid.
    #[error("the description lacks {0}")]
    Missing(&'static str),
    /// Too many media sections (a defence against absurd descriptions).
    #[error("too many media sections")]
    TooMany,
}

/// The most media sections accepted in one description.
pub const MAX_MEDIA: usize = 1024;

fn parse_setup(v: &str) -> Option<Setup> {
    match v {
        "actpass" => Some(Setup::ActPass),
        "active" => Some(Setup::Active),
        "passive" => Some(Setup::Passive),
        _ => None,
    }
}

impl Description {
    /// Parses and checks a participant's SDP.
    pub fn parse(sdp: &str) -> Result<Self, Error> {
        let mut lines = sdp
            .lines()
            .enumerate()
            .map(|(i, l)| (i + 1, l.trim_end_matches('\r')));
        match lines.next() {
            Some((_, "v=0")) => {}
            _ => return Err(Error::Syntax(1)),
        }
        let mut session_ufrag = None;
        let mut session_pwd = None;
        let mut session_fp = None;
        let mut session_setup = None;
        let mut ice_lite = false;
        let mut media: Vec<Media> = Vec::new();
        let mut ufrags = Vec::new();
        let mut pwds = Vec::new();
        let mut fps = Vec::new();
        let mut setups = Vec::new();
        let mut candidates = Vec::new();
        let mut bundled = false;
        for (n, line) in lines {
            if line.is_empty() {
                continue;
            }
            let Some((key, value)) = line.split_once('=') else {
                return Err(Error::Syntax(n));
            };
            if key.len() != 1 {
                return Err(Error::Syntax(n));
            }
            match key {
                "m" => {
                    if media.len() >= MAX_MEDIA {
                        return Err(Error::TooMany);
                    }
                    let mut parts = value.split(' ');
                    let kind = match parts.next() {
                        Some("audio") => Kind::Audio,
                        Some("video") => Kind::Video,
                        Some(_) => Kind::Other,
                        None => return Err(Error::MediaLine(n)),
                    };
                    let port = parts
                        .next()
                        .and_then(|p| p.split('/').next()?.parse().ok())
                        .ok_or(Error::MediaLine(n))?;
                    let _proto = parts.next().ok_or(Error::MediaLine(n))?;
                    let mut codecs = Vec::new();
                    if kind != Kind::Other {
                        for pt in parts {
                            let pt: u8 = pt.parse().map_err(|_| Error::MediaLine(n))?;
                            if pt > 127 {
                                return Err(Error::MediaLine(n));
                            }
                            codecs.push(Codec {
                                pt,
                                name: String::new(),
                                clock: 0,
                                channels: 0,
                                fmtp: None,
                                feedback: Vec::new(),
                            });
                        }
                    }
                    media.push(Media {
                        kind,
                        port,
                        mid: None,
                        direction: Direction::SendRecv,
                        codecs,
                        extmaps: Vec::new(),
                        ssrcs: Vec::new(),
                        rtx: Vec::new(),
                        msid: None,
                        rids: Vec::new(),
                        rtcp_mux: false,
                    });
                }
                "a" => {
                    let (attr, v) = value.split_once(':').unwrap_or((value, ""));
                    let Some(m) = media.last_mut() else {
                        match attr {
                            "ice-ufrag" => session_ufrag = Some(v.to_owned()),
                            "ice-pwd" => session_pwd = Some(v.to_owned()),
                            "ice-lite" => ice_lite = true,
                            "fingerprint" => session_fp = Some(v.to_owned()),
                            "setup" => session_setup = parse_setup(v),
                            "group" if v.starts_with("BUNDLE") => bundled = true,
                            _ => {}
                        }
                        continue;
                    };
                    match attr {
                        "mid" => m.mid = Some(v.to_owned()),
                        "sendrecv" => m.direction = Direction::SendRecv,
                        "sendonly" => m.direction = Direction::SendOnly,
                        "recvonly" => m.direction = Direction::RecvOnly,
                        "inactive" => m.direction = Direction::Inactive,
                        "rtcp-mux" => m.rtcp_mux = true,
                        "ice-ufrag" => ufrags.push(v.to_owned()),
                        "ice-pwd" => pwds.push(v.to_owned()),
                        "fingerprint" => fps.push(v.to_owned()),
                        "setup" => setups.extend(parse_setup(v)),
                        "candidate" => candidates.push(v.to_owned()),
                        "rtpmap" => {
                            let (pt, enc) = v.split_once(' ').ok_or(Error::Syntax(n))?;
                            let pt: u8 = pt.parse().map_err(|_| Error::Syntax(n))?;
                            let mut e = enc.split('/');
                            if let Some(c) = m.codecs.iter_mut().find(|c| c.pt == pt) {
                                c.name = e.next().unwrap_or_default().to_owned();
                                c.clock = e.next().and_then(|x| x.parse().ok()).unwrap_or(0);
                                c.channels = e.next().and_then(|x| x.parse().ok()).unwrap_or(0);
                            }
                        }
                        "fmtp" => {
                            let (pt, params) = v.split_once(' ').unwrap_or((v, ""));
                            if let Ok(pt) = pt.parse::<u8>()
                                && let Some(c) = m.codecs.iter_mut().find(|c| c.pt == pt)
                            {
                                c.fmtp = Some(params.to_owned());
                            }
                        }
                        "rtcp-fb" => {
                            let (pt, fb) = v.split_once(' ').unwrap_or((v, ""));
                            if let Ok(pt) = pt.parse::<u8>()
                                && let Some(c) = m.codecs.iter_mut().find(|c| c.pt == pt)
                                && c.feedback.len() < 16
                            {
                                c.feedback.push(fb.to_owned());
                            }
                        }
                        "extmap" => {
                            let (id, uri) = v.split_once(' ').ok_or(Error::Syntax(n))?;
                            let id: u8 = id
                                .split('/')
                                .next()
                                .and_then(|i| i.parse().ok())
                                .ok_or(Error::Syntax(n))?;
                            let uri = uri.split(' ').next().unwrap_or_default();
                            if (1..=255).contains(&id) && m.extmaps.len() < 32 {
                                m.extmaps.push((id, uri.to_owned()));
                            }
                        }
                        "ssrc" => {
                            let ssrc = v
                                .split(' ')
                                .next()
                                .and_then(|s| s.parse().ok())
                                .ok_or(Error::Syntax(n))?;
                            if !m.ssrcs.contains(&ssrc) && m.ssrcs.len() < 16 {
                                m.ssrcs.push(ssrc);
                            }
                        }
                        "ssrc-group" => {
                            let mut parts = v.split(' ');
                            if parts.next() == Some("FID")
                                && let (Some(Ok(a)), Some(Ok(b))) = (
                                    parts.next().map(str::parse::<u32>),
                                    parts.next().map(str::parse::<u32>),
                                )
                            {
                                m.rtx.push((a, b));
                            }
                        }
                        "msid" => {
                            let mut parts = v.split(' ');
                            let stream = parts.next().unwrap_or_default().to_owned();
                            let track = parts.next().unwrap_or_default().to_owned();
                            m.msid = Some((stream, track));
                        }
                        "rid" => {
                            let mut parts = v.split(' ');
                            // RFC 8851: letters, digits, '-' and '_'; at most 16 bytes so
                            // it fits a header extension (and nothing else is written back
                            // into the answer).
                            if let (Some(id), Some("send")) = (parts.next(), parts.next())
                                && m.rids.len() < 8
                                && (1..=16).contains(&id.len())
                                && id
                                    .bytes()
                                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                                && !m.rids.iter().any(|r| r == id)
                            {
                                m.rids.push(id.to_owned());
                            }
                        }
                        _ => {}
                    }
                }
                _ => {}
            }
        }
        // Codecs without an rtpmap are dropped (static types are not used by WebRTC
        // browsers for these kinds).
        for m in &mut media {
            m.codecs.retain(|c| !c.name.is_empty());
        }
        let first = |v: Vec<String>| v.into_iter().next();
        let ice_ufrag = session_ufrag
            .or_else(|| first(ufrags))
            .ok_or(Error::Missing("an ICE ufrag"))?;
        let ice_pwd = session_pwd
            .or_else(|| first(pwds))
            .ok_or(Error::Missing("an ICE password"))?;
        let fingerprint = session_fp
            .or_else(|| first(fps))
            .ok_or(Error::Missing("a DTLS fingerprint"))?;
        let fingerprint = match fingerprint.split_once(' ') {
            Some((alg, value)) if alg.eq_ignore_ascii_case("sha-256") => value.to_owned(),
            _ => return Err(Error::Missing("a SHA-256 DTLS fingerprint")),
        };
        let setup = session_setup
            .or_else(|| setups.first().copied())
            .ok_or(Error::Missing("a DTLS setup role"))?;
        if media
            .iter()
            .any(|m| m.port != 0 && m.kind != Kind::Other && m.mid.is_none())
        {
            return Err(Error::Missing("a mid on every media section"));
        }
        if !media.is_empty() && !bundled {
            return Err(Error::Missing("BUNDLE"));
        }
        Ok(Self {
            ice_ufrag,
            ice_pwd,
            ice_lite,
            fingerprint,
            setup,
            media,
            candidates,
        })
    }
}

/// The header extensions the SFU negotiates, by URI.
pub mod ext {
    /// The media section's mid (RFC 8843).
    pub const MID: &str = "urn:ietf:params:rtp-hdrext:sdes:mid";
    /// The simulcast layer's RTP stream id (RFC 8852).
    pub const RID: &str = "urn:ietf:params:rtp-hdrext:sdes:rtp-stream-id";
    /// The audio level (RFC 6464).
    pub const AUDIO_LEVEL: &str = "urn:ietf:params:rtp-hdrext:ssrc-audio-level";
    /// Transport-wide sequence numbers (draft-holmer-rmcat-transport-wide-cc-extensions).
    pub const TRANSPORT_CC: &str =
        "http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01";
}

/// What the SFU writes about itself in every description.
#[derive(Clone, Debug)]
pub struct Local {
    /// Our ICE username fragment.
    pub ufrag: String,
    /// Our ICE password.
    pub pwd: String,
    /// Our certificate's SHA-256 fingerprint.
    pub fingerprint: String,
    /// Our DTLS role.
    pub setup: Setup,
    /// Whether we are an ICE-lite agent (the SFU is; a load-test client is not).
    pub ice_lite: bool,
    /// Our candidates, UDP ones first (the first names the `m=` port).
    pub candidates: Vec<Candidate>,
    /// The session id (`o=`).
    pub session_id: u64,
    /// The session version (`o=`), increased with every description.
    pub version: u64,
}

/// What the SFU sends in a media section.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sending {
    /// The stream's SSRC.
    pub ssrc: u32,
    /// The stream id (`msid`), the publisher's participant id.
    pub stream: String,
    /// The track id.
    pub track: String,
}

/// One media section, as written.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LocalMedia {
    /// The mid.
    pub mid: String,
    /// Its kind.
    pub kind: Kind,
    /// Our direction.
    pub direction: Direction,
    /// The one payload format (absent in a rejected section).
    pub codec: Option<Codec>,
    /// Header extensions: (id, URI).
    pub extmaps: Vec<(u8, String)>,
    /// What we send in it, if we send.
    pub sending: Option<Sending>,
    /// Rejected: port 0 and nothing else.
    pub rejected: bool,
    /// `b=AS` (kbit/s) asked of what the peer sends in it.
    pub max_kbps: Option<u32>,
    /// Simulcast layers (rids, lowest first): those it receives, in an answer, or
    /// those it sends, when it has [`LocalMedia::sending`].
    pub rids: Vec<String>,
}

/// A host candidate's priority for component 1 (RFC 8445, 5.1.2.1).
fn priority(local_preference: u32) -> u32 {
    (HOST_TYPE_PREFERENCE << 24) | (local_preference << 8) | 255
}

/// Writes a description of `local` with `media` (all bundled on the first section's
/// transport).
pub fn render(local: &Local, media: &[LocalMedia]) -> String {
    let mut s = String::with_capacity(512 + 400 * media.len());
    let _ = write!(
        s,
        "v=0\r\no=- {} {} IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\n",
        local.session_id, local.version
    );
    let bundle: Vec<&str> = media
        .iter()
        .filter(|m| !m.rejected)
        .map(|m| m.mid.as_str())
        .collect();
    let _ = write!(s, "a=group:BUNDLE {}\r\n", bundle.join(" "));
    if local.ice_lite {
        s.push_str("a=ice-lite\r\n");
    }
    s.push_str("a=msid-semantic: WMS *\r\n");
    let candidates_done = std::cell::Cell::new(false);
    for m in media {
        if m.rejected {
            let fmt = m
                .codec
                .as_ref()
                .map_or("0".to_owned(), |c| c.pt.to_string());
            let proto = if m.kind == Kind::Other {
                "UDP/DTLS/SCTP webrtc-datachannel".to_owned()
            } else {
                format!("UDP/TLS/RTP/SAVPF {fmt}")
            };
            let _ = write!(
                s,
                "m={} 0 {proto}\r\nc=IN IP4 0.0.0.0\r\na=mid:{}\r\na=inactive\r\n",
                m.kind.name(),
                m.mid
            );
            continue;
        }
        let codec = m.codec.as_ref().expect("an accepted section has a codec");
        let port = local.candidates.first().map_or(9, |c| c.port);
        let _ = write!(
            s,
            "m={} {port} UDP/TLS/RTP/SAVPF {}\r\nc=IN IP4 0.0.0.0\r\n",
            m.kind.name(),
            codec.pt
        );
        if let Some(kbps) = m.max_kbps {
            let _ = write!(s, "b=AS:{kbps}\r\n");
        }
        let _ = write!(
            s,
            "a=mid:{}\r\na=ice-ufrag:{}\r\na=ice-pwd:{}\r\na=fingerprint:sha-256 {}\r\na=setup:{}\r\n",
            m.mid,
            local.ufrag,
            local.pwd,
            local.fingerprint,
            match local.setup {
                Setup::ActPass => "actpass",
                Setup::Active => "active",
                Setup::Passive => "passive",
            }
        );
        // Candidates once, in the first bundled section (the others share it).
        if !candidates_done.replace(true) {
            for (i, c) in local.candidates.iter().enumerate() {
                let (ip, port, n) = (c.ip, c.port, i as u32);
                let _ = match c.transport {
                    Transport::Udp => write!(
                        s,
                        "a=candidate:{} 1 udp {} {ip} {port} typ host\r\n",
                        n + 1,
                        priority(65535 - n)
                    ),
                    Transport::Tcp => write!(
                        s,
                        "a=candidate:{} 1 tcp {} {ip} {port} typ host tcptype passive\r\n",
                        n + 1,
                        priority(TCP_PASSIVE_LOCAL_PREFERENCE - n)
                    ),
                };
            }
            s.push_str("a=end-of-candidates\r\n");
        }
        let _ = write!(
            s,
            "a={}\r\na=rtcp-mux\r\na=rtcp-rsize\r\n",
            m.direction.attr()
        );
        let enc = if codec.channels > 0 {
            format!("{}/{}/{}", codec.name, codec.clock, codec.channels)
        } else {
            format!("{}/{}", codec.name, codec.clock)
        };
        let _ = write!(s, "a=rtpmap:{} {enc}\r\n", codec.pt);
        if let Some(f) = &codec.fmtp {
            let _ = write!(s, "a=fmtp:{} {f}\r\n", codec.pt);
        }
        for fb in &codec.feedback {
            let _ = write!(s, "a=rtcp-fb:{} {fb}\r\n", codec.pt);
        }
        for (id, uri) in &m.extmaps {
            let _ = write!(s, "a=extmap:{id} {uri}\r\n");
        }
        // Layers the section receives (the SFU's answer) or sends (a load-test
        // client's offer, whose layers the packets' rids name, not SSRCs).
        let rid_direction = if m.sending.is_some() { "send" } else { "recv" };
        if !m.rids.is_empty() {
            for rid in &m.rids {
                let _ = write!(s, "a=rid:{rid} {rid_direction}\r\n");
            }
            let _ = write!(s, "a=simulcast:{rid_direction} {}\r\n", m.rids.join(";"));
        }
        match &m.sending {
            Some(send) if m.rids.is_empty() => {
                let _ = write!(
                    s,
                    "a=msid:{} {}\r\na=ssrc:{} cname:{}\r\na=ssrc:{} msid:{} {}\r\n",
                    send.stream,
                    send.track,
                    send.ssrc,
                    send.stream,
                    send.ssrc,
                    send.stream,
                    send.track
                );
            }
            Some(send) => {
                let _ = write!(s, "a=msid:{} {}\r\n", send.stream, send.track);
            }
            None => {}
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An offer as Chromium writes it for a microphone and a camera (shortened: fewer
    /// codecs, the candidate and ufrag made up).
    pub const CHROME_OFFER: &str = "v=0\r
o=- 4611731400430051336 2 IN IP4 127.0.0.1\r
s=-\r
t=0 0\r
a=group:BUNDLE 0 1\r
a=extmap-allow-mixed\r
a=msid-semantic: WMS stream1\r
m=audio 9 UDP/TLS/RTP/SAVPF 111 63 9 0 8 13 110 126\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=candidate:1 1 udp 2113937151 192.0.2.10 54400 typ host generation 0\r
a=ice-ufrag:EsAw\r
a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r
a=ice-options:trickle\r
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r
a=setup:actpass\r
a=mid:0\r
a=extmap:1 urn:ietf:params:rtp-hdrext:ssrc-audio-level\r
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=sendrecv\r
a=msid:stream1 audio1\r
a=rtcp-mux\r
a=rtcp-rsize\r
a=rtpmap:111 opus/48000/2\r
a=rtcp-fb:111 transport-cc\r
a=fmtp:111 minptime=10;useinbandfec=1\r
a=rtpmap:63 red/48000/2\r
a=fmtp:63 111/111\r
a=rtpmap:9 G722/8000\r
a=rtpmap:0 PCMU/8000\r
a=rtpmap:8 PCMA/8000\r
a=rtpmap:13 CN/8000\r
a=rtpmap:110 telephone-event/48000\r
a=rtpmap:126 telephone-event/8000\r
a=ssrc:3570614608 cname:4TOk42mSjXCkVIa6\r
a=ssrc:3570614608 msid:stream1 audio1\r
m=video 9 UDP/TLS/RTP/SAVPF 96 97 98 99\r
c=IN IP4 0.0.0.0\r
a=rtcp:9 IN IP4 0.0.0.0\r
a=ice-ufrag:EsAw\r
a=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r
a=ice-options:trickle\r
a=fingerprint:sha-256 D2:FA:0E:C3:22:59:5E:14:95:69:92:3D:13:B4:84:24:2C:C2:A2:C0:3E:FD:34:8E:5E:EA:6F:AF:52:CE:E6:0F\r
a=setup:actpass\r
a=mid:1\r
a=extmap:14 urn:ietf:params:rtp-hdrext:toffset\r
a=extmap:3 http://www.ietf.org/id/draft-holmer-rmcat-transport-wide-cc-extensions-01\r
a=extmap:4 urn:ietf:params:rtp-hdrext:sdes:mid\r
a=sendrecv\r
a=msid:stream1 video1\r
a=rtcp-mux\r
a=rtcp-rsize\r
a=rtpmap:96 VP8/90000\r
a=rtcp-fb:96 goog-remb\r
a=rtcp-fb:96 transport-cc\r
a=rtcp-fb:96 ccm fir\r
a=rtcp-fb:96 nack\r
a=rtcp-fb:96 nack pli\r
a=rtpmap:97 rtx/90000\r
a=fmtp:97 apt=96\r
a=rtpmap:98 VP9/90000\r
a=fmtp:98 profile-id=0\r
a=rtpmap:99 rtx/90000\r
a=fmtp:99 apt=98\r
a=ssrc-group:FID 2231627014 632943048\r
a=ssrc:2231627014 cname:4TOk42mSjXCkVIa6\r
a=ssrc:2231627014 msid:stream1 video1\r
a=ssrc:632943048 cname:4TOk42mSjXCkVIa6\r
a=ssrc:632943048 msid:stream1 video1\r
";

    #[test]
    fn a_chrome_offer_reads_as_it_should() {
        let d = Description::parse(CHROME_OFFER).unwrap();
        assert_eq!(
            (d.ice_ufrag.as_str(), d.ice_pwd.as_str()),
            ("EsAw", "P2uYro0UCOQ4zxjKXaWCBui1")
        );
        assert!(d.fingerprint.starts_with("D2:FA:0E"));
        assert_eq!(d.setup, Setup::ActPass);
        assert!(!d.ice_lite);
        assert_eq!(d.media.len(), 2);
        let a = &d.media[0];
        assert_eq!(
            (a.kind, a.mid.as_deref(), a.direction),
            (Kind::Audio, Some("0"), Direction::SendRecv)
        );
        let opus = &a.codecs[0];
        assert_eq!(
            (opus.pt, opus.name.as_str(), opus.clock, opus.channels),
            (111, "opus", 48000, 2)
        );
        assert_eq!(opus.fmtp.as_deref(), Some("minptime=10;useinbandfec=1"));
        assert_eq!(a.ssrcs, [3570614608]);
        assert!(a.extmaps.contains(&(1, ext::AUDIO_LEVEL.to_owned())));
        let v = &d.media[1];
        assert_eq!(v.codecs[0].name, "VP8");
        assert!(v.codecs[0].feedback.contains(&"nack pli".to_owned()));
        assert_eq!(v.ssrcs, [2231627014, 632943048]);
        assert_eq!(v.rtx, [(2231627014, 632943048)]);
        assert_eq!(v.msid, Some(("stream1".into(), "video1".into())));
        assert_eq!(d.candidates.len(), 1);
    }

    #[test]
    fn what_is_not_a_webrtc_description_is_refused_without_echoing_it() {
        for (sdp, want) in [
            ("geheim-4711", Error::Syntax(1)),
            ("v=0\r\nnonsense\r\n", Error::Syntax(2)),
            ("v=0\r\nm=audio x UDP 111\r\n", Error::MediaLine(2)),
            ("v=0\r\nm=audio 9 UDP 999\r\n", Error::MediaLine(2)),
        ] {
            assert_eq!(Description::parse(sdp).unwrap_err(), want, "{sdp}");
        }
        let no_fp = CHROME_OFFER.replace("a=fingerprint", "a=x-fingerprint");
        assert_eq!(
            Description::parse(&no_fp).unwrap_err(),
            Error::Missing("a DTLS fingerprint")
        );
        let no_bundle = CHROME_OFFER.replace("a=group:BUNDLE 0 1\r\n", "");
        assert_eq!(
            Description::parse(&no_bundle).unwrap_err(),
            Error::Missing("BUNDLE")
        );
        let no_mid = CHROME_OFFER.replace("a=mid:1\r\n", "");
        assert!(Description::parse(&no_mid).is_err());
        let many = format!(
            "{}{}",
            CHROME_OFFER,
            "m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:x\r\n".repeat(MAX_MEDIA)
        );
        assert_eq!(Description::parse(&many).unwrap_err(), Error::TooMany);
        assert!(!Error::Syntax(3).to_string().contains("geheim"));
    }

    #[test]
    fn what_is_rendered_parses_back() {
        let local = Local {
            ufrag: "sfuUfrag".into(),
            pwd: "sfuPasswordSfuPassword".into(),
            fingerprint: "AA:BB".into(),
            setup: Setup::Passive,
            ice_lite: true,
            candidates: vec![
                Candidate::udp("203.0.113.4".parse().unwrap(), 50000),
                Candidate::tcp("203.0.113.4".parse().unwrap(), 50001),
            ],
            session_id: 1,
            version: 2,
        };
        let opus = Codec {
            pt: 111,
            name: "opus".into(),
            clock: 48000,
            channels: 2,
            fmtp: Some("minptime=10;useinbandfec=1".into()),
            feedback: vec![],
        };
        let vp8 = Codec {
            pt: 96,
            name: "VP8".into(),
            clock: 90000,
            channels: 0,
            fmtp: None,
            feedback: vec!["nack".into(), "nack pli".into()],
        };
        let media = [
            LocalMedia {
                mid: "0".into(),
                kind: Kind::Audio,
                direction: Direction::RecvOnly,
                codec: Some(opus.clone()),
                extmaps: vec![(1, ext::AUDIO_LEVEL.into())],
                sending: None,
                rejected: false,
                max_kbps: None,
                rids: vec![],
            },
            LocalMedia {
                mid: "1".into(),
                kind: Kind::Video,
                direction: Direction::SendOnly,
                codec: Some(vp8),
                extmaps: vec![],
                sending: Some(Sending {
                    ssrc: 42,
                    stream: "7".into(),
                    track: "7-video".into(),
                }),
                rejected: false,
                max_kbps: Some(1500),
                rids: vec![],
            },
            LocalMedia {
                mid: "2".into(),
                kind: Kind::Other,
                direction: Direction::Inactive,
                codec: None,
                extmaps: vec![],
                sending: None,
                rejected: true,
                max_kbps: None,
                rids: vec![],
            },
        ];
        let sdp = render(&local, &media);
        assert!(sdp.contains("a=group:BUNDLE 0 1\r\n"), "{sdp}");
        assert!(sdp.contains("a=candidate:1 1 udp 2130706431 203.0.113.4 50000 typ host\r\n"));
        // RFC 6544's passive host candidate, below UDP: 126 << 24 | 40958 << 8 | 255.
        assert!(sdp.contains(
            "a=candidate:2 1 tcp 2124414719 203.0.113.4 50001 typ host tcptype passive\r\n"
        ));
        assert!(sdp.contains("m=audio 50000 "), "the first candidate's port");
        assert!(sdp.contains("b=AS:1500\r\n"));
        let d = Description::parse(&sdp).unwrap();
        assert!(d.ice_lite);
        assert_eq!(d.setup, Setup::Passive);
        assert_eq!(d.fingerprint, "AA:BB");
        assert_eq!(d.media[0].direction, Direction::RecvOnly);
        assert_eq!(d.media[1].ssrcs, [42]);
        assert_eq!(d.media[1].msid, Some(("7".into(), "7-video".into())));
        assert_eq!(d.media[2].port, 0);
        assert_eq!(
            sdp.matches("a=candidate").count(),
            2,
            "once, for the bundle"
        );
    }
}
