//! A person's decisions about training examples, as `vog train --exclude` and `--relabel`
//! read them: ids to leave out (a table with an `id` column, or one id per line, as `vog
//! rank --format ids` writes) and new labels (a table `id,label`, the label naming a class
//! as [`super::classes`] says). A run records both in `run.json` with the file's SHA-256
//! and its contents, so it says exactly what it was trained on and `--resume` and scoring
//! apply the same. Every file is read by the one rule of [`super::table`].
//!
//! A reviewer's decisions (`vog review`'s export, read by `vog train --decisions`) are a
//! table `id,action,label,scores_sha256`: `drop` leaves the example out, `relabel` trains
//! it with `label`, `keep` and `unsure` change nothing; `scores_sha256` names the scores
//! file reviewed, the same on every row.
//!
//! One rule for all three: a file that selects nothing (empty, a header alone, comments
//! only), or that would train the run unchanged, is refused naming the file; so is one
//! that leaves a class without training examples, whether by leaving them out or by
//! relabelling them all.
//!
//! The files a derived run trains with (`vog train --from`, `vog crossval`, `vog prune`)
//! are written by vog into the run as `exclude.csv` and `relabel.csv` with the writers
//! here and recorded by their names relative to the run, so a moved run still matches.
use super::table::{self, Headed, Row};
use super::Split;
use crate::digest::{self, FileDigest};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

/// The name of the leave-out file vog writes into a derived run.
pub const EXCLUDE_FILE: &str = "exclude.csv";
/// The name of the relabel file vog writes into a derived run.
pub const RELABEL_FILE: &str = "relabel.csv";

/// Training examples left out (`--exclude`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Exclusions {
    /// The file the ids were read from (absolute), or the name of the file vog wrote into
    /// the run (relative to the run); its digest when read.
    pub file: PathBuf,
    pub digest: FileDigest,
    pub ids: Vec<String>,
    /// The line of each id in the file, for errors (not recorded).
    #[serde(skip)]
    lines: Vec<usize>,
}

/// Training examples trained with another label (`--relabel`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Relabels {
    pub file: PathBuf,
    pub digest: FileDigest,
    /// (id, label as written: a class token, see [`super::classes`]).
    pub labels: Vec<(String, String)>,
    #[serde(skip)]
    lines: Vec<usize>,
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

/// `path` made absolute (as it is recorded), or as given where that fails.
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

fn read_bytes(path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("cannot read {what} '{}'", path.display()))
}

impl Exclusions {
    /// Reads `--exclude` `path`; a file that lists no id is refused.
    pub fn read(path: &Path) -> Result<Self> {
        Self::from_bytes(absolute(path), &read_bytes(path, "--exclude")?, "--exclude")
    }

    /// The ids of a file `file` that holds `bytes`; `what` names it in errors.
    fn from_bytes(file: PathBuf, bytes: &[u8], what: &str) -> Result<Self> {
        let rows = table::parse_rows(bytes).with_context(|| at_file(what, &file))?;
        let ids = table::ids_of(rows).with_context(|| at_file(what, &file))?;
        if ids.is_empty() {
            bail!(
                "{} lists no ids (empty, a header alone or comments only): leaving nothing out \
                 would train on every example",
                at_file(what, &file)
            );
        }
        let (lines, ids) = ids.into_iter().unzip();
        Ok(Exclusions {
            file,
            digest: digest::of_bytes(bytes),
            ids,
            lines,
        })
    }

    /// The exclusions vog writes into a derived run as [`EXCLUDE_FILE`], or `None` for
    /// no id; [`Exclusions::csv`] gives the file's bytes.
    pub fn derived(ids: Vec<String>) -> Result<Option<Self>> {
        if ids.is_empty() {
            return Ok(None);
        }
        let bytes = ids_csv(&ids)?;
        Self::from_bytes(EXCLUDE_FILE.into(), &bytes, "the derived run's").map(Some)
    }

