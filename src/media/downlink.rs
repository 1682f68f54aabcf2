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
//!
//! A queue guard of our own caps GCC's figure. Measured through a real 2 Mbit/s `tc
//! tbf` link (tests/downlink.rs), the `rtc` crate's delay-based half never saw
//! overuse once the shaper's buffer stood full (a full buffer has no delay gradient)
//! and climbed to tens of Mbit/s, leaving only its loss-based half, which by design
//! holds between 2 and 10 % loss: the link ran full, with 130 ms of delay (the
//! shaper's 100 ms buffer full) and 1.1 % of the audio lost. The guard reads the same feedback for what GCC's gradient
//! misses, the standing queue itself (one-way delay above its minimum of the last
//! seconds, the least of one feedback's packets, so a receiver's scheduling hiccup
//! is not read as one): over [`QUEUE_HIGH`] it caps the estimate at 85 % of what arrives, below
//! [`QUEUE_LOW`] the cap grows again, by [`CAP_GROWTH`] a second up to the rate that
//! arrived when the queue stood, and by [`CAP_PROBE`] beyond it (the room's next
//! layer is a step of hundreds of kbit/s, so each probe past a known ceiling costs a
//! queue: rarely, then, but a link that got wider is still found).

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
/// A standing queue this long (the least delay in one feedback, over the minimum)
/// caps the estimate.
pub const QUEUE_HIGH: Duration = Duration::from_millis(50);
/// Below this the cap may grow.
pub const QUEUE_LOW: Duration = Duration::from_millis(15);
/// How fast the cap grows per second while the queue is short, below the last
/// ceiling and above it.
pub const CAP_GROWTH: f64 = 1.05;
/// See [`CAP_GROWTH`].
pub const CAP_PROBE: f64 = 1.02;
/// The cap, as a share of the rate that arrives, set when the queue stands.
const CAP_SHARE: f64 = 0.85;
/// How long the queue must show before the cap falls (feedback comes every 100 ms).
const STANDING_FOR: Duration = Duration::from_millis(50);
/// A feedback about fewer arrived packets says nothing about a queue.
const MIN_PACKETS: usize = 4;
/// Between two decreases (the first one's effect must be seen).
const DECREASE_EVERY: Duration = Duration::from_millis(300);
/// The one-way delay's minimum is taken over two buckets of this length (a path
/// that changes, or clocks that drift, are followed within twice this).
const BASE_BUCKET: Duration = Duration::from_secs(5);

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
    guard: QueueGuard,
}

/// Caps the estimate while a queue stands on the path (see the module's text).
#[derive(Debug)]
struct QueueGuard {
    /// The smallest one-way delay (arrival on the receiver's clock minus departure on
    /// ours, in µs: an unknown offset, but a constant one) of this bucket and the last.
    base: [i64; 2],
    bucket_start: Option<Instant>,
    /// The rate that arrives, smoothed, in bit/s.
    delivered: Option<f64>,
    cap: Option<f64>,
    /// Since when the feedback has shown a queue, without a break.
    queue_since: Option<Instant>,
    /// What arrived when the queue last stood.
    ceiling: f64,
    last_decrease: Option<Instant>,
    last_update: Option<Instant>,
}

impl QueueGuard {
    fn new() -> Self {
        Self {
            base: [i64::MAX; 2],
            bucket_start: None,
            delivered: None,
            cap: None,
            queue_since: None,
            ceiling: 0.0,
            last_decrease: None,
            last_update: None,
        }
    }

