//! RTCP (RFC 3550, RFC 4585, RFC 5104): the packets an SFU reads from its peers and
//! the ones it writes to them. Reading walks a compound packet in place; writing
//! appends to a caller's buffer. The transport-wide congestion control feedback is
//! recognised here and left to its own module.

/// Sender report.
pub const SR: u8 = 200;
/// Receiver report.
pub const RR: u8 = 201;
/// Source description.
pub const SDES: u8 = 202;
/// Goodbye.
pub const BYE: u8 = 203;
/// Transport-layer feedback (NACK: FMT 1; transport-wide CC: FMT 15).
pub const RTPFB: u8 = 205;
/// Payload-specific feedback (PLI: FMT 1; FIR: FMT 4; REMB: FMT 15).
pub const PSFB: u8 = 206;

/// One report block of an SR or RR: what the reporter received of `ssrc`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReportBlock {
    /// The stream reported on.
    pub ssrc: u32,
    /// Fraction of packets lost since the last report, out of 256.
    pub fraction_lost: u8,
    /// Packets lost in all (24 bits, signed).
    pub lost: i32,
    /// Extended highest sequence number received.
    pub highest: u32,
    /// Interarrival jitter, in timestamp units.
    pub jitter: u32,
    /// The middle 32 bits of the NTP time of the last SR received from `ssrc`.
    pub last_sr: u32,
    /// Delay since that SR, in units of 1/65536 s.
    pub delay_since_last_sr: u32,
}

impl ReportBlock {
    fn parse(b: &[u8]) -> Self {
        let u = |i: usize| u32::from_be_bytes([b[i], b[i + 1], b[i + 2], b[i + 3]]);
        let lost = u32::from_be_bytes([0, b[5], b[6], b[7]]);
        Self {
            ssrc: u(0),
            fraction_lost: b[4],
            // Sign-extend 24 bits.
            lost: ((lost << 8) as i32) >> 8,
            highest: u(8),
            jitter: u(12),
            last_sr: u(16),
            delay_since_last_sr: u(20),
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        let lost = (self.lost.clamp(-(1 << 23), (1 << 23) - 1) as u32) & 0x00ff_ffff;
        out.push(self.fraction_lost);
        out.extend_from_slice(&lost.to_be_bytes()[1..]);
        out.extend_from_slice(&self.highest.to_be_bytes());
        out.extend_from_slice(&self.jitter.to_be_bytes());
        out.extend_from_slice(&self.last_sr.to_be_bytes());
        out.extend_from_slice(&self.delay_since_last_sr.to_be_bytes());
    }
}

/// A sender report's sender info.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SenderInfo {
    /// The sender's SSRC.
    pub ssrc: u32,
    /// NTP time of the report (64 bits: seconds since 1900 and fraction).
    pub ntp: u64,
    /// The RTP timestamp that corresponds to `ntp`.
    pub rtp_time: u32,
    /// Packets sent.
    pub packets: u32,
    /// Payload octets sent.
    pub octets: u32,
}

/// One packet of a compound RTCP packet, as the SFU cares about it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Packet<'a> {
    /// A sender report: its info and its report blocks (raw, see [`Packet::reports`]).
    SenderReport(SenderInfo, &'a [u8]),
    /// A receiver report from `reporter`: its report blocks (raw).
    ReceiverReport {
        /// Who reports.
        reporter: u32,
        /// 24-byte blocks.
        blocks: &'a [u8],
    },
    /// Generic NACK for `media`: (packet id, bitmask of the following 16) pairs, raw.
    Nack {
        /// The stream the lost packets belong to.
        media: u32,
        /// 4-byte FCI entries.
        entries: &'a [u8],
    },
    /// Picture loss indication for `media`.
    Pli {
        /// The stream that needs a keyframe.
        media: u32,
    },
    /// Full intra request: the streams named in its entries, raw.
    Fir {
        /// 8-byte FCI entries (SSRC, sequence number, reserved).
        entries: &'a [u8],
    },
    /// Receiver estimated maximum bitrate (REMB), in bits per second.
    Remb {
        /// The estimate.
        bitrate: u64,
    },
    /// Transport-wide congestion control feedback (the whole packet, for its parser).
    TransportCc(&'a [u8]),
    /// Anything else (SDES, BYE, APP, unknown feedback).
    Other(u8),
}

impl<'a> Packet<'a> {
    /// The report blocks of an SR or RR.
    pub fn reports(&self) -> impl Iterator<Item = ReportBlock> + 'a {
        let blocks: &'a [u8] = match *self {
            Packet::SenderReport(_, b) => b,
            Packet::ReceiverReport { blocks, .. } => blocks,
            _ => &[],
        };
        blocks.chunks_exact(24).map(ReportBlock::parse)
    }

    /// The lost packets a NACK names.
    pub fn nacked(&self) -> impl Iterator<Item = u16> + 'a {
        let entries: &'a [u8] = match *self {
            Packet::Nack { entries, .. } => entries,
            _ => &[],
        };
        entries.chunks_exact(4).flat_map(|e| {
            let pid = u16::from_be_bytes([e[0], e[1]]);
            let blp = u16::from_be_bytes([e[2], e[3]]);
            (0..17u16)
                .filter(move |&i| i == 0 || blp & (1 << (i - 1)) != 0)
                .map(move |i| pid.wrapping_add(i))
        })
    }

    /// The streams a FIR asks keyframes of.
    pub fn fir_ssrcs(&self) -> impl Iterator<Item = u32> + 'a {
        let entries: &'a [u8] = match *self {
            Packet::Fir { entries } => entries,
            _ => &[],
        };
        entries
            .chunks_exact(8)
            .map(|e| u32::from_be_bytes([e[0], e[1], e[2], e[3]]))
    }
}

