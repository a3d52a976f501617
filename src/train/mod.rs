//! `vog train`: SGD training of the CIFAR ResNet-18 with the paper's recipe, saving
//! checkpoints at the chosen epochs (Agarwal & Hooker, Section 3). This file holds the
//! entry points: a run started ([`run`]), continued ([`resume`]) or brought up to date
//! ([`ensure`]); the rooms beside it hold one job each:
//!
//! - `trainer`: the network, its optimizer and input pipeline, and one pass over the data;
//! - `epoch`: one epoch of a run, from training to the summary line;
//! - `commit`: what an epoch writes (checkpoint, resume state, captured gradients,
//!   dynamics) and the manifest that commits it as one unit;
//! - `capture`: gradients captured during training (the authors' protocol);
//! - `derived`: the runs derived from another (`--from`, crossval folds, prune retrainings);
//! - `memory`: whether a training fits the machine, checked before it starts.
//!
//! The learning rate of each batch comes from [`crate::epochs`] (per epoch or per optimizer
//! step, `lr_step`).
//!
//! Training is resumable bit for bit: after every epoch the run holds the weights,
//! BatchNorm buffers, momentum buffers and the position of the one generator that orders
//! and augments the data (see `run_dir`), so [`resume`] continues exactly where an
//! uninterrupted run would be. A stop requested through the reporter (Ctrl-C) takes effect
//! at the next epoch's end, after its state is saved.
//!
//! The authors' protocol (chirag126/VOG `train_cifar/main.py`) is a recipe too: the
//! learning rate stepped per batch (`lr_step = "batch"`), the data in its own order
//! (`shuffle = false`), and gradients captured during training (`capture_epochs`,
//! [`crate::variance::captured`]), saved with the resume state after each capture epoch.
mod capture;
mod commit;
mod derived;
mod epoch;
mod memory;
mod trainer;

pub use capture::CAPTURE_DUMP_ENV;
pub use derived::{check_derivable, config_from, derived_config, Edits};
pub use epoch::summary_line;
pub use memory::check_fits;
pub use trainer::{PassStats, Recorder, Trainer, PROGRESS_REFRESH_BATCHES};

use crate::config::TrainConfig;
use crate::data::prepare::{self, PreparedData};
use crate::model;
use crate::origin::Origins;
use crate::progress::Reporter;
use crate::run_dir::{self, RunDir, RunManifest, RESUME_FORMAT};
use crate::{atomic_file, dynamics, rng};
use anyhow::{bail, Context, Result};
use capture::{fresh_capture, remove_unrecorded_captures, restored_capture};
use commit::{new_manifest, write_noise_record, write_planted_record, write_selection_files};
use epoch::train_epochs;
use std::path::{Path, PathBuf};

/// Training stopped at the user's request after `epoch`, its state saved.
#[derive(Debug, thiserror::Error)]
#[error(
    "stopped after epoch {epoch} of {epochs} as asked; continue with: vog train --resume {}",
    shell_quoted(run)
)]
pub struct Interrupted {
    pub epoch: usize,
    pub epochs: usize,
    pub run: PathBuf,
}

/// `path` as one shell word that pastes back as the same path: bare where it is made of
/// characters no shell treats specially, else in single quotes (a quote inside as `'\''`).
pub fn shell_quoted(path: &std::path::Path) -> String {
    let text = path.to_string_lossy();
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-./+:,@%=".contains(c);
    if !text.is_empty() && text.chars().all(plain) {
        return text.into_owned();
    }
    format!("'{}'", text.replace('\'', r"'\''"))
}

