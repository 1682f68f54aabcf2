//! Reading the meetings directory: every `*.yaml` / `*.yml` file holds one `Meeting`
//! (the CRD's schema) or the one `RetentionPolicy`. A file that cannot be used is
//! reported with its name and the reason and leaves the others alone.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use jiff::Timestamp;

use crate::api::{Meeting, RetentionPolicy};

/// One usable meeting file.
#[derive(Clone, Debug)]
pub struct MeetingFile {
    /// Where it came from.
    pub path: PathBuf,
    /// Its contents (validated: the schedule rules hold, the name is set).
    pub meeting: Meeting,
    /// When it was created, for meetings without `startsAt`: `metadata.creationTimestamp`
    /// if given, else the file's modification time.
    pub created: Timestamp,
}

impl MeetingFile {
    /// Its name (`metadata.name`).
    pub fn name(&self) -> &str {
        self.meeting.metadata.name.as_deref().unwrap_or_default()
    }
}

/// What one read of the directory found.
#[derive(Debug, Default)]
pub struct Scan {
    /// Usable meetings by name.
    pub meetings: BTreeMap<String, MeetingFile>,
    /// The retention policy file, if there is exactly one usable one.
    pub policy: Option<(PathBuf, RetentionPolicy)>,
    /// Files that cannot be used, with the reason.
    pub problems: BTreeMap<PathBuf, String>,
    /// Those of them that are (or claim to be) RetentionPolicies: while there is one,
    /// pruning waits, since it might carry a hold.
    pub policy_problems: BTreeMap<PathBuf, String>,
}

/// A file's identity for "did it change": modification time and length.
pub type Stamp = (Option<SystemTime>, u64);

/// The YAML files in `dir`, sorted, with their stamps. Hidden files and editors'
/// temporary files (starting with `.`) are skipped.
pub fn list(dir: &Path) -> std::io::Result<Vec<(PathBuf, Stamp)>> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if name.starts_with('.') || !(name.ends_with(".yaml") || name.ends_with(".yml")) {
            continue;
        }
        let Ok(meta) = entry.metadata() else { continue };
        if !meta.is_file() {
            continue;
        }
        files.push((entry.path(), (meta.modified().ok(), meta.len())));
    }
    files.sort();
    Ok(files)
}

/// What a file holds.
#[derive(Debug)]
pub enum Document {
    /// A meeting.
    Meeting(Box<Meeting>),
    /// The retention policy.
    Policy(Box<RetentionPolicy>),
}

/// Why a file cannot be used.
#[derive(Debug)]
pub struct Problem {
    /// It says `kind: RetentionPolicy`.
    pub policy: bool,
    /// What is wrong (the caller adds the file name).
    pub reason: String,
}

/// Parses one file's text: a Meeting or a RetentionPolicy of raum's API group,
/// checked as the API server would check it.
pub fn parse(text: &str) -> Result<Document, Problem> {
    let policy = serde_yaml::from_str::<serde_yaml::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("kind")
                .and_then(|k| k.as_str())
                .map(|k| k == "RetentionPolicy")
        })
        .unwrap_or(false);
    parse_document(text).map_err(|reason| Problem { policy, reason })
}

fn parse_document(text: &str) -> Result<Document, String> {
    #[derive(serde::Deserialize)]
    struct Head {
        #[serde(rename = "apiVersion")]
        api_version: Option<String>,
        kind: Option<String>,
    }
    let head: Head = serde_yaml::from_str(text).map_err(|e| format!("not valid YAML: {e}"))?;
    let expected = "raum.dev/v1alpha1";
    if head.api_version.as_deref() != Some(expected) {
        return Err(format!("apiVersion must be {expected}"));
    }
    match head.kind.as_deref() {
        Some("Meeting") => {
            let m: Meeting =
                serde_yaml::from_str(text).map_err(|e| format!("not a valid Meeting: {e}"))?;
            reject_unknown_fields(text, &m)?;
            let name = m.metadata.name.as_deref().unwrap_or_default();
            if !valid_name(name) {
                return Err(format!(
                    "metadata.name {name:?} must be a DNS label (lower-case letters, digits and -, at most 63)"
                ));
            }
            m.spec.schedule().map_err(|e| e.to_string())?;
            Ok(Document::Meeting(Box::new(m)))
        }
        Some("RetentionPolicy") => {
            let rp: RetentionPolicy = serde_yaml::from_str(text)
                .map_err(|e| format!("not a valid RetentionPolicy: {e}"))?;
            reject_unknown_fields(text, &rp)?;
            rp.spec.max_age().map_err(|e| e.to_string())?;
            Ok(Document::Policy(Box::new(rp)))
        }
        _ => Err("kind must be Meeting or RetentionPolicy".to_owned()),
    }
}

