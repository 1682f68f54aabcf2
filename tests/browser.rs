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
    for name in ["Ada", "Grace", "Linus"] {
        assert_eq!(
            result["talking"][name],
            json!({"self": true, "others": 2}),
            "{name}: the talking rings: {result}"
        );
    }
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
fn the_waiting_page_names_the_start_counts_down_and_becomes_the_join_page() {
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
    // The start in words, with the time zone it is given in (the test machine's).
    let starts = r["starts"].as_str().unwrap();
    assert!(starts.starts_with("Es beginnt am "), "{r}");
    assert!(
        ["UTC", "GMT", "MEZ", "MESZ"]
            .iter()
            .any(|z| starts.contains(z)),
        "no time zone: {r}"
    );
    assert!(
        r["countdown"].as_str().unwrap().starts_with("Beginnt in "),
        "{r}"
    );
    assert_eq!(r["after"], "join", "{r}");
}

/// The bugs a first call found, each as a participant meets it.
#[test]
fn a_first_call_keeps_state_names_and_the_call_and_asks_only_its_origin() {
    let s = Standalone::start(
        &[("team.yaml", &meeting_yaml("team", "  title: Team\n"))],
        &[],
    );
    let url = format!("http://{}/j/{}", s.addr, Standalone::token("team"));
    let host_url = format!("http://{}/j/{}", s.addr, Standalone::host_token("team"));
    let r = browser::run(
        json!({"scenario": "firstcall", "url": url, "hostUrl": host_url}),
        Duration::from_secs(120),
    );
    eprintln!("{r}");
    assert_eq!(
        r["bobSeesAda"],
        json!({"cameraOff": true, "initials": "AL", "initialsShown": true}),
        "a latecomer sees the camera-off tile: {r}"
    );
    assert_eq!(
        r["adaSelf"],
        json!({"cameraOff": true, "initials": "AL"}),
        "{r}"
    );
    assert_eq!(r["noticePath"], "/privacy", "{r}");
    assert_eq!(
        r["bobStillIn"], true,
        "the privacy link leaves the call: {r}"
    );
    assert_eq!(r["nameAfterRejoin"], "Bob", "{r}");
    assert_eq!(
        r["mutedMarks"],
        json!({"bob": true, "own": true, "emoji": false, "micButtonIcon": true}),
        "{r}"
    );
    assert_eq!(r["mutedRang"], false, "a muted tile rang: {r}");
    assert_eq!(r["title"], "Team", "{r}");
    assert_eq!(r["peopleHead"], "People here (2)", "{r}");
    // Hours and minutes in the browser's way ("12:28 AM" in en-US).
    let time = r["chatTime"].as_str().unwrap();
    assert!(
        time.contains(':') && time.len() <= 8,
        "a chat line's time: {r}"
    );
    assert_eq!(r["invite"], url, "{r}");
    assert_eq!(
        r["hostInvite"], url,
        "the host's page invites with the participants' link: {r}"
    );
    assert_eq!(r["failed"], json!([]), "requests that failed: {r}");
    assert_eq!(r["foreign"], json!([]), "requests beyond the origin: {r}");
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
    assert_eq!(r["shareHidden"], true, "no screen sharing on phones: {r}");
    for control in ["mic", "cam", "hand", "leave", "chat-input"] {
        assert!(
            reached.contains(&control),
            "{control} not reachable by Tab: {r}"
        );
    }
}

/// A lesson in three Chromiums and a fourth for the latecomer, through `raum
/// standalone`: the lobby, a host's mute enforced by the SFU, hands, lock, removal
/// and the end, each as the pages show it (Ada's in German).
#[test]
fn a_teacher_runs_a_lesson_with_a_lobby_mute_hands_lock_and_removal() {
    use raum::gateway::i18n::{DE, EN};
    let s = Standalone::start(
        &[(
            "lesson.yaml",
            &meeting_yaml(
                "lesson",
                "  title: Lesson\n  lobby: true\n  participantsMayUnmute: false\n",
            ),
        )],
        &[],
    );
    let url = format!("http://{}/j/{}", s.addr, Standalone::token("lesson"));
    let host_url = format!("http://{}/j/{}", s.addr, Standalone::host_token("lesson"));
    let r = browser::run(
        json!({"scenario": "lesson", "url": url, "hostUrl": host_url}),
        Duration::from_secs(180),
    );
    eprintln!("{r}");
    assert_eq!(r["role"], "host", "{r}");
    assert_eq!(r["hostControls"], true, "{r}");
    assert_eq!(r["adaWaits"]["title"], DE.wait_lobby_title, "{r}");
    assert_eq!(r["adaWaits"]["text"], DE.wait_lobby_text, "{r}");
    assert_eq!(
        r["adaWaits"]["id"],
        serde_json::Value::Null,
        "waiting is not joined: {r}"
    );
    assert_eq!(r["bobWaits"]["title"], EN.wait_lobby_title, "{r}");
    assert_eq!(r["knocks"], json!(["Ada", "Bob"]), "{r}");
    assert_eq!(r["bobEnd"]["title"], EN.refused_title, "{r}");
    assert_eq!(r["bobEnd"]["text"], EN.refused_text, "{r}");
    assert_eq!(r["bobEnd"]["rejoin"], false, "no way back offered: {r}");
    assert_eq!(r["knocksAfter"], 0, "{r}");
    let m = &r["mutedAudio"];
    assert_eq!(m["whileMuted"], 0, "muted audio stops at the SFU: {r}");
    assert_eq!(m["afterOwnUnmute"], 0, "her own unmute is refused: {r}");
    assert_eq!(m["adaMicPressed"], "true", "{r}");
    assert!(
        m["afterLift"].as_u64().unwrap() > 20,
        "lifted, she is heard: {r}"
    );
    assert_eq!(r["adaStatus"], DE.err_forbidden, "{r}");
    assert!(
        r["handSeen"].as_str().unwrap().contains(EN.hand_raised),
        "{r}"
    );
    assert_eq!(r["adaHandButton"], DE.lower_hand, "{r}");
    assert_eq!(r["handsAfter"], 0, "{r}");
    assert_eq!(r["cleoEnd"], EN.locked_title, "{r}");
    assert_eq!(r["adaRemoved"]["title"], DE.removed_title, "{r}");
    assert_eq!(r["adaRemoved"]["rejoin"], false, "{r}");
    assert_eq!(r["adaAgain"], DE.removed_title, "the reload stays out: {r}");
    assert_eq!(r["teacherKnocksAfterRemoval"], 0, "{r}");
    assert_eq!(r["teacherEnd"], EN.ended_title, "{r}");
    assert_eq!(
        r["teacherEndRejoin"], false,
        "an ended meeting offers no way back: {r}"
    );
    let log = s.log();
    for secret in ["Ada", "Bob", "Cleo", "Teacher"] {
        assert!(
            !log.contains(secret),
            "{secret:?} in the process log:\n{log}"
        );
    }
}

