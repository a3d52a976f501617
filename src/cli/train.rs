//! `vog train` and `vog train --resume`.
use super::{reporter, values, Terminal};
use crate::config::{Hyper, TrainConfig};
use crate::data::decisions::{Decisions, Exclusions, Relabels};
use crate::data::prepare::{self, LabelNoise, Selection};
use crate::data::DatasetSpec;
use crate::epochs::{EpochSpec, LrStep};
use crate::origin::Origins;
use crate::precision::Precision;
use crate::run_dir::{RunDir, RunManifest};
use crate::train;
use crate::variance::Target;
use anyhow::{Context, Result};
use clap::Args;
use std::path::{Path, PathBuf};
use tch::Device;

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Continue the unfinished run in RUN from its last finished epoch, with the settings it
    /// was started with (bit-identical to an uninterrupted run on the same device).
    #[arg(long, value_name = "RUN", conflicts_with_all = [
        "dataset", "out", "config", "epochs", "batch_size", "lr", "width", "save_epochs",
        "seed", "eval_every", "precision", "no_augment", "train_subset", "test_subset", "label_noise", "noise_seed",
        "exclude", "relabel", "decisions", "lr_step", "no_shuffle", "capture_epochs", "capture_targets",
        "overwrite", "from", "deterministic", "plant", "plant_source", "plant_from",
    ])]
    pub resume: Option<PathBuf>,
    /// Train the finished run RUN again as it was (data, subsets, labels as it trained them,
    /// recipe) with --decisions, --exclude or --relabel on top, into --out.
    #[arg(long, value_name = "RUN", conflicts_with_all = [
        "dataset", "config", "epochs", "batch_size", "lr", "width", "save_epochs",
        "seed", "eval_every", "precision", "no_augment", "train_subset", "test_subset", "label_noise", "noise_seed",
        "lr_step", "no_shuffle", "capture_epochs", "capture_targets", "deterministic", "plant",
        "plant_source", "plant_from",
    ])]
    pub from: Option<PathBuf>,
    /// cifar10, cifar100, synth, or an image folder ROOT with train/<class>/ (and test/<class>/).
    #[arg(long, required_unless_present_any = ["resume", "from"])]
    pub dataset: Option<String>,
    /// Where CIFAR binaries live (as extracted by `vog download`).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Run directory to create.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// TOML file with the hyper-parameters (default: the built-in configs/cifar10.toml or
    /// cifar100.toml); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Initial learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Base channel count of the ResNet (64 = the paper's 11.2M-parameter network).
    #[arg(long)]
    pub width: Option<i64>,
    /// Epochs to checkpoint: lists, ranges and strides, e.g. `1,2,3,348-350`, `every:10`,
    /// `first:3,last:3`, `paper` (first three, last three, every 10th), `all`.
    #[arg(long)]
    pub save_epochs: Option<String>,
    /// Seed for weight init, data order, augmentation and subsets.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Evaluate the test split every N epochs (the last epoch always).
    #[arg(long, value_name = "N")]
    pub eval_every: Option<usize>,
    /// Mixed precision: bf16 (autocast, no loss scaling; CPU and recent GPUs) or fp16
    /// (autocast with a dynamic loss scale; GPUs). Weights and SGD stay fp32.
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
    /// Train without random crop and flip.
    #[arg(long)]
    pub no_augment: bool,
    /// What the learning-rate milestones count: epoch (the paper's text) or batch (optimizer
    /// steps: the authors' script stepped MultiStepLR once per batch).
    #[arg(long, value_enum)]
    pub lr_step: Option<LrStep>,
    /// Visit the training set in one order every epoch, drawn once from the seed (the
    /// authors' shuffle=False kept CIFAR's own mixed order; a folder's is class by class);
    /// augmentation is still drawn every epoch.
    #[arg(long)]
    pub no_shuffle: bool,
    /// Capture every example's input gradients during training, right after each optimizer
    /// step of these epochs, on the augmented batch just trained on (the authors' protocol),
    /// e.g. `first:1,last:1`; `vog score --captured` turns them into scores.
    #[arg(long, value_name = "SPEC")]
    pub capture_epochs: Option<String>,
    /// What the captured gradients differentiate, comma-separated: logit (the paper),
    /// prob, logprob, margin; each costs one more backward pass and its own memory.
    #[arg(long, value_delimiter = ',')]
    pub capture_targets: Vec<Target>,
    /// Train on a class-stratified, seeded subset of N examples.
    #[arg(long, value_name = "N")]
    pub train_subset: Option<usize>,
    /// Evaluate on a class-stratified, seeded subset of N test examples.
    #[arg(long, value_name = "N")]
    pub test_subset: Option<usize>,
    /// Shuffle the labels of this fraction of the training set (memorization experiment).
    #[arg(long, value_name = "F")]
    pub label_noise: Option<f64>,
    /// Leave these training examples out: a CSV with an `id` column or one id per line
    /// (as `vog rank --format ids` writes); recorded in run.json.
    #[arg(long, value_name = "IDS")]
    pub exclude: Option<PathBuf>,
    /// Train these examples with other labels: a CSV `id,label` (a class name or index);
    /// recorded in run.json.
    #[arg(long, value_name = "FILE")]
    pub relabel: Option<PathBuf>,
    /// Apply a reviewer's decisions (`vog review`'s export, a CSV id,action,label): drop
    /// leaves the example out, relabel trains it with the label; recorded in run.json.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["exclude", "relabel"])]
    pub decisions: Option<PathBuf>,
    /// Plant known hardness into the training split, KIND:F[,KIND:F...], each kind on its
    /// own examples (seeded by --seed), recorded in planted.csv: label kinds (image kept)
    /// uniform (another class at random), adjacent (class c -> c+1), pairs (CIFAR-10's
    /// truck->automobile, bird->airplane, deer->horse, cat<->dog; elsewhere a seeded
    /// pairing); image kinds (label kept) noise (Gaussian, sigma 0.2 of the pixel range),
    /// zoom (the centre 1/1.75, resized back), shift (10/32 of the side, border black),
    /// foreign (a generated checkerboard, or an image of --plant-source); confusable (the
    /// class the model of --plant-from ranks next for that image). Images held in memory
    /// only.
    #[arg(long, value_name = "KIND:F,...", conflicts_with_all = ["label_noise", "relabel", "decisions"])]
    pub plant: Option<crate::data::plant::PlantSpec>,
    /// The images foreign plants instead of a checkerboard: every png, jpg and jpeg in DIR
    /// and its sub-folders, each planted one drawn at random (seeded) and resized to the
    /// dataset's images.
    #[arg(long, value_name = "DIR", requires = "plant")]
    pub plant_source: Option<PathBuf>,
    /// The finished run whose final model ranks each training image's classes for
    /// confusable: it plants the class that model scores highest after the image's label.
    /// Same classes and image size as this run's data.
    #[arg(long, value_name = "RUN", requires = "plant")]
    pub plant_from: Option<PathBuf>,
    /// Seed of the label shuffle (default: --seed).
    #[arg(long, requires = "label_noise")]
    pub noise_seed: Option<u64>,
    /// Deterministic algorithms only (cuDNN benchmark off; recorded in the run): a GPU run
    /// and its resumption repeat bit for bit, somewhat slower. CPU runs repeat anyway.
    #[arg(long)]
    pub deterministic: bool,
    /// auto (default: the first GPU, else the CPU), cpu, cuda or cuda:N. With --resume, the
    /// device to continue on (default: the one the run ran on).
    #[arg(long, value_parser = values::device)]
    pub device: Option<Device>,
    /// Replace the run already in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    /// Merges the config file (or built-in defaults) with the flags and validates the result.
    pub fn to_config(&self) -> Result<(TrainConfig, Origins)> {
        let seed_hint = self.seed.unwrap_or(0);
        let name = self.dataset.as_deref().context("--dataset is required")?;
        let dataset = DatasetSpec::resolve(name, &self.data_dir, seed_hint).context("--dataset")?;
        let (mut h, origins) = match &self.config {
            Some(path) => (Hyper::from_file(path)?, Origins::file(path, "")),
            None => (Hyper::defaults_for(&dataset), Origins::default()),
        };
        let (save_epochs, capture_epochs) = self.epoch_specs()?;
        let origins = origins
            .set("epochs", &mut h.epochs, self.epochs)
            .set("batch_size", &mut h.batch_size, self.batch_size)
            .set("lr", &mut h.lr, self.lr)
            .set("width", &mut h.width, self.width)
            .set("save_epochs", &mut h.save_epochs, save_epochs)
            .set("seed", &mut h.seed, self.seed)
            .set("eval_every", &mut h.eval_every, self.eval_every)
            .set("precision", &mut h.precision, self.precision)
            .set("lr_step", &mut h.lr_step, self.lr_step)
            .set(
                "capture_epochs",
                &mut h.capture_epochs,
                capture_epochs.map(Some),
            )
            .set("shuffle", &mut h.shuffle, self.no_shuffle.then_some(false))
            .set(
                "deterministic",
                &mut h.deterministic,
                self.deterministic.then_some(true),
            )
            .set(
                "capture_targets",
                &mut h.capture_targets,
                (!self.capture_targets.is_empty()).then(|| self.capture_targets.clone()),
            )
            .flag("train_subset", true)
            .flag("test_subset", true)
            .flag("label_noise", true)
            .flag("plant", true)
            .flag("plant_source", true);
        h.augment &= !self.no_augment;
        // The synthetic data follows the run's seed, whichever source set it.
        let dataset = dataset.with_seed(h.seed);
        let cfg = TrainConfig::new(
            dataset,
            h.clone(),
            self.selection(h.seed)?,
            self.device_or_auto()?,
            &origins,
        )?;
        Ok((cfg, origins))
    }

    /// `--save-epochs` and `--capture-epochs`, parsed.
    fn epoch_specs(&self) -> Result<(Option<EpochSpec>, Option<EpochSpec>)> {
        let parse = |spec: &Option<String>, flag: &str| {
            spec.as_deref().map(|s| parse_spec(s, flag)).transpose()
        };
        Ok((
            parse(&self.save_epochs, "--save-epochs")?,
            parse(&self.capture_epochs, "--capture-epochs")?,
        ))
    }

    /// `--device`, or `auto` resolved here.
    fn device_or_auto(&self) -> Result<Device> {
        match self.device {
            Some(d) => Ok(d),
            None => values::device("auto").map_err(anyhow::Error::msg),
        }
    }

    /// The examples and labels asked for: subsets, label noise, and a person's decisions
    /// (`--exclude`/`--relabel`, or a review's `--decisions`, which amount to the same).
    fn selection(&self, seed: u64) -> Result<Selection> {
        let (decisions, exclude, relabel) = match &self.decisions {
            Some(path) => {
                let (record, exclude, relabel) = Decisions::read(path)?;
                (Some(record), exclude, relabel)
            }
            None => (
                None,
                self.exclude.as_deref().map(Exclusions::read).transpose()?,
                self.relabel.as_deref().map(Relabels::read).transpose()?,
            ),
        };
        Ok(Selection {
            train_subset: self.train_subset,
            test_subset: self.test_subset,
            label_noise: self.label_noise.map(|fraction| LabelNoise {
                fraction,
                seed: self.noise_seed.unwrap_or(seed),
            }),
            exclude,
            relabel,
            decisions,
            subset_seed: None,
            plant: self.plant.clone(),
            plant_source: self
                .plant_source
                .as_deref()
                .map(std::path::absolute)
                .transpose()
                .context("--plant-source")?,
            plant_from: None,
        })
    }
}

