//! The decisions of a reconcile as pure functions, kept apart from the API calls so each
//! rule has a test: what the SFU pod's state is ([`classify`]), what to do about it
//! ([`sfu_step`]), and the meeting's status from its plan, what was observed and its
//! previous status ([`compute`], [`failed`], [`invalid`]).

use std::time::Duration;

use jiff::Timestamp;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use crate::api::{MeetingPhase, MeetingStatus};
use crate::schedule::Plan;

/// Condition: the meeting can be joined now.
pub const READY: &str = "Ready";
/// Condition: the SFU pod is as it should be (False while it failed or was refused;
/// True with reason `Replaced` once a replacement is ready).
pub const SFU_HEALTHY: &str = "SfuHealthy";
/// Condition: the operator's last reconcile of the meeting succeeded (False with the
/// failed stage as reason and the API server's message while it is retrying).
pub const RECONCILED: &str = "Reconciled";

/// What the operator saw of the meeting's SFU pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PodState {
    /// No pod.
    Absent,
    /// Created, not running yet (unscheduled, pulling, starting).
    Pending,
    /// Running and ready.
    Ready,
    /// Running, not ready (a failed readiness probe).
    NotReady,
    /// Failed or exited; it will be replaced.
    Failed(String),
    /// Being deleted.
    Terminating,
    /// The API server refused to create it, with its message.
    Refused(String),
}

/// What a pod's status says about the SFU in it.
pub fn classify(pod: &Pod) -> PodState {
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

/// What to do about a running meeting's SFU pod.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SfuStep {
    /// Nothing: the pod is there (ready or on its way).
    Keep,
    /// Delete the failed pod (a fresh one follows); never restart it in place.
    Replace(String),
    /// Create the pod now.
    Create,
    /// The pod is gone and was created recently: create the replacement after this.
    WaitToCreate(Duration),
}

/// The step for a pod in `existing` state (`None`: there is none), when a replacement
/// would have to wait `replacement_wait`.
pub fn sfu_step(existing: Option<&PodState>, replacement_wait: Option<Duration>) -> SfuStep {
    match existing {
        Some(PodState::Failed(why)) => SfuStep::Replace(why.clone()),
        Some(_) => SfuStep::Keep,
        None => match replacement_wait {
            Some(wait) => SfuStep::WaitToCreate(wait),
            None => SfuStep::Create,
        },
    }
}

/// Everything observed in one reconcile.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The SFU pod's state.
    pub pod: PodState,
    /// How often this operator has replaced the meeting's SFU pod.
    pub replacements: u32,
    /// The SFU pod's signaling endpoint (`IP:port`), once it has an IP.
    pub signaling: Option<String>,
}

/// The inputs that are the same for every rule.
#[derive(Clone, Debug)]
pub struct Context<'a> {
    /// The previous status, if any.
    pub previous: Option<&'a MeetingStatus>,
    /// The Meeting's metadata.generation.
    pub generation: Option<i64>,
    /// The join URL.
    pub url: &'a str,
    /// The SHA-256 of the host link's token.
    pub host_digest: &'a str,
    /// The clock.
    pub now: Timestamp,
}

/// The status of a meeting whose spec could not be used.
pub fn invalid(ctx: &Context<'_>, reason: &str) -> MeetingStatus {
    let mut st = MeetingStatus {
        phase: Some(MeetingPhase::Failed),
        observed_generation: ctx.generation,
        ..Default::default()
    };
    set_condition(ctx, &mut st, READY, false, "InvalidSpec", reason);
    st
}

/// The status of a meeting whose reconcile failed at `stage` with `message` (the API
/// server's words): what was known before stays (or, for a meeting seen for the first
/// time, the phase its plan implies and its URL), and `Reconciled` says what failed.
pub fn failed(ctx: &Context<'_>, plan: &Plan, stage: &str, message: &str) -> MeetingStatus {
    let mut st = ctx.previous.cloned().unwrap_or_default();
    st.url = Some(ctx.url.to_owned());
    // The host digest stays what it was: it is written only by a reconcile that got
    // through (its Secret exists), so a failed create is tried again.
    st.participants = None;
    st.phase = st.phase.or(Some(match plan {
        Plan::Wait { .. } => MeetingPhase::Scheduled,
        Plan::Run { .. } => MeetingPhase::Starting,
        Plan::End { .. } => MeetingPhase::Ended,
    }));
    st.conditions.retain(|c| c.type_ != RECONCILED);
    let mut reason: String = stage.chars().filter(char::is_ascii_alphanumeric).collect();
    reason.push_str("Failed");
    if let Some(first) = reason.get_mut(..1) {
        first.make_ascii_uppercase();
    }
    set_condition(ctx, &mut st, RECONCILED, false, &reason, message);
    if st.conditions.iter().all(|c| c.type_ != READY) {
        set_condition(ctx, &mut st, READY, false, &reason, message);
    }
    st
}

