//! `raum standalone`: the gateway and the meetings' SFU rooms in one process, without
//! Kubernetes. Meetings are YAML files in a directory (the Meeting CRD's schema), read
//! again every `--rescan-interval`; each running meeting gets an in-process room with
//! its own UDP port; the access log goes to a local directory and is pruned daily by
//! the same code as the CronJob, under the directory's RetentionPolicy (or the
//! built-in eight weeks).

pub mod files;
pub mod rooms;

use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use jiff::{SignedDuration, Timestamp};
use tracing::{info, warn};

use crate::access_log::prune::{self, Policy, PolicyError, PolicySource};
use crate::gateway::{self, Directory, WebArgs};
use crate::public_url::PublicUrl;
use crate::schedule::Timing;
use crate::token::TokenKey;

/// Flags of `raum standalone`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Where meetings (Meeting YAML files) and an optional RetentionPolicy YAML live;
    /// files added, changed or removed while running are picked up.
    #[arg(
        long,
        default_value = "raum-data/meetings",
        value_name = "DIR",
        global = true
    )]
    pub meetings_dir: PathBuf,

    /// The file holding the key join tokens are derived from (created if missing).
    #[arg(
        long,
        default_value = "raum-data/url-key",
        value_name = "FILE",
        global = true
    )]
    pub key_file: PathBuf,

    /// Where the gateway listens.
    #[arg(
        long,
        default_value = "127.0.0.1:8080",
        value_name = "ADDR",
        global = true
    )]
    pub listen: std::net::SocketAddr,

    /// The public base URL of join links. Default: `http://<listen address>`.
    #[arg(long, value_name = "URL", global = true)]
    pub public_url: Option<PublicUrl>,

    /// The address browsers send media to (the meeting rooms' UDP ports). Default:
    /// the listen address when it is a specific one.
    #[arg(long, value_name = "IP", global = true)]
    pub advertise_ip: Option<IpAddr>,

    /// The UDP ports meetings take their media port from (the first free one each;
    /// ICE-TCP on the same number): open these in a firewall.
    #[arg(long, default_value = "40000-40099", value_name = "FIRST-LAST", value_parser = parse_port_range)]
    pub media_ports: std::ops::RangeInclusive<u16>,

    /// How often the meetings directory is read again.
    #[arg(long, default_value = "1s", value_parser = humantime::parse_duration)]
    pub rescan_interval: Duration,

    /// How long a meeting with neither endsAt nor duration lasts.
    #[arg(long, default_value = "8h", value_parser = humantime::parse_duration)]
    pub default_length: Duration,

    /// Run a TURN server on this port (UDP and TCP) at the advertised address, for
    /// participants whose network blocks UDP or other ports; each participant gets a
    /// credential of its own. Off unless given.
    #[arg(long, value_name = "PORT")]
    pub turn_port: Option<u16>,

    /// TURN over TLS on this port (443 for networks that allow nothing else), with
    /// --turn-tls-cert and --turn-tls-key.
    #[arg(long, value_name = "PORT", requires_all = ["turn_tls_cert", "turn_tls_key"])]
    pub turn_tls_port: Option<u16>,

    /// The TLS certificate chain (PEM) for --turn-tls-port.
    #[arg(long, value_name = "FILE", requires = "turn_tls_port")]
    pub turn_tls_cert: Option<PathBuf>,

    /// The TLS private key (PEM) for --turn-tls-port.
    #[arg(long, value_name = "FILE", requires = "turn_tls_port")]
    pub turn_tls_key: Option<PathBuf>,

    /// The host name browsers reach TURN over TLS at (the certificate's name).
    /// Default: the advertised address.
    #[arg(long, value_name = "HOST", requires = "turn_tls_port")]
    pub turn_tls_host: Option<String>,

    /// Create (or renew) a meeting called "demo" and print its URL.
    #[arg(long)]
    pub demo: bool,

    /// The web front end. The access log goes to raum-data/access-log unless given.
    #[command(flatten)]
    pub web: WebArgs,

    /// Instead of running: something else to do with the same files.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// What `raum standalone` can do besides running.
