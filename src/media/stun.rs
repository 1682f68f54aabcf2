//! The part of STUN (RFC 8489) that ICE connectivity checks use (RFC 8445): binding
//! requests with USERNAME, PRIORITY, ICE-CONTROLLING/-CONTROLLED, USE-CANDIDATE,
//! MESSAGE-INTEGRITY and FINGERPRINT, and their success and error responses. Parsing
//! borrows the datagram; building writes into a caller's buffer. Nothing allocates.

use std::net::{IpAddr, SocketAddr};

use ring::hmac;

/// The magic cookie every STUN message carries.
pub const MAGIC_COOKIE: u32 = 0x2112_a442;
const HEADER: usize = 20;

/// Message types used here.
pub const BINDING_REQUEST: u16 = 0x0001;
/// Binding success response.
pub const BINDING_SUCCESS: u16 = 0x0101;
/// Binding error response.
pub const BINDING_ERROR: u16 = 0x0111;

const ATTR_MAPPED_ADDRESS: u16 = 0x0001;
const ATTR_USERNAME: u16 = 0x0006;
const ATTR_MESSAGE_INTEGRITY: u16 = 0x0008;
const ATTR_ERROR_CODE: u16 = 0x0009;
const ATTR_XOR_MAPPED_ADDRESS: u16 = 0x0020;
const ATTR_PRIORITY: u16 = 0x0024;
const ATTR_USE_CANDIDATE: u16 = 0x0025;
const ATTR_FINGERPRINT: u16 = 0x8028;
const ATTR_ICE_CONTROLLED: u16 = 0x8029;
const ATTR_ICE_CONTROLLING: u16 = 0x802a;

const FINGERPRINT_XOR: u32 = 0x5354_554e;
const CRC32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISO_HDLC);

/// Whether a datagram looks like STUN (RFC 7983: first byte 0 to 3, and the cookie).
pub fn is_stun(datagram: &[u8]) -> bool {
    datagram.len() >= HEADER
        && datagram[0] < 4
        && u32::from_be_bytes([datagram[4], datagram[5], datagram[6], datagram[7]]) == MAGIC_COOKIE
}

/// A parsed STUN message, borrowing its datagram.
#[derive(Clone, Copy, Debug)]
pub struct Message<'a> {
    raw: &'a [u8],
    /// The message type.
    pub kind: u16,
    /// The transaction ID.
    pub transaction: [u8; 12],
    /// USERNAME, if present.
    pub username: Option<&'a [u8]>,
    /// PRIORITY, if present.
    pub priority: Option<u32>,
    /// USE-CANDIDATE was present.
    pub use_candidate: bool,
    /// ICE-CONTROLLING's tie-breaker, if present.
    pub controlling: Option<u64>,
    /// ICE-CONTROLLED's tie-breaker, if present.
    pub controlled: Option<u64>,
    /// XOR-MAPPED-ADDRESS, if present (in responses).
    pub mapped: Option<SocketAddr>,
    /// ERROR-CODE's number, if present.
    pub error: Option<u16>,
    /// Offset of MESSAGE-INTEGRITY's attribute header, if present.
    integrity_at: Option<usize>,
    /// Offset of FINGERPRINT's attribute header, if present.
    fingerprint_at: Option<usize>,
}

/// Why a datagram is not a usable STUN message.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum Error {
    /// Not STUN, or truncated, or an attribute runs past the end.
    #[error("not a well-formed STUN message")]
    Malformed,
    /// FINGERPRINT is missing or wrong.
    #[error("the STUN fingerprint does not match")]
    Fingerprint,
    /// MESSAGE-INTEGRITY is missing or wrong.
    #[error("the STUN message does not authenticate")]
    Integrity,
}

