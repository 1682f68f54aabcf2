//! `raum prune --policy-file` on real files: correctness against an expectation the
//! test computes on its own, idempotence, crashes at every step (kill -9 and aborts
//! placed between rename and directory fsync), and two runs at once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use jiff::civil::Date;
use jiff::{SignedDuration, Timestamp, ToSpan};
use raum_testkit::process::Watched;

const DAYS: i64 = 70;
const MAX_AGE_DAYS: i64 = 56;

/// A tiny deterministic generator, so failures reproduce.
struct Lcg(u64);
impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0 >> 33
    }
}

/// One generated line and whether the policy says it must survive.
struct Line {
    text: String,
    survives: bool,
}

/// A generated log directory and what it must look like after pruning.
struct Fixture {
    dir: tempfile::TempDir,
    policy: PathBuf,
    /// File name -> lines in order.
    files: BTreeMap<String, Vec<Line>>,
    /// How many files must go whole.
    deleted_files: usize,
}

fn midnight(d: Date) -> Timestamp {
    d.to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp()
}

fn fmt(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

/// 70 days of entries from two writers; two holds, one crossing midnight; some lines
/// malformed, some files ending in a partial line. The expectation is computed here
/// from the rules in the design brief, independently of the pruner's code.
fn fixture(per_day: u64, seed: u64) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let now = Timestamp::now();
    let today = now.to_zoned(jiff::tz::TimeZone::UTC).date();
    let cutoff = now - SignedDuration::from_hours(24 * MAX_AGE_DAYS);
    // Hold A: 22:00 on day -62 to 03:00 on day -61 (crosses midnight). Hold B: the
    // whole days -66 and -65. Both well past maxAge.
    let day = |n: i64| today.checked_sub(n.days()).unwrap();
    let a_start = midnight(day(62)) + SignedDuration::from_hours(22);
    let a_end = midnight(day(61)) + SignedDuration::from_hours(3);
    let (b_start, b_end) = (
        midnight(day(66)),
        midnight(day(64)) - SignedDuration::from_nanos(1),
    );
    let held = |t: Timestamp| (a_start <= t && t <= a_end) || (b_start <= t && t <= b_end);
    let policy = dir.path().join("policy.yaml");
    std::fs::write(
        &policy,
        format!(
            "apiVersion: raum.dev/v1alpha1\nkind: RetentionPolicy\nmetadata:\n  name: access-log\n  annotations:\n    hold.raum.dev/night: \"{}/{}; crosses midnight\"\n    hold.raum.dev/days: \"{}/{}\"\nspec:\n  maxAge: {MAX_AGE_DAYS}d\n",
            fmt(a_start).replace(".000", ""),
            fmt(a_end).replace(".000", ""),
            day(66),
            day(65)
        ),
    )
    .unwrap();

    let mut rng = Lcg(seed);
    let mut files = BTreeMap::new();
    let mut deleted_files = 0;
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    for n in 0..DAYS {
        let d = day(n);
        let (from, to) = (midnight(d), midnight(d) + SignedDuration::from_hours(24));
        let file_deleted = d < today
            && to <= cutoff
            && !(a_start < to && a_end >= from)
            && !(b_start < to && b_end >= from);
        for writer in ["gw-a", "gw-b"] {
            let name = format!("access-{d}.{writer}.jsonl");
            let mut lines = Vec::new();
            // Today's entries lie between midnight and now (none from the future, and
            // never an empty file, even a minute after midnight).
            let span = if n == 0 {
                (now.duration_since(from).as_millis() as u64).max(1)
            } else {
                86_400_000
            };
            for i in 0..per_day {
                let ms = (rng.next() % span) as i64;
                let t = from + SignedDuration::from_millis(ms);
                // Entries within ten minutes of the cutoff would depend on the exact
                // instant the pruner reads the clock.
                if t.duration_since(cutoff).abs() < SignedDuration::from_mins(10) {
                    continue;
                }
                let text = if i % 97 == 13 {
                    "{\"time\": not json at all\n".to_owned()
                } else {
                    format!(
                        "{{\"time\":\"{}\",\"ip\":\"198.51.100.{}\",\"user_agent\":\"Mozilla/5.0 (test {i})\"}}\n",
                        fmt(t),
                        rng.next() % 250
                    )
                };
                let unparseable = i % 97 == 13;
                let survives =
                    !file_deleted && (unparseable || d >= today || t >= cutoff || held(t));
                lines.push(Line { text, survives });
            }
            if n % 9 == 4 {
                // A writer died mid-line: a partial last line, which is kept.
                lines.push(Line {
                    text: format!("{{\"time\":\"{}", fmt(from)),
                    survives: !file_deleted,
                });
            }
            if file_deleted {
                deleted_files += 1;
            }
            let body: String = lines.iter().map(|l| l.text.as_str()).collect();
            std::fs::write(logs.join(&name), body).unwrap();
            files.insert(name, lines);
        }
    }
    Fixture {
        dir,
        policy,
        files,
        deleted_files,
    }
}

