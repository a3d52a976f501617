//! `vog score --model`: VoG of a user's TorchScript checkpoints (see [`crate::scripted`]) on
//! an image folder or manifest streamed batch by batch (see [`crate::data::stream`]).
//!
//! The gradient, reduction and companion scores are those of a run's scoring
//! ([`super::Scorer`]); only where the models and images come from differs. With
//! `--shard I/N` the file holds raw VoG of one slice, without z-scores, for `vog merge`.
use super::{Provenance, ScoreOptions, Scorer};
use crate::data::stream::{self, Listing, StreamSpec};
use crate::data::transform::Normalization;
use crate::data::{DatasetSpec, SplitKind};
use crate::epochs::Stage;
use crate::progress::Reporter;
use crate::scores::{Companion, ModelFile, ModelScoring, ScoreRow, ScoresMeta, Shard};
use crate::scripted::{self, ScriptedModel};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Instant;
use tch::nn::ModuleT;
use tch::Tensor;

/// A validated `vog score --model` request.
#[derive(Debug, Clone)]
pub struct ModelScoreConfig {
    /// TorchScript files, in checkpoint order.
    pub models: Vec<PathBuf>,
    pub data: StreamSpec,
    pub normalization: Normalization,
    /// Score only that slice (raw VoG, for `vog merge`).
    pub shard: Option<ShardSpec>,
    pub options: ScoreOptions,
}

/// `--shard I/N`: shard `index` of `count`, from 0.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShardSpec {
    pub index: usize,
    pub count: usize,
}

/// `I/N` (part I of N, from 0), as `--shard` and `vog prune --task` take it; `flag` names
/// the option in the error.
pub fn index_of(s: &str, flag: &str) -> Result<(usize, usize), String> {
    let bad = || format!("{flag} '{s}' must be I/N with 0 <= I < N, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (index, count): (usize, usize) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if index >= count {
        return Err(bad());
    }
    Ok((index, count))
}

impl std::str::FromStr for ShardSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (index, count) = index_of(s, "--shard")?;
        Ok(ShardSpec { index, count })
    }
}

impl ShardSpec {
    /// The shard of a scoring of `total` examples in batches of `batch_size`.
    fn of(self, total: usize, batch_size: usize) -> Shard {
        Shard {
            index: self.index,
            count: self.count,
            total,
            batch_size,
        }
    }
}

impl ModelScoreConfig {
    /// The batch size TorchScript models are scored with unless told, on every device:
    /// the model's memory per image is not known in advance (an ImageNet-sized network on
    /// 224x224 inputs needs many times what the CIFAR ResNet-18 does), so it stays at a
    /// batch that such networks usually train with on one GPU.
    pub const DEFAULT_BATCH_SIZE: usize = 128;
}

