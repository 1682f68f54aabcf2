//! raum: a Kubernetes operator for privacy-first video conferences.
//!
//! One binary with one subcommand per component (see [`cli`]). The layers, top down
//! (docs/architecture.md; `tests/layers.rs` checks that imports only point down):
//!
//! - the command line: [`cli`] (and `main.rs`);
//! - the subsystems, beside each other: [`operator`], [`sfu`], [`gateway`],
//!   [`standalone`], [`prune_job`], [`loadtest`], [`turn`], [`plugin`] (`kubectl raum`);
//! - the shared core: the resources ([`api`], [`crd`]), [`token`], [`schedule`],
//!   [`public_url`], [`signaling`], [`media`] (the sans-IO media core), [`rooms`],
//!   [`relay`] (TURN), [`turn_credentials`], [`cron`],
//!   [`access_log`], [`kubeconfig`],
//!   [`telemetry`], [`shutdown`], [`host`].

pub mod access_log;
pub mod api;
pub mod cli;
pub mod crd;
pub mod cron;
pub mod gateway;
pub mod host;
pub mod kubeconfig;
pub mod loadtest;
pub mod media;
pub mod operator;
pub mod plugin;
pub mod prune_job;
pub mod public_url;
pub mod relay;
pub mod rooms;
pub mod schedule;
pub mod sfu;
pub mod shutdown;
pub mod signaling;
pub mod standalone;
pub mod telemetry;
pub mod token;
pub mod turn;
pub mod turn_credentials;

#[cfg(test)]
mod layers;
