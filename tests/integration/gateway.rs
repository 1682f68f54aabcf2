//! `raum gateway` in front of a separate `raum sfu` process, with the Meeting on the
//! real control plane and the operator and gateway each running with exactly their
//! shipped RBAC. Three headless Chromium participants call through it; the gateway is
//! killed and restarted mid-call (a network drop for the browsers), and they
//! reconnect; the meeting then ends and its link shows the "ended" page.
//!
//! The SFU "pod" is a local `raum sfu` process listening on the pod's IP: kwok gives
//! pods loopback IPs (127.1.0.0/16), so what the operator publishes in
//! `status.signaling` is reachable here exactly as in a cluster.

use raum_testkit::browser;
use raum_testkit::web;

use std::process::{Child, Command, Stdio};

use futures::SinkExt;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Patch, PatchParams, PostParams};
use raum::api::{Meeting, MeetingPhase};
use serde_json::json;

use crate::support::cluster::{cluster, scratch_dir};
use crate::support::operator::{Operator, impersonating_kubeconfig, install_rbac};
use crate::support::sfu::Sfu;

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The next `error` message (skipping others), then the server's close.
async fn error_then_close(ws: &mut web::Socket) -> serde_json::Value {
    loop {
        let m = web::next(ws).await;
        if m["type"] == "error" {
            web::closed(ws).await;
            return m;
        }
    }
}

fn gateway(
    kubeconfig: &std::path::Path,
    ns: &str,
    addr: &str,
    logs: &std::path::Path,
    stderr: &std::path::Path,
) -> Killed {
    let child = Command::new(env!("CARGO_BIN_EXE_raum"))
        .args([
            "gateway",
            &format!("--kubeconfig={}", kubeconfig.display()),
            &format!("--public-url=http://{addr}"),
            &format!("--listen={addr}"),
            &format!("--namespace={ns}"),
            &format!("--access-log-dir={}", logs.display()),
            "--instance=gw-test",
            "--flush-interval=100ms",
        ])
        // Everything a person could switch on: the privacy checks below read it all.
        .env(
            "RAUM_LOG",
            "trace,kube=info,tower=info,hyper=info,h2=info,rustls=info",
        )
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(stderr)
                .unwrap(),
        )
        .spawn()
        .unwrap();
    raum_testkit::wait::eventually_blocking(
        "the gateway to be ready",
        Duration::from_secs(20),
        || {
            std::net::TcpStream::connect(addr).is_ok()
                && web::get(addr, "/readyz", &[]).status == 200
        },
    );
    Killed(child)
}

