//! The batched gradient pass: K checkpoints loaded (and checked) onto one device, and every
//! batch turned into raw VoG per target, the checkpoint companion scores and the last
//! model's prediction, on the device until a split ends (Agarwal & Hooker, Section 2).
use super::ScoreOptions;
use crate::data::transform::{self, Normalizer};
use crate::model::ResNet;
use crate::precision::Precision;
use crate::progress::Task;
use crate::run_dir::{load_checkpoint, RunDir, RunManifest};
use crate::scores::Companion;
use crate::variance::baselines::checkpoint_scores;
use crate::variance::gradient::{input_gradients, pixel_map};
use crate::variance::reduce::Accumulator;
use anyhow::{bail, Result};
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Kind, Tensor};

/// One checkpoint's network, in eval mode.
pub struct LoadedModel {
    /// Owns the network's variables.
    _vs: VarStore,
    pub net: ResNet,
}

/// Loads the checkpoints of `epochs` onto `device`, each checked against the run's network.
pub fn load_models(
    run: &RunDir,
    m: &RunManifest,
    epochs: &[usize],
    device: Device,
    precision: Precision,
) -> Result<Vec<LoadedModel>> {
    let classes = m.dataset.class_names.len() as i64;
    epochs
        .iter()
        .map(|&epoch| {
            let name = RunDir::checkpoint_name(epoch);
            let path = run.path(&name);
            if !path.is_file() {
                bail!("checkpoint '{}' is missing", path.display());
            }
            // Runs from before verified artifacts have no digests to check against.
            if !m.files.is_empty() {
                m.verify_file(run.root(), &name)?;
            }
            let mut vs = VarStore::new(device);
            let net = ResNet::new(&vs.root(), classes, m.config.hyper.width);
            load_checkpoint(&mut vs, &path)?;
            check_finite(&vs, &path)?;
            precision.cast(&mut vs);
            vs.freeze();
            Ok(LoadedModel { _vs: vs, net })
        })
        .collect()
}

/// Refuses a scoring of `checkpoints` models of the run `m` that the GPU of `o` cannot
/// hold, before anything is loaded: the models, the scored images (uint8, sent once) and a
/// batch's passes, about 9 MiB per image for the full-width network on 32x32 images
/// (measured, docs/results.md), scaled by width and image size. Says the batch size that
/// fits; nothing to check on a CPU, or where the CUDA runtime cannot say.
pub(super) fn check_device_memory(
    m: &RunManifest,
    checkpoints: usize,
    o: &ScoreOptions,
) -> Result<()> {
    let Some((free, _)) = crate::device::gpu_memory(o.device) else {
        return Ok(());
    };
    let [c, h, w] = m.dataset.image_shape.map(|x| x as f64);
    let fixed =
        checkpoints as f64 * m.parameters as f64 * o.precision.kind().elt_size_in_bytes() as f64
            + (m.dataset.train_examples + m.dataset.test_examples) as f64 * c * h * w;
    let per_image = 9.0 * (1u64 << 20) as f64 * m.config.hyper.width as f64 / 64.0 * h * w / 1024.0;
    let need = fixed + o.batch_size as f64 * per_image;
    let free = free as f64;
    if need <= free {
        return Ok(());
    }
    let gib = |b: f64| b / (1u64 << 30) as f64;
    let fits = ((free - fixed) / per_image).floor();
    let advice = match fits >= 1.0 {
        true => format!("try --batch-size {}", 1u64 << (fits as u64).ilog2()),
        false => "the models and images alone do not fit: score fewer checkpoints (--stage)".into(),
    };
    bail!(
        "scoring {checkpoints} checkpoints at --batch-size {} needs about {:.1} GiB on {}, which \
         has {:.1} GiB free: {advice}",
        o.batch_size,
        gib(need),
        crate::device::name(o.device),
        gib(free)
    )
}

