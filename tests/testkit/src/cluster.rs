//! The real control plane for integration tests.
//!
//! [`cluster()`] starts etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
//! kwok once per test binary through `tests/cluster/up --supervise`, and each test takes
//! its own namespace from it. The supervising script holds the read end of a pipe whose
//! write end only this process has: when the test binary ends in any way (success, a
//! panicking test, a kill), the pipe closes and the script stops every process it
//! started and removes its directory. Its children also carry a parent-death signal, so
//! nothing outlives the script either.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::wait::{await_condition, conditions};
use kube::{Client, Config};
use tokio::sync::OnceCell;

/// A running control plane, shared by all tests of one test binary.
pub struct Cluster {
    /// The admin's kubeconfig (system:masters).
    pub kubeconfig: PathBuf,
    /// Where kubectl and the control-plane binaries are.
    pub bin_dir: PathBuf,
    /// The supervising `up --supervise` process. Its stdin is the pipe whose closing
    /// tears the cluster down; it is never written to.
    _supervisor: Mutex<(Child, ChildStdout)>,
    /// CRDs are installed once per cluster, whichever test asks first.
    crds: OnceCell<()>,
}

static CLUSTER: OnceLock<Result<Cluster, String>> = OnceLock::new();
static NAMESPACES: AtomicU32 = AtomicU32::new(0);

/// The repository root.
pub fn repo() -> &'static Path {
    crate::process::repo()
}

/// The cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    match CLUSTER.get_or_init(Cluster::start) {
        Ok(c) => c,
        Err(e) => panic!("the test control plane is not available: {e}"),
    }
}

/// The directory with the control-plane binaries, built on first use (and cached
/// across runs by `tests/cluster/build-binaries` itself).
pub fn bin_dir() -> &'static Path {
    static BIN: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let built = BIN.get_or_init(|| {
        let build = Command::new(repo().join("tests/cluster/build-binaries"))
            .stderr(Stdio::inherit())
            .output()
            .map_err(|e| format!("cannot run tests/cluster/build-binaries: {e}"))?;
        if !build.status.success() {
            return Err(format!(
                "tests/cluster/build-binaries failed: {}",
                build.status
            ));
        }
        Ok(PathBuf::from(String::from_utf8_lossy(&build.stdout).trim()))
    });
    match built {
        Ok(p) => p,
        Err(e) => panic!("{e}"),
    }
}

/// A fresh directory name under the system's temporary directory (not created).
pub fn scratch_dir(prefix: &str) -> PathBuf {
    static N: AtomicU32 = AtomicU32::new(0);
    std::env::temp_dir().join(format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    ))
}

/// Runs `tests/cluster/up --supervise --dir DIR` and waits until it is ready.
/// Returns the supervisor (whose stdin is the teardown pipe), its stdout, and the
/// admin kubeconfig.
pub fn supervise(dir: &Path) -> Result<(Child, ChildStdout, PathBuf), String> {
    supervise_with(dir, &[])
}

/// The same with more arguments for `up`.
pub fn supervise_with(dir: &Path, args: &[&str]) -> Result<(Child, ChildStdout, PathBuf), String> {
    let mut child = Command::new(repo().join("tests/cluster/up"))
        .arg("--supervise")
        .arg("--dir")
        .arg(dir)
        .args(args)
        .env("RAUM_CLUSTER_BIN", bin_dir())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .map_err(|e| format!("cannot run tests/cluster/up: {e}"))?;
    let mut stdout = BufReader::new(child.stdout.take().expect("piped"));
    let mut line = String::new();
    loop {
        line.clear();
        match stdout.read_line(&mut line) {
            Ok(0) | Err(_) => {
                let status = child.wait().ok();
                return Err(format!(
                    "tests/cluster/up ended before the cluster was ready ({status:?}); its log is above"
                ));
            }
            Ok(_) => {
                if let Some(path) = line.trim().strip_prefix("export KUBECONFIG=") {
                    return Ok((child, stdout.into_inner(), PathBuf::from(path)));
                }
            }
        }
    }
}

impl Cluster {
    /// A control plane of its own (for tests whose cluster-scoped objects would collide
    /// with the shared one's); torn down when dropped.
    pub fn start() -> Result<Cluster, String> {
        Self::start_with(&[])
    }

