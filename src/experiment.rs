//! `vog experiment CONFIG`: the paper's reproduction in one command (Agarwal & Hooker,
//! Sections 3-4): train with the recipe, score the early, late and whole-training stages on
//! both splits with every target, evaluate each (early and late compared), write the HTML
//! report and a `results.json` summary. Re-running resumes at the first step whose output
//! is missing; an interrupted training restarts from scratch, because libtorch's SGD keeps
//! no savable momentum state.
use crate::checkpoint::RunDir;
use crate::cli::resolve_dataset;
use crate::config::{Hyper, LabelNoise, TrainConfig};
use crate::data::download;
use crate::eval::{self, Evaluation, ScoreData};
use crate::score::{self, ScoreConfig, ScoresMeta, SplitChoice};
use crate::train::{self, Verbosity};
use crate::vog::{Target, Variant};
use crate::{atomic_file, report, scores};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The scoring part of an experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreSettings {
    pub stages: Vec<String>,
    pub splits: Vec<SplitChoice>,
    pub targets: Vec<Target>,
    pub batch_size: usize,
}

/// An experiment file (`configs/paper-*.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    pub dataset: String,
    pub data_dir: PathBuf,
    pub out: PathBuf,
    pub device: String,
    #[serde(default)]
    pub label_noise: Option<f64>,
    #[serde(default)]
    pub train_subset: Option<usize>,
    #[serde(default)]
    pub test_subset: Option<usize>,
    pub train: Hyper,
    pub score: ScoreSettings,
}

/// Command-line changes to an experiment file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub epochs: Option<usize>,
    pub width: Option<i64>,
    pub out: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub device: Option<String>,
    pub train_subset: Option<usize>,
    pub test_subset: Option<usize>,
}

impl ExperimentFile {
    pub fn read(path: &Path) -> Result<Self> {
        crate::config::read_toml(path, "experiment")
    }

    /// Applies the overrides and validates everything.
    pub fn resolve(mut self, o: &Overrides) -> Result<(Self, TrainConfig)> {
        if let Some(e) = o.epochs {
            self.train = self.train.with_epochs(e);
        }
        if let Some(w) = o.width {
            self.train.width = w;
        }
        macro_rules! set {
            ($field:ident, $value:expr) => {
                if let Some(v) = $value.clone() {
                    self.$field = v;
                }
            };
        }
        set!(out, o.out);
        set!(data_dir, o.data_dir);
        set!(device, o.device);
        self.train_subset = o.train_subset.or(self.train_subset);
        self.test_subset = o.test_subset.or(self.test_subset);
        if self.score.stages.is_empty()
            || self.score.splits.is_empty()
            || self.score.targets.is_empty()
        {
            bail!("[score] needs at least one stage, split and target");
        }
        if self.score.batch_size == 0 {
            bail!("[score] batch_size must be at least 1");
        }
        let dataset = resolve_dataset(&self.dataset, &self.data_dir, self.train.seed)?;
        let cfg = TrainConfig::new(
            dataset,
            self.train.clone(),
            self.train_subset,
            self.test_subset,
            self.label_noise.map(|fraction| LabelNoise {
                fraction,
                seed: self.train.seed,
            }),
            self.device.clone(),
        )?;
        Ok((self, cfg))
    }
}

/// One scored (split, stage) with its evaluation.
#[derive(Debug, Clone, Serialize)]
pub struct ScoredStage {
    pub split: String,
    pub stage: String,
    pub epochs: Vec<usize>,
    pub scores: PathBuf,
    pub evaluation: Evaluation,
}

/// `results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub config: ExperimentFile,
    pub final_train_accuracy: f64,
    pub final_test_accuracy: Option<f64>,
    pub training_seconds: f64,
    pub stages: Vec<ScoredStage>,
    pub report: PathBuf,
}

/// Runs (or resumes) the experiment; returns what `results.json` holds.
pub fn run(file: ExperimentFile, cfg: &TrainConfig, verbosity: Verbosity) -> Result<Results> {
    crate::device::parse(&cfg.device)?;
    download::ensure(&cfg.dataset)?;
    let run_path = file.out.join("run");
    let manifest = train_or_resume(cfg, &run_path, verbosity)?;
    let mut stages = Vec::new();
    let mut data = Vec::new();
    for &split in &file.score.splits {
        for stage in &file.score.stages {
            let (s, d) = score_stage(&file, cfg, &run_path, split, stage, verbosity)?;
            stages.push(s);
            data.push(d);
        }
    }
    compare_early_late(&mut stages, &data)?;
    for (s, d) in stages.iter().zip(&data) {
        let dir = file
            .out
            .join("eval")
            .join(format!("{}-{}", s.split, s.stage));
        eval::write_outputs(&dir, &s.evaluation, d)?;
    }
    let report_path = file.out.join("report.html");
    let mut ordered: Vec<PathBuf> = stages.iter().map(|s| s.scores.clone()).collect();
    // The test split's whole-training scores fill the grids, when there are some.
    if let Some(i) = stages
        .iter()
        .position(|s| s.split == "test" && s.stage == "all")
    {
        ordered.swap(0, i);
    }
    report::run(&run_path, &ordered, &report_path, &[])?;
    let last = manifest.epochs.last().context("the run has no epochs")?;
    let results = Results {
        config: file.clone(),
        final_train_accuracy: last.train_accuracy,
        final_test_accuracy: last.test_accuracy,
        training_seconds: manifest.epochs.iter().map(|e| e.seconds).sum(),
        stages,
        report: report_path,
    };
    atomic_file::write_bytes(
        &file.out.join("results.json"),
        &serde_json::to_vec_pretty(&results)?,
    )?;
    Ok(results)
}

