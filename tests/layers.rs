//! The module layering of `src/lib.rs`, checked from the source: a module may use only
//! modules of lower layers (never its own layer's siblings, never a higher one), so the
//! code keeps the data's one-way flow. A new module must be given a layer here.
use std::collections::BTreeMap;
use std::path::Path;

/// Lowest first, as `src/lib.rs` lists them.
const LAYERS: &[&[&str]] = &[
    &[
        "atomic_file",
        "rng",
        "progress",
        "origin",
        "device",
        "digest",
        "precision",
        "export",
        "raster",
    ],
    &["epochs", "info"],
    &["data"],
    &["model", "optim"],
    &[
        "variance",
        "confident",
        "logistic",
        "neighbours",
        "scripted",
    ],
    &["config"],
    &["dynamics"],
    &["run_dir", "scores", "oof", "features"],
    &["grid"],
    &["train", "scoring", "eval", "rank", "merge"],
    &["prune"],
    &["report", "review", "verify"],
    &["bench", "crossval", "embed"],
    &["pipeline"],
    &["demo", "experiment"],
    &["cli"],
];

fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The top-level module a source file belongs to (`src/data/cifar.rs` -> `data`).
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

/// Every `crate::NAME` a file mentions, with its line number.
fn crate_paths(text: &str) -> Vec<(usize, String)> {
    let mut found = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let mut rest = line;
        while let Some(i) = rest.find("crate::") {
            rest = &rest[i + "crate::".len()..];
            // `crate::{a, b::c}` names several modules at once.
            let group = match rest.strip_prefix('{') {
                Some(g) => &g[..g.find('}').unwrap_or(g.len())],
                None => rest,
            };
            for item in group.split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                found.push((n + 1, name));
                if !rest.starts_with('{') {
                    break;
                }
            }
        }
    }
    found
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

#[test]
fn modules_use_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    let mut violations = Vec::new();
    for file in &files {
        let module = module_of(&src, file);
        if module == "lib" || module == "main" {
            continue;
        }
        let own = layer_of(&module)
            .unwrap_or_else(|| panic!("module '{module}' has no layer in tests/layers.rs"));
        let text = std::fs::read_to_string(file).unwrap();
        for (line, used) in crate_paths(&text) {
            if used == module {
                continue;
            }
            let layer = layer_of(&used)
                .unwrap_or_else(|| panic!("{}:{line}: unknown module '{used}'", file.display()));
            graph
                .entry(module.clone())
                .or_default()
                .insert(used.clone());
            if layer >= own {
                violations.push(format!(
                    "{}:{line}: '{module}' (layer {own}) uses '{used}' (layer {layer})",
                    file.display()
                ));
            }
        }
    }
    assert!(violations.is_empty(), "{}", violations.join("\n"));
    // The rules the layering exists for, stated once more in words.
    let uses = |a: &str, b: &str| graph.get(a).is_some_and(|s| s.contains(b));
    for m in graph.keys() {
        assert!(!uses(m, "cli"), "{m} uses cli");
    }
    for upper in ["train", "scoring", "eval", "rank", "report"] {
        assert!(!uses("data", upper), "data uses {upper}");
    }
    assert!(!uses("scoring", "train") && !uses("report", "rank"));
}

/// (path, text) of every source file outside `src/cli/` and `main.rs`.
fn library_sources() -> Vec<(std::path::PathBuf, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files
        .into_iter()
        .filter(|f| !["cli", "main"].contains(&module_of(&src, f).as_str()))
        .map(|f| {
            let text = std::fs::read_to_string(&f).unwrap();
            (f, text)
        })
        .collect()
}

#[test]
fn only_the_command_line_prints() {
    for (file, text) in library_sources() {
        for word in ["eprintln!", "println!", "eprint!", "indicatif"] {
            assert!(
                !text.contains(word),
                "{} uses {word}: report through crate::progress instead",
                file.display()
            );
        }
    }
}

