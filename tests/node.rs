//! raum's image on a real node: `tests/cluster/up --real-node` adds containerd, runc,
//! kubelet, a CNI bridge and kube-proxy to the test control plane (in network
//! namespaces of their own, addresses from 198.18.0.0/15; tests/cluster/README.md),
//! and imports `ghcr.io/raum-dev/raum:test`, the Dockerfile's final stage built by
//! buildah from the static release binary. Then, as a platform team would:
//!
//! 1. `helm install` the chart with that image in a namespace enforcing the
//!    `restricted` Pod Security Standard, the access-log claim bound to a local
//!    PersistentVolume: operator (two replicas), gateway, RetentionPolicy; every pod
//!    Running and Ready on the real node by its real probes.
//! 2. A Meeting: its SFU pod runs `raum sfu` in a container, becomes Ready, and
//!    `status.participants` comes from its real `/status`.
//! 3. Two headless Chromiums in the "outside" namespace open the meeting's URL through
//!    the gateway's NodePort and decode each other's video and audio; the media goes to
//!    the SFU's NodePort on the advertised address; meanwhile the status counts two.
//!    The access log, on the claim, holds the browsers' own address.
//! 4. The SFU container killed from the runtime: the operator replaces the pod.
//! 5. The leading operator pod killed: another replica leads within the Lease's
//!    duration, and the meeting never has a second SFU pod.
//! 6. The prune CronJob's Job runs in a container on the node and prunes the claim's
//!    files under a hold, and writes the policy's status.
//! 7. No container wrote a file into its root filesystem.
//! 8. The meeting ends: its pod and its container are gone.
//!
//! A test binary of its own: the node's containers and two Chromiums want the two
//! cores to themselves.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use raum_testkit::browser;
use raum_testkit::cluster::Cluster;
use raum_testkit::netns::chromium_in;
use serde_json::{Value, json};

const NS: &str = "raum-system";
const TEAM: &str = "team";
const GATEWAY_NODE_PORT: u16 = 30080;

/// What `tests/cluster/node/up` wrote about the node (DIR/node/env).
struct Node {
    dir: PathBuf,
    env: HashMap<String, String>,
}

