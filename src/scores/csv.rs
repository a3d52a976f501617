//! The scores CSV itself: its columns, one row per example, written and read back by
//! column name (see the module header of [`crate::scores`] for the layout).
use super::meta::ScoresMeta;
use crate::data::plant::Kind as Planted;
use crate::data::SplitKind;
use crate::variance::Target;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
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

/// The column naming each example's set of near-duplicates.
pub const SETS: &str = "near_duplicate_set";

/// A difficulty score scored beside VoG, and which way it points.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Companion {
    /// Cross-entropy against the label trained with, at the last checkpoint.
    Loss,
    /// Mean L2 norm of softmax minus one-hot over the checkpoints (Paul et al. 2021).
    El2n,
    /// Softmax probability of the label trained with, at the last checkpoint.
    Prob,
    /// Mean training-time probability of the label (Data Maps; Swayamdipta et al. 2020).
    Confidence,
    /// Its standard deviation over epochs (Data Maps).
    Variability,
    /// Fraction of epochs the training prediction was right (Data Maps).
    Correctness,
    /// Forgetting events (Toneva et al. 2019); never learned = number of epochs.
    Forgetting,
    /// Area under the margin (Pleiss et al. 2020).
    Aum,
    /// Out-of-sample probability of the label trained with (`vog crossval`; confident
    /// learning's self-confidence).
    #[serde(rename = "oof_prob")]
    OofProb,
    /// Out-of-sample normalized margin, `(p[label] - the largest other p + 1) / 2`.
    #[serde(rename = "oof_margin")]
    OofMargin,
    /// Entropy of the out-of-sample probabilities, in nats.
    #[serde(rename = "oof_entropy")]
    OofEntropy,
    /// 1 where confident learning (Northcutt et al. 2021) flags the label, else 0.
    #[serde(rename = "label_issue")]
    LabelIssue,
    /// Mean cosine distance of the image's features to its nearest training images
    /// (`vog crossval --features`; see [`crate::neighbours`]).
    Outlier,
}

impl Companion {
    /// From the scoring forward passes, for every split.
    pub const CHECKPOINT: [Companion; 3] = [Companion::Loss, Companion::El2n, Companion::Prob];
    /// From the training dynamics, for the training split.
    pub const DYNAMICS: [Companion; 5] = [
        Companion::Confidence,
        Companion::Variability,
        Companion::Correctness,
        Companion::Forgetting,
        Companion::Aum,
    ];
    /// From the out-of-sample probabilities of `vog crossval`, for the training split.
    pub const OUT_OF_SAMPLE: [Companion; 4] = [
        Companion::OofProb,
        Companion::OofMargin,
        Companion::OofEntropy,
        Companion::LabelIssue,
    ];

    /// From the features of `vog crossval --features`, for every split.
    pub const FEATURES: [Companion; 1] = [Companion::Outlier];

    /// Its column name.
    pub fn name(self) -> &'static str {
        match self {
            Companion::Loss => "loss",
            Companion::El2n => "el2n",
            Companion::Prob => "prob",
            Companion::Confidence => "confidence",
            Companion::Variability => "variability",
            Companion::Correctness => "correctness",
            Companion::Forgetting => "forgetting",
            Companion::Aum => "aum",
            Companion::OofProb => "oof_prob",
            Companion::OofMargin => "oof_margin",
            Companion::OofEntropy => "oof_entropy",
            Companion::LabelIssue => "label_issue",
            Companion::Outlier => "outlier",
        }
    }

    /// Whether a higher value means a harder example.
    /// Whether it is computed from the outputs of the scoring checkpoints, the last of
    /// which makes the prediction `correct` is judged by: on the test split it restates
    /// whether an example is misclassified rather than predicting it.
    pub fn from_prediction(self) -> bool {
        matches!(self, Companion::Loss | Companion::El2n | Companion::Prob)
    }

    pub fn higher_is_harder(self) -> bool {
        matches!(
            self,
            Companion::Loss
                | Companion::El2n
                | Companion::Variability
                | Companion::Forgetting
                | Companion::OofEntropy
                | Companion::LabelIssue
                | Companion::Outlier
        )
    }

    /// A value as the scores file writes it: a flag as `true`/`false`, a score in
    /// exponent notation (exact for an f64).
    pub fn format(self, v: f64) -> String {
        match self {
            Companion::LabelIssue => (v != 0.0).to_string(),
            _ => format!("{v:e}"),
        }
    }

    /// Whether only training examples have it.
    pub fn train_only(self) -> bool {
        Companion::DYNAMICS.contains(&self) || Companion::OUT_OF_SAMPLE.contains(&self)
    }
}

