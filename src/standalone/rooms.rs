//! Standalone mode's meetings: after every read of the meetings directory, each
//! meeting whose schedule says "run" has an in-process SFU room (own UDP port, same
//! room code as `raum sfu`), every other room is ended, and the gateway's directory
//! is replaced. A file that cannot be used is reported once per change, by name and
//! reason, and the others go on.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tracing::{info, warn};

use super::files::{self, MeetingFile};
use crate::gateway::{self, Backend, Directory, State};
use crate::public_url::PublicUrl;
use crate::rooms::room::Advertised;
use crate::rooms::{self, RoomHandle, RoomSettings, TurnOffer};
use crate::schedule::{Plan, Timing, plan};
use crate::token::{TokenKey, token_digest};

/// How long a room may take to say how many are in it.
const COUNT_TIMEOUT: Duration = Duration::from_millis(200);

struct RunningRoom {
    room: Arc<RoomHandle>,
    port: u16,
    /// What the room was started with; an edit of any of it restarts the room.
    made_from: (RoomSettings, String),
}

impl Drop for RunningRoom {
    fn drop(&mut self) {
        // Participants are told the meeting ended; the room task ends.
        self.room.shut_down();
    }
}

/// Where rooms (and the TURN relay) bind for media reached at `advertise_ip`: that
/// address if it is loopback, every interface otherwise.
pub fn bind_ip(advertise_ip: IpAddr) -> IpAddr {
    match advertise_ip {
        ip if ip.is_loopback() => ip,
        IpAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
        IpAddr::V6(_) => IpAddr::from([0u16; 8]),
    }
}

/// The rooms and what was last reported about the directory.
pub struct Rooms {
    advertise_ip: IpAddr,
    key: TokenKey,
    public_url: PublicUrl,
    timing: Timing,
    turn: Option<TurnOffer>,
    running: HashMap<String, RunningRoom>,
    /// Each meeting's join URL and host link.
    urls: HashMap<String, (String, String)>,
    reported: BTreeMap<PathBuf, String>,
    listing_failed: bool,
    /// Meetings whose links were printed (once each, when their file is first read).
    announced: std::collections::HashSet<String>,
    /// Where media ports come from.
    ports: std::ops::RangeInclusive<u16>,
}

impl Rooms {
    /// No rooms yet.
    pub fn new(
        advertise_ip: IpAddr,
        key: TokenKey,
        public_url: PublicUrl,
        timing: Timing,
        turn: Option<TurnOffer>,
        ports: std::ops::RangeInclusive<u16>,
    ) -> Self {
        Self {
            advertise_ip,
            key,
            public_url,
            timing,
            turn,
            running: HashMap::new(),
            urls: HashMap::new(),
            reported: BTreeMap::new(),
            listing_failed: false,
            announced: std::collections::HashSet::new(),
            ports,
        }
    }

    /// Marks `name`'s links as printed already.
    pub fn announced(&mut self, name: &str) {
        self.announced.insert(name.to_owned());
    }

    /// The join URL of the meeting called `name`, once it was read.
    pub fn url_of(&self, name: &str) -> Option<&str> {
        self.urls.get(name).map(|(url, _)| url.as_str())
    }

    /// The host link of the meeting called `name`, once it was read.
    pub fn host_url_of(&self, name: &str) -> Option<&str> {
        self.urls.get(name).map(|(_, host)| host.as_str())
    }

    /// Reads `dir` again, starts and ends rooms, and republishes `directory`.
    pub async fn rescan(&mut self, dir: &Path, directory: &Directory, now: Timestamp) {
        let listing = match files::list(dir) {
            Ok(l) => {
                if self.listing_failed {
                    info!(dir = %dir.display(), "the meetings directory is readable again");
                    self.listing_failed = false;
                }
                l
            }
            Err(e) => {
                // Keep what runs: a directory that cannot be read says nothing about
                // which meetings should end.
                if !self.listing_failed {
                    warn!(dir = %dir.display(), error = %e, "cannot read the meetings directory; keeping the meetings as they are");
                    self.listing_failed = true;
                }
                return;
            }
        };
        let scan = files::scan(&listing);
        self.report(&scan.problems);

        let mut index = HashMap::new();
        let mut urls = HashMap::new();
        for (name, file) in &scan.meetings {
            // Its links, the first time its file is read: on standard output for the
            // person running this (the process log never holds a token).
            if self.announced.insert(name.clone()) {
                use std::io::Write;
                let text = super::announcement(name, file, &self.public_url, &self.key);
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{text}");
                let _ = out.flush();
            }
            let token = super::token_for(&self.key, &file.meeting);
            let host_token = super::host_token_for(&self.key, &file.meeting);
            let host_digest = token_digest(&host_token);
            urls.insert(
                name.clone(),
                (
                    self.public_url.join_url(&token),
                    self.public_url.join_url(&host_token),
                ),
            );
            let schedule = file
                .meeting
                .spec
                .schedule()
                .expect("files::scan keeps valid meetings only");
            let state = match plan(&schedule, file.created, now, self.timing) {
                Plan::Wait { starts_at, .. } => {
                    self.stop(name);
                    State::Waiting {
                        starts_at: Some(starts_at),
                    }
                }
                Plan::End { .. } => {
                    self.stop(name);
                    State::Ended
                }
                Plan::Run { .. } => {
                    if self.ensure(name, file, &token, &host_digest).await {
                        State::Open
                    } else {
                        State::Waiting { starts_at: None }
                    }
                }
            };
            let (backend, participants) = match (state, self.running.get(name)) {
                (State::Open, Some(r)) => (
                    Some(Backend::Local(r.room.clone())),
                    r.room.participants(COUNT_TIMEOUT).await,
                ),
                _ => (None, None),
            };
            index.insert(
                token,
                Arc::new(
                    gateway::Meeting::new(&file.meeting.spec, state, backend, participants)
                        .with_host(Some(host_digest)),
                ),
            );
        }
        let gone: Vec<String> = self
            .running
            .keys()
            .filter(|n| !scan.meetings.contains_key(*n))
            .cloned()
            .collect();
        for name in gone {
            info!(meeting = %name, "meeting file removed: ending the meeting");
            self.stop(&name);
        }
        self.urls = urls;
        directory.publish(index);
    }

