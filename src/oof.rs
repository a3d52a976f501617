//! `RUN/crossval/probs.csv`: out-of-sample predicted probabilities of a run's training
//! examples (`id,label,p0..pK-1`; the label the one trained with), written by `vog
//! crossval` and read by `vog score`, with a sidecar `probs.json` tying them to the run's
//! data and recording the CSV's SHA-256.
use crate::atomic_file;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// The sidecar's format tag.
pub const PROBS_FORMAT: &str = "vog-crossval/1";
/// The folder of the folds and the probabilities, inside the run.
pub const DIR: &str = "crossval";

/// `probs.json`: what the probabilities are of.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProbsMeta {
    pub format: String,
    /// The run's dataset fingerprint: the probabilities are of its training examples.
    pub dataset_fingerprint: String,
    pub folds: usize,
    pub seed: u64,
    pub examples: usize,
    pub classes: usize,
    /// Size and SHA-256 of `probs.csv`.
    pub csv: crate::digest::FileDigest,
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

fn probs_csv(oos: &OutOfSample) -> Vec<u8> {
    let k = oos.probs.first().map_or(0, Vec::len);
    let mut text = String::from("id,label");
    (0..k).for_each(|c| text.push_str(&format!(",p{c}")));
    text.push('\n');
    for ((id, label), row) in oos.ids.iter().zip(&oos.labels).zip(&oos.probs) {
        text.push_str(&format!("{id},{label}"));
        row.iter().for_each(|p| text.push_str(&format!(",{p:e}")));
        text.push('\n');
    }
    text.into_bytes()
}

/// Writes `probs.csv` and `probs.json` into `dir`.
pub fn write(
    dir: &Path,
    oos: &OutOfSample,
    fingerprint: &str,
    folds: usize,
    seed: u64,
) -> Result<()> {
    let csv = probs_csv(oos);
    let meta = ProbsMeta {
        format: PROBS_FORMAT.into(),
        dataset_fingerprint: fingerprint.to_string(),
        folds,
        seed,
        examples: oos.ids.len(),
        classes: oos.probs.first().map_or(0, Vec::len),
        csv: crate::digest::of_bytes(&csv),
    };
    atomic_file::write_bytes(&dir.join("probs.csv"), &csv)?;
    atomic_file::write_bytes(&dir.join("probs.json"), &serde_json::to_vec_pretty(&meta)?)
}

/// The out-of-sample probabilities of the run in `run`, if `vog crossval` gathered them:
/// checked against their sidecar's digest and the run's dataset fingerprint.
pub fn read(run: &Path, fingerprint: &str) -> Result<Option<OutOfSample>> {
    let dir = run.join(DIR);
    let (csv, side) = (dir.join("probs.csv"), dir.join("probs.json"));
    if !side.is_file() {
        return Ok(None);
    }
    let meta: ProbsMeta = serde_json::from_slice(
        &std::fs::read(&side).with_context(|| format!("cannot read '{}'", side.display()))?,
    )
    .with_context(|| format!("invalid '{}'", side.display()))?;
    if meta.format != PROBS_FORMAT || meta.dataset_fingerprint != fingerprint {
        bail!(
            "'{}' is not of this run's data (made before the data changed?): run vog crossval again",
            side.display()
        );
    }
    crate::digest::verify(&csv, &meta.csv)?;
    parse_probs(&csv, meta.classes).map(Some)
}

fn parse_probs(path: &Path, classes: usize) -> Result<OutOfSample> {
    let mut r = csv::Reader::from_path(path)
        .with_context(|| format!("cannot read '{}'", path.display()))?;
    let mut oos = OutOfSample {
        ids: Vec::new(),
        labels: Vec::new(),
        probs: Vec::new(),
    };
    for (n, rec) in r.records().enumerate() {
        let rec = rec.with_context(|| format!("malformed CSV '{}'", path.display()))?;
        let bad = || {
            anyhow::anyhow!(
                "'{}' row {}: not id,label,p0..p{}",
                path.display(),
                n + 2,
                classes - 1
            )
        };
        if rec.len() != classes + 2 {
            return Err(bad());
        }
        oos.ids.push(rec[0].to_string());
        oos.labels.push(rec[1].parse().map_err(|_| bad())?);
        let row = (2..rec.len())
            .map(|c| rec[c].parse::<f64>().map_err(|_| bad()))
            .collect::<Result<Vec<_>>>()?;
        oos.probs.push(row);
    }
    Ok(oos)
}
