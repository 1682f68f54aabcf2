//! The relay task: the tokio driver of `turn-server-proto`'s sans-IO TURN servers (one
//! per listener: UDP, TCP, TLS) under raum's [`Policy`]. It owns the listening
//! sockets, one UDP socket per allocation (the relayed address), and one task per
//! TCP or TLS connection that only frames bytes.
//!
//! Every request a client sends passes the policy first: refused ones are answered
//! here and never reach the engine; what the engine sends towards a peer, and what
//! a peer sends back, passes [`Policy::relay`] (the credential's SFU only, within the
//! allocation's bandwidth). Nothing here logs an address or a username.

use std::collections::{HashMap, HashSet};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, UdpSocket};
use tokio::sync::{Notify, Semaphore, mpsc};
use tracing::{debug, info, warn};
use turn_server_proto::api::{
    SocketAllocateError, TcpConnectError, TurnServerApi, TurnServerPollRet,
};
use turn_server_proto::server::TurnServer;
use turn_server_proto::stun::agent::Transmit;
use turn_server_proto::types::stun::message::{LongTermCredentials, Message};
use turn_server_proto::types::{AddressFamily, TransportType};

use super::RelayAddress;
use super::policy::{Method, Policy, User, Verdict};
use super::wire::{self, Frame, Kind};

/// Connections (TCP and TLS together) held at once.
pub const MAX_CONNECTIONS: usize = 4096;
/// How long a new connection may take for its TLS handshake and first message.
const FIRST_MESSAGE: Duration = Duration::from_secs(10);
/// How long a connection may stay silent (a browser refreshes its allocation and
/// permissions every few minutes, and sends media all the time).
const IDLE: Duration = Duration::from_secs(300);
/// Messages that may wait for one connection's socket (beyond: dropped, as UDP would).
const SEND_QUEUE: usize = 512;
/// Events from connections and relay sockets that may wait for the relay.
const EVENTS: usize = 8192;
/// Datagrams read from the UDP listener before the relay looks at its other inputs.
const UDP_ROUND: usize = 64;

/// The relay's counters (for /metrics; no addresses, no usernames).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Allocations now.
    pub allocations: u64,
    /// Usernames the protocol engines know now (each proved its password once).
    pub engine_users: u64,
    /// Messages from clients dropped unread: not TURN, too large, or malformed.
    pub malformed: u64,
    /// Requests refused by the policy.
    pub refused: u64,
    /// Allocate requests dropped by the per-address limit.
    pub flood_dropped: u64,
    /// Relayed datagrams dropped (not the SFU, over bandwidth, full queue).
    pub relay_dropped: u64,
    /// Datagrams relayed (both ways).
    pub relayed: u64,
}

/// What the relay listens on.
pub struct Listeners {
    /// TURN over UDP.
    pub udp: Option<UdpSocket>,
    /// TURN over TCP.
    pub tcp: Option<TcpListener>,
    /// TURN over TLS, with its configuration.
    pub tls: Option<(TcpListener, Arc<rustls::ServerConfig>)>,
}

/// One protocol engine: the TURN server of one listener.
struct Instance {
    server: TurnServer,
    listen: SocketAddr,
    transport: TransportType,
    /// Usernames the engine knows (it cannot forget one; the instance is made anew
    /// when it holds many and no allocation). Only usernames whose request proved
    /// the password get here, so a stream of made-up ones does not fill it.
    users: HashSet<String>,
    /// Requests without a username handed to the engine since it was made: each new
    /// client address costs the engine a nonce it never forgets.
    anonymous: u64,
    /// When the engine wants to be polled again.
    wake: Option<Instant>,
}

/// An allocation's relayed socket.
struct RelaySocket {
    socket: Arc<UdpSocket>,
    instance: usize,
    /// The client it was made for (over TCP: its connection).
    client: SocketAddr,
    reader: tokio::task::JoinHandle<()>,
}

