//! Whether a training fits the machine, checked before anything is allocated: libtorch
//! aborts a failed huge allocation with a long trace.
use crate::config::TrainConfig;
use crate::data::prepare::PreparedData;
use crate::model;
use crate::variance::captured::Captured;
use anyhow::{bail, Result};
use tch::Device;

/// Refuses a network whose training cannot fit in the host's memory (on a CPU), before
/// any allocation: libtorch aborts a failed huge allocation with a long trace. The
/// estimate counts weights, gradients, momentum and a copy (16 bytes per parameter) plus
/// the activations of a batch kept for the backward pass (about 40 maps of
/// width x 32 x 32 f32 values per image, measured order of magnitude).
pub fn check_fits(
    cfg: &TrainConfig,
    prepared: &PreparedData,
    origins: &crate::origin::Origins,
) -> Result<()> {
    let width = cfg.hyper.width as u64;
    let params = model::parameters_for(prepared.data.num_classes() as u64, width);
    let batch = cfg.hyper.batch_size.min(prepared.data.train.len());
    let activations = batch as u128 * width as u128 * 1024 * 40 * 4;
    let [_, h, w] = prepared.data.train.image_shape();
    // Captured gradients live on the device and are copied to the host to be saved.
    let captured = match cfg.captured_epochs.is_empty() {
        true => 0,
        false => Captured::bytes(
            prepared.data.train.len(),
            (h * w) as usize,
            cfg.hyper.capture_targets.len(),
        ) as u128,
    };
    check_capture_fits(captured, origins)?;
    let gib = |b: u128| b as f64 / (1u64 << 30) as f64;
    // On a GPU the captured statistics live there too; what the device has free now.
    let (need, available, place) = match cfg.device {
        Device::Cpu => (
            params * 16 + activations,
            crate::device::available_host_memory(),
            "this machine has available".to_string(),
        ),
        d => (
            params * 16 + activations + captured,
            crate::device::gpu_memory(d).map(|(free, _)| free),
            format!("{} has free", crate::device::name(d)),
        ),
    };
    if let Some(have) = available.filter(|&a| need > a as u128) {
        bail!(
            "{} {width} and {} {} make a network of {params} parameters that needs about \
             {:.1} GiB to train{}, more than the {:.1} GiB {place}: try {} {}",
            origins.name("width"),
            origins.name("batch_size"),
            cfg.hyper.batch_size,
            gib(need),
            if captured > 0 {
                " with its captured gradients"
            } else {
                ""
            },
            gib(have as u128),
            origins.name("batch_size"),
            (cfg.hyper.batch_size / 2).max(1)
        );
    }
    Ok(())
}

/// Refuses captured gradients that would not fit in the host's memory (where they are
/// copied to be saved, whatever the device), naming the figure.
fn check_capture_fits(bytes: u128, origins: &crate::origin::Origins) -> Result<()> {
    let Some(have) = crate::device::available_host_memory() else {
        return Ok(());
    };
    // Twice: the state being saved and the one being updated.
    if bytes > 0 && 2 * bytes > have as u128 {
        bail!(
            "{} keeps {:.1} GiB of running gradient statistics (8 bytes per pixel, example and \
             target), which with its copy for saving is more than the {:.1} GiB this machine has \
             available: capture fewer targets or a subset",
            origins.name("capture_epochs"),
            bytes as f64 / (1u64 << 30) as f64,
            have as f64 / (1u64 << 30) as f64
        );
    }
    Ok(())
}
