//! Cron schedules as Kubernetes CronJobs read them (five fields: minute, hour, day
//! of month, month, day of week; `*`, numbers or names (`JAN`, `MON`), ranges, lists
//! and steps, and the `@daily`-style macros), for one question: how long can it be
//! between two runs, in the schedule's time zone? The privacy check allows the
//! oldest unheld access-log entry `maxAge` plus that.

use jiff::civil::DateTime;
use jiff::tz::TimeZone;
use jiff::{SignedDuration, Timestamp};

/// One field: which values it allows.
#[derive(Clone, Debug)]
struct Field(Vec<bool>);

const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// `text` with month or day names replaced by their numbers.
fn numbered(text: &str, names: &[&str], first: u32) -> String {
    let mut out = text.to_ascii_uppercase();
    for (i, name) in names.iter().enumerate() {
        out = out.replace(name, &(first + i as u32).to_string());
    }
    out
}

impl Field {
    fn parse(text: &str, min: u32, max: u32, what: &str) -> Result<Field, String> {
        let mut allowed = vec![false; (max + 1) as usize];
        for part in text.split(',') {
            let (range, step) = match part.split_once('/') {
                Some((r, s)) => (
                    r,
                    s.parse::<u32>()
                        .ok()
                        .filter(|s| *s > 0)
                        .ok_or_else(|| format!("{what}: bad step in {part:?}"))?,
                ),
                None => (part, 1),
            };
            let (from, to) = if range == "*" {
                (min, max)
            } else if let Some((a, b)) = range.split_once('-') {
                (num(a, what)?, num(b, what)?)
            } else {
                let n = num(range, what)?;
                (n, if part.contains('/') { max } else { n })
            };
            if from < min || to > max || from > to {
                return Err(format!("{what}: {part:?} is outside {min}-{max}"));
            }
            for v in (from..=to).step_by(step as usize) {
                allowed[v as usize] = true;
            }
        }
        Ok(Field(allowed))
    }

    fn has(&self, v: u32) -> bool {
        self.0.get(v as usize).copied().unwrap_or(false)
    }
}

fn num(s: &str, what: &str) -> Result<u32, String> {
    s.parse()
        .map_err(|_| format!("{what}: {s:?} is not a number or a name"))
}

/// A parsed schedule.
#[derive(Clone, Debug)]
pub struct Schedule {
    minute: Field,
    hour: Field,
    dom: Field,
    month: Field,
    dow: Field,
    /// Both day fields restricted: cron runs on either (the classic rule).
    either_day: bool,
}

impl std::str::FromStr for Schedule {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let expanded = match s.trim() {
            "@yearly" | "@annually" => "0 0 1 1 *",
            "@monthly" => "0 0 1 * *",
            "@weekly" => "0 0 * * 0",
            "@daily" | "@midnight" => "0 0 * * *",
            "@hourly" => "0 * * * *",
            other => other,
        };
        let fields: Vec<&str> = expanded.split_whitespace().collect();
        let [minute, hour, dom, month, dow] = fields[..] else {
            return Err(format!("{s:?} has not the five fields of a cron schedule"));
        };
        Ok(Schedule {
            minute: Field::parse(minute, 0, 59, "minute")?,
            hour: Field::parse(hour, 0, 23, "hour")?,
            dom: Field::parse(dom, 1, 31, "day of month")?,
            month: Field::parse(&numbered(month, &MONTHS, 1), 1, 12, "month")?,
            // 7 is Sunday too.
            dow: {
                let mut f = Field::parse(&numbered(dow, &DAYS, 0), 0, 7, "day of week")?;
                if f.has(7) {
                    f.0[0] = true;
                }
                f
            },
            either_day: dom != "*" && dow != "*",
        })
    }
}

impl Schedule {
    fn runs_at(&self, t: DateTime) -> bool {
        let dom = self.dom.has(t.day() as u32);
        let dow = self.dow.has(t.weekday().to_sunday_zero_offset() as u32);
        let day = if self.either_day {
            dom || dow
        } else {
            dom && dow
        };
        day && self.minute.has(t.minute() as u32)
            && self.hour.has(t.hour() as u32)
            && self.month.has(t.month() as u32)
    }

