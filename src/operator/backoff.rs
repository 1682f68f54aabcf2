//! Failed reconciles in a row, per object: how long to wait before the next try
//! (exponential, 1 s doubling to 5 min) and whether a failure is new (so its Warning
//! event is published once, not on every retry). In memory only: a new leader starts
//! afresh.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

/// First and longest wait before retrying a reconcile that failed.
const MIN: Duration = Duration::from_secs(1);
const MAX: Duration = Duration::from_secs(300);

/// One object's failures in a row and the failure last reported.
#[derive(Clone, Debug, Default)]
struct Streak {
    failures: u32,
    reported: Option<String>,
}

/// Every object's failure streak, by UID.
#[derive(Debug, Default)]
pub struct Failures(HashMap<String, Streak>);

impl Failures {
    /// The object `uid` failed (once more): how long to wait before the next try.
    pub fn failed(&mut self, uid: &str) -> Duration {
        let streak = self.0.entry(uid.to_owned()).or_default();
        streak.failures = streak.failures.saturating_add(1);
        MIN.saturating_mul(1 << (streak.failures - 1).min(16))
            .min(MAX)
    }

    /// Whether `message` is a failure of `uid` not reported in this streak yet (and
    /// notes it as reported).
    pub fn is_new(&mut self, uid: &str, message: &str) -> bool {
        let streak = self.0.entry(uid.to_owned()).or_default();
        if streak.reported.as_deref() == Some(message) {
            return false;
        }
        streak.reported = Some(message.to_owned());
        true
    }

    /// The object `uid` reconciled: its streak is over.
    pub fn succeeded(&mut self, uid: &str) {
        self.0.remove(uid);
    }

    /// Forgets every object that is not in `live` (deleted ones).
    pub fn retain(&mut self, live: &HashSet<String>) {
        self.0.retain(|uid, _| live.contains(uid));
    }

    /// How many objects are failing.
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
    fn retries_back_off_exponentially_and_each_failure_is_reported_once() {
        let mut f = Failures::default();
        let waits: Vec<u64> = (0..12).map(|_| f.failed("u").as_secs()).collect();
        assert_eq!(waits, [1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300, 300]);
        assert!(f.is_new("u", "range is full"));
        assert!(!f.is_new("u", "range is full"), "not on every retry");
        assert!(f.is_new("u", "another reason"));
        assert_eq!(f.failed("v"), MIN, "per object");
        f.succeeded("u");
        assert_eq!(f.failed("u"), MIN, "a new streak");
        assert!(
            f.is_new("u", "another reason"),
            "reported again in a new streak"
        );
        f.retain(&HashSet::from(["v".to_owned()]));
        assert_eq!(f.len(), 1);
    }
}
