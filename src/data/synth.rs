//! A deterministic synthetic image dataset: each class is a stripe pattern with its own
//! orientation and colour, drawn with a random phase, contrast and pixel noise, so a small
//! network learns it in seconds; low-contrast draws are genuinely hard. Tests, CI and the
//! demo use it; nothing is downloaded.
//!
//! A fraction of the training images can be planted as *atypical*: still their class's
//! orientation, but at twice the stripe frequency, in inverted colours and with heavier
//! noise. Which ones is known ([`planted`]), so the demo can measure whether VoG finds them.
use super::{images_tensor, Dataset, Split};
use crate::rng;
use rand::Rng;
use std::f64::consts::PI;

/// Size of the built-in synthetic dataset (`--dataset synth`).
pub const DEFAULT_TRAIN: usize = 2000;
pub const DEFAULT_TEST: usize = 500;

/// Size and seed of a synthetic dataset.
#[derive(Debug, Clone, PartialEq)]
pub struct SynthSpec {
    pub train: usize,
    pub test: usize,
    pub seed: u64,
    pub classes: usize,
    /// Height and width in pixels.
    pub size: usize,
    /// Fraction of training images drawn atypically.
    pub atypical: f64,
}

impl SynthSpec {
    /// `train` and `test` examples of 10 classes at 32x32, like CIFAR-10.
    pub fn new(train: usize, test: usize, seed: u64) -> Self {
        SynthSpec {
            train,
            test,
            seed,
            classes: 10,
            size: 32,
            atypical: 0.0,
        }
    }
}

/// Indices (sorted) of the training images drawn atypically.
pub fn planted(spec: &SynthSpec) -> Vec<usize> {
    let k = (spec.atypical.clamp(0.0, 1.0) * spec.train as f64).round() as usize;
    let mut idx =
        rand::seq::index::sample(&mut rng::stream(spec.seed, "synth-atypical"), spec.train, k)
            .into_vec();
    idx.sort_unstable();
    idx
}

/// Generates the dataset; examples cycle through the classes so every class is balanced.
pub fn generate(spec: &SynthSpec) -> Dataset {
    let class_names = (0..spec.classes).map(|c| format!("pattern{c}")).collect();
    let test = (spec.test > 0).then(|| split(spec, "test", spec.test, &[]));
    Dataset {
        class_names,
        train: split(spec, "train", spec.train, &planted(spec)),
        test,
    }
}

fn split(spec: &SynthSpec, name: &str, n: usize, atypical: &[usize]) -> Split {
    let mut rng = rng::stream(spec.seed, &format!("synth-{name}"));
    let s = spec.size;
    let mut pixels = Vec::with_capacity(n * 3 * s * s);
    let labels: Vec<i64> = (0..n).map(|i| (i % spec.classes) as i64).collect();
    for (i, &label) in labels.iter().enumerate() {
        let odd = atypical.binary_search(&i).is_ok();
        draw(label as usize, odd, spec, &mut rng, &mut pixels);
    }
    Split {
        images: images_tensor(&pixels, n, [3, s as i64, s as i64]).expect("sized buffer"),
        labels,
        ids: (0..n).map(|i| format!("{name}/{i:06}")).collect(),
        coarse_labels: None,
    }
}

/// Appends one CHW image of class `c`, typical or atypical.
fn draw(c: usize, atypical: bool, spec: &SynthSpec, rng: &mut impl Rng, out: &mut Vec<u8>) {
    let k = spec.classes as f64;
    let angle = PI * c as f64 / k;
    let (dx, dy) = (angle.cos(), angle.sin());
    let cycles = if atypical { 6.0 } else { 3.0 };
    let freq = 2.0 * PI * cycles / spec.size as f64;
    let noise_scale = if atypical { 80.0 } else { 60.0 };
    let phase = rng.gen_range(0.0..2.0 * PI);
    // Faint images drown in the noise: a continuum from easy to nearly impossible.
    let contrast = rng.gen_range(0.05..1.0);
    let colour: [f64; 3] =
        std::array::from_fn(|ch| 0.5 + 0.5 * (2.0 * PI * (c as f64 / k + ch as f64 / 3.0)).cos());
    let s = spec.size;
    let mut plane = vec![0.0; s * s];
    for (i, v) in plane.iter_mut().enumerate() {
        let (y, x) = ((i / s) as f64, (i % s) as f64);
        *v = (freq * (x * dx + y * dy) + phase).sin() * contrast;
    }
    for col in colour {
        for &v in &plane {
            let noise: f64 = rng.gen_range(-1.0..1.0) + rng.gen_range(-1.0..1.0);
            let value =
                128.0 + 40.0 * (col - 0.5) + 70.0 * v * (0.3 + 0.7 * col) + noise_scale * noise;
            let value = if atypical { 255.0 - value } else { value };
            out.push(value.round().clamp(0.0, 255.0) as u8);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deterministic_balanced_and_seed_dependent() {
        let a = generate(&SynthSpec::new(40, 20, 3));
        let b = generate(&SynthSpec::new(40, 20, 3));
        let c = generate(&SynthSpec::new(40, 20, 4));
        assert_eq!(a.fingerprint(), b.fingerprint());
        assert_ne!(a.fingerprint(), c.fingerprint());
        assert_eq!(a.train.images.size(), vec![40, 3, 32, 32]);
        assert_eq!(a.train.class_counts(10), vec![4; 10]);
        assert_eq!(a.test.as_ref().unwrap().len(), 20);
        assert_eq!(a.train.ids[7], "train/000007");
    }

    #[test]
    fn planted_atypical_images_are_known_and_only_in_train() {
        let mut spec = SynthSpec::new(100, 20, 2);
        let plain = generate(&spec);
        spec.atypical = 0.1;
        let idx = planted(&spec);
        assert_eq!(idx.len(), 10);
        let odd = generate(&spec);
        for i in 0..100 {
            let same = plain.train.images.get(i as i64) == odd.train.images.get(i as i64);
            assert_eq!(same, !idx.contains(&i), "image {i}");
        }
        assert_eq!(plain.test.unwrap().images, odd.test.unwrap().images);
    }

    #[test]
    fn classes_differ_more_than_examples_of_one_class() {
        let d = generate(&SynthSpec::new(200, 0, 1));
        let x = d.train.images.to_kind(tch::Kind::Float);
        let mean_of = |c: i64| {
            let idx: Vec<i64> = (0..200).filter(|i| i % 10 == c).collect();
            x.index_select(0, &tch::Tensor::from_slice(&idx))
                .mean_dim(0, false, tch::Kind::Float)
        };
        // Same-class images share a colour, so class means differ clearly.
        let d01 = (mean_of(0) - mean_of(5))
            .abs()
            .mean(tch::Kind::Float)
            .double_value(&[]);
        assert!(d01 > 5.0, "class means too close: {d01}");
    }
}
