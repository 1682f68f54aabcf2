//! The `Meeting` custom resource: one video conference, its schedule and its limits.
//!
//! The API server refuses bad objects itself: the schema carries ranges and lengths,
//! and CEL rules (`x-kubernetes-validations`) carry the cross-field checks, each with a
//! message a person understands. The operator still validates what it reads (see
//! [`MeetingSpec::schedule`]), because objects written before a schema change or files
//! read by `raum standalone` never passed the API server.

use std::collections::BTreeMap;

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default for `spec.maxParticipants`.
pub const DEFAULT_MAX_PARTICIPANTS: u32 = 50;
/// Smallest meeting: a conversation needs two people.
pub const MIN_PARTICIPANTS: u32 = 2;
/// Largest meeting: everything must fit one SFU process.
pub const MAX_PARTICIPANTS: u32 = 500;
/// Default for `spec.media.maxVideoBitrateKbps`.
pub const DEFAULT_MAX_VIDEO_BITRATE_KBPS: u32 = 1500;

/// What a meeting should be: its title, when it runs, who and what may take part, and
/// where its SFU pod may be placed.
// Each printcolumn repeats `type_ = "string"`, which clippy takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "raum.dev",
    version = "v1alpha1",
    kind = "Meeting",
    plural = "meetings",
    singular = "meeting",
    shortname = "mtg",
    category = "raum",
    namespaced,
    status = "MeetingStatus",
    doc = "A video conference. raum runs one ephemeral SFU pod for it while it lasts and publishes its join URL in status.url. Nothing said or shown in it is stored.",
    printcolumn(
        name = "Phase",
        type_ = "string",
        json_path = ".status.phase",
        description = "Where the meeting is in its life: Scheduled, Starting, Running, Ended or Failed"
    ),
    printcolumn(
        name = "Participants",
        type_ = "integer",
        json_path = ".status.participants",
        description = "People connected right now"
    ),
    printcolumn(
        name = "URL",
        type_ = "string",
        json_path = ".status.url",
        description = "The join URL to give to participants"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [
    {
        "rule": "!has(self.endsAt) || !has(self.duration)",
        "message": "set either endsAt or duration, not both",
        "reason": "FieldValueForbidden"
    },
    {
        "rule": "!has(self.startsAt) || !has(self.endsAt) || self.endsAt > self.startsAt",
        "message": "endsAt must be later than startsAt",
        "fieldPath": ".endsAt",
        "reason": "FieldValueInvalid"
    }
]))]
pub struct MeetingSpec {
    /// The meeting's title, shown to participants on the join page. 1 to 200 characters,
    /// not only spaces.
    #[schemars(length(min = 1, max = 200))]
    #[schemars(extend("x-kubernetes-validations" = [
        {"rule": "self.trim().size() > 0", "message": "title must not be empty"}
    ]))]
    pub title: String,

    /// When the meeting starts (RFC 3339, e.g. 2026-12-01T09:00:00+01:00). The SFU pod is
    /// started shortly before. Without it the meeting starts as soon as it is created.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub starts_at: Option<Time>,

    /// When the meeting ends (RFC 3339). Must be later than startsAt; do not combine with
    /// duration. Without endsAt and duration the operator's default maximum length
    /// applies. May be changed while the meeting runs to extend or shorten it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ends_at: Option<Time>,

    /// How long the meeting lasts from its start, as hours, minutes and seconds
    /// (e.g. 45m, 1h30m, 2h); between 1m and 24h. Do not combine with endsAt.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 32))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "self.matches('^([0-9]+h)?([0-9]+m)?([0-9]+s)?$') && self != ''",
            "message": "duration must be hours, minutes and seconds such as 45m, 1h30m or 2h"
        },
        {
            "rule": "!self.matches('^([0-9]+h)?([0-9]+m)?([0-9]+s)?$') || self == '' || (duration(self) >= duration('1m') && duration(self) <= duration('24h'))",
            "message": "duration must be between 1m and 24h"
        }
    ]))]
    pub duration: Option<String>,

    /// The most people who may be in the meeting at once (2 to 500). One more is told
    /// the meeting is full.
    #[serde(default = "default_max_participants")]
    #[schemars(range(min = 2, max = 500))]
    pub max_participants: u32,

    /// Which media participants may send.
    #[serde(default)]
    pub media: MediaSpec,

    /// The in-meeting text chat. Messages go only to the other participants and are
    /// never stored.
    #[serde(default)]
    pub chat: ChatSpec,

    /// Whether participants may unmute themselves after a host muted them (true).
    /// False: only a host lifts the mute; the SFU forwards nothing of the muted media
    /// until then, whatever a participant's browser sends.
    #[serde(default = "default_true")]
    pub participants_may_unmute: bool,

    /// Whether participants wait in a lobby until a host lets them in (false). Hosts
    /// (who join with the host link, from the Secret `raum-<meeting>-host`) always come in.
    #[serde(default)]
    pub lobby: bool,

    /// What happens while no host is in the meeting: `open` (the default: participants
    /// meet without one) or `wait` (participants wait until a host has joined, then
    /// come in, or are let in one by one when `lobby` is on).
    #[serde(default)]
    pub without_host: WithoutHost,

    /// Who may share a screen (one at a time, shown large to everyone): `everyone`
    /// (the default), `hosts` or `nobody`.
    #[serde(default)]
    pub screen_share: ScreenShare,

    /// Scheduling and resources of the meeting's SFU pod.
    #[serde(default)]
    pub sfu: SfuSpec,
}

