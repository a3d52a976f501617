//! Training configuration: the TOML files in `configs/` hold the paper's defaults, command
//! line flags override them, and the validated result is saved in the run directory.
use crate::data::decisions::{Decisions, Exclusions, Relabels};
use crate::data::prepare::{LabelNoise, Selection};
use crate::data::DatasetSpec;
use crate::epochs::{EpochSpec, LrSchedule, LrStep};
use crate::optim::SgdConfig;
use crate::origin::Origins;
use crate::variance::Target;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::Path;
use tch::Device;

const CIFAR10_TOML: &str = include_str!("../configs/cifar10.toml");
const CIFAR100_TOML: &str = include_str!("../configs/cifar100.toml");

/// Training hyper-parameters: the keys of a `configs/*.toml` file, the optimizer's
/// grouped as the optimizer takes them (the file stays flat: [`HyperFile`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "HyperFile", into = "HyperFile")]
pub struct Hyper {
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    /// 1-based epochs (or 0-based optimizer steps, with `lr_step` batch) from which the
    /// learning rate is multiplied by `lr_gamma`.
    pub lr_milestones: Vec<usize>,
    pub lr_gamma: f64,
    /// What the milestones count.
    pub lr_step: LrStep,
    /// A new order of the training set every epoch (false: one order, drawn once from the
    /// seed, every epoch, as the authors' `shuffle=False` kept CIFAR's own mixed order;
    /// augmentation is still drawn every epoch).
    pub shuffle: bool,
    /// Momentum, weight decay and Nesterov (off in the paper's recipe).
    pub sgd: SgdConfig,
    /// Base channel count of the ResNet (64 = the paper's network).
    pub width: i64,
    /// Random crop with 4-pixel padding plus horizontal flip.
    pub augment: bool,
    /// Which epochs to checkpoint.
    pub save_epochs: EpochSpec,
    /// In which epochs to capture every example's input gradients during training (the
    /// authors' protocol); none by default.
    pub capture_epochs: Option<EpochSpec>,
    /// What the captured gradients differentiate (the trained label's logit by default).
    pub capture_targets: Vec<Target>,
    /// Evaluate the test split every this many epochs (and always after the last one).
    pub eval_every: usize,
    pub seed: u64,
    /// Format of the training passes: fp32, bf16 (autocast) or fp16 (autocast with a
    /// dynamic loss scale); weights and the optimizer stay fp32.
    pub precision: crate::precision::Precision,
    /// Deterministic algorithms only (cuDNN's benchmark mode off), so that a GPU run and
    /// its resumption repeat bit for bit; CPU runs are deterministic anyway.
    pub deterministic: bool,
}

/// [`Hyper`] as a `configs/*.toml` file and `run.json` spell it: one flat table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct HyperFile {
    epochs: usize,
    batch_size: usize,
    lr: f64,
    lr_milestones: Vec<usize>,
    lr_gamma: f64,
    // Written only when not the default, so that the configs (and the identity) of runs
    // trained before these keys existed stay as they were.
    #[serde(default, skip_serializing_if = "LrStep::is_epoch")]
    lr_step: LrStep,
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    shuffle: bool,
    momentum: f64,
    weight_decay: f64,
    #[serde(default)]
    nesterov: bool,
    width: i64,
    augment: bool,
    /// See [`crate::epochs::parse_epochs`].
    save_epochs: EpochSpec,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    capture_epochs: Option<EpochSpec>,
    #[serde(default = "logit_only", skip_serializing_if = "is_logit_only")]
    capture_targets: Vec<Target>,
    #[serde(default = "every_epoch")]
    eval_every: usize,
    seed: u64,
    #[serde(default)]
    precision: crate::precision::Precision,
    #[serde(default, skip_serializing_if = "is_false")]
    deterministic: bool,
}

