//! Transport-wide congestion control feedback
//! (draft-holmer-rmcat-transport-wide-cc-extensions-01), the receiving side: a
//! publisher's browser numbers every packet it sends to the SFU, the SFU notes when
//! each arrived and reports that back every [`INTERVAL`], and the browser's bandwidth
//! estimation decides how fast it may send.

use std::collections::VecDeque;
use std::time::Duration;

use super::rtcp::RTPFB;
use super::rtp::Unwrapper;

/// How often feedback is sent.
pub const INTERVAL: Duration = Duration::from_millis(100);
/// The most packets one feedback packet reports (more wait for the next).
const MAX_PER_FEEDBACK: usize = 1000;
/// The most arrivals kept (a sender that is never reported to cannot grow memory).
const MAX_KEPT: usize = 4096;

/// Arrivals of one peer's transport-wide numbered packets.
#[derive(Debug, Default)]
pub struct Recorder {
    seq: Unwrapper,
    /// (extended sequence number, arrival in µs), sorted by sequence number.
    arrivals: VecDeque<(u64, i64)>,
    /// The next sequence number to report from.
    next: Option<u64>,
    fb_count: u8,
}

impl Recorder {
    /// Notes the packet numbered `seq` arriving at `at_us` (µs since any fixed origin).
    pub fn record(&mut self, seq: u16, at_us: i64) {
        let s = self.seq.unwrap(seq);
        if self.next.is_some_and(|n| s < n) {
            // Already reported (a late duplicate or a reordering across a feedback).
            return;
        }
        // Keep sorted: almost always an append.
        let at = self.arrivals.partition_point(|(q, _)| *q < s);
        if self.arrivals.get(at).is_some_and(|(q, _)| *q == s) {
            return;
        }
        self.arrivals.insert(at, (s, at_us));
        if self.arrivals.len() > MAX_KEPT {
            self.arrivals.pop_front();
            self.next = self.arrivals.front().map(|(q, _)| *q);
        }
        if self.next.is_none() {
            self.next = Some(s);
        }
    }

    /// Appends a feedback packet from `sender` about `media` for what arrived since
    /// the last one; false if nothing did.
    pub fn feedback(&mut self, sender: u32, media: u32, out: &mut Vec<u8>) -> bool {
        let Some(base) = self.next else {
            return false;
        };
        if self.arrivals.is_empty() {
            return false;
        }
        // The packets to report: base up to the highest arrived, at most the cap.
        let mut reported = 0;
        let mut last = base;
        for (q, _) in &self.arrivals {
            if *q >= base + MAX_PER_FEEDBACK as u64 {
                break;
            }
            last = *q;
            reported += 1;
        }
        let count = (last - base + 1) as usize;
        let first_arrival = self.arrivals[0].1;
        // The reference time: 64 ms units, 24 bits; deltas follow in 250 µs units.
        let reference = first_arrival.div_euclid(64_000);
        let mut previous = reference * 64_000;
        let mut symbols: Vec<u8> = Vec::with_capacity(count);
        let mut deltas: Vec<u8> = Vec::with_capacity(count * 2);
        let mut arrived = self.arrivals.iter().take(reported).peekable();
        for s in base..=last {
            match arrived.peek() {
                Some((q, t)) if *q == s => {
                    let delta = (t - previous).div_euclid(250);
                    previous += delta * 250;
                    if (0..=255).contains(&delta) {
                        symbols.push(1);
                        deltas.push(delta as u8);
                    } else {
                        let d = delta.clamp(i64::from(i16::MIN), i64::from(i16::MAX)) as i16;
                        symbols.push(2);
                        deltas.extend_from_slice(&d.to_be_bytes());
                    }
                    arrived.next();
                }
                _ => symbols.push(0),
            }
        }
        let chunks = encode_chunks(&symbols);
        let body = 16 + 2 * chunks.len() + deltas.len();
        let padded = body.next_multiple_of(4);
        let start = out.len();
        out.push(0x80 | 15);
        out.push(RTPFB);
        out.extend_from_slice(&((padded / 4) as u16).to_be_bytes());
        out.extend_from_slice(&sender.to_be_bytes());
        out.extend_from_slice(&media.to_be_bytes());
        out.extend_from_slice(&(base as u16).to_be_bytes());
        out.extend_from_slice(&(count as u16).to_be_bytes());
        let r = (reference as u32 & 0x00ff_ffff).to_be_bytes();
        out.extend_from_slice(&r[1..]);
        out.push(self.fb_count);
        for c in chunks {
            out.extend_from_slice(&c.to_be_bytes());
        }
        out.extend_from_slice(&deltas);
        out.resize(start + 4 + padded, 0);
        if padded > body {
            // Padding bytes count themselves (RFC 3550 §6.4.1 style).
            out[start] |= 0x20;
            let last = out.len() - 1;
            out[last] = (padded - body) as u8;
        }
        self.fb_count = self.fb_count.wrapping_add(1);
        self.arrivals.drain(..reported);
        self.next = Some(last + 1);
        true
    }
}

