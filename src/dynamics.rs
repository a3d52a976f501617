//! Training dynamics: per training example and epoch, from the training forward pass that
//! happens anyway, the probability of the label trained with, the margin (that label's
//! logit minus the largest other) and whether the prediction was right; and the difficulty
//! scores built from them:
//!
//! - Data Maps (Swayamdipta et al. 2020): confidence = mean probability, variability =
//!   its standard deviation over epochs, correctness = fraction of epochs right.
//! - Forgetting events (Toneva et al. 2019): how often an example went from right to wrong
//!   between consecutive epochs; never-learned examples rank above all forgotten ones.
//! - Area under the margin, AUM (Pleiss et al. 2020): mean margin over epochs.
//!
//! File format, one file per epoch (`RUN/dynamics/epoch-NNNN.bin`, written atomically
//! before `run.json` records the epoch), little-endian:
//!
//! ```text
//! "VOGDYN1\0"  u64 examples N  u64 epoch  32 bytes dataset fingerprint (hex)
//! N x f16 probability   N x f16 margin   ceil(N/8) bytes correct (bit i%8 of byte i/8)
//! ```
use anyhow::{bail, Context, Result};
use half::f16;
use std::io::Write;
use std::path::{Path, PathBuf};

/// The folder of the records inside a run.
pub const DIR: &str = "dynamics";
const MAGIC: &[u8; 8] = b"VOGDYN1\0";
const HEADER: usize = 8 + 8 + 8 + 32;

/// One epoch of one run's training examples, in training-split order.
#[derive(Debug, Clone, PartialEq)]
pub struct EpochDynamics {
    pub epoch: usize,
    /// Softmax probability of the label trained with.
    pub prob: Vec<f32>,
    /// That label's logit minus the largest other logit.
    pub margin: Vec<f32>,
    /// Whether the prediction was the label trained with.
    pub correct: Vec<bool>,
}

/// `dynamics/epoch-NNNN.bin`, relative to the run.
pub fn file_name(epoch: usize) -> String {
    format!("{DIR}/epoch-{epoch:04}.bin")
}

/// Writes one epoch's record; `fingerprint` is the run's dataset fingerprint (32 hex).
pub fn write(mut w: impl Write, d: &EpochDynamics, fingerprint: &str) -> Result<()> {
    let fp = fingerprint.as_bytes();
    if fp.len() != 32 {
        bail!("a dataset fingerprint has 32 hex digits, not '{fingerprint}'");
    }
    w.write_all(MAGIC)?;
    w.write_all(&(d.prob.len() as u64).to_le_bytes())?;
    w.write_all(&(d.epoch as u64).to_le_bytes())?;
    w.write_all(fp)?;
    for v in d.prob.iter().chain(&d.margin) {
        w.write_all(&f16::from_f32(*v).to_le_bytes())?;
    }
    let mut bits = vec![0u8; d.correct.len().div_ceil(8)];
    for (i, _) in d.correct.iter().enumerate().filter(|(_, &c)| c) {
        bits[i / 8] |= 1 << (i % 8);
    }
    w.write_all(&bits)?;
    Ok(())
}

/// Reads the record at `path`, which must hold `examples` examples of epoch `epoch` of the
/// dataset with `fingerprint`.
pub fn read(
    path: &Path,
    epoch: usize,
    examples: usize,
    fingerprint: &str,
) -> Result<EpochDynamics> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read training dynamics '{}'", path.display()))?;
    parse(&bytes, epoch, examples, fingerprint)
        .with_context(|| format!("invalid training dynamics '{}'", path.display()))
}

fn parse(bytes: &[u8], epoch: usize, n: usize, fingerprint: &str) -> Result<EpochDynamics> {
    if bytes.len() < HEADER || &bytes[..8] != MAGIC {
        bail!("not a vog training-dynamics file");
    }
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().expect("8 bytes"));
    let (count, stored_epoch) = (u64_at(8), u64_at(16));
    if &bytes[24..HEADER] != fingerprint.as_bytes() {
        bail!(
            "it records another dataset (fingerprint {}, the run has {fingerprint})",
            String::from_utf8_lossy(&bytes[24..HEADER])
        );
    }
    if count != n as u64 || stored_epoch != epoch as u64 {
        bail!("it holds {count} examples of epoch {stored_epoch}, expected {n} of epoch {epoch}");
    }
    let expected = HEADER + 4 * n + n.div_ceil(8);
    if bytes.len() != expected {
        bail!(
            "it has {} bytes, expected {expected} (truncated?)",
            bytes.len()
        );
    }
    let halves = |start: usize| -> Vec<f32> {
        bytes[start..start + 2 * n]
            .chunks_exact(2)
            .map(|c| f16::from_le_bytes([c[0], c[1]]).to_f32())
            .collect()
    };
    let bits = &bytes[HEADER + 4 * n..];
    Ok(EpochDynamics {
        epoch,
        prob: halves(HEADER),
        margin: halves(HEADER + 2 * n),
        correct: (0..n).map(|i| bits[i / 8] & (1 << (i % 8)) != 0).collect(),
    })
}

