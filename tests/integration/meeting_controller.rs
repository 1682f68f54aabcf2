//! The Meeting controller on the real control plane, run as a real `raum operator`
//! process with only the shipped RBAC. kwok plays the kubelet, so SFU pods become
//! Running and Ready without an SFU in them.

use std::time::{Duration, Instant};

use jiff::{SignedDuration, Timestamp};
use k8s_openapi::api::core::v1::{Pod, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::runtime::wait::{await_condition, conditions};
use raum::api::{Meeting, MeetingPhase, MeetingSpec};
use serde_json::json;

use crate::support::cluster::{Cluster, TestNamespace, cluster, wait};
use crate::support::operator::{Operator, PUBLIC_URL, install_rbac};
use crate::support::sfu::Sfu;

const RESTRICTED: &[(&str, &str)] = &[
    ("pod-security.kubernetes.io/enforce", "restricted"),
    ("pod-security.kubernetes.io/enforce-version", "latest"),
];

async fn setup(prefix: &str, extra: &[&str]) -> (TestNamespace, Operator) {
    let c = cluster();
    c.install_crds().await;
    let ns = c.namespace(prefix, RESTRICTED).await;
    install_rbac(c, &ns.name);
    let op = Operator::start(c, &ns.name, extra);
    (ns, op)
}

fn spec(v: serde_json::Value) -> MeetingSpec {
    serde_json::from_value(v).unwrap()
}

async fn create(ns: &TestNamespace, name: &str, s: serde_json::Value) -> Meeting {
    ns.api::<Meeting>()
        .create(&PostParams::default(), &Meeting::new(name, spec(s)))
        .await
        .unwrap()
}

/// Waits until the meeting satisfies `cond`, with a message that shows the operator's
/// log if it never does.
async fn until_meeting(
    ns: &TestNamespace,
    op: &Operator,
    name: &str,
    what: &str,
    limit: Duration,
    cond: impl Fn(&Meeting) -> bool,
) -> Meeting {
    let api = ns.api::<Meeting>();
    let start = Instant::now();
    loop {
        if let Some(m) = api.get_opt(name).await.unwrap()
            && cond(&m)
        {
            return m;
        }
        if start.elapsed() > limit {
            let m = api.get_opt(name).await.unwrap();
            panic!(
                "timed out after {limit:?} waiting for {name} to be {what}; it is {:?}\n--- operator log ---\n{}",
                m.and_then(|m| m.status),
                op.logs()
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn phase(m: &Meeting) -> Option<MeetingPhase> {
    m.status.as_ref().and_then(|s| s.phase)
}

fn is(p: MeetingPhase) -> impl Fn(&Meeting) -> bool {
    move |m| phase(m) == Some(p)
}

async fn sfu_pods(ns: &TestNamespace, meeting: &str) -> Vec<Pod> {
    ns.api::<Pod>()
        .list(&ListParams::default().labels(&format!("raum.dev/meeting={meeting}")))
        .await
        .unwrap()
        .items
}

async fn event_reasons(ns: &TestNamespace, meeting: &str) -> Vec<String> {
    let events: Api<Event> = Api::namespaced(ns.client.clone(), &ns.name);
    events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(meeting))
        .filter_map(|e| e.reason)
        .collect()
}

const T: Duration = Duration::from_secs(30);

#[tokio::test]
async fn a_meeting_without_start_runs_in_a_locked_down_pod_with_a_url() {
    let (ns, op) = setup("mtg-now", &[]).await;
    create(
        &ns,
        "elternabend",
        json!({"title": "Elternabend", "maxParticipants": 12}),
    )
    .await;
    let m = until_meeting(
        &ns,
        &op,
        "elternabend",
        "Running",
        T,
        is(MeetingPhase::Running),
    )
    .await;
    let st = m.status.as_ref().unwrap();
    let url = st.url.as_deref().unwrap();
    let token = url
        .strip_prefix(&format!("{PUBLIC_URL}/j/"))
        .expect("URL under the public base");
    assert!(token.len() >= 22, "at least 128 bits: {token}");
    assert!(!token.contains("elternabend"));
    assert!(st.started_at.is_some());
    assert_eq!(st.observed_generation, m.metadata.generation);
    let ready = st.conditions.iter().find(|c| c.type_ == "Ready").unwrap();
    assert_eq!(
        (ready.status.as_str(), ready.reason.as_str()),
        ("True", "SfuReady")
    );

    // The host link: in a Secret owned by the Meeting, not in the status (which has
    // only its token's digest).
    let secret = ns
        .api::<Secret>()
        .get("raum-elternabend-host")
        .await
        .expect("the host link's Secret");
    assert_eq!(
        secret.metadata.owner_references.as_ref().unwrap()[0].uid,
        m.metadata.uid.clone().unwrap()
    );
    let host_url = String::from_utf8(secret.data.as_ref().unwrap()["url"].0.clone()).unwrap();
    let host_token = host_url
        .strip_prefix(&format!("{PUBLIC_URL}/j/"))
        .expect("the host link under the public base")
        .to_owned();
    assert_ne!(host_token, token);
    assert_eq!(
        st.host_token_sha256.as_deref(),
        Some(raum::token::token_digest(&host_token).as_str())
    );
    let status_yaml = serde_json::to_string(st).unwrap();
    assert!(
        !status_yaml.contains(&host_token),
        "the host token in the status"
    );

    // The pod, admitted in a namespace enforcing `restricted`, has every promised property.
    let pods = sfu_pods(&ns, "elternabend").await;
    assert_eq!(pods.len(), 1);
    let pod = &pods[0];
    let uid = m.metadata.uid.clone().unwrap();
    let owner = &pod.metadata.owner_references.as_ref().unwrap()[0];
    assert_eq!(
        (owner.kind.as_str(), owner.uid.as_str(), owner.controller),
        ("Meeting", uid.as_str(), Some(true))
    );
    let labels = pod.metadata.labels.as_ref().unwrap();
    assert_eq!(labels["app.kubernetes.io/name"], "raum-sfu");
    assert_eq!(labels["app.kubernetes.io/instance"], "elternabend");
    assert_eq!(labels["app.kubernetes.io/managed-by"], "raum-operator");
    let ps = pod.spec.as_ref().unwrap();
    assert!(
        ps.volumes.as_ref().is_none_or(|v| v.is_empty()),
        "volumes: {:?}",
        ps.volumes
    );
    assert_eq!(ps.automount_service_account_token, Some(false));
    assert_eq!(ps.restart_policy.as_deref(), Some("Never"));
    let c = &ps.containers[0];
    assert!(c.volume_mounts.as_ref().is_none_or(|v| v.is_empty()));
    assert_eq!(c.args.as_ref().unwrap()[0], "sfu");
    assert!(
        c.args
            .as_ref()
            .unwrap()
            .contains(&"--max-participants=12".to_string())
    );
    let sc = c.security_context.as_ref().unwrap();
    assert_eq!(sc.read_only_root_filesystem, Some(true));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    assert_eq!(
        ps.security_context.as_ref().unwrap().run_as_non_root,
        Some(true)
    );
    assert!(c.readiness_probe.is_some() && c.liveness_probe.is_some());
    let env = c.env.as_ref().unwrap();
    assert!(
        !env.iter().any(|e| e.value.as_deref() == Some(token)),
        "the token itself is not in the pod"
    );

    // The Service: signaling TCP and one UDP media port, whose node port the pod advertises.
    let svc = ns
        .api::<Service>()
        .get(pod.metadata.name.as_deref().unwrap())
        .await
        .unwrap();
    let sspec = svc.spec.as_ref().unwrap();
    assert_eq!(sspec.type_.as_deref(), Some("NodePort"));
    let media = sspec
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .find(|p| p.protocol.as_deref() == Some("UDP"))
        .unwrap();
    let node_port = media.node_port.unwrap();
    assert!(
        c.args
            .as_ref()
            .unwrap()
            .contains(&format!("--advertise-port={node_port}"))
    );
    // ICE-TCP has a node port of its own, advertised as such.
    let ice_tcp = sspec
        .ports
        .as_ref()
        .unwrap()
        .iter()
        .find(|p| p.name.as_deref() == Some("media-tcp"))
        .expect("the ICE-TCP port");
    assert_eq!(ice_tcp.protocol.as_deref(), Some("TCP"));
    let tcp_node_port = ice_tcp.node_port.unwrap();
    assert!(
        c.args
            .as_ref()
            .unwrap()
            .contains(&format!("--advertise-tcp-port={tcp_node_port}")),
        "{:?}",
        c.args
    );
    assert_eq!(svc.metadata.owner_references.as_ref().unwrap()[0].uid, uid);

    // Each transition is announced once, even when a reconcile reads a cached Meeting
    // from before the status the operator just wrote.
    let events: Api<Event> = Api::namespaced(ns.client.clone(), &ns.name);
    let running: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Running"))
        .collect();
    assert_eq!(running.len(), 1, "{running:?}");
    assert!(
        running[0].series.is_none(),
        "announced more than once: {:?}",
        running[0].series
    );
    let reasons = event_reasons(&ns, "elternabend").await;
    for r in ["SfuCreated", "Running"] {
        assert!(
            reasons.iter().any(|x| x == r),
            "{r} missing from events {reasons:?}"
        );
    }

    // The participant count comes from the SFU's /status: a real raum sfu, run with
    // the pod's arguments and environment on the pod's IP (kwok's pod IPs are loopback
    // addresses), and three participants joined to it.
    let sfu = Sfu::for_pod(pod, "info");
    let ip = pod.status.as_ref().unwrap().pod_ip.clone().unwrap();
    let mut sockets = Vec::new();
    for name in ["A", "B", "C"] {
        let mut ws = raum_testkit::wait::until(
            "the SFU to accept WebSockets",
            Duration::from_secs(20),
            || sfu.logs(),
            async || {
                tokio_tungstenite::connect_async(format!("ws://{ip}:8080/ws"))
                    .await
                    .ok()
                    .map(|(ws, _)| ws)
            },
        )
        .await;
        // The third with the host link: the real raum sfu, started with the pod's
        // environment, knows it by its digest.
        let (link, role) = if name == "C" {
            (host_token.as_str(), "host")
        } else {
            (token, "participant")
        };
        let welcome = raum_testkit::web::join(&mut ws, name, link).await;
        assert_eq!(welcome["type"], "welcome", "{welcome}");
        assert_eq!(welcome["role"], role, "{welcome}");
        sockets.push(ws);
    }
    until_meeting(
        &ns,
        &op,
        "elternabend",
        "reporting 3 participants",
        Duration::from_secs(40),
        |m| m.status.as_ref().and_then(|s| s.participants) == Some(3),
    )
    .await;
    // The count has a field manager of its own; the reconcile's status does not take
    // it away again.
    sockets.pop();
    until_meeting(
        &ns,
        &op,
        "elternabend",
        "reporting 2 participants",
        Duration::from_secs(40),
        |m| m.status.as_ref().and_then(|s| s.participants) == Some(2),
    )
    .await;
    let m = ns.api::<Meeting>().get("elternabend").await.unwrap();
    let managers: Vec<String> = m
        .metadata
        .managed_fields
        .unwrap_or_default()
        .into_iter()
        .filter_map(|f| f.manager)
        .collect();
    assert!(
        managers.iter().any(|m| m == "raum-operator-participants"),
        "{managers:?}"
    );
}

#[tokio::test]
async fn a_scheduled_meeting_waits_without_a_pod_then_starts_on_time() {
    let (ns, op) = setup("mtg-later", &["--warm-up=3s"]).await;
    let starts_at = Timestamp::now() + SignedDuration::from_secs(12);
    create(
        &ns,
        "later",
        json!({"title": "Später", "startsAt": starts_at.to_string(), "duration": "30m"}),
    )
    .await;
    let m = until_meeting(
        &ns,
        &op,
        "later",
        "Scheduled",
        T,
        is(MeetingPhase::Scheduled),
    )
    .await;
    assert!(
        m.status.unwrap().url.is_some(),
        "the URL is known before the start, to hand out"
    );
    // The reconcile that wrote Scheduled decided to wait: no pod. (That no pod comes
    // before the warm-up is checked below, by its creation time.)
    assert!(
        sfu_pods(&ns, "later").await.is_empty(),
        "no pod before the warm-up"
    );
    let m = until_meeting(&ns, &op, "later", "Running", T, is(MeetingPhase::Running)).await;
    let pod = &sfu_pods(&ns, "later").await[0];
    let created = pod.metadata.creation_timestamp.as_ref().unwrap().0;
    // Timestamps have whole seconds: allow one.
    assert!(
        created >= starts_at - SignedDuration::from_secs(4),
        "pod created at {created}, start {starts_at}"
    );
    assert!(m.status.unwrap().started_at.is_some());
}

#[tokio::test]
async fn at_its_end_a_meeting_loses_pod_and_service() {
    let (ns, op) = setup("mtg-end", &[]).await;
    let ends_at = Timestamp::now() + SignedDuration::from_secs(8);
    create(
        &ns,
        "short",
        json!({"title": "Kurz", "endsAt": ends_at.to_string()}),
    )
    .await;
    until_meeting(&ns, &op, "short", "Running", T, is(MeetingPhase::Running)).await;
    let m = until_meeting(&ns, &op, "short", "Ended", T, is(MeetingPhase::Ended)).await;
    let st = m.status.unwrap();
    // Kubernetes timestamps have whole seconds.
    assert!(st.ended_at.unwrap().0 > ends_at - SignedDuration::from_secs(1));
    wait("the SFU pod to go", T, async {
        while !sfu_pods(&ns, "short").await.is_empty() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    assert!(
        ns.api::<Service>()
            .get_opt("raum-short")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        event_reasons(&ns, "short")
            .await
            .iter()
            .any(|r| r == "Ended")
    );
}

#[tokio::test]
async fn editing_ends_at_extends_or_shortens_a_running_meeting() {
    let (ns, op) = setup("mtg-edit", &[]).await;
    let api = ns.api::<Meeting>();
    create(&ns, "edited", json!({"title": "t", "endsAt": (Timestamp::now() + SignedDuration::from_hours(1)).to_string()})).await;
    until_meeting(&ns, &op, "edited", "Running", T, is(MeetingPhase::Running)).await;
    let soon = Timestamp::now() + SignedDuration::from_secs(3);
    api.patch(
        "edited",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"endsAt": soon.to_string()}})),
    )
    .await
    .unwrap();
    until_meeting(
        &ns,
        &op,
        "edited",
        "Ended after the shortening",
        T,
        is(MeetingPhase::Ended),
    )
    .await;
    // And extended again, it runs again.
    api.patch(
        "edited",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"spec": {"endsAt": (Timestamp::now() + SignedDuration::from_hours(1)).to_string()}})),
    )
    .await
    .unwrap();
    until_meeting(
        &ns,
        &op,
        "edited",
        "Running after the extension",
        T,
        is(MeetingPhase::Running),
    )
    .await;
}

