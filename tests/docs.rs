//! The documentation is tested like code: every link of the README and of `docs/*.md`
//! reaches a file (and a heading, where it names one), and every `vog` command they show
//! parses. A command in a shell block parses whole (values, required arguments, conflicts:
//! what `--help` promises); one quoted in a sentence names a command and flags that exist.
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The documents checked: the README and every Markdown file under `docs/`.
fn documents() -> Vec<PathBuf> {
    let mut docs = vec![root().join("README.md")];
    let mut more: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "md"))
        .collect();
    more.sort();
    docs.extend(more);
    docs
}

/// GitHub's anchor of a heading: lower case, punctuation but `-` and `_` dropped, spaces
/// to `-`.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_'))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// The anchors of a Markdown file's headings (outside code blocks).
fn anchors(text: &str) -> Vec<String> {
    let mut fenced = false;
    let mut out = Vec::new();
    for line in text.lines() {
        if line.starts_with("```") {
            fenced = !fenced;
        } else if !fenced && line.starts_with('#') {
            out.push(slug(line.trim_start_matches('#')));
        }
    }
    out
}

/// Every `[text](target)` outside code blocks and code spans, with its line number.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if fenced {
            continue;
        }
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join("``");
        let mut rest = prose.as_str();
        while let Some(i) = rest.find("](") {
            rest = &rest[i + 2..];
            let end = rest.find(')').unwrap_or(rest.len());
            out.push((n + 1, rest[..end].to_string()));
            rest = &rest[end..];
        }
    }
    out
}

#[test]
fn every_link_reaches_its_target() {
    let mut broken = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let dir = doc.parent().unwrap();
        for (line, target) in links(&text) {
            if target.starts_with("http://") || target.starts_with("https://") {
                continue;
            }
            let (file, anchor) = match target.split_once('#') {
                Some((f, a)) => (f, Some(a)),
                None => (target.as_str(), None),
            };
            let path = if file.is_empty() {
                doc.clone()
            } else {
                dir.join(file)
            };
            let at = format!("{}:{line}: '{target}'", doc.display());
            if !path.exists() {
                broken.push(format!("{at}: no file '{}'", path.display()));
                continue;
            }
            if let Some(a) = anchor {
                let heads = anchors(&std::fs::read_to_string(&path).unwrap());
                if !heads.iter().any(|h| h == a) {
                    broken.push(format!("{at}: no heading '#{a}'"));
                }
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// Shell words of one command, quotes removed; `None` past an unterminated quote.
fn words(command: &str) -> Option<Vec<String>> {
    let mut out = Vec::new();
    let mut word = String::new();
    let mut quote: Option<char> = None;
    let mut any = false;
    for c in command.chars() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), c) => word.push(c),
            (None, '\'' | '"') => {
                quote = Some(c);
                any = true;
            }
            (None, c) if c.is_whitespace() => {
                if any || !word.is_empty() {
                    out.push(std::mem::take(&mut word));
                }
                any = false;
            }
            (None, c) => word.push(c),
        }
    }
    if quote.is_some() {
        return None;
    }
    if any || !word.is_empty() {
        out.push(word);
    }
    Some(out)
}

/// The `vog` commands of one shell line: its comment dropped, cut at `;`, `|`, `&&` and
/// redirections, the pieces that start with `vog`.
fn shell_commands(line: &str) -> Vec<String> {
    let code = match line.find(" #") {
        Some(i) => &line[..i],
        None if line.trim_start().starts_with('#') => "",
        None => line,
    };
    code.split([';', '|'])
        .flat_map(|piece| piece.split("&&"))
        .map(|piece| piece.split('>').next().unwrap_or("").trim().to_string())
        .filter(|piece| piece.starts_with("vog "))
        .collect()
}

/// A usage synopsis (`vog score --run RUN [--split test|train|both]`) shows a command's
/// form, not a command to run.
fn is_synopsis(command: &str) -> bool {
    command.contains(" [") || command.contains(" (") || command.contains("...")
}

/// (document, line, command, whole): each command in a shell block (`whole`, its
/// continuation lines joined) and each code span in prose that starts with `vog `.
fn documented_commands() -> Vec<(PathBuf, usize, String, bool)> {
    let mut out = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(&doc).unwrap();
        let mut fence: Option<String> = None;
        let mut pending = String::new();
        for (n, line) in text.lines().enumerate() {
            if let Some(lang) = line.strip_prefix("```") {
                fence = match fence {
                    Some(_) => None,
                    None => Some(lang.trim().to_string()),
                };
                continue;
            }
            match fence.as_deref() {
                Some("sh") => {
                    pending.push_str(line.trim_end_matches('\\'));
                    if line.ends_with('\\') {
                        pending.push(' ');
                        continue;
                    }
                    let joined = std::mem::take(&mut pending);
                    for c in shell_commands(&joined) {
                        if !is_synopsis(&c) {
                            out.push((doc.clone(), n + 1, c, true));
                        }
                    }
                }
                Some(_) => {}
                None => {
                    for span in line.split('`').skip(1).step_by(2) {
                        if span.starts_with("vog ") && !is_synopsis(span) {
                            out.push((doc.clone(), n + 1, span.to_string(), false));
                        }
                    }
                }
            }
        }
    }
    out
}

#[test]
fn every_documented_command_parses() {
    let commands = documented_commands();
    assert!(
        commands.len() > 50,
        "found only {} commands",
        commands.len()
    );
    let mut bad = Vec::new();
    for (doc, line, command, whole) in &commands {
        let Some(args) = words(command) else {
            bad.push(format!(
                "{}:{line}: unbalanced quotes in '{command}'",
                doc.display()
            ));
            continue;
        };
        if let Err(e) = vog::cli::check_documented(&args, *whole) {
            bad.push(format!("{}:{line}: '{command}': {e}", doc.display()));
        }
    }
    assert!(
        bad.is_empty(),
        "{} of {}:\n{}",
        bad.len(),
        commands.len(),
        bad.join("\n")
    );
}

#[test]
fn reads_shell_lines_as_a_shell_would() {
    assert_eq!(
        shell_commands("vog rank s.csv --top 5 --format ids > out.csv  # then train"),
        vec!["vog rank s.csv --top 5 --format ids"]
    );
    assert_eq!(
        shell_commands("vog eval a.csv; vog rank a.csv && vog report --scores a.csv | tee x"),
        vec![
            "vog eval a.csv",
            "vog rank a.csv",
            "vog report --scores a.csv"
        ]
    );
    assert_eq!(
        words("vog train --config 'my run/c.toml' --out \"a b\"").unwrap(),
        vec!["vog", "train", "--config", "my run/c.toml", "--out", "a b"]
    );
    assert!(words("vog 'open").is_none());
    assert_eq!(
        slug("`vog crossval` (out-of-sample scores, confident learning)"),
        "vog-crossval-out-of-sample-scores-confident-learning"
    );
    assert_eq!(slug("1. Audit a dataset"), "1-audit-a-dataset");
}

#[test]
fn the_readme_opens_in_one_screen() {
    let text = std::fs::read_to_string(root().join("README.md")).unwrap();
    let lines = text.lines().count();
    assert!(
        lines < 250,
        "README.md has {lines} lines: the manual belongs in docs/guide.md"
    );
    assert!(Path::new(&root().join("docs/guide.md")).is_file());
}
