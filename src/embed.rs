//! `vog embed`: the features of every image of a dataset (both splits, ids kept) from a
//! feature model, for `vog crossval --features` (see [`crate::features`] for the file).
//!
//! The images are a dataset as `vog train` loads it, or exactly a run's (its subsets,
//! planted images as it trained them). The model is a TorchScript file returning
//! `[batch, D]` features (a backbone without its classifier, e.g. exported by
//! `scripts/export_features.py`), fed as `vog score --model` feeds its models (the same
//! [`Preprocess`]: the shorter side resized bilinearly, the centre square cut out as
//! torchvision does), pixels in [0, 1], normalized; or a finished vog run's last checkpoint, whose
//! globally pooled penultimate layer is read in eval mode with the run's normalization.
use crate::data::stream::Preprocess;
use crate::data::transform::{self, Normalization, Normalizer};
use crate::data::SplitKind;
use crate::data::{Dataset, DatasetSpec, Split};
use crate::features::{self, FeatureSource, FeaturesMeta, Preprocessing, SplitIndex};
use crate::precision::Precision;
use crate::progress::Reporter;
use crate::run_dir::{RunDir, RunManifest};
use crate::scoring::{self, LoadedModel};
use crate::scripted::ScriptedModel;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};
use tch::{Device, Kind, Tensor};

/// Whose images are embedded.
#[derive(Debug, Clone)]
pub enum Images {
    /// A finished run's, as it trained and tested on them.
    Run(PathBuf),
    /// A whole dataset, as `vog train` loads it.
    Dataset(DatasetSpec),
}

/// What makes the features.
#[derive(Debug, Clone)]
pub enum FeatureModel {
    /// A TorchScript file returning `[batch, D]`, with its preprocessing.
    Script {
        file: PathBuf,
        resize: Option<u32>,
        crop: Option<u32>,
        normalization: Normalization,
    },
    /// A finished vog run: its last checkpoint up to the pooling.
    Backbone(PathBuf),
}

/// A validated `vog embed` request.
#[derive(Debug, Clone)]
pub struct EmbedRequest {
    pub images: Images,
    pub model: FeatureModel,
    /// `.safetensors`; the sidecar goes beside it.
    pub out: PathBuf,
    pub device: Device,
    pub batch_size: usize,
}

/// The network of either kind, ready to map a normalized batch to features.
enum Net {
    Script(ScriptedModel),
    Backbone(Vec<LoadedModel>),
}

impl Net {
    /// `x`: NCHW f32, normalized; returns `[N, D]`.
    fn features(&self, x: &Tensor) -> Tensor {
        tch::no_grad(|| match self {
            Net::Script(m) => tch::nn::ModuleT::forward_t(m, x, false),
            Net::Backbone(m) => m[0].net.features_t(x, false),
        })
    }
}

/// Runs `vog embed`; returns the sidecar written.
pub fn run(req: &EmbedRequest, reporter: &dyn Reporter) -> Result<FeaturesMeta> {
    features::check_name(&req.out)?;
    if req.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let (data, dataset) = load_images(&req.images)?;
    let (net, source, mut pre) = load_model(req, &data)?;
    if let FeatureModel::Backbone(backbone) = &req.model {
        check_backbone(backbone, &req.images, &data.train, reporter)?;
    }
    pre.input = input_shape(&data.train, &pre)?;
    let embedder = Embedder {
        normalizer: pre.normalization.on(req.device),
        net,
        pre,
        req,
    };
    let probe = embedder.input(&data.train.images.narrow(0, 0, 1))?;
    let dim = check_output(&embedder.net, &probe, data.num_classes(), &source)?;
    let mut splits = Vec::new();
    let mut tensors = Vec::new();
    for (kind, split) in [
        (SplitKind::Train, Some(&data.train)),
        (SplitKind::Test, data.test.as_ref()),
    ] {
        let Some(split) = split else { continue };
        tensors.push(embedder.split(split, kind, reporter)?);
        splits.push(SplitIndex {
            split: kind,
            ids: split.ids.clone(),
            labels: split.labels.clone(),
            pixels: split.pixel_digests(),
        });
    }
    let mut meta = FeaturesMeta {
        format: features::FORMAT.into(),
        source,
        preprocessing: embedder.pre,
        dataset,
        dataset_fingerprint: data.fingerprint(),
        class_names: data.class_names.clone(),
        dim,
        splits,
        tensors: crate::digest::of_bytes(b""),
    };
    features::write(&req.out, &mut meta, &tensors)?;
    Ok(meta)
}

/// The network with what it needs to embed a batch of images.
struct Embedder<'a> {
    net: Net,
    pre: Preprocessing,
    normalizer: Normalizer,
    req: &'a EmbedRequest,
}

