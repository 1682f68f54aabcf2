//! The Meeting controller: one ephemeral SFU pod and one Service per meeting, from
//! its start (minus a warm-up) to its end.
//!
//! Each reconcile is a pipeline: read the Meeting, validate its spec (pure), plan by
//! the clock ([`lifecycle`], pure), build the desired objects ([`objects`], pure),
//! apply them, observe the pod, and compute the status ([`status`], pure) that is
//! written with server-side apply under the `raum-operator` field manager.

pub mod lifecycle;
pub mod objects;
pub mod status;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use self::lifecycle::{Plan, Timing};
use self::objects::SfuSettings;
use self::status::{Observed, PodState};
use super::join_token::TokenKey;
use super::metrics::Metrics;
use super::sfu_status::SfuStatusClient;
use crate::api::{Meeting, MeetingPhase, MeetingStatus};

/// The field manager of everything the operator applies.
pub const FIELD_MANAGER: &str = "raum-operator";
/// How often a running meeting's participant count is refreshed.
const PARTICIPANTS_REFRESH: Duration = Duration::from_secs(15);
/// Longest wait before looking at a meeting again, so clock-driven steps happen even
/// if a watch event is missed.
const MAX_REQUEUE: Duration = Duration::from_secs(300);
/// First and longest wait between two replacements of a failing SFU pod.
const REPLACE_BACKOFF_MIN: Duration = Duration::from_secs(1);
const REPLACE_BACKOFF_MAX: Duration = Duration::from_secs(60);

/// The controller's settings, from the operator's flags.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The gateway's public base URL.
    pub public_url: String,
    /// Warm-up and default length.
    pub timing: Timing,
    /// What the SFU objects need from the settings.
    pub sfu: SfuSettings,
}

/// Shared state of all reconciles.
pub struct Context {
    /// API client.
    pub client: kube::Client,
    /// Settings.
    pub settings: Settings,
    /// The key join tokens derive from.
    pub tokens: TokenKey,
    /// Event recorder.
    pub recorder: Recorder,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Reads participant counts from SFUs.
    pub sfu_status: SfuStatusClient,
    /// SFU pods this operator created, per meeting UID, for the replacement backoff.
    pub created: Mutex<HashMap<String, Creations>>,
    /// The phase last announced per meeting UID. The cached Meeting a reconcile reads
    /// may predate the status this operator just wrote; announcing transitions
    /// against this memory keeps each transition to one Event.
    pub announced: Mutex<HashMap<String, MeetingPhase>>,
}

/// How often and when a meeting's SFU pod was last created by this operator.
#[derive(Clone, Copy, Debug)]
pub struct Creations {
    replacements: u32,
    last: Instant,
}

