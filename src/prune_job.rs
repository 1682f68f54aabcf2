//! `raum prune`: one pruning run of the shared access log, following a RetentionPolicy
//! from the API server (in the CronJob's pod) or from a YAML file (standalone, or
//! people without a cluster). Prints a summary; in API mode it also lands in the
//! policy's `status.lastRun`. Counts only: no entry ever leaves the log directory.

use std::process::ExitCode;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::Api;
use kube::api::{Patch, PatchParams};
use serde_json::json;
use tracing::{info, warn};

use crate::access_log::prune::{self, FileSource, Policy, PolicyError, PolicySource, Summary};
use crate::api::RetentionPolicy;
use crate::api::retention_policy::PruneRun;
use crate::kubeconfig::ClusterArgs;

/// Flags of `raum prune`.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("source").required(true).args(["policy", "policy_file"])))]
pub struct Args {
    /// How to reach the API server (with --policy).
    #[command(flatten)]
    pub cluster: ClusterArgs,

    /// The RetentionPolicy to follow, as NAMESPACE/NAME, read from the API server
    /// (again before each destructive step); the run's summary goes to its status.
    #[arg(long, value_name = "NAMESPACE/NAME")]
    pub policy: Option<String>,

    /// A RetentionPolicy YAML file to follow instead (read again before each
    /// destructive step), for use without a cluster.
    #[arg(long, value_name = "FILE", conflicts_with = "policy")]
    pub policy_file: Option<std::path::PathBuf>,

    /// The directory holding the access-log files.
    #[arg(long, value_name = "DIR")]
    pub log_dir: std::path::PathBuf,

    /// Report what would be deleted and change nothing.
    #[arg(long)]
    pub dry_run: bool,
}

/// The field manager the pruner writes `status.lastRun` with.
pub const FIELD_MANAGER: &str = "raum-prune";

/// Why `raum prune` could not even start.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// `--policy` is not NAMESPACE/NAME.
    #[error("--policy {0:?} must be NAMESPACE/NAME")]
    PolicyName(String),
    /// No usable kubeconfig.
    #[error(transparent)]
    Kubeconfig(#[from] crate::kubeconfig::Error),
}

/// Reads the policy from the API server, from a blocking thread.
struct ApiSource {
    api: Api<RetentionPolicy>,
    name: String,
    handle: tokio::runtime::Handle,
}

impl PolicySource for ApiSource {
    fn load(&mut self) -> Result<Policy, PolicyError> {
        let rp = self
            .handle
            .block_on(self.api.get(&self.name))
            .map_err(|source| PolicyError::Api {
                name: self.name.clone(),
                source,
            })?;
        prune::policy_of(&rp, &format!("RetentionPolicy {}", self.name))
    }
}

/// Runs `raum prune`.
pub async fn run(args: Args) -> Result<ExitCode, Error> {
    let started = Timestamp::now();
    let (mut source, api): (Box<dyn PolicySource + Send>, _) =
        match (&args.policy, &args.policy_file) {
            (Some(full), _) => {
                let (ns, name) = full
                    .split_once('/')
                    .filter(|(n, m)| !n.is_empty() && !m.is_empty() && !m.contains('/'))
                    .ok_or_else(|| Error::PolicyName(full.clone()))?;
                let client = args.cluster.client().await?;
                let api: Api<RetentionPolicy> = Api::namespaced(client, ns);
                let source = ApiSource {
                    api: api.clone(),
                    name: name.to_owned(),
                    handle: tokio::runtime::Handle::current(),
                };
                (Box::new(source), Some((api, name.to_owned())))
            }
            (None, Some(file)) => (Box::new(FileSource(file.clone())), None),
            (None, None) => unreachable!("clap requires one of --policy and --policy-file"),
        };
    let dir = args.log_dir.clone();
    let dry_run = args.dry_run;
    let result = tokio::task::spawn_blocking(move || {
        prune::prune(&dir, source.as_mut(), Timestamp::now(), dry_run)
    })
    .await
    .unwrap_or_else(|e| Err(prune::Error::Thread(e.to_string())));
    let finished = Timestamp::now();

    let (outcome, summary, code) = match &result {
        Ok(s) => ("Succeeded".to_owned(), s.clone(), ExitCode::SUCCESS),
        Err(prune::Error::Busy(_)) => {
            // Not a failure: the run that holds the lock does the work and reports.
            eprintln!("raum prune: {}", result.as_ref().unwrap_err());
            return Ok(ExitCode::SUCCESS);
        }
        Err(e) => (
            format!("Failed: {e}"),
            Summary::default(),
            ExitCode::FAILURE,
        ),
    };
    let report = json!({"outcome": outcome, "summary": summary});
    println!("{report}");
    if let Err(e) = &result {
        eprintln!("error: {e}");
    }
    if result.is_ok() {
        info!(
            files_deleted = summary.files_deleted,
            files_rewritten = summary.files_rewritten,
            entries_removed = summary.entries_removed,
            entries_kept_for_holds = summary.entries_kept_for_holds,
            dry_run,
            "prune run finished"
        );
    }
    if let (Some((api, name)), false) = (api, dry_run) {
        let run = PruneRun {
            started: Some(Time(started)),
            finished: Some(Time(finished)),
            files_deleted: summary.files_deleted,
            files_rewritten: summary.files_rewritten,
            entries_removed: summary.entries_removed,
            entries_kept_for_holds: summary.entries_kept_for_holds,
            outcome: Some(outcome),
        };
        // The last successful run's end stays until another run succeeds (this field
        // manager owns it: an apply without it would remove it).
        let last_success = if result.is_ok() {
            Some(Time(finished))
        } else {
            match api.get_status(&name).await {
                Ok(rp) => rp.status.and_then(|s| s.last_success),
                Err(_) => None,
            }
        };
        let mut status = json!({"lastRun": run});
        if let Some(t) = last_success {
            status["lastSuccess"] = json!(t);
        }
        let patch = json!({
            "apiVersion": "raum.dev/v1alpha1",
            "kind": "RetentionPolicy",
            "status": status,
        });
        if let Err(e) = api
            .patch_status(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(patch),
            )
            .await
        {
            warn!(error = %e, "cannot write the run's summary to the policy's status");
            return Ok(ExitCode::FAILURE);
        }
    }
    Ok(code)
}
