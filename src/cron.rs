//! Cron schedules as Kubernetes CronJobs read them (five fields: minute, hour, day
//! of month, month, day of week; `*`, numbers, ranges, lists and steps, and the
//! `@daily`-style macros), for one question: how long can it be between two runs?
//! The privacy check allows the oldest unheld access-log entry `maxAge` plus that.

use jiff::SignedDuration;
use jiff::civil::DateTime;

/// One field: which values it allows.
#[derive(Clone, Debug)]
struct Field(Vec<bool>);

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
        .map_err(|_| format!("{what}: {s:?} is not a number"))
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
            month: Field::parse(month, 1, 12, "month")?,
            // 7 is Sunday too.
            dow: {
                let mut f = Field::parse(dow, 0, 7, "day of week")?;
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

    /// The longest time between two runs in the year from `from` (minute by minute),
    /// or an error when it runs less than twice in that year.
    pub fn longest_gap(&self, from: DateTime) -> Result<SignedDuration, String> {
        let start = from.truncate_to_minute();
        let (mut last, mut longest): (Option<DateTime>, SignedDuration) =
            (None, SignedDuration::ZERO);
        let mut t = start;
        let end = start + SignedDuration::from_hours(24 * 366);
        while t < end {
            if self.runs_at(t) {
                if let Some(l) = last {
                    longest = longest.max(t.duration_since(l));
                }
                last = Some(t);
            }
            t += SignedDuration::from_mins(1);
        }
        if longest.is_zero() {
            return Err("it runs less than twice a year".into());
        }
        Ok(longest)
    }
}

trait TruncateToMinute {
    fn truncate_to_minute(self) -> Self;
}

impl TruncateToMinute for DateTime {
    fn truncate_to_minute(self) -> Self {
        self.with()
            .second(0)
            .subsec_nanosecond(0)
            .build()
            .unwrap_or(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gap(s: &str) -> i64 {
        s.parse::<Schedule>()
            .unwrap()
            .longest_gap("2026-12-06T13:45".parse().unwrap())
            .unwrap()
            .as_secs()
            / 60
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
        ] {
            let e = s.parse::<Schedule>().unwrap_err();
            assert!(e.contains(says), "{s}: {e}");
        }
        let e = "0 0 30 2 *"
            .parse::<Schedule>()
            .unwrap()
            .longest_gap("2026-01-01T00:00".parse().unwrap());
        assert!(e.is_err(), "February 30th never comes");
    }
}