#[derive(Debug, clap::Subcommand)]
pub enum Command {
    /// Print each meeting file's join URL and host link (from --meetings-dir,
    /// --key-file and --public-url, as the running server has them) and exit.
    Urls,
}

/// The eight weeks the design promises when no RetentionPolicy file says otherwise.
pub const DEFAULT_MAX_AGE: &str = "56d";
/// How often the access log is pruned.
const PRUNE_EVERY: Duration = Duration::from_secs(24 * 3600);
/// How long participants get to hear that the meeting ended before the server stops.
const GOODBYE: Duration = Duration::from_millis(300);
/// The demo meeting's file name.
const DEMO_FILE: &str = "demo.yaml";

/// Why standalone mode cannot run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The front end cannot start.
    #[error(transparent)]
    Gateway(#[from] gateway::Error),
    /// A directory or file cannot be used.
    #[error("{what} {path}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// To which path.
        path: PathBuf,
        /// Why it failed.
        source: std::io::Error,
    },
    /// The key file exists but does not hold a key.
    #[error(
        "{0}: not a raum URL key (base64 of 32 bytes); move it away to create a new one, which changes every URL"
    )]
    BadKey(PathBuf),
    /// The TURN relay cannot start.
    #[error(transparent)]
    Relay(#[from] crate::relay::Error),
    /// A TURN host name is not one.
    #[error("--turn-tls-host {0:?} is not a host name")]
    BadTurnHost(String),
    /// No local address reaches the advertised one (for the relay's sockets).
    #[error("the TURN relay finds no local address towards --advertise-ip {ip}: {source}")]
    RelayAddress {
        /// The advertised address.
        ip: IpAddr,
        /// Why.
        source: std::io::Error,
    },
    /// There is no key file yet, so no URL either.
    #[error(
        "{0}: no URL key yet: start `raum standalone` once (it creates the key, and with it every meeting's URL)"
    )]
    NoKey(PathBuf),
    /// No address to advertise for media.
    #[error(
        "--advertise-ip is required when listening on {0} (the address browsers send media to)"
    )]
    NoAdvertiseIp(IpAddr),
}

fn io(what: &'static str, path: &Path) -> impl FnOnce(std::io::Error) -> Error {
    let path = path.to_owned();
    move |source| Error::Io { what, path, source }
}

/// Reads the URL key from `path`, creating it (readable by the owner only) if absent.
/// A file that exists but holds no key is never overwritten.
pub fn load_key(path: &Path) -> Result<TokenKey, Error> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = STANDARD
                .decode(text.trim())
                .map_err(|_| Error::BadKey(path.to_owned()))?;
            if bytes.len() != 32 {
                return Err(Error::BadKey(path.to_owned()));
            }
            Ok(TokenKey::from_bytes(bytes))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                std::fs::create_dir_all(parent).map_err(io("cannot create", parent))?;
            }
            let mut bytes = vec![0u8; 32];
            getrandom::fill(&mut bytes).map_err(|e| Error::Io {
                what: "no randomness for",
                path: path.to_owned(),
                source: std::io::Error::other(e.to_string()),
            })?;
            let mut options = std::fs::OpenOptions::new();
            options.write(true).create_new(true);
            #[cfg(unix)]
            std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
            let mut f = options.open(path).map_err(io("cannot create", path))?;
            f.write_all(format!("{}\n", STANDARD.encode(&bytes)).as_bytes())
                .and_then(|()| f.sync_all())
                .map_err(io("cannot write", path))?;
            Ok(TokenKey::from_bytes(bytes))
        }
        Err(e) => Err(io("cannot read", path)(e)),
    }
}

/// The token of a standalone meeting: from its `metadata.uid` if the file sets one,
/// else from its name, so a file keeps its URL across restarts.
pub fn token_for(key: &TokenKey, meeting: &crate::api::Meeting) -> String {
    key.token(&meeting_id(meeting))
}

/// The host link's token of a meeting file: derived like [`token_for`], so just as
/// stable across restarts.
pub fn host_token_for(key: &TokenKey, meeting: &crate::api::Meeting) -> String {
    key.host_token(&meeting_id(meeting))
}

