//! The run directory that `vog train` writes and later stages read. Layout:
//!
//! ```text
//! RUN/run.json                           manifest (format "vog-run/1", see RunManifest)
//! RUN/config.toml                        effective hyper-parameters (reusable as --config)
//! RUN/label_noise.csv                    id,original_label,assigned_label (label-noise runs)
//! RUN/planted.csv                        id,kind,original_label,trained_label,parameters (--plant)
//! RUN/checkpoints/epoch-NNNN.safetensors model state, torchvision parameter names
//! RUN/resume/epoch-NNNN.safetensors      resume state after the last finished epoch:
//!                                        `model/NAME` (every variable, BatchNorm buffers
//!                                        included) and `momentum/NAME` (SGD buffers)
//! RUN/dynamics/epoch-NNNN.bin            training dynamics (see `dynamics`)
//! RUN/.vog.lock                          advisory lock held while a process writes the run
//! ```
//!
//! Every file is written atomically, and `run.json` is rewritten after each epoch, after
//! that epoch's files: it is the commit point. It records the size and SHA-256 of every
//! checkpoint and of the resume state, and where the data-order generator stood, so a
//! killed run continues from its last finished epoch with exactly the state an
//! uninterrupted run would have had.
mod manifest;

pub use manifest::{
    CaptureRecord, DatasetInfo, EpochRecord, ResumeRecord, ResumeState, RunManifest,
};

use crate::atomic_file;
use crate::data::prepare::{self, PreparedData};
use crate::digest::{self, FileDigest};
use crate::origin::Origins;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use tch::nn::VarStore;
use tch::Tensor;

pub const MANIFEST: &str = "run.json";
pub const CONFIG: &str = "config.toml";
pub const LABEL_NOISE: &str = "label_noise.csv";
/// The record of the examples a run planted hardness into (`vog train --plant`).
pub const PLANTED: &str = "planted.csv";
pub const CHECKPOINTS: &str = "checkpoints";
pub const RESUME_DIR: &str = "resume";
pub const LOCK: &str = ".vog.lock";
pub const FORMAT: &str = "vog-run/1";
/// The layout of resume files and of [`ResumeRecord`]; a run saved in another cannot be
/// resumed by this binary.
pub const RESUME_FORMAT: &str = "vog-resume/1";
/// The folder of the gradients captured during training.
pub const CAPTURED_DIR: &str = "captured";
pub const CAPTURED_FORMAT: &str = "vog-captured/1";

/// A run directory on disk. One opened for writing holds the run's lock until the last
/// clone of it is dropped.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
    lock: Option<Arc<File>>,
}

/// Takes the advisory lock of the run in `root` (created if needed) and writes our pid into
/// it. The OS releases it when the process ends, however it ends, so no stale lock stays.
fn lock(root: &Path) -> Result<Arc<File>> {
    std::fs::create_dir_all(root)
        .with_context(|| format!("cannot create run folder '{}'", root.display()))?;
    let path = root.join(LOCK);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .with_context(|| format!("cannot open the lock file '{}'", path.display()))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "'{}' is in use by another vog process ({}); wait for it to finish or stop it",
            root.display(),
            holder(&path)
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            return Err(e).with_context(|| format!("cannot lock '{}'", path.display()))
        }
    }
    file.set_len(0)
        .and_then(|()| write!(file, "{}", std::process::id()))
        .with_context(|| format!("cannot write the lock file '{}'", path.display()))?;
    Ok(Arc::new(file))
}

/// Who holds the lock at `path`, as far as the file says: the pid of the last writer.
fn holder(path: &Path) -> String {
    let pid = std::fs::read_to_string(path).unwrap_or_default();
    match pid.trim() {
        "" => "scoring it".into(),
        pid => format!("pid {pid} is writing it, or another is scoring it"),
    }
}

