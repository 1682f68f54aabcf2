//! `raum sfu` as a real process on loopback: WebRTC peers (async `webrtc` crate) join
//! over its WebSocket, media flows through its one UDP port, bad input of every kind
//! gets its error without disturbing the others, SIGTERM ends the meeting within 2 s,
//! and its logs hold nothing personal.

use raum_testkit::peer;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use peer::{Client, has};
use raum::signaling::{ClientMessage, ServerMessage};
use raum_testkit::wait::eventually;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use serde_json::Value;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

const TOKEN: &str = "tok-3f9a1c";

struct Sfu {
    child: Child,
    http: String,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sfu {
    fn start(extra: &[&str]) -> Sfu {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("sfu.log");
        let child = Command::new(env!("CARGO_BIN_EXE_raum"))
            .args([
                "sfu",
                &format!("--token={TOKEN}"),
                &format!("--listen=127.0.0.1:{port}"),
                "--media-bind=127.0.0.1",
                "--media-port=0",
            ])
            .args(extra)
            .env("RAUM_LOG", "debug")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("sfu.out")).unwrap())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let sfu = Sfu {
            child,
            http: format!("127.0.0.1:{port}"),
            log,
            _dir: dir,
        };
        let start = Instant::now();
        while !sfu.logs().contains("SFU listening") {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the SFU did not start: {}",
                sfu.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        sfu
    }

