//! The packaging without a cluster: the chart lints clean, its CRDs are the generated
//! ones, and manifests/base is exactly the chart's default rendering. (Installing both
//! into a real control plane is tests/integration/chart.rs.)

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The directory holding helm and kubeconform (built once by tests/tools/build-tools).
fn tools() -> PathBuf {
    let out = Command::new(repo().join("tests/tools/build-tools"))
        .output()
        .expect("tests/tools/build-tools runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
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
    let out = Command::new(tools().join("helm"))
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
    let out = Command::new(tools().join("helm"))
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
