//! The signaling protocol between a participant's browser and the SFU: one JSON object
//! per WebSocket text frame, `type` first. docs/signaling.md is the reference (message
//! order, fields, error codes); this module is its one implementation, with the limits
//! that keep one participant's bad input from disturbing the others. The rooms speak
//! it, and the gateway answers in it when it refuses a connection itself.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Largest frame accepted: an SDP offer with audio, video and a data channel is a few
/// kilobytes; 64 KiB leaves room for many candidates and codecs.
pub const MAX_FRAME_BYTES: usize = 64 * 1024;
/// Longest chat message, in characters.
pub const MAX_CHAT_CHARS: usize = 2000;
/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// A message from a participant.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case", deny_unknown_fields)]
pub enum ClientMessage {
    /// The first message: who joins, with the meeting's token.
    Join {
        /// Display name shown to the others.
        name: String,
        /// The join token from the URL.
        token: String,
        /// The seat `welcome` gave this browser tab before, when it joins again: a
        /// seat a host removed stays out.
        #[serde(default)]
        seat: Option<String>,
    },
    /// An SDP offer: the participant's tracks changed (or it joins with media).
    Offer {
        /// The SDP.
        sdp: String,
        /// The mid of the video section that carries a screen share, while it shares
        /// one (absent otherwise).
        #[serde(default)]
        screen: Option<String>,
    },
    /// The answer to an offer from the SFU.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// A trickled ICE candidate; `null` marks the end of candidates.
    Candidate {
        /// The candidate, as `RTCIceCandidate.toJSON()` gives it.
        candidate: Option<IceCandidate>,
    },
    /// A chat message to everyone else in the meeting.
    Chat {
        /// The text.
        text: String,
    },
    /// Whether the participant's microphone and camera are muted.
    Mute {
        /// Audio muted.
        audio: bool,
        /// Video muted.
        video: bool,
    },
    /// What the participant shows of the others' video: one tile per video on screen,
    /// with its size in device pixels. Video not named is not on screen and is paused;
    /// each tile gets the smallest simulcast layer that fills it. Until the first
    /// layout, every video is sent at the highest layer.
    Layout {
        /// The tiles on screen (at most [`MAX_TILES`]).
        tiles: Vec<Tile>,
    },
    /// The participant leaves.
    Leave,
    /// Raise (`true`) or lower your hand; everyone sees it.
    Hand {
        /// Raised.
        raised: bool,
    },
    /// Host only: lower someone's raised hand.
    LowerHand {
        /// Whose.
        id: String,
    },
    /// Host only: mute one participant's audio and/or video (`true`), or lift that
    /// (`false`: the participant may unmute again; it is not unmuted); a kind left
    /// out stays as it is. The SFU stops forwarding muted media at once, whatever the
    /// participant's browser sends.
    MuteParticipant {
        /// Whom.
        id: String,
        /// Mute (or lift the mute of) the audio.
        #[serde(default)]
        audio: Option<bool>,
        /// Mute (or lift the mute of) the video.
        #[serde(default)]
        video: Option<bool>,
    },
    /// Host only: the same for every participant who is not a host, and for who joins
    /// later.
    MuteEveryone {
        /// Mute (or lift the mute of) the audio.
        #[serde(default)]
        audio: Option<bool>,
        /// Mute (or lift the mute of) the video.
        #[serde(default)]
        video: Option<bool>,
    },
    /// Host only: disconnect a participant.
    Remove {
        /// Whom.
        id: String,
    },
    /// Host only: lock the meeting (no one but hosts may join) or unlock it.
    Lock {
        /// Locked.
        locked: bool,
    },
    /// Host only: end the meeting for everyone.
    EndMeeting,
    /// Host only: let someone waiting in the lobby in.
    Admit {
        /// Whom (the id from `lobby-joined`).
        id: String,
    },
    /// Host only: turn someone waiting in the lobby away.
    Refuse {
        /// Whom.
        id: String,
    },
}

/// Most tiles one layout may name.
pub const MAX_TILES: usize = 100;
/// Largest tile side, in pixels (an 8K screen).
pub const MAX_TILE_SIDE: u32 = 8192;

/// One video on a participant's screen.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Tile {
    /// Whose video (a participant id).
    pub id: String,
    /// Its width in device pixels.
    pub width: u32,
    /// Its height in device pixels.
    pub height: u32,
}