/// Takes the run's lock shared, as every reader that must not see the run change does
/// (scoring): writers, which take it exclusively, wait until it is let go. A run whose
/// lock file cannot be opened (a read-only copy) cannot be written either: no lock.
fn lock_shared(root: &Path) -> Result<Option<Arc<File>>> {
    let path = root.join(LOCK);
    let Ok(file) = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
    else {
        return Ok(None);
    };
    match file.try_lock_shared() {
        Ok(()) => Ok(Some(Arc::new(file))),
        Err(std::fs::TryLockError::WouldBlock) => bail!(
            "'{}' is being written by another vog process ({}); read it once that has finished",
            root.display(),
            holder(&path)
        ),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("cannot lock '{}'", path.display()))
        }
    }
}

impl RunDir {
    /// Prepares `root` for a new run, holding its lock. A folder that already holds a run
    /// is refused unless `overwrite`, in which case that run's files are removed (nothing
    /// else is touched).
    pub fn create(root: &Path, overwrite: bool) -> Result<Self> {
        let lock = lock(root)?;
        Self::ensure_free(root, overwrite)?;
        let run = RunDir {
            root: root.to_path_buf(),
            lock: Some(lock),
        };
        if run.holds_run() {
            run.remove_run_files()?;
        }
        let ckpt = run.root.join(CHECKPOINTS);
        std::fs::create_dir_all(&ckpt)
            .with_context(|| format!("cannot create run folder '{}'", ckpt.display()))?;
        Ok(run)
    }

    /// Fails if `root` holds a run and `overwrite` is not set; writes nothing.
    pub fn ensure_free(root: &Path, overwrite: bool) -> Result<()> {
        let run = RunDir {
            root: root.to_path_buf(),
            lock: None,
        };
        if run.holds_run() && !overwrite {
            bail!(
                "'{}' already holds a run (run.json or checkpoints/); pass --overwrite to replace it",
                root.display()
            );
        }
        Ok(())
    }

    /// Opens an existing run (one with a `run.json`) for reading.
    pub fn open(root: &Path) -> Result<Self> {
        let run = RunDir {
            root: root.to_path_buf(),
            lock: None,
        };
        if !run.manifest_path().is_file() {
            bail!("'{}' is not a vog run (no run.json)", root.display());
        }
        Ok(run)
    }

    /// Opens an existing run to read it while nothing writes it: holds the lock shared, so
    /// `vog train --overwrite` or `--resume` waits until it is let go.
    pub fn open_shared(root: &Path) -> Result<Self> {
        let mut run = Self::open(root)?;
        run.lock = lock_shared(root)?;
        Ok(run)
    }

    /// Opens an existing run to continue writing it: takes its lock and removes the
    /// temporary files a killed writer may have left.
    pub fn open_for_writing(root: &Path) -> Result<Self> {
        let mut run = Self::open(root)?;
        run.lock = Some(lock(root)?);
        for dir in [
            CHECKPOINTS,
            RESUME_DIR,
            CAPTURED_DIR,
            crate::dynamics::DIR,
            "",
        ] {
            atomic_file::remove_temporaries(&run.root.join(dir))?;
        }
        Ok(run)
    }

    fn holds_run(&self) -> bool {
        self.manifest_path().exists() || self.root.join(CHECKPOINTS).exists()
    }

