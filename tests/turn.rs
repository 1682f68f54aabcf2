//! `raum turn` as a process, against what a hostile or broken client sends: garbage,
//! truncated and oversized messages over UDP and TCP, and a flood of allocation
//! attempts from one address. It must answer well-formed requests afterwards, count
//! what it dropped, and log no client address. And a real TURN client
//! (`turn-client-proto`, an implementation of its own) with credentials the way an SFU
//! issues them: relayed to its SFU and back; refused towards anything else, with an
//! expired credential, a wrong HMAC, or another meeting's credential. Chromium's
//! relayed calls through it are in tests/firewall.rs.
//!
//! Loopback only: the server on 127.0.0.1, the client on 127.0.0.5, so the log can
//! be searched for the client's address.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use raum_testkit::web::free_port;

const CLIENT_IP: &str = "127.0.0.5";
const SECRET: &str = "a test secret of more than sixteen bytes";

struct Turn {
    child: Child,
    port: u16,
    metrics: u16,
    log: tempfile::NamedTempFile,
}

impl Turn {
    fn start() -> Turn {
        Turn::start_with(&[])
    }

    fn start_with(extra: &[&str]) -> Turn {
        let port = free_port();
        let metrics = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_raum"))
            .arg("turn")
            .arg(format!("--listen-udp=127.0.0.1:{port}"))
            .arg(format!("--listen-tcp=127.0.0.1:{port}"))
            .arg(format!("--metrics-listen=127.0.0.1:{metrics}"))
            .arg("--relay-ip=127.0.0.1")
            // The test's SFUs are on loopback, which the relay never reaches unless
            // told so.
            .arg("--sfu-network=127.0.0.0/8")
            .args(extra)
            .env("RAUM_TURN_SECRET", SECRET)
            // Everything a person could switch on: the privacy check reads it all.
            .env("RAUM_LOG", "trace")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log.reopen().unwrap())
            .spawn()
            .expect("raum turn starts");
        let t = Turn {
            child,
            port,
            metrics,
            log,
        };
        raum_testkit::wait::eventually_blocking(
            "raum turn to listen",
            Duration::from_secs(10),
            || t.metrics_text().is_some(),
        );
        t
    }

    fn server(&self) -> SocketAddr {
        format!("127.0.0.1:{}", self.port).parse().unwrap()
    }

    fn metrics_text(&self) -> Option<String> {
        let mut s = TcpStream::connect(("127.0.0.1", self.metrics)).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\nHost: x\r\n\r\n")
            .ok()?;
        let mut out = String::new();
        s.read_to_string(&mut out).ok()?;
        Some(out)
    }

    fn metric(&self, name: &str) -> u64 {
        let text = self.metrics_text().expect("metrics");
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or_else(|| panic!("{name} in {text}"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.log.path()).unwrap_or_default()
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// An Allocate request without credentials (the first of a TURN client), for UDP:
/// the server answers 401 with its realm and a nonce.
fn allocate(transaction: u32) -> Vec<u8> {
    let mut m = vec![0x00, 0x03, 0x00, 0x08, 0x21, 0x12, 0xa4, 0x42];
    m.extend_from_slice(&[0; 8]);
    m.extend_from_slice(&transaction.to_be_bytes());
    // REQUESTED-TRANSPORT: UDP.
    m.extend_from_slice(&[0x00, 0x19, 0x00, 0x04, 17, 0, 0, 0]);
    m
}

/// Whether `m` is an error response to an Allocate (type 0x0113).
fn is_allocate_error(m: &[u8]) -> bool {
    m.len() >= 20 && m[0] == 0x01 && m[1] == 0x13
}

/// Answers to Allocate requests that arrive on `socket` within `window`.
fn answers(socket: &UdpSocket, window: Duration) -> usize {
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let end = Instant::now() + window;
    let mut n = 0;
    let mut buf = [0u8; 2048];
    while Instant::now() < end {
        if let Ok((len, _)) = socket.recv_from(&mut buf)
            && is_allocate_error(&buf[..len])
        {
            n += 1;
        }
    }
    n
}

#[test]
fn garbage_floods_and_oversized_messages_are_dropped_counted_and_never_logged() {
    let turn = Turn::start();
    let udp = UdpSocket::bind(format!("{CLIENT_IP}:0")).unwrap();
    udp.connect(turn.server()).unwrap();

    // What is no TURN at all, or a broken one.
    let mut truncated = allocate(1);
    truncated.truncate(12);
    let mut lying = allocate(2);
    lying[3] = 0xf0; // says 240 bytes of attributes, has 8
    let mut oversized = allocate(3);
    oversized.resize(3000, 0);
    oversized[2..4].copy_from_slice(&((3000 - 20) as u16).to_be_bytes());
    for bad in [
        vec![0xff; 100],
        vec![0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 1],
        truncated,
        lying,
        oversized,
        vec![0x40, 0x00, 0x00, 0x04, 1, 2, 3, 4], // data on a channel nobody bound
        vec![],
    ] {
        udp.send(&bad).unwrap();
    }
    // Still there: a well-formed first Allocate is answered (401, realm, nonce).
    udp.send(&allocate(10)).unwrap();
    assert_eq!(
        answers(&udp, Duration::from_millis(500)),
        1,
        "{}",
        turn.log()
    );

    // A thousand Allocate requests from one address: the first few are answered.
    for t in 0..1000 {
        udp.send(&allocate(100 + t)).unwrap();
    }
    let answered = answers(&udp, Duration::from_secs(1));
    assert!((5..=30).contains(&answered), "{answered} of 1,000 answered");
    // Counted (the counters are published every second; the kernel's socket buffer
    // may have dropped some of the burst before the server read it).
    raum_testkit::wait::eventually_blocking("the flood counted", Duration::from_secs(5), || {
        turn.metric("raum_turn_flood_dropped_total") >= 100
            && turn.metric("raum_turn_malformed_total") >= 4
    });

    // Over TCP: not TURN, or a message longer than any datagram, ends the connection.
    for bad in [
        b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".to_vec(),
        vec![0x00, 0x03, 0xff, 0xfc],
    ] {
        let mut tcp = connect_from_client(turn.server());
        tcp.write_all(&bad).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
        let mut buf = [0u8; 64];
        assert!(
            matches!(tcp.read(&mut buf), Ok(0) | Err(_)),
            "the connection is closed"
        );
    }
    // A connection that does speak TURN is answered (after the flood, from another
    // connection of the same address, its bucket has refilled a little).
    std::thread::sleep(Duration::from_secs(1));
    let mut tcp = connect_from_client(turn.server());
    tcp.write_all(&allocate(5000)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut buf = [0u8; 2048];
    let n = tcp.read(&mut buf).unwrap();
    assert!(is_allocate_error(&buf[..n]), "a 401 over TCP");

    let log = turn.log();
    assert!(!log.is_empty(), "it logged something (at trace)");
    assert!(
        !log.contains(CLIENT_IP),
        "a client address in the log:\n{log}"
    );
    assert!(!log.contains(SECRET));
}

/// A TCP connection from the client's address.
fn connect_from_client(server: SocketAddr) -> TcpStream {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: SocketAddr = format!("{CLIENT_IP}:0").parse().unwrap();
    socket.bind(&from.into()).unwrap();
    socket.connect(&server.into()).unwrap();
    socket.into()
}

#[test]
fn bad_settings_are_refused_with_the_reason() {
    let run = |args: &[&str], secret: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_raum"))
            .arg("turn")
            .args(args)
            .env("RAUM_TURN_SECRET", secret)
            .output()
            .unwrap();
        assert!(!out.status.success(), "{args:?}");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let port = free_port();
    let here = [
        format!("--listen-udp=127.0.0.1:{port}"),
        format!("--listen-tcp=127.0.0.1:{port}"),
        format!("--metrics-listen=127.0.0.1:{}", free_port()),
    ];
    let here: Vec<&str> = here.iter().map(String::as_str).collect();
    assert!(run(&here, "short").contains("at least 16 bytes"));
    let anywhere = ["--listen-udp=0.0.0.0:0", "--listen-tcp=127.0.0.1:0"];
    assert!(run(&anywhere, SECRET).contains("--relay-ip is required"));
    let tls = [&here[..], &["--listen-tls=127.0.0.1:0"]].concat();
    assert!(run(&tls, SECRET).contains("--tls-cert"));
    let missing = [
        &here[..],
        &[
            "--listen-tls=127.0.0.1:0",
            "--tls-cert=/nonexistent/cert.pem",
            "--tls-key=/nonexistent/key.pem",
        ],
    ]
    .concat();
    let e = run(&missing, SECRET);
    assert!(e.contains("/nonexistent/cert.pem"), "{e}");
    let network = [&here[..], &["--sfu-network=10.0.0.0/33"]].concat();
    let e = run(&network, SECRET);
    assert!(e.contains("--sfu-network"), "{e}");
    let mixed = [
        &here[..],
        &["--relay-ip=127.0.0.1", "--public-ip=2001:db8::1"],
    ]
    .concat();
    let e = run(&mixed, SECRET);
    assert!(e.contains("must both be IPv4 or both IPv6"), "{e}");
    let ports = [&here[..], &["--sfu-ports=32767-30000"]].concat();
    let e = run(&ports, SECRET);
    assert!(e.contains("not a port range"), "{e}");
    let alone = [&here[..], &["--public-ip=203.0.113.7"]].concat();
    let e = run(&alone, SECRET);
    assert!(e.contains("--relay-ip"), "{e}");
}

mod client {
    //! A blocking driver of `turn-client-proto`'s UDP client.
    use std::net::{IpAddr, SocketAddr, UdpSocket};
    use std::time::{Duration, Instant as StdInstant};

    use turn_client_proto::api::{TurnConfig, TurnEvent, TurnRecvRet};
    use turn_client_proto::prelude::*;
    use turn_client_proto::types::stun::TransportType;
    use turn_client_proto::types::{Instant, TurnCredentials};
    use turn_client_proto::udp::TurnClientUdp;

    pub struct Client {
        socket: UdpSocket,
        turn: TurnClientUdp,
        epoch: StdInstant,
        pub events: Vec<TurnEvent>,
        pub received: Vec<(SocketAddr, Vec<u8>)>,
    }

    impl Client {
        /// A client that names its user as browsers do (USERNAME), or, with
        /// `userhash`, by RFC 8489's USERHASH when the server offers it.
        pub fn allocate(
            from: &str,
            server: SocketAddr,
            username: &str,
            password: &str,
            userhash: bool,
        ) -> Client {
            let socket = UdpSocket::bind(from).unwrap();
            socket
                .set_read_timeout(Some(Duration::from_millis(20)))
                .unwrap();
            let mut config = TurnConfig::new(TurnCredentials::new(username, password));
            if !userhash {
                config.set_anonymous_username(turn_client_proto::stun::auth::Feature::Disabled);
            }
            let turn = TurnClientUdp::allocate(socket.local_addr().unwrap(), server, config);
            Client {
                socket,
                turn,
                epoch: StdInstant::now(),
                events: Vec::new(),
                received: Vec::new(),
            }
        }

        fn now(&self) -> Instant {
            Instant::from_nanos(self.epoch.elapsed().as_nanos() as i64)
        }

        /// Runs the client until `done` holds for its events, or `limit` passes.
        pub fn run_until(&mut self, limit: Duration, done: impl Fn(&[TurnEvent]) -> bool) -> bool {
            let end = StdInstant::now() + limit;
            let mut buf = [0u8; 2048];
            while StdInstant::now() < end {
                let now = self.now();
                let _ = self.turn.poll(now);
                while let Some(t) = self.turn.poll_transmit(now) {
                    let _ = self.socket.send_to(t.data.as_ref(), t.to);
                }
                while let Some(e) = self.turn.poll_event() {
                    self.events.push(e);
                }
                if done(&self.events) {
                    return true;
                }
                if let Ok((n, from)) = self.socket.recv_from(&mut buf) {
                    let local = self.socket.local_addr().unwrap();
                    let t = turn_client_proto::stun::agent::Transmit::new(
                        &buf[..n],
                        TransportType::Udp,
                        from,
                        local,
                    );
                    if let TurnRecvRet::PeerData(d) = self.turn.recv(t, self.now()) {
                        self.received.push((d.peer, d.data().to_vec()));
                    }
                    while let Some(d) = self.turn.poll_recv(self.now()) {
                        self.received.push((d.peer, d.data().to_vec()));
                    }
                }
            }
            false
        }

        pub fn allocated(&mut self) -> bool {
            self.run_until(Duration::from_secs(3), |e| {
                e.iter().any(|e| {
                    matches!(
                        e,
                        TurnEvent::AllocationCreated(..) | TurnEvent::AllocationCreateFailed(_)
                    )
                })
            });
            self.events
                .iter()
                .any(|e| matches!(e, TurnEvent::AllocationCreated(..)))
        }

        /// Asks for a permission to `ip`; whether the server granted it.
        pub fn permission(&mut self, ip: IpAddr) -> bool {
            let now = self.now();
            self.turn
                .create_permission(TransportType::Udp, ip, now)
                .unwrap();
            self.run_until(Duration::from_secs(3), |e| {
                e.iter().any(|e| {
                    matches!(e, TurnEvent::PermissionCreated(_, a) | TurnEvent::PermissionCreateFailed(_, a) if *a == ip)
                })
            });
            self.events
                .iter()
                .any(|e| matches!(e, TurnEvent::PermissionCreated(_, a) if *a == ip))
        }

        /// Asks for a channel to `peer`; whether the server bound it.
        pub fn channel(&mut self, peer: SocketAddr) -> bool {
            let now = self.now();
            self.turn
                .bind_channel(TransportType::Udp, peer, now)
                .unwrap();
            self.run_until(Duration::from_secs(3), |e| {
                e.iter().any(|e| {
                    matches!(e, TurnEvent::ChannelCreated(_, a) | TurnEvent::ChannelCreateFailed(_, a) if *a == peer)
                })
            });
            self.events
                .iter()
                .any(|e| matches!(e, TurnEvent::ChannelCreated(_, a) if *a == peer))
        }

        /// Sends `data` to `peer` through the relay.
        pub fn send(&mut self, peer: SocketAddr, data: &[u8]) {
            let now = self.now();
            if let Ok(Some(t)) = self.turn.send_to(TransportType::Udp, peer, data, now) {
                let t = t.build();
                let _ = self.socket.send_to(&t.data, t.to);
            }
        }

        /// The relayed address (where the SFU sees the client come from).
        pub fn relayed(&self) -> Option<SocketAddr> {
            self.turn.relayed_addresses().next().map(|(_, a)| a)
        }
    }
}

/// A credential as an SFU at `sfu` issues it, `valid_for` seconds from now (negative:
/// expired that long ago).
fn credential(sfu: SocketAddr, valid_for: i64) -> (String, String) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let c = raum::turn_credentials::TurnSecret::from_bytes(SECRET.as_bytes()).issue(
        "pupil7",
        sfu,
        (now + valid_for) as u64,
    );
    (c.username, c.password)
}

#[test]
fn a_real_turn_client_reaches_its_sfu_and_nothing_else() {
    let turn = Turn::start();
    let sfu = UdpSocket::bind("127.0.0.1:0").unwrap();
    let sfu_addr = sfu.local_addr().unwrap();
    sfu.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let from = format!("{CLIENT_IP}:0");

    let (user, pass) = credential(sfu_addr, 600);
    let mut c = client::Client::allocate(&from, turn.server(), &user, &pass, false);
    assert!(c.allocated(), "allocated: {:?}\n{}", c.events, turn.log());
    // To its SFU and back.
    assert!(c.permission(sfu_addr.ip()));
    c.send(sfu_addr, b"a binding request, say");
    let mut buf = [0u8; 64];
    let (n, relayed) = sfu.recv_from(&mut buf).expect("the SFU receives");
    assert_eq!(&buf[..n], b"a binding request, say");
    assert_eq!(Some(relayed), c.relayed(), "from the relayed address");
    sfu.send_to(b"and its answer", relayed).unwrap();
    c.run_until(Duration::from_secs(3), |_| false);
    assert!(
        c.received
            .iter()
            .any(|(p, d)| *p == sfu_addr && d == b"and its answer"),
        "the answer comes back: {:?}",
        c.received.len()
    );
    // Nothing else: other loopback addresses, link-local metadata, a cluster service.
    for elsewhere in ["127.0.0.2", "169.254.169.254", "10.96.0.1"] {
        assert!(!c.permission(elsewhere.parse().unwrap()), "{elsewhere}");
    }
    // A channel to its SFU's address but another port.
    let other_port = SocketAddr::new(sfu_addr.ip(), sfu_addr.port().wrapping_add(1).max(1));
    assert!(!c.channel(other_port));
    assert!(c.channel(sfu_addr), "the SFU's own port");

    // An expired credential, a wrong HMAC: no allocation.
    let (user, pass) = credential(sfu_addr, -10);
    let mut expired = client::Client::allocate(&from, turn.server(), &user, &pass, false);
    assert!(!expired.allocated());
    let (user, _) = credential(sfu_addr, 600);
    let mut forged = client::Client::allocate(&from, turn.server(), &user, "not the HMAC", false);
    assert!(!forged.allocated());
    // Made-up credentials that do not prove their password are not remembered: the
    // engines know only the users that did (this test's client, so far).
    let known = turn.metric("raum_turn_engine_users");
    // From an address of their own, within its Allocate burst (two requests each).
    let made_up_from = "127.0.0.6:0";
    for n in 0..8 {
        let c = raum::turn_credentials::TurnSecret::from_bytes(SECRET.as_bytes()).issue(
            &format!("made-up-{n}"),
            sfu_addr,
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_secs()
                + 600,
        );
        let mut c =
            client::Client::allocate(made_up_from, turn.server(), &c.username, "wrong", false);
        assert!(!c.allocated());
    }
    assert_eq!(turn.metric("raum_turn_engine_users"), known);
    assert!(known >= 1, "the client that proved its password is known");
    // A client that hides its username behind USERHASH: refused (its expiry and SFU
    // could not be read).
    let (user, pass) = credential(sfu_addr, 600);
    let mut hashed = client::Client::allocate(&from, turn.server(), &user, &pass, true);
    assert!(!hashed.allocated());
    // Another meeting's credential (for the SFU at 127.0.0.3) allocates, but cannot
    // reach this meeting's SFU.
    let (user, pass) = credential("127.0.0.3:40000".parse().unwrap(), 600);
    let mut other = client::Client::allocate(&from, turn.server(), &user, &pass, false);
    assert!(other.allocated());
    assert!(!other.permission(sfu_addr.ip()));
    // Even signed with the secret, a credential naming the metadata address or
    // another loopback network's address allocates nothing.
    for never in ["169.254.169.254:80", "[::1]:50000"] {
        let (user, pass) = credential(never.parse().unwrap(), 600);
        let mut c = client::Client::allocate(&from, turn.server(), &user, &pass, false);
        assert!(!c.allocated(), "{never}");
    }

    // What an SFU on Kubernetes holds: its meeting's key, derived from the secret by
    // the operator. Its credentials reach its SFU; the key signing for another
    // meeting's id does not.
    let server = raum::turn_credentials::TurnSecret::from_bytes(SECRET.as_bytes());
    let uid = "5d0c1f7e-1b2a-4c3d-9e8f-0a1b2c3d4e5f";
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let meeting =
        raum::turn_credentials::TurnSecret::for_meeting(server.meeting_key(uid).as_bytes(), uid);
    let mc = meeting.issue("pupil7", sfu_addr, expires);
    let mut keyed =
        client::Client::allocate(&from, turn.server(), &mc.username, &mc.password, false);
    assert!(keyed.allocated(), "a meeting key's credential allocates");
    assert!(keyed.permission(sfu_addr.ip()));
    let stolen = raum::turn_credentials::TurnSecret::for_meeting(
        server.meeting_key(uid).as_bytes(),
        "another-meeting",
    )
    .issue("pupil7", sfu_addr, expires);
    let mut stolen = client::Client::allocate(
        &from,
        turn.server(),
        &stolen.username,
        &stolen.password,
        false,
    );
    assert!(!stolen.allocated(), "one meeting's key signs for no other");

    let log = turn.log();
    for ip in [CLIENT_IP, "127.0.0.6"] {
        assert!(!log.contains(ip), "a client address in the log:\n{log}");
    }
    assert!(!log.contains("pupil7"), "a username in the log:\n{log}");
    assert!(!log.contains("made-up"), "a username in the log:\n{log}");
    assert!(turn.metric("raum_turn_refused_total") >= 6);
}

/// Allocates over TCP (turn-client-proto's TCP client); the allocation's connection
/// is the returned stream. `None` when the server refused.
fn tcp_allocate(server: SocketAddr, username: &str, password: &str) -> Option<TcpStream> {
    use turn_client_proto::api::{TurnConfig, TurnEvent};
    use turn_client_proto::prelude::*;
    use turn_client_proto::tcp::TurnClientTcp;
    use turn_client_proto::types::stun::TransportType;
    use turn_client_proto::types::{Instant as TurnInstant, TurnCredentials};

    let mut stream = TcpStream::connect(server).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let local = stream.local_addr().unwrap();
    let mut config = TurnConfig::new(TurnCredentials::new(username, password));
    config.set_anonymous_username(turn_client_proto::stun::auth::Feature::Disabled);
    let mut turn = TurnClientTcp::allocate(local, server, config);
    let epoch = Instant::now();
    let mut buf = [0u8; 2048];
    while epoch.elapsed() < Duration::from_secs(3) {
        let now = TurnInstant::from_nanos(epoch.elapsed().as_nanos() as i64);
        let _ = turn.poll(now);
        while let Some(t) = turn.poll_transmit(now) {
            stream.write_all(t.data.as_ref()).unwrap();
        }
        while let Some(e) = turn.poll_event() {
            match e {
                TurnEvent::AllocationCreated(..) => return Some(stream),
                TurnEvent::AllocationCreateFailed(_) => return None,
                _ => {}
            }
        }
        match stream.read(&mut buf) {
            Ok(0) => return None,
            Ok(n) => {
                let t = turn_client_proto::stun::agent::Transmit::new(
                    &buf[..n],
                    TransportType::Tcp,
                    server,
                    local,
                );
                let _ = turn.recv(t, now);
            }
            Err(_) => {}
        }
    }
    None
}

#[test]
fn a_tcp_allocation_ends_with_its_connection() {
    let turn = Turn::start();
    let (user, pass) = credential("127.0.0.1:40000".parse().unwrap(), 600);
    let held: Vec<TcpStream> = (0..6)
        .map(|n| {
            tcp_allocate(turn.server(), &user, &pass)
                .unwrap_or_else(|| panic!("allocation {n}: {}", turn.log()))
        })
        .collect();
    assert!(
        tcp_allocate(turn.server(), &user, &pass).is_none(),
        "a seventh is over the credential's quota"
    );
    // A browser that lost its connections (a network change, an ICE restart) can
    // allocate again at once, not only when the old allocations would have expired.
    drop(held);
    std::thread::sleep(Duration::from_millis(500));
    let again = (0..3).find_map(|_| {
        let s = tcp_allocate(turn.server(), &user, &pass);
        if s.is_none() {
            std::thread::sleep(Duration::from_millis(500));
        }
        s
    });
    assert!(again.is_some(), "the quota is free again: {}", turn.log());
}

/// Behind a 1:1 NAT (a cloud VM's public address, here 127.0.0.9, mapped to
/// 127.0.0.1): clients are told the public relayed address, and an SFU on the same
/// host advertising the public address is reached at the local one, both ways.
#[test]
fn behind_a_one_to_one_nat_the_relay_reaches_the_sfu_at_its_local_address() {
    let turn = Turn::start_with(&["--public-ip=127.0.0.9"]);
    let sfu = UdpSocket::bind("127.0.0.1:0").unwrap();
    sfu.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let public: SocketAddr = format!("127.0.0.9:{}", sfu.local_addr().unwrap().port())
        .parse()
        .unwrap();
    let (user, pass) = credential(public, 600);
    let mut c = client::Client::allocate(
        &format!("{CLIENT_IP}:0"),
        turn.server(),
        &user,
        &pass,
        false,
    );
    assert!(c.allocated(), "{}", turn.log());
    let relayed = c.relayed().unwrap();
    assert_eq!(
        relayed.ip().to_string(),
        "127.0.0.9",
        "the public relayed address"
    );
    assert!(c.permission(public.ip()));
    c.send(public, b"towards the public address");
    let mut buf = [0u8; 64];
    let (n, from) = sfu
        .recv_from(&mut buf)
        .expect("the SFU receives at its local address");
    assert_eq!(&buf[..n], b"towards the public address");
    assert_eq!(from.port(), relayed.port());
    sfu.send_to(b"back", from).unwrap();
    c.run_until(Duration::from_secs(3), |_| false);
    assert!(
        c.received.iter().any(|(p, d)| *p == public && d == b"back"),
        "the answer comes back as from the public address"
    );
}
