//! `raum loadtest`: synthetic participants against running `raum sfu` processes, for
//! benchmarks (docs/benchmarks.md), not for tests.
//!
//! Each participant is a real WebRTC peer ([`crate::media::client`]: ICE, DTLS, SRTP,
//! on the same sans-IO parts as the room) with a UDP socket of its own, read in
//! batches. It joins over the SFU's WebSocket, publishes audio at 50 packets/s and
//! video at a chosen bitrate in fixed-size packets, and receives everyone else. Every
//! payload carries its send time, so the receiver measures forwarding delay; the
//! senders' counters give loss. The SFU's CPU time and memory come from /proc of the
//! PIDs given. The generator must be cheaper than what it measures: it decrypts what
//! it receives and reads the payload's first bytes, nothing more.

use std::io::IoSliceMut;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use quinn_udp::{RecvMeta, Transmit as UdpTransmit, UdpSockRef, UdpSocketState};
use serde_json::{Value, json};
use tokio::io::Interest;
use tokio::net::UdpSocket;
use tokio_tungstenite::tungstenite::Message;

use crate::media::client::Client;
use crate::media::sdp::Kind;

/// Where a payload's send time starts: after a VP8 payload descriptor and the first
/// byte of the VP8 frame (audio payloads have the same two bytes, to read one way).
const STAMP: usize = 2;
/// Every this many video packets one is a keyframe.
const KEYFRAME_EVERY: u32 = 100;

/// Flags of `raum loadtest`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A running SFU's HTTP address (http://HOST:PORT), one meeting each; repeatable.
    #[arg(long, required = true, value_name = "URL")]
    pub target: Vec<String>,

    /// The meetings' join token.
    #[arg(long, env = "RAUM_TOKEN", hide_env_values = true)]
    pub token: String,

    /// Participants per meeting.
    #[arg(long, default_value_t = 5)]
    pub participants: usize,

    /// Video bitrate each participant sends, in kbit/s.
    #[arg(long, default_value_t = 1000)]
    pub video_kbps: u32,

    /// Size of each video packet's payload, in bytes.
    #[arg(long, default_value_t = 1200)]
    pub packet_size: usize,

    /// Time for negotiations to settle before measuring.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub warm_up: Duration,

    /// How long to measure.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// PIDs of the SFU processes, for their CPU time and memory; repeatable.
    #[arg(long)]
    pub sfu_pid: Vec<u32>,
}

/// Why a load test could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A participant could not join.
    #[error("participant {n} of {url}: {what}")]
    Join {
        /// Which participant.
        n: usize,
        /// Which SFU.
        url: String,
        /// What went wrong.
        what: String,
    },
    /// Media did not connect for every participant within the warm-up: the figures
    /// would measure fewer participants than asked for.
    #[error("after the warm-up, media had connected for {connected} of {total} participants")]
    NotConnected {
        /// Participants whose DTLS handshake completed.
        connected: usize,
        /// Participants started.
        total: usize,
    },
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// What one participant measured while `measuring` was on.
#[derive(Default)]
struct Measured {
    delays_us: Vec<u32>,
    received: u64,
}

/// Shared by the participants: the measuring window (send times in ns since the
/// epoch; a packet counts when it was sent inside it, wherever it arrives), and the
/// packets sent inside it.
struct Run {
    from_ns: AtomicU64,
    until_ns: AtomicU64,
    stop: AtomicBool,
    sent: AtomicU64,
    /// Participants whose media connected.
    connected: AtomicUsize,
}

impl Run {
    fn counts(&self, sent_ns: u64) -> bool {
        sent_ns >= self.from_ns.load(Ordering::Relaxed)
            && sent_ns < self.until_ns.load(Ordering::Relaxed)
    }
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn next_json(ws: &mut Ws) -> Result<Value, String> {
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                return serde_json::from_str(&t).map_err(|e| e.to_string());
            }
            Some(Ok(_)) => continue,
            other => return Err(format!("the signaling socket ended: {other:?}")),
        }
    }
}

/// Joins one participant: WebSocket, `join`, offer and answer.
async fn join(url: &str, token: &str, n: usize) -> Result<(Ws, Client, UdpSocket), String> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("{url}/ws"))
        .await
        .map_err(|e| e.to_string())?;
    ws.send(Message::text(
        json!({"type": "join", "name": format!("load {n}"), "token": token}).to_string(),
    ))
    .await
    .map_err(|e| e.to_string())?;
    let welcome = next_json(&mut ws).await?;
    if welcome["type"] != "welcome" {
        return Err(format!("refused: {welcome}"));
    }
    let socket = UdpSocket::bind("127.0.0.1:0")
        .await
        .map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let id = welcome["id"].as_str().unwrap_or_default().to_owned();
    let mut client = Client::new(local, &id).map_err(|e| e.to_string())?;
    ws.send(Message::text(
        json!({"type": "offer", "sdp": client.offer()}).to_string(),
    ))
    .await
    .map_err(|e| e.to_string())?;
    loop {
        let m = next_json(&mut ws).await?;
        if m["type"] == "answer" {
            client
                .answer(Instant::now(), m["sdp"].as_str().unwrap_or_default())
                .map_err(|e| e.to_string())?;
            return Ok((ws, client, socket));
        }
    }
}

