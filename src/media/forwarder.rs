//! One subscriber's copy of one publisher's video: which simulcast layer it gets, and
//! the rewriting that makes the layers it got one continuous stream (after LiveKit's
//! forwarder and RTP munger). Pure: [`Forwarder::decide`] says what to do with a
//! packet, given what the packet is; the room does the IO.
//!
//! A subscriber receives at most one layer of a publisher at a time. The room sets a
//! *target* (a layer, or none: paused); the forwarder keeps sending the *current*
//! layer until a keyframe of the target arrives, then switches there. Pausing takes
//! effect at once. On a switch the sequence numbers go on from the last one sent, the
//! RTP timestamp from the last one sent plus the time that passed, and VP8's picture ID
//! and TL0PICIDX from the last ones sent plus one, so the decoder sees a keyframe in
//! a stream with no gap.

use std::time::Instant;

use super::vp8::{self, Descriptor};

/// A layer index (0 is the lowest resolution).
pub type Layer = u8;

/// How packets of one stretch (one layer, between two switches) are rewritten.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rewrite {
    /// Outgoing extended sequence number minus incoming.
    seq_delta: u64,
    /// Added to incoming RTP timestamps, picture IDs (modulo `pid_modulus`) and
    /// TL0PICIDXs.
    ts_delta: u32,
    pid_delta: u16,
    pid_modulus: u16,
    tl0_delta: u8,
}

impl Default for Rewrite {
    fn default() -> Self {
        Self {
            seq_delta: 0,
            ts_delta: 0,
            pid_delta: 0,
            pid_modulus: 0x8000,
            tl0_delta: 0,
        }
    }
}

impl Rewrite {
    /// The subscriber's version of a packet with `ext_seq`, `timestamp` and VP8
    /// descriptor `vp8` over `payload`.
    pub fn apply(&self, ext_seq: u64, timestamp: u32, vp8: &Descriptor, payload: &[u8]) -> Munged {
        Munged {
            sequence: ext_seq.wrapping_add(self.seq_delta) as u16,
            timestamp: self.timestamp(timestamp),
            picture_id: vp8
                .read_picture_id(payload)
                .map(|id| id.wrapping_add(self.pid_delta) % self.pid_modulus),
            tl0_pic_idx: vp8
                .read_tl0_pic_idx(payload)
                .map(|i| i.wrapping_add(self.tl0_delta)),
            switched: false,
        }
    }

    /// The subscriber's RTP timestamp for a publisher's (sender reports need it too).
    pub fn timestamp(&self, timestamp: u32) -> u32 {
        timestamp.wrapping_add(self.ts_delta)
    }
}

/// Where a stretch of sent sequence numbers came from, to map NACKs back.
#[derive(Clone, Copy, Debug, Default)]
struct Segment {
    /// The first extended outgoing sequence number of the stretch.
    out_start: u64,
    layer: Layer,
    rewrite: Rewrite,
}

/// Stretches kept for NACKs (older ones are past the publisher's history anyway).
const SEGMENTS: usize = 4;

/// The rewrite of one packet for the subscriber.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Munged {
    /// The sequence number it gets.
    pub sequence: u16,
    /// The RTP timestamp it gets.
    pub timestamp: u32,
    /// The picture ID and TL0PICIDX to write into its VP8 descriptor (if it has them).
    pub picture_id: Option<u16>,
    pub tl0_pic_idx: Option<u8>,
    /// This packet switched the subscriber to its layer.
    pub switched: bool,
}

/// What the forwarder needs to know of an incoming packet.
#[derive(Clone, Copy, Debug)]
pub struct Incoming<'a> {
    /// Its layer.
    pub layer: Layer,
    /// Its extended sequence number in that layer.
    pub ext_seq: u64,
    /// Its RTP timestamp.
    pub timestamp: u32,
    /// Its payload and descriptor.
    pub payload: &'a [u8],
    pub vp8: Descriptor,
}

/// One subscriber's forwarding state for one published video track.
#[derive(Clone, Debug)]
pub struct Forwarder {
    target: Option<Layer>,
    current: Option<Layer>,
    /// The first incoming sequence number of the current layer sent: older packets of
    /// it (reordered across the switch) are not sent, they would reuse numbers.
    switch_ext: u64,
    segments: [Segment; SEGMENTS],
    segment_count: usize,
    /// Highest outgoing extended sequence number so far (none yet: `None`).
    highest_out: Option<u64>,
    /// Of the packet with the highest outgoing sequence number.
    last_ts: u32,
    last_pid: Option<u16>,
    last_tl0: Option<u8>,
    last_at: Option<Instant>,
    /// The first outgoing extended sequence number (random, as RFC 3550 asks).
    seq_base: u64,
    clock: u32,
    switches: u64,
}

