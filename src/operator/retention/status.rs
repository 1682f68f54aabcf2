//! A RetentionPolicy's status from its holds: pure, so every rule has a test.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::holds::Holds;
use crate::api::retention_policy::{HoldStatus, RetentionPolicyStatus};

/// Condition: every hold annotation parses.
pub const HOLDS_VALID: &str = "HoldsValid";

/// The operator's part of the status (the pruner writes `lastRun` itself).
pub fn compute(
    holds: &Holds,
    previous: Option<&RetentionPolicyStatus>,
    cron_job: &str,
    generation: Option<i64>,
    now: Timestamp,
) -> RetentionPolicyStatus {
    // A hold keeps the time it was first seen while its id and window stay the same.
    let first_seen = |id: &str, window: Option<&str>| {
        previous
            .and_then(|p| {
                p.holds
                    .iter()
                    .find(|h| h.id == id && h.window.as_deref() == window)
            })
            .and_then(|h| h.first_seen.clone())
            .unwrap_or(Time(now))
    };
    let mut list = Vec::new();
    if let Some(reason) = &holds.all {
        list.push(HoldStatus {
            id: "all".to_owned(),
            window: None,
            reason: Some(reason.clone()).filter(|r| !r.is_empty()),
            first_seen: Some(first_seen("all", None)),
        });
    }
    for w in &holds.windows {
        list.push(HoldStatus {
            id: w.id.clone(),
            window: Some(w.interval.clone()),
            reason: w.reason.clone(),
            first_seen: Some(first_seen(&w.id, Some(&w.interval))),
        });
    }
    for bad in &holds.invalid {
        let id = bad
            .key
            .trim_start_matches(crate::api::holds::HOLD_PREFIX)
            .to_owned();
        list.push(HoldStatus {
            first_seen: Some(first_seen(&id, None)),
            id,
            window: None,
            reason: Some(format!("invalid, so it holds everything: {}", bad.reason)),
        });
    }
    let (status, reason, message) = if holds.invalid.is_empty() {
        (
            "True",
            "AllHoldsParse",
            format!("{} hold(s) in force", list.len()),
        )
    } else {
        let what: Vec<String> = holds
            .invalid
            .iter()
            .map(|i| format!("{}: {}", i.key, i.reason))
            .collect();
        (
            "False",
            "InvalidHold",
            format!(
                "nothing is deleted while a hold cannot be read; fix or remove {}",
                what.join("; ")
            ),
        )
    };
    let last_transition_time = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == HOLDS_VALID))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(now));
    RetentionPolicyStatus {
        cron_job: Some(cron_job.to_owned()),
        hold_count: Some(list.len() as u32),
        holds: list,
        last_run: None,
        last_success: None,
        conditions: vec![Condition {
            type_: HOLDS_VALID.to_owned(),
            status: status.to_owned(),
            reason: reason.to_owned(),
            message,
            observed_generation: generation,
            last_transition_time,
        }],
        observed_generation: generation,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn holds(pairs: &[(&str, &str)]) -> Holds {
        Holds::from_pairs(pairs)
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    #[test]
    fn holds_are_listed_with_window_reason_and_first_sighting() {
        let h = holds(&[
            ("raum.dev/hold", "DDoS"),
            (
                "hold.raum.dev/incident-42",
                "2026-11-01/2026-11-03; ticket SEC-42",
            ),
        ]);
        let st = compute(
            &h,
            None,
            "raum-prune-access-log",
            Some(1),
            t("2026-11-26T10:00:00Z"),
        );
        assert_eq!(st.cron_job.as_deref(), Some("raum-prune-access-log"));
        assert_eq!(st.hold_count, Some(2));
        assert_eq!(st.holds[0].id, "all");
        assert_eq!(st.holds[0].reason.as_deref(), Some("DDoS"));
        assert_eq!(st.holds[1].window.as_deref(), Some("2026-11-01/2026-11-03"));
        assert_eq!(st.holds[1].reason.as_deref(), Some("ticket SEC-42"));
        assert_eq!(st.conditions[0].status, "True");
        // Seen again later: the first sighting stays.
        let again = compute(
            &h,
            Some(&st),
            "raum-prune-access-log",
            Some(1),
            t("2026-11-27T10:00:00Z"),
        );
        assert_eq!(
            again.holds[1].first_seen,
            Some(Time(t("2026-11-26T10:00:00Z")))
        );
        assert_eq!(
            again.conditions[0].last_transition_time,
            Time(t("2026-11-26T10:00:00Z"))
        );
        // A changed window is a new hold.
        let moved = holds(&[("hold.raum.dev/incident-42", "2026-11-01/2026-11-05")]);
        let st3 = compute(
            &moved,
            Some(&again),
            "x",
            Some(1),
            t("2026-11-28T10:00:00Z"),
        );
        assert_eq!(
            st3.holds[0].first_seen,
            Some(Time(t("2026-11-28T10:00:00Z")))
        );
    }

    #[test]
    fn an_invalid_hold_sets_holds_valid_false_with_the_reason() {
        let h = holds(&[("hold.raum.dev/oops", "next tuesday")]);
        let st = compute(&h, None, "x", Some(2), t("2026-11-26T10:00:00Z"));
        let c = &st.conditions[0];
        assert_eq!(
            (c.type_.as_str(), c.status.as_str(), c.reason.as_str()),
            ("HoldsValid", "False", "InvalidHold")
        );
        assert!(
            c.message.contains("hold.raum.dev/oops") && c.message.contains("not an interval"),
            "{}",
            c.message
        );
        assert!(
            st.holds[0]
                .reason
                .as_ref()
                .unwrap()
                .contains("holds everything")
        );
        assert_eq!(st.observed_generation, Some(2));
    }

    #[test]
    fn no_holds_no_list() {
        let st = compute(
            &Holds::default(),
            None,
            "x",
            None,
            t("2026-11-26T10:00:00Z"),
        );
        assert!(st.holds.is_empty());
        assert_eq!(st.hold_count, Some(0));
        assert_eq!(st.conditions[0].status, "True");
    }
}
