//! The top-level modules of src/ import each other in one direction only (docs/architecture.md,
//! "Layers"): a `crate::X` path in module A is an edge A → X, and no chain of edges may lead back.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

fn edges() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut stack = vec![src.clone()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
                continue;
            }
            if path.extension().and_then(|e| e.to_str()) != Some("rs") {
                continue;
            }
            let rel = path.strip_prefix(&src).unwrap();
            let first = rel
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy();
            let module = first.trim_end_matches(".rs").to_string();
            let text = std::fs::read_to_string(&path).unwrap();
            let out = graph.entry(module.clone()).or_default();
            for (i, _) in text.match_indices("crate::") {
                let name: String = text[i + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                // `host_fn` is the registration macro (exported at the crate root), not a module.
                if !name.is_empty() && name != module && name != "host_fn" {
                    out.insert(name);
                }
            }
        }
    }
    graph
}

/// Modules that can reach themselves again through the graph.
fn in_cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<(String, Vec<String>)> {
    let mut found = Vec::new();
    for start in graph.keys() {
        // Depth-first search for a path start → ... → start, keeping the path for the message.
        let mut stack = vec![(start.clone(), vec![start.clone()])];
        let mut seen = BTreeSet::new();
        while let Some((node, path)) = stack.pop() {
            for next in graph.get(&node).into_iter().flatten() {
                if next == start {
                    found.push((start.clone(), path.clone()));
                    break;
                }
                if seen.insert(next.clone()) {
                    let mut p = path.clone();
                    p.push(next.clone());
                    stack.push((next.clone(), p));
                }
            }
        }
    }
    found
}

#[test]
fn top_level_modules_have_no_import_cycle() {
    let graph = edges();
    assert!(graph.len() > 10, "read too few modules: {graph:?}");
    assert!(graph["commands"].contains("engine"), "{graph:?}");
    let cycles = in_cycles(&graph);
    let shown: Vec<String> = cycles
        .iter()
        .map(|(m, path)| format!("{} → {m}", path.join(" → ")))
        .collect();
    assert!(cycles.is_empty(), "import cycles:\n{}", shown.join("\n"));
}

#[test]
fn the_cycle_finder_finds_a_cycle() {
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    g.entry("a".into()).or_default().insert("b".into());
    g.entry("b".into()).or_default().insert("c".into());
    g.entry("c".into()).or_default().insert("a".into());
    g.entry("d".into()).or_default().insert("a".into());
    let found: Vec<String> = in_cycles(&g).into_iter().map(|(m, _)| m).collect();
    assert_eq!(found, ["a", "b", "c"]);
}