impl Fixture {
    fn logs(&self) -> PathBuf {
        self.dir.path().join("logs")
    }

    fn prune(&self, env: &[(&str, &str)]) -> Output {
        self.command(env).output().unwrap()
    }

    fn command(&self, env: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_raum"));
        cmd.args(["prune", "--policy-file"])
            .arg(&self.policy)
            .arg("--log-dir")
            .arg(self.logs())
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        cmd
    }

    /// The log files now on disk (the lock and nothing else is allowed besides,
    /// except temporary files a crash left, which are returned separately).
    fn on_disk(&self) -> (BTreeMap<String, String>, Vec<String>) {
        let mut files = BTreeMap::new();
        let mut temps = Vec::new();
        for e in std::fs::read_dir(self.logs()).unwrap() {
            let name = e.unwrap().file_name().into_string().unwrap();
            if name == ".raum-prune.lock" {
                continue;
            }
            if name.starts_with(".access-") && name.ends_with(".tmp") {
                temps.push(name);
                continue;
            }
            assert!(
                name.starts_with("access-") && name.ends_with(".jsonl"),
                "stray file {name}"
            );
            files.insert(
                name.clone(),
                std::fs::read_to_string(self.logs().join(&name)).unwrap(),
            );
        }
        (files, temps)
    }

    /// What the directory must hold once pruning has finished.
    fn expected(&self) -> BTreeMap<String, String> {
        self.files
            .iter()
            .filter(|(_, lines)| lines.iter().any(|l| l.survives))
            .map(|(name, lines)| {
                (
                    name.clone(),
                    lines
                        .iter()
                        .filter(|l| l.survives)
                        .map(|l| l.text.as_str())
                        .collect(),
                )
            })
            .collect()
    }

    /// After any crash: every line that must survive is there exactly once, in its
    /// file, in order; nothing is invented; files hold only their own lines.
    fn assert_nothing_lost(&self, context: &str) {
        let (disk, _temps) = self.on_disk();
        for (name, lines) in &self.files {
            let must: Vec<&str> = lines
                .iter()
                .filter(|l| l.survives)
                .map(|l| l.text.as_str())
                .collect();
            let Some(content) = disk.get(name) else {
                assert!(
                    must.is_empty(),
                    "{context}: {name} is gone but holds {} entries to keep",
                    must.len()
                );
                continue;
            };
            // The file is a subsequence of the original that contains every line that
            // must survive: walk both.
            let mut rest = content.as_str();
            let mut kept_required = 0;
            for l in lines {
                if let Some(after) = rest.strip_prefix(l.text.as_str()) {
                    rest = after;
                    if l.survives {
                        kept_required += 1;
                    }
                } else {
                    assert!(
                        !l.survives,
                        "{context}: {name} lost a line it must keep: {:?}",
                        l.text
                    );
                }
            }
            assert!(
                rest.is_empty(),
                "{context}: {name} holds bytes that are not its own lines: {rest:?}"
            );
            assert_eq!(kept_required, must.len(), "{context}: {name}");
        }
        for name in disk.keys() {
            assert!(
                self.files.contains_key(name),
                "{context}: unknown file {name}"
            );
        }
    }
}