    /// One feedback's arrived packets: (one-way delay µs, arrival µs, size bytes).
    fn update(&mut self, now: Instant, arrived: impl Iterator<Item = (i64, i64, usize)>) {
        let (mut n, mut min) = (0usize, i64::MAX);
        let (mut first, mut last, mut bytes) = (i64::MAX, i64::MIN, 0usize);
        for (owd, at, size) in arrived {
            n += 1;
            min = min.min(owd);
            first = first.min(at);
            last = last.max(at);
            bytes += size;
        }
        if n < MIN_PACKETS {
            return;
        }
        if self
            .bucket_start
            .is_none_or(|s| now.saturating_duration_since(s) >= BASE_BUCKET)
        {
            self.base = [i64::MAX, self.base[0]];
            self.bucket_start = Some(now);
        }
        self.base[0] = self.base[0].min(min);
        let base = self.base[0].min(self.base[1]);
        // A standing queue delays every packet: the least delayed of this feedback's
        // tells it. A receiver's scheduling hiccup (a browser on a busy machine) delays
        // a few, which the mean would read as a queue.
        let queue_us = min - base;
        // What arrived over the span it arrived in (at least 20 ms, so one burst does
        // not read as a fast link).
        let span = (last - first).max(20_000) as f64 / 1e6;
        let sample = bytes as f64 * 8.0 / span;
        let delivered = match self.delivered {
            Some(d) => 0.7 * d + 0.3 * sample,
            None => sample,
        };
        self.delivered = Some(delivered);
        let elapsed = self.last_update.map_or(0.0, |t| {
            now.saturating_duration_since(t).as_secs_f64().min(1.0)
        });
        self.last_update = Some(now);
        let standing = queue_us > QUEUE_HIGH.as_micros() as i64;
        // A queue stands when it is there in two feedbacks in a row (a receiver
        // descheduled for one feedback's time is not a queue on the path).
        let since = if standing {
            *self.queue_since.get_or_insert(now)
        } else {
            self.queue_since = None;
            now
        };
        if standing {
            if now.saturating_duration_since(since) >= STANDING_FOR
                && self
                    .last_decrease
                    .is_none_or(|t| now.saturating_duration_since(t) >= DECREASE_EVERY)
            {
                self.cap = Some((delivered * CAP_SHARE).max(MIN_BPS));
                self.ceiling = delivered;
                self.last_decrease = Some(now);
            }
        } else if queue_us < QUEUE_LOW.as_micros() as i64
            && let Some(cap) = self.cap.as_mut()
        {
            let growth = if *cap < self.ceiling {
                CAP_GROWTH
            } else {
                CAP_PROBE
            };
            *cap = (*cap * growth.powf(elapsed)).min(MAX_BPS);
        }
    }
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
            guard: QueueGuard::new(),
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
        // The same reports, as (one-way delay, arrival, size) of what arrived, in µs.
        let epoch = self.epoch;
        self.guard.update(
            now,
            self.reports.iter().filter_map(|r| {
                let arrival = r.arrival?.as_micros() as i64;
                let departure = r.departure.saturating_duration_since(epoch).as_micros() as i64;
                Some((arrival - departure, arrival, r.size))
            }),
        );
        self.informed = true;
        self.last_feedback = Some(now);
        true
    }

    /// What the subscriber can receive, in bits per second (`None` while no feedback
    /// came: a client that sends none is not limited).
    pub fn estimate(&self) -> Option<u64> {
        self.informed.then(|| {
            let gcc = self.gcc.target_bitrate();
            self.guard.cap.map_or(gcc, |c| c.min(gcc)) as u64
        })
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
        assert!(e < 2_000_000, "{e}");
        assert!(e > 700_000, "{e}");
    }

    #[test]
    fn a_wide_link_keeps_the_estimate_up() {
        let start = Instant::now();
        let mut d = Downlink::new(start);
        let e = through_link(&mut d, start, 3_000_000, 100_000_000, 10);
        assert!(e > 3_000_000, "{e}");
    }

    /// One feedback: ten packets of 1,200 bytes over 90 ms (1.07 Mbit/s), every one
    /// delayed by `queue_ms` over the path's minimum, the first also by `spike_ms`.
    fn feed(g: &mut QueueGuard, now: Instant, queue_ms: i64, spike_ms: i64) {
        let packets = (0..10i64).map(|i| {
            let owd = 5_000 + queue_ms * 1000 + if i == 0 { spike_ms * 1000 } else { 0 };
            (owd, i * 10_000, 1200)
        });
        g.update(now, packets);
    }

    #[test]
    fn the_queue_guard_caps_a_standing_queue_not_a_hiccup_and_grows_back() {
        let start = Instant::now();
        let mut g = QueueGuard::new();
        let mut now = start;
        let mut step = |g: &mut QueueGuard, queue_ms, spike_ms| {
            now += Duration::from_millis(100);
            feed(g, now, queue_ms, spike_ms);
        };
        // An empty path for a while: the minimum is known, nothing is capped.
        for _ in 0..10 {
            step(&mut g, 0, 0);
        }
        assert_eq!(g.cap, None);
        // One packet held up 200 ms (a receiver descheduled): still nothing.
        step(&mut g, 0, 200);
        assert_eq!(g.cap, None, "a hiccup is no queue");
        // A queue of 80 ms in one feedback is not yet a standing one; in the next it is:
        // capped at 85 % of the 1.07 Mbit/s arriving.
        step(&mut g, 80, 0);
        assert_eq!(g.cap, None, "one feedback's queue");
        step(&mut g, 80, 0);
        let cap = g.cap.expect("capped");
        assert!((880_000.0..930_000.0).contains(&cap), "{cap}");
        // The queue drains: the cap grows back, 5 % a second up to the ceiling, then
        // 2 % beyond it.
        for _ in 0..10 {
            step(&mut g, 0, 0);
        }
        let after_1s = g.cap.unwrap();
        assert!(
            after_1s > cap * 1.04 && after_1s < cap * 1.06,
            "{cap} -> {after_1s}"
        );
        for _ in 0..100 {
            step(&mut g, 0, 0);
        }
        let later = g.cap.unwrap();
        assert!(later > g.ceiling, "past the ceiling in time: {later}");
        let before = later;
        for _ in 0..10 {
            step(&mut g, 0, 0);
        }
        let grown = g.cap.unwrap() / before;
        assert!(
            grown > 1.015 && grown < 1.025,
            "2 % a second past it: {grown}"
        );
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
