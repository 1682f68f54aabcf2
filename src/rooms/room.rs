//! The room task: the thin tokio driver of a [`RoomCore`]. It owns the meeting's UDP
//! socket (batched receives through `quinn-udp`, with GRO where the kernel has it),
//! the ICE-TCP connections to the meeting's TCP port when it has one ([`ice_tcp`]),
//! one timer that is reset rather than recreated, the bounded command queue the
//! sessions and status pages use, and each session's bounded outbound queue.
//!
//! A full socket buffer never stalls the room: the datagram is dropped and counted. A
//! session whose queue is full (its WebSocket stalled) is disconnected, so a slow
//! participant never makes the room's memory grow.

use std::collections::HashMap;
use std::io::IoSliceMut;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use quinn_udp::{RecvMeta, Transmit as UdpTransmit, UdpSockRef, UdpSocketState};
use std::net::SocketAddr;
use tokio::io::Interest;
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, mpsc, oneshot};
use tracing::{debug, warn};

use super::{Network, RoomSettings, TurnOffer, ice_tcp};
use crate::media::room::{self, RoomCore};
pub use crate::media::room::{Advertised, KEYFRAME_REQUEST_INTERVAL, Outbound, PeerId, Stats};
use crate::media::{Remote, Transport};
use crate::signaling::{ClientMessage, ErrorCode};

/// How many signaling messages may wait for one participant's WebSocket; a session
/// that falls this far behind is disconnected.
pub const OUTBOUND_QUEUE: usize = 256;
/// How many commands may wait for the room.
pub const COMMAND_QUEUE: usize = 1024;
/// Datagrams received per system call (at most).
const RECV_BATCH: usize = 32;
/// Bytes per receive buffer: one datagram, or a GRO batch of them.
const RECV_BUF: usize = 64 * 1024;
/// Batches read before the room looks at its commands and timers again.
const RECV_ROUNDS: usize = 8;
/// ICE-TCP events taken at a time before the room sends what they produced.
const TCP_ROUND: usize = 64;
/// ICE-TCP events that may wait for the room (the connections wait when it is full).
const TCP_EVENTS: usize = 4096;

/// What a participant's session (or a status page) asks of the room.
#[derive(Debug)]
pub enum Command {
    /// Join with a display name (the token was checked by the session).
    Join {
        /// Display name.
        name: String,
        /// Participant or host, from the token it joined with.
        role: crate::signaling::Role,
        /// The seat it had before in this browser tab.
        seat: Option<String>,
        /// Where the room sends this participant's messages.
        outbound: mpsc::Sender<Outbound>,
        /// The participant's id, or why not.
        reply: oneshot::Sender<Result<PeerId, ErrorCode>>,
    },
    /// A message from a joined participant.
    Message {
        /// Who.
        peer: PeerId,
        /// What.
        msg: ClientMessage,
    },
    /// The participant's WebSocket closed.
    Gone {
        /// Who.
        peer: PeerId,
    },
    /// Counters, for /status and /metrics.
    Stats {
        /// Where to answer.
        reply: oneshot::Sender<Stats>,
    },
    /// How many participants are in the room.
    Participants {
        /// Where to answer.
        reply: oneshot::Sender<u32>,
    },
}

/// A room with its socket, ready to run.
pub struct Room {
    core: RoomCore,
    socket: UdpSocket,
    state: UdpSocketState,
    sessions: HashMap<PeerId, mpsc::Sender<Outbound>>,
    /// What the core has ready to send, grouped before it goes out.
    outgoing: Vec<crate::media::Transmit>,
    /// Segments of one GSO send (one destination, one size).
    batch: Vec<u8>,
    /// The ICE-TCP listener, until `run` starts accepting on it.
    tcp: Option<TcpListener>,
    /// Open ICE-TCP connections: where their frames go (dropping a sender closes its
    /// connection), and whether a participant proved the path.
    tcp_paths: HashMap<Remote, (mpsc::Sender<Bytes>, bool)>,
    /// When `tcp_paths` was last looked through for paths no one uses.
    tcp_swept: Instant,
    /// Where frames for them are written (shared by the frames split off it).
    tcp_out: BytesMut,
    /// A datagram from a connection, copied to be decrypted in place.
    tcp_in: Vec<u8>,
    /// The TURN participants are offered, and the address its relays may reach.
    turn: Option<TurnOffer>,
    relay_to: SocketAddr,
}

