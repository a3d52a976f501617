//! `vog score`: VoG for every example of a run's split from K saved checkpoints (or from
//! the gradients captured during training), plus the columns that join it from elsewhere.
//!
//! Per batch, all K models (kept loaded) produce the input gradients, which are folded into
//! running statistics at once and reduced to one number per example and target; memory
//! does not grow with the number of examples. Scores are then z-scored within each
//! (split, trained class) and written as CSV plus a JSON sidecar (see [`crate::scores`]).
//! This file holds the request and the run's scoring from start to end; beside it:
//!
//! - `gradients`: the batched gradient pass (checkpoints loaded, [`Scorer`]);
//! - `rows`: the scores file's rows of each split, labels as trained;
//! - `captured`: scores from the gradients captured during training (`--captured`);
//! - `joined`: the columns that join a scores file from elsewhere (training dynamics,
//!   out-of-sample probabilities and their strength);
//! - `provenance`: what the sidecar records of where scores came from, and the one tail
//!   every scoring ends in;
//! - `models`: the same for a user's TorchScript models on streamed data.
mod captured;
pub mod confusable;
mod gradients;
mod joined;
pub mod models;
mod provenance;
mod rows;

pub use gradients::{load_models, LoadedModel, Scorer, SplitScores};
use provenance::{write_scores, Provenance};

use crate::data::prepare::{self, PreparedData};
use crate::data::{Split, SplitKind};
use crate::epochs::Stage;
use crate::origin::Origins;
use crate::precision::Precision;
use crate::progress::Reporter;
use crate::run_dir::{CaptureRecord, RunDir, RunManifest, MANIFEST};
use crate::scores::{self, Companion, Incomplete, ScoresMeta, SplitChoice};
use crate::variance::{Target, Variant};
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::nn::ModuleT;
use tch::Device;

/// What every scoring is asked, of a run or of TorchScript models: which split, how the
/// gradients are made and reduced, and where the scores go.
#[derive(Debug, Clone)]
pub struct ScoreOptions {
    pub split: SplitChoice,
    /// The scores CSV; its sidecar goes beside it.
    pub out: PathBuf,
    pub batch_size: usize,
    pub device: Device,
    /// At least one, none twice.
    pub targets: Vec<Target>,
    pub variant: Variant,
    /// The format of the forward and backward passes (the reduction is f64 regardless).
    pub precision: Precision,
}

impl ScoreOptions {
    /// Warns of a precision known to be slow on the device, once the scoring is checked
    /// and about to start (an error before it stays one line).
    pub(super) fn warn_if_slow(&self, reporter: &dyn Reporter) {
        if let Some(warning) = crate::info::slow_precision(self.precision, self.device) {
            reporter.warn(&warning);
        }
    }

    /// Refuses options no scoring can run with, and an `out` that cannot be written,
    /// before any work is done.
    fn check(&self) -> Result<()> {
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if self.targets.is_empty() {
            bail!("scoring needs at least one target");
        }
        let small = [Target::Prob, Target::Logprob];
        if let Some(t) = self.targets.iter().find(|t| small.contains(t)) {
            if self.precision == Precision::Fp16 {
                bail!(
                    "--precision fp16 cannot score --target {t}: the input gradients of confident \
                     examples fall below fp16's smallest value (about 6e-8) and become 0, which \
                     collapses their VoG; use bf16 (fp32's range) or fp32"
                );
            }
        }
        scores::check_out(&self.out)
            .map_err(|e| anyhow::anyhow!("cannot write to --out '{}': {e:#}", self.out.display()))
    }
}

/// A validated `vog score` request.
#[derive(Debug, Clone)]
pub struct ScoreConfig {
    pub run: PathBuf,
    pub stage: Stage,
    /// Replaces the dataset location recorded in the run.
    pub data: Option<PathBuf>,
    /// Score a run that has not finished training (recorded in the sidecar).
    pub allow_incomplete: bool,
    pub options: ScoreOptions,
}

impl ScoreConfig {
    /// Where the scores of `split` at `stage` go unless told: `RUN/scores-SPLIT-STAGE.csv`
    /// (`scores-train-captured.csv` for the gradients captured during training), with the
    /// variant and a precision other than fp32 in the name (`scores-test-all-official-bf16.csv`),
    /// so that another variant never replaces a file of the default name.
    pub fn default_out(run: &Path, split: SplitChoice, stage: &Stage, o: &ScoreOptions) -> PathBuf {
        let plain = scores::scores_path(run, split, stage);
        let precision = match o.precision {
            Precision::Fp32 => String::new(),
            p => format!("-{p}"),
        };
        let suffix = format!("{}{precision}", o.variant.file_suffix());
        match suffix.is_empty() {
            true => plain,
            false => plain.with_file_name(format!(
                "{}{suffix}.csv",
                plain.file_stem().unwrap_or_default().to_string_lossy()
            )),
        }
    }

