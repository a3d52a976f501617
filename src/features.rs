//! Feature files of `vog embed`: one vector per image of a dataset, from a feature model
//! (a TorchScript model returning `[batch, D]`, or a vog run's network up to its pooling).
//!
//! ```text
//! FILE.safetensors   `train` [N_train, D] f32 and, where the dataset has one, `test`
//!                    [N_test, D] f32, rows in the order of the sidecar's ids
//! FILE.json          sidecar (format "vog-features/1"): where the features came from (the
//!                    model's digest, or the run's identity and checkpoint digest), the
//!                    preprocessing, the dataset's name and fingerprint, and per split the
//!                    ids, labels and pixel digests of the images, in row order; the size
//!                    and SHA-256 of FILE.safetensors
//! ```
//!
//! A reader finds an example's row by its id and refuses it unless the image's pixel
//! digest is the one embedded: features of another dataset, or of images changed since,
//! never stand in for the examples of a run. Every value is checked finite when read.
use crate::atomic_file;
use crate::data::transform::Normalization;
use crate::data::SplitKind;
use crate::digest::FileDigest;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// The sidecar's format tag.
pub const FORMAT: &str = "vog-features/1";

/// What made the features.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum FeatureSource {
    /// A TorchScript feature model (absolute path as embedded, and its digest).
    Model { file: PathBuf, digest: FileDigest },
    /// A vog run's final checkpoint, its globally pooled penultimate layer.
    Run {
        run: PathBuf,
        run_id: String,
        checkpoint: String,
        digest: FileDigest,
    },
}

impl FeatureSource {
    /// A short description for messages: `the model FILE` or `run RUN's epoch-0020`.
    pub fn describe(&self) -> String {
        match self {
            FeatureSource::Model { file, .. } => format!("the model '{}'", file.display()),
            FeatureSource::Run {
                run, checkpoint, ..
            } => format!("run '{}' ({checkpoint})", run.display()),
        }
    }
}

/// What was done to every image before the model saw it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preprocessing {
    /// The shorter side resized to this many pixels (bilinear).
    pub resize: Option<u32>,
    /// Then the centre square of this side.
    pub crop: Option<u32>,
    pub normalization: Normalization,
    /// The model's input: channels, height, width.
    pub input: [i64; 3],
}

/// The images of one split, in row order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitIndex {
    pub split: SplitKind,
    pub ids: Vec<String>,
    /// True labels, as the dataset holds them.
    pub labels: Vec<i64>,
    /// [`crate::data::Split::pixel_digests`] of each image.
    pub pixels: Vec<String>,
}

/// The sidecar.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeaturesMeta {
    pub format: String,
    pub source: FeatureSource,
    pub preprocessing: Preprocessing,
    /// The dataset's name and fingerprint, as embedded.
    pub dataset: String,
    pub dataset_fingerprint: String,
    pub class_names: Vec<String>,
    /// D, the length of every feature vector.
    pub dim: usize,
    pub splits: Vec<SplitIndex>,
    /// Size and SHA-256 of the safetensors file.
    pub tensors: FileDigest,
}

/// A feature file, read and checked.
#[derive(Debug)]
pub struct Features {
    pub path: PathBuf,
    pub meta: FeaturesMeta,
    /// Per split of the sidecar, `[N, D]` f32 on the CPU.
    tensors: Vec<Tensor>,
}

/// The sidecar of the feature file `path`.
pub fn sidecar(path: &Path) -> PathBuf {
    path.with_extension("json")
}

/// Refuses an output name without the `.safetensors` extension (its sidecar would be
/// ambiguous).
pub fn check_name(path: &Path) -> Result<()> {
    if path.extension().and_then(|e| e.to_str()) != Some("safetensors") {
        bail!(
            "--out '{}' must end in .safetensors (the sidecar goes beside it as .json)",
            path.display()
        );
    }
    Ok(())
}

/// Refuses a NaN or infinite feature, naming the first image that has one.
fn check_finite(t: &Tensor, index: &SplitIndex, path: &Path) -> Result<()> {
    let bad = t.isfinite().logical_not().any_dim(1, false);
    if let Some(row) = Vec::<bool>::try_from(&bad)?.iter().position(|&b| b) {
        bail!(
            "'{}': the features of '{}' are not finite (NaN or infinite); the model is not a \
             usable feature model for these images",
            path.display(),
            index.ids[row]
        );
    }
    Ok(())
}

