//! Runs tests/browser/call.cjs: headless Chromium from Debian's `chromium` package,
//! with a fake camera and microphone, driven by playwright-core. `tests/run` installs
//! both (playwright-core into ~/.cache/raum/browser, outside the clone).

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

/// Where playwright-core is installed.
fn node_modules() -> PathBuf {
    let dir = std::env::var_os("RAUM_BROWSER_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/raum/browser/node_modules")
        });
    assert!(
        dir.join("playwright-core").is_dir(),
        "playwright-core is not installed in {} (tests/run installs it)",
        dir.display()
    );
    assert!(
        std::path::Path::new("/usr/bin/chromium").exists(),
        "Debian's chromium is not installed (tests/run installs it)"
    );
    dir
}

/// Where test artifacts (screenshots) go: outside the clone, next to the build.
pub fn artifacts() -> PathBuf {
    let base = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| crate::process::repo().join("target"));
    let dir = base.join("test-artifacts");
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A running browser scenario.
pub struct Run {
    child: Child,
    lines: Receiver<String>,
    stderr: PathBuf,
}

/// Starts a scenario of tests/browser/call.cjs with these arguments.
pub fn start(args: serde_json::Value) -> Run {
    let stderr = tempfile::NamedTempFile::new()
        .unwrap()
        .into_temp_path()
        .keep()
        .unwrap();
    let mut child = Command::new("node")
        .arg(crate::process::repo().join("tests/browser/call.cjs"))
        .arg(args.to_string())
        .env("NODE_PATH", node_modules())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr).unwrap())
        .spawn()
        .expect("node runs");
    let out = child.stdout.take().unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    Run {
        child,
        lines,
        stderr,
    }
}

impl Run {
    /// The next JSON line the scenario prints; panics with its stderr if it fails or
    /// takes longer than `limit`.
    pub fn next(&mut self, limit: Duration) -> serde_json::Value {
        match self.lines.recv_timeout(limit) {
            Ok(line) => serde_json::from_str(&line)
                .unwrap_or_else(|_| panic!("not JSON: {line}\n{}", self.stderr())),
            Err(RecvTimeoutError::Timeout) => {
                let _ = self.child.kill();
                panic!(
                    "the browser scenario took over {limit:?}\n{}",
                    self.stderr()
                )
            }
            Err(RecvTimeoutError::Disconnected) => {
                let status = self.child.wait().unwrap();
                panic!("the browser scenario failed ({status})\n{}", self.stderr())
            }
        }
    }

    /// Waits for the scenario to end successfully.
    pub fn finish(mut self) {
        let status = self.child.wait().unwrap();
        assert!(
            status.success(),
            "browser scenario: {status}\n{}",
            self.stderr()
        );
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }
}

impl Drop for Run {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.stderr);
    }
}

/// Runs a scenario to its end and returns its (last) result line.
pub fn run(args: serde_json::Value, limit: Duration) -> serde_json::Value {
    let mut r = start(args);
    let v = r.next(limit);
    r.finish();
    v
}