impl<'a> Message<'a> {
    /// Parses `raw`, checking its structure and (when present) its FINGERPRINT.
    pub fn parse(raw: &'a [u8]) -> Result<Self, Error> {
        if !is_stun(raw) {
            return Err(Error::Malformed);
        }
        let kind = u16::from_be_bytes([raw[0], raw[1]]);
        let len = usize::from(u16::from_be_bytes([raw[2], raw[3]]));
        if len % 4 != 0 || HEADER + len != raw.len() {
            return Err(Error::Malformed);
        }
        let mut m = Message {
            raw,
            kind,
            transaction: raw[8..20].try_into().expect("12 bytes"),
            username: None,
            priority: None,
            use_candidate: false,
            controlling: None,
            controlled: None,
            mapped: None,
            error: None,
            integrity_at: None,
            fingerprint_at: None,
        };
        let mut at = HEADER;
        while at < raw.len() {
            let head = raw.get(at..at + 4).ok_or(Error::Malformed)?;
            let t = u16::from_be_bytes([head[0], head[1]]);
            let l = usize::from(u16::from_be_bytes([head[2], head[3]]));
            let value = raw.get(at + 4..at + 4 + l).ok_or(Error::Malformed)?;
            if m.fingerprint_at.is_some() {
                // Nothing may follow FINGERPRINT.
                return Err(Error::Malformed);
            }
            // Attributes after MESSAGE-INTEGRITY are ignored, but for FINGERPRINT.
            if m.integrity_at.is_none() || t == ATTR_FINGERPRINT {
                match t {
                    ATTR_USERNAME => m.username = Some(value),
                    ATTR_PRIORITY => m.priority = Some(be_u32(value)?),
                    ATTR_USE_CANDIDATE => m.use_candidate = true,
                    ATTR_ICE_CONTROLLING => m.controlling = Some(be_u64(value)?),
                    ATTR_ICE_CONTROLLED => m.controlled = Some(be_u64(value)?),
                    ATTR_XOR_MAPPED_ADDRESS => m.mapped = Some(xor_address(value, &m.transaction)?),
                    ATTR_ERROR_CODE if value.len() >= 4 => {
                        m.error = Some(u16::from(value[2] & 0x7) * 100 + u16::from(value[3]))
                    }
                    ATTR_MESSAGE_INTEGRITY if l == 20 => m.integrity_at = Some(at),
                    ATTR_FINGERPRINT if l == 4 => m.fingerprint_at = Some(at),
                    ATTR_MESSAGE_INTEGRITY | ATTR_FINGERPRINT => return Err(Error::Malformed),
                    _ => {}
                }
            }
            at += 4 + l.next_multiple_of(4);
        }
        if at != raw.len() {
            return Err(Error::Malformed);
        }
        if let Some(f) = m.fingerprint_at {
            let want = u32::from_be_bytes(raw[f + 4..f + 8].try_into().expect("4 bytes"));
            if fingerprint(raw, f) != want {
                return Err(Error::Fingerprint);
            }
        }
        Ok(m)
    }

    /// Whether MESSAGE-INTEGRITY is present and verifies under `password` (the ICE
    /// password of whoever was asked).
    pub fn verify(&self, password: &[u8]) -> Result<(), Error> {
        let at = self.integrity_at.ok_or(Error::Integrity)?;
        let want = &self.raw[at + 4..at + 24];
        let tag = integrity(self.raw, at, password);
        if tag.as_ref().len() == 20 && constant_eq(tag.as_ref(), want) {
            Ok(())
        } else {
            Err(Error::Integrity)
        }
    }

    /// The part of USERNAME before the colon: the ufrag of whoever was asked.
    pub fn local_ufrag(&self) -> Option<&'a [u8]> {
        let u = self.username?;
        Some(u.split(|b| *b == b':').next().unwrap_or(u))
    }
}

fn be_u32(v: &[u8]) -> Result<u32, Error> {
    Ok(u32::from_be_bytes(
        v.try_into().map_err(|_| Error::Malformed)?,
    ))
}

fn be_u64(v: &[u8]) -> Result<u64, Error> {
    Ok(u64::from_be_bytes(
        v.try_into().map_err(|_| Error::Malformed)?,
    ))
}