    fn remove_run_files(&self) -> Result<()> {
        let ckpt = self.root.join(CHECKPOINTS);
        if ckpt.exists() {
            std::fs::remove_dir_all(&ckpt)
                .with_context(|| format!("cannot remove '{}'", ckpt.display()))?;
        }
        // What `vog crossval` and `vog prune` derived from the old run (the folder of oof.rs and
        // RUN/prune) would otherwise pass for the new run's.
        for dir in [crate::dynamics::DIR, RESUME_DIR, "crossval", "prune"] {
            let dir = self.root.join(dir);
            if dir.exists() {
                std::fs::remove_dir_all(&dir)
                    .with_context(|| format!("cannot remove '{}'", dir.display()))?;
            }
        }
        for name in [MANIFEST, CONFIG, LABEL_NOISE] {
            let p = self.root.join(name);
            if p.exists() {
                std::fs::remove_file(&p)
                    .with_context(|| format!("cannot remove '{}'", p.display()))?;
            }
        }
        // The old run's scores would otherwise pass for the new run's.
        for csv in scores_csvs(&self.root)? {
            for p in [csv.with_extension("json"), csv] {
                if p.exists() {
                    std::fs::remove_file(&p)
                        .with_context(|| format!("cannot remove '{}'", p.display()))?;
                }
            }
        }
        Ok(())
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn manifest_path(&self) -> PathBuf {
        self.root.join(MANIFEST)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.root.join(name)
    }

    /// `checkpoints/epoch-NNNN.safetensors`, relative to the run.
    pub fn checkpoint_name(epoch: usize) -> String {
        format!("{CHECKPOINTS}/epoch-{epoch:04}.safetensors")
    }

    pub fn write_manifest(&self, m: &RunManifest) -> Result<()> {
        let json = serde_json::to_vec_pretty(m)?;
        atomic_file::write_bytes(&self.manifest_path(), &json)
    }

    pub fn read_manifest(&self) -> Result<RunManifest> {
        let p = self.manifest_path();
        let text = std::fs::read_to_string(&p)
            .with_context(|| format!("cannot read '{}'", p.display()))?;
        let m: RunManifest = serde_json::from_str(&text)
            .with_context(|| format!("invalid run manifest '{}'", p.display()))?;
        if m.format != FORMAT {
            bail!(
                "'{}' has format '{}', expected '{FORMAT}'",
                p.display(),
                m.format
            );
        }
        Ok(m)
    }

    /// The data the run of manifest `m` trained and was tested on, prepared again from its
    /// recorded recipe (subsets, label noise, planted images); errors about a recorded value
    /// name its key in `run.json`.
    pub fn prepare_data(&self, m: &RunManifest) -> Result<PreparedData> {
        let origins = Origins::file(&self.manifest_path(), "config.");
        let cfg = &m.config;
        prepare::prepare(&cfg.dataset, &cfg.selection(), cfg.hyper.seed, &origins)
    }

    /// Saves the model state for `epoch`; returns its name relative to the run.
    pub fn save_checkpoint(&self, vs: &VarStore, epoch: usize) -> Result<String> {
        let name = Self::checkpoint_name(epoch);
        let path = self.root.join(&name);
        atomic_file::save_via_temp(&path, |tmp| {
            vs.save(tmp)
                .with_context(|| format!("cannot save checkpoint '{}'", path.display()))
        })?;
        Ok(name)
    }

    /// `resume/epoch-NNNN.safetensors`, relative to the run.
    pub fn resume_name(epoch: usize) -> String {
        format!("{RESUME_DIR}/epoch-{epoch:04}.safetensors")
    }

    /// Saves the resume state after `epoch`: every variable of `vs` and the `momentum`
    /// buffers. Returns its name relative to the run.
    pub fn save_resume(
        &self,
        vs: &VarStore,
        momentum: &[(String, Tensor)],
        epoch: usize,
    ) -> Result<String> {
        let name = Self::resume_name(epoch);
        let path = self.root.join(&name);
        let dir = atomic_file::parent_dir(&path);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create '{}'", dir.display()))?;
        let mut named: Vec<(String, Tensor)> = vs
            .variables()
            .into_iter()
            .map(|(k, v)| (format!("model/{k}"), v))
            .collect();
        named.extend(
            momentum
                .iter()
                .map(|(k, v)| (format!("momentum/{k}"), v.shallow_clone())),
        );
        named.sort_by(|a, b| a.0.cmp(&b.0));
        atomic_file::save_via_temp(&path, |tmp| {
            Tensor::write_safetensors(&named, tmp)
                .with_context(|| format!("cannot save the resume state '{}'", path.display()))
        })?;
        Ok(name)
    }

    /// Saves the gradients captured up to `epoch` into `captured/epoch-NNNN.safetensors`;
    /// returns its name relative to the run.
    pub fn save_captured(
        &self,
        c: &crate::variance::captured::Captured,
        epoch: usize,
    ) -> Result<String> {
        let name = format!("{CAPTURED_DIR}/epoch-{epoch:04}.safetensors");
        let path = self.root.join(&name);
        let dir = atomic_file::parent_dir(&path);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create '{}'", dir.display()))?;
        atomic_file::save_via_temp(&path, |tmp| {
            Tensor::write_safetensors(&c.named(), tmp)
                .with_context(|| format!("cannot save the captured gradients '{}'", path.display()))
        })?;
        Ok(name)
    }

    /// Size and SHA-256 of the run's file `name`.
    pub fn digest(&self, name: &str) -> Result<FileDigest> {
        digest::of_file(&self.root.join(name))
    }
}

/// Reads a resume file written by [`RunDir::save_resume`].
pub fn read_resume(path: &Path) -> Result<ResumeState> {
    let tensors = Tensor::read_safetensors(path)
        .with_context(|| format!("cannot read the resume state '{}'", path.display()))?;
    let mut state = ResumeState {
        model: HashMap::new(),
        momentum: Vec::new(),
    };
    for (key, t) in tensors {
        if let Some(name) = key.strip_prefix("model/") {
            state.model.insert(name.to_string(), t);
        } else if let Some(name) = key.strip_prefix("momentum/") {
            state.momentum.push((name.to_string(), t));
        } else {
            bail!(
                "the resume state '{}' holds '{key}', which is neither model/ nor momentum/",
                path.display()
            );
        }
    }
    Ok(state)
}

/// Reads the captured gradients `record` names (checked against the run's digest first) for
/// `examples` x `pixels`, onto `device`.
pub fn read_captured(
    run: &Path,
    m: &RunManifest,
    record: &CaptureRecord,
    device: tch::Device,
) -> Result<crate::variance::captured::Captured> {
    let path = run.join(&record.file);
    if record.format != CAPTURED_FORMAT {
        bail!(
            "'{}' is of format '{}', this vog reads '{CAPTURED_FORMAT}'",
            path.display(),
            record.format
        );
    }
    m.verify_file(run, &record.file)?;
    let named = Tensor::read_safetensors(&path)
        .with_context(|| format!("cannot read the captured gradients '{}'", path.display()))?;
    let [_, h, w] = m.dataset.image_shape;
    let shape = (m.dataset.train_examples, (h * w) as usize);
    let c = crate::variance::captured::Captured::from_named(
        named.into_iter().collect(),
        &record.targets,
        shape,
        device,
    )
    .with_context(|| format!("invalid captured gradients '{}'", path.display()))?;
    if c.count != record.epochs.len() {
        bail!(
            "'{}' holds {} capture epochs, run.json says {:?}",
            path.display(),
            c.count,
            record.epochs
        );
    }
    Ok(c)
}

/// The scores files `vog score` wrote into a run folder by default (`scores-*.csv`), sorted.
pub fn scores_csvs(run: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(run)
        .with_context(|| format!("cannot read '{}'", run.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.starts_with("scores-") && name.ends_with(".csv")
        })
        .collect();
    found.sort();
    Ok(found)
}

/// Loads a checkpoint into `vs`. Every variable must be present with the same shape and
/// the file may hold nothing else, so a checkpoint of another width or class count is
/// refused with the first tensor that differs.
pub fn load_checkpoint(vs: &mut VarStore, path: &Path) -> Result<()> {
    let saved = Tensor::read_safetensors(path)
        .with_context(|| format!("cannot read checkpoint '{}'", path.display()))?;
    load_variables(vs, &saved.into_iter().collect(), path)
}

/// Copies `saved` (read from `path`) into `vs`, with the checks of [`load_checkpoint`].
pub fn load_variables(
    vs: &mut VarStore,
    saved: &HashMap<String, Tensor>,
    path: &Path,
) -> Result<()> {
    let mut vars = vs.variables();
    let mut names: Vec<&String> = vars.keys().collect();
    names.sort();
    for name in names {
        let Some(src) = saved.get(name) else {
            bail!(
                "checkpoint '{}' lacks '{name}': not a checkpoint of this network",
                path.display()
            );
        };
        let want = vars[name].size();
        if src.size() != want || src.kind() != vars[name].kind() {
            bail!(
                "checkpoint '{}': '{name}' is {:?} {:?} where the run's network has {:?} \
                 {want:?} (a checkpoint of another width or class count?)",
                path.display(),
                src.kind(),
                src.size(),
                vars[name].kind()
            );
        }
    }
    if let Some(extra) = saved.keys().find(|k| !vars.contains_key(*k)) {
        bail!(
            "checkpoint '{}' holds '{extra}', which the network does not have",
            path.display()
        );
    }
    tch::no_grad(|| {
        for (name, var) in vars.iter_mut() {
            var.copy_(&saved[name]);
        }
    });
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ResNet;
    use tch::nn::ModuleT;
    use tch::{Device, Kind};

    #[test]
    fn saved_checkpoint_reloads_to_identical_logits() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path(), false).unwrap();
        let vs = VarStore::new(Device::Cpu);
        let net = ResNet::new(&vs.root(), 10, 4);
        let x = Tensor::randn([3, 3, 32, 32], (Kind::Float, Device::Cpu));
        // A training-mode pass moves the BatchNorm running statistics away from their init,
        // so the test also covers buffers.
        let _ = net.forward_t(&x, true);
        let before = net.forward_t(&x, false);
        let name = run.save_checkpoint(&vs, 7).unwrap();
        assert_eq!(name, "checkpoints/epoch-0007.safetensors");

