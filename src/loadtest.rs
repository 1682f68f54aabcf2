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
//!
//! With `--simulcast` each camera is three layers (at `--layer-kbps`, 30 frames a
//! second, a frame split into packets of at most `--packet-size`, VP8 payload
//! descriptors with picture IDs, keyframes with their size when the room asks), the
//! microphone says its level (one participant of each meeting talks at a time, in
//! turn), each receiver reports arrivals (transport-wide feedback) and tells the room
//! its `--layout`. Loss then counts audio only (video is chosen per receiver), from
//! each audio stream's sequence numbers.
//!
//! With `--clips DIR` the simulcast layers are real VP8 (`q.ivf`, `h.ivf`, `f.ivf`,
//! each starting with a keyframe, looped; a keyframe request starts the clip again),
//! so browsers in the meeting decode them; video then carries no send times, and the
//! figures (delay, bitrate, layers) count audio only.

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

/// Where a payload's send time starts: after a VP8 payload descriptor and the first
/// byte of the VP8 frame (audio payloads have the same two bytes, to read one way).
const STAMP: usize = 2;
/// Where it starts in a simulcast video payload: after a descriptor with picture ID
/// and TL0PICIDX (5 bytes), room for a keyframe's frame header (10 bytes) and a spare
/// byte. It is followed by the participant's number (4 bytes) and the layer (1 byte).
const SIMULCAST_STAMP: usize = 16;
/// Every this many video packets one is a keyframe.
const KEYFRAME_EVERY: u32 = 100;
/// Simulcast frames per second.
const FPS: u32 = 30;
/// The layers' sizes, lowest first (as the web client sends them).
const LAYER_SIZES: [(u16, u16); 3] = [(320, 180), (640, 360), (1280, 720)];
/// The audio levels (RFC 6464) of the one who talks and of the others, and their
/// payload sizes in simulcast runs: Opus (variable bitrate) spends about 32 kbit/s on
/// a voice and a few bytes a frame on silence.
const TALKING: u8 = 20;
const SILENT: u8 = 127;
const TALKING_BYTES: usize = 80;
const SILENT_BYTES: usize = 16;

/// What each receiver tells the room it shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Layout {
    /// No layout message: every video comes in its highest layer.
    None,
    /// As the web client's speaker view on a page of 16: the active speaker at
    /// 1280x720 and the first 15 others as 320x180 thumbnails (the rest off screen).
    Grid,
    /// Every video at 1280x720.
    Large,
}

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

    /// Size of each video packet's payload, in bytes (with simulcast: at most).
    #[arg(long, default_value_t = 1200, value_parser = clap::value_parser!(u16).range(64..=1400))]
    pub packet_size: u16,

    /// Time for negotiations to settle before measuring.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub warm_up: Duration,

    /// How long to measure.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,

    /// PIDs of the SFU processes, for their CPU time and memory; repeatable.
    #[arg(long)]
    pub sfu_pid: Vec<u32>,

    /// Send every camera as three simulcast layers (see the module's text).
    #[arg(long)]
    pub simulcast: bool,

    /// The simulcast layers' bitrates in kbit/s, lowest first.
    #[arg(
        long,
        value_delimiter = ',',
        num_args = 3,
        default_value = "150,500,1500"
    )]
    pub layer_kbps: Vec<u32>,

    /// Publish audio only (the participants still receive everyone's video).
    #[arg(long)]
    pub no_video: bool,

    /// What each receiver shows (simulcast runs; default: grid).
    #[arg(long, value_enum)]
    pub layout: Option<Layout>,

    /// How long each participant in turn talks (simulcast runs).
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub talk_for: Duration,

    /// The local address the participants' media sockets bind to.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: std::net::IpAddr,

    /// Report each participant's figures too (simulcast runs).
    #[arg(long)]
    pub each: bool,

    /// Send real VP8 from this directory's `q.ivf`, `h.ivf` and `f.ivf` (simulcast).
    #[arg(long, value_name = "DIR", requires = "simulcast")]
    pub clips: Option<std::path::PathBuf>,
}

