//! The network with its optimizer and input pipeline, and one pass over the training data
//! (one epoch's batches: order, augmentation, forward, loss, SGD step, the dynamics
//! record) or over the test data (loss and accuracy in eval mode).
use super::capture::capture_batch;
use crate::config::{Hyper, TrainConfig};
use crate::data::prepare::PreparedData;
use crate::data::transform::{self, Augment, Normalization, Normalizer};
use crate::dynamics::EpochDynamics;
use crate::model::ResNet;
use crate::optim::Sgd;
use crate::precision::Precision;
use crate::progress::Task;
use crate::rng;
use crate::variance::captured::Captured;
use crate::variance::gradient::target_values;
use crate::variance::Target;
use anyhow::Result;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use std::time::Instant;
use tch::nn::{self, ModuleT};
use tch::{Device, Kind, Tensor};

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

/// An epoch's loss, accuracy and dynamics record, summed on the device batch by batch and
/// read once at its end (or at a progress refresh).
struct Running {
    loss_sum: Tensor,
    correct: Tensor,
    record: Recorder,
    seen: usize,
    started: Instant,
}

impl Running {
    fn new(n: usize, dev: Device) -> Self {
        Running {
            loss_sum: Tensor::zeros([], (Kind::Double, dev)),
            correct: Tensor::zeros([], (Kind::Int64, dev)),
            record: Recorder::new(n, dev),
            seen: n,
            started: Instant::now(),
        }
    }

    /// Adds the batch of examples `idx` from its training-mode `logits`, mean `loss` and
    /// labels `y`.
    fn add(&mut self, idx: &Tensor, (logits, loss, y): (&Tensor, &Tensor, &Tensor)) {
        tch::no_grad(|| {
            let right = logits.argmax(1, false).eq_tensor(y);
            let len = idx.size()[0] as f64;
            let _ = self.loss_sum.f_add_(&(loss.to_kind(Kind::Double) * len));
            let _ = self.correct.f_add_(&right.sum(Kind::Int64));
            self.record.add(idx, logits, y, &right);
        });
    }

    /// The running loss, accuracy and speed after the first `seen` examples.
    fn message(&self, seen: usize) -> String {
        format!(
            "loss {:.4} acc {:.1}% {:.0} img/s",
            self.loss_sum.double_value(&[]) / seen as f64,
            100.0 * self.correct.int64_value(&[]) as f64 / seen as f64,
            seen as f64 / self.started.elapsed().as_secs_f64()
        )
    }

    fn finish(self) -> (PassStats, Recorder) {
        let n = self.seen as f64;
        let stats = PassStats {
            loss: self.loss_sum.double_value(&[]) / n,
            accuracy: self.correct.int64_value(&[]) as f64 / n,
            examples: self.seen,
        };
        (stats, self.record)
    }
}

/// A ResNet with its optimizer and input pipeline.
pub struct Trainer {
    pub vs: nn::VarStore,
    pub net: ResNet,
    pub(super) opt: Sgd,
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
        crate::device::tune_for(device, hyper.deterministic);
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

    /// [`Trainer::new`] for `cfg` on `prepared`, on `device`.
    pub fn for_data(cfg: &TrainConfig, prepared: &PreparedData, device: Device) -> Result<Self> {
        Self::new(
            device,
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
        let order = self.epoch_order(n, rng);
        let dev = self.device();
        let mut running = Running::new(n, dev);
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
            let (logits, loss) = self.step(&input, &y, lrs[b]);
            if let Some(c) = captured.as_mut() {
                capture_batch(&self.net, c, (&input, &y, &idx), b);
            }
            running.add(&idx, (&logits, &loss, &y));
            task.advance(1);
            if (b + 1) % PROGRESS_REFRESH_BATCHES == 0 && task.shows_detail() {
                task.detail(running.message(((b + 1) * self.batch_size).min(n)));
            }
        }
        if captured.is_some() {
            self.captured = captured;
        }
        running.finish()
    }

    /// The order of an epoch's examples: drawn from `rng`, or without shuffling the one
    /// order drawn from the seed.
    fn epoch_order(&self, n: usize, rng: &mut ChaCha8Rng) -> Vec<i64> {
        let mut order: Vec<i64> = (0..n as i64).collect();
        match self.fixed_order_seed {
            // Not the folder's order: a folder lists its images class by class, and visiting
            // them so would train one class at a time. CIFAR's own order, which the authors'
            // shuffle=False kept, is mixed like this one.
            Some(seed) => order.shuffle(&mut rng::stream(seed, FIXED_ORDER_STREAM)),
            None => order.shuffle(rng),
        }
        order
    }

    /// One optimizer step on the batch `input` (NCHW f32, normalized and augmented) with
    /// labels `y` at learning rate `lr`; returns its fp32 logits and loss.
    fn step(&mut self, input: &Tensor, y: &Tensor, lr: f64) -> (Tensor, Tensor) {
        let dev = self.device();
        // The loss from fp32 logits, whatever the passes ran in.
        let logits = self
            .precision
            .autocast(dev, || self.net.forward_t(input, true))
            .to_kind(Kind::Float);
        let loss = logits.cross_entropy_for_logits(y);
        self.opt.backward_step(&loss, lr);
        (logits, loss)
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

/// The generator of the one order of a run without shuffling (`shuffle = false`).
const FIXED_ORDER_STREAM: &str = "fixed-order";

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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::synth::{generate, SynthSpec};
    use crate::data::DatasetSpec;
    use crate::progress::NoTask;

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