/// An ICE candidate as browsers serialize it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    /// The `candidate:` line.
    pub candidate: String,
    /// The media section's identification tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    /// The media section's index.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
    /// The ICE username fragment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// Someone in the meeting, as the others see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct PeerInfo {
    /// The participant's id in this meeting (also the id of the media streams the SFU
    /// sends of them).
    pub id: String,
    /// Display name.
    pub name: String,
    /// Microphone muted.
    pub audio_muted: bool,
    /// Camera muted.
    pub video_muted: bool,
    /// A raised hand (absent when lowered).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub hand: bool,
    /// Joined with the host link (absent otherwise), so everyone sees who runs the
    /// meeting.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub host: bool,
    /// Sharing a screen now (absent otherwise).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub screen: bool,
}

/// Someone waiting in the lobby, as hosts see them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Knock {
    /// Their id (the id they will have in the meeting).
    pub id: String,
    /// Display name.
    pub name: String,
}

/// Why a participant waits before it comes in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum WaitReason {
    /// The meeting has a lobby: a host lets each participant in.
    Lobby,
    /// No host is here yet, and the meeting waits for one.
    NoHost,
}

/// A TURN server the participant's browser may use (an `RTCIceServer`), with a
/// credential for this participant alone.
#[derive(Clone, PartialEq, Eq, Serialize)]
pub struct IceServer {
    /// `turn:` and `turns:` URLs.
    pub urls: Vec<String>,
    /// The TURN REST username (expiry, an opaque participant id, the SFU's address).
    pub username: String,
    /// Its password.
    pub credential: String,
}

impl std::fmt::Debug for IceServer {
    // Never the credential.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IceServer")
            .field("urls", &self.urls)
            .finish_non_exhaustive()
    }
}

/// What a connection may do in its meeting, decided by the SFU from the token it
/// joined with (the participants' link or the host link), never by the client.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Joined with the participants' link.
    #[default]
    Participant,
    /// Joined with the host link: runs the meeting.
    Host,
}

/// A message from the SFU.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum ServerMessage {
    /// Accepted: your id, who is here, and the TURN servers to use if the meeting
    /// has them (absent otherwise).
    Welcome {
        /// Your id.
        id: String,
        /// What you may do: decided by the SFU from the link you joined with.
        role: Role,
        /// The others.
        peers: Vec<PeerInfo>,
        /// TURN servers with this participant's credential.
        #[serde(skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
        /// This browser tab's seat: sent with `join` when it joins again.
        seat: String,
        /// Hosts only: who waits in the lobby now (absent when nobody does).
        #[serde(skip_serializing_if = "Vec::is_empty")]
        lobby: Vec<Knock>,
    },
    /// You wait before you come in: `welcome` follows when you may, or an error
    /// (`refused`, `room-full`, `meeting-ended`) when you may not.
    Waiting {
        /// Why.
        reason: WaitReason,
    },
    /// Hosts only: someone waits in the lobby.
    LobbyJoined {
        /// Who.
        peer: Knock,
    },
    /// Hosts only: someone no longer waits (admitted, refused, or gone).
    LobbyLeft {
        /// Who.
        id: String,
    },
    /// Someone joined.
    PeerJoined {
        /// Who.
        peer: PeerInfo,
    },
    /// Someone left; their media stops.
    PeerLeft {
        /// Who.
        id: String,
    },
    /// An SDP offer from the SFU (tracks of others came or went).
    Offer {
        /// The SDP.
        sdp: String,
    },
    /// The SFU's answer to your offer.
    Answer {
        /// The SDP.
        sdp: String,
    },
    /// A candidate of the SFU; `null` marks the end.
    Candidate {
        /// The candidate.
        candidate: Option<IceCandidate>,
    },
    /// A chat message from someone else.
    Chat {
        /// The sender's id.
        from: String,
        /// The text.
        text: String,
    },
    /// Someone's mute state changed.
    Mute {
        /// Who.
        id: String,
        /// Audio muted.
        audio: bool,
        /// Video muted.
        video: bool,
    },
    /// A host muted you (`true`) or lifted that (`false`): until it is lifted, and
    /// unless the meeting lets participants unmute, the SFU forwards none of that
    /// media and refuses your unmuting (`forbidden`).
    MutedByHost {
        /// Your audio is muted by a host.
        audio: bool,
        /// Your video is muted by a host.
        video: bool,
    },
    /// Someone raised or lowered their hand (or a host lowered it).
    Hand {
        /// Whose.
        id: String,
        /// Raised.
        raised: bool,
    },
    /// Someone started or stopped sharing a screen (its video comes as the stream
    /// `<id>-screen`).
    Screen {
        /// Who.
        id: String,
        /// Sharing now.
        sharing: bool,
    },
    /// A host locked or unlocked the meeting.
    Locked {
        /// Locked: nobody but hosts may join.
        locked: bool,
    },
    /// The active speaker changed (from the audio levels; it holds for a second
    /// before it changes again).
    Speaker {
        /// Who speaks now.
        id: String,
    },
    /// How many of your video encodings anyone needs, lowest first: send those and
    /// switch the others off (`encodings[i].active`), until this changes again.
    Layers {
        /// Encodings to keep sending (at least 1: the lowest stays on, so a tile that
        /// comes into view starts at once).
        active: u8,
    },
    /// Something went wrong; see [`ErrorCode`] for which codes close the connection.
    Error {
        /// What kind of error.
        code: ErrorCode,
        /// A sentence for people (never contains other participants' data).
        message: String,
    },
}

