//! The SFU's room with real WebRTC peers: clients on the async `webrtc` 0.21 crate join
//! through the room's signaling commands, publish synthetic Opus-like audio and
//! VP8-like video with recognisable payloads, and receive everyone else's media,
//! all through the room's one UDP port.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raum::sfu::room::{Command, Config, Outbound, PeerId, Room, Stats};
use raum::sfu::signaling::{ClientMessage, ServerMessage};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::{mpsc, oneshot};
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCSessionDescription,
};

const MAGIC: &[u8] = b"raum-test";

/// Packets received by one client, by the publishing participant's id and kind.
type Received = Arc<Mutex<HashMap<(String, RtpCodecKind), u64>>>;

#[derive(Clone)]
struct Handler {
    gathered: mpsc::UnboundedSender<()>,
    received: Received,
    corrupt: Arc<Mutex<u64>>,
}

#[async_trait::async_trait]
impl PeerConnectionEventHandler for Handler {
    async fn on_ice_gathering_state_change(&self, s: RTCIceGatheringState) {
        if s == RTCIceGatheringState::Complete {
            let _ = self.gathered.send(());
        }
    }

    async fn on_track(&self, track: Arc<dyn TrackRemote>) {
        let publisher = track.stream_id().await.to_string();
        let kind = track.kind().await;
        let received = self.received.clone();
        let corrupt = self.corrupt.clone();
        tokio::spawn(async move {
            while let Some(ev) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(pkt) = ev {
                    // The payload names its publisher and kind: it must arrive unchanged
                    // on the stream the SFU labelled with that publisher's id.
                    let p = &pkt.payload;
                    let ok = p.len() > MAGIC.len() + 2
                        && p.starts_with(MAGIC)
                        && p[MAGIC.len()..].starts_with(format!("{publisher}:").as_bytes());
                    if ok {
                        *received
                            .lock()
                            .unwrap()
                            .entry((publisher.clone(), kind))
                            .or_default() += 1;
                    } else {
                        *corrupt.lock().unwrap() += 1;
                    }
                }
            }
        });
    }
}

struct Client {
    id: PeerId,
    pc: Arc<dyn PeerConnection>,
    received: Received,
    corrupt: Arc<Mutex<u64>>,
    messages: Arc<Mutex<Vec<ServerMessage>>>,
    publisher: tokio::task::JoinHandle<()>,
}

