//! `raum turn` as a process, against what a hostile or broken client sends: garbage,
//! truncated and oversized messages over UDP and TCP, and a flood of allocation
//! attempts from one address. It must answer well-formed requests afterwards, count
//! what it dropped, and log no client address. (Credentials, permissions and quotas
//! are decided by `relay::policy`, tested in the library; Chromium's relayed calls
//! through it are in tests/firewall.rs.)
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
        let port = free_port();
        let metrics = free_port();
        let log = tempfile::NamedTempFile::new().unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_raum"))
            .arg("turn")
            .arg(format!("--listen-udp=127.0.0.1:{port}"))
            .arg(format!("--listen-tcp=127.0.0.1:{port}"))
            .arg(format!("--metrics-listen=127.0.0.1:{metrics}"))
            .arg("--relay-ip=127.0.0.1")
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
}
