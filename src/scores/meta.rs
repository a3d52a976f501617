//! The JSON sidecar of a scores file (same path, `.json` extension): how the scores were
//! made, what they are of, and the CSV's SHA-256. A scores file is only read together with
//! its sidecar: a missing or unreadable one is an error, never a silent default.
use super::Companion;
use crate::data::{DatasetSpec, SplitKind};
use crate::epochs::Stage;
use crate::info::Versions;
use crate::variance::{Target, Variant};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt;
use std::path::{Path, PathBuf};

/// The sidecar's format tag.
pub const SCORES_FORMAT: &str = "vog-scores/1";

/// Which split(s) a scores file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitChoice {
    Test,
    Train,
    Both,
}

impl SplitChoice {
    /// The splits, in file order (train before test).
    pub fn kinds(self) -> &'static [SplitKind] {
        match self {
            SplitChoice::Test => &[SplitKind::Test],
            SplitChoice::Train => &[SplitKind::Train],
            SplitChoice::Both => &[SplitKind::Train, SplitKind::Test],
        }
    }
}

impl fmt::Display for SplitChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SplitChoice::Test => "test",
            SplitChoice::Train => "train",
            SplitChoice::Both => "both",
        })
    }
}

/// The JSON sidecar of a scores file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoresMeta {
    pub format: String,
    /// The run whose checkpoints were scored; `None` for a user's TorchScript models.
    pub run: Option<PathBuf>,
    /// The TorchScript checkpoints scored instead of a run's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<ModelScoring>,
    /// Set in the file of one shard of a sharded scoring (`vog merge` combines them).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shard: Option<Shard>,
    pub dataset_fingerprint: String,
    pub dataset: DatasetSpec,
    pub split: SplitChoice,
    pub stage: Stage,
    pub epochs: Vec<usize>,
    pub checkpoints: Vec<String>,
    /// Size and SHA-256 of each of `checkpoints` as scored (run scorings; older sidecars
    /// have none), in their order: what ties the scores to the run's weights.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub checkpoint_digests: Vec<crate::digest::FileDigest>,
    /// The identity of the run scored (`RunManifest::id`), wherever it lies now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub run_id: Option<String>,
    /// Size and SHA-256 of the out-of-sample probabilities (`crossval/probs.csv`) the
    /// `oof_*` columns came from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_sample: Option<crate::digest::FileDigest>,
    /// How strong the fold models behind the `oof_*` columns and `label_issue` were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_sample_strength: Option<crate::confident::Strength>,
    /// In column order; the first has the plain `vog_raw`/`vog` columns.
    pub targets: Vec<Target>,
    /// The companion columns after the VoG ones, in column order.
    #[serde(default)]
    pub companions: Vec<Companion>,
    pub variant: Variant,
    pub examples: usize,
    /// Set when the run had not finished training (scored with `--allow-incomplete`).
    #[serde(default)]
    pub incomplete: Option<Incomplete>,
    /// Per split, the (trained) classes whose scores had no spread and were set to 0.
    pub degenerate_classes: BTreeMap<SplitKind, Vec<String>>,
    #[serde(with = "crate::device::by_name")]
    pub device: tch::Device,
    pub seconds: f64,
    pub versions: Versions,
    /// Size and SHA-256 of the CSV as written (`vog verify` checks it).
    #[serde(default)]
    pub csv: Option<crate::digest::FileDigest>,
    /// The format the gradients were computed in.
    #[serde(default)]
    pub precision: crate::precision::Precision,
    /// Set when the VoG columns come from gradients captured during training (`vog score
    /// --captured`) rather than from checkpoints; `epochs` are then the capture epochs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<CapturedScoring>,
    /// The kinds of hardness the run planted (`vog train --plant`), in kind order: the file
    /// then has a `planted` column naming each planted training example's kind.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub planted: Vec<crate::data::plant::Kind>,
}

