//! Test support shared by the integration tests: the real control plane and helpers.

pub mod cluster;
pub mod operator;
pub mod sfu;
