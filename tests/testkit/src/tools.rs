//! Helm and kubeconform, built once from tests/tools/go.mod by tests/tools/build-tools.

use std::path::PathBuf;
use std::process::Command;

/// The directory holding `helm` and `kubeconform`.
pub fn dir() -> PathBuf {
    let out = Command::new(crate::process::repo().join("tests/tools/build-tools"))
        .output()
        .expect("tests/tools/build-tools runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    PathBuf::from(String::from_utf8(out.stdout).unwrap().trim())
}
