//! The scores CSV written by `vog score`, one row per example in dataset order:
//!
//! ```text
//! id,split,index,label,label_name,trained_label,noisy,predicted,correct,vog_raw,vog[,vog_raw_T,vog_T...]
//! ```
//!
//! `label` is the true label; `trained_label` the one the network was trained with (they
//! differ for the shuffled examples of a label-noise run, where `noisy` is true); `index`
//! is the position in the scored split; `predicted` comes from the last checkpoint used and
//! `correct` compares it with `label`. The first target scored keeps the plain `vog_raw` and
//! `vog` names; every further target T adds `vog_raw_T` and `vog_T`.
//! A JSON sidecar (same path, `.json` extension) records how the scores were made.
use crate::vog::Target;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The fixed leading columns.
pub const BASE_COLUMNS: [&str; 9] = [
    "id",
    "split",
    "index",
    "label",
    "label_name",
    "trained_label",
    "noisy",
    "predicted",
    "correct",
];

/// One scored example.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    pub id: String,
    pub split: String,
    pub index: usize,
    pub label: i64,
    pub label_name: String,
    pub trained_label: i64,
    pub noisy: bool,
    pub predicted: i64,
    pub correct: bool,
    /// (vog_raw, vog) per target, in the file's target order.
    pub scores: Vec<(f64, f64)>,
}

/// (`vog_raw…`, `vog…`) column names of each target; the first keeps the plain names.
pub fn score_columns(targets: &[Target]) -> Vec<(String, String)> {
    targets
        .iter()
        .enumerate()
        .map(|(i, t)| match i {
            0 => ("vog_raw".to_string(), "vog".to_string()),
            _ => (format!("vog_raw_{t}"), format!("vog_{t}")),
        })
        .collect()
}

/// Writes the header and rows.
pub fn write_csv(w: impl Write, targets: &[Target], rows: &[ScoreRow]) -> Result<()> {
    let mut csv = csv::Writer::from_writer(w);
    let mut header: Vec<String> = BASE_COLUMNS.iter().map(|s| s.to_string()).collect();
    for (raw, z) in score_columns(targets) {
        header.push(raw);
        header.push(z);
    }
    csv.write_record(&header)?;
    for r in rows {
        let mut rec = vec![
            r.id.clone(),
            r.split.clone(),
            r.index.to_string(),
            r.label.to_string(),
            r.label_name.clone(),
            r.trained_label.to_string(),
            r.noisy.to_string(),
            r.predicted.to_string(),
            r.correct.to_string(),
        ];
        for (raw, z) in &r.scores {
            rec.push(format!("{raw:e}"));
            rec.push(format!("{z}"));
        }
        csv.write_record(&rec)?;
    }
    csv.flush()?;
    Ok(())
}

/// The sidecar path of a scores file: the same path with a `.json` extension.
pub fn sidecar_path(csv: &Path) -> PathBuf {
    csv.with_extension("json")
}

/// A scores CSV read back by column name.
#[derive(Debug)]
pub struct ScoreTable {
    pub path: PathBuf,
    pub headers: Vec<String>,
    pub records: Vec<csv::StringRecord>,
}

impl ScoreTable {
    pub fn read(path: &Path) -> Result<Self> {
        let mut r = csv::Reader::from_path(path)
            .with_context(|| format!("cannot read scores '{}'", path.display()))?;
        let headers = r
            .headers()
            .with_context(|| format!("cannot read the header of '{}'", path.display()))?
            .iter()
            .map(String::from)
            .collect();
        let records = r
            .records()
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("malformed CSV '{}'", path.display()))?;
        Ok(ScoreTable {
            path: path.to_path_buf(),
            headers,
            records,
        })
    }

    /// Indices of `names`, or an error listing every missing one.
    pub fn require(&self, names: &[&str]) -> Result<Vec<usize>> {
        let pos: HashMap<&str, usize> = self
            .headers
            .iter()
            .enumerate()
            .map(|(i, h)| (h.as_str(), i))
            .collect();
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !pos.contains_key(n))
            .collect();
        if !missing.is_empty() {
            bail!(
                "'{}' lacks the column(s) {} (is it a `vog score` output?)",
                self.path.display(),
                missing.join(", ")
            );
        }
        Ok(names.iter().map(|n| pos[n]).collect())
    }

    /// Parses field `col` of row `row` as `T`, naming the place on failure.
    pub fn parse<T: std::str::FromStr>(&self, row: usize, col: usize) -> Result<T> {
        let v = self.records[row].get(col).unwrap_or("");
        v.parse().map_err(|_| {
            anyhow::anyhow!(
                "'{}' row {}: column '{}' holds '{v}', which is not a valid value",
                self.path.display(),
                row + 2,
                self.headers[col]
            )
        })
    }

    pub fn get(&self, row: usize, col: usize) -> &str {
        self.records[row].get(col).unwrap_or("")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_and_round_trip() {
        let row = ScoreRow {
            id: "test/000001".into(),
            split: "test".into(),
            index: 1,
            label: 3,
            label_name: "cat".into(),
            trained_label: 3,
            noisy: false,
            predicted: 5,
            correct: false,
            scores: vec![(1.5e-3, -0.25), (2.0, 1.0)],
        };
        let mut buf = Vec::new();
        write_csv(&mut buf, &[Target::Logit, Target::Prob], &[row]).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "id,split,index,label,label_name,trained_label,noisy,predicted,correct,vog_raw,vog,vog_raw_prob,vog_prob"
        );
        assert_eq!(
            lines.next().unwrap(),
            "test/000001,test,1,3,cat,3,false,5,false,1.5e-3,-0.25,2e0,1"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        std::fs::write(&p, &text).unwrap();
        let t = ScoreTable::read(&p).unwrap();
        let cols = t.require(&["vog_raw", "correct"]).unwrap();
        assert_eq!(t.parse::<f64>(0, cols[0]).unwrap(), 1.5e-3);
        assert!(!t.parse::<bool>(0, cols[1]).unwrap());
        let err = t.require(&["vog", "nope", "gone"]).unwrap_err().to_string();
        assert!(err.contains("nope, gone"), "{err}");
        assert_eq!(sidecar_path(&p), dir.path().join("s.json"));
    }
}
