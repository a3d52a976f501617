//! CIFAR-10 / CIFAR-100 binary format (<https://www.cs.toronto.edu/~kriz/cifar.html>).
//!
//! CIFAR-10: `data_batch_{1..5}.bin` and `test_batch.bin`, records of 1 label byte plus
//! 3072 pixel bytes (1024 red, 1024 green, 1024 blue, row-major 32x32); class names one per
//! line in `batches.meta.txt`. CIFAR-100: `train.bin` and `test.bin`, records of a coarse
//! label byte, a fine label byte and the same 3072 pixel bytes; names in
//! `fine_label_names.txt`. We train on the fine label and keep the coarse one.
use super::{check_labels, images_tensor, Dataset, Split};
use anyhow::{bail, Context, Result};
use std::io::Write;
use std::path::{Path, PathBuf};

/// Pixel bytes of one CIFAR image (3x32x32, CHW).
pub const IMAGE_BYTES: usize = 3 * 32 * 32;
const SHAPE: [i64; 3] = [3, 32, 32];

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Variant {
    Cifar10,
    Cifar100,
}

impl Variant {
    /// Label bytes before the pixels of each record.
    pub fn label_bytes(self) -> usize {
        match self {
            Variant::Cifar10 => 1,
            Variant::Cifar100 => 2,
        }
    }

    pub fn num_classes(self) -> usize {
        match self {
            Variant::Cifar10 => 10,
            Variant::Cifar100 => 100,
        }
    }

    fn record_bytes(self) -> usize {
        self.label_bytes() + IMAGE_BYTES
    }

    fn train_files(self) -> Vec<String> {
        match self {
            Variant::Cifar10 => (1..=5).map(|i| format!("data_batch_{i}.bin")).collect(),
            Variant::Cifar100 => vec!["train.bin".into()],
        }
    }

    fn test_file(self) -> &'static str {
        match self {
            Variant::Cifar10 => "test_batch.bin",
            Variant::Cifar100 => "test.bin",
        }
    }

    fn names_file(self) -> &'static str {
        match self {
            Variant::Cifar10 => "batches.meta.txt",
            Variant::Cifar100 => "fine_label_names.txt",
        }
    }

    /// The folder the official archive extracts to.
    pub fn archive_folder(self) -> &'static str {
        match self {
            Variant::Cifar10 => "cifar-10-batches-bin",
            Variant::Cifar100 => "cifar-100-binary",
        }
    }
}

/// Decoded records of one or more files.
#[derive(Debug, Default, PartialEq)]
pub struct Records {
    /// CHW pixel bytes, image after image.
    pub pixels: Vec<u8>,
    pub labels: Vec<i64>,
    /// Present for CIFAR-100 only.
    pub coarse: Option<Vec<i64>>,
}

/// Parses the records of one file's bytes; `what` names the file in errors.
pub fn parse_records(bytes: &[u8], variant: Variant, what: &str) -> Result<Records> {
    let rec = variant.record_bytes();
    if bytes.is_empty() || !bytes.len().is_multiple_of(rec) {
        bail!(
            "{what}: {} bytes is not a whole number of {rec}-byte {variant:?} records \
             (truncated or not a CIFAR binary file?)",
            bytes.len()
        );
    }
    let n = bytes.len() / rec;
    let mut out = Records {
        pixels: Vec::with_capacity(n * IMAGE_BYTES),
        labels: Vec::with_capacity(n),
        coarse: (variant == Variant::Cifar100).then(|| Vec::with_capacity(n)),
    };
    for record in bytes.chunks_exact(rec) {
        let (label_bytes, pixels) = record.split_at(variant.label_bytes());
        out.labels.push(*label_bytes.last().unwrap() as i64);
        if let Some(c) = out.coarse.as_mut() {
            c.push(label_bytes[0] as i64);
        }
        out.pixels.extend_from_slice(pixels);
    }
    check_labels(&out.labels, variant.num_classes(), what)?;
    if let Some(c) = &out.coarse {
        check_labels(c, 20, &format!("{what} (coarse label)"))?;
    }
    Ok(out)
}

/// Writes records in the binary format (the coarse label is 0 when absent for CIFAR-100).
pub fn write_records(
    mut w: impl Write,
    variant: Variant,
    pixels: &[u8],
    labels: &[i64],
    coarse: Option<&[i64]>,
) -> Result<()> {
    for (i, (image, &label)) in pixels.chunks_exact(IMAGE_BYTES).zip(labels).enumerate() {
        if variant == Variant::Cifar100 {
            w.write_all(&[coarse.map_or(0, |c| c[i]) as u8])?;
        }
        w.write_all(&[label as u8])?;
        w.write_all(image)?;
    }
    Ok(())
}

/// Finds the folder holding the binary files: `dir` itself or the archive's folder in it.
pub fn locate(dir: &Path, variant: Variant) -> Result<PathBuf> {
    if !dir.is_dir() {
        bail!(
            "dataset folder '{}' does not exist (run `vog download {}` to fetch it)",
            dir.display(),
            variant_name(variant)
        );
    }
    for candidate in [dir.join(variant.archive_folder()), dir.to_path_buf()] {
        if candidate.join(variant.test_file()).is_file() {
            return Ok(candidate);
        }
    }
    bail!(
        "'{}' holds no {} binary files (looked for {} there and in {}/)",
        dir.display(),
        variant_name(variant),
        variant.test_file(),
        variant.archive_folder()
    )
}

fn variant_name(variant: Variant) -> &'static str {
    match variant {
        Variant::Cifar10 => "cifar10",
        Variant::Cifar100 => "cifar100",
    }
}