/// Walks a compound RTCP packet; stops at the first malformed part.
pub fn packets(compound: &[u8]) -> Packets<'_> {
    Packets { rest: compound }
}

/// The packets of a compound RTCP packet.
pub struct Packets<'a> {
    rest: &'a [u8],
}

impl<'a> Iterator for Packets<'a> {
    type Item = Packet<'a>;

    fn next(&mut self) -> Option<Packet<'a>> {
        let r = self.rest;
        if r.len() < 4 || r[0] >> 6 != 2 {
            self.rest = &[];
            return None;
        }
        let count = r[0] & 0x1f;
        let pt = r[1];
        let len = 4 * (usize::from(u16::from_be_bytes([r[2], r[3]])) + 1);
        if len > r.len() {
            self.rest = &[];
            return None;
        }
        let mut body = &r[4..len];
        if r[0] & 0x20 != 0 {
            // Padding at the end of this packet.
            let pad = usize::from(*body.last().unwrap_or(&0));
            body = &body[..body.len().saturating_sub(pad)];
        }
        self.rest = &r[len..];
        let u = |b: &[u8], i: usize| -> Option<u32> {
            Some(u32::from_be_bytes(b.get(i..i + 4)?.try_into().ok()?))
        };
        let blocks = |b: &'a [u8], at: usize| -> &'a [u8] {
            let n = (usize::from(count) * 24).min(b.len().saturating_sub(at) / 24 * 24);
            &b[at..at + n]
        };
        Some(match pt {
            SR if body.len() >= 24 => Packet::SenderReport(
                SenderInfo {
                    ssrc: u(body, 0)?,
                    ntp: (u64::from(u(body, 4)?) << 32) | u64::from(u(body, 8)?),
                    rtp_time: u(body, 12)?,
                    packets: u(body, 16)?,
                    octets: u(body, 20)?,
                },
                blocks(body, 24),
            ),
            RR if body.len() >= 4 => Packet::ReceiverReport {
                reporter: u(body, 0)?,
                blocks: blocks(body, 4),
            },
            RTPFB if count == 1 && body.len() >= 8 => Packet::Nack {
                media: u(body, 4)?,
                entries: &body[8..],
            },
            RTPFB if count == 15 => Packet::TransportCc(&r[..len]),
            PSFB if count == 1 && body.len() >= 8 => Packet::Pli { media: u(body, 4)? },
            PSFB if count == 4 && body.len() >= 8 => Packet::Fir {
                entries: &body[8..],
            },
            PSFB if count == 15 && body.len() >= 16 && &body[8..12] == b"REMB" => {
                let exp = u32::from(body[13] >> 2);
                let mantissa = (u64::from(body[13] & 0x3) << 16)
                    | (u64::from(body[14]) << 8)
                    | u64::from(body[15]);
                Packet::Remb {
                    bitrate: mantissa.checked_shl(exp).unwrap_or(u64::MAX),
                }
            }
            other => Packet::Other(other),
        })
    }
}

/// Appends an RTCP header for a packet of `words` 32-bit words after the header.
fn header(out: &mut Vec<u8>, count: u8, pt: u8, words: usize) {
    out.push(0x80 | (count & 0x1f));
    out.push(pt);
    out.extend_from_slice(&(words as u16).to_be_bytes());
}

/// Appends a receiver report from `reporter` with up to 31 `blocks`.
pub fn write_rr(out: &mut Vec<u8>, reporter: u32, blocks: &[ReportBlock]) {
    let blocks = &blocks[..blocks.len().min(31)];
    header(out, blocks.len() as u8, RR, 1 + 6 * blocks.len());
    out.extend_from_slice(&reporter.to_be_bytes());
    for b in blocks {
        b.write(out);
    }
}

/// Appends a sender report without report blocks.
pub fn write_sr(out: &mut Vec<u8>, info: &SenderInfo) {
    header(out, 0, SR, 6);
    out.extend_from_slice(&info.ssrc.to_be_bytes());
    out.extend_from_slice(&info.ntp.to_be_bytes());
    out.extend_from_slice(&info.rtp_time.to_be_bytes());
    out.extend_from_slice(&info.packets.to_be_bytes());
    out.extend_from_slice(&info.octets.to_be_bytes());
}

