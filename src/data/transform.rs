//! Input transforms: per-channel normalization and the paper's training augmentation
//! (random 32x32 crop from the image zero-padded by 4 pixels, then a horizontal flip with
//! probability 1/2), applied to a whole batch at once with offsets drawn from a seeded RNG.
use rand::Rng;
use serde::{Deserialize, Serialize};
use tch::{Device, Kind, Tensor};

/// Per-channel mean and standard deviation of pixel values scaled to [0, 1].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Normalization {
    pub mean: [f64; 3],
    pub std: [f64; 3],
}

impl Normalization {
    /// The standard CIFAR-10 training-set statistics.
    pub const CIFAR10: Normalization = Normalization {
        mean: [0.4914, 0.4822, 0.4465],
        std: [0.2470, 0.2435, 0.2616],
    };
    /// torchvision's ImageNet statistics.
    pub const IMAGENET: Normalization = Normalization {
        mean: [0.485, 0.456, 0.406],
        std: [0.229, 0.224, 0.225],
    };
    /// The standard CIFAR-100 training-set statistics.
    pub const CIFAR100: Normalization = Normalization {
        mean: [0.5071, 0.4865, 0.4409],
        std: [0.2673, 0.2564, 0.2762],
    };

    /// The statistics a name stands for (`--normalize NAME`, `normalize = "NAME"`), one of
    /// [`Self::NAMES`]; `none` leaves pixels in [0, 1].
    pub fn named(name: &str) -> Option<Normalization> {
        match name {
            "imagenet" => Some(Self::IMAGENET),
            "cifar10" => Some(Self::CIFAR10),
            "cifar100" => Some(Self::CIFAR100),
            "none" => Some(Normalization {
                mean: [0.0; 3],
                std: [1.0; 3],
            }),
            _ => None,
        }
    }

    /// The names [`Self::named`] takes.
    pub const NAMES: [&'static str; 4] = ["imagenet", "cifar10", "cifar100", "none"];

    /// Statistics given as numbers; refuses anything but three finite means and three
    /// positive standard deviations, naming them `{prefix}mean` and `{prefix}std`.
    pub fn from_mean_std(mean: &[f64], std: &[f64], prefix: &str) -> anyhow::Result<Self> {
        let three = |v: &[f64], name: &str| -> anyhow::Result<[f64; 3]> {
            <[f64; 3]>::try_from(v)
                .ok()
                .filter(|v| v.iter().all(|x| x.is_finite()))
                .ok_or_else(|| anyhow::anyhow!("{prefix}{name} needs three finite numbers R,G,B"))
        };
        let std = three(std, "std")?;
        if std.iter().any(|&s| s <= 0.0) {
            anyhow::bail!("{prefix}std values must be positive");
        }
        Ok(Normalization {
            mean: three(mean, "mean")?,
            std,
        })
    }

    /// Statistics of `images` (NCHW uint8, three channels).
    pub fn from_images(images: &Tensor) -> Self {
        let x = images.to_kind(Kind::Double) / 255.0;
        let mean = x.mean_dim([0i64, 2, 3].as_slice(), false, Kind::Double);
        let std = x.std_dim([0i64, 2, 3].as_slice(), false, false);
        let get = |t: &Tensor| std::array::from_fn(|c| t.double_value(&[c as i64]));
        Normalization {
            mean: get(&mean),
            std: get(&std),
        }
    }

    /// `(x - mean) / std` per channel; `x` is NCHW f32 in [0, 1] on any device.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        self.on(x.device()).apply(x)
    }

    /// The statistics as tensors on `device`, made once for many batches (copying them
    /// from the host for every batch would make CUDA wait for the work queued before).
    pub fn on(&self, device: Device) -> Normalizer {
        let channels = |v: &[f64; 3]| {
            Tensor::from_slice(v)
                .to_kind(Kind::Float)
                .view([1, 3, 1, 1])
                .to_device(device)
        };
        Normalizer {
            mean: channels(&self.mean),
            std: channels(&self.std),
        }
    }
}

