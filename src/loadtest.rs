//! `raum loadtest`: synthetic participants against running `raum sfu` processes, for
//! benchmarks (docs/benchmarks.md), not for tests.
//!
//! Each participant is a real WebRTC peer on the async `webrtc` 0.21 layer: it joins
//! over the SFU's WebSocket, publishes audio at 50 packets/s and video at a chosen
//! bitrate in fixed-size packets, and subscribes to everyone else. Every payload
//! carries its send time, so the receiver measures forwarding delay; sequence numbers
//! per publisher give loss. The SFU's CPU time and memory come from /proc of the PIDs
//! given.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures::{SinkExt, StreamExt};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCSessionDescription,
};

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
}

/// What every receiver records: delays in microseconds and the highest sequence seen
/// per (publisher track).
#[derive(Default)]
struct Recorder {
    delays_us: Vec<u32>,
    received: u64,
}

#[derive(Clone)]
struct Handler {
    gathered: mpsc::UnboundedSender<()>,
    recorder: Arc<Mutex<Recorder>>,
    measuring: Arc<std::sync::atomic::AtomicBool>,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, s: RTCIceGatheringState) {
        if s == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let recorder = self.recorder.clone();
        let measuring = self.measuring.clone();
        tokio::spawn(async move {
            while let Some(ev) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(pkt) = ev
                    && measuring.load(std::sync::atomic::Ordering::Relaxed)
                    && pkt.payload.len() >= 8
                {
                    let sent = u64::from_be_bytes(pkt.payload[..8].try_into().expect("8 bytes"));
                    let delay = now_ns().saturating_sub(sent) / 1000;
                    let mut r = recorder.lock().expect("not poisoned");
                    r.received += 1;
                    r.delays_us.push(delay.min(u64::from(u32::MAX)) as u32);
                }
            }
        });
    }
}

/// The codec a synthetic participant sends: Opus for audio, VP8 for video.
pub fn codec(kind: RtpCodecKind) -> RTCRtpCodec {
    match kind {
        RtpCodecKind::Audio => RTCRtpCodec {
            mime_type: "audio/opus".into(),
            clock_rate: 48000,
            channels: 2,
            sdp_fmtp_line: "minptime=10;useinbandfec=1".into(),
            rtcp_feedback: vec![],
        },
        _ => RTCRtpCodec {
            mime_type: "video/VP8".into(),
            clock_rate: 90000,
            channels: 0,
            sdp_fmtp_line: String::new(),
            rtcp_feedback: vec![],
        },
    }
}

/// A local track of `kind` with a fixed SSRC, for a synthetic participant.
pub fn local_track(
    stream_id: &str,
    track_id: &str,
    kind: RtpCodecKind,
    ssrc: u32,
) -> Arc<TrackLocalStaticRTP> {
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        stream_id.to_owned(),
        track_id.to_owned(),
        track_id.to_owned(),
        kind,
        vec![RTCRtpEncodingParameters {
            rtp_coding_parameters: RTCRtpCodingParameters {
                ssrc: Some(ssrc),
                ..Default::default()
            },
            codec: codec(kind),
            ..Default::default()
        }],
    )))
}

