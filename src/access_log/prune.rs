//! Pruning the access log: delete entries older than maxAge unless a hold covers them.
//!
//! The day in a file's name bounds every entry in it, so most decisions need no
//! reading: a whole expired day outside every hold is unlinked, a day wholly inside
//! the retention period or a hold is left alone. Only files that straddle the cutoff
//! or a hold's edge are rewritten: stream the kept lines into a temporary file in the
//! same directory, fsync it, rename it over the original, fsync the directory. A crash
//! at any instant leaves the old file or the new one, never a torn one; leftover
//! temporary files (names starting with `.`, never taken for log files) are removed by
//! the next run.
//!
//! The policy is read again right before each destructive step, so a hold placed
//! while a run is under way protects what it covers. The files of the current UTC day
//! are never touched. A line that does not parse is kept whenever its file is
//! rewritten (its day, the only date it has, may be held or unexpired); a last line
//! without a newline is kept as it is.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use jiff::Timestamp;
use jiff::civil::Date;
use serde::Serialize;

use super::entry::{FileName, day_start};
use crate::api::holds::Holds;
use crate::api::retention_policy::{BadMaxAge, MaxAge};

/// The lock file; its `flock` keeps two runs from overlapping.
pub const LOCK_FILE: &str = ".raum-prune.lock";
const BUF: usize = 256 * 1024;
/// Read size of the line scanner.
const CHUNK: usize = 1024 * 1024;

/// What pruning needs from a RetentionPolicy.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    /// How long entries are kept.
    pub max_age: MaxAge,
    /// The holds in force.
    pub holds: Holds,
}

/// Where the policy comes from: the API server or a file. Loaded at the start and
/// again before each destructive step.
pub trait PolicySource {
    /// Reads the current policy.
    fn load(&mut self) -> Result<Policy, PolicyError>;
}

/// Why the policy could not be read. In doubt nothing is deleted: every variant stops
/// the run.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// A file or directory could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// What was read.
        path: PathBuf,
        /// Why not.
        source: io::Error,
    },
    /// A policy file is not YAML of a RetentionPolicy.
    #[error("{} is not a RetentionPolicy: {source}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's complaint (it quotes our vocabulary, not the file).
        source: serde_yaml::Error,
    },
    /// A file in a meetings directory is not a RetentionPolicy that can be used.
    #[error("{}: {reason}", path.display())]
    NotAPolicy {
        /// The file.
        path: PathBuf,
        /// What is wrong with it (the parser's words, which quote our vocabulary).
        reason: String,
    },
    /// The policy's maxAge breaks its grammar.
    #[error("{policy}: {source}")]
    MaxAge {
        /// The policy (file or object) it came from.
        policy: String,
        /// The grammar's complaint.
        source: BadMaxAge,
    },
    /// The API server could not be asked.
    #[error("cannot read RetentionPolicy {name}: {source}")]
    Api {
        /// The policy's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
}

/// A run's summary: counts only, never entries.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Summary {
    /// Nothing was changed: only what would be done is reported.
    pub dry_run: bool,
    /// Whole files deleted (their entries are not read, so not counted below).
    pub files_deleted: u64,
    /// Files rewritten without their expired entries.
    pub files_rewritten: u64,
    /// Entries removed from rewritten files.
    pub entries_removed: u64,
    /// Expired entries kept because a hold covers them.
    pub entries_kept_for_holds: u64,
    /// Bytes read.
    pub bytes_read: u64,
    /// Bytes written.
    pub bytes_written: u64,
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Another run holds the lock.
    #[error("another prune run holds the lock in {0}; nothing done")]
    Busy(PathBuf),
    /// The policy could not be read.
    #[error("cannot read the policy: {0}")]
    Policy(#[from] PolicyError),
    /// The pruning thread ended without a result.
    #[error("the pruning thread failed: {0}")]
    Thread(String),
    /// A file operation failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// What was being done.
        what: &'static str,
        /// On which path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

fn io_err<'a>(what: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> Error + 'a {
    move |source| Error::Io {
        what,
        path: path.to_owned(),
        source,
    }
}

/// What to do with one file under a policy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Decision {
    /// Nothing expired in it, or it is today's: leave it.
    Keep,
    /// Every entry expired and no hold touches its day: unlink it.
    Delete,
    /// Its expired part is wholly held: leave it, count what is kept for holds.
    Held,
    /// Some entries go, some stay: rewrite it.
    Rewrite,
}

