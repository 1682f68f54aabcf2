//! A WebRTC participant for the SFU's tests, on the async layer of `webrtc` 0.21 (the
//! same crate the SFU's core comes from): publishes synthetic Opus-like audio and
//! VP8-like video whose payloads name the publisher, and checks what it receives.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use raum::rooms::room::PeerId;
use raum::signaling::{ClientMessage, ServerMessage};
use rtc::interceptor::Registry;
use rtc::media_stream::MediaStreamTrack;
use rtc::peer_connection::configuration::interceptor_registry::register_default_interceptors;
use rtc::peer_connection::configuration::media_engine::MediaEngine;
use rtc::rtp_transceiver::rtp_sender::{
    RTCRtpCodec, RTCRtpCodingParameters, RTCRtpEncodingParameters, RtpCodecKind,
};
use tokio::sync::mpsc;
use webrtc::media_stream::track_local::TrackLocal;
use webrtc::media_stream::track_local::static_rtp::TrackLocalStaticRTP;
use webrtc::media_stream::track_remote::{TrackRemote, TrackRemoteEvent};
use webrtc::peer_connection::{
    PeerConnection, PeerConnectionBuilder, PeerConnectionEventHandler, RTCConfigurationBuilder,
    RTCIceGatheringState, RTCSessionDescription,
};

const MAGIC: &[u8] = b"raum-test";
/// Before it, in every payload: a VP8 payload descriptor (start of a frame) and a
/// keyframe's first byte, because the SFU starts a subscriber's video at a keyframe.
const VP8_KEYFRAME: [u8; 2] = [0x10, 0x00];

/// Packets received by one client, by the publishing participant's id and kind.
pub type Received = Arc<Mutex<HashMap<(String, RtpCodecKind), u64>>>;

/// The tracks a client receives: (publisher id, kind, track).
pub type Remotes = Arc<Mutex<Vec<(String, RtpCodecKind, Arc<dyn TrackRemote>)>>>;

/// The last sequence number received, by publisher and kind.
pub type LastSeq = Arc<Mutex<HashMap<(String, RtpCodecKind), u16>>>;

/// Per publisher and kind: the first and last sequence number received and how many
/// packets came; no loss means `count == last - first + 1`.
pub type SeqSpan = Arc<Mutex<HashMap<(String, RtpCodecKind), (u16, u16, u64)>>>;

