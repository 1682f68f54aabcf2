//! Simulcast in a real browser: headless Chromium publishes three encodings through
//! `raum standalone`, and another gets the layer its tile needs. A test binary of its
//! own, because cargo runs test binaries one after another: with the other browser
//! tests' Chromiums encoding beside it on two cores, Chromium's CPU adaptation drops
//! the top layer and the test would measure the machine.

use raum_testkit::browser;
use raum_testkit::loadgen::Generator;
use raum_testkit::web;

use std::time::Duration;

use serde_json::json;
use web::{Standalone, meeting_yaml};

/// Ada (Chromium, three encodings) and Bea (Chromium) with five synthetic
/// participants between them (`raum loadtest`, real VP8): Bea pins Ada large, sees
/// her small in the grid, pins her again, and then has her on the second page of a
/// narrow window, and turns to it.
#[test]
fn simulcast_the_layer_follows_the_tile_and_off_screen_video_pauses() {
    let s = Standalone::start(
        &[("class.yaml", &meeting_yaml("class", "  title: Lesson\n"))],
        &[],
    );
    let url = format!("http://{}/j/{}", s.addr, Standalone::token("class"));
    let mut run = browser::start(json!({"scenario": "simulcast", "url": url}));
    let ready = run.next(Duration::from_secs(60));
    assert_eq!(ready["ready"], "Bea", "{ready}");
    let synthetic = Generator::start(
        &raum_testkit::process::raum_bin(),
        &url,
        5,
        &["--warm-up", "3s", "--duration", "150s"],
    );
    let r = run.next(Duration::from_secs(150));
    run.finish();
    drop(synthetic);
    eprintln!("{r}");
    // Ada's camera goes out in three encodings, lowest first.
    let sent = &r["sent"];
    let width = |rid: &str| sent[rid]["width"].as_u64().unwrap_or(0);
    assert!(
        width("q") > 0 && width("q") < width("h") && width("h") < width("f"),
        "{r}"
    );
    // A small tile gets at most 320 wide; the large one at least 640, and decoding
    // goes on across the switch.
    assert!(r["small"]["width"].as_u64().unwrap() <= 320, "{r}");
    assert!(r["large"]["width"].as_u64().unwrap() >= 640, "{r}");
    // The issue asks for the larger layer within 3 s (measured: 0.45 to 0.75 s).
    assert!(
        r["upMs"].as_u64().unwrap() <= 3000,
        "the larger layer within 3 s: {r}"
    );
    assert!(
        r["afterUp"]["frames"].as_u64() > r["large"]["frames"].as_u64(),
        "{r}"
    );
    // Off screen (another page): no packets at all; back on screen: a keyframe
    // first, then frames keep coming. (Measured before pages: 0.55 to 0.8 s from the
    // scroll to that keyframe decoded, about 3 s with the other browser tests on the
    // two cores; the bound catches a stall, it is no benchmark.)
    assert_eq!(
        r["pausedStart"]["packets"], r["pausedEnd"]["packets"],
        "{r}"
    );
    assert!(
        r["resumed"]["keyframes"].as_u64() > r["pausedEnd"]["keyframes"].as_u64(),
        "{r}"
    );
    assert!(
        r["afterResume"]["frames"].as_u64() > r["resumed"]["frames"].as_u64(),
        "{r}"
    );
    assert!(
        r["resumeMs"].as_u64().unwrap() <= 5000,
        "resumed promptly: {r}"
    );
}