fn decide(file: &FileName, policy: &Policy, now: Timestamp) -> Decision {
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    if file.day >= today {
        return Decision::Keep;
    }
    let cutoff = cutoff(policy, now);
    let (from, to) = (file.day_start(), file.day_end());
    if from >= cutoff {
        Decision::Keep
    } else if to <= cutoff && !policy.holds.overlaps(from, to) {
        Decision::Delete
    } else if policy.holds.contain(from, to.min(cutoff)) {
        Decision::Held
    } else {
        Decision::Rewrite
    }
}

fn cutoff(policy: &Policy, now: Timestamp) -> Timestamp {
    now.saturating_sub(policy.max_age.duration())
        .unwrap_or(Timestamp::MIN)
}

/// Test hook, compiled only with the `fault-injection` feature (the tests enable it;
/// the shipped binary has none): `RAUM_PRUNE_FAULT=<point>:<n>:<abort|pause>` aborts
/// the process (as a `kill -9` would: no cleanup), or pauses it, at the n-th time it
/// reaches `point`. Points: `rewrite-start`, `temp-synced`, `renamed`, `unlinked`. A
/// pause prints `raum-prune-fault: paused at <point>` on stderr and waits until stdin
/// ends, so a test acts exactly while the pruner stands at that step. The crash-safety
/// tests use it to stop the pruner between a rename and the directory fsync.
#[cfg(feature = "fault-injection")]
struct Faults {
    spec: Option<(String, u32, String)>,
    seen: u32,
}

#[cfg(feature = "fault-injection")]
impl Faults {
    fn from_env() -> Self {
        let spec = std::env::var("RAUM_PRUNE_FAULT").ok().and_then(|v| {
            let mut parts = v.splitn(3, ':');
            let point = parts.next()?.to_owned();
            let n = parts.next()?.parse().ok()?;
            Some((point, n, parts.next()?.to_owned()))
        });
        Self { spec, seen: 0 }
    }

    fn at(&mut self, point: &str) {
        let Some((p, n, action)) = &self.spec else {
            return;
        };
        if p != point {
            return;
        }
        self.seen += 1;
        if self.seen != *n {
            return;
        }
        match action.as_str() {
            "abort" => std::process::abort(),
            "pause" => {
                eprintln!("raum-prune-fault: paused at {point}");
                let _ = io::copy(&mut io::stdin().lock(), &mut io::sink());
            }
            _ => {}
        }
    }
}

/// Without the `fault-injection` feature: no hook, not even the environment is read.
#[cfg(not(feature = "fault-injection"))]
struct Faults;

#[cfg(not(feature = "fault-injection"))]
impl Faults {
    fn from_env() -> Self {
        Self
    }

    #[inline(always)]
    fn at(&mut self, _point: &str) {}
}