/// A reconcile failed; the controller retries with backoff. Each variant is one stage
/// of the pipeline, which labels the error metric.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The Meeting lacks metadata the API server always sets.
    #[error("Meeting has no {0}")]
    MissingMetadata(&'static str),
    /// Applying the Service failed.
    #[error("cannot apply Service {name}: {source}")]
    ApplyService {
        /// The Service.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Applying the SFU pod's NetworkPolicy failed.
    #[error("cannot apply NetworkPolicy {name}: {source}")]
    ApplyNetworkPolicy {
        /// The NetworkPolicy.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// The Service has no allocated media port.
    #[error("Service {0} has no media port allocated")]
    NoMediaPort(String),
    /// Reading the pod failed.
    #[error("cannot read Pod {name}: {source}")]
    ReadPod {
        /// The pod.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Creating the pod failed for a reason other than the API server's refusal.
    #[error("cannot create Pod {name}: {source}")]
    CreatePod {
        /// The pod.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Deleting an object failed.
    #[error("cannot delete {kind} {name}: {source}")]
    Delete {
        /// Pod or Service.
        kind: &'static str,
        /// Its name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Writing the status failed.
    #[error("cannot write the status: {0}")]
    Status(#[source] kube::Error),
}

impl Error {
    /// The pipeline stage that failed, for the `raum_reconcile_errors_total` metric.
    pub fn stage(&self) -> &'static str {
        match self {
            Self::MissingMetadata(_) => "read",
            Self::ApplyService { .. }
            | Self::ApplyNetworkPolicy { .. }
            | Self::NoMediaPort(_)
            | Self::ReadPod { .. }
            | Self::CreatePod { .. } => "apply",
            Self::Delete { .. } => "cleanup",
            Self::Status(_) => "status",
        }
    }
}

/// Reconciles one Meeting.
pub async fn reconcile(meeting: Arc<Meeting>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let result = reconcile_inner(&meeting, &ctx).await;
    ctx.metrics.observe_reconcile(
        "meeting",
        started.elapsed(),
        result.as_ref().err().map(Error::stage),
    );
    result
}

/// What to do after a failed reconcile.
pub fn error_policy(meeting: Arc<Meeting>, err: &Error, _ctx: Arc<Context>) -> Action {
    warn!(meeting = %meeting.name_any(), namespace = %meeting.namespace().unwrap_or_default(), error = %err, "reconcile failed");
    Action::requeue(Duration::from_secs(5))
}

async fn reconcile_inner(meeting: &Meeting, ctx: &Context) -> Result<Action, Error> {
    if meeting.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes the pod and Service with their owner.
        return Ok(Action::await_change());
    }
    let name = meeting.name_any();
    let ns = meeting
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let uid = meeting.uid().ok_or(Error::MissingMetadata("uid"))?;
    let now = Timestamp::now();
    let url = format!(
        "{}/j/{}",
        ctx.settings.public_url.trim_end_matches('/'),
        ctx.tokens.token(&uid)
    );
    let previous = meeting.status.as_ref();
    let status_ctx = status::Context {
        previous,
        generation: meeting.metadata.generation,
        url: &url,
        now,
    };

    // Validate: the API server refuses bad specs, but objects from before a schema
    // change never passed today's rules.
    let schedule = match meeting.spec.schedule() {
        Ok(s) => s,
        Err(e) => {
            let st = status::invalid(&status_ctx, &e.to_string());
            publish(ctx, meeting, previous, &st, None).await;
            write_status(ctx, meeting, previous, &st).await?;
            return Ok(Action::await_change());
        }
    };

    let created = meeting.creation_timestamp().map(|t| t.0).unwrap_or(now);
    let plan = lifecycle::plan(&schedule, created, now, ctx.settings.timing);
    let sfu = objects::sfu_name(&name);
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);

    let mut note = None;
    let (observed, action) = match plan {
        Plan::Wait { wake_at, .. } => (
            observed(PodState::Absent, &ctx.created, &uid),
            requeue_until(now, wake_at),
        ),
        Plan::End { .. } => {
            delete(&pods, "Pod", &sfu).await?;
            delete(&services, "Service", &sfu).await?;
            if ctx.settings.sfu.network_policy_from.is_some() {
                let policies: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), &ns);
                delete(&policies, "NetworkPolicy", &sfu).await?;
            }
            ctx.created.lock().expect("not poisoned").remove(&uid);
            (
                observed(PodState::Absent, &ctx.created, &uid),
                Action::await_change(),
            )
        }
        Plan::Run { ends_at, .. } => {
            let was_running = previous.and_then(|p| p.phase) == Some(MeetingPhase::Running);
            let sfu = ensure_sfu(ctx, meeting, (&pods, &services), &uid, &sfu, was_running).await?;
            note = sfu.note;
            let participants = match (&sfu.state, &sfu.ip) {
                (PodState::Ready, Some(ip)) => {
                    ctx.sfu_status
                        .participants(ip, objects::SIGNALING_PORT)
                        .await
                }
                _ => None,
            };
            let mut wait = until(now, ends_at);
            if sfu.state == PodState::Ready {
                wait = wait.min(PARTICIPANTS_REFRESH);
            }
            if let Some(r) = sfu.retry {
                wait = wait.min(r);
            }
            let mut obs = observed(sfu.state, &ctx.created, &uid);
            obs.participants = participants;
            obs.signaling = sfu.ip.map(|ip| signaling_endpoint(&ip));
            (obs, Action::requeue(wait))
        }
    };

    let st = status::compute(&status_ctx, &plan, &observed);
    publish(ctx, meeting, previous, &st, note).await;
    write_status(ctx, meeting, previous, &st).await?;
    Ok(action)
}

/// What [`ensure_sfu`] found and did.
struct SfuOutcome {
    state: PodState,
    /// The pod's IP, for its `/status`.
    ip: Option<String>,
    /// Look again this soon (creation raced, backoff, refusal).
    retry: Option<Duration>,
    /// An event worth publishing.
    note: Option<Event>,
}

fn event(type_: EventType, reason: &str, action: &str, note: String) -> Event {
    Event {
        type_,
        reason: reason.into(),
        note: Some(note),
        action: action.into(),
        secondary: None,
    }
}

/// Makes the running meeting's Service and SFU pod exist: applies the Service, reads
/// back its media port, and creates the pod if there is none (with backoff when it is
/// a replacement). A failed pod is deleted, never restarted, so a fresh one follows.
async fn ensure_sfu(
    ctx: &Context,
    meeting: &Meeting,
    (pods, services): (&Api<Pod>, &Api<Service>),
    uid: &str,
    name: &str,
    was_running: bool,
) -> Result<SfuOutcome, Error> {
    if let Some(from) = &ctx.settings.sfu.network_policy_from {
        // Before the pod: it is never reachable unfenced.
        let policies: Api<NetworkPolicy> = Api::namespaced(
            ctx.client.clone(),
            meeting.metadata.namespace.as_deref().unwrap_or_default(),
        );
        policies
            .patch(
                name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(objects::network_policy(meeting, from)),
            )
            .await
            .map_err(|source| Error::ApplyNetworkPolicy {
                name: name.to_owned(),
                source,
            })?;
    }
    let svc = services
        .patch(
            name,
            &PatchParams::apply(FIELD_MANAGER).force(),
            &Patch::Apply(objects::service(meeting, &ctx.settings.sfu)),
        )
        .await
        .map_err(|source| Error::ApplyService {
            name: name.to_owned(),
            source,
        })?;
    let media_port =
        objects::advertised_media_port(&svc).ok_or_else(|| Error::NoMediaPort(name.to_owned()))?;
    let existing = pods.get_opt(name).await.map_err(|source| Error::ReadPod {
        name: name.to_owned(),
        source,
    })?;
    let outcome = |state, ip, retry, note| SfuOutcome {
        state,
        ip,
        retry,
        note,
    };

    if let Some(pod) = existing {
        let state = classify(&pod);
        let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
        let mut note = None;
        if let PodState::Failed(why) = &state {
            delete(pods, "Pod", name).await?;
            note = Some(event(
                EventType::Warning,
                "SfuFailed",
                "ReplaceSfu",
                format!("SFU pod {name} failed ({why}); it will be replaced"),
            ));
        }
        return Ok(outcome(state, ip, None, note));
    }
    if let Some(wait) = replacement_wait(&ctx.created, uid) {
        return Ok(outcome(PodState::Absent, None, Some(wait), None));
    }
    let pod = objects::pod(
        meeting,
        &ctx.settings.sfu,
        &ctx.tokens.token(uid),
        media_port,
    );
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match pods.create(&params, &pod).await {
        Ok(_) => {
            let replacements = record_creation(&ctx.created, uid, was_running);
            let note = if replacements > 0 {
                event(
                    EventType::Warning,
                    "SfuReplaced",
                    "ReplaceSfu",
                    format!(
                        "the SFU pod was gone while the meeting should run; created {name} again (replacement {replacements})"
                    ),
                )
            } else {
                event(
                    EventType::Normal,
                    "SfuCreated",
                    "CreateSfu",
                    format!("created SFU pod and Service {name}"),
                )
            };
            Ok(outcome(PodState::Pending, None, None, Some(note)))
        }
        // Another reconcile (or a previous leader) got there first.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(outcome(
            PodState::Pending,
            None,
            Some(Duration::from_secs(1)),
            None,
        )),
        // The cluster refuses this pod (quota, admission, bad resources): say so in
        // the status, keep trying slowly.
        Err(kube::Error::Api(s)) if (400..500).contains(&s.code) => {
            let note = event(
                EventType::Warning,
                "SfuRefused",
                "CreateSfu",
                format!("the API server refused SFU pod {name}: {}", s.message),
            );
            Ok(outcome(
                PodState::Refused(s.message),
                None,
                Some(Duration::from_secs(30)),
                Some(note),
            ))
        }
        Err(source) => Err(Error::CreatePod {
            name: name.to_owned(),
            source,
        }),
    }
}

