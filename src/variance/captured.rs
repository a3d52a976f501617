//! Gradients captured during training, as the authors' CIFAR script took them
//! (chirag126/VOG `train_cifar/main.py`, commit 2f949cc): right after each optimizer step
//! of a capture epoch, in eval mode, the input gradient of every example of the batch just
//! trained on, on its augmented image. Each example's channel-mean gradient map is folded
//! into a running per-pixel mean and sum of squared deviations over the capture epochs
//! (Welford), so memory is examples x pixels x 8 bytes per target however many epochs are
//! captured (f32: 410 MB for the 50,000 CIFAR-10 training images and one target).
use super::reduce::Accumulator;
use super::{Reduce, Target};
use anyhow::{bail, Context, Result};
use tch::{Device, Kind, Tensor};

/// The running statistics of every example's captured gradient maps.
#[derive(Debug)]
pub struct Captured {
    /// Capture epochs folded in so far (the one running included).
    pub count: usize,
    pub targets: Vec<Target>,
    /// Per target: examples x pixels f32 running mean and sum of squared deviations, and
    /// examples f64 sum of |S| over epochs and pixels.
    mean: Vec<Tensor>,
    m2: Vec<Tensor>,
    abs_sum: Vec<Tensor>,
}

impl Captured {
    /// Nothing captured yet, for `examples` images of `pixels` spatial locations.
    pub fn new(examples: usize, pixels: usize, targets: &[Target], device: Device) -> Self {
        let map = || Tensor::zeros([examples as i64, pixels as i64], (Kind::Float, device));
        Captured {
            count: 0,
            targets: targets.to_vec(),
            mean: targets.iter().map(|_| map()).collect(),
            m2: targets.iter().map(|_| map()).collect(),
            abs_sum: targets
                .iter()
                .map(|_| Tensor::zeros([examples as i64], (Kind::Double, device)))
                .collect(),
        }
    }

    /// The memory [`Captured::new`] takes, in bytes.
    pub fn bytes(examples: usize, pixels: usize, targets: usize) -> u64 {
        targets as u64 * examples as u64 * (pixels as u64 * 8 + 8)
    }

    /// A new capture epoch begins.
    pub fn begin_epoch(&mut self) {
        self.count += 1;
    }

    /// Folds in one batch: `idx` (B i64, on the device) names its examples, `maps` holds
    /// one B x pixels map per target (any float kind), as [`super::gradient::pixel_map`]
    /// makes them with channels averaged.
    pub fn push(&mut self, idx: &Tensor, maps: &[Tensor]) {
        let k = self.count.max(1) as f64;
        for (t, map) in maps.iter().enumerate() {
            let map = map.to_kind(Kind::Float);
            let mean = self.mean[t].index_select(0, idx);
            let delta = &map - &mean;
            let updated = &mean + &delta / k;
            let _ = self.m2[t].index_add_(0, idx, &(&delta * (&map - &updated)));
            let _ = self.mean[t].index_copy_(0, idx, &updated);
            let abs = map
                .abs()
                .sum_dim_intlist([1i64].as_slice(), false, Kind::Double);
            let _ = self.abs_sum[t].index_add_(0, idx, &abs);
        }
    }

    /// One raw VoG per example (f64, on the host) of target `t`, reduced as `reduce` says.
    pub fn finish(&self, t: usize, reduce: Reduce) -> Result<Vec<f64>> {
        let acc = Accumulator::from_parts(
            self.count,
            self.mean[t].to_kind(Kind::Double),
            self.m2[t].to_kind(Kind::Double),
            self.abs_sum[t].shallow_clone(),
        );
        Ok(Vec::<f64>::try_from(
            acc.finish(reduce).to_device(Device::Cpu),
        )?)
    }

    /// The tensors to save, by name (`count` as a one-element i64 tensor).
    pub fn named(&self) -> Vec<(String, Tensor)> {
        let mut out = vec![(
            "count".to_string(),
            Tensor::from_slice(&[self.count as i64]),
        )];
        for (i, t) in self.targets.iter().enumerate() {
            let name = t.name();
            out.push((format!("{name}/mean"), self.mean[i].to_device(Device::Cpu)));
            out.push((format!("{name}/m2"), self.m2[i].to_device(Device::Cpu)));
            out.push((
                format!("{name}/abs_sum"),
                self.abs_sum[i].to_device(Device::Cpu),
            ));
        }
        out
    }

