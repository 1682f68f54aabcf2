//! The SFU's room with real WebRTC peers: clients on the async `webrtc` 0.21 crate join
//! through the room's signaling commands, publish synthetic Opus-like audio and
//! VP8-like video with recognisable payloads, and receive everyone else's media,
//! all through the room's one UDP port.

use raum_testkit::peer;

use std::net::SocketAddr;
use std::time::Duration;

use peer::{Client, has};
use raum::rooms::room::{Advertised, Command, Outbound, Room, Stats};
use raum::rooms::{Network, RoomSettings};
use raum::signaling::{ClientMessage, ServerMessage};
use raum_testkit::wait::eventually;
use rtc::rtp_transceiver::rtp_sender::RtpCodecKind;
use tokio::sync::{mpsc, oneshot};

/// Joins the room in-process: the room's commands are the signaling transport.
async fn join(room: &mpsc::Sender<Command>, name: &str) -> Client {
    let (out_tx, mut out_rx) = mpsc::channel(raum::rooms::room::OUTBOUND_QUEUE);
    let (reply_tx, reply_rx) = oneshot::channel();
    room.try_send(Command::Join {
        role: raum::signaling::Role::Participant,
        seat: None,
        name: name.to_owned(),
        outbound: out_tx,
        reply: reply_tx,
    })
    .unwrap();
    let id = reply_rx.await.unwrap().expect("joined");
    let (to_sfu, mut to_rx) = mpsc::unbounded_channel::<ClientMessage>();
    let (from_tx, from_sfu) = mpsc::unbounded_channel();
    let r = room.clone();
    tokio::spawn(async move {
        while let Some(msg) = to_rx.recv().await {
            let _ = r.send(Command::Message { peer: id, msg }).await;
        }
    });
    tokio::spawn(async move {
        while let Some(Outbound::Message(m)) = out_rx.recv().await {
            let _ = from_tx.send(m);
        }
    });
    peer::start(id, to_sfu, from_sfu).await
}

async fn start_room(max: u32) -> (mpsc::Sender<Command>, SocketAddr) {
    start_room_with(max, |_| {}).await
}

async fn start_room_with(
    max: u32,
    change: impl FnOnce(&mut RoomSettings),
) -> (mpsc::Sender<Command>, SocketAddr) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let advertised = socket.local_addr().unwrap();
    let (tx, rx) = mpsc::channel(raum::rooms::room::COMMAND_QUEUE);
    let mut settings = RoomSettings {
        max_participants: max,
        ..RoomSettings::default()
    };
    change(&mut settings);
    let network = Network {
        udp: socket,
        tcp: None,
        advertised: Advertised::udp(advertised),
        turn: None,
    };
    let room = Room::new(settings, network).unwrap();
    tokio::spawn(room.run(rx, Default::default()));
    (tx, advertised)
}

/// Ada and Bea join and see each other's video.
async fn two_way_call(room: &mpsc::Sender<Command>) -> (Client, Client) {
    let a = join(room, "Ada").await;
    let b = join(room, "Bea").await;
    eventually("two-way media", Duration::from_secs(30), || {
        a.count(b.id, RtpCodecKind::Video) > 10 && b.count(a.id, RtpCodecKind::Video) > 10
    })
    .await;
    (a, b)
}