fn summary(out: &Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim())
        .unwrap_or_else(|e| panic!("{e}: {stdout}\n{}", String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn pruning_keeps_exactly_the_unexpired_and_held_entries_and_is_idempotent() {
    let f = fixture(150, 7);
    let total_before: usize = f.files.values().map(Vec::len).sum();
    let out = f.prune(&[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let s = summary(&out);
    assert_eq!(s["outcome"], "Succeeded");
    let (disk, temps) = f.on_disk();
    assert!(temps.is_empty(), "{temps:?}");
    let expected = f.expected();
    assert_eq!(
        disk.keys().collect::<Vec<_>>(),
        expected.keys().collect::<Vec<_>>()
    );
    for (name, content) in &expected {
        assert!(
            disk[name] == *content,
            "{name} differs from the expectation"
        );
    }
    let total_after: usize = expected.values().map(|c| c.lines().count()).sum();
    assert!(total_after < total_before && total_after > 0);
    let sum = &s["summary"];
    assert_eq!(
        sum["filesDeleted"].as_u64().unwrap() as usize,
        f.deleted_files,
        "{sum}"
    );
    assert!(f.deleted_files >= 10);
    assert!(sum["filesRewritten"].as_u64().unwrap() >= 4, "{sum}");
    assert!(sum["entriesKeptForHolds"].as_u64().unwrap() > 0, "{sum}");

    // The second run finds nothing to do and changes nothing.
    let again = f.prune(&[]);
    assert!(again.status.success());
    let s2 = summary(&again);
    assert_eq!(s2["summary"]["filesDeleted"], 0, "{s2}");
    assert_eq!(s2["summary"]["filesRewritten"], 0, "{s2}");
    assert_eq!(s2["summary"]["entriesRemoved"], 0, "{s2}");
    assert_eq!(f.on_disk().0, disk);
}

#[test]
fn dry_run_changes_nothing_and_reports_the_same_counts() {
    let f = fixture(40, 11);
    let (before, _) = f.on_disk();
    let dry = f.command(&[]).arg("--dry-run").output().unwrap();
    assert!(dry.status.success());
    assert_eq!(f.on_disk().0, before, "a dry run changed files");
    let real = f.prune(&[]);
    let (d, r) = (
        summary(&dry)["summary"].clone(),
        summary(&real)["summary"].clone(),
    );
    for k in [
        "filesDeleted",
        "filesRewritten",
        "entriesRemoved",
        "entriesKeptForHolds",
    ] {
        assert_eq!(d[k], r[k], "{k}: dry {d} real {r}");
    }
}

/// Crash the pruner at every step it takes, and at random moments, and check after
/// each crash that nothing that must be kept was lost or doubled; then a new run
/// finishes the job exactly.
#[test]
fn crashes_at_any_step_lose_nothing_and_the_next_run_completes() {
    let mut crashed = 0;
    // Every occurrence of every step: abort at the 1st, 2nd, ... until a run gets
    // through without reaching the n-th (all occurrences covered).
    for (seed, point) in ["rewrite-start", "temp-synced", "renamed", "unlinked"]
        .iter()
        .enumerate()
    {
        for n in 1.. {
            let f = fixture(30, 100 + seed as u64 * 100 + n);
            let fault = format!("{point}:{n}:abort");
            let out = f.prune(&[("RAUM_PRUNE_FAULT", &fault)]);
            f.assert_nothing_lost(&fault);
            let done = f.prune(&[]);
            assert!(
                done.status.success(),
                "{fault}: {}",
                String::from_utf8_lossy(&done.stderr)
            );
            let (disk, temps) = f.on_disk();
            assert!(temps.is_empty(), "{fault}: {temps:?}");
            assert_eq!(
                disk,
                f.expected(),
                "{fault}: the run after the crash did not complete the job"
            );
            if out.status.success() {
                assert!(n > 1, "{point} never reached");
                break;
            }
            crashed += 1;
        }
    }
    // And kill -9 at random moments within a run's duration.
    let probe = fixture(400, 999);
    let start = std::time::Instant::now();
    assert!(probe.prune(&[]).status.success());
    let run_us = start.elapsed().as_micros() as u64;
    let mut rng = Lcg(4711);
    let mut killed = 0;
    for i in 0..30 {
        let f = fixture(400, 1000 + i);
        let mut child = f.command(&[]).spawn().unwrap();
        std::thread::sleep(Duration::from_micros(rng.next() % run_us.max(1)));
        let _ = child.kill();
        if !child.wait().unwrap().success() {
            killed += 1;
        }
        f.assert_nothing_lost(&format!("kill -9 #{i}"));
        let done = f.prune(&[]);
        assert!(done.status.success());
        assert_eq!(f.on_disk().0, f.expected(), "kill -9 #{i}: not completed");
    }
    println!("{crashed} injected crashes, {killed} of 30 random kills landed mid-run");
    assert!(crashed + killed >= 50, "only {crashed} + {killed} crashes");
}

#[test]
fn two_runs_at_once_one_waits_out_nothing_is_lost() {
    let f = fixture(60, 99);
    // The first run pauses at its first rewrite, holding the lock.
    let mut first = Watched::spawn(f.command(&[("RAUM_PRUNE_FAULT", "rewrite-start:1:pause")]));
    first.wait_for_line("paused at rewrite-start", Duration::from_secs(30));
    let second = f.prune(&[]);
    assert!(second.status.success(), "the second run exits cleanly");
    assert!(
        String::from_utf8_lossy(&second.stderr).contains("another prune run holds the lock"),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let (status, stderr) = first.finish();
    assert!(status.success(), "{stderr}");
    assert_eq!(f.on_disk().0, f.expected());
}

#[test]
fn a_hold_placed_during_a_run_protects_what_it_covers() {
    let f = fixture(60, 5);
    // Pause at the first rewrite (the oldest days are deleted before it), then hold
    // everything by editing the policy file, as compliance staff would annotate.
    let mut child = Watched::spawn(f.command(&[("RAUM_PRUNE_FAULT", "rewrite-start:1:pause")]));
    child.wait_for_line("paused at rewrite-start", Duration::from_secs(30));
    let text = std::fs::read_to_string(&f.policy).unwrap();
    std::fs::write(
        &f.policy,
        text.replace(
            "  annotations:\n",
            "  annotations:\n    raum.dev/hold: \"attack under investigation\"\n",
        ),
    )
    .unwrap();
    let mut stdout = child.take_stdout().unwrap();
    let (status, stderr) = child.finish();
    assert!(status.success(), "{stderr}");
    let mut out = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut out).unwrap();
    // Every file that existed when the hold was placed is still there, untouched.
    let (disk, _) = f.on_disk();
    let s: serde_json::Value = serde_json::from_str(out.trim()).unwrap();
    let deleted = s["summary"]["filesDeleted"].as_u64().unwrap() as usize;
    assert_eq!(disk.len() + deleted, f.files.len(), "{s}");
    assert_eq!(
        s["summary"]["filesRewritten"], 0,
        "nothing rewritten under the hold: {s}"
    );
    for (name, content) in &disk {
        let original: String = f.files[name].iter().map(|l| l.text.as_str()).collect();
        assert_eq!(*content, original, "{name} changed under the hold");
    }
}

#[test]
fn a_bad_policy_file_or_directory_fails_with_a_clear_error() {
    let f = fixture(5, 1);
    std::fs::write(
        &f.policy,
        "apiVersion: raum.dev/v1alpha1\nkind: RetentionPolicy\nmetadata: {name: p}\nspec:\n  maxAge: 8 weeks\n",
    )
    .unwrap();
    let out = f.prune(&[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("maxAge \"8 weeks\""), "{err}");
    std::fs::write(&f.policy, ": : not yaml [").unwrap();
    let err = String::from_utf8_lossy(&f.prune(&[]).stderr).into_owned();
    assert!(err.contains("is not a RetentionPolicy"), "{err}");
    let out = Command::new(env!("CARGO_BIN_EXE_raum"))
        .args(["prune", "--policy-file"])
        .arg(&f.policy)
        .args(["--log-dir", "/nonexistent/raum-logs"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/raum-logs"));
}
