//! What the access log holds, without anything it holds: per day file, how many
//! entries and the oldest and newest time (to the hour: no single access can be told
//! from it), and how many lines are anything but the three fields the privacy notice
//! names. The gateway publishes it (a ConfigMap the operator's metrics and `kubectl
//! raum` read), so that retention can be watched without reading the log.
//!
//! Files are read incrementally: a file that only grew is read from where the last
//! look stopped (the current day's file grows all day), one that was replaced or
//! shrank (a pruner's rewrite) is read again, one that did not change is not read.
//! The counts are of the files there now: a pruned file takes its lines with it.

use std::collections::BTreeMap;
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::MetadataExt;
use std::path::Path;

use jiff::{SignedDuration, Timestamp};
use serde::{Deserialize, Serialize};

use super::entry::{Entry, FileName};

/// The ConfigMap key holding a published summary, as JSON.
pub const KEY: &str = "summary.json";
/// The published summary's ConfigMap (in raum's namespace; the chart makes it).
pub const CONFIG_MAP: &str = "raum-access-log-summary";

/// A summary as the gateway published it into a ConfigMap, if it holds one.
pub fn from_config_map(cm: &k8s_openapi::api::core::v1::ConfigMap) -> Option<Summary> {
    serde_json::from_str(cm.data.as_ref()?.get(KEY)?).ok()
}

/// The access log at one moment.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// When it was taken.
    pub updated: Option<Timestamp>,
    /// The public base URL participants use (the gateway's `--public-url`), where the
    /// privacy check looks at the pages' Content-Security-Policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_url: Option<String>,
    /// Every log file, oldest day first.
    pub files: Vec<FileSummary>,
    /// Lines in the files now (each was checked).
    pub lines_checked: u64,
    /// Lines among them that are not exactly `time`, `ip` and `user_agent` (or not
    /// JSON at all).
    pub lines_with_other_fields: u64,
}

/// One day file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FileSummary {
    /// Its name (`access-YYYY-MM-DD.<instance>.jsonl`).
    pub name: String,
    /// Complete lines (entries) in it.
    pub entries: u64,
    /// The oldest entry's time, rounded down to the hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oldest: Option<Timestamp>,
    /// The newest entry's time, rounded up to the hour (at most the day's last
    /// millisecond).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub newest: Option<Timestamp>,
    /// Lines in it that are not exactly the three fields.
    #[serde(default)]
    pub lines_with_other_fields: u64,
}

impl Summary {
    /// The oldest entry of all, if any.
    pub fn oldest(&self) -> Option<Timestamp> {
        self.files.iter().filter_map(|f| f.oldest).min()
    }

    /// The oldest entry no hold keeps (file by file: a file's oldest entry counts
    /// unless `held` covers the file's whole span), if any.
    pub fn oldest_unheld(&self, held: impl Fn(Timestamp, Timestamp) -> bool) -> Option<Timestamp> {
        self.files
            .iter()
            .filter_map(|f| Some((f.oldest?, f.newest?)))
            .filter(|(from, to)| !held(*from, *to))
            .map(|(from, _)| from)
            .min()
    }
}

/// What is known of one file from the last look.
#[derive(Clone, Debug)]
struct Seen {
    inode: u64,
    /// Bytes read: up to the last complete line.
    offset: u64,
    /// The file's day: its first and its last millisecond.
    day: (Timestamp, Timestamp),
    entries: u64,
    foreign: u64,
    /// Exact, rounded only when published.
    oldest: Option<Timestamp>,
    newest: Option<Timestamp>,
}

/// Takes summaries of one directory, remembering what it read.
#[derive(Debug, Default)]
pub struct Summarizer {
    seen: BTreeMap<String, Seen>,
}

const HOUR_MS: i64 = 3_600_000;

fn floor_hour(t: Timestamp) -> Timestamp {
    Timestamp::from_millisecond(t.as_millisecond().div_euclid(HOUR_MS) * HOUR_MS).unwrap_or(t)
}

