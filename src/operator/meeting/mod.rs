//! The Meeting controller: one ephemeral SFU pod and one Service per meeting, from
//! its start (minus a warm-up) to its end.
//!
//! Each reconcile is a pipeline: read the Meeting, validate its spec (pure), plan by
//! the clock ([`crate::schedule`], pure), build the desired objects ([`objects`],
//! pure), apply them, observe the pod and decide what to do about it
//! ([`status::sfu_step`], pure), and compute the status ([`status`], pure) that is
//! written with server-side apply under the `raum-operator` field manager.
//!
//! Errors are of two kinds. An invalid spec is the object's fault: the status says why
//! (phase Failed) and the controller waits for the object to change. Anything else is
//! transient (the API server refused or failed a call): the status keeps what was known
//! and says which stage failed with the API server's words (condition `Reconciled`), a
//! Warning event says it once, and the reconcile is retried with exponential backoff per
//! meeting ([`crate::operator::backoff::Failures`]).
//!
//! `status.participants` is not written here: [`participants`] polls the running SFUs
//! in a task of its own, so a count that changes does not cost a reconcile.

pub mod memory;
pub mod objects;
pub mod participants;
pub mod status;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use jiff::Timestamp;
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::networking::v1::NetworkPolicy;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder};
use kube::runtime::reflector::Store;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{debug, info, warn};

use self::memory::Memory;
use self::objects::SfuSettings;
use self::status::{Observed, PodState, SfuStep};
use super::backoff::Failures;
use super::metrics::Metrics;
use super::names::OPERATOR;
use crate::api::{Meeting, MeetingPhase, MeetingStatus};
use crate::public_url::PublicUrl;
use crate::schedule::{self, Plan, Timing};
use crate::token::{TokenKey, token_digest};

/// The field manager of everything the operator applies.
pub const FIELD_MANAGER: &str = OPERATOR;
/// Longest wait before looking at a meeting again, so clock-driven steps happen even
/// if a watch event is missed.
const MAX_REQUEUE: Duration = Duration::from_secs(300);
/// How often the memory of deleted meetings is swept.
pub const SWEEP_EVERY: Duration = Duration::from_secs(30);

/// The controller's settings, from the operator's flags.
#[derive(Clone, Debug)]
pub struct Settings {
    /// The gateway's public base URL.
    pub public_url: PublicUrl,
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
    /// What this operator remembers about each meeting.
    pub memory: Mutex<Memory>,
    /// Reconciles that failed in a row, per meeting.
    pub failures: Mutex<Failures>,
}

