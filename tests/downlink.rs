//! A constrained downlink on a real network: `raum sfu` in a network namespace of its
//! own, a subscriber in another, joined by a veth pair whose SFU side `tc tbf` limits
//! to 2 Mbit/s (a home connection). Two simulcast publishers sit beside the SFU and
//! show each other large; the subscriber shows both large too, which would need
//! 3 Mbit/s. The SFU's only way to know is the subscriber's transport-wide feedback
//! on real arrival times through the kernel's shaper.
//!
//! Addresses are from 198.18.0.0/15 (reserved for network tests) and exist only inside
//! the two namespaces; nothing is routed off the machine, and both namespaces (with
//! the veth pair) are deleted at the end, however the test ends.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use raum_testkit::netns::{CLIENT_IP as SUBSCRIBER_IP, Pair, SERVER_IP as SFU_IP, run};
use serde_json::Value;

const TOKEN: &str = "downlink-test-token";
const SFU_HTTP: &str = "198.18.0.1:8080";
/// The subscriber's link, as `tc` writes it.
const RATE: &str = "2mbit";
/// Packets a second of one camera's top layer: 1,500 kbit/s at 30 frames a second is
/// 6,250 bytes a frame, six packets.
const TOP_PPS: f64 = 180.0;

/// The namespaces (from the testkit) and the processes started in them (with their
/// stderr files), killed first.
struct Net {
    pair: Pair,
    children: Vec<Option<Child>>,
    logs: Vec<std::path::PathBuf>,
}

impl Net {
    fn new() -> Net {
        let pair = Pair::new("dl");
        // The subscriber's downlink: what leaves the SFU's side of the pair. A home
        // router's buffer: 100 ms at the link's rate, and a 16 KiB burst.
        run(Pair::exec(&pair.server, "tc").args([
            "qdisc", "add", "dev", &pair.dev, "root", "tbf", "rate", RATE, "burst", "16kb",
            "latency", "100ms",
        ]));
        Net {
            pair,
            children: Vec::new(),
            logs: Vec::new(),
        }
    }

    /// `raum ARGS` in namespace `ns`: its stdout piped (one report line), its stderr
    /// into a file (a pipe nobody reads could fill and stop it).
    fn raum(&mut self, ns: &str, args: &[&str]) {
        let log = std::env::temp_dir().join(format!(
            "raum-dl-{}-{}.log",
            std::process::id(),
            self.logs.len()
        ));
        let child = Pair::exec(ns, env!("CARGO_BIN_EXE_raum"))
            .args(args)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).expect("a log file"))
            .spawn()
            .expect("raum starts");
        self.children.push(Some(child));
        self.logs.push(log);
    }

    /// What process `i` wrote to stderr so far.
    fn log(&self, i: usize) -> String {
        std::fs::read_to_string(&self.logs[i]).unwrap_or_default()
    }

    /// The shaper's counters: bytes sent, packets sent, packets dropped.
    fn shaper(&self) -> (u64, u64, u64) {
        let out = run(Pair::exec(&self.pair.server, "tc").args([
            "-s",
            "qdisc",
            "show",
            "dev",
            &self.pair.dev,
        ]));
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        // " Sent 123 bytes 45 pkt (dropped 6, overlimits 7 requeues 0)"
        let words: Vec<&str> = text.split_whitespace().collect();
        let after = |w: &str| -> u64 {
            let i = words.iter().position(|x| *x == w).expect("a tc counter");
            words[i + 1]
                .trim_end_matches(',')
                .parse()
                .expect("a number")
        };
        let at = words.iter().position(|x| *x == "Sent").expect("Sent");
        (
            words[at + 1].parse().expect("bytes"),
            words[at + 3].parse().expect("packets"),
            after("(dropped"),
        )
    }

    /// Waits (at most a minute) for process `i` and gives its last output line as
    /// JSON.
    fn report(&mut self, i: usize) -> Value {
        let mut child = self.children[i].take().expect("a running process");
        let deadline = Instant::now() + Duration::from_secs(60);
        while child.try_wait().expect("wait").is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!("process {i} did not end: {}", self.log(i));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let out = child.wait_with_output().expect("raum ends");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "load generator failed: {}",
            self.log(i)
        );
        let last = stdout.lines().last().unwrap_or_default();
        serde_json::from_str(last).unwrap_or_else(|e| panic!("{e}: {stdout}"))
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for c in self.children.iter_mut().flatten() {
            let _ = c.kill();
            let _ = c.wait();
        }
        for l in &self.logs {
            let _ = std::fs::remove_file(l);
        }
        // Then the pair goes (its own drop).
    }
}

fn figure(v: &Value, key: &str) -> f64 {
    v[key].as_f64().unwrap_or_else(|| panic!("{key} in {v}"))
}

/// A participant's video packets by layer, lowest first.
fn layers_of(participant: &Value) -> Vec<u64> {
    participant["videoPacketsByLayer"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|v| v.as_u64().unwrap_or(0))
        .collect()
}