    /// Logs problems that are new or changed, and files that became usable.
    fn report(&mut self, problems: &BTreeMap<PathBuf, String>) {
        for (path, reason) in problems {
            if self.reported.get(path) != Some(reason) {
                warn!(file = %path.display(), reason = %reason, "meeting file ignored");
            }
        }
        for path in self.reported.keys() {
            if !problems.contains_key(path) {
                info!(file = %path.display(), "meeting file is no longer a problem");
            }
        }
        self.reported = problems.clone();
    }

    /// Makes the meeting's room exist, as its file now says (a room whose token or
    /// limits changed is ended and started afresh); false when it cannot (no UDP port).
    async fn ensure(
        &mut self,
        name: &str,
        file: &MeetingFile,
        token: &str,
        host_digest: &str,
    ) -> bool {
        let wanted = (
            RoomSettings::from_spec(&file.meeting.spec),
            token_digest(token),
        );
        match self.running.get(name) {
            Some(r) if r.made_from == wanted => return true,
            Some(_) => {
                info!(meeting = %name, "meeting file changed: restarting its room");
                self.stop(name);
            }
            None => {}
        }
        let bind = bind_ip(self.advertise_ip);
        // The first port of the range free for UDP and, preferably, TCP too (one
        // number to open in a firewall); else the first free for UDP, with ICE-TCP on
        // another of the range. A meeting without ICE-TCP still runs over UDP.
        let mut udp_only = None;
        let mut both = None;
        for p in self.ports.clone() {
            let Ok(udp) = tokio::net::UdpSocket::bind(SocketAddr::new(bind, p)).await else {
                continue;
            };
            match tokio::net::TcpListener::bind(SocketAddr::new(bind, p)).await {
                Ok(tcp) => {
                    both = Some((udp, Some(tcp)));
                    break;
                }
                Err(_) if udp_only.is_none() => udp_only = Some(udp),
                Err(_) => {}
            }
        }
        let (socket, tcp) = match (both, udp_only) {
            (Some(b), _) => b,
            (None, Some(udp)) => {
                let mut tcp = None;
                for p in self.ports.clone() {
                    if let Ok(l) = tokio::net::TcpListener::bind(SocketAddr::new(bind, p)).await {
                        tcp = Some(l);
                        break;
                    }
                }
                if tcp.is_none() {
                    warn!(meeting = %name, ports = ?self.ports, "no free ICE-TCP port in the media range: UDP only");
                }
                (udp, tcp)
            }
            (None, None) => {
                warn!(meeting = %name, ports = ?self.ports, "no free UDP port in the media range: the meeting waits");
                return false;
            }
        };
        let port = socket.local_addr().map(|a| a.port()).unwrap_or_default();
        let tcp_port = tcp
            .as_ref()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port());
        let advertised = Advertised {
            ip: self.advertise_ip,
            udp_port: port,
            tcp_port,
        };
        let network = rooms::Network {
            udp: socket,
            tcp,
            advertised,
            turn: self.turn.clone(),
        };
        let (room, _task, _sessions) = match rooms::start(
            wanted.0.clone(),
            network,
            wanted.1.clone(),
            Some(host_digest.to_owned()),
        ) {
            Ok(r) => r,
            Err(e) => {
                warn!(meeting = %name, error = %e, "cannot start the meeting's room");
                return false;
            }
        };
        info!(meeting = %name, media_port = port, ice_tcp_port = ?tcp_port, "meeting open");
        self.running.insert(
            name.to_owned(),
            RunningRoom {
                room: Arc::new(room),
                port,
                made_from: wanted,
            },
        );
        true
    }

    /// Ends every room (participants are told the meeting ended).
    pub fn stop_all(&mut self) {
        let names: Vec<String> = self.running.keys().cloned().collect();
        for name in names {
            self.stop(&name);
        }
    }

    fn stop(&mut self, name: &str) {
        if let Some(r) = self.running.remove(name) {
            info!(meeting = %name, media_port = r.port, "meeting ended");
        }
    }
}