    /// The batch size a run's checkpoints are scored with unless told: 128 on a CPU (as
    /// fast per image as any larger batch on the machines measured), 512 on CUDA, where
    /// the full-width CIFAR ResNet-18 needs about 9 MiB per image for the input gradient
    /// (4.5 GB at 512, on any current GPU) and a GPU needs large batches to fill its
    /// cores. See docs/results.md.
    pub fn default_batch_size(device: Device) -> usize {
        if device.is_cuda() {
            512
        } else {
            128
        }
    }
}

/// What the run in `run` (its manifest `m`) holds now, as scores made from it are checked
/// against ([`ScoresFile::check_of_run`]).
pub fn run_state<'a>(run: &Path, m: &'a RunManifest) -> Result<scores::RunState<'a>> {
    Ok(scores::RunState {
        fingerprint: &m.dataset.fingerprint,
        files: &m.files,
        out_of_sample: crate::oof::read_meta(run)?.map(|p| p.csv),
        run_id: Some(m.id()),
    })
}

/// Runs `vog score`, reporting progress and warnings to `reporter`; returns the sidecar
/// written next to the CSV.
pub fn run(cfg: &ScoreConfig, reporter: &dyn Reporter) -> Result<ScoresMeta> {
    let started = Instant::now();
    let o = &cfg.options;
    crate::device::tune_for(o.device, false);
    o.check()?;
    let run = RunDir::open_shared(&cfg.run)?;
    let m = run.read_manifest()?;
    // Captured gradients first: a run stopped in its capture epochs lacks captured epochs,
    // which no flag makes up for, before it lacks checkpoints.
    let capture = match cfg.stage {
        Stage::Captured => Some(captured::check(cfg, &m)?),
        _ => None,
    };
    let incomplete = check_complete(cfg, &m)?;
    let epochs = scored_epochs(cfg, &m, capture.is_some())?;
    gradients::check_device_memory(&m, epochs.len(), o)?;
    let models = load_models(&run, &m, &epochs, o.device, o.precision)?;
    let (dataset, prepared) = load_data(cfg, &run, &m)?;
    let scorer = Scorer {
        models: models.iter().map(|m| &m.net as &dyn ModuleT).collect(),
        normalizer: m.normalization.on(o.device),
        options: o,
    };
    let dynamics = joined::read_dynamics(cfg, &run, &m, reporter)?;
    let labels = rows::Labels {
        assigned: &rows::trained_labels(&prepared),
        class_names: &m.dataset.class_names,
        planted: &rows::planted(&prepared),
    };
    let splits = splits(&prepared, o.split)?;
    o.warn_if_slow(reporter);
    let mut rows = rows::score_splits(&scorer, &splits, &labels, dynamics.as_ref(), reporter);
    let mut source = Source::checkpoints(&run, epochs);
    if let Some(record) = capture {
        captured::apply(&run, &m, record, o, &mut rows)?;
        source = source.captured(&run, &m, record);
    }
    let (out_of_sample, features) = joined::add_crossval(cfg, &m, &mut rows, reporter)?;
    let companions = companions(dynamics.is_some(), out_of_sample.is_some(), features);
    let provenance = Provenance {
        run: Some(std::path::absolute(&cfg.run).unwrap_or_else(|_| cfg.run.clone())),
        models: None,
        shard: None,
        dataset_fingerprint: m.dataset.fingerprint.clone(),
        dataset,
        stage: cfg.stage.clone(),
        checkpoint_digests: source.digests(&run, &m)?,
        epochs: source.epochs,
        scored_with: source.scored_with,
        checkpoints: source.checkpoints,
        run_id: Some(m.id()),
        out_of_sample,
        companions,
        incomplete,
        class_names: m.dataset.class_names.clone(),
        captured: source.captured,
        planted: m.config.plant.as_ref().map_or_else(Vec::new, |p| p.kinds()),
    };
    write_scores(o, provenance, rows, started, reporter)
}

/// The companion columns of a run's scores: the checkpoints' own, then the training
/// dynamics, the out-of-sample columns and the features' outlier score where they joined.
fn companions(dynamics: bool, out_of_sample: bool, outliers: bool) -> Vec<Companion> {
    let mut columns = Companion::CHECKPOINT.to_vec();
    if dynamics {
        columns.extend(Companion::DYNAMICS);
    }
    if out_of_sample {
        columns.extend(Companion::OUT_OF_SAMPLE);
    }
    if outliers {
        columns.extend(Companion::FEATURES);
    }
    columns
}

