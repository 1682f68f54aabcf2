//! Writing the access log: one task per gateway instance that appends entries to
//! `access-YYYY-MM-DD.<instance>.jsonl` and makes them durable at least once per
//! flush interval and on shutdown.
//!
//! Recording never blocks a request: entries go into a bounded queue. If the disk
//! refuses writes, entries wait in a bounded buffer and are retried every interval;
//! nothing is lost once the disk takes writes again, unless the buffer overflowed
//! (then the newest are dropped and counted). Each entry goes into the file of its own
//! UTC day, so the day in a file's name bounds every line in it (the pruner relies on
//! that); a day's file is therefore written after midnight only for entries of that day
//! still waiting (the last flush interval, or a disk outage). Log lines about failures
//! carry counts and the error kind, never an entry.

use std::collections::{BTreeMap, VecDeque};
use std::fs::OpenOptions;
use std::io::Write;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use jiff::Timestamp;
use jiff::civil::Date;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::entry::{Entry, FileName};

/// How the writer behaves.
#[derive(Clone, Debug)]
pub struct Config {
    /// The log directory.
    pub dir: PathBuf,
    /// This writer's name in file names (letters, digits, `-`, `_`).
    pub instance: String,
    /// Entries are made durable at least this often.
    pub flush_interval: Duration,
    /// Most entries kept while the disk refuses writes.
    pub max_buffered: usize,
}

/// Counters of the writer (for /metrics).
#[derive(Debug, Default)]
pub struct Counters {
    /// Entries written and synced.
    pub written: AtomicU64,
    /// Entries waiting (queued or held back by write errors).
    pub pending: AtomicU64,
    /// Entries dropped because the buffer was full.
    pub dropped: AtomicU64,
    /// Failed write attempts.
    pub write_errors: AtomicU64,
}

/// Where requests record accesses. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AccessLog {
    tx: mpsc::Sender<Entry>,
    counters: Arc<Counters>,
}

/// Stops the writer: flushes what is pending, then ends.
pub struct Shutdown {
    tx: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Shutdown {
    /// Flushes and waits for the writer to end.
    pub async fn run(self) {
        let _ = self.tx.send(());
        let _ = self.task.await;
    }
}

impl AccessLog {
    /// Starts the writer task.
    pub fn spawn(config: Config) -> (AccessLog, Shutdown) {
        let (tx, rx) = mpsc::channel(config.max_buffered.max(1));
        let (stop_tx, stop_rx) = oneshot::channel();
        let counters = Arc::new(Counters::default());
        let task = tokio::spawn(run(config, rx, stop_rx, counters.clone()));
        (AccessLog { tx, counters }, Shutdown { tx: stop_tx, task })
    }

