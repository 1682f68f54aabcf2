//! RTP packets (RFC 3550) as views over their bytes: the header fields the SFU reads
//! and rewrites, and header extensions (RFC 8285, one- and two-byte forms). Nothing is
//! copied or allocated to read a packet.

/// Whether a datagram is RTP or RTCP (RFC 7983: first byte 128 to 191).
pub fn is_rtp_or_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 12 && (128..192).contains(&datagram[0])
}

/// Whether an RTP/RTCP datagram is RTCP (RFC 5761: payload types 192 to 223 in the
/// second byte are RTCP's packet types 200 to 207 and feedback 205/206).
pub fn is_rtcp(datagram: &[u8]) -> bool {
    datagram.len() >= 2 && (192..224).contains(&datagram[1])
}

/// A view of an RTP packet's header.
#[derive(Clone, Copy, Debug)]
pub struct Header<'a> {
    raw: &'a [u8],
    /// Where the payload starts.
    pub payload_offset: usize,
    /// Where the header extension's data starts and how long it is (`None`: none).
    ext: Option<(usize, usize, u16)>,
}

impl<'a> Header<'a> {
    /// The header of `packet`, or `None` if it is not a whole RTP header.
    pub fn parse(packet: &'a [u8]) -> Option<Self> {
        if packet.len() < 12 || packet[0] >> 6 != 2 {
            return None;
        }
        let mut at = 12 + 4 * usize::from(packet[0] & 0x0f);
        let mut ext = None;
        if packet[0] & 0x10 != 0 {
            let head = packet.get(at..at + 4)?;
            let profile = u16::from_be_bytes([head[0], head[1]]);
            let len = 4 * usize::from(u16::from_be_bytes([head[2], head[3]]));
            ext = Some((at + 4, len, profile));
            at += 4 + len;
        }
        if at > packet.len() {
            return None;
        }
        let mut payload_end = packet.len();
        if packet[0] & 0x20 != 0 {
            // Padding: the last byte says how much.
            let pad = usize::from(*packet.last()?);
            if pad == 0 || at + pad > packet.len() {
                return None;
            }
            payload_end -= pad;
        }
        let _ = payload_end;
        Some(Self {
            raw: packet,
            payload_offset: at,
            ext,
        })
    }

    /// The marker bit.
    pub fn marker(&self) -> bool {
        self.raw[1] & 0x80 != 0
    }

    /// The payload type.
    pub fn payload_type(&self) -> u8 {
        self.raw[1] & 0x7f
    }

    /// The sequence number.
    pub fn sequence(&self) -> u16 {
        u16::from_be_bytes([self.raw[2], self.raw[3]])
    }

    /// The RTP timestamp.
    pub fn timestamp(&self) -> u32 {
        u32::from_be_bytes([self.raw[4], self.raw[5], self.raw[6], self.raw[7]])
    }

    /// The SSRC.
    pub fn ssrc(&self) -> u32 {
        u32::from_be_bytes([self.raw[8], self.raw[9], self.raw[10], self.raw[11]])
    }

    /// Whether the packet is padding only (no payload): the probes a sender's
    /// bandwidth estimation sends.
    pub fn padding_only(&self) -> bool {
        self.raw[0] & 0x20 != 0
            && usize::from(*self.raw.last().unwrap_or(&0)) == self.raw.len() - self.payload_offset
    }

    /// The header extension with local `id`, if present.
    pub fn extension(&self, id: u8) -> Option<&'a [u8]> {
        if id == 0 {
            return None;
        }
        self.extensions().find(|(i, _)| *i == id).map(|(_, v)| v)
    }

    /// Every header extension element, as (id, value).
    pub fn extensions(&self) -> Extensions<'a> {
        match self.ext {
            Some((start, len, profile)) => Extensions {
                data: &self.raw[start..start + len],
                two_byte: profile & 0xfff0 == 0x1000,
                valid: profile == 0xbede || profile & 0xfff0 == 0x1000,
            },
            None => Extensions {
                data: &[],
                two_byte: false,
                valid: false,
            },
        }
    }
}

/// The elements of an RTP header extension (RFC 8285).
#[derive(Clone, Debug)]
pub struct Extensions<'a> {
    data: &'a [u8],
    two_byte: bool,
    valid: bool,
}