impl Forwarder {
    /// A forwarder whose first outgoing sequence number is `first_seq`, for a track
    /// whose RTP clock runs at `clock` Hz; it starts paused.
    pub fn new(first_seq: u16, clock: u32) -> Self {
        Self {
            target: None,
            current: None,
            switch_ext: 0,
            segments: [Segment::default(); SEGMENTS],
            segment_count: 0,
            highest_out: None,
            last_ts: 0,
            last_pid: None,
            last_tl0: None,
            last_at: None,
            seq_base: (1 << 16) + u64::from(first_seq),
            clock,
            switches: 0,
        }
    }

    /// The layer it should receive (`None`: paused).
    pub fn set_target(&mut self, target: Option<Layer>) {
        self.target = target;
        if target.is_none() {
            self.current = None;
        }
    }

    /// The layer it should receive.
    pub fn target(&self) -> Option<Layer> {
        self.target
    }

    /// The layer it receives now.
    pub fn current(&self) -> Option<Layer> {
        self.current
    }

    /// `layer` starts again under a new SSRC (its numbering starts anew): if it is the
    /// one sent, the next keyframe of the target switches again, continuing the
    /// outgoing numbering.
    pub fn restart(&mut self, layer: Layer) {
        if self.current == Some(layer) {
            self.current = None;
        }
    }

    /// It waits for a keyframe of its target (the room asks the publisher for one).
    pub fn wants_keyframe(&self) -> bool {
        self.target.is_some() && self.target != self.current
    }

    /// How many times it switched layers (starting and resuming included).
    pub fn switches(&self) -> u64 {
        self.switches
    }

    /// What to do with a packet: `None` drops it (another layer, paused, or waiting
    /// for a keyframe), else how to rewrite it.
    pub fn decide(&mut self, now: Instant, p: &Incoming<'_>) -> Option<Munged> {
        let target = self.target?;
        let switched = if Some(p.layer) == self.current {
            if p.ext_seq < self.switch_ext {
                return None;
            }
            false
        } else if p.layer == target && p.vp8.keyframe {
            self.switch(now, p);
            true
        } else {
            return None;
        };
        let rewrite = self.segments[(self.segment_count - 1) % SEGMENTS].rewrite;
        let out_ext = p.ext_seq.wrapping_add(rewrite.seq_delta);
        let m = Munged {
            switched,
            ..rewrite.apply(p.ext_seq, p.timestamp, &p.vp8, p.payload)
        };
        if self.highest_out.is_none_or(|h| out_ext > h) {
            self.highest_out = Some(out_ext);
            self.last_ts = m.timestamp;
            self.last_at = Some(now);
            if m.picture_id.is_some() {
                self.last_pid = m.picture_id;
            }
            if m.tl0_pic_idx.is_some() {
                self.last_tl0 = m.tl0_pic_idx;
            }
        }
        Some(m)
    }

    /// The layer sent now and how it is rewritten.
    pub fn current_rewrite(&self) -> Option<(Layer, Rewrite)> {
        let layer = self.current?;
        let s = self.segments[(self.segment_count.checked_sub(1)?) % SEGMENTS];
        Some((layer, s.rewrite))
    }

    fn switch(&mut self, now: Instant, p: &Incoming<'_>) {
        self.current = Some(p.layer);
        self.switch_ext = p.ext_seq;
        self.switches += 1;
        let out_start = self.highest_out.map_or(self.seq_base, |h| h + 1);
        let mut rewrite = Rewrite {
            seq_delta: out_start.wrapping_sub(p.ext_seq),
            ..Rewrite::default()
        };
        // The timestamp goes on by the time that passed since the last packet sent
        // (at least one tick: a new frame).
        if let Some(at) = self.last_at {
            let elapsed = now.saturating_duration_since(at);
            let ticks = (elapsed.as_micros() as u64 * u64::from(self.clock) / 1_000_000).max(1);
            let want = self.last_ts.wrapping_add(ticks as u32);
            rewrite.ts_delta = want.wrapping_sub(p.timestamp);
        }
        if let Some(pid) = p.vp8.read_picture_id(p.payload) {
            let long = p.vp8.picture_id.is_some_and(|(_, l)| l);
            rewrite.pid_modulus = vp8::picture_id_modulus(long);
            if let Some(last) = self.last_pid {
                rewrite.pid_delta = last.wrapping_add(1).wrapping_sub(pid) % rewrite.pid_modulus;
            }
        }
        if let (Some(tl0), Some(last)) = (p.vp8.read_tl0_pic_idx(p.payload), self.last_tl0) {
            rewrite.tl0_delta = last.wrapping_add(1).wrapping_sub(tl0);
        }
        self.segments[self.segment_count % SEGMENTS] = Segment {
            out_start,
            layer: p.layer,
            rewrite,
        };
        self.segment_count += 1;
    }