/// The checkpoints a scoring loads: those of its stage, or for captured gradients the
/// last one (its companions and predictions).
fn scored_epochs(cfg: &ScoreConfig, m: &RunManifest, captured: bool) -> Result<Vec<usize>> {
    if captured {
        return m
            .saved_epochs
            .last()
            .map(|&e| vec![e])
            .context("the run saved no checkpoint");
    }
    cfg.stage
        .select(&m.saved_epochs, m.config.hyper.epochs)
        .with_context(|| format!("run '{}'", cfg.run.display()))
}

/// What a run's scores were made from, as the sidecar says it.
struct Source {
    /// The epochs scored: the checkpoints', or the capture epochs.
    epochs: Vec<usize>,
    /// The files, relative to the run: checkpoints, then a captured state.
    checkpoints: Vec<String>,
    /// For the error about non-finite scores.
    scored_with: String,
    captured: Option<scores::CapturedScoring>,
}

impl Source {
    /// Scores of the checkpoints of `epochs`.
    fn checkpoints(run: &RunDir, epochs: Vec<usize>) -> Self {
        let checkpoints: Vec<String> = epochs.iter().map(|&e| RunDir::checkpoint_name(e)).collect();
        Source {
            scored_with: format!(
                "the checkpoints {} of '{}'",
                checkpoints.join(", "),
                run.root().display()
            ),
            epochs,
            checkpoints,
            captured: None,
        }
    }

    /// The same scores with the captured gradients of `record` in place of the VoG.
    fn captured(mut self, run: &RunDir, m: &RunManifest, record: &CaptureRecord) -> Self {
        self.scored_with = format!(
            "the gradients captured in '{}'",
            run.path(&record.file).display()
        );
        self.epochs = record.epochs.clone();
        self.captured = Some(captured::scoring(m, record, &self.checkpoints[0]));
        self.checkpoints.push(record.file.clone());
        self
    }

    /// The digests of the files, as the run recorded them.
    fn digests(&self, run: &RunDir, m: &RunManifest) -> Result<Vec<crate::digest::FileDigest>> {
        self.checkpoints
            .iter()
            .map(|name| match m.files.get(name) {
                Some(d) => Ok(d.clone()),
                None => run.digest(name),
            })
            .collect()
    }
}

/// The splits `choice` names, from the run's data.
fn splits(prepared: &PreparedData, choice: SplitChoice) -> Result<Vec<(SplitKind, &Split)>> {
    choice
        .kinds()
        .iter()
        .map(|&kind| {
            prepared
                .data
                .split(kind)
                .map(|s| (kind, s))
                .context("the run's dataset has no test split (score the train split instead)")
        })
        .collect()
}

/// Refuses a run that has not finished training unless `cfg.allow_incomplete`; returns
/// what it lacks for the sidecar.
fn check_complete(cfg: &ScoreConfig, m: &RunManifest) -> Result<Option<Incomplete>> {
    if m.complete {
        return Ok(None);
    }
    let finished = m.epochs.len();
    let missing: Vec<usize> = m
        .config
        .saved_epochs
        .iter()
        .copied()
        .filter(|e| !m.saved_epochs.contains(e))
        .collect();
    if !cfg.allow_incomplete {
        bail!(
            "run '{}' has finished {finished} of its {} epochs (still training, or stopped), so \
             checkpoints {missing:?} are missing; pass --allow-incomplete to score the ones it has",
            cfg.run.display(),
            m.config.hyper.epochs
        );
    }
    Ok(Some(Incomplete {
        finished_epochs: finished,
        planned_epochs: m.config.hyper.epochs,
        missing_checkpoints: missing,
    }))
}

/// The run's data as training saw it (moved to `cfg.data` if given), checked against the
/// fingerprint the run recorded.
fn load_data(
    cfg: &ScoreConfig,
    run: &RunDir,
    m: &RunManifest,
) -> Result<(crate::data::DatasetSpec, PreparedData)> {
    let dataset =
        match &cfg.data {
            Some(dir) => m.config.dataset.relocated(dir).with_context(|| {
                format!("cannot look for the run's data in '{}'", dir.display())
            })?,
            None => m.config.dataset.clone(),
        };
    let origins = Origins::file(&run.path(MANIFEST), "config.");
    let prepared = prepare::prepare(
        &dataset,
        &m.config.selection(),
        m.config.hyper.seed,
        &origins,
    )?;
    let fingerprint = prepared.data.fingerprint();
    if fingerprint != m.dataset.fingerprint {
        bail!(
            "the dataset ({}) no longer matches the one run '{}' trained on (fingerprint {fingerprint}, run has {})",
            dataset.name(),
            cfg.run.display(),
            m.dataset.fingerprint
        );
    }
    Ok((dataset, prepared))
}
