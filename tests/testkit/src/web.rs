//! Talking to a running gateway as a browser would, without a browser: plain HTTP/1.1
//! GETs, a signaling WebSocket, the access log's lines, and `raum standalone` as a
//! process with its own directories.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use futures::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;

/// A response: status, headers (lower-case names), body.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }
}

/// `GET http://<addr><path>` with extra headers.
pub fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Response {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap();
    let mut lines = head.lines();
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: body.to_owned(),
    }
}

/// A signaling connection through the gateway at `addr` for `token`.
pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens `/j/<token>/ws` with the given Origin and User-Agent.
pub async fn connect(addr: &str, token: &str, origin: &str, ua: &str) -> Socket {
    let mut req = format!("ws://{addr}/j/{token}/ws")
        .into_client_request()
        .unwrap();
    req.headers_mut().insert("origin", origin.parse().unwrap());
    req.headers_mut().insert("user-agent", ua.parse().unwrap());
    tokio_tungstenite::connect_async(req).await.unwrap().0
}

/// Sends `join` and returns the first answer (welcome or error) as JSON.
pub async fn join(ws: &mut Socket, name: &str, token: &str) -> serde_json::Value {
    let msg = serde_json::json!({"type": "join", "name": name, "token": token});
    ws.send(Message::text(msg.to_string())).await.unwrap();
    next(ws).await
}

/// The next text message as JSON.
pub async fn next(ws: &mut Socket) -> serde_json::Value {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a message within 10 s")
        {
            Some(Ok(Message::Text(t))) => return serde_json::from_str(&t).unwrap(),
            Some(Ok(_)) => continue,
            other => panic!("the socket ended: {other:?}"),
        }
    }
}

/// Waits for the server to end the socket with a closing handshake: not an abnormal
/// drop (which a browser reports as 1006), and no further text message first.
pub async fn closed(ws: &mut Socket) {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("the close within 10 s")
        {
            Some(Ok(Message::Close(_))) | None => return,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("expected a close, got {other:?}"),
        }
    }
}

/// Every access-log line in `dir` (all files), parsed.
pub fn access_log(dir: &Path) -> Vec<serde_json::Map<String, serde_json::Value>> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut names: Vec<PathBuf> = entries.map(|e| e.unwrap().path()).collect();
    names.sort();
    for p in names {
        if !p
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("access-")
        {
            continue;
        }
        for line in std::fs::read_to_string(&p).unwrap().lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            out.push(v.as_object().unwrap().clone());
        }
    }
    out
}

/// A free TCP port on loopback (bound and released: a small race, fine in tests).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A fixed URL key, so tests can compute tokens.
pub const KEY: &[u8; 32] = b"raum-tests-url-key-0123456789abc";

/// `raum standalone` with its own meetings, access-log and key; killed when dropped.
pub struct Standalone {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub addr: String,
    pub stderr: PathBuf,
}

impl Standalone {
    pub fn meetings(&self) -> PathBuf {
        self.dir.path().join("meetings")
    }

    pub fn logs(&self) -> PathBuf {
        self.dir.path().join("access-log")
    }

    pub fn origin(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Starts it with `meetings` (file name, YAML) already in place.
    pub fn start(meetings: &[(&str, &str)], extra: &[&str]) -> Standalone {
        Self::start_binary(&crate::process::raum_bin(), meetings, extra)
    }

    /// The same with the raum binary `bin` (the release build, say).
    pub fn start_binary(bin: &Path, meetings: &[(&str, &str)], extra: &[&str]) -> Standalone {
        let addr = format!("127.0.0.1:{}", free_port());
        let s = Self::launch(Command::new(bin), addr, meetings, extra);
        crate::wait::eventually_blocking("standalone to listen", Duration::from_secs(10), || {
            TcpStream::connect(&s.addr).is_ok()
        });
        s
    }

    /// The same in network namespace `ns`, listening on `addr` there (and advertising
    /// its IP for media).
    pub fn start_in_netns(
        ns: &str,
        addr: std::net::SocketAddr,
        meetings: &[(&str, &str)],
        extra: &[&str],
    ) -> Standalone {
        let mut extra = extra.to_vec();
        let advertise = format!("--advertise-ip={}", addr.ip());
        extra.push(&advertise);
        let s = Self::launch(
            crate::netns::Pair::exec(ns, crate::process::raum_bin()),
            addr.to_string(),
            meetings,
            &extra,
        );
        crate::wait::eventually_blocking("standalone to listen", Duration::from_secs(10), || {
            crate::netns::Pair::exec(ns, "curl")
                .args(["-s", "-o", "/dev/null"])
                .arg(s.origin())
                .status()
                .is_ok_and(|st| st.success())
        });
        s
    }

    fn launch(
        mut cmd: Command,
        addr: String,
        meetings: &[(&str, &str)],
        extra: &[&str],
    ) -> Standalone {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("meetings")).unwrap();
        std::fs::write(dir.path().join("url-key"), base64_encode(KEY) + "\n").unwrap();
        for (name, yaml) in meetings {
            std::fs::write(dir.path().join("meetings").join(name), yaml).unwrap();
        }
        let stderr = dir.path().join("stderr.log");
        let child = cmd
            .arg("standalone")
            .arg(format!("--listen={addr}"))
            .arg(format!(
                "--meetings-dir={}",
                dir.path().join("meetings").display()
            ))
            .arg(format!(
                "--key-file={}",
                dir.path().join("url-key").display()
            ))
            .args(
                (!extra.iter().any(|a| a.starts_with("--access-log-dir"))).then(|| {
                    format!(
                        "--access-log-dir={}",
                        dir.path().join("access-log").display()
                    )
                }),
            )
            .arg("--rescan-interval=200ms")
            .arg("--flush-interval=100ms")
            .args(extra)
            // Everything a person could switch on: privacy checks read the whole log.
            .env("RAUM_LOG", "trace")
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(dir.path().join("stdout.log")).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap())
            .spawn()
            .unwrap();
        Standalone {
            child,
            dir,
            addr,
            stderr,
        }
    }

    /// The join token of a meeting file named `name` (metadata.name).
    pub fn token(name: &str) -> String {
        raum::token::TokenKey::from_bytes(KEY.to_vec()).token(&format!("standalone:{name}"))
    }

    /// The host link's token of a meeting file named `name`.
    pub fn host_token(name: &str) -> String {
        raum::token::TokenKey::from_bytes(KEY.to_vec()).host_token(&format!("standalone:{name}"))
    }

    /// What it printed on standard output so far (the links of meetings it read).
    pub fn output(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("stdout.log")).unwrap_or_default()
    }

    /// The process log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// Stops it with SIGTERM and waits.
    pub fn stop(&mut self) {
        unsafe_kill(self.child.id(), "TERM");
        let _ = self.child.wait();
    }
}

impl Drop for Standalone {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, signal: &str) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status();
}

fn base64_encode(bytes: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A Meeting file's YAML.
pub fn meeting_yaml(name: &str, spec: &str) -> String {
    format!(
        "apiVersion: raum.dev/v1alpha1\nkind: Meeting\nmetadata:\n  name: {name}\nspec:\n{spec}"
    )
}

/// Reads stdout lines of a child as they come (for processes that print a URL).
pub fn lines_of(child: &mut Child) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            if tx.send(line.unwrap_or_default()).is_err() {
                break;
            }
        }
    });
    rx
}