/// A [`Normalization`] on one device.
#[derive(Debug)]
pub struct Normalizer {
    /// 1 x 3 x 1 x 1 f32.
    mean: Tensor,
    /// 1 x 3 x 1 x 1 f32.
    std: Tensor,
}

impl Normalizer {
    /// `(x - mean) / std` per channel; `x` is NCHW f32 in [0, 1] on the normalizer's device.
    pub fn apply(&self, x: &Tensor) -> Tensor {
        (x - &self.mean) / &self.std
    }
}

/// NCHW uint8 -> NCHW f32 in [0, 1], on the same device.
pub fn to_unit(images: &Tensor) -> Tensor {
    images.to_kind(Kind::Float) / 255.0
}

/// Random crop with zero padding plus random horizontal flip, for a whole batch.
#[derive(Debug, Clone, Copy)]
pub struct Augment {
    pub pad: i64,
}

impl Augment {
    /// Draws the offsets and flips of one epoch of `n` images in batches of `batch` of
    /// `h x w` images from `rng` (per batch: every image's offset, then every image's flip)
    /// and sends them to `device` at once, so that the batches need no copy from the host.
    pub fn draw_epoch(
        &self,
        n: usize,
        batch: usize,
        (h, w): (i64, i64),
        rng: &mut impl Rng,
        device: Device,
    ) -> Draws {
        let mut offsets = Vec::with_capacity(n);
        let mut flips = Vec::with_capacity(n);
        for start in (0..n).step_by(batch.max(1)) {
            let len = batch.min(n - start);
            let span = 0..=2 * self.pad;
            offsets.extend(
                (0..len).map(|_| (rng.gen_range(span.clone()), rng.gen_range(span.clone()))),
            );
            flips.extend((0..len).map(|_| rng.gen_bool(0.5)));
        }
        Draws::new(self.pad, (h, w), &offsets, &flips, device)
    }
}

/// Augmentation draws for a sequence of images, on the device: the gather indices of each
/// image's crop and its flip flag.
#[derive(Debug)]
pub struct Draws {
    pad: i64,
    /// n x h i64: the padded rows each image's crop takes.
    rows: Tensor,
    /// n x w i64: the padded columns.
    cols: Tensor,
    /// n bool: mirror left-right.
    flips: Tensor,
}

impl Draws {
    /// Draws of crops at (row, col) `offsets` into the zero-padded `h x w` images and of
    /// `flips`, one each per image.
    pub fn new(
        pad: i64,
        (h, w): (i64, i64),
        offsets: &[(i64, i64)],
        flips: &[bool],
        device: Device,
    ) -> Self {
        let n = offsets.len() as i64;
        let rows: Vec<i64> = offsets
            .iter()
            .flat_map(|&(dy, _)| (0..h).map(move |i| i + dy))
            .collect();
        let cols: Vec<i64> = offsets
            .iter()
            .flat_map(|&(_, dx)| (0..w).map(move |j| j + dx))
            .collect();
        Draws {
            pad,
            rows: Tensor::from_slice(&rows).view([n, h]).to_device(device),
            cols: Tensor::from_slice(&cols).view([n, w]).to_device(device),
            flips: Tensor::from_slice(flips).to_device(device),
        }
    }