#[tokio::test]
async fn deleting_a_meeting_garbage_collects_its_pod_and_service() {
    let (ns, op) = setup("mtg-gc", &[]).await;
    create(&ns, "gone", json!({"title": "t"})).await;
    until_meeting(&ns, &op, "gone", "Running", T, is(MeetingPhase::Running)).await;
    ns.api::<Meeting>()
        .delete("gone", &DeleteParams::foreground())
        .await
        .unwrap();
    wait("the garbage collector", T, async {
        loop {
            let pods = sfu_pods(&ns, "gone").await;
            let svc = ns.api::<Service>().get_opt("raum-gone").await.unwrap();
            if pods.is_empty() && svc.is_none() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn a_deleted_sfu_pod_is_replaced_with_an_event_and_the_same_url() {
    let (ns, op) = setup("mtg-replace", &[]).await;
    create(&ns, "robust", json!({"title": "t"})).await;
    let before = until_meeting(&ns, &op, "robust", "Running", T, is(MeetingPhase::Running)).await;
    let old = sfu_pods(&ns, "robust").await.remove(0);
    ns.api::<Pod>()
        .delete(
            old.metadata.name.as_deref().unwrap(),
            &DeleteParams::default(),
        )
        .await
        .unwrap();
    let old_uid = old.metadata.uid.clone();
    wait("a replacement pod", T, async {
        loop {
            let pods = sfu_pods(&ns, "robust").await;
            if pods.len() == 1
                && pods[0].metadata.uid != old_uid
                && pods[0].metadata.deletion_timestamp.is_none()
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let after = until_meeting(
        &ns,
        &op,
        "robust",
        "Running again",
        T,
        is(MeetingPhase::Running),
    )
    .await;
    assert_eq!(
        before.status.as_ref().unwrap().url,
        after.status.as_ref().unwrap().url
    );
    assert_eq!(
        before.status.as_ref().unwrap().started_at,
        after.status.as_ref().unwrap().started_at
    );
    assert!(
        event_reasons(&ns, "robust")
            .await
            .iter()
            .any(|r| r == "SfuReplaced")
    );
    let healthy = after
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "SfuHealthy")
        .unwrap();
    assert_eq!(healthy.reason, "Replaced");
}

#[tokio::test]
async fn a_killed_and_restarted_operator_keeps_url_phase_and_one_pod() {
    let (ns, mut op) = setup("mtg-restart", &["--warm-up=2s"]).await;
    create(&ns, "steady", json!({"title": "t"})).await;
    let starts_at = Timestamp::now() + SignedDuration::from_secs(10);
    create(
        &ns,
        "upcoming",
        json!({"title": "t", "startsAt": starts_at.to_string(), "duration": "10m"}),
    )
    .await;
    let before = until_meeting(&ns, &op, "steady", "Running", T, is(MeetingPhase::Running)).await;
    until_meeting(
        &ns,
        &op,
        "upcoming",
        "Scheduled",
        T,
        is(MeetingPhase::Scheduled),
    )
    .await;

    op.kill_and_restart();
    // Lose the status too: the URL must come back the same, derived again.
    let api = ns.api::<Meeting>();
    api.patch_status(
        "steady",
        &kube::api::PatchParams::default(),
        &kube::api::Patch::Merge(json!({"status": null})),
    )
    .await
    .unwrap();

    let after = until_meeting(
        &ns,
        &op,
        "steady",
        "Running after the restart",
        T,
        is(MeetingPhase::Running),
    )
    .await;
    assert_eq!(
        before.status.as_ref().unwrap().url,
        after.status.as_ref().unwrap().url
    );
    // And the host link: the same digest, matching the one Secret made at first.
    assert_eq!(
        before.status.as_ref().unwrap().host_token_sha256,
        after.status.as_ref().unwrap().host_token_sha256
    );
    let secret = ns.api::<Secret>().get("raum-steady-host").await.unwrap();
    let host_url = String::from_utf8(secret.data.unwrap()["url"].0.clone()).unwrap();
    let host_token = host_url.rsplit_once("/j/").unwrap().1;
    assert_eq!(
        after.status.as_ref().unwrap().host_token_sha256.as_deref(),
        Some(raum::token::token_digest(host_token).as_str())
    );
    // A scheduled meeting has its host link before it starts (a teacher sends it
    // ahead of the lesson).
    ns.api::<Secret>()
        .get("raum-upcoming-host")
        .await
        .expect("the host link before the start");
    // The scheduled one starts on time under the new process.
    until_meeting(
        &ns,
        &op,
        "upcoming",
        "Running",
        T,
        is(MeetingPhase::Running),
    )
    .await;
    for m in ["steady", "upcoming"] {
        let pods = sfu_pods(&ns, m).await;
        assert_eq!(pods.len(), 1, "{m}: {pods:?}");
    }
}

#[tokio::test]
async fn a_pod_the_cluster_refuses_is_reported_and_others_still_run() {
    let (ns, op) = setup("mtg-refused", &[]).await;
    // Requests above limits: the API server refuses such a pod.
    create(
        &ns,
        "greedy",
        json!({"title": "t", "sfu": {"resources": {"requests": {"cpu": "2"}, "limits": {"cpu": "1"}}}}),
    )
    .await;
    create(&ns, "modest", json!({"title": "t"})).await;
    let m = until_meeting(&ns, &op, "greedy", "reported as refused", T, |m| {
        m.status.as_ref().is_some_and(|s| {
            s.conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.reason == "SfuRefused")
        })
    })
    .await;
    let ready = m
        .status
        .unwrap()
        .conditions
        .into_iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert!(
        ready
            .message
            .contains("must be less than or equal to cpu limit"),
        "{}",
        ready.message
    );
    until_meeting(&ns, &op, "modest", "Running", T, is(MeetingPhase::Running)).await;
    assert!(
        event_reasons(&ns, "greedy")
            .await
            .iter()
            .any(|r| r == "SfuRefused")
    );
}

/// A plain HTTP GET on loopback, returning status line and body.
async fn http_get(addr: &str, path: &str) -> (String, String) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
    s.write_all(
        format!("GET {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).await.unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    (head.lines().next().unwrap().to_owned(), body.to_owned())
}

#[tokio::test]
async fn metrics_health_and_a_clean_exit_on_sigterm() {
    let (ns, mut op) = setup("mtg-metrics", &[]).await;
    create(&ns, "counted", json!({"title": "t"})).await;
    let m = until_meeting(&ns, &op, "counted", "Running", T, is(MeetingPhase::Running)).await;
    let addr = op.metrics_addr().await;
    let (status, body) = http_get(&addr, "/healthz").await;
    assert!(status.contains("200"), "{status}");
    assert_eq!(body.trim(), "ok");
    assert!(http_get(&addr, "/readyz").await.0.contains("200"));
    let (_, metrics) = http_get(&addr, "/metrics").await;
    for want in [
        r#"raum_meetings{phase="Running"} 1"#,
        "raum_leader 1",
        r#"raum_reconciles_total{controller="meeting"}"#,
        r#"raum_reconcile_duration_seconds_bucket"#,
    ] {
        assert!(metrics.contains(want), "{want} missing from\n{metrics}");
    }

    let status = op.terminate(Duration::from_secs(10));
    assert!(status.success(), "{status:?}\n{}", op.logs());
    // The operator's own log never holds a join token.
    let url = m.status.unwrap().url.unwrap();
    let token = url.rsplit('/').next().unwrap();
    assert!(!op.logs().contains(token), "token in the operator log");
}

#[tokio::test]
async fn two_operators_never_both_act() {
    let c = cluster();
    let (ns, first) = setup("mtg-leader", &[]).await;
    create(&ns, "one", json!({"title": "t"})).await;
    until_meeting(&ns, &first, "one", "Running", T, is(MeetingPhase::Running)).await;
    // A second replica waits on the Lease; its log says so and it creates nothing.
    let second = Operator::start(c, &ns.name, &[]);
    raum_testkit::wait::eventually("the second replica to wait", T, || {
        second.logs().contains("waiting to lead")
    })
    .await;
    assert!(!second.logs().contains("leading"), "{}", second.logs());
    assert_eq!(sfu_pods(&ns, "one").await.len(), 1);
    // When the leader goes, the standby takes over.
    drop(first);
    create(&ns, "two", json!({"title": "t"})).await;
    until_meeting(
        &ns,
        &second,
        "two",
        "Running under the new leader",
        Duration::from_secs(60),
        is(MeetingPhase::Running),
    )
    .await;
}

/// Not a timed assertion: 200 meetings at once all reach Running; the time it took
/// and the operator's peak memory are printed for docs/benchmarks.md.
#[tokio::test]
async fn two_hundred_meetings_at_once_all_run() {
    let (ns, op) = setup("mtg-200", &[]).await;
    let api = ns.api::<Meeting>();
    let start = Instant::now();
    let creates = (0..200).map(|i| {
        let api = api.clone();
        async move {
            api.create(
                &PostParams::default(),
                &Meeting::new(
                    &format!("m{i:03}"),
                    spec(json!({"title": format!("Meeting {i}")})),
                ),
            )
            .await
            .unwrap()
        }
    });
    futures::future::join_all(creates).await;
    let created = start.elapsed();
    wait("200 meetings Running", Duration::from_secs(300), async {
        loop {
            let list = api.list(&ListParams::default()).await.unwrap();
            let running = list
                .items
                .iter()
                .filter(|m| phase(m) == Some(MeetingPhase::Running))
                .count();
            if running == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    })
    .await;
    let all_running = start.elapsed();
    let status = std::fs::read_to_string(format!("/proc/{}/status", op.pid())).unwrap();
    let hwm = status
        .lines()
        .find(|l| l.starts_with("VmHWM"))
        .unwrap_or("VmHWM: ?")
        .to_owned();
    let pods = ns
        .api::<Pod>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .len();
    assert_eq!(pods, 200, "one pod per meeting");
    println!(
        "BENCH 200 meetings: created in {:.1} s, all Running after {:.1} s; operator peak RSS {}",
        created.as_secs_f64(),
        all_running.as_secs_f64(),
        hwm.trim_start_matches("VmHWM:").trim()
    );
    // Check the pods reached Running through kwok, not just the status.
    let one = ns.api::<Pod>().get("raum-m199").await.unwrap();
    wait(
        "pod Running",
        T,
        await_condition(ns.api::<Pod>(), "raum-m199", conditions::is_pod_running()),
    )
    .await
    .unwrap();
    assert!(one.metadata.owner_references.is_some());
}

/// A failed reconcile shows on the object. On a control plane of its own whose Service
/// range holds about five addresses besides the `kubernetes` Service's, eight meetings
/// start at once: some cannot get their Service. Each of those keeps its URL and a phase,
/// says why in its `Reconciled` condition with the API server's words, and has one
/// Warning event for it however often it is retried; once addresses are free again,
/// the retries get them and the meetings run.
#[tokio::test]
async fn meetings_whose_service_is_refused_say_so_and_recover() {
    let c = Cluster::start_with(&["--service-range", "10.0.0.0/29"]).unwrap();
    c.install_crds().await;
    let ns = c.namespace("mtg-full", RESTRICTED).await;
    install_rbac(&c, &ns.name);
    let op = Operator::start(&c, &ns.name, &[]);
    let names: Vec<String> = (0..8).map(|i| format!("m{i}")).collect();
    for n in &names {
        create(&ns, n, json!({"title": "t"})).await;
    }
    let api = ns.api::<Meeting>();
    let reconciled = |m: &Meeting| -> Option<(String, String, String)> {
        let c = m
            .status
            .as_ref()?
            .conditions
            .iter()
            .find(|c| c.type_ == "Reconciled")?;
        Some((c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    // Every meeting gets a status: some run, the others say why they cannot.
    let failing: Vec<Meeting> = raum_testkit::wait::until(
        "every meeting running or failing visibly, some failing",
        Duration::from_secs(60),
        || op.logs(),
        async || {
            let list = api.list(&ListParams::default()).await.unwrap().items;
            let running = list.iter().filter(|m| is(MeetingPhase::Running)(m)).count();
            let failing: Vec<Meeting> = list
                .into_iter()
                .filter(|m| reconciled(m).is_some_and(|(s, _, _)| s == "False"))
                .collect();
            (running + failing.len() == 8 && !failing.is_empty()).then_some(failing)
        },
    )
    .await;
    for m in &failing {
        let st = m.status.as_ref().unwrap();
        assert_eq!(st.phase, Some(MeetingPhase::Starting), "{st:?}");
        assert!(st.url.as_deref().unwrap().starts_with(PUBLIC_URL), "{st:?}");
        let (_, reason, message) = reconciled(m).unwrap();
        assert_eq!(reason, "ApplyFailed");
        assert!(
            message.contains("cannot apply Service") && message.contains("range is full"),
            "{message}"
        );
    }
    // Retried with backoff (1 s, 2 s, 4 s, ...) while its Warning stays one event.
    let first = failing[0].metadata.name.clone().unwrap();
    raum_testkit::wait::eventually("three retries of one failing meeting", T, || {
        op.logs()
            .lines()
            .filter(|l| l.contains("reconcile failed") && l.contains(&format!("meeting={first} ")))
            .count()
            >= 3
    })
    .await;
    let events: Api<Event> = Api::namespaced(ns.client.clone(), &ns.name);
    let warnings: Vec<Event> = events
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| {
            e.reason.as_deref() == Some("ReconcileFailed")
                && e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(first.as_str())
        })
        .collect();
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert!(
        warnings[0].series.is_none(),
        "repeated: {:?}",
        warnings[0].series
    );
    assert!(
        warnings[0]
            .note
            .as_deref()
            .unwrap_or_default()
            .contains("range is full"),
        "{warnings:?}"
    );
    // Free as many addresses: the failing meetings get them and run.
    let running: Vec<String> = api
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|m| is(MeetingPhase::Running)(m))
        .filter_map(|m| m.metadata.name)
        .take(failing.len())
        .collect();
    for n in &running {
        api.delete(n, &DeleteParams::foreground()).await.unwrap();
    }
    for m in &failing {
        let name = m.metadata.name.as_deref().unwrap();
        let m = until_meeting(
            &ns,
            &op,
            name,
            "Running after a retry",
            Duration::from_secs(120),
            is(MeetingPhase::Running),
        )
        .await;
        assert_eq!(reconciled(&m).unwrap().0, "True");
    }
}