    /// The state [`Captured::named`] saved, of `targets` for `examples` x `pixels`, on
    /// `device`; anything else is refused.
    pub fn from_named(
        mut named: std::collections::HashMap<String, Tensor>,
        targets: &[Target],
        (examples, pixels): (usize, usize),
        device: Device,
    ) -> Result<Self> {
        let mut take = |name: &str, shape: &[i64], kind: Kind| -> Result<Tensor> {
            let t = named
                .remove(name)
                .with_context(|| format!("it lacks '{name}'"))?;
            if t.size() != shape || t.kind() != kind {
                bail!(
                    "'{name}' is {:?} {:?}, expected {shape:?} {kind:?}",
                    t.size(),
                    t.kind()
                );
            }
            Ok(t.to_device(device))
        };
        let count = take("count", &[1], Kind::Int64)?.int64_value(&[0]);
        let (n, p) = (examples as i64, pixels as i64);
        let mut c = Captured {
            count: usize::try_from(count).context("a negative count")?,
            targets: targets.to_vec(),
            mean: Vec::new(),
            m2: Vec::new(),
            abs_sum: Vec::new(),
        };
        for t in targets {
            let name = t.name();
            c.mean
                .push(take(&format!("{name}/mean"), &[n, p], Kind::Float)?);
            c.m2.push(take(&format!("{name}/m2"), &[n, p], Kind::Float)?);
            c.abs_sum
                .push(take(&format!("{name}/abs_sum"), &[n], Kind::Double)?);
        }
        if let Some(extra) = named.keys().next() {
            bail!("it holds '{extra}', which is not of the targets {targets:?}");
        }
        Ok(c)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_checkpoint_accumulator() {
        // Three examples of two pixels, captured over three epochs in batches that visit
        // them in different orders: the same statistics as folding each example's maps in.
        let maps = [
            [[1.0, 2.0], [0.5, -1.0], [3.0, 0.0]],
            [[2.0, 2.0], [1.5, -3.0], [-1.0, 4.0]],
            [[4.0, -2.0], [0.5, 1.0], [0.0, 0.0]],
        ];
        let orders: [&[i64]; 3] = [&[0, 1, 2], &[2, 0, 1], &[1, 2, 0]];
        let mut c = Captured::new(3, 2, &[Target::Logit], Device::Cpu);
        for (epoch, order) in maps.iter().zip(orders) {
            c.begin_epoch();
            for chunk in order.chunks(2) {
                let rows: Vec<f64> = chunk.iter().flat_map(|&i| epoch[i as usize]).collect();
                let batch = Tensor::from_slice(&rows).view([chunk.len() as i64, 2]);
                c.push(&Tensor::from_slice(chunk), &[batch]);
            }
        }
        for reduce in [Reduce::Paper, Reduce::Official, Reduce::Cv] {
            let got = c.finish(0, reduce).unwrap();
            for (i, &g) in got.iter().enumerate() {
                let mut acc = Accumulator::new();
                for epoch in &maps {
                    acc.push(&Tensor::from_slice(&epoch[i]).view([1, 2]));
                }
                let want = acc.finish(reduce).double_value(&[0]);
                assert!(
                    (g - want).abs() < 1e-6 * want.abs().max(1.0),
                    "{reduce:?} {i}: {g} {want}"
                );
            }
        }
        // Saved and read back, the same state; another shape is refused.
        let named: std::collections::HashMap<_, _> = c.named().into_iter().collect();
        let copy = |n: &std::collections::HashMap<String, Tensor>| {
            n.iter().map(|(k, v)| (k.clone(), v.copy())).collect()
        };
        let back =
            Captured::from_named(copy(&named), &[Target::Logit], (3, 2), Device::Cpu).unwrap();
        assert_eq!(back.count, 3);
        assert_eq!(
            back.finish(0, Reduce::Paper).unwrap(),
            c.finish(0, Reduce::Paper).unwrap()
        );
        let err =
            Captured::from_named(copy(&named), &[Target::Logit], (4, 2), Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("expected [4, 2]"), "{err}");
        let err = Captured::from_named(named, &[Target::Logprob], (3, 2), Device::Cpu).unwrap_err();
        assert!(err.to_string().contains("lacks 'logprob/mean'"), "{err}");
    }
}