/// Reads a transport-wide feedback packet (the whole RTCP packet, as
/// [`super::rtcp::Packet::TransportCc`] gives it) into `out`: per reported sequence
/// number, its arrival in µs on the receiver's clock, or `None` if it did not arrive.
/// `symbols` is a reused buffer for the packets' status symbols. Returns false (and
/// `out` holds what was read) if the packet is malformed.
pub fn parse_feedback(
    packet: &[u8],
    out: &mut Vec<(u16, Option<i64>)>,
    symbols: &mut Vec<u8>,
) -> bool {
    out.clear();
    symbols.clear();
    // Header (4), sender (4), media (4), base (2), count (2), reference (3), count (1).
    let Some(fixed) = packet.get(12..20) else {
        return false;
    };
    let base = u16::from_be_bytes([fixed[0], fixed[1]]);
    let count = usize::from(u16::from_be_bytes([fixed[2], fixed[3]]));
    let reference = i64::from(u32::from_be_bytes([0, fixed[4], fixed[5], fixed[6]]));
    let mut at = 20;
    // The status of each packet: 0 not received, 1 small delta, 2 large delta.
    while symbols.len() < count {
        let Some(c) = packet.get(at..at + 2) else {
            return false;
        };
        at += 2;
        let chunk = u16::from_be_bytes([c[0], c[1]]);
        if chunk & 0x8000 == 0 {
            let symbol = ((chunk >> 13) & 0x3) as u8;
            let run = usize::from(chunk & 0x1fff).min(count - symbols.len());
            symbols.extend(std::iter::repeat_n(symbol, run));
        } else if chunk & 0x4000 == 0 {
            for k in 0..14 {
                symbols.push(((chunk >> (13 - k)) & 1) as u8);
            }
        } else {
            for k in 0..7 {
                symbols.push(((chunk >> (12 - 2 * k)) & 0x3) as u8);
            }
        }
    }
    symbols.truncate(count);
    let mut t = reference * 64_000;
    let mut seq = base;
    for &s in symbols.iter() {
        let arrival = match s {
            1 => {
                let Some(d) = packet.get(at) else {
                    return false;
                };
                at += 1;
                t += i64::from(*d) * 250;
                Some(t)
            }
            2 | 3 => {
                let Some(d) = packet.get(at..at + 2) else {
                    return false;
                };
                at += 2;
                t += i64::from(i16::from_be_bytes([d[0], d[1]])) * 250;
                Some(t)
            }
            _ => None,
        };
        out.push((seq, arrival));
        seq = seq.wrapping_add(1);
    }
    true
}