fn train_or_resume(
    cfg: &TrainConfig,
    run_path: &Path,
    verbosity: Verbosity,
) -> Result<crate::checkpoint::RunManifest> {
    if let Ok(run) = RunDir::open(run_path) {
        let m = run.read_manifest()?;
        if m.config != *cfg {
            bail!(
                "'{}' holds a run of another configuration; remove it or choose another --out",
                run_path.display()
            );
        }
        if m.complete {
            eprintln!(
                "training: up to date ({} epochs in '{}')",
                m.epochs.len(),
                run_path.display()
            );
            return Ok(m);
        }
        eprintln!(
            "training: '{}' stopped after {} of {} epochs; restarting it",
            run_path.display(),
            m.epochs.len(),
            cfg.hyper.epochs
        );
    }
    let prepared = train::prepare_data(cfg)?;
    let run = RunDir::create(run_path, true)?;
    train::run(cfg, &prepared, &run, verbosity)
}

fn score_stage(
    file: &ExperimentFile,
    cfg: &TrainConfig,
    run_path: &Path,
    split: SplitChoice,
    stage: &str,
    verbosity: Verbosity,
) -> Result<(ScoredStage, ScoreData)> {
    let split_name = format!("{split:?}").to_lowercase();
    let out = run_path.join(format!("scores-{split_name}-{stage}.csv"));
    let meta = match read_meta(&out) {
        Some(meta) if meta.targets == file.score.targets => {
            eprintln!("scoring {split_name} {stage}: up to date");
            meta
        }
        _ => score::run(
            &ScoreConfig {
                run: run_path.to_path_buf(),
                split,
                stage: stage.to_string(),
                out: out.clone(),
                batch_size: file.score.batch_size,
                device: cfg.device.clone(),
                targets: file.score.targets.clone(),
                variant: Variant::default(),
                data: None,
            },
            verbosity == Verbosity::Bar,
        )?,
    };
    let data = eval::load_scores(&out)?;
    let scored = ScoredStage {
        split: split_name,
        stage: stage.to_string(),
        epochs: meta.epochs,
        evaluation: eval::evaluate(&data, &out.display().to_string()),
        scores: out,
    };
    Ok((scored, data))
}

/// The sidecar of an existing scores file, if both are there and readable.
fn read_meta(csv: &Path) -> Option<ScoresMeta> {
    if !csv.is_file() {
        return None;
    }
    let text = std::fs::read_to_string(scores::sidecar_path(csv)).ok()?;
    serde_json::from_str(&text).ok()
}

/// Adds the early-versus-late comparison to each split's early stage (`data[i]` holds the
/// scores of `stages[i]`).
fn compare_early_late(stages: &mut [ScoredStage], data: &[ScoreData]) -> Result<()> {
    for i in 0..stages.len() {
        if stages[i].stage != "early" {
            continue;
        }
        let late = stages
            .iter()
            .position(|s| s.split == stages[i].split && s.stage == "late");
        if let Some(j) = late {
            let other = stages[j].scores.display().to_string();
            stages[i].evaluation.comparison = Some(eval::compare(&data[i], &data[j], &other)?);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_paper_configs_are_valid() {
        for (text, noise) in [
            (include_str!("../configs/paper-cifar10.toml"), None),
            (include_str!("../configs/paper-cifar100.toml"), None),
            (
                include_str!("../configs/paper-cifar10-noise20.toml"),
                Some(0.2),
            ),
        ] {
            let file: ExperimentFile = toml::from_str(text).unwrap();
            assert_eq!(file.label_noise, noise);
            let (file, cfg) = file.resolve(&Overrides::default()).unwrap();
            assert_eq!(cfg.hyper.epochs, 350);
            assert_eq!(cfg.saved_epochs.len(), 40);
            assert_eq!(file.score.targets.len(), 4);
            let short = Overrides {
                epochs: Some(30),
                ..Overrides::default()
            };
            let (_, cfg) = file.resolve(&short).unwrap();
            assert_eq!(cfg.hyper.lr_milestones, vec![13, 22]);
            assert_eq!(cfg.saved_epochs, vec![1, 2, 3, 10, 20, 28, 29, 30]);
        }
    }
}
