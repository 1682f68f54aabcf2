//! Real browsers in real calls through `raum standalone`: headless Chromium (Debian's
//! package, fake camera and microphone) driven by tests/browser/call.cjs. The same
//! through `raum gateway` and separate `raum sfu` processes is in
//! tests/integration/gateway.rs.

use raum_testkit::browser;
use raum_testkit::web;

use std::time::Duration;

use serde_json::json;
use web::{Standalone, access_log, meeting_yaml};

#[test]
fn three_browsers_see_hear_and_chat_and_the_grid_shrinks_when_one_leaves() {
    let s = Standalone::start(
        &[("team.yaml", &meeting_yaml("team", "  title: Team call\n"))],
        &[],
    );
    let url = format!("http://{}/j/{}", s.addr, Standalone::token("team"));
    let shot = browser::artifacts().join("call-standalone.png");
    let _ = std::fs::remove_file(&shot);
    let result = browser::run(
        json!({"scenario": "call", "url": url, "screenshot": shot}),
        Duration::from_secs(120),
    );
    assert_eq!(result["joined"], 3, "{result}");
    for name in ["Ada", "Grace", "Linus"] {
        let r = &result["received"][name];
        assert_eq!(r["videos"], 2, "{name}: {result}");
        assert!(r["audioPackets"].as_u64().unwrap() > 0, "{name}: {result}");
        // Each video is labelled with the name of whoever sends it.
        let mut others: Vec<&str> = ["Ada", "Grace", "Linus"]
            .into_iter()
            .filter(|n| *n != name)
            .collect();
        others.sort();
        assert_eq!(r["captions"], json!(others), "{name}: {result}");
    }
    assert_eq!(result["chatSeenBy"], 2);
    assert_eq!(result["afterLeave"], json!({"Ada": 1, "Grace": 1}));
    let size = std::fs::metadata(&shot).expect("a screenshot").len();
    assert!(size > 10_000, "screenshot of {size} bytes");
    eprintln!("screenshot: {}", shot.display());

    // The access log: three page loads and three joins, by the browsers' user agents.
    raum_testkit::wait::eventually_blocking("six entries", Duration::from_secs(5), || {
        access_log(&s.logs()).len() >= 6
    });
    let entries = access_log(&s.logs());
    let mut agents: Vec<&str> = entries
        .iter()
        .map(|e| e["user_agent"].as_str().unwrap())
        .collect();
    agents.sort();
    assert_eq!(
        agents,
        [
            "raum-browser-test/Ada",
            "raum-browser-test/Ada",
            "raum-browser-test/Grace",
            "raum-browser-test/Grace",
            "raum-browser-test/Linus",
            "raum-browser-test/Linus"
        ]
    );
    assert!(
        entries
            .iter()
            .all(|e| e["ip"] == "127.0.0.1" && e.len() == 3)
    );
    let log = s.log();
    for secret in [
        "raum-browser-test",
        "Ada",
        "Grace",
        "Linus",
        "Hallo from the test",
    ] {
        assert!(
            !log.contains(secret),
            "{secret:?} in the process log:\n{log}"
        );
    }
}

#[test]
fn a_full_meeting_is_explained_in_the_browsers_language() {
    let s = Standalone::start(
        &[(
            "pair.yaml",
            &meeting_yaml("pair", "  title: Pair\n  maxParticipants: 2\n"),
        )],
        &[],
    );
    let url = format!("http://{}/j/{}", s.addr, Standalone::token("pair"));
    for (locale, lang, title) in [
        ("de-DE", "de", "Dieses Meeting ist voll"),
        ("en-US", "en", "This meeting is full"),
    ] {
        let r = browser::run(
            json!({"scenario": "full", "url": url, "locale": locale}),
            Duration::from_secs(90),
        );
        assert_eq!(r["lang"], lang, "{r}");
        assert_eq!(r["title"], title, "{r}");
        assert!(r["text"].as_str().unwrap().contains('2'), "{r}");
    }
}

#[test]
fn the_waiting_page_joins_by_itself_when_the_meeting_starts() {
    // Far enough ahead that the page is still waiting when it first loads: starting
    // Chromium beside four other browser tests once took over 5 s (the page opened on
    // the join page already).
    let starts = jiff::Timestamp::now() + jiff::SignedDuration::from_secs(15);
    let spec = format!(
        "  title: Soon\n  startsAt: '{}'\n",
        starts.strftime("%Y-%m-%dT%H:%M:%SZ")
    );
    let s = Standalone::start(&[("soon.yaml", &meeting_yaml("soon", &spec))], &[]);
    let url = format!("http://{}/j/{}", s.addr, Standalone::token("soon"));
    let r = browser::run(
        json!({"scenario": "waiting", "url": url, "locale": "de-DE"}),
        Duration::from_secs(60),
    );
    assert_eq!(r["before"], "waiting", "{r}");
    assert_eq!(r["heading"], "Das Meeting hat noch nicht begonnen", "{r}");
    assert_eq!(r["after"], "join", "{r}");
}

#[test]
fn a_denied_camera_is_explained_and_joining_without_it_works() {
    let s = Standalone::start(&[("team.yaml", &meeting_yaml("team", "  title: T\n"))], &[]);
    let url = format!("http://{}/j/{}", s.addr, Standalone::token("team"));
    for (locale, expected) in [
        (
            "de-DE",
            "Der Zugriff auf Kamera oder Mikrofon wurde verweigert",
        ),
        ("en-US", "Access to the camera or microphone was denied"),
    ] {
        let r = browser::run(
            json!({"scenario": "denied", "url": url, "locale": locale}),
            Duration::from_secs(60),
        );
        assert!(r["message"].as_str().unwrap().starts_with(expected), "{r}");
    }
}

#[test]
fn a_phone_sized_screen_fits_and_the_call_works_by_keyboard() {
    let s = Standalone::start(&[("team.yaml", &meeting_yaml("team", "  title: T\n"))], &[]);
    let url = format!("http://{}/j/{}", s.addr, Standalone::token("team"));
    let shot = browser::artifacts().join("call-phone.png");
    let r = browser::run(
        json!({"scenario": "phone", "url": url, "screenshot": shot}),
        Duration::from_secs(60),
    );
    assert!(
        r["overflow"].as_i64().unwrap() <= 0,
        "horizontal overflow: {r}"
    );
    let reached: Vec<&str> = r["reached"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    for control in ["mic", "cam", "leave", "chat-input"] {
        assert!(
            reached.contains(&control),
            "{control} not reachable by Tab: {r}"
        );
    }
}