impl<'a> Iterator for Extensions<'a> {
    type Item = (u8, &'a [u8]);

    fn next(&mut self) -> Option<Self::Item> {
        if !self.valid {
            return None;
        }
        loop {
            let (&first, rest) = self.data.split_first()?;
            if first == 0 {
                // Padding between elements.
                self.data = rest;
                continue;
            }
            let (id, len, rest) = if self.two_byte {
                let (&len, rest) = rest.split_first()?;
                (first, usize::from(len), rest)
            } else {
                if first >> 4 == 15 {
                    // ID 15: stop (RFC 8285 §4.2).
                    self.data = &[];
                    return None;
                }
                (first >> 4, usize::from(first & 0x0f) + 1, rest)
            };
            if len > rest.len() {
                self.data = &[];
                return None;
            }
            let (value, tail) = rest.split_at(len);
            self.data = tail;
            return Some((id, value));
        }
    }
}

/// Writes the fixed header fields of the RTP packet in `buf` that the SFU rewrites for
/// a subscriber.
pub fn rewrite(buf: &mut [u8], payload_type: u8, sequence: u16, timestamp: u32, ssrc: u32) {
    buf[1] = (buf[1] & 0x80) | (payload_type & 0x7f);
    buf[2..4].copy_from_slice(&sequence.to_be_bytes());
    buf[4..8].copy_from_slice(&timestamp.to_be_bytes());
    buf[8..12].copy_from_slice(&ssrc.to_be_bytes());
}

/// Writes a subscriber's packet into `out`: `packet`'s fixed header rewritten (payload
/// type, sequence number, timestamp, SSRC; its CSRCs dropped), a one-byte header
/// extension with `extensions` (id, value; values of 1 to 16 bytes), and its payload.
/// Returns the length written, or `None` if `out` is too small.
pub fn write_forwarded(
    out: &mut [u8],
    packet: &[u8],
    header: &Header<'_>,
    rewritten: (u8, u16, u32, u32),
    extensions: &[(u8, &[u8])],
) -> Option<usize> {
    let payload = &packet[header.payload_offset..];
    let ext_len: usize = extensions.iter().map(|(_, v)| 1 + v.len()).sum();
    let ext_words = ext_len.div_ceil(4);
    let head = 12 + if ext_words > 0 { 4 + 4 * ext_words } else { 0 };
    let total = head + payload.len();
    if out.len() < total {
        return None;
    }
    out[..12].copy_from_slice(&packet[..12]);
    // Version 2, padding as it was, extension if any, no CSRCs.
    out[0] = (packet[0] & 0xe0 & !0x10) | if ext_words > 0 { 0x10 } else { 0 };
    let (pt, seq, ts, ssrc) = rewritten;
    rewrite(out, pt, seq, ts, ssrc);
    if ext_words > 0 {
        out[12..14].copy_from_slice(&0xbedeu16.to_be_bytes());
        out[14..16].copy_from_slice(&(ext_words as u16).to_be_bytes());
        let mut at = 16;
        for (id, v) in extensions {
            out[at] = (id << 4) | (v.len() as u8 - 1);
            out[at + 1..at + 1 + v.len()].copy_from_slice(v);
            at += 1 + v.len();
        }
        out[at..head].fill(0);
    }
    out[head..total].copy_from_slice(payload);
    Some(total)
}

/// Sequence numbers unwrapped to 64 bits, for ordering across the 16-bit wrap.
#[derive(Clone, Copy, Debug, Default)]
pub struct Unwrapper {
    last: Option<u64>,
}

impl Unwrapper {
    /// The extended value of `seq`, the closest to the last one seen.
    pub fn unwrap(&mut self, seq: u16) -> u64 {
        let ext = match self.last {
            None => u64::from(seq) + (1 << 16),
            Some(last) => {
                let base = last & !0xffff;
                let candidates = [
                    base.wrapping_sub(1 << 16) | u64::from(seq),
                    base | u64::from(seq),
                    (base + (1 << 16)) | u64::from(seq),
                ];
                *candidates
                    .iter()
                    .min_by_key(|c| c.abs_diff(last))
                    .expect("three candidates")
            }
        };
        if self.last.is_none_or(|l| ext > l) {
            self.last = Some(ext);
        }
        ext
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn packet(ext: Option<&[u8]>, payload: &[u8]) -> Vec<u8> {
        let mut p = vec![
            0x80,
            0x80 | 111,
            0x12,
            0x34,
            0,
            0,
            0x03,
            0xe8,
            0xde,
            0xad,
            0xbe,
            0xef,
        ];
        if let Some(e) = ext {
            p[0] |= 0x10;
            p.extend_from_slice(&0xbedeu16.to_be_bytes());
            p.extend_from_slice(&((e.len() / 4) as u16).to_be_bytes());
            p.extend_from_slice(e);
        }
        p.extend_from_slice(payload);
        p
    }

    #[test]
    fn fields_and_one_byte_extensions_are_read_in_place() {
        // id 1 (audio level, 1 byte), padding, id 3 (2 bytes), id 0 padding.
        let p = packet(
            Some(&[0x10, 0xaa, 0x00, 0x31, 0x01, 0x02, 0x00, 0x00]),
            b"opus",
        );
        let h = Header::parse(&p).unwrap();
        assert!(h.marker());
        assert_eq!(
            (h.payload_type(), h.sequence(), h.timestamp(), h.ssrc()),
            (111, 0x1234, 1000, 0xdeadbeef)
        );
        assert_eq!(&p[h.payload_offset..], b"opus");
        assert_eq!(h.extension(1), Some(&[0xaa][..]));
        assert_eq!(h.extension(3), Some(&[0x01, 0x02][..]));
        assert_eq!(h.extension(2), None);
        assert_eq!(h.extensions().count(), 2);
    }

    #[test]
    fn two_byte_extensions_and_garbage() {
        let mut p = packet(None, b"x");
        p[0] |= 0x10;
        p.splice(12..12, [0x10, 0x00, 0x00, 0x02, 5, 3, 1, 2, 3, 0, 0, 0]);
        let h = Header::parse(&p).unwrap();
        assert_eq!(h.extension(5), Some(&[1, 2, 3][..]));
        // An element longer than the extension ends the list, no panic.
        let bad = packet(Some(&[0x1f, 0xaa, 0, 0]), b"");
        let h = Header::parse(&bad).unwrap();
        assert_eq!(h.extensions().count(), 0);
        for cut in 0..16 {
            let _ = Header::parse(&p[..cut]);
        }
        assert!(Header::parse(&p[..14]).is_none());
        // Padding longer than the packet.
        let mut pad = packet(None, b"ab");
        pad[0] |= 0x20;
        *pad.last_mut().unwrap() = 200;
        assert!(Header::parse(&pad).is_none());
    }

    #[test]
    fn a_forwarded_packet_has_our_fields_our_extensions_and_the_same_payload() {
        let p = packet(Some(&[0x10, 0xaa, 0x00, 0x00]), b"payload bytes");
        let h = Header::parse(&p).unwrap();
        let mut out = [0u8; 1500];
        let n = write_forwarded(&mut out, &p, &h, (96, 7, 9000, 42), &[(3, &[1, 2])]).unwrap();
        let o = Header::parse(&out[..n]).unwrap();
        assert_eq!(
            (o.payload_type(), o.sequence(), o.timestamp(), o.ssrc()),
            (96, 7, 9000, 42)
        );
        assert!(o.marker(), "the marker stays");
        assert_eq!(o.extension(3), Some(&[1, 2][..]));
        assert_eq!(o.extension(1), None, "the publisher's are gone");
        assert_eq!(&out[o.payload_offset..n], b"payload bytes");
        let n = write_forwarded(&mut out, &p, &h, (96, 7, 9000, 42), &[]).unwrap();
        assert_eq!(n, 12 + 13);
        assert_eq!(out[0] & 0x10, 0, "no extension");
        assert!(write_forwarded(&mut out[..20], &p, &h, (96, 7, 9000, 42), &[]).is_none());
    }

    #[test]
    fn sequence_numbers_unwrap_across_the_wrap_and_reordering() {
        let mut u = Unwrapper::default();
        let a = u.unwrap(65534);
        assert_eq!(u.unwrap(65535), a + 1);
        assert_eq!(u.unwrap(1), a + 3);
        assert_eq!(u.unwrap(0), a + 2, "late, before the wrap");
        assert_eq!(u.unwrap(2), a + 4);
    }

    #[test]
    fn demultiplexing_by_first_bytes() {
        assert!(is_rtp_or_rtcp(&packet(None, b"")));
        let rr = [0x81, 201, 0, 7, 0, 0, 0, 1, 0, 0, 0, 0];
        assert!(is_rtp_or_rtcp(&rr) && is_rtcp(&rr));
        assert!(!is_rtcp(&packet(None, b"")));
        assert!(!is_rtp_or_rtcp(&[
            0x16, 0xfe, 0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0
        ]));
    }
}