fn xor_address(v: &[u8], transaction: &[u8; 12]) -> Result<SocketAddr, Error> {
    if v.len() < 8 {
        return Err(Error::Malformed);
    }
    let port = u16::from_be_bytes([v[2], v[3]]) ^ (MAGIC_COOKIE >> 16) as u16;
    let cookie = MAGIC_COOKIE.to_be_bytes();
    let ip = match (v[1], v.len()) {
        (1, 8) => {
            let mut o = [0u8; 4];
            for i in 0..4 {
                o[i] = v[4 + i] ^ cookie[i];
            }
            IpAddr::from(o)
        }
        (2, 20) => {
            let mut o = [0u8; 16];
            for i in 0..16 {
                let key = if i < 4 { cookie[i] } else { transaction[i - 4] };
                o[i] = v[4 + i] ^ key;
            }
            IpAddr::from(o)
        }
        _ => return Err(Error::Malformed),
    };
    Ok(SocketAddr::new(ip, port))
}

/// HMAC-SHA1 over the message up to the attribute at `at`, with the header's length
/// set as if that attribute (MESSAGE-INTEGRITY) ended the message.
fn integrity(raw: &[u8], at: usize, password: &[u8]) -> hmac::Tag {
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, password);
    let mut header = [0u8; HEADER];
    header.copy_from_slice(&raw[..HEADER]);
    let len = (at + 24 - HEADER) as u16;
    header[2..4].copy_from_slice(&len.to_be_bytes());
    let mut ctx = hmac::Context::with_key(&key);
    ctx.update(&header);
    ctx.update(&raw[HEADER..at]);
    ctx.sign()
}

/// CRC-32 of the message up to the attribute at `at` (FINGERPRINT), with the length
/// covering it, XORed as RFC 8489 §14.7 says.
fn fingerprint(raw: &[u8], at: usize) -> u32 {
    let mut header = [0u8; HEADER];
    header.copy_from_slice(&raw[..HEADER]);
    let len = (at + 8 - HEADER) as u16;
    header[2..4].copy_from_slice(&len.to_be_bytes());
    let mut digest = CRC32.digest();
    digest.update(&header);
    digest.update(&raw[HEADER..at]);
    digest.finalize() ^ FINGERPRINT_XOR
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Writes a STUN message into a buffer: the header, attributes, then (on `finish`)
/// MESSAGE-INTEGRITY and FINGERPRINT.
pub struct Builder<'b> {
    buf: &'b mut [u8],
    len: usize,
}

impl<'b> Builder<'b> {
    /// Starts a message of `kind` with `transaction` in `buf` (at least 548 bytes).
    pub fn new(buf: &'b mut [u8], kind: u16, transaction: &[u8; 12]) -> Self {
        buf[..2].copy_from_slice(&kind.to_be_bytes());
        buf[2..4].copy_from_slice(&[0, 0]);
        buf[4..8].copy_from_slice(&MAGIC_COOKIE.to_be_bytes());
        buf[8..20].copy_from_slice(transaction);
        Self { buf, len: HEADER }
    }

    fn attr(&mut self, t: u16, value: &[u8]) -> &mut Self {
        let l = value.len();
        let end = self.len + 4 + l.next_multiple_of(4);
        self.buf[self.len..self.len + 2].copy_from_slice(&t.to_be_bytes());
        self.buf[self.len + 2..self.len + 4].copy_from_slice(&(l as u16).to_be_bytes());
        self.buf[self.len + 4..self.len + 4 + l].copy_from_slice(value);
        self.buf[self.len + 4 + l..end].fill(0);
        self.len = end;
        self
    }

    /// USERNAME.
    pub fn username(&mut self, u: &[u8]) -> &mut Self {
        self.attr(ATTR_USERNAME, u)
    }

    /// PRIORITY.
    pub fn priority(&mut self, p: u32) -> &mut Self {
        self.attr(ATTR_PRIORITY, &p.to_be_bytes())
    }