    /// The layer, incoming sequence number and rewrite of an outgoing sequence number
    /// a subscriber asks for again (a NACK), if it was sent from a stretch still known.
    pub fn original(&self, out_seq: u16) -> Option<(Layer, u16, Rewrite)> {
        let highest = self.highest_out?;
        // The extended value closest to the highest sent.
        let base = highest & !0xffff;
        let ext = [base.wrapping_sub(1 << 16), base, base + (1 << 16)]
            .map(|b| b | u64::from(out_seq))
            .into_iter()
            .min_by_key(|c| c.abs_diff(highest))?;
        if ext > highest {
            return None;
        }
        let known = self.segment_count.min(SEGMENTS);
        (0..known)
            .map(|i| self.segments[(self.segment_count - 1 - i) % SEGMENTS])
            .find(|s| ext >= s.out_start)
            .map(|s| {
                (
                    s.layer,
                    ext.wrapping_sub(s.rewrite.seq_delta) as u16,
                    s.rewrite,
                )
            })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::media::vp8::{interframe_payload, keyframe_payload};

    struct Layered {
        seq: [u64; 3],
        ts: [u32; 3],
        pid: [u16; 3],
    }

    impl Layered {
        fn new() -> Self {
            // Each layer numbered differently, as a browser's are.
            Self {
                seq: [1000, 20_000, 65_530 + (1 << 16)],
                ts: [5, 1_000_000, u32::MAX - 3000],
                pid: [10, 2000, 32_760],
            }
        }

        /// One frame of `layer` (one packet), a keyframe or not.
        fn packet(&mut self, layer: usize, key: bool) -> (u64, u32, Vec<u8>) {
            self.seq[layer] += 1;
            self.ts[layer] = self.ts[layer].wrapping_add(3000);
            self.pid[layer] = (self.pid[layer] + 1) % 0x8000;
            let payload = if key {
                keyframe_payload(self.pid[layer], self.pid[layer] as u8, 320, 180, b"k")
            } else {
                interframe_payload(self.pid[layer], self.pid[layer] as u8, true, b"i")
            };
            (self.seq[layer], self.ts[layer], payload)
        }
    }

    fn offer(
        f: &mut Forwarder,
        now: Instant,
        layer: usize,
        p: &(u64, u32, Vec<u8>),
    ) -> Option<Munged> {
        f.decide(
            now,
            &Incoming {
                layer: layer as Layer,
                ext_seq: p.0,
                timestamp: p.1,
                payload: &p.2,
                vp8: Descriptor::parse(&p.2).unwrap(),
            },
        )
    }

    #[test]
    fn switches_only_at_a_keyframe_and_the_stream_stays_continuous() {
        let start = Instant::now();
        let mut f = Forwarder::new(100, 90_000);
        let mut src = Layered::new();
        f.set_target(Some(0));
        let mut sent = Vec::new();
        let mut now = start;
        // Until layer 0's keyframe nothing goes; then layer 0 only.
        for i in 0..40 {
            now += Duration::from_millis(33);
            for layer in 0..3 {
                let p = src.packet(layer, i == 5 || i == 30);
                if let Some(m) = offer(&mut f, now, layer, &p) {
                    assert_eq!(layer, f.current().unwrap() as usize);
                    sent.push((i, layer, m));
                }
            }
            if i == 20 {
                f.set_target(Some(2));
                assert!(f.wants_keyframe());
            }
        }
        assert_eq!(sent.first().unwrap().0, 5, "from the first keyframe");
        let layers: Vec<usize> = sent.iter().map(|s| s.1).collect();
        assert!(layers[..26 - 1].iter().all(|l| *l == 0), "{layers:?}");
        assert_eq!(
            sent.iter().find(|s| s.1 == 2).unwrap().0,
            30,
            "at layer 2's keyframe"
        );
        assert_eq!(f.switches(), 2);
        // One continuous stream: sequence numbers, picture IDs, TL0PICIDX each go up by
        // one per frame, timestamps go up.
        for w in sent.windows(2) {
            let (a, b) = (w[0].2, w[1].2);
            assert_eq!(b.sequence, a.sequence.wrapping_add(1), "{w:?}");
            assert_eq!(b.picture_id.unwrap(), (a.picture_id.unwrap() + 1) % 0x8000);
            assert_eq!(
                b.tl0_pic_idx.unwrap(),
                a.tl0_pic_idx.unwrap().wrapping_add(1)
            );
            let dt = b.timestamp.wrapping_sub(a.timestamp);
            assert!((1..10_000).contains(&dt), "timestamps go on: {dt}");
        }
        assert_eq!(sent.first().unwrap().2.sequence, 100);
    }

    #[test]
    fn a_layer_that_starts_again_is_switched_to_at_its_next_keyframe() {
        let now = Instant::now();
        let mut f = Forwarder::new(10, 90_000);
        let mut src = Layered::new();
        f.set_target(Some(1));
        let a = offer(&mut f, now, 1, &src.packet(1, true)).unwrap();
        // The layer comes back numbered far lower (a new SSRC).
        src.seq[1] = 5;
        f.restart(1);
        assert!(f.wants_keyframe());
        assert_eq!(offer(&mut f, now, 1, &src.packet(1, false)), None, "waits");
        let b = offer(&mut f, now, 1, &src.packet(1, true)).unwrap();
        assert_eq!(b.sequence, a.sequence + 1, "the numbering goes on");
        assert!(b.switched);
    }

    #[test]
    fn pausing_stops_at_once_and_resuming_waits_for_a_keyframe() {
        let mut now = Instant::now();
        let mut f = Forwarder::new(0, 90_000);
        let mut src = Layered::new();
        f.set_target(Some(1));
        let mut out = Vec::new();
        for i in 0..30 {
            now += Duration::from_millis(33);
            if i == 10 {
                f.set_target(None);
            }
            if i == 15 {
                f.set_target(Some(1));
            }
            let p = src.packet(1, i == 0 || i == 20);
            if let Some(m) = offer(&mut f, now, 1, &p) {
                out.push((i, m));
            }
        }
        let frames: Vec<i32> = out.iter().map(|o| o.0).collect();
        assert_eq!(
            frames,
            [(0..10).collect::<Vec<_>>(), (20..30).collect()].concat()
        );
        assert!(out[10].1.switched);
        assert_eq!(
            out[10].1.sequence,
            out[9].1.sequence + 1,
            "no gap the receiver would NACK"
        );
    }

    #[test]
    fn late_packets_from_before_a_switch_are_not_sent_and_nacks_map_back() {
        let now = Instant::now();
        let mut f = Forwarder::new(65_534, 90_000);
        let mut src = Layered::new();
        f.set_target(Some(0));
        let k = src.packet(0, true);
        let a = offer(&mut f, now, 0, &k).unwrap();
        let p1 = src.packet(0, false);
        let b = offer(&mut f, now, 0, &p1).unwrap();
        assert_eq!((a.sequence, b.sequence), (65_534, 65_535));
        f.set_target(Some(1));
        let k1 = src.packet(1, true);
        let c = offer(&mut f, now, 1, &k1).unwrap();
        assert_eq!(c.sequence, 0, "wraps");
        // Layer 0 after the switch: dropped; an older layer-1 packet too.
        assert_eq!(offer(&mut f, now, 0, &src.packet(0, false)), None);
        let old = (k1.0 - 1, k1.1, interframe_payload(1, 1, false, b""));
        assert_eq!(offer(&mut f, now, 1, &old), None);
        // NACKs: each outgoing number maps to its layer and incoming number.
        let first = |o: Option<(Layer, u16, Rewrite)>| o.map(|(l, s, _)| (l, s));
        assert_eq!(first(f.original(65_535)), Some((0, p1.0 as u16)));
        assert_eq!(first(f.original(65_534)), Some((0, k.0 as u16)));
        assert_eq!(first(f.original(0)), Some((1, k1.0 as u16)));
        assert_eq!(f.original(1), None, "not sent yet");
        // A retransmission is rewritten as the packet was the first time.
        let (_, _, r) = f.original(65_535).unwrap();
        let vp8 = Descriptor::parse(&p1.2).unwrap();
        assert_eq!(r.apply(p1.0, p1.1, &vp8, &p1.2), b);
    }
}