/// Refuses fields the schema does not know (a misspelt `maxParticipant` would
/// otherwise be dropped silently, as the API server's strict field validation
/// refuses it): every key of the input must survive a round trip through the type.
/// Empty values are exempt, since empty fields are not written back.
fn reject_unknown_fields<T: serde::Serialize>(text: &str, parsed: &T) -> Result<(), String> {
    fn empty(v: &serde_json::Value) -> bool {
        match v {
            serde_json::Value::Null => true,
            serde_json::Value::Object(m) => m.is_empty(),
            serde_json::Value::Array(a) => a.is_empty(),
            _ => false,
        }
    }
    fn walk(input: &serde_json::Value, output: &serde_json::Value, path: &str) -> Option<String> {
        match (input, output) {
            (serde_json::Value::Object(i), serde_json::Value::Object(o)) => {
                i.iter().find_map(|(k, v)| {
                    let here = if path.is_empty() {
                        k.clone()
                    } else {
                        format!("{path}.{k}")
                    };
                    match o.get(k) {
                        Some(ov) => walk(v, ov, &here),
                        None if empty(v) => None,
                        None => Some(here),
                    }
                })
            }
            (serde_json::Value::Array(i), serde_json::Value::Array(o)) => i
                .iter()
                .zip(o)
                .enumerate()
                .find_map(|(n, (iv, ov))| walk(iv, ov, &format!("{path}[{n}]"))),
            _ => None,
        }
    }
    let input: serde_json::Value = serde_yaml::from_str(text).map_err(|e| e.to_string())?;
    let output = serde_json::to_value(parsed).map_err(|e| e.to_string())?;
    match walk(&input, &output, "") {
        Some(field) => Err(format!("unknown field {field}")),
        None => Ok(()),
    }
}

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
}