async fn stats(room: &mpsc::Sender<Command>) -> Stats {
    let (tx, rx) = oneshot::channel();
    room.try_send(Command::Stats { reply: tx }).unwrap();
    rx.await.unwrap()
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_late_joiner_gets_a_keyframe_request_sent_for_it_and_a_leaver_stops() {
    let (room, _) = start_room(10).await;
    let (a, b) = two_way_call(&room).await;
    // Past the keyframe rate limit of the requests made when Ada and Bea met.
    tokio::time::sleep(super_interval()).await;
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
    room.try_send(Command::Message {
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
        .try_send(Command::Message {
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
    let (out, _rx) = mpsc::channel(raum::rooms::room::OUTBOUND_QUEUE);
    let (tx, rx) = oneshot::channel();
    room.try_send(Command::Join {
        role: raum::signaling::Role::Participant,
        seat: None,
        name: "Dan".into(),
        outbound: out,
        reply: tx,
    })
    .unwrap();
    assert_eq!(rx.await.unwrap(), Err(raum::signaling::ErrorCode::RoomFull));
    assert_eq!(stats(&room).await.participants, 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_tells_everyone_the_meeting_ended_and_closes() {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let advertised = socket.local_addr().unwrap();
    let network = Network {
        udp: socket,
        tcp: None,
        advertised: Advertised::udp(advertised),
        turn: None,
    };
    let (handle, task, _sessions) =
        raum::rooms::start(RoomSettings::default(), network, String::new(), None).unwrap();
    let room = handle.commands.clone();
    let (out, mut rx) = mpsc::channel(raum::rooms::room::OUTBOUND_QUEUE);
    let (tx, reply) = oneshot::channel();
    room.try_send(Command::Join {
        role: raum::signaling::Role::Participant,
        seat: None,
        name: "Ada".into(),
        outbound: out,
        reply: tx,
    })
    .unwrap();
    reply.await.unwrap().unwrap();
    handle.shut_down();
    let mut got = Vec::new();
    while let Some(m) = rx.recv().await {
        got.push(m);
    }
    assert!(matches!(
        got[0],
        Outbound::Message(ServerMessage::Welcome { .. })
    ));
    assert!(got.contains(&Outbound::Message(ServerMessage::error(
        raum::signaling::ErrorCode::MeetingEnded,
        "the meeting has ended"
    ))));
    assert_eq!(got.last(), Some(&Outbound::Close));
    task.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribers_keyframe_requests_reach_the_publisher_rate_limited() {
    let (room, _) = start_room(10).await;
    let (a, b) = two_way_call(&room).await;
    tokio::time::sleep(super_interval()).await;
    let before = stats(&room).await;
    // Ada's browser lost a frame of Bea's video and asks ten times in a row.
    let track = a.remote(b.id, RtpCodecKind::Video);
    let ssrc = track.ssrcs().await[0];
    for _ in 0..10 {
        let pli = rtc::rtcp::payload_feedbacks::picture_loss_indication::PictureLossIndication {
            sender_ssrc: 1,
            media_ssrc: ssrc,
        };
        track.write_rtcp(vec![Box::new(pli)]).await.unwrap();
    }
    let mut after = stats(&room).await;
    let start = std::time::Instant::now();
    while after.keyframe_requests_in < before.keyframe_requests_in + 10
        && start.elapsed() < Duration::from_secs(5)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = stats(&room).await;
    }
    assert_eq!(
        after.keyframe_requests_in - before.keyframe_requests_in,
        10,
        "{after:?}"
    );
    let passed_on = after.plis_sent - before.plis_sent;
    assert!(
        (1..=2).contains(&passed_on),
        "passed on upstream, rate-limited: {passed_on}"
    );
}

/// Longer than the room's keyframe rate limit, so earlier requests do not count.
fn super_interval() -> Duration {
    raum::rooms::room::KEYFRAME_REQUEST_INTERVAL + Duration::from_millis(100)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_meeting_without_video_forwards_audio_only_and_caps_the_bitrate() {
    let (room, _) = start_room_with(10, |c| {
        c.video = false;
        c.max_video_kbps = 700;
    })
    .await;
    let a = join(&room, "Ada").await;
    let b = join(&room, "Bea").await;
    eventually("audio both ways", Duration::from_secs(30), || {
        a.count(b.id, RtpCodecKind::Audio) > 25 && b.count(a.id, RtpCodecKind::Audio) > 25
    })
    .await;
    assert_eq!(
        a.count(b.id, RtpCodecKind::Video) + b.count(a.id, RtpCodecKind::Video),
        0
    );
    let answer = a.messages.lock().unwrap().iter().find_map(|m| match m {
        ServerMessage::Answer { sdp } => Some(sdp.clone()),
        _ => None,
    });
    assert!(
        answer.unwrap().contains("b=AS:700"),
        "the video bitrate limit is announced"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_whose_media_never_connects_is_dropped() {
    let (room, _) = start_room_with(10, |c| c.ice_timeout = Duration::from_millis(500)).await;
    let (out, mut rx) = mpsc::channel(raum::rooms::room::OUTBOUND_QUEUE);
    let (tx, reply) = oneshot::channel();
    room.try_send(Command::Join {
        role: raum::signaling::Role::Participant,
        seat: None,
        name: "Silent".into(),
        outbound: out,
        reply: tx,
    })
    .unwrap();
    reply.await.unwrap().unwrap();
    let mut got = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await {
        got.push(m);
    }
    assert_eq!(got.last(), Some(&Outbound::Close), "{got:?}");
    assert!(got.iter().any(|m| matches!(m, Outbound::Message(ServerMessage::Error { message, .. }) if message.contains("did not connect"))));
    assert_eq!(stats(&room).await.participants, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_subscribers_nack_is_answered_from_the_sfus_buffer() {
    let (room, _) = start_room(10).await;
    let a = join(&room, "Ada").await;
    let b = join(&room, "Bea").await;
    eventually("media", Duration::from_secs(30), || {
        a.count(b.id, RtpCodecKind::Video) > 20
    })
    .await;
    let track = a.remote(b.id, RtpCodecKind::Video);
    let ssrc = track.ssrcs().await[0];
    let seq = a.last_seq.lock().unwrap()[&(b.id.to_string(), RtpCodecKind::Video)];
    let before = stats(&room).await;
    // Ada says she lost the packet two before the last one she got.
    let nack = rtc::rtcp::transport_feedbacks::transport_layer_nack::TransportLayerNack {
        sender_ssrc: 1,
        media_ssrc: ssrc,
        nacks: vec![
            rtc::rtcp::transport_feedbacks::transport_layer_nack::NackPair {
                packet_id: seq.wrapping_sub(2),
                lost_packets: 0,
            },
        ],
    };
    track.write_rtcp(vec![Box::new(nack)]).await.unwrap();
    let start = std::time::Instant::now();
    let mut after = stats(&room).await;
    while after.retransmits == before.retransmits && start.elapsed() < Duration::from_secs(5) {
        tokio::time::sleep(Duration::from_millis(50)).await;
        after = stats(&room).await;
    }
    assert!(
        after.retransmits > before.retransmits,
        "the packet was sent again from the buffer: {after:?}"
    );
}

/// A room with ICE-TCP on a loopback port: its commands and that port.
async fn start_room_with_tcp(max: u32) -> (mpsc::Sender<Command>, SocketAddr) {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let tcp = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let tcp_addr = tcp.local_addr().unwrap();
    let udp = socket.local_addr().unwrap();
    let advertised = Advertised {
        ip: udp.ip(),
        udp_port: udp.port(),
        tcp_port: Some(tcp_addr.port()),
    };
    let (tx, rx) = mpsc::channel(raum::rooms::room::COMMAND_QUEUE);
    let settings = RoomSettings {
        max_participants: max,
        ..RoomSettings::default()
    };
    let network = Network {
        udp: socket,
        tcp: Some(tcp),
        advertised,
        turn: None,
    };
    let room = Room::new(settings, network).unwrap();
    tokio::spawn(room.run(rx, Default::default()));
    (tx, tcp_addr)
}

/// Whether the room closes `stream` within two seconds (reads end or fail).
async fn closed_by_room(stream: &mut tokio::net::TcpStream) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 64];
    matches!(
        tokio::time::timeout(Duration::from_secs(2), stream.read(&mut buf)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

/// A STUN binding request, framed (RFC 4571), for a ufrag the room never gave out.
fn framed_binding_request() -> Vec<u8> {
    let mut buf = [0u8; 200];
    let n = raum::media::stun::Builder::new(&mut buf, raum::media::stun::BINDING_REQUEST, &[7; 12])
        .username(b"nobody:x")
        .finish(Some(b"password"));
    let mut framed = (n as u16).to_be_bytes().to_vec();
    framed.extend_from_slice(&buf[..n]);
    framed
}

/// What an ICE-TCP port gets from hostile or confused clients: a first frame that is
/// no connectivity check, an impossible length, a check no participant's credentials
/// prove, and more connections than the room has paths for are each closed; a
/// connection not yet checked keeps its place until its first check is due.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ice_tcp_closes_what_is_not_ice_and_bounds_its_connections() {
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpStream;
    let (room, tcp) = start_room_with_tcp(1).await;

    let mut http = TcpStream::connect(tcp).await.unwrap();
    http.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    assert!(closed_by_room(&mut http).await, "HTTP is not ICE");

    let mut huge = TcpStream::connect(tcp).await.unwrap();
    huge.write_all(&[0xff, 0xff, 0, 1, 0, 0]).await.unwrap();
    assert!(closed_by_room(&mut huge).await, "a 65535-byte frame");

    let mut garbage = TcpStream::connect(tcp).await.unwrap();
    garbage.write_all(&[0, 4, 0x80, 96, 0, 1]).await.unwrap();
    assert!(closed_by_room(&mut garbage).await, "RTP before any check");

    // A check for a ufrag the room never gave out: closed at once, so such checks
    // cannot hold the room's connections (before, they kept it open until idle).
    let mut bogus = TcpStream::connect(tcp).await.unwrap();
    bogus.write_all(&framed_binding_request()).await.unwrap();
    assert!(closed_by_room(&mut bogus).await, "a check nobody proves");
    // The unknown ufrag was counted, not answered.
    assert!(stats(&room).await.datagrams_unrouted >= 1);

    // One participant and the hosts who may come beyond it: 2 × (1 + 5) + 8 paths,
    // each held by a connection awaiting its first check; one more is closed.
    let paths = 2 * (1 + raum::media::room::HOST_SEATS as usize) + 8;
    let mut held = Vec::new();
    for _ in 0..paths {
        held.push(TcpStream::connect(tcp).await.unwrap());
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut one_more = TcpStream::connect(tcp).await.unwrap();
    assert!(
        closed_by_room(&mut one_more).await,
        "the connection beyond the paths"
    );
    for s in &held {
        let mut buf = [0u8; 64];
        let open =
            matches!(s.try_read(&mut buf), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock);
        assert!(open, "a connection awaiting its first check stays open");
    }
    drop(held);
}