    /// USE-CANDIDATE.
    pub fn use_candidate(&mut self) -> &mut Self {
        self.attr(ATTR_USE_CANDIDATE, &[])
    }

    /// ICE-CONTROLLING with its tie-breaker.
    pub fn controlling(&mut self, tie: u64) -> &mut Self {
        self.attr(ATTR_ICE_CONTROLLING, &tie.to_be_bytes())
    }

    /// XOR-MAPPED-ADDRESS of `addr`.
    pub fn xor_mapped(&mut self, addr: SocketAddr) -> &mut Self {
        let mut v = [0u8; 20];
        let port = addr.port() ^ (MAGIC_COOKIE >> 16) as u16;
        v[2..4].copy_from_slice(&port.to_be_bytes());
        let cookie = MAGIC_COOKIE.to_be_bytes();
        let transaction: [u8; 12] = self.buf[8..20].try_into().expect("12 bytes");
        let n = match addr.ip() {
            IpAddr::V4(ip) => {
                v[1] = 1;
                for (i, b) in ip.octets().iter().enumerate() {
                    v[4 + i] = b ^ cookie[i];
                }
                8
            }
            IpAddr::V6(ip) => {
                v[1] = 2;
                for (i, b) in ip.octets().iter().enumerate() {
                    let key = if i < 4 { cookie[i] } else { transaction[i - 4] };
                    v[4 + i] = b ^ key;
                }
                20
            }
        };
        self.attr(ATTR_XOR_MAPPED_ADDRESS, &v[..n])
    }

    /// ERROR-CODE `code` with a reason phrase.
    pub fn error(&mut self, code: u16, reason: &str) -> &mut Self {
        let mut v = [0u8; 132];
        v[2] = (code / 100) as u8;
        v[3] = (code % 100) as u8;
        let r = reason.as_bytes();
        let n = r.len().min(128);
        v[4..4 + n].copy_from_slice(&r[..n]);
        self.attr(ATTR_ERROR_CODE, &v[..4 + n])
    }

    /// Adds MESSAGE-INTEGRITY under `password` (if given) and FINGERPRINT; returns the
    /// message's length.
    pub fn finish(&mut self, password: Option<&[u8]>) -> usize {
        if let Some(pw) = password {
            let at = self.len;
            let tag = integrity(self.buf, at, pw);
            self.attr(ATTR_MESSAGE_INTEGRITY, tag.as_ref());
        }
        let at = self.len;
        let len = (at + 8 - HEADER) as u16;
        self.buf[2..4].copy_from_slice(&len.to_be_bytes());
        let crc = fingerprint(self.buf, at);
        self.attr(ATTR_FINGERPRINT, &crc.to_be_bytes());
        let total = (self.len - HEADER) as u16;
        self.buf[2..4].copy_from_slice(&total.to_be_bytes());
        self.len
    }
}

