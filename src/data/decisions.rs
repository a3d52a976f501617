//! A person's decisions about training examples, as `vog train --exclude` and `--relabel`
//! read them: ids to leave out (a CSV with an `id` column, or one id per line, as `vog rank
//! --format ids` writes) and new labels (a CSV `id,label`, the label a class name or
//! index). A run records both in `run.json` with the file's SHA-256 and its contents, so it
//! says exactly what it was trained on and `--resume` and scoring apply the same.
//!
//! A reviewer's decisions (`vog review`'s export, read by `vog train --decisions`) are a
//! CSV `id,action,label,scores_sha256`: `drop` leaves the example out, `relabel` trains it
//! with `label`, `keep` and `unsure` change nothing; `scores_sha256` names the scores file
//! reviewed, the same on every row.
use super::Split;
use crate::digest::{self, FileDigest};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// Example ids from a file: a CSV with an `id` column, or one id per line (blank lines and
/// `#` comments skipped); each at most once. `what` names the file in errors.
pub fn read_ids(path: &Path, what: &str) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} '{}'", path.display()))?;
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let ids: Vec<String> = match lines.first() {
        Some(header) if header.split(',').any(|c| c.trim() == "id") => column(path, "id")?,
        _ => lines.iter().map(|l| l.to_string()).collect(),
    };
    let mut seen = HashSet::new();
    if let Some(id) = ids.iter().find(|id| !seen.insert(id.as_str())) {
        bail!("'{}' lists '{id}' more than once", path.display());
    }
    Ok(ids)
}

/// Column `name` of the CSV at `path`, trimmed.
fn column(path: &Path, name: &str) -> Result<Vec<String>> {
    let mut r = csv::Reader::from_path(path)
        .with_context(|| format!("cannot read '{}'", path.display()))?;
    let col = r
        .headers()
        .with_context(|| format!("cannot read the header of '{}'", path.display()))?
        .iter()
        .position(|h| h.trim() == name)
        .with_context(|| format!("'{}' has no '{name}' column", path.display()))?;
    r.records()
        .map(|rec| Ok(rec?.get(col).unwrap_or("").trim().to_string()))
        .collect::<Result<_>>()
        .with_context(|| format!("malformed CSV '{}'", path.display()))
}

/// Training examples left out (`--exclude`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exclusions {
    /// The file the ids were read from, and its digest when read.
    pub file: PathBuf,
    pub digest: FileDigest,
    pub ids: Vec<String>,
}

/// Training examples trained with another label (`--relabel`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relabels {
    pub file: PathBuf,
    pub digest: FileDigest,
    /// (id, label as written: a class name or index).
    pub labels: Vec<(String, String)>,
}

/// A reviewer's decisions (`--decisions`): what the file said, counted; applied as the
/// [`Exclusions`] and [`Relabels`] it amounts to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Decisions {
    pub file: PathBuf,
    pub digest: FileDigest,
    /// The SHA-256 of the scores file reviewed, where the file records it.
    pub scores_sha256: Option<String>,
    pub keep: usize,
    pub drop: usize,
    pub relabel: usize,
    pub unsure: usize,
}

/// The actions a decisions file may hold.
const ACTIONS: [&str; 4] = ["keep", "drop", "relabel", "unsure"];