/// What a meeting file's tokens are derived from: its `metadata.uid`, else its name.
fn meeting_id(meeting: &crate::api::Meeting) -> String {
    match meeting.metadata.uid.as_deref() {
        Some(uid) if !uid.is_empty() => uid.to_owned(),
        _ => format!(
            "standalone:{}",
            meeting.metadata.name.as_deref().unwrap_or_default()
        ),
    }
}

/// The retention policy of the meetings directory: its RetentionPolicy file, read again
/// before every destructive step, or the built-in eight weeks without holds.
struct DirPolicy(PathBuf);

impl PolicySource for DirPolicy {
    fn load(&mut self) -> Result<Policy, PolicyError> {
        let files = files::list(&self.0).map_err(|source| PolicyError::Read {
            path: self.0.clone(),
            source,
        })?;
        let scan = files::scan(&files);
        if let Some((path, problem)) = scan.policy_problems.iter().next() {
            // A policy file that cannot be read might hold a hold: prune nothing.
            return Err(PolicyError::NotAPolicy {
                path: path.clone(),
                reason: problem.clone(),
            });
        }
        match scan.policy {
            Some((path, rp)) => prune::policy_of(&rp, &path.display().to_string()),
            None => Ok(Policy {
                max_age: DEFAULT_MAX_AGE.parse().expect("a valid maxAge"),
                holds: Default::default(),
            }),
        }
    }
}

fn write_demo(dir: &Path) -> Result<(), Error> {
    let path = dir.join(DEMO_FILE);
    // Written afresh each time: a meeting without startsAt starts when its file was
    // written, so the demo always has its full length ahead.
    let text = "apiVersion: raum.dev/v1alpha1\nkind: Meeting\nmetadata:\n  name: demo\nspec:\n  title: raum demo\n  maxParticipants: 10\n";
    let tmp = dir.join(".demo.yaml.tmp");
    std::fs::write(&tmp, text).map_err(io("cannot write", &tmp))?;
    std::fs::rename(&tmp, &path).map_err(io("cannot write", &path))
}

/// Where the relay's sockets go: on the advertised address when it is this host's;
/// behind a 1:1 NAT (a cloud VM advertising its public IP), on the local address this
/// host reaches it from, told to clients as the advertised one.
fn relay_address(advertise_ip: IpAddr) -> std::io::Result<crate::relay::RelayAddress> {
    if std::net::UdpSocket::bind((advertise_ip, 0)).is_ok() {
        return Ok(crate::relay::RelayAddress::at(advertise_ip));
    }
    let any = match advertise_ip {
        IpAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
        IpAddr::V6(_) => IpAddr::from([0u16; 8]),
    };
    // A route lookup: connecting a UDP socket sends nothing.
    let probe = std::net::UdpSocket::bind((any, 0))?;
    probe.connect((advertise_ip, 9))?;
    Ok(crate::relay::RelayAddress {
        local: probe.local_addr()?.ip(),
        public: advertise_ip,
    })
}

