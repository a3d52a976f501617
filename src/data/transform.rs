//! Input transforms: per-channel normalization and the paper's training augmentation
//! (random 32x32 crop from the image zero-padded by 4 pixels, then a horizontal flip with
//! probability 1/2), applied to a whole batch at once with offsets drawn from a seeded RNG.
use rand::Rng;
use serde::{Deserialize, Serialize};
use tch::{Kind, Tensor};

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
        let opts = (Kind::Float, x.device());
        let mean = Tensor::from_slice(&self.mean)
            .to_kind(Kind::Float)
            .view([1, 3, 1, 1]);
        let std = Tensor::from_slice(&self.std)
            .to_kind(Kind::Float)
            .view([1, 3, 1, 1]);
        (x - mean.to_device(opts.1)) / std.to_device(opts.1)
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
    /// Augments `x` (NCHW f32 in [0, 1]); offsets and flips come from `rng`, one per image.
    pub fn apply(&self, x: &Tensor, rng: &mut impl Rng) -> Tensor {
        let n = x.size()[0] as usize;
        let offsets: Vec<(i64, i64)> = (0..n)
            .map(|_| {
                (
                    rng.gen_range(0..=2 * self.pad),
                    rng.gen_range(0..=2 * self.pad),
                )
            })
            .collect();
        let flips: Vec<bool> = (0..n).map(|_| rng.gen_bool(0.5)).collect();
        let cropped = crop(x, self.pad, &offsets);
        flip(&cropped, &flips)
    }
}

/// Crops each image of the zero-padded batch at its own (row, col) offset.
pub fn crop(x: &Tensor, pad: i64, offsets: &[(i64, i64)]) -> Tensor {
    let [n, c, h, w] = <[i64; 4]>::try_from(x.size()).expect("NCHW batch");
    let dev = x.device();
    let padded = x.constant_pad_nd([pad, pad, pad, pad]);
    let rows: Vec<i64> = offsets
        .iter()
        .flat_map(|&(dy, _)| (0..h).map(move |i| i + dy))
        .collect();
    let cols: Vec<i64> = offsets
        .iter()
        .flat_map(|&(_, dx)| (0..w).map(move |j| j + dx))
        .collect();
    let rows = Tensor::from_slice(&rows).to_device(dev).view([n, 1, h, 1]);
    let cols = Tensor::from_slice(&cols).to_device(dev).view([n, 1, 1, w]);
    let wp = w + 2 * pad;
    padded
        .gather(2, &rows.expand([n, c, h, wp], false), false)
        .gather(3, &cols.expand([n, c, h, w], false), false)
}

/// Mirrors left-right the images whose flag is set.
pub fn flip(x: &Tensor, flags: &[bool]) -> Tensor {
    let n = flags.len() as i64;
    let mask = Tensor::from_slice(flags)
        .to_device(x.device())
        .view([n, 1, 1, 1]);
    x.flip([3]).where_self(&mask, x)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ramp() -> Tensor {
        // 2 images, 1 channel, 3x3: values 0..=8 and 9..=17.
        Tensor::arange(18, (Kind::Float, tch::Device::Cpu)).view([2, 1, 3, 3])
    }

    #[test]
    fn crop_per_image_offsets() {
        let x = ramp();
        let out = crop(&x, 1, &[(1, 1), (0, 2)]);
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
        let out = flip(&x, &[false, true]);
        assert_eq!(out.get(0), x.get(0));
        let row = Vec::<f32>::try_from(out.get(1).get(0).get(0)).unwrap();
        assert_eq!(row, vec![11., 10., 9.]);
    }

    #[test]
    fn augment_is_seeded() {
        let x = Tensor::rand([4, 3, 8, 8], (Kind::Float, tch::Device::Cpu));
        let a = Augment { pad: 4 }.apply(&x, &mut crate::rng::stream(1, "aug"));
        let b = Augment { pad: 4 }.apply(&x, &mut crate::rng::stream(1, "aug"));
        assert_eq!(a, b);
        assert_eq!(a.size(), x.size());
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
