//! `raum standalone` as a process, seen from outside without a browser: the pages for
//! every state of a meeting in German and English, the access log and what stays out
//! of the process log, a read-only log directory, meeting files coming and going, the
//! miss rate limit and refused WebSockets. (tests/browser.rs has the calls.)

use raum_testkit::web;

use std::time::Duration;

use raum_testkit::wait::eventually_blocking as eventually;
use web::{Standalone, access_log, get, meeting_yaml};

const ENDED: &str = "  title: Gestern\n  startsAt: '2020-01-01T10:00:00Z'\n  duration: 1h\n";
const LATER: &str = "  title: Later\n  startsAt: '2099-01-01T10:00:00Z'\n";
const PAIR: &str = "  title: Pair\n  maxParticipants: 2\n";
const OPEN: &str = "  title: Open\n";

fn page(s: &Standalone, path: &str, lang: &str) -> web::Response {
    get(
        &s.addr,
        path,
        &[("accept-language", lang), ("user-agent", "page-test")],
    )
}

fn h1(body: &str) -> &str {
    let start = body.find("<h1>").expect("a heading") + 4;
    let end = start + body[start..].find("</h1>").unwrap();
    &body[start..end]
}

#[tokio::test]
async fn every_state_has_its_page_in_german_and_english() {
    let s = Standalone::start(
        &[
            ("ended.yaml", &meeting_yaml("ended", ENDED)),
            ("later.yaml", &meeting_yaml("later", LATER)),
            ("pair.yaml", &meeting_yaml("pair", PAIR)),
        ],
        &[],
    );
    let t = |n: &str| format!("/j/{}", Standalone::token(n));
    let cases = [
        ("/j/unknown-token", 404, "Not found", "Nicht gefunden"),
        (
            "/j/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            404,
            "Not found",
            "Nicht gefunden",
        ),
        (
            &t("ended"),
            410,
            "This meeting has ended",
            "Dieses Meeting ist beendet",
        ),
        (
            &t("later"),
            200,
            "The meeting has not started yet",
            "Das Meeting hat noch nicht begonnen",
        ),
    ];
    for (path, status, en, de) in cases {
        let r = page(&s, path, "en-GB,en;q=0.9");
        assert_eq!((r.status, h1(&r.body)), (status, en), "{path}");
        assert!(r.body.contains("<html lang=\"en\">"));
        assert!(r.body.contains("href=\"/privacy\""));
        let r = page(&s, path, "de-DE,de;q=0.9,en;q=0.5");
        assert_eq!((r.status, h1(&r.body)), (status, de), "{path}");
    }
    // Every miss gets the very same page.
    assert_eq!(
        page(&s, "/j/unknown-token", "en").body,
        page(&s, "/j/AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "en").body
    );
    // The waiting page shows the start.
    let r = page(&s, &t("later"), "en");
    assert!(
        r.body.contains("datetime=\"2099-01-01T10:00:00Z\""),
        "{}",
        r.body
    );
    assert_eq!(r.header("cache-control"), Some("no-store"));
    assert_eq!(r.header("referrer-policy"), Some("no-referrer"));

    // Full: two people in a meeting for two.
    let token = Standalone::token("pair");
    let mut a = web::connect(&s.addr, &token, &s.origin(), "ws-test").await;
    let mut b = web::connect(&s.addr, &token, &s.origin(), "ws-test").await;
    assert_eq!(web::join(&mut a, "A", &token).await["type"], "welcome");
    assert_eq!(web::join(&mut b, "B", &token).await["type"], "welcome");
    eventually("the full page", Duration::from_secs(5), || {
        page(&s, &t("pair"), "en").status == 503
    });
    let r = page(&s, &t("pair"), "en");
    assert_eq!(h1(&r.body), "This meeting is full");
    assert!(r.body.contains("All 2 places are taken"));
    let r = page(&s, &t("pair"), "de");
    assert_eq!(h1(&r.body), "Dieses Meeting ist voll");
    // A third who got in before the page knew is refused by the room.
    let mut c = web::connect(&s.addr, &token, &s.origin(), "ws-test").await;
    let refused = web::join(&mut c, "C", &token).await;
    assert_eq!(refused["code"], "room-full", "{refused}");

    // The privacy notice in both languages.
    let r = page(&s, "/privacy", "de");
    assert!(r.body.contains("IP-Adresse") && r.body.contains("56 Tagen (8 Wochen)"));
    let r = page(&s, "/privacy", "en");
    assert!(r.body.contains("IP address") && r.body.contains("never stored"));
}

#[tokio::test]
async fn the_access_log_holds_one_line_per_page_and_join_with_exactly_three_fields() {
    let s = Standalone::start(
        &[("open.yaml", &meeting_yaml("open", OPEN))],
        &["--trusted-proxy=127.0.0.2"],
    );
    let token = Standalone::token("open");
    let ua = "Mozilla/5.0 (canary-ua-7f3e)";
    // Two page accesses, one with a forged X-Forwarded-For from an untrusted peer.
    get(&s.addr, &format!("/j/{token}"), &[("user-agent", ua)]);
    get(
        &s.addr,
        &format!("/j/{token}"),
        &[("user-agent", ua), ("x-forwarded-for", "198.51.100.99")],
    );
    // One join.
    let mut ws = web::connect(&s.addr, &token, &s.origin(), ua).await;
    assert_eq!(
        web::join(&mut ws, "Nobody-in-logs", &token).await["type"],
        "welcome"
    );
    // A page access through a trusted proxy (127.0.0.2 is loopback too).
    let trusted = {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let sock = tokio::net::TcpSocket::new_v4().unwrap();
        sock.bind("127.0.0.2:0".parse().unwrap()).unwrap();
        let mut st = sock.connect(s.addr.parse().unwrap()).await.unwrap();
        let req = format!(
            "GET /j/{token} HTTP/1.1\r\nhost: x\r\nuser-agent: {ua}\r\nx-forwarded-for: 203.0.113.77\r\nconnection: close\r\n\r\n"
        );
        st.write_all(req.as_bytes()).await.unwrap();
        let mut out = String::new();
        st.read_to_string(&mut out).await.unwrap();
        out
    };
    assert!(trusted.starts_with("HTTP/1.1 200"), "{trusted}");

    eventually("four entries", Duration::from_secs(5), || {
        access_log(&s.logs()).len() == 4
    });
    let entries = access_log(&s.logs());
    for e in &entries {
        let mut keys: Vec<&str> = e.keys().map(String::as_str).collect();
        keys.sort();
        assert_eq!(keys, ["ip", "time", "user_agent"], "{e:?}");
        assert_eq!(e["user_agent"], ua);
        let time = e["time"].as_str().unwrap();
        assert_eq!(time.len(), "2026-11-26T21:03:04.123Z".len(), "{time}");
        assert!(time.ends_with('Z'));
        time.parse::<jiff::Timestamp>().unwrap();
    }
    let ips: Vec<&str> = entries.iter().map(|e| e["ip"].as_str().unwrap()).collect();
    assert_eq!(ips, ["127.0.0.1", "127.0.0.1", "127.0.0.1", "203.0.113.77"]);
    // One file per UTC day per instance (the pruner's lock file lives there too).
    let files: Vec<String> = std::fs::read_dir(s.logs())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .filter(|f| f.starts_with("access-"))
        .collect();
    let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    assert!(
        files == [format!("access-{today}.standalone.jsonl")]
            || jiff::Timestamp::now().strftime("%H%M").to_string() == "0000",
        "{files:?}"
    );
    // Nothing of it in the process log.
    drop(ws);
    let log = s.log();
    for secret in [
        ua,
        "canary-ua",
        "203.0.113.77",
        "198.51.100.99",
        &token,
        "Nobody-in-logs",
    ] {
        assert!(
            !log.contains(secret),
            "{secret:?} in the process log:\n{log}"
        );
    }
}

/// Makes the access-log directory refuse writes even for root: `chattr +i` (immutable)
/// when running as root, which ignores permission bits; `chmod 555` otherwise.
fn read_only(dir: &std::path::Path, on: bool) {
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    let status = if root {
        std::process::Command::new("chattr")
            .arg(if on { "+i" } else { "-i" })
            .arg(dir)
            .status()
            .unwrap()
    } else {
        std::process::Command::new("chmod")
            .arg(if on { "555" } else { "755" })
            .arg(dir)
            .status()
            .unwrap()
    };
    assert!(status.success(), "cannot make {} read-only", dir.display());
}

fn metric(s: &Standalone, name: &str) -> u64 {
    let body = get(&s.addr, "/metrics", &[]).body;
    body.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("{name} not in\n{body}"))
        .parse()
        .unwrap()
}