fn parse_spec(s: &str, flag: &str) -> Result<EpochSpec> {
    s.parse().with_context(|| format!("invalid {flag} '{s}'"))
}

pub fn run(a: &TrainArgs) -> Result<()> {
    if let Some(dir) = &a.resume {
        return resume(dir, a.device, a.quiet);
    }
    let out = a.out.as_deref().context("--out is required")?;
    // Every check that can fail comes before the run directory is touched.
    RunDir::ensure_free(out, a.overwrite)?;
    let (cfg, origins) = match &a.from {
        Some(base) => {
            let mut cfg = from_run(base, a.selection(0)?)?;
            cfg.device = a.device_or_auto()?;
            (cfg, Origins::default())
        }
        None => a.to_config()?,
    };
    let cfg = with_plant_from(a, cfg, &origins)?;
    let prepared = prepare::prepare(&cfg.dataset, &cfg.selection(), cfg.hyper.seed, &origins)?;
    train::check_fits(&cfg, &prepared, &origins)?;
    super::memory::note_batch_size(cfg.hyper.batch_size);
    let run = RunDir::create(out, a.overwrite)?;
    reporter::stop_on_ctrl_c()?;
    let m = train::run(&cfg, &prepared, &run, &Terminal::detect(a.quiet))?;
    print_trained(&m, run.root())
}

