//! `[features]` in an experiment file (issue 34's out-of-sample flags as a pipeline step):
//! after training, every run's images are embedded by a feature model and a logistic
//! regression cross-fitted on them, so that `oof_prob`, `label_issue` and `outlier` are
//! ranked beside VoG in every evaluation, and in a `[hardness]` suite's matrix per planted
//! kind. The keys are `vog embed`'s flags: a TorchScript `model` with its preprocessing, or
//! a finished vog run as the `backbone`; `folds` is `vog crossval`'s K.
use crate::data::transform::Normalization;
use crate::embed::FeatureModel;
use crate::pipeline::FeatureStep;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The `[features]` table of an experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FeatureSettings {
    /// A TorchScript feature model returning `[batch, D]` (as `vog embed --model`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<PathBuf>,
    /// Or a finished vog run whose last checkpoint's pooled layer gives the features.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backbone: Option<PathBuf>,
    /// With `model`: the normalization it was trained with, by name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub normalize: Option<String>,
    /// With `model`: per-channel mean and standard deviation of pixels in [0, 1].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mean: Option<Vec<f64>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub std: Option<Vec<f64>>,
    /// With `model`: the shorter side resized to this many pixels, then the centre square.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resize: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crop: Option<u32>,
    /// K of the cross-fitting.
    #[serde(default = "default_folds")]
    pub folds: usize,
}

fn default_folds() -> usize {
    5
}

impl FeatureSettings {
    /// The pipeline step; refuses, naming `path`, a table with both or neither of `model`
    /// and `backbone`, preprocessing with `backbone`, a `model` without its normalization,
    /// an unknown normalization name, zero pixels, and fewer than 2 folds.
    pub fn step(&self, path: &Path) -> Result<FeatureStep> {
        let file = path.display();
        if self.folds < 2 {
            bail!("[features] folds in '{file}' must be at least 2");
        }
        let model = match (&self.model, &self.backbone) {
            (Some(_), Some(_)) | (None, None) => {
                bail!("[features] in '{file}' needs one of model (a TorchScript feature model) and backbone (a finished vog run)")
            }
            (None, Some(run)) => {
                if let Some(key) = self.preprocessing_key() {
                    bail!("[features] {key} in '{file}' applies to a model; a backbone takes its run's own preprocessing");
                }
                check_backbone(run, path)?;
                FeatureModel::Backbone(run.clone())
            }
            (Some(model), None) => {
                if !model.is_file() {
                    bail!(
                        "[features] model '{}' in '{file}' is not a file",
                        model.display()
                    );
                }
                if self.resize == Some(0) || self.crop == Some(0) {
                    bail!("[features] resize and crop in '{file}' must be at least 1 pixel");
                }
                FeatureModel::Script {
                    file: model.clone(),
                    resize: self.resize,
                    crop: self.crop,
                    normalization: self.normalization(path)?,
                }
            }
        };
        Ok(FeatureStep {
            model,
            folds: self.folds,
        })
    }

    /// The first preprocessing key set, if any.
    fn preprocessing_key(&self) -> Option<&'static str> {
        [
            ("normalize", self.normalize.is_some()),
            ("mean", self.mean.is_some()),
            ("std", self.std.is_some()),
            ("resize", self.resize.is_some()),
            ("crop", self.crop.is_some()),
        ]
        .into_iter()
        .find_map(|(key, set)| set.then_some(key))
    }

    /// `normalize`, or `mean` with `std`: exactly one way.
    fn normalization(&self, path: &Path) -> Result<Normalization> {
        let file = path.display();
        match (&self.normalize, &self.mean, &self.std) {
            (Some(name), None, None) => Normalization::named(name).ok_or_else(|| {
                anyhow::anyhow!(
                    "[features] normalize = \"{name}\" in '{file}' is not one of {}",
                    Normalization::NAMES.join(", ")
                )
            }),
            (None, Some(mean), Some(std)) => {
                Normalization::from_mean_std(mean, std, &format!("[features] in '{file}': "))
            }
            _ => bail!(
                "[features] model in '{file}' needs the normalization it was trained with: \
                 normalize = \"{}\", or mean = [R, G, B] with std = [R, G, B]",
                Normalization::NAMES.join("|")
            ),
        }
    }
}

