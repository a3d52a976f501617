//! Datasets held in memory as uint8 NCHW tensors, each example with a stable id that
//! travels with it through training, scoring and every report.
pub mod cifar;
pub mod classes;
pub mod decisions;
pub mod download;
pub mod folder;
pub mod noise;
pub mod plant;
pub mod prepare;
pub mod stream;
pub mod subset;
pub mod synth;
pub mod table;
pub mod transform;

use anyhow::{bail, Context, Result};
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};
use std::fmt;
use std::path::{Path, PathBuf};
use tch::Tensor;

/// The training or the test split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SplitKind {
    Train,
    Test,
}

impl SplitKind {
    pub fn name(self) -> &'static str {
        match self {
            SplitKind::Train => "train",
            SplitKind::Test => "test",
        }
    }
}

impl std::str::FromStr for SplitKind {
    type Err = String;

    /// `train` or `test`, as files name the splits.
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "train" => Ok(SplitKind::Train),
            "test" => Ok(SplitKind::Test),
            other => Err(format!("'{other}' is not a split (train or test)")),
        }
    }
}

impl fmt::Display for SplitKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Where a dataset comes from; saved in the run so later stages reload the same data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum DatasetSpec {
    /// CIFAR-10 binary batches under `dir`.
    Cifar10 { dir: PathBuf },
    /// CIFAR-100 binary files under `dir`.
    Cifar100 { dir: PathBuf },
    /// An image folder `root/train/<class>/*` (and optionally `root/test/<class>/*`).
    Folder { root: PathBuf },
    /// The in-process synthetic dataset, with a fraction of atypical training images.
    Synth {
        train: usize,
        test: usize,
        seed: u64,
        #[serde(default)]
        atypical: f64,
    },
    /// Images read batch by batch from a folder or manifest (scoring a user's model).
    Stream(stream::StreamSpec),
}

impl DatasetSpec {
    /// The dataset a user names: `cifar10` or `cifar100` (binaries under `data_dir`),
    /// `synth` (the built-in synthetic set, drawn from `seed`) or an image folder; paths
    /// are made absolute so the run finds its data from anywhere.
    pub fn resolve(name: &str, data_dir: &Path, seed: u64) -> Result<Self> {
        let abs = |p: &Path| {
            std::path::absolute(p).with_context(|| format!("cannot resolve path '{}'", p.display()))
        };
        Ok(match name {
            "cifar10" => DatasetSpec::Cifar10 {
                dir: abs(data_dir)?,
            },
            "cifar100" => DatasetSpec::Cifar100 {
                dir: abs(data_dir)?,
            },
            "synth" => DatasetSpec::Synth {
                train: synth::DEFAULT_TRAIN,
                test: synth::DEFAULT_TEST,
                seed,
                atypical: 0.0,
            },
            path if Path::new(path).is_dir() => DatasetSpec::Folder {
                root: abs(Path::new(path))?,
            },
            other => {
                bail!(
                    "dataset '{other}' is neither cifar10, cifar100, synth nor an existing folder"
                )
            }
        })
    }

    /// The same dataset found in `dir` instead (synthetic data has no location).
    pub fn relocated(&self, dir: &Path) -> Result<Self> {
        let dir = std::path::absolute(dir)
            .with_context(|| format!("cannot resolve '{}'", dir.display()))?;
        Ok(match self {
            DatasetSpec::Cifar10 { .. } => DatasetSpec::Cifar10 { dir },
            DatasetSpec::Cifar100 { .. } => DatasetSpec::Cifar100 { dir },
            DatasetSpec::Folder { .. } => DatasetSpec::Folder { root: dir },
            DatasetSpec::Synth { .. } => {
                bail!("the run uses the built-in synthetic dataset, which has no location")
            }
            DatasetSpec::Stream(s) => DatasetSpec::Stream(s.relocated(&dir)),
        })
    }

    /// The same synthetic dataset drawn from `seed`; other datasets are unchanged.
    pub fn with_seed(self, seed: u64) -> Self {
        match self {
            DatasetSpec::Synth {
                train,
                test,
                atypical,
                ..
            } => DatasetSpec::Synth {
                train,
                test,
                seed,
                atypical,
            },
            other => other,
        }
    }

    /// A short name for messages and reports.
    pub fn name(&self) -> String {
        match self {
            DatasetSpec::Cifar10 { .. } => "cifar10".into(),
            DatasetSpec::Cifar100 { .. } => "cifar100".into(),
            DatasetSpec::Folder { root } => format!("folder {}", root.display()),
            DatasetSpec::Synth { .. } => "synth".into(),
            DatasetSpec::Stream(s) => s.name(),
        }
    }

    /// Reads the dataset into memory.
    pub fn load(&self) -> Result<Dataset> {
        match self {
            DatasetSpec::Cifar10 { dir } => cifar::load(dir, cifar::Variant::Cifar10),
            DatasetSpec::Cifar100 { dir } => cifar::load(dir, cifar::Variant::Cifar100),
            DatasetSpec::Folder { root } => folder::load(root),
            DatasetSpec::Synth {
                train,
                test,
                seed,
                atypical,
            } => Ok(synth::generate(&synth::SynthSpec {
                atypical: *atypical,
                ..synth::SynthSpec::new(*train, *test, *seed)
            })),
            DatasetSpec::Stream(s) => bail!(
                "{} is read batch by batch, never whole into memory",
                s.name()
            ),
        }
    }
}

