//! `vog score`: VoG for every example of a run's split from K saved checkpoints.
//!
//! Per batch, all K models (kept loaded) produce the input gradients, which are folded into
//! running statistics at once and reduced to one number per example and target; memory
//! does not grow with the number of examples. Scores are then z-scored within each
//! (split, trained class) and written as CSV plus a JSON sidecar (see [`crate::scores`]).
pub mod models;

use crate::data::prepare::{self, PreparedData};
use crate::data::transform::{self, Normalizer};
use crate::data::DatasetSpec;
use crate::data::{Split, SplitKind};
use crate::dynamics::{self, DynamicsScores};
use crate::epochs::Stage;
use crate::info::Versions;
use crate::model::ResNet;
use crate::origin::Origins;
use crate::precision::Precision;
use crate::progress::{Reporter, Task};
use crate::run_dir::{load_checkpoint, RunDir, RunManifest, MANIFEST};
use crate::scores::{
    self, Companion, Incomplete, ModelScoring, ScoreRow, ScoresMeta, Shard, SplitChoice,
    SCORES_FORMAT,
};
use crate::variance::baselines::checkpoint_scores;
use crate::variance::gradient::{input_gradients, pixel_map};
use crate::variance::reduce::Accumulator;
use crate::variance::{Channels, GradNorm, Target, Variant};
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

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
    /// Refuses options no scoring can run with, and an `out` that cannot be written,
    /// before any work is done.
    fn check(&self) -> Result<()> {
        if self.batch_size == 0 {
            bail!("--batch-size must be at least 1");
        }
        if self.targets.is_empty() {
            bail!("scoring needs at least one target");
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
    /// (`scores-train-captured.csv` for the gradients captured during training).
    pub fn default_out(run: &Path, split: SplitChoice, stage: &Stage) -> PathBuf {
        scores::scores_path(run, split, stage)
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

/// What a sidecar records of where the scores came from; the rest it takes from the
/// [`ScoreOptions`] and the rows.
struct Provenance {
    run: Option<PathBuf>,
    models: Option<ModelScoring>,
    shard: Option<Shard>,
    dataset_fingerprint: String,
    dataset: DatasetSpec,
    stage: Stage,
    epochs: Vec<usize>,
    checkpoints: Vec<String>,
    /// What ties run scores to the run (empty for models): see [`ScoresMeta`].
    checkpoint_digests: Vec<crate::digest::FileDigest>,
    run_id: Option<String>,
    out_of_sample: Option<OutOfSampleRecord>,
    companions: Vec<Companion>,
    incomplete: Option<Incomplete>,
    /// Class names by label, for the warnings about classes without spread.
    class_names: Vec<String>,
    /// What was scored, for the error about non-finite scores.
    scored_with: String,
    captured: Option<scores::CapturedScoring>,
}

/// The one end of every scoring: refuses non-finite scores, z-scores within each class
/// (not for a shard, whose z-scores need every shard), and writes the CSV and its sidecar.
fn write_scores(
    o: &ScoreOptions,
    p: Provenance,
    mut rows: Vec<ScoreRow>,
    started: Instant,
    reporter: &dyn Reporter,
) -> Result<ScoresMeta> {
    check_scores_finite(&rows, || p.scored_with.clone())?;
    let degenerate = match p.shard {
        Some(_) => Default::default(),
        None => {
            let d = scores::normalize_rows(&mut rows, |c| p.class_names[c as usize].clone());
            scores::warn_degenerate(&d, reporter);
            d
        }
    };
    let mut meta = ScoresMeta {
        format: SCORES_FORMAT.into(),
        run: p.run,
        models: p.models,
        shard: p.shard,
        dataset_fingerprint: p.dataset_fingerprint,
        dataset: p.dataset,
        split: o.split,
        stage: p.stage,
        epochs: p.epochs,
        checkpoints: p.checkpoints,
        checkpoint_digests: p.checkpoint_digests,
        run_id: p.run_id,
        out_of_sample: p.out_of_sample.as_ref().map(|o| o.digest.clone()),
        out_of_sample_strength: p.out_of_sample.map(|o| o.strength),
        targets: o.targets.clone(),
        companions: p.companions,
        variant: o.variant,
        examples: rows.len(),
        incomplete: p.incomplete,
        degenerate_classes: degenerate,
        device: o.device,
        seconds: started.elapsed().as_secs_f64(),
        versions: Versions::current(),
        csv: None,
        precision: o.precision,
        captured: p.captured,
    };
    scores::write(&o.out, &mut meta, &rows)?;
    Ok(meta)
}

/// One checkpoint's network, in eval mode.
pub struct LoadedModel {
    /// Owns the network's variables.
    _vs: VarStore,
    pub net: ResNet,
}

/// Loads the checkpoints of `epochs` onto `device`, each checked against the run's network.
pub fn load_models(
    run: &RunDir,
    m: &RunManifest,
    epochs: &[usize],
    device: Device,
    precision: Precision,
) -> Result<Vec<LoadedModel>> {
    let classes = m.dataset.class_names.len() as i64;
    epochs
        .iter()
        .map(|&epoch| {
            let name = RunDir::checkpoint_name(epoch);
            let path = run.path(&name);
            if !path.is_file() {
                bail!("checkpoint '{}' is missing", path.display());
            }
            // Runs from before verified artifacts have no digests to check against.
            if !m.files.is_empty() {
                m.verify_file(run.root(), &name)?;
            }
            let mut vs = VarStore::new(device);
            let net = ResNet::new(&vs.root(), classes, m.config.hyper.width);
            load_checkpoint(&mut vs, &path)?;
            check_finite(&vs, &path)?;
            precision.cast(&mut vs);
            vs.freeze();
            Ok(LoadedModel { _vs: vs, net })
        })
        .collect()
}

/// Refuses scores that are not finite: the checkpoints' gradients overflowed, or the
/// models' logits are not finite; a file of NaN would only mislead every later stage.
/// `with` names what was scored (`the checkpoints ... of 'RUN'`, `the models ...`).
fn check_scores_finite(rows: &[ScoreRow], with: impl FnOnce() -> String) -> Result<()> {
    // Raw VoG and the companions; z-scores come later.
    let bad: Vec<(&ScoreRow, &str)> = rows
        .iter()
        .filter_map(|r| scores::non_finite(r, true).map(|what| (r, what)))
        .collect();
    let Some((first, what)) = bad.first() else {
        return Ok(());
    };
    let subject = match *what {
        "vog_raw" => "the input gradients",
        _ => "the loss, el2n or prob (the models' logits)",
    };
    bail!(
        "{subject} of {} example(s) (first: '{}') are not finite with {}; nothing was written",
        bad.len(),
        first.id,
        with()
    )
}

/// Refuses a checkpoint with a NaN or infinite value (a corrupted file scores as NaN).
fn check_finite(vs: &VarStore, path: &std::path::Path) -> Result<()> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in vars {
        let finite = t.isfinite().all().int64_value(&[]) != 0;
        if !finite {
            bail!(
                "checkpoint '{}' holds non-finite values in '{name}' (corrupted, or a diverged \
                 training)",
                path.display()
            );
        }
    }
    Ok(())
}

/// Raw VoG (one value per target), the checkpoint companion scores and the last model's
/// prediction, per example of a split.
pub struct SplitScores {
    /// `raw[t][i]`: target t, example i.
    pub raw: Vec<Vec<f64>>,
    /// `companions[c][i]`: [`Companion::CHECKPOINT`] c, example i.
    pub companions: Vec<Vec<f64>>,
    pub predicted: Vec<i64>,
}

impl SplitScores {
    /// No examples yet, room for `n` of `targets` targets.
    pub fn with_capacity(n: usize, targets: usize) -> Self {
        SplitScores {
            raw: vec![Vec::with_capacity(n); targets],
            companions: vec![Vec::with_capacity(n); Companion::CHECKPOINT.len()],
            predicted: Vec::with_capacity(n),
        }
    }

    /// Appends the scores of the examples that follow.
    pub fn append(&mut self, next: SplitScores) {
        for (col, v) in self.raw.iter_mut().zip(next.raw) {
            col.extend(v);
        }
        for (col, v) in self.companions.iter_mut().zip(next.companions) {
            col.extend(v);
        }
        self.predicted.extend(next.predicted);
    }
}

/// The scores of consecutive examples, still on the device: [`SplitScores`]' columns as
/// B f64 tensors, the predictions B i64.
struct DeviceScores {
    raw: Vec<Tensor>,
    companions: Vec<Tensor>,
    predicted: Tensor,
}

impl DeviceScores {
    /// The batches one after the other, on the device; `None` without batches.
    fn cat(batches: &[DeviceScores]) -> Option<DeviceScores> {
        let first = batches.first()?;
        let column = |pick: &dyn Fn(&DeviceScores) -> &Tensor| {
            Tensor::cat(&batches.iter().map(pick).collect::<Vec<_>>(), 0)
        };
        Some(DeviceScores {
            raw: (0..first.raw.len())
                .map(|t| column(&|b| &b.raw[t]))
                .collect(),
            companions: (0..first.companions.len())
                .map(|c| column(&|b| &b.companions[c]))
                .collect(),
            predicted: column(&|b| &b.predicted),
        })
    }

    /// Copied to the host (the one point where the host waits for the device).
    fn to_host(&self) -> SplitScores {
        let f64s = |t: &Tensor| Vec::<f64>::try_from(t.to_device(Device::Cpu)).expect("f64 scores");
        SplitScores {
            raw: self.raw.iter().map(f64s).collect(),
            companions: self.companions.iter().map(f64s).collect(),
            predicted: Vec::<i64>::try_from(self.predicted.to_device(Device::Cpu))
                .expect("i64 predictions"),
        }
    }
}

/// Everything that turns a batch into VoG scores.
pub struct Scorer<'a> {
    /// The K checkpoints' networks, in epoch order, all on the options' device, in their
    /// precision (inputs are cast to it).
    pub models: Vec<&'a dyn ModuleT>,
    /// The input normalization, on the device.
    pub normalizer: Normalizer,
    /// The device, targets, variant, batch size and precision.
    pub options: &'a ScoreOptions,
}

impl Scorer<'_> {
    /// Scores `images` (NCHW uint8, CPU) against `labels` (the labels trained with);
    /// `task` advances by one per image and checkpoint.
    /// The uint8 split and its labels go to the device once (a CIFAR split is 150 MB) and
    /// the scores come back once, so the host never waits for the device between batches.
    pub fn score(&self, images: &Tensor, labels: &[i64], task: &dyn Task) -> SplitScores {
        let images = images.to_device(self.options.device);
        let labels_on_device = Tensor::from_slice(labels).to_device(self.options.device);
        let n = labels.len();
        let batches: Vec<DeviceScores> = (0..n)
            .step_by(self.options.batch_size)
            .map(|start| {
                let len = self.options.batch_size.min(n - start) as i64;
                let x = images.narrow(0, start as i64, len);
                let y = labels_on_device.narrow(0, start as i64, len);
                self.score_on_device(&x, &y, task)
            })
            .collect();
        DeviceScores::cat(&batches).map_or_else(
            || SplitScores::with_capacity(0, self.options.targets.len()),
            |all| all.to_host(),
        )
    }

    /// Raw VoG per target, the checkpoint companions and the last checkpoint's
    /// predictions for one batch (NCHW uint8 on any device, its labels on the host).
    pub fn score_batch(&self, images: &Tensor, labels: &[i64], task: &dyn Task) -> SplitScores {
        let x = images.to_device(self.options.device);
        let y = Tensor::from_slice(labels).to_device(self.options.device);
        self.score_on_device(&x, &y, task).to_host()
    }

    /// [`Scorer::score_batch`] of images (NCHW uint8) and labels (B i64) on the device.
    fn score_on_device(&self, images: &Tensor, y: &Tensor, task: &dyn Task) -> DeviceScores {
        let x = self
            .normalizer
            .apply(&transform::to_unit(images))
            .to_kind(self.options.precision.kind());
        let mut accs: Vec<Accumulator> = self
            .options
            .targets
            .iter()
            .map(|_| Accumulator::new())
            .collect();
        let mut all_logits = Vec::with_capacity(self.models.len());
        for m in &self.models {
            let (grads, logits) = input_gradients(*m, &x, y, &self.options.targets);
            let logits = logits.to_kind(Kind::Float);
            for (acc, g) in accs.iter_mut().zip(&grads) {
                acc.push(&pixel_map(
                    g,
                    self.options.variant.channels,
                    self.options.variant.grad_norm,
                ));
            }
            all_logits.push(logits);
            task.advance(y.size()[0] as u64);
        }
        let (loss, el2n, prob) = checkpoint_scores(&all_logits, y);
        DeviceScores {
            raw: accs
                .iter()
                .map(|a| a.finish(self.options.variant.reduce))
                .collect(),
            companions: vec![loss, el2n, prob],
            predicted: all_logits[all_logits.len() - 1].argmax(1, false),
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
    crate::device::tune_for(o.device);
    o.check()?;
    let run = RunDir::open_shared(&cfg.run)?;
    let m = run.read_manifest()?;
    let incomplete = check_complete(cfg, &m)?;
    let capture = match cfg.stage {
        Stage::Captured => Some(check_captured(cfg, &m)?),
        _ => None,
    };
    let epochs = match capture {
        // The companions and predictions come from the last checkpoint.
        Some(_) => m
            .saved_epochs
            .last()
            .map(|&e| vec![e])
            .context("the run saved no checkpoint")?,
        None => cfg
            .stage
            .select(&m.saved_epochs, m.config.hyper.epochs)
            .with_context(|| format!("run '{}'", cfg.run.display()))?,
    };
    let models = load_models(&run, &m, &epochs, o.device, o.precision)?;
    let (dataset, prepared) = load_data(cfg, &run, &m)?;
    let scorer = Scorer {
        models: models.iter().map(|m| &m.net as &dyn ModuleT).collect(),
        normalizer: m.normalization.on(o.device),
        options: o,
    };
    let dynamics = read_dynamics(cfg, &run, &m, reporter)?;
    let labels = Labels {
        assigned: &trained_labels(&prepared),
        class_names: &m.dataset.class_names,
    };
    let splits = splits(&prepared, o.split)?;
    let mut rows = score_splits(&scorer, &splits, &labels, dynamics.as_ref(), reporter);
    let mut checkpoints: Vec<String> = epochs.iter().map(|&e| RunDir::checkpoint_name(e)).collect();
    let mut scored_with = format!(
        "the checkpoints {} of '{}'",
        checkpoints.join(", "),
        run.root().display()
    );
    let mut scored_epochs = epochs;
    let mut captured = None;
    if let Some(record) = capture {
        apply_captured(&run, &m, record, o, &mut rows)?;
        scored_with = format!(
            "the gradients captured in '{}'",
            run.path(&record.file).display()
        );
        scored_epochs = record.epochs.clone();
        captured = Some(scores::CapturedScoring {
            protocol: format!(
                "captured during training: after each optimizer step of epochs {:?}, in eval \
                 mode, the input gradient of each example of the batch just trained on ({}), \
                 averaged over colour channels",
                record.epochs,
                match m.config.hyper.augment {
                    true => "augmented as trained",
                    false => "no augmentation",
                }
            ),
            file: record.file.clone(),
            companions_from: checkpoints[0].clone(),
        });
        checkpoints.push(record.file.clone());
    }
    let mut companions = Companion::CHECKPOINT.to_vec();
    if dynamics.is_some() {
        companions.extend(Companion::DYNAMICS);
    }
    let out_of_sample = add_out_of_sample(cfg, &m, &mut rows, reporter)?;
    if out_of_sample.is_some() {
        companions.extend(Companion::OUT_OF_SAMPLE);
    }
    let checkpoint_digests = checkpoints
        .iter()
        .map(|name| match m.files.get(name) {
            Some(d) => Ok(d.clone()),
            None => run.digest(name),
        })
        .collect::<Result<_>>()?;
    let provenance = Provenance {
        run: Some(std::path::absolute(&cfg.run).unwrap_or_else(|_| cfg.run.clone())),
        models: None,
        shard: None,
        dataset_fingerprint: m.dataset.fingerprint.clone(),
        dataset,
        stage: cfg.stage.clone(),
        epochs: scored_epochs,
        scored_with,
        checkpoints,
        checkpoint_digests,
        run_id: Some(m.id()),
        out_of_sample,
        companions,
        incomplete,
        class_names: m.dataset.class_names.clone(),
        captured,
    };
    write_scores(o, provenance, rows, started, reporter)
}

/// The run's captured gradients, where `vog score --captured` (the stage `captured`) can
/// use them as asked.
fn check_captured<'a>(
    cfg: &ScoreConfig,
    m: &'a RunManifest,
) -> Result<&'a crate::run_dir::CaptureRecord> {
    let o = &cfg.options;
    if o.split != SplitChoice::Train {
        bail!(
            "--captured scores training examples only: gradients are captured on the batches \
             trained on, and test images are never trained on (--split train, its default; score the \
             test split from checkpoints)"
        );
    }
    let Some(record) = &m.captured else {
        bail!(
            "run '{}' captured no gradients during training (train with --capture-epochs, e.g. \
             first:1,last:1)",
            cfg.run.display()
        );
    };
    if record.epochs != m.config.captured_epochs {
        bail!(
            "run '{}' has captured the gradients of epochs {:?} of {:?} (it has not finished \
             training)",
            cfg.run.display(),
            record.epochs,
            m.config.captured_epochs
        );
    }
    if o.variant.channels != Channels::Mean || o.variant.grad_norm != GradNorm::None {
        bail!("captured gradients are kept as channel means without normalization: --captured takes --channels mean --grad-norm none only");
    }
    if let Some(t) = o.targets.iter().find(|t| !record.targets.contains(t)) {
        bail!(
            "--target {t} was not captured (run '{}' captured {})",
            cfg.run.display(),
            record
                .targets
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    if o.precision != Precision::Fp32 {
        bail!("--precision sets the passes of a scoring, and captured gradients were taken in fp32 during training: --captured takes --precision fp32 only");
    }
    Ok(record)
}

/// Puts the captured VoG of each target into the training rows (whose `index` is the
/// example's place in the training split, as captured).
fn apply_captured(
    run: &RunDir,
    m: &RunManifest,
    record: &crate::run_dir::CaptureRecord,
    o: &ScoreOptions,
    rows: &mut [ScoreRow],
) -> Result<()> {
    let c = crate::run_dir::read_captured(run.root(), m, record, Device::Cpu)?;
    let values: Vec<Vec<f64>> = o
        .targets
        .iter()
        .map(|t| {
            let at = record.targets.iter().position(|x| x == t).expect("checked");
            c.finish(at, o.variant.reduce)
        })
        .collect::<Result<_>>()?;
    for r in rows.iter_mut() {
        for (score, v) in r.scores.iter_mut().zip(&values) {
            score.0 = v[r.index];
        }
    }
    Ok(())
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

/// What the rows need to know about labels.
struct Labels<'a> {
    /// id -> the label trained with, where it was shuffled.
    assigned: &'a HashMap<String, i64>,
    class_names: &'a [String],
}

/// The training-dynamics scores of the run's training split, when the train split is scored
/// and the run recorded them (runs from before it did not: said once).
fn read_dynamics(
    cfg: &ScoreConfig,
    run: &RunDir,
    m: &RunManifest,
    reporter: &dyn Reporter,
) -> Result<Option<DynamicsScores>> {
    if !cfg.options.split.kinds().contains(&SplitKind::Train) {
        return Ok(None);
    }
    let Some(dir) = &m.dynamics else {
        reporter.warn("the run has no training dynamics (it was trained by an older vog), so the scores lack confidence, variability, correctness, forgetting and aum");
        return Ok(None);
    };
    let records = dynamics::read_run(
        run.root(),
        m.epochs.len(),
        m.dataset.train_examples,
        &m.dataset.fingerprint,
    )
    .with_context(|| format!("run '{}' ({dir}/)", cfg.run.display()))?;
    Ok(Some(dynamics::summarize(&records)))
}

/// Scores every split (labels as trained); the rows carry raw VoG and NaN z-scores.
fn score_splits(
    scorer: &Scorer,
    splits: &[(SplitKind, &Split)],
    labels: &Labels,
    dynamics: Option<&DynamicsScores>,
    reporter: &dyn Reporter,
) -> Vec<ScoreRow> {
    let (assigned, class_names) = (labels.assigned, labels.class_names);
    let total: usize = splits.iter().map(|(_, s)| s.len()).sum();
    let task = reporter.task(
        "scoring",
        (total * scorer.models.len()) as u64,
        "image x checkpoint",
    );
    let mut rows = Vec::with_capacity(total);
    for &(kind, split) in splits {
        let trained: Vec<i64> = split
            .ids
            .iter()
            .zip(&split.labels)
            .map(|(id, &l)| *assigned.get(id).unwrap_or(&l))
            .collect();
        let s = scorer.score(&split.images, &trained, task.as_ref());
        rows.extend(split_rows(kind, split, &trained, &s, class_names, dynamics));
    }
    rows
}

/// Where the out-of-sample columns came from: the probabilities' digest, and how strong
/// their fold models were.
struct OutOfSampleRecord {
    digest: crate::digest::FileDigest,
    strength: crate::confident::Strength,
}

/// Adds the out-of-sample scores of `vog crossval` (where it ran) to the training rows,
/// empty in test rows; returns where they came from, if they were added. A crossval begun
/// and not finished is said.
fn add_out_of_sample(
    cfg: &ScoreConfig,
    m: &RunManifest,
    rows: &mut [ScoreRow],
    reporter: &dyn Reporter,
) -> Result<Option<OutOfSampleRecord>> {
    if !cfg.options.split.kinds().contains(&SplitKind::Train) {
        return Ok(None);
    }
    let oof = crate::oof::read(&cfg.run, &m.id(), &m.dataset.fingerprint)?;
    let (oos, meta) = match oof {
        crate::oof::State::Gathered(oos, meta) => (oos, meta),
        crate::oof::State::None => return Ok(None),
        crate::oof::State::Unfinished(why) => {
            reporter.warn(&format!(
                "{why}: these scores have no out-of-sample columns"
            ));
            return Ok(None);
        }
    };
    let issues = crate::confident::label_issues(&oos.labels, &oos.probs)?;
    let columns = [
        crate::confident::self_confidence(&oos.labels, &oos.probs),
        crate::confident::normalized_margin(&oos.labels, &oos.probs),
        crate::confident::entropy(&oos.probs),
        issues.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect(),
    ];
    let at: HashMap<&str, usize> = oos
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    for r in rows.iter_mut() {
        if r.split != SplitKind::Train {
            r.companions.extend([None; 4]);
            continue;
        }
        let i = match at.get(r.id.as_str()) {
            Some(&i) if oos.labels[i] as i64 == r.trained_label => i,
            _ => bail!(
                "the out-of-sample probabilities in '{}' do not cover training example '{}' with \
                 its label (the run changed since vog crossval ran: run it again)",
                cfg.run.join(crate::oof::DIR).display(),
                r.id
            ),
        };
        r.companions.extend(columns.iter().map(|c| Some(c[i])));
        r.suggested_label = Some(crate::confident::argmax(&oos.probs[i]) as i64);
    }
    let strength = strength(&meta, &issues, &oos)?;
    Ok(Some(OutOfSampleRecord {
        digest: meta.csv,
        strength,
    }))
}

/// How strong the fold models of `meta` were (their pooled held-out agreement with the
/// given labels against their mean accuracy on the clean test split), and what that allows
/// of the `issues` they flag.
fn strength(
    meta: &crate::oof::ProbsMeta,
    issues: &[bool],
    oos: &crate::oof::OutOfSample,
) -> Result<crate::confident::Strength> {
    let folds = &meta.fold_records;
    let held: usize = folds.iter().map(|f| f.examples).sum();
    let right: f64 = folds.iter().map(|f| f.accuracy * f.examples as f64).sum();
    let tests: Option<Vec<f64>> = folds.iter().map(|f| f.test_accuracy).collect();
    let fit = crate::confident::FoldFit {
        given: right / held.max(1) as f64,
        test: tests
            .filter(|t| !t.is_empty())
            .zip(meta.test_examples)
            .map(|(t, n)| (t.iter().sum::<f64>() / t.len() as f64, n)),
        run_test: meta.run_test_accuracy,
        classes: meta.classes,
    };
    let flagged = issues.iter().filter(|&&b| b).count();
    Ok(crate::confident::Strength::new(
        fit,
        (flagged, issues.len()),
        crate::confident::joint_noise_rate(&oos.labels, &oos.probs)?,
    ))
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

/// The scores file's rows of one split; `dynamics`, where the run recorded them, fill the
/// training rows' dynamics columns and leave the test rows' empty.
fn split_rows(
    kind: SplitKind,
    split: &Split,
    trained: &[i64],
    s: &SplitScores,
    class_names: &[String],
    dynamics: Option<&DynamicsScores>,
) -> Vec<ScoreRow> {
    let companions = |i: usize| -> Vec<Option<f64>> {
        let mut v: Vec<Option<f64>> = s.companions.iter().map(|c| Some(c[i])).collect();
        if let Some(d) = dynamics {
            let columns = [
                &d.confidence,
                &d.variability,
                &d.correctness,
                &d.forgetting,
                &d.aum,
            ];
            v.extend(columns.map(|c| (kind == SplitKind::Train).then(|| c[i])));
        }
        v
    };
    (0..split.len())
        .map(|i| ScoreRow {
            id: split.ids[i].clone(),
            split: kind,
            index: i,
            label: split.labels[i],
            label_name: class_names[split.labels[i] as usize].clone(),
            trained_label: trained[i],
            noisy: trained[i] != split.labels[i],
            predicted: s.predicted[i],
            correct: s.predicted[i] == split.labels[i],
            scores: s.raw.iter().map(|r| (r[i], f64::NAN)).collect(),
            companions: companions(i),
            suggested_label: None,
        })
        .collect()
}

/// id -> the label trained with, where it is not the dataset's: shuffled by the run's
/// label noise or relabelled by a person, as training saw it.
fn trained_labels(prepared: &PreparedData) -> HashMap<String, i64> {
    let train = &prepared.data.train;
    train
        .ids
        .iter()
        .zip(&train.labels)
        .zip(&prepared.train_labels)
        .filter(|((_, dataset), trained)| dataset != trained)
        .map(|((id, _), &trained)| (id.clone(), trained))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variance::{Channels, GradNorm, Reduce};

    /// logits = flatten(x) W^T: the input gradient of logit p is row p of W.
    #[derive(Debug)]
    struct Linear(Tensor);

    impl ModuleT for Linear {
        fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
            x.flatten(1, -1).matmul(&self.0.tr())
        }
    }

    fn options(targets: Vec<Target>, variant: Variant, batch_size: usize) -> ScoreOptions {
        ScoreOptions {
            split: SplitChoice::Test,
            out: "unused.csv".into(),
            batch_size,
            device: Device::Cpu,
            targets,
            variant,
            precision: Precision::Fp32,
        }
    }

    /// Images of 3 channels x 1 x 2 pixels, 2 classes, K = 2 checkpoints (two linear
    /// models), and the normalization.
    fn linear_setup() -> (
        Linear,
        Linear,
        Tensor,
        crate::data::transform::Normalization,
    ) {
        let w1 = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 0., 0., 0., 0., 0., 0.])
            .view([2, 6]);
        let w2 = Tensor::from_slice(&[3.0f32, 2.0, 1.0, 4.0, 5.0, 0.0, 5., 5., 5., 5., 5., 5.])
            .view([2, 6]);
        let images = Tensor::from_slice(&[200u8, 210, 220, 230, 240, 250, 1, 2, 3, 4, 5, 6])
            .view([2, 3, 1, 2]);
        let norm = crate::data::transform::Normalization {
            mean: [0.1, 0.2, 0.3],
            std: [0.5, 0.25, 2.0],
        };
        (Linear(w1), Linear(w2), images, norm)
    }

    #[test]
    fn closed_form_linear_models() {
        let (m1, m2, images, norm) = linear_setup();
        let score = |variant| {
            let o = options(vec![Target::Logit], variant, 1);
            let s = Scorer {
                models: vec![&m1 as &dyn ModuleT, &m2],
                normalizer: norm.on(Device::Cpu),
                options: &o,
            };
            s.score(&images, &[0, 1], &crate::progress::NoTask)
        };
        // Example 0 (class 0): channel-mean maps, pixel order (x=0, x=1):
        //   W1 row 0 -> channels (1,2),(3,4),(5,6) -> means (3, 4); W2 row 0 -> (3,2),(1,4),(5,0) -> (3, 2).
        //   Pixel variances over K: (0, 1) -> paper sqrt(1/2), official (0 + 1)/2.
        // Example 1 (class 1): maps (0, 0) and (5, 5): variances (25/4, 25/4) -> 5/2 for both.
        let paper = score(Variant::default());
        assert!(
            (paper.raw[0][0] - 0.5f64.sqrt()).abs() < 1e-12,
            "{:?}",
            paper.raw
        );
        assert!((paper.raw[0][1] - 2.5).abs() < 1e-12);
        let official = score(Variant {
            reduce: Reduce::Official,
            ..Variant::default()
        });
        assert!(
            (official.raw[0][0] - 0.5).abs() < 1e-12 && (official.raw[0][1] - 2.5).abs() < 1e-12
        );
        // Every channel value a pixel: example 0 differences W1-W2 = (-2, 0, 2, 0, 0, 6), so
        // deviations are half of that: variances (1, 0, 1, 0, 0, 9) -> paper sqrt(11/6).
        let all = score(Variant {
            channels: Channels::All,
            ..Variant::default()
        });
        assert!((all.raw[0][0] - (11.0f64 / 6.0).sqrt()).abs() < 1e-12);
        // cv: example 1 has mean |S| = (0 + 0 + 5 + 5) / 4 = 5/2 -> (5/2) / (5/2) = 1.
        let cv = score(Variant {
            reduce: Reduce::Cv,
            ..Variant::default()
        });
        assert!((cv.raw[0][1] - 1.0).abs() < 1e-12);
        // Unit norm: example 1's second map (5, 5) becomes (1/sqrt2, 1/sqrt2), the first stays 0.
        let unit = score(Variant {
            grad_norm: GradNorm::Unit,
            ..Variant::default()
        });
        // Pixel means (1/(2 sqrt2)) twice, variances 1/8 each -> paper sqrt(1/8).
        assert!((unit.raw[0][1] - 0.125f64.sqrt()).abs() < 1e-12);
        // Predictions come from the last checkpoint, which here disagrees with the first.
        let x = norm.apply(&transform::to_unit(&images));
        let argmax =
            |m: &Linear| Vec::<i64>::try_from(m.forward_t(&x, false).argmax(1, false)).unwrap();
        assert_eq!(paper.predicted, argmax(&m2));
        assert_ne!(paper.predicted, argmax(&m1));
    }

    #[test]
    fn no_images_no_scores() {
        let m = Linear(Tensor::ones([2, 6], (Kind::Float, Device::Cpu)));
        let o = options(vec![Target::Logit, Target::Prob], Variant::default(), 4);
        let s = Scorer {
            models: vec![&m as &dyn ModuleT, &m],
            normalizer: crate::data::transform::Normalization::CIFAR10.on(Device::Cpu),
            options: &o,
        };
        let none = Tensor::zeros([0, 3, 1, 2], (Kind::Uint8, Device::Cpu));
        let out = s.score(&none, &[], &crate::progress::NoTask);
        assert_eq!(out.raw, vec![Vec::<f64>::new(); 2]);
        assert_eq!(out.companions.len(), Companion::CHECKPOINT.len());
        assert!(out.companions.iter().all(Vec::is_empty) && out.predicted.is_empty());
    }
}