/// What happens while no host is in a meeting (`spec.withoutHost`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum WithoutHost {
    /// Participants meet without a host.
    #[default]
    Open,
    /// Participants wait until a host has joined.
    Wait,
}

impl WithoutHost {
    /// The spec's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "open",
            Self::Wait => "wait",
        }
    }
}

impl std::str::FromStr for WithoutHost {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "open" => Ok(Self::Open),
            "wait" => Ok(Self::Wait),
            other => Err(format!("{other:?} is neither open nor wait")),
        }
    }
}

/// Who may share a screen in a meeting (`spec.screenShare`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ScreenShare {
    /// Everyone.
    #[default]
    Everyone,
    /// Hosts only.
    Hosts,
    /// Nobody.
    Nobody,
}

impl ScreenShare {
    /// The spec's spelling.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Everyone => "everyone",
            Self::Hosts => "hosts",
            Self::Nobody => "nobody",
        }
    }
}

impl std::str::FromStr for ScreenShare {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "everyone" => Ok(Self::Everyone),
            "hosts" => Ok(Self::Hosts),
            "nobody" => Ok(Self::Nobody),
            other => Err(format!("{other:?} is none of everyone, hosts, nobody")),
        }
    }
}

fn default_max_participants() -> u32 {
    DEFAULT_MAX_PARTICIPANTS
}

fn default_true() -> bool {
    true
}

fn default_max_video_bitrate_kbps() -> u32 {
    DEFAULT_MAX_VIDEO_BITRATE_KBPS
}

/// Which media participants may send.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MediaSpec {
    /// Whether participants may send audio (microphone). Default true.
    #[serde(default = "default_true")]
    pub audio: bool,

    /// Whether participants may send video (camera). Default true.
    #[serde(default = "default_true")]
    pub video: bool,

    /// The highest video bitrate a participant may send, in kilobits per second
    /// (100 to 8000, default 1500).
    #[serde(default = "default_max_video_bitrate_kbps")]
    #[schemars(range(min = 100, max = 8000))]
    pub max_video_bitrate_kbps: u32,
}

impl Default for MediaSpec {
    fn default() -> Self {
        Self {
            audio: true,
            video: true,
            max_video_bitrate_kbps: DEFAULT_MAX_VIDEO_BITRATE_KBPS,
        }
    }
}

/// The in-meeting text chat.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ChatSpec {
    /// Whether participants may chat. Default true. Chat lives only in the memory of the
    /// meeting's SFU and of the participants' browsers.
    #[serde(default = "default_true")]
    pub enabled: bool,
}

impl Default for ChatSpec {
    fn default() -> Self {
        Self { enabled: true }
    }
}

/// Scheduling and resources of the meeting's SFU pod. The pod has no volumes, whatever
/// is set here.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SfuSpec {
    /// CPU and memory requests and limits of the SFU container. Without them the
    /// operator's defaults apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Node labels the SFU pod must be scheduled on (e.g. nodes with public UDP
    /// reachability).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,

    /// Taints the SFU pod tolerates.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
}

