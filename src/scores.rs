//! The scores file that `vog score` writes and every later stage reads: a CSV, one row per
//! example in dataset order,
//!
//! ```text
//! id,split,index,label,label_name,trained_label,noisy,predicted,correct,vog_raw,vog[,vog_raw_T,vog_T...]
//! ```
//!
//! and a JSON sidecar (same path, `.json` extension; [`ScoresMeta`]) recording how the
//! scores were made. `label` is the true label; `trained_label` the one the network was
//! trained with (they differ for the shuffled examples of a label-noise run, where `noisy`
//! is true); `index` is the position in the scored split; `predicted` comes from the last
//! checkpoint used and `correct` compares it with `label`. The first target scored keeps
//! the plain `vog_raw` and `vog` names; every further target T adds `vog_raw_T` and `vog_T`.
//! Then the companion scores ([`Companion`]) the sidecar lists, in its order: `loss`,
//! `el2n`, `prob` from the scoring checkpoints, and for runs with training dynamics
//! `confidence`, `variability`, `correctness`, `forgetting`, `aum`, which are empty in test
//! rows. Every value is finite.
//! A scores file is only read together with its sidecar: a missing or unreadable one is
//! an error, never a silent default.
use crate::data::{DatasetSpec, SplitKind};
use crate::info::Versions;
use crate::schedule::Stage;
use crate::vog::{Target, Variant};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::fmt;
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
        }
    }

    /// Whether a higher value means a harder example.
    pub fn higher_is_harder(self) -> bool {
        matches!(
            self,
            Companion::Loss | Companion::El2n | Companion::Variability | Companion::Forgetting
        )
    }

    /// Whether only training examples have it.
    pub fn train_only(self) -> bool {
        Companion::DYNAMICS.contains(&self)
    }
}

/// The sidecar's format tag.
pub const SCORES_FORMAT: &str = "vog-scores/1";

/// Which split(s) a scores file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
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

/// Where the scores of `split` at `stage` go by default: `RUN/scores-SPLIT-STAGE.csv`.
pub fn scores_path(run: &Path, split: SplitChoice, stage: &Stage) -> PathBuf {
    run.join(format!("scores-{split}-{}.csv", stage.slug()))
}

