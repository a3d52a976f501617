//! What a run writes to disk, and the manifest that commits it. A new run writes its
//! configuration, label-noise record and selection files first; each epoch then writes its
//! dynamics, checkpoint (when kept), resume state and captured gradients, and only then
//! the manifest (`run.json`), the commit point: a run killed before it continues from the
//! epoch before, and the states an epoch replaces are removed only after it.
use super::trainer::Trainer;
use crate::atomic_file;
use crate::config::TrainConfig;
use crate::data::noise::{self, NoisyLabel};
use crate::data::prepare::PreparedData;
use crate::data::Split;
use crate::dynamics::{self, EpochDynamics};
use crate::info::Versions;
use crate::run_dir::{
    self, DatasetInfo, EpochRecord, ResumeRecord, RunDir, RunManifest, FORMAT, LABEL_NOISE,
    RESUME_FORMAT,
};
use crate::variance::Channels;
use anyhow::{bail, Context, Result};
use rand_chacha::ChaCha8Rng;
use std::time::{SystemTime, UNIX_EPOCH};

/// The manifest of a run that has not finished an epoch yet.
pub(super) fn new_manifest(
    cfg: &TrainConfig,
    prepared: &PreparedData,
    parameters: i64,
) -> RunManifest {
    let data = &prepared.data;
    RunManifest {
        format: FORMAT.into(),
        versions: Versions::current(),
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        device: cfg.device,
        config: cfg.clone(),
        dataset: DatasetInfo {
            fingerprint: data.fingerprint(),
            class_names: data.class_names.clone(),
            train_examples: data.train.len(),
            test_examples: data.test.as_ref().map_or(0, Split::len),
            image_shape: data.train.image_shape(),
        },
        normalization: prepared.normalization.clone(),
        parameters,
        label_noise_file: None,
        dynamics: None,
        epochs: Vec::new(),
        saved_epochs: Vec::new(),
        complete: false,
        resume: None,
        files: Default::default(),
        captured: None,
    }
}

pub(super) fn write_noise_record(
    run: &RunDir,
    record: &[NoisyLabel],
    cfg: &TrainConfig,
) -> Result<Option<String>> {
    if cfg.label_noise.is_none() {
        return Ok(None);
    }
    atomic_file::write_with(&run.path(LABEL_NOISE), |w| noise::write_csv(w, record))?;
    Ok(Some(LABEL_NOISE.to_string()))
}

/// Writes `planted.csv`, the record of the examples `--plant` altered; `None` without it.
pub(super) fn write_planted_record(
    run: &RunDir,
    prepared: &PreparedData,
    cfg: &TrainConfig,
) -> Result<Option<String>> {
    if cfg.plant.is_none() {
        return Ok(None);
    }
    let path = run.path(crate::run_dir::PLANTED);
    atomic_file::write_with(&path, |w| {
        crate::data::plant::write_csv(w, &prepared.planted)
    })?;
    Ok(Some(crate::run_dir::PLANTED.to_string()))
}

/// Writes the files of the run's selection that vog made for it (`exclude.csv`,
/// `relabel.csv`, recorded by names relative to the run) into `run`, exactly the bytes the
/// configuration's digests record.
pub(super) fn write_selection_files(cfg: &TrainConfig, run: &RunDir) -> Result<Vec<String>> {
    let mut written = Vec::new();
    let files = [
        cfg.exclude.as_ref().map(|e| (&e.file, &e.digest, e.csv())),
        cfg.relabel.as_ref().map(|r| (&r.file, &r.digest, r.csv())),
    ];
    for (file, digest, bytes) in files.into_iter().flatten() {
        if file.is_absolute() {
            continue;
        }
        let bytes = bytes?;
        if crate::digest::of_bytes(&bytes) != *digest {
            bail!(
                "the selection file '{}' would not hold what the run's configuration records",
                file.display()
            );
        }
        let name = file.to_string_lossy().into_owned();
        atomic_file::write_bytes(&run.path(&name), &bytes)?;
        written.push(name);
    }
    Ok(written)
}

/// Writes one epoch's training dynamics atomically, before the manifest records the epoch;
/// returns the file's name relative to the run.
pub(super) fn write_dynamics(run: &RunDir, d: &EpochDynamics, fingerprint: &str) -> Result<String> {
    let name = dynamics::file_name(d.epoch);
    let path = run.path(&name);
    let dir = atomic_file::parent_dir(&path);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create '{}'", dir.display()))?;
    atomic_file::write_with(&path, |w| dynamics::write(w, d, fingerprint))?;
    Ok(name)
}

/// Saves the resume state after `epoch` and points the (not yet written) manifest at it;
/// returns the previous resume file, to remove once the manifest is written.
pub(super) fn save_resume_state(
    trainer: &Trainer,
    manifest: &mut RunManifest,
    order_rng: &ChaCha8Rng,
    run: &RunDir,
    epoch: usize,
) -> Result<Option<String>> {
    let file = run.save_resume(&trainer.vs, &trainer.opt.state(), epoch)?;
    manifest.files.insert(file.clone(), run.digest(&file)?);
    let previous = manifest.resume.replace(ResumeRecord {
        format: RESUME_FORMAT.into(),
        epoch,
        file: file.clone(),
        order_rng_word_pos: order_rng.get_word_pos().to_string(),
    });
    let previous = previous.map(|old| old.file).filter(|old| *old != file);
    if let Some(old) = &previous {
        manifest.files.remove(old);
    }
    Ok(previous)
}

/// Saves the gradients captured up to `epoch` and points the manifest at them; returns
/// the file they replace, to remove once the manifest is written.
pub(super) fn save_capture_state(
    trainer: &Trainer,
    manifest: &mut RunManifest,
    run: &RunDir,
    epoch: usize,
) -> Result<Option<String>> {
    let c = trainer
        .captured
        .as_ref()
        .context("a capture epoch without captured gradients")?;
    let file = run.save_captured(c, epoch)?;
    manifest.files.insert(file.clone(), run.digest(&file)?);
    let mut epochs = manifest
        .captured
        .as_ref()
        .map_or_else(Vec::new, |r| r.epochs.clone());
    epochs.push(epoch);
    let previous = manifest.captured.replace(run_dir::CaptureRecord {
        format: run_dir::CAPTURED_FORMAT.into(),
        file: file.clone(),
        epochs,
        targets: c.targets.clone(),
        channels: Channels::Mean,
    });
    let previous = previous.map(|old| old.file).filter(|old| *old != file);
    if let Some(old) = &previous {
        manifest.files.remove(old);
    }
    Ok(previous)
}

/// Records the epoch and writes the manifest, the commit point: from here on the run
/// continues after this epoch. Then the resume state (and captured gradients) it replaced
/// go.
pub(super) fn commit_epoch(
    manifest: &mut RunManifest,
    record: EpochRecord,
    previous: Vec<String>,
    run: &RunDir,
) -> Result<()> {
    manifest.complete = record.epoch == manifest.config.hyper.epochs;
    manifest.epochs.push(record);
    run.write_manifest(manifest)?;
    for old in previous {
        let path = run.path(&old);
        std::fs::remove_file(&path)
            .with_context(|| format!("cannot remove the replaced state '{}'", path.display()))?;
    }
    Ok(())
}