/// Runs one pruning of `dir` at `now` (normally the current time).
pub fn prune(
    dir: &Path,
    source: &mut dyn PolicySource,
    now: Timestamp,
    dry_run: bool,
) -> Result<Summary, Error> {
    let lock_path = dir.join(LOCK_FILE);
    let lock = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(io_err("cannot open the lock", &lock_path))?;
    match lock.try_lock() {
        Ok(()) => {}
        Err(fs::TryLockError::WouldBlock) => return Err(Error::Busy(dir.to_owned())),
        Err(fs::TryLockError::Error(e)) => return Err(io_err("cannot lock", &lock_path)(e)),
    }
    let mut faults = Faults::from_env();
    let mut summary = Summary {
        dry_run,
        ..Default::default()
    };

    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(io_err("cannot list", dir))? {
        let entry = entry.map_err(io_err("cannot list", dir))?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if is_temp(name) {
            // A crashed run's temporary file: the original it was made from is intact.
            if !dry_run {
                fs::remove_file(entry.path())
                    .map_err(io_err("cannot remove stale temporary file", &entry.path()))?;
            }
        } else if let Some(parsed) = FileName::parse(name) {
            files.push(parsed);
        }
    }
    files.sort_by(|a, b| (a.day, &a.instance).cmp(&(b.day, &b.instance)));

    let mut policy = source.load()?;
    let mut deleted_any = false;
    for file in &files {
        let path = dir.join(file.render());
        match decide(file, &policy, now) {
            Decision::Keep => {}
            Decision::Held => {
                let scan = scan(&path, file.day, &policy, now, None)?;
                summary.bytes_read += scan.bytes_read;
                summary.entries_kept_for_holds += scan.kept_for_holds;
            }
            Decision::Delete => {
                // Destructive: look at the policy once more.
                policy = source.load()?;
                if decide(file, &policy, now) != Decision::Delete {
                    // A hold arrived; the file is someone's evidence now.
                    let scan = scan(&path, file.day, &policy, now, None)?;
                    summary.bytes_read += scan.bytes_read;
                    summary.entries_kept_for_holds += scan.kept_for_holds;
                    continue;
                }
                summary.files_deleted += 1;
                if !dry_run {
                    fs::remove_file(&path).map_err(io_err("cannot delete", &path))?;
                    deleted_any = true;
                    faults.at("unlinked");
                }
            }
            Decision::Rewrite => {
                faults.at("rewrite-start");
                policy = source.load()?;
                rewrite(
                    dir,
                    &path,
                    file,
                    &mut policy,
                    source,
                    now,
                    dry_run,
                    &mut summary,
                    &mut faults,
                )?;
            }
        }
    }
    if deleted_any {
        fsync_dir(dir)?;
    }
    drop(lock);
    Ok(summary)
}

fn is_temp(name: &str) -> bool {
    name.starts_with(".access-") && name.ends_with(".tmp")
}

#[allow(clippy::too_many_arguments)]
fn rewrite(
    dir: &Path,
    path: &Path,
    file: &FileName,
    policy: &mut Policy,
    source: &mut dyn PolicySource,
    now: Timestamp,
    dry_run: bool,
    summary: &mut Summary,
    faults: &mut Faults,
) -> Result<(), Error> {
    let tmp = dir.join(format!(".{}.tmp", file.render()));
    // A hold placed while the file was being copied is honoured by copying again.
    for _attempt in 0..3 {
        let decision = decide(file, policy, now);
        if decision != Decision::Rewrite {
            if decision == Decision::Held {
                let scan = scan(path, file.day, policy, now, None)?;
                summary.bytes_read += scan.bytes_read;
                summary.entries_kept_for_holds += scan.kept_for_holds;
            }
            return Ok(());
        }
        if dry_run {
            let scan = scan(path, file.day, policy, now, None)?;
            summary.bytes_read += scan.bytes_read;
            summary.entries_kept_for_holds += scan.kept_for_holds;
            summary.entries_removed += scan.removed;
            if scan.removed > 0 {
                summary.files_rewritten += 1;
            }
            return Ok(());
        }
        let out = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .open(&tmp)
            .map_err(io_err("cannot create", &tmp))?;
        let mut writer = BufWriter::with_capacity(BUF, out);
        let scan = scan(path, file.day, policy, now, Some(&mut writer))?;
        let out = writer
            .into_inner()
            .map_err(|e| io_err("cannot write", &tmp)(e.into_error()))?;
        out.sync_all().map_err(io_err("cannot fsync", &tmp))?;
        drop(out);
        faults.at("temp-synced");
        let latest = source.load()?;
        if latest != *policy {
            *policy = latest;
            continue;
        }
        summary.bytes_read += scan.bytes_read;
        summary.entries_kept_for_holds += scan.kept_for_holds;
        if scan.removed == 0 {
            fs::remove_file(&tmp).map_err(io_err("cannot remove", &tmp))?;
            return Ok(());
        }
        summary.entries_removed += scan.removed;
        summary.files_rewritten += 1;
        if scan.kept == 0 && !scan.partial_tail {
            // Nothing left: delete instead of leaving an empty file.
            fs::remove_file(&tmp).map_err(io_err("cannot remove", &tmp))?;
            fs::remove_file(path).map_err(io_err("cannot delete", path))?;
            faults.at("unlinked");
        } else {
            summary.bytes_written += scan.bytes_written;
            fs::rename(&tmp, path).map_err(io_err("cannot rename over", path))?;
            faults.at("renamed");
        }
        fsync_dir(dir)?;
        return Ok(());
    }
    // The policy kept changing; leave the file for the next run.
    let _ = fs::remove_file(&tmp);
    Ok(())
}

