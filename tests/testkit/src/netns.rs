//! Two network namespaces of a test's own, joined by a veth pair: a server side and a
//! client side, for tests of what crosses a real network (a shaped downlink, a
//! firewall that lets no UDP out).
//!
//! Addresses are from 198.18.0.0/15 (reserved for network tests) and exist only inside
//! the two namespaces; nothing is routed off the machine. Both namespaces (and with
//! them the veth pair, nftables rules and qdiscs inside) are deleted on drop, however
//! the test ends, and namespaces an earlier run left behind (killed before its
//! cleanup) are swept when the next one starts.

use std::process::{Command, Output};

/// The server side's address.
pub const SERVER_IP: &str = "198.18.0.1";
/// The client side's address.
pub const CLIENT_IP: &str = "198.18.0.2";

/// Runs `cmd` and panics with its stderr if it fails.
pub fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("the command runs");
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The two namespaces and the pair between them.
pub struct Pair {
    /// The server namespace's name.
    pub server: String,
    /// The client namespace's name.
    pub client: String,
    /// The veth end in the server namespace (the client's end is this plus `c`).
    pub dev: String,
}

impl Pair {
    /// Makes the namespaces `raum-<tag>-<pid>-<n>-s` and `-c` (`n` counts the pairs
    /// of this process) with `lo` up and [`SERVER_IP`]/30 and [`CLIENT_IP`]/30 on the
    /// pair. `tag` is two or three letters (interface names have 15 bytes).
    pub fn new(tag: &str) -> Pair {
        static MADE: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        sweep_stale(tag);
        let id = std::process::id();
        let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 100;
        let pair = Pair {
            server: format!("raum-{tag}-{id}-{n}-s"),
            client: format!("raum-{tag}-{id}-{n}-c"),
            dev: format!("r{tag}{id}x{n}"),
        };
        let peer = format!("{}c", pair.dev);
        for ns in [&pair.server, &pair.client] {
            run(Command::new("ip").args(["netns", "add", ns]));
            run(Command::new("ip").args(["-n", ns, "link", "set", "lo", "up"]));
        }
        run(Command::new("ip").args([
            "link",
            "add",
            &pair.dev,
            "netns",
            &pair.server,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
            "netns",
            &pair.client,
        ]));
        for (ns, dev, ip) in [
            (&pair.server, &pair.dev, SERVER_IP),
            (&pair.client, &peer, CLIENT_IP),
        ] {
            run(Command::new("ip").args([
                "-n",
                ns,
                "addr",
                "add",
                &format!("{ip}/30"),
                "dev",
                dev,
            ]));
            run(Command::new("ip").args(["-n", ns, "link", "set", dev, "up"]));
        }
        pair
    }

    /// A command that runs `program` in namespace `ns`.
    pub fn exec(ns: &str, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns]).arg(program);
        cmd
    }

    /// Loads nftables `rules` (a ruleset file's text) into namespace `ns`; they go
    /// with the namespace.
    pub fn nft(ns: &str, rules: &str) {
        let file = tempfile::NamedTempFile::new().expect("a temporary file");
        std::fs::write(file.path(), rules).expect("the rules are written");
        run(Self::exec(ns, "nft").arg("-f").arg(file.path()));
    }

    /// The packets counted so far by the first `counter` of nftables table `inet
    /// <table>` in namespace `ns`.
    pub fn nft_packets(ns: &str, table: &str) -> u64 {
        let out = run(Self::exec(ns, "nft").args(["list", "table", "inet", table]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let words: Vec<&str> = text.split_whitespace().collect();
        let at = words
            .iter()
            .position(|w| *w == "packets")
            .unwrap_or_else(|| panic!("a counter in {text}"));
        words[at + 1].parse().expect("a number")
    }
}

impl Drop for Pair {
    fn drop(&mut self) {
        // Deleting a namespace deletes the veth end in it, and with it the pair.
        for ns in [&self.server, &self.client] {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
    }
}

/// Deletes `raum-<tag>-<pid>-*` namespaces whose process is gone.
fn sweep_stale(tag: &str) {
    let out = run(Command::new("ip").args(["netns", "list"]));
    let prefix = format!("raum-{tag}-");
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(&prefix)
            .and_then(|r| r.split('-').next())
            .and_then(|p| p.parse::<u32>().ok())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = Command::new("ip").args(["netns", "del", name]).status();
        }
    }
}

/// A script (written into `dir`) that runs Chromium in namespace `ns`, for
/// playwright-core to start as its browser (`ip netns exec` execs, so the pipe to it
/// stays the same), with `home` as its HOME: where Chromium on Linux finds the NSS
/// database of certificates its user trusts.
pub fn chromium_in(dir: &std::path::Path, ns: &str, home: &std::path::Path) -> String {
    let path = dir.join(format!("chromium-{ns}"));
    std::fs::write(
        &path,
        format!(
            "#!/bin/sh\nHOME={} exec ip netns exec {ns} /usr/bin/chromium \"$@\"\n",
            home.display()
        ),
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path.display().to_string()
}
