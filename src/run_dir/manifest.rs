//! The run's manifest, `run.json` (format "vog-run/1"): the configuration, the dataset as
//! trained, every epoch's figures, the saved checkpoints, the resume state and captured
//! gradients it continues from, and the size and SHA-256 of every file vog wrote into the
//! run, by names relative to it.
use super::MANIFEST;
use crate::config::TrainConfig;
use crate::data::transform::Normalization;
use crate::digest::{self, FileDigest};
use crate::info::Versions;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use tch::Tensor;

/// What the run trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// MD5 over the ids, labels and pixels of the (subset) splits used.
    pub fingerprint: String,
    pub class_names: Vec<String>,
    pub train_examples: usize,
    pub test_examples: usize,
    /// (channels, height, width).
    pub image_shape: [i64; 3],
}

/// JSON has no NaN or infinity: serde_json writes them as `null`, which reads back here as
/// NaN, so the manifest round-trips whatever a run measured.
fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// One finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub train_loss: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub train_accuracy: f64,
    pub test_loss: Option<f64>,
    pub test_accuracy: Option<f64>,
    #[serde(deserialize_with = "nan_if_null")]
    pub seconds: f64,
    #[serde(deserialize_with = "nan_if_null")]
    pub images_per_second: f64,
    /// Relative to the run directory, when this epoch was saved.
    pub checkpoint: Option<String>,
    /// Seconds spent writing and hashing this epoch's checkpoint and resume state.
    #[serde(default)]
    pub save_seconds: f64,
}

/// `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    pub format: String,
    pub versions: Versions,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix: u64,
    #[serde(with = "crate::device::by_name")]
    pub device: tch::Device,
    pub config: TrainConfig,
    pub dataset: DatasetInfo,
    pub normalization: Normalization,
    pub parameters: i64,
    /// The label-noise record, relative to the run directory.
    pub label_noise_file: Option<String>,
    /// The training-dynamics folder, relative to the run (runs from before it have none).
    #[serde(default)]
    pub dynamics: Option<String>,
    pub epochs: Vec<EpochRecord>,
    /// Epochs with a checkpoint on disk.
    pub saved_epochs: Vec<usize>,
    pub complete: bool,
    /// Where training continues from (absent before the first epoch finished, and in runs
    /// from before resumable training).
    #[serde(default)]
    pub resume: Option<ResumeRecord>,
    /// Size and SHA-256 of every checkpoint and of the resume state, by relative path.
    #[serde(default)]
    pub files: BTreeMap<String, FileDigest>,
    /// The gradients captured during training so far (runs with `capture_epochs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub captured: Option<CaptureRecord>,
}

/// What a run's `captured/` file holds: the running statistics of every training
/// example's input gradients, captured after each optimizer step of `epochs`, in eval mode,
/// on the augmented batch just trained on ([`crate::variance::captured`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaptureRecord {
    /// [`CAPTURED_FORMAT`].
    pub format: String,
    /// Relative to the run.
    pub file: String,
    /// The capture epochs folded in, in order.
    pub epochs: Vec<usize>,
    pub targets: Vec<crate::variance::Target>,
    /// Always `mean`: the gradient is averaged over the colour channels first.
    pub channels: crate::variance::Channels,
}

/// The state a run continues from: written after every epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResumeRecord {
    /// [`RESUME_FORMAT`].
    pub format: String,
    /// The last finished epoch.
    pub epoch: usize,
    /// The resume file, relative to the run.
    pub file: String,
    /// Position (in 32-bit words, decimal) of the data-order and augmentation generator,
    /// `rng::stream(seed, "train-order")`. libtorch's generator is used only to initialize
    /// the weights, which the resume file holds, so it needs no state.
    pub order_rng_word_pos: String,
}

/// The tensors of a resume file.
pub struct ResumeState {
    /// Every variable of the network, by name.
    pub model: HashMap<String, Tensor>,
    /// The SGD momentum buffers, by parameter name.
    pub momentum: Vec<(String, Tensor)>,
}

impl RunManifest {
    /// The run's identity wherever its folder lies: SHA-256 of when it started, its
    /// configuration and its data. A run trained again in the same folder has another.
    pub fn id(&self) -> String {
        let config = serde_json::to_string(&self.config).unwrap_or_default();
        let text = format!(
            "{}\n{}\n{config}",
            self.started_unix, self.dataset.fingerprint
        );
        digest::of_bytes(text.as_bytes()).sha256
    }

    /// Verifies the file `name` (relative to `run`) against its recorded digest; a file
    /// the manifest has no digest for is refused too.
    /// Verifies every file the manifest lists (checkpoints and the resume state).
    pub fn verify_all(&self, run: &Path) -> Result<()> {
        self.files
            .keys()
            .try_for_each(|name| self.verify_file(run, name))
    }

    pub fn verify_file(&self, run: &Path, name: &str) -> Result<()> {
        let path = run.join(name);
        let Some(want) = self.files.get(name) else {
            bail!(
                "'{}' has no SHA-256 in '{}' (a run from before verified artifacts, or a file \
                 the run did not write)",
                path.display(),
                run.join(MANIFEST).display()
            );
        };
        digest::verify(&path, want)
    }
}