    /// The longest time between two runs in the year from `from`, the schedule read
    /// in `tz` (minute by minute of real time: a skipped hour passes without a run,
    /// a repeated one runs once), or an error when it runs less than twice in that
    /// year.
    pub fn longest_gap(&self, from: Timestamp, tz: &TimeZone) -> Result<SignedDuration, String> {
        let minute = SignedDuration::from_mins(1);
        let start = Timestamp::from_second(from.as_second() - from.as_second().rem_euclid(60))
            .unwrap_or(from);
        let end = start + SignedDuration::from_hours(24 * 366);
        let (mut last, mut longest): (Option<Timestamp>, SignedDuration) =
            (None, SignedDuration::ZERO);
        let mut ran: Option<DateTime> = None;
        let mut t = start;
        while t < end {
            let civil = t.to_zoned(tz.clone()).datetime();
            if ran != Some(civil) && self.runs_at(civil) {
                if let Some(l) = last {
                    longest = longest.max(t.duration_since(l));
                }
                last = Some(t);
                ran = Some(civil);
            }
            t += minute;
        }
        if longest.is_zero() {
            return Err("it runs less than twice a year".into());
        }
        Ok(longest)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap_in(s: &str, tz: &str) -> i64 {
        s.parse::<Schedule>()
            .unwrap()
            .longest_gap(
                "2026-12-06T13:45:00Z".parse().unwrap(),
                &TimeZone::get(tz).unwrap(),
            )
            .unwrap()
            .as_secs()
            / 60
    }

    fn gap(s: &str) -> i64 {
        gap_in(s, "UTC")
    }

    #[test]
    fn the_longest_gap_between_runs() {
        assert_eq!(gap("17 3 * * *"), 24 * 60, "daily");
        assert_eq!(gap("@hourly"), 60);
        assert_eq!(gap("*/15 * * * *"), 15);
        assert_eq!(
            gap("0 3 * * 1-5"),
            3 * 24 * 60,
            "weekdays: Friday to Monday"
        );
        assert_eq!(
            gap("0 0 1,15 * *"),
            17 * 24 * 60,
            "the 15th to the 1st of a 31-day month"
        );
        assert_eq!(gap("0 2 * * 7"), 7 * 24 * 60, "Sunday as 7");
        assert_eq!(gap("0 2 * * sun"), 7 * 24 * 60, "Sunday by name");
        // From 2026-12-06 the year holds one gap: 1 January to 1 July 2027.
        assert_eq!(gap("0 0 1 jan,Jul *"), 181 * 24 * 60, "months by name");
    }

    #[test]
    fn summer_time_lengthens_a_day_or_skips_a_run() {
        // 02:30 does not exist on the last Sunday of March in Berlin: from Saturday's
        // run to Monday's, two days less the hour skipped.
        assert_eq!(gap_in("30 2 * * *", "Europe/Berlin"), 47 * 60);
        // 03:17 on the day summer time ends comes 25 hours after the day before's.
        assert_eq!(gap_in("17 3 * * *", "Europe/Berlin"), 25 * 60);
    }

    #[test]
    fn bad_schedules_are_named() {
        for (s, says) in [
            ("17 3 * *", "five fields"),
            ("61 3 * * *", "minute"),
            ("0 24 * * *", "hour"),
            ("0 0 0 * *", "day of month"),
            ("0 0 * 13 *", "month"),
            ("0 0 * * 8", "day of week"),
            ("*/0 * * * *", "step"),
            ("a * * * *", "not a number"),
            ("0 0 * * FUN", "not a number"),
        ] {
            let e = s.parse::<Schedule>().unwrap_err();
            assert!(e.contains(says), "{s}: {e}");
        }
        let e = "0 0 30 2 *"
            .parse::<Schedule>()
            .unwrap()
            .longest_gap("2026-01-01T00:00:00Z".parse().unwrap(), &TimeZone::UTC);
        assert!(e.is_err(), "February 30th never comes");
    }
}
