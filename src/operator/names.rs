//! The operator's name as the cluster sees it, and the names of the objects it creates
//! for another object.

use std::collections::BTreeMap;

use sha2::{Digest, Sha256};

/// The operator's one name: its field manager for server-side apply, its Lease, the
/// controller of its Events, and the value of the `managed-by` label on everything it
/// creates.
pub const OPERATOR: &str = "raum-operator";
/// The well-known label naming who manages an object.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";

/// `managed-by: raum-operator`, the label on every object the operator creates.
pub fn managed_labels() -> BTreeMap<String, String> {
    BTreeMap::from([(MANAGED_BY.to_owned(), OPERATOR.to_owned())])
}

/// The label selector for the objects the operator created (its controllers watch only
/// those).
pub fn managed_selector() -> String {
    format!("{MANAGED_BY}={OPERATOR}")
}

/// `<prefix>-<owner>`, made a valid DNS-1035 label of at most `max` characters
/// (Service names must be labels; owners' names may hold dots and be 253 long; a
/// CronJob's name must leave room for its Jobs' suffix). When the owner's name had to
/// be changed or cut, a hash of it keeps the result unique: `a.b` and `a-b` must not
/// meet in `raum-a-b`.
pub fn child_name(prefix: &str, owner: &str, max: usize) -> String {
    let cleaned: String = owner
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let full = format!("{prefix}-{cleaned}");
    if full.len() <= max && !full.ends_with('-') && cleaned == owner {
        return full;
    }
    let hash = Sha256::digest(owner.as_bytes());
    let suffix: String = hash[..4].iter().map(|b| format!("{b:02x}")).collect();
    let head: String = full.chars().take(max - 9).collect();
    format!("{}-{suffix}", head.trim_end_matches('-'))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_valid_unique_labels() {
        assert_eq!(child_name("raum", "elternabend", 63), "raum-elternabend");
        assert_eq!(
            child_name("raum-prune", "access-log", 52),
            "raum-prune-access-log"
        );
        let dotted = child_name("raum", "a.b", 63);
        assert_ne!(dotted, child_name("raum", "a-b", 63));
        let long = "x".repeat(253);
        let other = format!("{}y", "x".repeat(252));
        for (n, max) in [
            (child_name("raum", &long, 63), 63),
            (child_name("raum-prune", &other, 52), 52),
            (dotted, 63),
            (child_name("raum", "9lives", 63), 63),
        ] {
            assert!(n.len() <= max, "{n}");
            assert!(
                n.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
            );
            assert!(n.starts_with("raum") && !n.ends_with('-'), "{n}");
        }
        assert_ne!(
            child_name("raum", &long, 63),
            child_name("raum", &other, 63)
        );
    }
}
