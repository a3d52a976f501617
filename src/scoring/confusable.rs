//! `vog train --plant confusable:F --plant-from RUN` (issue 35; H-CAT's instance-dependent
//! noise): for each training image, the class that RUN's final model scores highest among
//! the classes other than the image's label, in eval mode. With a model that is right, that
//! is the class it ranks second: the confusion a real annotator is most likely to make on
//! that very image.
use super::gradients::load_models;
use crate::data::plant::PlantFrom;
use crate::data::transform::to_unit;
use crate::data::Split;
use crate::precision::Precision;
use crate::run_dir::RunDir;
use anyhow::{bail, Context, Result};
use std::path::Path;
use tch::{nn::ModuleT, Device, Kind, Tensor};

/// Images per forward pass.
const BATCH: i64 = 256;

/// The classes RUN's final model ranks next for the images of `train` (NCHW uint8, its
/// labels the dataset's), whose classes are `class_names`; refused for a run that has not
/// finished, or that was trained on other classes or another image size.
pub fn classes(
    run: &Path,
    train: &Split,
    class_names: &[String],
    device: Device,
) -> Result<PlantFrom> {
    let dir = RunDir::open_shared(run).context("--plant-from")?;
    let m = dir.read_manifest().context("--plant-from")?;
    let shown = run.display();
    if !m.complete {
        bail!(
            "--plant-from '{shown}' has not finished training: its final model ranks the classes"
        );
    }
    if m.dataset.class_names != class_names || m.dataset.image_shape != train.image_shape() {
        bail!(
            "--plant-from '{shown}' was trained on other data ({} classes of {:?} images; this \
             run has {} of {:?}): its model cannot rank these classes",
            m.dataset.class_names.len(),
            m.dataset.image_shape,
            class_names.len(),
            train.image_shape()
        );
    }
    let epoch = *m
        .saved_epochs
        .last()
        .context("--plant-from: the run saved no checkpoint")?;
    let model = load_models(&dir, &m, &[epoch], device, Precision::Fp32)?.remove(0);
    let normalizer = m.normalization.on(device);
    let labels = Tensor::from_slice(&train.labels).to_device(device);
    let n = train.len() as i64;
    let mut next = Vec::with_capacity(train.len());
    tch::no_grad(|| -> Result<()> {
        for start in (0..n).step_by(BATCH as usize) {
            let len = BATCH.min(n - start);
            let x = to_unit(&train.images.narrow(0, start, len).to_device(device));
            let logits = model.net.forward_t(&normalizer.apply(&x), false);
            // The label itself is never the answer.
            let own = labels.narrow(0, start, len).unsqueeze(1);
            let masked = logits.scatter_value(1, &own, f64::NEG_INFINITY);
            let best = masked
                .argmax(1, false)
                .to_kind(Kind::Int64)
                .to_device(Device::Cpu);
            next.extend(Vec::<i64>::try_from(&best)?);
        }
        Ok(())
    })?;
    Ok(PlantFrom {
        run: std::path::absolute(run).unwrap_or_else(|_| run.to_path_buf()),
        run_id: m.id(),
        checkpoint: RunDir::checkpoint_name(epoch),
        classes: train.ids.iter().cloned().zip(next).collect(),
    })
}
