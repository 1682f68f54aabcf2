//! The Helm chart and the plain manifests installed for real, into a control plane of
//! their own (the chart's cluster-scoped objects would collide with the shared
//! cluster's): `helm template | kubectl apply --dry-run=server`, kubeconform in strict
//! mode against the API server's own schemas, `helm install` with default values in a
//! namespace enforcing the `restricted` Pod Security Standard, the operator and gateway
//! run locally as the chart's ServiceAccounts, compliance staff's hold, `helm
//! upgrade`, `helm uninstall` and what it keeps, then `kubectl apply -k manifests/`.

use raum_testkit::tools;

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Pod, Secret};
use kube::api::{Api, PostParams};
use raum::api::{Meeting, MeetingPhase, RetentionPolicy};
use serde_json::json;

use crate::support::cluster::{Cluster, repo, scratch_dir};

const NS: &str = "raum-system";
const URL: &str = "https://meet.example.org";

struct Helm {
    bin: PathBuf,
    kubeconfig: PathBuf,
    home: tempfile::TempDir,
}

impl Helm {
    fn run(&self, args: &[&str]) -> Output {
        Command::new(&self.bin)
            .args(args)
            .current_dir(repo())
            .env("KUBECONFIG", &self.kubeconfig)
            .env("HELM_CACHE_HOME", self.home.path().join("cache"))
            .env("HELM_CONFIG_HOME", self.home.path().join("config"))
            .env("HELM_DATA_HOME", self.home.path().join("data"))
            .stdin(Stdio::null())
            .output()
            .expect("helm runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let out = self.run(args);
        assert!(
            out.status.success(),
            "helm {args:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }
}

fn ok(out: Output, what: &str) -> String {
    assert!(
        out.status.success(),
        "{what}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

async fn until<T>(what: &str, limit: Duration, mut f: impl AsyncFnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return v;
        }
        assert!(
            start.elapsed() < limit,
            "timed out after {limit:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

fn kubeconfig_as(c: &Cluster, sa: &str) -> PathBuf {
    let admin = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let mut v: serde_yaml::Value = serde_yaml::from_str(&admin).unwrap();
    v["users"][0]["user"]["as"] = format!("system:serviceaccount:{NS}:{sa}").into();
    v["users"][0]["user"]["as-groups"] = serde_yaml::to_value([
        "system:serviceaccounts",
        &format!("system:serviceaccounts:{NS}"),
        "system:authenticated",
    ])
    .unwrap();
    let path = scratch_dir(&format!("kubeconfig-{sa}"));
    std::fs::write(&path, serde_yaml::to_string(&v).unwrap()).unwrap();
    path
}

struct Killed(std::process::Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(args: &[&str], log: &Path) -> Killed {
    Killed(
        Command::new(env!("CARGO_BIN_EXE_raum"))
            .args(args)
            .env("RAUM_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn the_chart_installs_upgrades_and_uninstalls_and_the_manifests_apply() {
    let c = Cluster::start().expect("a control plane of its own");
    let client = c.client().await;
    let helm = Helm {
        bin: tools::dir().join("helm"),
        kubeconfig: c.kubeconfig.clone(),
        home: tempfile::tempdir().unwrap(),
    };
    let kubectl = |args: &[&str], stdin: Option<&str>| c.kubectl(args, stdin);

    // raum's namespace enforces the restricted Pod Security Standard; a volume for the
    // access-log claim (the test cluster has no provisioner).
    let namespace = repo().join("manifests/namespace.yaml");
    ok(
        kubectl(&["apply", "-f", namespace.to_str().unwrap()], None),
        "namespace",
    );
    let pv_dir = scratch_dir("raum-pv");
    std::fs::create_dir_all(&pv_dir).unwrap();
    ok(
        kubectl(
            &["apply", "-f", "-"],
            Some(&format!(
                "apiVersion: v1\nkind: PersistentVolume\nmetadata: {{name: access-log}}\nspec:\n  capacity: {{storage: 1Gi}}\n  accessModes: [ReadWriteOnce]\n  hostPath: {{path: {}}}\n",
                pv_dir.display()
            )),
        ),
        "pv",
    );

    // 1. Every rendered object is accepted by the API server (dry run; the
    // RetentionPolicy, a post-install hook, needs its CRD first and is checked below).
    let rendered = helm.ok(&[
        "template",
        "raum",
        "charts/raum",
        "--kube-version",
        "1.35.4",
        "-n",
        NS,
        "--no-hooks",
        "--set",
        &format!("publicUrl={URL}"),
    ]);
    ok(
        kubectl(&["apply", "--dry-run=server", "-f", "-"], Some(&rendered)),
        "helm template | kubectl apply --dry-run=server",
    );

    // 2. helm install with default values.
    let installed = helm.ok(&[
        "install",
        "raum",
        "charts/raum",
        "-n",
        NS,
        "--set",
        &format!("publicUrl={URL}"),
        "--wait",
        "--timeout",
        "120s",
    ]);
    assert!(installed.contains("STATUS: deployed"), "{installed}");
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), NS);
    for (name, replicas) in [("raum-operator", 2), ("raum-gateway", 1)] {
        let d = deployments.get(name).await.unwrap();
        let st = d.status.unwrap_or_default();
        assert_eq!(
            st.ready_replicas,
            Some(replicas),
            "{name}: pods Running and Ready through kwok"
        );
    }
    let rp: Api<RetentionPolicy> = Api::namespaced(client.clone(), NS);
    let policy = rp
        .get("access-log")
        .await
        .expect("the default RetentionPolicy");
    assert_eq!(
        (policy.spec.max_age.as_str(), policy.spec.time_zone.as_str()),
        ("56d", "Europe/Berlin")
    );
    for (kind, name) in [
        ("poddisruptionbudget", "raum-operator"),
        ("networkpolicy", "raum-operator"),
        ("networkpolicy", "raum-gateway"),
        ("pvc", "raum-access-log"),
        ("service", "raum-gateway"),
        ("clusterrole", "raum-hold-editor"),
        (
            "validatingadmissionpolicy",
            "raum-hold-editors-change-holds-only",
        ),
    ] {
        ok(
            kubectl(&["-n", NS, "get", kind, name], None),
            &format!("{kind}/{name}"),
        );
    }
    let pdb = ok(
        kubectl(
            &[
                "-n",
                NS,
                "get",
                "pdb",
                "raum-operator",
                "-o",
                "jsonpath={.spec.maxUnavailable}",
            ],
            None,
        ),
        "pdb",
    );
    assert_eq!(pdb, "1");

    // Every rendered manifest, hooks and optional Ingress included, passes kubeconform
    // in strict mode against the schemas this API server serves.
    let schemas = scratch_dir("raum-schemas");
    std::fs::create_dir_all(&schemas).unwrap();
    ok(
        Command::new(repo().join("tests/tools/openapi-schemas"))
            .args([
                c.bin_dir.join("kubectl").to_str().unwrap(),
                schemas.to_str().unwrap(),
            ])
            .env("KUBECONFIG", &c.kubeconfig)
            .output()
            .unwrap(),
        "openapi-schemas",
    );
    let full = helm.ok(&[
        "template",
        "raum",
        "charts/raum",
        "--kube-version",
        "1.35.4",
        "-n",
        NS,
        "--set",
        &format!("publicUrl={URL}"),
        "--set",
        "gateway.ingress.enabled=true",
        "--set",
        "gateway.ingress.host=meet.example.org",
        "--set",
        "gateway.ingress.tlsSecret=meet-tls",
        "--set",
        "operator.advertiseIps={203.0.113.5}",
    ]);
    let rendered_file = scratch_dir("raum-rendered.yaml");
    std::fs::write(&rendered_file, &full).unwrap();
    let location = format!(
        "{}/{{{{ .ResourceKind }}}}-{{{{ .Group }}}}-{{{{ .ResourceAPIVersion }}}}{{{{ .StrictSuffix }}}}.json",
        schemas.display()
    );
    let report = ok(
        Command::new(tools::dir().join("kubeconform"))
            .args([
                "-strict",
                "-summary",
                "-schema-location",
                &location,
                rendered_file.to_str().unwrap(),
            ])
            .output()
            .unwrap(),
        "kubeconform -strict",
    );
    assert!(
        report.contains("Invalid: 0, Errors: 0, Skipped: 0"),
        "{report}"
    );
    std::fs::remove_dir_all(&schemas).unwrap();

    // 3. Compliance staff in the hold-editor role: annotate yes, change no, delete no.
    ok(
        kubectl(
            &[
                "create",
                "clusterrolebinding",
                "hold-editors",
                "--clusterrole=raum-hold-editor",
                "--group=compliance",
            ],
            None,
        ),
        "binding",
    );
    let as_compliance = |args: &[&str]| {
        let mut all = vec!["-n", NS, "--as=compliance-officer", "--as-group=compliance"];
        all.extend_from_slice(args);
        c.kubectl(&all, None)
    };
    ok(
        as_compliance(&[
            "annotate",
            "retentionpolicy",
            "access-log",
            "hold.raum.dev/incident=2026-11-01/2026-11-02; attack",
        ]),
        "annotate as compliance",
    );
    until(
        "the admission policy to refuse a maxAge change",
        Duration::from_secs(30),
        async || {
            let out = as_compliance(&[
                "patch",
                "retentionpolicy",
                "access-log",
                "--type=merge",
                "-p",
                r#"{"spec":{"maxAge":"1d"}}"#,
            ]);
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            if out.status.success() {
                // Not loaded yet: undo as admin and try again.
                ok(
                    c.kubectl(
                        &[
                            "-n",
                            NS,
                            "patch",
                            "retentionpolicy",
                            "access-log",
                            "--type=merge",
                            "-p",
                            r#"{"spec":{"maxAge":"56d"}}"#,
                        ],
                        None,
                    ),
                    "undo",
                );
                return None;
            }
            err.contains("hold editors may add or remove hold annotations only")
                .then_some(())
        },
    )
    .await;
    let out = as_compliance(&["delete", "retentionpolicy", "access-log"]);
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("Forbidden"),
        "{out:?}"
    );
    assert_eq!(rp.get("access-log").await.unwrap().spec.max_age, "56d");

    // 4. The operator and the gateway as local processes, each with exactly its chart
    // ServiceAccount's permissions: a Meeting gets its pod and URL, the gateway serves
    // it, the pruning run succeeds as its own ServiceAccount.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let op_log = scratch_dir("chart-operator.log");
    let _operator = spawn(
        &[
            "operator",
            &format!(
                "--kubeconfig={}",
                kubeconfig_as(&c, "raum-operator").display()
            ),
            &format!("--public-url=http://127.0.0.1:{port}"),
            &format!("--operator-namespace={NS}"),
            "--metrics-addr=127.0.0.1:0",
            "--network-policies",
            "--warm-up=0s",
        ],
        &op_log,
    );
    // Meetings in a namespace that enforces the restricted Pod Security Standard too:
    // the SFU pods the operator creates are admitted there.
    ok(
        kubectl(&["create", "namespace", "team"], None),
        "team namespace",
    );
    ok(
        kubectl(
            &[
                "label",
                "namespace",
                "team",
                "pod-security.kubernetes.io/enforce=restricted",
            ],
            None,
        ),
        "restricted team namespace",
    );
    let meetings: Api<Meeting> = Api::namespaced(client.clone(), "team");
    let m: Meeting = serde_json::from_value(json!({
        "apiVersion": "raum.dev/v1alpha1", "kind": "Meeting",
        "metadata": {"name": "standup"}, "spec": {"title": "Stand-up"},
    }))
    .unwrap();
    meetings.create(&PostParams::default(), &m).await.unwrap();
    let url = until("the meeting to run", Duration::from_secs(60), async || {
        let st = meetings.get("standup").await.ok()?.status?;
        (st.phase == Some(MeetingPhase::Running)).then_some(st.url?)
    })
    .await;
    ok(
        kubectl(
            &["-n", "team", "get", "networkpolicy", "raum-standup"],
            None,
        ),
        "the SFU's NetworkPolicy",
    );
    let logs = tempfile::tempdir().unwrap();
    let gw_log = scratch_dir("chart-gateway.log");
    let _gateway = spawn(
        &[
            "gateway",
            &format!(
                "--kubeconfig={}",
                kubeconfig_as(&c, "raum-gateway").display()
            ),
            &format!("--public-url=http://127.0.0.1:{port}"),
            &format!("--listen=127.0.0.1:{port}"),
            &format!("--access-log-dir={}", logs.path().display()),
            "--instance=chart-test",
        ],
        &gw_log,
    );
    let path = url
        .strip_prefix(&format!("http://127.0.0.1:{port}"))
        .unwrap()
        .to_owned();
    let status = until(
        "the gateway to serve the join page",
        Duration::from_secs(30),
        async || {
            let out = Command::new("curl")
                .args([
                    "-s",
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                    &format!("http://127.0.0.1:{port}{path}"),
                ])
                .output()
                .ok()?;
            let code = String::from_utf8_lossy(&out.stdout).into_owned();
            (code == "200").then_some(code)
        },
    )
    .await;
    assert_eq!(
        status,
        "200",
        "{}",
        std::fs::read_to_string(&gw_log).unwrap_or_default()
    );
    until(
        "the pruner's identity",
        Duration::from_secs(30),
        async || {
            c.kubectl(
                &["-n", NS, "get", "serviceaccount", "raum-prune-access-log"],
                None,
            )
            .status
            .success()
            .then_some(())
        },
    )
    .await;
    let prune_dir = tempfile::tempdir().unwrap();
    ok(
        Command::new(env!("CARGO_BIN_EXE_raum"))
            .args([
                "prune",
                &format!(
                    "--kubeconfig={}",
                    kubeconfig_as(&c, "raum-prune-access-log").display()
                ),
                &format!("--policy={NS}/access-log"),
                &format!("--log-dir={}", prune_dir.path().display()),
            ])
            .output()
            .unwrap(),
        "raum prune as the pruner's ServiceAccount",
    );
    // The pruning Job as the CronJob makes it: admitted in the restricted namespace,
    // scheduled next to the gateway pod (the claim is ReadWriteOnce), run by kwok.
    ok(
        kubectl(
            &[
                "-n",
                NS,
                "create",
                "job",
                "--from=cronjob/raum-prune-access-log",
                "prune-now",
            ],
            None,
        ),
        "a Job from the CronJob",
    );
    ok(
        kubectl(
            &[
                "-n",
                NS,
                "wait",
                "--for=condition=Complete",
                "job/prune-now",
                "--timeout=60s",
            ],
            None,
        ),
        "the pruning Job completes",
    );
    let last = rp
        .get("access-log")
        .await
        .unwrap()
        .status
        .unwrap()
        .last_run
        .unwrap();
    assert_eq!(last.outcome.as_deref(), Some("Succeeded"));
    drop(_gateway);
    drop(_operator);

    // 5. helm upgrade with changed values changes the operator's flags.
    helm.ok(&[
        "upgrade",
        "raum",
        "charts/raum",
        "-n",
        NS,
        "--reuse-values",
        "--set",
        "operator.warmUp=5m",
        "--set",
        "operator.advertiseIps={203.0.113.5}",
    ]);
    let args = ok(
        kubectl(
            &[
                "-n",
                NS,
                "get",
                "deployment",
                "raum-operator",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].args}",
            ],
            None,
        ),
        "operator args",
    );
    assert!(
        args.contains("--warm-up=5m") && args.contains("--advertise-ip=203.0.113.5"),
        "{args}"
    );
    assert_eq!(
        rp.get("access-log").await.unwrap().spec.max_age,
        "56d",
        "the policy is left alone"
    );

    // 5b. TURN switched on: the relay's Deployment is admitted under the restricted
    // standard (its pod runs, through kwok), its Service and NetworkPolicy exist, and
    // the operator, as the chart's ServiceAccount with the flags the chart gives it,
    // creates the TURN server's secret and each meeting's derived key Secret, which
    // the SFU pod reads.
    ok(
        kubectl(
            &[
                "-n",
                NS,
                "create",
                "secret",
                "generic",
                "turn-tls",
                "--type=kubernetes.io/tls",
                "--from-literal=tls.crt=placeholder",
                "--from-literal=tls.key=placeholder",
            ],
            None,
        ),
        "TURN TLS secret",
    );
    helm.ok(&[
        "upgrade",
        "raum",
        "charts/raum",
        "-n",
        NS,
        "--reuse-values",
        "--set",
        "turn.enabled=true",
        "--set",
        "turn.host=turn.example.org",
        "--set",
        "turn.tls.secret=turn-tls",
    ]);
    // Not `--wait`: that waits for the LoadBalancer's address, and the test cluster
    // has no load balancer.
    until(
        "the TURN pod to be admitted and run",
        Duration::from_secs(90),
        async || {
            let st = deployments.get("raum-turn").await.ok()?.status?;
            (st.ready_replicas == Some(1)).then_some(())
        },
    )
    .await;
    let ports = ok(
        kubectl(
            &[
                "-n",
                NS,
                "get",
                "service",
                "raum-turn",
                "-o",
                "jsonpath={range .spec.ports[*]}{.port}/{.protocol} {end}{.spec.type}",
            ],
            None,
        ),
        "TURN Service",
    );
    assert_eq!(ports.trim(), "3478/UDP 3478/TCP 443/TCP LoadBalancer");
    let egress = ok(
        kubectl(
            &[
                "-n",
                NS,
                "get",
                "networkpolicy",
                "raum-turn",
                "-o",
                "jsonpath={.spec.egress}",
            ],
            None,
        ),
        "TURN NetworkPolicy",
    );
    let egress: serde_json::Value = serde_json::from_str(&egress).unwrap();
    assert_eq!(
        egress,
        json!([{"to": [{"namespaceSelector": {}, "podSelector": {"matchLabels": {"app.kubernetes.io/name": "raum-sfu"}}}],
                "ports": [{"port": 50000, "protocol": "UDP"}]},
               {"to": [{"ipBlock": {"cidr": "203.0.113.5/32"}}],
                "ports": [{"port": 30000, "endPort": 32767, "protocol": "UDP"}]}]),
        "out to SFU media only: the pods' port, and NodePorts on the SFU networks"
    );
    let turn_args = ok(
        kubectl(
            &[
                "-n",
                NS,
                "get",
                "deployment",
                "raum-turn",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].args}",
            ],
            None,
        ),
        "TURN args",
    );
    assert!(
        turn_args.contains("--sfu-network=203.0.113.5/32")
            && turn_args.contains("--sfu-ports=30000-32767"),
        "the advertised IP and the NodePort range fence the relay: {turn_args}"
    );
    let op_args: Vec<String> = serde_json::from_str(&ok(
        kubectl(
            &[
                "-n",
                NS,
                "get",
                "deployment",
                "raum-operator",
                "-o",
                "jsonpath={.spec.template.spec.containers[0].args}",
            ],
            None,
        ),
        "operator args",
    ))
    .unwrap();
    let turn_flags: Vec<&str> = op_args
        .iter()
        .map(String::as_str)
        .filter(|a| a.starts_with("--turn"))
        .collect();
    assert_eq!(
        turn_flags,
        [
            "--turn-url=turn:turn.example.org:3478?transport=udp",
            "--turn-url=turn:turn.example.org:3478?transport=tcp",
            "--turn-url=turns:turn.example.org:443?transport=tcp",
            "--turn-key-secret=raum-turn-key",
        ]
    );
    let op_log = scratch_dir("chart-operator-turn.log");
    let mut op = vec![
        "operator".to_owned(),
        format!(
            "--kubeconfig={}",
            kubeconfig_as(&c, "raum-operator").display()
        ),
        format!("--public-url=http://127.0.0.1:{port}"),
        format!("--operator-namespace={NS}"),
        "--metrics-addr=127.0.0.1:0".to_owned(),
        "--network-policies".to_owned(),
        "--warm-up=0s".to_owned(),
    ];
    op.extend(turn_flags.iter().map(|f| f.to_string()));
    let op: Vec<&str> = op.iter().map(String::as_str).collect();
    let _operator = spawn(&op, &op_log);
    let m: Meeting = serde_json::from_value(json!({
        "apiVersion": "raum.dev/v1alpha1", "kind": "Meeting",
        "metadata": {"name": "lesson"}, "spec": {"title": "Maths"},
    }))
    .unwrap();
    let created = meetings.create(&PostParams::default(), &m).await.unwrap();
    let uid = created.metadata.uid.clone().unwrap();
    until(
        "the TURN meeting to run",
        Duration::from_secs(60),
        async || {
            let st = meetings.get("lesson").await.ok()?.status?;
            (st.phase == Some(MeetingPhase::Running)).then_some(())
        },
    )
    .await;
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team");
    let key = secrets.get("raum-lesson-turn").await.unwrap();
    let master = Api::<Secret>::namespaced(client.clone(), NS)
        .get("raum-turn-key")
        .await
        .expect("the operator created the TURN server's secret");
    let master = &master.data.unwrap()["key"].0;
    assert_eq!(master.len(), 64, "32 random bytes as hex");
    let derived = raum::turn_credentials::TurnSecret::from_bytes(master).meeting_key(&uid);
    assert_eq!(
        key.data.unwrap()["key"].0,
        derived.as_bytes(),
        "the meeting's key, not the TURN server's secret"
    );
    assert_eq!(
        key.metadata.owner_references.unwrap()[0].uid,
        uid,
        "owned by its Meeting"
    );
    let pod = Api::<Pod>::namespaced(client.clone(), "team")
        .get("raum-lesson")
        .await
        .unwrap();
    let container = &pod.spec.unwrap().containers[0];
    let args = container.args.clone().unwrap();
    assert!(args.contains(&format!("--turn-key-id={uid}")), "{args:?}");
    assert!(
        args.contains(&"--turn-url=turns:turn.example.org:443?transport=tcp".to_owned()),
        "{args:?}"
    );
    let env = container.env.clone().unwrap();
    let from = env
        .iter()
        .find(|e| e.name == "RAUM_TURN_SECRET")
        .and_then(|e| e.value_from.clone()?.secret_key_ref)
        .expect("the key from the Secret");
    assert_eq!(
        (from.name.as_str(), from.key.as_str()),
        ("raum-lesson-turn", "key")
    );
    // The operator reads no Secret in the meeting's namespace, and none but its own
    // keys in raum's.
    for (ns, name) in [("team", "raum-lesson-turn"), (NS, "turn-tls")] {
        let out = c.kubectl(
            &[
                "-n",
                ns,
                "get",
                "secret",
                name,
                &format!("--as=system:serviceaccount:{NS}:raum-operator"),
            ],
            None,
        );
        assert!(!out.status.success(), "the operator may read {ns}/{name}");
    }
    drop(_operator);

    // 6. helm uninstall removes everything but what it keeps on purpose, and says so.
    let out = helm.run(&["uninstall", "raum", "-n", NS, "--wait"]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{said}");
    assert!(said.contains("kept due to the resource policy"), "{said}");
    for kept in [
        "meetings.raum.dev",
        "retentionpolicies.raum.dev",
        "raum-access-log",
    ] {
        assert!(said.contains(kept), "{kept} not named as kept: {said}");
    }
    for (kind, name) in [
        ("deployment", "raum-operator"),
        ("deployment", "raum-gateway"),
        ("deployment", "raum-turn"),
        ("networkpolicy", "raum-turn"),
        ("clusterrole", "raum-operator"),
        ("clusterrole", "raum-hold-editor"),
        ("serviceaccount", "raum-gateway"),
        ("networkpolicy", "raum-gateway"),
    ] {
        let out = kubectl(&["-n", NS, "get", kind, name], None);
        assert!(!out.status.success(), "{kind}/{name} is still there");
    }
    ok(
        kubectl(&["get", "crd", "meetings.raum.dev"], None),
        "kept CRD",
    );
    ok(
        kubectl(&["-n", NS, "get", "pvc", "raum-access-log"], None),
        "kept claim",
    );
    let kept = rp.get("access-log").await.unwrap();
    assert!(
        kept.metadata
            .annotations
            .unwrap()
            .contains_key("hold.raum.dev/incident"),
        "the hold survives"
    );

    // 7. The same install from the plain manifests, on a cluster without raum's CRDs.
    ok(
        kubectl(
            &[
                "delete",
                "crd",
                "meetings.raum.dev",
                "retentionpolicies.raum.dev",
            ],
            None,
        ),
        "delete CRDs",
    );
    let crds = repo().join("manifests/crds");
    ok(
        kubectl(&["apply", "-k", crds.to_str().unwrap()], None),
        "kubectl apply -k manifests/crds",
    );
    ok(
        kubectl(
            &[
                "wait",
                "--for",
                "condition=Established",
                "crd/meetings.raum.dev",
                "crd/retentionpolicies.raum.dev",
            ],
            None,
        ),
        "CRDs established",
    );
    let applied = ok(
        kubectl(
            &["apply", "-k", repo().join("manifests").to_str().unwrap()],
            None,
        ),
        "kubectl apply -k manifests/",
    );
    assert!(
        applied.contains("retentionpolicy.raum.dev/access-log created"),
        "{applied}"
    );
    until(
        "the manifests' deployments to be ready",
        Duration::from_secs(90),
        async || {
            let op = deployments
                .get("raum-operator")
                .await
                .ok()?
                .status?
                .ready_replicas?;
            let gw = deployments
                .get("raum-gateway")
                .await
                .ok()?
                .status?
                .ready_replicas?;
            (op == 2 && gw == 1).then_some(())
        },
    )
    .await;
}