fn observed(pod: PodState, created: &Mutex<HashMap<String, Creations>>, uid: &str) -> Observed {
    let replacements = created
        .lock()
        .expect("not poisoned")
        .get(uid)
        .map_or(0, |c| c.replacements);
    Observed {
        pod,
        participants: None,
        replacements,
        signaling: None,
    }
}

/// `IP:port` of an SFU pod's signaling listener (IPv6 in brackets).
fn signaling_endpoint(ip: &str) -> String {
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{}", objects::SIGNALING_PORT),
        _ => format!("{ip}:{}", objects::SIGNALING_PORT),
    }
}

/// How long to wait before creating a replacement pod, or `None` to create it now.
/// The first pod of a meeting is created at once; replacements back off exponentially.
fn replacement_wait(created: &Mutex<HashMap<String, Creations>>, uid: &str) -> Option<Duration> {
    let map = created.lock().expect("not poisoned");
    let c = map.get(uid)?;
    let backoff = REPLACE_BACKOFF_MIN
        .saturating_mul(1 << c.replacements.min(6))
        .min(REPLACE_BACKOFF_MAX);
    backoff
        .checked_sub(c.last.elapsed())
        .filter(|d| !d.is_zero())
}

/// Notes a creation; returns how many replacements this meeting has had. A creation
/// is a replacement when this operator created a pod for the meeting before, or when
/// the meeting was running (its pod vanished, perhaps under a previous leader).
fn record_creation(
    created: &Mutex<HashMap<String, Creations>>,
    uid: &str,
    was_running: bool,
) -> u32 {
    let mut map = created.lock().expect("not poisoned");
    let entry = map
        .entry(uid.to_owned())
        .and_modify(|c| c.replacements += 1)
        .or_insert(Creations {
            replacements: u32::from(was_running),
            last: Instant::now(),
        });
    entry.last = Instant::now();
    entry.replacements
}

