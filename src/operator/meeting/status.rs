//! A meeting's status as a pure function of its plan, what was observed of its SFU pod
//! and its previous status. Kept apart from the API calls so each rule has a test.

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};

use super::lifecycle::Plan;
use crate::api::{MeetingPhase, MeetingStatus};

/// Condition: the meeting can be joined now.
pub const READY: &str = "Ready";
/// Condition: the SFU pod is as it should be (False while it failed or was refused;
/// True with reason `Replaced` once a replacement is ready).
pub const SFU_HEALTHY: &str = "SfuHealthy";

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

/// Everything observed in one reconcile.
#[derive(Clone, Debug)]
pub struct Observed {
    /// The SFU pod's state.
    pub pod: PodState,
    /// Participants reported by the SFU, when it answered.
    pub participants: Option<u32>,
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

/// The status for `plan` given what was observed.
pub fn compute(ctx: &Context<'_>, plan: &Plan, observed: &Observed) -> MeetingStatus {
    let prev = ctx.previous;
    let prev_phase = prev.and_then(|p| p.phase);
    let mut st = MeetingStatus {
        url: Some(ctx.url.to_owned()),
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
                st.participants = observed
                    .participants
                    .or_else(|| prev.and_then(|p| p.participants));
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
    st
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
            participants: None,
            replacements: 0,
            signaling: Some("127.1.0.9:8080".into()),
        }
    }

    fn ctx<'a>(previous: Option<&'a MeetingStatus>, now: &str) -> Context<'a> {
        Context {
            previous,
            generation: Some(3),
            url: "https://meet.example/j/tok",
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
                participants: Some(4),
                replacements: 1,
                signaling: Some("127.1.0.5:8080".into()),
            },
        );
        assert_eq!(back.phase, Some(MeetingPhase::Running));
        assert_eq!(back.participants, Some(4));
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
    fn participants_keep_their_last_value_when_the_sfu_does_not_answer() {
        let a = compute(
            &ctx(None, "2026-11-26T10:00:00Z"),
            &RUN,
            &Observed {
                pod: PodState::Ready,
                participants: Some(7),
                replacements: 0,
                signaling: None,
            },
        );
        let b = compute(
            &ctx(Some(&a), "2026-11-26T10:00:15Z"),
            &RUN,
            &observed(PodState::Ready),
        );
        assert_eq!(b.participants, Some(7));
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
