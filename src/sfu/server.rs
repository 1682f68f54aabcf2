//! The SFU's HTTP listener: `/ws` (one WebSocket per participant, docs/signaling.md,
//! handed to [`crate::rooms::session`]), `/healthz`, `/readyz`, `/status` (participant
//! count and uptime, for the operator) and `/metrics`.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::extract::ws::WebSocketUpgrade;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeMetric};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::ConstCounter;
use prometheus_client::metrics::gauge::ConstGauge;
use prometheus_client::registry::Registry;

use crate::rooms::RoomHandle;
use crate::rooms::room::Stats;
use crate::rooms::session::{self, MAX_WS_MESSAGE};

/// The router.
pub fn router(room: Arc<RoomHandle>) -> Router {
    Router::new()
        .route("/ws", get(ws))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(room)
}

async fn readyz(State(room): State<Arc<RoomHandle>>) -> impl IntoResponse {
    match room.stats().await {
        Some(_) => (StatusCode::OK, "ok\n"),
        None => (StatusCode::SERVICE_UNAVAILABLE, "the room is not running\n"),
    }
}

async fn status(State(room): State<Arc<RoomHandle>>) -> impl IntoResponse {
    match room.stats().await {
        Some(s) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({
                "participants": s.participants,
                "uptimeSeconds": room.started.elapsed().as_secs(),
            })),
        )
            .into_response(),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// One snapshot of the room's counters, as Prometheus metrics (no labels, no personal
/// data): collected once per scrape.
#[derive(Debug)]
struct Snapshot(Stats);

impl Collector for Snapshot {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let s = &self.0;
        let gauges = [
            (
                "participants",
                "Participants connected now",
                u64::from(s.participants),
            ),
            (
                "video_layers_in",
                "Incoming video encodings (simulcast layers) that sent in the last second",
                u64::from(s.video_layers_in),
            ),
        ];
        for (name, help, v) in gauges {
            let m = encoder.encode_descriptor(name, help, None, MetricType::Gauge)?;
            ConstGauge::new(v as i64).encode(m)?;
        }
        let counters = [
            ("datagrams_in", "UDP datagrams received", s.datagrams_in),
            ("datagrams_out", "UDP datagrams sent", s.datagrams_out),
            ("bytes_in", "UDP bytes received", s.bytes_in),
            ("bytes_out", "UDP bytes sent", s.bytes_out),
            (
                "datagrams_unrouted",
                "Datagrams from no participant's address",
                s.datagrams_unrouted,
            ),
            (
                "datagrams_refused",
                "Datagrams refused (bad STUN, DTLS or SRTP; truncated; unknown streams)",
                s.datagrams_refused,
            ),
            (
                "send_drops",
                "Datagrams dropped because the socket would not take them",
                s.send_drops,
            ),
            ("rtp_in", "RTP packets received from publishers", s.rtp_in),
            (
                "rtp_forwarded",
                "RTP packets forwarded to subscribers",
                s.rtp_forwarded,
            ),
            (
                "rtp_dropped",
                "RTP packets that could not be forwarded",
                s.rtp_dropped,
            ),
            (
                "plis_sent",
                "Keyframe requests sent to publishers",
                s.plis_sent,
            ),
            (
                "keyframe_requests_in",
                "Subscribers' keyframe requests received",
                s.keyframe_requests_in,
            ),
            (
                "retransmits",
                "Packets sent again in answer to subscribers' NACKs",
                s.retransmits,
            ),
            (
                "nacks_sent",
                "NACKs sent to publishers for packets lost on the way in",
                s.nacks_sent,
            ),
            (
                "layer_switches",
                "Times a subscriber was switched to another layer of a publisher's video",
                s.layer_switches,
            ),
            (
                "rtp_paused",
                "Video packets withheld from subscribers that do not show that video",
                s.rtp_paused,
            ),
            (
                "speaker_changes",
                "Active-speaker changes announced",
                s.speaker_changes,
            ),
        ];
        for (name, help, v) in counters {
            let m = encoder.encode_descriptor(name, help, None, MetricType::Counter)?;
            ConstCounter::new(v).encode(m)?;
        }
        // Load: the process's CPU time, and its pod's limit where it has one (an
        // alert compares the two).
        if let Some(cpu) = crate::host::cpu_seconds() {
            let m = encoder.encode_descriptor(
                "cpu_seconds",
                "CPU time the SFU process has used",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(m)?;
        }
        if let Some(limit) = crate::host::cpu_limit_cores() {
            let m = encoder.encode_descriptor(
                "cpu_limit_cores",
                "The CPU limit of the SFU's cgroup (its pod's limits.cpu), in cores",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(limit).encode(m)?;
        }
        Ok(())
    }
}

/// The room's counters in the Prometheus text format.
async fn metrics(State(room): State<Arc<RoomHandle>>) -> impl IntoResponse {
    let Some(s) = room.stats().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let mut registry = Registry::with_prefix("raum_sfu");
    registry.register_collector(Box::new(Snapshot(s)));
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, &registry).is_err() {
        return StatusCode::INTERNAL_SERVER_ERROR.into_response();
    }
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        out,
    )
        .into_response()
}

async fn ws(upgrade: WebSocketUpgrade, State(room): State<Arc<RoomHandle>>) -> impl IntoResponse {
    upgrade
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| session::session(socket, room))
}
