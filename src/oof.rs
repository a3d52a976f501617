//! `RUN/crossval/`: the out-of-sample predicted probabilities of a run's training examples,
//! written by `vog crossval` and read by `vog score`.
//!
//! ```text
//! RUN/crossval/crossval.json   the plan (format "vog-crossval-plan/1"): K, seed, the run's
//!                              identity; written before the first fold trains
//! RUN/crossval/fold-I/         fold I's run (an ordinary run directory)
//! RUN/crossval/probs.csv       id,label,p0..pC-1 (the label the one trained with)
//! RUN/crossval/probs.json      sidecar (format "vog-crossval/2"): the run's identity and
//!                              data, K, each fold's checkpoint digest and held-out accuracy,
//!                              the CSV's size and SHA-256
//! RUN/crossval/neighbours.csv  with --features: id,split,outlier,near_duplicate_set for
//!                              every image of both splits (the set empty where none)
//! RUN/crossval/near-duplicates.csv
//!                              with --features: set,id,split,label,trained_label,distance,
//!                              exact, one row per member of each set of near-duplicates
//! ```
//!
//! The probabilities are checked when read, not only their hash: every value finite and in
//! [0, 1], every row summing to 1, every label a class.
use crate::atomic_file;
use crate::digest::FileDigest;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The sidecar's format tag.
pub const PROBS_FORMAT: &str = "vog-crossval/2";
/// The plan's format tag.
pub const PLAN_FORMAT: &str = "vog-crossval-plan/1";
/// The folder of the folds and the probabilities, inside the run.
pub const DIR: &str = "crossval";
pub const PLAN: &str = "crossval.json";
pub const PROBS_CSV: &str = "probs.csv";
pub const PROBS_JSON: &str = "probs.json";
pub const NEIGHBOURS_CSV: &str = "neighbours.csv";
pub const NEAR_DUPLICATES_CSV: &str = "near-duplicates.csv";

/// How far a row's probabilities may sum from 1 (they are softmax outputs in f64).
const SUM_TOLERANCE: f64 = 1e-6;

/// `crossval.json`: the cross-fitting a run's `crossval/` holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    pub format: String,
    /// The run's identity (`RunManifest::id`): its start, recipe and data.
    pub run_id: String,
    pub folds: usize,
    pub seed: u64,
    /// With `--features`: the feature file's digest (no fold is trained).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<FileDigest>,
}

/// How one fold's model did on the examples it held out.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoldRecord {
    pub fold: usize,
    /// Held-out examples.
    pub examples: usize,
    /// Share of them predicted as the label they train with.
    pub accuracy: f64,
    /// Share of the run's test examples (clean labels) it predicts right, where the run
    /// has a test split (probabilities gathered before it was recorded have none).
    #[serde(default)]
    pub test_accuracy: Option<f64>,
    /// The fold model's checkpoint, relative to `crossval/`, and its digest (with
    /// `--features`: the feature file, absolute, and its digest).
    pub checkpoint: String,
    pub digest: FileDigest,
    /// With `--features`: how its regularization was chosen and how the fit ended.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub linear: Option<LinearFold>,
}

/// A fold model of `vog crossval --features`: logistic regression on the fold's features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinearFold {
    /// The `C` chosen, and the inner log loss of every value tried.
    pub choice: crate::logistic::Choice,
    pub iterations: usize,
    pub converged: bool,
}

/// Where the probabilities of `vog crossval --features` came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeatureFit {
    /// The feature file (absolute, as read) and its digest.
    pub file: std::path::PathBuf,
    pub digest: FileDigest,
    /// What made the features (`FeatureSource::describe`).
    pub source: String,
    pub dim: usize,
    /// How `C` was chosen, in words, and the values tried.
    pub rule: String,
    pub grid: Vec<f64>,
    /// The fold that held out each training example, in the run's order.
    pub held_out_fold: Vec<usize>,
    pub seconds: f64,
    /// Outliers and near-duplicates found among the features.
    pub neighbours: NeighbourRecord,
}

