//! raum's custom resources in `raum.dev/v1alpha1`: the Rust types are the source of
//! truth; the CRDs in `crds/` are generated from them by `raum crd`.

pub mod holds;
pub mod meeting;
pub mod retention_policy;

pub use meeting::{Meeting, MeetingPhase, MeetingSpec, MeetingStatus};
pub use retention_policy::{RetentionPolicy, RetentionPolicySpec, RetentionPolicyStatus};

/// The API group of raum's custom resources.
pub const GROUP: &str = "raum.dev";
/// The API version of raum's custom resources.
pub const VERSION: &str = "v1alpha1";
