//! The packaging without a cluster: the chart lints clean, its CRDs are the generated
//! ones, and manifests/base is exactly the chart's default rendering. (Installing both
//! into a real control plane is tests/integration/chart.rs.)

use raum_testkit::tools;

use std::path::Path;
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn files(dir: &Path) -> Vec<(String, String)> {
    let mut v: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| {
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                std::fs::read_to_string(&p).unwrap(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn the_charts_crds_are_the_generated_ones() {
    assert_eq!(
        files(&repo().join("charts/raum/files/crds")),
        files(&repo().join("crds")),
        "copy crds/*.yaml to charts/raum/files/crds/"
    );
}

#[test]
fn helm_lint_is_clean_in_strict_mode() {
    let out = Command::new(tools::dir().join("helm"))
        .args([
            "lint",
            "--strict",
            "charts/raum",
            "--set",
            "publicUrl=https://meet.example.org",
        ])
        .current_dir(repo())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("0 chart(s) failed"), "{text}");
    // Without the one required value, a clear refusal.
    let out = Command::new(tools::dir().join("helm"))
        .args(["template", "charts/raum", "--kube-version", "1.35.4"])
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("set publicUrl"));
}

#[test]
fn manifests_base_is_the_charts_default_rendering() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(repo().join("manifests/generate"))
        .env("RAUM_MANIFESTS_OUT", dir.path().join("base"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for sub in ["base", "crds"] {
        let generated = files(&dir.path().join(sub));
        let committed: Vec<_> = files(&repo().join("manifests").join(sub))
            .into_iter()
            .filter(|(name, _)| name != "kustomization.yaml")
            .collect();
        assert!(
            generated == committed,
            "manifests/{sub} drifted from the chart: run manifests/generate"
        );
    }
}

fn render(extra: &[&str]) -> String {
    let mut args = vec![
        "template",
        "raum",
        "charts/raum",
        "--kube-version",
        "1.35.4",
        "-n",
        "raum-system",
        "--set",
        "publicUrl=https://meet.example.org",
    ];
    args.extend_from_slice(extra);
    let out = Command::new(tools::dir().join("helm"))
        .args(&args)
        .current_dir(repo())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn kinds(rendered: &str) -> Vec<String> {
    rendered
        .lines()
        .filter_map(|l| l.strip_prefix("kind: "))
        .map(str::to_owned)
        .collect()
}

#[test]
fn switches_leave_out_what_teams_manage_themselves() {
    let default = render(&[]);
    let k = kinds(&default);
    assert!(k.iter().any(|k| k == "ClusterRole") && k.iter().any(|k| k == "ServiceAccount"));
    assert!(!k.iter().any(|k| k == "ServiceMonitor"), "off by default");
    assert!(!k.iter().any(|k| k == "Ingress"), "off by default");
    assert!(default.contains("--network-policies"));

    let managed = render(&[
        "--set",
        "rbac.create=false",
        "--set",
        "serviceAccount.create=false",
        "--set",
        "operator.serviceAccountName=ops-sa",
        "--set",
        "gateway.serviceAccountName=gw-sa",
        "--set",
        "networkPolicy.enabled=false",
    ]);
    let k = kinds(&managed);
    for gone in [
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "ServiceAccount",
        "NetworkPolicy",
        "ValidatingAdmissionPolicy",
    ] {
        assert!(!k.iter().any(|k| k == gone), "{gone} rendered: {k:?}");
    }
    assert!(managed.contains("serviceAccountName: ops-sa"));
    assert!(managed.contains("serviceAccountName: gw-sa"));
    assert!(!managed.contains("--network-policies"));

    let monitored = render(&[
        "--set",
        "serviceMonitor.enabled=true",
        "--set",
        "gateway.ingress.enabled=true",
        "--set",
        "gateway.ingress.host=meet.example.org",
        "--set",
        "gateway.ingress.className=nginx",
    ]);
    let k = kinds(&monitored);
    assert!(k.iter().any(|k| k == "ServiceMonitor"));
    assert!(k.iter().any(|k| k == "Ingress"));
    assert!(monitored.contains("ingressClassName: nginx"));
    // The Ingress exposes what participants need, not /metrics.
    for path in ["/j/", "/assets/", "/privacy"] {
        assert!(monitored.contains(&format!("path: {path}\n")), "{path}");
    }
    assert!(!monitored.contains("path: /\n"));
}
