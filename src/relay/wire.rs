//! TURN on the wire, as far as the relay's own decisions need it: which kind of
//! message a datagram or a stream frame holds, the request a policy looks at, the
//! error a refusal answers with, and the framing of TURN over TCP and TLS (RFC 8656,
//! 12: STUN messages and ChannelData, padded to four bytes, back to back).

use std::net::SocketAddr;

use turn_server_proto::types::attribute::{RequestedTransport, XorPeerAddress};
use turn_server_proto::types::message::{
    ALLOCATE, CHANNEL_BIND, CONNECT, CONNECTION_BIND, CREATE_PERMISSION, REFRESH,
};
use turn_server_proto::types::stun::attribute::{ErrorCode, Userhash, Username};
use turn_server_proto::types::stun::message::{Message, MessageClass, MessageWriteVec};
use turn_server_proto::types::stun::prelude::*;

use super::policy::{Method, Request};

/// The largest message the relay reads: a STUN message or ChannelData carrying one
/// datagram of a 1500-byte path, with room for TURN's attributes. Larger ones are
/// dropped (UDP) or end the connection (TCP).
pub const MAX_MESSAGE: usize = 2048;

/// What a datagram (or frame) from a client is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// A STUN message (first two bits 00).
    Stun,
    /// ChannelData (channel numbers 0x4000 to 0x4FFF).
    ChannelData,
    /// Neither: dropped.
    Other,
}

/// What `data` is, from its first byte.
pub fn kind(data: &[u8]) -> Kind {
    match data.first() {
        Some(0x00..=0x3f) => Kind::Stun,
        Some(0x40..=0x4f) => Kind::ChannelData,
        _ => Kind::Other,
    }
}

/// A request's parts the policy decides on. `None` for what is no request
/// (indications, responses).
pub fn request(msg: &Message<'_>) -> Option<Request> {
    if !msg.has_class(MessageClass::Request) {
        return None;
    }
    let m = msg.method();
    let method = if m == ALLOCATE {
        Method::Allocate
    } else if m == REFRESH {
        Method::Refresh
    } else if m == CREATE_PERMISSION {
        Method::CreatePermission
    } else if m == CHANNEL_BIND {
        Method::ChannelBind
    } else if m == CONNECT || m == CONNECTION_BIND {
        Method::TcpRelay
    } else {
        Method::Other
    };
    let mut peers = Vec::new();
    let transaction = msg.transaction_id();
    for (_, raw) in msg.iter_attributes() {
        if raw.get_type() == XorPeerAddress::TYPE {
            match XorPeerAddress::from_raw_ref(&raw) {
                Ok(a) => peers.push(a.addr(transaction)),
                // An address that does not parse is no address the relay may reach;
                // an unspecified one stands for it, which no credential names.
                Err(_) => peers.push(SocketAddr::from(([0, 0, 0, 0], 0))),
            }
        }
    }
    Some(Request {
        method,
        username: msg
            .attribute::<Username>()
            .ok()
            .map(|u| u.username().to_owned()),
        peers,
        requested_transport: msg
            .attribute::<RequestedTransport>()
            .ok()
            .map(|t| t.protocol()),
        userhash: msg.has_attribute(Userhash::TYPE),
        repeated: [Username::TYPE, Userhash::TYPE, RequestedTransport::TYPE]
            .iter()
            .any(|t| {
                msg.iter_attributes()
                    .filter(|(_, a)| a.get_type() == *t)
                    .count()
                    > 1
            }),
    })
}

/// An error response to `request` with `code` and `reason`, with a FINGERPRINT. Not
/// signed: the refusals happen before (or instead of) the credential being proven.
pub fn error_response(request: &Message<'_>, code: u16, reason: &str) -> Vec<u8> {
    let mut out = Message::builder_error(request, MessageWriteVec::with_capacity(96));
    if let Ok(error) = ErrorCode::builder(code).reason(reason).build() {
        let _ = out.add_attribute(&error);
    }
    let _ = out.add_fingerprint();
    out.finish()
}

/// A ChannelData message without the padding TCP adds (its header says its length);
/// anything else as it is.
pub fn unpadded(data: &[u8]) -> &[u8] {
    if kind(data) != Kind::ChannelData || data.len() < 4 {
        return data;
    }
    let len = u16::from_be_bytes([data[2], data[3]]) as usize;
    &data[..(4 + len).min(data.len())]
}

/// What the front of a TCP stream's buffer holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole message yet.
    Incomplete,
    /// Not TURN, or larger than [`MAX_MESSAGE`]: the connection ends.
    Invalid,
    /// A whole message of this many bytes (ChannelData with its padding).
    Whole(usize),
}