/// clap stays in the command line: the library's types know nothing of argument parsing.
#[test]
fn only_the_command_line_uses_clap() {
    for (file, text) in library_sources() {
        assert!(
            !text.contains("clap::") && !text.contains("use clap"),
            "{} uses clap: parse arguments in src/cli/",
            file.display()
        );
    }
}

#[test]
fn finds_crate_paths() {
    let text = "use crate::data::Split;\nlet x = crate::atomic_file::write(crate::rng::stream());\nuse crate::{scoring, variance::Target};";
    let names: Vec<String> = crate_paths(text).into_iter().map(|(_, n)| n).collect();
    assert_eq!(
        names,
        vec!["data", "atomic_file", "rng", "scoring", "variance"]
    );
}

/// (name, first line, lines) of every `fn` in `text` whose body is a brace block: from the
/// line of `fn` to its closing brace, counted by braces outside strings, chars and comments.
fn functions(text: &str) -> Vec<(String, usize, usize)> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        let code = line.trim_start();
        let Some(at) = code.find("fn ") else {
            continue;
        };
        let head = &code[..at];
        let words_before_fn = head
            .split_whitespace()
            .all(|w| w.starts_with("pub") || ["const", "async", "unsafe"].contains(&w));
        if !words_before_fn || code.starts_with("//") {
            continue;
        }
        let name: String = code[at + 3..]
            .chars()
            .take_while(|c| c.is_alphanumeric() || *c == '_')
            .collect();
        let (mut depth, mut opened) = (0i32, false);
        for (j, l) in lines.iter().enumerate().skip(i) {
            let code = braces_of(l);
            if !opened && code.trim_end().ends_with(';') && !code.contains('{') {
                break;
            }
            for c in code.chars() {
                depth += match c {
                    '{' => 1,
                    '}' => -1,
                    _ => 0,
                };
                opened |= c == '{';
            }
            if opened && depth == 0 {
                out.push((name.clone(), i + 1, j - i + 1));
                break;
            }
        }
    }
    out
}

/// The braces of a line of Rust, those in strings, char literals and comments left out.
fn braces_of(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        match (in_str, c) {
            (true, '\\') => {
                chars.next();
            }
            (true, '"') | (false, '"') => in_str = !in_str,
            (false, '/') if chars.peek() == Some(&'/') => break,
            (false, '\'') => {
                // '{' or '\'' as a char literal; a lifetime has no closing quote nearby.
                let ahead: String = chars.clone().take(3).collect();
                if ahead.starts_with('\\') {
                    chars.nth(2);
                } else if ahead.chars().nth(1) == Some('\'') {
                    chars.nth(1);
                }
            }
            (false, '{' | '}') => out.push(c),
            _ => {}
        }
    }
    out
}

/// Rooms that fit: no source file over 700 lines, no function over 60 (tests included),
/// and every file says what it holds in a `//!` header.
#[test]
fn files_and_functions_stay_small() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut over = Vec::new();
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        let lines = text.lines().count();
        if lines > 700 {
            over.push(format!("{}: {lines} lines", file.display()));
        }
        if !file.ends_with("main.rs") && !text.starts_with("//!") {
            over.push(format!("{}: no //! header", file.display()));
        }
        for (name, at, len) in functions(&text) {
            if len > 60 {
                over.push(format!(
                    "{}:{at}: fn {name} has {len} lines",
                    file.display()
                ));
            }
        }
    }
    assert!(over.is_empty(), "{}", over.join("\n"));
}

#[test]
fn counts_function_lines() {
    let text = "pub(crate) fn a() {\n    let s = \"}\";\n    let c = '{';\n}\n\nfn b(x: &'a str) -> usize { x.len() } // }\nfn c();\n";
    assert_eq!(
        functions(text),
        vec![("a".to_string(), 1, 4), ("b".to_string(), 6, 1)]
    );
}
