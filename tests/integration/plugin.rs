//! `kubectl raum` as compliance staff use it: the raum binary installed as
//! `kubectl-raum` on the PATH and run through the control plane's own kubectl (its
//! plugin mechanism), as a user (a static token) bound only to `raum-hold-editor`.
//! Holds are listed, placed and lifted; a malformed window is refused before anything
//! is written, with the reason; someone without the role is told so plainly.

use std::path::Path;
use std::process::{Command, Output};

use kube::Api;
use raum::api::RetentionPolicy;

use crate::support::cluster::{Cluster, cluster};
use crate::support::operator::install_rbac;

/// The admin's kubeconfig with a static token (tests/cluster/up's tokens.csv) instead
/// of the admin's certificate.
fn token_kubeconfig(c: &Cluster, token: &str) -> tempfile::NamedTempFile {
    let admin = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let mut v: serde_yaml::Value = serde_yaml::from_str(&admin).unwrap();
    v["users"][0]["user"] = serde_yaml::from_str(&format!("{{token: {token}}}")).unwrap();
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, serde_yaml::to_string(&v).unwrap().as_bytes()).unwrap();
    f
}

/// `kubectl raum ARGS` with the plugin on the PATH.
fn kubectl_raum(c: &Cluster, plugins: &Path, kubeconfig: &Path, args: &[&str]) -> Output {
    let path = format!(
        "{}:{}:{}",
        plugins.display(),
        c.bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    Command::new(c.bin_dir.join("kubectl"))
        .arg("raum")
        .args(args)
        .env("PATH", path)
        .env("KUBECONFIG", kubeconfig)
        .output()
        .expect("kubectl runs")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[tokio::test]
async fn compliance_staff_list_place_and_lift_holds_and_bad_windows_write_nothing() {
    let c = cluster();
    c.install_crds().await;
    let ns = c.namespace("plugin", &[]).await;
    let n = ns.name.as_str();
    // The shipped roles (raum-hold-editor and its admission policy among them); the
    // compliance group bound to the hold editor in this namespace only.
    install_rbac(c, n);
    let out = c.kubectl(
        &[
            "create",
            "rolebinding",
            "holds",
            "-n",
            n,
            "--clusterrole=raum-hold-editor",
            "--group=compliance",
        ],
        None,
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let out = c.kubectl(
        &["apply", "-n", n, "-f", "-"],
        Some("apiVersion: raum.dev/v1alpha1\nkind: RetentionPolicy\nmetadata: {name: access-log}\nspec: {}\n"),
    );
    assert!(out.status.success(), "{}", text(&out).1);
    let plugins = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(
        raum_testkit::process::raum_bin(),
        plugins.path().join("kubectl-raum"),
    )
    .unwrap();
    let compliance = token_kubeconfig(c, "compliance-token");
    let run = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["-n", n]);
        kubectl_raum(c, plugins.path(), compliance.path(), &all)
    };
    let policies: Api<RetentionPolicy> = Api::namespaced(ns.client.clone(), n);
    let holds_now = async || {
        let rp = policies.get("access-log").await.unwrap();
        let v = rp.metadata.annotations.unwrap_or_default();
        (
            v.into_iter()
                .filter(|(k, _)| k.starts_with("hold.raum.dev/"))
                .collect::<Vec<_>>(),
            rp.metadata.resource_version.unwrap(),
        )
    };

    // None yet.
    let out = run(&["holds"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(
        text(&out).0,
        format!("No holds on RetentionPolicy {n}/access-log.\n")
    );

    // Placed, as the annotation compliance staff would write by hand.
    let out = run(&[
        "hold",
        "add",
        "incident-42",
        "--from",
        "2026-11-01",
        "--to",
        "2026-11-03",
        "--reason",
        "DDoS, ticket SEC-42",
    ]);
    assert!(out.status.success(), "{:?}", text(&out));
    let (holds, rv) = holds_now().await;
    assert_eq!(
        holds,
        [(
            "hold.raum.dev/incident-42".to_owned(),
            "2026-11-01/2026-11-03; DDoS, ticket SEC-42".to_owned()
        )]
    );
    let out = run(&["holds"]);
    let listed = text(&out).0;
    assert!(out.status.success(), "{listed}");
    let row = listed
        .lines()
        .find(|l| l.starts_with("incident-42"))
        .expect(&listed);
    for cell in ["2026-11-01/2026-11-03", "DDoS, ticket SEC-42", "yes"] {
        assert!(row.contains(cell), "{listed}");
    }

    // Refused before anything is written: the policy's resourceVersion stays.
    for (args, says) in [
        (
            vec!["hold", "add", "bad", "--from", "2026-11-31", "--to", ".."],
            "error: the hold was not written: \"2026-11-31\" is not a date (YYYY-MM-DD)",
        ),
        (
            vec![
                "hold",
                "add",
                "bad",
                "--from",
                "2026-11-03",
                "--to",
                "2026-11-01",
            ],
            "ends before it starts",
        ),
        (
            vec![
                "hold",
                "add",
                "Bad Id",
                "--from",
                "2026-11-01",
                "--to",
                "..",
            ],
            "cannot be a hold's id",
        ),
        (
            vec![
                "hold",
                "add",
                "incident-42",
                "--from",
                "2026-11-01",
                "--to",
                "..",
            ],
            "already has hold \"incident-42\"",
        ),
        (vec!["hold", "lift", "nothing"], "has no hold \"nothing\""),
    ] {
        let out = run(&args);
        let (_, err) = text(&out);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(err.contains(says), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "one line: {err}");
        assert_eq!(holds_now().await.1, rv, "{args:?} wrote something");
    }

    // Lifted.
    let out = run(&["hold", "lift", "incident-42"]);
    assert!(out.status.success(), "{:?}", text(&out));
    assert_eq!(holds_now().await.0, vec![]);

    // Someone without the role is told which one they lack.
    let outsider = token_kubeconfig(c, "outsider-token");
    let out = kubectl_raum(c, plugins.path(), outsider.path(), &["holds", "-n", n]);
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(
        err.trim(),
        format!(
            "error: you may not read RetentionPolicy {n}/access-log (forbidden); ask for the raum-hold-editor role"
        )
    );

    // A missing kubeconfig is named.
    let out = kubectl_raum(
        c,
        plugins.path(),
        Path::new("/nonexistent/kubeconfig"),
        &["holds"],
    );
    let (_, err) = text(&out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("/nonexistent/kubeconfig"), "{err}");
}