/// Trains per `cfg` on `prepared` (from [`crate::data::prepare::prepare`]) into `run` (a
/// fresh, locked run directory), writing checkpoints, resume states, `run.json` and the
/// label-noise record; each epoch's summary goes to `reporter`.
pub fn run(
    cfg: &TrainConfig,
    prepared: &PreparedData,
    run: &RunDir,
    reporter: &dyn Reporter,
) -> Result<RunManifest> {
    if let Some(warning) = crate::info::slow_precision(cfg.hyper.precision, cfg.device) {
        reporter.warn(&warning);
    }
    if let Some(warning) = unreached_milestones(&cfg.hyper, prepared.data.train.len()) {
        reporter.warn(&warning);
    }
    let noise_file = write_noise_record(run, &prepared.noise, cfg)?;
    let planted_file = write_planted_record(run, prepared, cfg)?;
    atomic_file::write_bytes(&run.path(run_dir::CONFIG), cfg.hyper.to_toml().as_bytes())?;
    let selection_files = write_selection_files(cfg, run)?;
    let mut trainer = Trainer::for_data(cfg, prepared, cfg.device)?;
    trainer.captured = fresh_capture(cfg, prepared, cfg.device);
    let mut manifest = new_manifest(cfg, prepared, model::parameter_count(&trainer.vs));
    let written = [run_dir::CONFIG.to_string()]
        .into_iter()
        .chain(noise_file.clone())
        .chain(planted_file)
        .chain(selection_files);
    for name in written {
        manifest.files.insert(name.clone(), run.digest(&name)?);
    }
    manifest.label_noise_file = noise_file;
    manifest.dynamics = Some(dynamics::DIR.into());
    run.write_manifest(&manifest)?;
    let order_rng = rng::stream(cfg.hyper.seed, ORDER_STREAM);
    reporter.info(&format!(
        "training on {}",
        crate::device::describe(cfg.device)
    ));
    train_epochs(&mut trainer, manifest, order_rng, prepared, run, reporter)
}

/// The generator that orders and augments the training data.
const ORDER_STREAM: &str = "train-order";

/// Continues the unfinished run in `run` (opened for writing) from its last finished epoch,
/// on `prepared`, which must be the data it was trained on, on `device` (the manifest
/// records where it ran last; the run's configuration keeps the device it started on).
/// Refuses a run whose resume state is missing, of another format, or does not match its
/// recorded SHA-256.
pub fn resume(
    run: &RunDir,
    prepared: &PreparedData,
    device: tch::Device,
    reporter: &dyn Reporter,
) -> Result<RunManifest> {
    let mut manifest = run.read_manifest()?;
    let record = check_resumable(run, &manifest, prepared)?;
    let cfg = manifest.config.clone();
    manifest.device = device;
    let state = run_dir::read_resume(&run.path(&record.file))?;
    let mut trainer = Trainer::for_data(&cfg, prepared, device)?;
    run_dir::load_variables(&mut trainer.vs, &state.model, &run.path(&record.file))?;
    trainer
        .opt
        .load_state(state.momentum)
        .with_context(|| format!("resume state '{}'", run.path(&record.file).display()))?;
    let mut order_rng = rng::stream(cfg.hyper.seed, ORDER_STREAM);
    let word_pos: u128 = record.order_rng_word_pos.parse().with_context(|| {
        format!(
            "invalid generator position in '{}'",
            run.manifest_path().display()
        )
    })?;
    order_rng.set_word_pos(word_pos);
    trainer.captured = restored_capture(run, &manifest, prepared, record.epoch)?;
    remove_unrecorded_captures(run, &manifest)?;
    forget_after(&mut manifest, record.epoch);
    reporter.info(&format!(
        "resuming '{}' after epoch {} of {} on {}",
        run.root().display(),
        record.epoch,
        cfg.hyper.epochs,
        crate::device::name(device)
    ));
    train_epochs(&mut trainer, manifest, order_rng, prepared, run, reporter)
}

/// The warning for a schedule counted in optimizer steps (`lr_step = "batch"`, the authors'
/// protocol) whose first milestone the run never reaches, training `examples` examples: a
/// shortened run (`--epochs` scales milestones counted in epochs, not these) or a subset
/// makes fewer steps than the schedule was written for.
fn unreached_milestones(h: &crate::config::Hyper, examples: usize) -> Option<String> {
    let first = *h.lr_milestones.iter().min()?;
    let batches = examples.div_ceil(h.batch_size.max(1));
    (!h.lr_step.is_epoch() && first >= h.epochs * batches).then(|| {
        format!(
            "the learning rate never steps: its first milestone is optimizer step {first} and \
             the run makes {} ({} epochs of {batches} batches of {})",
            h.epochs * batches,
            h.epochs,
            h.batch_size
        )
    })
}