/// Refuses a backbone that is not a finished run, before anything trains.
fn check_backbone(run: &Path, path: &Path) -> Result<()> {
    let finished = crate::run_dir::RunDir::open_shared(run)
        .and_then(|r| r.read_manifest())
        .map(|m| m.complete);
    match finished {
        Ok(true) => Ok(()),
        Ok(false) => bail!(
            "[features] backbone '{}' in '{}' has not finished training (vog train --resume)",
            run.display(),
            path.display()
        ),
        Err(e) => bail!("[features] backbone in '{}': {e:#}", path.display()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `text` with `f.pt` standing for a model file that exists; the table's step.
    fn step(text: &str) -> Result<FeatureStep> {
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("f.pt");
        std::fs::write(&model, b"a model").unwrap();
        let text = text.replace("\"f.pt\"", &format!("{:?}", model.display().to_string()));
        let settings: FeatureSettings = toml::from_str(&text).unwrap();
        settings.step(Path::new("e.toml"))
    }

    #[test]
    fn a_model_takes_its_preprocessing() {
        let s = step("model = \"f.pt\"\nnormalize = \"imagenet\"\nresize = 40\ncrop = 32").unwrap();
        assert_eq!(s.folds, 5);
        let FeatureModel::Script {
            resize,
            crop,
            normalization,
            ..
        } = s.model
        else {
            panic!("a model")
        };
        assert_eq!((resize, crop), (Some(40), Some(32)));
        assert_eq!(normalization, Normalization::IMAGENET);
        let s =
            step("model = \"f.pt\"\nmean = [0.5, 0.5, 0.5]\nstd = [0.25, 0.25, 0.25]\nfolds = 3")
                .unwrap();
        assert_eq!(s.folds, 3);
        let FeatureModel::Script { normalization, .. } = s.model else {
            panic!("a model")
        };
        assert_eq!(normalization.std, [0.25; 3]);
    }

    #[test]
    fn bad_tables_are_refused_naming_the_key() {
        for (text, said) in [
            ("folds = 5", "needs one of model"),
            (
                "model = \"f.pt\"\nbackbone = \"r\"\nnormalize = \"none\"",
                "needs one of model",
            ),
            (
                "backbone = \"r\"\ncrop = 32",
                "[features] crop in 'e.toml' applies to a model",
            ),
            (
                "backbone = \"/nonexistent/run\"",
                "[features] backbone in 'e.toml': '/nonexistent/run' is not a vog run",
            ),
            (
                "model = \"/nonexistent.pt\"\nnormalize = \"none\"",
                "model '/nonexistent.pt' in 'e.toml' is not a file",
            ),
            (
                "model = \"f.pt\"",
                "needs the normalization it was trained with",
            ),
            (
                "model = \"f.pt\"\nnormalize = \"imagenet21k\"",
                "is not one of imagenet, cifar10",
            ),
            (
                "model = \"f.pt\"\nmean = [0.5, 0.5]\nstd = [1, 1, 1]",
                "mean needs three finite numbers",
            ),
            (
                "model = \"f.pt\"\nmean = [0, 0, 0]\nstd = [1, 0, 1]",
                "std values must be positive",
            ),
            (
                "model = \"f.pt\"\nnormalize = \"none\"\nmean = [0, 0, 0]\nstd = [1, 1, 1]",
                "needs the normalization",
            ),
            (
                "model = \"f.pt\"\nnormalize = \"none\"\ncrop = 0",
                "at least 1 pixel",
            ),
            (
                "backbone = \"r\"\nfolds = 1",
                "folds in 'e.toml' must be at least 2",
            ),
        ] {
            let err = step(text).unwrap_err().to_string();
            assert!(err.contains(said), "{text}: {err}");
        }
        assert!(toml::from_str::<FeatureSettings>("backbone = \"r\"\nfold = 3").is_err());
    }
}