impl Node {
    fn of(c: &Cluster) -> Node {
        let dir = c
            .kubeconfig
            .parent()
            .expect("the cluster's directory")
            .to_owned();
        let text = std::fs::read_to_string(dir.join("node/env")).expect("node/env");
        let env = text
            .lines()
            .filter_map(|l| l.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        Node { dir, env }
    }

    fn get(&self, key: &str) -> &str {
        self.env
            .get(key)
            .unwrap_or_else(|| panic!("{key} in node/env"))
    }

    fn ip(&self) -> &str {
        self.get("RAUM_NODE_IP")
    }

    /// containerd's own client, in the namespace kubelet's containers live in.
    fn ctr(&self, args: &[&str]) -> String {
        let out = Command::new("ctr")
            .args([
                "--address",
                self.get("RAUM_NODE_CONTAINERD"),
                "-n",
                "k8s.io",
            ])
            .args(args)
            .output()
            .expect("ctr runs");
        assert!(out.status.success(), "ctr {args:?}: {}", stderr(&out));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The containers of pod `pod` (by kubelet's label), as containerd lists them.
    fn containers_of(&self, pod: &str) -> Vec<String> {
        self.ctr(&[
            "containers",
            "ls",
            "-q",
            &format!("labels.\"io.kubernetes.pod.name\"=={pod}"),
        ])
        .lines()
        .map(str::to_owned)
        .collect()
    }

    /// The one container of `pod` named `name` (not its sandbox).
    fn container(&self, pod: &str, name: &str) -> String {
        self.ctr(&[
            "containers",
            "ls",
            "-q",
            &format!(
                "labels.\"io.kubernetes.pod.name\"=={pod},labels.\"io.kubernetes.container.name\"=={name}"
            ),
        ])
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no container {name} of {pod} in containerd"))
        .to_owned()
    }

    /// The access log's directory: the local PersistentVolume's path.
    fn access_log(&self) -> PathBuf {
        self.dir.join("node/volumes/access-log")
    }
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn kubectl(c: &Cluster, args: &[&str]) -> String {
    kubectl_in(c, args, None)
}

fn kubectl_in(c: &Cluster, args: &[&str], stdin: Option<&str>) -> String {
    let out = c.kubectl(args, stdin);
    assert!(out.status.success(), "kubectl {args:?}: {}", stderr(&out));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn get(c: &Cluster, args: &[&str]) -> Value {
    let mut all = vec!["get"];
    all.extend_from_slice(args);
    all.extend_from_slice(&["-o", "json"]);
    serde_json::from_str(&kubectl(c, &all)).expect("kubectl's JSON")
}

/// Polls `f` until it gives a value; panics with `what` (and the last thing seen)
/// after `limit`. Limits catch a hang; they measure nothing.
fn until<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Result<T, String>) -> T {
    let end = Instant::now() + limit;
    loop {
        match f() {
            Ok(v) => return v,
            Err(last) if Instant::now() > end => {
                panic!("timed out after {limit:?} waiting for {what} (last: {last})")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(300)),
        }
    }
}

fn helm(args: &[&str]) -> String {
    let out = Command::new(raum_testkit::tools::dir().join("helm"))
        .args(args)
        .output()
        .expect("helm runs");
    assert!(
        out.status.success(),
        "helm {args:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        stderr(&out)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A namespace where the `restricted` Pod Security Standard is enforced.
fn restricted_namespace(c: &Cluster, name: &str) {
    kubectl(c, &["create", "namespace", name]);
    kubectl(
        c,
        &[
            "label",
            "namespace",
            name,
            "pod-security.kubernetes.io/enforce=restricted",
        ],
    );
}

fn ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|cs| {
        cs.iter()
            .any(|c| c["type"] == "Ready" && c["status"] == "True")
    })
}

fn sfu_pods(c: &Cluster) -> Vec<Value> {
    get(
        c,
        &[
            "pods",
            "-n",
            TEAM,
            "-l",
            "app.kubernetes.io/name=raum-sfu,raum.dev/meeting=lesson",
        ],
    )["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The meeting's one SFU pod, Running and Ready on the real node: its name and UID.
fn ready_sfu(c: &Cluster) -> Result<(String, String), String> {
    let pods = sfu_pods(c);
    let live: Vec<&Value> = pods
        .iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect();
    match live.as_slice() {
        [p] if p["status"]["phase"] == "Running" && ready(p) => {
            assert_eq!(p["spec"]["nodeName"], "raum-node-0", "{p}");
            Ok((
                p["metadata"]["name"].as_str().unwrap().to_owned(),
                p["metadata"]["uid"].as_str().unwrap().to_owned(),
            ))
        }
        other => Err(format!(
            "{:?}",
            other
                .iter()
                .map(|p| (&p["metadata"]["name"], &p["status"]["phase"]))
                .collect::<Vec<_>>()
        )),
    }
}

fn meeting(c: &Cluster) -> Value {
    get(c, &["meeting", "lesson", "-n", TEAM])
}

/// Every file in `dir`'s tree that holds data (size > 0), with its size.
fn files_with_data(dir: &Path) -> Vec<(String, u64)> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let meta = e.metadata().unwrap();
            if meta.is_dir() {
                stack.push(e.path());
            } else if meta.len() > 0 {
                found.push((e.path().display().to_string(), meta.len()));
            }
        }
    }
    found
}

/// What a failure needs to be understood: every pod, the events, and the last lines
/// of the node's own logs.
fn diagnose(c: &Cluster, node: &Node) {
    let out = c.kubectl(&["get", "pods", "-A", "-o", "wide"], None);
    eprintln!("--- pods\n{}", String::from_utf8_lossy(&out.stdout));
    let out = c.kubectl(&["get", "events", "-A", "--sort-by=.lastTimestamp"], None);
    let events = String::from_utf8_lossy(&out.stdout);
    let tail: Vec<&str> = events.lines().rev().take(40).collect();
    eprintln!(
        "--- events (last 40)\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    );
    for log in ["kubelet", "containerd", "kube-proxy"] {
        let text =
            std::fs::read_to_string(node.dir.join(format!("logs/{log}.log"))).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(15).collect();
        eprintln!(
            "--- {log}.log (last 15)\n{}",
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    for entry in walk(&node.dir.join("node/pod-logs")) {
        let text = std::fs::read_to_string(&entry).unwrap_or_default();
        let tail: Vec<&str> = text.lines().rev().take(5).collect();
        eprintln!(
            "--- {} (last 5)\n{}",
            entry.display(),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
}

/// Every regular file under `dir`.
fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            if e.file_type().map(|t| t.is_dir()).unwrap_or(false) {
                stack.push(e.path());
            } else {
                found.push(e.path());
            }
        }
    }
    found
}

#[test]
fn raum_runs_on_a_real_node_and_a_browser_call_goes_through_its_pods() {
    let c = Cluster::start_with(&["--real-node"]).expect("a control plane with a real node");
    let node = Node::of(&c);
    let run = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| scenario(&c, &node)));
    if let Err(e) = run {
        diagnose(&c, &node);
        std::panic::resume_unwind(e);
    }
}

fn scenario(c: &Cluster, node: &Node) {
    // --- 1. The chart, with the local image, under `restricted`. ---------------------
    restricted_namespace(c, NS);
    let volume = node.access_log();
    std::fs::create_dir_all(&volume).unwrap();
    kubectl_in(
        c,
        &["apply", "-f", "-"],
        Some(
            &json!({
                "apiVersion": "v1", "kind": "PersistentVolume",
                "metadata": {"name": "raum-access-log"},
                "spec": {
                    "capacity": {"storage": "1Gi"},
                    "accessModes": ["ReadWriteOnce"],
                    "storageClassName": "raum-local",
                    "persistentVolumeReclaimPolicy": "Retain",
                    "local": {"path": volume},
                    "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                        {"key": "kubernetes.io/hostname", "operator": "In", "values": ["raum-node-0"]}
                    ]}]}}
                }
            })
            .to_string(),
        ),
    );
    let public_url = format!("http://{}:{GATEWAY_NODE_PORT}", node.ip());
    let chart = raum_testkit::process::repo().join("charts/raum");
    let kubeconfig = c.kubeconfig.display().to_string();
    helm(&[
        "install",
        "raum",
        &chart.display().to_string(),
        "--kubeconfig",
        &kubeconfig,
        "-n",
        NS,
        "--set",
        "image.repository=ghcr.io/raum-dev/raum",
        "--set",
        "image.tag=test",
        "--set",
        "image.pullPolicy=Never",
        "--set",
        &format!("publicUrl={public_url}"),
        "--set",
        "gateway.service.type=NodePort",
        "--set",
        &format!("gateway.service.nodePort={GATEWAY_NODE_PORT}"),
        "--set",
        &format!("operator.advertiseIps={{{}}}", node.ip()),
        "--set",
        "gateway.accessLog.storageClass=raum-local",
        "--set",
        "gateway.accessLog.summaryInterval=3s",
        "--wait",
        "--timeout",
        "90s",
    ]);
    let pods = until(
        "the chart's pods Running and Ready",
        Duration::from_secs(120),
        || {
            let pods = get(c, &["pods", "-n", NS])["items"]
                .as_array()
                .cloned()
                .unwrap_or_default();
            let all_ready = pods.len() == 3
                && pods
                    .iter()
                    .all(|p| p["status"]["phase"] == "Running" && ready(p));
            if all_ready {
                Ok(pods)
            } else {
                Err(format!("{} pods", pods.len()))
            }
        },
    );
    for p in &pods {
        assert_eq!(p["spec"]["nodeName"], "raum-node-0", "{p}");
        for s in p["status"]["containerStatuses"].as_array().unwrap() {
            assert_eq!(s["image"], "ghcr.io/raum-dev/raum:test", "{p}");
        }
    }
    let names: Vec<&str> = pods
        .iter()
        .map(|p| p["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("raum-operator-"))
            .count(),
        2,
        "{names:?}"
    );
    assert_eq!(
        names
            .iter()
            .filter(|n| n.starts_with("raum-gateway-"))
            .count(),
        1,
        "{names:?}"
    );
    let claim = get(c, &["pvc", "raum-access-log", "-n", NS]);
    assert_eq!(claim["status"]["phase"], "Bound", "{claim}");
    assert_eq!(claim["spec"]["volumeName"], "raum-access-log", "{claim}");
    until(
        "the RetentionPolicy's CronJob",
        Duration::from_secs(60),
        || {
            let rp = get(c, &["retentionpolicy", "access-log", "-n", NS]);
            rp["status"]["cronJob"]
                .as_str()
                .map(str::to_owned)
                .ok_or(rp.to_string())
        },
    );

    // --- 2. A meeting: its SFU in a container, Ready by its probes. --------------------
    restricted_namespace(c, TEAM);
    kubectl_in(
        c,
        &["apply", "-f", "-"],
        Some(
            &json!({
                "apiVersion": "raum.dev/v1alpha1", "kind": "Meeting",
                "metadata": {"name": "lesson", "namespace": TEAM},
                // A CPU limit, so the SFU reports its share of it.
                "spec": {"title": "Lesson", "sfu": {"resources": {
                    "requests": {"cpu": "100m", "memory": "64Mi"},
                    "limits": {"cpu": "1", "memory": "512Mi"}
                }}}
            })
            .to_string(),
        ),
    );
    let (sfu, sfu_uid) = until("the SFU pod Ready", Duration::from_secs(90), || {
        ready_sfu(c)
    });
    let m = until(
        "the meeting Running, counting nobody",
        Duration::from_secs(60),
        || {
            let m = meeting(c);
            if m["status"]["phase"] == "Running" && m["status"]["participants"] == 0 {
                Ok(m)
            } else {
                Err(m["status"].to_string())
            }
        },
    );
    let url = m["status"]["url"].as_str().unwrap().to_owned();
    assert!(url.starts_with(&public_url), "{url}");
    let sfu_container = node.container(&sfu, "sfu");
    let service = get(c, &["service", "raum-lesson", "-n", TEAM]);
    let media_port = service["spec"]["ports"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["protocol"] == "UDP")
        .and_then(|p| p["nodePort"].as_u64())
        .expect("the SFU's UDP NodePort");

    // --- 3. Two browsers outside the pod network call through the node. -------------
    let wrappers = tempfile::tempdir().unwrap();
    let outside = chromium_in(
        wrappers.path(),
        node.get("RAUM_OUTSIDE_NETNS"),
        wrappers.path(),
    );
    let mut call = browser::start(json!({
        "scenario": "firewalled",
        "url": url,
        "secureOrigin": public_url,
        "outside": outside,
        "inside": outside,
        "holdMs": 15000,
    }));
    let r = call.next(Duration::from_secs(150));
    for who in ["Inside", "Outside"] {
        assert_eq!(r["received"][who]["videos"], 1, "{who} sees the other: {r}");
        assert!(
            r["received"][who]["audioPackets"].as_u64().unwrap_or(0) > 0,
            "{who} hears: {r}"
        );
    }
    // Media went to the SFU's NodePort on the advertised address, over UDP.
    assert_eq!(r["insidePair"]["state"], "succeeded", "{r}");
    assert_eq!(r["insidePair"]["remote"]["protocol"], "udp", "{r}");
    assert_eq!(r["insidePair"]["remote"]["port"], media_port, "{r}");
    // The operator counts them from the SFU's /status while they talk.
    until("status.participants 2", Duration::from_secs(15), || {
        let m = meeting(c);
        if m["status"]["participants"] == 2 {
            Ok(())
        } else {
            Err(m["status"].to_string())
        }
    });
    let held = call.next(Duration::from_secs(60));
    call.finish();
    assert_eq!(held["afterHold"]["Inside"]["videos"], 1, "{held}");
    // The access log, on the claim: the browsers' own address (the gateway's
    // NodePort keeps it), their user agent, the time; nothing else.
    let log: Vec<Value> = std::fs::read_dir(&volume)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with("access-"))
        .flat_map(|e| {
            std::fs::read_to_string(e.path())
                .unwrap()
                .lines()
                .map(|l| serde_json::from_str(l).unwrap())
                .collect::<Vec<Value>>()
        })
        .collect();
    assert!(log.len() >= 4, "two page loads and two joins: {log:?}");
    for e in &log {
        let fields: Vec<&String> = e.as_object().unwrap().keys().collect();
        assert_eq!(fields, ["ip", "time", "user_agent"], "{e}");
        assert_eq!(e["ip"], node.get("RAUM_OUTSIDE_IP"), "{e}");
    }

    // --- 4. The SFU's container killed from the runtime: the pod is replaced. --------
    node.ctr(&["tasks", "kill", "-s", "SIGKILL", &sfu_container]);
    let (sfu2, sfu2_uid) = until("a new SFU pod Ready", Duration::from_secs(120), || {
        let (name, uid) = ready_sfu(c)?;
        if uid == sfu_uid {
            Err("the killed one".into())
        } else {
            Ok((name, uid))
        }
    });
    assert_ne!(sfu2_uid, sfu_uid);
    let reasons: Vec<String> = get(c, &["events", "-n", TEAM])["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(reasons.iter().any(|r| r == "SfuFailed"), "{reasons:?}");
    assert!(reasons.iter().any(|r| r == "SfuReplaced"), "{reasons:?}");

    // --- 5. The leading operator pod killed: another replica leads, one SFU pod. ---------
    let lease = get(c, &["lease", "raum-operator", "-n", NS]);
    let leader = lease["spec"]["holderIdentity"].as_str().unwrap().to_owned();
    let duration = lease["spec"]["leaseDurationSeconds"].as_u64().unwrap();
    // Whoever leads next (the standby, or the Deployment's replacement for the killed
    // pod if it comes up in time: both compete for the expired Lease) must be alive.
    // Killed, not stopped: SIGKILL from the runtime, so nothing releases the Lease,
    // and the pod object removed so that it does not come back under the same name.
    let leader_container = node.container(&leader, "operator");
    let killed = Instant::now();
    node.ctr(&["tasks", "kill", "-s", "SIGKILL", &leader_container]);
    kubectl(
        c,
        &[
            "delete",
            "pod",
            &leader,
            "-n",
            NS,
            "--grace-period=0",
            "--force",
            "--wait=false",
        ],
    );
    let mut most_sfu_pods = 0;
    let (took, new_leader) = until(
        "another replica to lead",
        Duration::from_secs(duration + 30),
        || {
            let live = sfu_pods(c)
                .iter()
                .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
                .count();
            most_sfu_pods = most_sfu_pods.max(live);
            let holder = get(c, &["lease", "raum-operator", "-n", NS])["spec"]["holderIdentity"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            if !holder.is_empty() && holder != leader {
                Ok((killed.elapsed(), holder))
            } else {
                Err(holder)
            }
        },
    );
    eprintln!("{new_leader} led {took:?} after the leader was killed (Lease: {duration} s)");
    let leading = get(c, &["pod", &new_leader, "-n", NS]);
    assert!(
        ready(&leading),
        "the new leader is a live replica: {leading}"
    );
    // At the latest when the Lease runs out (it was renewed before the kill), and not
    // at once: nothing released it, so a quick takeover would mean two leaders.
    assert!(
        took >= Duration::from_secs(1),
        "took over in {took:?}: before the Lease ran out"
    );
    assert!(
        took <= Duration::from_secs(duration + 3),
        "took over in {took:?}, the Lease lasts {duration} s"
    );
    // A while longer under the new leader: still the one SFU pod, the same one.
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(500));
        let live: Vec<Value> = sfu_pods(c)
            .into_iter()
            .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
            .collect();
        most_sfu_pods = most_sfu_pods.max(live.len());
        assert_eq!(live.len(), 1, "{live:?}");
        assert_eq!(live[0]["metadata"]["uid"], sfu2_uid.as_str());
    }
    assert_eq!(
        most_sfu_pods, 1,
        "a second SFU pod appeared during the failover"
    );

    // --- 6. The prune Job on the node, under a hold. -----------------------------------
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    let day = |ago: i64| today.checked_sub(jiff::Span::new().days(ago)).unwrap();
    let (expired, held_day) = (day(100), day(90));
    let plant = |d: jiff::civil::Date| {
        let path = volume.join(format!("access-{d}.planted.jsonl"));
        std::fs::write(
            &path,
            format!("{{\"time\":\"{d}T12:00:00.000Z\",\"ip\":\"198.18.0.9\",\"user_agent\":\"planted\"}}\n"),
        )
        .unwrap();
        std::os::unix::fs::chown(&path, Some(65532), Some(65532)).unwrap();
        path
    };
    let (expired_file, held_file) = (plant(expired), plant(held_day));
    kubectl(
        c,
        &[
            "annotate",
            "retentionpolicy",
            "access-log",
            "-n",
            NS,
            &format!("hold.raum.dev/evidence={held_day}/{held_day}; test incident"),
        ],
    );
    let cron = get(c, &["retentionpolicy", "access-log", "-n", NS])["status"]["cronJob"]
        .as_str()
        .unwrap()
        .to_owned();
    kubectl(
        c,
        &[
            "create",
            "job",
            "prune-now",
            "-n",
            NS,
            &format!("--from=cronjob/{cron}"),
        ],
    );
    let job_pod = until("the prune Job to succeed", Duration::from_secs(120), || {
        let pods = get(c, &["pods", "-n", NS, "-l", "job-name=prune-now"]);
        let pod = pods["items"].as_array().and_then(|p| p.first()).cloned();
        match pod {
            Some(p) if p["status"]["phase"] == "Succeeded" => Ok(p),
            Some(p) if p["status"]["phase"] == "Failed" => panic!("the prune Job failed: {p}"),
            p => Err(format!("{p:?}")),
        }
    });
    assert_eq!(job_pod["spec"]["nodeName"], "raum-node-0", "{job_pod}");
    assert!(!expired_file.exists(), "the expired day is gone");
    assert!(held_file.exists(), "the held day is kept");
    assert!(
        files_with_data(&volume)
            .iter()
            .any(|(f, _)| f.contains(&today.to_string())),
        "today's entries stay"
    );
    let run = until(
        "the run in the policy's status",
        Duration::from_secs(30),
        || {
            let rp = get(c, &["retentionpolicy", "access-log", "-n", NS]);
            let run = rp["status"]["lastRun"].clone();
            if run["outcome"] == "Succeeded" {
                Ok(run)
            } else {
                Err(rp["status"].to_string())
            }
        },
    );
    assert_eq!(run["filesDeleted"], 1, "{run}");
    assert_eq!(run["entriesKeptForHolds"], 1, "{run}");

    // --- 6b. kubectl raum: the link, the status, the privacy check. ----------------------
    plugin_and_monitoring(c, node, &url);

    // --- 7. No container wrote into its root filesystem. --------------------------------
    // The upper (writable) layer of every container's snapshot holds at most the empty
    // mount points runc made; a file with data there would be something a container
    // wrote outside its claim.
    let snapshots = node.ctr(&["snapshots", "ls"]);
    let mut uppers = 0;
    for line in snapshots.lines().skip(1) {
        let cols: Vec<&str> = line.split_whitespace().collect();
        if cols.last() != Some(&"Active") {
            continue;
        }
        let mounts = node.ctr(&["snapshots", "mounts", "/nowhere", cols[0]]);
        let Some(upper) = mounts
            .split([',', ' '])
            .find_map(|o| o.strip_prefix("upperdir="))
        else {
            continue;
        };
        uppers += 1;
        let written = files_with_data(Path::new(upper));
        assert_eq!(
            written,
            Vec::<(String, u64)>::new(),
            "written into a container's root filesystem"
        );
    }
    assert!(
        uppers >= 5,
        "the running containers' snapshots: {snapshots}"
    );

    // --- 8. The meeting ends: pod and container gone. -----------------------------------
    let now = jiff::Timestamp::now().to_string();
    kubectl(
        c,
        &[
            "patch",
            "meeting",
            "lesson",
            "-n",
            TEAM,
            "--type=merge",
            "-p",
            &json!({"spec": {"endsAt": now}}).to_string(),
        ],
    );
    until(
        "the meeting Ended and its pod gone",
        Duration::from_secs(90),
        || {
            let m = meeting(c);
            let pods = sfu_pods(c);
            if m["status"]["phase"] == "Ended" && pods.is_empty() {
                Ok(())
            } else {
                Err(format!("{} {}", m["status"]["phase"], pods.len()))
            }
        },
    );
    until(
        "its containers gone from containerd",
        Duration::from_secs(60),
        || {
            let left = node.containers_of(&sfu2);
            if left.is_empty() {
                Ok(())
            } else {
                Err(format!("{left:?}"))
            }
        },
    );
}

