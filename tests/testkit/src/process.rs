//! Processes: the raum binary under test, the repository, and a child that pauses at a
//! marker line it prints (the pruner's fault hook) until the test lets it go on.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

/// The repository root.
pub fn repo() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../.."))
}

/// The `raum` binary cargo built for the integration test that runs this (test
/// executables live in `target/<profile>/deps/`, the binary one level up).
pub fn raum_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile>/deps/<test>");
    let bin = dir.join("raum");
    assert!(
        bin.exists(),
        "{} is missing: run the tests with cargo test",
        bin.display()
    );
    bin
}

/// A child whose stderr is read line by line as it comes, and whose stdin the test
/// holds (closing it releases a paused pruner).
pub struct Watched {
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Receiver<String>,
    stderr: Vec<String>,
}

impl Watched {
    /// Spawns `cmd` with stdin and stderr piped (stdout as the command says).
    pub fn spawn(mut cmd: Command) -> Watched {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the child starts");
        let stdin = child.stdin.take();
        let err = child.stderr.take().expect("piped");
        let (tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines() {
                if tx.send(line.unwrap_or_default()).is_err() {
                    break;
                }
            }
        });
        Watched {
            child,
            stdin,
            lines,
            stderr: Vec::new(),
        }
    }

    /// Waits until the child prints a line containing `marker` on stderr; fails with
    /// everything it printed if it does not within `limit` or ends first.
    pub fn wait_for_line(&mut self, marker: &str, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => {
                    let found = line.contains(marker);
                    self.stderr.push(line);
                    if found {
                        return;
                    }
                }
                Err(RecvTimeoutError::Timeout) => panic!(
                    "no line with {marker:?} within {limit:?}; stderr so far:\n{}",
                    self.stderr.join("\n")
                ),
                Err(RecvTimeoutError::Disconnected) => panic!(
                    "the child ended without printing {marker:?} (built without the feature it needs?); stderr:\n{}",
                    self.stderr.join("\n")
                ),
            }
        }
    }

    /// Closes the child's stdin: a paused pruner goes on.
    pub fn release(&mut self) {
        drop(self.stdin.take());
    }

    /// Releases the child and waits for it; its exit status and whole stderr.
    pub fn finish(mut self) -> (ExitStatus, String) {
        self.release();
        let status = self.child.wait().expect("the child ends");
        self.stderr.extend(self.lines.iter());
        (status, self.stderr.join("\n"))
    }

    /// Its stdout, if piped.
    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }
}