/// How the scores of gradients captured during training were made.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CapturedScoring {
    /// What was captured, in words.
    pub protocol: String,
    /// The run's file of captured statistics (also among `checkpoints`, with its digest).
    pub file: String,
    /// The checkpoint the companion columns and predictions come from.
    pub companions_from: String,
}

/// How a user's TorchScript checkpoints were scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelScoring {
    /// In checkpoint order.
    pub files: Vec<ModelFile>,
    /// Applied to pixels in [0, 1] after the dataset's resizing and cropping.
    pub normalization: crate::data::transform::Normalization,
    /// (channels, height, width) of the model's inputs.
    pub input: [i64; 3],
}

/// One model file and its digest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelFile {
    pub path: PathBuf,
    #[serde(flatten)]
    pub digest: crate::digest::FileDigest,
}

/// Which slice of the examples a shard holds: shard `index` of `count` (from 0) takes
/// batches `[index * B / count, (index + 1) * B / count)` of the B batches of the scoring
/// order. Shards split between batches, never inside one, so every example is scored in
/// the same batch as without sharding and the merged file equals the unsharded one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Shard {
    pub index: usize,
    pub count: usize,
    /// Examples in all shards together.
    pub total: usize,
    pub batch_size: usize,
}

impl Shard {
    /// The positions (in the scoring order) this shard holds.
    pub fn range(&self) -> std::ops::Range<usize> {
        let batches = self.total.div_ceil(self.batch_size);
        let at = |i: usize| (i * batches / self.count * self.batch_size).min(self.total);
        at(self.index)..at(self.index + 1)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// The column of the labels the out-of-sample probabilities favour.
pub const SUGGESTED: &str = "suggested_label";

impl ScoresMeta {
    /// What was scored, for messages: the run, or the model files.
    pub fn source(&self) -> String {
        match (&self.run, &self.models) {
            (Some(run), _) => format!("run '{}'", run.display()),
            (None, Some(m)) => {
                let names: Vec<String> = m
                    .files
                    .iter()
                    .map(|f| f.path.display().to_string())
                    .collect();
                format!("the models {}", names.join(", "))
            }
            (None, None) => "no known run or model".into(),
        }
    }
}

impl ScoresMeta {
    /// How strong the fold models behind the out-of-sample columns were, in one line, when
    /// one of `columns` is such a column (`oof_prob`, `oof_margin`, `oof_entropy`,
    /// `label_issue`) or is [`SUGGESTED`], the labels they suggest: what `vog rank`, `review`
    /// and `prune` say wherever they act on them or show them.
    pub fn out_of_sample_note(&self, columns: &[&str]) -> Option<String> {
        let strength = self.out_of_sample_strength.as_ref()?;
        let oof = Companion::OUT_OF_SAMPLE.map(|c| c.name());
        columns
            .iter()
            .any(|c| oof.contains(c) || *c == SUGGESTED)
            .then(|| strength.sentence())
    }
}

/// What an unfinished run lacked when it was scored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Incomplete {
    pub finished_epochs: usize,
    pub planned_epochs: usize,
    /// Epochs the run was to checkpoint that it had not reached.
    pub missing_checkpoints: Vec<usize>,
}

/// The sidecar path of a scores file: the same path with a `.json` extension.
pub fn sidecar_path(csv: &Path) -> PathBuf {
    csv.with_extension("json")
}

/// Reads the sidecar of the scores file `csv`.
pub fn read_meta(csv: &Path) -> Result<ScoresMeta> {
    let side = sidecar_path(csv);
    let text = std::fs::read_to_string(&side).with_context(|| {
        format!(
            "cannot read '{}', the sidecar `vog score` writes next to '{}'",
            side.display(),
            csv.display()
        )
    })?;
    let meta: ScoresMeta = serde_json::from_str(&text)
        .with_context(|| format!("invalid scores sidecar '{}'", side.display()))?;
    if meta.format != SCORES_FORMAT {
        bail!(
            "'{}' has format '{}', expected '{SCORES_FORMAT}'",
            side.display(),
            meta.format
        );
    }
    Ok(meta)
}
