//! The `RetentionPolicy` custom resource: how long the shared access log keeps its
//! entries (eight weeks by default) and when the pruning runs.
//!
//! Holds placed by compliance staff are annotations on the policy, not spec fields, so
//! that a person allowed to place a hold needs no right to change the policy itself.

use std::fmt;
use std::str::FromStr;

use jiff::SignedDuration;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Default for `spec.maxAge`: the eight weeks the privacy notice promises.
pub const DEFAULT_MAX_AGE: &str = "56d";
/// Default for `spec.schedule`: nightly at 03:17, off the full hour when many jobs run.
pub const DEFAULT_SCHEDULE: &str = "17 3 * * *";
/// Default for `spec.timeZone`.
pub const DEFAULT_TIME_ZONE: &str = "Etc/UTC";
/// Default for `spec.accessLog.claimName`.
pub const DEFAULT_ACCESS_LOG_CLAIM: &str = "raum-access-log";

/// How long access-log entries are kept, when pruning runs and where the log lives.
/// Holds are not set here but as annotations on the policy.
// Each printcolumn repeats `type_ = "string"`, which clippy takes for a duplicate.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "raum.dev",
    version = "v1alpha1",
    kind = "RetentionPolicy",
    plural = "retentionpolicies",
    singular = "retentionpolicy",
    shortname = "rp",
    category = "raum",
    namespaced,
    status = "RetentionPolicyStatus",
    doc = "How long the shared access log keeps entries and when pruning runs. Entries older than maxAge are deleted unless a hold annotation (raum.dev/hold or hold.raum.dev/<id>) covers them.",
    printcolumn(
        name = "Schedule",
        type_ = "string",
        json_path = ".spec.schedule",
        description = "When pruning runs (cron)"
    ),
    printcolumn(
        name = "Max Age",
        type_ = "string",
        json_path = ".spec.maxAge",
        description = "How long entries are kept"
    ),
    printcolumn(
        name = "Holds",
        type_ = "integer",
        json_path = ".status.holdCount",
        description = "Holds in force"
    ),
    printcolumn(
        name = "Last Run",
        type_ = "date",
        json_path = ".status.lastRun.finished",
        description = "When the last pruning run finished"
    ),
    printcolumn(
        name = "Outcome",
        type_ = "string",
        json_path = ".status.lastRun.outcome",
        description = "How the last pruning run ended"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicySpec {
    /// How long access-log entries are kept: a whole number of hours, days or weeks
    /// (e.g. 56d, 8w, 1344h). Default 56d, the eight weeks of the privacy notice.
    #[serde(default = "default_max_age")]
    #[schemars(length(max = 16))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "self.matches('^[1-9][0-9]{0,5}[hdw]$')",
            "message": "maxAge must be a whole number of hours, days or weeks, such as 56d, 8w or 1344h"
        }
    ]))]
    pub max_age: String,

    /// When pruning runs, as five cron fields (minute hour day-of-month month
    /// day-of-week, e.g. "17 3 * * *") or a macro such as @daily. Default "17 3 * * *".
    #[serde(default = "default_schedule")]
    #[schemars(length(max = 128))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "self.matches('^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|[0-9A-Za-z*/,?-]+( +[0-9A-Za-z*/,?-]+){4})$')",
            "message": "schedule must be five cron fields (minute hour day-of-month month day-of-week), such as \"17 3 * * *\", or a macro such as @daily"
        }
    ]))]
    pub schedule: String,

    /// The IANA time zone the schedule is read in (e.g. Europe/Berlin). Default Etc/UTC.
    #[serde(default = "default_time_zone")]
    #[schemars(length(max = 64))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "self.matches('^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+){0,2}$')",
            "message": "timeZone must be an IANA time zone name such as Europe/Berlin or Etc/UTC"
        }
    ]))]
    pub time_zone: String,

    /// Pause pruning. While true no pruning runs start; entries are kept longer than
    /// maxAge, so use it only briefly.
    #[serde(default)]
    pub suspend: bool,

    /// Where the shared access log lives.
    #[serde(default)]
    pub access_log: AccessLogLocation,
}

fn default_max_age() -> String {
    DEFAULT_MAX_AGE.to_owned()
}

fn default_schedule() -> String {
    DEFAULT_SCHEDULE.to_owned()
}

fn default_time_zone() -> String {
    DEFAULT_TIME_ZONE.to_owned()
}

fn default_access_log_claim() -> String {
    DEFAULT_ACCESS_LOG_CLAIM.to_owned()
}

/// Where the shared access log lives: the PersistentVolumeClaim the gateways write to
/// and the directory inside it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccessLogLocation {
    /// The PersistentVolumeClaim holding the access log, in the policy's namespace.
    /// Default raum-access-log.
    #[serde(default = "default_access_log_claim")]
    #[schemars(length(min = 1, max = 253))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "self.matches('^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$')",
            "message": "claimName must be the name of a PersistentVolumeClaim: lower-case letters, digits, '-' and '.'"
        }
    ]))]
    pub claim_name: String,

    /// The directory inside the claim that holds the access-log files, relative to the
    /// claim's root. Default: the root.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    #[schemars(length(max = 255))]
    #[schemars(extend("x-kubernetes-validations" = [
        {
            "rule": "!self.startsWith('/') && !self.split('/').exists(p, p == '..')",
            "message": "path must be relative to the claim's root and must not contain '..'"
        }
    ]))]
    pub path: String,
}