impl From<HyperFile> for Hyper {
    fn from(f: HyperFile) -> Self {
        Hyper {
            epochs: f.epochs,
            batch_size: f.batch_size,
            lr: f.lr,
            lr_milestones: f.lr_milestones,
            lr_gamma: f.lr_gamma,
            lr_step: f.lr_step,
            shuffle: f.shuffle,
            sgd: SgdConfig {
                momentum: f.momentum,
                weight_decay: f.weight_decay,
                nesterov: f.nesterov,
            },
            width: f.width,
            augment: f.augment,
            save_epochs: f.save_epochs,
            capture_epochs: f.capture_epochs,
            capture_targets: f.capture_targets,
            eval_every: f.eval_every,
            seed: f.seed,
            precision: f.precision,
            deterministic: f.deterministic,
        }
    }
}

impl From<Hyper> for HyperFile {
    fn from(h: Hyper) -> Self {
        HyperFile {
            epochs: h.epochs,
            batch_size: h.batch_size,
            lr: h.lr,
            lr_milestones: h.lr_milestones,
            lr_gamma: h.lr_gamma,
            lr_step: h.lr_step,
            shuffle: h.shuffle,
            momentum: h.sgd.momentum,
            weight_decay: h.sgd.weight_decay,
            nesterov: h.sgd.nesterov,
            width: h.width,
            augment: h.augment,
            save_epochs: h.save_epochs,
            capture_epochs: h.capture_epochs,
            capture_targets: h.capture_targets,
            eval_every: h.eval_every,
            seed: h.seed,
            precision: h.precision,
            deterministic: h.deterministic,
        }
    }
}

impl Hyper {
    /// The built-in defaults for a dataset (CIFAR-100's for CIFAR-100, else CIFAR-10's).
    pub fn defaults_for(dataset: &DatasetSpec) -> Self {
        let text = match dataset {
            DatasetSpec::Cifar100 { .. } => CIFAR100_TOML,
            _ => CIFAR10_TOML,
        };
        toml::from_str(text).expect("built-in configs are valid")
    }

    /// Reads a config file.
    pub fn from_file(path: &Path) -> Result<Self> {
        read_toml(path, "config")
    }

    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("Hyper serializes to TOML")
    }

    /// The same recipe over `epochs` epochs, learning-rate milestones scaled along when they
    /// count epochs (milestones in optimizer steps mark the same steps of a shorter run).
    pub fn with_epochs(mut self, epochs: usize) -> Self {
        let old = self.epochs.max(1);
        if !self.lr_step.is_epoch() {
            self.epochs = epochs;
            return self;
        }
        self.lr_milestones = self
            .lr_milestones
            .iter()
            .map(|&m| (m * epochs).div_ceil(old).max(1))
            .collect();
        self.epochs = epochs;
        self
    }

    pub fn lr_schedule(&self) -> LrSchedule {
        LrSchedule {
            base: self.lr,
            milestones: self.lr_milestones.clone(),
            gamma: self.lr_gamma,
            per: self.lr_step,
        }
    }
}

/// Reads a TOML file into `T`; errors are one line naming the file and line (`what` says
/// which kind of file it is).
pub fn read_toml<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read {what} '{}'", path.display()))?;
    toml::from_str(&text).map_err(|e| {
        let line = e
            .span()
            .map_or(0, |s| text[..s.start].matches('\n').count() + 1);
        let msg = e.message().replace('\n', " ");
        anyhow::anyhow!("invalid {what} '{}' at line {line}: {msg}", path.display())
    })
}

fn every_epoch() -> usize {
    1
}

fn logit_only() -> Vec<Target> {
    vec![Target::Logit]
}

fn is_logit_only(t: &[Target]) -> bool {
    t == [Target::Logit]
}

fn yes() -> bool {
    true
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_true(b: &bool) -> bool {
    *b
}

/// What `vog train --from RUN` started from: the run (absolute, as it was then) and the
/// person's `--exclude` and `--relabel` files (a `--decisions` file is recorded as the
/// run's `decisions`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FromRun {
    pub run: std::path::PathBuf,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Exclusions>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relabel: Option<Relabels>,
}