impl Decisions {
    /// Reads `path`, refusing on one line naming the row: a missing column, an empty or
    /// repeated id, an unknown action, a relabel without a label (or a label on another
    /// action), rows of two scores files.
    pub fn read(path: &Path) -> Result<(Decisions, Option<Exclusions>, Option<Relabels>)> {
        let rows = decision_rows(path)?;
        let digest = digest::of_file(path)?;
        let file = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
        let count = |a: &str| rows.iter().filter(|r| r.action == a).count();
        let record = Decisions {
            file: file.clone(),
            digest: digest.clone(),
            scores_sha256: rows.first().and_then(|r| r.sha.clone()),
            keep: count("keep"),
            drop: count("drop"),
            relabel: count("relabel"),
            unsure: count("unsure"),
        };
        let drop: Vec<String> = rows
            .iter()
            .filter(|r| r.action == "drop")
            .map(|r| r.id.clone())
            .collect();
        let relabel: Vec<(String, String)> = rows
            .iter()
            .filter(|r| r.action == "relabel")
            .map(|r| (r.id.clone(), r.label.clone()))
            .collect();
        let exclude = (!drop.is_empty()).then(|| Exclusions {
            file: file.clone(),
            digest: digest.clone(),
            ids: drop,
        });
        let relabel = (!relabel.is_empty()).then_some(Relabels {
            file,
            digest,
            labels: relabel,
        });
        Ok((record, exclude, relabel))
    }
}

/// One row of a decisions file.
struct DecisionRow {
    id: String,
    action: String,
    label: String,
    sha: Option<String>,
}

/// The rows of a decisions file, each checked (see [`Decisions::read`]).
fn decision_rows(path: &Path) -> Result<Vec<DecisionRow>> {
    let needs = || {
        format!(
            "--decisions '{}' needs the columns id,action,label",
            path.display()
        )
    };
    let ids = column(path, "id").with_context(needs)?;
    let actions = column(path, "action").with_context(needs)?;
    let labels = column(path, "label").with_context(needs)?;
    let sha = column(path, "scores_sha256").ok();
    let mut seen: HashMap<&str, usize> = HashMap::new();
    let mut rows = Vec::with_capacity(ids.len());
    for (i, (id, action)) in ids.iter().zip(&actions).enumerate() {
        let row = i + 2;
        let at = |what: String| anyhow::anyhow!("'{}' row {row}: {what}", path.display());
        if id.is_empty() {
            return Err(at("the id is empty".into()));
        }
        if let Some(first) = seen.insert(id.as_str(), row) {
            return Err(at(format!("'{id}' was decided already in row {first}")));
        }
        if !ACTIONS.contains(&action.as_str()) {
            return Err(at(format!(
                "unknown action '{action}' (keep, drop, relabel or unsure)"
            )));
        }
        match (action.as_str(), labels[i].is_empty()) {
            ("relabel", true) => return Err(at(format!("relabel of '{id}' without a label"))),
            ("relabel", false) | (_, true) => {}
            (_, false) => return Err(at(format!("a label on a '{action}' of '{id}'"))),
        }
        let sha = sha.as_ref().map(|s| (s[i].clone(), &s[0]));
        if let Some((mine, first)) = &sha {
            if mine != *first {
                return Err(at(format!(
                    "decided on another scores file (SHA-256 {mine}) than row 2 ({first}): export one review at a time"
                )));
            }
        }
        rows.push(DecisionRow {
            id: id.clone(),
            action: action.clone(),
            label: labels[i].clone(),
            sha: sha.map(|(mine, _)| mine),
        });
    }
    Ok(rows)
}

impl Exclusions {
    pub fn read(path: &Path) -> Result<Self> {
        Ok(Exclusions {
            file: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            digest: digest::of_file(path)?,
            ids: read_ids(path, "--exclude")?,
        })
    }

    /// The positions of `train` to keep; every id must be one of its examples.
    pub fn keep(&self, train: &Split, test: Option<&Split>) -> Result<Vec<usize>> {
        let index = positions(train);
        check_known(&self.ids, &index, test, &self.file, "left out")?;
        let out: HashSet<&str> = self.ids.iter().map(String::as_str).collect();
        let keep: Vec<usize> = (0..train.len())
            .filter(|&i| !out.contains(train.ids[i].as_str()))
            .collect();
        let left: HashSet<i64> = keep.iter().map(|&i| train.labels[i]).collect();
        if let Some(c) = train.labels.iter().find(|c| !left.contains(c)) {
            bail!(
                "'{}' leaves out every training example of class {c}: a classifier needs each \
                 class",
                self.file.display()
            );
        }
        Ok(keep)
    }
}

