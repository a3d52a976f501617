//! One epoch of a run: the pass over the training data, its loss checked, the test split
//! evaluated when due, the epoch's files saved, its one summary line reported, and the
//! manifest committed; a stop asked for (Ctrl-C) takes effect here, after the commit.
use super::commit::{commit_epoch, save_capture_state, save_resume_state, write_dynamics};
use super::trainer::Trainer;
use super::Interrupted;
use crate::data::prepare::PreparedData;
use crate::progress::Reporter;
use crate::run_dir::{EpochRecord, RunDir, RunManifest};
use anyhow::{bail, Result};
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use tch::{Device, Tensor};

/// The data of training on the device: the training split with the labels trained with,
/// and the test split where there is one.
struct DeviceData {
    train_x: Tensor,
    train_y: Tensor,
    test: Option<(Tensor, Tensor)>,
}

impl DeviceData {
    fn new(prepared: &PreparedData, device: Device) -> Self {
        let data = &prepared.data;
        DeviceData {
            train_x: data.train.images.to_device(device),
            train_y: Tensor::from_slice(&prepared.train_labels).to_device(device),
            test: data.test.as_ref().map(|t| {
                (
                    t.images.to_device(device),
                    Tensor::from_slice(&t.labels).to_device(device),
                )
            }),
        }
    }
}

/// Trains the epochs after the last one `manifest` records.
pub(super) fn train_epochs(
    trainer: &mut Trainer,
    mut manifest: RunManifest,
    mut order_rng: ChaCha8Rng,
    prepared: &PreparedData,
    run: &RunDir,
    reporter: &dyn Reporter,
) -> Result<RunManifest> {
    let cfg = manifest.config.clone();
    let data = DeviceData::new(prepared, manifest.device);
    let epochs = cfg.hyper.epochs;
    let first = manifest.epochs.last().map_or(1, |r| r.epoch + 1);
    for epoch in first..=epochs {
        let (record, previous) = train_one(
            trainer,
            &mut manifest,
            &mut order_rng,
            &data,
            run,
            epoch,
            reporter,
        )?;
        reporter.info(&summary_line(&record, epochs));
        commit_epoch(&mut manifest, record, previous, run)?;
        if !manifest.complete && reporter.stop_requested() {
            return Err(Interrupted {
                epoch,
                epochs,
                run: run.root().to_path_buf(),
            }
            .into());
        }
    }
    Ok(manifest)
}

/// Trains epoch `epoch`, records its dynamics, evaluates, and saves its checkpoint (if
/// it is one to keep) and the resume state; the manifest is not written yet. Returns the
/// epoch's record and the files it replaces.
fn train_one(
    trainer: &mut Trainer,
    manifest: &mut RunManifest,
    order_rng: &mut ChaCha8Rng,
    data: &DeviceData,
    run: &RunDir,
    epoch: usize,
    reporter: &dyn Reporter,
) -> Result<(EpochRecord, Vec<String>)> {
    let hyper = manifest.config.hyper.clone();
    let batches = (data.train_y.size()[0] as usize).div_ceil(hyper.batch_size);
    let lrs = hyper.lr_schedule().batch_lrs(epoch, batches);
    let epochs = hyper.epochs;
    let evaluate = epoch.is_multiple_of(hyper.eval_every) || epoch == epochs;
    let task = reporter.task(
        &format!("epoch {epoch}/{epochs}"),
        batches as u64,
        "batches",
    );
    let started = Instant::now();
    let capture = manifest.config.captured_epochs.contains(&epoch);
    let (train, record) = trainer.train_epoch(
        &data.train_x,
        &data.train_y,
        &lrs,
        order_rng,
        task.as_ref(),
        capture,
    );
    check_loss(train.loss, epoch)?;
    let seconds = started.elapsed().as_secs_f64();
    let dynamics_file = write_dynamics(run, &record.finish(epoch)?, &manifest.dataset.fingerprint)?;
    manifest
        .files
        .insert(dynamics_file.clone(), run.digest(&dynamics_file)?);
    let test = data
        .test
        .as_ref()
        .filter(|_| evaluate)
        .map(|(x, y)| trainer.evaluate(x, y));
    drop(task);
    let saving = Instant::now();
    let (checkpoint, previous) = save_epoch(trainer, manifest, order_rng, run, epoch)?;
    let record = EpochRecord {
        epoch,
        // The record shows the rate in force at the epoch's end.
        lr: *lrs.last().unwrap_or(&hyper.lr),
        train_loss: train.loss,
        train_accuracy: train.accuracy,
        test_loss: test.map(|s| s.loss),
        test_accuracy: test.map(|s| s.accuracy),
        seconds,
        images_per_second: train.examples as f64 / seconds,
        checkpoint,
        save_seconds: saving.elapsed().as_secs_f64(),
    };
    Ok((record, previous))
}