#[tokio::test(flavor = "multi_thread")]
async fn browsers_call_through_the_gateway_and_reconnect_after_a_drop() {
    let c = cluster();
    c.install_crds().await;
    let ns = c.namespace("gateway", &[]).await;
    // The operator's and the gateway's roles, as the chart renders them.
    install_rbac(c, &ns.name);
    let addr = format!("127.0.0.1:{}", web::free_port());
    let op = Operator::start(
        c,
        &ns.name,
        &[&format!("--public-url=http://{addr}"), "--warm-up=0s"],
    );

    let meetings = ns.api::<Meeting>();
    let m: Meeting = serde_json::from_value(json!({
        "apiVersion": "raum.dev/v1alpha1", "kind": "Meeting",
        "metadata": {"name": "standup"},
        "spec": {"title": "Stand-up", "maxParticipants": 5},
    }))
    .unwrap();
    meetings.create(&PostParams::default(), &m).await.unwrap();

    // The SFU pod, as its container would run (see support::sfu).
    let pods = ns.api::<Pod>();
    let pod = crate::support::cluster::wait("the SFU pod's IP", Duration::from_secs(30), async {
        loop {
            if let Ok(Some(p)) = pods
                .get_opt(&raum::operator::meeting::objects::sfu_name("standup"))
                .await
                && p.status.as_ref().and_then(|s| s.pod_ip.as_ref()).is_some()
            {
                return p;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await;
    let ip = pod.status.clone().unwrap().pod_ip.unwrap();
    // The pod's own arguments and environment, parsed by a real raum sfu.
    let sfu = Sfu::for_pod(&pod, "trace");

    let running =
        crate::support::cluster::wait("the meeting to run", Duration::from_secs(40), async {
            loop {
                let m = meetings.get("standup").await.unwrap();
                let st = m.status.clone().unwrap_or_default();
                if st.phase == Some(MeetingPhase::Running) && st.signaling.is_some() {
                    return m;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        })
        .await;
    let st = running.status.unwrap();
    assert_eq!(st.signaling.as_deref(), Some(format!("{ip}:8080").as_str()));
    let url = st.url.unwrap();
    assert!(url.starts_with(&format!("http://{addr}/j/")), "{url}");
    let token = url.rsplit('/').next().unwrap().to_owned();

    // The gateway, as its ServiceAccount (which may only read Meetings).
    let sa = impersonating_kubeconfig(
        c,
        &format!("system:serviceaccount:{}:raum-gateway", ns.name),
        &["system:serviceaccounts", "system:authenticated"],
    );
    let logs = tempfile::tempdir().unwrap();
    let gw_log = scratch_dir("raum-gateway-log");
    let mut gw = gateway(sa.path(), &ns.name, &addr, logs.path(), &gw_log);

    let shot = browser::artifacts().join("call-gateway.png");
    let mut run = browser::start(json!({
        "scenario": "call", "url": url, "screenshot": shot, "reconnect": true,
    }));
    let ready = run.next(Duration::from_secs(120));
    assert_eq!(ready["ready"], true, "{ready}");
    // The drop: the gateway dies with every signaling connection, and comes back.
    drop(gw);
    tokio::time::sleep(Duration::from_millis(500)).await;
    gw = gateway(sa.path(), &ns.name, &addr, logs.path(), &gw_log);
    let result = run.next(Duration::from_secs(120));
    run.finish();
    for name in ["Ada", "Grace", "Linus"] {
        assert_eq!(result["received"][name]["videos"], 2, "{name}: {result}");
    }
    assert_eq!(result["chatSeenBy"], 2, "{result}");
    assert_eq!(
        result["afterLeave"],
        json!({"Ada": 1, "Grace": 1}),
        "{result}"
    );
    assert_eq!(result["reconnected"], 2, "{result}");
    assert_eq!(
        result["afterReconnect"]["Ada"]["captions"],
        json!(["Grace"]),
        "{result}"
    );
    assert_eq!(
        result["afterReconnect"]["Grace"]["captions"],
        json!(["Ada"]),
        "{result}"
    );
    // Each page said in its banner that the connection was lost, and took it down
    // once the call was back.
    for name in ["Ada", "Grace"] {
        let b = &result["banners"][name];
        assert!(
            b["shown"]
                .as_array()
                .unwrap()
                .contains(&json!(raum::gateway::i18n::EN.err_lost)),
            "{name}: {result}"
        );
        assert_eq!(b["now"], serde_json::Value::Null, "{name}: {result}");
    }

    // Access log: per browser one page load and one join, and for the two who stayed
    // at least one join again after the drop (a join tried while the new gateway was
    // still loading its meetings is written too).
    raum_testkit::wait::eventually_blocking("eight entries", Duration::from_secs(5), || {
        web::access_log(logs.path()).len() >= 8
    });
    let entries = web::access_log(logs.path());
    let count = |name: &str| {
        entries
            .iter()
            .filter(|e| e["user_agent"] == format!("raum-browser-test/{name}"))
            .count()
    };
    assert_eq!(count("Linus"), 2, "{entries:?}");
    assert!(count("Ada") >= 3 && count("Grace") >= 3, "{entries:?}");
    assert_eq!(
        count("Ada") + count("Grace") + count("Linus"),
        entries.len()
    );
    for e in &entries {
        assert_eq!(e.len(), 3, "{e:?}");
        assert_eq!(e["ip"], "127.0.0.1");
    }
    let gw_text = std::fs::read_to_string(&gw_log).unwrap();
    let sfu_text = sfu.logs();
    for secret in [
        "raum-browser-test",
        "Ada",
        "Grace",
        "Linus",
        "Hallo from the test",
        &token,
    ] {
        assert!(
            !gw_text.contains(secret),
            "{secret:?} in the gateway log:\n{gw_text}"
        );
        assert!(
            !sfu_text.contains(secret),
            "{secret:?} in the SFU log:\n{sfu_text}"
        );
        assert!(
            !op.logs().contains(secret),
            "{secret:?} in the operator log"
        );
    }

    // Two things a client written from docs/signaling.md alone found, through the
    // relay: a frame far over 64 KiB (1 MB) is answered `too-large` by the gateway
    // itself, and an SDP that does not start with `v=0` gets `bad-request`; both end
    // with a closing handshake, not an abnormal closure.
    let origin = format!("http://{addr}");
    let mut ws = web::connect(&addr, &token, &origin, "raum-protocol-test").await;
    assert_eq!(
        web::join(&mut ws, "Mallory", &token).await["type"],
        "welcome"
    );
    let huge = format!(r#"{{"type":"chat","text":"{}"}}"#, "x".repeat(1_000_000));
    ws.send(Message::text(huge)).await.unwrap();
    assert_eq!(error_then_close(&mut ws).await["code"], "too-large");
    let mut ws = web::connect(&addr, &token, &origin, "raum-protocol-test").await;
    assert_eq!(
        web::join(&mut ws, "Mallory", &token).await["type"],
        "welcome"
    );
    ws.send(Message::text(r#"{"type":"offer","sdp":"hello"}"#))
        .await
        .unwrap();
    assert_eq!(error_then_close(&mut ws).await["code"], "bad-request");

    // The meeting ends: its link says so, in the browser's language.
    meetings
        .patch(
            "standup",
            &PatchParams::default(),
            &Patch::Merge(json!({"spec": {"endsAt": jiff::Timestamp::now().to_string()}})),
        )
        .await
        .unwrap();
    raum_testkit::wait::eventually_blocking("the ended page", Duration::from_secs(30), || {
        web::get(&addr, &format!("/j/{token}"), &[("accept-language", "de")]).status == 410
    });
    let r = web::get(&addr, &format!("/j/{token}"), &[("accept-language", "de")]);
    assert!(r.body.contains("Dieses Meeting ist beendet"), "{}", r.body);
    drop(sfu);
    drop(gw);
}
