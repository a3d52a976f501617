//! `vog train`: SGD training of the CIFAR ResNet-18 with the paper's recipe, saving
//! checkpoints at the chosen epochs (Agarwal & Hooker, Section 3).
use crate::checkpoint::{DatasetInfo, EpochRecord, RunDir, RunManifest, FORMAT, LABEL_NOISE};
use crate::config::{Hyper, TrainConfig};
use crate::data::noise::{self, NoisyLabel};
use crate::data::transform::{self, Augment, Normalization};
use crate::data::{subset, Dataset, DatasetSpec, Split};
use crate::info::Versions;
use crate::model::{self, ResNet};
use crate::{atomic_file, device, rng};
use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::time::{Instant, SystemTime, UNIX_EPOCH};
use tch::nn::{self, ModuleT, OptimizerConfig};
use tch::{Device, Kind, Tensor};

/// How training reports progress.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Verbosity {
    /// Nothing.
    Quiet,
    /// A progress bar per epoch (interactive terminal).
    Bar,
    /// One summary line per epoch on stderr (logs, CI).
    Lines,
}

/// The data a run trains on, after subsetting and label noise.
pub struct PreparedData {
    pub data: Dataset,
    /// The labels training uses: the true ones, or the shuffled ones for a label-noise run.
    pub train_labels: Vec<i64>,
    pub noise: Vec<NoisyLabel>,
    pub normalization: Normalization,
}

/// Loads the dataset and applies subsets, label noise and the normalization choice.
pub fn prepare_data(cfg: &TrainConfig) -> Result<PreparedData> {
    let mut data = cfg.dataset.load()?;
    let k = data.num_classes();
    let seed = cfg.hyper.seed;
    if let Some(n) = cfg.train_subset {
        data.train = take_subset(&data.train, k, n, seed, "train")?;
    }
    if let (Some(n), Some(test)) = (cfg.test_subset, data.test.as_ref()) {
        data.test = Some(take_subset(test, k, n, seed, "test")?);
    }
    let (train_labels, noise) = match &cfg.label_noise {
        Some(ln) => noise::shuffle_labels(
            &data.train.labels,
            &data.train.ids,
            ln.fraction,
            &mut rng::stream(ln.seed, "label-noise"),
        )?,
        None => (data.train.labels.clone(), Vec::new()),
    };
    let normalization = match cfg.dataset {
        DatasetSpec::Cifar10 { .. } => Normalization::CIFAR10,
        DatasetSpec::Cifar100 { .. } => Normalization::CIFAR100,
        _ => Normalization::from_images(&data.train.images),
    };
    Ok(PreparedData {
        data,
        train_labels,
        noise,
        normalization,
    })
}

fn take_subset(split: &Split, k: usize, n: usize, seed: u64, name: &str) -> Result<Split> {
    let idx = subset::stratified(
        &split.labels,
        k,
        n,
        &mut rng::stream(seed, &format!("{name}-subset")),
    )
    .with_context(|| format!("--{name}-subset {n}"))?;
    Ok(split.select(&idx))
}

/// Loss and accuracy over a pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PassStats {
    pub loss: f64,
    pub accuracy: f64,
    pub examples: usize,
}

/// A ResNet with its optimizer and input pipeline.
pub struct Trainer {
    pub vs: nn::VarStore,
    pub net: ResNet,
    opt: nn::Optimizer,
    normalization: Normalization,
    augment: Option<Augment>,
    batch_size: usize,
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
        let vs = nn::VarStore::new(device);
        let net = ResNet::new(&vs.root(), num_classes as i64, hyper.width);
        let opt = nn::Sgd {
            momentum: hyper.momentum,
            dampening: 0.0,
            wd: hyper.weight_decay,
            nesterov: false,
        }
        .build(&vs, hyper.lr)?;
        Ok(Trainer {
            vs,
            net,
            opt,
            normalization,
            augment: hyper.augment.then_some(Augment { pad: 4 }),
            batch_size: hyper.batch_size,
        })
    }

    fn device(&self) -> Device {
        self.vs.device()
    }

    /// One pass over `images` (NCHW uint8, on the trainer's device) with `labels` (i64), in
    /// an order and with augmentations drawn from `rng`.
    pub fn train_epoch(
        &mut self,
        images: &Tensor,
        labels: &Tensor,
        lr: f64,
        rng: &mut ChaCha8Rng,
        bar: &ProgressBar,
    ) -> PassStats {
        self.opt.set_lr(lr);
        let n = labels.size()[0] as usize;
        let mut order: Vec<i64> = (0..n as i64).collect();
        order.shuffle(rng);
        let dev = self.device();
        let mut loss_sum = Tensor::zeros([], (Kind::Double, dev));
        let mut correct = Tensor::zeros([], (Kind::Int64, dev));
        let started = Instant::now();
        for (b, chunk) in order.chunks(self.batch_size).enumerate() {
            let idx = Tensor::from_slice(chunk).to_device(dev);
            let mut x = transform::to_unit(&images.index_select(0, &idx));
            if let Some(aug) = &self.augment {
                x = aug.apply(&x, rng);
            }
            let y = labels.index_select(0, &idx);
            let logits = self.net.forward_t(&self.normalization.apply(&x), true);
            let loss = logits.cross_entropy_for_logits(&y);
            self.opt.backward_step(&loss);
            tch::no_grad(|| {
                let _ = loss_sum.f_add_(&(loss.to_kind(Kind::Double) * chunk.len() as f64));
                let _ = correct.f_add_(&logits.argmax(1, false).eq_tensor(&y).sum(Kind::Int64));
            });
            bar.inc(1);
            // Reading the sums synchronizes a GPU, so only every few batches.
            if b % 20 == 19 && !bar.is_hidden() {
                let seen = ((b + 1) * self.batch_size).min(n);
                bar.set_message(running_message(&loss_sum, &correct, seen, started));
            }
        }
        PassStats {
            loss: loss_sum.double_value(&[]) / n as f64,
            accuracy: correct.int64_value(&[]) as f64 / n as f64,
            examples: n,
        }
    }

    /// Loss and accuracy in eval mode over `images` (NCHW uint8) and `labels` (i64).
    pub fn evaluate(&self, images: &Tensor, labels: &Tensor) -> PassStats {
        evaluate(
            &self.net,
            &self.normalization,
            images,
            labels,
            self.batch_size.max(256),
        )
    }
}