impl Context {
    fn memory(&self) -> std::sync::MutexGuard<'_, Memory> {
        self.memory.lock().expect("not poisoned")
    }

    fn failures(&self) -> std::sync::MutexGuard<'_, Failures> {
        self.failures.lock().expect("not poisoned")
    }
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
    #[error("Service {0} has no media ports (UDP and ICE-TCP) allocated")]
    NoMediaPort(String),
    /// Reading the pod failed.
    #[error("cannot read Pod {name}: {source}")]
    ReadPod {
        /// The pod.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// Creating one of the meeting's Secrets (host link, TURN key) failed.
    #[error("cannot create Secret {name}: {source}")]
    CreateSecret {
        /// The Secret.
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
    /// The pipeline stage that failed, for the `raum_reconcile_errors_total` metric and
    /// the `Reconciled` condition's reason.
    pub fn stage(&self) -> &'static str {
        match self {
            Self::MissingMetadata(_) => "read",
            Self::ApplyService { .. }
            | Self::ApplyNetworkPolicy { .. }
            | Self::NoMediaPort(_)
            | Self::ReadPod { .. }
            | Self::CreateSecret { .. }
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
    if result.is_ok()
        && let Some(uid) = meeting.uid()
    {
        ctx.failures().succeeded(&uid);
    }
    result
}

/// What to do after a failed reconcile: try again after a backoff that doubles with
/// each failure of this meeting in a row (1 s up to 5 min). The failure was shown on
/// the object already (`report_failure`).
pub fn error_policy(meeting: Arc<Meeting>, err: &Error, ctx: Arc<Context>) -> Action {
    let wait = ctx.failures().failed(&meeting.uid().unwrap_or_default());
    warn!(meeting = %meeting.name_any(), namespace = %meeting.namespace().unwrap_or_default(), error = %err, retry_in = ?wait, "reconcile failed");
    Action::requeue(wait)
}

/// Forgets what the operator remembers about meetings no longer in `stores` (deleted
/// while they were scheduled or running; ended ones are forgotten when they end).
pub fn forget_deleted(ctx: &Context, stores: &[Store<Meeting>]) {
    let live: HashSet<String> = stores
        .iter()
        .flat_map(|s| s.state())
        .filter_map(|m| m.uid())
        .collect();
    ctx.memory().retain(&live);
    ctx.failures().retain(&live);
}

async fn reconcile_inner(meeting: &Meeting, ctx: &Context) -> Result<Action, Error> {
    if meeting.metadata.deletion_timestamp.is_some() {
        // The garbage collector removes the pod and Service with their owner.
        return Ok(Action::await_change());
    }
    let ns = meeting
        .namespace()
        .ok_or(Error::MissingMetadata("namespace"))?;
    let uid = meeting.uid().ok_or(Error::MissingMetadata("uid"))?;
    let now = Timestamp::now();
    let url = ctx.settings.public_url.join_url(&ctx.tokens.token(&uid));
    let host_token = ctx.tokens.host_token(&uid);
    let host_digest = token_digest(&host_token);
    let previous = meeting.status.as_ref();
    let status_ctx = status::Context {
        previous,
        generation: meeting.metadata.generation,
        url: &url,
        host_digest: &host_digest,
        now,
    };

    // Validate: the API server refuses bad specs, but objects from before a schema
    // change never passed today's rules. The object's fault: wait for it to change.
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
    let plan = schedule::plan(&schedule, created, now, ctx.settings.timing);
    // The host link, as soon as the meeting is known (a teacher wants it before the
    // lesson), unless the status says it was made already.
    let host_made = previous.and_then(|p| p.host_token_sha256.as_deref()) == Some(&host_digest);
    if !host_made && !matches!(plan, Plan::End { .. }) {
        let host_url = ctx.settings.public_url.join_url(&host_token);
        if let Err(e) = create_host_secret(ctx, meeting, &ns, &host_url).await {
            report_failure(ctx, meeting, &status_ctx, &plan, &e).await;
            return Err(e);
        }
    }
    let outcome = match act(ctx, meeting, &ns, &uid, &plan, now).await {
        Ok(outcome) => outcome,
        Err(e) => {
            report_failure(ctx, meeting, &status_ctx, &plan, &e).await;
            return Err(e);
        }
    };
    let st = status::compute(&status_ctx, &plan, &outcome.observed);
    publish(ctx, meeting, previous, &st, outcome.note).await;
    if let Err(e) = write_status(ctx, meeting, previous, &st).await {
        report_failure(ctx, meeting, &status_ctx, &plan, &e).await;
        return Err(e);
    }
    Ok(outcome.action)
}

/// What the plan's step did and saw.
struct Outcome {
    observed: Observed,
    action: Action,
    /// An event worth publishing.
    note: Option<Event>,
}

/// Creates the Secret with the meeting's host link. Created, never read, updated or
/// deleted: its content follows from the Meeting's UID, so one that exists is right,
/// and it goes with its Meeting.
async fn create_host_secret(
    ctx: &Context,
    meeting: &Meeting,
    ns: &str,
    host_url: &str,
) -> Result<(), Error> {
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let secret = objects::host_secret(meeting, host_url);
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    match secrets.create(&params, &secret).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(()),
        Err(source) => Err(Error::CreateSecret {
            name: secret.metadata.name.unwrap_or_default(),
            source,
        }),
    }
}

/// Makes the cluster match the plan: nothing before the warm-up, the SFU's objects
/// while the meeting runs, none after it ended.
async fn act(
    ctx: &Context,
    meeting: &Meeting,
    ns: &str,
    uid: &str,
    plan: &Plan,
    now: Timestamp,
) -> Result<Outcome, Error> {
    let sfu = objects::sfu_name(&meeting.name_any());
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let services: Api<Service> = Api::namespaced(ctx.client.clone(), ns);
    let observed = |pod: PodState, signaling: Option<String>| Observed {
        pod,
        replacements: ctx.memory().replacements(uid),
        signaling,
    };
    Ok(match *plan {
        Plan::Wait { wake_at, .. } => Outcome {
            observed: observed(PodState::Absent, None),
            action: Action::requeue(until(now, wake_at)),
            note: None,
        },
        Plan::End { .. } => {
            delete(&pods, "Pod", &sfu).await?;
            delete(&services, "Service", &sfu).await?;
            if ctx.settings.sfu.network_policy_from.is_some() {
                let policies: Api<NetworkPolicy> = Api::namespaced(ctx.client.clone(), ns);
                delete(&policies, "NetworkPolicy", &sfu).await?;
            }
            Outcome {
                observed: observed(PodState::Absent, None),
                action: Action::await_change(),
                note: None,
            }
        }
        Plan::Run { ends_at, .. } => {
            let was_running =
                meeting.status.as_ref().and_then(|p| p.phase) == Some(MeetingPhase::Running);
            let sfu = ensure_sfu(ctx, meeting, (&pods, &services), uid, &sfu, was_running).await?;
            let mut wait = until(now, ends_at);
            if let Some(r) = sfu.retry {
                wait = wait.min(r);
            }
            let signaling = sfu.ip.map(|ip| signaling_endpoint(&ip));
            Outcome {
                observed: observed(sfu.state, signaling),
                action: Action::requeue(wait),
                note: sfu.note,
            }
        }
    })
}

/// Shows a failed reconcile on the object: the status keeps what was known and says
/// what failed ([`status::failed`]), and a Warning event says it once per failure.
/// Writing may fail too (the API server may be what failed); the retry tries again.
async fn report_failure(
    ctx: &Context,
    meeting: &Meeting,
    status_ctx: &status::Context<'_>,
    plan: &Plan,
    err: &Error,
) {
    let message = err.to_string();
    let st = status::failed(status_ctx, plan, err.stage(), &message);
    if let Err(e) = write_status(ctx, meeting, status_ctx.previous, &st).await {
        debug!(error = %e, "cannot write the status of a failed reconcile");
    }
    // The error policy counts the failure; here it is only asked whether it is new.
    let uid = meeting.uid().unwrap_or_default();
    if ctx.failures().is_new(&uid, &message) {
        let note = event(EventType::Warning, "ReconcileFailed", "Reconcile", message);
        if let Err(e) = ctx.recorder.publish(&note, &meeting.object_ref(&())).await {
            debug!(error = %e, "cannot publish event");
        }
    }
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

/// Makes the running meeting's Service and SFU pod exist: applies the NetworkPolicy and
/// the Service, reads back its media port, reads the pod, decides ([`status::sfu_step`])
/// and does what the decision says.
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
                &Patch::Apply(objects::network_policy(
                    meeting,
                    from,
                    &ctx.settings.sfu.metrics_from,
                )),
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
    let media_ports =
        objects::advertised_media_ports(&svc).ok_or_else(|| Error::NoMediaPort(name.to_owned()))?;
    let existing = pods.get_opt(name).await.map_err(|source| Error::ReadPod {
        name: name.to_owned(),
        source,
    })?;
    let state = existing.as_ref().map(status::classify);
    let ip = existing
        .as_ref()
        .and_then(|p| p.status.as_ref()?.pod_ip.clone());
    let wait = ctx.memory().replacement_wait(uid, Instant::now());
    let outcome = |state, ip, retry, note| SfuOutcome {
        state,
        ip,
        retry,
        note,
    };
    match status::sfu_step(state.as_ref(), wait) {
        SfuStep::Keep => Ok(outcome(state.expect("a pod to keep"), ip, None, None)),
        SfuStep::Replace(why) => {
            delete(pods, "Pod", name).await?;
            let note = event(
                EventType::Warning,
                "SfuFailed",
                "ReplaceSfu",
                format!("SFU pod {name} failed ({why}); it will be replaced"),
            );
            Ok(outcome(PodState::Failed(why), ip, None, Some(note)))
        }
        SfuStep::WaitToCreate(wait) => Ok(outcome(PodState::Absent, None, Some(wait), None)),
        SfuStep::Create => {
            create_pod(ctx, meeting, pods, uid, name, media_ports, was_running).await
        }
    }
}

/// Creates the meeting's SFU pod; a refusal by the API server (quota, admission, bad
/// resources) is a state of the meeting, not a failed reconcile.
async fn create_pod(
    ctx: &Context,
    meeting: &Meeting,
    pods: &Api<Pod>,
    uid: &str,
    name: &str,
    media_ports: objects::MediaPorts,
    was_running: bool,
) -> Result<SfuOutcome, Error> {
    let pod = objects::pod(
        meeting,
        &ctx.settings.sfu,
        (&ctx.tokens.token(uid), &ctx.tokens.host_token(uid)),
        media_ports,
    );
    let params = PostParams {
        field_manager: Some(FIELD_MANAGER.into()),
        ..Default::default()
    };
    if let Some(secret) = objects::turn_secret(meeting, &ctx.settings.sfu) {
        // Before the pod, which reads it. Created, never read, updated or deleted:
        // its content follows from the Meeting's UID, so one that exists is right,
        // and it goes with its Meeting.
        let secrets: Api<Secret> = Api::namespaced(
            ctx.client.clone(),
            meeting.metadata.namespace.as_deref().unwrap_or_default(),
        );
        match secrets.create(&params, &secret).await {
            Ok(_) => {}
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(source) => {
                return Err(Error::CreateSecret {
                    name: secret.metadata.name.unwrap_or_default(),
                    source,
                });
            }
        }
    }
    let outcome = |state, retry, note| SfuOutcome {
        state,
        ip: None,
        retry,
        note,
    };
    match pods.create(&params, &pod).await {
        Ok(_) => {
            let replacements = ctx.memory().created(uid, was_running, Instant::now());
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
            Ok(outcome(PodState::Pending, None, Some(note)))
        }
        // Another reconcile (or a previous leader) got there first.
        Err(kube::Error::Api(s)) if s.code == 409 => Ok(outcome(
            PodState::Pending,
            Some(Duration::from_secs(1)),
            None,
        )),
        // The cluster refuses this pod: say so in the status, keep trying slowly.
        Err(kube::Error::Api(s)) if (400..500).contains(&s.code) => {
            let note = event(
                EventType::Warning,
                "SfuRefused",
                "CreateSfu",
                format!("the API server refused SFU pod {name}: {}", s.message),
            );
            Ok(outcome(
                PodState::Refused(s.message),
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

/// `IP:port` of an SFU pod's signaling listener (IPv6 in brackets).
fn signaling_endpoint(ip: &str) -> String {
    use crate::rooms::contract::SIGNALING_PORT;
    match ip.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V6(v6)) => format!("[{v6}]:{SIGNALING_PORT}"),
        _ => format!("{ip}:{SIGNALING_PORT}"),
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

/// Writes the status unless nothing changed (the participant count is not ours).
async fn write_status(
    ctx: &Context,
    meeting: &Meeting,
    previous: Option<&MeetingStatus>,
    st: &MeetingStatus,
) -> Result<(), Error> {
    if previous.is_some_and(|p| status::same(p, st)) {
        return Ok(());
    }
    let api: Api<Meeting> =
        Api::namespaced(ctx.client.clone(), &meeting.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": Meeting::api_version(&()),
        "kind": Meeting::kind(&()),
        "status": MeetingStatus { participants: None, ..st.clone() },
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
    // predate the status it just wrote. Once the cache shows an ended meeting, nothing
    // about it is needed any more.
    let uid = meeting.uid().unwrap_or_default();
    let before = {
        let mut memory = ctx.memory();
        let before = memory.announced(&uid).or(previous.and_then(|p| p.phase));
        if previous.and_then(|p| p.phase) == Some(MeetingPhase::Ended)
            && st.phase == Some(MeetingPhase::Ended)
        {
            memory.forget(&uid);
        } else if let Some(p) = st.phase {
            memory.announce(&uid, p);
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