/// Loads both splits and the class names from `dir`.
pub fn load(dir: &Path, variant: Variant) -> Result<Dataset> {
    let root = locate(dir, variant)?;
    let class_names = read_class_names(&root.join(variant.names_file()), variant)?;
    let train = read_split(&root, &variant.train_files(), variant, "train")?;
    let test = read_split(&root, &[variant.test_file().to_string()], variant, "test")?;
    Ok(Dataset {
        class_names,
        train,
        test: Some(test),
    })
}

fn read_split(root: &Path, files: &[String], variant: Variant, split: &str) -> Result<Split> {
    let mut all = Records {
        coarse: (variant == Variant::Cifar100).then(Vec::new),
        ..Default::default()
    };
    for name in files {
        let path = root.join(name);
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read '{}'", path.display()))?;
        let r = parse_records(&bytes, variant, &path.display().to_string())?;
        all.pixels.extend(r.pixels);
        all.labels.extend(r.labels);
        if let (Some(a), Some(c)) = (all.coarse.as_mut(), r.coarse) {
            a.extend(c);
        }
    }
    let n = all.labels.len();
    Ok(Split {
        images: images_tensor(&all.pixels, n, SHAPE)?,
        ids: (0..n).map(|i| format!("{split}/{i:06}")).collect(),
        labels: all.labels,
        coarse_labels: all.coarse,
    })
}

fn read_class_names(path: &Path, variant: Variant) -> Result<Vec<String>> {
    let names = super::table::read_list(path, "class names")?;
    if names.len() != variant.num_classes() {
        bail!(
            "'{}' lists {} class names, expected {}",
            path.display(),
            names.len(),
            variant.num_classes()
        );
    }
    Ok(names)
}

/// Writes a CIFAR-10-format dataset (5 train batches, a test batch, class names) to `dir`.
pub fn write_cifar10(dir: &Path, data: &Dataset) -> Result<()> {
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create folder '{}'", dir.display()))?;
    let train = split_bytes(&data.train);
    let n = data.train.len();
    for b in 0..5 {
        let (lo, hi) = (n * b / 5, n * (b + 1) / 5);
        let path = dir.join(format!("data_batch_{}.bin", b + 1));
        write_file(&path, |w| {
            write_records(
                w,
                Variant::Cifar10,
                &train[lo * IMAGE_BYTES..hi * IMAGE_BYTES],
                &data.train.labels[lo..hi],
                None,
            )
        })?;
    }
    let test = data
        .test
        .as_ref()
        .context("the dataset has no test split")?;
    write_file(&dir.join("test_batch.bin"), |w| {
        write_records(w, Variant::Cifar10, &split_bytes(test), &test.labels, None)
    })?;
    let names = data.class_names.join("\n") + "\n";
    crate::atomic_file::write_bytes(&dir.join("batches.meta.txt"), names.as_bytes())
}

fn split_bytes(split: &Split) -> Vec<u8> {
    assert_eq!(split.image_shape(), SHAPE, "CIFAR images are 3x32x32");
    Vec::<u8>::try_from(split.images.flatten(0, -1)).expect("uint8 images")
}

fn write_file(path: &Path, fill: impl FnOnce(&mut dyn Write) -> Result<()>) -> Result<()> {
    crate::atomic_file::write_with(path, fill)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(n: usize) -> (Vec<u8>, Vec<i64>) {
        let pixels = (0..n * IMAGE_BYTES).map(|i| (i * 7 % 251) as u8).collect();
        let labels = (0..n).map(|i| (i % 10) as i64).collect();
        (pixels, labels)
    }

    #[test]
    fn cifar10_round_trip() {
        let (pixels, labels) = sample(3);
        let mut buf = Vec::new();
        write_records(&mut buf, Variant::Cifar10, &pixels, &labels, None).unwrap();
        assert_eq!(buf.len(), 3 * 3073);
        let r = parse_records(&buf, Variant::Cifar10, "x").unwrap();
        assert_eq!(r.pixels, pixels);
        assert_eq!(r.labels, labels);
        assert_eq!(r.coarse, None);
    }

    #[test]
    fn cifar100_keeps_fine_and_coarse() {
        let (pixels, _) = sample(2);
        let fine = [99, 3];
        let coarse = [19, 0];
        let mut buf = Vec::new();
        write_records(&mut buf, Variant::Cifar100, &pixels, &fine, Some(&coarse)).unwrap();
        assert_eq!(&buf[..2], &[19, 99]);
        let r = parse_records(&buf, Variant::Cifar100, "x").unwrap();
        assert_eq!(r.labels, fine);
        assert_eq!(r.coarse.unwrap(), coarse);
        assert_eq!(r.pixels, pixels);
    }

    #[test]
    fn rejects_truncated_and_bad_labels() {
        let (pixels, labels) = sample(2);
        let mut buf = Vec::new();
        write_records(&mut buf, Variant::Cifar10, &pixels, &labels, None).unwrap();
        let err = parse_records(&buf[..buf.len() - 1], Variant::Cifar10, "f.bin").unwrap_err();
        assert!(err.to_string().contains("f.bin"), "{err}");
        assert!(err.to_string().contains("6145 bytes"), "{err}");
        buf[3073] = 10;
        let err = parse_records(&buf, Variant::Cifar10, "f.bin").unwrap_err();
        assert!(err.to_string().contains("record 1 has label 10"), "{err}");
        assert!(parse_records(&[], Variant::Cifar10, "f.bin").is_err());
    }
}
