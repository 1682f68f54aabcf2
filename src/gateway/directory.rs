//! The gateway's index of meetings by join token: what a request for `/j/<token>`
//! finds. Filled from the Meeting reflector (`raum gateway`) or from the meetings
//! directory (`raum standalone`); read by every request.
//!
//! Writers replace one entry when one meeting changes ([`Directory::upsert`],
//! [`Directory::remove`]) or the whole index after a full read ([`Directory::publish`]);
//! readers hold the lock only to clone an `Arc` of the entry they asked for.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use jiff::Timestamp;

use crate::api::MeetingSpec;
use crate::rooms::RoomHandle;

/// Where a meeting's participants are connected to.
#[derive(Clone)]
pub enum Backend {
    /// A `raum sfu` process (pod) reached over the network at `host:port`.
    Remote(String),
    /// An SFU room in this process (standalone mode).
    Local(Arc<RoomHandle>),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Remote(addr) => write!(f, "Remote({addr})"),
            Backend::Local(_) => f.write_str("Local"),
        }
    }
}

/// Where a meeting is in its life, as participants see it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// Not started yet (or its SFU is still starting): the waiting page.
    Waiting {
        /// When it starts, if known.
        starts_at: Option<Timestamp>,
    },
    /// Participants can join.
    Open,
    /// Over (or failed for good): the "ended" page.
    Ended,
}

/// One meeting as the gateway knows it.
#[derive(Clone, Debug)]
pub struct Meeting {
    /// The title shown on its pages (given to the holders of the link only).
    pub title: String,
    /// Its state.
    pub state: State,
    /// Where to connect participants while it is open.
    pub backend: Option<Backend>,
    /// People connected, when known.
    pub participants: Option<u32>,
    /// Most people at once.
    pub max_participants: u32,
    /// Whether participants send audio.
    pub audio: bool,
    /// Whether participants send video.
    pub video: bool,
    /// Whether chat is on.
    pub chat: bool,
    /// Who may share a screen (the web client shows the button only to them).
    pub screen_share: crate::api::meeting::ScreenShare,
    /// The SHA-256 (hex) of its host link's token: the host link leads here too
    /// (whoever joins with it is a host, as the SFU decides from the token).
    pub host_token_sha256: Option<String>,
}

impl Meeting {
    /// This entry, reached by the host link whose token has the digest `digest` too.
    pub fn with_host(mut self, digest: Option<String>) -> Self {
        self.host_token_sha256 = digest.filter(|d| crate::token::is_digest(d));
        self
    }

    /// The entry of a meeting with `spec`, in `state`, reached at `backend`.
    pub fn new(
        spec: &MeetingSpec,
        state: State,
        backend: Option<Backend>,
        participants: Option<u32>,
    ) -> Self {
        Self {
            title: spec.title.clone(),
            state,
            backend,
            participants,
            max_participants: spec.max_participants,
            audio: spec.media.audio,
            video: spec.media.video,
            chat: spec.chat.enabled,
            screen_share: spec.screen_share,
            host_token_sha256: None,
        }
    }

    /// Whether `token` is this meeting's host link's.
    pub fn is_host_token(&self, token: &str) -> bool {
        self.host_token_sha256
            .as_deref()
            .is_some_and(|d| crate::token::token_ok(token, d))
    }

    /// Whether the last known participant count says nobody else fits.
    pub fn full(&self) -> bool {
        self.state == State::Open
            && self
                .participants
                .is_some_and(|n| n >= self.max_participants)
    }
}

/// The index: token to meeting, and host-token digest to meeting.
#[derive(Debug, Default)]
pub struct Directory {
    index: RwLock<Index>,
}

#[derive(Debug, Default)]
struct Index {
    /// By participants' token.
    meetings: HashMap<String, Arc<Meeting>>,
    /// By the digest of the host link's token (the token itself is known only to
    /// the operator and the Secret's readers), with the participants' token (a host
    /// invites people with the participants' link).
    hosts: HashMap<String, (String, Arc<Meeting>)>,
}

impl Index {
    fn insert(&mut self, token: String, meeting: Arc<Meeting>) {
        if let Some(d) = &meeting.host_token_sha256 {
            self.hosts
                .insert(d.clone(), (token.clone(), meeting.clone()));
        }
        if let Some(old) = self.meetings.insert(token, meeting) {
            self.forget_host(&old);
        }
    }

    fn remove(&mut self, token: &str) {
        if let Some(old) = self.meetings.remove(token) {
            self.forget_host(&old);
        }
    }

    /// Drops `old`'s host link, unless its digest already leads to a newer entry.
    fn forget_host(&mut self, old: &Arc<Meeting>) {
        if let Some(d) = &old.host_token_sha256
            && self.hosts.get(d).is_some_and(|(_, m)| Arc::ptr_eq(m, old))
        {
            self.hosts.remove(d);
        }
    }
}

impl Directory {
    /// The meeting behind `token`, if any: a participants' token, or a host link's.
    pub fn get(&self, token: &str) -> Option<Arc<Meeting>> {
        let index = self.index.read().expect("not poisoned");
        if let Some(m) = index.meetings.get(token) {
            return Some(m.clone());
        }
        if index.hosts.is_empty() {
            return None;
        }
        index
            .hosts
            .get(&crate::token::token_digest(token))
            .map(|(_, m)| m.clone())
    }

    /// The participants' token of the meeting behind `token` (itself, or the one a
    /// host link belongs to): what an invitation carries.
    pub fn invite_token(&self, token: &str) -> Option<String> {
        let index = self.index.read().expect("not poisoned");
        if index.meetings.contains_key(token) {
            return Some(token.to_owned());
        }
        index
            .hosts
            .get(&crate::token::token_digest(token))
            .map(|(t, _)| t.clone())
    }