/// Checks that a scores file can be written at `out` (and its sidecar beside it) before
/// any work is done.
pub fn check_out(out: &Path) -> Result<()> {
    if out.is_dir() {
        bail!(
            "'{}' is a folder; name the .csv file to write",
            out.display()
        );
    }
    if out.extension().is_some_and(|e| e == "json") {
        bail!(
            "'{}' must not end in .json (that name is the sidecar's)",
            out.display()
        );
    }
    let dir = crate::atomic_file::parent_dir(out);
    tempfile::tempfile_in(&dir)
        .map(drop)
        .with_context(|| format!("cannot create a file in '{}'", dir.display()))
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
    pub degenerate_classes: HashMap<String, Vec<String>>,
    #[serde(with = "crate::device::by_name")]
    pub device: tch::Device,
    pub seconds: f64,
    pub versions: Versions,
    /// Size and SHA-256 of the CSV as written (`vog verify` checks it).
    #[serde(default)]
    pub csv: Option<crate::digest::FileDigest>,
    /// The format the gradients were computed in.
    #[serde(default)]
    pub precision: crate::model::Precision,
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

/// Every column of a file with `targets` and `companions`, in order.
pub fn header(targets: &[Target], companions: &[Companion]) -> Vec<String> {
    BASE_COLUMNS
        .iter()
        .map(|s| s.to_string())
        .chain(score_columns(targets).into_iter().flat_map(|(r, z)| [r, z]))
        .chain(companions.iter().map(|c| c.name().to_string()))
        .collect()
}

/// Writes the header and rows.
pub fn write_csv(
    w: impl Write,
    targets: &[Target],
    companions: &[Companion],
    rows: &[ScoreRow],
) -> Result<()> {
    let mut csv = csv::Writer::from_writer(w);
    csv.write_record(header(targets, companions))?;
    for r in rows {
        let mut rec = vec![
            r.id.clone(),
            r.split.to_string(),
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
            // Only a shard's rows lack the z-score, which needs every shard.
            rec.push(if z.is_finite() {
                format!("{z}")
            } else {
                String::new()
            });
        }
        for c in &r.companions {
            rec.push(c.map_or(String::new(), |v| format!("{v:e}")));
        }
        csv.write_record(&rec)?;
    }
    csv.flush()?;
    Ok(())
}

/// Fills every row's z-scores: each target's raw VoG z-scored within (split, trained
/// class), as [`crate::vog::normalize::by_class`] does, rows of a split taken in the order
/// given. Returns, per split, the names of the classes without spread (their z-scores are
/// 0), in first-seen order.
pub fn normalize_rows(
    rows: &mut [ScoreRow],
    class_name: impl Fn(i64) -> String,
) -> HashMap<String, Vec<String>> {
    let mut degenerate: BTreeMap<SplitKind, Vec<String>> = BTreeMap::new();
    for kind in [SplitKind::Train, SplitKind::Test] {
        let members: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].split == kind).collect();
        if members.is_empty() {
            continue;
        }
        let trained: Vec<i64> = members.iter().map(|&i| rows[i].trained_label).collect();
        for t in 0..rows[members[0]].scores.len() {
            let raw: Vec<f64> = members.iter().map(|&i| rows[i].scores[t].0).collect();
            let (z, bad) = crate::vog::normalize::by_class(&raw, &trained);
            for (&i, z) in members.iter().zip(z) {
                rows[i].scores[t].1 = z;
            }
            let names = degenerate.entry(kind).or_default();
            for c in bad {
                let name = class_name(c);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    degenerate
        .into_iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(k, v)| (k.to_string(), v))
        .collect()
}

/// Says once per class that its scores had no spread.
pub fn warn_degenerate(
    degenerate: &HashMap<String, Vec<String>>,
    reporter: &dyn crate::progress::Reporter,
) {
    let mut splits: Vec<_> = degenerate.iter().collect();
    splits.sort();
    for (split, classes) in splits {
        for class in classes {
            reporter.warn(&format!("{split} class '{class}' has a single example or no spread in VoG; its scores are set to 0"));
        }
    }
}

/// Writes `rows` to `csv` and `meta`, with the CSV's digest filled in, to its sidecar,
/// each atomically.
pub fn write(csv: &Path, meta: &mut ScoresMeta, rows: &[ScoreRow]) -> Result<()> {
    let mut bytes = Vec::new();
    write_csv(&mut bytes, &meta.targets, &meta.companions, rows)?;
    meta.csv = Some(crate::digest::of_bytes(&bytes));
    crate::atomic_file::write_bytes(csv, &bytes)?;
    let json = serde_json::to_vec_pretty(meta)?;
    crate::atomic_file::write_bytes(&sidecar_path(csv), &json)
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

/// A scores file read back with its sidecar: the one view of scored examples that
/// evaluation, ranking and the report share.
#[derive(Debug, Clone)]
pub struct ScoresFile {
    pub path: PathBuf,
    pub meta: ScoresMeta,
    pub rows: Vec<ScoreRow>,
}

impl ScoresFile {
    /// Reads `path` and its sidecar; the CSV's columns must be the ones the sidecar's
    /// targets name. The file of one shard is refused: it lacks the z-scores.
    pub fn read(path: &Path) -> Result<Self> {
        let file = Self::read_any(path)?;
        if let Some(shard) = file.meta.shard {
            bail!(
                "'{}' is shard {shard} of a sharded scoring, without z-scores: combine the shards with `vog merge` first",
                path.display()
            );
        }
        Ok(file)
    }

    /// Reads the file of one shard (z-scores are NaN).
    pub fn read_shard(path: &Path) -> Result<Self> {
        let file = Self::read_any(path)?;
        if file.meta.shard.is_none() {
            bail!(
                "'{}' is a complete scores file, not a shard",
                path.display()
            );
        }
        Ok(file)
    }

    fn read_any(path: &Path) -> Result<Self> {
        let table = Table::read(path)?;
        let mut required: Vec<&str> = BASE_COLUMNS.to_vec();
        required.extend(["vog", "vog_raw"]);
        table.require(&required)?;
        let meta = read_meta(path)?;
        // A shard may be empty: more shards than batches.
        if table.records.is_empty() && meta.shard.is_none() {
            bail!("'{}' holds no examples", path.display());
        }
        if table.headers != header(&meta.targets, &meta.companions) {
            bail!(
                "the columns of '{}' do not match the targets and scores its sidecar lists ({})",
                path.display(),
                names(&meta.targets, &meta.companions)
            );
        }
        let rows = (0..table.records.len())
            .map(|r| table.row(r, &meta))
            .collect::<Result<Vec<_>>>()?;
        Ok(ScoresFile {
            path: path.to_path_buf(),
            meta,
            rows,
        })
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The targets, in column order.
    pub fn targets(&self) -> &[Target] {
        &self.meta.targets
    }

    /// The values of VoG target `t`'s column `which` (raw or normalized), in row order.
    pub fn values(&self, t: usize, which: Column) -> Vec<f64> {
        self.rows
            .iter()
            .map(|r| value(r, (t, which)).expect("VoG columns have every value"))
            .collect()
    }

    /// Every score column's name and reference: the VoG ones, then the companions.
    pub fn columns(&self) -> Vec<(String, ColumnRef)> {
        let vog = score_columns(self.targets())
            .into_iter()
            .enumerate()
            .flat_map(|(t, (raw, z))| [(z, (t, Column::Normalized)), (raw, (t, Column::Raw))]);
        let companions = self
            .meta
            .companions
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name().to_string(), (i, Column::Companion)));
        vog.chain(companions).collect()
    }

    /// The column a name (`vog`, `vog_raw`, `vog_T`, `vog_raw_T`, a companion) stands for.
    pub fn column(&self, name: &str) -> Result<ColumnRef> {
        let columns = self.columns();
        if let Some((_, c)) = columns.iter().find(|(n, _)| n == name) {
            return Ok(*c);
        }
        let all: Vec<String> = columns.into_iter().map(|(n, _)| n).collect();
        bail!(
            "'{}' has no score column '{name}' (it has {})",
            self.path.display(),
            all.join(", ")
        )
    }

    /// The same file restricted to the examples of one split.
    pub fn only(&self, kind: SplitKind) -> ScoresFile {
        ScoresFile {
            path: self.path.clone(),
            meta: self.meta.clone(),
            rows: self
                .rows
                .iter()
                .filter(|r| r.split == kind)
                .cloned()
                .collect(),
        }
    }
}

/// An example with the score it is ranked by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored<'a> {
    pub row: &'a ScoreRow,
    pub score: f64,
}