impl Embedder<'_> {
    /// uint8 NCHW images -> the model's input (see [`prepare_batch`]).
    fn input(&self, images: &Tensor) -> Result<Tensor> {
        prepare_batch(images, &self.pre, &self.normalizer, self.req)
    }

    /// The features of every image of `split`: `[N, D]` f32 on the CPU, in its order.
    fn split(&self, split: &Split, kind: SplitKind, reporter: &dyn Reporter) -> Result<Tensor> {
        let batch = self.req.batch_size;
        let task = reporter.task(
            &format!("embedding the {kind} split"),
            split.len() as u64,
            "image",
        );
        let mut rows = Vec::new();
        for start in (0..split.len()).step_by(batch) {
            let n = batch.min(split.len() - start) as i64;
            let x = self.input(&split.images.narrow(0, start as i64, n))?;
            rows.push(
                self.net
                    .features(&x)
                    .to_device(Device::Cpu)
                    .to_kind(Kind::Float),
            );
            task.advance(n as u64);
            if reporter.stop_requested() {
                bail!("stopped by the user; nothing was written");
            }
        }
        Ok(Tensor::cat(&rows, 0))
    }
}

/// Warns where the backbone trained on some of the training images embedded here (found by
/// their pixels; all of them where it is the run embedded): its features then carry the
/// labels it was given for them, so fold models fitted on them are not out of sample for
/// those images (outliers and near-duplicates, which use no label, are unaffected). The
/// backbone was checked as a model already ([`load_model`]).
fn check_backbone(
    backbone: &Path,
    images: &Images,
    train: &Split,
    reporter: &dyn Reporter,
) -> Result<()> {
    let dir = RunDir::open_shared(backbone)?;
    let m = dir.read_manifest()?;
    let own = match images {
        Images::Run(run) => RunDir::open_shared(run)?.read_manifest()?.id() == m.id(),
        Images::Dataset(_) => false,
    };
    let seen = match dir.prepare_data(&m) {
        Ok(p) => p.data.train.pixel_digests(),
        Err(e) => {
            reporter.warn(&format!(
                "cannot tell whether --backbone '{}' trained on these images (its data: {e:#})",
                backbone.display()
            ));
            return Ok(());
        }
    };
    let seen: std::collections::HashSet<String> = seen.into_iter().collect();
    let shared = train
        .pixel_digests()
        .iter()
        .filter(|d| seen.contains(*d))
        .count();
    if shared > 0 {
        reporter.warn(&format!(
            "--backbone '{}'{} trained on {shared} of the {} training images embedded here, \
             with the labels it was given: fold models fitted on its features are not out of \
             sample for them, so label_issue, oof_* and the strength verdict read better than \
             they are (outlier and near-duplicates use no label); a backbone trained on other \
             images avoids that",
            backbone.display(),
            if own { " (the run embedded)" } else { "" },
            train.len()
        ));
    }
    Ok(())
}

/// The images of `images`, and how the sidecar names them.
fn load_images(images: &Images) -> Result<(Dataset, String)> {
    match images {
        Images::Dataset(spec) => Ok((spec.load()?, spec.name())),
        Images::Run(run) => {
            let dir = RunDir::open_shared(run)?;
            let m = dir.read_manifest()?;
            let p = dir.prepare_data(&m)?;
            if p.data.fingerprint() != m.dataset.fingerprint {
                bail!(
                    "the data of run '{}' changed since it trained (its fingerprint differs)",
                    run.display()
                );
            }
            Ok((p.data, format!("the images of run '{}'", run.display())))
        }
    }
}

/// The network, where it came from, and the preprocessing it takes (input shape unset).
fn load_model(req: &EmbedRequest, data: &Dataset) -> Result<(Net, FeatureSource, Preprocessing)> {
    match &req.model {
        FeatureModel::Script {
            file,
            resize,
            crop,
            normalization,
        } => {
            let model = ScriptedModel::load(file, req.device, Precision::Fp32)?;
            let pre = Preprocessing {
                resize: *resize,
                crop: *crop,
                normalization: normalization.clone(),
                input: [0; 3],
            };
            Ok((Net::Script(model), script_source(file)?, pre))
        }
        FeatureModel::Backbone(run) => backbone(run, req.device, data),
    }
}

/// How the sidecar names a TorchScript feature model: its absolute path and digest.
fn script_source(file: &Path) -> Result<FeatureSource> {
    let file = std::path::absolute(file)
        .with_context(|| format!("cannot resolve '{}'", file.display()))?;
    let digest = crate::digest::of_file(&file)?;
    Ok(FeatureSource::Model { file, digest })
}

/// A finished run as a feature model: the run, its manifest, its last saved epoch, and how
/// the sidecar names it.
fn backbone_source(run: &Path) -> Result<(RunDir, RunManifest, usize, FeatureSource)> {
    let dir = RunDir::open_shared(run)?;
    let m = dir.read_manifest()?;
    if !m.complete {
        bail!(
            "--backbone '{}' has not finished training (vog train --resume)",
            run.display()
        );
    }
    let last = *m
        .saved_epochs
        .last()
        .with_context(|| format!("--backbone '{}' saved no checkpoint", run.display()))?;
    let checkpoint = RunDir::checkpoint_name(last);
    let source = FeatureSource::Run {
        run: std::path::absolute(run)
            .with_context(|| format!("cannot resolve '{}'", run.display()))?,
        run_id: m.id(),
        digest: dir.digest(&checkpoint)?,
        checkpoint,
    };
    Ok((dir, m, last, source))
}