/// The access log's summary as the gateway last published it.
fn published_summary(c: &Cluster) -> Value {
    let cm = get(c, &["configmap", "raum-access-log-summary", "-n", NS]);
    serde_json::from_str(cm["data"]["summary.json"].as_str().unwrap_or("{}")).unwrap_or_default()
}

/// Waits until the published summary's file names satisfy `ok`.
fn summary_until(c: &Cluster, what: &str, ok: impl Fn(&[String]) -> bool) {
    until(what, Duration::from_secs(60), || {
        let s = published_summary(c);
        let names: Vec<String> = s["files"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["name"].as_str().map(str::to_owned))
            .collect();
        if ok(&names) {
            Ok(())
        } else {
            Err(format!("{names:?}"))
        }
    });
}

/// A kubeconfig pointed at the API server's address in the node's and outside
/// namespaces: the admin's, or a static token's of tests/cluster/up.
fn outside_kubeconfig(c: &Cluster, node: &Node, token: Option<&str>) -> tempfile::NamedTempFile {
    let admin = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let mut v: serde_yaml::Value = serde_yaml::from_str(&admin).unwrap();
    let server = v["clusters"][0]["cluster"]["server"]
        .as_str()
        .unwrap()
        .to_owned();
    let port = server.rsplit(':').next().unwrap();
    v["clusters"][0]["cluster"]["server"] = format!("https://{}:{port}", node.ip()).into();
    if let Some(token) = token {
        v["users"][0]["user"] = serde_yaml::from_str(&format!("{{token: {token}}}")).unwrap();
    }
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, serde_yaml::to_string(&v).unwrap().as_bytes()).unwrap();
    f
}