/// The status for `plan` given what was observed. `participants` is not set here: it
/// belongs to the participant poller, under a field manager of its own.
pub fn compute(ctx: &Context<'_>, plan: &Plan, observed: &Observed) -> MeetingStatus {
    let prev = ctx.previous;
    let prev_phase = prev.and_then(|p| p.phase);
    let mut st = MeetingStatus {
        url: Some(ctx.url.to_owned()),
        host_token_sha256: Some(ctx.host_digest.to_owned()),
        observed_generation: ctx.generation,
        started_at: prev.and_then(|p| p.started_at.clone()),
        ..Default::default()
    };
    match *plan {
        Plan::Wait { starts_at, wake_at } => {
            st.phase = Some(MeetingPhase::Scheduled);
            let msg = format!("starts at {starts_at}; its SFU starts at {wake_at}");
            set_condition(ctx, &mut st, READY, false, "Scheduled", &msg);
        }
        Plan::End { .. } => {
            st.phase = Some(MeetingPhase::Ended);
            st.ended_at = Some(
                prev.and_then(|p| p.ended_at.clone())
                    .unwrap_or(Time(ctx.now)),
            );
            set_condition(
                ctx,
                &mut st,
                READY,
                false,
                "Ended",
                "the meeting is over; its SFU is gone",
            );
        }
        Plan::Run { .. } => {
            let (phase, ready, reason, msg): (_, _, _, String) = match &observed.pod {
                PodState::Ready => (
                    MeetingPhase::Running,
                    true,
                    "SfuReady",
                    "participants can join".into(),
                ),
                // One failed probe does not take a running meeting back to Starting:
                // the participants are most likely still connected.
                PodState::NotReady if prev_phase == Some(MeetingPhase::Running) => (
                    MeetingPhase::Running,
                    false,
                    "SfuNotReady",
                    "the SFU fails its readiness probe".into(),
                ),
                PodState::NotReady | PodState::Pending => (
                    MeetingPhase::Starting,
                    false,
                    "SfuStarting",
                    "the SFU pod is starting".into(),
                ),
                PodState::Absent | PodState::Terminating => (
                    MeetingPhase::Starting,
                    false,
                    "SfuStarting",
                    "the SFU pod is being created".into(),
                ),
                PodState::Failed(why) => (
                    MeetingPhase::Starting,
                    false,
                    "SfuFailed",
                    format!("the SFU pod failed ({why}); it is being replaced"),
                ),
                PodState::Refused(why) => (
                    MeetingPhase::Starting,
                    false,
                    "SfuRefused",
                    format!("the API server refused the SFU pod: {why}"),
                ),
            };
            st.phase = Some(phase);
            if phase == MeetingPhase::Running {
                st.started_at.get_or_insert(Time(ctx.now));
                st.signaling = observed.signaling.clone();
            }
            set_condition(ctx, &mut st, READY, ready, reason, &msg);
            let (healthy, reason, msg) = match &observed.pod {
                PodState::Failed(why) => (false, "PodFailed", why.clone()),
                PodState::Refused(why) => (false, "PodRefused", why.clone()),
                _ if observed.replacements > 0 => (
                    true,
                    "Replaced",
                    format!("the SFU pod was replaced {} time(s)", observed.replacements),
                ),
                _ => (true, "AsExpected", "the SFU pod has not failed".to_owned()),
            };
            set_condition(ctx, &mut st, SFU_HEALTHY, healthy, reason, &msg);
        }
    }
    set_condition(
        ctx,
        &mut st,
        RECONCILED,
        true,
        "Succeeded",
        "the meeting's objects are as they should be",
    );
    st
}

/// Whether two statuses say the same, apart from what the participant poller owns.
pub fn same(a: &MeetingStatus, b: &MeetingStatus) -> bool {
    MeetingStatus {
        participants: None,
        ..a.clone()
    } == MeetingStatus {
        participants: None,
        ..b.clone()
    }
}