/// `cfg` with the classes `--plant-from RUN`'s model ranks next for its training images
/// (as they are before planting), for `confusable`.
fn with_plant_from(a: &TrainArgs, mut cfg: TrainConfig, origins: &Origins) -> Result<TrainConfig> {
    let Some(run) = &a.plant_from else {
        return Ok(cfg);
    };
    let mut clean = cfg.selection();
    (clean.plant, clean.plant_source) = (None, None);
    let data = prepare::prepare(&cfg.dataset, &clean, cfg.hyper.seed, origins)?.data;
    let classes =
        crate::scoring::confusable::classes(run, &data.train, &data.class_names, cfg.device)?;
    cfg.plant_from = Some(classes);
    Ok(cfg)
}

/// The configuration of `vog train --from BASE` with `person`'s decisions.
fn from_run(base: &Path, person: Selection) -> Result<TrainConfig> {
    if person.exclude.is_none() && person.relabel.is_none() {
        anyhow::bail!(
            "--from trains a run again with changes: give --decisions, --exclude or --relabel"
        );
    }
    let dir = RunDir::open_shared(base)?;
    let m = dir.read_manifest()?;
    if !m.complete {
        anyhow::bail!("run '{}' has not finished training", base.display());
    }
    let prepared = dir.prepare_data(&m)?;
    train::config_from(base, &m.config, &prepared, person)
}