// MAPPED-ADDRESS is never written; it is named so the table of attributes is whole.
const _: u16 = ATTR_MAPPED_ADDRESS;

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(s: &str) -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    /// RFC 5769 §2.1: a binding request with software, priority, ICE-CONTROLLED,
    /// username, message integrity and fingerprint.
    const REQUEST: &str = "00010058 2112a442 b7e7a701 bc34d686 fa87dfae
        80220010 5354554e 20746573 7420636c 69656e74
        00240004 6e0001ff
        80290008 932ff9b1 51263b36
        00060009 6576746a 3a683676 59202020
        00080014 9aeaa70c bfd8cb56 781ef2b5 b2d3f249 c1b571a2
        80280004 e57a3bcf";

    #[test]
    fn the_rfc_5769_request_parses_and_authenticates() {
        let raw = hex(REQUEST);
        let m = Message::parse(&raw).unwrap();
        assert_eq!(m.kind, BINDING_REQUEST);
        assert_eq!(m.username, Some(&b"evtj:h6vY"[..]));
        assert_eq!(m.local_ufrag(), Some(&b"evtj"[..]));
        assert_eq!(m.priority, Some(0x6e0001ff));
        assert_eq!(m.controlled, Some(0x932ff9b151263b36));
        assert!(m.verify(b"VOkJxbRl1RmTxUk/WvJxBt").is_ok());
        assert_eq!(m.verify(b"wrong"), Err(Error::Integrity));
        let mut bad = raw.clone();
        bad[30] ^= 1;
        assert!(matches!(Message::parse(&bad), Err(Error::Fingerprint)));
    }

    /// RFC 5769 §2.2 and §2.3: the IPv4 and IPv6 responses' mapped addresses.
    #[test]
    fn the_rfc_5769_responses_give_their_addresses() {
        let v4 = hex(
            "0101003c2112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220\
             002000080001a147e112a643000800142b91f599fd9e90c38c7489f92af9ba53f06be7d7\
             80280004c07d4c96",
        );
        let m = Message::parse(&v4).unwrap();
        assert_eq!(m.mapped, Some("192.0.2.1:32853".parse().unwrap()));
        assert!(m.verify(b"VOkJxbRl1RmTxUk/WvJxBt").is_ok());
        let v6 = hex(
            "010100482112a442b7e7a701bc34d686fa87dfae8022000b7465737420766563746f7220\
             002000140002a1470113a9faa5d3f179bc25f4b5bed2b9d900080014a382954e4be67bf1\
             1784c97c8292c275bfe3ed4180280004c8fb0b4c",
        );
        let m = Message::parse(&v6).unwrap();
        assert_eq!(
            m.mapped,
            Some(
                "[2001:db8:1234:5678:11:2233:4455:6677]:32853"
                    .parse()
                    .unwrap()
            )
        );
        assert!(m.verify(b"VOkJxbRl1RmTxUk/WvJxBt").is_ok());
    }

    #[test]
    fn what_is_built_parses_back() {
        let mut buf = [0u8; 600];
        let t = [7u8; 12];
        let n = Builder::new(&mut buf, BINDING_REQUEST, &t)
            .username(b"sfu:browser")
            .priority(1_845_501_695)
            .controlling(42)
            .use_candidate()
            .finish(Some(b"sfu-password"));
        let m = Message::parse(&buf[..n]).unwrap();
        assert_eq!(m.transaction, t);
        assert_eq!(m.username, Some(&b"sfu:browser"[..]));
        assert_eq!(
            (m.priority, m.controlling, m.use_candidate),
            (Some(1_845_501_695), Some(42), true)
        );
        m.verify(b"sfu-password").unwrap();
        for addr in ["198.51.100.7:40000", "[2001:db8::7]:50000"] {
            let a: SocketAddr = addr.parse().unwrap();
            let n = Builder::new(&mut buf, BINDING_SUCCESS, &t)
                .xor_mapped(a)
                .finish(Some(b"pw"));
            let m = Message::parse(&buf[..n]).unwrap();
            assert_eq!((m.kind, m.mapped), (BINDING_SUCCESS, Some(a)));
            m.verify(b"pw").unwrap();
        }
        let n = Builder::new(&mut buf, BINDING_ERROR, &t)
            .error(401, "Unauthorized")
            .finish(None);
        assert_eq!(Message::parse(&buf[..n]).unwrap().error, Some(401));
    }

    #[test]
    fn garbage_and_truncations_are_refused_without_panicking() {
        let raw = hex(REQUEST);
        for cut in 0..raw.len() {
            assert!(Message::parse(&raw[..cut]).is_err(), "cut at {cut}");
        }
        let mut long_attr = raw.clone();
        long_attr[22] = 0xff; // SOFTWARE's length runs past the end
        assert!(Message::parse(&long_attr).is_err());
        assert!(!is_stun(b"\x80\x60rtp-looking-datagram--"));
        assert!(Message::parse(&[0u8; 20]).is_err(), "no cookie");
    }
}
