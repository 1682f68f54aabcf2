//! What the operator remembers about each meeting between reconciles, in memory only (a
//! new leader starts afresh, which costs at most one repeated Event and one reset
//! backoff): pods it created (for the replacement backoff) and the phase it last
//! announced. Entries go when their Meeting ends or is deleted.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use crate::api::MeetingPhase;

/// First and longest wait between two replacements of a failing SFU pod.
const REPLACE_BACKOFF_MIN: Duration = Duration::from_secs(1);
const REPLACE_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// One meeting's memory.
#[derive(Clone, Debug, Default)]
struct Remembered {
    /// SFU pods this operator created for it: how many were replacements, and when
    /// the last was created.
    creations: Option<(u32, Instant)>,
    /// The phase last announced with an Event.
    announced: Option<MeetingPhase>,
}

/// Every meeting's memory, by UID.
#[derive(Debug, Default)]
pub struct Memory(HashMap<String, Remembered>);

impl Memory {
    /// How long to wait before creating a replacement pod, or `None` to create it now.
    /// The first pod of a meeting is created at once; replacements back off
    /// exponentially from its last creation.
    pub fn replacement_wait(&self, uid: &str, now: Instant) -> Option<Duration> {
        let (replacements, last) = self.0.get(uid)?.creations?;
        let backoff = REPLACE_BACKOFF_MIN
            .saturating_mul(1 << replacements.min(6))
            .min(REPLACE_BACKOFF_MAX);
        backoff
            .checked_sub(now.saturating_duration_since(last))
            .filter(|d| !d.is_zero())
    }

    /// Notes a pod creation; returns how many replacements the meeting has had. A
    /// creation is a replacement when this operator created a pod for the meeting
    /// before, or when the meeting was running (its pod vanished, perhaps under a
    /// previous leader).
    pub fn created(&mut self, uid: &str, was_running: bool, now: Instant) -> u32 {
        let entry = self.0.entry(uid.to_owned()).or_default();
        let replacements = match entry.creations {
            Some((n, _)) => n + 1,
            None => u32::from(was_running),
        };
        entry.creations = Some((replacements, now));
        replacements
    }

    /// How often the meeting's pod was replaced.
    pub fn replacements(&self, uid: &str) -> u32 {
        self.0
            .get(uid)
            .and_then(|r| r.creations)
            .map_or(0, |(n, _)| n)
    }

    /// The phase last announced, if this operator announced one.
    pub fn announced(&self, uid: &str) -> Option<MeetingPhase> {
        self.0.get(uid)?.announced
    }

    /// Notes an announced phase.
    pub fn announce(&mut self, uid: &str, phase: MeetingPhase) {
        self.0.entry(uid.to_owned()).or_default().announced = Some(phase);
    }

    /// The meeting is over: nothing about it is needed any more.
    pub fn forget(&mut self, uid: &str) {
        self.0.remove(uid);
    }

    /// Forgets every meeting that is not in `live` (deleted ones).
    pub fn retain(&mut self, live: &HashSet<String>) {
        self.0.retain(|uid, _| live.contains(uid));
    }

    /// How many meetings are remembered.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether none is.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replacements_back_off_from_the_last_creation() {
        let mut m = Memory::default();
        let t0 = Instant::now();
        assert_eq!(m.replacement_wait("u", t0), None, "the first pod at once");
        assert_eq!(m.created("u", false, t0), 0);
        // The first replacement waits 1 s from the creation, the next 2 s, ...
        assert_eq!(m.replacement_wait("u", t0), Some(Duration::from_secs(1)));
        assert_eq!(m.replacement_wait("u", t0 + Duration::from_secs(1)), None);
        assert_eq!(m.created("u", true, t0 + Duration::from_secs(1)), 1);
        assert_eq!(
            m.replacement_wait("u", t0 + Duration::from_millis(1500)),
            Some(Duration::from_millis(1500))
        );
        for _ in 0..10 {
            m.created("u", true, t0);
        }
        assert_eq!(m.replacement_wait("u", t0), Some(REPLACE_BACKOFF_MAX));
        assert_eq!(m.replacements("u"), 11);
        // A pod created for a meeting that was running counts as a replacement.
        assert_eq!(m.created("v", true, t0), 1);
    }

    #[test]
    fn deleted_and_ended_meetings_are_forgotten() {
        let mut m = Memory::default();
        m.announce("a", MeetingPhase::Running);
        m.created("b", false, Instant::now());
        m.announce("c", MeetingPhase::Scheduled);
        assert_eq!(m.len(), 3);
        m.forget("a");
        assert_eq!(m.announced("a"), None);
        m.retain(&HashSet::from(["c".to_owned()]));
        assert_eq!(m.len(), 1);
        assert_eq!(m.replacements("b"), 0);
    }
}