    /// The file as vog writes it: an `id` column, quoted where an id needs it.
    pub fn csv(&self) -> Result<Vec<u8>> {
        ids_csv(&self.ids)
    }

    /// The positions of `train` to keep; every id must be one of its examples.
    pub fn keep(&self, train: &Split, test: Option<&Split>) -> Result<Vec<usize>> {
        let index = positions(train);
        check_known(&self.ids, &self.lines, &index, test, &self.file, "left out")?;
        let out: HashSet<&str> = self.ids.iter().map(String::as_str).collect();
        Ok((0..train.len())
            .filter(|&i| !out.contains(train.ids[i].as_str()))
            .collect())
    }
}

/// A one-column CSV of `ids` under an `id` header.
fn ids_csv(ids: &[String]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["id"])?;
    for id in ids {
        w.write_record([id])?;
    }
    Ok(w.into_inner()?)
}

fn at_file(what: &str, file: &Path) -> String {
    format!("{what} '{}'", file.display())
}

impl Relabels {
    /// Reads `--relabel` `path` (`id,label`); a file that relabels nothing is refused.
    pub fn read(path: &Path) -> Result<Self> {
        Self::from_bytes(absolute(path), &read_bytes(path, "--relabel")?, "--relabel")
    }

    fn from_bytes(file: PathBuf, bytes: &[u8], what: &str) -> Result<Self> {
        let name = || at_file(what, &file);
        let rows = table::parse_rows(bytes).with_context(name)?;
        let t = Headed::checked(rows).with_context(name)?;
        let (Some(id), Some(label)) = (
            t.as_ref().and_then(|t| t.position("id")),
            t.as_ref().and_then(|t| t.position("label")),
        ) else {
            bail!("{} needs the columns id,label", name());
        };
        let t = t.expect("a header was found");
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for r in &t.rows {
            let (i, l) = (Headed::get(r, id), Headed::get(r, label));
            let line = |what: String| anyhow::anyhow!("{} line {}: {what}", name(), r.line);
            if i.is_empty() {
                return Err(line("the id is empty".into()));
            }
            if let Some(first) = seen.insert(i, r.line) {
                return Err(line(format!("'{i}' is relabelled already on line {first}")));
            }
            if l.is_empty() {
                return Err(line(format!("the label of '{i}' is empty")));
            }
        }
        if t.rows.is_empty() {
            bail!(
                "{} relabels nothing (a header alone or comments only)",
                name()
            );
        }
        let field = |r: &Row, c: usize| Headed::get(r, c).to_string();
        Ok(Relabels {
            file,
            digest: digest::of_bytes(bytes),
            labels: t
                .rows
                .iter()
                .map(|r| (field(r, id), field(r, label)))
                .collect(),
            lines: t.rows.iter().map(|r| r.line).collect(),
        })
    }

    /// The relabels vog writes into a derived run as [`RELABEL_FILE`]: each (id, class
    /// index) as a token that reads back as that class; `None` for none.
    pub fn derived(labels: &[(String, usize)], classes: &[String]) -> Result<Option<Self>> {
        if labels.is_empty() {
            return Ok(None);
        }
        let named: Vec<(String, String)> = labels
            .iter()
            .map(|(id, c)| (id.clone(), super::classes::token(*c, classes)))
            .collect();
        let bytes = relabel_csv(&named)?;
        Self::from_bytes(RELABEL_FILE.into(), &bytes, "the derived run's").map(Some)
    }

    /// The file as vog writes it: `id,label`, quoted where a field needs it.
    pub fn csv(&self) -> Result<Vec<u8>> {
        relabel_csv(&self.labels)
    }