/// Error codes of [`ServerMessage::Error`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ErrorCode {
    /// The meeting has its maximum number of participants. Closes.
    RoomFull,
    /// Malformed JSON, an unknown message, bad SDP, a message out of order. Closes
    /// when the session cannot go on (before `join`, bad SDP); otherwise the message
    /// is ignored.
    BadRequest,
    /// Wrong token. Closes.
    Unauthorized,
    /// The meeting is over. Closes.
    MeetingEnded,
    /// A frame larger than [`MAX_FRAME_BYTES`]. Closes.
    TooLarge,
    /// Too many messages; this one was dropped.
    RateLimited,
    /// Sent by the gateway: the meeting has not started yet. Closes.
    NotStarted,
    /// Sent by the gateway: the meeting's SFU cannot be reached. Closes; the browser
    /// may try again.
    Unavailable,
    /// A host message from someone who is not a host, or an unmute a host's mute
    /// does not allow. Nothing happens; the connection stays.
    Forbidden,
    /// The meeting is locked: only hosts may join. Closes.
    Locked,
    /// A host removed you. Closes.
    Removed,
    /// A host did not let you in from the lobby. Closes.
    Refused,
    /// A screen share the meeting does not allow now (sharing is off or for hosts
    /// only, someone else shares, or a host switched your video off): its section is
    /// answered `inactive`; stop sharing. The connection stays.
    ScreenRefused,
}

impl ServerMessage {
    /// An error message.
    pub fn error(code: ErrorCode, message: impl Into<String>) -> Self {
        Self::Error {
            code,
            message: message.into(),
        }
    }

    /// The message as a WebSocket text frame.
    pub fn to_frame(&self) -> String {
        serde_json::to_string(self).expect("server messages always serialize")
    }
}

/// Why a frame from a participant was refused.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct Refusal {
    /// The code sent back.
    pub code: ErrorCode,
    /// The sentence sent back. It names the problem, never echoes the input (which may
    /// be chat text or a name).
    pub message: String,
    /// Whether the session ends after the refusal (a frame too large, an SDP that does
    /// not parse).
    pub closes: bool,
}

fn refusal(code: ErrorCode, message: impl Into<String>) -> Refusal {
    Refusal {
        code,
        message: message.into(),
        closes: code == ErrorCode::TooLarge,
    }
}

/// Sends `error {code, message}` on a participant's WebSocket, then closes it.
pub async fn refuse(mut socket: axum::extract::ws::WebSocket, code: ErrorCode, message: &str) {
    use axum::extract::ws::Message;
    use futures::SinkExt;
    let frame = ServerMessage::error(code, message).to_frame();
    let _ = socket.send(Message::Text(frame.into())).await;
    let _ = socket.close().await;
}

/// The sentence of a `too-large` refusal.
pub fn too_large_message() -> String {
    format!("a message may have at most {MAX_FRAME_BYTES} bytes")
}

/// The `too-large` refusal, as the SFU and the gateway send it.
pub fn too_large() -> ServerMessage {
    ServerMessage::error(ErrorCode::TooLarge, too_large_message())
}

