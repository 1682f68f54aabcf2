//! The `raum` binary as a person meets it: help, usage errors, kubeconfig errors and
//! `raum crd`. No cluster needed.

use std::path::Path;
use std::process::{Command, Output};

fn raum(args: &[&str]) -> Output {
    raum_with_env(args, &[])
}

fn raum_with_env(args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_raum"));
    // The operator's one required flag, so these tests reach the kubeconfig.
    cmd.env("RAUM_PUBLIC_URL", "https://meet.example.test");
    cmd.args(args)
        .env_remove("KUBECONFIG")
        .env_remove("KUBERNETES_SERVICE_HOST");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().expect("raum runs")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn every_subcommand_has_help() {
    let out = raum(&["--help"]);
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for sub in [
        "operator",
        "gateway",
        "sfu",
        "prune",
        "crd",
        "standalone",
        "loadtest",
    ] {
        assert!(help.contains(sub), "{sub} missing from --help");
        let out = raum(&[sub, "--help"]);
        assert!(
            out.status.success(),
            "{sub} --help failed: {}",
            stderr(&out)
        );
        assert!(
            String::from_utf8_lossy(&out.stdout).contains("Usage: raum"),
            "{sub}"
        );
    }
}

#[test]
fn unknown_subcommand_or_flag_exits_2_with_usage() {
    for args in [&["meet"][..], &["crd", "--frobnicate"], &["--nope"], &[]] {
        let out = raum(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(
            stderr(&out).contains("Usage: raum"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
}

/// A kubeconfig problem is one line naming the file, exit status 1, never a panic.
fn assert_kubeconfig_error(out: &Output, path: &str) {
    let err = stderr(out);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "not one line: {err}");
    assert!(err.contains(path), "does not name {path}: {err}");
    assert!(!err.contains("panicked"), "{err}");
}

#[test]
fn missing_or_unusable_kubeconfig_is_one_line_naming_the_path() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("missing.yaml");
    let missing = missing.to_str().unwrap();
    let logs = dir.path().join("logs");
    let logs = logs.to_str().unwrap();
    for sub in [
        &["operator"][..],
        &["gateway", "--access-log-dir", logs],
        &["prune", "--policy=ns/access-log", "--log-dir=/tmp"],
    ] {
        let args: Vec<&str> = sub
            .iter()
            .copied()
            .chain(["--kubeconfig", missing])
            .collect();
        assert_kubeconfig_error(&raum(&args), missing);
    }
    // Through $KUBECONFIG too.
    assert_kubeconfig_error(
        &raum_with_env(&["operator"], &[("KUBECONFIG", missing)]),
        missing,
    );
    // A directory cannot be read as a file (root can read any file, so this stands in
    // for an unreadable one).
    let d = dir.path().to_str().unwrap();
    assert_kubeconfig_error(&raum(&["operator", "--kubeconfig", d]), d);
    // Not YAML at all, and YAML that is no kubeconfig.
    for (name, text) in [
        ("garbage.yaml", "{{{ not yaml"),
        ("empty-cluster.yaml", "apiVersion: v1\nkind: Config\n"),
    ] {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        let p = p.to_str().unwrap();
        assert_kubeconfig_error(&raum(&["operator", "--kubeconfig", p]), p);
    }
    // No flag, no $KUBECONFIG, not in a cluster: the default path is named.
    let home = tempfile::tempdir().unwrap();
    let default = home.path().join(".kube/config");
    assert_kubeconfig_error(
        &raum_with_env(&["operator"], &[("HOME", home.path().to_str().unwrap())]),
        default.to_str().unwrap(),
    );
}

#[test]
fn operator_refuses_a_public_url_that_is_not_http() {
    // Checked as the flag is parsed: a usage error naming the flag and the reason.
    let out = raum_with_env(&["operator"], &[("RAUM_PUBLIC_URL", "meet.example.test")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--public-url"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("must start with http:// or https://"),
        "{}",
        stderr(&out)
    );
    let out = Command::new(env!("CARGO_BIN_EXE_raum"))
        .args(["operator"])
        .env_remove("RAUM_PUBLIC_URL")
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing required flag is a usage error"
    );
    assert!(stderr(&out).contains("--public-url"));
}

#[test]
fn gateway_and_standalone_refuse_bad_flags_with_one_line_naming_them() {
    let out = raum_with_env(&["gateway"], &[("RAUM_PUBLIC_URL", "meet.example.test")]);
    assert_eq!(out.status.code(), Some(2), "a usage error");
    assert!(stderr(&out).contains("--public-url"), "{}", stderr(&out));
    let logs = tempfile::tempdir().unwrap();
    let out = raum(&[
        "gateway",
        "--trusted-proxy",
        "10.0.0.0/33",
        "--access-log-dir",
        logs.path().to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--trusted-proxy"), "{}", stderr(&out));

    let dir = tempfile::tempdir().unwrap();
    let key = dir.path().join("url-key");
    std::fs::write(&key, "not a key\n").unwrap();
    let meetings = dir.path().join("meetings");
    let out = raum(&[
        "standalone",
        "--listen=127.0.0.1:0",
        "--meetings-dir",
        meetings.to_str().unwrap(),
        "--key-file",
        key.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains("url-key") && err.contains("not a raum URL key"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    assert_eq!(
        std::fs::read_to_string(&key).unwrap(),
        "not a key\n",
        "a broken key file is left as it was"
    );
    let out = raum(&["standalone", "--listen=0.0.0.0:0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--advertise-ip"), "{}", stderr(&out));
}

#[test]
fn the_sfu_needs_a_token_and_an_address_to_advertise() {
    let out = raum(&["sfu"]);
    assert_eq!(
        out.status.code(),
        Some(2),
        "a missing token is a usage error"
    );
    let out = raum(&["sfu", "--token=t", "--listen=127.0.0.1:0", "--media-port=0"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--advertise-ip"), "{}", stderr(&out));
    let out = raum(&["sfu", "--token-sha256=abc", "--media-bind=127.0.0.1"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("64 hexadecimal digits"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn crd_prints_exactly_what_crds_holds() {
    let out = raum(&["crd"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = String::from_utf8(out.stdout).unwrap();

    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("crds");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let on_disk: String = files
        .iter()
        .map(|f| std::fs::read_to_string(f).unwrap())
        .collect();
    assert!(
        printed == on_disk,
        "crds/ differs from `raum crd`: run `cargo run -- crd --out-dir crds`"
    );

    // And it is a stream of two CRDs a YAML parser reads back.
    let docs: Vec<serde_yaml::Value> = serde_yaml::Deserializer::from_str(&printed)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    let names: Vec<&str> = docs
        .iter()
        .map(|d| d["metadata"]["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["meetings.raum.dev", "retentionpolicies.raum.dev"]);
}

#[test]
fn crd_out_dir_writes_one_file_per_crd_and_reports_a_bad_dir() {
    let dir = tempfile::tempdir().unwrap();
    let out = raum(&["crd", "--out-dir", dir.path().to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let mut names: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(
        names,
        ["meetings.raum.dev.yaml", "retentionpolicies.raum.dev.yaml"]
    );

    let missing = dir.path().join("no/such/dir");
    let out = raum(&["crd", "--out-dir", missing.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains(missing.to_str().unwrap()),
        "{}",
        stderr(&out)
    );
}
