//! The SFU's HTTP listener: `/ws` (one WebSocket per participant, docs/signaling.md),
//! `/healthz`, `/readyz`, `/status` (participant count and uptime, for the operator)
//! and `/metrics`.
//!
//! A session checks the token, applies the limits (frame size, message and chat rates,
//! time to join) and relays between its WebSocket and the room. Nothing a participant
//! says (name, chat) is logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::State;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::room::{Command, Outbound, Stats};
use super::signaling::{ClientMessage, ErrorCode, RateLimit, ServerMessage, parse};
use crate::operator::join_token::{token_digest, tokens_match};

/// How long a new WebSocket may take to send `join`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames up to this size are read (and refused with `too-large` above
/// [`super::signaling::MAX_FRAME_BYTES`]); larger ones end the connection at the
/// protocol level.
const MAX_WS_MESSAGE: usize = 16 * 1024 * 1024;

/// What every session needs.
pub struct Shared {
    /// The room task.
    pub room: mpsc::UnboundedSender<Command>,
    /// Hex SHA-256 of the meeting's join token.
    pub token_sha256: String,
    /// Chat switched on.
    pub chat: bool,
    /// When the process started.
    pub started: Instant,
    /// Every session holds a clone until it ends; the receiver learns when all ended
    /// (a WebSocket outlives the HTTP server's graceful shutdown).
    pub sessions: mpsc::Sender<()>,
}

/// The router.
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/ws", get(ws))
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/status", get(status))
        .route("/metrics", get(metrics))
        .with_state(shared)
}

async fn stats(shared: &Shared) -> Option<Stats> {
    let (tx, rx) = oneshot::channel();
    shared.room.send(Command::Stats { reply: tx }).ok()?;
    tokio::time::timeout(Duration::from_secs(1), rx)
        .await
        .ok()?
        .ok()
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    match stats(&shared).await {
        Some(_) => (StatusCode::OK, "ok\n"),
        None => (StatusCode::SERVICE_UNAVAILABLE, "the room is not running\n"),
    }
}

async fn status(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    match stats(&shared).await {
        Some(s) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({
                "participants": s.participants,
                "uptimeSeconds": shared.started.elapsed().as_secs(),
            })),
        )
            .into_response(),
        None => StatusCode::SERVICE_UNAVAILABLE.into_response(),
    }
}

