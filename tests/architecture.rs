//! Arrows point one way: which of linehub's modules may use which.
//!
//! The domain (`sync`), the clock, the crash points, the liveness beats and the YAML reader know nothing of
//! linehub; the store knows only the domain (and beats for its threads); the config knows nothing of pipelines, which name its accounts; `settings`
//! joins the two; clients know the config and the store; the daemon wires everything. A
//! `use crate::…` that points up the table (the store reaching for a sender's type, config
//! reaching for pipelines) fails here, naming the file, so a cycle never creeps back in.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each top-level module of `src/` and the modules it may use.
const ALLOWED: &[(&str, &[&str])] = &[
    ("clock", &[]),
    ("crash", &[]),
    ("liveness", &[]),
    ("sync", &[]),
    ("yaml", &[]),
    ("qr", &[]),
    ("retry", &["clock"]),
    ("store", &["crash", "liveness", "sync"]),
    ("config", &["yaml"]),
    ("line", &["config", "sync"]),
    ("hubspot", &["clock", "config", "crash", "retry", "store", "sync"]),
    ("sends", &["clock", "config", "hubspot", "line", "retry", "store", "sync"]),
    ("apply", &["clock", "config", "line", "store", "sync"]),
    ("login", &["config", "line", "store", "sync"]),
    ("pipelines", &["clock", "config", "hubspot", "line", "login", "retry", "store", "sync", "yaml"]),
    ("settings", &["config", "pipelines"]),
    ("http", &["clock", "config", "hubspot", "line", "liveness", "login", "qr", "sends", "settings", "store"]),
    (
        "daemon",
        &[
            "apply",
            "clock",
            "config",
            "http",
            "hubspot",
            "line",
            "liveness",
            "pipelines",
            "retry",
            "sends",
            "settings",
            "store",
            "sync",
        ],
    ),
    ("demo", &["clock", "config", "daemon", "line", "settings", "sync"]),
];

/// The top-level modules named after `crate::` in `code` (comments skipped; groups such as
/// `crate::{a, b::{c, d}}` too).
fn uses(code: &str) -> BTreeSet<String> {
    let ident = |s: &str| -> String { s.trim().chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect() };
    let mut out = BTreeSet::new();
    for line in code.lines().map(str::trim).filter(|l| !l.starts_with("//")) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            let Some(group) = rest.strip_prefix('{') else {
                out.insert(ident(rest));
                continue;
            };
            // The items at the group's top level: split on commas outside nested braces.
            let (mut depth, mut start) = (0usize, 0usize);
            for (i, ch) in group.char_indices() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => {
                        out.insert(ident(&group[start..i]));
                        break;
                    }
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.insert(ident(&group[start..i]));
                        start = i + 1;
                    }
                    _ => {}
                }
            }
        }
    }
    out.retain(|m| !m.is_empty());
    out
}

fn walk(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            walk(&path, files);
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
}

#[test]
fn modules_use_only_the_modules_below_them() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    let mut files = Vec::new();
    walk(&src, &mut files);
    let mut problems = Vec::new();
    let mut seen = BTreeSet::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str().to_string_lossy().into_owned();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        seen.insert(module.clone());
        let Some(may) = allowed.get(module.as_str()) else {
            problems.push(format!("src/{}: module `{module}` is not in ALLOWED; place it in the table", rel.display()));
            continue;
        };
        for used in uses(&std::fs::read_to_string(&file).unwrap()) {
            if used != module && !may.contains(&used.as_str()) {
                problems.push(format!("src/{}: `{module}` uses `crate::{used}`, which it may not", rel.display()));
            }
        }
    }
    assert!(problems.is_empty(), "arrows must point one way:\n{}", problems.join("\n"));
    for (module, _) in ALLOWED {
        assert!(seen.contains(*module), "ALLOWED names `{module}`, which src/ no longer has");
    }
}

#[test]
fn the_table_itself_has_no_cycle() {
    let allowed: BTreeMap<&str, &[&str]> = ALLOWED.iter().copied().collect();
    // Listed bottom-up: a module may only use modules listed before it.
    let order: Vec<&str> = ALLOWED.iter().map(|(m, _)| *m).collect();
    for (i, module) in order.iter().enumerate() {
        for used in allowed[module] {
            let j = order.iter().position(|m| m == used).unwrap_or(usize::MAX);
            assert!(j < i, "`{module}` may use `{used}`, which is not below it");
        }
    }
}

#[test]
fn uses_reads_paths_and_groups_but_not_comments() {
    let code = "use crate::store::{Op, Store};\nuse crate::{clock, sync::{rules, link}, yaml};\n// crate::daemon\n\
                let x = crate::retry::backoff(1);";
    let found: Vec<String> = uses(code).into_iter().collect();
    assert_eq!(found, ["clock", "retry", "store", "sync", "yaml"]);
}