/// Whether reading a participant's WebSocket failed because a frame was over the read
/// limit. The rest of that frame is never read, so the `too-large` answer is best
/// effort: the connection may be reset before the participant reads it.
pub fn over_read_limit(e: &axum::Error) -> bool {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(e);
    while let Some(c) = cause {
        if let Some(WsError::Capacity(_)) = c.downcast_ref::<WsError>() {
            return true;
        }
        cause = c.source();
    }
    false
}

/// Parses and checks one text frame from a participant.
pub fn parse(frame: &str) -> Result<ClientMessage, Refusal> {
    if frame.len() > MAX_FRAME_BYTES {
        return Err(refusal(ErrorCode::TooLarge, too_large_message()));
    }
    let msg: ClientMessage = serde_json::from_str(frame).map_err(|e| {
        // serde's message names the field or variant at fault; it quotes only our
        // own vocabulary (type and field names), not the participant's values...
        // except for unknown variants, whose name it quotes: keep just the category.
        let what = if e.is_syntax() || e.is_eof() {
            "not valid JSON".to_owned()
        } else if e.to_string().contains("unknown variant") {
            "unknown message type".to_owned()
        } else if e.to_string().contains("unknown field") {
            "unknown field".to_owned()
        } else if e.to_string().contains("missing field") {
            format!("missing field{}", after(&e.to_string(), "missing field"))
        } else {
            "fields of the wrong type".to_owned()
        };
        refusal(ErrorCode::BadRequest, format!("bad message: {what}"))
    })?;
    match &msg {
        ClientMessage::Join { name, token, seat } => {
            if seat.as_deref().is_some_and(|s| {
                s.is_empty() || s.len() > 64 || !s.bytes().all(|b| b.is_ascii_alphanumeric())
            }) {
                return Err(refusal(
                    ErrorCode::BadRequest,
                    "bad message: the seat is not one this meeting gives",
                ));
            }
            let n = name.trim().chars().count();
            if n == 0 || n > MAX_NAME_CHARS || name.chars().any(char::is_control) {
                return Err(refusal(
                    ErrorCode::BadRequest,
                    format!(
                        "the name must have 1 to {MAX_NAME_CHARS} characters and no control characters"
                    ),
                ));
            }
            if token.is_empty() || token.len() > 256 {
                return Err(refusal(ErrorCode::Unauthorized, "this link is not valid"));
            }
        }
        ClientMessage::Chat { text } => {
            let n = text.chars().count();
            if text.trim().is_empty() || n > MAX_CHAT_CHARS {
                return Err(refusal(
                    ErrorCode::BadRequest,
                    format!("a chat message must have 1 to {MAX_CHAT_CHARS} characters"),
                ));
            }
        }
        ClientMessage::Layout { tiles } => {
            if tiles.len() > MAX_TILES {
                return Err(refusal(
                    ErrorCode::BadRequest,
                    format!("a layout may have at most {MAX_TILES} tiles"),
                ));
            }
            if tiles
                .iter()
                .any(|t| t.width > MAX_TILE_SIDE || t.height > MAX_TILE_SIDE || t.id.len() > 16)
            {
                return Err(refusal(
                    ErrorCode::BadRequest,
                    format!(
                        "a tile must name a participant and be at most {MAX_TILE_SIDE} pixels on a side"
                    ),
                ));
            }
        }
        ClientMessage::MuteParticipant { id, .. }
        | ClientMessage::Remove { id }
        | ClientMessage::LowerHand { id }
        | ClientMessage::Admit { id }
        | ClientMessage::Refuse { id }
            if id.is_empty() || id.len() > 16 =>
        {
            return Err(refusal(
                ErrorCode::BadRequest,
                "the message must name a participant",
            ));
        }
        ClientMessage::Offer { sdp, .. } | ClientMessage::Answer { sdp }
            if !sdp.starts_with("v=0") =>
        {
            // An SDP that does not parse ends the session (docs/signaling.md).
            return Err(Refusal {
                closes: true,
                ..refusal(ErrorCode::BadRequest, "the SDP does not start with v=0")
            });
        }
        _ => {}
    }
    Ok(msg)
}

/// The quoted field name after `marker` in a serde message (our own vocabulary).
fn after(text: &str, marker: &str) -> String {
    text.split(marker)
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .map(|f| format!(" {f}"))
        .unwrap_or_default()
}

