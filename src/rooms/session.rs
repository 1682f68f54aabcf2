//! One participant's session: a WebSocket (docs/signaling.md) joined to a room. It
//! checks the token, applies the limits (frame size, message and chat rates, time to
//! join) and relays between the socket and the room. Nothing a participant says (name,
//! chat) is logged.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::{Message, WebSocket};
use futures::{SinkExt, StreamExt};
use tokio::sync::{mpsc, oneshot};

use super::RoomHandle;
use super::room::{Command, OUTBOUND_QUEUE, Outbound};
use crate::signaling::{self, ClientMessage, ErrorCode, RateLimit, Role, ServerMessage, parse};
use crate::token::token_ok;

/// How long a new WebSocket may take to send `join`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(10);
/// Frames up to this size are read whole (and refused with `too-large` above
/// [`signaling::MAX_FRAME_BYTES`], then a clean close); of larger ones only the header
/// is read, and `too-large` is sent best effort before the connection is dropped. The
/// gateway reads participants' frames with the same limit. It bounds what one
/// connection makes a server buffer.
pub const MAX_WS_MESSAGE: usize = 2 * 1024 * 1024;

/// One participant's session on an upgraded WebSocket (also used by standalone mode,
/// whose gateway hands sockets straight to in-process rooms).
pub async fn session(mut socket: WebSocket, room: Arc<RoomHandle>) {
    let _alive = room.sessions.clone();
    // The first message must be `join`, soon.
    let first = match tokio::time::timeout(JOIN_TIMEOUT, socket.recv()).await {
        Ok(Some(Ok(Message::Text(t)))) => t,
        Ok(Some(Ok(_))) => {
            return signaling::refuse(
                socket,
                ErrorCode::BadRequest,
                "send join first, as JSON text",
            )
            .await;
        }
        Ok(Some(Err(e))) if signaling::over_read_limit(&e) => {
            return signaling::refuse(socket, ErrorCode::TooLarge, &signaling::too_large_message())
                .await;
        }
        Ok(_) => return,
        Err(_) => {
            return signaling::refuse(socket, ErrorCode::BadRequest, "no join message in time")
                .await;
        }
    };
    let (name, token, seat) = match parse(&first) {
        Ok(ClientMessage::Join { name, token, seat }) => (name, token, seat),
        Ok(_) => return signaling::refuse(socket, ErrorCode::BadRequest, "send join first").await,
        Err(r) => return signaling::refuse(socket, r.code, &r.message).await,
    };
    // The role comes from the token alone: whatever else a client says, only the
    // host link's token makes a host.
    let role = if token_ok(&token, &room.token_sha256) {
        Role::Participant
    } else if room
        .host_token_sha256
        .as_deref()
        .is_some_and(|d| token_ok(&token, d))
    {
        Role::Host
    } else {
        return signaling::refuse(socket, ErrorCode::Unauthorized, "this link is not valid").await;
    };
    let (out_tx, mut out_rx) = mpsc::channel(OUTBOUND_QUEUE);
    let (reply_tx, reply_rx) = oneshot::channel();
    if room
        .commands
        .send(Command::Join {
            name: name.trim().to_owned(),
            role,
            seat,
            outbound: out_tx,
            reply: reply_tx,
        })
        .await
        .is_err()
    {
        return signaling::refuse(socket, ErrorCode::MeetingEnded, "the meeting has ended").await;
    }
    let peer = match reply_rx.await {
        Ok(Ok(id)) => id,
        Ok(Err(ErrorCode::RoomFull)) => {
            return signaling::refuse(socket, ErrorCode::RoomFull, "the meeting is full").await;
        }
        Ok(Err(ErrorCode::Locked)) => {
            return signaling::refuse(socket, ErrorCode::Locked, "the meeting is locked").await;
        }
        Ok(Err(ErrorCode::Removed)) => {
            return signaling::refuse(
                socket,
                ErrorCode::Removed,
                "a host removed you from this meeting",
            )
            .await;
        }
        Ok(Err(ErrorCode::MeetingEnded)) => {
            return signaling::refuse(socket, ErrorCode::MeetingEnded, "the meeting has ended")
                .await;
        }
        Ok(Err(code)) => return signaling::refuse(socket, code, "cannot join").await,
        Err(_) => {
            return signaling::refuse(socket, ErrorCode::MeetingEnded, "the meeting has ended")
                .await;
        }
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
                Some(Outbound::Close) => {
                    let _ = sink.close().await;
                    // The room already forgot this participant.
                    return;
                }
                None => {
                    // The room dropped this session's queue: it fell behind (or the
                    // room ended). The room already forgot this participant.
                    let m = ServerMessage::error(ErrorCode::Unavailable, "the connection fell behind; join again");
                    let _ = sink.send(Message::Text(m.to_frame().into())).await;
                    let _ = sink.close().await;
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
                    Some(Err(e)) if signaling::over_read_limit(&e) => {
                        let _ = sink.send(Message::Text(signaling::too_large().to_frame().into())).await;
                        let _ = sink.close().await;
                        break;
                    }
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
                    Err(r) if r.closes => {
                        let _ = sink.send(Message::Text(ServerMessage::error(r.code, &r.message).to_frame().into())).await;
                        let _ = sink.close().await;
                        break;
                    }
                    Err(r) => Some(ServerMessage::error(r.code, r.message)),
                    Ok(ClientMessage::Chat { .. }) if !room.chat => {
                        Some(ServerMessage::error(ErrorCode::BadRequest, "chat is switched off in this meeting"))
                    }
                    Ok(ClientMessage::Chat { .. }) if !chats.allow(now) => {
                        Some(ServerMessage::error(ErrorCode::RateLimited, "too many chat messages; this one was dropped"))
                    }
                    Ok(msg) => {
                        if room.commands.send(Command::Message { peer, msg }).await.is_err() {
                            break;
                        }
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
    let _ = room.commands.send(Command::Gone { peer }).await;
}