    /// Replaces the whole index.
    pub fn publish(&self, meetings: HashMap<String, Arc<Meeting>>) {
        let mut index = Index::default();
        for (token, m) in meetings {
            index.insert(token, m);
        }
        *self.index.write().expect("not poisoned") = index;
    }

    /// Adds or replaces the meeting behind `token`.
    pub fn upsert(&self, token: String, meeting: Meeting) {
        self.index
            .write()
            .expect("not poisoned")
            .insert(token, Arc::new(meeting));
    }

    /// Forgets the meeting behind `token`.
    pub fn remove(&self, token: &str) {
        self.index.write().expect("not poisoned").remove(token);
    }

    /// How many meetings are known.
    pub fn len(&self) -> usize {
        self.index.read().expect("not poisoned").meetings.len()
    }

    /// Whether no meeting is known.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Whether `token` has the shape of a join token (URL-safe base64 of 32 bytes: 43
/// characters). Anything else is answered without a lookup.
pub fn plausible_token(token: &str) -> bool {
    token.len() == 43
        && token
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

/// The token at the end of a join URL (`.../j/<token>`), if it has the right shape.
pub fn token_of_url(url: &str) -> Option<&str> {
    let (_, token) = url.rsplit_once("/j/")?;
    plausible_token(token).then_some(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TOKEN: &str = "q0Zb2d1u7yAqkVJ3x9hFv5cN0r8sWmTgLpYeKiUoX4E";

    fn entry(host: Option<&str>) -> Meeting {
        let spec: MeetingSpec = serde_json::from_value(serde_json::json!({"title": "t"})).unwrap();
        Meeting::new(&spec, State::Open, None, None).with_host(host.map(str::to_owned))
    }

    #[test]
    fn host_links_lead_to_their_meeting_by_digest_until_it_goes() {
        let host = "Hq0Zb2d1u7yAqkVJ3x9hFv5cN0r8sWmTgLpYeKiUoX4";
        let digest = crate::token::token_digest(host);
        let d = Directory::default();
        d.upsert(TOKEN.to_owned(), entry(Some(&digest)));
        assert!(d.get(TOKEN).is_some());
        assert!(d.get(host).is_some(), "the host link");
        assert!(d.get(&digest).is_none(), "the digest itself is no link");
        // Either link invites with the participants' token, never the host's.
        assert_eq!(d.invite_token(TOKEN).as_deref(), Some(TOKEN));
        assert_eq!(d.invite_token(host).as_deref(), Some(TOKEN));
        assert_eq!(d.invite_token(&digest), None);
        // Replaced without a host digest: the host link leads nowhere.
        d.upsert(TOKEN.to_owned(), entry(None));
        assert!(d.get(host).is_none());
        d.upsert(TOKEN.to_owned(), entry(Some(&digest)));
        d.remove(TOKEN);
        assert!(d.get(host).is_none() && d.get(TOKEN).is_none());
        d.publish(HashMap::from([(
            TOKEN.to_owned(),
            Arc::new(entry(Some(&digest))),
        )]));
        assert!(d.get(host).is_some());
        // A status with something that is no digest files no host link.
        assert!(entry(Some("not hex")).host_token_sha256.is_none());
    }

    #[test]
    fn tokens_come_from_join_urls_of_the_right_shape() {
        assert_eq!(
            token_of_url(&format!("https://meet.example.org/j/{TOKEN}")),
            Some(TOKEN)
        );
        assert_eq!(
            token_of_url(&format!("https://meet.example.org/base/j/{TOKEN}")),
            Some(TOKEN)
        );
        assert_eq!(token_of_url("https://meet.example.org/j/short"), None);
        assert_eq!(
            token_of_url(&format!("https://meet.example.org/j/{TOKEN}/ws")),
            None
        );
        assert_eq!(
            token_of_url(&format!("https://meet.example.org/{TOKEN}")),
            None
        );
        assert!(!plausible_token(&format!("{}=", &TOKEN[..42])));
    }

    #[test]
    fn full_only_when_open_and_at_the_limit() {
        let mut m = Meeting {
            title: "t".into(),
            state: State::Open,
            backend: None,
            participants: Some(2),
            max_participants: 3,
            audio: true,
            video: true,
            chat: true,
            screen_share: Default::default(),
            host_token_sha256: None,
        };
        assert!(!m.full());
        m.participants = Some(3);
        assert!(m.full());
        m.participants = None;
        assert!(!m.full(), "unknown is not full");
        m.participants = Some(3);
        m.state = State::Ended;
        assert!(!m.full(), "ended wins");
    }

    #[test]
    fn publishing_replaces_the_whole_index_and_entries_change_one_by_one() {
        let d = Directory::default();
        let m = Arc::new(Meeting {
            title: "t".into(),
            state: State::Ended,
            backend: None,
            participants: None,
            max_participants: 2,
            audio: true,
            video: true,
            chat: true,
            screen_share: Default::default(),
            host_token_sha256: None,
        });
        d.publish(HashMap::from([(TOKEN.to_owned(), m.clone())]));
        assert_eq!(d.get(TOKEN).unwrap().state, State::Ended);
        d.publish(HashMap::new());
        assert!(d.get(TOKEN).is_none());
        assert!(d.is_empty());
        let open = Meeting {
            state: State::Open,
            ..(*m).clone()
        };
        d.upsert(TOKEN.to_owned(), open);
        assert_eq!(d.get(TOKEN).unwrap().state, State::Open);
        d.upsert("other".to_owned(), (*m).clone());
        d.remove(TOKEN);
        assert!(d.get(TOKEN).is_none());
        assert_eq!(d.len(), 1, "the other one stays");
    }
}