/// Why the VP8 clips cannot be used.
fn read_clips(dir: &std::path::Path) -> Result<Clips, String> {
    let mut layers = Vec::new();
    for rid in crate::media::client::RIDS {
        let path = dir.join(format!("{rid}.ivf"));
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let frames =
            ivf_frames(&bytes).ok_or_else(|| format!("{}: not a VP8 IVF file", path.display()))?;
        let starts_with_keyframe = frames
            .first()
            .is_some_and(|f| f.len() >= 10 && f[0] & 1 == 0 && f[3..6] == [0x9d, 0x01, 0x2a]);
        if !starts_with_keyframe {
            return Err(format!(
                "{}: does not start with a keyframe",
                path.display()
            ));
        }
        layers.push(frames);
    }
    Ok(Arc::new(layers))
}

/// The frames of an IVF file (32-byte header `DKIF` with fourcc `VP80`; each frame a
/// 12-byte header with its size), or `None` if it is not one.
fn ivf_frames(b: &[u8]) -> Option<Vec<Vec<u8>>> {
    if b.len() < 32 || &b[..4] != b"DKIF" || &b[8..12] != b"VP80" {
        return None;
    }
    let header = usize::from(u16::from_le_bytes([b[6], b[7]]));
    if header < 32 {
        return None;
    }
    let mut at = header;
    let mut frames = Vec::new();
    while at + 12 <= b.len() {
        let n = u32::from_le_bytes(b[at..at + 4].try_into().ok()?) as usize;
        let frame = b.get(at + 12..at + 12 + n)?;
        frames.push(frame.to_vec());
        at += 12 + n;
    }
    (!frames.is_empty()).then_some(frames)
}

/// Per simulcast layer, its clip's frames.
type Clips = Arc<Vec<Vec<Vec<u8>>>>;

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
    /// The VP8 clips cannot be read.
    #[error("the clips: {0}")]
    Clips(String),
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
    /// Bytes of the RTP datagrams counted (SRTP as on the wire, without UDP/IP).
    bytes: u64,
    /// Video packets by simulcast layer.
    layers: [u64; 3],
    /// Audio streams by SSRC (few: a linear list).
    audio: Vec<AudioStream>,
}

/// One received audio stream, for loss from sequence numbers and gaps in arrival.
struct AudioStream {
    ssrc: u32,
    seq: crate::media::rtp::Unwrapper,
    first: u64,
    last: u64,
    count: u64,
    last_arrival_ns: u64,
    max_gap_ns: u64,
}

impl Measured {
    fn audio(&mut self, ssrc: u32, seq: u16, arrived_ns: u64) {
        let i = match self.audio.iter().position(|a| a.ssrc == ssrc) {
            Some(i) => i,
            None => {
                self.audio.push(AudioStream {
                    ssrc,
                    seq: Default::default(),
                    first: u64::MAX,
                    last: 0,
                    count: 0,
                    last_arrival_ns: arrived_ns,
                    max_gap_ns: 0,
                });
                self.audio.len() - 1
            }
        };
        let a = &mut self.audio[i];
        let s = a.seq.unwrap(seq);
        a.first = a.first.min(s);
        a.last = a.last.max(s);
        a.count += 1;
        a.max_gap_ns = a
            .max_gap_ns
            .max(arrived_ns.saturating_sub(a.last_arrival_ns));
        a.last_arrival_ns = arrived_ns;
    }

    /// Audio packets (expected from the sequence numbers, received).
    fn audio_counts(&self) -> (u64, u64) {
        self.audio
            .iter()
            .filter(|a| a.count > 0)
            .fold((0, 0), |(e, r), a| (e + a.last - a.first + 1, r + a.count))
    }

    fn audio_max_gap_ms(&self) -> f64 {
        self.audio.iter().map(|a| a.max_gap_ns).max().unwrap_or(0) as f64 / 1e6
    }
}