/// Where a meeting is in its life. The variants carry no doc comments on purpose:
/// schemars would turn documented variants into a `oneOf`, which is not a structural
/// schema; the field that holds a phase documents the values.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum MeetingPhase {
    // Accepted; waiting for its start time. Nothing runs yet.
    Scheduled,
    // The SFU pod is being created or is not ready yet.
    Starting,
    // The SFU pod is ready; participants can join by the URL.
    Running,
    // The end time has passed; the SFU pod is gone.
    Ended,
    // The meeting cannot run; see the conditions for why.
    Failed,
}

impl MeetingPhase {
    /// The phase's name as written in `status.phase`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "Scheduled",
            Self::Starting => "Starting",
            Self::Running => "Running",
            Self::Ended => "Ended",
            Self::Failed => "Failed",
        }
    }
}

/// What raum observed about a meeting. Written by the operator only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MeetingStatus {
    /// Where the meeting is in its life: Scheduled, Starting, Running, Ended or Failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phase: Option<MeetingPhase>,

    /// The join URL to give to participants. It carries an unguessable token and stays
    /// the same for the meeting's whole life.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,

    /// The SHA-256 (hex) of the host link's token, by which the gateway knows a host
    /// link. The link itself is not in the status (whoever may read Meetings would be
    /// a host): it is in the Secret `raum-<meeting>-host`, key `url`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_token_sha256: Option<String>,

    /// How many people are connected right now, as reported by the meeting's SFU.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participants: Option<u32>,

    /// Where the gateway reaches the SFU's signaling endpoint (`IP:port` of the SFU
    /// pod) while the meeting runs. Pod to pod, so NetworkPolicies can admit exactly
    /// the gateway pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signaling: Option<String>,

    /// When the SFU first became ready.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,

    /// When the meeting ended and its SFU pod was removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ended_at: Option<Time>,

    /// The latest observations of the meeting's state (e.g. Ready), following the
    /// Kubernetes API conventions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The metadata.generation this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// When a meeting runs, as the operator reads it from the spec.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Schedule {
    /// The start; `None` means "as soon as it is created".
    pub starts_at: Option<Timestamp>,
    /// How the end is given.
    pub end: End,
}

/// How a meeting's end is given.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// An absolute instant (`endsAt`).
    At(Timestamp),
    /// A length from the start (`duration`).
    After(SignedDuration),
    /// Neither: the operator's default maximum length applies.
    Default,
}

/// Why a Meeting spec cannot be used, for objects that did not pass the API server's
/// validation (older objects, standalone files).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SpecError {
    /// Both `endsAt` and `duration` are set.
    #[error("set either endsAt or duration, not both")]
    EndTwice,
    /// `endsAt` is not later than `startsAt`.
    #[error("endsAt ({ends_at}) must be later than startsAt ({starts_at})")]
    EndsBeforeStart {
        /// The start as given.
        starts_at: Timestamp,
        /// The end as given.
        ends_at: Timestamp,
    },
    /// `duration` does not parse or is out of range.
    #[error(
        "duration {0:?} must be hours, minutes and seconds between 1m and 24h, such as 45m or 1h30m"
    )]
    BadDuration(String),
    /// `maxParticipants` out of range.
    #[error("maxParticipants {0} must be between {MIN_PARTICIPANTS} and {MAX_PARTICIPANTS}")]
    MaxParticipants(u32),
    /// Empty title.
    #[error("title must not be empty")]
    EmptyTitle,
}

impl MeetingSpec {
    /// Checks the rules the CRD schema enforces, for specs that did not come through
    /// the API server, and returns the meeting's schedule.
    pub fn schedule(&self) -> Result<Schedule, SpecError> {
        if self.title.trim().is_empty() {
            return Err(SpecError::EmptyTitle);
        }
        if !(MIN_PARTICIPANTS..=MAX_PARTICIPANTS).contains(&self.max_participants) {
            return Err(SpecError::MaxParticipants(self.max_participants));
        }
        let starts_at = self.starts_at.as_ref().map(|t| t.0);
        let end = match (&self.ends_at, &self.duration) {
            (Some(_), Some(_)) => return Err(SpecError::EndTwice),
            (Some(ends_at), None) => {
                if let Some(starts_at) = starts_at
                    && ends_at.0 <= starts_at
                {
                    return Err(SpecError::EndsBeforeStart {
                        starts_at,
                        ends_at: ends_at.0,
                    });
                }
                End::At(ends_at.0)
            }
            (None, Some(d)) => End::After(parse_meeting_duration(d)?),
            (None, None) => End::Default,
        };
        Ok(Schedule { starts_at, end })
    }
}