/// A validated training configuration, as saved in `run.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    pub dataset: DatasetSpec,
    pub hyper: Hyper,
    /// The epochs `hyper.save_epochs` expands to.
    pub saved_epochs: Vec<usize>,
    /// The epochs `hyper.capture_epochs` expands to (none without it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub captured_epochs: Vec<usize>,
    pub train_subset: Option<usize>,
    pub test_subset: Option<usize>,
    pub label_noise: Option<LabelNoise>,
    /// Training examples a person left out (`--exclude`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude: Option<Exclusions>,
    /// Training examples a person relabelled (`--relabel`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub relabel: Option<Relabels>,
    /// A reviewer's decisions (`--decisions`), which `exclude` and `relabel` apply.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decisions: Option<Decisions>,
    /// The seed of the subsets, where it is not `hyper.seed`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subset_seed: Option<u64>,
    /// Hardness planted into the training split (`--plant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plant: Option<crate::data::plant::PlantSpec>,
    /// The folder whose images `foreign` plants (`--plant-source`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plant_source: Option<std::path::PathBuf>,
    /// The classes `confusable` plants, as another run's model ranked them (`--plant-from`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plant_from: Option<crate::data::plant::PlantFrom>,
    /// The run this one trains again with a person's changes (`vog train --from`), and the
    /// person's files as read; `exclude` and `relabel` above are what they amount to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from: Option<FromRun>,
    /// Where training runs.
    #[serde(with = "crate::device::by_name")]
    pub device: Device,
}

impl TrainConfig {
    /// Checks every value and expands the save-epochs spec; `origins` says where each value
    /// came from, for the error.
    pub fn new(
        dataset: DatasetSpec,
        hyper: Hyper,
        selection: Selection,
        device: Device,
        origins: &Origins,
    ) -> Result<Self> {
        check_hyper(&hyper, origins)?;
        let saved_epochs = hyper.save_epochs.expand(hyper.epochs).with_context(|| {
            format!(
                "invalid {} '{}'",
                origins.name("save_epochs"),
                hyper.save_epochs
            )
        })?;
        let captured_epochs = captured_epochs(&hyper, origins)?;
        selection.validate(origins)?;
        Ok(TrainConfig {
            dataset,
            hyper,
            saved_epochs,
            captured_epochs,
            train_subset: selection.train_subset,
            test_subset: selection.test_subset,
            label_noise: selection.label_noise,
            exclude: selection.exclude,
            relabel: selection.relabel,
            decisions: selection.decisions,
            subset_seed: selection.subset_seed,
            plant: selection.plant,
            plant_source: selection.plant_source,
            plant_from: selection.plant_from,
            from: None,
            device,
        })
    }

    /// The examples and labels this run uses.
    pub fn selection(&self) -> Selection {
        Selection {
            train_subset: self.train_subset,
            test_subset: self.test_subset,
            label_noise: self.label_noise.clone(),
            exclude: self.exclude.clone(),
            relabel: self.relabel.clone(),
            decisions: self.decisions.clone(),
            subset_seed: self.subset_seed,
            plant: self.plant.clone(),
            plant_source: self.plant_source.clone(),
            plant_from: self.plant_from.clone(),
        }
    }
}

impl TrainConfig {
    /// The first setting in which the configuration asked for (`self`) differs from the one
    /// a run found on disk holds (`found`), as `name: A asked for, B in the run` (keys in
    /// alphabetical order), or `None` when the two are equal.
    pub fn difference(&self, found: &TrainConfig) -> Option<String> {
        let (a, b) = (
            serde_json::to_value(self).ok()?,
            serde_json::to_value(found).ok()?,
        );
        first_difference("", &a, &b)
    }
}

