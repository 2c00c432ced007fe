//! The shape of the source tree (issue 11): data flows one way, so no file imports one that
//! imports it back; no file grows past the size a reader can hold.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file under src/ except the binary, keyed by its module path (`gpu::plan::split`).
fn modules() -> BTreeMap<Vec<String>, PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for entry in std::fs::read_dir(dir).expect("src/ is readable") {
            let path = entry.expect("readable entry").path();
            if path.is_dir() {
                walk(&path, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                out.push(path);
            }
        }
    }
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    walk(&src, &mut files);
    files
        .into_iter()
        .filter(|p| !p.starts_with(src.join("bin")))
        .map(|p| {
            let rel = p.strip_prefix(&src).expect("under src").with_extension("");
            let mut module: Vec<String> = rel
                .components()
                .map(|c| c.as_os_str().to_string_lossy().into_owned())
                .collect();
            if module.last().is_some_and(|m| m == "mod" || m == "lib") {
                module.pop();
            }
            (module, p)
        })
        .collect()
}

/// The code of a file without its comments (doc links are not imports) and without its unit
/// tests (a `mod tests` at the end, whose `super` is the file itself).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("readable source");
    let text = text.split("#[cfg(test)]").next().unwrap_or("");
    text.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules `module` names through `crate::` or `super::` paths, `use` groups included.
fn imports(
    module: &[String],
    code: &str,
    files: &BTreeMap<Vec<String>, PathBuf>,
) -> BTreeSet<Vec<String>> {
    let mut found = BTreeSet::new();
    let word = |c: char| c.is_alphanumeric() || c == '_';
    // A folder's mod.rs (or lib.rs) names its children by relative paths in its `use` lines.
    let folder = files
        .get(module)
        .is_some_and(|p| p.ends_with("mod.rs") || p.ends_with("lib.rs"));
    for line in code.lines().filter(|_| folder) {
        let line = line.trim_start();
        let Some(path) = line
            .strip_prefix("pub use ")
            .or_else(|| line.strip_prefix("use "))
        else {
            continue;
        };
        let mut child = module.to_vec();
        child.push(path.chars().take_while(|&c| word(c)).collect());
        if files.contains_key(&child) {
            found.insert(child);
        }
    }
    for (start, _) in code
        .match_indices("crate::")
        .chain(code.match_indices("super::"))
    {
        if code[..start].chars().next_back().is_some_and(word) {
            continue;
        }
        let rest = &code[start..];
        let head_len = rest.find("::").expect("matched");
        // `super` of `gpu/forward.rs` and of `gpu/plan/mod.rs` alike is the folder above.
        let mut base: Vec<String> = if rest.starts_with("super") {
            module[..module.len().saturating_sub(1)].to_vec()
        } else {
            Vec::new()
        };
        let mut path = &rest[head_len + 2..];
        while let Some(len) = path.find(|c: char| !word(c)).filter(|&l| l > 0) {
            base.push(path[..len].to_string());
            if !path[len..].starts_with("::") {
                break;
            }
            path = &path[len + 2..];
        }
        // A group `{a, b::c}` names each of its items.
        let mut targets = vec![base.clone()];
        if let Some(group) = path.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            for item in group.split(',') {
                let item = item.trim().split(" as ").next().unwrap_or("").trim();
                if !item.is_empty() && item != "self" {
                    let mut t = base.clone();
                    t.extend(item.split("::").map(str::to_string));
                    targets.push(t);
                }
            }
        }
        for t in targets {
            // The longest prefix that is a file of its own.
            if let Some(n) = (0..=t.len()).rev().find(|&n| files.contains_key(&t[..n])) {
                if t[..n] != *module {
                    found.insert(t[..n].to_vec());
                }
            }
        }
    }
    found
}

#[test]
fn no_source_file_imports_one_that_imports_it_back() {
    let files = modules();
    let edges: BTreeMap<_, _> = files
        .iter()
        .map(|(m, p)| (m.clone(), imports(m, &code(p), &files)))
        .collect();
    // A file is in a circle when it reaches itself.
    let mut circles = Vec::new();
    for start in edges.keys() {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<_> = edges[start].iter().cloned().collect();
        while let Some(m) = stack.pop() {
            if m == *start {
                circles.push(files[start].display().to_string());
                break;
            }
            if seen.insert(m.clone()) {
                stack.extend(edges[&m].iter().cloned());
            }
        }
    }
    assert!(circles.is_empty(), "files in import circles: {circles:?}");
}

#[test]
fn no_source_file_is_longer_than_its_budget() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let budget = |path: &Path| {
        if path.ends_with("bin/wgconv.rs") {
            500
        } else if path.ends_with("gpu/engine.rs") {
            600
        } else {
            700
        }
    };
    let mut paths: Vec<PathBuf> = modules().into_values().collect();
    paths.push(src.join("bin/wgconv.rs"));
    let long: Vec<String> = paths
        .iter()
        .filter_map(|p| {
            let lines = std::fs::read_to_string(p)
                .expect("readable")
                .lines()
                .count();
            (lines > budget(p))
                .then(|| format!("{} has {lines} lines (budget {})", p.display(), budget(p)))
        })
        .collect();
    assert!(long.is_empty(), "{long:#?}");
}