struct Participant {
    pc: Arc<dyn PeerConnection>,
    sent: Arc<std::sync::atomic::AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

async fn participant(
    url: &str,
    token: &str,
    n: usize,
    args: &Args,
    recorder: Arc<Mutex<Recorder>>,
    measuring: Arc<std::sync::atomic::AtomicBool>,
) -> Result<Participant, String> {
    let (ws, _) = tokio_tungstenite::connect_async(format!("{url}/ws"))
        .await
        .map_err(|e| e.to_string())?;
    let (mut sink, mut stream) = ws.split();
    sink.send(Message::text(
        json!({"type": "join", "name": format!("load {n}"), "token": token}).to_string(),
    ))
    .await
    .map_err(|e| e.to_string())?;
    let welcome: Value = match stream.next().await {
        Some(Ok(Message::Text(t))) => serde_json::from_str(&t).map_err(|e| e.to_string())?,
        other => return Err(format!("no welcome: {other:?}")),
    };
    if welcome["type"] != "welcome" {
        return Err(format!("refused: {welcome}"));
    }
    let (gathered_tx, mut gathered) = mpsc::unbounded_channel();
    let mut media = MediaEngine::default();
    media.register_default_codecs().map_err(|e| e.to_string())?;
    let registry =
        register_default_interceptors(Registry::new(), &mut media).map_err(|e| e.to_string())?;
    let pc: Arc<dyn PeerConnection> = Arc::new(
        PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Handler {
                gathered: gathered_tx,
                recorder,
                measuring,
            }))
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .build()
            .await
            .map_err(|e| e.to_string())?,
    );
    let ssrc = 0x4000_0000 + n as u32 * 2;
    let stream_id = format!("load-{n}");
    let audio = local_track(&stream_id, "audio", RtpCodecKind::Audio, ssrc);
    let video = local_track(&stream_id, "video", RtpCodecKind::Video, ssrc + 1);
    pc.add_track(audio.clone() as Arc<dyn TrackLocal>)
        .await
        .map_err(|e| e.to_string())?;
    pc.add_track(video.clone() as Arc<dyn TrackLocal>)
        .await
        .map_err(|e| e.to_string())?;
    let offer = pc.create_offer(None).await.map_err(|e| e.to_string())?;
    pc.set_local_description(offer)
        .await
        .map_err(|e| e.to_string())?;
    gathered.recv().await;
    let sdp = pc
        .local_description()
        .await
        .map(|d| d.sdp)
        .unwrap_or_default();
    sink.send(Message::text(
        json!({"type": "offer", "sdp": sdp}).to_string(),
    ))
    .await
    .map_err(|e| e.to_string())?;

    let signaling = {
        let pc = pc.clone();
        tokio::spawn(async move {
            while let Some(Ok(Message::Text(t))) = stream.next().await {
                let Ok(v) = serde_json::from_str::<Value>(&t) else {
                    continue;
                };
                let sdp = v["sdp"].as_str().unwrap_or_default().to_owned();
                match v["type"].as_str() {
                    Some("answer") => {
                        if let Ok(d) = RTCSessionDescription::answer(sdp) {
                            let _ = pc.set_remote_description(d).await;
                        }
                    }
                    Some("offer") => {
                        let Ok(d) = RTCSessionDescription::offer(sdp) else {
                            continue;
                        };
                        if pc.set_remote_description(d).await.is_err() {
                            continue;
                        }
                        let Ok(answer) = pc.create_answer(None).await else {
                            continue;
                        };
                        let _ = pc.set_local_description(answer).await;
                        let sdp = pc
                            .local_description()
                            .await
                            .map(|d| d.sdp)
                            .unwrap_or_default();
                        if sink
                            .send(Message::text(
                                json!({"type": "answer", "sdp": sdp}).to_string(),
                            ))
                            .await
                            .is_err()
                        {
                            break;
                        }
                    }
                    _ => {}
                }
            }
        })
    };

    // Audio every 20 ms; video packets spread evenly to reach the bitrate.
    let sent = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let video_pps = (f64::from(args.video_kbps) * 1000.0 / 8.0 / args.packet_size as f64).max(1.0);
    let publish = |t: Arc<TrackLocalStaticRTP>,
                   pt: u8,
                   ssrc: u32,
                   every: Duration,
                   size: usize,
                   sent: Arc<std::sync::atomic::AtomicU64>| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
            let mut seq: u16 = 0;
            loop {
                tick.tick().await;
                seq = seq.wrapping_add(1);
                let mut payload = vec![0u8; size.max(8)];
                payload[..8].copy_from_slice(&now_ns().to_be_bytes());
                let pkt = rtc::rtp::Packet {
                    header: rtc::rtp::header::Header {
                        version: 2,
                        payload_type: pt,
                        sequence_number: seq,
                        timestamp: u32::from(seq).wrapping_mul(960),
                        ssrc,
                        ..Default::default()
                    },
                    payload: bytes::Bytes::from(payload),
                };
                if t.write_rtp(pkt).await.is_ok() {
                    sent.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                }
            }
        })
    };
    let tasks = vec![
        signaling,
        publish(
            audio,
            111,
            ssrc,
            Duration::from_millis(20),
            160,
            sent.clone(),
        ),
        publish(
            video,
            96,
            ssrc + 1,
            Duration::from_secs_f64(1.0 / video_pps),
            args.packet_size,
            sent.clone(),
        ),
    ];
    Ok(Participant { pc, sent, tasks })
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
            .and_then(|v| v.trim().parse().ok())
    })
}