/// Loss and accuracy of `net` in eval mode, batch by batch on the tensors' device.
pub fn evaluate(
    net: &ResNet,
    norm: &Normalization,
    images: &Tensor,
    labels: &Tensor,
    batch: usize,
) -> PassStats {
    let n = labels.size()[0];
    let (mut loss, mut correct) = (0.0, 0i64);
    tch::no_grad(|| {
        for start in (0..n).step_by(batch) {
            let len = batch.min((n - start) as usize) as i64;
            let x = norm.apply(&transform::to_unit(&images.narrow(0, start, len)));
            let y = labels.narrow(0, start, len);
            let logits = net.forward_t(&x, false);
            loss += logits.cross_entropy_for_logits(&y).double_value(&[]) * len as f64;
            correct += logits
                .argmax(1, false)
                .eq_tensor(&y)
                .sum(Kind::Int64)
                .int64_value(&[]);
        }
    });
    PassStats {
        loss: loss / n as f64,
        accuracy: correct as f64 / n as f64,
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

/// Trains per `cfg` on `prepared` (from [`prepare_data`]) into `run`, writing checkpoints,
/// `run.json` and the label-noise record.
pub fn run(
    cfg: &TrainConfig,
    prepared: &PreparedData,
    run: &RunDir,
    verbosity: Verbosity,
) -> Result<RunManifest> {
    let device = device::parse(&cfg.device)?;
    let data = &prepared.data;
    let noise_file = write_noise_record(run, &prepared.noise, cfg)?;
    atomic_file::write_bytes(
        &run.path(crate::checkpoint::CONFIG),
        cfg.hyper.to_toml().as_bytes(),
    )?;

    let mut trainer = Trainer::new(
        device,
        data.num_classes(),
        &cfg.hyper,
        prepared.normalization.clone(),
    )?;
    let mut manifest = RunManifest {
        format: FORMAT.into(),
        versions: Versions::current(),
        started_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_secs()),
        device: device::name(device),
        config: cfg.clone(),
        dataset: DatasetInfo {
            fingerprint: data.fingerprint(),
            class_names: data.class_names.clone(),
            train_examples: data.train.len(),
            test_examples: data.test.as_ref().map_or(0, Split::len),
            image_shape: data.train.image_shape(),
        },
        normalization: prepared.normalization.clone(),
        parameters: model::parameter_count(&trainer.vs),
        label_noise_file: noise_file,
        epochs: Vec::new(),
        saved_epochs: Vec::new(),
        complete: false,
    };
    run.write_manifest(&manifest)?;

    let train_x = data.train.images.to_device(device);
    let train_y = Tensor::from_slice(&prepared.train_labels).to_device(device);
    let test = data.test.as_ref().map(|t| {
        (
            t.images.to_device(device),
            Tensor::from_slice(&t.labels).to_device(device),
        )
    });
    let mut order_rng = rng::stream(cfg.hyper.seed, "train-order");
    let schedule = cfg.hyper.lr_schedule();
    let batches = data.train.len().div_ceil(cfg.hyper.batch_size) as u64;
    let epochs = cfg.hyper.epochs;
    for epoch in 1..=epochs {
        let lr = schedule.lr(epoch);
        let bar = epoch_bar(verbosity, batches, epoch, epochs);
        let started = Instant::now();
        let train = trainer.train_epoch(&train_x, &train_y, lr, &mut order_rng, &bar);
        let seconds = started.elapsed().as_secs_f64();
        let test_stats = test.as_ref().map(|(x, y)| trainer.evaluate(x, y));
        bar.finish_and_clear();
        let checkpoint = if cfg.saved_epochs.contains(&epoch) {
            manifest.saved_epochs.push(epoch);
            Some(run.save_checkpoint(&trainer.vs, epoch)?)
        } else {
            None
        };
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
        };
        if verbosity != Verbosity::Quiet {
            eprintln!("{}", summary_line(&record, epochs));
        }
        manifest.epochs.push(record);
        manifest.complete = epoch == epochs;
        run.write_manifest(&manifest)?;
    }
    Ok(manifest)
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

fn epoch_bar(verbosity: Verbosity, batches: u64, epoch: usize, epochs: usize) -> ProgressBar {
    if verbosity != Verbosity::Bar {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(batches).with_style(
        ProgressStyle::with_template("epoch {prefix} [{bar:30}] {pos}/{len} batches {msg}")
            .expect("valid template")
            .progress_chars("=> "),
    );
    bar.set_prefix(format!("{epoch}/{epochs}"));
    bar
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
    use crate::data::synth::{generate, SynthSpec};

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
        let mut epoch = || {
            t.train_epoch(
                &data.train.images,
                &y,
                hyper.lr,
                &mut r,
                &ProgressBar::hidden(),
            )
        };
        let before = epoch().loss;
        for _ in 0..6 {
            epoch();
        }
        let after = epoch().loss;
        assert!(after < before, "loss went from {before} to {after}");
    }
}
