//! The access-log format, shared by the writer (gateway) and the pruner.

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

/// One access: exactly the three fields the privacy notice names.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// When, to the millisecond; written in UTC, RFC 3339 with milliseconds
    /// (`2026-11-26T21:03:04.123Z`).
    #[serde(with = "log_time")]
    pub time: Timestamp,
    /// The client's IP address.
    pub ip: String,
    /// The browser's User-Agent header.
    pub user_agent: String,
}

impl Entry {
    /// An entry at `time`, cut to the millisecond the log keeps (cut, not rounded: the
    /// last millisecond of a day stays in that day).
    pub fn new(time: Timestamp, ip: impl Into<String>, user_agent: impl Into<String>) -> Self {
        Self {
            time: Timestamp::from_millisecond(time.as_millisecond())
                .expect("a timestamp's milliseconds are a timestamp"),
            ip: ip.into(),
            user_agent: user_agent.into(),
        }
    }

    /// The UTC day the entry belongs to (and whose file it goes into).
    pub fn day(&self) -> Date {
        self.time.to_zoned(jiff::tz::TimeZone::UTC).date()
    }

    /// The entry as one line, with its newline.
    pub fn to_line(&self) -> String {
        let mut line = serde_json::to_string(self).expect("strings always serialize");
        line.push('\n');
        line
    }
}

/// `time` as the log writes it: UTC, RFC 3339, milliseconds, `Z`.
pub fn format_time(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// `Entry::time` in and out of its text form.
mod log_time {
    use jiff::Timestamp;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(t: &Timestamp, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Timestamp, D::Error> {
        let text = std::borrow::Cow::<str>::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// Prefix and suffix of log file names.
const PREFIX: &str = "access-";
const SUFFIX: &str = ".jsonl";

/// A log file's name: its UTC day and its writer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileName {
    /// The UTC day every entry of the file belongs to.
    pub day: Date,
    /// The writer (gateway instance).
    pub instance: String,
}

impl FileName {
    /// Parses `access-YYYY-MM-DD.<instance>.jsonl`; anything else (temporary files, the
    /// lock, strangers) is `None`.
    pub fn parse(name: &str) -> Option<Self> {
        let rest = name.strip_prefix(PREFIX)?.strip_suffix(SUFFIX)?;
        let (day, instance) = rest.split_once('.')?;
        if day.len() != 10 || !valid_instance(instance) {
            return None;
        }
        Some(Self {
            day: day.parse().ok()?,
            instance: instance.to_owned(),
        })
    }

    /// The file name.
    pub fn render(&self) -> String {
        format!("{PREFIX}{}.{}{SUFFIX}", self.day, self.instance)
    }

    /// First instant of the file's day.
    pub fn day_start(&self) -> Timestamp {
        day_start(self.day)
    }

    /// First instant after the file's day.
    pub fn day_end(&self) -> Timestamp {
        day_start(self.day) + SignedDuration::from_hours(24)
    }
}

/// Writer names: letters, digits, `-` and `_` (pod names qualify), so that a name
/// never contains a dot or a path separator.
pub fn valid_instance(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// Midnight UTC starting `day`.
pub fn day_start(day: Date) -> Timestamp {
    day.to_zoned(jiff::tz::TimeZone::UTC)
        .expect("every civil date has a UTC midnight")
        .timestamp()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_entry_is_exactly_the_three_fields() {
        let e = Entry::new(
            "2026-11-26T21:03:04.123456Z".parse().unwrap(),
            "203.0.113.7",
            "Mozilla/5.0 \"x\"",
        );
        assert_eq!(
            e.to_line(),
            "{\"time\":\"2026-11-26T21:03:04.123Z\",\"ip\":\"203.0.113.7\",\"user_agent\":\"Mozilla/5.0 \\\"x\\\"\"}\n"
        );
        let back: Entry = serde_json::from_str(e.to_line().trim_end()).unwrap();
        assert_eq!(back, e);
        let last = Entry::new("2026-11-26T23:59:59.9999Z".parse().unwrap(), "i", "u");
        assert_eq!(
            last.day(),
            "2026-11-26".parse().unwrap(),
            "cut, not rounded"
        );
        assert!(last.to_line().contains("23:59:59.999Z"));
        assert!(
            serde_json::from_str::<Entry>(
                r#"{"time":"t","ip":"i","user_agent":"u","path":"/j/x"}"#
            )
            .is_err()
        );
    }

    #[test]
    fn file_names_round_trip_and_strangers_are_ignored() {
        let f = FileName::parse("access-2026-11-26.gateway-7d9f-x2.jsonl").unwrap();
        assert_eq!(f.day, "2026-11-26".parse().unwrap());
        assert_eq!(f.instance, "gateway-7d9f-x2");
        assert_eq!(f.render(), "access-2026-11-26.gateway-7d9f-x2.jsonl");
        assert_eq!(
            f.day_start(),
            "2026-11-26T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        assert_eq!(
            f.day_end(),
            "2026-11-27T00:00:00Z".parse::<Timestamp>().unwrap()
        );
        for stranger in [
            ".access-2026-11-26.g.jsonl.tmp",
            "access-2026-11-26.g.jsonl.tmp",
            "access-2026-11-26.jsonl",
            "access-2026-13-01.g.jsonl",
            "access-2026-11-26.a.b.jsonl",
            "access-26-11-2026.g.jsonl",
            ".raum-prune.lock",
            "notes.txt",
        ] {
            assert!(FileName::parse(stranger).is_none(), "{stranger}");
        }
    }
}
