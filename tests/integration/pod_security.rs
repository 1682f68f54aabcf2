//! The test control plane enforces the `restricted` Pod Security Standard and kwok
//! takes admitted pods to Running: the ground the SFU pods will stand on.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::PostParams;
use kube::runtime::wait::{await_condition, conditions};
use serde_json::json;

use crate::support::cluster::{cluster, wait};

fn pod(name: &str, restricted: bool) -> Pod {
    let mut spec = json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "automountServiceAccountToken": false,
            "containers": [{"name": "main", "image": "registry.invalid/raum:test"}]
        }
    });
    if restricted {
        spec["spec"]["securityContext"] = json!({
            "runAsNonRoot": true,
            "runAsUser": 65532,
            "seccompProfile": {"type": "RuntimeDefault"}
        });
        spec["spec"]["containers"][0]["securityContext"] = json!({
            "allowPrivilegeEscalation": false,
            "readOnlyRootFilesystem": true,
            "capabilities": {"drop": ["ALL"]}
        });
    }
    serde_json::from_value(spec).unwrap()
}

#[tokio::test]
async fn restricted_namespace_refuses_root_and_runs_a_compliant_pod() {
    let c = cluster();
    let ns = c
        .namespace(
            "pss",
            &[
                ("pod-security.kubernetes.io/enforce", "restricted"),
                ("pod-security.kubernetes.io/enforce-version", "latest"),
            ],
        )
        .await;
    let pods = ns.api::<Pod>();

    let err = pods
        .create(&PostParams::default(), &pod("as-root", false))
        .await
        .expect_err("a pod that may run as root must be refused");
    let kube::Error::Api(status) = err else {
        panic!("unexpected error {err}")
    };
    assert_eq!(status.code, 403, "{status:?}");
    assert!(
        status
            .message
            .contains("violates PodSecurity \"restricted:latest\""),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("runAsNonRoot"),
        "{}",
        status.message
    );

    pods.create(&PostParams::default(), &pod("non-root", true))
        .await
        .expect("a restricted-compliant pod is admitted");
    wait(
        "the admitted pod to run on the kwok node",
        Duration::from_secs(60),
        await_condition(pods.clone(), "non-root", conditions::is_pod_running()),
    )
    .await
    .unwrap();
    let running = pods.get("non-root").await.unwrap();
    assert_eq!(
        running.spec.unwrap().node_name.as_deref(),
        Some("kwok-node-0")
    );
    assert!(
        running.status.unwrap().pod_ip.is_some(),
        "kwok gives the pod an IP"
    );
}