/// What a participant sends and shows.
#[derive(Clone)]
struct Plan {
    /// Its number in the run, written into its payloads.
    n: u32,
    /// Its place in its meeting and the meeting's size (who talks when).
    index: usize,
    meeting_size: usize,
    video_every: Duration,
    packet_size: usize,
    simulcast: bool,
    /// Simulcast: bytes per frame of each layer.
    frame_bytes: [usize; 3],
    video: bool,
    layout: Layout,
    talk_for: Duration,
    clips: Option<Clips>,
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
    /// When the run started (who talks follows from it).
    started: Instant,
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

/// Joins one participant: WebSocket, `join`, offer and answer; also gives the ids of
/// those already in.
async fn join(
    url: &str,
    token: &str,
    n: usize,
    bind: std::net::IpAddr,
    simulcast: bool,
) -> Result<(Ws, Client, UdpSocket, Vec<String>), String> {
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
    let socket = UdpSocket::bind((bind, 0))
        .await
        .map_err(|e| e.to_string())?;
    let local = socket.local_addr().map_err(|e| e.to_string())?;
    let id = welcome["id"].as_str().unwrap_or_default().to_owned();
    let peers = welcome["peers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|p| p["id"].as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let mut client = Client::new(local, &id, simulcast).map_err(|e| e.to_string())?;
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
            return Ok((ws, client, socket, peers));
        }
    }
}

/// Tiles on one page of the grid layout.
const PAGE: usize = 16;

/// The layout message for `peers`, the active speaker large in a grid layout.
fn layout_message(layout: Layout, peers: &[String], speaker: Option<&str>) -> String {
    let speaker = speaker.filter(|s| peers.iter().any(|p| p == s));
    let tile = |id: &str, large: bool| {
        let (w, h) = if large { (1280, 720) } else { (320, 180) };
        json!({"id": id, "width": w, "height": h})
    };
    let tiles: Vec<Value> = match layout {
        Layout::Grid => speaker
            .map(|s| tile(s, true))
            .into_iter()
            .chain(
                peers
                    .iter()
                    .filter(|p| Some(p.as_str()) != speaker)
                    .map(|p| tile(p, false)),
            )
            .take(PAGE)
            .collect(),
        _ => peers.iter().map(|p| tile(p, true)).collect(),
    };
    json!({"type": "layout", "tiles": tiles}).to_string()
}

/// The length of the VP8 payload descriptor [`write_descriptor`] writes.
const DESCRIPTOR: usize = 5;

/// Writes a VP8 payload descriptor with a 15-bit picture ID and TL0PICIDX; `start`:
/// the packet starts a frame.
fn write_descriptor(p: &mut [u8], picture_id: u16, start: bool) {
    p[0] = if start { 0x90 } else { 0x80 };
    p[1] = 0xc0;
    p[2..4].copy_from_slice(&(0x8000 | (picture_id & 0x7fff)).to_be_bytes());
    p[4] = picture_id as u8;
}

/// Writes the start of a synthetic simulcast video packet's payload: the descriptor
/// and, if the packet starts a frame, the frame header (a keyframe's with its size).
fn write_vp8_start(p: &mut [u8], picture_id: u16, start: bool, key: Option<(u16, u16)>) {
    write_descriptor(p, picture_id, start);
    p[DESCRIPTOR..SIMULCAST_STAMP].fill(0);
    match (start, key) {
        (true, Some((w, h))) => {
            p[5..11].copy_from_slice(&[0x10, 0x02, 0x00, 0x9d, 0x01, 0x2a]);
            p[11..13].copy_from_slice(&w.to_le_bytes());
            p[13..15].copy_from_slice(&h.to_le_bytes());
        }
        // An interframe, shown.
        (true, None) => p[5] = 0x11,
        _ => {}
    }
}

/// A simulcast camera's state: per layer, frames sent (its picture ID) and whether
/// the next frame must be a keyframe.
struct Camera {
    frames: [u16; 3],
    /// Where each layer's clip is.
    clip_at: [usize; 3],
    keyframe_due: [bool; 3],
    /// How many layers the room wants (its `layers` message).
    active: usize,
}

