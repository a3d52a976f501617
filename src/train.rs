//! `vog train`: SGD training of the CIFAR ResNet-18 with the paper's recipe, saving
//! checkpoints at the chosen epochs (Agarwal & Hooker, Section 3).
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
use crate::config::FromRun;
use crate::config::{Hyper, TrainConfig};
use crate::data::decisions::{self, Exclusions, Relabels};
use crate::data::noise::{self, NoisyLabel};
use crate::data::prepare::{self, PreparedData, Selection};
use crate::data::transform::{self, Augment, Normalization, Normalizer};
use crate::data::Split;
use crate::dynamics::{self, EpochDynamics};
use crate::info::Versions;
use crate::model::{self, ResNet};
use crate::optim::Sgd;
use crate::origin::Origins;
use crate::precision::Precision;
use crate::progress::{Reporter, Task};
use crate::run_dir::{
    self, DatasetInfo, EpochRecord, ResumeRecord, RunDir, RunManifest, FORMAT, LABEL_NOISE,
    RESUME_FORMAT,
};
use crate::variance::captured::Captured;
use crate::variance::gradient::{input_gradients, pixel_map, target_values};
use crate::variance::{Channels, GradNorm, Target};
use crate::{atomic_file, rng};
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

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

/// Batches between two refreshes of the running loss and accuracy shown beside the
/// progress (reading them synchronizes a GPU).
pub const PROGRESS_REFRESH_BATCHES: usize = 20;

/// Loss and accuracy over a pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassStats {
    pub loss: f64,
    pub accuracy: f64,
    pub examples: usize,
}

/// The training dynamics of one epoch, gathered on the device batch by batch (no host
/// synchronisation) and read once at its end.
pub struct Recorder {
    prob: Tensor,
    margin: Tensor,
    correct: Tensor,
}

impl Recorder {
    fn new(n: usize, device: Device) -> Self {
        let zeros = |kind| Tensor::zeros([n as i64], (kind, device));
        Recorder {
            prob: zeros(Kind::Float),
            margin: zeros(Kind::Float),
            correct: zeros(Kind::Bool),
        }
    }

    /// Records the batch of examples `idx` (i64) from its training-mode `logits`, labels `y`
    /// and whether each prediction was right.
    fn add(&mut self, idx: &Tensor, logits: &Tensor, y: &Tensor, right: &Tensor) {
        let value = |t| target_values(logits, y, t).to_kind(Kind::Float);
        let _ = self.prob.index_copy_(0, idx, &value(Target::Prob));
        let _ = self.margin.index_copy_(0, idx, &value(Target::Margin));
        let _ = self.correct.index_copy_(0, idx, right);
    }

    /// The record of `epoch`, on the host.
    pub fn finish(&self, epoch: usize) -> Result<EpochDynamics> {
        let host = |t: &Tensor| t.to_device(Device::Cpu);
        Ok(EpochDynamics {
            epoch,
            prob: Vec::<f32>::try_from(host(&self.prob))?,
            margin: Vec::<f32>::try_from(host(&self.margin))?,
            correct: Vec::<bool>::try_from(host(&self.correct))?,
        })
    }
}

/// A ResNet with its optimizer and input pipeline.
pub struct Trainer {
    pub vs: nn::VarStore,
    pub net: ResNet,
    opt: Sgd,
    normalizer: Normalizer,
    augment: Option<Augment>,
    batch_size: usize,
    /// Without a new order every epoch, the one fixed order, drawn from the seed.
    fixed_order_seed: Option<u64>,
    precision: Precision,
    /// The gradients captured so far, in runs that capture them.
    pub captured: Option<Captured>,
}