/// How `neighbours.csv` and `near-duplicates.csv` were made, and their digests.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NeighbourRecord {
    /// Neighbours per image, and the near-duplicate threshold (share of the median
    /// nearest-neighbour distance) with the distance it came to.
    pub k: usize,
    pub threshold: f64,
    pub radius: f64,
    /// Sets of near-duplicates, how many of them cross the train/test split, and how many
    /// hold images with the same pixels.
    pub sets: usize,
    pub crossing: usize,
    pub exact: usize,
    pub neighbours_csv: FileDigest,
    pub near_duplicates_csv: FileDigest,
}

/// One image of `neighbours.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct NeighbourRow {
    pub id: String,
    pub split: crate::data::SplitKind,
    pub outlier: f64,
    /// Its set in `near-duplicates.csv`, from 1.
    pub set: Option<usize>,
}

/// One member of a set of `near-duplicates.csv`.
#[derive(Debug, Clone, PartialEq)]
pub struct DuplicateRow {
    pub set: usize,
    pub id: String,
    pub split: crate::data::SplitKind,
    pub label: String,
    pub trained_label: String,
    pub distance: f64,
    pub exact: bool,
}

/// `neighbours.csv` and `near-duplicates.csv` as bytes.
pub fn neighbour_files(rows: &[NeighbourRow], sets: &[DuplicateRow]) -> Result<(Vec<u8>, Vec<u8>)> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["id", "split", "outlier", "near_duplicate_set"])?;
    for r in rows {
        let set = r.set.map_or(String::new(), |s| s.to_string());
        w.write_record([
            r.id.as_str(),
            r.split.name(),
            &format!("{:e}", r.outlier),
            &set,
        ])?;
    }
    let neighbours = w.into_inner()?;
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
        "set",
        "id",
        "split",
        "label",
        "trained_label",
        "distance",
        "exact",
    ])?;
    for r in sets {
        w.write_record([
            r.set.to_string().as_str(),
            &r.id,
            r.split.name(),
            &r.label,
            &r.trained_label,
            &format!("{:e}", r.distance),
            &r.exact.to_string(),
        ])?;
    }
    Ok((neighbours, w.into_inner()?))
}

/// The records of the CSV `name` of `run`'s `crossval/`, checked against `want` first, each
/// with its line number; `columns` (the header) names the layout in errors.
fn verified_records(
    run: &Path,
    name: &str,
    want: &FileDigest,
    columns: &str,
) -> Result<Vec<(csv::StringRecord, usize)>> {
    let path = run.join(DIR).join(name);
    crate::digest::verify(&path, want)?;
    let bytes =
        std::fs::read(&path).with_context(|| format!("cannot read '{}'", path.display()))?;
    let mut out = Vec::new();
    for (n, rec) in csv::Reader::from_reader(bytes.as_slice())
        .records()
        .enumerate()
    {
        let rec = rec.with_context(|| format!("malformed CSV '{}'", path.display()))?;
        if rec.len() != columns.split(',').count() {
            bail!("'{}' row {}: not {columns}", path.display(), n + 2);
        }
        out.push((rec, n + 2));
    }
    Ok(out)
}

/// The error of line `line` of `crossval/name`, which is not `columns`.
fn bad_row(run: &Path, name: &str, line: usize, columns: &str) -> anyhow::Error {
    let path = run.join(DIR).join(name);
    anyhow::anyhow!("'{}' row {line}: not {columns}", path.display())
}

