//! `vog score`: a run's checkpoints (`--run`) or the user's TorchScript models (`--model`),
//! one set of options, resolved once into the library's request.
use super::normalize::{normalization_of, NormPreset};
use super::{values, Terminal};
use crate::data::stream::{Preprocess, Source, StreamSpec};
use crate::data::transform::Normalization;
use crate::epochs::Stage;
use crate::precision::Precision;
use crate::scores::{ScoresMeta, SplitChoice};
use crate::scoring::models::{ModelScoreConfig, ShardSpec};
use crate::scoring::{self, ScoreConfig, ScoreOptions};
use crate::scripted;
use crate::variance::{Channels, GradNorm, Reduce, Target, Variant};
use anyhow::{bail, Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use tch::Device;

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Run directory written by `vog train`.
    #[arg(long, required_unless_present = "model", conflicts_with = "model")]
    pub run: Option<PathBuf>,
    /// Your own checkpoints instead of a run: TorchScript files (or folders of *.pt),
    /// comma-separated, in checkpoint order. Needs --data, --out, and --normalize or
    /// --mean/--std.
    #[arg(long, value_delimiter = ',')]
    pub model: Vec<PathBuf>,
    /// Which examples [default: test; train with --captured, the only split captured]
    #[arg(long, value_enum)]
    pub split: Option<SplitChoice>,
    /// Checkpoints: early (first three saved), late (last three), early+late (both: the
    /// paper's figures 4-6), all, or epochs such as `1-3,every:10`; or captured (the
    /// gradients captured during training, as --captured).
    #[arg(long, default_value = "all", conflicts_with = "model")]
    pub stage: Stage,
    /// Output CSV (default RUN/scores-SPLIT-STAGE.csv); a .json sidecar goes next to it.
    #[arg(long, required_unless_present = "run")]
    pub out: Option<PathBuf>,
    /// With --model: the model's class names, one per line, in its output order.
    #[arg(long, requires = "model", conflicts_with = "run")]
    pub classes: Option<PathBuf>,
    /// With --model: the normalization the model was trained with, by name.
    #[arg(long, value_enum, requires = "model", conflicts_with_all = ["mean", "std", "run"])]
    pub normalize: Option<NormPreset>,
    /// With --model: per-channel mean of pixels in [0, 1], as R,G,B.
    #[arg(
        long,
        value_delimiter = ',',
        requires = "std",
        requires = "model",
        conflicts_with = "run"
    )]
    pub mean: Vec<f64>,
    /// With --model: per-channel standard deviation, as R,G,B.
    #[arg(long, value_delimiter = ',', requires = "mean", conflicts_with = "run")]
    pub std: Vec<f64>,
    /// With --model: resize every image's shorter side to this many pixels (bilinear).
    #[arg(long, requires = "model", conflicts_with = "run")]
    pub resize: Option<u32>,
    /// With --model: then cut out the centre square of this side.
    #[arg(long, requires = "model", conflicts_with = "run")]
    pub crop: Option<u32>,
    /// With --model: score only shard I of N (I from 0, e.g. 0/4), in whole batches;
    /// combine the shard files with `vog merge`.
    #[arg(long, requires = "model", conflicts_with = "run")]
    pub shard: Option<ShardSpec>,
    /// Images per batch [default: 128 on a CPU; on CUDA 512 for a run, 128 for --model].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = values::device)]
    pub device: Device,
    /// What is differentiated, comma-separated: logit (the paper), prob, logprob, margin.
    /// The first keeps the plain vog_raw/vog columns; each further one adds vog_raw_T/vog_T.
    #[arg(long, value_delimiter = ',', default_value = "logit")]
    pub target: Vec<Target>,
    /// paper: sqrt of the pixel-mean variance; official: pixel-mean standard deviation
    /// (the authors' code); cv: paper / mean |gradient|.
    #[arg(long, value_enum, default_value_t = Reduce::Paper)]
    pub reduce: Reduce,
    /// mean: average the gradient over colour channels first; all: every channel value is a pixel.
    #[arg(long, value_enum, default_value_t = Channels::Mean)]
    pub channels: Channels,
    /// unit: scale each gradient map to unit L2 norm before the variance.
    #[arg(long, value_enum, default_value_t = GradNorm::None)]
    pub grad_norm: GradNorm,
    /// Dataset location, if it moved since training. With --model: the images, an image
    /// folder (ROOT/<class>/* or ROOT/train|test/<class>/*) or a CSV manifest path,label[,id].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Score a run that has not finished training (the sidecar records what it lacked).
    #[arg(long, conflicts_with = "model")]
    pub allow_incomplete: bool,
    /// VoG from the gradients the run captured during training (`vog train
    /// --capture-epochs`: the authors' protocol) instead of its checkpoints; training split
    /// only. The other columns come from the last checkpoint. The same as --stage captured.
    #[arg(long, conflicts_with_all = ["model", "stage"])]
    pub captured: bool,
    /// Format of the forward and backward passes: fp32, bf16 (1.8x fp32 on the AMD EPYC
    /// measured, slower on an Intel Xeon without AMX: `vog bench` tells; see the README for
    /// when it is safe) or fp16. The reduction is f64.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