enum Event {
    Opened {
        instance: usize,
        client: SocketAddr,
        frames: mpsc::Sender<Bytes>,
    },
    Message {
        instance: usize,
        client: SocketAddr,
        bytes: Bytes,
    },
    Closed {
        instance: usize,
        client: SocketAddr,
    },
    Peer {
        relayed: SocketAddr,
        from: SocketAddr,
        bytes: Bytes,
    },
}

/// Usernames an engine may know before it is made anew (once it holds no allocation).
const USERS_BEFORE_RENEWAL: usize = 10_000;
/// Requests without a username an engine may see before it is made anew (once it
/// holds no allocation).
const ANONYMOUS_BEFORE_RENEWAL: u64 = 100_000;

/// The relay: listeners, engines, policy, allocations.
pub struct Relay {
    instances: Vec<Instance>,
    realm: String,
    udp: Option<Arc<UdpSocket>>,
    conns: HashMap<(usize, SocketAddr), mpsc::Sender<Bytes>>,
    relays: HashMap<SocketAddr, RelaySocket>,
    /// The user of a client's Allocate that passed, until the engine asks for its
    /// socket.
    pending: HashMap<(usize, SocketAddr), User>,
    policy: Policy,
    relay_ip: RelayAddress,
    epoch: Instant,
    events: mpsc::Sender<Event>,
    counters: Counters,
}

impl Relay {
    /// A relay on `listeners` whose allocations are UDP sockets at `relay_ip`, under
    /// `policy`, in `realm`. Starts the connection-accepting tasks; [`Relay::run`]
    /// does the rest.
    pub fn start(
        listeners: Listeners,
        relay_ip: RelayAddress,
        policy: Policy,
        realm: String,
    ) -> (Self, RelayInputs) {
        let (events, rx) = mpsc::channel(EVENTS);
        let mut instances = Vec::new();
        let epoch = Instant::now();
        let mut udp = None;
        let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
        if let Some(socket) = listeners.udp {
            let listen = socket.local_addr().expect("a bound socket");
            instances.push(new_instance(TransportType::Udp, listen, &realm));
            udp = Some(Arc::new(socket));
        }
        if let Some(listener) = listeners.tcp {
            let listen = listener.local_addr().expect("a bound listener");
            let i = instances.len();
            instances.push(new_instance(TransportType::Tcp, listen, &realm));
            tokio::spawn(accept(listener, None, i, events.clone(), slots.clone()));
        }
        if let Some((listener, config)) = listeners.tls {
            let listen = listener.local_addr().expect("a bound listener");
            let i = instances.len();
            // TLS ends here; the engine sees TURN over TCP.
            instances.push(new_instance(TransportType::Tcp, listen, &realm));
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            tokio::spawn(accept(listener, Some(acceptor), i, events.clone(), slots));
        }
        let relay = Self {
            instances,
            realm,
            udp,
            conns: HashMap::new(),
            relays: HashMap::new(),
            pending: HashMap::new(),
            policy,
            relay_ip,
            epoch,
            events,
            counters: Counters::default(),
        };
        (relay, RelayInputs(rx))
    }

    /// The counters now.
    pub fn counters(&self) -> Counters {
        Counters {
            allocations: self.relays.len() as u64,
            engine_users: self.instances.iter().map(|i| i.users.len() as u64).sum(),
            refused: self.policy.refused,
            flood_dropped: self.policy.dropped,
            relay_dropped: self.counters.relay_dropped + self.policy.relay_dropped,
            ..self.counters
        }
    }

    /// Runs until `stop` is notified. `counters` gets the counters every second.
    pub async fn run(
        mut self,
        RelayInputs(mut events): RelayInputs,
        stop: Arc<Notify>,
        counters: tokio::sync::watch::Sender<Counters>,
    ) {
        let mut buf = vec![0u8; 64 * 1024];
        let mut tick = tokio::time::interval(Duration::from_secs(1));
        let far = || tokio::time::Instant::now() + Duration::from_secs(3600);
        let timer = tokio::time::sleep_until(far());
        tokio::pin!(timer);
        loop {
            let wake = self
                .instances
                .iter()
                .filter_map(|i| i.wake)
                .min()
                .map_or_else(far, tokio::time::Instant::from_std);
            if timer.deadline() != wake {
                timer.as_mut().reset(wake);
            }
            let udp = self.udp.clone();
            tokio::select! {
                () = stop.notified() => return,
                _ = tick.tick() => {
                    self.policy.sweep(Instant::now());
                    self.renew_instances();
                    let _ = counters.send(self.counters());
                }
                _ = &mut timer => {
                    for i in 0..self.instances.len() {
                        self.poll_instance(i);
                    }
                }
                Some(event) = events.recv() => {
                    self.event(event);
                    for _ in 1..UDP_ROUND {
                        let Ok(event) = events.try_recv() else { break };
                        self.event(event);
                    }
                }
                ready = readable(&udp) => {
                    if ready {
                        self.receive_udp(&mut buf);
                    }
                }
            }
        }
    }