/// The first setting in which `a` (asked for) and `b` (found) differ, over the keys of
/// both: a key one side leaves out is a setting at its default (configurations leave out
/// the keys added since older runs, at their defaults), and differs from the other's value.
fn first_difference(path: &str, a: &serde_json::Value, b: &serde_json::Value) -> Option<String> {
    use serde_json::Value::{Null, Object};
    match (a, b) {
        (Object(x), Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            keys.into_iter().find_map(|k| {
                let name = if path.is_empty() {
                    k.clone()
                } else {
                    format!("{path}.{k}")
                };
                first_difference(&name, x.get(k).unwrap_or(&Null), y.get(k).unwrap_or(&Null))
            })
        }
        _ if a == b => None,
        _ => {
            let shown = |v: &serde_json::Value| match v {
                Null => "the default".to_string(),
                v => v.to_string(),
            };
            Some(format!(
                "{path}: {} asked for, {} in the run",
                shown(a),
                shown(b)
            ))
        }
    }
}

/// The epochs of `hyper.capture_epochs`: at least two (a variance over one is nothing).
fn captured_epochs(hyper: &Hyper, origins: &Origins) -> Result<Vec<usize>> {
    let targets = &hyper.capture_targets;
    if targets.is_empty() || (1..targets.len()).any(|i| targets[..i].contains(&targets[i])) {
        bail!(
            "{} must name each target once, at least one",
            origins.name("capture_targets")
        );
    }
    let Some(spec) = &hyper.capture_epochs else {
        // One rule for flags and files: targets of a capture that never happens would be
        // recorded (and copied into derived runs) as if something were captured.
        if *targets != logit_only() {
            bail!(
                "{} says what gradients captured during training differentiate, but {} is not \
                 set: set it (e.g. first:1,last:1), or leave the targets out",
                origins.name("capture_targets"),
                origins.name("capture_epochs")
            );
        }
        return Ok(Vec::new());
    };
    let name = || format!("invalid {} '{spec}'", origins.name("capture_epochs"));
    let epochs = spec.expand(hyper.epochs).with_context(name)?;
    if epochs.len() < 2 {
        bail!(
            "{}: it names {} epoch of {}; a variance needs at least two",
            name(),
            epochs.len(),
            hyper.epochs
        );
    }
    Ok(epochs)
}

/// More epochs than any run needs; a larger count is a typo.
pub const MAX_EPOCHS: usize = 100_000;

