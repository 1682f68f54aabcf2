//! The command line: `raum <subcommand>`. One binary, one image; each subcommand is one
//! component of raum (see docs/architecture.md), whose flags are defined next to it.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

use crate::telemetry::LogFormat;

/// raum: privacy-first video conferences on your own Kubernetes cluster.
#[derive(Debug, Parser)]
#[command(name = "raum", version, about, long_about = None, propagate_version = true)]
pub struct Cli {
    /// How process logs are written (to stderr). The filter comes from RAUM_LOG.
    #[arg(
        long,
        global = true,
        value_enum,
        default_value = "text",
        env = "RAUM_LOG_FORMAT"
    )]
    pub log_format: LogFormat,

    /// The component to run.
    #[command(subcommand)]
    pub command: Command,
}

/// raum's components.
// Parsed once at start-up; boxing the large variant would buy nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Reconcile Meeting and RetentionPolicy objects (runs as a Deployment with leader
    /// election).
    Operator(crate::operator::Args),
    /// Serve join URLs and the web client, proxy signaling to each meeting's SFU and
    /// write the shared access log.
    Gateway(crate::gateway::Args),
    /// The WebRTC SFU of one meeting (runs in the meeting's ephemeral pod).
    Sfu(crate::sfu::Args),
    /// One pruning run of the shared access log, honouring holds (runs in the
    /// RetentionPolicy's CronJob).
    Prune(crate::prune_job::Args),
    /// Benchmark running SFUs with synthetic WebRTC participants (see
    /// docs/benchmarks.md).
    Loadtest(crate::loadtest::Args),
    /// A TURN server (UDP, TCP and TLS) that relays only to raum's SFUs and logs
    /// nothing personal, for participants behind firewalls.
    Turn(crate::turn::Args),
    /// Print the CustomResourceDefinitions generated from raum's Rust types.
    Crd(CrdArgs),
    /// Gateway, SFU rooms, access log and daily pruning in one process, with meetings
    /// from YAML files; no Kubernetes needed.
    Standalone(crate::standalone::Args),
    /// The kubectl plugin: holds, links, status and the privacy check. Installed as
    /// `kubectl-raum` (a copy or link of this binary on the PATH) it is `kubectl raum`.
    Kubectl(crate::plugin::Args),
}

/// Flags of `raum crd`.
#[derive(Debug, Args)]
pub struct CrdArgs {
    /// Write one file per CRD into this directory (as in the repository's crds/)
    /// instead of printing one YAML stream to stdout.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn unknown_subcommands_and_flags_are_usage_errors() {
        for args in [
            &["raum", "meet"][..],
            &["raum", "crd", "--nope"],
            &["raum"],
            &["raum", "operator", "--kubeconfig"],
            &["raum", "operator", "--public-url", "ftp://x"],
            &["raum", "gateway", "--public-url", "meet.example.org"],
        ] {
            let err = Cli::try_parse_from(args).unwrap_err();
            assert_eq!(err.exit_code(), 2, "{args:?}");
        }
    }
}
