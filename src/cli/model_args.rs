//! `vog score --model`'s options, validated into a [`ModelScoreConfig`].
use super::ScoreArgs;
use crate::data::stream::{Preprocess, Source, StreamSpec};
use crate::data::transform::Normalization;
use crate::scoring::models::ModelScoreConfig;
use crate::scripted;
use crate::variance::Variant;
use anyhow::{bail, Context, Result};
use clap::ValueEnum;
use std::path::Path;
use tch::Device;

/// Named normalizations (`--normalize`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum NormPreset {
    /// torchvision's ImageNet statistics.
    Imagenet,
    Cifar10,
    Cifar100,
    /// Pixels in [0, 1], unchanged.
    None,
}

impl NormPreset {
    fn normalization(self) -> Normalization {
        match self {
            NormPreset::Imagenet => Normalization::IMAGENET,
            NormPreset::Cifar10 => Normalization::CIFAR10,
            NormPreset::Cifar100 => Normalization::CIFAR100,
            NormPreset::None => Normalization {
                mean: [0.0; 3],
                std: [1.0; 3],
            },
        }
    }
}

/// `--shard I/N`, I from 0.
pub fn parse_shard(s: &str) -> Result<(usize, usize), String> {
    let bad = || format!("--shard '{s}' must be I/N with 0 <= I < N, e.g. 0/4");
    let (i, n) = s.split_once('/').ok_or_else(bad)?;
    let (i, n): (usize, usize) = (
        i.trim().parse().map_err(|_| bad())?,
        n.trim().parse().map_err(|_| bad())?,
    );
    if i >= n {
        return Err(bad());
    }
    Ok((i, n))
}

fn normalization(a: &ScoreArgs) -> Result<Normalization> {
    if let Some(p) = a.normalize {
        return Ok(p.normalization());
    }
    if a.mean.is_empty() {
        bail!("--model needs the normalization the model was trained with: --normalize imagenet|cifar10|cifar100|none, or --mean R,G,B --std R,G,B");
    }
    let three = |v: &[f64], name: &str| -> Result<[f64; 3]> {
        <[f64; 3]>::try_from(v)
            .ok()
            .filter(|v| v.iter().all(|x| x.is_finite()))
            .with_context(|| format!("--{name} needs three finite numbers R,G,B"))
    };
    let std = three(&a.std, "std")?;
    if std.iter().any(|&s| s <= 0.0) {
        bail!("--std values must be positive");
    }
    Ok(Normalization {
        mean: three(&a.mean, "mean")?,
        std,
    })
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

/// The validated request of `vog score --model`.
pub fn config(a: &ScoreArgs, device: Device, batch_size: usize) -> Result<ModelScoreConfig> {
    let data = a
        .data
        .as_deref()
        .context("--model needs --data: an image folder or a CSV manifest")?;
    let out = a.out.clone().context("--model needs --out FILE.csv")?;
    crate::scores::check_out(&out)
        .map_err(|e| anyhow::anyhow!("cannot write to --out '{}': {e:#}", out.display()))?;
    if a.resize == Some(0) || a.crop == Some(0) {
        bail!("--resize and --crop must be at least 1 pixel");
    }
    Ok(ModelScoreConfig {
        models: scripted::model_files(&a.model)?,
        data: StreamSpec {
            source: source(data)?,
            classes: a.classes.clone(),
            preprocess: Preprocess {
                resize: a.resize,
                crop: a.crop,
            },
        },
        split: a.split,
        normalization: normalization(a)?,
        out,
        batch_size,
        device,
        targets: a.target.clone(),
        variant: Variant {
            reduce: a.reduce,
            channels: a.channels,
            grad_norm: a.grad_norm,
        },
        precision: a.precision,
        shard: a.shard,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards() {
        assert_eq!(parse_shard("0/4"), Ok((0, 4)));
        assert_eq!(parse_shard(" 3 / 4 "), Ok((3, 4)));
        for bad in ["4/4", "1", "a/2", "-1/2", "0/0"] {
            assert!(parse_shard(bad).is_err(), "{bad}");
        }
    }
}
