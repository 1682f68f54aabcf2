//! ICE-TCP for a room (RFC 6544): the passive side of TCP connections to the meeting's
//! TCP port, each carrying datagrams framed by a 16-bit length (RFC 4571). For
//! participants whose network lets no UDP out.
//!
//! The room core stays address-based and never sees the framing: each connection is
//! one [`Remote`] (`Tcp` and its remote address), its frames go to the room as
//! datagrams, and what the room sends there goes back framed. The tasks here only move
//! bytes; whether a connection belongs to anyone is the core's decision (its STUN
//! checks). A connection whose first frame is not STUN within [`FIRST_CHECK`] is
//! closed, and one that falls silent for [`IDLE`]; one that keeps sending checks the
//! core refuses is not (yet): the room's connection limit bounds them.
//!
//! Nothing here logs an address: connections are counted, not named.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, BufMut as _, Bytes, BytesMut};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tracing::debug;

use crate::media::pool::BUF_LEN;
use crate::media::{Remote, stun};

/// How long a new connection may take to send its first frame, which must be a STUN
/// binding request (a browser sends it at once).
pub const FIRST_CHECK: Duration = Duration::from_secs(10);
/// How long a connection may stay silent: browsers check consent every few seconds,
/// so a path that says nothing for this long is gone.
pub const IDLE: Duration = Duration::from_secs(30);
/// Frames that may wait for one connection's socket; beyond that they are dropped (as
/// a full UDP socket buffer drops them: media is late or lost, never queued without
/// bound).
pub const SEND_QUEUE: usize = 512;
/// Bytes a connection reads at a time.
const READ_CHUNK: usize = 16 * 1024;

/// What the connections tell the room.
#[derive(Debug)]
pub enum Event {
    /// A connection opened; what the room sends to `remote` goes into `frames`.
    Opened {
        /// The connection's remote end.
        remote: Remote,
        /// Framed bytes to write.
        frames: mpsc::Sender<Bytes>,
    },
    /// A datagram arrived on a connection (unframed).
    Datagram {
        /// From where.
        remote: Remote,
        /// The datagram.
        bytes: Bytes,
    },
    /// A connection closed (either side, or a limit).
    Closed {
        /// Which.
        remote: Remote,
    },
}

/// Accepts connections on `listener` until the room is gone (`events` closed), at most
/// `max_connections` at a time; the rest are closed at once.
pub async fn accept(listener: TcpListener, events: mpsc::Sender<Event>, max_connections: usize) {
    let slots = Arc::new(Semaphore::new(max_connections));
    loop {
        let stream = tokio::select! {
            () = events.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // Out of descriptors, say: wait a little rather than spin.
                    debug!(error = %e.kind(), "ice-tcp accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!("ice-tcp connection refused: too many open");
            continue;
        };
        let events = events.clone();
        tokio::spawn(async move {
            connection(stream, events).await;
            drop(slot);
        });
    }
}

/// One connection: frames in to the room, frames out from it.
async fn connection(stream: TcpStream, events: mpsc::Sender<Event>) {
    let Ok(peer) = stream.peer_addr() else {
        return;
    };
    let remote = Remote::tcp(peer);
    let _ = stream.set_nodelay(true);
    let (mut reader, mut writer) = stream.into_split();
    let (frames, mut outgoing) = mpsc::channel::<Bytes>(SEND_QUEUE);
    if events.send(Event::Opened { remote, frames }).await.is_err() {
        return;
    }
    let write = async move {
        while let Some(frame) = outgoing.recv().await {
            if writer.write_all(&frame).await.is_err() {
                return;
            }
        }
    };
    let read = async {
        let mut buf = BytesMut::with_capacity(READ_CHUNK);
        let mut first = true;
        loop {
            let wait = if first { FIRST_CHECK } else { IDLE };
            buf.reserve(READ_CHUNK);
            match tokio::time::timeout(wait, reader.read_buf(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(_)) => {}
            }
            loop {
                match next_frame(&mut buf) {
                    Frame::Incomplete => break,
                    Frame::Invalid => return,
                    Frame::Datagram(bytes) => {
                        // The first frame must be a connectivity check: anything else is
                        // not ICE (RFC 6544 makes the first a STUN binding request).
                        if first && !stun::is_stun(&bytes) {
                            return;
                        }
                        first = false;
                        if events
                            .send(Event::Datagram { remote, bytes })
                            .await
                            .is_err()
                        {
                            return;
                        }
                    }
                }
            }
        }
    };
    // Either half ending ends the connection (a reader that stops closes the writer's
    // queue through the room's `Closed`, and a writer that fails stops reading here).
    tokio::select! {
        () = read => {}
        () = write => {}
    }
    let _ = events.send(Event::Closed { remote }).await;
}

/// What the front of a connection's buffer holds.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// Not a whole frame yet.
    Incomplete,
    /// A length no datagram of ours can have (0, or more than a packet buffer holds):
    /// the stream is not RFC 4571 framing, or is hostile. The connection is closed.
    Invalid,
    /// One datagram, taken off the buffer.
    Datagram(Bytes),
}