/// Why a room could not start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The media core could not start.
    #[error(transparent)]
    Core(#[from] room::Error),
    /// The socket could not be set up for batched IO.
    #[error("cannot set up the media socket: {0}")]
    Socket(std::io::Error),
}

impl Room {
    /// A room with `settings` on `network`: its UDP socket, its ICE-TCP listener (if
    /// any), the address its candidates name and the TURN it offers.
    pub fn new(settings: RoomSettings, network: Network) -> Result<Self, Error> {
        let Network {
            udp: socket,
            tcp,
            advertised,
            turn,
        } = network;
        let state = UdpSocketState::new(UdpSockRef::from(&socket)).map_err(Error::Socket)?;
        // Room for bursts (a keyframe to thirty subscribers at once).
        let _ = state.set_send_buffer_size(UdpSockRef::from(&socket), 4 << 20);
        let _ = state.set_recv_buffer_size(UdpSockRef::from(&socket), 4 << 20);
        Ok(Self {
            core: RoomCore::new(settings, advertised, Instant::now())?,
            relay_to: SocketAddr::new(advertised.ip, advertised.udp_port),
            turn,
            socket,
            state,
            sessions: HashMap::new(),
            outgoing: Vec::with_capacity(4096),
            batch: Vec::with_capacity(64 * 1024),
            tcp,
            tcp_paths: HashMap::new(),
            tcp_swept: Instant::now(),
            tcp_out: BytesMut::with_capacity(64 * 1024),
            tcp_in: Vec::with_capacity(crate::media::pool::BUF_LEN),
        })
    }

    /// Runs until `stop` is notified (the meeting is over: everyone is told) or until
    /// every command sender is gone. A notification is never lost, however full the
    /// command queue is.
    pub async fn run(mut self, mut commands: mpsc::Receiver<Command>, stop: Arc<Notify>) {
        let mut bufs: Vec<Vec<u8>> = (0..RECV_BATCH).map(|_| vec![0u8; RECV_BUF]).collect();
        let mut metas = vec![RecvMeta::default(); RECV_BATCH];
        let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
        let timer = tokio::time::sleep_until(far());
        tokio::pin!(timer);
        // The accepting task ends when the room does (its event queue closes).
        let mut tcp_events = self.tcp.take().map(|listener| {
            let (tx, rx) = mpsc::channel(TCP_EVENTS);
            let max = self.core_max_paths();
            tokio::spawn(ice_tcp::accept(listener, tx, max));
            rx
        });
        loop {
            self.flush();
            let deadline = self
                .core
                .poll_timeout()
                .map_or_else(far, tokio::time::Instant::from_std);
            if timer.deadline() != deadline {
                timer.as_mut().reset(deadline);
            }
            tokio::select! {
                () = stop.notified() => {
                    self.core.shutdown(Instant::now());
                    self.flush();
                    return;
                }
                cmd = commands.recv() => match cmd {
                    None => {
                        self.core.shutdown(Instant::now());
                        self.flush();
                        return;
                    }
                    Some(cmd) => self.command(cmd),
                },
                _ = &mut timer => {
                    let now = Instant::now();
                    self.core.handle_timeout(now);
                    // Participants the core let go (ICE timed out) leave no command
                    // behind: their connections are looked for once a second.
                    if now.duration_since(self.tcp_swept) >= Duration::from_secs(1) {
                        self.tcp_swept = now;
                        self.close_unused_tcp_paths();
                    }
                }
                ready = self.socket.readable() => {
                    if ready.is_ok() {
                        self.receive(&mut bufs, &mut metas);
                    }
                }
                Some(event) = next_tcp(&mut tcp_events) => {
                    self.tcp_event(event);
                    if let Some(rx) = tcp_events.as_mut() {
                        for _ in 1..TCP_ROUND {
                            let Ok(event) = rx.try_recv() else { break };
                            self.tcp_event(event);
                        }
                    }
                }
            }
        }
    }

