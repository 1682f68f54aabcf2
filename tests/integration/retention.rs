//! RetentionPolicy on the real control plane: the CronJob and its settings, holds in
//! the status, a manual Job, the pruner running with exactly its Job's permissions, a
//! hold placed with `kubectl annotate` during a run, and the compliance role.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use jiff::{SignedDuration, Timestamp, ToSpan};
use k8s_openapi::api::batch::v1::{CronJob, Job};
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use raum::access_log::entry::Entry;
use raum::api::{RetentionPolicy, RetentionPolicySpec};
use raum_testkit::process::Watched;
use serde_json::json;

use crate::support::cluster::{Cluster, TestNamespace, cluster, wait};
use crate::support::operator::{
    Operator, impersonating_kubeconfig, install_rbac, install_rbac_file,
};

const T: Duration = Duration::from_secs(30);
const RESTRICTED: &[(&str, &str)] = &[
    ("pod-security.kubernetes.io/enforce", "restricted"),
    ("pod-security.kubernetes.io/enforce-version", "latest"),
];

async fn setup(prefix: &str) -> (TestNamespace, Operator) {
    let c = cluster();
    c.install_crds().await;
    let ns = c.namespace(prefix, RESTRICTED).await;
    install_rbac(c, &ns.name);
    let op = Operator::start(c, &ns.name, &["--image=raum:test"]);
    (ns, op)
}

async fn create_policy(ns: &TestNamespace, name: &str, spec: serde_json::Value) {
    let spec: RetentionPolicySpec = serde_json::from_value(spec).unwrap();
    ns.api::<RetentionPolicy>()
        .create(&PostParams::default(), &RetentionPolicy::new(name, spec))
        .await
        .unwrap();
}

async fn until<T>(what: &str, op: &Operator, probe: impl AsyncFnMut() -> Option<T>) -> T {
    raum_testkit::wait::until(
        what,
        T,
        || format!("--- operator log ---\n{}", op.logs()),
        probe,
    )
    .await
}

