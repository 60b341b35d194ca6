//! The shape of `src/` as the README's layout describes it: every folder imports only the
//! layers below it, no two modules in one folder import each other (directly or round a
//! longer loop), and no file is longer than a reader can hold in mind.
//!
//! It reads the source as text: a `crate::` or `super::` path outside a comment is an
//! import of the module it names.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// The top-level modules, each with its layer: a module may import only modules of a lower
/// layer. Modules on one layer know nothing of each other.
const LAYERS: [(&str, u8); 13] = [
    ("cli", 10),
    ("server", 9),
    ("conn", 8),
    ("http", 7),
    ("session", 7),
    ("rooms", 6),
    ("wire", 6),
    ("limits", 5),
    ("observe", 4),
    ("config", 3),
    ("scenario", 3),
    ("error", 2),
    ("sync", 2),
];

/// The longest a file in `src/` may be.
const MAX_LINES: usize = 330;

/// Every `.rs` file under `src/` with its module path (`limits::budget::account`).
fn modules() -> Vec<(PathBuf, Vec<String>)> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = Vec::new();
    let mut folders = vec![root.clone()];
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("src/ is readable") {
            let path = entry.expect("a directory entry").path();
            if path.is_dir() {
                folders.push(path);
                continue;
            }
            if path.extension().is_none_or(|extension| extension != "rs") {
                continue;
            }
            let relative = path.strip_prefix(&root).expect("under src/");
            let mut segments: Vec<String> = relative
                .with_extension("")
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            if segments.last().is_some_and(|last| last == "mod") {
                segments.pop();
            }
            if segments == ["lib"] || segments == ["main"] {
                segments.clear();
            }
            found.push((path, segments));
        }
    }
    found.sort();
    found
}

/// The code of a line, without a `//` comment.
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(start) => &line[..start],
        None => line,
    }
}

/// Every path a line imports from, as segments from the crate root: `crate::a::b::{c, d}`
/// gives `a::b::c` and `a::b::d`; `super::x` is resolved against `module` (whose `super` is
/// the folder it is in, for a `mod.rs` the folder above).
fn imports(line: &str, module: &[String]) -> Vec<Vec<String>> {
    let mut found = Vec::new();
    for (prefix, base) in [
        ("crate::", Vec::new()),
        ("super::", module[..module.len().saturating_sub(1)].to_vec()),
    ] {
        let mut rest = line;
        while let Some(start) = rest.find(prefix) {
            let before = rest[..start].chars().last();
            rest = &rest[start + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                continue;
            }
            let mut path = base.clone();
            let mut tail = rest;
            loop {
                let end = tail
                    .find(|c: char| !(c.is_alphanumeric() || c == '_'))
                    .unwrap_or(tail.len());
                if end > 0 {
                    path.push(tail[..end].to_owned());
                }
                tail = &tail[end..];
                if let Some(next) = tail.strip_prefix("::") {
                    if let Some(group) = next.strip_prefix('{') {
                        let group = group.split('}').next().unwrap_or("");
                        for item in group.split(',') {
                            let name: String = item
                                .trim()
                                .chars()
                                .take_while(|c| c.is_alphanumeric() || *c == '_')
                                .collect();
                            let mut item_path = path.clone();
                            item_path.push(name);
                            found.push(item_path);
                        }
                        path.clear();
                        break;
                    }
                    tail = next;
                    continue;
                }
                break;
            }
            if !path.is_empty() {
                found.push(path);
            }
        }
    }
    found
}

/// The longest prefix of `path` that is a module of the crate.
fn resolve(path: &[String], known: &BTreeSet<Vec<String>>) -> Option<Vec<String>> {
    (1..=path.len())
        .rev()
        .map(|length| path[..length].to_vec())
        .find(|prefix| known.contains(prefix))
}

