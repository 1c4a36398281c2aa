//! The daemon's module graph (issue #15): which top-level modules of `src/` refer to which
//! (`crate::x` anywhere in a module's files), and the cycles in it.
//!
//! The graph has no cycle: a module refers only to modules below it (docs/architecture.md §2),
//! and the lowest layers — the records in `model`, `config`, `metrics` and the leaf helpers —
//! refer to nothing above them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The lowest modules and all they may refer to.
const LOWEST: &[(&str, &[&str])] = &[
    ("destination", &[]),
    ("permissions", &[]),
    ("scope", &[]),
    ("secrets", &[]),
    // `SettingsError` names the destination policy's refusal; notifiers print their secrets
    // masked.
    ("model", &["destination", "secrets"]),
    ("metrics", &["model"]),
    (
        "config",
        &["model", "destination", "permissions", "scope", "secrets"],
    ),
];

/// The first path segment of each `crate::…` reference in `text`, including each item of a
/// `crate::{a, b::c}` group.
fn crate_references(text: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // Top-level items of the group: split on commas outside nested braces.
            let mut depth = 0;
            let mut item_start = 0;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        found.insert(ident(group[item_start..i].trim_start()));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        found.insert(ident(group[item_start..i].trim_start()));
                        item_start = i + 1;
                    }
                    _ => {}
                }
            }
        } else {
            found.insert(ident(rest));
        }
    }
    found.retain(|m| !m.is_empty() && m.chars().next().is_some_and(|c| c.is_ascii_lowercase()));
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Top-level module → the top-level modules it refers to.
fn module_graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(src).unwrap();
        let first = relative.components().next().unwrap();
        let module = first
            .as_os_str()
            .to_str()
            .unwrap()
            .trim_end_matches(".rs")
            .to_owned();
        if module == "main" || module == "lib" {
            continue; // the crate roots wire modules together; they are not a layer
        }
        let text = std::fs::read_to_string(&file).unwrap();
        let refs = graph.entry(module.clone()).or_default();
        refs.extend(crate_references(&text).into_iter().filter(|m| *m != module));
    }
    graph
}

/// Strongly connected components with more than one module (Tarjan's algorithm).
fn cycles(graph: &BTreeMap<String, BTreeSet<String>>) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        graph: &'a BTreeMap<String, BTreeSet<String>>,
        next: usize,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a str) {
        s.index.insert(v, s.next);
        s.low.insert(v, s.next);
        s.next += 1;
        s.stack.push(v);
        for w in s.graph.get(v).into_iter().flatten() {
            let w = w.as_str();
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.stack.contains(&w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = BTreeSet::new();
            while let Some(w) = s.stack.pop() {
                component.insert(w.to_owned());
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                s.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        next: 0,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !state.index.contains_key(v.as_str()) {
            visit(&mut state, v);
        }
    }
    state.found
}

fn src_graph() -> BTreeMap<String, BTreeSet<String>> {
    module_graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"))
}

#[test]
fn modules_form_no_cycle() {
    let graph = src_graph();
    if let Some(component) = cycles(&graph).first() {
        let edges: Vec<String> = component
            .iter()
            .flat_map(|from| {
                graph[from]
                    .intersection(component)
                    .map(move |to| format!("{from} -> {to}"))
            })
            .collect();
        panic!(
            "modules {component:?} refer to each other ({}): move what the lower one needs \
             below it (docs/architecture.md §2)",
            edges.join(", ")
        );
    }
}

#[test]
fn the_lowest_layers_refer_to_nothing_above_them() {
    let graph = src_graph();
    for (module, allowed) in LOWEST {
        let refs = graph
            .get(*module)
            .unwrap_or_else(|| panic!("no module `{module}` in src"));
        let above: Vec<&String> = refs
            .iter()
            .filter(|m| !allowed.contains(&m.as_str()))
            .collect();
        assert!(
            above.is_empty(),
            "`{module}` refers to {above:?}; it may only refer to {allowed:?}"
        );
    }
}

#[test]
fn the_reference_reader_and_the_cycle_finder_see_what_is_there() {
    let refs = crate_references(
        "use crate::model::Id;\nuse crate::{store::{self, Store}, index, config::X};\n\
         let x = crate::otel::span(); // pub(crate) fn f() {}",
    );
    let expected: BTreeSet<String> = ["model", "store", "index", "config", "otel"]
        .into_iter()
        .map(String::from)
        .collect();
    assert_eq!(refs, expected);
    let graph: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a", "d"]),
        ("d", vec![]),
        ("e", vec!["d"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.into_iter().map(String::from).collect()))
    .collect();
    let found = cycles(&graph);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0],
        ["a", "b", "c"].into_iter().map(String::from).collect()
    );
}
