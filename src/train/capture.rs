//! Gradients captured during training, the authors' protocol (chirag126/VOG
//! `train_cifar/main.py`): after each optimizer step of a capture epoch, the network in
//! eval mode differentiates every target of the batch it just trained on, and the maps are
//! folded into running statistics ([`crate::variance::captured`]). Here: the capture of a
//! batch, the state a run starts or resumes with, and the removal of stale states.
use crate::config::TrainConfig;
use crate::data::prepare::PreparedData;
use crate::model::ResNet;
use crate::run_dir::{self, RunDir, RunManifest};
use crate::variance::captured::Captured;
use crate::variance::gradient::{input_gradients, pixel_map};
use crate::variance::{Channels, GradNorm};
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::{Device, Tensor};

/// Set by the parity test to a folder: each captured batch (its input, labels and example
/// indices) is also written there, so that an eager PyTorch recomputation differentiates
/// the very images the capture saw.
pub const CAPTURE_DUMP_ENV: &str = "VOG_TEST_CAPTURE_DUMP";

/// The authors' capture: the network just stepped, in eval mode, differentiates each
/// target of batch `b` it trained on (`input`: NCHW f32, normalized and augmented as
/// trained; `y` the labels trained with; `idx` the examples, B i64).
pub(super) fn capture_batch(
    net: &ResNet,
    c: &mut Captured,
    (input, y, idx): (&Tensor, &Tensor, &Tensor),
    b: usize,
) {
    if let Ok(dir) = std::env::var(CAPTURE_DUMP_ENV) {
        let path = Path::new(&dir).join(format!("capture-{:04}-batch-{b:06}.safetensors", c.count));
        let named = [("input", input), ("labels", y), ("idx", idx)]
            .map(|(k, t)| (k, t.to_device(Device::Cpu)));
        Tensor::write_safetensors(&named, &path).expect("the capture dump folder is writable");
    }
    let (grads, _) = input_gradients(net, input, y, &c.targets);
    let maps: Vec<Tensor> = grads
        .iter()
        .map(|g| pixel_map(g, Channels::Mean, GradNorm::None))
        .collect();
    c.push(idx, &maps);
}

/// Nothing captured yet, where `cfg` captures gradients.
pub(super) fn fresh_capture(
    cfg: &TrainConfig,
    prepared: &PreparedData,
    device: Device,
) -> Option<Captured> {
    let [_, h, w] = prepared.data.train.image_shape();
    (!cfg.captured_epochs.is_empty()).then(|| {
        Captured::new(
            prepared.data.train.len(),
            (h * w) as usize,
            &cfg.hyper.capture_targets,
            device,
        )
    })
}

/// The captured gradients a resumed run continues with: what the run saved after `epoch`,
/// which must be every capture epoch up to it.
pub(super) fn restored_capture(
    run: &RunDir,
    m: &RunManifest,
    prepared: &PreparedData,
    epoch: usize,
) -> Result<Option<Captured>> {
    let cfg = &m.config;
    let due: Vec<usize> = cfg
        .captured_epochs
        .iter()
        .copied()
        .filter(|&e| e <= epoch)
        .collect();
    match &m.captured {
        Some(record) if record.epochs == due => Ok(Some(run_dir::read_captured(
            run.root(),
            m,
            record,
            m.device,
        )?)),
        None if due.is_empty() => Ok(fresh_capture(cfg, prepared, m.device)),
        found => bail!(
            "'{}' should hold the gradients captured in epochs {due:?} and holds those of {:?}; \
             start it over with --overwrite",
            run.root().display(),
            found.as_ref().map_or(&Vec::new(), |r| &r.epochs)
        ),
    }
}

/// Removes captured states the manifest does not point at: one written for an epoch that
/// was killed before its commit, or one replaced whose removal was cut short (each as large
/// as the training set's gradient maps).
pub(super) fn remove_unrecorded_captures(run: &RunDir, m: &RunManifest) -> Result<()> {
    let dir = run.path(run_dir::CAPTURED_DIR);
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Ok(());
    };
    let keep = m.captured.as_ref().map(|r| run.path(&r.file));
    for entry in entries {
        let path = entry
            .with_context(|| format!("cannot read '{}'", dir.display()))?
            .path();
        if Some(&path) != keep.as_ref() {
            std::fs::remove_file(&path)
                .with_context(|| format!("cannot remove '{}'", path.display()))?;
        }
    }
    Ok(())
}
