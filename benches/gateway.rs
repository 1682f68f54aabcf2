//! Benchmark of the gateway (not a test; figures in docs/benchmarks.md):
//!
//! 1. the cost of one access-log entry, from `record` to durable on disk, against a
//!    floor of writing the same bytes to a file with one fsync;
//! 2. join-page requests per second with access logging, by `wrk` on loopback,
//!    against `/healthz` on the same server as the floor;
//! 3. the WebSocket relay's overhead per signaling message: round trips through the
//!    gateway to a `raum sfu` process, against the same round trips straight to it.
//!
//! `cargo bench --bench gateway` runs it at full size (needs `wrk`, from Debian's
//! package); under `cargo test` it runs each part once at a tiny size, so it keeps
//! compiling and working.

use std::collections::HashMap;
use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use raum::access_log::entry::Entry;
use raum::access_log::writer::{AccessLog, Config};
use raum::gateway::WebArgs;
use raum::gateway::directory::{Backend, Directory, Meeting, State};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

const TOKEN: &str = "benchbenchbenchbenchbenchbenchbenchbenchben";

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/version")
            .unwrap_or_default()
            .trim()
    );
    rt.block_on(async {
        access_log_append(if full { 1_000_000 } else { 1_000 }).await;
        let sfu = Sfu::start();
        let (addr, _front) = gateway(&sfu.addr).await;
        if full {
            join_pages(&addr);
        }
        relay(&addr, &sfu.addr, if full { 20_000 } else { 50 }).await;
    });
}

/// Entries recorded as fast as possible until all are durable, against the floor.
async fn access_log_append(n: usize) {
    let dir = tempfile::tempdir().unwrap();
    let (log, stop) = AccessLog::spawn(Config {
        dir: dir.path().to_owned(),
        instance: "bench".into(),
        flush_interval: Duration::from_millis(100),
        max_buffered: n,
    });
    let ua = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36";
    let start = Instant::now();
    for i in 0..n {
        log.record(Entry::new(
            jiff::Timestamp::now(),
            format!("203.0.113.{}", i % 256),
            ua,
        ));
    }
    let recorded = start.elapsed();
    while log.counters().written.load(Ordering::Relaxed) < n as u64 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let durable = start.elapsed();
    stop.run().await;
    let bytes: u64 = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().metadata().unwrap().len())
        .sum();

    // Floor: the same bytes, written in one go, one fsync.
    let text = std::fs::read(
        std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.to_string_lossy().ends_with(".jsonl"))
            .unwrap(),
    )
    .unwrap();
    let floor_path = dir.path().join("floor");
    let t = Instant::now();
    let mut f = std::fs::File::create(&floor_path).unwrap();
    f.write_all(&text).unwrap();
    f.sync_data().unwrap();
    let floor = t.elapsed();
    println!(
        "access log: {n} entries ({bytes} bytes): record() {:.0} ns/entry, durable after {:.3} s \
         ({:.0} ns/entry, includes up to one 100 ms flush interval); floor (write + fsync of the \
         same bytes) {:.3} s ({:.0} ns/entry)",
        recorded.as_nanos() as f64 / n as f64,
        durable.as_secs_f64(),
        durable.as_nanos() as f64 / n as f64,
        floor.as_secs_f64(),
        floor.as_nanos() as f64 / n as f64,
    );
}

/// A `raum sfu` process on loopback.
struct Sfu {
    child: std::process::Child,
    addr: String,
}