fn layer(top: &str) -> u8 {
    LAYERS
        .iter()
        .find(|(name, _)| *name == top)
        .map(|(_, layer)| *layer)
        .unwrap_or_else(|| panic!("src/{top} is not in this test's list of layers"))
}

/// Module → the modules it imports.
fn import_graph() -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
    let modules = modules();
    let known: BTreeSet<Vec<String>> = modules.iter().map(|(_, module)| module.clone()).collect();
    let mut graph = BTreeMap::new();
    for (path, module) in &modules {
        let text = std::fs::read_to_string(path).expect("a readable source file");
        let mut targets = BTreeSet::new();
        for line in text.lines() {
            for import in imports(code(line), module) {
                if let Some(target) = resolve(&import, &known)
                    && &target != module
                {
                    targets.insert(target);
                }
            }
        }
        graph.insert(module.clone(), targets);
    }
    graph
}

#[test]
fn every_module_imports_only_the_layers_below_its_own() {
    let mut wrong = Vec::new();
    for (module, targets) in import_graph() {
        let Some(top) = module.first() else { continue };
        for target in targets {
            let target_top = &target[0];
            if target_top != top && layer(target_top) >= layer(top) {
                wrong.push(format!(
                    "{} imports {}",
                    module.join("::"),
                    target.join("::")
                ));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports that point up or sideways:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn no_two_modules_in_a_folder_import_each_other() {
    // Within each folder, the graph of which child imports which sibling (a child's own
    // descendants count as the child; the folder's `mod.rs` is the parent, not a sibling).
    let graph = import_graph();
    let mut siblings: BTreeMap<Vec<String>, BTreeMap<String, BTreeSet<String>>> = BTreeMap::new();
    for (module, targets) in &graph {
        for depth in 0..module.len() {
            let folder = module[..depth].to_vec();
            let own = &module[depth];
            let edges = siblings
                .entry(folder.clone())
                .or_default()
                .entry(own.clone())
                .or_default();
            for target in targets {
                if target.len() > depth && target[..depth] == folder[..] && &target[depth] != own {
                    edges.insert(target[depth].clone());
                }
            }
        }
    }
    for (folder, edges) in siblings {
        let mut cycle = None;
        for start in edges.keys() {
            // Depth-first search for a way back to `start`.
            let mut stack = vec![(start.clone(), vec![start.clone()])];
            let mut seen = BTreeSet::new();
            while let Some((at, trail)) = stack.pop() {
                for next in edges.get(&at).into_iter().flatten() {
                    if next == start {
                        cycle = Some(trail.clone());
                    } else if seen.insert(next.clone()) {
                        let mut longer = trail.clone();
                        longer.push(next.clone());
                        stack.push((next.clone(), longer));
                    }
                }
            }
            if cycle.is_some() {
                break;
            }
        }
        assert!(
            cycle.is_none(),
            "an import cycle in src/{}: {:?}",
            folder.join("/"),
            cycle
        );
    }
}

#[test]
fn no_source_file_is_longer_than_a_reader_can_hold() {
    let long: Vec<String> = modules()
        .into_iter()
        .filter_map(|(path, _)| {
            let lines = std::fs::read_to_string(&path).ok()?.lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", path.display()))
        })
        .collect();
    assert!(long.is_empty(), "files over {MAX_LINES} lines: {long:?}");
}

#[test]
fn the_reader_finds_imports_of_every_form() {
    let module = vec!["rooms".to_owned(), "cluster".to_owned(), "read".to_owned()];
    let found = imports(
        "use crate::limits::budget::{Account, MemoryBudget}; use super::link::query;",
        &module,
    );
    assert!(found.contains(&vec![
        "limits".to_owned(),
        "budget".to_owned(),
        "Account".to_owned()
    ]));
    assert!(found.contains(&vec![
        "rooms".to_owned(),
        "cluster".to_owned(),
        "link".to_owned(),
        "query".to_owned()
    ]));
    assert!(imports("x.map(super_long::f)", &module).is_empty());
}