fn kubectl_ok(c: &Cluster, args: &[&str]) -> String {
    let out = c.kubectl(args, None);
    assert!(
        out.status.success(),
        "kubectl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test]
async fn a_policy_owns_a_cron_job_that_follows_its_edits() {
    let (ns, op) = setup("rp-cron").await;
    create_policy(
        &ns,
        "access-log",
        json!({"schedule": "17 3 * * *", "timeZone": "Europe/Berlin"}),
    )
    .await;
    let cron_jobs = ns.api::<CronJob>();
    let cj = until("the CronJob", &op, async || {
        cron_jobs.get_opt("raum-prune-access-log").await.unwrap()
    })
    .await;
    let spec = cj.spec.unwrap();
    assert_eq!(spec.schedule, "17 3 * * *");
    assert_eq!(spec.time_zone.as_deref(), Some("Europe/Berlin"));
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
    assert!(spec.starting_deadline_seconds.unwrap() >= 3600);
    assert_eq!(spec.suspend, Some(false));
    assert_eq!(
        (
            spec.successful_jobs_history_limit,
            spec.failed_jobs_history_limit
        ),
        (Some(3), Some(3))
    );
    let job = spec.job_template.spec.unwrap();
    assert_eq!(job.backoff_limit, Some(2));
    assert!(job.active_deadline_seconds.is_some());
    assert_eq!(job.pod_replacement_policy.as_deref(), Some("Failed"));
    assert!(job.ttl_seconds_after_finished.is_none());
    let rp = ns.api::<RetentionPolicy>();
    let st = until("the status", &op, async || {
        rp.get("access-log").await.unwrap().status
    })
    .await;
    assert_eq!(st.cron_job.as_deref(), Some("raum-prune-access-log"));

    rp.patch(
        "access-log",
        &PatchParams::default(),
        &Patch::Merge(json!({"spec": {"suspend": true, "schedule": "0 4 * * 1"}})),
    )
    .await
    .unwrap();
    until("the CronJob to follow the edit", &op, async || {
        let s = cron_jobs
            .get("raum-prune-access-log")
            .await
            .unwrap()
            .spec
            .unwrap();
        (s.suspend == Some(true) && s.schedule == "0 4 * * 1").then_some(())
    })
    .await;

    rp.delete("access-log", &kube::api::DeleteParams::foreground())
        .await
        .unwrap();
    until("the CronJob to go with its policy", &op, async || {
        cron_jobs
            .get_opt("raum-prune-access-log")
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
}

#[tokio::test]
async fn holds_placed_with_kubectl_annotate_show_in_status_and_a_bad_one_warns() {
    let c = cluster();
    let (ns, op) = setup("rp-holds").await;
    create_policy(&ns, "access-log", json!({})).await;
    let rp = ns.api::<RetentionPolicy>();
    kubectl_ok(
        c,
        &[
            "-n",
            &ns.name,
            "annotate",
            "retentionpolicy",
            "access-log",
            "hold.raum.dev/incident-42=2026-11-01/2026-11-03; DDoS, ticket SEC-42",
        ],
    );
    let st = until("the hold in the status", &op, async || {
        rp.get("access-log")
            .await
            .unwrap()
            .status
            .filter(|s| s.hold_count == Some(1))
    })
    .await;
    let h = &st.holds[0];
    assert_eq!(h.id, "incident-42");
    assert_eq!(h.window.as_deref(), Some("2026-11-01/2026-11-03"));
    assert_eq!(h.reason.as_deref(), Some("DDoS, ticket SEC-42"));
    assert!(h.first_seen.is_some());
    assert!(
        st.conditions
            .iter()
            .any(|c| c.type_ == "HoldsValid" && c.status == "True")
    );

    // kubectl get rp shows the hold count.
    let table = kubectl_ok(c, &["-n", &ns.name, "get", "rp"]);
    let header: Vec<&str> = table.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(
        header,
        [
            "NAME", "SCHEDULE", "MAX", "AGE", "HOLDS", "LAST", "RUN", "OUTCOME", "AGE"
        ],
        "{table}"
    );
    assert!(
        table
            .lines()
            .nth(1)
            .unwrap()
            .split_whitespace()
            .any(|w| w == "1"),
        "{table}"
    );

    kubectl_ok(
        c,
        &[
            "-n",
            &ns.name,
            "annotate",
            "retentionpolicy",
            "access-log",
            "hold.raum.dev/oops=last tuesday",
        ],
    );
    let st = until("HoldsValid=False", &op, async || {
        rp.get("access-log").await.unwrap().status.filter(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "HoldsValid" && c.status == "False")
        })
    })
    .await;
    let cond = st
        .conditions
        .iter()
        .find(|c| c.type_ == "HoldsValid")
        .unwrap();
    assert!(
        cond.message.contains("hold.raum.dev/oops"),
        "{}",
        cond.message
    );
    let events: Api<Event> = Api::namespaced(ns.client.clone(), &ns.name);
    until("a Warning event", &op, async || {
        events
            .list(&ListParams::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .find(|e| {
                e.reason.as_deref() == Some("InvalidHold") && e.type_.as_deref() == Some("Warning")
            })
    })
    .await;

    // Removing the bad hold makes the holds valid again.
    kubectl_ok(
        c,
        &[
            "-n",
            &ns.name,
            "annotate",
            "retentionpolicy",
            "access-log",
            "hold.raum.dev/oops-",
        ],
    );
    until("HoldsValid=True again", &op, async || {
        rp.get("access-log").await.unwrap().status.filter(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "HoldsValid" && c.status == "True")
        })
    })
    .await;
}

/// Writes 20 days of access-log files (two writers) into `dir`; returns the UTC day
/// that is 17 days old (held in one test).
fn write_logs(dir: &Path) -> jiff::civil::Date {
    let today = Timestamp::now().to_zoned(jiff::tz::TimeZone::UTC).date();
    for n in 0..20 {
        let day = today.checked_sub(n.days()).unwrap();
        let start = day.to_zoned(jiff::tz::TimeZone::UTC).unwrap().timestamp();
        for writer in ["gw-a", "gw-b"] {
            let mut times: Vec<Timestamp> = (0..24)
                .map(|h| start + SignedDuration::from_hours(h) + SignedDuration::from_mins(30))
                .collect();
            if n == 10 {
                // Day 10 holds a 10-day cutoff whatever the time of day: one entry at
                // its first and one at its last millisecond (the hourly ones alone all
                // fall after a cutoff in the first half hour after midnight).
                times.insert(0, start);
                times.push(start + SignedDuration::from_hours(24) - SignedDuration::from_millis(1));
            }
            let lines: String = times
                .into_iter()
                .map(|t| Entry::new(t, "198.51.100.4", "Mozilla/5.0").to_line())
                .collect();
            std::fs::write(dir.join(format!("access-{day}.{writer}.jsonl")), lines).unwrap();
        }
    }
    today.checked_sub(17.days()).unwrap()
}

/// Runs `raum prune` for the policy as the Job's ServiceAccount. The kubeconfig file
/// lives as long as the returned guard.
/// `raum prune` as the Job runs it (its ServiceAccount), with `env`; the kubeconfig
/// file must live as long as the command runs.
fn prune_as_job(
    c: &Cluster,
    ns: &str,
    dir: &Path,
    env: &[(&str, &str)],
) -> (Command, tempfile::NamedTempFile) {
    let kubeconfig = impersonating_kubeconfig(
        c,
        &format!("system:serviceaccount:{ns}:raum-prune-access-log"),
        &["system:serviceaccounts", "system:authenticated"],
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_raum"));
    cmd.args(["prune", &format!("--policy={ns}/access-log")])
        .arg(format!("--kubeconfig={}", kubeconfig.path().display()))
        .arg(format!("--log-dir={}", dir.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (k, v) in env {
        cmd.env(k, v);
    }
    (cmd, kubeconfig)
}

fn finished((mut cmd, _kubeconfig): (Command, tempfile::NamedTempFile)) -> Output {
    cmd.output().unwrap()
}

#[tokio::test]
async fn a_manual_job_is_right_and_the_pruner_works_with_only_its_permissions() {
    let c = cluster();
    let (ns, op) = setup("rp-job").await;
    create_policy(&ns, "access-log", json!({"maxAge": "10d"})).await;
    let cron_jobs = ns.api::<CronJob>();
    until("the CronJob", &op, async || {
        cron_jobs.get_opt("raum-prune-access-log").await.unwrap()
    })
    .await;

    // The claim the Job mounts (a PV the binder controller binds), and a gateway pod
    // to be near (required pod affinity: a ReadWriteOnce volume is shared on one node).
    let pv = format!(
        "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: pv-{ns}}}\nspec:\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  storageClassName: ''\n  claimRef: {{namespace: {ns}, name: raum-access-log}}\n  hostPath: {{path: /tmp/raum-test-pv-unused}}\n---\napiVersion: v1\nkind: PersistentVolumeClaim\nmetadata: {{name: raum-access-log, namespace: {ns}}}\nspec:\n  accessModes: [ReadWriteOnce]\n  storageClassName: ''\n  resources: {{requests: {{storage: 1Gi}}}}\n---\napiVersion: v1\nkind: Pod\nmetadata: {{name: gateway-0, namespace: {ns}, labels: {{app.kubernetes.io/name: raum-gateway}}}}\nspec:\n  automountServiceAccountToken: false\n  securityContext: {{runAsNonRoot: true, runAsUser: 65532, seccompProfile: {{type: RuntimeDefault}}}}\n  containers:\n  - name: gateway\n    image: raum:test\n    securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}\n",
        ns = ns.name
    );
    let out = c.kubectl(&["apply", "-f", "-"], Some(&pv));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    kubectl_ok(
        c,
        &[
            "-n",
            &ns.name,
            "create",
            "job",
            "--from=cronjob/raum-prune-access-log",
            "manual-1",
        ],
    );
    let jobs = ns.api::<Job>();
    let job = jobs.get("manual-1").await.unwrap();
    let pod_spec = job.spec.unwrap().template.spec.unwrap();
    assert_eq!(
        pod_spec.service_account_name.as_deref(),
        Some("raum-prune-access-log")
    );
    let args = pod_spec.containers[0].args.clone().unwrap();
    assert_eq!(
        args[..3],
        [
            "prune".to_string(),
            format!("--policy={}/access-log", ns.name),
            "--log-dir=/var/lib/raum/access-log".to_string()
        ]
    );
    // Admitted under `restricted`, scheduled next to the gateway, run to completion by kwok.
    wait("the Job to succeed", Duration::from_secs(60), async {
        loop {
            let st = jobs
                .get("manual-1")
                .await
                .unwrap()
                .status
                .unwrap_or_default();
            if st.succeeded == Some(1) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    })
    .await;
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default().labels("job-name=manual-1"))
        .await
        .unwrap();
    assert_eq!(
        pods.items[0].spec.as_ref().unwrap().node_name.as_deref(),
        Some("kwok-node-0")
    );

    // kwok does not run containers: run the very same command as a local process,
    // with exactly the Job's ServiceAccount permissions.
    let dir = tempfile::tempdir().unwrap();
    write_logs(dir.path());
    let out = finished(prune_as_job(c, &ns.name, dir.path(), &[]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["outcome"], "Succeeded");
    let removed = report["summary"]["filesDeleted"].as_u64().unwrap();
    assert_eq!(removed, 2 * 9, "days 11 to 19 go whole: {report}");
    let rp = ns.api::<RetentionPolicy>().get("access-log").await.unwrap();
    let last = rp
        .status
        .unwrap()
        .last_run
        .expect("the run's summary in the status");
    assert_eq!(last.outcome.as_deref(), Some("Succeeded"));
    assert_eq!(last.files_deleted, removed);
    assert_eq!(last.files_rewritten, 2, "the day straddling the cutoff");
    assert!(last.started.is_some() && last.finished.is_some());

    // Those permissions are this policy and nothing else.
    let sa = format!("system:serviceaccount:{}:raum-prune-access-log", ns.name);
    for (verb, what, expect) in [
        ("get", "retentionpolicies.raum.dev/access-log", "yes"),
        ("patch", "retentionpolicies.raum.dev/access-log", "no"),
        ("get", "retentionpolicies.raum.dev/other", "no"),
        ("list", "retentionpolicies.raum.dev", "no"),
        ("get", "pods", "no"),
        ("get", "secrets", "no"),
    ] {
        let out = c.kubectl(
            &[
                "-n",
                &ns.name,
                "auth",
                "can-i",
                verb,
                what,
                &format!("--as={sa}"),
            ],
            None,
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            expect,
            "{verb} {what}"
        );
    }
    let out = c.kubectl(
        &[
            "-n",
            &ns.name,
            "auth",
            "can-i",
            "patch",
            "retentionpolicies.raum.dev/access-log",
            "--subresource=status",
            &format!("--as={sa}"),
        ],
        None,
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "yes");
}

#[tokio::test]
async fn a_hold_annotated_during_a_run_protects_the_day_it_reaches_later() {
    let c = cluster();
    let (ns, op) = setup("rp-midrun").await;
    create_policy(&ns, "access-log", json!({"maxAge": "10d"})).await;
    let cron_jobs = ns.api::<CronJob>();
    until(
        "the CronJob and the pruner's permissions",
        &op,
        async || cron_jobs.get_opt("raum-prune-access-log").await.unwrap(),
    )
    .await;
    let dir = tempfile::tempdir().unwrap();
    let held = write_logs(dir.path());
    // Oldest first: the run deletes day 19, then pauses; meanwhile compliance staff
    // hold day 17, which the run has not reached yet.
    let (cmd, _kubeconfig) = prune_as_job(
        c,
        &ns.name,
        dir.path(),
        &[("RAUM_PRUNE_FAULT", "unlinked:1:pause")],
    );
    let mut child = Watched::spawn(cmd);
    child.wait_for_line("paused at unlinked", Duration::from_secs(30));
    kubectl_ok(
        c,
        &[
            "-n",
            &ns.name,
            "annotate",
            "retentionpolicy",
            "access-log",
            &format!("hold.raum.dev/attack={held}/{held}; evidence"),
        ],
    );
    let (status, stderr) = child.finish();
    assert!(status.success(), "{stderr}");
    for writer in ["gw-a", "gw-b"] {
        let f = dir.path().join(format!("access-{held}.{writer}.jsonl"));
        assert_eq!(
            std::fs::read_to_string(&f)
                .map(|s| s.lines().count())
                .unwrap_or(0),
            24,
            "{} lost held entries",
            f.display()
        );
    }
    let day19 = held.checked_sub(2.days()).unwrap();
    assert!(
        !dir.path()
            .join(format!("access-{day19}.gw-a.jsonl"))
            .exists(),
        "the run did prune before the hold"
    );
}

#[tokio::test]
async fn compliance_staff_may_annotate_but_not_change_or_delete_the_policy() {
    let c = cluster();
    let (ns, _op) = setup("rp-compliance").await;
    create_policy(&ns, "access-log", json!({})).await;
    // The raum-hold-editor role and its admission policy, as the chart renders them.
    install_rbac_file(c, &ns.name, "manifests/base/rbac.yaml");
    let binding = format!("raum-hold-editors-{}", ns.name);
    let out = c.kubectl(
        &[
            "create",
            "clusterrolebinding",
            &binding,
            "--clusterrole=raum-hold-editor",
            "--group=compliance",
        ],
        None,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let as_compliance = |args: &[&str]| {
        let mut all = vec![
            "-n",
            ns.name.as_str(),
            "--as=compliance-officer",
            "--as-group=compliance",
        ];
        all.extend_from_slice(args);
        c.kubectl(&all, None)
    };
    // The admission policy needs a moment to be loaded by the API server: retry the
    // first refused spec change until it is refused for the right reason.
    let out = as_compliance(&[
        "annotate",
        "retentionpolicy",
        "access-log",
        "hold.raum.dev/case-7=2026-11-01/..; ongoing",
    ]);
    assert!(
        out.status.success(),
        "annotate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_compliance(&[
        "annotate",
        "retentionpolicy",
        "access-log",
        "hold.raum.dev/case-7-",
    ]);
    assert!(
        out.status.success(),
        "remove: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait(
        "the admission policy to refuse a spec change",
        Duration::from_secs(30),
        async {
            loop {
                let out = as_compliance(&[
                    "patch",
                    "retentionpolicy",
                    "access-log",
                    "--type=merge",
                    "-p",
                    r#"{"spec":{"maxAge":"1d"}}"#,
                ]);
                let err = String::from_utf8_lossy(&out.stderr).into_owned();
                if !out.status.success()
                    && err.contains("hold editors may add or remove hold annotations only")
                {
                    break;
                }
                assert!(!out.status.success() || err.is_empty(), "{err}");
                if out.status.success() {
                    // Not yet enforced: undo and try again.
                    kubectl_ok(
                        c,
                        &[
                            "-n",
                            &ns.name,
                            "patch",
                            "retentionpolicy",
                            "access-log",
                            "--type=merge",
                            "-p",
                            r#"{"spec":{"maxAge":"56d"}}"#,
                        ],
                    );
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        },
    )
    .await;
    let p = ns.api::<RetentionPolicy>().get("access-log").await.unwrap();
    assert_eq!(p.spec.max_age, "56d");
    let out = as_compliance(&["label", "retentionpolicy", "access-log", "team=x"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("may not change labels"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_compliance(&["annotate", "retentionpolicy", "access-log", "note=hi"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("only raum.dev/hold and hold.raum.dev/"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = as_compliance(&["delete", "retentionpolicy", "access-log"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Forbidden")
            || String::from_utf8_lossy(&out.stderr).contains("forbidden")
    );
    for what in ["pods", "secrets"] {
        let out = as_compliance(&["get", what]);
        assert!(!out.status.success(), "compliance may read {what}");
    }
    // The platform team is not limited by the admission policy.
    kubectl_ok(
        c,
        &[
            "-n",
            &ns.name,
            "patch",
            "retentionpolicy",
            "access-log",
            "--type=merge",
            "-p",
            r#"{"spec":{"maxAge":"8w"}}"#,
        ],
    );
}