impl Sfu {
    fn start() -> Sfu {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_raum"))
            .args([
                "sfu",
                &format!("--listen={addr}"),
                "--media-bind=127.0.0.1",
                "--media-port=0",
                &format!("--token={TOKEN}"),
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let t = Instant::now();
        while std::net::TcpStream::connect(&addr).is_err() {
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "the SFU did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Sfu { child, addr }
    }
}

impl Drop for Sfu {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The gateway's front end in this process, with one open meeting relayed to `sfu`.
async fn gateway(sfu: &str) -> (String, tempfile::TempDir) {
    let logs = tempfile::tempdir().unwrap();
    let directory = Arc::new(Directory::default());
    directory.publish(HashMap::from([(
        TOKEN.to_owned(),
        Arc::new(Meeting {
            title: "Bench".into(),
            state: State::Open,
            backend: Some(Backend::Remote(sfu.to_owned())),
            participants: None,
            max_participants: 500,
            audio: true,
            video: true,
            chat: true,
            screen_share: Default::default(),
            host_token_sha256: None,
        }),
    )]));
    let web = WebArgs {
        access_log_dir: Some(logs.path().to_owned()),
        instance: Some("bench".into()),
        trusted_proxies: vec![],
        retention_days: 56,
        privacy_notice_dir: None,
        flush_interval: Duration::from_secs(1),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let front =
        raum::gateway::front(&web, logs.path(), vec![format!("http://{addr}")], directory).unwrap();
    front.gateway.ready.store(true, Ordering::Relaxed);
    tokio::spawn(raum::gateway::serve(
        listener,
        front,
        std::future::pending::<()>(),
    ));
    (addr, logs)
}

/// wrk against the join page and, as the floor, /healthz.
fn join_pages(addr: &str) {
    for (what, path) in [
        ("floor: /healthz", "/healthz".to_owned()),
        ("join page + access log", format!("/j/{TOKEN}")),
    ] {
        let out = Command::new("wrk")
            .args([
                "-t2",
                "-c32",
                "-d10s",
                "-H",
                "User-Agent: Mozilla/5.0 (bench)",
                &format!("http://{addr}{path}"),
            ])
            .output()
            .expect("wrk is installed (apt-get install wrk)");
        let text = String::from_utf8_lossy(&out.stdout);
        let rps = text
            .lines()
            .find(|l| l.starts_with("Requests/sec"))
            .unwrap_or("Requests/sec: ?");
        let latency = text
            .lines()
            .find(|l| l.trim_start().starts_with("Latency"))
            .unwrap_or("Latency ?")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        println!("wrk -t2 -c32 -d10s {what}: {rps}, {latency}");
    }
    // Every page access must have reached the log: nothing dropped.
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    std::io::Read::read_to_string(&mut s, &mut text).unwrap();
    let counters: Vec<&str> = text
        .lines()
        .filter(|l| l.starts_with("raum_gateway_access_log_"))
        .collect();
    println!("access log after wrk: {}", counters.join(", "));
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn open(url: &str, origin: &str) -> Ws {
    let mut req = url.into_client_request().unwrap();
    req.headers_mut().insert("origin", origin.parse().unwrap());
    let mut ws = tokio_tungstenite::connect_async(req).await.unwrap().0;
    let join = serde_json::json!({"type": "join", "name": "bench", "token": TOKEN});
    ws.send(Message::text(join.to_string())).await.unwrap();
    let welcome = ws.next().await.unwrap().unwrap();
    assert!(welcome.to_text().unwrap().contains("welcome"), "{welcome}");
    ws
}

/// Sequential round trips of a message the SFU answers at once (an unknown type gets
/// `bad-request`, or `rate-limited` beyond 20 a second: an answer either way).
async fn round_trips(ws: &mut Ws, n: usize) -> Vec<Duration> {
    let mut times = Vec::with_capacity(n);
    for _ in 0..n {
        let t = Instant::now();
        ws.send(Message::text(r#"{"type":"bench"}"#)).await.unwrap();
        loop {
            match ws.next().await.unwrap().unwrap() {
                Message::Text(_) => break,
                _ => continue,
            }
        }
        times.push(t.elapsed());
    }
    times.sort();
    times
}

fn summary(times: &[Duration]) -> String {
    let mean = times.iter().sum::<Duration>().as_nanos() as f64 / times.len() as f64;
    let pct = |p: f64| times[((times.len() as f64 * p) as usize).min(times.len() - 1)];
    format!(
        "mean {:.1} µs, p50 {:.1} µs, p99 {:.1} µs",
        mean / 1000.0,
        pct(0.5).as_nanos() as f64 / 1000.0,
        pct(0.99).as_nanos() as f64 / 1000.0
    )
}

async fn relay(gateway: &str, sfu: &str, n: usize) {
    let direct_addr: SocketAddr = sfu.parse().unwrap();
    let mut direct = open(&format!("ws://{direct_addr}/ws"), "http://bench").await;
    let mut relayed = open(
        &format!("ws://{gateway}/j/{TOKEN}/ws"),
        &format!("http://{gateway}"),
    )
    .await;
    // Warm both paths, then measure them interleaved in blocks so drift hits both.
    round_trips(&mut direct, n / 10 + 1).await;
    round_trips(&mut relayed, n / 10 + 1).await;
    let (mut d, mut r) = (Vec::new(), Vec::new());
    for _ in 0..10 {
        d.extend(round_trips(&mut direct, n / 10).await);
        r.extend(round_trips(&mut relayed, n / 10).await);
    }
    d.sort();
    r.sort();
    let overhead = (r.iter().sum::<Duration>().as_nanos() as f64
        - d.iter().sum::<Duration>().as_nanos() as f64)
        / d.len() as f64
        / 2.0;
    println!(
        "signaling round trips ({} each): straight to the SFU {}; through the gateway {}; \
         relay overhead {:.1} µs per message (half the round-trip difference)",
        d.len(),
        summary(&d),
        summary(&r),
        overhead / 1000.0
    );
}