/// The sets of near-duplicates of `run` (identity `run_id`) where `vog crossval
/// --features` found them, with how they were found; checked against the sidecar's digest.
pub fn read_near_duplicates(
    run: &Path,
    run_id: &str,
) -> Result<Option<(FeatureFit, Vec<DuplicateRow>)>> {
    let Some(fit) = read_meta(run)?
        .filter(|m| m.run_id == run_id)
        .and_then(|m| m.features)
    else {
        return Ok(None);
    };
    const COLUMNS: &str = "set,id,split,label,trained_label,distance,exact";
    let want = &fit.neighbours.near_duplicates_csv;
    let mut rows = Vec::new();
    for (rec, line) in verified_records(run, NEAR_DUPLICATES_CSV, want, COLUMNS)? {
        let bad = || bad_row(run, NEAR_DUPLICATES_CSV, line, COLUMNS);
        rows.push(DuplicateRow {
            set: rec[0].parse().map_err(|_| bad())?,
            id: rec[1].to_string(),
            split: rec[2].parse().map_err(|_| bad())?,
            label: rec[3].to_string(),
            trained_label: rec[4].to_string(),
            distance: rec[5].parse().map_err(|_| bad())?,
            exact: rec[6].parse().map_err(|_| bad())?,
        });
    }
    Ok(Some((fit, rows)))
}

/// Reads `neighbours.csv` of `run` against its digest in `record`: outlier score and set of
/// every image, by id.
pub fn read_neighbours(
    run: &Path,
    record: &NeighbourRecord,
) -> Result<std::collections::HashMap<String, (f64, Option<usize>)>> {
    const COLUMNS: &str = "id,split,outlier,near_duplicate_set";
    let mut out = std::collections::HashMap::new();
    for (rec, line) in verified_records(run, NEIGHBOURS_CSV, &record.neighbours_csv, COLUMNS)? {
        let bad = || bad_row(run, NEIGHBOURS_CSV, line, COLUMNS);
        let outlier = rec[2]
            .parse::<f64>()
            .ok()
            .filter(|o| o.is_finite())
            .ok_or_else(bad)?;
        let set = match &rec[3] {
            "" => None,
            v => Some(v.parse::<usize>().map_err(|_| bad())?),
        };
        out.insert(rec[0].to_string(), (outlier, set));
    }
    Ok(out)
}

impl FeatureFit {
    /// `logistic regression on the features of SOURCE`.
    pub fn describe(&self) -> String {
        format!("logistic regression on the features of {}", self.source)
    }
}

/// `probs.json`: what the probabilities are of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbsMeta {
    pub format: String,
    /// The run's identity: the probabilities are of its examples, with its recipe.
    pub run_id: String,
    /// The run's dataset fingerprint.
    pub dataset_fingerprint: String,
    pub folds: usize,
    pub seed: u64,
    pub examples: usize,
    pub classes: usize,
    pub fold_records: Vec<FoldRecord>,
    /// The run's own last test accuracy, beside the folds'.
    pub run_test_accuracy: Option<f64>,
    /// How many test examples the fold models' test accuracies are of (none recorded by
    /// an older vog).
    #[serde(default)]
    pub test_examples: Option<usize>,
    /// Size and SHA-256 of `probs.csv`.
    pub csv: FileDigest,
    /// With `--features`: the features and how the fold models were fitted on them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<FeatureFit>,
}

/// Out-of-sample probabilities of a run's training examples, in the run's order.
#[derive(Debug, Clone, PartialEq)]
pub struct OutOfSample {
    pub ids: Vec<String>,
    /// The labels trained with.
    pub labels: Vec<usize>,
    /// One row of class probabilities per example.
    pub probs: Vec<Vec<f64>>,
}

/// What a run's `crossval/` holds, as scoring reads it.
#[derive(Debug)]
pub enum State {
    /// No cross-fitting was begun.
    None,
    /// One was begun and not gathered (or was gathered by an older vog): what to do.
    Unfinished(String),
    /// The probabilities, checked, with their sidecar.
    Gathered(OutOfSample, Box<ProbsMeta>),
}

fn probs_csv(oos: &OutOfSample) -> Result<Vec<u8>> {
    let k = oos.probs.first().map_or(0, Vec::len);
    let mut w = csv::Writer::from_writer(Vec::new());
    let mut header = vec!["id".to_string(), "label".to_string()];
    header.extend((0..k).map(|c| format!("p{c}")));
    w.write_record(&header)?;
    for ((id, label), row) in oos.ids.iter().zip(&oos.labels).zip(&oos.probs) {
        let mut rec = vec![id.clone(), label.to_string()];
        rec.extend(row.iter().map(|p| format!("{p:e}")));
        w.write_record(&rec)?;
    }
    Ok(w.into_inner()?)
}

