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

use crate::rooms::RoomHandle;
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

/// The room's counters in the Prometheus text format (a handful of counters copied
/// from one snapshot; no labels, no personal data).
async fn metrics(State(room): State<Arc<RoomHandle>>) -> impl IntoResponse {
    let Some(s) = room.stats().await else {
        return StatusCode::SERVICE_UNAVAILABLE.into_response();
    };
    let mut out = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
        out.push_str(&format!("# HELP raum_sfu_{name} {help}\n# TYPE raum_sfu_{name} {kind}\nraum_sfu_{name} {value}\n"));
    };
    metric(
        "participants",
        "gauge",
        "Participants connected now",
        u64::from(s.participants),
    );
    metric(
        "datagrams_in_total",
        "counter",
        "UDP datagrams received",
        s.datagrams_in,
    );
    metric(
        "datagrams_out_total",
        "counter",
        "UDP datagrams sent",
        s.datagrams_out,
    );
    metric(
        "bytes_in_total",
        "counter",
        "UDP bytes received",
        s.bytes_in,
    );
    metric("bytes_out_total", "counter", "UDP bytes sent", s.bytes_out);
    metric(
        "datagrams_unrouted_total",
        "counter",
        "Datagrams from no participant's address",
        s.datagrams_unrouted,
    );
    metric(
        "rtp_in_total",
        "counter",
        "RTP packets received from publishers",
        s.rtp_in,
    );
    metric(
        "rtp_forwarded_total",
        "counter",
        "RTP packets forwarded to subscribers",
        s.rtp_forwarded,
    );
    metric(
        "rtp_dropped_total",
        "counter",
        "RTP packets that could not be forwarded",
        s.rtp_dropped,
    );
    metric(
        "plis_sent_total",
        "counter",
        "Keyframe requests sent to publishers",
        s.plis_sent,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], out).into_response()
}

async fn ws(upgrade: WebSocketUpgrade, State(room): State<Arc<RoomHandle>>) -> impl IntoResponse {
    upgrade
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| session::session(socket, room))
}
