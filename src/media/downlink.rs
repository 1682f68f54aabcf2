//! How much one subscriber can receive: the room numbers every packet it sends that
//! subscriber (the transport-wide sequence number header extension), notes when each
//! left, and feeds the subscriber's transport-wide feedback (when each arrived, or
//! that it did not) to a Google Congestion Control estimator (the `rtc` crate's, which
//! is sans-IO: reports and instants in, a bitrate out). The room then chooses the
//! subscriber's video layers so that they fit.
//!
//! Why transport-wide feedback and a sender-side estimate rather than REMB: every
//! current browser sends transport-wide feedback, REMB is the older receiver-side
//! scheme that Chrome keeps only for compatibility, and with the estimate in the room
//! the same rule works for the load generator's participants and any future client.
//!
//! The estimate starts high ([`INITIAL_BPS`]) and comes down at the first sign of
//! queueing or loss (GCC decreases multiplicatively, within a second or two), because a
//! room has no probing: starting low would give every newcomer the lowest layers for
//! half a minute while the estimate crept up.

use std::time::{Duration, Instant};

use rtc::interceptor::{BandwidthEstimator, Gcc, PacketReport};
use rtc::rtcp::transport_feedbacks::cc_feedback_report::Ecn;

use super::twcc;

/// Where the estimate starts, in bits per second.
pub const INITIAL_BPS: f64 = 8_000_000.0;
/// The estimate's floor and ceiling.
const MIN_BPS: f64 = 150_000.0;
const MAX_BPS: f64 = 50_000_000.0;
/// Packets remembered for the feedback to refer to (about a second of a class of 30
/// at full rate; feedback comes every 100 ms).
const SENT: usize = 4096;

/// One subscriber's downlink.
pub struct Downlink {
    epoch: Instant,
    next_seq: u16,
    /// By transport-wide sequence number modulo [`SENT`]: the number, when it left (the
    /// low 32 bits of µs after `epoch`: feedback comes within a second, so the rest is
    /// taken from the time it comes), its size (0: nothing sent). Eight bytes each, so
    /// a participant's cost 32 KiB.
    sent: Box<[(u16, u32, u16)]>,
    reported: u64,
    gcc: Gcc,
    /// Reused buffers.
    parsed: Vec<(u16, Option<i64>)>,
    symbols: Vec<u8>,
    reports: Vec<PacketReport>,
    /// Feedback arrived at all (until then there is no estimate).
    informed: bool,
    last_feedback: Option<Instant>,
}

impl std::fmt::Debug for Downlink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Downlink")
            .field("estimate", &self.estimate())
            .finish()
    }
}

impl Downlink {
    /// A downlink whose estimate starts at [`INITIAL_BPS`]; times are kept relative to
    /// `epoch`.
    pub fn new(epoch: Instant) -> Self {
        Self {
            epoch,
            next_seq: 1,
            sent: vec![(0, 0, 0); SENT].into_boxed_slice(),
            reported: 0,
            gcc: Gcc::new(INITIAL_BPS, MIN_BPS, MAX_BPS),
            parsed: Vec::new(),
            symbols: Vec::new(),
            reports: Vec::new(),
            informed: false,
            last_feedback: None,
        }
    }

    /// The transport-wide number for a packet of `size` bytes leaving now.
    pub fn stamp(&mut self, now: Instant, size: usize) -> u16 {
        let size = size.max(1);
        let seq = self.next_seq;
        self.next_seq = seq.wrapping_add(1);
        let at = now.saturating_duration_since(self.epoch).as_micros() as u32;
        self.sent[usize::from(seq) % SENT] = (seq, at, size.min(usize::from(u16::MAX)) as u16);
        seq
    }