/// One split (train or test) in memory.
#[derive(Debug)]
pub struct Split {
    /// NCHW uint8 RGB pixels, on the CPU.
    pub images: Tensor,
    /// Class index of each example, in `0..num_classes`.
    pub labels: Vec<i64>,
    /// Stable id of each example (`train/000123` for CIFAR, the relative path for folders).
    pub ids: Vec<String>,
    /// CIFAR-100's coarse (superclass) label, kept alongside the fine one.
    pub coarse_labels: Option<Vec<i64>>,
}

impl Split {
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The examples at `indices` (in that order), ids and labels included.
    pub fn select(&self, indices: &[usize]) -> Split {
        let idx: Vec<i64> = indices.iter().map(|&i| i as i64).collect();
        Split {
            images: self.images.index_select(0, &Tensor::from_slice(&idx)),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            ids: indices.iter().map(|&i| self.ids[i].clone()).collect(),
            coarse_labels: self
                .coarse_labels
                .as_ref()
                .map(|c| indices.iter().map(|&i| c[i]).collect()),
        }
    }

    /// (channels, height, width) of every image.
    pub fn image_shape(&self) -> [i64; 3] {
        let s = self.images.size();
        [s[1], s[2], s[3]]
    }

    /// Examples per class.
    pub fn class_counts(&self, num_classes: usize) -> Vec<usize> {
        let mut counts = vec![0; num_classes];
        for &l in &self.labels {
            counts[l as usize] += 1;
        }
        counts
    }

    /// Per image, the first 8 bytes (hex) of the MD5 of its uint8 CHW pixels: equal for
    /// exact duplicates, different for any other two images but with odds of 2^-64.
    pub fn pixel_digests(&self) -> Vec<String> {
        let n = self.len() as i64;
        let pixels = Vec::<u8>::try_from(self.images.flatten(0, -1))
            .expect("split images are a contiguous uint8 tensor");
        let per = pixels.len() / n.max(1) as usize;
        pixels
            .chunks(per.max(1))
            .take(self.len())
            .map(|p| {
                let d = Md5::digest(p);
                d[..8].iter().map(|b| format!("{b:02x}")).collect()
            })
            .collect()
    }

    fn hash_into(&self, h: &mut Md5) {
        for (id, label) in self.ids.iter().zip(&self.labels) {
            h.update(id.as_bytes());
            h.update([0u8]);
            h.update(label.to_le_bytes());
        }
        let pixels = Vec::<u8>::try_from(self.images.flatten(0, -1))
            .expect("split images are a contiguous uint8 tensor");
        h.update(&pixels);
    }
}

/// A dataset: class names, a training split and an optional test split.
#[derive(Debug)]
pub struct Dataset {
    pub class_names: Vec<String>,
    pub train: Split,
    pub test: Option<Split>,
}

impl Dataset {
    /// The split of `kind`, if the dataset has it.
    pub fn split(&self, kind: SplitKind) -> Option<&Split> {
        match kind {
            SplitKind::Train => Some(&self.train),
            SplitKind::Test => self.test.as_ref(),
        }
    }

    pub fn num_classes(&self) -> usize {
        self.class_names.len()
    }

    /// MD5 over ids, labels and pixels of both splits: changes when any example does.
    pub fn fingerprint(&self) -> String {
        let mut h = Md5::new();
        self.train.hash_into(&mut h);
        if let Some(test) = &self.test {
            h.update(b"test");
            test.hash_into(&mut h);
        }
        format!("{:x}", h.finalize())
    }
}

/// Checks that every label lies in `0..num_classes`; `what` names the source in the error.
pub(crate) fn check_labels(labels: &[i64], num_classes: usize, what: &str) -> Result<()> {
    if let Some((i, l)) = labels
        .iter()
        .enumerate()
        .find(|(_, &l)| l < 0 || l as usize >= num_classes)
    {
        bail!("{what}: record {i} has label {l}, but the dataset has {num_classes} classes");
    }
    Ok(())
}

/// A CHW uint8 tensor as an RGB image.
pub fn to_rgb(image: &Tensor) -> Result<image::RgbImage> {
    let size = image.size();
    let (h, w) = (size[1] as u32, size[2] as u32);
    let hwc = Vec::<u8>::try_from(image.permute([1, 2, 0]).contiguous().flatten(0, -1))
        .context("image tensor is not uint8")?;
    image::RgbImage::from_raw(w, h, hwc).context("image buffer has the wrong size")
}

/// Builds an NCHW uint8 tensor from `n` images of `c*h*w` bytes each, stored CHW.
pub(crate) fn images_tensor(pixels: &[u8], n: usize, shape: [i64; 3]) -> Result<Tensor> {
    let [c, h, w] = shape;
    let expected = n * (c * h * w) as usize;
    if pixels.len() != expected {
        bail!("expected {expected} pixel bytes, found {}", pixels.len());
    }
    Tensor::from_slice(pixels)
        .f_view([n as i64, c, h, w])
        .context("cannot shape the pixel buffer")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensor_to_rgb() {
        let t = Tensor::from_slice(&[1u8, 2, 3, 4, 5, 6]).view([3, 1, 2]);
        let img = to_rgb(&t).unwrap();
        assert_eq!(img.get_pixel(0, 0), &image::Rgb([1, 3, 5]));
        assert_eq!(img.get_pixel(1, 0), &image::Rgb([2, 4, 6]));
    }
}