#[tokio::test]
async fn a_read_only_log_directory_keeps_joins_working_and_loses_nothing() {
    let s = Standalone::start(&[("open.yaml", &meeting_yaml("open", OPEN))], &[]);
    let token = Standalone::token("open");
    std::fs::create_dir_all(s.logs()).unwrap();
    read_only(&s.logs(), true);
    // Writable again however the test ends, so the directory can be removed.
    struct Writable(std::path::PathBuf);
    impl Drop for Writable {
        fn drop(&mut self) {
            read_only(&self.0, false);
        }
    }
    let _writable = Writable(s.logs());
    assert!(
        std::fs::write(s.logs().join("probe"), "x").is_err(),
        "the directory still takes writes; the test cannot fail the writer"
    );
    for i in 0..5 {
        let r = get(
            &s.addr,
            &format!("/j/{token}"),
            &[("user-agent", &format!("ro-{i}"))],
        );
        assert_eq!(
            r.status, 200,
            "pages are served while the log cannot be written"
        );
    }
    let mut ws = web::connect(&s.addr, &token, &s.origin(), "ro-join").await;
    assert_eq!(web::join(&mut ws, "R", &token).await["type"], "welcome");
    eventually("the failure in metrics", Duration::from_secs(5), || {
        metric(&s, "raum_gateway_access_log_write_errors_total") > 0
    });
    assert_eq!(metric(&s, "raum_gateway_access_log_pending"), 6);
    assert_eq!(metric(&s, "raum_gateway_access_log_written_total"), 0);
    assert!(s.log().contains("the disk refuses writes"), "{}", s.log());
    read_only(&s.logs(), false);
    eventually("the entries written", Duration::from_secs(5), || {
        metric(&s, "raum_gateway_access_log_written_total") == 6
    });
    let agents: Vec<String> = access_log(&s.logs())
        .iter()
        .map(|e| e["user_agent"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(agents, ["ro-0", "ro-1", "ro-2", "ro-3", "ro-4", "ro-join"]);
    assert_eq!(metric(&s, "raum_gateway_access_log_dropped_total"), 0);
    assert!(s.log().contains("writing again"));
}

#[tokio::test]
async fn meeting_files_come_and_go_and_a_bad_one_is_named_without_stopping_the_others() {
    let s = Standalone::start(&[("open.yaml", &meeting_yaml("open", OPEN))], &[]);
    let new = Standalone::token("dropped-in");
    assert_eq!(get(&s.addr, &format!("/j/{new}"), &[]).status, 404);
    std::fs::write(
        s.meetings().join("dropped-in.yaml"),
        meeting_yaml("dropped-in", "  title: Dropped in\n"),
    )
    .unwrap();
    std::fs::write(s.meetings().join("broken.yaml"), "apiVersion: raum.dev/v1alpha1\nkind: Meeting\nmetadata: {name: broken}\nspec: {title: B, maxParticipants: 1000}\n").unwrap();
    std::fs::write(s.meetings().join("garbage.yml"), "spec: [unclosed\n").unwrap();
    eventually("the new meeting", Duration::from_secs(5), || {
        get(&s.addr, &format!("/j/{new}"), &[]).status == 200
    });
    eventually("the reports", Duration::from_secs(5), || {
        let log = s.log();
        log.contains("broken.yaml") && log.contains("garbage.yml")
    });
    let log = s.log();
    let line = log.lines().find(|l| l.contains("broken.yaml")).unwrap();
    assert!(
        line.contains("maxParticipants 1000 must be between 2 and 500"),
        "{line}"
    );
    let line = log.lines().find(|l| l.contains("garbage.yml")).unwrap();
    assert!(line.contains("not valid YAML"), "{line}");
    assert_eq!(
        log.matches("broken.yaml").count(),
        1,
        "reported once, not at every rescan:\n{log}"
    );
    let open = Standalone::token("open");
    assert_eq!(get(&s.addr, &format!("/j/{open}"), &[]).status, 200);

    // A participant of a meeting whose file is removed is told it ended.
    let mut ws = web::connect(&s.addr, &new, &s.origin(), "t").await;
    assert_eq!(web::join(&mut ws, "P", &new).await["type"], "welcome");
    std::fs::remove_file(s.meetings().join("dropped-in.yaml")).unwrap();
    let ended = web::next(&mut ws).await;
    assert_eq!(ended["code"], "meeting-ended", "{ended}");
    assert_eq!(get(&s.addr, &format!("/j/{new}"), &[]).status, 404);
}

#[tokio::test]
async fn misses_are_rate_limited_and_foreign_or_unknown_sockets_refused() {
    let s = Standalone::start(&[("open.yaml", &meeting_yaml("open", OPEN))], &[]);
    let token = Standalone::token("open");
    // A page on another site may not open a participant's connection.
    let mut req = tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
        format!("ws://{}/j/{token}/ws", s.addr),
    )
    .unwrap();
    req.headers_mut()
        .insert("origin", "https://evil.example".parse().unwrap());
    let err = tokio_tungstenite::connect_async(req).await.unwrap_err();
    assert!(err.to_string().contains("403"), "{err}");
    // localhost is the same machine as the printed 127.0.0.1.
    let port = s.addr.rsplit(':').next().unwrap();
    let mut ws = web::connect(&s.addr, &token, &format!("http://localhost:{port}"), "t").await;
    assert_eq!(web::join(&mut ws, "L", &token).await["type"], "welcome");
    drop(ws);
    // An unknown token on the socket: unauthorized, as the SFU would say.
    let fake = "B".repeat(43);
    let mut ws = web::connect(&s.addr, &fake, &s.origin(), "t").await;
    assert_eq!(web::next(&mut ws).await["code"], "unauthorized");

    // Ten misses (one was the socket above), then even the right token is refused.
    for i in 0..9 {
        let r = get(&s.addr, &format!("/j/guess{i}"), &[]);
        assert_eq!(r.status, 404);
    }
    let r = get(
        &s.addr,
        &format!("/j/{token}"),
        &[("accept-language", "de")],
    );
    assert_eq!(r.status, 429);
    assert_eq!(h1(&r.body), "Zu viele Versuche");
    assert_eq!(r.header("retry-after"), Some("60"));
    let m = get(&s.addr, "/metrics", &[]).body;
    assert!(
        m.contains("raum_gateway_lookups_total{route=\"join\",outcome=\"rate_limited\"} 1"),
        "{m}"
    );
}

#[tokio::test]
async fn the_access_log_is_pruned_at_start_under_the_directorys_policy_and_its_holds() {
    // Written before the start: two old days, one of them held, and today.
    let dir_entries = |day: &str| {
        format!(
            "{{\"time\":\"{day}T10:00:00.000Z\",\"ip\":\"192.0.2.1\",\"user_agent\":\"old\"}}\n"
        )
    };
    let policy = "apiVersion: raum.dev/v1alpha1\nkind: RetentionPolicy\nmetadata:\n  name: access-log\n  annotations:\n    hold.raum.dev/incident: \"2020-03-01/2020-03-01; attack\"\nspec:\n  maxAge: 2w\n";
    let logs = tempfile::tempdir().unwrap();
    let today = jiff::Timestamp::now().strftime("%Y-%m-%d").to_string();
    for day in ["2020-01-01", "2020-03-01", today.as_str()] {
        std::fs::write(
            logs.path().join(format!("access-{day}.gw-old.jsonl")),
            dir_entries(day),
        )
        .unwrap();
    }
    let logs_arg = format!("--access-log-dir={}", logs.path().display());
    let s = Standalone::start(
        &[
            ("open.yaml", &meeting_yaml("open", OPEN)),
            ("policy.yaml", policy),
        ],
        &[&logs_arg],
    );
    eventually("the expired day deleted", Duration::from_secs(10), || {
        !logs.path().join("access-2020-01-01.gw-old.jsonl").exists()
    });
    assert!(
        logs.path().join("access-2020-03-01.gw-old.jsonl").exists(),
        "held"
    );
    assert!(
        logs.path()
            .join(format!("access-{today}.gw-old.jsonl"))
            .exists()
    );
    assert!(s.log().contains("access log pruned"), "{}", s.log());
    // The notice states the policy's two weeks.
    let r = get(&s.addr, "/privacy", &[]);
    assert!(r.body.contains("14 days (2 weeks)"), "{}", r.body);
}

/// The host link: a page and a WebSocket like the participants' link, and whoever
/// joins with its token is a host, as the room decides from the token alone (a
/// participant's token saying it is a host stays a participant; the join message has
/// no say). Neither token is in the log.
#[tokio::test(flavor = "multi_thread")]
async fn the_host_link_joins_as_host_and_the_participants_link_as_participant() {
    let s = Standalone::start(
        &[("lesson.yaml", &meeting_yaml("lesson", "  title: Maths\n"))],
        &[],
    );
    let token = Standalone::token("lesson");
    let host = Standalone::host_token("lesson");
    assert_ne!(token, host);
    eventually("the host page", Duration::from_secs(5), || {
        page(&s, &format!("/j/{host}"), "en").status == 200
    });
    assert!(page(&s, &format!("/j/{host}"), "en").body.contains("Maths"));
    let mut h = web::connect(&s.addr, &host, &s.origin(), "ws-test").await;
    let welcome = web::join(&mut h, "Teacher", &host).await;
    assert_eq!(
        (welcome["type"].as_str(), welcome["role"].as_str()),
        (Some("welcome"), Some("host")),
        "{welcome}"
    );
    let mut p = web::connect(&s.addr, &token, &s.origin(), "ws-test").await;
    let welcome = web::join(&mut p, "Pupil", &token).await;
    assert_eq!(welcome["role"], "participant", "{welcome}");
    let pupil_id = welcome["id"].as_str().unwrap().to_owned();
    // The host token through the participants' URL, and the reverse: the token in the
    // join message decides, and a wrong one is refused.
    let mut mixed = web::connect(&s.addr, &token, &s.origin(), "ws-test").await;
    assert_eq!(web::join(&mut mixed, "Mixed", &host).await["role"], "host");
    let mut forged = web::connect(&s.addr, &token, &s.origin(), "ws-test").await;
    let refused = web::join(&mut forged, "Forged", &format!("{}A", &host[..42])).await;
    assert_eq!(refused["code"], "unauthorized", "{refused}");

    // Through the sessions of the real process: a participant's host message is
    // forbidden, the host's lock is announced and keeps newcomers out, and the
    // host's removal disconnects.
    async fn say(ws: &mut web::Socket, msg: serde_json::Value) {
        use futures::SinkExt;
        ws.send(tokio_tungstenite::tungstenite::Message::text(
            msg.to_string(),
        ))
        .await
        .unwrap();
    }
    /// The next message of `type_`, skipping others (peer-joined, mute, ...).
    async fn until_type(ws: &mut web::Socket, type_: &str) -> serde_json::Value {
        loop {
            let m = web::next(ws).await;
            if m["type"] == type_ {
                return m;
            }
        }
    }
    say(&mut p, serde_json::json!({"type": "lock", "locked": true})).await;
    let e = until_type(&mut p, "error").await;
    assert_eq!(e["code"], "forbidden", "{e}");
    say(&mut h, serde_json::json!({"type": "lock", "locked": true})).await;
    assert_eq!(until_type(&mut p, "locked").await["locked"], true);
    let mut late = web::connect(&s.addr, &token, &s.origin(), "ws-test").await;
    let refused = web::join(&mut late, "Late", &token).await;
    assert_eq!(refused["code"], "locked", "{refused}");
    say(
        &mut h,
        serde_json::json!({"type": "remove", "id": pupil_id}),
    )
    .await;
    let e = until_type(&mut p, "error").await;
    assert_eq!(e["code"], "removed", "{e}");
    web::closed(&mut p).await;

    let log = s.log();
    assert!(
        !log.contains(&host) && !log.contains(&token),
        "a token in the log"
    );
}

#[test]
fn demo_prints_a_link_that_opens_the_demo_meeting() {
    let dir = tempfile::tempdir().unwrap();
    let addr = format!("127.0.0.1:{}", web::free_port());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_raum"))
        .current_dir(dir.path())
        .args(["standalone", "--demo", &format!("--listen={addr}")])
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let lines = web::lines_of(&mut child);
    let mut links = Vec::new();
    while links.len() < 2 {
        let line = lines
            .recv_timeout(Duration::from_secs(20))
            .expect("the demo prints its links");
        if let Some(url) = line.trim().strip_prefix(&format!("http://{addr}")) {
            links.push(url.to_owned());
        }
    }
    let (url, host) = (&links[0], &links[1]);
    assert_ne!(url, host, "a host link of its own");
    let r = get(&addr, url, &[]);
    let h = get(&addr, host, &[]);
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(r.body.contains("raum demo"));
    assert_eq!(
        h.status, 200,
        "the host link opens the meeting too: {}",
        h.body
    );
    // Its files: the meeting, the key, the access log, under ./raum-data.
    assert!(dir.path().join("raum-data/meetings/demo.yaml").is_file());
    assert!(dir.path().join("raum-data/url-key").is_file());
}

/// Whoever runs standalone learns each meeting's links: printed on standard output
/// when a file is first read (one added while running too), never into the process
/// log, and by `raum standalone urls` for every file at any time (which creates no
/// key and names the files it cannot use).
#[test]
fn each_meeting_files_links_are_printed_once_and_by_the_urls_command() {
    // Before any key exists: refused, and nothing is created.
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raum"))
        .args(["standalone", "urls"])
        .arg(format!(
            "--meetings-dir={}",
            empty.path().join("meetings").display()
        ))
        .arg(format!("--key-file={}", empty.path().join("key").display()))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("no URL key yet"), "{err}");
    assert!(!empty.path().join("key").exists(), "urls created a key");

    let s = Standalone::start(
        &[("team.yaml", &meeting_yaml("team", "  title: Team\n"))],
        &[],
    );
    let link = |token: String| format!("http://{}/j/{token}", s.addr);
    eventually("the team's links", Duration::from_secs(10), || {
        s.output().contains(&link(Standalone::token("team")))
    });
    std::fs::write(
        s.meetings().join("lesson.yaml"),
        meeting_yaml("lesson", "  title: Maths\n"),
    )
    .unwrap();
    std::fs::write(s.meetings().join("broken.yaml"), "spec: [").unwrap();
    eventually("the new file's links", Duration::from_secs(10), || {
        s.output().contains(&link(Standalone::host_token("lesson")))
    });
    let printed = s.output();
    assert!(
        printed.contains(&link(Standalone::token("lesson"))),
        "{printed}"
    );
    assert!(printed.contains("meeting lesson ("), "{printed}");
    // Once each, however often the directory is read again.
    std::thread::sleep(Duration::from_millis(600));
    assert_eq!(
        s.output().matches(&link(Standalone::token("team"))).count(),
        1
    );
    let log = s.log();
    for token in [Standalone::token("team"), Standalone::token("lesson")] {
        assert!(!log.contains(&token), "a token in the process log:\n{log}");
    }

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_raum"))
        .args(["standalone", "urls"])
        .arg(format!("--listen={}", s.addr))
        .arg(format!("--meetings-dir={}", s.meetings().display()))
        .arg(format!(
            "--key-file={}",
            s.dir.path().join("url-key").display()
        ))
        .output()
        .unwrap();
    assert!(out.status.success());
    let listed = String::from_utf8_lossy(&out.stdout);
    for token in [
        Standalone::token("team"),
        Standalone::host_token("team"),
        Standalone::token("lesson"),
        Standalone::host_token("lesson"),
    ] {
        assert!(listed.contains(&link(token)), "{listed}");
    }
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("broken.yaml: ignored"), "{err}");
}

