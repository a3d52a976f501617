//! The normalization a `--model` was trained with, as `vog score` and `vog embed` take it:
//! `--normalize NAME`, or `--mean R,G,B --std R,G,B`.
use crate::data::transform::Normalization;
use anyhow::{bail, Result};
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
        let name = self.to_possible_value().expect("no preset is skipped");
        Normalization::named(name.get_name()).expect("every preset is a named normalization")
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
    Normalization::from_mean_std(mean, std, "--")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_preset_is_a_named_normalization() {
        for p in NormPreset::value_variants() {
            let name = p.to_possible_value().unwrap();
            assert_eq!(
                Some(p.normalization()),
                Normalization::named(name.get_name())
            );
            assert!(Normalization::NAMES.contains(&name.get_name()));
        }
        assert_eq!(
            Normalization::named("cifar10"),
            Some(Normalization::CIFAR10)
        );
    }
}