#[test]
fn a_two_megabit_downlink_gets_lower_layers_whole_audio_and_no_more_than_it_carries() {
    let mut net = Net::new();
    let (server, client) = (net.pair.server.clone(), net.pair.client.clone());
    net.raum(
        &server,
        &[
            "sfu",
            "--token",
            TOKEN,
            "--listen",
            SFU_HTTP,
            "--media-bind",
            SFU_IP,
            "--media-port",
            "0",
            "--max-participants",
            "10",
        ],
    );
    // Ready when its metrics answer (from inside its namespace).
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let ok = Pair::exec(&server, "curl")
            .args(["-sf", "-o", "/dev/null"])
            .arg(format!("http://{SFU_HTTP}/metrics"))
            .status()
            .is_ok_and(|s| s.success());
        if ok {
            break;
        }
        assert!(Instant::now() < deadline, "the SFU did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let target = format!("http://{SFU_HTTP}");
    // Two publishers beside the SFU, each showing the other large: 150, 500 and
    // 1,500 kbit/s layers, 30 frames a second.
    net.raum(
        &server,
        &[
            "loadtest",
            "--token",
            TOKEN,
            "--target",
            &target,
            "--participants",
            "2",
            "--simulcast",
            "--layout",
            "large",
            "--bind",
            SFU_IP,
            "--warm-up",
            "9s",
            "--duration",
            "13s",
            "--each",
        ],
    );
    std::thread::sleep(Duration::from_millis(500));
    // The subscriber behind the narrow link (its microphone only), showing both large.
    let started = Instant::now();
    net.raum(
        &client,
        &[
            "loadtest",
            "--token",
            TOKEN,
            "--target",
            &target,
            "--participants",
            "1",
            "--simulcast",
            "--no-video",
            "--layout",
            "large",
            "--bind",
            SUBSCRIBER_IP,
            "--warm-up",
            "10s",
            "--duration",
            "10s",
            "--each",
        ],
    );
    // The shaper's counters over the subscriber's measured window (10 s in, 10 s).
    std::thread::sleep(Duration::from_secs(10).saturating_sub(started.elapsed()));
    let before = net.shaper();
    let from = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let after = net.shaper();
    let window = from.elapsed().as_secs_f64();
    let sub = net.report(2);
    let publishers = net.report(1);
    let (sent_bytes, sent_packets, dropped) =
        (after.0 - before.0, after.1 - before.1, after.2 - before.2);
    let rate = sent_bytes as f64 * 8.0 / window;
    eprintln!(
        "subscriber: {sub}\npublishers: {publishers}\nshaper: {rate:.0} bit/s, {sent_packets} packets sent, {dropped} dropped"
    );

    // What the SFU sent the subscriber fitted its link: the shaper hardly had to drop
    // anything (a sender over the rate loses a tenth of its packets or more).
    assert!(
        dropped * 100 <= sent_packets,
        "the shaper dropped {dropped} of {} packets: the SFU sent more than the link carries",
        sent_packets + dropped
    );
    // (What went through, `rate`, cannot exceed the shaper's rate: printed above, not
    // asserted.)
    let me = &sub["participants"][0];
    // Video still comes, in lower layers than the top one for at least one camera:
    // both at the top would be 3 Mbit/s, twice [`TOP_PPS`] packets a second.
    let layers = layers_of(me);
    let video: u64 = layers.iter().sum();
    assert!(
        figure(me, "receivedKbps") > 300.0,
        "video still comes: {me}"
    );
    let top_per_second = layers[2] as f64 / figure(&sub, "seconds");
    assert!(
        top_per_second < 1.5 * TOP_PPS,
        "not both cameras at the top: {layers:?}"
    );
    assert!(
        layers[0] + layers[1] > video / 20,
        "lower layers: {layers:?}"
    );
    // Audio whole: both publishers heard, 50 packets a second each, nothing lost, no
    // gap a listener would hear.
    assert_eq!(me["audioStreams"].as_u64(), Some(2), "{me}");
    assert!(figure(me, "audioPackets") >= 950.0, "{me}");
    assert!(figure(me, "audioLossPercent") < 0.5, "audio lost: {me}");
    assert!(figure(me, "audioMaxGapMs") < 150.0, "an audio gap: {me}");
    // The publishers, on an unconstrained path, keep each other's top layer.
    for p in publishers["participants"].as_array().expect("participants") {
        let l = layers_of(p);
        let all: u64 = l.iter().sum();
        assert!(all > 0 && l[2] * 100 >= all * 95, "the top layer: {p}");
        assert_eq!(p["audioStreams"].as_u64(), Some(2), "{p}");
    }
    // The SFU's log names no participant's address (the privacy notice; its own
    // listening address it names, and the publishers share it).
    let log = net.log(0);
    assert!(log.contains("SFU listening"), "{log}");
    assert!(
        !log.contains(SUBSCRIBER_IP),
        "the SFU logged a participant's address: {log}"
    );
}
