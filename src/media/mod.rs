//! The media core: one meeting's WebRTC media as a sans-IO state machine, in the
//! spirit of str0m. No socket, no clock, no tokio: a driver feeds it datagrams,
//! signaling messages and the time, and takes out the datagrams to send, the messages
//! for each participant and when to call it next.
//!
//! - [`room`]: [`room::RoomCore`], the meeting: participants, negotiation, the routing
//!   of every published track to its subscribers, keyframes, retransmissions, reports;
//! - [`forwarder`]: one subscriber's layer of one publisher's video, and the rewriting
//!   that keeps its stream continuous across layer switches; [`vp8`]: the payload
//!   descriptor it reads and rewrites;
//! - [`speaker`]: the active speaker, from the audio levels; [`downlink`]: how much a
//!   subscriber can receive (transport-wide feedback into a GCC estimate);
//! - [`stun`]: ICE connectivity checks (the SFU is an ICE-lite agent);
//! - [`dtls`]: the DTLS-SRTP handshake (on the `rtc` crate's sans-IO DTLS);
//! - [`srtp`]: SRTP and SRTCP in place, both profiles browsers use;
//! - [`rtp`], [`rtcp`], [`twcc`]: the packets, read in place and written into buffers;
//! - [`sdp`]: offers and answers;
//! - [`client`]: a participant on the same parts (the load generator's);
//! - [`pool`]: reused packet buffers.
//!
//! The media path allocates nothing and takes no lock per packet: a datagram is
//! routed by its source address, decrypted in place, written once per subscriber into
//! a pooled buffer (its header rewritten) and encrypted there.

pub mod client;
pub mod downlink;
pub mod dtls;
pub mod forwarder;
pub mod pool;
pub mod room;
pub mod rtcp;
pub mod rtp;
pub mod sdp;
pub mod speaker;
pub mod srtp;
pub mod stun;
pub mod twcc;
pub mod vp8;

use std::net::SocketAddr;

/// How datagrams travel between a participant and the room.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Transport {
    /// UDP: one datagram per packet.
    Udp,
    /// ICE-TCP (RFC 6544): the driver frames each datagram with its length (RFC 4571)
    /// on one TCP connection per participant path. The core never sees the framing.
    Tcp,
}

/// A participant's end of a path: its address and how packets get there. A UDP and a
/// TCP path from the same address and port are two different paths.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Remote {
    /// UDP or TCP.
    pub transport: Transport,
    /// The address (the TCP connection's remote end).
    pub addr: SocketAddr,
}

impl Remote {
    /// A UDP address.
    pub fn udp(addr: SocketAddr) -> Self {
        Self {
            transport: Transport::Udp,
            addr,
        }
    }

    /// The remote end of an ICE-TCP connection.
    pub fn tcp(addr: SocketAddr) -> Self {
        Self {
            transport: Transport::Tcp,
            addr,
        }
    }
}

impl From<SocketAddr> for Remote {
    /// A plain address is a UDP one.
    fn from(addr: SocketAddr) -> Self {
        Self::udp(addr)
    }
}

/// A datagram to send.
#[derive(Debug)]
pub struct Transmit {
    /// Where to.
    pub to: Remote,
    /// The datagram; give the buffer back with [`room::RoomCore::recycle`].
    pub buf: pool::Buf,
}

/// Random bytes from the operating system (ICE credentials, SSRCs, tie-breakers).
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::fill(&mut b).expect("the OS random source works");
    b
}

/// A random token of `len` characters from `[A-Za-z0-9]` (ICE ufrags and passwords).
pub fn random_token(len: usize) -> String {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    let mut bytes = vec![0u8; len];
    getrandom::fill(&mut bytes).expect("the OS random source works");
    bytes
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}