/// Adds a condition, keeping the previous transition time when its status is unchanged
/// (Kubernetes API conventions).
fn set_condition(
    ctx: &Context<'_>,
    st: &mut MeetingStatus,
    type_: &str,
    status: bool,
    reason: &str,
    message: &str,
) {
    let status = if status { "True" } else { "False" }.to_owned();
    let last_transition_time = ctx
        .previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == type_))
        .filter(|c| c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or(Time(ctx.now));
    st.conditions.push(Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message: message.to_owned(),
        observed_generation: ctx.generation,
        last_transition_time,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> Timestamp {
        s.parse().unwrap()
    }

    const RUN: Plan = Plan::Run {
        starts_at: Timestamp::UNIX_EPOCH,
        ends_at: Timestamp::MAX,
    };

    fn observed(pod: PodState) -> Observed {
        Observed {
            pod,
            replacements: 0,
            signaling: Some("127.1.0.9:8080".into()),
        }
    }

    fn ctx<'a>(previous: Option<&'a MeetingStatus>, now: &str) -> Context<'a> {
        Context {
            previous,
            generation: Some(3),
            url: "https://meet.example/j/tok",
            host_digest: "d1",
            now: t(now),
        }
    }

    fn cond<'a>(st: &'a MeetingStatus, type_: &str) -> &'a Condition {
        st.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn scheduled_meetings_already_have_their_url() {
        let plan = Plan::Wait {
            starts_at: t("2026-11-26T12:00:00Z"),
            wake_at: t("2026-11-26T11:59:00Z"),
        };
        let st = compute(
            &ctx(None, "2026-11-26T10:00:00Z"),
            &plan,
            &observed(PodState::Absent),
        );
        assert_eq!(st.phase, Some(MeetingPhase::Scheduled));
        assert_eq!(st.url.as_deref(), Some("https://meet.example/j/tok"));
        assert_eq!(st.observed_generation, Some(3));
        let ready = cond(&st, READY);
        assert_eq!(
            (ready.status.as_str(), ready.reason.as_str()),
            ("False", "Scheduled")
        );
        assert!(ready.message.contains("2026-11-26T12:00:00Z"));
    }

    #[test]
    fn starting_then_running_sets_started_at_once() {
        let st1 = compute(
            &ctx(None, "2026-11-26T10:00:00Z"),
            &RUN,
            &observed(PodState::Pending),
        );
        assert_eq!(st1.phase, Some(MeetingPhase::Starting));
        assert!(st1.started_at.is_none());
        let st2 = compute(
            &ctx(Some(&st1), "2026-11-26T10:00:05Z"),
            &RUN,
            &observed(PodState::Ready),
        );
        assert_eq!(st2.phase, Some(MeetingPhase::Running));
        assert_eq!(st2.started_at, Some(Time(t("2026-11-26T10:00:05Z"))));
        assert_eq!(cond(&st2, READY).status, "True");
        assert_eq!(
            cond(&st2, READY).last_transition_time,
            Time(t("2026-11-26T10:00:05Z"))
        );
        let st3 = compute(
            &ctx(Some(&st2), "2026-11-26T10:09:00Z"),
            &RUN,
            &observed(PodState::Ready),
        );
        assert_eq!(st3.started_at, st2.started_at);
        assert_eq!(
            cond(&st3, READY).last_transition_time,
            Time(t("2026-11-26T10:00:05Z")),
            "unchanged condition keeps its time"
        );
    }

    #[test]
    fn a_readiness_blip_does_not_flap_the_phase() {
        let running = compute(
            &ctx(None, "2026-11-26T10:00:00Z"),
            &RUN,
            &observed(PodState::Ready),
        );
        let blip = compute(
            &ctx(Some(&running), "2026-11-26T10:01:00Z"),
            &RUN,
            &observed(PodState::NotReady),
        );
        assert_eq!(blip.phase, Some(MeetingPhase::Running));
        assert_eq!(cond(&blip, READY).reason, "SfuNotReady");
        // But a pod that never was ready is still starting.
        let fresh = compute(
            &ctx(None, "2026-11-26T10:00:00Z"),
            &RUN,
            &observed(PodState::NotReady),
        );
        assert_eq!(fresh.phase, Some(MeetingPhase::Starting));
    }

    #[test]
    fn failures_and_replacements_show_in_sfu_healthy() {
        let running = compute(
            &ctx(None, "2026-11-26T10:00:00Z"),
            &RUN,
            &observed(PodState::Ready),
        );
        let failed = compute(
            &ctx(Some(&running), "2026-11-26T10:01:00Z"),
            &RUN,
            &observed(PodState::Failed("OOMKilled".into())),
        );
        assert_eq!(failed.phase, Some(MeetingPhase::Starting));
        let h = cond(&failed, SFU_HEALTHY);
        assert_eq!(
            (h.status.as_str(), h.reason.as_str(), h.message.as_str()),
            ("False", "PodFailed", "OOMKilled")
        );
        let back = compute(
            &ctx(Some(&failed), "2026-11-26T10:01:10Z"),
            &RUN,
            &Observed {
                pod: PodState::Ready,
                replacements: 1,
                signaling: Some("127.1.0.5:8080".into()),
            },
        );
        assert_eq!(back.phase, Some(MeetingPhase::Running));
        assert_eq!(
            back.signaling.as_deref(),
            Some("127.1.0.5:8080"),
            "the replacement pod's endpoint"
        );
        assert_eq!(
            back.started_at, running.started_at,
            "the meeting started once"
        );
        let h = cond(&back, SFU_HEALTHY);
        assert_eq!((h.status.as_str(), h.reason.as_str()), ("True", "Replaced"));
    }

    #[test]
    fn the_signaling_endpoint_is_published_only_while_running() {
        let starting = compute(
            &ctx(None, "2026-11-26T10:00:00Z"),
            &RUN,
            &observed(PodState::Pending),
        );
        assert_eq!(starting.signaling, None, "not before the SFU is ready");
        let running = compute(
            &ctx(Some(&starting), "2026-11-26T10:00:05Z"),
            &RUN,
            &observed(PodState::Ready),
        );
        assert_eq!(running.signaling.as_deref(), Some("127.1.0.9:8080"));
        let ended = compute(
            &ctx(Some(&running), "2026-11-26T12:00:00Z"),
            &Plan::End {
                ended_at: "2026-11-26T11:00:00Z".parse().unwrap(),
            },
            &observed(PodState::Absent),
        );
        assert_eq!(ended.signaling, None);
    }

    #[test]
    fn a_refused_pod_names_the_api_servers_reason() {
        let st = compute(
            &ctx(None, "2026-11-26T10:00:00Z"),
            &RUN,
            &observed(PodState::Refused("exceeded quota: cpu".into())),
        );
        assert_eq!(cond(&st, READY).reason, "SfuRefused");
        assert!(cond(&st, READY).message.contains("exceeded quota: cpu"));
        assert_eq!(cond(&st, SFU_HEALTHY).reason, "PodRefused");
    }

    #[test]
    fn participants_are_left_to_the_poller() {
        let mut previous = compute(
            &ctx(None, "2026-11-26T10:00:00Z"),
            &RUN,
            &observed(PodState::Ready),
        );
        previous.participants = Some(7);
        let next = compute(
            &ctx(Some(&previous), "2026-11-26T10:00:15Z"),
            &RUN,
            &observed(PodState::Ready),
        );
        assert_eq!(next.participants, None, "not in what the reconcile applies");
        assert!(same(&next, &previous), "so nothing to write");
        previous.participants = Some(8);
        assert!(same(&next, &previous));
        let ended = compute(
            &ctx(Some(&previous), "2026-11-26T12:00:00Z"),
            &Plan::End {
                ended_at: t("2026-11-26T11:00:00Z"),
            },
            &observed(PodState::Absent),
        );
        assert!(!same(&ended, &previous));
    }

    #[test]
    fn a_failed_reconcile_keeps_what_was_known_and_says_what_failed() {
        // Seen for the first time and the Service cannot be created.
        let st = failed(
            &ctx(None, "2026-11-26T10:00:00Z"),
            &RUN,
            "apply",
            "cannot apply Service raum-m: failed to allocate a serviceIP: range is full",
        );
        assert_eq!(st.phase, Some(MeetingPhase::Starting));
        assert_eq!(st.url.as_deref(), Some("https://meet.example/j/tok"));
        // The host digest says its Secret was made: a failed reconcile (which may be
        // that Secret's create) does not claim it, so the next one tries again.
        assert_eq!(st.host_token_sha256, None);
        let r = cond(&st, RECONCILED);
        assert_eq!(
            (r.status.as_str(), r.reason.as_str()),
            ("False", "ApplyFailed")
        );
        assert!(r.message.contains("range is full"));
        assert_eq!(cond(&st, READY).status, "False");
        // A running meeting whose re-apply fails stays Running (its pod is fine), with
        // its Ready condition as it was.
        let running = compute(
            &ctx(None, "2026-11-26T10:00:00Z"),
            &RUN,
            &observed(PodState::Ready),
        );
        assert_eq!(cond(&running, RECONCILED).status, "True");
        let st = failed(
            &ctx(Some(&running), "2026-11-26T10:05:00Z"),
            &RUN,
            "status",
            "the server is currently unable to handle the request",
        );
        assert_eq!(st.phase, Some(MeetingPhase::Running));
        assert_eq!(st.signaling, running.signaling);
        assert_eq!(cond(&st, READY), cond(&running, READY));
        assert_eq!(cond(&st, RECONCILED).reason, "StatusFailed");
        assert_eq!(
            cond(&st, RECONCILED).last_transition_time,
            Time(t("2026-11-26T10:05:00Z"))
        );
        // The next success sets it True again.
        let back = compute(
            &ctx(Some(&st), "2026-11-26T10:06:00Z"),
            &RUN,
            &observed(PodState::Ready),
        );
        assert_eq!(cond(&back, RECONCILED).status, "True");
        // A scheduled meeting seen for the first time is Scheduled.
        let wait = Plan::Wait {
            starts_at: t("2026-11-26T12:00:00Z"),
            wake_at: t("2026-11-26T11:59:00Z"),
        };
        let st = failed(&ctx(None, "2026-11-26T10:00:00Z"), &wait, "status", "x");
        assert_eq!(st.phase, Some(MeetingPhase::Scheduled));
    }

    #[test]
    fn failed_pods_are_replaced_absent_ones_created_after_the_backoff() {
        assert_eq!(sfu_step(None, None), SfuStep::Create);
        assert_eq!(
            sfu_step(None, Some(Duration::from_secs(2))),
            SfuStep::WaitToCreate(Duration::from_secs(2))
        );
        for keep in [
            PodState::Pending,
            PodState::Ready,
            PodState::NotReady,
            PodState::Terminating,
        ] {
            assert_eq!(
                sfu_step(Some(&keep), Some(Duration::from_secs(2))),
                SfuStep::Keep
            );
        }
        assert_eq!(
            sfu_step(Some(&PodState::Failed("OOMKilled".into())), None),
            SfuStep::Replace("OOMKilled".into())
        );
    }

    #[test]
    fn pods_are_classified_by_phase_readiness_and_deletion() {
        let pod = |yaml: &str| -> Pod { serde_yaml::from_str(yaml).unwrap() };
        assert_eq!(classify(&pod("metadata: {name: p}")), PodState::Pending);
        assert_eq!(
            classify(&pod(
                "metadata: {name: p}\nstatus: {phase: Running, conditions: [{type: Ready, status: 'True'}]}"
            )),
            PodState::Ready
        );
        assert_eq!(
            classify(&pod(
                "metadata: {name: p}\nstatus: {phase: Running, conditions: [{type: Ready, status: 'False'}]}"
            )),
            PodState::NotReady
        );
        assert_eq!(
            classify(&pod(
                "metadata: {name: p}\nstatus: {phase: Failed, containerStatuses: [{name: sfu, image: i, imageID: '', ready: false, restartCount: 0, state: {terminated: {exitCode: 137, reason: OOMKilled}}}]}"
            )),
            PodState::Failed("OOMKilled".into())
        );
        assert_eq!(
            classify(&pod("metadata: {name: p}\nstatus: {phase: Succeeded}")),
            PodState::Failed("phase Succeeded".into())
        );
        assert_eq!(
            classify(&pod(
                "metadata: {name: p, deletionTimestamp: '2026-11-26T10:00:00Z'}\nstatus: {phase: Running}"
            )),
            PodState::Terminating
        );
    }

    #[test]
    fn ended_meetings_keep_their_url_and_record_when_they_ended_once() {
        let running = compute(
            &ctx(None, "2026-11-26T10:00:00Z"),
            &RUN,
            &observed(PodState::Ready),
        );
        let end = Plan::End {
            ended_at: t("2026-11-26T11:00:00Z"),
        };
        let e1 = compute(
            &ctx(Some(&running), "2026-11-26T11:00:01Z"),
            &end,
            &observed(PodState::Absent),
        );
        assert_eq!(e1.phase, Some(MeetingPhase::Ended));
        assert_eq!(e1.ended_at, Some(Time(t("2026-11-26T11:00:01Z"))));
        assert_eq!(e1.participants, None);
        assert_eq!(e1.started_at, running.started_at);
        let e2 = compute(
            &ctx(Some(&e1), "2026-11-26T12:00:00Z"),
            &end,
            &observed(PodState::Absent),
        );
        assert_eq!(e2.ended_at, e1.ended_at);
        assert!(!e2.conditions.iter().any(|c| c.type_ == SFU_HEALTHY));
    }

    #[test]
    fn an_invalid_spec_fails_with_the_reason() {
        let st = invalid(
            &ctx(None, "2026-11-26T10:00:00Z"),
            "endsAt must be later than startsAt",
        );
        assert_eq!(st.phase, Some(MeetingPhase::Failed));
        assert!(st.url.is_none());
        assert_eq!(
            cond(&st, READY).message,
            "endsAt must be later than startsAt"
        );
    }
}
