//! `raum gateway`'s view of the cluster: a reflector on Meeting objects (all
//! namespaces or the given ones) whose contents become the [`Directory`] after every
//! change. The gateway reads Meetings and nothing else: the token is the end of
//! `status.url`, the SFU's address is `status.signaling`, both written by the operator.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;

use futures::StreamExt;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client};
use tokio::sync::mpsc;
use tracing::{info, warn};

use super::directory::{self, Backend, Directory, State};
use super::server::Gateway;
use crate::api::{Meeting, MeetingPhase};

/// The directory entry of a Meeting, keyed by its token; `None` while the operator
/// has not published a URL.
pub fn entry(m: &Meeting) -> Option<(String, directory::Meeting)> {
    let status = m.status.as_ref()?;
    let token = directory::token_of_url(status.url.as_deref()?)?;
    let starts_at = m.spec.starts_at.as_ref().map(|t| t.0);
    // Only an IP literal with the SFU's signaling port: whoever can write a Meeting's
    // status must not be able to point the gateway at another service.
    let signaling = status.signaling.as_deref().and_then(valid_signaling);
    let state = match status.phase {
        Some(MeetingPhase::Running) if signaling.is_some() => State::Open,
        Some(MeetingPhase::Ended | MeetingPhase::Failed) => State::Ended,
        _ => State::Waiting { starts_at },
    };
    Some((
        token.to_owned(),
        directory::Meeting::new(
            &m.spec,
            state,
            signaling.map(Backend::Remote),
            status.participants,
        )
        .with_host(status.host_token_sha256.clone()),
    ))
}

/// `IP:8080` as the operator writes it, or `None`.
fn valid_signaling(s: &str) -> Option<String> {
    let addr: std::net::SocketAddr = s.parse().ok()?;
    (addr.port() == crate::rooms::contract::SIGNALING_PORT).then(|| addr.to_string())
}

/// The directory built from everything in `stores`.
pub fn index(stores: &[Store<Meeting>]) -> HashMap<String, Arc<directory::Meeting>> {
    stores
        .iter()
        .flat_map(|s| s.state())
        .filter_map(|m| entry(&m))
        .map(|(token, m)| (token, Arc::new(m)))
        .collect()
}

/// Aborts the watch tasks when dropped.
struct Watches(Vec<tokio::task::JoinHandle<()>>);

impl Drop for Watches {
    fn drop(&mut self) {
        for w in &self.0 {
            w.abort();
        }
    }
}

/// What the watches tell the directory's keeper.
enum Change {
    /// A Meeting was created or changed.
    Applied(Meeting),
    /// A Meeting was deleted.
    Deleted(Meeting),
    /// A watch listed everything again (at start, or after it lost its place).
    Relisted,
}

/// Which token each Meeting (by UID) is filed under, so one change replaces or removes
/// exactly its own entry.
#[derive(Default)]
pub struct Tokens(HashMap<String, String>);

impl Tokens {
    /// Files `m` in `directory` as it is now (or removes it, when it has no entry any
    /// more).
    pub fn applied(&mut self, directory: &Directory, m: &Meeting) {
        let Some(uid) = m.metadata.uid.clone() else {
            return;
        };
        match entry(m) {
            Some((token, meeting)) => {
                if let Some(old) = self.0.insert(uid, token.clone())
                    && old != token
                {
                    directory.remove(&old);
                }
                directory.upsert(token, meeting);
            }
            None => self.deleted(directory, m),
        }
    }

    /// Removes `m`'s entry.
    pub fn deleted(&mut self, directory: &Directory, m: &Meeting) {
        if let Some(token) = m.metadata.uid.as_ref().and_then(|u| self.0.remove(u)) {
            directory.remove(&token);
        }
    }

    /// Files everything in `stores` afresh.
    pub fn rebuild(&mut self, directory: &Directory, stores: &[Store<Meeting>]) {
        self.0 = stores
            .iter()
            .flat_map(|s| s.state())
            .filter_map(|m| Some((m.metadata.uid.clone()?, entry(&m)?.0)))
            .collect();
        directory.publish(index(stores));
    }
}

