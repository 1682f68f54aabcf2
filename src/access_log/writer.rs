//! Writing the access log: one thread per gateway instance that appends entries to
//! `access-YYYY-MM-DD.<instance>.jsonl` and makes them durable at least once per
//! flush interval and on shutdown. A thread of its own, not a task: `write` and
//! `fsync` block, and the async workers also carry the signaling (and, in standalone
//! mode, the media rooms).
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
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant};

use jiff::civil::Date;
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

/// What goes to the writer thread.
enum Msg {
    Entry(Entry),
    /// Flush and end.
    Stop,
}

/// Where requests record accesses. Cheap to clone.
#[derive(Clone, Debug)]
pub struct AccessLog {
    tx: SyncSender<Msg>,
    counters: Arc<Counters>,
}

impl std::fmt::Debug for Msg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never an entry's content.
        f.write_str(match self {
            Msg::Entry(_) => "Entry(..)",
            Msg::Stop => "Stop",
        })
    }
}

/// Stops the writer: flushes what is pending, then ends.
pub struct Shutdown {
    tx: SyncSender<Msg>,
    thread: std::thread::JoinHandle<()>,
}

impl Shutdown {
    /// Flushes and waits for the writer to end (from a blocking thread, so the async
    /// workers go on meanwhile).
    pub async fn run(self) {
        let _ = tokio::task::spawn_blocking(move || {
            // Blocks only while the queue is full, which the writer drains at once.
            let _ = self.tx.send(Msg::Stop);
            let _ = self.thread.join();
        })
        .await;
    }
}

impl AccessLog {
    /// Starts the writer thread.
    pub fn spawn(config: Config) -> (AccessLog, Shutdown) {
        let (tx, rx) = std::sync::mpsc::sync_channel(config.max_buffered.max(1));
        let counters = Arc::new(Counters::default());
        let thread = {
            let counters = counters.clone();
            std::thread::Builder::new()
                .name("raum-access-log".into())
                .spawn(move || run(config, rx, counters))
                .expect("a thread can be started")
        };
        (
            AccessLog {
                tx: tx.clone(),
                counters,
            },
            Shutdown { tx, thread },
        )
    }

    /// Records one access. Never waits: when the queue is full the entry is dropped
    /// and counted.
    pub fn record(&self, entry: Entry) {
        match self.tx.try_send(Msg::Entry(entry)) {
            Ok(()) => {
                self.counters.pending.fetch_add(1, Ordering::Relaxed);
            }
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }
}

fn run(config: Config, rx: Receiver<Msg>, counters: Arc<Counters>) {
    let mut pending: VecDeque<Entry> = VecDeque::new();
    let mut failing = false;
    let mut next_flush = Instant::now() + config.flush_interval;
    let keep = |pending: &mut VecDeque<Entry>, e: Entry| {
        if pending.len() >= config.max_buffered {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            counters.pending.fetch_sub(1, Ordering::Relaxed);
        } else {
            pending.push_back(e);
        }
    };
    loop {
        // Flush on time even while entries keep coming.
        let now = Instant::now();
        if now >= next_flush {
            flush(&config, &mut pending, &counters, &mut failing);
            next_flush = now + config.flush_interval;
        }
        match rx.recv_timeout(next_flush.saturating_duration_since(now)) {
            Ok(Msg::Entry(e)) => keep(&mut pending, e),
            Ok(Msg::Stop) | Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => {}
        }
    }
    // Take what is still queued, then make it durable.
    while let Ok(msg) = rx.try_recv() {
        if let Msg::Entry(e) = msg {
            keep(&mut pending, e);
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

/// Appends the pending entries, day by day, and syncs each file. Entries of a day whose
/// file cannot be written stay pending.
fn flush(config: &Config, pending: &mut VecDeque<Entry>, counters: &Counters, failing: &mut bool) {
    if pending.is_empty() {
        return;
    }
    let mut by_day: BTreeMap<Date, Vec<Entry>> = BTreeMap::new();
    for e in pending.drain(..) {
        by_day.entry(e.day()).or_default().push(e);
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

    /// Waits (up to 10 s: the writer is a thread, and a loaded machine delays it) until
    /// `cond` holds.
    async fn until(what: &str, cond: impl Fn() -> bool) {
        let start = std::time::Instant::now();
        while !cond() {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "timed out: {what}"
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
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
        // Durable without a shutdown: the interval flushes it.
        until("both written", || {
            log.counters().written.load(Ordering::Relaxed) == 2
        })
        .await;
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
                jiff::Timestamp::from_second(1_790_000_000 + i64::from(i)).unwrap(),
                format!("192.0.2.{i}"),
                "UA",
            )
        };
        for i in 0..7 {
            log.record(e(i));
        }
        let c = log.counters();
        until("a failed write and the overflow dropped", || {
            c.write_errors.load(Ordering::Relaxed) >= 1 && c.dropped.load(Ordering::Relaxed) == 2
        })
        .await;
        assert!(c.write_errors.load(Ordering::Relaxed) >= 1);
        assert_eq!(
            c.dropped.load(Ordering::Relaxed),
            2,
            "beyond the buffer of 5"
        );
        assert_eq!(c.pending.load(Ordering::Relaxed), 5);
        std::fs::create_dir(&logs).unwrap();
        until("the five written", || {
            c.written.load(Ordering::Relaxed) == 5
        })
        .await;
        assert_eq!(c.pending.load(Ordering::Relaxed), 0);
        stop.run().await;
        let all: String = read_all(&logs).into_values().collect();
        let expected: String = (0..5).map(|i| e(i).to_line()).collect();
        assert_eq!(all, expected, "the first five, in order, once each");
    }
}