/// Reads epochs `1..=epochs` of a run's records from `run`.
pub fn read_run(
    run: &Path,
    epochs: usize,
    examples: usize,
    fingerprint: &str,
) -> Result<Vec<EpochDynamics>> {
    (1..=epochs)
        .map(|e| {
            let path: PathBuf = run.join(file_name(e));
            read(&path, e, examples, fingerprint)
        })
        .collect()
}

/// The training-dynamics scores of every example.
#[derive(Debug, Clone, PartialEq)]
pub struct DynamicsScores {
    pub confidence: Vec<f64>,
    pub variability: Vec<f64>,
    pub correctness: Vec<f64>,
    /// Forgetting events; never-learned examples get the number of epochs, more than any
    /// example that was learned can have.
    pub forgetting: Vec<f64>,
    pub aum: Vec<f64>,
}

/// Summarizes epochs (in epoch order) into the scores.
pub fn summarize(epochs: &[EpochDynamics]) -> DynamicsScores {
    let n = epochs.first().map_or(0, |e| e.prob.len());
    let k = epochs.len() as f64;
    let mut s = DynamicsScores {
        confidence: Vec::with_capacity(n),
        variability: Vec::with_capacity(n),
        correctness: Vec::with_capacity(n),
        forgetting: Vec::with_capacity(n),
        aum: Vec::with_capacity(n),
    };
    for i in 0..n {
        let probs: Vec<f64> = epochs.iter().map(|e| f64::from(e.prob[i])).collect();
        let mean = probs.iter().sum::<f64>() / k;
        let var = probs.iter().map(|p| (p - mean).powi(2)).sum::<f64>() / k;
        let right: Vec<bool> = epochs.iter().map(|e| e.correct[i]).collect();
        let forgotten = right.windows(2).filter(|w| w[0] && !w[1]).count();
        s.confidence.push(mean);
        s.variability.push(var.sqrt());
        s.correctness
            .push(right.iter().filter(|&&c| c).count() as f64 / k);
        s.forgetting.push(if right.contains(&true) {
            forgotten as f64
        } else {
            k
        });
        s.aum
            .push(epochs.iter().map(|e| f64::from(e.margin[i])).sum::<f64>() / k);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const FP: &str = "0123456789abcdef0123456789abcdef";

    fn epoch(e: usize, prob: [f32; 3], margin: [f32; 3], correct: [bool; 3]) -> EpochDynamics {
        EpochDynamics {
            epoch: e,
            prob: prob.to_vec(),
            margin: margin.to_vec(),
            correct: correct.to_vec(),
        }
    }

    #[test]
    fn scores_by_hand() {
        // Example 0: learned, forgotten once, relearned. Example 1: never learned.
        // Example 2: always right.
        let epochs = [
            epoch(1, [0.5, 0.25, 0.75], [1.0, -2.0, 3.0], [true, false, true]),
            epoch(
                2,
                [0.25, 0.125, 1.0],
                [-1.0, -1.0, 4.0],
                [false, false, true],
            ),
            epoch(3, [0.75, 0.25, 1.0], [2.0, -3.0, 5.0], [true, false, true]),
        ];
        let s = summarize(&epochs);
        assert_eq!(s.confidence, vec![0.5, 0.625 / 3.0, 2.75 / 3.0]);
        // Population standard deviation of (0.5, 0.25, 0.75): sqrt(1/24).
        assert!((s.variability[0] - (1.0f64 / 24.0).sqrt()).abs() < 1e-12);
        assert_eq!(s.correctness, vec![2.0 / 3.0, 0.0, 1.0]);
        assert_eq!(s.forgetting, vec![1.0, 3.0, 0.0]);
        assert_eq!(s.aum, vec![2.0 / 3.0, -2.0, 4.0]);
    }

    #[test]
    fn file_round_trip_and_bad_files() {
        let d = epoch(7, [0.5, 0.1, 1.0], [2.5, -1.0, 0.0], [true, false, true]);
        let mut buf = Vec::new();
        write(&mut buf, &d, FP).unwrap();
        assert_eq!(buf.len(), HEADER + 12 + 1);
        let back = parse(&buf, 7, 3, FP).unwrap();
        assert_eq!(back.correct, d.correct);
        assert_eq!(back.margin, d.margin);
        // f16 keeps about three decimal digits.
        assert!((back.prob[1] - 0.1).abs() < 1e-4);
        let err = parse(&buf[..buf.len() - 1], 7, 3, FP)
            .unwrap_err()
            .to_string();
        assert!(err.contains("truncated"), "{err}");
        let other = "f".repeat(32);
        let err = parse(&buf, 7, 3, &other).unwrap_err().to_string();
        assert!(err.contains("another dataset"), "{err}");
        assert!(parse(&buf, 8, 3, FP).is_err());
        assert!(parse(b"garbage", 7, 3, FP).is_err());
    }
}