/// Starts the TURN relay if asked for: a secret of this process's own (the rooms in
/// it issue the credentials), listeners on the rooms' bind address, relayed sockets
/// on the advertised one (where the rooms are reached).
async fn start_turn(
    args: &Args,
    advertise_ip: IpAddr,
    stop: Arc<tokio::sync::Notify>,
) -> Result<Option<crate::rooms::TurnOffer>, Error> {
    if args.turn_port.is_none() && args.turn_tls_port.is_none() {
        return Ok(None);
    }
    let bind = rooms::bind_ip(advertise_ip);
    let tls = match (args.turn_tls_port, &args.turn_tls_cert, &args.turn_tls_key) {
        (Some(port), Some(cert), Some(key)) => Some((
            std::net::SocketAddr::new(bind, port),
            crate::relay::tls_config(cert, key)?,
        )),
        _ => None,
    };
    let plain = args.turn_port.map(|p| std::net::SocketAddr::new(bind, p));
    let listeners = crate::relay::bind(plain, plain, tls).await?;
    let host = match advertise_ip {
        IpAddr::V6(v6) => format!("[{v6}]"),
        IpAddr::V4(v4) => v4.to_string(),
    };
    let mut urls = Vec::new();
    if let Some(p) = args.turn_port {
        urls.push(format!("turn:{host}:{p}?transport=udp"));
        urls.push(format!("turn:{host}:{p}?transport=tcp"));
    }
    if let Some(p) = args.turn_tls_port {
        let name = args.turn_tls_host.clone().unwrap_or_else(|| host.clone());
        let url = format!("turns:{name}:{p}?transport=tcp");
        if !crate::rooms::valid_turn_url(&url) {
            return Err(Error::BadTurnHost(name));
        }
        urls.push(url);
    }
    let secret = crate::media::random_bytes::<32>();
    let secret = crate::turn_credentials::TurnSecret::from_bytes(&secret);
    // The rooms are all at the advertised address: the relay reaches nothing else.
    let limits = crate::relay::policy::Limits {
        sfu_networks: vec![ipnet::IpNet::from(advertise_ip)],
        ..Default::default()
    };
    let policy = crate::relay::policy::Policy::new(secret.clone(), limits);
    let relay_ip = relay_address(advertise_ip).map_err(|source| Error::RelayAddress {
        ip: advertise_ip,
        source,
    })?;
    let (_counters, _task) =
        crate::relay::start(listeners, relay_ip, policy, "raum".to_owned(), stop);
    info!(port = ?args.turn_port, tls_port = ?args.turn_tls_port, "TURN relay listening");
    Ok(Some(crate::rooms::TurnOffer {
        secret,
        urls,
        lifetime: crate::rooms::TURN_CREDENTIAL_LIFETIME,
    }))
}

/// `FIRST-LAST`, both ports (1 to 65535), FIRST not above LAST.
fn parse_port_range(s: &str) -> Result<std::ops::RangeInclusive<u16>, String> {
    let (a, b) = s
        .split_once('-')
        .ok_or_else(|| format!("{s:?} is not FIRST-LAST (for example 40000-40099)"))?;
    let port = |p: &str| {
        p.trim()
            .parse::<u16>()
            .ok()
            .filter(|p| *p > 0)
            .ok_or_else(|| format!("{p:?} is not a port (1 to 65535)"))
    };
    let (a, b) = (port(a)?, port(b)?);
    if a > b {
        return Err(format!("{a} is above {b}"));
    }
    Ok(a..=b)
}

/// The address browsers send media to: --advertise-ip, else the listen address.
fn advertise_ip_of(args: &Args) -> Result<IpAddr, Error> {
    match args.advertise_ip {
        Some(ip) => Ok(ip),
        None if !args.listen.ip().is_unspecified() => Ok(args.listen.ip()),
        None => Err(Error::NoAdvertiseIp(args.listen.ip())),
    }
}

/// Where join URLs point: --public-url, else the listen address, or the advertised
/// one when listening on every interface (http://0.0.0.0:... opens nowhere).
fn public_url_of(args: &Args, advertise_ip: IpAddr) -> PublicUrl {
    match &args.public_url {
        Some(url) => url.clone(),
        None => {
            let host = if args.listen.ip().is_unspecified() {
                advertise_ip
            } else {
                args.listen.ip()
            };
            format!(
                "http://{}",
                std::net::SocketAddr::new(host, args.listen.port())
            )
            .parse()
            .expect("an IP address and port make a public URL")
        }
    }
}

/// `raum standalone urls`: each meeting file's links, on standard output; files that
/// cannot be used, with the reason, on standard error. Reads only: it creates no key.
pub fn print_urls(args: &Args) -> Result<(), Error> {
    let advertise_ip = advertise_ip_of(args)?;
    let public_url = public_url_of(args, advertise_ip);
    if !args.key_file.exists() {
        return Err(Error::NoKey(args.key_file.clone()));
    }
    let key = load_key(&args.key_file)?;
    let listing = files::list(&args.meetings_dir).map_err(io("cannot read", &args.meetings_dir))?;
    let scan = files::scan(&listing);
    let mut out = std::io::stdout().lock();
    for (name, file) in &scan.meetings {
        let _ = writeln!(out, "{}", announcement(name, file, &public_url, &key));
    }
    let _ = out.flush();
    for (path, reason) in &scan.problems {
        eprintln!("{}: ignored: {reason}", path.display());
    }
    if scan.meetings.is_empty() {
        eprintln!("no meeting files in {}", args.meetings_dir.display());
    }
    Ok(())
}

