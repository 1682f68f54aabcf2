//! Who is speaking, from the audio levels publishers put in their packets (RFC 6464),
//! with hysteresis so the speaker view does not flicker. Pure: levels and the time go
//! in, a change of speaker comes out.
//!
//! Every [`INTERVAL`] each publisher's loudness is the mean of its packets' levels in
//! that interval (silence when none came). The loudest over the last [`SMOOTHING`]
//! intervals is the candidate; the candidate becomes the speaker once it has been the
//! candidate for [`HOLD`] without a break and is louder than [`FLOOR`]. A cough or a
//! door (a 200 ms blip) does not make anyone the speaker.

use std::time::{Duration, Instant};

/// How often loudness is taken.
pub const INTERVAL: Duration = Duration::from_millis(100);
/// Intervals averaged.
const SMOOTHING: usize = 3;
/// How long the candidate must stay the loudest to become the speaker.
pub const HOLD: Duration = Duration::from_millis(1000);
/// Loudness (127 minus −dBov) below which nobody is speaking: quieter than −60 dBov.
const FLOOR: u32 = 127 - 60;

/// One publisher's recent loudness.
#[derive(Clone, Debug, Default)]
struct Voice {
    sum: u32,
    count: u32,
    recent: [u32; SMOOTHING],
    at: usize,
}

impl Voice {
    fn loudness(&self) -> u32 {
        self.recent.iter().sum::<u32>() / SMOOTHING as u32
    }
}

/// The active speaker of a room, keyed by participant id.
#[derive(Debug, Default)]
pub struct Detector {
    voices: Vec<(u32, Voice)>,
    speaker: Option<u32>,
    candidate: Option<(u32, Instant)>,
    next: Option<Instant>,
}

impl Detector {
    /// A packet of `who` said its level was `dbov` (0 loudest, 127 silence; the
    /// extension's low seven bits).
    pub fn note(&mut self, who: u32, dbov: u8) {
        let loud = 127 - u32::from(dbov.min(127));
        match self.voices.iter_mut().find(|(w, _)| *w == who) {
            Some((_, v)) => {
                v.sum += loud;
                v.count += 1;
            }
            None => self.voices.push((
                who,
                Voice {
                    sum: loud,
                    count: 1,
                    ..Voice::default()
                },
            )),
        }
    }

    /// `who` left.
    pub fn forget(&mut self, who: u32) {
        self.voices.retain(|(w, _)| *w != who);
        if self.candidate.is_some_and(|(c, _)| c == who) {
            self.candidate = None;
        }
        if self.speaker == Some(who) {
            self.speaker = None;
        }
    }

    /// The speaker now.
    pub fn speaker(&self) -> Option<u32> {
        self.speaker
    }

    /// Takes the interval's loudness if it is time; returns the new speaker when it
    /// changed.
    pub fn tick(&mut self, now: Instant) -> Option<u32> {
        let next = *self.next.get_or_insert(now + INTERVAL);
        if now < next {
            return None;
        }
        self.next = Some(now + INTERVAL);
        for (_, v) in &mut self.voices {
            v.recent[v.at % SMOOTHING] = v.sum.checked_div(v.count).unwrap_or(0);
            v.at += 1;
            v.sum = 0;
            v.count = 0;
        }
        let loudest = self
            .voices
            .iter()
            .map(|(w, v)| (*w, v.loudness()))
            .filter(|(_, l)| *l >= FLOOR)
            .max_by_key(|(w, l)| (*l, std::cmp::Reverse(*w)))
            .map(|(w, _)| w);
        let Some(loudest) = loudest else {
            self.candidate = None;
            return None;
        };
        if Some(loudest) == self.speaker {
            self.candidate = None;
            return None;
        }
        match self.candidate {
            Some((c, since)) if c == loudest => {
                if now.saturating_duration_since(since) >= HOLD {
                    self.speaker = Some(loudest);
                    self.candidate = None;
                    return Some(loudest);
                }
            }
            _ => self.candidate = Some((loudest, now)),
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `ms` milliseconds of 50 packets a second from participants 1, 2 and 3 at
    /// the levels `level(who, t)` gives; returns the changes of speaker and when.
    fn run(
        d: &mut Detector,
        start: Instant,
        from_ms: u64,
        ms: u64,
        level: impl Fn(u32, u64) -> u8,
    ) -> Vec<(u64, u32)> {
        let mut changes = Vec::new();
        for t in (from_ms..from_ms + ms).step_by(20) {
            for who in 1..=3 {
                d.note(who, level(who, t));
            }
            if let Some(s) = d.tick(start + Duration::from_millis(t)) {
                changes.push((t, s));
            }
        }
        changes
    }

    #[test]
    fn a_voice_louder_for_a_second_becomes_the_speaker_a_blip_does_not() {
        let start = Instant::now();
        let mut d = Detector::default();
        // Participant 1 talks (−20 dBov), the others are quiet (−80).
        let changes = run(&mut d, start, 0, 3000, |w, _| if w == 1 { 20 } else { 80 });
        assert_eq!(changes.len(), 1);
        assert_eq!(changes[0].1, 1);
        assert!(changes[0].0 <= 1500, "{changes:?}");
        // Participant 2 coughs for 200 ms, louder than 1: nothing changes.
        let changes = run(&mut d, start, 3000, 2000, |w, t| match w {
            1 => 20,
            2 if (3500..3700).contains(&t) => 5,
            _ => 80,
        });
        assert_eq!(changes, []);
        assert_eq!(d.speaker(), Some(1));
        // Participant 2 takes over for good: after about a second it is the speaker.
        let changes = run(&mut d, start, 5000, 3000, |w, _| match w {
            1 => 80,
            2 => 15,
            _ => 80,
        });
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].1, 2);
        let after = changes[0].0 - 5000;
        assert!((900..=1500).contains(&after), "{after} ms");
    }

    #[test]
    fn silence_makes_nobody_the_speaker_and_leavers_are_forgotten() {
        let start = Instant::now();
        let mut d = Detector::default();
        assert_eq!(run(&mut d, start, 0, 3000, |_, _| 127), []);
        assert_eq!(d.speaker(), None);
        run(
            &mut d,
            start,
            3000,
            2000,
            |w, _| if w == 3 { 10 } else { 127 },
        );
        assert_eq!(d.speaker(), Some(3));
        d.forget(3);
        assert_eq!(d.speaker(), None);
    }
}