/// Takes the next RFC 4571 frame off `buf`. Splitting shares `buf`'s allocation, so
/// reading allocates only when the buffer grows.
pub fn next_frame(buf: &mut BytesMut) -> Frame {
    let Some(len) = buf
        .get(..2)
        .map(|b| u16::from_be_bytes([b[0], b[1]]) as usize)
    else {
        return Frame::Incomplete;
    };
    if len == 0 || len > BUF_LEN {
        return Frame::Invalid;
    }
    if buf.len() < 2 + len {
        return Frame::Incomplete;
    }
    buf.advance(2);
    Frame::Datagram(buf.split_to(len).freeze())
}

/// Appends `datagram` to `out` framed (length first) and returns the frame. `out` is
/// the caller's reused buffer: its allocation is shared by the frames split off it
/// and only grows when they are all still in flight.
pub fn frame(out: &mut BytesMut, datagram: &[u8]) -> Bytes {
    out.reserve(2 + datagram.len());
    out.put_u16(datagram.len() as u16);
    out.put_slice(datagram);
    out.split().freeze()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_round_trip_whole_split_and_joined() {
        let mut out = BytesMut::new();
        let a = frame(&mut out, b"first");
        let b = frame(&mut out, &[7u8; 1200]);
        let mut stream = BytesMut::new();
        stream.extend_from_slice(&a);
        stream.extend_from_slice(&b[..100]);
        assert_eq!(
            next_frame(&mut stream),
            Frame::Datagram(Bytes::from_static(b"first"))
        );
        assert_eq!(
            next_frame(&mut stream),
            Frame::Incomplete,
            "half a frame waits"
        );
        stream.extend_from_slice(&b[100..]);
        assert_eq!(
            next_frame(&mut stream),
            Frame::Datagram(Bytes::from(vec![7u8; 1200]))
        );
        assert_eq!(next_frame(&mut stream), Frame::Incomplete);
        assert!(stream.is_empty());
        let mut one = BytesMut::from(&[0u8][..]);
        assert_eq!(
            next_frame(&mut one),
            Frame::Incomplete,
            "one byte of a length"
        );
    }

    #[test]
    fn impossible_lengths_end_the_stream() {
        for len in [0u16, (BUF_LEN + 1) as u16, u16::MAX] {
            let mut stream = BytesMut::new();
            stream.put_u16(len);
            stream.extend_from_slice(&[0u8; 64]);
            assert_eq!(next_frame(&mut stream), Frame::Invalid, "length {len}");
        }
        // The largest datagram a buffer holds is fine.
        let mut stream = BytesMut::new();
        stream.put_u16(BUF_LEN as u16);
        stream.extend_from_slice(&vec![1u8; BUF_LEN]);
        assert!(matches!(next_frame(&mut stream), Frame::Datagram(d) if d.len() == BUF_LEN));
    }
}
