//! The run directory that `vog train` writes and later stages read. Layout:
//!
//! ```text
//! RUN/run.json                           manifest (format "vog-run/1", see RunManifest)
//! RUN/config.toml                        effective hyper-parameters (reusable as --config)
//! RUN/label_noise.csv                    id,original_label,assigned_label (label-noise runs)
//! RUN/checkpoints/epoch-NNNN.safetensors model state, torchvision parameter names
//! ```
//!
//! Every file is written atomically, and `run.json` is rewritten after each epoch, so a
//! killed run leaves a valid manifest of the epochs it finished.
use crate::atomic_file;
use crate::config::TrainConfig;
use crate::data::transform::Normalization;
use crate::info::Versions;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tch::nn::VarStore;
use tch::Tensor;

pub const MANIFEST: &str = "run.json";
pub const CONFIG: &str = "config.toml";
pub const LABEL_NOISE: &str = "label_noise.csv";
pub const CHECKPOINTS: &str = "checkpoints";
pub const FORMAT: &str = "vog-run/1";

/// What the run trained on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    /// MD5 over the ids, labels and pixels of the (subset) splits used.
    pub fingerprint: String,
    pub class_names: Vec<String>,
    pub train_examples: usize,
    pub test_examples: usize,
    /// (channels, height, width).
    pub image_shape: [i64; 3],
}

/// One finished epoch.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub train_accuracy: f64,
    pub test_loss: Option<f64>,
    pub test_accuracy: Option<f64>,
    pub seconds: f64,
    pub images_per_second: f64,
    /// Relative to the run directory, when this epoch was saved.
    pub checkpoint: Option<String>,
}

/// `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunManifest {
    pub format: String,
    pub versions: Versions,
    /// Seconds since the Unix epoch when the run started.
    pub started_unix: u64,
    #[serde(with = "crate::device::by_name")]
    pub device: tch::Device,
    pub config: TrainConfig,
    pub dataset: DatasetInfo,
    pub normalization: Normalization,
    pub parameters: i64,
    /// The label-noise record, relative to the run directory.
    pub label_noise_file: Option<String>,
    /// The training-dynamics folder, relative to the run (runs from before it have none).
    #[serde(default)]
    pub dynamics: Option<String>,
    pub epochs: Vec<EpochRecord>,
    /// Epochs with a checkpoint on disk.
    pub saved_epochs: Vec<usize>,
    pub complete: bool,
}

/// A run directory on disk.
#[derive(Debug, Clone)]
pub struct RunDir {
    root: PathBuf,
}

impl RunDir {
    /// Prepares `root` for a new run. A folder that already holds a run is refused unless
    /// `overwrite`, in which case that run's files are removed (nothing else is touched).
    pub fn create(root: &Path, overwrite: bool) -> Result<Self> {
        Self::ensure_free(root, overwrite)?;
        let run = RunDir {
            root: root.to_path_buf(),
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
        };
        if run.holds_run() && !overwrite {
            bail!(
                "'{}' already holds a run (run.json or checkpoints/); pass --overwrite to replace it",
                root.display()
            );
        }
        Ok(())
    }

    /// Opens an existing run (one with a `run.json`).
    pub fn open(root: &Path) -> Result<Self> {
        let run = RunDir {
            root: root.to_path_buf(),
        };
        if !run.manifest_path().is_file() {
            bail!("'{}' is not a vog run (no run.json)", root.display());
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
        let dynamics = self.root.join(crate::dynamics::DIR);
        if dynamics.exists() {
            std::fs::remove_dir_all(&dynamics)
                .with_context(|| format!("cannot remove '{}'", dynamics.display()))?;
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
    let saved: HashMap<String, Tensor> = saved.into_iter().collect();
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
        if src.size() != want {
            bail!(
                "checkpoint '{}': '{name}' has shape {:?} where the run's network has {want:?} \
                 (a checkpoint of another width or class count?)",
                path.display(),
                src.size()
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