    /// Sets the label of each listed example of `train` in `labels` (the labels trained
    /// with, in `train`'s order), each label a class token among `classes`; returns how
    /// many labels changed.
    pub fn apply(
        &self,
        train: &Split,
        test: Option<&Split>,
        classes: &[String],
        labels: &mut [i64],
    ) -> Result<usize> {
        let index = positions(train);
        let ids: Vec<String> = self.labels.iter().map(|(id, _)| id.clone()).collect();
        check_known(&ids, &self.lines, &index, test, &self.file, "relabelled")?;
        let mut changed = 0;
        for (n, (id, label)) in self.labels.iter().enumerate() {
            let to = super::classes::resolve(label, classes).with_context(|| {
                format!(
                    "'{}'{}: the new label of '{id}'",
                    self.file.display(),
                    line_of(&self.lines, n)
                )
            })? as i64;
            let at = index[id.as_str()];
            changed += usize::from(labels[at] != to);
            labels[at] = to;
        }
        Ok(changed)
    }
}

fn relabel_csv(labels: &[(String, String)]) -> Result<Vec<u8>> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["id", "label"])?;
    for (id, label) in labels {
        w.write_record([id, label])?;
    }
    Ok(w.into_inner()?)
}

/// Refuses a person's edits that would train the run unchanged: a `--relabel` file none
/// of whose labels differ from those trained with (`changed` of them do), or decisions
/// that drop nothing and change no label.
pub fn refuse_unchanged(
    relabel: &Relabels,
    decisions: Option<&Decisions>,
    changed: usize,
    dropped: usize,
) -> Result<()> {
    match decisions {
        _ if changed > 0 => Ok(()),
        Some(d) if dropped == 0 => bail!(
            "'{}' changes nothing: it drops no example and each of its {} relabel(s) gives the \
             label the example already trains with, so training would repeat the run",
            d.file.display(),
            relabel.labels.len()
        ),
        Some(_) => Ok(()),
        None => bail!(
            "'{}' changes no label: each of its {} example(s) already trains with the label it \
             gives, so training would repeat the run",
            relabel.file.display(),
            relabel.labels.len()
        ),
    }
}

/// Refuses training labels `after` that leave a class of `before` (the labels of the
/// training split before the person's edits) without examples; `cause` names what did.
pub fn check_every_class(
    before: &[i64],
    after: &[i64],
    classes: &[String],
    cause: impl FnOnce() -> String,
) -> Result<()> {
    let left: HashSet<i64> = after.iter().copied().collect();
    if let Some(c) = before.iter().find(|c| !left.contains(c)) {
        let name = classes.get(*c as usize).map_or(c.to_string(), Clone::clone);
        bail!(
            "{} leaves class '{name}' without training examples: a classifier needs each class",
            cause()
        );
    }
    Ok(())
}

impl Decisions {
    /// Reads `path`, refusing on one line naming the row: a missing column, an empty or
    /// repeated id, an unknown action, a relabel without a label (or a label on another
    /// action), rows of two scores files, and a file that drops and relabels nothing.
    pub fn read(path: &Path) -> Result<(Decisions, Option<Exclusions>, Option<Relabels>)> {
        let bytes = read_bytes(path, "--decisions")?;
        let file = absolute(path);
        let rows = decision_rows(&bytes, &file)?;
        let digest = digest::of_bytes(&bytes);
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
        if record.drop + record.relabel == 0 {
            bail!(
                "--decisions '{}' drops and relabels nothing ({} keep, {} unsure): training \
                 with it would repeat the run",
                path.display(),
                record.keep,
                record.unsure
            );
        }
        let pick = |a: &'static str| rows.iter().filter(move |r| r.action == a);
        let exclude = (record.drop > 0).then(|| Exclusions {
            file: file.clone(),
            digest: digest.clone(),
            ids: pick("drop").map(|r| r.id.clone()).collect(),
            lines: pick("drop").map(|r| r.line).collect(),
        });
        let relabel = (record.relabel > 0).then(|| Relabels {
            file,
            digest,
            labels: pick("relabel")
                .map(|r| (r.id.clone(), r.label.clone()))
                .collect(),
            lines: pick("relabel").map(|r| r.line).collect(),
        });
        Ok((record, exclude, relabel))
    }
}

/// One row of a decisions file.
struct DecisionRow {
    line: usize,
    id: String,
    action: String,
    label: String,
    sha: Option<String>,
}