impl Default for AccessLogLocation {
    fn default() -> Self {
        Self {
            claim_name: default_access_log_claim(),
            path: String::new(),
        }
    }
}

/// What raum observed about a retention policy. Written by the operator (CronJob,
/// holds) and by the pruner (last run).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionPolicyStatus {
    /// The name of the CronJob that runs the pruning for this policy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cron_job: Option<String>,

    /// The holds in force, read from the policy's annotations.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub holds: Vec<HoldStatus>,

    /// How many holds are in force (the length of holds, for `kubectl get`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hold_count: Option<u32>,

    /// The latest pruning run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_run: Option<PruneRun>,

    /// When the latest successful pruning run finished (kept while later runs fail).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_success: Option<Time>,

    /// The latest observations of the policy's state (e.g. HoldsValid), following the
    /// Kubernetes API conventions.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,

    /// The metadata.generation this status was computed from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// One hold as the operator read it from an annotation.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct HoldStatus {
    /// The hold's id: the part after hold.raum.dev/, or "all" for raum.dev/hold.
    pub id: String,

    /// The held interval as given ("start/end", ".." for an open end); absent when the
    /// hold covers everything.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,

    /// The reason given with the hold, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,

    /// When the operator first saw this hold.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub first_seen: Option<Time>,
}

/// A summary of one pruning run: counts only, never entries.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PruneRun {
    /// When the run started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<Time>,
    /// When the run finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished: Option<Time>,
    /// Whole files deleted.
    #[serde(default)]
    pub files_deleted: u64,
    /// Files rewritten without their expired entries.
    #[serde(default)]
    pub files_rewritten: u64,
    /// Entries removed.
    #[serde(default)]
    pub entries_removed: u64,
    /// Expired entries kept because a hold covers them.
    #[serde(default)]
    pub entries_kept_for_holds: u64,
    /// How the run ended: Succeeded or Failed (with the reason).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<String>,
}

/// A parsed `spec.maxAge`: a whole number of hours, days or weeks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MaxAge {
    hours: u32,
}

impl MaxAge {
    /// The age as a duration.
    pub fn duration(self) -> SignedDuration {
        SignedDuration::from_hours(i64::from(self.hours))
    }

    /// The age in whole hours.
    pub fn hours(self) -> u32 {
        self.hours
    }
}

/// `spec.maxAge` does not parse.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("maxAge {0:?} must be a whole number of hours, days or weeks, such as 56d, 8w or 1344h")]
pub struct BadMaxAge(pub String);

impl FromStr for MaxAge {
    type Err = BadMaxAge;

    /// Same grammar as the CRD's CEL rule: 1 to 6 digits, no leading zero, then h, d or w.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || BadMaxAge(s.to_owned());
        let (digits, unit) = s.split_at(s.len().checked_sub(1).ok_or_else(bad)?);
        if digits.is_empty()
            || digits.len() > 6
            || digits.starts_with('0')
            || !digits.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(bad());
        }
        let n: u32 = digits.parse().map_err(|_| bad())?;
        let per = match unit {
            "h" => 1,
            "d" => 24,
            "w" => 24 * 7,
            _ => return Err(bad()),
        };
        Ok(Self { hours: n * per })
    }
}

impl fmt::Display for MaxAge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}h", self.hours)
    }
}

impl RetentionPolicySpec {
    /// The parsed maxAge.
    pub fn max_age(&self) -> Result<MaxAge, BadMaxAge> {
        self.max_age.parse()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_spec_means_eight_weeks_nightly() {
        let spec: RetentionPolicySpec = serde_yaml::from_str("{}").unwrap();
        assert_eq!(spec.max_age, "56d");
        assert_eq!(spec.max_age().unwrap().hours(), 56 * 24);
        assert_eq!(spec.schedule, DEFAULT_SCHEDULE);
        assert_eq!(spec.time_zone, "Etc/UTC");
        assert!(!spec.suspend);
        assert_eq!(spec.access_log.claim_name, "raum-access-log");
        assert_eq!(spec.access_log.path, "");
    }

    #[test]
    fn max_age_units_agree() {
        let h = |s: &str| s.parse::<MaxAge>().unwrap().hours();
        assert_eq!(h("56d"), h("8w"));
        assert_eq!(h("8w"), h("1344h"));
        assert_eq!(h("1h"), 1);
        assert_eq!(h("999999w"), 999_999 * 168);
        assert_eq!(
            "8w".parse::<MaxAge>().unwrap().duration(),
            SignedDuration::from_hours(1344)
        );
    }

    #[test]
    fn malformed_max_age_is_refused_with_its_value() {
        for bad in [
            "", "d", "0d", "056d", "8", "8 w", "8W", "8m", "-1d", "1.5d", "1000000d", "8ww", "w8",
        ] {
            let err = bad.parse::<MaxAge>().unwrap_err();
            assert_eq!(err, BadMaxAge(bad.to_owned()));
            assert!(err.to_string().contains("56d, 8w or 1344h"));
        }
    }
}