/// A finished run's last checkpoint as a feature model.
fn backbone(
    run: &Path,
    device: Device,
    data: &Dataset,
) -> Result<(Net, FeatureSource, Preprocessing)> {
    let (dir, m, last, source) = backbone_source(run)?;
    let shape = data.train.image_shape();
    if m.dataset.image_shape != shape {
        bail!(
            "--backbone '{}' trained on {:?} images, these are {shape:?}",
            run.display(),
            m.dataset.image_shape
        );
    }
    let net = scoring::load_models(&dir, &m, &[last], device, Precision::Fp32)?;
    let pre = Preprocessing {
        resize: None,
        crop: None,
        normalization: m.normalization.clone(),
        input: [0; 3],
    };
    Ok((Net::Backbone(net), source, pre))
}

/// Whether `req.out` holds, intact, what `req` would write: the features of the same run's
/// images (its data fingerprint) from the same model file or backbone checkpoint (their
/// digests), preprocessed the same way. Only a run's images are compared (a dataset's
/// would have to be loaded): for a dataset this is false.
pub fn up_to_date(req: &EmbedRequest) -> Result<bool> {
    let Images::Run(run) = &req.images else {
        return Ok(false);
    };
    if !features::sidecar(&req.out).is_file() {
        return Ok(false);
    }
    let Ok(feats) = features::read(&req.out) else {
        return Ok(false);
    };
    let m = RunDir::open_shared(run)?.read_manifest()?;
    let (source, same_preprocessing) = match &req.model {
        FeatureModel::Script {
            file,
            resize,
            crop,
            normalization,
        } => {
            let p = &feats.meta.preprocessing;
            let same = p.resize == *resize && p.crop == *crop && p.normalization == *normalization;
            (script_source(file)?, same)
        }
        FeatureModel::Backbone(backbone) => (backbone_source(backbone)?.3, true),
    };
    Ok(feats.meta.dataset_fingerprint == m.dataset.fingerprint
        && feats.meta.source == source
        && same_preprocessing)
}

/// The resize and crop of `pre`, as `vog score --model` applies them to decoded images.
fn stream_preprocess(pre: &Preprocessing) -> Preprocess {
    Preprocess {
        resize: pre.resize,
        crop: pre.crop,
    }
}

/// The model's input shape after `pre` for images of `split`; refuses a crop larger than
/// the (resized) image.
fn input_shape(split: &Split, pre: &Preprocessing) -> Result<[i64; 3]> {
    let [c, h, w] = split.image_shape();
    let resized = Preprocess {
        crop: None,
        ..stream_preprocess(pre)
    };
    let (rw, rh) = resized.output_size((w as u32, h as u32));
    if let Some(s) = pre.crop.filter(|&s| s > rw.min(rh)) {
        bail!("--crop {s} is larger than the {rh}x{rw} images");
    }
    let (w, h) = stream_preprocess(pre).output_size((w as u32, h as u32));
    Ok([c, h as i64, w as i64])
}

/// uint8 NCHW images -> the model's input: NCHW f32 on the device, resized and cropped
/// image by image exactly as `vog score --model` does ([`Preprocess::apply`]), normalized.
fn prepare_batch(
    images: &Tensor,
    pre: &Preprocessing,
    norm: &Normalizer,
    req: &EmbedRequest,
) -> Result<Tensor> {
    let stream = stream_preprocess(pre);
    let images = match stream == Preprocess::default() {
        true => images.shallow_clone(),
        false => {
            let mut hwc = Vec::new();
            for i in 0..images.size()[0] {
                let img = crate::data::to_rgb(&images.get(i))?;
                hwc.extend(
                    stream
                        .apply(img, Path::new("an embedded image"))?
                        .into_raw(),
                );
            }
            let [_, h, w] = pre.input;
            Tensor::from_slice(&hwc)
                .view([images.size()[0], h, w, 3])
                .permute([0, 3, 1, 2])
                .contiguous()
        }
    };
    Ok(norm.apply(&transform::to_unit(&images.to_device(req.device))))
}

/// Runs the probe; the features' length D. Refuses an output that is not `[1, D]`, a crop
/// larger than the image, and D equal to the number of classes (logits, most likely).
fn check_output(
    net: &Net,
    probe: &Tensor,
    classes: usize,
    source: &FeatureSource,
) -> Result<usize> {
    let out = match net {
        Net::Script(m) => m.output_width(probe, "[batch, D] features")?,
        Net::Backbone(_) => net.features(probe).size()[1] as usize,
    };
    if out == classes {
        bail!(
            "{} returns {out} values per image, as many as the dataset has classes: those look \
             like logits, not features; export the network without its classifier (scripts/\
             export_features.py)",
            source.describe()
        );
    }
    Ok(out)
}
