//! `kubectl raum`: the same binary installed as `kubectl-raum` (kubectl runs plugins
//! by that name), for compliance staff and platform teams who live in kubectl:
//! holds ([`holds`]), a meeting's link and raum's state ([`status`]), and the privacy
//! check ([`check`]) that shows, item by item with its evidence, that the privacy
//! notice holds on the live cluster.
//!
//! It acts with the caller's own kubeconfig and rights, and says plainly when those
//! are missing (`raum-hold-editor` for holds, `raum-privacy-auditor` for the check).

pub mod check;
pub mod holds;
pub mod status;

use std::path::PathBuf;

use clap::{Args as ClapArgs, Subcommand};

/// The plugin's name: run as this, the binary is `kubectl raum`.
pub const PLUGIN_NAME: &str = "kubectl-raum";

/// Flags of `kubectl raum` (also `raum kubectl`).
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// The kubeconfig to use. Without it: $KUBECONFIG, then ~/.kube/config.
    #[arg(long, global = true, value_name = "PATH")]
    pub kubeconfig: Option<PathBuf>,

    /// The kubeconfig context to use. Default: its current one.
    #[arg(long, global = true, value_name = "NAME")]
    pub context: Option<String>,

    /// The namespace: raum's own (RetentionPolicies) or a meeting's. Default: the
    /// context's.
    #[arg(short = 'n', long, global = true, value_name = "NAMESPACE")]
    pub namespace: Option<String>,

    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// `kubectl raum` subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Every hold on a RetentionPolicy: its window, reason, whether it parses, and how
    /// many expired entries it keeps now.
    Holds {
        /// The RetentionPolicy.
        #[arg(default_value = "access-log")]
        policy: String,
    },
    /// Place or lift a hold (checked before anything is written).
    Hold {
        /// Add or lift.
        #[command(subcommand)]
        action: holds::Action,
    },
    /// A meeting's join URL (participants' link).
    Url {
        /// The Meeting.
        meeting: String,
    },
    /// Meetings by phase, participants now, the last pruning run and the oldest
    /// access-log entry.
    Status {
        /// The RetentionPolicy.
        #[arg(long, default_value = "access-log")]
        policy: String,
        /// Meetings of every namespace (default: -n's or the context's).
        #[arg(short = 'A', long)]
        all_namespaces: bool,
    },
    /// The privacy check: pass or fail per item, with the evidence; exits 1 if any
    /// item fails (for monitoring).
    Check(check::Args),
}

/// Why a plugin command could not do its work (a failed check is not an error: it
/// is the check's answer).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No usable kubeconfig.
    #[error(transparent)]
    Config(#[from] crate::kubeconfig::Error),
    /// The client could not be built from it.
    #[error("cannot use the kubeconfig: {0}")]
    Client(kube::Error),
    /// The API server refused: the caller lacks a right. `what` says which.
    #[error("you may not {what} (forbidden); {hint}")]
    Forbidden {
        /// The action, in words.
        what: String,
        /// Which role grants it.
        hint: &'static str,
    },
    /// Something does not exist.
    #[error("{0}")]
    NotFound(String),
    /// Input the command refuses, before anything is written.
    #[error("{0}")]
    Invalid(String),
    /// The output could not be written.
    #[error("cannot write the output: {0}")]
    Io(#[from] std::io::Error),
    /// The API server could not be asked.
    #[error("{what}: {source}")]
    Api {
        /// The action, in words.
        what: String,
        /// What went wrong.
        source: kube::Error,
    },
}

impl Error {
    /// An API error while doing `what`: a 403 becomes [`Error::Forbidden`] with the
    /// role that would allow it, a 404 [`Error::NotFound`].
    pub fn api(what: impl Into<String>, hint: &'static str, e: kube::Error) -> Error {
        let what = what.into();
        match &e {
            kube::Error::Api(s) if s.code == 403 => Error::Forbidden { what, hint },
            kube::Error::Api(s) if s.code == 404 => Error::NotFound(format!("{what}: not found")),
            _ => Error::Api { what, source: e },
        }
    }
}

/// The role compliance staff need for holds.
pub const HOLD_EDITOR: &str = "ask for the raum-hold-editor role";
/// The role the check and status need.
pub const AUDITOR: &str = "ask for the raum-privacy-auditor role";

/// A client and the namespace to work in.
pub struct Target {
    /// The client, as the caller.
    pub client: kube::Client,
    /// `-n`, or the context's namespace.
    pub namespace: String,
}

impl Args {
    async fn target(&self) -> Result<Target, Error> {
        let config =
            crate::kubeconfig::load_context(self.kubeconfig.as_deref(), self.context.as_deref())
                .await?;
        let namespace = self
            .namespace
            .clone()
            .unwrap_or_else(|| config.default_namespace.clone());
        let client = kube::Client::try_from(config).map_err(Error::Client)?;
        Ok(Target { client, namespace })
    }
}

/// Runs a plugin command; the exit code says whether it (and a check) succeeded.
pub async fn run(args: Args) -> Result<std::process::ExitCode, Error> {
    let target = args.target().await?;
    let mut out = std::io::stdout().lock();
    match args.command {
        Command::Holds { policy } => holds::list(&target, &policy, &mut out).await?,
        Command::Hold { action } => holds::act(&target, action, &mut out).await?,
        Command::Url { meeting } => status::url(&target, &meeting, &mut out).await?,
        Command::Status {
            policy,
            all_namespaces,
        } => status::status(&target, &policy, all_namespaces, &mut out).await?,
        Command::Check(a) => return check::run(&target, a, &mut out).await,
    }
    Ok(std::process::ExitCode::SUCCESS)
}

/// Prints rows as aligned columns (as kubectl does).
pub fn table(out: &mut impl std::io::Write, rows: &[Vec<String>]) -> std::io::Result<()> {
    let widths: Vec<usize> = (0..rows.first().map_or(0, Vec::len))
        .map(|i| rows.iter().map(|r| r[i].chars().count()).max().unwrap_or(0))
        .collect();
    for row in rows {
        let mut line = String::new();
        for (i, cell) in row.iter().enumerate() {
            if i + 1 < row.len() {
                line.push_str(&format!("{cell:<w$}   ", w = widths[i]));
            } else {
                line.push_str(cell);
            }
        }
        writeln!(out, "{}", line.trim_end())?;
    }
    Ok(())
}