/// How a meeting's links are printed (by `urls`, and when a running server first
/// reads its file): on standard output, never into the process log.
pub fn announcement(
    name: &str,
    file: &files::MeetingFile,
    public_url: &PublicUrl,
    key: &TokenKey,
) -> String {
    format!(
        "meeting {name} ({}): {}\n    join link: {}\n    host link: {}\n",
        file.path.display(),
        file.meeting.spec.title,
        public_url.join_url(&token_for(key, &file.meeting)),
        public_url.join_url(&host_token_for(key, &file.meeting)),
    )
}

/// Runs standalone mode (or its `urls` command) until SIGTERM or Ctrl-C.
pub async fn run(args: Args) -> Result<(), Error> {
    if let Some(Command::Urls) = args.command {
        return print_urls(&args);
    }
    let advertise_ip = advertise_ip_of(&args)?;
    let public_url = public_url_of(&args, advertise_ip);
    let mut origins = vec![public_url.origin().to_owned()];
    if args.public_url.is_none() && args.listen.ip().is_loopback() {
        // The printed link says 127.0.0.1; people type localhost too.
        origins.push(format!("http://localhost:{}", args.listen.port()));
    }
    std::fs::create_dir_all(&args.meetings_dir).map_err(io("cannot create", &args.meetings_dir))?;
    let key = load_key(&args.key_file)?;
    let log_dir = args.web.access_log_dir.clone().unwrap_or_else(|| {
        args.meetings_dir
            .parent()
            .unwrap_or(Path::new("."))
            .join("access-log")
    });

    let stop_relay = Arc::new(tokio::sync::Notify::new());
    let turn = start_turn(&args, advertise_ip, stop_relay.clone()).await?;
    let mut web = args.web;
    web.access_log_dir = Some(log_dir.clone());
    if web.instance.is_none() {
        web.instance = Some("standalone".to_owned());
    }
    if let Ok(policy) = DirPolicy(args.meetings_dir.clone()).load() {
        web.retention_days = policy.max_age.hours().div_ceil(24);
    }
    let directory = Arc::new(Directory::default());
    let front = gateway::front(&web, &log_dir, origins, directory.clone())?;
    let listener = gateway::bind(args.listen).await?;

    if args.demo {
        write_demo(&args.meetings_dir)?;
    }
    let timing = Timing {
        warm_up: SignedDuration::ZERO,
        default_length: SignedDuration::try_from(args.default_length)
            .unwrap_or(SignedDuration::from_hours(8)),
    };
    let mut rooms = rooms::Rooms::new(
        advertise_ip,
        key,
        public_url,
        timing,
        turn,
        args.media_ports.clone(),
    );
    if args.demo {
        // The demo's links get a banner of their own, below.
        rooms.announced("demo");
    }
    let gateway_state = front.gateway.clone();
    rooms
        .rescan(&args.meetings_dir, &directory, Timestamp::now())
        .await;
    gateway_state.ready.store(true, Ordering::Relaxed);
    let local = listener.local_addr().unwrap_or(args.listen);
    info!(listen = %local, meetings = %args.meetings_dir.display(), access_log = %log_dir.display(), "standalone gateway listening");
    if args.demo {
        match (rooms.url_of("demo"), rooms.host_url_of("demo")) {
            (Some(url), Some(host)) => {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(
                    out,
                    "raum demo meeting: open this link in two browser tabs (or on two devices):\n\n    {url}\n\nThe host link (it runs the meeting; keep it to yourself):\n\n    {host}\n"
                );
                let _ = out.flush();
            }
            _ => warn!("the demo meeting could not be created"),
        }
    }

    let meetings_dir = args.meetings_dir.clone();
    let interval = args.rescan_interval;
    let (end_rooms, mut ending) = tokio::sync::oneshot::channel::<()>();
    let (rooms_ended, rooms_gone) = tokio::sync::oneshot::channel::<()>();
    let watcher = tokio::spawn(async move {
        let mut tick = tokio::time::interval(interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => rooms.rescan(&meetings_dir, &directory, Timestamp::now()).await,
                _ = &mut ending => break,
            }
        }
        rooms.stop_all();
        let _ = rooms_ended.send(());
    });
    let pruner = tokio::spawn(prune_daily(log_dir, args.meetings_dir.clone()));

    // On SIGTERM or Ctrl-C: end the meetings first, while participants' sockets are
    // still open, so they are told; then stop serving.
    let stop = async move {
        crate::shutdown::signal().await;
        let _ = end_rooms.send(());
        let _ = rooms_gone.await;
        tokio::time::sleep(GOODBYE).await;
    };
    gateway::serve(listener, front, stop).await;
    let _ = watcher.await;
    pruner.abort();
    stop_relay.notify_one();
    info!("standalone stopped");
    Ok(())
}