/// Media ports come from one range the person running standalone names (so a
/// firewall can be planned): each meeting takes the first free one, ICE-TCP on the
/// same number; when the range is used up a meeting waits, and takes a port once one
/// is free again. A range that is none is refused with the reason.
#[test]
fn media_ports_come_from_the_flag_chosen_range() {
    for (bad, why) in [
        ("5-3", "5 is above 3"),
        ("0-10", "is not a port"),
        ("40000", "is not FIRST-LAST"),
        ("a-b", "is not a port"),
        ("40000-70000", "is not a port"),
    ] {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_raum"))
            .args(["standalone", &format!("--media-ports={bad}"), "urls"])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{bad} accepted");
        assert!(err.contains(why), "{bad}: {err}");
    }
    // Two ports for three meetings.
    let first = web::free_port();
    let range = format!("--media-ports={first}-{}", first + 1);
    let files: Vec<(String, String)> = ["a", "b", "c"]
        .iter()
        .map(|n| (format!("{n}.yaml"), meeting_yaml(n, "  title: T\n")))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(f, y)| (f.as_str(), y.as_str()))
        .collect();
    let s = Standalone::start(&refs, &[&range]);
    eventually(
        "two meetings open, one waits",
        Duration::from_secs(10),
        || {
            let log = s.log();
            log.matches("meeting open").count() == 2
                && log.contains("no free UDP port in the media range")
        },
    );
    let log = s.log();
    let ports: Vec<u16> = log
        .lines()
        .filter(|l| l.contains("meeting open"))
        .map(|l| {
            let p = l.split("media_port=").nth(1).unwrap();
            p.split_whitespace().next().unwrap().parse().unwrap()
        })
        .collect();
    let mut sorted = ports.clone();
    sorted.sort();
    assert_eq!(sorted, [first, first + 1], "{log}");
    for p in &ports {
        assert!(
            log.contains(&format!("media_port={p} ice_tcp_port=Some({p})")),
            "ICE-TCP on the same number: {log}"
        );
    }
    // The one without a port says "in a moment"; once a meeting ends, it opens.
    let waiting: Vec<&str> = ["a", "b", "c"]
        .into_iter()
        .filter(|n| {
            page(&s, &format!("/j/{}", Standalone::token(n)), "en")
                .body
                .contains("data-page=\"waiting\"")
        })
        .collect();
    assert_eq!(waiting.len(), 1, "{waiting:?}");
    let open = ["a", "b", "c"]
        .into_iter()
        .find(|n| !waiting.contains(n))
        .unwrap();
    std::fs::remove_file(s.meetings().join(format!("{open}.yaml"))).unwrap();
    eventually("the waiting meeting opens", Duration::from_secs(10), || {
        s.log().matches("meeting open").count() == 3
    });
}
