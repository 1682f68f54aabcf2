//! Standalone mode's meetings: after every read of the meetings directory, each
//! meeting whose schedule says "run" has an in-process SFU room (own UDP port, same
//! room code as `raum sfu`), every other room is ended, and the gateway's directory
//! is replaced. A file that cannot be used is reported once per change, by name and
//! reason, and the others go on.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use jiff::Timestamp;
use tokio::sync::{mpsc, oneshot};
use tracing::{info, warn};

use super::files::{self, MeetingFile};
use crate::gateway::directory::{self, Backend, Directory, State};
use crate::operator::join_token::{TokenKey, token_digest};
use crate::operator::meeting::lifecycle::{Plan, Timing, plan};
use crate::sfu::room::{self, Command, Room};
use crate::sfu::server::Shared;

/// How long a room may take to say how many are in it.
const COUNT_TIMEOUT: Duration = Duration::from_millis(200);

struct RunningRoom {
    shared: Arc<Shared>,
    port: u16,
    /// What the room was started with; an edit of any of it restarts the room.
    made_from: RoomSettings,
}

/// The parts of a meeting file a running room depends on.
#[derive(Clone, Debug, PartialEq, Eq)]
struct RoomSettings {
    token_sha256: String,
    max_participants: u32,
    audio: bool,
    video: bool,
    chat: bool,
    max_video_kbps: u32,
}

impl Drop for RunningRoom {
    fn drop(&mut self) {
        // Participants are told the meeting ended; the room task ends.
        let _ = self.shared.room.send(Command::Shutdown);
    }
}

/// The rooms and what was last reported about the directory.
pub struct Rooms {
    advertise_ip: IpAddr,
    key: TokenKey,
    public_url: String,
    timing: Timing,
    running: HashMap<String, RunningRoom>,
    urls: HashMap<String, String>,
    reported: BTreeMap<PathBuf, String>,
    listing_failed: bool,
}

impl Rooms {
    /// No rooms yet.
    pub fn new(advertise_ip: IpAddr, key: TokenKey, public_url: String, timing: Timing) -> Self {
        Self {
            advertise_ip,
            key,
            public_url: public_url.trim_end_matches('/').to_owned(),
            timing,
            running: HashMap::new(),
            urls: HashMap::new(),
            reported: BTreeMap::new(),
            listing_failed: false,
        }
    }

    /// The join URL of the meeting called `name`, once it was read.
    pub fn url_of(&self, name: &str) -> Option<&str> {
        self.urls.get(name).map(String::as_str)
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
            let token = super::token_for(&self.key, &file.meeting);
            urls.insert(name.clone(), format!("{}/j/{token}", self.public_url));
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
                    if self.ensure(name, file, &token).await {
                        State::Open
                    } else {
                        State::Waiting { starts_at: None }
                    }
                }
            };
            let spec = &file.meeting.spec;
            let (backend, participants) = match (state, self.running.get(name)) {
                (State::Open, Some(r)) => (
                    Some(Backend::Local(r.shared.clone())),
                    count(&r.shared).await,
                ),
                _ => (None, None),
            };
            index.insert(
                token,
                Arc::new(directory::Meeting {
                    title: spec.title.clone(),
                    state,
                    backend,
                    participants,
                    max_participants: spec.max_participants,
                    audio: spec.media.audio,
                    video: spec.media.video,
                    chat: spec.chat.enabled,
                }),
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
    async fn ensure(&mut self, name: &str, file: &MeetingFile, token: &str) -> bool {
        let spec = &file.meeting.spec;
        let wanted = RoomSettings {
            token_sha256: token_digest(token),
            max_participants: spec.max_participants,
            audio: spec.media.audio,
            video: spec.media.video,
            chat: spec.chat.enabled,
            max_video_kbps: spec.media.max_video_bitrate_kbps,
        };
        match self.running.get(name) {
            Some(r) if r.made_from == wanted => return true,
            Some(_) => {
                info!(meeting = %name, "meeting file changed: restarting its room");
                self.stop(name);
            }
            None => {}
        }
        let bind = match self.advertise_ip {
            ip if ip.is_loopback() => ip,
            IpAddr::V4(_) => IpAddr::from([0, 0, 0, 0]),
            IpAddr::V6(_) => IpAddr::from([0u16; 8]),
        };
        let socket = match tokio::net::UdpSocket::bind(SocketAddr::new(bind, 0)).await {
            Ok(s) => s,
            Err(e) => {
                warn!(meeting = %name, error = %e, "cannot open a media port for the meeting");
                return false;
            }
        };
        let port = socket.local_addr().map(|a| a.port()).unwrap_or_default();
        let room = Room::new(
            room::Config {
                advertised: SocketAddr::new(self.advertise_ip, port),
                max_participants: spec.max_participants,
                ice_timeout: Duration::from_secs(30),
                audio: spec.media.audio,
                video: spec.media.video,
                max_video_kbps: spec.media.max_video_bitrate_kbps,
            },
            socket,
        );
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(room.run(rx));
        let (sessions, _) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            room: tx,
            token_sha256: wanted.token_sha256.clone(),
            chat: spec.chat.enabled,
            started: Instant::now(),
            sessions,
        });
        info!(meeting = %name, media_port = port, "meeting open");
        self.running.insert(
            name.to_owned(),
            RunningRoom {
                shared,
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

async fn count(shared: &Shared) -> Option<u32> {
    let (tx, rx) = oneshot::channel();
    shared.room.send(Command::Participants { reply: tx }).ok()?;
    tokio::time::timeout(COUNT_TIMEOUT, rx).await.ok()?.ok()
}