/// Watches Meetings in `namespaces` (all when empty) and keeps `gateway.directory` up
/// to date, one entry per change; marks the gateway ready once every watch has
/// listed. Runs until dropped.
pub async fn run(client: Client, namespaces: Vec<String>, gateway: Arc<Gateway>) {
    let apis: Vec<Api<Meeting>> = if namespaces.is_empty() {
        vec![Api::all(client)]
    } else {
        namespaces
            .iter()
            .map(|ns| Api::namespaced(client.clone(), ns))
            .collect()
    };
    let (changes_tx, mut changes) = mpsc::channel::<Change>(1024);
    let mut stores = Vec::new();
    // The watch tasks end with this function (when its task is aborted).
    let mut watches = Watches(Vec::new());
    for api in apis {
        let (reader, writer) = reflector::store();
        stores.push(reader);
        let changes = changes_tx.clone();
        let stream = reflector::reflector(
            writer,
            watcher(api, watcher::Config::default()).default_backoff(),
        );
        watches.0.push(tokio::spawn(async move {
            let mut stream = std::pin::pin!(stream);
            while let Some(event) = stream.next().await {
                let change = match event {
                    Ok(watcher::Event::Apply(m)) => Change::Applied(m),
                    Ok(watcher::Event::Delete(m)) => Change::Deleted(m),
                    Ok(watcher::Event::InitDone) => Change::Relisted,
                    Ok(watcher::Event::Init | watcher::Event::InitApply(_)) => continue,
                    Err(e) => {
                        warn!(error = %e, "watching Meetings failed; retrying");
                        continue;
                    }
                };
                if changes.send(change).await.is_err() {
                    return;
                }
            }
        }));
    }
    drop(changes_tx);
    for store in &stores {
        let _ = store.wait_until_ready().await;
    }
    let directory: &Directory = &gateway.directory;
    let mut tokens = Tokens::default();
    tokens.rebuild(directory, &stores);
    gateway.ready.store(true, Ordering::Relaxed);
    info!(meetings = directory.len(), "meetings loaded");
    while let Some(change) = changes.recv().await {
        match change {
            Change::Applied(m) => tokens.applied(directory, &m),
            Change::Deleted(m) => tokens.deleted(directory, &m),
            Change::Relisted => tokens.rebuild(directory, &stores),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::MeetingStatus;

    const TOKEN: &str = "q0Zb2d1u7yAqkVJ3x9hFv5cN0r8sWmTgLpYeKiUoX4E";

    fn meeting(phase: MeetingPhase, signaling: Option<&str>) -> Meeting {
        let mut m: Meeting = serde_yaml::from_str(
            "apiVersion: raum.dev/v1alpha1\nkind: Meeting\nmetadata: {name: m, namespace: ns}\n\
             spec: {title: Standup, startsAt: '2026-11-27T09:00:00Z', maxParticipants: 5}\n",
        )
        .unwrap();
        m.status = Some(MeetingStatus {
            phase: Some(phase),
            url: Some(format!("https://meet.example.org/j/{TOKEN}")),
            signaling: signaling.map(str::to_owned),
            participants: Some(5),
            ..Default::default()
        });
        m
    }

    #[test]
    fn a_running_meeting_with_an_endpoint_is_open() {
        let (token, e) = entry(&meeting(MeetingPhase::Running, Some("127.1.0.4:8080"))).unwrap();
        assert_eq!(token, TOKEN);
        assert_eq!(e.state, State::Open);
        assert!(matches!(e.backend, Some(Backend::Remote(ref a)) if a == "127.1.0.4:8080"));
        assert!(e.full(), "5 of 5");
    }

    #[test]
    fn phases_map_to_what_participants_see() {
        let starts = Some("2026-11-27T09:00:00Z".parse().unwrap());
        for (phase, signaling, state) in [
            (
                MeetingPhase::Scheduled,
                None,
                State::Waiting { starts_at: starts },
            ),
            (
                MeetingPhase::Starting,
                None,
                State::Waiting { starts_at: starts },
            ),
            (
                MeetingPhase::Running,
                None,
                State::Waiting { starts_at: starts },
            ),
            (MeetingPhase::Ended, None, State::Ended),
            (MeetingPhase::Failed, None, State::Ended),
        ] {
            assert_eq!(
                entry(&meeting(phase, signaling)).unwrap().1.state,
                state,
                "{phase:?}"
            );
        }
    }

    #[test]
    fn only_an_ip_with_the_signaling_port_is_relayed_to() {
        for bad in [
            "kubernetes.default.svc:443",
            "127.1.0.4:6443",
            "evil.example:8080",
            "127.1.0.4",
        ] {
            let e = entry(&meeting(MeetingPhase::Running, Some(bad))).unwrap().1;
            assert!(e.backend.is_none(), "{bad}");
            assert!(matches!(e.state, State::Waiting { .. }), "{bad}");
        }
        let e = entry(&meeting(MeetingPhase::Running, Some("[fd00::7]:8080")))
            .unwrap()
            .1;
        assert!(matches!(e.backend, Some(Backend::Remote(ref a)) if a == "[fd00::7]:8080"));
    }

    #[test]
    fn no_url_or_a_malformed_one_is_no_entry() {
        let mut m = meeting(MeetingPhase::Running, Some("127.1.0.4:8080"));
        m.status.as_mut().unwrap().url = None;
        assert!(entry(&m).is_none());
        m.status.as_mut().unwrap().url = Some("https://meet.example.org/j/".into());
        assert!(entry(&m).is_none());
        m.status = None;
        assert!(entry(&m).is_none());
    }

    #[test]
    fn one_change_replaces_or_removes_exactly_its_own_entry() {
        let d = Directory::default();
        let mut tokens = Tokens::default();
        let mut a = meeting(MeetingPhase::Scheduled, None);
        a.metadata.uid = Some("uid-a".into());
        let mut b = meeting(MeetingPhase::Running, Some("127.1.0.4:8080"));
        b.metadata.uid = Some("uid-b".into());
        let other = "B".repeat(43);
        b.status.as_mut().unwrap().url = Some(format!("https://meet.example.org/j/{other}"));
        tokens.applied(&d, &a);
        tokens.applied(&d, &b);
        assert_eq!(d.len(), 2);
        assert!(matches!(d.get(TOKEN).unwrap().state, State::Waiting { .. }));
        // a starts running: only its entry changes.
        let mut running = meeting(MeetingPhase::Running, Some("127.1.0.9:8080"));
        running.metadata.uid = Some("uid-a".into());
        tokens.applied(&d, &running);
        assert_eq!(d.get(TOKEN).unwrap().state, State::Open);
        assert_eq!(d.get(&other).unwrap().state, State::Open);
        // A new URL moves the entry; no URL at all removes it.
        let third = "C".repeat(43);
        running.status.as_mut().unwrap().url = Some(format!("https://meet.example.org/j/{third}"));
        tokens.applied(&d, &running);
        assert!(d.get(TOKEN).is_none());
        assert!(d.get(&third).is_some());
        running.status.as_mut().unwrap().url = None;
        tokens.applied(&d, &running);
        assert!(d.get(&third).is_none());
        assert_eq!(d.len(), 1);
        tokens.deleted(&d, &b);
        assert!(d.is_empty());
    }
}