/// A scored example with its place in the ordering.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked<'a> {
    pub rank: usize,
    pub scored: Scored<'a>,
    pub predicted_name: String,
}

/// Every example of `f` that has a value in score column `column` (any of
/// [`ScoresFile::columns`]), with that value.
pub fn scored<'a>(f: &'a ScoresFile, column: &str) -> Result<Vec<Scored<'a>>> {
    let col = f.column(column)?;
    Ok(f.rows
        .iter()
        .filter_map(|row| value(row, col).map(|score| Scored { row, score }))
        .collect())
}

/// label -> name, from the examples' labels.
pub fn class_names(entries: &[Scored]) -> BTreeMap<i64, String> {
    entries
        .iter()
        .map(|e| (e.row.label, e.row.label_name.clone()))
        .collect()
}

/// The `k` highest (or lowest) examples; ties by id. `names` maps predicted labels to names.
pub fn top_k<'a>(
    entries: &[Scored<'a>],
    k: usize,
    lowest: bool,
    names: &BTreeMap<i64, String>,
) -> Vec<Ranked<'a>> {
    let mut sorted: Vec<Scored<'a>> = entries.to_vec();
    sorted.sort_by(|a, b| {
        let by_score = if lowest {
            a.score.total_cmp(&b.score)
        } else {
            b.score.total_cmp(&a.score)
        };
        by_score.then_with(|| a.row.id.cmp(&b.row.id))
    });
    sorted
        .into_iter()
        .take(k)
        .enumerate()
        .map(|(i, e)| Ranked {
            rank: i + 1,
            predicted_name: names
                .get(&e.row.predicted)
                .cloned()
                .unwrap_or_else(|| e.row.predicted.to_string()),
            scored: e,
        })
        .collect()
}