/// The resume state `m` continues from, where the run can be resumed on `prepared`: the
/// same data, a resume state of this vog's format, and every file as recorded.
fn check_resumable(
    run: &RunDir,
    m: &RunManifest,
    prepared: &PreparedData,
) -> Result<run_dir::ResumeRecord> {
    if prepared.data.fingerprint() != m.dataset.fingerprint {
        bail!(
            "the data of '{}' has changed since the run started (dataset fingerprint differs); \
             resume it on the same data, or start over with --overwrite",
            run.root().display()
        );
    }
    let Some(record) = m.resume.clone() else {
        bail!(
            "'{}' has no resume state (it stopped before its first epoch ended, or was made by \
             a vog without resumable training); start it over with --overwrite",
            run.root().display()
        );
    };
    if record.format != RESUME_FORMAT {
        bail!(
            "'{}' holds a resume state of format '{}', this vog reads '{RESUME_FORMAT}'; start \
             it over with --overwrite",
            run.root().display(),
            record.format
        );
    }
    // Every checkpoint the run kept must still be as written, or the finished run would
    // fail `vog verify` (and score a replaced file).
    m.verify_all(run.root())
        .with_context(|| format!("cannot resume '{}'", run.root().display()))?;
    Ok(record)
}

/// The device a stopped run continues on: `asked` where given, else the one it ran on last,
/// which must exist here.
pub fn resume_device(
    m: &RunManifest,
    asked: Option<tch::Device>,
    run: &Path,
) -> Result<tch::Device> {
    if let Some(device) = asked {
        return Ok(device);
    }
    let recorded = crate::device::name(m.device);
    crate::device::parse(&recorded).map_err(|e| {
        anyhow::anyhow!(
            "run '{}' ran on {recorded}, which this machine cannot use ({e}): resume it with \
             --device cuda, cuda:N or cpu (results then differ in the last bits from a run \
             that stayed on {recorded})",
            run.display()
        )
    })
}

/// Drops what the manifest says about epochs after `epoch` (written by a run killed
/// before its commit point cannot be there, but a hand-edited one might): their
/// checkpoints and dynamics, and every resume state but the one continued from.
fn forget_after(m: &mut RunManifest, epoch: usize) {
    m.epochs.retain(|r| r.epoch <= epoch);
    m.saved_epochs.retain(|&e| e <= epoch);
    let mut per_epoch: Vec<String> = m
        .epochs
        .iter()
        .filter_map(|r| r.checkpoint.clone())
        .collect();
    per_epoch.extend((1..=epoch).map(dynamics::file_name));
    per_epoch.extend(m.resume.as_ref().map(|r| r.file.clone()));
    per_epoch.extend(m.captured.as_ref().map(|r| r.file.clone()));
    let of_epochs = |name: &str| {
        [
            run_dir::CHECKPOINTS,
            run_dir::RESUME_DIR,
            dynamics::DIR,
            run_dir::CAPTURED_DIR,
        ]
        .iter()
        .any(|dir| name.starts_with(&format!("{dir}/")))
    };
    m.files
        .retain(|name, _| !of_epochs(name) || per_epoch.contains(name));
    m.complete = false;
}

/// The run `cfg` describes in `root`: found there finished (nothing is done), resumed
/// where it stopped, or trained afresh (replacing a run of another configuration there).
/// What `vog crossval` and `vog prune` train their runs with.
pub fn ensure(root: &Path, cfg: &TrainConfig, reporter: &dyn Reporter) -> Result<RunManifest> {
    let data = || {
        prepare::prepare(
            &cfg.dataset,
            &cfg.selection(),
            cfg.hyper.seed,
            &Origins::default(),
        )
    };
    if let Ok(run) = RunDir::open(root) {
        let m = run.read_manifest()?;
        match cfg.difference(&m.config) {
            None if m.complete => {
                reporter.info(&format!("'{}': up to date", root.display()));
                return Ok(m);
            }
            None if m.resume.is_some() => {
                reporter.info(&format!("'{}': resuming", root.display()));
                let run = RunDir::open_for_writing(root)?;
                return resume(&run, &data()?, m.device, reporter);
            }
            None => {}
            Some(diff) => reporter.info(&format!(
                "'{}' holds a run of another configuration ({diff}): training it again",
                root.display()
            )),
        }
    }
    let prepared = data()?;
    let run = RunDir::create(root, true)?;
    self::run(cfg, &prepared, &run, reporter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resume_hints_paste_back() {
        use std::path::Path;
        assert_eq!(shell_quoted(Path::new("runs/a-1")), "runs/a-1");
        assert_eq!(shell_quoted(Path::new("my runs/ö")), "'my runs/ö'");
        assert_eq!(shell_quoted(Path::new("it's")), r"'it'\''s'");
    }
}