/// Reads a JSON file of `crossval/`.
fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let bytes = std::fs::read(path).with_context(|| format!("cannot read '{}'", path.display()))?;
    serde_json::from_slice(&bytes).with_context(|| format!("invalid '{}'", path.display()))
}

/// The plan in `run`'s `crossval/`, if one was begun.
pub fn read_plan(run: &Path) -> Result<Option<Plan>> {
    let path = run.join(DIR).join(PLAN);
    if !path.is_file() {
        return Ok(None);
    }
    let plan: Plan = read_json(&path)?;
    if plan.format != PLAN_FORMAT {
        bail!(
            "'{}' has format '{}', expected '{PLAN_FORMAT}'",
            path.display(),
            plan.format
        );
    }
    Ok(Some(plan))
}

/// Writes the plan into `run`'s `crossval/`.
pub fn write_plan(run: &Path, plan: &Plan) -> Result<()> {
    let dir = run.join(DIR);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create '{}'", dir.display()))?;
    atomic_file::write_bytes(&dir.join(PLAN), &serde_json::to_vec_pretty(plan)?)
}

/// Writes `probs.csv` and `probs.json` (whose `csv` is filled in) into `run`'s
/// `crossval/`, after reading them back as [`read`] will.
pub fn write(run: &Path, oos: &OutOfSample, meta: &mut ProbsMeta) -> Result<()> {
    let dir = run.join(DIR);
    let csv = probs_csv(oos)?;
    meta.csv = crate::digest::of_bytes(&csv);
    meta.examples = oos.ids.len();
    meta.classes = oos.probs.first().map_or(0, Vec::len);
    let back = parse_probs(&csv, meta.classes, &dir.join(PROBS_CSV))?;
    if back.ids != oos.ids || back.labels != oos.labels {
        bail!("the out-of-sample probabilities do not read back as written");
    }
    atomic_file::write_bytes(&dir.join(PROBS_CSV), &csv)?;
    atomic_file::write_bytes(&dir.join(PROBS_JSON), &serde_json::to_vec_pretty(meta)?)
}

/// The sidecar of the gathered probabilities of `run`, if any, unchecked.
pub fn read_meta(run: &Path) -> Result<Option<ProbsMeta>> {
    let side = run.join(DIR).join(PROBS_JSON);
    if !side.is_file() {
        return Ok(None);
    }
    let value: serde_json::Value = read_json(&side)?;
    if value.get("format").and_then(|f| f.as_str()) != Some(PROBS_FORMAT) {
        return Ok(None);
    }
    serde_json::from_value(value)
        .map(Some)
        .with_context(|| format!("invalid '{}'", side.display()))
}

/// What `run`'s `crossval/` holds for the run with identity `run_id` and data
/// `fingerprint`: probabilities gathered for it are checked (digest and values); ones of
/// another run, recipe or data are refused.
pub fn read(run: &Path, run_id: &str, fingerprint: &str) -> Result<State> {
    let dir = run.join(DIR);
    let (csv, side) = (dir.join(PROBS_CSV), dir.join(PROBS_JSON));
    let plan = read_plan(run)?;
    if !side.is_file() {
        return Ok(match plan {
            None => State::None,
            Some(p) => State::Unfinished(format!(
                "the {}-fold vog crossval in '{}' is not finished ({}); finish it with vog \
                 crossval --run {} --folds {}",
                p.folds,
                dir.display(),
                unfinished_folds(&dir, p.folds),
                run.display(),
                p.folds
            )),
        });
    }
    let Some(meta) = read_meta(run)? else {
        return Ok(State::Unfinished(format!(
            "'{}' was written by an older vog, which did not tie it to the run's recipe; gather \
             it again with vog crossval --run {} --gather",
            side.display(),
            run.display()
        )));
    };
    if meta.run_id != run_id || meta.dataset_fingerprint != fingerprint {
        bail!(
            "'{}' holds out-of-sample probabilities of another run, recipe or data than '{}' \
             (copied from elsewhere?); run vog crossval again",
            side.display(),
            run.display()
        );
    }
    crate::digest::verify(&csv, &meta.csv)?;
    let bytes = std::fs::read(&csv).with_context(|| format!("cannot read '{}'", csv.display()))?;
    let oos = parse_probs(&bytes, meta.classes, &csv)?;
    if oos.ids.len() != meta.examples {
        bail!(
            "'{}' holds {} rows, its sidecar says {}",
            csv.display(),
            oos.ids.len(),
            meta.examples
        );
    }
    Ok(State::Gathered(oos, Box::new(meta)))
}

