//! The library's enums as clap values: names and the help of each value, so that clap stays
//! in the command line and the library's types know nothing of it.
use crate::bench::Work;
use crate::epochs::LrStep;
use crate::export::OutputFormat;
use crate::precision::Precision;
use crate::scores::SplitChoice;
use crate::variance::{Channels, GradNorm, Reduce};
use clap::builder::{PossibleValue, PossibleValuesParser, TypedValueParser};
use clap::ValueEnum;

/// `impl ValueEnum` for a library enum: `Type { Variant => "name" [: "help"], ... }`.
macro_rules! values {
    ($ty:ident { $($variant:ident => $name:literal $(: $help:literal)?),+ $(,)? }) => {
        impl ValueEnum for $ty {
            fn value_variants<'a>() -> &'a [Self] {
                &[$($ty::$variant),+]
            }

            fn to_possible_value(&self) -> Option<PossibleValue> {
                Some(match self {
                    $($ty::$variant => PossibleValue::new($name)$(.help($help))?),+
                })
            }
        }
    };
}

values!(Precision {
    Fp32 => "fp32": "32-bit floats throughout",
    Bf16 => "bf16": "bfloat16 weights and activations (8-bit mantissa, fp32's range)",
    Fp16 => "fp16": "IEEE half precision (10-bit mantissa, range up to 65504)",
});

values!(LrStep {
    Epoch => "epoch": "Milestones count epochs (the paper's text)",
    Batch => "batch": "Milestones count optimizer steps (the authors' script)",
});

values!(Reduce {
    Paper => "paper": "sqrt of the pixel mean of the variance (the paper's formula)",
    Official => "official": "Pixel mean of the standard deviation (the authors' released code)",
    Cv => "cv": "The paper's value divided by the mean absolute gradient (a relative spread)",
});

values!(Channels {
    Mean => "mean": "A spatial location; the gradient is first averaged over the colour channels",
    All => "all": "Every channel value counts as a pixel",
});

values!(GradNorm {
    None => "none",
    Unit => "unit": "Unit L2 norm per example and checkpoint: the spread of the pattern, not its size",
});

values!(SplitChoice {
    Test => "test",
    Train => "train",
    Both => "both",
});

values!(Work {
    Train => "train": "SGD steps in training mode: images per second",
    Score => "score": "Input gradients of the true-class logit at K checkpoints: image x checkpoint per second",
    Decode => "decode": "Decoding the images of `--data` (a folder or manifest) into batches, as `vog score --model` streams them: images per second",
});

values!(OutputFormat {
    Table => "table",
    Csv => "csv",
    Json => "json",
    Ids => "ids",
});

/// `--device`: auto, cpu, cuda or cuda:N, resolved against what libtorch sees.
/// `auto` that falls back to the CPU while a GPU is visible says why, once, on stderr
/// (never quiet: the run would take hours instead of minutes).
pub fn device(name: &str) -> Result<tch::Device, String> {
    let device = crate::device::parse(name).map_err(|e| e.to_string())?;
    if name.trim() == "auto" && device == tch::Device::Cpu {
        if let Some(why) = crate::device::unusable_gpu() {
            eprintln!("warning: --device auto runs on the CPU: {why}");
        }
    }
    Ok(device)
}

/// An `--format` that offers only `names` of the [`OutputFormat`]s.
pub fn formats(names: &'static [&'static str]) -> impl TypedValueParser<Value = OutputFormat> {
    PossibleValuesParser::new(names)
        .map(|name| OutputFormat::from_str(&name, false).expect("a listed format"))
}