    fn receive_udp(&mut self, buf: &mut [u8]) {
        let Some(socket) = self.udp.clone() else {
            return;
        };
        for _ in 0..UDP_ROUND {
            match socket.try_recv_from(buf) {
                Ok((n, from)) => self.client_message(0, from, &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
                Err(e) => {
                    debug!(error = %e.kind(), "turn udp receive");
                    return;
                }
            }
        }
    }

    fn event(&mut self, event: Event) {
        match event {
            Event::Opened {
                instance,
                client,
                frames,
            } => {
                self.conns.insert((instance, client), frames);
            }
            Event::Message {
                instance,
                client,
                bytes,
            } => self.client_message(instance, client, &bytes),
            Event::Closed { instance, client } => {
                self.conns.remove(&(instance, client));
                // Over TCP an allocation lives as long as its connection (RFC 8656,
                // 3.1): it stops relaying and leaves its credential's quota now. The
                // engine cannot be told, so its socket stays bound (its port not
                // reused) until the engine lets the allocation expire.
                let now = Instant::now();
                for (relayed, r) in &self.relays {
                    if r.instance == instance && r.client == client {
                        r.reader.abort();
                        self.policy.orphaned(*relayed, now);
                    }
                }
            }
            Event::Peer {
                relayed,
                from,
                bytes,
            } => self.peer_datagram(relayed, from, &bytes),
        }
    }

    fn now(&self) -> turn_server_proto::types::Instant {
        turn_server_proto::types::Instant::from_nanos(self.epoch.elapsed().as_nanos() as i64)
    }

    fn unix_now() -> u64 {
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    }

    /// A message from a client of instance `i`.
    fn client_message(&mut self, i: usize, client: SocketAddr, mut data: &[u8]) {
        if data.len() > wire::MAX_MESSAGE {
            self.counters.malformed += 1;
            return;
        }
        match wire::kind(data) {
            Kind::Other => {
                self.counters.malformed += 1;
                return;
            }
            // Over TCP a ChannelData message is padded to four bytes (RFC 8656, 12.5);
            // the engine reads its unpadded length and would take the padding for the
            // start of the next message, so it gets the message without it.
            Kind::ChannelData => data = wire::unpadded(data),
            Kind::Stun => {
                let Ok(msg) = Message::from_bytes(data) else {
                    self.counters.malformed += 1;
                    return;
                };
                if let Some(req) = wire::request(&msg) {
                    let verdict =
                        self.policy
                            .decide(&req, client.ip(), Instant::now(), Self::unix_now());
                    match verdict {
                        Verdict::Drop => return,
                        Verdict::Refuse(code, reason) => {
                            debug!(code, reason, "turn request refused");
                            let out = wire::error_response(&msg, code, reason);
                            self.send_to_client(i, client, out);
                            return;
                        }
                        Verdict::Pass(None) => self.instances[i].anonymous += 1,
                        Verdict::Pass(Some(user)) => {
                            // The engine learns a user only from a request that proves
                            // the password; one that does not, it answers 401 itself.
                            if proves(&msg, &user, &self.realm) {
                                let inst = &mut self.instances[i];
                                if !inst.users.contains(&user.username) {
                                    inst.users.insert(user.username.clone());
                                    inst.server
                                        .add_user(user.username.clone(), user.password.clone());
                                }
                                if req.method == Method::Allocate {
                                    self.pending.insert((i, client), user);
                                }
                            }
                        }
                    }
                }
            }
        }
        let now = self.now();
        let inst = &mut self.instances[i];
        let transmit = Transmit::new(data, inst.transport, client, inst.listen);
        if let Some(out) = inst.server.recv(transmit, now) {
            let out = out.build();
            self.route(i, out.from, out.to, out.data);
        }
        self.poll_instance(i);
        // The engine asks for an allocation's socket while handling the request, so
        // whatever was not taken (a refused Allocate) goes now.
        self.pending.remove(&(i, client));
    }

    /// A datagram from `from` to the allocation at `relayed`.
    fn peer_datagram(&mut self, relayed: SocketAddr, from: SocketAddr, data: &[u8]) {
        let Some(i) = self.relays.get(&relayed).map(|r| r.instance) else {
            return;
        };
        // Only the credential's SFU may send through (and within the bandwidth).
        if !self.policy.relay(relayed, from, data.len(), Instant::now()) {
            return;
        }
        let now = self.now();
        let inst = &mut self.instances[i];
        let transmit = Transmit::new(data, TransportType::Udp, from, relayed);
        if let Some(out) = inst.server.recv(transmit, now) {
            let out = out.build();
            self.counters.relayed += 1;
            self.route(i, out.from, out.to, out.data);
        }
        self.poll_instance(i);
    }

    /// Sends what instance `i` produced: to a client from its listener, or to a peer
    /// from an allocation's socket (if the policy lets it).
    fn route(&mut self, i: usize, from: SocketAddr, to: SocketAddr, data: Vec<u8>) {
        if from == self.instances[i].listen {
            self.send_to_client(i, to, data);
            return;
        }
        let Some(relay) = self.relays.get(&from) else {
            self.counters.relay_dropped += 1;
            return;
        };
        if !self.policy.relay(from, to, data.len(), Instant::now()) {
            return;
        }
        match relay.socket.try_send(&data) {
            Ok(_) => self.counters.relayed += 1,
            Err(_) => self.counters.relay_dropped += 1,
        }
    }

    fn send_to_client(&mut self, i: usize, client: SocketAddr, data: Vec<u8>) {
        match self.instances[i].transport {
            TransportType::Udp => {
                if let Some(udp) = &self.udp
                    && udp.try_send_to(&data, client).is_err()
                {
                    self.counters.relay_dropped += 1;
                }
            }
            TransportType::Tcp => {
                // And the other way: the engine writes ChannelData unpadded, browsers
                // read it padded over TCP.
                let mut data = data;
                if wire::kind(&data) == Kind::ChannelData {
                    data.resize(data.len().div_ceil(4) * 4, 0);
                }
                let sent = self
                    .conns
                    .get(&(i, client))
                    .is_some_and(|c| c.try_send(Bytes::from(data)).is_ok());
                if !sent {
                    self.counters.relay_dropped += 1;
                }
            }
        }
    }

    /// Lets instance `i` do what is due: sockets to make or close, messages to send.
    fn poll_instance(&mut self, i: usize) {
        loop {
            let now = self.now();
            match self.instances[i].server.poll(now) {
                TurnServerPollRet::WaitUntil(at) => {
                    let wait =
                        Duration::from_nanos(at.saturating_duration_since(now).as_nanos() as u64);
                    self.instances[i].wake = Some(Instant::now() + wait);
                    break;
                }
                TurnServerPollRet::AllocateSocket {
                    transport,
                    listen_addr,
                    client_addr,
                    allocation_transport,
                    family,
                } => {
                    let result = self.allocate(i, client_addr, allocation_transport, family);
                    let now = self.now();
                    self.instances[i].server.allocated_socket(
                        transport,
                        listen_addr,
                        client_addr,
                        allocation_transport,
                        family,
                        result,
                        now,
                    );
                }
                TurnServerPollRet::TcpConnect {
                    relayed_addr,
                    peer_addr,
                    listen_addr,
                    client_addr,
                } => {
                    // Never reached (the policy refuses Connect), and never allowed.
                    let now = self.now();
                    self.instances[i].server.tcp_connected(
                        relayed_addr,
                        peer_addr,
                        listen_addr,
                        client_addr,
                        Err(TcpConnectError::Forbidden),
                        now,
                    );
                }
                TurnServerPollRet::TcpClose { .. } => {}
                TurnServerPollRet::SocketClose { listen_addr, .. } => {
                    if let Some(r) = self.relays.remove(&listen_addr) {
                        r.reader.abort();
                    }
                    self.policy.released(listen_addr);
                }
            }
        }
        let now = self.now();
        while let Some(t) = self.instances[i].server.poll_transmit(now) {
            self.route(i, t.from, t.to, t.data);
        }
    }

    /// A relayed UDP socket for the client's pending allocation.
    fn allocate(
        &mut self,
        i: usize,
        client: SocketAddr,
        transport: TransportType,
        family: AddressFamily,
    ) -> Result<SocketAddr, SocketAllocateError> {
        // Taken only on success: with ADDITIONAL-ADDRESS-FAMILY the engine asks for
        // another family first.
        let Some(user) = self.pending.get(&(i, client)).cloned() else {
            return Err(SocketAllocateError::InsufficientCapacity);
        };
        let ours = match self.relay_ip.local {
            IpAddr::V4(_) => AddressFamily::IPV4,
            IpAddr::V6(_) => AddressFamily::IPV6,
        };
        if family != ours {
            return Err(SocketAllocateError::AddressFamilyNotSupported);
        }
        if transport != TransportType::Udp {
            return Err(SocketAllocateError::InsufficientCapacity);
        }
        // Connected to the credential's SFU: the kernel drops what anyone else sends
        // to the relayed address before it costs the relay anything.
        let socket = std::net::UdpSocket::bind(SocketAddr::new(self.relay_ip.local, 0))
            .and_then(|s| {
                s.connect(self.relay_ip.reach(user.relay_to))?;
                s.set_nonblocking(true)?;
                Ok(s)
            })
            .and_then(UdpSocket::from_std)
            .map_err(|e| {
                warn!(error = %e.kind(), "cannot open a relay socket");
                SocketAllocateError::InsufficientCapacity
            })?;
        // Known by the address clients are told (behind a 1:1 NAT, the public one).
        let relayed = socket
            .local_addr()
            .map(|a| SocketAddr::new(self.relay_ip.public, a.port()))
            .map_err(|_| SocketAllocateError::InsufficientCapacity)?;
        let socket = Arc::new(socket);
        let reader = tokio::spawn(read_peer(
            socket.clone(),
            relayed,
            user.relay_to,
            self.events.clone(),
        ));
        self.relays.insert(
            relayed,
            RelaySocket {
                socket,
                instance: i,
                client,
                reader,
            },
        );
        self.pending.remove(&(i, client));
        self.policy.allocated(relayed, &user, Instant::now());
        debug!(allocations = self.relays.len(), "turn allocation made");
        Ok(relayed)
    }

    /// An engine cannot forget a user: one that knows many, and holds no allocation,
    /// is made anew (its clients' next request starts over with a nonce).
    fn renew_instances(&mut self) {
        for i in 0..self.instances.len() {
            let busy = self.relays.values().any(|r| r.instance == i);
            let inst = &mut self.instances[i];
            let full = inst.users.len() > USERS_BEFORE_RENEWAL
                || inst.anonymous > ANONYMOUS_BEFORE_RENEWAL;
            if full && !busy {
                info!(
                    users = inst.users.len(),
                    anonymous = inst.anonymous,
                    "renewing a TURN engine"
                );
                *inst = new_instance(inst.transport, inst.listen, &self.realm);
            }
        }
    }
}

/// The relay's inputs, until it runs.
pub struct RelayInputs(mpsc::Receiver<Event>);

fn new_instance(transport: TransportType, listen: SocketAddr, realm: &str) -> Instance {
    Instance {
        server: TurnServer::new(transport, listen, realm.to_owned()),
        listen,
        transport,
        users: HashSet::new(),
        anonymous: 0,
        wake: None,
    }
}

/// Whether `msg` carries a MESSAGE-INTEGRITY (or -SHA256) made with `user`'s password
/// in `realm`: the long-term credential the engine will check too.
fn proves(msg: &Message<'_>, user: &User, realm: &str) -> bool {
    let key = LongTermCredentials::new(user.username.clone(), user.password.clone())
        .to_key(realm.to_owned());
    msg.validate_integrity(&key.into()).is_ok()
}

async fn readable(udp: &Option<Arc<UdpSocket>>) -> bool {
    match udp {
        Some(s) => s.readable().await.is_ok(),
        None => std::future::pending().await,
    }
}

/// Reads what peers send to an allocation's socket.
/// Reads what the SFU `peer` sends to the allocation at `relayed`. The socket is
/// connected to it (the kernel drops anything from elsewhere), so whatever arrives is
/// from `peer`, as the engine knows it, even when reached at a local address.
async fn read_peer(
    socket: Arc<UdpSocket>,
    relayed: SocketAddr,
    peer: SocketAddr,
    events: mpsc::Sender<Event>,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let from = peer;
    loop {
        buf.reserve(wire::MAX_MESSAGE);
        buf.resize(wire::MAX_MESSAGE, 0);
        let n = match socket.recv(&mut buf[..]).await {
            Ok(n) => n,
            // An ICMP port-unreachable from the SFU (restarting, say) surfaces on a
            // connected socket as this; the allocation goes on receiving.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => continue,
            Err(_) => return,
        };
        buf.truncate(n);
        let bytes = buf.split().freeze();
        if events
            .send(Event::Peer {
                relayed,
                from,
                bytes,
            })
            .await
            .is_err()
        {
            return;
        }
    }
}

/// Accepts TURN connections (over TLS with `tls`) for instance `i`.
async fn accept(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    i: usize,
    events: mpsc::Sender<Event>,
    slots: Arc<Semaphore>,
) {
    loop {
        let (stream, client) = tokio::select! {
            () = events.closed() => return,
            accepted = listener.accept() => match accepted {
                Ok(a) => a,
                Err(e) => {
                    debug!(error = %e.kind(), "turn accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            debug!("turn connection refused: too many open");
            continue;
        };
        let _ = stream.set_nodelay(true);
        let events = events.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            match tls {
                None => connection(stream, i, client, events).await,
                Some(acceptor) => {
                    match tokio::time::timeout(FIRST_MESSAGE, acceptor.accept(stream)).await {
                        Ok(Ok(stream)) => connection(stream, i, client, events).await,
                        _ => debug!("turn tls handshake failed"),
                    }
                }
            }
            drop(slot);
        });
    }
}

/// One connection: TURN messages in, TURN messages out.
async fn connection<S: AsyncRead + AsyncWrite + Unpin>(
    stream: S,
    i: usize,
    client: SocketAddr,
    events: mpsc::Sender<Event>,
) {
    let (mut reader, mut writer) = tokio::io::split(stream);
    let (frames, mut outgoing) = mpsc::channel::<Bytes>(SEND_QUEUE);
    if events
        .send(Event::Opened {
            instance: i,
            client,
            frames,
        })
        .await
        .is_err()
    {
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
        let mut buf = BytesMut::with_capacity(16 * 1024);
        let mut wait = FIRST_MESSAGE;
        loop {
            buf.reserve(16 * 1024);
            match tokio::time::timeout(wait, reader.read_buf(&mut buf)).await {
                Ok(Ok(0)) | Ok(Err(_)) | Err(_) => return,
                Ok(Ok(_)) => {}
            }
            loop {
                match wire::frame(&buf) {
                    Frame::Incomplete => break,
                    Frame::Invalid => return,
                    Frame::Whole(n) => {
                        wait = IDLE;
                        let bytes = buf.split_to(n).freeze();
                        if events
                            .send(Event::Message {
                                instance: i,
                                client,
                                bytes,
                            })
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
    tokio::select! {
        () = read => {}
        () = write => {}
    }
    let _ = events
        .send(Event::Closed {
            instance: i,
            client,
        })
        .await;
}