        let mut vs2 = VarStore::new(Device::Cpu);
        let net2 = ResNet::new(&vs2.root(), 10, 4);
        load_checkpoint(&mut vs2, &run.path(&name)).unwrap();
        assert_eq!(net2.forward_t(&x, false), before);
        let other = ResNet::new(&VarStore::new(Device::Cpu).root(), 10, 4);
        assert_ne!(other.forward_t(&x, false), before);
    }

    #[test]
    fn wrong_width_checkpoint_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let run = RunDir::create(dir.path(), false).unwrap();
        let vs = VarStore::new(Device::Cpu);
        let _net = ResNet::new(&vs.root(), 10, 4);
        let name = run.save_checkpoint(&vs, 1).unwrap();
        let mut vs2 = VarStore::new(Device::Cpu);
        let _net2 = ResNet::new(&vs2.root(), 10, 8);
        let err = load_checkpoint(&mut vs2, &run.path(&name)).unwrap_err();
        assert!(
            format!("{err:#}").contains("epoch-0001.safetensors"),
            "{err:#}"
        );
    }

    #[test]
    fn non_finite_figures_round_trip() {
        let r = EpochRecord {
            epoch: 1,
            lr: 0.1,
            train_loss: 1.0,
            train_accuracy: 0.5,
            test_loss: Some(f64::NAN),
            test_accuracy: Some(0.1),
            seconds: 0.0,
            images_per_second: f64::INFINITY,
            checkpoint: None,
            save_seconds: 0.1,
        };
        let json = serde_json::to_string(&r).unwrap();
        let back: EpochRecord = serde_json::from_str(&json).unwrap();
        assert!(back.images_per_second.is_nan() && back.test_loss.is_none());
        assert_eq!(serde_json::to_string(&back).unwrap(), json);
    }

    #[test]
    fn existing_run_needs_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        RunDir::create(dir.path(), false).unwrap();
        std::fs::write(dir.path().join("notes.txt"), "keep").unwrap();
        let err = RunDir::create(dir.path(), false).unwrap_err();
        assert!(err.to_string().contains("--overwrite"), "{err}");
        std::fs::write(dir.path().join("scores-test-all.csv"), "old").unwrap();
        std::fs::write(dir.path().join("scores-test-all.json"), "old").unwrap();
        RunDir::create(dir.path(), true).unwrap();
        assert!(dir.path().join("notes.txt").exists());
        // The replaced run's scores go with it.
        assert!(!dir.path().join("scores-test-all.csv").exists());
        assert!(!dir.path().join("scores-test-all.json").exists());
        assert!(RunDir::open(dir.path()).is_err());
    }
}
