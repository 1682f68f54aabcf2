//! What a RetentionPolicy needs, built as pure functions: the CronJob that prunes the
//! access log, and the ServiceAccount, Role and RoleBinding its pods run with (read
//! this one policy, write its status; nothing else).

use std::collections::BTreeMap;

use k8s_openapi::api::batch::v1::{CronJob, CronJobSpec, JobSpec, JobTemplateSpec};
use k8s_openapi::api::core::v1::{
    Affinity, Container, PersistentVolumeClaimVolumeSource, PodAffinity, PodAffinityTerm, PodSpec,
    PodTemplateSpec, ResourceRequirements, ServiceAccount, Volume, VolumeMount,
};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use kube::{Resource, ResourceExt};

use crate::api::RetentionPolicy;
use crate::operator::names::{child_name, managed_labels};
use crate::operator::pod_security;

/// Where the access-log claim is mounted in the pruning pod.
pub const MOUNT_PATH: &str = "/var/lib/raum/access-log";
/// The label the gateway pods carry; pruning pods run on the same node as one of them,
/// so that a ReadWriteOnce claim can be shared.
pub const GATEWAY_LABEL: (&str, &str) = ("app.kubernetes.io/name", "raum-gateway");
/// A missed run (operator or control plane down) still starts within this many seconds.
pub const STARTING_DEADLINE_SECONDS: i64 = 6 * 3600;
/// Longest a pruning Job may run.
pub const ACTIVE_DEADLINE_SECONDS: i64 = 3600;
/// Retries of a failed pruning pod before the Job fails.
pub const BACKOFF_LIMIT: i32 = 2;
/// Finished Jobs kept, for `kubectl get jobs` and the CronJob's history.
pub const HISTORY_LIMIT: i32 = 3;

/// The name shared by a policy's CronJob, ServiceAccount, Role and RoleBinding. At most
/// 52 characters: the CronJob controller appends 11 to name its Jobs.
pub fn prune_name(policy: &str) -> String {
    child_name("raum-prune", policy, 52)
}

fn labels(policy: &str) -> BTreeMap<String, String> {
    let mut labels = managed_labels();
    labels.extend([
        ("app.kubernetes.io/name".to_owned(), "raum-prune".to_owned()),
        ("app.kubernetes.io/instance".to_owned(), prune_name(policy)),
    ]);
    labels
}

fn metadata(rp: &RetentionPolicy) -> ObjectMeta {
    let name = rp.name_any();
    ObjectMeta {
        name: Some(prune_name(&name)),
        namespace: rp.namespace(),
        labels: Some(labels(&name)),
        owner_references: rp.controller_owner_ref(&()).map(|o| vec![o]),
        ..Default::default()
    }
}

/// The pruning pods' ServiceAccount.
pub fn service_account(rp: &RetentionPolicy) -> ServiceAccount {
    ServiceAccount {
        metadata: metadata(rp),
        ..Default::default()
    }
}

/// What the pruning pods may do: read this policy (again before each destructive step)
/// and write the run's summary into its status. Limited to the one policy by name.
pub fn role(rp: &RetentionPolicy) -> Role {
    let rule = |resource: &str, verbs: &[&str]| PolicyRule {
        api_groups: Some(vec![crate::api::GROUP.to_owned()]),
        resources: Some(vec![resource.to_owned()]),
        resource_names: Some(vec![rp.name_any()]),
        verbs: verbs.iter().map(|v| v.to_string()).collect(),
        ..Default::default()
    };
    Role {
        metadata: metadata(rp),
        rules: Some(vec![
            rule("retentionpolicies", &["get"]),
            rule("retentionpolicies/status", &["get", "patch"]),
        ]),
    }
}

/// Binds [`role`] to [`service_account`].
pub fn role_binding(rp: &RetentionPolicy) -> RoleBinding {
    let name = prune_name(&rp.name_any());
    RoleBinding {
        metadata: metadata(rp),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: name.clone(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name,
            namespace: rp.namespace(),
            api_group: None,
        }]),
    }
}