fn fsync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("cannot fsync directory", dir))
}

#[derive(Default)]
struct Scan {
    bytes_read: u64,
    bytes_written: u64,
    kept: u64,
    removed: u64,
    kept_for_holds: u64,
    partial_tail: bool,
}

/// Millisecond bounds of the policy for the fast path.
struct Bounds {
    cutoff_ms: i64,
    everything_held: bool,
    /// Held windows in whole milliseconds, inclusive: an entry at ms `t` is held iff
    /// `start <= t <= end` (start rounded up, end rounded down: the same answer as
    /// comparing the exact instants, since entries have millisecond precision).
    windows: Vec<(i64, i64)>,
}

impl Bounds {
    fn new(policy: &Policy, now: Timestamp) -> Self {
        let ceil_ms = |t: Timestamp| {
            let ms = t.as_millisecond();
            if Timestamp::from_millisecond(ms).is_ok_and(|f| f < t) {
                ms + 1
            } else {
                ms
            }
        };
        Self {
            cutoff_ms: ceil_ms(cutoff(policy, now)),
            everything_held: policy.holds.everything(),
            windows: policy
                .holds
                .windows
                .iter()
                .map(|w| {
                    (
                        w.start.map_or(i64::MIN, ceil_ms),
                        w.end.map_or(i64::MAX, |e| e.as_millisecond()),
                    )
                })
                .collect(),
        }
    }

    fn held(&self, ms: i64) -> bool {
        self.everything_held || self.windows.iter().any(|&(s, e)| s <= ms && ms <= e)
    }
}

/// Streams `path`, deciding each line; with `out`, writes the kept lines to it.
///
/// Works on 1 MiB chunks: lines are found with `memchr` and decided in place, and
/// consecutive kept lines go out as one write. Entries are appended in time order, so
/// kept lines come in long runs and a rewrite costs little more than reading.
fn scan(
    path: &Path,
    day: Date,
    policy: &Policy,
    now: Timestamp,
    mut out: Option<&mut BufWriter<File>>,
) -> Result<Scan, Error> {
    let bounds = Bounds::new(policy, now);
    let mut f = File::open(path).map_err(io_err("cannot open", path))?;
    let mut days = DayCache::new(day);
    let mut s = Scan::default();
    let mut buf = vec![0u8; CHUNK];
    // buf[..len] holds data not yet decided; it always starts at a line start.
    let mut len = 0;
    let write =
        |w: &mut Option<&mut BufWriter<File>>, bytes: &[u8], s: &mut Scan| -> Result<(), Error> {
            if let Some(w) = w.as_deref_mut()
                && !bytes.is_empty()
            {
                w.write_all(bytes)
                    .map_err(io_err("cannot write temporary file for", path))?;
                s.bytes_written += bytes.len() as u64;
            }
            Ok(())
        };
    loop {
        if len == buf.len() {
            // A line longer than the buffer: make room.
            buf.resize(buf.len() * 2, 0);
        }
        let n = io::Read::read(&mut f, &mut buf[len..]).map_err(io_err("cannot read", path))?;
        s.bytes_read += n as u64;
        if n == 0 {
            if len > 0 {
                // A writer's unfinished last line: not ours to judge; kept as it is.
                s.partial_tail = true;
                write(&mut out, &buf[..len], &mut s)?;
            }
            break;
        }
        len += n;
        let mut start = 0; // first byte of the current line
        let mut run = 0; // first byte of the current run of kept lines
        for nl in memchr::memchr_iter(b'\n', &buf[..len]) {
            let end = nl + 1;
            let keep = match entry_millis(&buf[start..end], &mut days) {
                None => true, // unparseable: dated by its day, which we are keeping part of
                Some(ms) if ms >= bounds.cutoff_ms => true,
                Some(ms) if bounds.held(ms) => {
                    s.kept_for_holds += 1;
                    true
                }
                Some(_) => false,
            };
            if keep {
                s.kept += 1;
            } else {
                s.removed += 1;
                write(&mut out, &buf[run..start], &mut s)?;
                run = end;
            }
            start = end;
        }
        write(&mut out, &buf[run..start], &mut s)?;
        buf.copy_within(start..len, 0);
        len -= start;
    }
    Ok(s)
}