/// Stops a run whose training loss of `epoch` is not finite (it diverged).
fn check_loss(loss: f64, epoch: usize) -> Result<()> {
    if !loss.is_finite() {
        bail!(
            "the training loss of epoch {epoch} is {loss} (diverged: try a smaller learning \
             rate); the run keeps the {} epoch(s) before it",
            epoch - 1
        );
    }
    Ok(())
}

/// Saves what epoch `epoch` keeps: its checkpoint (where it is one to keep), the resume
/// state and, in a capture epoch, the captured gradients, each entered in the (not yet
/// written) manifest. Returns the checkpoint's name and the files they replace.
fn save_epoch(
    trainer: &Trainer,
    manifest: &mut RunManifest,
    order_rng: &ChaCha8Rng,
    run: &RunDir,
    epoch: usize,
) -> Result<(Option<String>, Vec<String>)> {
    let checkpoint = if manifest.config.saved_epochs.contains(&epoch) {
        let name = run.save_checkpoint(&trainer.vs, epoch)?;
        manifest.files.insert(name.clone(), run.digest(&name)?);
        manifest.saved_epochs.push(epoch);
        Some(name)
    } else {
        None
    };
    let mut previous: Vec<String> = save_resume_state(trainer, manifest, order_rng, run, epoch)?
        .into_iter()
        .collect();
    if manifest.config.captured_epochs.contains(&epoch) {
        previous.extend(save_capture_state(trainer, manifest, run, epoch)?);
    }
    Ok((checkpoint, previous))
}

/// A learning rate without float noise (`0.005`, not `0.005000000000000001`).
fn fmt_lr(lr: f64) -> String {
    let s = format!("{lr:.8}");
    s.trim_end_matches('0').trim_end_matches('.').to_string()
}

/// `epoch 3/350 lr 0.1 | train loss 1.2345 acc 56.7% | test loss 1.3 acc 52.0% | 12.3 s, 4065 img/s`
pub fn summary_line(r: &EpochRecord, epochs: usize) -> String {
    let test = match (r.test_loss, r.test_accuracy) {
        (Some(l), Some(a)) => format!(" | test loss {l:.4} acc {:.1}%", 100.0 * a),
        _ => String::new(),
    };
    let saved = if r.checkpoint.is_some() {
        " | saved"
    } else {
        ""
    };
    format!(
        "epoch {}/{epochs} lr {} | train loss {:.4} acc {:.1}%{test} | {:.1} s, {:.0} img/s{saved}",
        r.epoch,
        fmt_lr(r.lr),
        r.train_loss,
        100.0 * r.train_accuracy,
        r.seconds,
        r.images_per_second
    )
}

#[cfg(test)]
mod tests {
    use crate::config::{Hyper, TrainConfig};
    use crate::data::DatasetSpec;
    use crate::run_dir::RunDir;
    use tch::Device;

    #[test]
    fn reports_one_line_per_epoch() {
        let spec = DatasetSpec::Synth {
            train: 40,
            test: 20,
            seed: 0,
            atypical: 0.0,
        };
        let mut hyper = Hyper::defaults_for(&spec);
        (hyper.epochs, hyper.width, hyper.batch_size) = (3, 2, 16);
        hyper.save_epochs = "all".parse().expect("a valid spec");
        hyper.eval_every = 2;
        hyper.lr_milestones = vec![3];
        let origins = crate::origin::Origins::default();
        let cfg = TrainConfig::new(
            spec.clone(),
            hyper,
            crate::data::prepare::Selection::default(),
            Device::Cpu,
            &origins,
        )
        .unwrap();
        let prepared = crate::data::prepare::prepare(&spec, &cfg.selection(), 0, &origins).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let run_dir = RunDir::create(dir.path(), false).unwrap();
        let reporter = crate::progress::Captured::default();
        let m = super::super::run(&cfg, &prepared, &run_dir, &reporter).unwrap();
        let lines = reporter.lines();
        assert_eq!(lines.len(), 4, "{lines:?}");
        assert!(lines[0].starts_with("training on cpu ("), "{lines:?}");
        assert!(
            lines[2].starts_with("epoch 2/3 lr 0.1 | train loss"),
            "{lines:?}"
        );
        assert!(lines[2].ends_with("| saved"), "{lines:?}");
        let tasks = reporter.tasks();
        assert_eq!(
            tasks,
            vec![
                ("epoch 1/3".into(), 3),
                ("epoch 2/3".into(), 3),
                ("epoch 3/3".into(), 3)
            ]
        );
        assert!(m.complete);
        // --eval-every 2: the test split after epochs 2 and 3 (the last) only.
        let tested: Vec<bool> = m.epochs.iter().map(|e| e.test_loss.is_some()).collect();
        assert_eq!(tested, vec![false, true, true]);
    }
}
