//! `vog embed`: the features of a dataset's images, for `vog crossval --features`.
use super::normalize::{normalization_of, NormPreset};
use super::{reporter, values, Terminal};
use crate::data::DatasetSpec;
use crate::embed::{self, EmbedRequest, FeatureModel, Images};
use anyhow::{Context, Result};
use clap::Args;
use std::path::PathBuf;
use tch::Device;

#[derive(Debug, Args)]
pub struct EmbedArgs {
    /// The images of this run, exactly as it trained and tested on them (subsets, planted
    /// images).
    #[arg(long, required_unless_present = "dataset", conflicts_with = "dataset")]
    pub run: Option<PathBuf>,
    /// Or a whole dataset: cifar10, cifar100, synth, or an image folder ROOT with
    /// train/<class>/ (and test/<class>/).
    #[arg(long)]
    pub dataset: Option<String>,
    /// Where CIFAR binaries live (as extracted by `vog download`).
    #[arg(long, default_value = "data", requires = "dataset")]
    pub data_dir: PathBuf,
    /// Seed of the synthetic dataset (--dataset synth).
    #[arg(long, default_value_t = 0, requires = "dataset")]
    pub seed: u64,
    /// A TorchScript feature model: forward(x) returns [batch, D] (a backbone without its
    /// classifier; scripts/export_features.py exports one). Needs --normalize or
    /// --mean/--std.
    #[arg(
        long,
        required_unless_present = "backbone",
        conflicts_with = "backbone"
    )]
    pub model: Option<PathBuf>,
    /// Or a finished vog run: its last checkpoint's penultimate layer (the pooled
    /// activations its classifier reads), in eval mode, with its own normalization.
    #[arg(long, value_name = "RUN")]
    pub backbone: Option<PathBuf>,
    /// With --model: the normalization the model was trained with, by name.
    #[arg(long, value_enum, requires = "model", conflicts_with_all = ["mean", "std", "backbone"])]
    pub normalize: Option<NormPreset>,
    /// With --model: per-channel mean of pixels in [0, 1], as R,G,B.
    #[arg(
        long,
        value_delimiter = ',',
        requires = "std",
        requires = "model",
        conflicts_with = "backbone"
    )]
    pub mean: Vec<f64>,
    /// With --model: per-channel standard deviation, as R,G,B.
    #[arg(
        long,
        value_delimiter = ',',
        requires = "mean",
        conflicts_with = "backbone"
    )]
    pub std: Vec<f64>,
    /// With --model: resize every image's shorter side to this many pixels (bilinear).
    #[arg(long, requires = "model", conflicts_with = "backbone")]
    pub resize: Option<u32>,
    /// With --model: then cut out the centre square of this side.
    #[arg(long, requires = "model", conflicts_with = "backbone")]
    pub crop: Option<u32>,
    /// The feature file to write (.safetensors; its sidecar .json goes beside it).
    #[arg(long)]
    pub out: PathBuf,
    /// Images per batch.
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = values::device)]
    pub device: Device,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

impl EmbedArgs {
    fn request(&self) -> Result<EmbedRequest> {
        let images = match (&self.run, &self.dataset) {
            (Some(run), _) => Images::Run(run.clone()),
            (None, Some(name)) => Images::Dataset(
                DatasetSpec::resolve(name, &self.data_dir, self.seed).context("--dataset")?,
            ),
            (None, None) => unreachable!("clap requires --run or --dataset"),
        };
        let model = match (&self.model, &self.backbone) {
            (Some(file), _) => {
                if self.resize == Some(0) || self.crop == Some(0) {
                    anyhow::bail!("--resize and --crop must be at least 1 pixel");
                }
                FeatureModel::Script {
                    file: file.clone(),
                    resize: self.resize,
                    crop: self.crop,
                    normalization: normalization_of(self.normalize, &self.mean, &self.std)?,
                }
            }
            (None, Some(run)) => FeatureModel::Backbone(run.clone()),
            (None, None) => unreachable!("clap requires --model or --backbone"),
        };
        Ok(EmbedRequest {
            images,
            model,
            out: self.out.clone(),
            device: self.device,
            batch_size: self.batch_size,
        })
    }
}

pub fn run(a: &EmbedArgs) -> Result<()> {
    let request = a.request()?;
    super::memory::note_batch_size(request.batch_size);
    reporter::stop_on_ctrl_c()?;
    let meta = embed::run(&request, &Terminal::detect(a.quiet))?;
    let counts: Vec<String> = meta
        .splits
        .iter()
        .map(|s| format!("{} {}", s.ids.len(), s.split))
        .collect();
    println!(
        "features of {} images ({} values each) from {} -> '{}'",
        counts.join(" + "),
        meta.dim,
        meta.source.describe(),
        a.out.display()
    );
    if let Some(run) = &a.run {
        println!(
            "out-of-sample probabilities from them: vog crossval --run {} --features {}",
            run.display(),
            a.out.display()
        );
    }
    Ok(())
}
