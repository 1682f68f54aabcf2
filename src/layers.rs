//! The module graph points one way (docs/architecture.md, "Layers"): the command line
//! on top, the subsystems beside each other, the shared core below. This test reads
//! every `crate::` path in `src/` (comments aside) and fails on an arrow that points
//! up or sideways, and on a cycle in the shared core.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top: it picks a subsystem and may import anything.
const TOP: &[&str] = &["cli", "main"];
/// The subsystems: each may import the shared core and itself, never another.
const SUBSYSTEMS: &[&str] = &[
    "operator",
    "sfu",
    "gateway",
    "standalone",
    "prune_job",
    "loadtest",
    "turn",
    "plugin",
];
/// The one sideways arrow: standalone mode *is* the gateway's front end with rooms in
/// the same process, so it uses the gateway's public face (items at `crate::gateway`'s
/// root), never a module inside it.
const FACADES: &[(&str, &str)] = &[("standalone", "gateway")];

fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file belongs to: `src/x.rs` and `src/x/**` are `x`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_owned()
}

/// Every `crate::a::b` in the code of `text` (not in comments), as (a, b).
fn crate_paths(text: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for line in text.lines() {
        let code = line.split("//").next().unwrap_or_default();
        let mut rest = code;
        while let Some(i) = rest.find("crate::") {
            let after = &rest[i + "crate::".len()..];
            let ident = |s: &str| -> String {
                s.chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect()
            };
            let first = ident(after);
            let second = after
                .strip_prefix(first.as_str())
                .and_then(|s| s.strip_prefix("::"))
                .map(ident)
                .unwrap_or_default();
            // `use crate::x::{a, b}`: the braces' items are x's own.
            out.push((first, second));
            rest = after;
        }
    }
    out
}

/// The `pub mod` names declared in a module's root file.
fn submodules(src: &Path, module: &str) -> BTreeSet<String> {
    let root = src.join(module).join("mod.rs");
    let text = std::fs::read_to_string(root).unwrap_or_default();
    text.lines()
        .filter_map(|l| l.trim().strip_prefix("pub mod "))
        .map(|l| l.trim_end_matches(';').to_owned())
        .collect()
}

#[test]
fn imports_point_down_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut all = Vec::new();
    files(&src, &mut all);
    let mut wrong = Vec::new();
    let mut shared_edges: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &all {
        let from = module_of(&src, file);
        if from == "layers" {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        for (to, inner) in crate_paths(&text) {
            if to == from || TOP.contains(&from.as_str()) {
                continue;
            }
            let rel = file.strip_prefix(&src).unwrap().display().to_string();
            if TOP.contains(&to.as_str()) {
                wrong.push(format!(
                    "{rel}: {from} imports the command line (crate::{to})"
                ));
            } else if SUBSYSTEMS.contains(&to.as_str()) {
                let facade = FACADES.contains(&(from.as_str(), to.as_str()));
                if !facade {
                    let what = if SUBSYSTEMS.contains(&from.as_str()) {
                        "another subsystem"
                    } else {
                        "a subsystem from the shared core"
                    };
                    wrong.push(format!("{rel}: {from} imports {what} (crate::{to})"));
                } else if submodules(&src, &to).contains(&inner) {
                    wrong.push(format!(
                        "{rel}: {from} reaches inside {to} (crate::{to}::{inner}); use what {to} exports at its root"
                    ));
                }
            } else if !SUBSYSTEMS.contains(&from.as_str()) {
                shared_edges.entry(from.clone()).or_default().insert(to);
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layers:\n{}",
        wrong.join("\n")
    );

    // The shared core has layers of its own; a cycle would mean it has none.
    fn visit(
        node: &str,
        edges: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = path.iter().position(|p| p == node) {
            let mut cycle = path[i..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(c) = visit(next, edges, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    for node in shared_edges.keys() {
        if let Some(cycle) = visit(node, &shared_edges, &mut Vec::new(), &mut done) {
            panic!("a cycle in the shared core: {}", cycle.join(" -> "));
        }
    }
}

#[test]
fn the_checker_sees_what_it_must() {
    assert_eq!(
        crate_paths("use crate::gateway::server::Gateway; // crate::sfu::x\n/// crate::operator"),
        vec![("gateway".to_owned(), "server".to_owned())]
    );
    assert_eq!(
        crate_paths("let x = crate::rooms::session::session(s, r);"),
        vec![("rooms".to_owned(), "session".to_owned())]
    );
    assert!(
        submodules(
            &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
            "gateway"
        )
        .contains("server")
    );
}