/// The rows of a decisions file, each checked (see [`Decisions::read`]).
fn decision_rows(bytes: &[u8], file: &Path) -> Result<Vec<DecisionRow>> {
    let name = || at_file("--decisions", file);
    let t = Headed::checked(table::parse_rows(bytes).with_context(name)?).with_context(name)?;
    let columns = t.as_ref().and_then(|t| {
        Some((
            t.position("id")?,
            t.position("action")?,
            t.position("label")?,
        ))
    });
    let (Some(t), Some((id, action, label))) = (t.clone(), columns) else {
        bail!("{} needs the columns id,action,label", name());
    };
    let sha = t.position("scores_sha256");
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut rows: Vec<DecisionRow> = Vec::with_capacity(t.rows.len());
    for r in &t.rows {
        let get = |c: usize| Headed::get(r, c).to_string();
        let row = DecisionRow {
            line: r.line,
            id: get(id),
            action: get(action),
            label: get(label),
            sha: sha.map(get),
        };
        check_decision(&row, &mut seen, rows.first())
            .map_err(|e| anyhow::anyhow!("{} line {}: {e}", name(), r.line))?;
        rows.push(row);
    }
    Ok(rows)
}

/// One decision's own checks, and those against the rows before it (`first` of them).
fn check_decision(
    row: &DecisionRow,
    seen: &mut HashMap<String, usize>,
    first: Option<&DecisionRow>,
) -> Result<()> {
    let (id, action) = (&row.id, row.action.as_str());
    if id.is_empty() {
        bail!("the id is empty");
    }
    if let Some(earlier) = seen.insert(id.clone(), row.line) {
        bail!("'{id}' was decided already on line {earlier}");
    }
    if !ACTIONS.contains(&action) {
        bail!("unknown action '{action}' (keep, drop, relabel or unsure)");
    }
    match (action, row.label.is_empty()) {
        ("relabel", true) => bail!("relabel of '{id}' without a label"),
        ("relabel", false) | (_, true) => {}
        (_, false) => bail!("a label on a '{action}' of '{id}'"),
    }
    if let (Some(mine), Some(Some(theirs))) = (&row.sha, first.map(|f| &f.sha)) {
        if mine != theirs {
            bail!(
                "decided on another scores file (SHA-256 {mine}) than line {} ({theirs}): \
                 export one review at a time",
                first.map_or(0, |f| f.line)
            );
        }
    }
    Ok(())
}

fn positions(split: &Split) -> HashMap<&str, usize> {
    split
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect()
}

/// ` line N` of the `n`-th entry, where the file's lines are known.
fn line_of(lines: &[usize], n: usize) -> String {
    lines.get(n).map_or(String::new(), |l| format!(" line {l}"))
}

/// Refuses ids that are not training examples of the run, naming the first three.
fn check_known(
    ids: &[String],
    lines: &[usize],
    train: &HashMap<&str, usize>,
    test: Option<&Split>,
    file: &Path,
    verb: &str,
) -> Result<()> {
    let test: HashSet<&str> =
        test.map_or_else(HashSet::new, |t| t.ids.iter().map(String::as_str).collect());
    if let Some(n) = ids.iter().position(|id| test.contains(id.as_str())) {
        bail!(
            "'{}'{}: '{}' is a test example: only training examples can be {verb}",
            file.display(),
            line_of(lines, n),
            ids[n]
        );
    }
    let unknown: Vec<usize> = (0..ids.len())
        .filter(|&n| !train.contains_key(ids[n].as_str()))
        .collect();
    if let Some(&first) = unknown.first() {
        let shown: Vec<String> = unknown
            .iter()
            .take(3)
            .map(|&n| format!("'{}'", ids[n]))
            .collect();
        bail!(
            "'{}'{} names {} id(s) that are not training examples of this run: {}{}",
            file.display(),
            line_of(lines, first),
            unknown.len(),
            shown.join(", "),
            if unknown.len() > 3 { ", ..." } else { "" }
        );
    }
    Ok(())
}
