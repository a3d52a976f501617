//! The normalization a `--model` was trained with, as `vog score` and `vog embed` take it:
//! `--normalize NAME`, or `--mean R,G,B --std R,G,B`.
use crate::data::transform::Normalization;
use anyhow::{bail, Context, Result};
use clap::ValueEnum;

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

/// The normalization `--normalize` names, or `--mean`/`--std` give, for `--model`.
pub(super) fn normalization_of(
    preset: Option<NormPreset>,
    mean: &[f64],
    std: &[f64],
) -> Result<Normalization> {
    if let Some(p) = preset {
        return Ok(p.normalization());
    }
    if mean.is_empty() {
        bail!("--model needs the normalization the model was trained with: --normalize imagenet|cifar10|cifar100|none, or --mean R,G,B --std R,G,B");
    }
    let three = |v: &[f64], name: &str| -> Result<[f64; 3]> {
        <[f64; 3]>::try_from(v)
            .ok()
            .filter(|v| v.iter().all(|x| x.is_finite()))
            .with_context(|| format!("--{name} needs three finite numbers R,G,B"))
    };
    let std = three(std, "std")?;
    if std.iter().any(|&s| s <= 0.0) {
        bail!("--std values must be positive");
    }
    Ok(Normalization {
        mean: three(mean, "mean")?,
        std,
    })
}