/// Packs status symbols into chunks: run-length chunks for runs of 14 or more of one
/// symbol, two-bit status vectors (seven symbols) otherwise.
fn encode_chunks(symbols: &[u8]) -> Vec<u16> {
    let mut chunks = Vec::new();
    let mut i = 0;
    while i < symbols.len() {
        let run = symbols[i..]
            .iter()
            .take_while(|s| **s == symbols[i])
            .count();
        if run >= 14 {
            let run = run.min(0x1fff);
            chunks.push((u16::from(symbols[i]) << 13) | run as u16);
            i += run;
            continue;
        }
        let mut chunk: u16 = 0xc000; // status vector, two-bit symbols
        for k in 0..7 {
            let s = symbols.get(i + k).copied().unwrap_or(0);
            chunk |= u16::from(s) << (12 - 2 * k);
        }
        chunks.push(chunk);
        i += 7;
    }
    chunks
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::rtcp::transport_feedbacks::transport_layer_cc::{SymbolTypeTcc, TransportLayerCc};
    use rtc::shared::marshal::Unmarshal;

    fn parse(bytes: &[u8]) -> TransportLayerCc {
        let mut b = bytes;
        TransportLayerCc::unmarshal(&mut b).expect("the rtc crate reads our feedback")
    }

    /// Arrival times per sequence number, as the `rtc` crate's parser decodes them.
    fn decoded(fb: &TransportLayerCc) -> Vec<(u16, Option<i64>)> {
        let mut out = Vec::new();
        let mut t = i64::from(fb.reference_time) * 64_000;
        let mut deltas = fb.recv_deltas.iter();
        let mut seq = fb.base_sequence_number;
        let mut statuses = Vec::new();
        for c in &fb.packet_chunks {
            use rtc::rtcp::transport_feedbacks::transport_layer_cc::PacketStatusChunk::*;
            match c {
                RunLengthChunk(r) => statuses.extend(std::iter::repeat_n(
                    r.packet_status_symbol,
                    r.run_length as usize,
                )),
                StatusVectorChunk(v) => statuses.extend(v.symbol_list.iter().copied()),
            }
        }
        for s in statuses.into_iter().take(fb.packet_status_count as usize) {
            if s == SymbolTypeTcc::PacketNotReceived {
                out.push((seq, None));
            } else {
                t += deltas.next().unwrap().delta;
                out.push((seq, Some(t)));
            }
            seq = seq.wrapping_add(1);
        }
        out
    }

    #[test]
    fn our_parser_reads_what_we_write_and_refuses_cut_packets() {
        let mut r = Recorder::default();
        let t0 = 5_000_000_i64;
        let mut expect = Vec::new();
        for i in 0..40u16 {
            if i % 7 == 3 {
                expect.push((i, None));
                continue;
            }
            let at = t0 + i64::from(i) * 1_000 + if i == 20 { 90_000 } else { 0 };
            r.record(i, at);
            expect.push((i, Some(at)));
        }
        let mut out = Vec::new();
        assert!(r.feedback(1, 2, &mut out));
        let mut got = Vec::new();
        assert!(parse_feedback(&out, &mut got, &mut Vec::new()));
        // Arrivals are quantised to 250 µs from the 64 ms reference.
        assert_eq!(got.len(), expect.len());
        for ((s, a), (es, ea)) in got.iter().zip(&expect) {
            assert_eq!(s, es);
            match (a, ea) {
                (Some(a), Some(ea)) => assert!((a - ea).abs() < 250, "{s}: {a} {ea}"),
                (None, None) => {}
                _ => panic!("{s}: {a:?} {ea:?}"),
            }
        }
        for cut in [0, 8, 19, 21, out.len() - 6] {
            let mut v = Vec::new();
            let _ = parse_feedback(&out[..cut], &mut v, &mut Vec::new());
        }
        assert!(!parse_feedback(&out[..19], &mut got, &mut Vec::new()));
    }

    #[test]
    fn feedback_reports_every_arrival_and_every_gap() {
        let mut r = Recorder::default();
        let t0 = 1_000_000_i64;
        // 65534, 65535, (0 lost), 1 after 2 ms, 2 late by 100 ms, 3 out of order
        // before 2.
        r.record(65534, t0);
        r.record(65535, t0 + 250);
        r.record(1, t0 + 2_000);
        r.record(3, t0 + 3_000);
        r.record(2, t0 + 100_000);
        let mut out = Vec::new();
        assert!(r.feedback(1, 2, &mut out));
        assert_eq!(out.len() % 4, 0);
        let fb = parse(&out);
        assert_eq!((fb.sender_ssrc, fb.media_ssrc, fb.fb_pkt_count), (1, 2, 0));
        assert_eq!(fb.base_sequence_number, 65534);
        assert_eq!(fb.packet_status_count, 6);
        let d = decoded(&fb);
        let at = |i: usize| d[i].1.unwrap();
        assert_eq!(d[2], (0, None));
        assert_eq!(at(1) - at(0), 250);
        assert_eq!(at(3) - at(0), 2_000);
        assert_eq!(at(4) - at(0), 99_000 + 1_000, "a large delta");
        assert_eq!(at(5) - at(0), 3_000, "a negative delta");
        // Nothing new: no feedback; then the next one starts after the last.
        assert!(!r.feedback(1, 2, &mut Vec::new()));
        r.record(4, t0 + 200_000);
        let mut out = Vec::new();
        assert!(r.feedback(1, 2, &mut out));
        let fb = parse(&out);
        assert_eq!(
            (
                fb.base_sequence_number,
                fb.packet_status_count,
                fb.fb_pkt_count
            ),
            (4, 1, 1)
        );
    }

    #[test]
    fn long_runs_and_many_packets_fit() {
        let mut r = Recorder::default();
        // 40 arrivals, 30 lost, 1500 arrivals 1 ms apart.
        for i in 0..40u16 {
            r.record(i, i64::from(i) * 1000);
        }
        for i in 70..1570u16 {
            r.record(i, i64::from(i) * 1000);
        }
        let mut out = Vec::new();
        assert!(r.feedback(9, 9, &mut out));
        let fb = parse(&out);
        let d = decoded(&fb);
        assert_eq!(d.len(), 1000, "capped");
        assert!(d[40..70].iter().all(|(_, t)| t.is_none()));
        assert!(
            d[..40]
                .iter()
                .chain(&d[70..])
                .all(|(s, t)| t == &Some(i64::from(*s) * 1000))
        );
        let mut out = Vec::new();
        assert!(r.feedback(9, 9, &mut out));
        let rest = decoded(&parse(&out));
        assert_eq!(rest.first().unwrap().0, 1000);
        assert_eq!(rest.last().unwrap().0, 1569);
    }

    #[test]
    fn a_sender_never_reported_to_keeps_bounded_memory() {
        let mut r = Recorder::default();
        for i in 0..20_000u32 {
            r.record(i as u16, i64::from(i));
        }
        assert!(r.arrivals.len() <= MAX_KEPT);
    }
}