fn codec(kind: RtpCodecKind) -> RTCRtpCodec {
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

fn local_track(id: PeerId, kind: RtpCodecKind, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    let name = if kind == RtpCodecKind::Audio {
        "audio"
    } else {
        "video"
    };
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("client-{id}"),
        format!("{name}-{id}"),
        name.to_owned(),
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

async fn join(room: &mpsc::UnboundedSender<Command>, name: &str) -> Client {
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let (reply_tx, reply_rx) = oneshot::channel();
    room.send(Command::Join {
        name: name.to_owned(),
        outbound: out_tx,
        reply: reply_tx,
    })
    .unwrap();
    let id = reply_rx.await.unwrap().expect("joined");
    let (gathered_tx, mut gathered) = mpsc::unbounded_channel();
    let received: Received = Default::default();
    let corrupt = Arc::new(Mutex::new(0));
    let mut media = MediaEngine::default();
    media.register_default_codecs().unwrap();
    let registry = register_default_interceptors(Registry::new(), &mut media).unwrap();
    let pc: Arc<dyn PeerConnection> = Arc::new(
        PeerConnectionBuilder::new()
            .with_configuration(RTCConfigurationBuilder::new().build())
            .with_media_engine(media)
            .with_interceptor_registry(registry)
            .with_handler(Arc::new(Handler {
                gathered: gathered_tx,
                received: received.clone(),
                corrupt: corrupt.clone(),
            }))
            .with_udp_addrs(vec!["127.0.0.1:0"])
            .build()
            .await
            .unwrap(),
    );
    let audio = local_track(id, RtpCodecKind::Audio, 1000 + id);
    let video = local_track(id, RtpCodecKind::Video, 2000 + id);
    pc.add_track(audio.clone() as Arc<dyn TrackLocal>)
        .await
        .unwrap();
    pc.add_track(video.clone() as Arc<dyn TrackLocal>)
        .await
        .unwrap();
    let offer = pc.create_offer(None).await.unwrap();
    pc.set_local_description(offer).await.unwrap();
    gathered.recv().await;
    let sdp = pc.local_description().await.unwrap().sdp;
    room.send(Command::Message {
        peer: id,
        msg: ClientMessage::Offer { sdp },
    })
    .unwrap();

    // Signaling: answer every offer of the room; keep everything else for the test.
    let messages: Arc<Mutex<Vec<ServerMessage>>> = Default::default();
    {
        let pc = pc.clone();
        let room = room.clone();
        let messages = messages.clone();
        tokio::spawn(async move {
            while let Some(out) = out_rx.recv().await {
                let Outbound::Message(msg) = out else { break };
                match &msg {
                    ServerMessage::Answer { sdp } => {
                        pc.set_remote_description(
                            RTCSessionDescription::answer(sdp.clone()).unwrap(),
                        )
                        .await
                        .unwrap();
                    }
                    ServerMessage::Offer { sdp } => {
                        pc.set_remote_description(
                            RTCSessionDescription::offer(sdp.clone()).unwrap(),
                        )
                        .await
                        .unwrap();
                        let answer = pc.create_answer(None).await.unwrap();
                        pc.set_local_description(answer).await.unwrap();
                        let sdp = pc.local_description().await.unwrap().sdp;
                        let _ = room.send(Command::Message {
                            peer: id,
                            msg: ClientMessage::Answer { sdp },
                        });
                    }
                    _ => {}
                }
                messages.lock().unwrap().push(msg);
            }
        });
    }

    // Publish 50 audio and 50 video packets a second, each naming its publisher.
    let publisher = tokio::spawn(async move {
        let mut seq: u16 = 0;
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        loop {
            tick.tick().await;
            seq = seq.wrapping_add(1);
            for (track, pt, ssrc, kind) in [
                (&audio, 111u8, 1000 + id, "a"),
                (&video, 96u8, 2000 + id, "v"),
            ] {
                let mut payload = MAGIC.to_vec();
                payload.extend_from_slice(format!("{id}:{kind}:{seq}").as_bytes());
                let pkt = rtc::rtp::Packet {
                    header: rtc::rtp::header::Header {
                        version: 2,
                        marker: true,
                        payload_type: pt,
                        sequence_number: seq,
                        timestamp: u32::from(seq) * 960,
                        ssrc,
                        ..Default::default()
                    },
                    payload: bytes::Bytes::from(payload),
                };
                let _ = track.write_rtp(pkt).await;
            }
        }
    });
    Client {
        id,
        pc,
        received,
        corrupt,
        messages,
        publisher,
    }
}

impl Client {
    fn count(&self, publisher: PeerId, kind: RtpCodecKind) -> u64 {
        *self
            .received
            .lock()
            .unwrap()
            .get(&(publisher.to_string(), kind))
            .unwrap_or(&0)
    }
}

async fn start_room(max: u32) -> (mpsc::UnboundedSender<Command>, SocketAddr) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let advertised = socket.local_addr().unwrap();
    let (tx, rx) = mpsc::unbounded_channel();
    let room = Room::new(
        Config {
            advertised,
            max_participants: max,
            ice_timeout: Duration::from_secs(30),
        },
        socket,
    );
    tokio::spawn(room.run(rx));
    (tx, advertised)
}

async fn stats(room: &mpsc::UnboundedSender<Command>) -> Stats {
    let (tx, rx) = oneshot::channel();
    room.send(Command::Stats { reply: tx }).unwrap();
    rx.await.unwrap()
}

async fn eventually(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let start = std::time::Instant::now();
    while !cond() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_participants_receive_each_others_audio_and_video_through_one_port() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(std::env::var("RAUM_LOG").unwrap_or_default())
        .with_test_writer()
        .try_init();
    let (room, addr) = start_room(10).await;
    let a = join(&room, "Ada").await;
    let b = join(&room, "Bea").await;
    let c = join(&room, "Cem").await;
    let clients = [&a, &b, &c];
    eventually(
        "everyone to receive everyone else's audio and video",
        Duration::from_secs(30),
        || {
            clients.iter().all(|me| {
                clients.iter().filter(|o| o.id != me.id).all(|o| {
                    me.count(o.id, RtpCodecKind::Audio) > 20
                        && me.count(o.id, RtpCodecKind::Video) > 20
                })
            })
        },
    )
    .await;
    for me in clients {
        assert_eq!(*me.corrupt.lock().unwrap(), 0, "payloads arrive unchanged");
        assert_eq!(
            me.count(me.id, RtpCodecKind::Audio),
            0,
            "nobody receives themselves"
        );
    }
    let s = stats(&room).await;
    assert_eq!(s.participants, 3);
    assert!(s.rtp_forwarded > 100, "{s:?}");
    // Every client's media reached the room on its one port: the clients' candidate
    // pairs all end at `addr`.
    for me in clients {
        let sdp = me.pc.remote_description().await.unwrap().sdp;
        assert!(
            sdp.contains(&format!("{} {} typ host", addr.ip(), addr.port())),
            "{sdp}"
        );
        me.publisher.abort();
    }
}

fn has(c: &Client, f: impl Fn(&ServerMessage) -> bool) -> bool {
    c.messages.lock().unwrap().iter().any(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_a_keyframe_request_sent_for_it_and_a_leaver_stops() {
    let (room, _) = start_room(10).await;
    let a = join(&room, "Ada").await;
    let b = join(&room, "Bea").await;
    eventually("two-way media", Duration::from_secs(30), || {
        a.count(b.id, RtpCodecKind::Video) > 10 && b.count(a.id, RtpCodecKind::Video) > 10
    })
    .await;
    let plis_before = stats(&room).await.plis_sent;
    let d = join(&room, "Dan").await;
    eventually(
        "the late joiner to receive both",
        Duration::from_secs(30),
        || {
            d.count(a.id, RtpCodecKind::Video) > 10
                && d.count(b.id, RtpCodecKind::Video) > 10
                && a.count(d.id, RtpCodecKind::Audio) > 10
        },
    )
    .await;
    assert!(
        stats(&room).await.plis_sent >= plis_before + 2,
        "a keyframe request upstream for each video the new subscriber gets"
    );
    assert!(has(
        &a,
        |m| matches!(m, ServerMessage::PeerJoined { peer } if peer.name == "Dan")
    ));

    // Bea leaves: the others learn it and stop receiving her.
    room.send(Command::Message {
        peer: b.id,
        msg: ClientMessage::Leave,
    })
    .unwrap();
    b.publisher.abort();
    let bid = b.id.to_string();
    eventually("peer-left", Duration::from_secs(10), || {
        has(
            &a,
            |m| matches!(m, ServerMessage::PeerLeft { id } if *id == bid),
        ) && has(
            &d,
            |m| matches!(m, ServerMessage::PeerLeft { id } if *id == bid),
        )
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (a1, d1) = (
        a.count(b.id, RtpCodecKind::Video),
        d.count(b.id, RtpCodecKind::Video),
    );
    let (ad1, da1) = (
        a.count(d.id, RtpCodecKind::Video),
        d.count(a.id, RtpCodecKind::Video),
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        (
            a.count(b.id, RtpCodecKind::Video),
            d.count(b.id, RtpCodecKind::Video)
        ),
        (a1, d1),
        "nothing more from the one who left"
    );
    assert!(
        a.count(d.id, RtpCodecKind::Video) > ad1 && d.count(a.id, RtpCodecKind::Video) > da1,
        "the others go on"
    );
    assert_eq!(stats(&room).await.participants, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn chat_reaches_exactly_the_others_in_the_same_meeting() {
    let (room1, _) = start_room(10).await;
    let (room2, _) = start_room(10).await;
    let a = join(&room1, "Ada").await;
    let b = join(&room1, "Bea").await;
    let c = join(&room1, "Cem").await;
    let x = join(&room2, "Xia").await;
    room1
        .send(Command::Message {
            peer: a.id,
            msg: ClientMessage::Chat {
                text: "geheim-4711".into(),
            },
        })
        .unwrap();
    let from = a.id.to_string();
    let got = |c: &Client| {
        has(
            c,
            |m| matches!(m, ServerMessage::Chat { from: f, text } if *f == from && text == "geheim-4711"),
        )
    };
    eventually("chat to the others", Duration::from_secs(10), || {
        got(&b) && got(&c)
    })
    .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        !has(&a, |m| matches!(m, ServerMessage::Chat { .. })),
        "not echoed to the sender"
    );
    assert!(
        !has(&x, |m| matches!(m, ServerMessage::Chat { .. })),
        "not to another meeting"
    );
    for c in [&a, &b, &c, &x] {
        c.publisher.abort();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_more_than_max_participants_is_told_the_room_is_full() {
    let (room, _) = start_room(3).await;
    let _a = join(&room, "Ada").await;
    let _b = join(&room, "Bea").await;
    let _c = join(&room, "Cem").await;
    let (out, _rx) = mpsc::unbounded_channel();
    let (tx, rx) = oneshot::channel();
    room.send(Command::Join {
        name: "Dan".into(),
        outbound: out,
        reply: tx,
    })
    .unwrap();
    assert_eq!(
        rx.await.unwrap(),
        Err(raum::sfu::signaling::ErrorCode::RoomFull)
    );
    assert_eq!(stats(&room).await.participants, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_everyone_the_meeting_ended_and_closes() {
    let (room, _) = start_room(10).await;
    let (out, mut rx) = mpsc::unbounded_channel();
    let (tx, reply) = oneshot::channel();
    room.send(Command::Join {
        name: "Ada".into(),
        outbound: out,
        reply: tx,
    })
    .unwrap();
    reply.await.unwrap().unwrap();
    room.send(Command::Shutdown).unwrap();
    let mut got = Vec::new();
    while let Some(m) = rx.recv().await {
        got.push(m);
    }
    assert!(matches!(
        got[0],
        Outbound::Message(ServerMessage::Welcome { .. })
    ));
    assert!(got.contains(&Outbound::Message(ServerMessage::error(
        raum::sfu::signaling::ErrorCode::MeetingEnded,
        "the meeting has ended"
    ))));
    assert_eq!(got.last(), Some(&Outbound::Close));
}
