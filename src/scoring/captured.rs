//! Scores from the gradients a run captured during training (`vog score --captured`, the
//! stage `captured`; the authors' protocol): what such a scoring accepts, and the captured
//! VoG put into the training rows in place of the checkpoints'.
use super::{ScoreConfig, ScoreOptions};
use crate::precision::Precision;
use crate::run_dir::{CaptureRecord, RunDir, RunManifest};
use crate::scores::{CapturedScoring, ScoreRow, SplitChoice};
use crate::variance::{Channels, GradNorm};
use anyhow::{bail, Result};
use tch::Device;

/// The run's captured gradients, where `vog score --captured` (the stage `captured`) can
/// use them as asked.
pub(super) fn check<'a>(
    cfg: &ScoreConfig,
    m: &'a RunManifest,
) -> Result<&'a crate::run_dir::CaptureRecord> {
    let o = &cfg.options;
    if o.split != SplitChoice::Train {
        bail!(
            "--captured scores training examples only: gradients are captured on the batches \
             trained on, and test images are never trained on (--split train, its default; score the \
             test split from checkpoints)"
        );
    }
    let done = m.captured.as_ref().map_or(&[][..], |r| &r.epochs[..]);
    if m.config.captured_epochs.is_empty() {
        bail!(
            "run '{}' captured no gradients during training (train with --capture-epochs, e.g. \
             first:1,last:1)",
            cfg.run.display()
        );
    }
    if done != m.config.captured_epochs {
        bail!(
            "run '{}' has captured the gradients of epochs {done:?} of {:?}: it stopped before \
             its last capture epoch; continue it with vog train --resume",
            cfg.run.display(),
            m.config.captured_epochs
        );
    }
    let record = m
        .captured
        .as_ref()
        .expect("every capture epoch is recorded");
    if o.variant.channels != Channels::Mean || o.variant.grad_norm != GradNorm::None {
        bail!("captured gradients are kept as channel means without normalization: --captured takes --channels mean --grad-norm none only");
    }
    if let Some(t) = o.targets.iter().find(|t| !record.targets.contains(t)) {
        bail!(
            "--target {t} was not captured (run '{}' captured {})",
            cfg.run.display(),
            record
                .targets
                .iter()
                .map(|t| t.name())
                .collect::<Vec<_>>()
                .join(",")
        );
    }
    if o.precision != Precision::Fp32 {
        bail!("--precision sets the passes of a scoring, and captured gradients were taken in fp32 during training: --captured takes --precision fp32 only");
    }
    Ok(record)
}

/// Puts the captured VoG of each target into the training rows (whose `index` is the
/// example's place in the training split, as captured).
pub(super) fn apply(
    run: &RunDir,
    m: &RunManifest,
    record: &crate::run_dir::CaptureRecord,
    o: &ScoreOptions,
    rows: &mut [ScoreRow],
) -> Result<()> {
    let c = crate::run_dir::read_captured(run.root(), m, record, Device::Cpu)?;
    let values: Vec<Vec<f64>> = o
        .targets
        .iter()
        .map(|t| {
            let at = record.targets.iter().position(|x| x == t).expect("checked");
            c.finish(at, o.variant.reduce)
        })
        .collect::<Result<_>>()?;
    for r in rows.iter_mut() {
        for (score, v) in r.scores.iter_mut().zip(&values) {
            score.0 = v[r.index];
        }
    }
    Ok(())
}

/// How captured gradients were taken, for the sidecar; the companion columns and
/// predictions come from `companions_from`, the last checkpoint.
pub(super) fn scoring(
    m: &RunManifest,
    record: &CaptureRecord,
    companions_from: &str,
) -> CapturedScoring {
    CapturedScoring {
        protocol: format!(
            "captured during training: after each optimizer step of epochs {:?}, in eval \
             mode, the input gradient of each example of the batch just trained on ({}), \
             averaged over colour channels",
            record.epochs,
            match m.config.hyper.augment {
                true => "augmented as trained",
                false => "no augmentation",
            }
        ),
        file: record.file.clone(),
        companions_from: companions_from.to_string(),
    }
}
