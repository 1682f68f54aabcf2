//! Benchmark of `raum turn` (not a test; tests/bench/turn runs it with the relay
//! pinned to CPU 0 and this generator to CPU 1). Clients allocate through a real
//! TURN client (`turn-client-proto`), bind a channel to an echoing "SFU" on loopback,
//! and send 1,200-byte ChannelData at a fixed rate; the SFU sends each datagram back
//! through the relay. Measured: datagrams relayed per second (both ways), per CPU
//! second of the relay, loss, and the round trip through the relay against the
//! same round trip sent to the SFU directly.
//!
//! Environment: RAUM_BIN (the release raum), CLIENTS (20), PPS per client (250),
//! SECS (10). Prints one JSON line. Without `--bench` (as `cargo test --all-targets`
//! runs it) it is a smoke run of the test build: 2 clients, 50 datagrams a second,
//! one second, and it fails if nothing came back through the relay.

use std::net::{SocketAddr, UdpSocket};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant as StdInstant};

use turn_client_proto::api::{TurnConfig, TurnEvent};
use turn_client_proto::prelude::*;
use turn_client_proto::types::stun::TransportType;
use turn_client_proto::types::{Instant, TurnCredentials};
use turn_client_proto::udp::TurnClientUdp;

const SECRET: &str = "a benchmark secret of some length";
const PAYLOAD: usize = 1200;

fn env(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The relay's CPU seconds so far (utime + stime of /proc/PID/stat).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks: f64 = f.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + f.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// A client with an allocation and a channel to `sfu`: its socket, the relay's
/// address and the channel number.
fn connect(server: SocketAddr, sfu: SocketAddr, i: usize) -> (UdpSocket, u16) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(10)))
        .unwrap();
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 3600;
    let c = raum::turn_credentials::TurnSecret::from_bytes(SECRET.as_bytes()).issue(
        &format!("bench{i}"),
        sfu,
        expires,
    );
    let mut config = TurnConfig::new(TurnCredentials::new(&c.username, &c.password));
    config.set_anonymous_username(turn_client_proto::stun::auth::Feature::Disabled);
    let local = socket.local_addr().unwrap();
    let mut turn = TurnClientUdp::allocate(local, server, config);
    let epoch = StdInstant::now();
    let now = || Instant::from_nanos(epoch.elapsed().as_nanos() as i64);
    let mut buf = [0u8; 2048];
    let mut bound = false;
    let mut asked = false;
    let end = StdInstant::now() + Duration::from_secs(10);
    while StdInstant::now() < end {
        let _ = turn.poll(now());
        while let Some(t) = turn.poll_transmit(now()) {
            let _ = socket.send_to(t.data.as_ref(), t.to);
        }
        while let Some(e) = turn.poll_event() {
            match e {
                TurnEvent::AllocationCreated(..) if !asked => {
                    turn.bind_channel(TransportType::Udp, sfu, now()).unwrap();
                    asked = true;
                }
                TurnEvent::ChannelCreated(..) => bound = true,
                _ => {}
            }
        }
        if bound {
            break;
        }
        if let Ok((n, from)) = socket.recv_from(&mut buf) {
            let t = turn_client_proto::stun::agent::Transmit::new(
                &buf[..n],
                TransportType::Udp,
                from,
                local,
            );
            let _ = turn.recv(t, now());
        }
    }
    assert!(bound, "client {i}: no channel");
    // The channel's number, from a ChannelData the client builds.
    let t = turn
        .send_to(TransportType::Udp, sfu, [0u8; 4], now())
        .unwrap()
        .expect("a channel transmit")
        .build();
    let channel = u16::from_be_bytes([t.data[0], t.data[1]]);
    socket.connect(server).unwrap();
    (socket, channel)
}

/// Percentile `p` (0..100) of sorted `v`, in microseconds.
fn pct(v: &[u64], p: usize) -> u64 {
    if v.is_empty() {
        return 0;
    }
    v[(v.len() * p / 100).min(v.len() - 1)]
}