/// Reads every file of `files` and sorts them into meetings, the policy and problems.
pub fn scan(files: &[(PathBuf, Stamp)]) -> Scan {
    let mut scan = Scan::default();
    let mut policies = Vec::new();
    for (path, (modified, _)) in files {
        let doc = std::fs::read_to_string(path)
            .map_err(|e| Problem {
                policy: false,
                reason: format!("cannot read: {e}"),
            })
            .and_then(|t| parse(&t));
        match doc {
            Ok(Document::Meeting(m)) => {
                let name = m.metadata.name.clone().unwrap_or_default();
                if let Some(other) = scan.meetings.get(&name) {
                    scan.problems.insert(
                        path.clone(),
                        format!(
                            "the name {name:?} is already used by {}",
                            other.path.display()
                        ),
                    );
                    continue;
                }
                let created = m
                    .metadata
                    .creation_timestamp
                    .as_ref()
                    .map(|t| t.0)
                    .or_else(|| modified.and_then(|t| Timestamp::try_from(t).ok()))
                    .unwrap_or_else(Timestamp::now);
                scan.meetings.insert(
                    name,
                    MeetingFile {
                        path: path.clone(),
                        meeting: *m,
                        created,
                    },
                );
            }
            Ok(Document::Policy(rp)) => policies.push((path.clone(), *rp)),
            Err(problem) => {
                if problem.policy {
                    scan.policy_problems
                        .insert(path.clone(), problem.reason.clone());
                }
                scan.problems.insert(path.clone(), problem.reason);
            }
        }
    }
    if policies.len() > 1 {
        for (path, _) in &policies {
            let reason = "more than one RetentionPolicy; none is used (pruning waits)";
            scan.problems.insert(path.clone(), reason.to_owned());
            scan.policy_problems.insert(path.clone(), reason.to_owned());
        }
    } else {
        scan.policy = policies.pop();
    }
    scan
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meetings_and_policies_parse_and_bad_files_say_why() {
        let ok = "apiVersion: raum.dev/v1alpha1\nkind: Meeting\nmetadata: {name: team}\nspec: {title: Team}\n";
        assert!(matches!(parse(ok), Ok(Document::Meeting(_))));
        let rp = "apiVersion: raum.dev/v1alpha1\nkind: RetentionPolicy\nmetadata: {name: access-log}\nspec: {maxAge: 8w}\n";
        assert!(matches!(parse(rp), Ok(Document::Policy(_))));
        for (text, reason) in [
            ("a: [", "not valid YAML"),
            ("kind: Meeting\n", "apiVersion must be raum.dev/v1alpha1"),
            (
                "apiVersion: raum.dev/v1alpha1\nkind: Pod\n",
                "kind must be Meeting",
            ),
            (
                "apiVersion: raum.dev/v1alpha1\nkind: Meeting\nmetadata: {name: Team}\nspec: {title: T}\n",
                "DNS label",
            ),
            (
                "apiVersion: raum.dev/v1alpha1\nkind: Meeting\nmetadata: {name: t}\nspec: {title: ' '}\n",
                "title must not be empty",
            ),
            (
                "apiVersion: raum.dev/v1alpha1\nkind: Meeting\nmetadata: {name: t}\nspec: {title: T, maxParticipants: 1}\n",
                "maxParticipants 1",
            ),
            (
                "apiVersion: raum.dev/v1alpha1\nkind: Meeting\nmetadata: {name: t}\nspec: {title: T, colour: red}\n",
                "unknown field spec.colour",
            ),
            (
                "apiVersion: raum.dev/v1alpha1\nkind: Meeting\nmetadata: {name: t}\nspec: {title: T, media: {vidoe: false}}\n",
                "unknown field spec.media.vidoe",
            ),
            (
                "apiVersion: raum.dev/v1alpha1\nkind: RetentionPolicy\nmetadata: {name: p}\nspec: {maxAge: 8 weeks}\n",
                "maxAge",
            ),
        ] {
            let err = parse(text).unwrap_err().reason;
            assert!(err.contains(reason), "{text:?}: {err}");
        }
    }

    #[test]
    fn the_example_manifests_are_valid_standalone_files() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests/examples");
        let files = list(Path::new(dir)).unwrap();
        assert!(files.len() >= 3, "{files:?}");
        for (path, _) in files {
            let text = std::fs::read_to_string(&path).unwrap();
            if let Err(p) = parse(&text) {
                panic!("{}: {}", path.display(), p.reason);
            }
        }
    }

    #[test]
    fn a_scan_keeps_good_files_and_names_bad_ones() {
        let dir = tempfile::tempdir().unwrap();
        let w = |n: &str, t: &str| std::fs::write(dir.path().join(n), t).unwrap();
        w(
            "a.yaml",
            "apiVersion: raum.dev/v1alpha1\nkind: Meeting\nmetadata: {name: a}\nspec: {title: A}\n",
        );
        w(
            "b.yml",
            "apiVersion: raum.dev/v1alpha1\nkind: Meeting\nmetadata: {name: a}\nspec: {title: B}\n",
        );
        w("c.yaml", "{{{");
        w(".hidden.yaml", "{{{");
        w("notes.txt", "{{{");
        w(
            "p.yaml",
            "apiVersion: raum.dev/v1alpha1\nkind: RetentionPolicy\nmetadata: {name: p}\nspec: {}\n",
        );
        let scan = scan(&list(dir.path()).unwrap());
        assert_eq!(scan.meetings.keys().collect::<Vec<_>>(), ["a"]);
        assert_eq!(
            scan.meetings["a"].meeting.spec.title, "A",
            "first file wins"
        );
        assert!(scan.problems[&dir.path().join("b.yml")].contains("already used by"));
        assert!(scan.problems[&dir.path().join("c.yaml")].contains("not valid YAML"));
        assert_eq!(scan.problems.len(), 2);
        assert!(scan.policy.is_some());
    }
}