fn classify(pod: &Pod) -> PodState {
    if pod.metadata.deletion_timestamp.is_some() {
        return PodState::Terminating;
    }
    let Some(status) = pod.status.as_ref() else {
        return PodState::Pending;
    };
    match status.phase.as_deref() {
        Some("Failed") | Some("Succeeded") => {
            let why = status
                .container_statuses
                .iter()
                .flatten()
                .find_map(|c| c.state.as_ref()?.terminated.as_ref()?.reason.clone())
                .or_else(|| status.reason.clone())
                .unwrap_or_else(|| format!("phase {}", status.phase.as_deref().unwrap_or("?")));
            PodState::Failed(why)
        }
        Some("Running") => {
            let ready = status
                .conditions
                .iter()
                .flatten()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            if ready {
                PodState::Ready
            } else {
                PodState::NotReady
            }
        }
        _ => PodState::Pending,
    }
}

async fn delete<K>(api: &Api<K>, kind: &'static str, name: &str) -> Result<(), Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    match api.delete(name, &DeleteParams::background()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        Err(source) => Err(Error::Delete {
            kind,
            name: name.to_owned(),
            source,
        }),
    }
}

/// The wait until `at`, plus a little so the clock has passed `at` when we look
/// again; at most [`MAX_REQUEUE`].
fn until(now: Timestamp, at: Timestamp) -> Duration {
    let secs = at.duration_since(now).as_secs_f64().max(0.0);
    (Duration::from_secs_f64(secs) + Duration::from_millis(200)).min(MAX_REQUEUE)
}

fn requeue_until(now: Timestamp, at: Timestamp) -> Action {
    Action::requeue(until(now, at))
}

/// Writes the status unless nothing changed.
async fn write_status(
    ctx: &Context,
    meeting: &Meeting,
    previous: Option<&MeetingStatus>,
    st: &MeetingStatus,
) -> Result<(), Error> {
    if previous == Some(st) {
        return Ok(());
    }
    let api: Api<Meeting> =
        Api::namespaced(ctx.client.clone(), &meeting.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": Meeting::api_version(&()),
        "kind": Meeting::kind(&()),
        "status": st,
    });
    api.patch_status(
        &meeting.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(patch),
    )
    .await
    .map_err(Error::Status)?;
    Ok(())
}

/// Events for phase transitions, plus the reconcile's own note (pod created, replaced,
/// refused). Failing to publish an event is logged, not fatal.
async fn publish(
    ctx: &Context,
    meeting: &Meeting,
    previous: Option<&MeetingStatus>,
    st: &MeetingStatus,
    note: Option<Event>,
) {
    // Announce against what this operator last announced: the cached `previous` may
    // predate the status it just wrote. Once the cache shows an ended meeting, the
    // memory is no longer needed.
    let uid = meeting.uid().unwrap_or_default();
    let before = {
        let mut announced = ctx.announced.lock().expect("not poisoned");
        let before = announced
            .get(&uid)
            .copied()
            .or(previous.and_then(|p| p.phase));
        if previous.and_then(|p| p.phase) == Some(MeetingPhase::Ended)
            && st.phase == Some(MeetingPhase::Ended)
        {
            announced.remove(&uid);
        } else if let Some(p) = st.phase {
            announced.insert(uid, p);
        }
        before
    };
    let mut events: Vec<Event> = note.into_iter().collect();
    if st.phase != before {
        let ready = st.conditions.iter().find(|c| c.type_ == status::READY);
        let message = ready.map(|c| c.message.clone());
        if let Some(phase) = st.phase {
            let type_ = if phase == MeetingPhase::Failed {
                EventType::Warning
            } else {
                EventType::Normal
            };
            events.push(Event {
                type_,
                reason: phase.as_str().into(),
                note: message,
                action: "Reconcile".into(),
                secondary: None,
            });
            info!(meeting = %meeting.name_any(), namespace = %meeting.namespace().unwrap_or_default(), phase = phase.as_str(), "phase changed");
        }
    }
    let reference = meeting.object_ref(&());
    for ev in events {
        if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
            debug!(error = %e, reason = %ev.reason, "cannot publish event");
        }
    }
}