/// Examples grouped by class, in label order.
pub fn per_class<'a>(entries: &[Scored<'a>]) -> Vec<(String, Vec<Scored<'a>>)> {
    let mut groups: BTreeMap<i64, (String, Vec<Scored<'a>>)> = BTreeMap::new();
    for e in entries {
        groups
            .entry(e.row.label)
            .or_insert_with(|| (e.row.label_name.clone(), Vec::new()))
            .1
            .push(*e);
    }
    groups.into_values().collect()
}

fn names(targets: &[Target], companions: &[Companion]) -> String {
    let v: Vec<&str> = targets
        .iter()
        .map(|t| t.name())
        .chain(companions.iter().map(|c| c.name()))
        .collect();
    v.join(", ")
}

/// A CSV read by column name.
struct Table {
    path: PathBuf,
    headers: Vec<String>,
    records: Vec<csv::StringRecord>,
    pos: HashMap<String, usize>,
}

impl Table {
    fn read(path: &Path) -> Result<Self> {
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
    fn require(&self, names: &[&str]) -> Result<()> {
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
    fn score(&self, r: usize, name: &str, optional: bool) -> Result<Option<f64>> {
        let text = self.get(r, name);
        if text.is_empty() && optional {
            return Ok(None);
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

    /// Row `r` as a scored example of a file described by `meta`.
    fn row(&self, r: usize, meta: &ScoresMeta) -> Result<ScoreRow> {
        let split = match self.get(r, "split") {
            "train" => SplitKind::Train,
            "test" => SplitKind::Test,
            other => bail!(
                "'{}' row {}: column 'split' holds '{other}', expected train or test",
                self.path.display(),
                r + 2
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
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vog::Variant;

    fn row() -> ScoreRow {
        ScoreRow {
            id: "test/000001".into(),
            split: SplitKind::Test,
            index: 1,
            label: 3,
            label_name: "cat".into(),
            trained_label: 3,
            noisy: false,
            predicted: 5,
            correct: false,
            scores: vec![(1.5e-3, -0.25), (2.0, 1.0)],
            companions: vec![Some(0.5), None],
        }
    }

    fn meta(targets: Vec<Target>) -> ScoresMeta {
        ScoresMeta {
            format: SCORES_FORMAT.into(),
            run: Some("run".into()),
            models: None,
            shard: None,
            dataset_fingerprint: "f".into(),
            dataset: DatasetSpec::Synth {
                train: 1,
                test: 1,
                seed: 0,
                atypical: 0.0,
            },
            split: SplitChoice::Test,
            stage: Stage::All,
            epochs: vec![1, 2],
            checkpoints: vec![],
            targets,
            companions: vec![Companion::Loss, Companion::Aum],
            variant: Variant::default(),
            examples: 1,
            incomplete: None,
            degenerate_classes: HashMap::new(),
            device: tch::Device::Cpu,
            seconds: 0.0,
            versions: Versions::current(),
            csv: None,
            precision: Default::default(),
        }
    }

    #[test]
    fn header_and_round_trip() {
        let mut buf = Vec::new();
        let companions = [Companion::Loss, Companion::Aum];
        write_csv(
            &mut buf,
            &[Target::Logit, Target::Prob],
            &companions,
            &[row()],
        )
        .unwrap();
        let text = String::from_utf8(buf).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "id,split,index,label,label_name,trained_label,noisy,predicted,correct,vog_raw,vog,vog_raw_prob,vog_prob,loss,aum"
        );
        assert_eq!(
            lines.next().unwrap(),
            "test/000001,test,1,3,cat,3,false,5,false,1.5e-3,-0.25,2e0,1,5e-1,"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        let mut m = meta(vec![Target::Logit, Target::Prob]);
        write(&p, &mut m, &[row()]).unwrap();
        assert_eq!(
            m.csv,
            Some(crate::digest::of_file(&p).unwrap()),
            "the sidecar records the CSV's digest"
        );
        assert_eq!(sidecar_path(&p), dir.path().join("s.json"));
        let f = ScoresFile::read(&p).unwrap();
        assert_eq!(f.rows, vec![row()]);
        assert_eq!(f.meta, m);
        assert_eq!(f.column("vog_raw_prob").unwrap(), (1, Column::Raw));
        assert_eq!(f.values(0, Column::Normalized), vec![-0.25]);
        let err = f.column("vog_margin").unwrap_err().to_string();
        assert!(
            err.contains("vog, vog_raw, vog_prob, vog_raw_prob"),
            "{err}"
        );
    }

    #[test]
    fn sidecar_must_be_there_and_match() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        write(&p, &mut meta(vec![Target::Logit, Target::Prob]), &[row()]).unwrap();
        std::fs::remove_file(sidecar_path(&p)).unwrap();
        let err = format!("{:#}", ScoresFile::read(&p).unwrap_err());
        assert!(err.contains("s.json") && err.contains("sidecar"), "{err}");
        // A sidecar listing other targets than the columns hold.
        let json = serde_json::to_vec(&meta(vec![Target::Logit])).unwrap();
        std::fs::write(sidecar_path(&p), json).unwrap();
        let err = ScoresFile::read(&p).unwrap_err().to_string();
        assert!(err.contains("do not match"), "{err}");
        std::fs::write(sidecar_path(&p), "{").unwrap();
        let err = format!("{:#}", ScoresFile::read(&p).unwrap_err());
        assert!(err.contains("invalid scores sidecar"), "{err}");
    }

    #[test]
    fn default_paths() {
        let stage: Stage = "1-3,every:10".parse().unwrap();
        assert_eq!(
            scores_path(Path::new("r"), SplitChoice::Both, &stage),
            Path::new("r/scores-both-1-3_every_10.csv")
        );
        assert_eq!(
            scores_path(Path::new("r"), SplitChoice::Test, &Stage::Late),
            Path::new("r/scores-test-late.csv")
        );
    }
}