    /// A control plane of its own, started with more arguments for `up`.
    pub fn start_with(args: &[&str]) -> Result<Cluster, String> {
        let (child, stdout, kubeconfig) = supervise_with(&scratch_dir("raum-cluster"), args)?;
        Ok(Cluster {
            kubeconfig,
            bin_dir: bin_dir().to_owned(),
            _supervisor: Mutex::new((child, stdout)),
            crds: OnceCell::new(),
        })
    }

    /// A client for the admin, bound to the calling test's runtime.
    pub async fn client(&self) -> Client {
        let kubeconfig = Kubeconfig::read_from(&self.kubeconfig).expect("admin kubeconfig");
        let config = Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
            .await
            .expect("admin kubeconfig is usable");
        Client::try_from(config).expect("client")
    }

    /// Runs the control plane's kubectl (same version as the API server) as admin.
    pub fn kubectl(&self, args: &[&str], stdin: Option<&str>) -> Output {
        let mut cmd = Command::new(self.bin_dir.join("kubectl"));
        cmd.args(args)
            .env("KUBECONFIG", &self.kubeconfig)
            .stdin(if stdin.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().expect("kubectl runs");
        if let Some(input) = stdin {
            use std::io::Write;
            child
                .stdin
                .take()
                .unwrap()
                .write_all(input.as_bytes())
                .expect("write kubectl stdin");
        }
        child.wait_with_output().expect("kubectl finishes")
    }

    /// A fresh namespace for one test, with the given labels.
    pub async fn namespace(&self, prefix: &str, labels: &[(&str, &str)]) -> TestNamespace {
        let client = self.client().await;
        let name = format!("{prefix}-{}", NAMESPACES.fetch_add(1, Ordering::Relaxed));
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.clone()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| (k.to_string(), v.to_string()))
                        .collect(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Namespace>::all(client.clone())
            .create(&PostParams::default(), &ns)
            .await
            .expect("create test namespace");
        TestNamespace { client, name }
    }

    /// Installs the CRDs from the repository's `crds/` (as `kubectl apply -f crds/`
    /// would, by server-side apply) and waits until the API server serves them.
    pub async fn install_crds(&self) {
        self.crds
            .get_or_init(|| async {
                let client = self.client().await;
                let api: Api<CustomResourceDefinition> = Api::all(client);
                let mut names = Vec::new();
                for entry in std::fs::read_dir(repo().join("crds")).expect("crds/ exists") {
                    let path = entry.unwrap().path();
                    let text = std::fs::read_to_string(&path).unwrap();
                    let crd: CustomResourceDefinition = serde_yaml::from_str(&text)
                        .unwrap_or_else(|e| panic!("{} is not a CRD: {e}", path.display()));
                    let name = crd.metadata.name.clone().unwrap();
                    api.patch(
                        &name,
                        &PatchParams::apply("raum-tests").force(),
                        &Patch::Apply(&crd),
                    )
                    .await
                    .unwrap_or_else(|e| panic!("{} was refused: {e}", path.display()));
                    names.push(name);
                }
                for name in names {
                    wait(
                        &format!("CRD {name} to be Established"),
                        Duration::from_secs(30),
                        await_condition(api.clone(), &name, conditions::is_crd_established()),
                    )
                    .await
                    .expect("watch CRD");
                }
            })
            .await;
    }
}

/// A namespace of its own for one test, and an admin client.
pub struct TestNamespace {
    /// The admin's client.
    pub client: Client,
    /// The namespace's name.
    pub name: String,
}

impl TestNamespace {
    /// A namespaced API for `K` in this namespace.
    pub fn api<K>(&self) -> Api<K>
    where
        K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + serde::de::DeserializeOwned
            + std::fmt::Debug,
        K::DynamicType: Default,
    {
        Api::namespaced(self.client.clone(), &self.name)
    }
}

/// Awaits `fut`, failing the test with `what` if it takes longer than `limit`. Limits
/// are generous: they catch a hang, they do not measure speed.
pub async fn wait<T>(what: &str, limit: Duration, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(limit, fut)
        .await
        .unwrap_or_else(|_| panic!("timed out after {limit:?} waiting for {what}"))
}