/// A token bucket: `rate` messages per second, bursts up to `burst`.
#[derive(Clone, Debug)]
pub struct RateLimit {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    /// Takes one token if there is one.
    pub fn allow(&mut self, now: Instant) -> bool {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.last = now;
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }

    /// How long until the next token.
    pub fn wait(&self) -> Duration {
        Duration::from_secs_f64(((1.0 - self.tokens) / self.rate).max(0.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_client_message_parses() {
        assert_eq!(
            parse(r#"{"type":"join","name":"Erika Mustermann","token":"abc"}"#),
            Ok(ClientMessage::Join {
                name: "Erika Mustermann".into(),
                token: "abc".into(),
                seat: None
            })
        );
        assert!(matches!(
            parse(r#"{"type":"offer","sdp":"v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\n"}"#),
            Ok(ClientMessage::Offer { .. })
        ));
        assert!(matches!(
            parse(r#"{"type":"answer","sdp":"v=0\r\n"}"#),
            Ok(ClientMessage::Answer { .. })
        ));
        assert_eq!(
            parse(
                r#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host","sdpMid":"0","sdpMLineIndex":0}}"#
            ),
            Ok(ClientMessage::Candidate {
                candidate: Some(IceCandidate {
                    candidate: "candidate:1 1 udp 2122260223 192.0.2.1 54321 typ host".into(),
                    sdp_mid: Some("0".into()),
                    sdp_m_line_index: Some(0),
                    username_fragment: None,
                })
            })
        );
        assert_eq!(
            parse(r#"{"type":"candidate","candidate":null}"#),
            Ok(ClientMessage::Candidate { candidate: None })
        );
        assert_eq!(
            parse(r#"{"type":"chat","text":"hallo"}"#),
            Ok(ClientMessage::Chat {
                text: "hallo".into()
            })
        );
        assert_eq!(
            parse(r#"{"type":"mute","audio":true,"video":false}"#),
            Ok(ClientMessage::Mute {
                audio: true,
                video: false
            })
        );
        assert_eq!(parse(r#"{"type":"leave"}"#), Ok(ClientMessage::Leave));
        assert_eq!(
            parse(r#"{"type":"layout","tiles":[{"id":"3","width":320,"height":180}]}"#),
            Ok(ClientMessage::Layout {
                tiles: vec![Tile {
                    id: "3".into(),
                    width: 320,
                    height: 180
                }]
            })
        );
    }

    #[test]
    fn layouts_with_absurd_tiles_are_refused_without_closing() {
        let many: Vec<String> = (0..MAX_TILES + 1)
            .map(|i| format!(r#"{{"id":"{i}","width":1,"height":1}}"#))
            .collect();
        let many = format!(r#"{{"type":"layout","tiles":[{}]}}"#, many.join(","));
        for frame in [
            many.as_str(),
            r#"{"type":"layout","tiles":[{"id":"1","width":-5,"height":10}]}"#,
            r#"{"type":"layout","tiles":[{"id":"1","width":100000,"height":10}]}"#,
            r#"{"type":"layout","tiles":[{"id":"1","width":1e9,"height":10}]}"#,
            r#"{"type":"layout","tiles":[{"id":"12345678901234567890","width":1,"height":1}]}"#,
            r#"{"type":"layout","tiles":[{"id":1,"width":1,"height":1}]}"#,
            r#"{"type":"layout","tiles":{"id":"1"}}"#,
            r#"{"type":"layout"}"#,
        ] {
            let r = parse(frame).unwrap_err();
            assert_eq!(r.code, ErrorCode::BadRequest, "{frame}");
            assert!(!r.closes, "{frame}");
        }
    }

    #[test]
    fn bad_input_gets_a_code_and_a_sentence_that_does_not_echo_it() {
        for (frame, code, words) in [
            ("not json", ErrorCode::BadRequest, "not valid JSON"),
            (
                "{\"type\":\"join\"",
                ErrorCode::BadRequest,
                "not valid JSON",
            ),
            (
                r#"{"type":"geheim-4711"}"#,
                ErrorCode::BadRequest,
                "unknown message type",
            ),
            (
                r#"{"type":"chat","text":"x","extra":1}"#,
                ErrorCode::BadRequest,
                "unknown field",
            ),
            (
                r#"{"type":"chat"}"#,
                ErrorCode::BadRequest,
                "missing field `text`",
            ),
            (
                r#"{"type":"mute","audio":"yes","video":false}"#,
                ErrorCode::BadRequest,
                "wrong type",
            ),
            (
                r#"{"type":"join","name":"","token":"t"}"#,
                ErrorCode::BadRequest,
                "the name must have",
            ),
            (
                r#"{"type":"join","name":"a\u0007b","token":"t"}"#,
                ErrorCode::BadRequest,
                "control characters",
            ),
            (
                r#"{"type":"join","name":"Erika","token":""}"#,
                ErrorCode::Unauthorized,
                "not valid",
            ),
            (
                r#"{"type":"chat","text":"   "}"#,
                ErrorCode::BadRequest,
                "1 to 2000",
            ),
            (
                r#"{"type":"offer","sdp":"geheim-4711"}"#,
                ErrorCode::BadRequest,
                "v=0",
            ),
        ] {
            let r = parse(frame).unwrap_err();
            assert_eq!(r.code, code, "{frame}");
            assert_eq!(
                r.closes,
                frame.contains("\"offer\""),
                "{frame}: only bad SDP closes here"
            );
            assert!(r.message.contains(words), "{frame}: {}", r.message);
            assert!(!r.message.contains("geheim"), "echoed input: {}", r.message);
        }
        let long_chat = format!(r#"{{"type":"chat","text":"{}"}}"#, "x".repeat(2001));
        assert_eq!(parse(&long_chat).unwrap_err().code, ErrorCode::BadRequest);
        let long_name = format!(
            r#"{{"type":"join","name":"{}","token":"t"}}"#,
            "é".repeat(65)
        );
        assert_eq!(parse(&long_name).unwrap_err().code, ErrorCode::BadRequest);
        let huge = format!(
            r#"{{"type":"chat","text":"{}"}}"#,
            "x".repeat(10 * 1024 * 1024)
        );
        let r = parse(&huge).unwrap_err();
        assert_eq!((r.code, r.closes), (ErrorCode::TooLarge, true));
    }

    #[test]
    fn host_messages_parse_and_name_a_participant() {
        assert_eq!(
            parse(r#"{"type":"mute-participant","id":"3","audio":true,"video":false}"#),
            Ok(ClientMessage::MuteParticipant {
                id: "3".into(),
                audio: Some(true),
                video: Some(false)
            })
        );
        assert_eq!(
            parse(r#"{"type":"mute-everyone","audio":true,"video":true}"#),
            Ok(ClientMessage::MuteEveryone {
                audio: Some(true),
                video: Some(true)
            })
        );
        assert_eq!(
            parse(r#"{"type":"mute-participant","id":"3","video":true}"#),
            Ok(ClientMessage::MuteParticipant {
                id: "3".into(),
                audio: None,
                video: Some(true)
            }),
            "a kind left out stays as it is"
        );
        assert_eq!(
            parse(r#"{"type":"admit","id":"9"}"#),
            Ok(ClientMessage::Admit { id: "9".into() })
        );
        assert_eq!(
            parse(r#"{"type":"refuse","id":"9"}"#),
            Ok(ClientMessage::Refuse { id: "9".into() })
        );
        assert_eq!(
            parse(r#"{"type":"join","name":"A","token":"t","seat":"abc123"}"#),
            Ok(ClientMessage::Join {
                name: "A".into(),
                token: "t".into(),
                seat: Some("abc123".into())
            })
        );
        for bad_seat in ["", "a b", "ä", &"x".repeat(65)] {
            let m = format!(r#"{{"type":"join","name":"A","token":"t","seat":"{bad_seat}"}}"#);
            assert_eq!(
                parse(&m).unwrap_err().code,
                ErrorCode::BadRequest,
                "{bad_seat:?}"
            );
        }
        assert_eq!(
            parse(r#"{"type":"lock","locked":true}"#),
            Ok(ClientMessage::Lock { locked: true })
        );
        assert_eq!(
            parse(r#"{"type":"end-meeting"}"#),
            Ok(ClientMessage::EndMeeting)
        );
        for bad in [
            r#"{"type":"remove","id":""}"#,
            r#"{"type":"remove","id":"12345678901234567"}"#,
            r#"{"type":"remove"}"#,
            r#"{"type":"lock","locked":"yes"}"#,
            r#"{"type":"mute-participant","id":"3","audio":"on"}"#,
            r#"{"type":"admit","id":""}"#,
            r#"{"type":"refuse"}"#,
            r#"{"type":"admit","id":"3","everyone":true}"#,
        ] {
            assert_eq!(parse(bad).unwrap_err().code, ErrorCode::BadRequest, "{bad}");
        }
        assert_eq!(
            ServerMessage::MutedByHost {
                audio: true,
                video: false
            }
            .to_frame(),
            r#"{"type":"muted-by-host","audio":true,"video":false}"#
        );
        assert_eq!(
            parse(r#"{"type":"hand","raised":true}"#),
            Ok(ClientMessage::Hand { raised: true })
        );
        assert_eq!(
            ServerMessage::PeerJoined {
                peer: PeerInfo {
                    id: "4".into(),
                    name: "T".into(),
                    audio_muted: false,
                    video_muted: false,
                    hand: true,
                    host: true,
                    screen: false,
                }
            }
            .to_frame(),
            r#"{"type":"peer-joined","peer":{"id":"4","name":"T","audio_muted":false,"video_muted":false,"hand":true,"host":true}}"#
        );
        assert_eq!(
            ServerMessage::error(ErrorCode::Forbidden, "x").to_frame(),
            r#"{"type":"error","code":"forbidden","message":"x"}"#
        );
    }

    #[test]
    fn server_messages_serialize_as_documented() {
        let welcome = ServerMessage::Welcome {
            id: "p2".into(),
            role: Role::Participant,
            peers: vec![PeerInfo {
                id: "p1".into(),
                name: "Erika".into(),
                audio_muted: false,
                video_muted: true,
                hand: false,
                host: false,
                screen: false,
            }],
            ice_servers: vec![],
            seat: "s3".into(),
            lobby: vec![],
        };
        assert_eq!(
            welcome.to_frame(),
            r#"{"type":"welcome","id":"p2","role":"participant","peers":[{"id":"p1","name":"Erika","audio_muted":false,"video_muted":true}],"seat":"s3"}"#
        );
        assert_eq!(
            ServerMessage::Waiting {
                reason: WaitReason::NoHost
            }
            .to_frame(),
            r#"{"type":"waiting","reason":"no-host"}"#
        );
        assert_eq!(
            ServerMessage::LobbyJoined {
                peer: Knock {
                    id: "7".into(),
                    name: "Ada".into()
                }
            }
            .to_frame(),
            r#"{"type":"lobby-joined","peer":{"id":"7","name":"Ada"}}"#
        );
        assert_eq!(
            ServerMessage::LobbyLeft { id: "7".into() }.to_frame(),
            r#"{"type":"lobby-left","id":"7"}"#
        );
        assert_eq!(
            ServerMessage::error(ErrorCode::Refused, "no").to_frame(),
            r#"{"type":"error","code":"refused","message":"no"}"#
        );
        assert_eq!(
            ServerMessage::PeerLeft { id: "p1".into() }.to_frame(),
            r#"{"type":"peer-left","id":"p1"}"#
        );
        assert_eq!(
            ServerMessage::error(ErrorCode::RoomFull, "the meeting is full").to_frame(),
            r#"{"type":"error","code":"room-full","message":"the meeting is full"}"#
        );
        assert_eq!(
            ServerMessage::error(ErrorCode::MeetingEnded, "over").to_frame(),
            r#"{"type":"error","code":"meeting-ended","message":"over"}"#
        );
        assert_eq!(
            ServerMessage::Candidate { candidate: None }.to_frame(),
            r#"{"type":"candidate","candidate":null}"#
        );
    }

    #[test]
    fn the_rate_limit_allows_bursts_then_the_rate() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(10.0, 5.0, t0);
        assert_eq!((0..8).filter(|_| r.allow(t0)).count(), 5, "the burst");
        assert!(r.wait() > Duration::ZERO);
        assert!(
            r.allow(t0 + Duration::from_millis(100)),
            "one token after 100 ms at 10/s"
        );
        assert!(!r.allow(t0 + Duration::from_millis(110)));
        assert_eq!(
            (0..50)
                .filter(|i| r.allow(t0 + Duration::from_secs(10) + Duration::from_millis(*i)))
                .count(),
            5,
            "capped at the burst"
        );
    }
}