fn main() {
    let bench = std::env::args().any(|a| a == "--bench");
    let bin = std::env::var("RAUM_BIN").unwrap_or_else(|_| env!("CARGO_BIN_EXE_raum").to_owned());
    let (clients, pps, secs, warm_up) = if bench {
        (
            env("CLIENTS", 20) as usize,
            env("PPS", 250),
            env("SECS", 10),
            2000,
        )
    } else {
        (2, 50, 1, 300)
    };
    let port = free_udp_port();
    let metrics = free_udp_port();
    let mut relay = Command::new("taskset")
        .args(["-c", "0", &bin, "turn"])
        .arg(format!("--listen-udp=127.0.0.1:{port}"))
        .arg(format!("--listen-tcp=127.0.0.1:{port}"))
        .arg(format!("--metrics-listen=127.0.0.1:{metrics}"))
        .arg("--relay-ip=127.0.0.1")
        .arg("--sfu-network=127.0.0.0/8")
        .arg("--max-kbps-per-allocation=100000")
        .env("RAUM_TURN_SECRET", SECRET)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("raum turn starts");
    std::thread::sleep(Duration::from_millis(500));
    let server: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();

    // The SFU: echoes every datagram to where it came from.
    let sfu = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sfu_addr = sfu.local_addr().unwrap();
    let echo = sfu.try_clone().unwrap();
    std::thread::spawn(move || {
        let mut buf = [0u8; 2048];
        while let Ok((n, from)) = echo.recv_from(&mut buf) {
            let _ = echo.send_to(&buf[..n], from);
        }
    });

    let conns: Vec<(UdpSocket, u16)> = (0..clients).map(|i| connect(server, sfu_addr, i)).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let received = Arc::new(AtomicU64::new(0));
    let epoch = StdInstant::now();
    let mut workers = Vec::new();
    for (socket, channel) in conns {
        let socket = Arc::new(socket);
        let (stop, sent, received) = (stop.clone(), sent.clone(), received.clone());
        let rx = socket.clone();
        let rtts = std::thread::spawn({
            let stop = stop.clone();
            move || {
                let mut rtts = Vec::new();
                let mut buf = [0u8; 2048];
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(n) = rx.recv(&mut buf)
                        && n >= 12
                        && buf[0] & 0xc0 == 0x40
                    {
                        let at = u64::from_be_bytes(buf[4..12].try_into().unwrap());
                        rtts.push((epoch.elapsed().as_nanos() as u64).saturating_sub(at) / 1000);
                        received.fetch_add(1, Ordering::Relaxed);
                    }
                }
                rtts
            }
        });
        std::thread::spawn(move || {
            let mut frame = vec![0u8; 4 + PAYLOAD];
            frame[..2].copy_from_slice(&channel.to_be_bytes());
            frame[2..4].copy_from_slice(&(PAYLOAD as u16).to_be_bytes());
            let gap = Duration::from_nanos(1_000_000_000 / pps.max(1));
            let mut next = StdInstant::now();
            while !stop.load(Ordering::Relaxed) {
                frame[4..12].copy_from_slice(&(epoch.elapsed().as_nanos() as u64).to_be_bytes());
                if socket.send(&frame).is_ok() {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
                next += gap;
                if let Some(wait) = next.checked_duration_since(StdInstant::now()) {
                    std::thread::sleep(wait);
                }
            }
        });
        workers.push(rtts);
    }
    // Warm up, then measure.
    std::thread::sleep(Duration::from_millis(warm_up));
    let (sent0, received0, cpu0, t0) = (
        sent.load(Ordering::Relaxed),
        received.load(Ordering::Relaxed),
        cpu_seconds(relay.id()),
        StdInstant::now(),
    );
    std::thread::sleep(Duration::from_secs(secs));
    let elapsed = t0.elapsed().as_secs_f64();
    let cpu = cpu_seconds(relay.id()) - cpu0;
    let sent_n = sent.load(Ordering::Relaxed) - sent0;
    let received_n = received.load(Ordering::Relaxed) - received0;
    stop.store(true, Ordering::Relaxed);
    let mut rtts: Vec<u64> = workers
        .into_iter()
        .flat_map(|w| w.join().unwrap_or_default())
        .collect();
    rtts.sort_unstable();

    // The same round trip without the relay.
    let direct = UdpSocket::bind("127.0.0.1:0").unwrap();
    direct
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut direct_rtts = Vec::new();
    let mut buf = [0u8; 2048];
    for _ in 0..1000 {
        let t = StdInstant::now();
        direct.send_to(&[7u8; PAYLOAD], sfu_addr).unwrap();
        if direct.recv_from(&mut buf).is_ok() {
            direct_rtts.push(t.elapsed().as_micros() as u64);
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    direct_rtts.sort_unstable();
    let _ = relay.kill();
    let _ = relay.wait();
    let relayed = (sent_n + received_n) as f64; // each way through the relay
    assert!(received_n > 0, "nothing came back through the relay");
    println!(
        "{}",
        serde_json::json!({
            "clients": clients,
            "offeredPacketsPerSecond": (clients as u64 * pps),
            "relayedPerSecond": relayed / elapsed,
            "relayCpuSeconds": cpu,
            "relayCpuShare": cpu / elapsed,
            "relayedPerCpuSecond": if cpu > 0.0 { relayed / cpu } else { 0.0 },
            "lossPercent": if sent_n > 0 { 100.0 * (sent_n.saturating_sub(received_n)) as f64 / sent_n as f64 } else { 0.0 },
            "rttP50Micros": pct(&rtts, 50),
            "rttP99Micros": pct(&rtts, 99),
            "directRttP50Micros": pct(&direct_rtts, 50),
            "directRttP99Micros": pct(&direct_rtts, 99),
            "seconds": elapsed,
        })
    );
}