/// One participant's life: signaling, media in and out, until the run stops.
async fn participant(
    mut ws: Ws,
    mut client: Client,
    socket: UdpSocket,
    n: u32,
    video_every: Duration,
    packet_size: usize,
    run: Arc<Run>,
) -> Measured {
    let state = match UdpSocketState::new(UdpSockRef::from(&socket)) {
        Ok(s) => s,
        Err(_) => return Measured::default(),
    };
    let _ = state.set_recv_buffer_size(UdpSockRef::from(&socket), 4 << 20);
    let mut bufs: Vec<Vec<u8>> = (0..16).map(|_| vec![0u8; 64 * 1024]).collect();
    let mut metas = vec![RecvMeta::default(); 16];
    let mut measured = Measured::default();
    let mut audio = tokio::time::interval(Duration::from_millis(20));
    let mut video = tokio::time::interval(video_every);
    audio.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    video.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
    let timer = tokio::time::sleep_until(far());
    tokio::pin!(timer);
    let mut payload = vec![0u8; packet_size.max(STAMP + 12)];
    let mut video_frames: u32 = 0;
    let mut ts: u32 = 0;
    let mut connected = false;
    loop {
        if run.stop.load(Ordering::Relaxed) {
            break;
        }
        if !connected && client.is_connected() {
            connected = true;
            run.connected.fetch_add(1, Ordering::Relaxed);
        }
        // Send what is ready.
        while let Some(t) = client.poll_transmit() {
            let _ = state.try_send(
                UdpSockRef::from(&socket),
                &UdpTransmit {
                    destination: t.to,
                    ecn: None,
                    contents: t.buf.as_slice(),
                    segment_size: None,
                    src_ip: None,
                },
            );
            client.recycle(t.buf);
        }
        let deadline = client
            .poll_timeout()
            .map_or_else(far, tokio::time::Instant::from_std);
        if timer.deadline() != deadline {
            timer.as_mut().reset(deadline);
        }
        tokio::select! {
            _ = &mut timer => client.handle_timeout(Instant::now()),
            _ = audio.tick() => {
                if client.is_connected() {
                    let mut p = [0u8; 160];
                    let t = now_ns();
                    p[STAMP..STAMP + 8].copy_from_slice(&t.to_be_bytes());
                    p[STAMP + 8..STAMP + 12].copy_from_slice(&n.to_be_bytes());
                    ts = ts.wrapping_add(960);
                    client.send_rtp(Kind::Audio, ts, false, &p);
                    if run.counts(t) {
                        run.sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ = video.tick() => {
                if client.is_connected() {
                    let t = now_ns();
                    // Each packet a frame; a keyframe every KEYFRAME_EVERY (the room
                    // switches a subscriber on at a keyframe).
                    payload[..2].copy_from_slice(&[0x10, u8::from(!video_frames.is_multiple_of(KEYFRAME_EVERY))]);
                    video_frames += 1;
                    payload[STAMP..STAMP + 8].copy_from_slice(&t.to_be_bytes());
                    payload[STAMP + 8..STAMP + 12].copy_from_slice(&n.to_be_bytes());
                    client.send_rtp(Kind::Video, ts.wrapping_mul(2), true, &payload);
                    if run.counts(t) {
                        run.sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let Ok(v) = serde_json::from_str::<Value>(&t) else { continue };
                    if v["type"] == "offer"
                        && let Ok(answer) = client.offer_from_room(Instant::now(), v["sdp"].as_str().unwrap_or_default())
                        && ws.send(Message::text(json!({"type": "answer", "sdp": answer}).to_string())).await.is_err()
                    {
                        break;
                    }
                }
                Some(Ok(_)) => {}
                _ => break,
            },
            r = socket.readable() => {
                if r.is_err() {
                    break;
                }
                // A few batches, then the other duties (sending, signaling) again.
                for _ in 0..8 {
                    let mut slices: Vec<IoSliceMut<'_>> = bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                    let got = socket.try_io(Interest::READABLE, || state.recv(UdpSockRef::from(&socket), &mut slices, &mut metas));
                    drop(slices);
                    let Ok(count) = got else { break };
                    let now = Instant::now();
                    let arrived = now_ns();
                    for (meta, buf) in metas.iter().zip(bufs.iter_mut()).take(count) {
                        for segment in buf[..meta.len].chunks_mut(meta.stride.max(1)) {
                            if let Some(rx) = client.handle_datagram(now, meta.addr, segment)
                                && rx.payload.len() >= STAMP + 8
                                && let sent = u64::from_be_bytes(rx.payload[STAMP..STAMP + 8].try_into().expect("8 bytes"))
                                && run.counts(sent)
                            {
                                measured.received += 1;
                                let d = arrived.saturating_sub(sent) / 1000;
                                measured.delays_us.push(d.min(u64::from(u32::MAX)) as u32);
                            }
                        }
                    }
                }
            }
        }
    }
    let _ = ws.close(None).await;
    measured
}

/// CPU seconds (user + system) and resident memory of a process, from /proc.
fn process_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit(')').next()?.split_whitespace().collect();
    // Fields after the command: state is index 0, utime 11, stime 12 (clock ticks).
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kb = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some((ticks / 100.0, rss_kb))
}

async fn metric(url: &str, name: &str) -> Option<u64> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))?;
    let mut s = tokio::net::TcpStream::connect(host).await.ok()?;
    s.write_all(
        format!("GET /metrics HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).await.ok()?;
    text.lines().find_map(|l| {
        l.strip_prefix(&format!("raum_sfu_{name} "))
            .and_then(|v| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    })
}

async fn forwarded(targets: &[String]) -> u64 {
    futures::future::join_all(targets.iter().map(|u| metric(u, "rtp_forwarded_total")))
        .await
        .into_iter()
        .flatten()
        .sum()
}

/// Runs the load test and prints one JSON report as its last line.
pub async fn run(args: Args) -> Result<(), Error> {
    let run = Arc::new(Run {
        from_ns: AtomicU64::new(u64::MAX),
        until_ns: AtomicU64::new(u64::MAX),
        stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        connected: AtomicUsize::new(0),
    });
    let video_pps = (f64::from(args.video_kbps) * 1000.0 / 8.0 / args.packet_size as f64).max(1.0);
    let video_every = Duration::from_secs_f64(1.0 / video_pps);
    let mut tasks = Vec::new();
    let mut n = 0u32;
    for url in &args.target {
        let ws = url.replacen("http://", "ws://", 1);
        for i in 0..args.participants {
            let (sock, client, udp) =
                join(&ws, &args.token, i)
                    .await
                    .map_err(|what| Error::Join {
                        n: i,
                        url: url.clone(),
                        what,
                    })?;
            tasks.push(tokio::spawn(participant(
                sock,
                client,
                udp,
                n,
                video_every,
                args.packet_size,
                run.clone(),
            )));
            n += 1;
        }
    }
    // Let every negotiation settle, then measure.
    tokio::time::sleep(args.warm_up).await;
    let connected = run.connected.load(Ordering::Relaxed);
    if connected < tasks.len() {
        return Err(Error::NotConnected {
            connected,
            total: tasks.len(),
        });
    }
    let forwarded0 = forwarded(&args.target).await;
    let usage0: Vec<(f64, u64)> = args
        .sfu_pid
        .iter()
        .filter_map(|p| process_usage(*p))
        .collect();
    let own0 = process_usage(std::process::id());
    let start = Instant::now();
    run.from_ns.store(now_ns(), Ordering::Relaxed);
    tokio::time::sleep(args.duration).await;
    run.until_ns.store(now_ns(), Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let forwarded1 = forwarded(&args.target).await;
    let usage1: Vec<(f64, u64)> = args
        .sfu_pid
        .iter()
        .filter_map(|p| process_usage(*p))
        .collect();
    let own1 = process_usage(std::process::id());
    // Packets sent in the window and still on their way are let in.
    tokio::time::sleep(Duration::from_millis(500)).await;
    run.stop.store(true, Ordering::Relaxed);
    let mut delays: Vec<u32> = Vec::new();
    let mut received = 0u64;
    for t in tasks {
        // A participant notices the stop at its next event (media ticks every 20 ms).
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(5), t).await {
            received += m.received;
            delays.extend(m.delays_us);
        }
    }
    let sent = run.sent.load(Ordering::Relaxed);
    let forwarded_n = forwarded1.saturating_sub(forwarded0);
    let cpu: f64 = usage1.iter().zip(&usage0).map(|(b, a)| b.0 - a.0).sum();
    let rss_kb: u64 = usage1.iter().map(|u| u.1).sum();
    delays.sort_unstable();
    let pct = |q: f64| {
        delays
            .get(((delays.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    // Every packet sent in the window should reach the other participants of its meeting.
    let expected = sent * (args.participants.saturating_sub(1) as u64);
    let report = json!({
        "meetings": args.target.len(),
        "participantsPerMeeting": args.participants,
        "videoKbps": args.video_kbps,
        "packetSize": args.packet_size,
        "seconds": elapsed,
        "forwardedPacketsPerSecond": forwarded_n as f64 / elapsed,
        "sfuCpuSeconds": cpu,
        "sfuCpuSecondsPerMillionForwarded": if forwarded_n > 0 { cpu / (forwarded_n as f64 / 1e6) } else { 0.0 },
        "delayP50Micros": pct(0.5),
        "delayP99Micros": pct(0.99),
        "received": received,
        "expected": expected,
        "lossPercent": if expected > 0 { 100.0 * (1.0 - received as f64 / expected as f64) } else { 0.0 },
        "sfuRssKiB": rss_kb,
        "sfuRssKiBPerParticipant": rss_kb as f64 / (args.participants * args.target.len()).max(1) as f64,
        // The generator's own CPU time in the window: near the window's length, it is
        // the bottleneck and the figures measure it rather than the SFU.
        "generatorCpuSeconds": own0.zip(own1).map_or(0.0, |(a, b)| b.0 - a.0),
    });
    println!("{report}");
    Ok(())
}
