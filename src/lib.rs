//! raum: a Kubernetes operator for privacy-first video conferences.
//!
//! One binary with one subcommand per component (see [`cli`]). The custom resources
//! live in [`api`]; the CRDs are generated from them by [`crd`].

pub mod access_log;
pub mod api;
pub mod cli;
pub mod crd;
pub mod gateway;
pub mod kubeconfig;
pub mod operator;
pub mod prune_job;
pub mod sfu;
pub mod shutdown;
pub mod standalone;
pub mod telemetry;
