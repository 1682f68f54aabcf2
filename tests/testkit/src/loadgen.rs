//! `raum loadtest` as a test's synthetic participants: simulcast cameras of real VP8
//! (clips made once by tests/tools/make-clips and kept in the cache), answering
//! keyframe requests, microphones talking in turn.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

/// The VP8 clips, made once and kept in the cache (`RAUM_CACHE_DIR`, default
/// `~/.cache/raum`).
pub fn clips() -> PathBuf {
    let cache = std::env::var_os("RAUM_CACHE_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("XDG_CACHE_HOME")
                .map(PathBuf::from)
                .unwrap_or_else(|| PathBuf::from(std::env::var("HOME").unwrap()).join(".cache"));
            home.join("raum")
        });
    let dir = cache.join("clips");
    let script = crate::process::repo().join("tests/tools/make-clips");
    let ok = Command::new(script)
        .arg(&dir)
        .status()
        .expect("make-clips runs");
    assert!(ok.success(), "tests/tools/make-clips failed");
    dir
}

/// A running load generator, killed if the test ends before it does.
pub struct Generator(Option<Child>);

impl Generator {
    /// Starts `bin loadtest` against the meeting at `url` (its join URL, whose last
    /// part is the token) with `participants` simulcast participants in the grid
    /// layout, sending the clips; `extra` are further flags (durations, `--sfu-pid`).
    pub fn start(bin: &Path, url: &str, participants: usize, extra: &[&str]) -> Generator {
        Self::start_as(Command::new(bin), url, participants, extra)
    }

    /// The same, run by `raum` (a command that runs the raum binary: in a network
    /// namespace, say).
    pub fn start_as(
        mut raum: Command,
        url: &str,
        participants: usize,
        extra: &[&str],
    ) -> Generator {
        let token = url.rsplit('/').next().expect("a join URL");
        let child = raum
            .args(["loadtest", "--target", url, "--token", token])
            .args(["--participants", &participants.to_string()])
            .args(["--simulcast", "--layout", "grid", "--clips"])
            .arg(clips())
            .args(extra)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the load generator starts");
        Generator(Some(child))
    }

    /// Waits for it to end: its output (the report is stdout's last line).
    pub fn wait(mut self) -> Output {
        self.0
            .take()
            .expect("a child")
            .wait_with_output()
            .expect("it ends")
    }
}

impl Drop for Generator {
    fn drop(&mut self) {
        if let Some(c) = self.0.as_mut() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