impl Relabels {
    pub fn read(path: &Path) -> Result<Self> {
        let ids = column(path, "id")?;
        let labels = column(path, "label").with_context(|| {
            format!("--relabel '{}' needs the columns id,label", path.display())
        })?;
        let mut seen = HashSet::new();
        for (row, (id, label)) in ids.iter().zip(&labels).enumerate() {
            if !seen.insert(id.as_str()) {
                bail!(
                    "'{}' row {}: '{id}' is relabelled twice",
                    path.display(),
                    row + 2
                );
            }
            if label.is_empty() {
                bail!(
                    "'{}' row {}: the label of '{id}' is empty",
                    path.display(),
                    row + 2
                );
            }
        }
        Ok(Relabels {
            file: std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf()),
            digest: digest::of_file(path)?,
            labels: ids.into_iter().zip(labels).collect(),
        })
    }

    /// Sets the label of each listed example of `train` in `labels` (the labels trained
    /// with, in `train`'s order); a label is a class name or index among `classes`.
    pub fn apply(
        &self,
        train: &Split,
        test: Option<&Split>,
        classes: &[String],
        labels: &mut [i64],
    ) -> Result<()> {
        let index = positions(train);
        let ids: Vec<String> = self.labels.iter().map(|(id, _)| id.clone()).collect();
        check_known(&ids, &index, test, &self.file, "relabelled")?;
        for (id, label) in &self.labels {
            labels[index[id.as_str()]] = class_index(label, classes).with_context(|| {
                format!(
                    "'{}'{}: the new label of '{id}'",
                    self.file.display(),
                    row_of(&self.file, id)
                )
            })?;
        }
        Ok(())
    }
}

fn positions(split: &Split) -> HashMap<&str, usize> {
    split
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect()
}

/// Refuses ids that are not training examples of the run, naming the first three.
fn check_known(
    ids: &[String],
    train: &HashMap<&str, usize>,
    test: Option<&Split>,
    file: &Path,
    verb: &str,
) -> Result<()> {
    let test: HashSet<&str> =
        test.map_or_else(HashSet::new, |t| t.ids.iter().map(String::as_str).collect());
    if let Some(id) = ids.iter().find(|id| test.contains(id.as_str())) {
        bail!(
            "'{}'{}: '{id}' is a test example: only training examples can be {verb}",
            file.display(),
            row_of(file, id)
        );
    }
    let unknown: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| !train.contains_key(id))
        .collect();
    if !unknown.is_empty() {
        let shown: Vec<String> = unknown.iter().take(3).map(|id| format!("'{id}'")).collect();
        bail!(
            "'{}'{} names {} id(s) that are not training examples of this run: {}{}",
            file.display(),
            row_of(file, unknown[0]),
            unknown.len(),
            shown.join(", "),
            if unknown.len() > 3 { ", ..." } else { "" }
        );
    }
    Ok(())
}

/// ` row N` (the file's line, the header being row 1 of a CSV) of the first line of `file`
/// whose first field is `id`, or nothing when it cannot tell.
fn row_of(file: &Path, id: &str) -> String {
    let Ok(text) = std::fs::read_to_string(file) else {
        return String::new();
    };
    text.lines()
        .position(|l| l.split(',').next().map(|f| f.trim().trim_matches('"')) == Some(id))
        .map_or(String::new(), |i| format!(" row {}", i + 1))
}

/// A label as a class name or index.
fn class_index(label: &str, classes: &[String]) -> Result<i64> {
    if let Some(i) = classes.iter().position(|c| c == label) {
        return Ok(i as i64);
    }
    match label.parse::<usize>() {
        Ok(i) if i < classes.len() => Ok(i as i64),
        _ => bail!(
            "'{label}' is neither a class name nor an index below {} (classes: {})",
            classes.len(),
            classes.join(", ")
        ),
    }
}
