//! The crates' modules stand in floors: no module imports, directly or through others, a module
//! that imports it back, and the server does not stand on its client tools or command line. Read
//! from the sources (every `crate::`, `super::` and `self::` path outside comments), so a new
//! cycle fails here with the modules that form it.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// A crate's modules, each with the modules it names.
struct ModuleGraph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

impl ModuleGraph {
    /// The graph of the crate whose root (`lib.rs`) is in `root`.
    fn of(root: &Path) -> Self {
        let mut files = Vec::new();
        collect_rust_files(root, &mut files);
        let modules: BTreeMap<String, PathBuf> = files
            .into_iter()
            .map(|file| (module_of(root, &file), file))
            .collect();
        let known: BTreeSet<String> = modules.keys().cloned().collect();
        let edges = modules
            .iter()
            .map(|(module, file)| {
                let source = std::fs::read_to_string(file).expect("readable source");
                let used = paths_named(module, &source)
                    .into_iter()
                    .filter_map(|path| resolve(&path, &known))
                    .filter(|target| target != module)
                    .collect();
                (module.clone(), used)
            })
            .collect();
        Self { edges }
    }

    /// The cycles: sets of two or more modules that reach each other (Tarjan's algorithm).
    fn cycles(&self) -> Vec<Vec<String>> {
        let mut tarjan = Tarjan::default();
        for module in self.edges.keys() {
            if !tarjan.index.contains_key(module) {
                tarjan.visit(module, &self.edges);
            }
        }
        tarjan.components.retain(|component| component.len() > 1);
        tarjan.components
    }
}

#[derive(Default)]
struct Tarjan {
    next: usize,
    index: BTreeMap<String, usize>,
    low: BTreeMap<String, usize>,
    stack: Vec<String>,
    on_stack: BTreeSet<String>,
    components: Vec<Vec<String>>,
}

impl Tarjan {
    fn visit(&mut self, module: &str, edges: &BTreeMap<String, BTreeSet<String>>) {
        self.index.insert(module.to_owned(), self.next);
        self.low.insert(module.to_owned(), self.next);
        self.next += 1;
        self.stack.push(module.to_owned());
        self.on_stack.insert(module.to_owned());
        for target in edges.get(module).into_iter().flatten() {
            if !self.index.contains_key(target) {
                self.visit(target, edges);
                let low = self.low[module].min(self.low[target]);
                self.low.insert(module.to_owned(), low);
            } else if self.on_stack.contains(target) {
                let low = self.low[module].min(self.index[target]);
                self.low.insert(module.to_owned(), low);
            }
        }
        if self.low[module] == self.index[module] {
            let mut component = Vec::new();
            while let Some(member) = self.stack.pop() {
                self.on_stack.remove(&member);
                let done = member == module;
                component.push(member);
                if done {
                    break;
                }
            }
            component.sort();
            self.components.push(component);
        }
    }
}

