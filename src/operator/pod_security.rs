//! The security context every pod the operator creates runs with: what the
//! `restricted` Pod Security Standard requires, and a read-only root filesystem.

use k8s_openapi::api::core::v1::{
    Capabilities, PodSecurityContext, SeccompProfile, SecurityContext,
};

/// The unprivileged user (and group) raum's pods run as (distroless's `nonroot`).
pub const UID: i64 = 65532;

/// Pod level: non-root as [`UID`], seccomp `RuntimeDefault`; `fs_group` makes mounted
/// volumes writable by that group.
pub fn pod(fs_group: Option<i64>) -> PodSecurityContext {
    PodSecurityContext {
        run_as_non_root: Some(true),
        run_as_user: Some(UID),
        run_as_group: Some(UID),
        fs_group,
        seccomp_profile: Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            localhost_profile: None,
        }),
        ..Default::default()
    }
}

/// Container level: no privilege escalation, every capability dropped, read-only root.
pub fn container() -> SecurityContext {
    SecurityContext {
        allow_privilege_escalation: Some(false),
        read_only_root_filesystem: Some(true),
        run_as_non_root: Some(true),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".to_owned()]),
            add: None,
        }),
        ..Default::default()
    }
}