/// Prunes the access log now and then once a day.
async fn prune_daily(log_dir: PathBuf, meetings_dir: PathBuf) {
    let mut tick = tokio::time::interval(PRUNE_EVERY);
    loop {
        tick.tick().await;
        let dir = log_dir.clone();
        let policy_dir = meetings_dir.clone();
        let result = tokio::task::spawn_blocking(move || {
            prune::prune(&dir, &mut DirPolicy(policy_dir), Timestamp::now(), false)
        })
        .await;
        match result {
            Ok(Ok(s)) => info!(
                files_deleted = s.files_deleted,
                files_rewritten = s.files_rewritten,
                entries_removed = s.entries_removed,
                entries_kept_for_holds = s.entries_kept_for_holds,
                "access log pruned"
            ),
            Ok(Err(e)) => warn!(error = %e, "pruning the access log failed; trying again tomorrow"),
            Err(e) => warn!(error = %e, "pruning the access log failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_relay_sits_on_the_advertised_address_when_it_is_this_hosts() {
        let lo: IpAddr = "127.0.0.1".parse().unwrap();
        assert_eq!(
            relay_address(lo).unwrap(),
            crate::relay::RelayAddress::at(lo)
        );
    }

    #[test]
    fn the_key_file_is_created_once_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/url-key");
        let k1 = load_key(&path).unwrap();
        let k2 = load_key(&path).unwrap();
        assert_eq!(k1.token("x"), k2.token("x"), "stable across restarts");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, "not a key").unwrap();
        let err = load_key(&path).unwrap_err().to_string();
        assert!(err.contains("not a raum URL key"), "{err}");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "not a key");
    }

    #[test]
    fn the_policy_is_the_files_or_eight_weeks_and_a_broken_one_stops_pruning() {
        let dir = tempfile::tempdir().unwrap();
        let p = DirPolicy(dir.path().to_owned()).load().unwrap();
        assert_eq!(p.max_age.hours(), 56 * 24);
        std::fs::write(
            dir.path().join("policy.yaml"),
            "apiVersion: raum.dev/v1alpha1\nkind: RetentionPolicy\nmetadata:\n  name: access-log\n  annotations:\n    hold.raum.dev/incident: \"2026-10-01T00:00:00Z/2026-10-02T00:00:00Z\"\nspec: {maxAge: 2w}\n",
        )
        .unwrap();
        let p = DirPolicy(dir.path().to_owned()).load().unwrap();
        assert_eq!(p.max_age.hours(), 14 * 24);
        assert!(p.holds.covers("2026-10-01T12:00:00Z".parse().unwrap()));
        std::fs::write(
            dir.path().join("policy.yaml"),
            "apiVersion: raum.dev/v1alpha1\nkind: RetentionPolicy\nmetadata: {name: p}\nspec: {maxAge: soon}\n",
        )
        .unwrap();
        let err = DirPolicy(dir.path().to_owned())
            .load()
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("policy.yaml") && err.contains("maxAge"),
            "{err}"
        );
    }
}