/// The CronJob that runs `raum prune` for the policy.
pub fn cron_job(rp: &RetentionPolicy, image: &str) -> CronJob {
    let name = rp.name_any();
    let ns = rp.namespace().unwrap_or_default();
    let log = &rp.spec.access_log;
    let log_dir = if log.path.is_empty() {
        MOUNT_PATH.to_owned()
    } else {
        format!("{MOUNT_PATH}/{}", log.path.trim_end_matches('/'))
    };
    let q = |s: &str| Quantity(s.to_owned());
    let pod = PodSpec {
        service_account_name: Some(prune_name(&name)),
        restart_policy: Some("Never".to_owned()),
        enable_service_links: Some(false),
        security_context: Some(pod_security::pod(Some(pod_security::UID))),
        affinity: Some(Affinity {
            pod_affinity: Some(PodAffinity {
                required_during_scheduling_ignored_during_execution: Some(vec![PodAffinityTerm {
                    label_selector: Some(LabelSelector {
                        match_labels: Some(BTreeMap::from([(
                            GATEWAY_LABEL.0.to_owned(),
                            GATEWAY_LABEL.1.to_owned(),
                        )])),
                        ..Default::default()
                    }),
                    topology_key: "kubernetes.io/hostname".to_owned(),
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        }),
        containers: vec![Container {
            name: "prune".to_owned(),
            image: Some(image.to_owned()),
            args: Some(vec![
                "prune".to_owned(),
                format!("--policy={ns}/{name}"),
                format!("--log-dir={log_dir}"),
                "--log-format=json".to_owned(),
            ]),
            volume_mounts: Some(vec![VolumeMount {
                name: "access-log".to_owned(),
                mount_path: MOUNT_PATH.to_owned(),
                ..Default::default()
            }]),
            resources: Some(ResourceRequirements {
                requests: Some(BTreeMap::from([
                    ("cpu".to_owned(), q("50m")),
                    ("memory".to_owned(), q("32Mi")),
                ])),
                limits: Some(BTreeMap::from([("memory".to_owned(), q("128Mi"))])),
                ..Default::default()
            }),
            security_context: Some(pod_security::container()),
            ..Default::default()
        }],
        volumes: Some(vec![Volume {
            name: "access-log".to_owned(),
            persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
                claim_name: log.claim_name.clone(),
                read_only: Some(false),
            }),
            ..Default::default()
        }]),
        ..Default::default()
    };
    CronJob {
        metadata: metadata(rp),
        spec: Some(CronJobSpec {
            schedule: rp.spec.schedule.clone(),
            time_zone: Some(rp.spec.time_zone.clone()),
            suspend: Some(rp.spec.suspend),
            concurrency_policy: Some("Forbid".to_owned()),
            starting_deadline_seconds: Some(STARTING_DEADLINE_SECONDS),
            successful_jobs_history_limit: Some(HISTORY_LIMIT),
            failed_jobs_history_limit: Some(HISTORY_LIMIT),
            job_template: JobTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&name)),
                    ..Default::default()
                }),
                spec: Some(JobSpec {
                    backoff_limit: Some(BACKOFF_LIMIT),
                    active_deadline_seconds: Some(ACTIVE_DEADLINE_SECONDS),
                    pod_replacement_policy: Some("Failed".to_owned()),
                    template: PodTemplateSpec {
                        metadata: Some(ObjectMeta {
                            labels: Some(labels(&name)),
                            ..Default::default()
                        }),
                        spec: Some(pod),
                    },
                    ..Default::default()
                }),
            },
        }),
        status: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::RetentionPolicySpec;

    fn policy(yaml: &str) -> RetentionPolicy {
        let spec: RetentionPolicySpec = serde_yaml::from_str(yaml).unwrap();
        let mut rp = RetentionPolicy::new("access-log", spec);
        rp.metadata.namespace = Some("raum-system".into());
        rp.metadata.uid = Some("11111111-2222-3333-4444-555555555555".into());
        rp
    }

    #[test]
    fn the_cron_job_follows_the_policy() {
        let cj = cron_job(
            &policy(
                "schedule: '0 3 * * *'\ntimeZone: Europe/Berlin\nsuspend: true\naccessLog: {claimName: logs, path: gw/}",
            ),
            "raum:test",
        );
        assert_eq!(cj.metadata.name.as_deref(), Some("raum-prune-access-log"));
        assert_eq!(
            cj.metadata.owner_references.as_ref().unwrap()[0].kind,
            "RetentionPolicy"
        );
        let spec = cj.spec.unwrap();
        assert_eq!(spec.schedule, "0 3 * * *");
        assert_eq!(spec.time_zone.as_deref(), Some("Europe/Berlin"));
        assert_eq!(spec.suspend, Some(true));
        assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
        assert!(
            spec.starting_deadline_seconds.unwrap() >= 3600,
            "hours, so a missed run still happens"
        );
        assert_eq!(spec.successful_jobs_history_limit, Some(3));
        assert_eq!(spec.failed_jobs_history_limit, Some(3));
        let job = spec.job_template.spec.unwrap();
        assert_eq!(job.backoff_limit, Some(2));
        assert_eq!(job.active_deadline_seconds, Some(3600));
        assert_eq!(job.pod_replacement_policy.as_deref(), Some("Failed"));
        assert!(
            job.ttl_seconds_after_finished.is_none(),
            "it would erase the history"
        );
        let pod = job.template.spec.unwrap();
        assert_eq!(
            pod.service_account_name.as_deref(),
            Some("raum-prune-access-log")
        );
        let c = &pod.containers[0];
        assert_eq!(
            c.args.as_ref().unwrap()[..3],
            [
                "prune",
                "--policy=raum-system/access-log",
                "--log-dir=/var/lib/raum/access-log/gw"
            ]
        );
        let vol = &pod.volumes.as_ref().unwrap()[0];
        assert_eq!(
            vol.persistent_volume_claim.as_ref().unwrap().claim_name,
            "logs"
        );
        assert_eq!(c.volume_mounts.as_ref().unwrap()[0].mount_path, MOUNT_PATH);
        let term = &pod
            .affinity
            .unwrap()
            .pod_affinity
            .unwrap()
            .required_during_scheduling_ignored_during_execution
            .unwrap()[0];
        assert_eq!(term.topology_key, "kubernetes.io/hostname");
        assert_eq!(
            term.label_selector
                .as_ref()
                .unwrap()
                .match_labels
                .as_ref()
                .unwrap()["app.kubernetes.io/name"],
            "raum-gateway"
        );
        let sc = c.security_context.as_ref().unwrap();
        assert_eq!(sc.read_only_root_filesystem, Some(true));
        assert_eq!(sc.allow_privilege_escalation, Some(false));
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop,
            Some(vec!["ALL".to_owned()])
        );
        let psc = pod.security_context.unwrap();
        assert_eq!(psc.run_as_non_root, Some(true));
        assert_eq!(psc.seccomp_profile.unwrap().type_, "RuntimeDefault");
    }

    #[test]
    fn the_default_log_location_is_the_claims_root() {
        let cj = cron_job(&policy("{}"), "raum:test");
        let pod = cj
            .spec
            .unwrap()
            .job_template
            .spec
            .unwrap()
            .template
            .spec
            .unwrap();
        assert!(
            pod.containers[0]
                .args
                .as_ref()
                .unwrap()
                .contains(&"--log-dir=/var/lib/raum/access-log".to_owned())
        );
        assert_eq!(
            pod.volumes.unwrap()[0]
                .persistent_volume_claim
                .as_ref()
                .unwrap()
                .claim_name,
            "raum-access-log"
        );
    }

    #[test]
    fn the_pruner_may_read_its_policy_and_write_its_status_only() {
        let rp = policy("{}");
        let role = role(&rp);
        let rules = role.rules.unwrap();
        assert_eq!(rules.len(), 2);
        for r in &rules {
            assert_eq!(
                r.resource_names.as_deref(),
                Some(&["access-log".to_owned()][..])
            );
            assert_eq!(r.api_groups.as_deref(), Some(&["raum.dev".to_owned()][..]));
            assert!(
                !r.verbs
                    .iter()
                    .any(|v| v == "*" || v == "delete" || v == "update" || v == "list")
            );
        }
        assert_eq!(rules[0].verbs, ["get"]);
        assert_eq!(
            rules[1].resources.as_ref().unwrap()[0],
            "retentionpolicies/status"
        );
        let rb = role_binding(&rp);
        assert_eq!(rb.role_ref.name, "raum-prune-access-log");
        assert_eq!(rb.subjects.unwrap()[0].name, "raum-prune-access-log");
    }
}