    /// Closes the ICE-TCP connections of paths no participant uses any more (its
    /// participant left). Those still awaiting their first check stay.
    fn close_unused_tcp_paths(&mut self) {
        let core = &self.core;
        self.tcp_paths
            .retain(|remote, (_, proven)| !*proven || core.knows(*remote));
    }

    /// At most this many ICE-TCP connections at once: two paths per participant (a
    /// browser may try two local interfaces; hosts beyond the limit included), and a
    /// few being checked.
    fn core_max_paths(&self) -> usize {
        2 * (self.core.max_participants() + room::HOST_SEATS) as usize + 8
    }

    fn tcp_event(&mut self, event: ice_tcp::Event) {
        match event {
            ice_tcp::Event::Opened { remote, frames } => {
                self.tcp_paths.insert(remote, (frames, false));
            }
            ice_tcp::Event::Datagram { remote, bytes } => {
                self.tcp_in.clear();
                self.tcp_in.extend_from_slice(&bytes);
                self.core
                    .handle_datagram(Instant::now(), remote, &mut self.tcp_in);
                // A connection is for one participant's path: one whose check nobody
                // proved, or whose participant has gone, is closed rather than left to
                // hold one of the room's few connections until it idles out.
                if !self.core.knows(remote) {
                    self.tcp_paths.remove(&remote);
                } else if let Some(path) = self.tcp_paths.get_mut(&remote) {
                    path.1 = true;
                }
            }
            ice_tcp::Event::Closed { remote } => {
                self.tcp_paths.remove(&remote);
            }
        }
    }

