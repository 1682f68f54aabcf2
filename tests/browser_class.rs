//! A class of 30 through `raum standalone`: 27 synthetic participants (the load
//! generator, each camera three simulcast layers of real VP8, answering keyframe
//! requests, its microphone's level in turn) and three headless Chromium pupils in the
//! grid view on laptop-sized screens. Each Chromium must receive at most 6 Mbit/s in
//! all and decode every tile on its screen; the process's CPU time is recorded. A
//! test binary of its own, so no other browser test shares the two cores with it.
//!
//! The standalone process and the load generator are the release binary (the one
//! the image ships, `RAUM_RELEASE_BIN`, which tests/run builds first): the test build
//! is unoptimised, and a meeting of 30 on it took both cores from the browsers.

use raum_testkit::browser;
use raum_testkit::loadgen::Generator;
use raum_testkit::web;

use std::time::Duration;

use serde_json::{Value, json};
use web::{Standalone, meeting_yaml};

/// The synthetic pupils, and everyone.
const SYNTHETIC: usize = 27;
const CLASS: usize = 30;

/// The release build of raum.
fn release_bin() -> std::path::PathBuf {
    let bin = std::env::var_os("RAUM_RELEASE_BIN")
        .map(std::path::PathBuf::from)
        .expect("RAUM_RELEASE_BIN names the release binary (tests/run builds it and sets it)");
    assert!(bin.exists(), "{} does not exist", bin.display());
    bin
}

#[test]
fn a_class_of_thirty_each_browser_under_six_megabits_decoding_every_tile() {
    let bin = release_bin();
    let s = Standalone::start_binary(
        &bin,
        &[(
            "class.yaml",
            &meeting_yaml("class", "  title: Lesson\n  maxParticipants: 35\n"),
        )],
        &[],
    );
    let token = Standalone::token("class");
    let url = format!("http://{}/j/{token}", s.addr);
    // The browsers join first; the synthetic pupils come once they are in, so the
    // browsers' window (all 30 in, 10 s to settle, 10 s measured: about 25 s) falls
    // inside the generator's 60 s however long Chromium took to start. (Started
    // before the browsers, a slow start once put the window after the generator had
    // left.)
    let mut browsers = browser::start(json!({
        "scenario": "class",
        "url": url,
        "expect": CLASS,
        "settleMs": 10000,
        "windowMs": 10000,
    }));
    let joined = browsers.next(Duration::from_secs(120));
    assert_eq!(joined["joined"], 3, "{joined}");
    let sfu_pid = s.child.id().to_string();
    let generator = Generator::start(
        &bin,
        &url,
        SYNTHETIC,
        &[
            "--warm-up",
            "20s",
            "--duration",
            "40s",
            "--sfu-pid",
            &sfu_pid,
        ],
    );
    let r = browsers.next(Duration::from_secs(180));
    browsers.finish();
    let out = generator.wait();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "the load generator: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_str(stdout.lines().last().unwrap_or_default())
        .unwrap_or_else(|e| panic!("{e}: {stdout}"));
    // Recorded, not asserted (this machine is noisy): the whole process (gateway and
    // SFU) in the generator's 40 s window.
    eprintln!(
        "standalone CPU: {} s in {} s; generator: {report}; browsers: {r}",
        report["sfuCpuSeconds"], report["seconds"]
    );
    // The generator's audio loss is recorded, not asserted: three browsers take the
    // two cores from its receiving too (its p99 delay reached 2.7 s, and 2.1 % of the
    // audio it measured was lost in one run, 0 in others), so here it measures the
    // machine. Audio is asserted where the machine is not saturated (tests/downlink.rs,
    // tests/media_core.rs, tests/sfu_process.rs).
    assert!(report["lossPercent"].as_f64().is_some(), "{report}");
    // Every synthetic pupil heard the 26 other synthetic ones (a stream that never
    // came would be in no loss figure; the browsers' Opus carries no send time, so
    // the generator does not count those three).
    assert_eq!(
        report["audioStreamsMin"].as_u64(),
        Some(SYNTHETIC as u64 - 1),
        "{report}"
    );
    let pages = r["pages"].as_array().expect("pages");
    assert_eq!(pages.len(), 3, "{r}");
    for p in pages {
        // A page of the grid is 16 tiles, one of them the pupil's own; 1280x800 shows
        // 11 of the others without scrolling (measured), the rest are paused.
        assert_eq!(
            p["everyone"], CLASS,
            "all still in at the window's end: {p}"
        );
        let tiles = p["tiles"].as_u64().unwrap_or(0);
        assert!((8..=15).contains(&tiles), "others on screen: {p}");
        let kbps = p["receivedKbps"].as_f64().expect("a bitrate");
        assert!(kbps <= 6000.0, "{kbps} kbit/s received: {p}");
        assert!(kbps > 500.0, "video comes: {p}");
        for (id, frames) in p["decoded"].as_object().expect("decoded") {
            let frames = frames.as_u64().unwrap_or(0);
            // 30 frames a second are sent; the two cores carry 3 to 9 of them per
            // tile (Chromium drops the rest), measured.
            assert!(
                frames >= 10,
                "tile {id}: {frames} frames decoded in 10 s: {p}"
            );
        }
    }
}
