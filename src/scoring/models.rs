//! `vog score --model`: VoG of a user's TorchScript checkpoints (see [`crate::scripted`]) on
//! an image folder or manifest streamed batch by batch (see [`crate::data::stream`]).
//!
//! The gradient, reduction and companion scores are those of a run's scoring
//! ([`super::Scorer`]); only where the models and images come from differs. With
//! `--shard I/N` the file holds raw VoG of one slice, without z-scores, for `vog merge`.
use super::Scorer;
use crate::data::stream::{self, Listing, StreamSpec};
use crate::data::transform::Normalization;
use crate::data::{DatasetSpec, SplitKind};
use crate::epochs::Stage;
use crate::info::Versions;
use crate::model::Precision;
use crate::progress::Reporter;
use crate::scores::{
    self, Companion, ModelFile, ModelScoring, ScoreRow, ScoresMeta, Shard, SplitChoice,
    SCORES_FORMAT,
};
use crate::scripted::{self, ScriptedModel};
use crate::variance::{Target, Variant};
use anyhow::{bail, Context, Result};
use std::path::PathBuf;
use std::time::Instant;
use tch::nn::ModuleT;
use tch::{Device, Tensor};

/// A validated `vog score --model` request.
#[derive(Debug, Clone)]
pub struct ModelScoreConfig {
    /// TorchScript files, in checkpoint order.
    pub models: Vec<PathBuf>,
    pub data: StreamSpec,
    pub split: SplitChoice,
    pub normalization: Normalization,
    pub out: PathBuf,
    pub batch_size: usize,
    pub device: Device,
    /// At least one, none twice.
    pub targets: Vec<Target>,
    pub variant: Variant,
    pub precision: Precision,
    /// (index, count): score only that slice.
    pub shard: Option<(usize, usize)>,
}

/// The batch size TorchScript models are scored with unless told, on every device: the
/// model's memory per image is not known in advance (an ImageNet-sized network on 224x224
/// inputs needs many times what the CIFAR ResNet-18 does), so it stays at a batch that
/// such networks usually train with on one GPU.
pub const DEFAULT_BATCH_SIZE: usize = 128;

/// Runs `vog score --model`; returns the sidecar written next to the CSV.
pub fn run(cfg: &ModelScoreConfig, reporter: &dyn Reporter) -> Result<ScoresMeta> {
    let started = Instant::now();
    crate::device::tune_for(cfg.device);
    if cfg.batch_size == 0 || cfg.targets.is_empty() || cfg.models.is_empty() {
        bail!("scoring needs a batch size of at least 1, a target and a model");
    }
    scores::check_out(&cfg.out)?;
    let mut listing = cfg.data.list(cfg.split.kinds())?;
    let models = scripted::load_all(&cfg.models, cfg.device, cfg.precision)?;
    let (_, first) = listing.entries().next().context("no images to score")?;
    let probe = stream::load_image(&first.path, &cfg.data.preprocess)?;
    let (w, h) = probe.dimensions();
    check_models(&models, &probe, cfg, &mut listing)?;
    let files = cfg
        .models
        .iter()
        .map(|p| {
            Ok(ModelFile {
                path: std::path::absolute(p).unwrap_or_else(|_| p.clone()),
                digest: crate::digest::of_file(p)?,
            })
        })
        .collect::<Result<Vec<_>>>()?;

    let shard = cfg.shard.map(|(index, count)| Shard {
        index,
        count,
        total: listing.len(),
        batch_size: cfg.batch_size,
    });
    let range = shard.map_or(0..listing.len(), |s| s.range());
    let scorer = Scorer {
        models: models.iter().map(|m| m as &dyn ModuleT).collect(),
        device: cfg.device,
        normalizer: cfg.normalization.on(cfg.device),
        targets: &cfg.targets,
        variant: cfg.variant,
        batch_size: cfg.batch_size,
        precision: cfg.precision,
    };
    let mut rows = score_stream(&scorer, &listing, range, cfg, (w, h), reporter)?;
    super::check_scores_finite(&rows, || {
        let names: Vec<String> = cfg.models.iter().map(|p| p.display().to_string()).collect();
        format!("the models {}", names.join(", "))
    })?;
    let degenerate = match shard {
        Some(_) => Default::default(),
        None => {
            let names = &listing.class_names;
            let d = scores::normalize_rows(&mut rows, |c| names[c as usize].clone());
            scores::warn_degenerate(&d, reporter);
            d
        }
    };
    let mut meta = ScoresMeta {
        format: SCORES_FORMAT.into(),
        run: None,
        models: Some(ModelScoring {
            files,
            normalization: cfg.normalization.clone(),
            input: [3, h as i64, w as i64],
        }),
        shard,
        dataset_fingerprint: listing.fingerprint(),
        dataset: DatasetSpec::Stream(absolute(&cfg.data)),
        split: cfg.split,
        stage: Stage::All,
        epochs: (1..=cfg.models.len()).collect(),
        checkpoints: cfg
            .models
            .iter()
            .map(|p| {
                p.file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .into_owned()
            })
            .collect(),
        targets: cfg.targets.clone(),
        companions: Companion::CHECKPOINT.to_vec(),
        variant: cfg.variant,
        examples: rows.len(),
        incomplete: None,
        degenerate_classes: degenerate,
        device: cfg.device,
        seconds: started.elapsed().as_secs_f64(),
        versions: Versions::current(),
        csv: None,
        precision: cfg.precision,
    };
    scores::write(&cfg.out, &mut meta, &rows)?;
    Ok(meta)
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
        .to_device(cfg.device)
        .to_kind(cfg.precision.kind());
    let width = models[0].output_width(&x)?;
    if listing.indexed && width > listing.class_names.len() {
        listing.class_names = (0..width).map(|i| i.to_string()).collect();
    }
    for m in models {
        m.check_output(&x, listing.class_names.len())?;
    }
    Ok(())
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
    let task = reporter.task(
        "scoring",
        (slice.len() * scorer.models.len()) as u64,
        "image x checkpoint",
    );
    let paths = slice.iter().map(|(_, _, e)| e.path.clone()).collect();
    // Results go into vectors reserved up front and rows are built at the end: small
    // allocations that live on, made between each batch's large transient ones, fragment
    // the heap so that memory grows with the number of batches.
    let n = slice.len();
    let mut all = super::SplitScores::with_capacity(n, scorer.targets.len());
    for batch in stream::batches(paths, cfg.data.preprocess, size, cfg.batch_size) {
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
    }
}