/// The request `vog score` makes of the library.
enum Request {
    Run(ScoreConfig),
    Models(ModelScoreConfig),
}

impl ScoreArgs {
    /// The one resolve step: every default filled in, every name parsed.
    fn request(&self) -> Result<Request> {
        crate::origin::refuse_repeats("--target", &self.target)?;
        crate::origin::refuse_repeats(
            "--model",
            &self
                .model
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>(),
        )?;
        let Some(run) = &self.run else {
            return Ok(Request::Models(self.models_config()?));
        };
        let stage = match self.captured {
            true => Stage::Captured,
            false => self.stage.clone(),
        };
        let split = self.split_or_default(&stage);
        let batch_size = self
            .batch_size
            .unwrap_or_else(|| ScoreConfig::default_batch_size(self.device));
        super::memory::note_batch_size(batch_size);
        let mut options = self.options(split, self.out.clone().unwrap_or_default(), batch_size);
        if self.out.is_none() {
            options.out = ScoreConfig::default_out(run, split, &stage, &options);
        }
        Ok(Request::Run(ScoreConfig {
            run: run.clone(),
            stage,
            data: self.data.clone(),
            allow_incomplete: self.allow_incomplete,
            options,
        }))
    }

    /// The split asked for, else the default: train for captured gradients (the only split
    /// captured), test otherwise.
    fn split_or_default(&self, stage: &Stage) -> SplitChoice {
        self.split.unwrap_or(match stage {
            Stage::Captured => SplitChoice::Train,
            _ => SplitChoice::Test,
        })
    }

    fn options(&self, split: SplitChoice, out: PathBuf, batch_size: usize) -> ScoreOptions {
        ScoreOptions {
            split,
            out,
            batch_size,
            device: self.device,
            targets: self.target.clone(),
            variant: Variant {
                reduce: self.reduce,
                channels: self.channels,
                grad_norm: self.grad_norm,
            },
            precision: self.precision,
        }
    }

    /// The validated request of `vog score --model`.
    fn models_config(&self) -> Result<ModelScoreConfig> {
        let data = self
            .data
            .as_deref()
            .context("--model needs --data: an image folder or a CSV manifest")?;
        let out = self.out.clone().context("--model needs --out FILE.csv")?;
        if self.resize == Some(0) || self.crop == Some(0) {
            bail!("--resize and --crop must be at least 1 pixel");
        }
        let batch_size = self
            .batch_size
            .unwrap_or(ModelScoreConfig::DEFAULT_BATCH_SIZE);
        Ok(ModelScoreConfig {
            models: scripted::model_files(&self.model)?,
            data: StreamSpec {
                source: source(data)?,
                classes: self.classes.clone(),
                preprocess: Preprocess {
                    resize: self.resize,
                    crop: self.crop,
                },
            },
            normalization: normalization(self)?,
            shard: self.shard,
            options: self.options(self.split_or_default(&self.stage), out, batch_size),
        })
    }
}

fn normalization(a: &ScoreArgs) -> Result<Normalization> {
    normalization_of(a.normalize, &a.mean, &a.std)
}

/// An image folder or a CSV manifest, without class file or preprocessing.
pub fn stream_spec(data: &Path) -> Result<StreamSpec> {
    Ok(StreamSpec {
        source: source(data)?,
        classes: None,
        preprocess: Preprocess::default(),
    })
}