/// Refuses a checkpoint with a NaN or infinite value (a corrupted file scores as NaN).
fn check_finite(vs: &VarStore, path: &std::path::Path) -> Result<()> {
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, t) in vars {
        let finite = t.isfinite().all().int64_value(&[]) != 0;
        if !finite {
            bail!(
                "checkpoint '{}' holds non-finite values in '{name}' (corrupted, or a diverged \
                 training)",
                path.display()
            );
        }
    }
    Ok(())
}

/// Raw VoG (one value per target), the checkpoint companion scores and the last model's
/// prediction, per example of a split.
pub struct SplitScores {
    /// `raw[t][i]`: target t, example i.
    pub raw: Vec<Vec<f64>>,
    /// `companions[c][i]`: [`Companion::CHECKPOINT`] c, example i.
    pub companions: Vec<Vec<f64>>,
    pub predicted: Vec<i64>,
}

impl SplitScores {
    /// No examples yet, room for `n` of `targets` targets.
    pub fn with_capacity(n: usize, targets: usize) -> Self {
        SplitScores {
            raw: vec![Vec::with_capacity(n); targets],
            companions: vec![Vec::with_capacity(n); Companion::CHECKPOINT.len()],
            predicted: Vec::with_capacity(n),
        }
    }

    /// Appends the scores of the examples that follow.
    pub fn append(&mut self, next: SplitScores) {
        for (col, v) in self.raw.iter_mut().zip(next.raw) {
            col.extend(v);
        }
        for (col, v) in self.companions.iter_mut().zip(next.companions) {
            col.extend(v);
        }
        self.predicted.extend(next.predicted);
    }
}

/// The scores of consecutive examples, still on the device: [`SplitScores`]' columns as
/// B f64 tensors, the predictions B i64.
struct DeviceScores {
    raw: Vec<Tensor>,
    companions: Vec<Tensor>,
    predicted: Tensor,
}

impl DeviceScores {
    /// The batches one after the other, on the device; `None` without batches.
    fn cat(batches: &[DeviceScores]) -> Option<DeviceScores> {
        let first = batches.first()?;
        let column = |pick: &dyn Fn(&DeviceScores) -> &Tensor| {
            Tensor::cat(&batches.iter().map(pick).collect::<Vec<_>>(), 0)
        };
        Some(DeviceScores {
            raw: (0..first.raw.len())
                .map(|t| column(&|b| &b.raw[t]))
                .collect(),
            companions: (0..first.companions.len())
                .map(|c| column(&|b| &b.companions[c]))
                .collect(),
            predicted: column(&|b| &b.predicted),
        })
    }

    /// Copied to the host (the one point where the host waits for the device).
    fn to_host(&self) -> SplitScores {
        let f64s = |t: &Tensor| Vec::<f64>::try_from(t.to_device(Device::Cpu)).expect("f64 scores");
        SplitScores {
            raw: self.raw.iter().map(f64s).collect(),
            companions: self.companions.iter().map(f64s).collect(),
            predicted: Vec::<i64>::try_from(self.predicted.to_device(Device::Cpu))
                .expect("i64 predictions"),
        }
    }
}

/// Everything that turns a batch into VoG scores.
pub struct Scorer<'a> {
    /// The K checkpoints' networks, in epoch order, all on the options' device, in their
    /// precision (inputs are cast to it).
    pub models: Vec<&'a dyn ModuleT>,
    /// The input normalization, on the device.
    pub normalizer: Normalizer,
    /// The device, targets, variant, batch size and precision.
    pub options: &'a ScoreOptions,
}