    /// The subscriber's feedback (a whole transport-wide feedback RTCP packet).
    pub fn on_feedback(&mut self, now: Instant, packet: &[u8]) -> bool {
        if !twcc::parse_feedback(packet, &mut self.parsed, &mut self.symbols) {
            return false;
        }
        self.reports.clear();
        let now_us = now.saturating_duration_since(self.epoch).as_micros() as u64;
        for &(seq, arrival) in &self.parsed {
            let (s, at, size) = self.sent[usize::from(seq) % SENT];
            if s != seq || size == 0 {
                continue;
            }
            let ago = u64::from((now_us as u32).wrapping_sub(at));
            let departure = self.epoch + Duration::from_micros(now_us.saturating_sub(ago));
            self.reported += 1;
            self.reports.push(PacketReport {
                ssrc: 0,
                id: self.reported,
                rtp_sequence_number: 0,
                is_twcc: true,
                twcc_sequence_number: seq,
                size: usize::from(size),
                arrived: arrival.is_some(),
                departure,
                arrival: arrival.map(|us| Duration::from_micros(us.max(0) as u64)),
                ecn: Ecn::NotEct,
            });
        }
        if self.reports.is_empty() {
            return true;
        }
        self.gcc.on_reports(now, &self.reports);
        self.informed = true;
        self.last_feedback = Some(now);
        true
    }

    /// What the subscriber can receive, in bits per second (`None` while no feedback
    /// came: a client that sends none is not limited).
    pub fn estimate(&self) -> Option<u64> {
        self.informed.then(|| self.gcc.target_bitrate() as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feedback as a receiver behind a link of `link_bps` would give it: each packet
    /// arrives when the link has carried the ones before it; what would wait more
    /// than 100 ms in its queue is dropped (as `tc tbf ... latency 100ms` does).
    fn through_link(
        d: &mut Downlink,
        start: Instant,
        send_bps: u64,
        link_bps: u64,
        secs: u64,
    ) -> u64 {
        let size = 1200usize;
        // The room sends what is wanted, within the estimate.
        let rate = |d: &Downlink| send_bps.min(d.estimate().unwrap_or(send_bps));
        let mut per_packet = Duration::from_nanos(size as u64 * 8 * 1_000_000_000 / rate(d));
        let service = Duration::from_nanos(size as u64 * 8 * 1_000_000_000 / link_bps);
        let mut rec = twcc::Recorder::default();
        let mut link_free = start;
        let mut now = start;
        let mut next_feedback = start + Duration::from_millis(100);
        let end = start + Duration::from_secs(secs);
        while now < end {
            let seq = d.stamp(now, size);
            if link_free.saturating_duration_since(now) < Duration::from_millis(100) {
                link_free = link_free.max(now) + service;
                rec.record(
                    seq,
                    link_free.duration_since(start).as_micros() as i64 + 1_000_000,
                );
            }
            now += per_packet;
            if now >= next_feedback {
                next_feedback += Duration::from_millis(100);
                let mut fb = Vec::new();
                if rec.feedback(1, 2, &mut fb) {
                    assert!(d.on_feedback(now, &fb));
                }
                per_packet = Duration::from_nanos(size as u64 * 8 * 1_000_000_000 / rate(d));
            }
        }
        d.estimate().unwrap()
    }

    #[test]
    fn a_narrow_link_brings_the_estimate_down_to_about_its_rate() {
        let start = Instant::now();
        let mut d = Downlink::new(start);
        assert_eq!(d.estimate(), None, "no feedback, no limit");
        // Wanting 4 Mbit/s through 2 Mbit/s: the queue grows and overflows, the
        // estimate falls to what the link carries and stays about there.
        let e = through_link(&mut d, start, 4_000_000, 2_000_000, 20);
        assert!(e < 2_400_000, "{e}");
        assert!(e > 700_000, "{e}");
    }

    #[test]
    fn a_wide_link_keeps_the_estimate_up() {
        let start = Instant::now();
        let mut d = Downlink::new(start);
        let e = through_link(&mut d, start, 3_000_000, 100_000_000, 10);
        assert!(e > 3_000_000, "{e}");
    }

    #[test]
    fn feedback_about_unknown_packets_or_garbage_changes_nothing() {
        let now = Instant::now();
        let mut d = Downlink::new(now);
        assert!(!d.on_feedback(now, &[0x8f, 205, 0, 1]));
        let mut rec = twcc::Recorder::default();
        rec.record(4000, 10);
        let mut fb = Vec::new();
        assert!(rec.feedback(1, 2, &mut fb));
        assert!(d.on_feedback(now, &fb));
        assert_eq!(d.estimate(), None);
    }
}