/// An image folder or a CSV manifest.
fn source(data: &Path) -> Result<Source> {
    if data.is_dir() {
        Ok(Source::Folder {
            root: data.to_path_buf(),
        })
    } else if data.is_file() {
        Ok(Source::Manifest {
            file: data.to_path_buf(),
        })
    } else {
        bail!(
            "--data '{}' is neither an image folder nor a CSV manifest",
            data.display()
        )
    }
}

pub fn run(a: &ScoreArgs) -> Result<()> {
    let reporter = Terminal::detect(a.quiet);
    match a.request()? {
        Request::Run(cfg) => {
            let meta = scoring::run(&cfg, &reporter)?;
            let targets: Vec<&str> = meta.targets.iter().map(|t| t.name()).collect();
            println!(
                "scored {} at epochs {:?} (targets {}) in {:.1} s ({}) -> '{}'",
                examples_of(meta.examples, cfg.options.split),
                meta.epochs,
                targets.join(","),
                meta.seconds,
                rate(&meta),
                cfg.options.out.display()
            );
            if let Some(c) = &meta.captured {
                // The captured epochs need not include the checkpoint's (issue 33).
                println!(
                    "the loss, el2n, prob and predictions come from the last checkpoint, '{}'",
                    c.companions_from
                );
            }
            if let Some(strength) = &meta.out_of_sample_strength {
                println!("{}", strength.sentence());
            }
        }
        Request::Models(cfg) => {
            let meta = scoring::models::run(&cfg, &reporter)?;
            let what = match meta.shard {
                Some(s) => format!("shard {s} of"),
                None => "all".into(),
            };
            println!(
                "scored {what} {} with {} models in {:.1} s ({}) -> '{}'",
                examples_of(meta.examples, cfg.options.split),
                meta.epochs.len(),
                meta.seconds,
                rate(&meta),
                cfg.options.out.display()
            );
        }
    }
    Ok(())
}

/// The speed of a scoring: images times checkpoints per second, or, for gradients captured
/// in training (computed then, only reduced here), images per second.
fn rate(meta: &ScoresMeta) -> String {
    match meta.captured {
        Some(_) => format!("{:.0} image/s", meta.examples as f64 / meta.seconds),
        None => format!(
            "{:.0} image x checkpoint/s",
            (meta.examples * meta.epochs.len()) as f64 / meta.seconds
        ),
    }
}

/// `240 test examples`, `240 examples of both splits`.
fn examples_of(n: usize, split: SplitChoice) -> String {
    match split {
        SplitChoice::Both => format!("{n} examples of both splits"),
        s => format!("{n} {s} examples"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::{Cli, Command};
    use clap::Parser;

    fn score_args(args: &[&str]) -> ScoreArgs {
        let cli = Cli::try_parse_from([&["vog", "score"], args].concat()).unwrap();
        match cli.command {
            Command::Score(a) => *a,
            other => panic!("parsed as {other:?}"),
        }
    }

    fn batch_size(args: &[&str]) -> usize {
        match score_args(args).request().unwrap() {
            Request::Run(c) => c.options.batch_size,
            Request::Models(c) => c.options.batch_size,
        }
    }

    #[test]
    fn score_batch_size_defaults_by_device_and_kind() {
        assert_eq!(batch_size(&["--run", "r", "--device", "cpu"]), 128);
        assert_eq!(ScoreConfig::default_batch_size(Device::Cuda(0)), 512);
        let dir = tempfile::tempdir().unwrap();
        let model = dir.path().join("m.pt");
        std::fs::write(&model, b"x").unwrap();
        let (m, d) = (model.to_str().unwrap(), dir.path().to_str().unwrap());
        let models = [
            "--model",
            m,
            "--data",
            d,
            "--out",
            "o.csv",
            "--normalize",
            "none",
        ];
        assert_eq!(batch_size(&models), 128);
        assert_eq!(batch_size(&["--run", "r", "--batch-size", "7"]), 7);
    }

    #[test]
    fn shards() {
        let parse = |s: &str| s.parse::<ShardSpec>().map(|s| (s.index, s.count));
        assert_eq!(parse("0/4"), Ok((0, 4)));
        assert_eq!(parse(" 3 / 4 "), Ok((3, 4)));
        for bad in ["4/4", "1", "a/2", "-1/2", "0/0"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
