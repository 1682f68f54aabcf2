//! When a meeting runs: a pure function of its schedule, the clock and the timing
//! settings, shared by the operator (when its SFU pod exists) and standalone mode (when
//! its in-process room exists).

use jiff::{SignedDuration, Timestamp};

use crate::api::meeting::{End, Schedule};

/// What should happen to a meeting right now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Plan {
    /// Too early: nothing runs yet. Look again at `wake_at` (start minus warm-up).
    Wait {
        /// When the meeting starts.
        starts_at: Timestamp,
        /// When its SFU pod is to be created.
        wake_at: Timestamp,
    },
    /// The meeting's SFU should run until `ends_at`.
    Run {
        /// When the meeting starts (may be slightly ahead during warm-up).
        starts_at: Timestamp,
        /// When the meeting ends.
        ends_at: Timestamp,
    },
    /// Over: the meeting's SFU should be gone.
    End {
        /// When it ended.
        ended_at: Timestamp,
    },
}

/// The settings the plan depends on.
#[derive(Clone, Copy, Debug)]
pub struct Timing {
    /// How long before the start the SFU is started.
    pub warm_up: SignedDuration,
    /// The length of a meeting with neither endsAt nor duration.
    pub default_length: SignedDuration,
}

/// The plan for a meeting with `schedule`, created at `created` (its start when it has
/// no `startsAt`, so the answer does not change across restarts), at `now`.
pub fn plan(schedule: &Schedule, created: Timestamp, now: Timestamp, timing: Timing) -> Plan {
    let starts_at = schedule.starts_at.unwrap_or(created);
    let ends_at = match schedule.end {
        End::At(t) => t,
        End::After(d) => starts_at.saturating_add(d).unwrap_or(Timestamp::MAX),
        End::Default => starts_at
            .saturating_add(timing.default_length)
            .unwrap_or(Timestamp::MAX),
    };
    if now >= ends_at {
        return Plan::End { ended_at: ends_at };
    }
    let wake_at = starts_at
        .saturating_sub(timing.warm_up)
        .unwrap_or(Timestamp::MIN);
    if now < wake_at {
        Plan::Wait { starts_at, wake_at }
    } else {
        Plan::Run { starts_at, ends_at }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const TIMING: Timing = Timing {
        warm_up: SignedDuration::from_secs(60),
        default_length: SignedDuration::from_hours(8),
    };

    fn sched(starts_at: Option<&str>, end: End) -> Schedule {
        Schedule {
            starts_at: starts_at.map(t),
            end,
        }
    }

    #[test]
    fn a_meeting_without_start_runs_from_creation_for_the_default_length() {
        let s = sched(None, End::Default);
        let created = t("2026-11-26T10:00:00Z");
        assert_eq!(
            plan(&s, created, t("2026-11-26T10:00:01Z"), TIMING),
            Plan::Run {
                starts_at: created,
                ends_at: t("2026-11-26T18:00:00Z")
            }
        );
        assert_eq!(
            plan(&s, created, t("2026-11-26T18:00:00Z"), TIMING),
            Plan::End {
                ended_at: t("2026-11-26T18:00:00Z")
            }
        );
    }

    #[test]
    fn a_scheduled_meeting_waits_until_the_warm_up_begins() {
        let s = sched(
            Some("2026-11-26T12:00:00Z"),
            End::After(SignedDuration::from_mins(90)),
        );
        let created = t("2026-11-26T09:00:00Z");
        assert_eq!(
            plan(&s, created, t("2026-11-26T11:58:59Z"), TIMING),
            Plan::Wait {
                starts_at: t("2026-11-26T12:00:00Z"),
                wake_at: t("2026-11-26T11:59:00Z")
            }
        );
        assert_eq!(
            plan(&s, created, t("2026-11-26T11:59:00Z"), TIMING),
            Plan::Run {
                starts_at: t("2026-11-26T12:00:00Z"),
                ends_at: t("2026-11-26T13:30:00Z")
            }
        );
    }

    #[test]
    fn ends_at_wins_and_can_be_moved() {
        let created = t("2026-11-26T09:00:00Z");
        let now = t("2026-11-26T10:30:00Z");
        let short = sched(None, End::At(t("2026-11-26T10:00:00Z")));
        assert!(matches!(
            plan(&short, created, now, TIMING),
            Plan::End { .. }
        ));
        // Extending endsAt brings an ended meeting back to running.
        let longer = sched(None, End::At(t("2026-11-26T11:00:00Z")));
        assert!(matches!(
            plan(&longer, created, now, TIMING),
            Plan::Run { .. }
        ));
    }

    #[test]
    fn a_meeting_whose_end_passed_before_it_was_seen_is_simply_over() {
        let s = sched(
            Some("2020-01-01T00:00:00Z"),
            End::After(SignedDuration::from_hours(1)),
        );
        assert_eq!(
            plan(
                &s,
                t("2026-01-01T00:00:00Z"),
                t("2026-11-26T00:00:00Z"),
                TIMING
            ),
            Plan::End {
                ended_at: t("2020-01-01T01:00:00Z")
            }
        );
    }
}