/// `vog train --resume RUN`.
fn resume(dir: &Path, device: Option<Device>, quiet: bool) -> Result<()> {
    let run = RunDir::open_for_writing(dir)?;
    let m = run.read_manifest()?;
    if m.complete {
        m.verify_all(dir)
            .with_context(|| format!("'{}' finished all its epochs, but", dir.display()))?;
        println!(
            "'{}' finished all {} epochs; nothing to resume",
            dir.display(),
            m.epochs.len()
        );
        return Ok(());
    }
    let device = train::resume_device(&m, device, dir)?;
    super::memory::note_batch_size(m.config.hyper.batch_size);
    let cfg = &m.config;
    let prepared = prepare::prepare(
        &cfg.dataset,
        &cfg.selection(),
        cfg.hyper.seed,
        &Origins::default(),
    )?;
    reporter::stop_on_ctrl_c()?;
    let m = train::resume(&run, &prepared, device, &Terminal::detect(quiet))?;
    print_trained(&m, run.root())
}

fn print_trained(m: &RunManifest, root: &Path) -> Result<()> {
    let last = m.epochs.last().context("no epoch ran")?;
    let test = last.test_accuracy.map_or(String::new(), |a| {
        format!(", test accuracy {:.1}%", 100.0 * a)
    });
    println!(
        "trained {} epochs on {} ({} examples, {} device){test}; checkpoints for epochs {:?} in '{}'",
        m.epochs.len(),
        m.config.dataset.name(),
        m.dataset.train_examples,
        crate::device::name(m.device),
        m.saved_epochs,
        root.display()
    );
    Ok(())
}