fn ceil_hour(t: Timestamp) -> Timestamp {
    let up = (t.as_millisecond() + HOUR_MS - 1).div_euclid(HOUR_MS) * HOUR_MS;
    Timestamp::from_millisecond(up).unwrap_or(t)
}

impl Summarizer {
    /// The directory's summary now.
    pub fn take(&mut self, dir: &Path, now: Timestamp) -> io::Result<Summary> {
        let mut present = Vec::new();
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(file) = FileName::parse(&name) else {
                continue;
            };
            let meta = match entry.metadata() {
                Ok(m) => m,
                // Pruned between the listing and now.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            let day = (
                file.day_start(),
                file.day_end() - SignedDuration::from_millis(1),
            );
            self.look_at(&entry.path(), &name, day, meta.ino(), meta.len())?;
            present.push(name);
        }
        self.seen.retain(|name, _| present.contains(name));
        // The map's order is the names', which start with the day.
        let files: Vec<FileSummary> = self
            .seen
            .iter()
            .map(|(name, s)| FileSummary {
                name: name.clone(),
                entries: s.entries,
                oldest: s.oldest.map(|t| floor_hour(t).max(s.day.0)),
                newest: s.newest.map(|t| ceil_hour(t).min(s.day.1)),
                lines_with_other_fields: s.foreign,
            })
            .collect();
        Ok(Summary {
            updated: Some(now),
            public_url: None,
            lines_checked: files.iter().map(|f| f.entries).sum(),
            lines_with_other_fields: files.iter().map(|f| f.lines_with_other_fields).sum(),
            files,
        })
    }

    fn look_at(
        &mut self,
        path: &Path,
        name: &str,
        day: (Timestamp, Timestamp),
        inode: u64,
        len: u64,
    ) -> io::Result<()> {
        let mut seen = match self.seen.remove(name) {
            Some(s) if s.inode == inode && s.offset <= len => s,
            _ => Seen {
                inode,
                offset: 0,
                day,
                entries: 0,
                foreign: 0,
                oldest: None,
                newest: None,
            },
        };
        if seen.offset < len {
            let mut file = match std::fs::File::open(path) {
                Ok(f) => f,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
                Err(e) => return Err(e),
            };
            file.seek(SeekFrom::Start(seen.offset))?;
            let mut bytes = Vec::new();
            file.take(len - seen.offset).read_to_end(&mut bytes)?;
            // Only complete lines: a line being written is read next time.
            let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            for line in bytes[..complete].split(|b| *b == b'\n') {
                if line.is_empty() {
                    continue;
                }
                seen.entries += 1;
                match serde_json::from_slice::<Entry>(line) {
                    Ok(e) => {
                        seen.oldest = Some(seen.oldest.map_or(e.time, |o| o.min(e.time)));
                        seen.newest = Some(seen.newest.map_or(e.time, |n| n.max(e.time)));
                    }
                    Err(_) => seen.foreign += 1,
                }
            }
            seen.offset += complete as u64;
        }
        self.seen.insert(name.to_owned(), seen);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn line(time: &str) -> String {
        format!("{{\"time\":\"{time}\",\"ip\":\"198.51.100.7\",\"user_agent\":\"Mozilla/5.0\"}}\n")
    }

    #[test]
    fn counts_ages_and_foreign_fields_reading_only_what_is_new() {
        let dir = tempfile::tempdir().unwrap();
        let day1 = dir.path().join("access-2026-10-01.gw-1.jsonl");
        let day2 = dir.path().join("access-2026-11-30.gw-1.jsonl");
        std::fs::write(
            &day1,
            line("2026-10-01T08:00:00.000Z") + &line("2026-10-01T09:30:00.000Z"),
        )
        .unwrap();
        std::fs::write(&day2, line("2026-11-30T10:00:00.000Z")).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "not a log file").unwrap();
        let mut s = Summarizer::default();
        let a = s.take(dir.path(), t("2026-12-01T00:00:00Z")).unwrap();
        assert_eq!(a.files.len(), 2, "{a:?}");
        assert_eq!(a.files[0].entries, 2);
        // To the hour: down for the oldest, up for the newest.
        assert_eq!(a.files[0].oldest, Some(t("2026-10-01T08:00:00Z")));
        assert_eq!(a.files[0].newest, Some(t("2026-10-01T10:00:00Z")));
        assert_eq!(a.oldest(), Some(t("2026-10-01T08:00:00Z")));
        assert_eq!((a.lines_checked, a.lines_with_other_fields), (3, 0));

        // Appended: a whole line with a fourth field and half a line; only the whole
        // one is read (and not the two before it again).
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&day2)
            .unwrap();
        f.write_all(b"{\"time\":\"2026-11-30T11:00:00.000Z\",\"ip\":\"x\",\"user_agent\":\"y\",\"name\":\"Ada\"}\n{\"time\":\"2026-11-30T1").unwrap();
        let b = s.take(dir.path(), t("2026-12-01T00:01:00Z")).unwrap();
        assert_eq!(b.files[1].entries, 2, "{b:?}");
        assert_eq!((b.lines_checked, b.lines_with_other_fields), (4, 1));
        f.write_all(b"2:00:00.000Z\",\"ip\":\"x\",\"user_agent\":\"y\"}\n")
            .unwrap();
        let c = s.take(dir.path(), t("2026-12-01T00:02:00Z")).unwrap();
        assert_eq!(c.files[1].entries, 3);
        assert_eq!(c.files[1].newest, Some(t("2026-11-30T12:00:00Z")));
        assert_eq!(c.lines_checked, 5);

        // The oldest day held: the oldest unheld entry is the next day's.
        let held = |from: Timestamp, to: Timestamp| {
            from >= t("2026-10-01T00:00:00Z") && to < t("2026-10-02T00:00:00Z")
        };
        assert_eq!(c.oldest_unheld(held), Some(t("2026-11-30T10:00:00Z")));

        // The last hour of a day rounds up to its end, not into the next day.
        let late = dir.path().join("access-2026-11-29.gw-1.jsonl");
        std::fs::write(&late, line("2026-11-29T23:30:00.000Z")).unwrap();
        let l = s.take(dir.path(), t("2026-12-01T00:02:30Z")).unwrap();
        assert_eq!(l.files[1].name, "access-2026-11-29.gw-1.jsonl", "{l:?}");
        assert_eq!(l.files[1].newest, Some(t("2026-11-29T23:59:59.999Z")));
        std::fs::remove_file(&late).unwrap();

        // A rewrite (new inode, fewer lines) is read again; a deleted file goes, and
        // its foreign line with it: the counts are of what is there now.
        let tmp = dir.path().join(".access-2026-10-01.gw-1.jsonl.tmp");
        std::fs::write(&tmp, line("2026-10-01T09:30:00.000Z")).unwrap();
        std::fs::rename(&tmp, &day1).unwrap();
        std::fs::remove_file(&day2).unwrap();
        let d = s.take(dir.path(), t("2026-12-01T00:03:00Z")).unwrap();
        assert_eq!(d.files.len(), 1, "{d:?}");
        assert_eq!(d.files[0].entries, 1);
        assert_eq!(d.files[0].oldest, Some(t("2026-10-01T09:00:00Z")));
        assert_eq!((d.lines_checked, d.lines_with_other_fields), (1, 0));
    }

    #[test]
    fn the_summary_names_no_address_agent_or_exact_time() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("access-2026-11-30.gw-1.jsonl"),
            line("2026-11-30T10:17:42.123Z"),
        )
        .unwrap();
        let s = Summarizer::default()
            .take(dir.path(), t("2026-12-01T00:00:00Z"))
            .unwrap();
        let text = serde_json::to_string(&s).unwrap();
        for private in ["198.51.100.7", "Mozilla", "10:17", "42.123"] {
            assert!(!text.contains(private), "{private} in {text}");
        }
    }
}