/// One scored example.
#[derive(Debug, Clone, PartialEq)]
pub struct ScoreRow {
    pub id: String,
    pub split: SplitKind,
    pub index: usize,
    pub label: i64,
    pub label_name: String,
    pub trained_label: i64,
    pub noisy: bool,
    pub predicted: i64,
    pub correct: bool,
    /// (vog_raw, vog) per target, in the file's target order.
    pub scores: Vec<(f64, f64)>,
    /// Companion values in the sidecar's order; `None` where a score does not apply (the
    /// training dynamics of a test example).
    pub companions: Vec<Option<f64>>,
    /// The class the out-of-sample probabilities favour (`vog crossval`): a training row's
    /// in a file with the out-of-sample scores ([`suggests`]), `None` elsewhere.
    pub suggested_label: Option<i64>,
    /// The kind of hardness `vog train --plant` planted into this training example; `None`
    /// for every other example (and every test example).
    pub planted: Option<Planted>,
    /// Its set of near-duplicates (`vog crossval --features`, from 1) in a file with the
    /// `outlier` column ([`has_sets`]); `None` where it is in none.
    pub near_duplicate_set: Option<usize>,
}

/// Whether the score column `name` is a flag (`label_issue`): shown as `true`/`false`,
/// never as a number, wherever vog shows it.
pub fn is_flag(name: &str) -> bool {
    name == Companion::LabelIssue.name()
}

/// Value `v` of column `name` as vog shows a flag (`true`/`false`, as the scores file
/// writes it); `None` for a score, which each view rounds its own way.
pub fn flag_text(name: &str, v: f64) -> Option<String> {
    is_flag(name).then(|| Companion::LabelIssue.format(v))
}

/// Whether a file with `companions` has the `suggested_label` column: those with the
/// out-of-sample scores do, after them.
pub fn suggests(companions: &[Companion]) -> bool {
    companions.contains(&Companion::OofProb)
}

/// Whether a file with `companions` has the `near_duplicate_set` column: those with the
/// features' `outlier` column do, last.
pub fn has_sets(companions: &[Companion]) -> bool {
    companions.contains(&Companion::Outlier)
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

/// Every column of a file described by `meta`, in order: the `planted` column follows
/// `noisy` in the files of runs with planted hardness.
pub fn header(meta: &ScoresMeta) -> Vec<String> {
    let planted = !meta.planted.is_empty();
    BASE_COLUMNS
        .iter()
        .flat_map(|&s| match (s, planted) {
            ("noisy", true) => vec![s.to_string(), "planted".to_string()],
            _ => vec![s.to_string()],
        })
        .chain(
            score_columns(&meta.targets)
                .into_iter()
                .flat_map(|(r, z)| [r, z]),
        )
        .chain(meta.companions.iter().map(|c| c.name().to_string()))
        .chain(suggests(&meta.companions).then(|| "suggested_label".to_string()))
        .chain(has_sets(&meta.companions).then(|| SETS.to_string()))
        .collect()
}

/// Writes the header and rows of a file described by `meta`.
pub fn write_csv(w: impl Write, meta: &ScoresMeta, rows: &[ScoreRow]) -> Result<()> {
    let mut csv = csv::Writer::from_writer(w);
    csv.write_record(header(meta))?;
    for r in rows {
        let mut rec = vec![
            r.id.clone(),
            r.split.to_string(),
            r.index.to_string(),
            r.label.to_string(),
            r.label_name.clone(),
            r.trained_label.to_string(),
            r.noisy.to_string(),
        ];
        if !meta.planted.is_empty() {
            rec.push(r.planted.map_or("", Planted::name).to_string());
        }
        rec.extend([r.predicted.to_string(), r.correct.to_string()]);
        for (raw, z) in &r.scores {
            rec.push(format!("{raw:e}"));
            // Only a shard's rows lack the z-score, which needs every shard.
            rec.push(if z.is_finite() {
                format!("{z}")
            } else {
                String::new()
            });
        }
        for (c, v) in meta.companions.iter().zip(&r.companions) {
            rec.push(v.map_or(String::new(), |v| c.format(v)));
        }
        if suggests(&meta.companions) {
            rec.push(r.suggested_label.map_or(String::new(), |l| l.to_string()));
        }
        if has_sets(&meta.companions) {
            rec.push(
                r.near_duplicate_set
                    .map_or(String::new(), |s| s.to_string()),
            );
        }
        csv.write_record(&rec)?;
    }
    csv.flush()?;
    Ok(())
}

/// Which of a target's two columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Column {
    /// `vog_raw…`: VoG itself.
    Raw,
    /// `vog…`: z-scored within (split, trained class).
    Normalized,
    /// A companion score.
    Companion,
}

