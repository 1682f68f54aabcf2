//! Holds: annotations on a RetentionPolicy that keep access-log entries past maxAge,
//! as evidence after an attack, until compliance staff remove them.
//!
//! - `raum.dev/hold: "<reason>"` holds everything while present.
//! - `hold.raum.dev/<id>: "<start>/<end>[; <reason>]"` holds the entries in that ISO
//!   8601 interval. Each end is an RFC 3339 instant (any offset) or a date; a date as
//!   start means the start of that UTC day, as end the end of that UTC day; `..`
//!   leaves that end open. Both ends are inclusive.
//!
//! A hold that cannot be parsed holds everything and is reported: in doubt, nothing
//! is deleted.

use std::collections::BTreeMap;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};

/// The annotation that holds everything.
pub const HOLD_ALL: &str = "raum.dev/hold";
/// The prefix of windowed holds: `hold.raum.dev/<id>`.
pub const HOLD_PREFIX: &str = "hold.raum.dev/";

/// One windowed hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// The part of the annotation key after `hold.raum.dev/`.
    pub id: String,
    /// First held instant; `None` is open.
    pub start: Option<Timestamp>,
    /// Last held instant (inclusive); `None` is open.
    pub end: Option<Timestamp>,
    /// The interval as written.
    pub interval: String,
    /// The reason given after `;`, if any.
    pub reason: Option<String>,
}

impl Window {
    /// Whether the window holds instant `t`.
    pub fn covers(&self, t: Timestamp) -> bool {
        self.start.is_none_or(|s| s <= t) && self.end.is_none_or(|e| t <= e)
    }

    /// Whether the window holds any instant of `[from, to)`.
    pub fn overlaps(&self, from: Timestamp, to: Timestamp) -> bool {
        self.start.is_none_or(|s| s < to) && self.end.is_none_or(|e| e >= from)
    }

    /// Whether the window holds every instant of `[from, to)`.
    pub fn contains(&self, from: Timestamp, to: Timestamp) -> bool {
        self.start.is_none_or(|s| s <= from)
            && self
                .end
                .is_none_or(|e| e >= to - SignedDuration::from_nanos(1))
    }
}

/// A hold annotation that does not parse.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Invalid {
    /// The annotation key.
    pub key: String,
    /// What is wrong, in words.
    pub reason: String,
}

/// All holds in force on a policy.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Holds {
    /// `raum.dev/hold` is present, with this reason.
    pub all: Option<String>,
    /// The windowed holds, by id.
    pub windows: Vec<Window>,
    /// Holds that do not parse; any of them holds everything.
    pub invalid: Vec<Invalid>,
}