    /// Records one access. Never waits: when the queue is full the entry is dropped
    /// and counted.
    pub fn record(&self, entry: Entry) {
        match self.tx.try_send(entry) {
            Ok(()) => {
                self.counters.pending.fetch_add(1, Ordering::Relaxed);
            }
            Err(_) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

async fn run(
    config: Config,
    mut rx: mpsc::Receiver<Entry>,
    mut stop: oneshot::Receiver<()>,
    counters: Arc<Counters>,
) {
    let mut pending: VecDeque<Entry> = VecDeque::new();
    let mut tick = tokio::time::interval(config.flush_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut failing = false;
    loop {
        tokio::select! {
            entry = rx.recv() => match entry {
                Some(e) => {
                    if pending.len() >= config.max_buffered {
                        counters.dropped.fetch_add(1, Ordering::Relaxed);
                        counters.pending.fetch_sub(1, Ordering::Relaxed);
                    } else {
                        pending.push_back(e);
                    }
                }
                None => break,
            },
            _ = tick.tick() => flush(&config, &mut pending, &counters, &mut failing),
            _ = &mut stop => break,
        }
    }
    // Take what is still queued, then make it durable.
    while let Ok(e) = rx.try_recv() {
        if pending.len() < config.max_buffered {
            pending.push_back(e);
        } else {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            counters.pending.fetch_sub(1, Ordering::Relaxed);
        }
    }
    flush(&config, &mut pending, &counters, &mut failing);
    if !pending.is_empty() {
        warn!(
            entries = pending.len(),
            "access log: entries could not be written before shutdown"
        );
    }
}

/// The UTC day an entry belongs to; entries whose time does not parse (never written
/// by this module) go to today's file.
fn day_of(e: &Entry) -> Date {
    e.time
        .parse::<Timestamp>()
        .unwrap_or_else(|_| Timestamp::now())
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date()
}

/// Appends the pending entries, day by day, and syncs each file. Entries of a day whose
/// file cannot be written stay pending.
fn flush(config: &Config, pending: &mut VecDeque<Entry>, counters: &Counters, failing: &mut bool) {
    if pending.is_empty() {
        return;
    }
    let mut by_day: BTreeMap<Date, Vec<Entry>> = BTreeMap::new();
    for e in pending.drain(..) {
        by_day.entry(day_of(&e)).or_default().push(e);
    }
    let mut error = None;
    for (day, entries) in by_day {
        let name = FileName {
            day,
            instance: config.instance.clone(),
        }
        .render();
        let path = config.dir.join(name);
        let mut text = String::with_capacity(entries.len() * 160);
        for e in &entries {
            text.push_str(&e.to_line());
        }
        let result = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| {
                f.write_all(text.as_bytes())?;
                f.sync_data()
            });
        match result {
            Ok(()) => {
                counters
                    .written
                    .fetch_add(entries.len() as u64, Ordering::Relaxed);
                counters
                    .pending
                    .fetch_sub(entries.len() as u64, Ordering::Relaxed);
            }
            Err(e) => {
                // A partial write leaves at most a torn last line, which readers and
                // the pruner keep as it is; the entries are retried whole.
                counters.write_errors.fetch_add(1, Ordering::Relaxed);
                error = Some(e.kind());
                pending.extend(entries);
            }
        }
    }
    match (error, *failing) {
        (Some(kind), false) => {
            warn!(error = %kind, pending = pending.len(), "access log: the disk refuses writes; keeping entries and retrying");
            *failing = true;
        }
        (None, true) => {
            info!("access log: writing again");
            *failing = false;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &std::path::Path, max: usize) -> Config {
        Config {
            dir: dir.to_owned(),
            instance: "gw-test".into(),
            flush_interval: Duration::from_millis(50),
            max_buffered: max,
        }
    }

    fn read_all(dir: &std::path::Path) -> BTreeMap<String, String> {
        std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap())
            .map(|e| {
                (
                    e.file_name().into_string().unwrap(),
                    std::fs::read_to_string(e.path()).unwrap(),
                )
            })
            .collect()
    }

    #[tokio::test]
    async fn entries_land_in_the_file_of_their_own_utc_day_within_an_interval() {
        let dir = tempfile::tempdir().unwrap();
        let (log, stop) = AccessLog::spawn(config(dir.path(), 100));
        let before_midnight = Entry::new(
            "2026-11-26T23:59:59.999Z".parse().unwrap(),
            "203.0.113.7",
            "UA 1",
        );
        let after_midnight = Entry::new(
            "2026-11-27T00:00:00.001Z".parse().unwrap(),
            "2001:db8::1",
            "UA 2",
        );
        log.record(before_midnight.clone());
        log.record(after_midnight.clone());
        tokio::time::sleep(Duration::from_millis(200)).await;
        // Durable without a shutdown: the interval flushed it.
        let files = read_all(dir.path());
        assert_eq!(
            files["access-2026-11-26.gw-test.jsonl"],
            before_midnight.to_line()
        );
        assert_eq!(
            files["access-2026-11-27.gw-test.jsonl"],
            after_midnight.to_line()
        );
        assert_eq!(log.counters().written.load(Ordering::Relaxed), 2);
        assert_eq!(log.counters().pending.load(Ordering::Relaxed), 0);
        stop.run().await;
    }

    #[tokio::test]
    async fn shutdown_flushes_and_appends_keep_earlier_lines() {
        let dir = tempfile::tempdir().unwrap();
        let e = |s: &str| {
            Entry::new(
                format!("2026-11-26T10:00:0{s}.000Z").parse().unwrap(),
                "198.51.100.1",
                "UA",
            )
        };
        let mut cfg = config(dir.path(), 100);
        cfg.flush_interval = Duration::from_secs(3600);
        let (log, stop) = AccessLog::spawn(cfg.clone());
        log.record(e("1"));
        stop.run().await;
        let (log, stop) = AccessLog::spawn(cfg);
        log.record(e("2"));
        stop.run().await;
        let files = read_all(dir.path());
        assert_eq!(
            files["access-2026-11-26.gw-test.jsonl"],
            e("1").to_line() + &e("2").to_line()
        );
    }

    #[tokio::test]
    async fn a_refusing_disk_loses_nothing_within_the_buffer_and_drops_beyond_it() {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        // Not a directory yet: every write fails (root ignores permission bits, so a
        // missing directory stands in for a read-only one here).
        let (log, stop) = AccessLog::spawn(config(&logs, 5));
        let e = |i: u32| {
            Entry::new(
                Timestamp::from_second(1_790_000_000 + i64::from(i)).unwrap(),
                format!("192.0.2.{i}"),
                "UA",
            )
        };
        for i in 0..7 {
            log.record(e(i));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        let c = log.counters();
        assert!(c.write_errors.load(Ordering::Relaxed) >= 1);
        assert_eq!(
            c.dropped.load(Ordering::Relaxed),
            2,
            "beyond the buffer of 5"
        );
        assert_eq!(c.pending.load(Ordering::Relaxed), 5);
        std::fs::create_dir(&logs).unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(c.written.load(Ordering::Relaxed), 5);
        assert_eq!(c.pending.load(Ordering::Relaxed), 0);
        stop.run().await;
        let all: String = read_all(&logs).into_values().collect();
        let expected: String = (0..5).map(|i| e(i).to_line()).collect();
        assert_eq!(all, expected, "the first five, in order, once each");
    }
}