fn check_hyper(h: &Hyper, origins: &Origins) -> Result<()> {
    let checks = [
        (h.epochs >= 1, "epochs", "must be at least 1"),
        (
            h.epochs <= MAX_EPOCHS,
            "epochs",
            "must be at most 100000 (the paper trains 350)",
        ),
        // TOML, where the effective config is saved, holds signed 64-bit integers.
        (
            h.seed <= i64::MAX as u64,
            "seed",
            "must be at most 9223372036854775807",
        ),
        (h.batch_size >= 1, "batch_size", "must be at least 1"),
        (h.eval_every >= 1, "eval_every", "must be at least 1"),
        (
            h.lr > 0.0 && h.lr.is_finite(),
            "lr",
            "must be a positive number",
        ),
        (h.width >= 1, "width", "must be at least 1"),
        (
            (0.0..1.0).contains(&h.sgd.momentum),
            "momentum",
            "must lie in [0, 1)",
        ),
        (
            h.sgd.weight_decay >= 0.0,
            "weight_decay",
            "must not be negative",
        ),
        (h.lr_gamma > 0.0, "lr_gamma", "must be positive"),
    ];
    for (ok, key, msg) in checks {
        if !ok {
            bail!("{} {msg}", origins.name(key));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synth() -> DatasetSpec {
        DatasetSpec::Synth {
            train: 10,
            test: 10,
            seed: 0,
            atypical: 0.0,
        }
    }

    fn config(h: Hyper, sel: Selection, origins: &Origins) -> Result<TrainConfig> {
        TrainConfig::new(synth(), h, sel, Device::Cpu, origins)
    }

    /// A setting left at its default (and so not written) still differs from a run that
    /// set it, both ways round.
    #[test]
    fn a_default_differs_from_a_setting() {
        let o = Origins::default();
        let plain = config(Hyper::defaults_for(&synth()), Selection::default(), &o).unwrap();
        let mut h = Hyper::defaults_for(&synth());
        (h.shuffle, h.lr_step) = (false, crate::epochs::LrStep::Batch);
        let as_run = config(h, Selection::default(), &o).unwrap();
        let said = plain.difference(&as_run).expect("a difference");
        assert!(said.contains("the default asked for"), "{said}");
        assert!(
            said.starts_with("hyper.lr_step") || said.starts_with("hyper.shuffle"),
            "{said}"
        );
        assert!(as_run.difference(&plain).unwrap().contains("in the run"));
        assert_eq!(plain.difference(&plain.clone()), None);
    }

    #[test]
    fn defaults_are_the_papers_recipe() {
        let h = Hyper::defaults_for(&synth());
        assert_eq!((h.epochs, h.batch_size, h.width), (350, 128, 64));
        assert_eq!(h.lr_milestones, vec![150, 250]);
        assert_eq!((h.sgd.momentum, h.sgd.weight_decay), (0.9, 5e-4));
        let c = config(h.clone(), Selection::default(), &Origins::default()).unwrap();
        assert_eq!(&c.saved_epochs[..3], &[1, 2, 3]);
        assert_eq!(
            &c.saved_epochs[c.saved_epochs.len() - 3..],
            &[348, 349, 350]
        );
        let h100 = Hyper::defaults_for(&DatasetSpec::Cifar100 { dir: "x".into() });
        assert_eq!(h100, h);
        assert_eq!(toml::from_str::<Hyper>(&h.to_toml()).unwrap(), h);
    }

    #[test]
    fn shortened_recipe_scales_milestones() {
        let h = Hyper::defaults_for(&synth()).with_epochs(35);
        assert_eq!((h.epochs, h.lr_milestones.clone()), (35, vec![15, 25]));
        let h = h.with_epochs(350);
        assert_eq!(h.lr_milestones, vec![150, 250]);
    }

    #[test]
    fn rejects_bad_values_naming_their_source() {
        let mut h = Hyper::defaults_for(&synth());
        h.save_epochs = "1,400".parse().unwrap();
        let flags = Origins::default().flag("save_epochs", true);
        let err = config(h.clone(), Selection::default(), &flags).unwrap_err();
        assert_eq!(
            format!("{err:#}"),
            "invalid --save-epochs '1,400': epoch 400 is outside 1..350"
        );
        h.save_epochs = "paper".parse().unwrap();
        h.batch_size = 0;
        // A value from a config file is named as such, not as a flag.
        let file = Origins::file(Path::new("configs/x.toml"), "");
        let err = config(h.clone(), Selection::default(), &file).unwrap_err();
        assert_eq!(
            err.to_string(),
            "batch_size in 'configs/x.toml' must be at least 1"
        );
        h.batch_size = 1;
        let zero = Selection {
            train_subset: Some(0),
            ..Selection::default()
        };
        let flags = Origins::default().flag("train_subset", true);
        let err = config(h, zero, &flags).unwrap_err();
        assert_eq!(err.to_string(), "--train-subset must be at least 1");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("c.toml");
        std::fs::write(&p, CIFAR10_TOML.replace("epochs = 350", "epoch = 350")).unwrap();
        let err = Hyper::from_file(&p).unwrap_err();
        assert!(format!("{err:#}").contains("c.toml"), "{err:#}");
        // The line of the offending key, counted from 1.
        std::fs::write(
            &p,
            CIFAR10_TOML.replace("batch_size = 128", "batchsize = 128"),
        )
        .unwrap();
        let line = CIFAR10_TOML
            .lines()
            .position(|l| l.starts_with("batch_size"))
            .unwrap()
            + 1;
        let err = Hyper::from_file(&p).unwrap_err().to_string();
        assert!(err.contains(&format!("at line {line}:")), "{err}");
    }
}