impl Holds {
    /// The holds of annotations given as `(key, value)` pairs (for tests).
    pub fn from_pairs(pairs: &[(&str, &str)]) -> Self {
        Self::from_annotations(
            &pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// Reads the holds from a policy's annotations (other annotations are ignored).
    pub fn from_annotations(annotations: &BTreeMap<String, String>) -> Self {
        let mut holds = Holds::default();
        for (key, value) in annotations {
            if key == HOLD_ALL {
                holds.all = Some(value.trim().to_owned());
            } else if let Some(id) = key.strip_prefix(HOLD_PREFIX) {
                match parse_window(id, value) {
                    Ok(w) => holds.windows.push(w),
                    Err(reason) => holds.invalid.push(Invalid {
                        key: key.clone(),
                        reason,
                    }),
                }
            }
        }
        holds
    }

    /// Whether everything is held: `raum.dev/hold`, or a hold that does not parse.
    pub fn everything(&self) -> bool {
        self.all.is_some() || !self.invalid.is_empty()
    }

    /// Whether an entry at `t` is held.
    pub fn covers(&self, t: Timestamp) -> bool {
        self.everything() || self.windows.iter().any(|w| w.covers(t))
    }

    /// Whether some entry in `[from, to)` may be held.
    pub fn overlaps(&self, from: Timestamp, to: Timestamp) -> bool {
        self.everything() || self.windows.iter().any(|w| w.overlaps(from, to))
    }

    /// Whether every entry in `[from, to)` is held.
    pub fn contain(&self, from: Timestamp, to: Timestamp) -> bool {
        self.everything() || self.windows.iter().any(|w| w.contains(from, to))
    }
}

fn parse_window(id: &str, value: &str) -> Result<Window, String> {
    if id.is_empty() {
        return Err("the hold has no id after hold.raum.dev/".into());
    }
    let (interval, reason) = match value.split_once(';') {
        Some((i, r)) => (
            i.trim(),
            Some(r.trim()).filter(|r| !r.is_empty()).map(str::to_owned),
        ),
        None => (value.trim(), None),
    };
    let Some((start, end)) = interval.split_once('/') else {
        return Err(format!(
            "{interval:?} is not an interval: write <start>/<end>, e.g. 2026-11-01/2026-11-03 or 2026-11-01T08:00:00Z/.."
        ));
    };
    let start = parse_end(start.trim(), Side::Start)?;
    let end = parse_end(end.trim(), Side::End)?;
    if let (Some(s), Some(e)) = (start, end)
        && s > e
    {
        return Err(format!("the interval {interval:?} ends before it starts"));
    }
    Ok(Window {
        id: id.to_owned(),
        start,
        end,
        interval: interval.to_owned(),
        reason,
    })
}

#[derive(Clone, Copy)]
enum Side {
    Start,
    End,
}

fn parse_end(s: &str, side: Side) -> Result<Option<Timestamp>, String> {
    if s == ".." {
        return Ok(None);
    }
    if s.is_empty() {
        return Err("an end of the interval is empty: write a date, an RFC 3339 time or ..".into());
    }
    if s.len() == 10 {
        let date: Date = s
            .parse()
            .map_err(|_| format!("{s:?} is not a date (YYYY-MM-DD)"))?;
        let start = date
            .to_zoned(jiff::tz::TimeZone::UTC)
            .map_err(|e| format!("{s:?}: {e}"))?
            .timestamp();
        return Ok(Some(match side {
            Side::Start => start,
            // The end of that UTC day, inclusive: the last nanosecond before the next.
            Side::End => start + SignedDuration::from_hours(24) - SignedDuration::from_nanos(1),
        }));
    }
    // RFC 3339 requires an offset ("Z" or "+01:00"); jiff's Timestamp parser insists.
    s.parse::<Timestamp>().map(Some).map_err(|_| {
        format!("{s:?} is neither a date (YYYY-MM-DD) nor an RFC 3339 time with offset")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn holds(pairs: &[(&str, &str)]) -> Holds {
        Holds::from_pairs(pairs)
    }

    #[test]
    fn hold_all_with_any_reason() {
        for reason in ["", "DDoS 2026-11-02", "ticket SEC-42; more; text"] {
            let h = holds(&[(HOLD_ALL, reason)]);
            assert!(h.everything());
            assert_eq!(h.all.as_deref(), Some(reason.trim()));
            assert!(h.covers(t("1999-01-01T00:00:00Z")));
        }
    }

    #[test]
    fn dates_hold_whole_utc_days_inclusive() {
        let h = holds(&[(
            "hold.raum.dev/incident-42",
            "2026-11-01/2026-11-03; DDoS on 2 Nov",
        )]);
        assert!(!h.everything());
        let w = &h.windows[0];
        assert_eq!(w.id, "incident-42");
        assert_eq!(w.reason.as_deref(), Some("DDoS on 2 Nov"));
        assert_eq!(w.interval, "2026-11-01/2026-11-03");
        assert!(!h.covers(t("2026-10-31T23:59:59.999Z")));
        assert!(h.covers(t("2026-11-01T00:00:00Z")));
        assert!(h.covers(t("2026-11-03T23:59:59.999999999Z")));
        assert!(!h.covers(t("2026-11-04T00:00:00Z")));
    }

    #[test]
    fn instants_with_offsets_and_open_ends() {
        let h = holds(&[
            (
                "hold.raum.dev/a",
                "2026-11-01T08:00:00+01:00/2026-11-01T09:00:00Z",
            ),
            ("hold.raum.dev/b", "../2026-01-01"),
            ("hold.raum.dev/c", "2026-12-24T18:00:00Z/.."),
        ]);
        assert!(h.invalid.is_empty(), "{:?}", h.invalid);
        assert!(!h.covers(t("2026-11-01T06:59:59Z")));
        assert!(h.covers(t("2026-11-01T07:00:00Z")), "+01:00 is 07:00Z");
        assert!(h.covers(t("2026-11-01T09:00:00Z")), "end inclusive");
        assert!(!h.covers(t("2026-11-01T09:00:00.001Z")));
        assert!(h.covers(t("2020-05-05T00:00:00Z")) && h.covers(t("2026-01-01T23:00:00Z")));
        assert!(!h.covers(t("2026-01-02T00:00:00Z")));
        assert!(h.covers(t("2030-01-01T00:00:00Z")));
        assert!(!h.covers(t("2026-12-24T17:59:59Z")));
    }

    #[test]
    fn several_holds_any_covers() {
        let h = holds(&[
            ("hold.raum.dev/x", "2026-11-01/2026-11-01"),
            ("hold.raum.dev/y", "2026-11-05/2026-11-05"),
            ("unrelated.example/annotation", "whatever"),
        ]);
        assert_eq!(h.windows.len(), 2);
        assert!(h.covers(t("2026-11-01T12:00:00Z")) && h.covers(t("2026-11-05T12:00:00Z")));
        assert!(!h.covers(t("2026-11-03T12:00:00Z")));
    }

    #[test]
    fn day_overlap_and_containment() {
        let h = holds(&[(
            "hold.raum.dev/night",
            "2026-11-01T22:00:00Z/2026-11-02T02:00:00Z",
        )]);
        let day = |d: &str| {
            (
                t(&format!("{d}T00:00:00Z")),
                t(&format!("{d}T00:00:00Z")) + SignedDuration::from_hours(24),
            )
        };
        let (a, b) = day("2026-11-01");
        assert!(h.overlaps(a, b) && !h.contain(a, b));
        let (a, b) = day("2026-11-02");
        assert!(h.overlaps(a, b) && !h.contain(a, b));
        let (a, b) = day("2026-11-03");
        assert!(!h.overlaps(a, b));
        let whole = holds(&[("hold.raum.dev/d", "2026-11-01/2026-11-01")]);
        let (a, b) = day("2026-11-01");
        assert!(whole.contain(a, b));
    }

    #[test]
    fn every_malformed_form_holds_everything_and_says_why() {
        for (value, why) in [
            ("2026-11-01", "not an interval"),
            ("", "not an interval"),
            ("/2026-11-03", "empty"),
            ("2026-11-01/", "empty"),
            ("2026-13-01/2026-11-03", "not a date"),
            ("2026-11-01T08:00:00/..", "RFC 3339 time with offset"),
            ("yesterday/today", "neither a date"),
            ("2026-11-03/2026-11-01", "ends before it starts"),
            ("2026-11-01 / 2026-11-03 / 2026-11-05", "neither a date"),
        ] {
            let h = holds(&[("hold.raum.dev/bad", value)]);
            assert!(h.everything(), "{value:?} does not hold everything");
            assert_eq!(h.invalid.len(), 1, "{value:?}");
            assert!(
                h.invalid[0].reason.contains(why),
                "{value:?}: {}",
                h.invalid[0].reason
            );
            assert!(h.covers(t("2001-01-01T00:00:00Z")));
        }
        let h = holds(&[("hold.raum.dev/", "2026-11-01/2026-11-03")]);
        assert!(h.everything() && h.invalid[0].reason.contains("no id"));
    }
}