/// Appends a picture loss indication for `media`.
pub fn write_pli(out: &mut Vec<u8>, sender: u32, media: u32) {
    header(out, 1, PSFB, 2);
    out.extend_from_slice(&sender.to_be_bytes());
    out.extend_from_slice(&media.to_be_bytes());
}

/// Appends a generic NACK for the sequence numbers `lost` of `media` (sorted or not;
/// packed into (PID, BLP) entries).
pub fn write_nack(out: &mut Vec<u8>, sender: u32, media: u32, lost: &[u16]) {
    let mut entries: Vec<(u16, u16)> = Vec::new();
    for &seq in lost {
        match entries.last_mut() {
            Some((pid, blp)) if seq.wrapping_sub(*pid).wrapping_sub(1) < 16 && seq != *pid => {
                *blp |= 1 << seq.wrapping_sub(*pid).wrapping_sub(1);
            }
            _ => entries.push((seq, 0)),
        }
    }
    header(out, 1, RTPFB, 2 + entries.len());
    out.extend_from_slice(&sender.to_be_bytes());
    out.extend_from_slice(&media.to_be_bytes());
    for (pid, blp) in entries {
        out.extend_from_slice(&pid.to_be_bytes());
        out.extend_from_slice(&blp.to_be_bytes());
    }
}

/// The middle 32 bits of an NTP timestamp (for LSR / DLSR).
pub fn ntp_middle(ntp: u64) -> u32 {
    (ntp >> 16) as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn what_is_written_reads_back() {
        let mut out = Vec::new();
        let block = ReportBlock {
            ssrc: 7,
            fraction_lost: 12,
            lost: -3,
            highest: 70_000,
            jitter: 9,
            last_sr: 0x1234_5678,
            delay_since_last_sr: 65536,
        };
        write_rr(&mut out, 99, &[block]);
        let info = SenderInfo {
            ssrc: 5,
            ntp: 0xdead_beef_0000_0001,
            rtp_time: 90_000,
            packets: 10,
            octets: 12_000,
        };
        write_sr(&mut out, &info);
        write_pli(&mut out, 99, 5);
        write_nack(&mut out, 99, 5, &[100, 101, 116, 117, 65535, 2]);
        let all: Vec<Packet<'_>> = packets(&out).collect();
        assert_eq!(all.len(), 4);
        let Packet::ReceiverReport { reporter, .. } = all[0] else {
            panic!("{:?}", all[0])
        };
        assert_eq!(reporter, 99);
        assert_eq!(all[0].reports().collect::<Vec<_>>(), [block]);
        assert!(matches!(all[1], Packet::SenderReport(i, _) if i == info));
        assert_eq!(all[2], Packet::Pli { media: 5 });
        let mut lost: Vec<u16> = all[3].nacked().collect();
        lost.sort_unstable();
        assert_eq!(lost, [2, 100, 101, 116, 117, 65535]);
    }

    /// A REMB as draft-alvestrand-rmcat-remb lays it out, and a FIR (RFC 5104).
    #[test]
    fn remb_and_fir_from_the_wire() {
        let remb = [
            0x8f, 0xce, 0x00, 0x05, 0x00, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, b'R', b'E',
            b'M', b'B', 0x01, 0x1a, 0xc0, 0x00, 0x12, 0x34, 0x56, 0x78,
        ];
        let p: Vec<_> = packets(&remb).collect();
        // exponent 6, mantissa 0x2c000: 180224 << 6
        assert_eq!(
            p,
            [Packet::Remb {
                bitrate: 0x2_c000 << 6
            }]
        );
        let fir = [
            0x84, 0xce, 0x00, 0x04, 0, 0, 0, 1, 0, 0, 0, 0, 0xca, 0xfe, 0, 1, 3, 0, 0, 0,
        ];
        let p: Vec<_> = packets(&fir).collect();
        assert_eq!(p[0].fir_ssrcs().collect::<Vec<_>>(), [0xcafe_0001]);
    }

    #[test]
    fn truncated_and_garbage_compounds_end_quietly() {
        let mut out = Vec::new();
        write_rr(&mut out, 1, &[]);
        write_pli(&mut out, 1, 2);
        for cut in 0..out.len() {
            let _ = packets(&out[..cut]).count();
        }
        assert_eq!(packets(&out[..6]).count(), 0);
        assert_eq!(packets(&[0xff; 40]).count(), 0);
        // A length that claims more than there is.
        assert_eq!(packets(&[0x80, 201, 0xff, 0xff, 0, 0, 0, 1]).count(), 0);
        // An RR whose count claims more blocks than it has reads the ones there are.
        let lying = [0x9f, 201, 0, 1, 0, 0, 0, 1];
        let p: Vec<_> = packets(&lying).collect();
        assert_eq!(p[0].reports().count(), 0);
    }
}