/// A score column of a file: the target's (or, for a companion, the companion's) index and
/// which column of it.
pub type ColumnRef = (usize, Column);

/// The value of `col` in `row` (`None` where a companion does not apply).
pub fn value(row: &ScoreRow, col: ColumnRef) -> Option<f64> {
    match col {
        (t, Column::Raw) => Some(row.scores[t].0),
        (t, Column::Normalized) => Some(row.scores[t].1),
        (c, Column::Companion) => row.companions[c],
    }
}

pub(super) fn names(targets: &[Target], companions: &[Companion]) -> String {
    let v: Vec<&str> = targets
        .iter()
        .map(|t| t.name())
        .chain(companions.iter().map(|c| c.name()))
        .collect();
    v.join(", ")
}

/// A CSV read by column name.
pub(super) struct Table {
    path: PathBuf,
    pub(super) headers: Vec<String>,
    pub(super) records: Vec<csv::StringRecord>,
    pos: HashMap<String, usize>,
}

impl Table {
    pub(super) fn read(path: &Path) -> Result<Self> {
        let mut r = csv::Reader::from_path(path)
            .with_context(|| format!("cannot read scores '{}'", path.display()))?;
        let headers: Vec<String> = r
            .headers()
            .with_context(|| format!("cannot read the header of '{}'", path.display()))?
            .iter()
            .map(String::from)
            .collect();
        let records = r
            .records()
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("malformed CSV '{}'", path.display()))?;
        let pos = headers
            .iter()
            .enumerate()
            .map(|(i, h)| (h.clone(), i))
            .collect();
        Ok(Table {
            path: path.to_path_buf(),
            headers,
            records,
            pos,
        })
    }

    /// Fails listing every one of `names` the file lacks.
    pub(super) fn require(&self, names: &[&str]) -> Result<()> {
        let missing: Vec<&str> = names
            .iter()
            .copied()
            .filter(|n| !self.pos.contains_key(*n))
            .collect();
        if !missing.is_empty() {
            bail!(
                "'{}' lacks the column(s) {} (is it a `vog score` output?)",
                self.path.display(),
                missing.join(", ")
            );
        }
        Ok(())
    }

    /// Field `name` of row `row` parsed as `T`, naming the place on failure.
    fn parse<T: std::str::FromStr>(&self, row: usize, name: &str) -> Result<T> {
        let v = self.get(row, name);
        v.parse().map_err(|_| {
            anyhow::anyhow!(
                "'{}' row {}: column '{name}' holds '{v}', which is not a valid value",
                self.path.display(),
                row + 2
            )
        })
    }

    fn get(&self, row: usize, name: &str) -> &str {
        self.records[row].get(self.pos[name]).unwrap_or("")
    }

    /// A finite score in row `r`, column `name`; `None` for an empty cell where `optional`.
    /// A flag column (`label_issue`) holds `true`/`false` (older files: 1 and 0).
    fn score(&self, r: usize, name: &str, optional: bool) -> Result<Option<f64>> {
        let text = self.get(r, name);
        if text.is_empty() && optional {
            return Ok(None);
        }
        match text {
            "true" => return Ok(Some(1.0)),
            "false" => return Ok(Some(0.0)),
            _ => {}
        }
        let v: f64 = self.parse(r, name)?;
        if !v.is_finite() {
            bail!(
                "'{}' row {}: column '{name}' holds '{text}', not a finite number",
                self.path.display(),
                r + 2
            );
        }
        Ok(Some(v))
    }

    /// Row `r`'s suggested label: required in a training row of a file that has the column
    /// (older files with out-of-sample scores lack it), empty in its test rows.
    fn suggested(&self, r: usize, meta: &ScoresMeta, split: SplitKind) -> Result<Option<i64>> {
        if !suggests(&meta.companions) || !self.pos.contains_key("suggested_label") {
            return Ok(None);
        }
        let empty = self.get(r, "suggested_label").is_empty();
        match (split, empty) {
            (SplitKind::Test, true) => Ok(None),
            (SplitKind::Train, false) => Ok(Some(self.parse::<usize>(r, "suggested_label")? as i64)),
            _ => bail!(
                "'{}' row {}: suggested_label must be given for a training example and only for one",
                self.path.display(),
                r + 2
            ),
        }
    }

    /// Row `r` as a scored example of a file described by `meta`.
    pub(super) fn row(&self, r: usize, meta: &ScoresMeta) -> Result<ScoreRow> {
        let split: SplitKind = match self.get(r, "split").parse() {
            Ok(k) => k,
            Err(_) => bail!(
                "'{}' row {}: column 'split' holds '{}', expected train or test",
                self.path.display(),
                r + 2,
                self.get(r, "split")
            ),
        };
        let required = |name: &str| -> Result<f64> {
            Ok(self
                .score(r, name, false)?
                .expect("required values are present"))
        };
        let z = |name: &str| -> Result<f64> {
            match meta.shard {
                Some(_) => Ok(self.score(r, name, true)?.unwrap_or(f64::NAN)),
                None => required(name),
            }
        };
        let scores = score_columns(&meta.targets)
            .iter()
            .map(|(raw, name)| Ok((required(raw)?, z(name)?)))
            .collect::<Result<Vec<_>>>()?;
        let companions = meta
            .companions
            .iter()
            .map(|c| {
                let optional = c.train_only() && split == SplitKind::Test;
                self.score(r, c.name(), optional)
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(ScoreRow {
            id: self.get(r, "id").to_string(),
            split,
            index: self.parse(r, "index")?,
            label: self.parse(r, "label")?,
            label_name: self.get(r, "label_name").to_string(),
            trained_label: self.parse(r, "trained_label")?,
            noisy: self.parse(r, "noisy")?,
            predicted: self.parse(r, "predicted")?,
            correct: self.parse(r, "correct")?,
            scores,
            companions,
            suggested_label: self.suggested(r, meta, split)?,
            planted: self.planted(r, meta, split)?,
            near_duplicate_set: self.set(r, meta)?,
        })
    }

    /// Row `r`'s set of near-duplicates, in a file that has the column.
    fn set(&self, r: usize, meta: &ScoresMeta) -> Result<Option<usize>> {
        if !has_sets(&meta.companions) || self.get(r, SETS).is_empty() {
            return Ok(None);
        }
        self.parse::<usize>(r, SETS).map(Some)
    }

    /// Row `r`'s planted kind: one the sidecar lists, in a training row only; empty (and
    /// `None`) elsewhere and in files of runs without planted hardness.
    fn planted(&self, r: usize, meta: &ScoresMeta, split: SplitKind) -> Result<Option<Planted>> {
        if meta.planted.is_empty() {
            return Ok(None);
        }
        let text = self.get(r, "planted");
        if text.is_empty() {
            return Ok(None);
        }
        let kind = text.parse::<Planted>().ok();
        match kind {
            Some(k) if split == SplitKind::Train && meta.planted.contains(&k) => Ok(Some(k)),
            _ => bail!(
                "'{}' row {}: column 'planted' holds '{text}', not a kind its sidecar lists for a                  training example ({})",
                self.path.display(),
                r + 2,
                meta.planted.iter().map(|k| k.name()).collect::<Vec<_>>().join(", ")
            ),
        }
    }
}