/// The next message's length in a TCP stream (RFC 8656, 12.5: STUN messages are
/// self-delimiting; ChannelData is padded to a multiple of four over TCP).
pub fn frame(buf: &[u8]) -> Frame {
    if buf.len() < 4 {
        return Frame::Incomplete;
    }
    let len = u16::from_be_bytes([buf[2], buf[3]]) as usize;
    let whole = match kind(buf) {
        Kind::Stun if len.is_multiple_of(4) => 20 + len,
        Kind::ChannelData => 4 + len.div_ceil(4) * 4,
        _ => return Frame::Invalid,
    };
    if whole > MAX_MESSAGE {
        Frame::Invalid
    } else if buf.len() < whole {
        Frame::Incomplete
    } else {
        Frame::Whole(whole)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_told_apart_by_their_first_byte() {
        assert_eq!(kind(&[0x00, 0x01]), Kind::Stun);
        assert_eq!(kind(&[0x40, 0x00]), Kind::ChannelData);
        assert_eq!(kind(&[0x4f, 0xff]), Kind::ChannelData);
        assert_eq!(kind(&[0x50, 0x00]), Kind::Other);
        assert_eq!(kind(&[0x80]), Kind::Other, "RTP is not TURN");
        assert_eq!(kind(&[]), Kind::Other);
    }

    /// An Allocate carrying `attrs` (type, value), by hand: no builder would write
    /// an attribute twice.
    fn allocate_with(attrs: &[(u16, &[u8])]) -> Vec<u8> {
        let mut body = Vec::new();
        for (t, v) in attrs {
            body.extend_from_slice(&t.to_be_bytes());
            body.extend_from_slice(&(v.len() as u16).to_be_bytes());
            body.extend_from_slice(v);
            body.resize(body.len().div_ceil(4) * 4, 0);
        }
        let mut m = vec![0x00, 0x03];
        m.extend_from_slice(&(body.len() as u16).to_be_bytes());
        m.extend_from_slice(&[0x21, 0x12, 0xa4, 0x42]);
        m.extend_from_slice(&[9; 12]);
        m.extend_from_slice(&body);
        m
    }

    #[test]
    fn a_repeated_username_or_transport_is_noticed() {
        let once = allocate_with(&[
            (0x0006, b"1800000600:p1:192.0.2.7:50000"),
            (0x0019, &[17, 0, 0, 0]),
        ]);
        let r = request(&Message::from_bytes(&once).unwrap()).unwrap();
        assert_eq!(r.username.as_deref(), Some("1800000600:p1:192.0.2.7:50000"));
        assert_eq!(r.requested_transport, Some(17));
        assert!(!r.repeated && !r.userhash);
        // Two USERNAMEs: the policy would read one, the engine the other.
        let twice = allocate_with(&[
            (0x0006, b"1800000600:p1:192.0.2.7:50000"),
            (0x0006, b"1800000600:p1:192.0.2.8:50000"),
        ]);
        // (stun-types parses it, so the driver would pass it on: the policy must see it.)
        let m = Message::from_bytes(&twice).expect("a repeated attribute parses");
        assert!(request(&m).unwrap().repeated);
        let transports = allocate_with(&[(0x0019, &[17, 0, 0, 0]), (0x0019, &[6, 0, 0, 0])]);
        let m = Message::from_bytes(&transports).expect("a repeated attribute parses");
        assert!(request(&m).unwrap().repeated);
    }

    #[test]
    fn tcp_frames_whole_partial_padded_and_hostile() {
        // A STUN header saying 8 bytes of attributes.
        let stun = [0x00, 0x03, 0x00, 0x08];
        assert_eq!(frame(&stun), Frame::Incomplete);
        let mut whole = vec![0u8; 28];
        whole[..4].copy_from_slice(&stun);
        assert_eq!(frame(&whole), Frame::Whole(28));
        whole.extend_from_slice(&[1, 2, 3]);
        assert_eq!(frame(&whole), Frame::Whole(28), "the next one's bytes stay");
        // ChannelData of 5 bytes takes 8 with padding.
        let mut cd = vec![0x40, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5];
        assert_eq!(frame(&cd), Frame::Incomplete);
        cd.extend_from_slice(&[0, 0, 0]);
        assert_eq!(frame(&cd), Frame::Whole(12));
        assert_eq!(unpadded(&cd), &cd[..9], "the engine gets it unpadded");
        let stun = [0u8; 28];
        assert_eq!(unpadded(&stun).len(), 28, "STUN has no padding to take");
        // A STUN length that is no multiple of four, something else, or too large.
        assert_eq!(frame(&[0x00, 0x01, 0x00, 0x07]), Frame::Invalid);
        assert_eq!(frame(b"GET / HTTP/1.1\r\n"), Frame::Invalid);
        assert_eq!(frame(&[0x00, 0x01, 0xff, 0xfc]), Frame::Invalid);
        assert_eq!(frame(&[0x40, 0x01, 0xff, 0xff]), Frame::Invalid);
        assert_eq!(frame(&[0x00, 0x01]), Frame::Incomplete);
    }
}