#[derive(Clone)]
struct Handler {
    gathered: mpsc::UnboundedSender<()>,
    last_seq: LastSeq,
    spans: SeqSpan,
    received: Received,
    corrupt: Arc<Mutex<u64>>,
    remotes: Remotes,
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
        self.remotes
            .lock()
            .unwrap()
            .push((publisher.clone(), kind, track.clone()));
        let received = self.received.clone();
        let corrupt = self.corrupt.clone();
        let last_seq = self.last_seq.clone();
        let spans = self.spans.clone();
        tokio::spawn(async move {
            while let Some(ev) = track.poll().await {
                if let TrackRemoteEvent::OnRtpPacket(pkt) = ev {
                    // The payload names its publisher and kind: it must arrive unchanged
                    // on the stream the SFU labelled with that publisher's id.
                    let p = pkt.payload.strip_prefix(&VP8_KEYFRAME).unwrap_or_default();
                    let ok = p.len() > MAGIC.len() + 2
                        && p.starts_with(MAGIC)
                        && p[MAGIC.len()..].starts_with(format!("{publisher}:").as_bytes());
                    if ok {
                        let seq = pkt.header.sequence_number;
                        spans
                            .lock()
                            .unwrap()
                            .entry((publisher.clone(), kind))
                            .and_modify(|(_, last, n)| {
                                *last = seq;
                                *n += 1;
                            })
                            .or_insert((seq, seq, 1));
                        last_seq
                            .lock()
                            .unwrap()
                            .insert((publisher.clone(), kind), pkt.header.sequence_number);
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

/// A WebRTC peer on the async `webrtc` crate, as a participant.
pub struct Client {
    pub id: PeerId,
    pub pc: Arc<dyn PeerConnection>,
    pub received: Received,
    pub corrupt: Arc<Mutex<u64>>,
    pub remotes: Remotes,
    pub last_seq: LastSeq,
    pub spans: SeqSpan,
    pub messages: Arc<Mutex<Vec<ServerMessage>>>,
    pub to_sfu: mpsc::UnboundedSender<ClientMessage>,
    pub publisher: tokio::task::JoinHandle<()>,
}

/// The codec a test participant sends: Opus for audio, VP8 for video.
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

fn local_track(id: PeerId, kind: RtpCodecKind, ssrc: u32) -> Arc<TrackLocalStaticRTP> {
    let name = if kind == RtpCodecKind::Audio {
        "audio"
    } else {
        "video"
    };
    let track_id = format!("{name}-{id}");
    Arc::new(TrackLocalStaticRTP::new(MediaStreamTrack::new(
        format!("client-{id}"),
        track_id.clone(),
        track_id,
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

/// Starts a peer once the SFU has welcomed it as `id`: it offers audio and video,
/// answers the SFU's offers, publishes 50 audio and 50 video packets a second whose
/// payloads name it, and counts what it receives by publisher. Signaling goes out on
/// `to_sfu` and comes in on `from_sfu`.
pub async fn start(
    id: PeerId,
    to_sfu: mpsc::UnboundedSender<ClientMessage>,
    mut from_sfu: mpsc::UnboundedReceiver<ServerMessage>,
) -> Client {
    let (gathered_tx, mut gathered) = mpsc::unbounded_channel();
    let received: Received = Default::default();
    let corrupt = Arc::new(Mutex::new(0));
    let remotes: Remotes = Default::default();
    let last_seq: LastSeq = Default::default();
    let spans: SeqSpan = Default::default();
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
                last_seq: last_seq.clone(),
                spans: spans.clone(),
                received: received.clone(),
                corrupt: corrupt.clone(),
                remotes: remotes.clone(),
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
    to_sfu
        .send(ClientMessage::Offer { sdp, screen: None })
        .unwrap();

    // Signaling: answer every offer of the SFU; keep everything for the test.
    let messages: Arc<Mutex<Vec<ServerMessage>>> = Default::default();
    {
        let pc = pc.clone();
        let messages = messages.clone();
        let to_sfu = to_sfu.clone();
        tokio::spawn(async move {
            while let Some(msg) = from_sfu.recv().await {
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
                        let _ = to_sfu.send(ClientMessage::Answer { sdp });
                    }
                    _ => {}
                }
                messages.lock().unwrap().push(msg);
            }
        });
    }

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
                let mut payload = VP8_KEYFRAME.to_vec();
                payload.extend_from_slice(MAGIC);
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
        remotes,
        last_seq,
        spans,
        messages,
        to_sfu,
        publisher,
    }
}

impl Client {
    /// Packets received from `publisher` of `kind`.
    pub fn count(&self, publisher: PeerId, kind: RtpCodecKind) -> u64 {
        *self
            .received
            .lock()
            .unwrap()
            .get(&(publisher.to_string(), kind))
            .unwrap_or(&0)
    }
}

impl Client {
    /// The track this client receives from `publisher` of `kind`.
    pub fn remote(&self, publisher: PeerId, kind: RtpCodecKind) -> Arc<dyn TrackRemote> {
        self.remotes
            .lock()
            .unwrap()
            .iter()
            .find(|(p, k, _)| *p == publisher.to_string() && *k == kind)
            .map(|(_, _, t)| t.clone())
            .expect("a track from that publisher")
    }

    /// Streams this client received with a gap in their sequence numbers, as
    /// (publisher, kind, missing packets).
    pub fn gaps(&self) -> Vec<(String, RtpCodecKind, u64)> {
        self.spans
            .lock()
            .unwrap()
            .iter()
            .filter_map(|((p, k), (first, last, n))| {
                let span = u64::from(last.wrapping_sub(*first)) + 1;
                (span != *n).then(|| (p.clone(), *k, span.saturating_sub(*n)))
            })
            .collect()
    }
}

/// Whether the client received a message that satisfies `f`.
pub fn has(c: &Client, f: impl Fn(&ServerMessage) -> bool) -> bool {
    c.messages.lock().unwrap().iter().any(f)
}
