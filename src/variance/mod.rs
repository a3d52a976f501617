//! Variance of Gradients (Agarwal & Hooker, Section 2).
//!
//! For checkpoint t and example x with label p, S_t = dA_p/dx is the gradient of the
//! true-class pre-softmax logit with respect to the normalized input, in eval mode. With
//! mu_i = (1/K) sum_t S_ti per pixel i,
//!
//! ```text
//! VoG = sqrt( (1/K) sum_t (1/N) sum_i (S_ti - mu_i)^2 )        N = pixels
//! ```
//!
//! then z-scored within each class. The variants here (what is differentiated, how the
//! colour channels and the magnitude are handled, how pixels are reduced) make the
//! comparison between the paper, the authors' released code and magnitude-free forms cheap.
pub mod baselines;
pub mod captured;
pub mod gradient;
pub mod normalize;
pub mod reduce;

use serde::{Deserialize, Serialize};
use std::fmt;

/// What is differentiated with respect to the input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The true-class pre-softmax logit (the paper).
    Logit,
    /// The softmax probability of the true class.
    Prob,
    /// Its logarithm, the negative per-example loss.
    Logprob,
    /// The true-class logit minus the largest other logit.
    Margin,
}

impl Target {
    pub fn name(self) -> &'static str {
        match self {
            Target::Logit => "logit",
            Target::Prob => "prob",
            Target::Logprob => "logprob",
            Target::Margin => "margin",
        }
    }
}

impl std::str::FromStr for Target {
    type Err = String;

    /// One target by name, any case: `logit`, `prob`, `logprob` or `margin`.
    fn from_str(s: &str) -> Result<Self, String> {
        [Target::Logit, Target::Prob, Target::Logprob, Target::Margin]
            .into_iter()
            .find(|t| t.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown target '{s}' (expected logit, prob, logprob or margin)")
            })
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// How the per-pixel spread over checkpoints becomes one number.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Reduce {
    /// sqrt of the pixel mean of the variance (the paper's formula).
    Paper,
    /// Pixel mean of the standard deviation (the authors' released code).
    Official,
    /// The paper's value divided by the mean absolute gradient (a relative spread).
    Cv,
}

/// What a pixel is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Channels {
    /// A spatial location; the gradient is first averaged over the colour channels.
    Mean,
    /// Every channel value counts as a pixel.
    All,
}

/// Scaling of each gradient map before the variance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum GradNorm {
    None,
    /// Unit L2 norm per example and checkpoint: the spread of the pattern, not its size.
    Unit,
}

/// The VoG variant: everything but the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Variant {
    pub reduce: Reduce,
    pub channels: Channels,
    pub grad_norm: GradNorm,
}

impl Variant {
    /// What a file name adds for this variant: nothing for the paper's definition, else
    /// `-official`, `-cv`, `-channels-all`, `-unit-norm` in that order, so that scores of two
    /// variants never share a default name.
    pub fn file_suffix(&self) -> String {
        let mut parts = Vec::new();
        match self.reduce {
            Reduce::Paper => {}
            Reduce::Official => parts.push("-official"),
            Reduce::Cv => parts.push("-cv"),
        }
        if self.channels == Channels::All {
            parts.push("-channels-all");
        }
        if self.grad_norm == GradNorm::Unit {
            parts.push("-unit-norm");
        }
        parts.concat()
    }
}

impl Default for Variant {
    /// The paper's definition.
    fn default() -> Self {
        Variant {
            reduce: Reduce::Paper,
            channels: Channels::Mean,
            grad_norm: GradNorm::None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets_by_name() {
        for t in [Target::Logit, Target::Prob, Target::Logprob, Target::Margin] {
            assert_eq!(t.name().parse::<Target>(), Ok(t));
        }
        assert_eq!("LogProb".parse::<Target>(), Ok(Target::Logprob));
        assert!("loss".parse::<Target>().unwrap_err().contains("'loss'"));
    }
}