/// Parses `spec.duration`: Go-style hours, minutes and seconds (`1h30m`), 1m to 24h,
/// the same grammar and bounds as the CRD's CEL rules.
pub fn parse_meeting_duration(s: &str) -> Result<SignedDuration, SpecError> {
    let bad = || SpecError::BadDuration(s.to_owned());
    let mut rest = s;
    let mut total: i64 = 0;
    // Units must appear in this order, each at most once, as in the CEL pattern.
    for (unit, secs) in [('h', 3600_i64), ('m', 60), ('s', 1)] {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        if digits > 0 && rest[digits..].starts_with(unit) {
            let n: i64 = rest[..digits].parse().map_err(|_| bad())?;
            total = n
                .checked_mul(secs)
                .and_then(|v| total.checked_add(v))
                .ok_or_else(bad)?;
            rest = &rest[digits + 1..];
        }
    }
    if s.is_empty() || !rest.is_empty() || !(60..=24 * 3600).contains(&total) {
        return Err(bad());
    }
    Ok(SignedDuration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(yaml: &str) -> MeetingSpec {
        serde_yaml::from_str(yaml).expect("spec parses")
    }

    #[test]
    fn defaults_fill_an_almost_empty_spec() {
        let s = spec("title: Elternabend");
        assert_eq!(s.max_participants, 50);
        assert!(s.media.audio && s.media.video);
        assert_eq!(s.media.max_video_bitrate_kbps, 1500);
        assert!(s.chat.enabled);
        assert_eq!(s.sfu, SfuSpec::default());
        assert_eq!(
            s.schedule(),
            Ok(Schedule {
                starts_at: None,
                end: End::Default
            })
        );
    }

    #[test]
    fn schedule_from_start_and_end() {
        let s = spec(
            "title: t\nstartsAt: 2026-12-01T09:00:00+01:00\nendsAt: 2026-12-01T10:00:00+01:00",
        );
        let sch = s.schedule().unwrap();
        assert_eq!(sch.starts_at, Some("2026-12-01T08:00:00Z".parse().unwrap()));
        assert_eq!(sch.end, End::At("2026-12-01T09:00:00Z".parse().unwrap()));
    }

    #[test]
    fn end_before_start_is_refused() {
        let s = spec("title: t\nstartsAt: 2026-12-01T10:00:00Z\nendsAt: 2026-12-01T10:00:00Z");
        assert!(matches!(
            s.schedule(),
            Err(SpecError::EndsBeforeStart { .. })
        ));
    }

    #[test]
    fn end_and_duration_together_are_refused() {
        let s = spec("title: t\nendsAt: 2026-12-01T10:00:00Z\nduration: 1h");
        assert_eq!(s.schedule(), Err(SpecError::EndTwice));
    }

    #[test]
    fn blank_title_and_participants_out_of_range_are_refused() {
        assert_eq!(spec("title: '  '").schedule(), Err(SpecError::EmptyTitle));
        assert_eq!(
            spec("title: t\nmaxParticipants: 1").schedule(),
            Err(SpecError::MaxParticipants(1))
        );
        assert_eq!(
            spec("title: t\nmaxParticipants: 501").schedule(),
            Err(SpecError::MaxParticipants(501))
        );
    }

    #[test]
    fn durations_follow_the_cel_grammar_and_bounds() {
        let ok = |s: &str, secs: i64| {
            assert_eq!(
                parse_meeting_duration(s),
                Ok(SignedDuration::from_secs(secs))
            )
        };
        ok("1m", 60);
        ok("45m", 45 * 60);
        ok("1h30m", 90 * 60);
        ok("2h", 7200);
        ok("90s", 90);
        ok("24h", 86400);
        ok("1h0m30s", 3630);
        for bad in [
            "",
            "0m",
            "59s",
            "24h1s",
            "25h",
            "1d",
            "m",
            "30",
            "1m1h",
            "1h1h",
            "-1h",
            " 1h",
            "1H",
            "1h 30m",
            "99999999999999999999h",
        ] {
            assert!(parse_meeting_duration(bad).is_err(), "{bad:?} accepted");
        }
    }

    #[test]
    fn status_serializes_in_camel_case_without_empty_fields() {
        let st = MeetingStatus {
            phase: Some(MeetingPhase::Running),
            participants: Some(3),
            observed_generation: Some(2),
            ..Default::default()
        };
        let v = serde_json::to_value(&st).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"phase": "Running", "participants": 3, "observedGeneration": 2})
        );
    }
}