/// Remembers the last day seen, so the calendar is consulted once per file, not per line.
struct DayCache {
    date: [u8; 10],
    start_ms: i64,
}

impl DayCache {
    fn new(day: Date) -> Self {
        let mut date = [0; 10];
        date.copy_from_slice(day.to_string().as_bytes());
        Self {
            date,
            start_ms: day_start(day).as_millisecond(),
        }
    }

    fn start_ms(&mut self, date: &[u8]) -> Option<i64> {
        if date != self.date {
            let d: Date = std::str::from_utf8(date).ok()?.parse().ok()?;
            self.date.copy_from_slice(date);
            self.start_ms = day_start(d).as_millisecond();
        }
        Some(self.start_ms)
    }
}

/// The entry's time in Unix milliseconds, or `None` when the line does not parse.
///
/// Fast path for the form the writer produces, `{"time":"YYYY-MM-DDTHH:MM:SS.mmmZ",`:
/// fixed offsets, digits only. Anything else goes through a JSON parser and an RFC
/// 3339 parser (any offset, any precision).
fn entry_millis(line: &[u8], days: &mut DayCache) -> Option<i64> {
    const HEAD: &[u8] = br#"{"time":""#;
    if line.len() > 34 && line.starts_with(HEAD) && line[33] == b'"' {
        let t = &line[9..33];
        if t[10] == b'T' && t[13] == b':' && t[16] == b':' && t[19] == b'.' && t[23] == b'Z' {
            let num = |r: std::ops::Range<usize>| -> Option<i64> {
                t[r].iter().try_fold(0i64, |acc, &b| {
                    b.is_ascii_digit().then(|| acc * 10 + i64::from(b - b'0'))
                })
            };
            if let (Some(h), Some(m), Some(s), Some(ms)) =
                (num(11..13), num(14..16), num(17..19), num(20..23))
                && h < 24
                && m < 60
                && s < 60
                && let Some(start) = days.start_ms(&t[..10])
            {
                return Some(start + ((h * 60 + m) * 60 + s) * 1000 + ms);
            }
        }
    }
    #[derive(serde::Deserialize)]
    struct TimeOnly<'a> {
        #[serde(borrow)]
        time: std::borrow::Cow<'a, str>,
    }
    let parsed: TimeOnly<'_> = serde_json::from_slice(line).ok()?;
    let ts: Timestamp = parsed.time.parse().ok()?;
    // Round down: only used against bounds already in whole milliseconds.
    let ms = ts.as_millisecond();
    let exact = Timestamp::from_millisecond(ms).ok()?;
    Some(if exact > ts { ms - 1 } else { ms })
}

/// A policy read from a RetentionPolicy YAML file, again on every `load`.
pub struct FileSource(pub PathBuf);

impl PolicySource for FileSource {
    fn load(&mut self) -> Result<Policy, PolicyError> {
        let text = fs::read_to_string(&self.0).map_err(|source| PolicyError::Read {
            path: self.0.clone(),
            source,
        })?;
        let rp: crate::api::RetentionPolicy =
            serde_yaml::from_str(&text).map_err(|source| PolicyError::Parse {
                path: self.0.clone(),
                source,
            })?;
        policy_of(&rp, &self.0.display().to_string())
    }
}