impl Trainer {
    /// Initializes the network from the seed (libtorch's generator) on `device`.
    pub fn new(
        device: Device,
        num_classes: usize,
        hyper: &Hyper,
        normalization: Normalization,
    ) -> Result<Self> {
        tch::manual_seed(rng::torch_seed(hyper.seed));
        crate::device::tune_for(device);
        let vs = nn::VarStore::new(device);
        let net = ResNet::new(&vs.root(), num_classes as i64, hyper.width);
        let mut opt = Sgd::new(&vs, hyper.sgd);
        if hyper.precision == Precision::Fp16 {
            opt = opt.with_loss_scale();
        }
        Ok(Trainer {
            vs,
            net,
            opt,
            normalizer: normalization.on(device),
            augment: hyper.augment.then_some(Augment { pad: 4 }),
            batch_size: hyper.batch_size,
            fixed_order_seed: (!hyper.shuffle).then_some(hyper.seed),
            precision: hyper.precision,
            captured: None,
        })
    }

    /// [`Trainer::new`] for `cfg` on `prepared`.
    pub fn for_data(cfg: &TrainConfig, prepared: &PreparedData) -> Result<Self> {
        Self::new(
            cfg.device,
            prepared.data.num_classes(),
            &cfg.hyper,
            prepared.normalization.clone(),
        )
    }

    fn device(&self) -> Device {
        self.vs.device()
    }

    /// One pass over `images` (NCHW uint8, on the trainer's device) with `labels` (i64), in
    /// an order and with augmentations drawn from `rng` (without shuffling, in one order drawn
    /// once from the seed, the same every epoch);
    /// `lrs` holds the learning rate of each batch. With `capture`, every batch's input
    /// gradients are folded into `self.captured` right after its step.
    pub fn train_epoch(
        &mut self,
        images: &Tensor,
        labels: &Tensor,
        lrs: &[f64],
        rng: &mut ChaCha8Rng,
        task: &dyn Task,
        capture: bool,
    ) -> (PassStats, Recorder) {
        // Out of `self` for the epoch, so that the network can be borrowed beside it.
        let mut captured = if capture { self.captured.take() } else { None };
        if let Some(c) = captured.as_mut() {
            c.begin_epoch();
        }
        let n = labels.size()[0] as usize;
        let mut order: Vec<i64> = (0..n as i64).collect();
        match self.fixed_order_seed {
            // Not the folder's order: a folder lists its images class by class, and visiting
            // them so would train one class at a time. CIFAR's own order, which the authors'
            // shuffle=False kept, is mixed like this one.
            Some(seed) => order.shuffle(&mut rng::stream(seed, FIXED_ORDER_STREAM)),
            None => order.shuffle(rng),
        }
        let dev = self.device();
        let mut loss_sum = Tensor::zeros([], (Kind::Double, dev));
        let mut correct = Tensor::zeros([], (Kind::Int64, dev));
        let mut record = Recorder::new(n, dev);
        let started = Instant::now();
        // The epoch's order and augmentations go to the device once, not batch by batch
        // (each copy from the host would make CUDA wait for the work queued before it).
        let order_on_device = Tensor::from_slice(&order).to_device(dev);
        let size = images.size();
        let draws = self
            .augment
            .map(|aug| aug.draw_epoch(n, self.batch_size, (size[2], size[3]), rng, dev));
        for (b, chunk) in order.chunks(self.batch_size).enumerate() {
            let start = (b * self.batch_size) as i64;
            let idx = order_on_device.narrow(0, start, chunk.len() as i64);
            let mut x = transform::to_unit(&images.index_select(0, &idx));
            if let Some(draws) = &draws {
                x = draws.apply(&x, start);
            }
            let y = labels.index_select(0, &idx);
            let input = self.normalizer.apply(&x);
            // The loss from fp32 logits, whatever the passes ran in.
            let logits = self
                .precision
                .autocast(dev, || self.net.forward_t(&input, true))
                .to_kind(Kind::Float);
            let loss = logits.cross_entropy_for_logits(&y);
            self.opt.backward_step(&loss, lrs[b]);
            if let Some(c) = captured.as_mut() {
                capture_batch(&self.net, c, (&input, &y, &idx), b);
            }
            tch::no_grad(|| {
                let right = logits.argmax(1, false).eq_tensor(&y);
                let _ = loss_sum.f_add_(&(loss.to_kind(Kind::Double) * chunk.len() as f64));
                let _ = correct.f_add_(&right.sum(Kind::Int64));
                record.add(&idx, &logits, &y, &right);
            });
            task.advance(1);
            if (b + 1) % PROGRESS_REFRESH_BATCHES == 0 && task.shows_detail() {
                let seen = ((b + 1) * self.batch_size).min(n);
                task.detail(running_message(&loss_sum, &correct, seen, started));
            }
        }
        if captured.is_some() {
            self.captured = captured;
        }
        let stats = PassStats {
            loss: loss_sum.double_value(&[]) / n as f64,
            accuracy: correct.int64_value(&[]) as f64 / n as f64,
            examples: n,
        };
        (stats, record)
    }

