//! `raum operator` as a real process, run with exactly the permissions the project
//! ships (manifests/base/rbac.yaml, rendered from the chart), by impersonating its ServiceAccount.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

use super::cluster::{Cluster, repo, scratch_dir};

/// The public URL the tests give the operator.
pub const PUBLIC_URL: &str = "https://meet.example.test";

/// Installs the shipped operator RBAC for an operator living in `ns` (the
/// ServiceAccount, Role and RoleBinding in `ns`; the ClusterRole; a ClusterRoleBinding
/// named after `ns` so tests do not overwrite each other's).
pub fn install_rbac(c: &Cluster, ns: &str) {
    install_rbac_file(c, ns, "manifests/base/rbac.yaml");
}

/// Installs a shipped RBAC manifest for a component living in `ns` (ClusterRoleBindings
/// get `-<ns>` appended to their names).
pub fn install_rbac_file(c: &Cluster, ns: &str, file: &str) {
    let text = std::fs::read_to_string(repo().join(file)).unwrap();
    let mut out = String::new();
    for doc in serde_yaml::Deserializer::from_str(&text) {
        let mut v: serde_yaml::Value = serde::Deserialize::deserialize(doc).unwrap();
        let kind = v["kind"].as_str().unwrap().to_owned();
        if v["metadata"].get("namespace").is_some() {
            v["metadata"]["namespace"] = ns.into();
        }
        if kind == "ClusterRoleBinding" {
            let name = format!("{}-{ns}", v["metadata"]["name"].as_str().unwrap());
            v["metadata"]["name"] = name.into();
        }
        if let Some(subjects) = v.get_mut("subjects").and_then(|s| s.as_sequence_mut()) {
            for s in subjects {
                s["namespace"] = ns.into();
            }
        }
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&v).unwrap());
    }
    // Server-side apply: tests running at once all apply the shared ClusterRole.
    let mut tries = 0;
    loop {
        let res = c.kubectl(
            &[
                "apply",
                "--server-side",
                "--force-conflicts",
                "--field-manager=raum-tests",
                "-f",
                "-",
            ],
            Some(&out),
        );
        if res.status.success() {
            break;
        }
        tries += 1;
        // Two first applies of the same object can race to create it; the loser
        // sees AlreadyExists and simply applies again.
        let err = String::from_utf8_lossy(&res.stderr);
        assert!(tries < 3 && err.contains("AlreadyExists"), "{err}");
    }
}

/// The admin's kubeconfig changed to act as `user` in `groups` (impersonation).
fn impersonating(c: &Cluster, user: &str, groups: &[&str]) -> String {
    let admin = std::fs::read_to_string(&c.kubeconfig).unwrap();
    let mut v: serde_yaml::Value = serde_yaml::from_str(&admin).unwrap();
    v["users"][0]["user"]["as"] = user.into();
    v["users"][0]["user"]["as-groups"] = serde_yaml::to_value(groups).unwrap();
    serde_yaml::to_string(&v).unwrap()
}

/// A kubeconfig file acting as `user` in `groups`, removed when dropped.
pub fn impersonating_kubeconfig(
    c: &Cluster,
    user: &str,
    groups: &[&str],
) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    std::io::Write::write_all(&mut f, impersonating(c, user, groups).as_bytes()).unwrap();
    f
}

/// A kubeconfig that acts as `system:serviceaccount:<ns>:raum-operator`.
pub fn service_account_kubeconfig(c: &Cluster, ns: &str) -> PathBuf {
    let text = impersonating(
        c,
        &format!("system:serviceaccount:{ns}:raum-operator"),
        &[
            "system:serviceaccounts",
            &format!("system:serviceaccounts:{ns}"),
            "system:authenticated",
        ],
    );
    let path = scratch_dir("raum-operator-kubeconfig");
    std::fs::write(&path, text).unwrap();
    path
}

/// A running operator process; killed when dropped.
pub struct Operator {
    child: Child,
    kubeconfig: PathBuf,
    /// Its stderr (process logs).
    pub log: PathBuf,
    args: Vec<String>,
}

static RUNS: AtomicU32 = AtomicU32::new(0);

impl Operator {
    /// Starts `raum operator` watching `ns`, with its Lease and key Secret in `ns`,
    /// as the ServiceAccount, with `extra` flags.
    pub fn start(c: &Cluster, ns: &str, extra: &[&str]) -> Operator {
        let kubeconfig = service_account_kubeconfig(c, ns);
        let mut args: Vec<String> = vec![
            "operator".into(),
            format!("--kubeconfig={}", kubeconfig.display()),
            format!("--namespace={ns}"),
            format!("--operator-namespace={ns}"),
            "--metrics-addr=127.0.0.1:0".into(),
        ];
        if !extra.iter().any(|a| a.starts_with("--public-url")) {
            args.push(format!("--public-url={PUBLIC_URL}"));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn(args, kubeconfig)
    }

    fn spawn(args: Vec<String>, kubeconfig: PathBuf) -> Operator {
        let log = scratch_dir(&format!(
            "raum-operator-log-{}",
            RUNS.fetch_add(1, Ordering::Relaxed)
        ));
        let child = Command::new(env!("CARGO_BIN_EXE_raum"))
            .args(&args)
            .env("RAUM_LOG", "info,kube=warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("raum operator starts");
        Operator {
            child,
            kubeconfig,
            log,
            args,
        }
    }

    /// Kills it with SIGKILL (no goodbye) and starts it again with the same flags.
    pub fn kill_and_restart(&mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let next = Self::spawn(self.args.clone(), self.kubeconfig.clone());
        let mut old = std::mem::replace(self, next);
        // The new process uses the same kubeconfig: keep the file.
        old.kubeconfig = PathBuf::new();
        drop(old);
    }

    /// Sends SIGTERM and waits (at most `limit`) for the exit status.
    pub fn terminate(&mut self, limit: std::time::Duration) -> std::process::ExitStatus {
        let ok = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
        let start = std::time::Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(
                start.elapsed() < limit,
                "no exit within {limit:?} of SIGTERM\n{}",
                self.logs()
            );
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }

    /// The address of its metrics server, from its log.
    pub async fn metrics_addr(&self) -> String {
        for _ in 0..100 {
            if let Some(line) = self.logs().lines().find(|l| l.contains("serving /metrics")) {
                let addr = line
                    .split("addr=")
                    .nth(1)
                    .expect("addr field")
                    .split_whitespace()
                    .next()
                    .unwrap();
                return addr.to_owned();
            }
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        }
        panic!("no metrics address in the log:\n{}", self.logs());
    }

    /// Its process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Its log so far.
    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for Operator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_file(&self.log);
        if !self.kubeconfig.as_os_str().is_empty() {
            let _ = std::fs::remove_file(&self.kubeconfig);
        }
    }
}