fn collect_rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("readable source folder") {
        let path = entry.expect("folder entry").path();
        if path.is_dir() {
            collect_rust_files(&path, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") && !path.ends_with("src/main.rs")
        {
            // `main.rs` is the binary: a crate of its own.
            out.push(path);
        }
    }
}

/// `call/turns.rs` is `call::turns`; `call/mod.rs` is `call`; `lib.rs` is the crate root, ``.
fn module_of(root: &Path, file: &Path) -> String {
    let relative = file.strip_prefix(root).expect("below the root");
    let mut parts: Vec<String> = relative
        .with_extension("")
        .iter()
        .map(|part| part.to_string_lossy().into_owned())
        .collect();
    if matches!(
        parts.last().map(String::as_str),
        Some("mod" | "lib" | "main")
    ) {
        parts.pop();
    }
    parts.join("::")
}

/// Every module path named in `source` (the file of `module`), made absolute. An inline `mod
/// name {` (a file's tests) moves what `super::` means one level down for the rest of the file.
fn paths_named(module: &str, source: &str) -> Vec<Vec<String>> {
    let mut here: Vec<String> = split(module);
    let mut paths = Vec::new();
    for line in source.lines() {
        let code = line.trim_start();
        if code.starts_with("//") {
            continue;
        }
        if let Some(name) = inline_module(code) {
            here.push(name.to_owned());
            continue;
        }
        for path in paths_in(code) {
            if let Some(absolute) = absolute(&path, &here) {
                paths.push(absolute);
            }
        }
    }
    paths
}

fn split(module: &str) -> Vec<String> {
    module
        .split("::")
        .filter(|part| !part.is_empty())
        .map(str::to_owned)
        .collect()
}

/// `mod tests {` → `tests`.
fn inline_module(code: &str) -> Option<&str> {
    let rest = code.strip_prefix("pub ").unwrap_or(code);
    let name = rest.strip_prefix("mod ")?.strip_suffix('{')?.trim();
    name.chars()
        .all(|c| c.is_alphanumeric() || c == '_')
        .then_some(name)
}

/// The paths starting with `crate`, `super` or `self` in a line of code, expanding one level of
/// `{a::b, c}` groups.
fn paths_in(code: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let bytes = code.as_bytes();
    let mut start = 0;
    while start < code.len() {
        let rest = &code[start..];
        let found = ["crate::", "super::", "self::"]
            .iter()
            .filter_map(|head| rest.find(head).map(|at| (at, *head)))
            .min();
        let Some((at, _)) = found else {
            break;
        };
        let begin = start + at;
        let preceded =
            begin > 0 && (bytes[begin - 1].is_ascii_alphanumeric() || bytes[begin - 1] == b'_');
        let end = code[begin..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .map_or(code.len(), |offset| begin + offset);
        if !preceded {
            let prefix: Vec<String> = split(&code[begin..end]);
            if code[end..].starts_with('{') {
                let close = code[end..]
                    .find('}')
                    .map_or(code.len(), |offset| end + offset);
                for member in code[end + 1..close].split(',') {
                    let member = member.trim().split(" as ").next().unwrap_or("");
                    let mut path = prefix.clone();
                    path.extend(split(member));
                    paths.push(path);
                }
            } else {
                paths.push(prefix);
            }
        }
        start = end.max(begin + 1);
    }
    paths
}

/// `path` named in module `here`, from the crate root; `None` when it leaves the crate.
fn absolute(path: &[String], here: &[String]) -> Option<Vec<String>> {
    let (head, rest) = path.split_first()?;
    let mut base = match head.as_str() {
        "crate" => Vec::new(),
        "self" => here.to_vec(),
        "super" => {
            let mut base = here.to_vec();
            base.pop()?;
            base
        }
        _ => return None,
    };
    let mut rest = rest.iter().peekable();
    while rest.peek().is_some_and(|part| *part == "super") {
        base.pop()?;
        rest.next();
    }
    base.extend(rest.cloned());
    Some(base)
}

/// The longest prefix of `path` that is a module of the crate (a file of it).
fn resolve(path: &[String], known: &BTreeSet<String>) -> Option<String> {
    (0..=path.len())
        .rev()
        .map(|len| path[..len].join("::"))
        .find(|candidate| known.contains(candidate))
}

fn assert_in_floors(crate_root: &str) {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join(crate_root);
    let graph = ModuleGraph::of(&root);
    assert!(graph.edges.len() > 10, "read the modules of {crate_root}");
    let cycles = graph.cycles();
    assert!(
        cycles.is_empty(),
        "modules of {crate_root} that import each other: {cycles:#?}"
    );
}

#[test]
fn the_call_core_has_no_import_cycle() {
    assert_in_floors("actors/src");
}

#[test]
fn the_server_has_no_import_cycle() {
    assert_in_floors("src");
}

#[test]
fn the_server_does_not_depend_on_its_client_tools_or_command_line() {
    let graph = ModuleGraph::of(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    let above = |module: &str| ["client", "cli"].contains(&module.split("::").next().unwrap_or(""));
    let wrong: Vec<(&String, &String)> = graph
        .edges
        .iter()
        .filter(|(module, _)| !above(module) && !module.is_empty())
        .flat_map(|(module, uses)| {
            uses.iter()
                .filter(|used| above(used))
                .map(move |used| (module, used))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "server modules naming a client tool or the command line: {wrong:?}"
    );
}

#[test]
fn a_cycle_is_found() {
    let module = |name: &str, uses: &[&str]| {
        let uses = uses.iter().map(|u| (*u).to_owned()).collect();
        (name.to_owned(), uses)
    };
    let graph = ModuleGraph {
        edges: BTreeMap::from([
            module("call", &["media", "events"]),
            module("media", &["events", "call"]),
            module("events", &[]),
        ]),
    };
    assert_eq!(
        graph.cycles(),
        [vec!["call".to_owned(), "media".to_owned()]]
    );
}

#[test]
fn paths_are_read_from_uses_groups_and_code() {
    let source = "use super::agent::{AgentSide, Finished};\nuse crate::{events::EndCall, ids};\n// use crate::call;\nlet x = crate::runtime::metrics::CallMetrics::default();\nmod tests {\n    use super::*;\n    use super::super::barge_in::X;\n}\n";
    let named: Vec<String> = paths_named("call::conversation", source)
        .into_iter()
        .map(|path| path.join("::"))
        .collect();
    assert_eq!(
        named,
        [
            "call::agent::AgentSide",
            "call::agent::Finished",
            "events::EndCall",
            "ids",
            "runtime::metrics::CallMetrics::default",
            "call::conversation",
            "call::barge_in::X",
        ]
    );
}