    /// Everything the process wrote, stdout and stderr.
    fn logs(&self) -> String {
        let out = std::fs::read_to_string(self.log.with_file_name("sfu.out")).unwrap_or_default();
        out + &std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    async fn get(&self, path: &str) -> String {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut s = tokio::net::TcpStream::connect(&self.http).await.unwrap();
        s.write_all(
            format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .unwrap();
        let mut resp = String::new();
        s.read_to_string(&mut resp).await.unwrap();
        resp.split_once("\r\n\r\n").unwrap().1.to_owned()
    }

    async fn metric(&self, name: &str) -> u64 {
        let text = self.get("/metrics").await;
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("raum_sfu_{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    }

    fn terminate(&mut self) -> (std::process::ExitStatus, Duration) {
        let start = Instant::now();
        assert!(
            Command::new("kill")
                .args(["-TERM", &self.child.id().to_string()])
                .status()
                .unwrap()
                .success()
        );
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return (status, start.elapsed());
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "no exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for Sfu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn connect(sfu: &Sfu) -> Ws {
    tokio_tungstenite::connect_async(format!("ws://{}/ws", sfu.http))
        .await
        .unwrap()
        .0
}

/// The next JSON message on `ws`, or `None` when it closed.
async fn next(ws: &mut Ws) -> Option<Value> {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message in time")
        {
            Some(Ok(Message::Text(t))) => return Some(serde_json::from_str(&t).unwrap()),
            Some(Ok(Message::Close(_))) | None | Some(Err(_)) => return None,
            Some(Ok(_)) => continue,
        }
    }
}

/// Joins over the WebSocket and starts a WebRTC peer behind it.
async fn join(sfu: &Sfu, name: &str) -> Client {
    let mut ws = connect(sfu).await;
    let join = serde_json::json!({"type": "join", "name": name, "token": TOKEN}).to_string();
    ws.send(Message::text(join)).await.unwrap();
    let welcome = next(&mut ws).await.unwrap();
    assert_eq!(welcome["type"], "welcome", "{welcome}");
    let id: u32 = welcome["id"].as_str().unwrap().parse().unwrap();
    let (to_sfu, mut to_rx) = mpsc::unbounded_channel::<ClientMessage>();
    let (from_tx, from_sfu) = mpsc::unbounded_channel();
    let (mut sink, mut stream) = ws.split();
    tokio::spawn(async move {
        while let Some(msg) = to_rx.recv().await {
            let v = match msg {
                ClientMessage::Offer { sdp, .. } => {
                    serde_json::json!({"type": "offer", "sdp": sdp})
                }
                ClientMessage::Answer { sdp } => serde_json::json!({"type": "answer", "sdp": sdp}),
                ClientMessage::Chat { text } => serde_json::json!({"type": "chat", "text": text}),
                ClientMessage::Leave => serde_json::json!({"type": "leave"}),
                other => panic!("not used here: {other:?}"),
            };
            if sink.send(Message::text(v.to_string())).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        while let Some(Ok(Message::Text(t))) = stream.next().await {
            if let Some(m) = server_message(&t) {
                let _ = from_tx.send(m);
            }
        }
    });
    peer::start(id, to_sfu, from_sfu).await
}

/// The few server messages the peers act on, read back from JSON.
fn server_message(text: &str) -> Option<ServerMessage> {
    let v: Value = serde_json::from_str(text).ok()?;
    let s = |k: &str| v[k].as_str().unwrap_or_default().to_owned();
    Some(match v["type"].as_str()? {
        "offer" => ServerMessage::Offer { sdp: s("sdp") },
        "answer" => ServerMessage::Answer { sdp: s("sdp") },
        "chat" => ServerMessage::Chat {
            from: s("from"),
            text: s("text"),
        },
        "peer-left" => ServerMessage::PeerLeft { id: s("id") },
        _ => return None,
    })
}

fn all_receive(clients: &[&Client], min: u64) -> bool {
    clients.iter().all(|me| {
        clients.iter().filter(|o| o.id != me.id).all(|o| {
            me.count(o.id, RtpCodecKind::Audio) > min && me.count(o.id, RtpCodecKind::Video) > min
        })
    })
}

/// The UDP sockets the process holds, from /proc.
fn udp_sockets(pid: u32) -> usize {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            l.to_str()?
                .strip_prefix("socket:[")?
                .strip_suffix(']')
                .map(str::to_owned)
        })
        .collect();
    ["/proc/net/udp", "/proc/net/udp6"]
        .iter()
        .flat_map(|f| {
            std::fs::read_to_string(f)
                .unwrap_or_default()
                .lines()
                .skip(1)
                .map(str::to_owned)
                .collect::<Vec<_>>()
        })
        .filter(|l| {
            l.split_whitespace()
                .nth(9)
                .is_some_and(|inode| inodes.iter().any(|i| i == inode))
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_talk_through_one_udp_port_of_the_process() {
    let sfu = Sfu::start(&[]);
    let a = join(&sfu, "Ada").await;
    let b = join(&sfu, "Bea").await;
    let c = join(&sfu, "Cem").await;
    eventually(
        "everyone to receive everyone else",
        Duration::from_secs(30),
        || all_receive(&[&a, &b, &c], 20),
    )
    .await;
    // A few more seconds of call, then every stream must be gapless: on loopback no
    // packet is lost between the first one forwarded and the last.
    tokio::time::sleep(Duration::from_secs(2)).await;
    for me in [&a, &b, &c] {
        assert_eq!(*me.corrupt.lock().unwrap(), 0);
        assert_eq!(me.gaps(), vec![], "participant {} lost packets", me.id);
    }
    assert_eq!(
        udp_sockets(sfu.child.id()),
        1,
        "one UDP socket for all participants"
    );
    let status: Value = serde_json::from_str(&sfu.get("/status").await).unwrap();
    assert_eq!(status["participants"], 3);
    assert!(sfu.metric("rtp_forwarded_total").await > 100);
    assert_eq!(sfu.metric("datagrams_unrouted_total").await, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_its_error_and_the_others_keep_talking() {
    let sfu = Sfu::start(&[]);
    let a = join(&sfu, "Ada").await;
    let b = join(&sfu, "Bea").await;
    eventually("a call", Duration::from_secs(30), || {
        all_receive(&[&a, &b], 10)
    })
    .await;
    let forwarded_before = sfu.metric("rtp_forwarded_total").await;
    let ab_before = a.count(b.id, RtpCodecKind::Video);

    // Wrong token.
    let mut ws = connect(&sfu).await;
    ws.send(Message::text(
        r#"{"type":"join","name":"Mallory","token":"guess"}"#,
    ))
    .await
    .unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["code"], "unauthorized");
    assert!(next(&mut ws).await.is_none(), "closed");
    // Malformed JSON first.
    let mut ws = connect(&sfu).await;
    ws.send(Message::text("{not json")).await.unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["code"], "bad-request");
    assert!(next(&mut ws).await.is_none());
    // Joined, then: unknown message (error, stays), a flood (rate-limited), bad SDP
    // (error and close), and on other sockets 1 MB (too-large and close) and 10 MB.
    let mut ws = connect(&sfu).await;
    ws.send(Message::text(format!(
        r#"{{"type":"join","name":"Eve","token":"{TOKEN}"}}"#
    )))
    .await
    .unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["type"], "welcome");
    ws.send(Message::text(r#"{"type":"dance"}"#)).await.unwrap();
    let mut codes = Vec::new();
    for _ in 0..60 {
        ws.send(Message::text(
            r#"{"type":"mute","audio":true,"video":true}"#,
        ))
        .await
        .unwrap();
    }
    ws.send(Message::text(
        r#"{"type":"offer","sdp":"v=0\r\nthis is no sdp"}"#,
    ))
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    ws.send(Message::text(
        r#"{"type":"offer","sdp":"v=0\r\nthis is no sdp"}"#,
    ))
    .await
    .unwrap();
    while let Some(v) = next(&mut ws).await {
        if v["type"] == "error" {
            codes.push(v["code"].as_str().unwrap().to_owned());
        }
    }
    assert!(
        codes.first().is_some_and(|c| c == "bad-request"),
        "{codes:?}"
    );
    assert!(codes.iter().any(|c| c == "rate-limited"), "{codes:?}");
    assert_eq!(
        codes.last().map(String::as_str),
        Some("bad-request"),
        "the bad SDP, then close: {codes:?}"
    );
    // An SDP that does not even start with v=0: bad-request, then the close.
    let mut ws = connect(&sfu).await;
    ws.send(Message::text(format!(
        r#"{{"type":"join","name":"Vee","token":"{TOKEN}"}}"#
    )))
    .await
    .unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["type"], "welcome");
    ws.send(Message::text(r#"{"type":"offer","sdp":"hello"}"#))
        .await
        .unwrap();
    let mut after = Vec::new();
    while let Some(v) = next(&mut ws).await {
        after.push(v);
    }
    assert_eq!(
        after.last().map(|v| v["code"].clone()),
        Some("bad-request".into()),
        "{after:?}"
    );
    let mut ws = connect(&sfu).await;
    ws.send(Message::text(format!(
        r#"{{"type":"join","name":"Big","token":"{TOKEN}"}}"#
    )))
    .await
    .unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["type"], "welcome");
    let big = format!(r#"{{"type":"chat","text":"{}"}}"#, "x".repeat(1024 * 1024));
    ws.send(Message::text(big)).await.unwrap();
    let mut last = None;
    while let Some(v) = next(&mut ws).await {
        last = Some(v);
    }
    assert_eq!(last.unwrap()["code"], "too-large");
    // Over the read limit (2 MiB) the SFU stops reading: `too-large` is best effort
    // and the connection may be reset under the sender, but the SFU lives on.
    let mut ws = connect(&sfu).await;
    ws.send(Message::text(format!(
        r#"{{"type":"join","name":"Huge","token":"{TOKEN}"}}"#
    )))
    .await
    .unwrap();
    assert_eq!(next(&mut ws).await.unwrap()["type"], "welcome");
    let huge = format!(
        r#"{{"type":"chat","text":"{}"}}"#,
        "x".repeat(10 * 1024 * 1024)
    );
    let sent = ws.send(Message::text(huge)).await;
    let mut last = None;
    while let Some(v) = next(&mut ws).await {
        last = Some(v);
    }
    if let Some(v) = &last {
        assert_eq!(v["code"], "too-large", "{sent:?}");
    }

    // Through all of it, Ada and Bea kept talking.
    eventually("media to keep flowing", Duration::from_secs(10), || {
        a.count(b.id, RtpCodecKind::Video) > ab_before + 50
    })
    .await;
    assert!(sfu.metric("rtp_forwarded_total").await > forwarded_before + 100);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_nat_the_candidate_carries_the_advertised_address() {
    let sfu = Sfu::start(&["--advertise-ip=127.0.0.2", "--advertise-port=40000"]);
    let a = join(&sfu, "Ada").await;
    eventually("an answer", Duration::from_secs(10), || {
        has(&a, |m| matches!(m, ServerMessage::Answer { .. }))
    })
    .await;
    let sdp = a.pc.remote_description().await.unwrap().sdp;
    assert!(sdp.contains("127.0.0.2 40000 typ host"), "{sdp}");
    assert!(
        sdp.contains("b=AS:1500"),
        "the default video bitrate limit: {sdp}"
    );
    assert!(
        !sdp.contains("127.0.0.1"),
        "the bound address is not advertised: {sdp}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_ends_the_meeting_for_everyone_within_two_seconds() {
    let mut sfu = Sfu::start(&[]);
    let mut sockets = Vec::new();
    for name in ["Ada", "Bea"] {
        let mut ws = connect(&sfu).await;
        ws.send(Message::text(format!(
            r#"{{"type":"join","name":"{name}","token":"{TOKEN}"}}"#
        )))
        .await
        .unwrap();
        assert_eq!(next(&mut ws).await.unwrap()["type"], "welcome");
        sockets.push(ws);
    }
    let (status, took) = sfu.terminate();
    assert!(status.success(), "{status:?}");
    assert!(took < Duration::from_secs(2), "took {took:?}");
    for mut ws in sockets {
        let mut ended = false;
        while let Some(v) = next(&mut ws).await {
            ended |= v["code"] == "meeting-ended";
        }
        assert!(ended, "every participant is told the meeting ended");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_logs_hold_no_names_chat_or_participant_addresses() {
    let sfu = Sfu::start(&[]);
    let a = join(&sfu, "Erika Mustermann").await;
    let b = join(&sfu, "Max").await;
    eventually("a call", Duration::from_secs(30), || {
        all_receive(&[&a, &b], 10)
    })
    .await;
    a.to_sfu
        .send(ClientMessage::Chat {
            text: "geheim-4711".into(),
        })
        .unwrap();
    eventually("the chat", Duration::from_secs(10), || {
        has(
            &b,
            |m| matches!(m, ServerMessage::Chat { text, .. } if text == "geheim-4711"),
        )
    })
    .await;
    a.to_sfu.send(ClientMessage::Leave).unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let logs = sfu.logs();
    assert!(
        logs.contains("participant joined"),
        "the log is there: {logs}"
    );
    for secret in ["Erika", "Mustermann", "geheim-4711", TOKEN] {
        assert!(!logs.contains(secret), "{secret} in the SFU's log");
    }
    // The participants' media addresses (127.0.0.1 with their ports).
    for c in [&a, &b] {
        let local = c.pc.local_description().await.unwrap().sdp;
        for line in local.lines().filter(|l| l.contains("typ host")) {
            let port = line.split_whitespace().nth(5).unwrap();
            assert!(
                !logs.contains(&format!(":{port}")),
                "a participant's port {port} in the log: {}",
                logs.lines()
                    .filter(|l| l.contains(&format!(":{port}")))
                    .take(3)
                    .collect::<Vec<_>>()
                    .join("\n")
            );
        }
    }
}

/// `raum loadtest`, the benchmark's generator (docs/benchmarks.md), against a real
/// `raum sfu`: its peers connect, what they send in the window arrives at the others,
/// and the report keeps its field names. A wrong token is an error naming the
/// participant, not a report of nothing.
#[test]
fn the_load_generator_reports_a_small_meeting_in_one_json_line() {
    let sfu = Sfu::start(&[]);
    let loadtest = |token: &str| {
        Command::new(env!("CARGO_BIN_EXE_raum"))
            .args([
                "loadtest",
                &format!("--token={token}"),
                &format!("--target=http://{}", sfu.http),
                &format!("--sfu-pid={}", sfu.child.id()),
                "--participants=3",
                "--video-kbps=300",
                "--warm-up=3s",
                "--duration=2s",
            ])
            .output()
            .unwrap()
    };
    let out = loadtest(TOKEN);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let r: Value = serde_json::from_str(stdout.lines().last().unwrap()).unwrap();
    for field in [
        "meetings",
        "participantsPerMeeting",
        "forwardedPacketsPerSecond",
        "sfuCpuSeconds",
        "sfuCpuSecondsPerMillionForwarded",
        "delayP50Micros",
        "delayP99Micros",
        "lossPercent",
        "sfuRssKiB",
        "sfuRssKiBPerParticipant",
        "generatorCpuSeconds",
    ] {
        assert!(r.get(field).is_some(), "{field} missing: {r}");
    }
    assert_eq!(
        (r["meetings"].as_u64(), r["participantsPerMeeting"].as_u64()),
        (Some(1), Some(3))
    );
    let (received, expected) = (
        r["received"].as_u64().unwrap(),
        r["expected"].as_u64().unwrap(),
    );
    // About 2 s of 50 audio and 31 video packets/s from each of 3, to 2 others each.
    assert!(expected > 500, "{r}");
    assert!(received <= expected && received * 10 >= expected * 9, "{r}");
    assert!(
        r["forwardedPacketsPerSecond"].as_f64().unwrap() > 100.0,
        "{r}"
    );
    assert!(r["sfuRssKiB"].as_u64().unwrap() > 0, "{r}");

    let out = loadtest("not-the-token");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("participant 0") && stderr.contains("unauthorized"),
        "{stderr}"
    );
}