    /// Augments `x` (NCHW f32 in [0, 1]) with the draws of images `start..start + N`.
    pub fn apply(&self, x: &Tensor, start: i64) -> Tensor {
        let [n, c, h, w] = <[i64; 4]>::try_from(x.size()).expect("NCHW batch");
        let rows = self.rows.narrow(0, start, n).view([n, 1, h, 1]);
        let cols = self.cols.narrow(0, start, n).view([n, 1, 1, w]);
        let wp = w + 2 * self.pad;
        let cropped = x
            .constant_pad_nd([self.pad, self.pad, self.pad, self.pad])
            .gather(2, &rows.expand([n, c, h, wp], false), false)
            .gather(3, &cols.expand([n, c, h, w], false), false);
        let mask = self.flips.narrow(0, start, n).view([n, 1, 1, 1]);
        cropped.flip([3]).where_self(&mask, &cropped)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Tensor {
        // 2 images, 1 channel, 3x3: values 0..=8 and 9..=17.
        Tensor::arange(18, (Kind::Float, tch::Device::Cpu)).view([2, 1, 3, 3])
    }

    fn draws(offsets: &[(i64, i64)], flips: &[bool]) -> Draws {
        Draws::new(1, (3, 3), offsets, flips, tch::Device::Cpu)
    }

    #[test]
    fn crop_per_image_offsets() {
        let x = ramp();
        let out = draws(&[(1, 1), (0, 2)], &[false, false]).apply(&x, 0);
        // Offset (pad, pad) is the identity.
        assert_eq!(out.get(0), x.get(0));
        // Image 1 shifted: row -1 is padding, columns 1..3 then padding.
        let expect =
            Tensor::from_slice(&[0f32, 0., 0., 10., 11., 0., 13., 14., 0.]).view([1, 3, 3]);
        assert_eq!(out.get(1), expect);
    }

    #[test]
    fn flip_only_flagged() {
        let x = ramp();
        let out = draws(&[(1, 1), (1, 1)], &[false, true]).apply(&x, 0);
        assert_eq!(out.get(0), x.get(0));
        let row = Vec::<f32>::try_from(out.get(1).get(0).get(0)).unwrap();
        assert_eq!(row, vec![11., 10., 9.]);
    }

    #[test]
    fn draws_of_later_batches_start_where_they_are_asked() {
        // Three images' draws; the batch of the last two uses entries 1 and 2.
        let d = draws(&[(0, 0), (1, 1), (1, 1)], &[false, false, true]);
        let x = ramp();
        let out = d.apply(&x, 1);
        assert_eq!(out.get(0), x.get(0));
        assert_eq!(out.get(1), x.get(1).flip([2]));
    }

    #[test]
    fn epoch_draws_are_seeded_and_batch_ordered() {
        let aug = Augment { pad: 4 };
        let x = Tensor::rand([5, 3, 8, 8], (Kind::Float, tch::Device::Cpu));
        let epoch = |seed| {
            let d = aug.draw_epoch(
                5,
                2,
                (8, 8),
                &mut crate::rng::stream(seed, "aug"),
                tch::Device::Cpu,
            );
            d.apply(&x.narrow(0, 2, 3), 2)
        };
        assert_eq!(epoch(1), epoch(1));
        assert_ne!(epoch(1), epoch(2));
        // The first batch draws its two offsets, then its two flips, then the next batch.
        let mut rng = crate::rng::stream(1, "aug");
        let mut expect = Vec::new();
        for len in [2, 2, 1] {
            let offsets: Vec<(i64, i64)> = (0..len)
                .map(|_| (rng.gen_range(0..=8), rng.gen_range(0..=8)))
                .collect();
            let flips: Vec<bool> = (0..len).map(|_| rng.gen_bool(0.5)).collect();
            expect.push((offsets, flips));
        }
        let (o, f): (Vec<_>, Vec<_>) = expect.into_iter().unzip();
        let by_hand = Draws::new(4, (8, 8), &o.concat(), &f.concat(), tch::Device::Cpu);
        assert_eq!(by_hand.apply(&x.narrow(0, 2, 3), 2), epoch(1));
    }

    #[test]
    fn normalization_statistics_and_apply() {
        let imgs =
            Tensor::from_slice(&[0u8, 255, 0, 255, 51, 51, 51, 51, 0, 0, 0, 0]).view([1, 3, 2, 2]);
        let n = Normalization::from_images(&imgs);
        assert!((n.mean[0] - 0.5).abs() < 1e-12 && (n.std[0] - 0.5).abs() < 1e-12);
        assert!((n.mean[1] - 0.2).abs() < 1e-12 && n.std[1].abs() < 1e-12);
        let z = Normalization::CIFAR10
            .apply(&Tensor::ones([1, 3, 1, 1], (Kind::Float, tch::Device::Cpu)));
        let expect = (1.0 - 0.4914) / 0.2470;
        assert!((z.double_value(&[0, 0, 0, 0]) - expect).abs() < 1e-5);
    }
}