/// Runs the load test and prints one JSON report.
pub async fn run(args: Args) -> Result<(), Error> {
    let recorder = Arc::new(Mutex::new(Recorder::default()));
    let measuring = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let mut participants = Vec::new();
    for url in &args.target {
        let ws = url.replacen("http://", "ws://", 1);
        for n in 0..args.participants {
            let p = participant(
                &ws,
                &args.token,
                participants.len(),
                &args,
                recorder.clone(),
                measuring.clone(),
            )
            .await
            .map_err(|what| Error::Join {
                n,
                url: url.clone(),
                what,
            })?;
            participants.push(p);
        }
    }
    // Let every negotiation settle, then measure.
    tokio::time::sleep(args.warm_up).await;
    let forwarded0: u64 =
        futures::future::join_all(args.target.iter().map(|u| metric(u, "rtp_forwarded_total")))
            .await
            .into_iter()
            .flatten()
            .sum();
    let usage0: Vec<(f64, u64)> = args
        .sfu_pid
        .iter()
        .filter_map(|p| process_usage(*p))
        .collect();
    let sent0: u64 = participants
        .iter()
        .map(|p| p.sent.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    let start = Instant::now();
    measuring.store(true, std::sync::atomic::Ordering::Relaxed);
    tokio::time::sleep(args.duration).await;
    measuring.store(false, std::sync::atomic::Ordering::Relaxed);
    let elapsed = start.elapsed().as_secs_f64();
    let sent1: u64 = participants
        .iter()
        .map(|p| p.sent.load(std::sync::atomic::Ordering::Relaxed))
        .sum();
    let forwarded1: u64 =
        futures::future::join_all(args.target.iter().map(|u| metric(u, "rtp_forwarded_total")))
            .await
            .into_iter()
            .flatten()
            .sum();
    let usage1: Vec<(f64, u64)> = args
        .sfu_pid
        .iter()
        .filter_map(|p| process_usage(*p))
        .collect();
    for p in &participants {
        for t in &p.tasks {
            t.abort();
        }
        let _ = p.pc.close().await;
    }

    let forwarded = forwarded1.saturating_sub(forwarded0);
    let cpu: f64 = usage1.iter().zip(&usage0).map(|(b, a)| b.0 - a.0).sum();
    let rss_kb: u64 = usage1.iter().map(|u| u.1).sum();
    let mut r = recorder.lock().expect("not poisoned");
    r.delays_us.sort_unstable();
    let pct = |q: f64| {
        r.delays_us
            .get(((r.delays_us.len() as f64 - 1.0) * q) as usize)
            .copied()
            .unwrap_or(0)
    };
    // Every packet sent in the window should reach the other participants of its meeting.
    let expected = (sent1 - sent0) * (args.participants.saturating_sub(1) as u64);
    let per_meeting: HashMap<&str, usize> = args
        .target
        .iter()
        .map(|t| (t.as_str(), args.participants))
        .collect();
    let report = json!({
        "meetings": per_meeting.len(),
        "participantsPerMeeting": args.participants,
        "videoKbps": args.video_kbps,
        "packetSize": args.packet_size,
        "seconds": elapsed,
        "forwardedPacketsPerSecond": forwarded as f64 / elapsed,
        "sfuCpuSeconds": cpu,
        "sfuCpuSecondsPerMillionForwarded": if forwarded > 0 { cpu / (forwarded as f64 / 1e6) } else { 0.0 },
        "delayP50Micros": pct(0.5),
        "delayP99Micros": pct(0.99),
        "received": r.received,
        "expected": expected,
        "lossPercent": if expected > 0 { 100.0 * (1.0 - r.received as f64 / expected as f64) } else { 0.0 },
        "sfuRssKiB": rss_kb,
        "sfuRssKiBPerParticipant": rss_kb as f64 / (args.participants * args.target.len()).max(1) as f64,
    });
    println!("{report}");
    Ok(())
}