/// The room's counters in the Prometheus text format (a handful of counters copied
/// from one snapshot; no labels, no personal data).
async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let Some(s) = stats(&shared).await else {
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

async fn ws(upgrade: WebSocketUpgrade, State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    upgrade
        .max_message_size(MAX_WS_MESSAGE)
        .max_frame_size(MAX_WS_MESSAGE)
        .on_upgrade(move |socket| session(socket, shared))
}

/// Whether a presented token is the meeting's: its digest compared in constant time.
pub fn token_ok(presented: &str, expected_sha256: &str) -> bool {
    tokens_match(&token_digest(presented), expected_sha256)
}

async fn send(socket: &mut WebSocket, msg: &ServerMessage) -> bool {
    socket
        .send(Message::Text(msg.to_frame().into()))
        .await
        .is_ok()
}

async fn refuse(mut socket: WebSocket, code: ErrorCode, message: &str) {
    let _ = send(&mut socket, &ServerMessage::error(code, message)).await;
    let _ = socket.close().await;
}

/// One participant's session on an upgraded WebSocket (also used by standalone mode,
/// whose gateway hands sockets straight to in-process rooms).
pub async fn session(mut socket: WebSocket, shared: Arc<Shared>) {
    let _alive = shared.sessions.clone();
    // The first message must be `join`, soon.
    let first = match tokio::time::timeout(JOIN_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => t,
        Ok(Some(Ok(_))) => {
            return refuse(
                socket,
                ErrorCode::BadRequest,
                "send join first, as JSON text",
            )
            .await;
        }
        Ok(_) => return,
        Err(_) => return refuse(socket, ErrorCode::BadRequest, "no join message in time").await,
    };
    let (name, token) = match parse(&first) {
        Ok(ClientMessage::Join { name, token }) => (name, token),
        Ok(_) => return refuse(socket, ErrorCode::BadRequest, "send join first").await,
        Err(r) => return refuse(socket, r.code, &r.message).await,
    };
    if !token_ok(&token, &shared.token_sha256) {
        return refuse(socket, ErrorCode::Unauthorized, "this link is not valid").await;
    }
    let (out_tx, mut out_rx) = mpsc::unbounded_channel();
    let (reply_tx, reply_rx) = oneshot::channel();
    if shared
        .room
        .send(Command::Join {
            name: name.trim().to_owned(),
            outbound: out_tx,
            reply: reply_tx,
        })
        .is_err()
    {
        return refuse(socket, ErrorCode::MeetingEnded, "the meeting has ended").await;
    }
    let peer = match reply_rx.await {
        Ok(Ok(id)) => id,
        Ok(Err(ErrorCode::RoomFull)) => {
            return refuse(socket, ErrorCode::RoomFull, "the meeting is full").await;
        }
        Ok(Err(code)) => return refuse(socket, code, "cannot join").await,
        Err(_) => return refuse(socket, ErrorCode::MeetingEnded, "the meeting has ended").await,
    };

    let now = Instant::now();
    let mut messages = RateLimit::new(20.0, 40.0, now);
    let mut chats = RateLimit::new(5.0, 10.0, now);
    let (mut sink, mut stream) = socket.split();
    loop {
        tokio::select! {
            out = out_rx.recv() => match out {
                Some(Outbound::Message(m)) => {
                    if sink.send(Message::Text(m.to_frame().into())).await.is_err() {
                        break;
                    }
                }
                Some(Outbound::Close) | None => {
                    let _ = sink.close().await;
                    // The room already forgot this participant.
                    return;
                }
            },
            frame = stream.next() => {
                let text = match frame {
                    Some(Ok(Message::Text(t))) => t,
                    Some(Ok(Message::Binary(_))) => {
                        let m = ServerMessage::error(ErrorCode::BadRequest, "messages are JSON text");
                        if sink.send(Message::Text(m.to_frame().into())).await.is_err() {
                            break;
                        }
                        continue;
                    }
                    Some(Ok(_)) => continue, // ping, pong
                    Some(Err(_)) | None => break,
                };
                let now = Instant::now();
                if !messages.allow(now) {
                    let m = ServerMessage::error(ErrorCode::RateLimited, "too many messages; this one was dropped");
                    if sink.send(Message::Text(m.to_frame().into())).await.is_err() {
                        break;
                    }
                    continue;
                }
                let reply = match parse(&text) {
                    Err(r) if r.code == ErrorCode::TooLarge => {
                        let _ = sink.send(Message::Text(ServerMessage::error(r.code, &r.message).to_frame().into())).await;
                        let _ = sink.close().await;
                        break;
                    }
                    Err(r) => Some(ServerMessage::error(r.code, r.message)),
                    Ok(ClientMessage::Chat { .. }) if !shared.chat => {
                        Some(ServerMessage::error(ErrorCode::BadRequest, "chat is switched off in this meeting"))
                    }
                    Ok(ClientMessage::Chat { .. }) if !chats.allow(now) => {
                        Some(ServerMessage::error(ErrorCode::RateLimited, "too many chat messages; this one was dropped"))
                    }
                    Ok(msg) => {
                        let _ = shared.room.send(Command::Message { peer, msg });
                        None
                    }
                };
                if let Some(m) = reply
                    && sink.send(Message::Text(m.to_frame().into())).await.is_err()
                {
                    break;
                }
            }
        }
    }
    let _ = shared.room.send(Command::Gone { peer });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_checked_by_digest() {
        let digest = token_digest("s3cret");
        assert!(token_ok("s3cret", &digest));
        assert!(!token_ok("s3creT", &digest));
        assert!(!token_ok("", &digest));
    }
}