/// Writes `tensors` (one `[N, D]` per split of `meta`, same order) and the sidecar, whose
/// `tensors` digest is filled in; refuses non-finite features before writing anything.
pub fn write(path: &Path, meta: &mut FeaturesMeta, tensors: &[Tensor]) -> Result<()> {
    check_name(path)?;
    let mut named = Vec::new();
    for (index, t) in meta.splits.iter().zip(tensors) {
        check_finite(t, index, path)?;
        named.push((index.split.name().to_string(), t.to_kind(Kind::Float)));
    }
    atomic_file::save_via_temp(path, |tmp| {
        Tensor::write_safetensors(&named, tmp)
            .with_context(|| format!("cannot write the features '{}'", path.display()))
    })?;
    meta.tensors = crate::digest::of_file(path)?;
    atomic_file::write_bytes(&sidecar(path), &serde_json::to_vec_pretty(meta)?)
}

/// Reads the feature file `path` and its sidecar, checking format, digest, shapes and
/// values.
pub fn read(path: &Path) -> Result<Features> {
    let side = sidecar(path);
    let bytes = std::fs::read(&side).with_context(|| {
        format!(
            "cannot read '{}', the sidecar of the features '{}' (written by vog embed)",
            side.display(),
            path.display()
        )
    })?;
    let value: serde_json::Value =
        serde_json::from_slice(&bytes).with_context(|| format!("invalid '{}'", side.display()))?;
    if value.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        bail!(
            "'{}' is not the sidecar of a vog embed feature file (format '{FORMAT}')",
            side.display()
        );
    }
    let meta: FeaturesMeta =
        serde_json::from_value(value).with_context(|| format!("invalid '{}'", side.display()))?;
    crate::digest::verify(path, &meta.tensors)
        .with_context(|| format!("the features '{}' changed since vog embed", path.display()))?;
    let named = Tensor::read_safetensors(path)
        .with_context(|| format!("cannot read the features '{}'", path.display()))?;
    let by_name: HashMap<String, Tensor> = named.into_iter().collect();
    let mut tensors = Vec::new();
    for index in &meta.splits {
        let t = by_name
            .get(index.split.name())
            .with_context(|| format!("'{}' has no {} features", path.display(), index.split))?;
        let n = index.ids.len() as i64;
        if t.size() != [n, meta.dim as i64] || index.labels.len() != index.ids.len() {
            bail!(
                "'{}': the {} features are {:?}, the sidecar says {n} x {}",
                path.display(),
                index.split,
                t.size(),
                meta.dim
            );
        }
        check_finite(t, index, path)?;
        tensors.push(t.to_kind(Kind::Float));
    }
    Ok(Features {
        path: path.to_path_buf(),
        meta,
        tensors,
    })
}

impl Features {
    /// The rows of the images `ids` of `split` whose pixel digests are `pixels`: `[N, D]`
    /// f32. Refuses, naming the first, an id the file lacks or whose image differs.
    pub fn rows(&self, split: SplitKind, ids: &[String], pixels: &[String]) -> Result<Tensor> {
        let Some(s) = self.meta.splits.iter().position(|x| x.split == split) else {
            bail!(
                "'{}' holds no features of {split} images (embedded from {})",
                self.path.display(),
                self.meta.dataset
            );
        };
        let index = &self.meta.splits[s];
        let at: HashMap<&str, usize> = index
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let mut rows = Vec::with_capacity(ids.len());
        for (id, px) in ids.iter().zip(pixels) {
            match at.get(id.as_str()) {
                Some(&i) if index.pixels[i] == *px => rows.push(i as i64),
                Some(_) => bail!(
                    "'{}' holds features of another image '{id}' (embedded from {}; its pixels \
                     differ): embed this dataset with vog embed",
                    self.path.display(),
                    self.meta.dataset
                ),
                None => bail!(
                    "'{}' holds no features of {split} image '{id}' (embedded from {}): embed \
                     this dataset with vog embed",
                    self.path.display(),
                    self.meta.dataset
                ),
            }
        }
        Ok(self.tensors[s].index_select(0, &Tensor::from_slice(&rows)))
    }
}