/// One participant's life: signaling, media in and out, until the run stops.
async fn participant(
    mut ws: Ws,
    mut client: Client,
    socket: UdpSocket,
    mut peers: Vec<String>,
    plan: Plan,
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
    let n = plan.n;
    let mut audio = tokio::time::interval(Duration::from_millis(20));
    let video_every = if plan.simulcast {
        Duration::from_secs(1) / FPS
    } else {
        plan.video_every
    };
    let mut video = tokio::time::interval(video_every);
    audio.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    video.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    // The layout is sent when it changed, at most every 300 ms (as the web client
    // debounces it; the room allows 20 messages a second).
    let mut layout_tick = tokio::time::interval(Duration::from_millis(300));
    layout_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
    let timer = tokio::time::sleep_until(far());
    tokio::pin!(timer);
    let mut payload = vec![0u8; plan.packet_size.max(SIMULCAST_STAMP + 13)];
    let mut video_frames: u32 = 0;
    let mut camera = Camera {
        frames: [0; 3],
        clip_at: [0; 3],
        keyframe_due: [true; 3],
        active: 3,
    };
    let mut speaker: Option<String> = None;
    let mut layout_dirty = plan.simulcast && plan.layout != Layout::None;
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
                    destination: t.to.addr,
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
                    // Each in turn talks for `talk_for`.
                    let turn = run.started.elapsed().as_millis() / plan.talk_for.as_millis().max(1);
                    let talking = turn as usize % plan.meeting_size == plan.index;
                    let (level, size) = match (plan.simulcast, talking) {
                        (false, _) => (SILENT, p.len()),
                        (true, true) => (TALKING, TALKING_BYTES),
                        (true, false) => (SILENT, SILENT_BYTES),
                    };
                    client.send_audio(ts, level, &p[..size]);
                    if run.counts(t) {
                        run.sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ = video.tick(), if plan.video => {
                if client.is_connected() && plan.simulcast {
                    let t = now_ns();
                    video_frames += 1;
                    let frame_ts = video_frames.wrapping_mul(90_000 / FPS);
                    for (layer, &dimensions) in LAYER_SIZES.iter().enumerate().take(camera.active) {
                        // Both read, so one request gives one keyframe.
                        let asked = client.take_keyframe_request(layer);
                        let due = std::mem::take(&mut camera.keyframe_due[layer]);
                        let key = asked || due;
                        camera.frames[layer] = camera.frames[layer].wrapping_add(1);
                        if let Some(clips) = &plan.clips {
                            // The clip's next frame, or its first (a keyframe).
                            let clip = &clips[layer];
                            let next = if key { 0 } else { (camera.clip_at[layer] + 1) % clip.len() };
                            camera.clip_at[layer] = next;
                            let frame = &clip[next];
                            let room = plan.packet_size - DESCRIPTOR;
                            let packets = frame.len().div_ceil(room).max(1);
                            for (k, chunk) in frame.chunks(room).enumerate() {
                                let p = &mut payload[..DESCRIPTOR + chunk.len()];
                                write_descriptor(p, camera.frames[layer], k == 0);
                                p[DESCRIPTOR..].copy_from_slice(chunk);
                                client.send_video(layer, frame_ts, k + 1 == packets, p);
                            }
                            continue;
                        }
                        let bytes = plan.frame_bytes[layer];
                        let packets = bytes.div_ceil(plan.packet_size).max(1);
                        let size = (bytes / packets).max(SIMULCAST_STAMP + 13);
                        for k in 0..packets {
                            let p = &mut payload[..size];
                            write_vp8_start(p, camera.frames[layer], k == 0, key.then_some(dimensions));
                            let at = SIMULCAST_STAMP;
                            p[at..at + 8].copy_from_slice(&t.to_be_bytes());
                            p[at + 8..at + 12].copy_from_slice(&n.to_be_bytes());
                            p[at + 12] = layer as u8;
                            client.send_video(layer, frame_ts, k + 1 == packets, p);
                            if run.counts(t) {
                                run.sent.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                } else if client.is_connected() {
                    let t = now_ns();
                    // Each packet a frame; a keyframe every KEYFRAME_EVERY (the room
                    // switches a subscriber on at a keyframe).
                    payload[..2].copy_from_slice(&[0x10, u8::from(!video_frames.is_multiple_of(KEYFRAME_EVERY))]);
                    video_frames += 1;
                    payload[STAMP..STAMP + 8].copy_from_slice(&t.to_be_bytes());
                    payload[STAMP + 8..STAMP + 12].copy_from_slice(&n.to_be_bytes());
                    client.send_video(0, ts.wrapping_mul(2), true, &payload[..plan.packet_size.max(STAMP + 12)]);
                    if run.counts(t) {
                        run.sent.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            _ = layout_tick.tick(), if layout_dirty => {
                layout_dirty = false;
                let m = layout_message(plan.layout, &peers, speaker.as_deref());
                if ws.send(Message::text(m)).await.is_err() {
                    break;
                }
            }
            m = ws.next() => match m {
                Some(Ok(Message::Text(t))) => {
                    let Ok(v) = serde_json::from_str::<Value>(&t) else { continue };
                    match v["type"].as_str() {
                        Some("offer") => {
                            if let Ok(answer) = client.offer_from_room(Instant::now(), v["sdp"].as_str().unwrap_or_default())
                                && ws.send(Message::text(json!({"type": "answer", "sdp": answer}).to_string())).await.is_err()
                            {
                                break;
                            }
                        }
                        Some("peer-joined") => {
                            if let Some(id) = v["peer"]["id"].as_str() {
                                peers.push(id.to_owned());
                                layout_dirty |= plan.simulcast && plan.layout != Layout::None;
                            }
                        }
                        Some("peer-left") => {
                            peers.retain(|p| v["id"].as_str() != Some(p.as_str()));
                            layout_dirty |= plan.simulcast && plan.layout != Layout::None;
                        }
                        Some("speaker") => {
                            speaker = v["id"].as_str().map(str::to_owned);
                            layout_dirty |= plan.simulcast && plan.layout == Layout::Grid;
                        }
                        Some("layers") => {
                            let active = v["active"].as_u64().unwrap_or(3).clamp(1, 3) as usize;
                            // A layer switched on again starts with a keyframe.
                            for l in camera.active..active {
                                camera.keyframe_due[l] = true;
                            }
                            camera.active = active;
                        }
                        _ => {}
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
                            let wire = segment.len() as u64;
                            let Some(rx) = client.handle_datagram(now, meta.addr, segment) else {
                                continue;
                            };
                            // Audio payloads start with a zero byte; simulcast video
                            // with a descriptor that has the X bit.
                            let is_audio = rx.payload.first() == Some(&0);
                            let at = if plan.simulcast && !is_audio { SIMULCAST_STAMP } else { STAMP };
                            if rx.payload.len() < at + 12 {
                                continue;
                            }
                            let sent = u64::from_be_bytes(rx.payload[at..at + 8].try_into().expect("8 bytes"));
                            if !run.counts(sent) {
                                continue;
                            }
                            measured.received += 1;
                            measured.bytes += wire;
                            if is_audio {
                                measured.audio(rx.ssrc, rx.sequence, arrived);
                            } else if plan.simulcast {
                                let layer = rx.payload.get(at + 12).map_or(0, |l| usize::from(*l).min(2));
                                measured.layers[layer] += 1;
                            }
                            let d = arrived.saturating_sub(sent) / 1000;
                            measured.delays_us.push(d.min(u64::from(u32::MAX)) as u32);
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
    // The SFU's own address (a gateway's join URL has a path; its /metrics are the
    // gateway's, without these counters, and the figures stay 0).
    let host = url
        .strip_prefix("http://")
        .or_else(|| url.strip_prefix("ws://"))?
        .split('/')
        .next()?;
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
    counter(targets, "rtp_forwarded_total").await
}

/// A counter of the SFUs' metrics, summed.
async fn counter(targets: &[String], name: &str) -> u64 {
    futures::future::join_all(targets.iter().map(|u| metric(u, name)))
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
        started: Instant::now(),
    });
    let video_pps =
        (f64::from(args.video_kbps) * 1000.0 / 8.0 / f64::from(args.packet_size)).max(1.0);
    let mut frame_bytes = [0usize; 3];
    for (b, k) in frame_bytes.iter_mut().zip(&args.layer_kbps) {
        *b = (*k as usize * 1000 / 8 / FPS as usize).max(SIMULCAST_STAMP + 13);
    }
    let mut plan = Plan {
        n: 0,
        index: 0,
        meeting_size: args.participants.max(1),
        video_every: Duration::from_secs_f64(1.0 / video_pps),
        packet_size: usize::from(args.packet_size).max(SIMULCAST_STAMP + 13),
        simulcast: args.simulcast,
        frame_bytes,
        video: !args.no_video,
        layout: args.layout.unwrap_or(if args.simulcast {
            Layout::Grid
        } else {
            Layout::None
        }),
        talk_for: args.talk_for,
        clips: match &args.clips {
            Some(dir) => Some(read_clips(dir).map_err(Error::Clips)?),
            None => None,
        },
    };
    let mut tasks = Vec::new();
    for url in &args.target {
        let ws = url.replacen("http://", "ws://", 1);
        for i in 0..args.participants {
            let (sock, client, udp, peers) = join(&ws, &args.token, i, args.bind, args.simulcast)
                .await
                .map_err(|what| Error::Join {
                    n: i,
                    // Without the path: a gateway's join URL carries the token.
                    url: url.split('/').take(3).collect::<Vec<_>>().join("/"),
                    what,
                })?;
            plan.index = i;
            tasks.push(tokio::spawn(participant(
                sock,
                client,
                udp,
                peers,
                plan.clone(),
                run.clone(),
            )));
            plan.n += 1;
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
    let switches0 = counter(&args.target, "layer_switches_total").await;
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
    let switches1 = counter(&args.target, "layer_switches_total").await;
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
    let mut each = Vec::new();
    let (mut audio_expected, mut audio_received) = (0u64, 0u64);
    let mut audio_max_gap_ms = 0f64;
    let mut audio_streams_min = usize::MAX;
    let mut layers = [0u64; 3];
    for t in tasks {
        // A participant notices the stop at its next event (media ticks every 20 ms).
        if let Ok(Ok(m)) = tokio::time::timeout(Duration::from_secs(5), t).await {
            received += m.received;
            delays.extend(&m.delays_us);
            let (e, r) = m.audio_counts();
            audio_expected += e;
            audio_received += r;
            audio_max_gap_ms = audio_max_gap_ms.max(m.audio_max_gap_ms());
            let streams = m.audio.iter().filter(|a| a.count > 0).count();
            audio_streams_min = audio_streams_min.min(streams);
            for (a, b) in layers.iter_mut().zip(m.layers) {
                *a += b;
            }
            each.push(json!({
                "receivedKbps": m.bytes as f64 * 8.0 / 1000.0 / args.duration.as_secs_f64(),
                "videoPacketsByLayer": m.layers,
                "audioLossPercent": if e > 0 { 100.0 * (1.0 - r as f64 / e as f64) } else { 0.0 },
                "audioStreams": streams,
                "audioPackets": r,
                "audioMaxGapMs": m.audio_max_gap_ms(),
            }));
        }
    }
    let kbps: Vec<f64> = each
        .iter()
        .filter_map(|p| p["receivedKbps"].as_f64())
        .collect();
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
    // Every packet sent in the window should reach the other participants of its
    // meeting; with simulcast, each receiver gets one layer of each camera, and loss
    // is counted on audio (from its sequence numbers).
    let (expected, received) = if args.simulcast {
        (audio_expected, audio_received)
    } else {
        (
            sent * (args.participants.saturating_sub(1) as u64),
            received,
        )
    };
    let mut report = json!({
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
    if args.simulcast {
        let r = report.as_object_mut().expect("an object");
        r.insert("layerKbps".into(), json!(args.layer_kbps));
        r.insert(
            "receivedKbpsPerParticipantMean".into(),
            json!(kbps.iter().sum::<f64>() / kbps.len().max(1) as f64),
        );
        r.insert(
            "receivedKbpsPerParticipantMax".into(),
            json!(kbps.iter().copied().fold(0.0, f64::max)),
        );
        r.insert("videoPacketsByLayer".into(), json!(layers));
        r.insert("audioMaxGapMs".into(), json!(audio_max_gap_ms));
        // Every receiver's fewest audio streams heard (a stream that never came counts
        // in no loss figure).
        r.insert(
            "audioStreamsMin".into(),
            json!(if each.is_empty() {
                0
            } else {
                audio_streams_min
            }),
        );
        r.insert(
            "layerSwitchesPerMinute".into(),
            json!(switches1.saturating_sub(switches0) as f64 * 60.0 / elapsed),
        );
    }
    if args.each {
        report["participants"] = Value::Array(each);
    }
    println!("{report}");
    Ok(())
}
