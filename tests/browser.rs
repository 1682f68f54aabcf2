//! Real browsers in real calls through `raum standalone`: headless Chromium (Debian's
//! package, fake camera and microphone) driven by tests/browser/call.cjs. The same
//! through `raum gateway` and separate `raum sfu` processes is in
//! tests/integration/gateway.rs.

use raum_testkit::browser;
use raum_testkit::web;

use std::time::Duration;

use raum_testkit::loadgen::Generator;
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

/// A phone in German with long names: no sideways scrolling, the toolbar in one row
/// (the microphone muted: "Stummschaltung aufheben"), names cut short inside their
/// tiles, every control reached by Tab, and the chat opened by keyboard over the
/// stage, above the toolbar.
#[test]
fn a_phone_sized_screen_fits_and_the_call_works_by_keyboard() {
    use raum::gateway::i18n::DE;
    let s = Standalone::start(&[("team.yaml", &meeting_yaml("team", "  title: T\n"))], &[]);
    let url = format!("http://{}/j/{}", s.addr, Standalone::token("team"));
    let shot = browser::artifacts().join("call-phone.png");
    let r = browser::run(
        json!({"scenario": "phone", "url": url, "screenshot": shot}),
        Duration::from_secs(90),
    );
    eprintln!("{r}");
    let reached: Vec<&str> = r["reached"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert_eq!(r["shareHidden"], true, "no screen sharing on phones: {r}");
    for control in [
        "mic",
        "cam",
        "hand",
        "view",
        "people-toggle",
        "chat-toggle",
        "leave",
        "invite",
        "devices-open",
    ] {
        assert!(
            reached.contains(&control),
            "{control} not reachable by Tab: {r}"
        );
    }
    for state in ["closed", "chatOpen"] {
        let m = &r[state];
        assert!(
            m["overflow"].as_i64().unwrap() <= 0,
            "{state}: sideways: {r}"
        );
        assert_eq!(m["toolbarRows"], 1, "{state}: the toolbar wraps: {r}");
        assert_eq!(m["micLabel"], DE.unmute, "{r}");
        assert_eq!(m["sheetAboveToolbar"], true, "{state}: {r}");
        let captions = m["captions"].as_array().unwrap();
        assert_eq!(captions.len(), 2, "{r}");
        for c in captions {
            assert_eq!(c["inside"], true, "a name leaves its tile: {r}");
            assert!(
                c["heightShare"].as_f64().unwrap() <= 0.25,
                "a name covers its tile: {r}"
            );
        }
    }
}

/// The grid fills the stage: with 3 and 9 people on a 1280x800 screen and 3 on a
/// phone, the tiles (16:9, none overlapping, none off the stage) cover at least 60 %
/// of the stage beside the side panel, and more of the window with the panel closed;
/// the speaker view's large tile reaches at least three quarters across the stage. The others are `raum loadtest`'s synthetic
/// participants (real VP8).
#[test]
fn the_grid_fills_the_stage_with_16_9_tiles_for_3_and_9_people_and_on_a_phone() {
    let s = Standalone::start(
        &[(
            "team.yaml",
            &meeting_yaml("team", "  title: Klasse 7b\n  maxParticipants: 12\n"),
        )],
        &[],
    );
    let url = format!("http://{}/j/{}", s.addr, Standalone::token("team"));
    let shots = browser::artifacts();
    for (people, viewport) in [
        (3, json!({"width": 1280, "height": 800})),
        (9, json!({"width": 1280, "height": 800})),
        (3, json!({"width": 390, "height": 844})),
    ] {
        let synthetic = Generator::start(
            &raum_testkit::process::raum_bin(),
            &url,
            people - 1,
            &["--warm-up", "3s", "--duration", "60s"],
        );
        let r = browser::run(
            json!({"scenario": "stage", "url": url, "expect": people,
                   "viewport": viewport, "screenshots": shots}),
            Duration::from_secs(120),
        );
        drop(synthetic);
        eprintln!("{people} on {viewport}: {r}");
        for view in ["grid", "closed", "speaker"] {
            let g = &r[view];
            assert_eq!(g["tiles"], people, "{view}: {r}");
            assert_eq!(g["overlaps"], 0, "{view}: {r}");
            assert!(g["worstAspect"].as_f64().unwrap() < 0.02, "{view}: {r}");
            assert!(g["overflow"].as_i64().unwrap() <= 0, "{view}: {r}");
        }
        for view in ["grid", "closed"] {
            let g = &r[view];
            assert_eq!(g["outside"], 0, "{view}: {r}");
            assert!(
                g["coverage"].as_f64().unwrap() >= 0.6,
                "{view}: the tiles cover too little of the stage: {r}"
            );
        }
        assert!(
            r["closed"]["ofWindow"].as_f64().unwrap() > r["grid"]["ofWindow"].as_f64().unwrap()
                || viewport["width"] == 390,
            "closing the panel gives the tiles its room: {r}"
        );
        assert!(
            r["speaker"]["mainSpan"].as_f64().unwrap() >= 0.75,
            "the speaker view's large tile: {r}"
        );
    }
}

/// Devices and the rest of the toolbar, with fake devices (three cameras, three
/// microphones and speakers): the lobby's microphone level, joining muted and without
/// camera, switching camera, microphone and speaker mid-call without a new offer, full
/// screen, the chat's unread badge, and each tile's connection quality.
#[test]
fn devices_switch_mid_call_and_the_toolbar_shows_levels_badges_and_quality() {
    use raum::gateway::i18n::EN;
    let s = Standalone::start(&[("team.yaml", &meeting_yaml("team", "  title: T\n"))], &[]);
    let url = format!("http://{}/j/{}", s.addr, Standalone::token("team"));
    let r = browser::run(
        json!({"scenario": "devices", "url": url}),
        Duration::from_secs(150),
    );
    eprintln!("{r}");
    assert!(
        r["lobbyLevel"].as_f64().unwrap() > 0.05,
        "the lobby's meter shows the beeping microphone: {r}"
    );
    assert_eq!(
        r["bobButtons"],
        json!({"mic": "true", "cam": "true"}),
        "{r}"
    );
    assert_eq!(
        r["adaSeesBob"],
        json!({"cameraOff": true, "muted": true}),
        "{r}"
    );
    assert_eq!(r["adaReceivesBob"]["videos"], 1, "{r}");
    assert_eq!(r["speakerShown"], true, "{r}");
    let sends = r["adaSends"].as_array().unwrap();
    assert!(sends.contains(&json!("fake_device_2")), "{r}");
    assert!(sends.contains(&json!("Fake Audio Input 1")), "{r}");
    assert!(
        !sends.contains(&json!("fake_device_0")),
        "the old camera: {r}"
    );
    assert_eq!(r["dialogClosed"], true, "{r}");
    assert_eq!(r["adaSameSession"], true, "{r}");
    assert_eq!(
        r["sinks"], 1,
        "the remote tile plays on the chosen speaker: {r}"
    );
    assert_eq!(r["bobReceivesAda"]["videos"], 1, "{r}");
    assert_eq!(r["bobSameTracks"], true, "no new offer: {r}");
    assert_eq!(
        r["fullscreen"],
        json!({"on": true, "pressed": "true", "label": EN.exit_fullscreen}),
        "{r}"
    );
    assert_eq!(
        r["windowed"],
        json!({"on": false, "pressed": "false", "label": EN.fullscreen}),
        "{r}"
    );
    assert_eq!(r["unread"]["badge"], "2", "{r}");
    assert_eq!(
        r["unread"]["label"],
        format!("{}, {}", EN.chat, EN.chat_unread.replace("{n}", "2")),
        "{r}"
    );
    assert_eq!(
        r["afterOpening"],
        json!({"badge": false, "unread": 0, "lines": ["eins", "zwei"]}),
        "{r}"
    );
    let quality = r["quality"].as_array().unwrap();
    assert_eq!(quality.len(), 2, "{r}");
    for q in quality {
        // A loopback call: nothing poor (fair only where the machine's load costs
        // frames); the weak case is tests/weak_link.rs.
        assert!(
            q["level"] == "good" || q["level"] == "fair",
            "quality on loopback: {r}"
        );
        let label = q["label"].as_str().unwrap();
        assert!(
            label.starts_with(EN.quality_good) || label.starts_with(EN.quality_fair),
            "{r}"
        );
    }
    assert_eq!(r["banners"], json!([]), "no banner on loopback: {r}");
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