impl Scorer<'_> {
    /// Scores `images` (NCHW uint8, CPU) against `labels` (the labels trained with);
    /// `task` advances by one per image and checkpoint.
    /// The uint8 split and its labels go to the device once (a CIFAR split is 150 MB) and
    /// the scores come back once, so the host never waits for the device between batches.
    pub fn score(&self, images: &Tensor, labels: &[i64], task: &dyn Task) -> SplitScores {
        let images = images.to_device(self.options.device);
        let labels_on_device = Tensor::from_slice(labels).to_device(self.options.device);
        let n = labels.len();
        let batches: Vec<DeviceScores> = (0..n)
            .step_by(self.options.batch_size)
            .map(|start| {
                let len = self.options.batch_size.min(n - start) as i64;
                let x = images.narrow(0, start as i64, len);
                let y = labels_on_device.narrow(0, start as i64, len);
                self.score_on_device(&x, &y, task)
            })
            .collect();
        DeviceScores::cat(&batches).map_or_else(
            || SplitScores::with_capacity(0, self.options.targets.len()),
            |all| all.to_host(),
        )
    }

    /// Raw VoG per target, the checkpoint companions and the last checkpoint's
    /// predictions for one batch (NCHW uint8 on any device, its labels on the host).
    pub fn score_batch(&self, images: &Tensor, labels: &[i64], task: &dyn Task) -> SplitScores {
        let x = images.to_device(self.options.device);
        let y = Tensor::from_slice(labels).to_device(self.options.device);
        self.score_on_device(&x, &y, task).to_host()
    }

    /// [`Scorer::score_batch`] of images (NCHW uint8) and labels (B i64) on the device.
    fn score_on_device(&self, images: &Tensor, y: &Tensor, task: &dyn Task) -> DeviceScores {
        let x = self
            .normalizer
            .apply(&transform::to_unit(images))
            .to_kind(self.options.precision.kind());
        let mut accs: Vec<Accumulator> = self
            .options
            .targets
            .iter()
            .map(|_| Accumulator::new())
            .collect();
        let mut all_logits = Vec::with_capacity(self.models.len());
        for m in &self.models {
            let (grads, logits) = input_gradients(*m, &x, y, &self.options.targets);
            let logits = logits.to_kind(Kind::Float);
            for (acc, g) in accs.iter_mut().zip(&grads) {
                acc.push(&pixel_map(
                    g,
                    self.options.variant.channels,
                    self.options.variant.grad_norm,
                ));
            }
            all_logits.push(logits);
            task.advance(y.size()[0] as u64);
        }
        let (loss, el2n, prob) = checkpoint_scores(&all_logits, y);
        DeviceScores {
            raw: accs
                .iter()
                .map(|a| a.finish(self.options.variant.reduce))
                .collect(),
            companions: vec![loss, el2n, prob],
            predicted: all_logits[all_logits.len() - 1].argmax(1, false),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scores::SplitChoice;
    use crate::variance::{Channels, GradNorm, Reduce, Target, Variant};

    /// logits = flatten(x) W^T: the input gradient of logit p is row p of W.
    #[derive(Debug)]
    struct Linear(Tensor);

    impl ModuleT for Linear {
        fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
            x.flatten(1, -1).matmul(&self.0.tr())
        }
    }

    fn options(targets: Vec<Target>, variant: Variant, batch_size: usize) -> ScoreOptions {
        ScoreOptions {
            split: SplitChoice::Test,
            out: "unused.csv".into(),
            batch_size,
            device: Device::Cpu,
            targets,
            variant,
            precision: Precision::Fp32,
        }
    }

    /// Images of 3 channels x 1 x 2 pixels, 2 classes, K = 2 checkpoints (two linear
    /// models), and the normalization.
    fn linear_setup() -> (
        Linear,
        Linear,
        Tensor,
        crate::data::transform::Normalization,
    ) {
        let w1 = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 0., 0., 0., 0., 0., 0.])
            .view([2, 6]);
        let w2 = Tensor::from_slice(&[3.0f32, 2.0, 1.0, 4.0, 5.0, 0.0, 5., 5., 5., 5., 5., 5.])
            .view([2, 6]);
        let images = Tensor::from_slice(&[200u8, 210, 220, 230, 240, 250, 1, 2, 3, 4, 5, 6])
            .view([2, 3, 1, 2]);
        let norm = crate::data::transform::Normalization {
            mean: [0.1, 0.2, 0.3],
            std: [0.5, 0.25, 2.0],
        };
        (Linear(w1), Linear(w2), images, norm)
    }

    #[test]
    fn closed_form_linear_models() {
        let (m1, m2, images, norm) = linear_setup();
        let score = |variant| {
            let o = options(vec![Target::Logit], variant, 1);
            let s = Scorer {
                models: vec![&m1 as &dyn ModuleT, &m2],
                normalizer: norm.on(Device::Cpu),
                options: &o,
            };
            s.score(&images, &[0, 1], &crate::progress::NoTask)
        };
        // Example 0 (class 0): channel-mean maps, pixel order (x=0, x=1):
        //   W1 row 0 -> channels (1,2),(3,4),(5,6) -> means (3, 4); W2 row 0 -> (3,2),(1,4),(5,0) -> (3, 2).
        //   Pixel variances over K: (0, 1) -> paper sqrt(1/2), official (0 + 1)/2.
        // Example 1 (class 1): maps (0, 0) and (5, 5): variances (25/4, 25/4) -> 5/2 for both.
        let paper = score(Variant::default());
        assert!(
            (paper.raw[0][0] - 0.5f64.sqrt()).abs() < 1e-12,
            "{:?}",
            paper.raw
        );
        assert!((paper.raw[0][1] - 2.5).abs() < 1e-12);
        let official = score(Variant {
            reduce: Reduce::Official,
            ..Variant::default()
        });
        assert!(
            (official.raw[0][0] - 0.5).abs() < 1e-12 && (official.raw[0][1] - 2.5).abs() < 1e-12
        );
        // Every channel value a pixel: example 0 differences W1-W2 = (-2, 0, 2, 0, 0, 6), so
        // deviations are half of that: variances (1, 0, 1, 0, 0, 9) -> paper sqrt(11/6).
        let all = score(Variant {
            channels: Channels::All,
            ..Variant::default()
        });
        assert!((all.raw[0][0] - (11.0f64 / 6.0).sqrt()).abs() < 1e-12);
        // cv: example 1 has mean |S| = (0 + 0 + 5 + 5) / 4 = 5/2 -> (5/2) / (5/2) = 1.
        let cv = score(Variant {
            reduce: Reduce::Cv,
            ..Variant::default()
        });
        assert!((cv.raw[0][1] - 1.0).abs() < 1e-12);
        // Unit norm: example 1's second map (5, 5) becomes (1/sqrt2, 1/sqrt2), the first stays 0.
        let unit = score(Variant {
            grad_norm: GradNorm::Unit,
            ..Variant::default()
        });
        // Pixel means (1/(2 sqrt2)) twice, variances 1/8 each -> paper sqrt(1/8).
        assert!((unit.raw[0][1] - 0.125f64.sqrt()).abs() < 1e-12);
        // Predictions come from the last checkpoint, which here disagrees with the first.
        let x = norm.apply(&transform::to_unit(&images));
        let argmax =
            |m: &Linear| Vec::<i64>::try_from(m.forward_t(&x, false).argmax(1, false)).unwrap();
        assert_eq!(paper.predicted, argmax(&m2));
        assert_ne!(paper.predicted, argmax(&m1));
    }

    #[test]
    fn no_images_no_scores() {
        let m = Linear(Tensor::ones([2, 6], (Kind::Float, Device::Cpu)));
        let o = options(vec![Target::Logit, Target::Prob], Variant::default(), 4);
        let s = Scorer {
            models: vec![&m as &dyn ModuleT, &m],
            normalizer: crate::data::transform::Normalization::CIFAR10.on(Device::Cpu),
            options: &o,
        };
        let none = Tensor::zeros([0, 3, 1, 2], (Kind::Uint8, Device::Cpu));
        let out = s.score(&none, &[], &crate::progress::NoTask);
        assert_eq!(out.raw, vec![Vec::<f64>::new(); 2]);
        assert_eq!(out.companions.len(), Companion::CHECKPOINT.len());
        assert!(out.companions.iter().all(Vec::is_empty) && out.predicted.is_empty());
    }
}