/// Screen sharing where only hosts may share: a participant's page that shares
/// anyway is refused by the SFU, the teacher's screen is decoded large by the others,
/// a second host cannot share at the same time, and stopping in the browser's bar
/// ends it cleanly (and sharing again works).
#[test]
fn a_host_shares_a_screen_that_the_others_decode_and_participants_cannot() {
    use raum::gateway::i18n::EN;
    let s = Standalone::start(
        &[(
            "slides.yaml",
            &meeting_yaml("slides", "  title: Slides\n  screenShare: hosts\n"),
        )],
        &[],
    );
    let url = format!("http://{}/j/{}", s.addr, Standalone::token("slides"));
    let host_url = format!("http://{}/j/{}", s.addr, Standalone::host_token("slides"));
    let r = browser::run(
        json!({"scenario": "share", "url": url, "hostUrl": host_url}),
        Duration::from_secs(180),
    );
    eprintln!("{r}");
    assert_eq!(r["adaButtonHidden"], true, "{r}");
    assert_eq!(r["teacherButtonHidden"], false, "{r}");
    assert_eq!(r["adaStatus"], EN.err_forbidden, "{r}");
    assert_eq!(r["adaStillSharing"], false, "{r}");
    assert_eq!(r["teacherSeesScreenOfAda"], serde_json::Value::Null, "{r}");
    let teacher = r["teacherId"].as_str().unwrap();
    for seen in [&r["adaSees"], &r["adaSeesAgain"]] {
        assert_eq!(seen["peer"], format!("{teacher}-screen"), "{r}");
        assert_eq!(seen["caption"], "Screen of Teacher", "{r}");
        // Frames keep being decoded (few when the machine is busy: the encoder
        // drops frames under load).
        assert!(seen["rising"].as_u64().unwrap() >= 1, "decoded: {r}");
        assert!(seen["share"].as_f64().unwrap() > 0.9, "shown large: {r}");
        assert!(seen["width"].as_u64().unwrap() >= 640, "{r}");
    }
    assert_eq!(r["teacherButton"], EN.stop_share, "{r}");
    assert_eq!(r["coButtonDisabled"], true, "{r}");
    assert_eq!(r["coStatus"], EN.share_busy, "{r}");
    assert_eq!(r["coSharing"], false, "{r}");
    assert_eq!(r["adaSharerAfterStop"], serde_json::Value::Null, "{r}");
    assert_eq!(r["adaReceivesAll"]["videos"], 2, "{r}");
}

/// No text below WCAG AA contrast, in either colour scheme, on a desktop or a phone,
/// in the lobby or in the call with its buttons pressed; and no sideways scrolling.
#[test]
fn every_text_has_aa_contrast_in_light_and_dark_on_desktop_and_phone() {
    let s = Standalone::start(
        &[(
            "team.yaml",
            &meeting_yaml("team", "  title: Elternabend der Klasse 7b\n"),
        )],
        &[],
    );
    let url = format!("http://{}/j/{}", s.addr, Standalone::token("team"));
    let shots = browser::artifacts();
    let r = browser::run(
        json!({"scenario": "contrast", "url": url, "screenshots": shots}),
        Duration::from_secs(120),
    );
    eprintln!("{r}");
    let views = r.as_array().unwrap();
    assert_eq!(views.len(), 4, "{r}");
    for v in views {
        for stage in ["lobby", "inCall"] {
            let c = &v[stage];
            assert!(c["checked"].as_u64().unwrap() > 5, "{r}");
            assert_eq!(c["bad"], json!([]), "{}: {r}", v["where"]);
            assert!(
                c["overflow"].as_i64().unwrap() <= 0,
                "{}: sideways: {r}",
                v["where"]
            );
        }
    }
}