/// `raum kubectl ARGS` (what `kubectl raum` runs) in the outside namespace, where the
/// public URL is reachable, as the privacy auditor.
fn plugin(node: &Node, kubeconfig: &Path, args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new("ip")
        .args(["netns", "exec", node.get("RAUM_OUTSIDE_NETNS")])
        .arg(raum_testkit::process::raum_bin())
        .arg("kubectl")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(args)
        .output()
        .expect("the plugin runs");
    (
        out.status.code(),
        format!("{}{}", String::from_utf8_lossy(&out.stdout), stderr(&out)),
    )
}

/// The check's verdict per item name.
fn verdicts(output: &str) -> HashMap<String, String> {
    output
        .lines()
        .filter_map(|l| {
            let mut parts = l.split_whitespace();
            let verdict = parts.next()?;
            let name = parts.next()?;
            matches!(verdict, "PASS" | "FAIL").then(|| (name.to_owned(), verdict.to_owned()))
        })
        .collect()
}

/// Metric names in a Prometheus text exposition.
fn metric_names(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_owned))
        .collect()
}

/// `kubectl raum url` and `status`; the privacy check passing, then failing on each of
/// three planted faults with the right item; the dashboard's and alerts' queries parsed
/// by Prometheus' own parsers, every metric they name scraped from raum's pods.
fn plugin_and_monitoring(c: &Cluster, node: &Node, url: &str) {
    kubectl(
        c,
        &[
            "create",
            "clusterrolebinding",
            "raum-privacy-auditors",
            "--clusterrole=raum-privacy-auditor",
            "--group=dpo",
        ],
    );
    let auditor = outside_kubeconfig(c, node, Some("auditor-token"));
    let kc = auditor.path();
    // The auditor may not read Meetings (their status holds join links): `url` and
    // `status` are the platform team's, here the admin's.
    let (code, out) = plugin(node, kc, &["url", "lesson", "-n", TEAM]);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("forbidden"), "{out}");
    let admin = outside_kubeconfig(c, node, None);
    let (code, out) = plugin(node, admin.path(), &["url", "lesson", "-n", TEAM]);
    assert_eq!((code, out.trim()), (Some(0), url), "{out}");
    // The call is over: the operator's count from the (replaced) SFU drops to 0.
    until(
        "status.participants 0 after the call",
        Duration::from_secs(60),
        || {
            let m = meeting(c);
            if m["status"]["participants"] == 0 {
                Ok(())
            } else {
                Err(m["status"].to_string())
            }
        },
    );
    let (code, out) = plugin(node, admin.path(), &["status", "-A", "-n", NS]);
    assert_eq!(code, Some(0), "{out}");
    for line in [
        "Running",
        "Participants now: 0",
        "Last pruning run: ",
        "Succeeded",
        "Oldest access-log entry: ",
    ] {
        assert!(out.contains(line), "{line}: {out}");
    }
    // The summary after the prune: the expired day gone, the held day kept.
    summary_until(c, "the summary after the prune", |names| {
        !names.is_empty()
            && names
                .iter()
                .all(|n| !n.contains(".planted.") || !n.contains(&day_ago(100)))
    });
    let check = || plugin(node, kc, &["check", "-n", NS]);
    let (code, out) = check();
    eprintln!("{out}");
    assert_eq!(
        code,
        Some(0),
        "the privacy check passes on the chart's install: {out}"
    );
    let v = verdicts(&out);
    assert_eq!(v.len(), 6, "{out}");
    assert!(v.values().all(|x| x == "PASS"), "{out}");

    // An access-log file older than maxAge, no hold over it.
    let old = node
        .access_log()
        .join(format!("access-{}.planted.jsonl", day_ago(120)));
    std::fs::write(
        &old,
        format!(
            "{{\"time\":\"{}T12:00:00.000Z\",\"ip\":\"198.18.0.9\",\"user_agent\":\"planted\"}}\n",
            day_ago(120)
        ),
    )
    .unwrap();
    std::os::unix::fs::chown(&old, Some(65532), Some(65532)).unwrap();
    summary_until(c, "the planted file in the summary", |names| {
        names.iter().any(|n| n.contains(&day_ago(120)))
    });
    let (code, out) = check();
    assert_eq!(code, Some(1), "{out}");
    let v = verdicts(&out);
    assert_eq!(v["access-log-age"], "FAIL", "{out}");
    assert_eq!(
        v.values().filter(|x| *x == "FAIL").count(),
        1,
        "only that item: {out}"
    );
    assert!(
        out.contains(&format!("{}T12:00:00Z", day_ago(120))),
        "the evidence names it: {out}"
    );
    std::fs::remove_file(&old).unwrap();
    summary_until(c, "the planted file gone from the summary", |names| {
        !names.iter().any(|n| n.contains(&day_ago(120)))
    });

    // A hold that does not parse.
    kubectl(
        c,
        &[
            "annotate",
            "retentionpolicy",
            "access-log",
            "-n",
            NS,
            "hold.raum.dev/broken=last week",
        ],
    );
    let (code, out) = check();
    assert_eq!(code, Some(1), "{out}");
    let v = verdicts(&out);
    assert_eq!(v["holds"], "FAIL", "{out}");
    assert!(out.contains("hold.raum.dev/broken"), "{out}");
    kubectl(
        c,
        &[
            "annotate",
            "retentionpolicy",
            "access-log",
            "-n",
            NS,
            "hold.raum.dev/broken-",
        ],
    );

    // An SFU pod with a volume. A pod's volumes cannot be patched in place, so a pod
    // that carries the SFU's labels stands in for one whose spec was changed.
    kubectl_in(
        c,
        &["apply", "-f", "-"],
        Some(
            &json!({
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": "raum-impostor", "namespace": TEAM,
                             "labels": {"app.kubernetes.io/name": "raum-sfu"}},
                "spec": {
                    "automountServiceAccountToken": false,
                    "restartPolicy": "Never",
                    "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
                    "containers": [{
                        "name": "sfu", "image": "ghcr.io/raum-dev/raum:test", "imagePullPolicy": "Never",
                        "args": ["sfu", "--help"],
                        "securityContext": {"allowPrivilegeEscalation": false, "readOnlyRootFilesystem": true,
                                            "capabilities": {"drop": ["ALL"]}},
                        "volumeMounts": [{"name": "data", "mountPath": "/data"}]
                    }],
                    "volumes": [{"name": "data", "emptyDir": {}}]
                }
            })
            .to_string(),
        ),
    );
    let (code, out) = check();
    assert_eq!(code, Some(1), "{out}");
    let v = verdicts(&out);
    assert_eq!(v["sfu-pods"], "FAIL", "{out}");
    assert!(
        out.contains(&format!("{TEAM}/raum-impostor has volumes (data)")),
        "{out}"
    );
    kubectl(
        c,
        &["delete", "pod", "raum-impostor", "-n", TEAM, "--wait=false"],
    );

    // The dashboard and the alerts: Prometheus' parsers, and every metric they name
    // is one raum's pods export (scraped from the outside namespace, through the node).
    let rendered = helm(&[
        "template",
        "raum",
        &raum_testkit::process::repo()
            .join("charts/raum")
            .display()
            .to_string(),
        "-n",
        NS,
        "--kube-version",
        "1.35.4",
        "--set",
        "publicUrl=https://meet.example.org",
        "--set",
        "grafanaDashboard.enabled=true",
        "--set",
        "prometheusRule.enabled=true",
    ]);
    let files = tempfile::tempdir().unwrap();
    let (rules, dashboard) = (
        files.path().join("rules.yaml"),
        files.path().join("raum.json"),
    );
    for doc in serde_yaml::Deserializer::from_str(&rendered) {
        let v: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
        match v["kind"].as_str() {
            Some("PrometheusRule") => {
                std::fs::write(&rules, serde_yaml::to_string(&v["spec"]).unwrap()).unwrap()
            }
            Some("ConfigMap") if v["metadata"]["name"] == "raum-grafana-dashboard" => {
                std::fs::write(&dashboard, v["data"]["raum.json"].as_str().unwrap()).unwrap()
            }
            _ => {}
        }
    }
    let out = Command::new(raum_testkit::tools::dir().join("promql-check"))
        .arg(&rules)
        .arg(&dashboard)
        .output()
        .expect("promql-check runs");
    assert!(out.status.success(), "{}", stderr(&out));
    let parsed: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert!(parsed["alerts"].as_array().unwrap().len() >= 8, "{parsed}");
    assert!(parsed["queries"].as_u64().unwrap() >= 15, "{parsed}");
    let leader = get(c, &["lease", "raum-operator", "-n", NS])["spec"]["holderIdentity"]
        .as_str()
        .unwrap()
        .to_owned();
    let ip_of = |ns: &str, pod: &str| {
        get(c, &["pod", pod, "-n", ns])["status"]["podIP"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    let gateway = get(
        c,
        &[
            "pods",
            "-n",
            NS,
            "-l",
            "app.kubernetes.io/name=raum-gateway",
        ],
    )["items"][0]["metadata"]["name"]
        .as_str()
        .unwrap()
        .to_owned();
    let (sfu, _) = ready_sfu(c).expect("the SFU");
    let mut exported = Vec::new();
    for (ns, pod) in [
        (NS, leader.as_str()),
        (NS, gateway.as_str()),
        (TEAM, sfu.as_str()),
    ] {
        let out = Command::new("ip")
            .args([
                "netns",
                "exec",
                node.get("RAUM_OUTSIDE_NETNS"),
                "curl",
                "-sf",
                "--max-time",
                "5",
            ])
            .arg(format!("http://{}:8080/metrics", ip_of(ns, pod)))
            .output()
            .expect("curl runs");
        assert!(
            out.status.success(),
            "scraping {ns}/{pod}: {}",
            stderr(&out)
        );
        exported.extend(metric_names(&String::from_utf8_lossy(&out.stdout)));
    }
    let missing: Vec<&str> = parsed["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .filter(|m| !exported.iter().any(|e| e == m))
        .collect();
    assert_eq!(
        missing,
        Vec::<&str>::new(),
        "named by the dashboard or alerts, exported by no pod"
    );
}

/// The date `days` before today (UTC), as access-log file names write it.
fn day_ago(days: i64) -> String {
    let today = jiff::Timestamp::now()
        .to_zoned(jiff::tz::TimeZone::UTC)
        .date();
    today
        .checked_sub(jiff::Span::new().days(days))
        .unwrap()
        .to_string()
}
