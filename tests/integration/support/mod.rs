//! Test support shared by the integration tests: the real control plane and helpers.

pub use raum_testkit::cluster;
pub mod operator;
pub mod sfu;