    /// Loss and accuracy in eval mode over `images` (NCHW uint8) and `labels` (i64).
    pub fn evaluate(&self, images: &Tensor, labels: &Tensor) -> PassStats {
        evaluate(
            &self.net,
            &self.normalizer,
            images,
            labels,
            self.batch_size.max(256),
        )
    }
}

/// Set by the parity test to a folder: each captured batch (its input, labels and example
/// indices) is also written there, so that an eager PyTorch recomputation differentiates
/// the very images the capture saw.
pub const CAPTURE_DUMP_ENV: &str = "VOG_TEST_CAPTURE_DUMP";

/// The authors' capture: the network just stepped, in eval mode, differentiates each
/// target of batch `b` it trained on (`input`: NCHW f32, normalized and augmented as
/// trained; `y` the labels trained with; `idx` the examples, B i64).
fn capture_batch(
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

/// Loss and accuracy of `net` in eval mode, batch by batch on the tensors' device, summed
/// there and read once.
fn evaluate(
    net: &ResNet,
    norm: &Normalizer,
    images: &Tensor,
    labels: &Tensor,
    batch: usize,
) -> PassStats {
    let n = labels.size()[0];
    let dev = images.device();
    let mut loss = Tensor::zeros([], (Kind::Double, dev));
    let mut correct = Tensor::zeros([], (Kind::Int64, dev));
    tch::no_grad(|| {
        for start in (0..n).step_by(batch) {
            let len = batch.min((n - start) as usize) as i64;
            let x = norm.apply(&transform::to_unit(&images.narrow(0, start, len)));
            let y = labels.narrow(0, start, len);
            let logits = net.forward_t(&x, false);
            let batch_loss = logits.cross_entropy_for_logits(&y).to_kind(Kind::Double);
            let _ = loss.f_add_(&(batch_loss * len as f64));
            let right = logits.argmax(1, false).eq_tensor(&y).sum(Kind::Int64);
            let _ = correct.f_add_(&right);
        }
    });
    PassStats {
        loss: loss.double_value(&[]) / n as f64,
        accuracy: correct.int64_value(&[]) as f64 / n as f64,
        examples: n as usize,
    }
}

fn running_message(loss_sum: &Tensor, correct: &Tensor, seen: usize, started: Instant) -> String {
    format!(
        "loss {:.4} acc {:.1}% {:.0} img/s",
        loss_sum.double_value(&[]) / seen as f64,
        100.0 * correct.int64_value(&[]) as f64 / seen as f64,
        seen as f64 / started.elapsed().as_secs_f64()
    )
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
    let noise_file = write_noise_record(run, &prepared.noise, cfg)?;
    atomic_file::write_bytes(&run.path(run_dir::CONFIG), cfg.hyper.to_toml().as_bytes())?;
    let selection_files = write_selection_files(cfg, run)?;
    let mut trainer = Trainer::for_data(cfg, prepared)?;
    trainer.captured = fresh_capture(cfg, prepared);
    let mut manifest = new_manifest(cfg, prepared, model::parameter_count(&trainer.vs));
    let written = [run_dir::CONFIG.to_string()]
        .into_iter()
        .chain(noise_file.clone())
        .chain(selection_files);
    for name in written {
        manifest.files.insert(name.clone(), run.digest(&name)?);
    }
    manifest.label_noise_file = noise_file;
    manifest.dynamics = Some(dynamics::DIR.into());
    run.write_manifest(&manifest)?;
    let order_rng = rng::stream(cfg.hyper.seed, ORDER_STREAM);
    train_epochs(&mut trainer, manifest, order_rng, prepared, run, reporter)
}

/// Nothing captured yet, where `cfg` captures gradients.
fn fresh_capture(cfg: &TrainConfig, prepared: &PreparedData) -> Option<Captured> {
    let [_, h, w] = prepared.data.train.image_shape();
    (!cfg.captured_epochs.is_empty()).then(|| {
        Captured::new(
            prepared.data.train.len(),
            (h * w) as usize,
            &cfg.hyper.capture_targets,
            cfg.device,
        )
    })
}

/// The captured gradients a resumed run continues with: what the run saved after `epoch`,
/// which must be every capture epoch up to it.
fn restored_capture(
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
            cfg.device,
        )?)),
        None if due.is_empty() => Ok(fresh_capture(cfg, prepared)),
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
fn remove_unrecorded_captures(run: &RunDir, m: &RunManifest) -> Result<()> {
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
    let need = params * 16 + activations;
    let gib = |b: u128| b as f64 / (1u64 << 30) as f64;
    let available = match cfg.device {
        Device::Cpu => crate::device::available_host_memory(),
        _ => None,
    };
    if let Some(have) = available.filter(|&a| need > a as u128) {
        bail!(
            "{} {width} and {} {} make a network of {params} parameters that needs about \
             {:.1} GiB to train, more than the {:.1} GiB this machine has available",
            origins.name("width"),
            origins.name("batch_size"),
            cfg.hyper.batch_size,
            gib(need),
            gib(have as u128)
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

/// The generator of the one order of a run without shuffling (`shuffle = false`).
const FIXED_ORDER_STREAM: &str = "fixed-order";

/// The generator that orders and augments the training data.
const ORDER_STREAM: &str = "train-order";

/// Continues the unfinished run in `run` (opened for writing) from its last finished epoch,
/// on `prepared`, which must be the data it was trained on. Refuses a run whose resume
/// state is missing, of another format, or does not match its recorded SHA-256.
pub fn resume(
    run: &RunDir,
    prepared: &PreparedData,
    reporter: &dyn Reporter,
) -> Result<RunManifest> {
    let mut manifest = run.read_manifest()?;
    let cfg = manifest.config.clone();
    if prepared.data.fingerprint() != manifest.dataset.fingerprint {
        bail!(
            "the data of '{}' has changed since the run started (dataset fingerprint differs); \
             resume it on the same data, or start over with --overwrite",
            run.root().display()
        );
    }
    let Some(record) = manifest.resume.clone() else {
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
    manifest
        .verify_all(run.root())
        .with_context(|| format!("cannot resume '{}'", run.root().display()))?;
    let state = run_dir::read_resume(&run.path(&record.file))?;
    let mut trainer = Trainer::for_data(&cfg, prepared)?;
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
        "resuming '{}' after epoch {} of {}",
        run.root().display(),
        record.epoch,
        cfg.hyper.epochs
    ));
    train_epochs(&mut trainer, manifest, order_rng, prepared, run, reporter)
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
                return resume(&run, &data()?, reporter);
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

/// What a derived run changes in its base run's training set: positions in the prepared
/// training split to leave out, and (position, label) to train with another label.
#[derive(Debug, Clone, Copy, Default)]
pub struct Edits<'a> {
    pub leave_out: &'a [usize],
    pub relabel: &'a [(usize, i64)],
}

/// A run's recipe (`base`) on its training examples with `edits` applied, every other label
/// as the run trained it (kept as relabels, so no shuffle is drawn again on a smaller
/// set), trained from `seed` and checkpointing only its last epoch, capturing no gradients
/// (fold and pruning models are judged by their predictions). The edits become the files
/// `exclude.csv` and `relabel.csv` that [`run`] writes into the run, recorded like a
/// person's; nothing is written here.
pub fn derived_config(
    base: &TrainConfig,
    prepared: &PreparedData,
    edits: Edits,
    seed: u64,
) -> Result<TrainConfig> {
    let mut hyper = base.hyper.clone();
    hyper.seed = seed;
    hyper.save_epochs = "last:1".parse().expect("a valid spec");
    hyper.capture_epochs = None;
    let sel = derived_selection(base, prepared, edits)?;
    TrainConfig::new(
        base.dataset.clone(),
        hyper,
        sel,
        base.device,
        &Origins::default(),
    )
}

/// The run `base` (in `base_dir`) trained again as it was (recipe, examples, every label as
/// it trained them) with a person's decisions on top (`person`'s exclude, relabel and
/// decisions record): `vog train --from RUN`. The decisions name training examples of the
/// run, must change something and leave every class some examples; the person's files are
/// recorded beside the derived ones.
pub fn config_from(
    base_dir: &Path,
    base: &TrainConfig,
    prepared: &PreparedData,
    person: Selection,
) -> Result<TrainConfig> {
    let (train, test) = (&prepared.data.train, prepared.data.test.as_ref());
    let mut labels = prepared.train_labels.clone();
    let keep: std::collections::HashSet<usize> = match &person.exclude {
        Some(e) => e.keep(train, test)?.into_iter().collect(),
        None => (0..train.len()).collect(),
    };
    let leave_out: Vec<usize> = (0..train.len()).filter(|i| !keep.contains(i)).collect();
    if let Some(r) = &person.relabel {
        let classes = &prepared.data.class_names;
        let changed = r.apply(train, test, classes, &mut labels)?;
        decisions::refuse_unchanged(r, person.decisions.as_ref(), changed, leave_out.len())?;
    }
    let kept: Vec<i64> = (0..train.len())
        .filter(|i| keep.contains(i))
        .map(|i| labels[i])
        .collect();
    decisions::check_every_class(
        &prepared.train_labels,
        &kept,
        &prepared.data.class_names,
        || person_files(&person),
    )?;
    let relabel: Vec<(usize, i64)> = (0..train.len())
        .filter(|&i| labels[i] != prepared.train_labels[i])
        .map(|i| (i, labels[i]))
        .collect();
    let edits = Edits {
        leave_out: &leave_out,
        relabel: &relabel,
    };
    let mut sel = derived_selection(base, prepared, edits)?;
    sel.decisions = person.decisions.clone();
    let mut cfg = TrainConfig::new(
        base.dataset.clone(),
        base.hyper.clone(),
        sel,
        base.device,
        &Origins::default(),
    )?;
    cfg.from = Some(FromRun {
        run: std::path::absolute(base_dir).unwrap_or_else(|_| base_dir.to_path_buf()),
        exclude: person.exclude,
        relabel: person.relabel,
    });
    Ok(cfg)
}

/// The files of a person's selection, for messages: `'a.csv'`, `'a.csv' with 'b.csv'`.
fn person_files(person: &Selection) -> String {
    let files: Vec<String> = [
        person.decisions.as_ref().map(|d| d.file.clone()),
        person.exclude.as_ref().map(|e| e.file.clone()),
        person.relabel.as_ref().map(|r| r.file.clone()),
    ]
    .into_iter()
    .flatten()
    .map(|f| format!("'{}'", f.display()))
    .collect::<std::collections::BTreeSet<_>>()
    .into_iter()
    .collect();
    files.join(" with ")
}

/// The selection of a run derived from `base`: its subsets from the base's seed, no label
/// shuffle of its own, the base's exclusions and trained labels with `edits` applied as the
/// derived run's `exclude.csv`/`relabel.csv` (not written yet). A derived run that would
/// leave a class without examples is refused.
fn derived_selection(
    base: &TrainConfig,
    prepared: &PreparedData,
    edits: Edits,
) -> Result<Selection> {
    let train = &prepared.data.train;
    let out: std::collections::HashSet<usize> = edits.leave_out.iter().copied().collect();
    let mut ids: Vec<String> = base.exclude.iter().flat_map(|x| x.ids.clone()).collect();
    ids.extend(edits.leave_out.iter().map(|&i| train.ids[i].clone()));
    let mut labels = prepared.train_labels.clone();
    edits.relabel.iter().for_each(|&(i, l)| labels[i] = l);
    let kept: Vec<usize> = (0..train.len()).filter(|i| !out.contains(i)).collect();
    let classes = &prepared.data.class_names;
    let kept_labels: Vec<i64> = kept.iter().map(|&i| labels[i]).collect();
    decisions::check_every_class(&train.labels, &kept_labels, classes, || {
        "the derived run's selection".to_string()
    })?;
    let relabelled: Vec<(String, usize)> = kept
        .iter()
        .filter(|&&i| labels[i] != train.labels[i])
        .map(|&i| (train.ids[i].clone(), labels[i] as usize))
        .collect();
    let mut sel = base.selection();
    sel.label_noise = None;
    sel.subset_seed = Some(sel.subset_seed.unwrap_or(base.hyper.seed));
    sel.exclude = Exclusions::derived(ids)?;
    sel.relabel = Relabels::derived(&relabelled, classes)?;
    sel.decisions = None;
    Ok(sel)
}

/// Writes the files of the run's selection that vog made for it (`exclude.csv`,
/// `relabel.csv`, recorded by names relative to the run) into `run`, exactly the bytes the
/// configuration's digests record.
fn write_selection_files(cfg: &TrainConfig, run: &RunDir) -> Result<Vec<String>> {
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

/// Trains the epochs after the last one `manifest` records.
fn train_epochs(
    trainer: &mut Trainer,
    mut manifest: RunManifest,
    mut order_rng: ChaCha8Rng,
    prepared: &PreparedData,
    run: &RunDir,
    reporter: &dyn Reporter,
) -> Result<RunManifest> {
    let cfg = manifest.config.clone();
    let data = DeviceData::new(prepared, cfg.device);
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
/// epoch's record and the resume file it replaces.
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
    // The record shows the rate in force at the epoch's end.
    let (epochs, lr) = (hyper.epochs, *lrs.last().unwrap_or(&hyper.lr));
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
    if !train.loss.is_finite() {
        bail!(
            "the training loss of epoch {epoch} is {} (diverged: try a smaller learning rate); \
             the run keeps the {} epoch(s) before it",
            train.loss,
            epoch - 1
        );
    }
    let seconds = started.elapsed().as_secs_f64();
    let dynamics_file = write_dynamics(run, &record.finish(epoch)?, &manifest.dataset.fingerprint)?;
    manifest
        .files
        .insert(dynamics_file.clone(), run.digest(&dynamics_file)?);
    let test_stats = data
        .test
        .as_ref()
        .filter(|_| evaluate)
        .map(|(x, y)| trainer.evaluate(x, y));
    drop(task);
    let saving = Instant::now();
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
    if capture {
        previous.extend(save_capture_state(trainer, manifest, run, epoch)?);
    }
    let record = EpochRecord {
        epoch,
        lr,
        train_loss: train.loss,
        train_accuracy: train.accuracy,
        test_loss: test_stats.map(|s| s.loss),
        test_accuracy: test_stats.map(|s| s.accuracy),
        seconds,
        images_per_second: train.examples as f64 / seconds,
        checkpoint,
        save_seconds: saving.elapsed().as_secs_f64(),
    };
    Ok((record, previous))
}

/// Records the epoch and writes the manifest, the commit point: from here on the run
/// continues after this epoch. Then the resume state (and captured gradients) it replaced
/// go.
fn commit_epoch(
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

/// Saves the gradients captured up to `epoch` and points the manifest at them; returns
/// the file they replace, to remove once the manifest is written.
fn save_capture_state(
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

/// Saves the resume state after `epoch` and points the (not yet written) manifest at it;
/// returns the previous resume file, to remove once the manifest is written.
fn save_resume_state(
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

/// The manifest of a run that has not finished an epoch yet.
fn new_manifest(cfg: &TrainConfig, prepared: &PreparedData, parameters: i64) -> RunManifest {
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

/// Writes one epoch's training dynamics atomically, before the manifest records the epoch;
/// returns the file's name relative to the run.
fn write_dynamics(run: &RunDir, d: &EpochDynamics, fingerprint: &str) -> Result<String> {
    let name = dynamics::file_name(d.epoch);
    let path = run.path(&name);
    let dir = atomic_file::parent_dir(&path);
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create '{}'", dir.display()))?;
    atomic_file::write_with(&path, |w| dynamics::write(w, d, fingerprint))?;
    Ok(name)
}

fn write_noise_record(
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
    use super::*;

    #[test]
    fn resume_hints_paste_back() {
        use std::path::Path;
        assert_eq!(shell_quoted(Path::new("runs/a-1")), "runs/a-1");
        assert_eq!(shell_quoted(Path::new("my runs/ö")), "'my runs/ö'");
        assert_eq!(shell_quoted(Path::new("it's")), r"'it'\''s'");
    }
    use crate::data::synth::{generate, SynthSpec};
    use crate::data::DatasetSpec;
    use crate::progress::NoTask;

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
        let m = run(&cfg, &prepared, &run_dir, &reporter).unwrap();
        let lines = reporter.lines();
        assert_eq!(lines.len(), 3, "{lines:?}");
        assert!(
            lines[1].starts_with("epoch 2/3 lr 0.1 | train loss"),
            "{lines:?}"
        );
        assert!(lines[1].ends_with("| saved"), "{lines:?}");
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

    #[test]
    fn a_few_steps_lower_the_loss() {
        let data = generate(&SynthSpec::new(64, 0, 0));
        let mut hyper = Hyper::defaults_for(&DatasetSpec::Synth {
            train: 64,
            test: 0,
            seed: 0,
            atypical: 0.0,
        });
        hyper.width = 4;
        hyper.batch_size = 16;
        hyper.lr = 0.05;
        let norm = Normalization::from_images(&data.train.images);
        let mut t = Trainer::new(Device::Cpu, 10, &hyper, norm).unwrap();
        let y = Tensor::from_slice(&data.train.labels);
        let mut r = rng::stream(0, "test");
        let lrs = [hyper.lr; 4];
        let mut epoch = || t.train_epoch(&data.train.images, &y, &lrs, &mut r, &NoTask, false);
        let (first, record) = epoch();
        let d = record.finish(1).unwrap();
        assert_eq!(
            (d.prob.len(), d.margin.len(), d.correct.len()),
            (64, 64, 64)
        );
        // Every example was seen once: probabilities are real ones, and a right prediction
        // is one with a positive margin.
        assert!(d.prob.iter().all(|p| *p > 0.0 && *p <= 1.0));
        assert!(d
            .correct
            .iter()
            .zip(&d.margin)
            .all(|(c, m)| *c == (*m > 0.0)));
        let right = d.correct.iter().filter(|&&c| c).count() as f64 / 64.0;
        assert!((right - first.accuracy).abs() < 1e-12);
        let before = first.loss;
        for _ in 0..6 {
            epoch();
        }
        let after = epoch().0.loss;
        assert!(after < before, "loss went from {before} to {after}");
    }
}