/// Runs `vog score --model`; returns the sidecar written next to the CSV.
pub fn run(cfg: &ModelScoreConfig, reporter: &dyn Reporter) -> Result<ScoresMeta> {
    let started = Instant::now();
    let o = &cfg.options;
    crate::device::tune_for(o.device, false);
    o.check()?;
    let mut listing = cfg.data.list(o.split.kinds())?;
    let models = scripted::load_all(&cfg.models, o.device, o.precision)?;
    let (_, first) = listing.entries().next().context("no images to score")?;
    let probe = stream::load_image(&first.path, &cfg.data.preprocess)?;
    let (w, h) = probe.dimensions();
    check_batch_memory(o.batch_size, (w, h))?;
    check_models(&models, &probe, cfg, &mut listing)?;
    let files = model_files(&cfg.models)?;
    reporter.info(&format!(
        "checkpoint order: {}",
        cfg.models
            .iter()
            .map(|p| scripted::file_name(p))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    let shard = cfg.shard.map(|s| s.of(listing.len(), o.batch_size));
    let range = shard.map_or(0..listing.len(), |s| s.range());
    let scorer = Scorer {
        models: models.iter().map(|m| m as &dyn ModuleT).collect(),
        normalizer: cfg.normalization.on(o.device),
        options: o,
    };
    o.warn_if_slow(reporter);
    let rows = score_stream(&scorer, &listing, range, cfg, (w, h), reporter)?;
    let provenance = Provenance {
        run: None,
        models: Some(ModelScoring {
            files,
            normalization: cfg.normalization.clone(),
            input: [3, h as i64, w as i64],
        }),
        shard,
        dataset_fingerprint: listing.fingerprint(),
        dataset: DatasetSpec::Stream(absolute(&cfg.data)),
        stage: Stage::All,
        epochs: (1..=cfg.models.len()).collect(),
        checkpoints: cfg.models.iter().map(|p| scripted::file_name(p)).collect(),
        checkpoint_digests: Vec::new(),
        run_id: None,
        out_of_sample: None,
        companions: Companion::CHECKPOINT.to_vec(),
        incomplete: None,
        class_names: listing.class_names.clone(),
        captured: None,
        planted: Vec::new(),
        scored_with: {
            let names: Vec<String> = cfg.models.iter().map(|p| p.display().to_string()).collect();
            format!("the models {}", names.join(", "))
        },
    };
    super::write_scores(o, provenance, rows, started, reporter)
}

/// Each model file's absolute path and digest, for the sidecar; at least two, no two the
/// same model: VoG is a variance across checkpoints, 0 for every example of one.
fn model_files(paths: &[PathBuf]) -> Result<Vec<ModelFile>> {
    if paths.len() < 2 {
        bail!(
            "--model needs at least two checkpoints of one model (VoG is the variance of the \
             gradients across checkpoints; one checkpoint gives 0 for every example)"
        );
    }
    let files: Vec<ModelFile> = paths
        .iter()
        .map(|p| {
            Ok(ModelFile {
                path: std::path::absolute(p).unwrap_or_else(|_| p.clone()),
                digest: crate::digest::of_file(p)?,
            })
        })
        .collect::<Result<_>>()?;
    for (i, f) in files.iter().enumerate() {
        if let Some(same) = files[..i].iter().find(|g| g.digest == f.digest) {
            bail!(
                "'{}' and '{}' are the same model (same SHA-256): VoG needs distinct checkpoints",
                same.path.display(),
                f.path.display()
            );
        }
    }
    Ok(files)
}

/// The most memory one batch's input may take as f32 (its gradient takes as much again).
const MAX_BATCH_BYTES: u64 = 16 << 30;

/// Refuses a batch of `w`x`h` images too large to hold, before anything is allocated.
fn check_batch_memory(batch_size: usize, (w, h): (u32, u32)) -> Result<()> {
    let bytes = batch_size as u64 * 3 * u64::from(w) * u64::from(h) * 4;
    if bytes > MAX_BATCH_BYTES {
        bail!(
            "a batch of {batch_size} images of {w}x{h} pixels needs {:.0} GiB as f32 (at most {} \
             GiB): lower --batch-size, --resize or --crop",
            bytes as f64 / (1u64 << 30) as f64,
            MAX_BATCH_BYTES >> 30
        );
    }
    Ok(())
}

/// The spec with absolute paths, so the sidecar finds the images from anywhere.
fn absolute(spec: &StreamSpec) -> StreamSpec {
    let abs = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    StreamSpec {
        source: match &spec.source {
            stream::Source::Folder { root } => stream::Source::Folder { root: abs(root) },
            stream::Source::Manifest { file } => stream::Source::Manifest { file: abs(file) },
        },
        classes: spec.classes.as_ref().map(abs),
        preprocess: spec.preprocess,
    }
}

/// Every model takes the first image as scoring will feed it and returns one logit per
/// class; done before any scoring so a wrong input size or class count fails at once.
/// Integer labels without a class file index the model's outputs, which may be more than
/// the labels use: the class list then grows to the model's width.
fn check_models(
    models: &[ScriptedModel],
    probe: &image::RgbImage,
    cfg: &ModelScoreConfig,
    listing: &mut Listing,
) -> Result<()> {
    let (w, h) = probe.dimensions();
    let mut chw = Vec::with_capacity((3 * w * h) as usize);
    crate::data::folder::push_chw(probe, &mut chw);
    let x = cfg
        .normalization
        .apply(&crate::data::transform::to_unit(
            &Tensor::from_slice(&chw).view([1, 3, h as i64, w as i64]),
        ))
        .to_device(cfg.options.device)
        .to_kind(cfg.options.precision.kind());
    // Two images, so a model that ignores the batch size is caught here, not in scoring.
    let x = Tensor::cat(&[&x, &x], 0);
    let width = models[0].output_width(&x, "[batch, classes] logits")?;
    if listing.indexed && width > listing.class_names.len() {
        listing.class_names = (0..width).map(|i| i.to_string()).collect();
    }
    check_labels(listing, width, &models[0])?;
    for m in models {
        m.check_output(&x, listing.class_names.len())?;
        m.check_gradient(&x)?;
    }
    Ok(())
}

/// Refuses an integer label the model has no logit for, naming the image.
fn check_labels(listing: &Listing, width: usize, model: &ScriptedModel) -> Result<()> {
    if !listing.indexed {
        return Ok(());
    }
    match listing.entries().find(|(_, e)| e.label as usize >= width) {
        Some((_, e)) => bail!(
            "image '{}' has label {}, but model '{}' returns {width} logits (labels 0-{})",
            e.id,
            e.label,
            model.path.display(),
            width - 1
        ),
        None => Ok(()),
    }
}

/// Scores the examples at `range` of the listing's order, batch by batch as they are
/// decoded; rows carry raw VoG and NaN z-scores.
fn score_stream(
    scorer: &Scorer,
    listing: &Listing,
    range: std::ops::Range<usize>,
    cfg: &ModelScoreConfig,
    size: (u32, u32),
    reporter: &dyn Reporter,
) -> Result<Vec<ScoreRow>> {
    // (split, index within the split, entry) in scoring order.
    let mut positions = Vec::with_capacity(listing.len());
    for (kind, entries) in &listing.splits {
        positions.extend(entries.iter().enumerate().map(|(i, e)| (*kind, i, e)));
    }
    let slice = &positions[range];
    let device = crate::device::describe(scorer.options.device);
    let task = reporter.task(
        &format!("scoring on {device}"),
        (slice.len() * scorer.models.len()) as u64,
        "image x checkpoint",
    );
    let paths = slice.iter().map(|(_, _, e)| e.path.clone()).collect();
    // Results go into vectors reserved up front and rows are built at the end: small
    // allocations that live on, made between each batch's large transient ones, fragment
    // the heap so that memory grows with the number of batches.
    let n = slice.len();
    let mut all = super::SplitScores::with_capacity(n, scorer.options.targets.len());
    for batch in stream::batches(paths, cfg.data.preprocess, size, cfg.options.batch_size) {
        let batch = batch?;
        let len = batch.images.size()[0] as usize;
        let part = &slice[batch.start..batch.start + len];
        let labels: Vec<i64> = part.iter().map(|(_, _, e)| e.label).collect();
        all.append(scorer.score_batch(&batch.images, &labels, task.as_ref()));
        if reporter.stop_requested() {
            bail!("stopped by the user; nothing was written");
        }
    }
    Ok(slice
        .iter()
        .enumerate()
        .map(|(j, &(kind, index, e))| row(kind, index, e, &listing.class_names, &all, j))
        .collect())
}

fn row(
    split: SplitKind,
    index: usize,
    e: &stream::Entry,
    class_names: &[String],
    s: &super::SplitScores,
    j: usize,
) -> ScoreRow {
    ScoreRow {
        id: e.id.clone(),
        split,
        index,
        label: e.label,
        label_name: class_names[e.label as usize].clone(),
        trained_label: e.label,
        noisy: false,
        predicted: s.predicted[j],
        correct: s.predicted[j] == e.label,
        scores: s.raw.iter().map(|r| (r[j], f64::NAN)).collect(),
        companions: s.companions.iter().map(|c| Some(c[j])).collect(),
        suggested_label: None,
        planted: None,
        near_duplicate_set: None,
    }
}