/// Which folds of `dir` lack a finished run: `folds 1, 2 not trained`, or `trained, not
/// gathered`.
fn unfinished_folds(dir: &Path, folds: usize) -> String {
    let done = |f: usize| {
        read_json::<serde_json::Value>(&dir.join(format!("fold-{f}")).join("run.json"))
            .ok()
            .and_then(|v| v.get("complete").and_then(|c| c.as_bool()))
            == Some(true)
    };
    let missing: Vec<String> = (0..folds)
        .filter(|&f| !done(f))
        .map(|f| f.to_string())
        .collect();
    match missing.is_empty() {
        true => "every fold trained, not gathered".into(),
        false => format!("fold(s) {} not trained", missing.join(", ")),
    }
}

/// Parses `probs.csv` (`path` names it in errors), checking every value.
fn parse_probs(bytes: &[u8], classes: usize, path: &Path) -> Result<OutOfSample> {
    let mut r = csv::Reader::from_reader(bytes);
    let mut oos = OutOfSample {
        ids: Vec::new(),
        labels: Vec::new(),
        probs: Vec::new(),
    };
    for (n, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("malformed CSV '{}'", path.display()))?;
        let at = |what: String| anyhow::anyhow!("'{}' row {}: {what}", path.display(), n + 2);
        if rec.len() != classes + 2 || classes == 0 {
            return Err(at(format!(
                "not id,label,p0..p{}",
                classes.saturating_sub(1)
            )));
        }
        let label: usize = rec[1]
            .parse()
            .ok()
            .filter(|&l| l < classes)
            .ok_or_else(|| at(format!("label '{}' is not a class index", &rec[1])))?;
        let row = (2..rec.len())
            .map(|c| {
                rec[c]
                    .parse::<f64>()
                    .ok()
                    .filter(|p| (0.0..=1.0).contains(p))
            })
            .collect::<Option<Vec<f64>>>()
            .ok_or_else(|| at("a probability is not a number in [0, 1]".into()))?;
        let sum: f64 = row.iter().sum();
        if (sum - 1.0).abs() > SUM_TOLERANCE {
            return Err(at(format!("the probabilities sum to {sum}, not 1")));
        }
        oos.ids.push(rec[0].to_string());
        oos.labels.push(label);
        oos.probs.push(row);
    }
    Ok(oos)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn oos() -> OutOfSample {
        OutOfSample {
            ids: vec!["train/a,b.png".into(), "train/c".into()],
            labels: vec![1, 0],
            probs: vec![vec![0.25, 0.75], vec![1.0, 0.0]],
        }
    }

    #[test]
    fn values_are_checked_not_only_the_hash() {
        let p = Path::new("probs.csv");
        let good = probs_csv(&oos()).unwrap();
        assert_eq!(parse_probs(&good, 2, p).unwrap(), oos());
        let text = String::from_utf8(good).unwrap();
        for (from, to, why) in [
            ("2.5e-1", "-2.5e-1", "not a number in [0, 1]"),
            ("7.5e-1", "7e-1", "sum to"),
            (",1,", ",7,", "not a class index"),
            ("2.5e-1", "NaN", "not a number in [0, 1]"),
        ] {
            let bad = text.replacen(from, to, 1);
            let err = parse_probs(bad.as_bytes(), 2, p).unwrap_err().to_string();
            assert!(err.contains("row 2") && err.contains(why), "{from}: {err}");
        }
    }
}
