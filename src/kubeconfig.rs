//! Finding and loading the kubeconfig, with errors that name the file.
//!
//! Order, as kubectl does it: `--kubeconfig`, then `$KUBECONFIG` (a list of files,
//! merged), then the in-cluster service account, then `~/.kube/config`.

use std::path::{Path, PathBuf};

use kube::config::{KubeConfigOptions, Kubeconfig, KubeconfigError};

/// Flags of the subcommands that talk to the Kubernetes API server.
#[derive(Debug, clap::Args)]
pub struct ClusterArgs {
    /// The kubeconfig to use. Without it: $KUBECONFIG, then the in-cluster service
    /// account, then ~/.kube/config.
    #[arg(long, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,
}

impl ClusterArgs {
    /// A client from the configuration these flags point to.
    pub async fn client(&self) -> Result<kube::Client, Error> {
        let config = load(self.kubeconfig.as_deref()).await?;
        kube::Client::try_from(config).map_err(Error::Client)
    }
}

/// Why no usable client configuration could be loaded. Each variant names the file,
/// so the one-line message tells a person what to fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read (missing, unreadable, a directory).
    #[error("cannot read kubeconfig {}: {source}", path.display())]
    Read {
        /// The kubeconfig path tried.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The file was read but is not a kubeconfig kube can use.
    #[error("kubeconfig {path} is not usable: {source}")]
    Invalid {
        /// The kubeconfig path (or list) tried.
        path: String,
        /// What was wrong with it.
        source: KubeconfigError,
    },
    /// In-cluster configuration was expected but is broken.
    #[error("cannot use the in-cluster service account: {0}")]
    InCluster(#[source] kube::config::InClusterError),
    /// The configuration was read but no client can be built from it.
    #[error("cannot create a Kubernetes client: {0}")]
    Client(#[source] kube::Error),
    /// Nothing to try: no flag, no `$KUBECONFIG`, not in a cluster, no home directory.
    #[error("no kubeconfig: pass --kubeconfig or set KUBECONFIG")]
    NotFound,
}

fn read(path: &Path) -> Result<Kubeconfig, Error> {
    // Read it ourselves first: kube's own read error does not keep the io::Error kind
    // in its message in a form that is pleasant to print.
    if let Err(source) = std::fs::File::open(path) {
        return Err(Error::Read {
            path: path.to_owned(),
            source,
        });
    }
    Kubeconfig::read_from(path).map_err(|source| match source {
        KubeconfigError::ReadConfig(io, path) => Error::Read { path, source: io },
        source => Error::Invalid {
            path: path.display().to_string(),
            source,
        },
    })
}

/// Loads the client configuration, from `explicit` if given (the `--kubeconfig` flag).
pub async fn load(explicit: Option<&Path>) -> Result<kube::Config, Error> {
    load_context(explicit, None).await
}

/// The same with another context than the kubeconfig's current one (`--context`).
pub async fn load_context(
    explicit: Option<&Path>,
    context: Option<&str>,
) -> Result<kube::Config, Error> {
    let (kubeconfig, described) = if let Some(path) = explicit {
        (read(path)?, path.display().to_string())
    } else if let Some(list) = std::env::var_os("KUBECONFIG").filter(|v| !v.is_empty()) {
        let paths: Vec<PathBuf> = std::env::split_paths(&list)
            .filter(|p| !p.as_os_str().is_empty())
            .collect();
        let mut merged = Kubeconfig::default();
        for p in &paths {
            merged = merged.merge(read(p)?).map_err(|source| Error::Invalid {
                path: p.display().to_string(),
                source,
            })?;
        }
        let described = std::env::join_paths(&paths)
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        (merged, described)
    } else if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
        return kube::Config::incluster().map_err(Error::InCluster);
    } else {
        let home = std::env::var_os("HOME").ok_or(Error::NotFound)?;
        let path = Path::new(&home).join(".kube").join("config");
        (read(&path)?, path.display().to_string())
    };
    let options = KubeConfigOptions {
        context: context.map(str::to_owned),
        ..KubeConfigOptions::default()
    };
    kube::Config::from_custom_kubeconfig(kubeconfig, &options)
        .await
        .map_err(|source| Error::Invalid {
            path: described,
            source,
        })
}