/// The pruning policy of a RetentionPolicy object; `from` names where it was read (a
/// file, or the object's name) in errors.
pub fn policy_of(rp: &crate::api::RetentionPolicy, from: &str) -> Result<Policy, PolicyError> {
    let max_age = rp.spec.max_age().map_err(|source| PolicyError::MaxAge {
        policy: from.to_owned(),
        source,
    })?;
    let holds = Holds::from_annotations(
        rp.metadata
            .annotations
            .as_ref()
            .unwrap_or(&Default::default()),
    );
    Ok(Policy { max_age, holds })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::access_log::entry::Entry;

    struct Fixed(Policy);
    impl PolicySource for Fixed {
        fn load(&mut self) -> Result<Policy, PolicyError> {
            Ok(self.0.clone())
        }
    }

    fn policy(max_age: &str, holds: &[(&str, &str)]) -> Policy {
        Policy {
            max_age: max_age.parse().unwrap(),
            holds: Holds::from_annotations(
                &holds
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
        }
    }

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    fn file(day: &str) -> FileName {
        FileName {
            day: day.parse().unwrap(),
            instance: "g".into(),
        }
    }

    #[test]
    fn decisions_follow_the_day_in_the_name() {
        let now = t("2026-11-26T12:00:00Z");
        let p = policy("10d", &[]);
        // cutoff 2026-11-16T12:00Z
        assert_eq!(
            decide(&file("2026-11-26"), &p, now),
            Decision::Keep,
            "today is never touched"
        );
        assert_eq!(decide(&file("2026-11-17"), &p, now), Decision::Keep);
        assert_eq!(
            decide(&file("2026-11-16"), &p, now),
            Decision::Rewrite,
            "straddles the cutoff"
        );
        assert_eq!(decide(&file("2026-11-15"), &p, now), Decision::Delete);
        let held = policy(
            "10d",
            &[
                ("hold.raum.dev/a", "2026-11-10/2026-11-10"),
                (
                    "hold.raum.dev/b",
                    "2026-11-12T12:00:00Z/2026-11-12T13:00:00Z",
                ),
            ],
        );
        assert_eq!(decide(&file("2026-11-10"), &held, now), Decision::Held);
        assert_eq!(decide(&file("2026-11-12"), &held, now), Decision::Rewrite);
        assert_eq!(decide(&file("2026-11-11"), &held, now), Decision::Delete);
        let all = policy("10d", &[("raum.dev/hold", "attack")]);
        assert_eq!(decide(&file("2026-01-01"), &all, now), Decision::Held);
        let broken = policy("10d", &[("hold.raum.dev/x", "garbage")]);
        assert_eq!(
            decide(&file("2026-01-01"), &broken, now),
            Decision::Held,
            "in doubt, nothing is deleted"
        );
        // The straddling day's expired half wholly held: nothing to rewrite.
        let morning = policy("10d", &[("hold.raum.dev/m", "2026-11-16/2026-11-16")]);
        assert_eq!(decide(&file("2026-11-16"), &morning, now), Decision::Held);
    }

    #[test]
    fn fast_and_slow_time_parsing_agree() {
        let mut days = DayCache::new("2026-11-16".parse().unwrap());
        for s in [
            "2026-11-16T12:34:56.789Z",
            "2026-11-17T00:00:00.000Z",
            "2025-01-01T23:59:59.999Z",
        ] {
            let line = Entry::new(t(s), "203.0.113.9", "UA").to_line();
            assert_eq!(
                entry_millis(line.as_bytes(), &mut days),
                Some(t(s).as_millisecond()),
                "{s}"
            );
        }
        // Other shapes take the slow path and mean the same instant.
        let other = br#"{"ip":"x","time":"2026-11-16T13:34:56.789+01:00","user_agent":"u"}"#;
        assert_eq!(
            entry_millis(other, &mut days),
            Some(t("2026-11-16T12:34:56.789Z").as_millisecond())
        );
        let micro = br#"{"time":"2026-11-16T12:34:56.789999Z","ip":"x","user_agent":"u"}"#;
        assert_eq!(
            entry_millis(micro, &mut days),
            Some(t("2026-11-16T12:34:56.789Z").as_millisecond())
        );
        for bad in [
            &b"not json"[..],
            br#"{"time":"yesterday","ip":"x"}"#,
            br#"{"time":"2026-11-16T25:00:00.000Z","ip":""}"#,
            b"",
        ] {
            assert_eq!(
                entry_millis(bad, &mut days),
                None,
                "{}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn a_rewrite_keeps_unexpired_held_unparseable_and_partial_lines() {
        let dir = tempfile::tempdir().unwrap();
        let now = t("2026-11-26T12:00:00Z");
        let p = policy(
            "10d",
            &[(
                "hold.raum.dev/h",
                "2026-11-16T03:00:00Z/2026-11-16T03:59:59Z",
            )],
        );
        let lines = [
            Entry::new(t("2026-11-16T01:00:00Z"), "a", "u").to_line(), // expired
            Entry::new(t("2026-11-16T03:30:00Z"), "b", "u").to_line(), // held
            "this is not json\n".to_owned(),                           // unparseable: kept
            Entry::new(t("2026-11-16T13:00:00Z"), "c", "u").to_line(), // after the cutoff
            "{\"time\":\"2026-11-16T0".to_owned(),                     // partial tail
        ];
        let path = dir.path().join(file("2026-11-16").render());
        std::fs::write(&path, lines.concat()).unwrap();
        let s = prune(dir.path(), &mut Fixed(p.clone()), now, false).unwrap();
        assert_eq!(
            (
                s.files_rewritten,
                s.entries_removed,
                s.entries_kept_for_holds
            ),
            (1, 1, 1)
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), lines[1..].concat());
        // Nothing else in the directory but the lock.
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 2, "{names:?}");
        // A second run changes nothing.
        let again = prune(dir.path(), &mut Fixed(p), now, false).unwrap();
        assert_eq!(
            (
                again.files_rewritten,
                again.files_deleted,
                again.entries_removed
            ),
            (0, 0, 0)
        );
    }

    #[test]
    fn lines_longer_than_the_read_chunk_survive_whole() {
        let dir = tempfile::tempdir().unwrap();
        let now = t("2026-11-26T12:00:00Z");
        let huge = format!("{{\"time\": \"{}\"}}\n", "x".repeat(3 * CHUNK));
        let lines = [
            Entry::new(t("2026-11-16T01:00:00Z"), "a", "u").to_line(), // expired
            huge.clone(),                                              // unparseable, kept
            Entry::new(t("2026-11-16T13:00:00Z"), "c", "u").to_line(), // kept
            "x".repeat(2 * CHUNK),                                     // partial tail, kept
        ];
        let path = dir.path().join(file("2026-11-16").render());
        std::fs::write(&path, lines.concat()).unwrap();
        let s = prune(dir.path(), &mut Fixed(policy("10d", &[])), now, false).unwrap();
        assert_eq!((s.files_rewritten, s.entries_removed), (1, 1));
        assert!(std::fs::read_to_string(&path).unwrap() == lines[1..].concat());
    }

    #[test]
    fn dry_run_reports_and_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let now = t("2026-11-26T12:00:00Z");
        for day in ["2026-11-01", "2026-11-16", "2026-11-20"] {
            let at = t(&format!("{day}T06:00:00Z"));
            std::fs::write(
                dir.path().join(file(day).render()),
                Entry::new(at, "i", "u").to_line(),
            )
            .unwrap();
        }
        std::fs::write(dir.path().join(".access-2026-11-02.g.jsonl.tmp"), "stale").unwrap();
        let before: Vec<_> = {
            let mut v: Vec<_> = std::fs::read_dir(dir.path())
                .unwrap()
                .map(|e| e.unwrap().path())
                .collect();
            v.sort();
            v.iter()
                .map(|p| (p.clone(), std::fs::read(p).unwrap()))
                .collect()
        };
        let s = prune(dir.path(), &mut Fixed(policy("10d", &[])), now, true).unwrap();
        assert!(s.dry_run);
        assert_eq!(
            (s.files_deleted, s.files_rewritten, s.entries_removed),
            (1, 1, 1)
        );
        for (p, bytes) in before {
            assert_eq!(std::fs::read(&p).unwrap(), bytes, "{}", p.display());
        }
    }

    #[test]
    fn a_second_run_waits_for_nobody_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dir.path().join(LOCK_FILE))
            .unwrap();
        lock.lock().unwrap();
        let err = prune(
            dir.path(),
            &mut Fixed(policy("10d", &[])),
            Timestamp::now(),
            false,
        )
        .unwrap_err();
        assert!(matches!(err, Error::Busy(_)), "{err}");
    }
}