    /// Reads the datagrams waiting, in batches, and hands each to the core. At most
    /// [`RECV_ROUNDS`] batches at a time: an overloaded room must still hear its
    /// commands (joins, leaves) and its timers.
    fn receive(&mut self, bufs: &mut [Vec<u8>], metas: &mut [RecvMeta]) {
        for _ in 0..RECV_ROUNDS {
            let mut slices: Vec<IoSliceMut<'_>> =
                bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
            let state = &self.state;
            let socket = &self.socket;
            let got = socket.try_io(Interest::READABLE, || {
                state.recv(UdpSockRef::from(socket), &mut slices, metas)
            });
            drop(slices);
            let n = match got {
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!(error = %e.kind(), "udp receive");
                    return;
                }
            };
            let now = Instant::now();
            for (meta, buf) in metas.iter().zip(bufs.iter_mut()).take(n) {
                let stride = meta.stride.max(1);
                for segment in buf[..meta.len].chunks_mut(stride) {
                    self.core
                        .handle_datagram(now, Remote::udp(meta.addr), segment);
                }
            }
            // Send what those produced before reading more (keeps latency low and the
            // transmit queue short).
            self.flush();
        }
    }

    fn command(&mut self, cmd: Command) {
        let now = Instant::now();
        match cmd {
            Command::Join {
                name,
                role,
                seat,
                outbound,
                reply,
            } => {
                // An opaque id per participant for its TURN credential (never its name).
                let ice = self.turn.as_ref().map_or_else(Vec::new, |t| {
                    t.ice_servers(
                        &crate::media::random_token(12),
                        self.relay_to,
                        std::time::SystemTime::now(),
                    )
                });
                let result = self.core.arrive(
                    now,
                    room::Arrival {
                        name,
                        role,
                        seat,
                        ice_servers: ice,
                    },
                );
                if let Ok(id) = result {
                    self.sessions.insert(id, outbound);
                }
                let _ = reply.send(result);
            }
            Command::Message { peer, msg } => self.core.handle_message(now, peer, msg),
            Command::Gone { peer } => {
                self.sessions.remove(&peer);
                self.core.leave(now, peer);
                self.close_unused_tcp_paths();
            }
            Command::Stats { reply } => {
                let _ = reply.send(self.core.stats());
            }
            Command::Participants { reply } => {
                let _ = reply.send(self.core.participants());
            }
        }
    }

    /// Sends every datagram and signaling message the core has ready.
    fn flush(&mut self) {
        self.flush_datagrams();
        loop {
            let mut stalled = Vec::new();
            while let Some((peer, msg)) = self.core.poll_outbound() {
                let close = msg == Outbound::Close;
                if let Some(session) = self.sessions.get(&peer)
                    && let Err(mpsc::error::TrySendError::Full(_)) = session.try_send(msg)
                {
                    stalled.push(peer);
                }
                if close {
                    self.sessions.remove(&peer);
                }
            }
            if stalled.is_empty() {
                return;
            }
            for peer in stalled {
                warn!("a participant's connection stalled; disconnecting it");
                // Dropping its queue ends its session; the room forgets it (and tells
                // the others, which the next round delivers).
                self.sessions.remove(&peer);
                self.core.leave(Instant::now(), peer);
            }
        }
    }

    /// Sends what the core has ready. Datagrams to one destination keep their order;
    /// consecutive ones of the same size (the video of several publishers to one
    /// subscriber, say) go out in one system call with UDP GSO where the kernel has it.
    fn flush_datagrams(&mut self) {
        while let Some(t) = self.core.poll_transmit() {
            self.outgoing.push(t);
        }
        if self.outgoing.is_empty() {
            return;
        }
        // Stable: per destination, the order the core produced.
        self.outgoing.sort_by_key(|t| t.to);
        let max_segments = self.state.max_gso_segments().max(1);
        let mut i = 0;
        while i < self.outgoing.len() {
            let to = self.outgoing[i].to;
            if to.transport == Transport::Tcp {
                let t = &self.outgoing[i];
                let sent = self.tcp_paths.get(&to).is_some_and(|path| {
                    let frame = ice_tcp::frame(&mut self.tcp_out, t.buf.as_slice());
                    path.0.try_send(frame).is_ok()
                });
                if sent {
                    self.core.note_sent(t.buf.len());
                } else {
                    // Its connection closed, or its queue is full (a slow TCP path):
                    // dropped like a datagram a full socket buffer refuses.
                    self.core.note_send_drop();
                }
                i += 1;
                continue;
            }
            let to = to.addr;
            let size = self.outgoing[i].buf.len();
            // A run of equal sizes to one destination; the last may be shorter.
            let mut j = i + 1;
            while j < self.outgoing.len()
                && j - i < max_segments
                && self.outgoing[j].to == Remote::udp(to)
                && (j - i + 1) * size <= u16::MAX as usize
                && self.outgoing[j].buf.len() <= size
            {
                let shorter = self.outgoing[j].buf.len() < size;
                j += 1;
                if shorter {
                    break;
                }
            }
            let sock = UdpSockRef::from(&self.socket);
            let result = if j - i == 1 {
                let t = &self.outgoing[i];
                self.state.try_send(
                    sock,
                    &UdpTransmit {
                        destination: to,
                        ecn: None,
                        contents: t.buf.as_slice(),
                        segment_size: None,
                        src_ip: None,
                    },
                )
            } else {
                self.batch.clear();
                for t in &self.outgoing[i..j] {
                    self.batch.extend_from_slice(t.buf.as_slice());
                }
                self.state.try_send(
                    sock,
                    &UdpTransmit {
                        destination: to,
                        ecn: None,
                        contents: &self.batch,
                        segment_size: Some(size),
                        src_ip: None,
                    },
                )
            };
            for t in &self.outgoing[i..j] {
                match result {
                    Ok(()) => self.core.note_sent(t.buf.len()),
                    // A full socket buffer (or an unreachable peer) must not stall the
                    // room: drop, count, go on.
                    Err(_) => self.core.note_send_drop(),
                }
            }
            i = j;
        }
        for t in self.outgoing.drain(..) {
            self.core.recycle(t.buf);
        }
    }
}

/// The next ICE-TCP event, or never when the room has no TCP port.
async fn next_tcp(events: &mut Option<mpsc::Receiver<ice_tcp::Event>>) -> Option<ice_tcp::Event> {
    match events {
        Some(rx) => rx.recv().await,
        None => std::future::pending().await,
    }
}
