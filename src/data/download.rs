//! `vog download`: fetches the official CIFAR binary archives, checks their MD5 and
//! extracts them in Rust. The archive is streamed to a temporary file and extracted into a
//! staging folder that is renamed into place only when complete, so a failed or corrupt
//! download leaves no half-extracted dataset behind.
use super::cifar::Variant;
use crate::progress::{Reporter, Task};
use anyhow::{bail, Context, Result};
use md5::{Digest, Md5};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

/// Address and MD5 of an official archive.
pub struct Archive {
    pub url: &'static str,
    pub md5: &'static str,
}

pub fn archive(variant: Variant) -> Archive {
    match variant {
        Variant::Cifar10 => Archive {
            url: "https://www.cs.toronto.edu/~kriz/cifar-10-binary.tar.gz",
            md5: "c32a1d4ab5d03f1284b67883e8d87530",
        },
        Variant::Cifar100 => Archive {
            url: "https://www.cs.toronto.edu/~kriz/cifar-100-binary.tar.gz",
            md5: "03b5dce01913d631647c71ecec9e9cb8",
        },
    }
}

/// Downloads and installs `variant` under `dir` unless it is already there; returns the
/// folder holding the binary files.
pub fn fetch(variant: Variant, dir: &Path, reporter: &dyn Reporter) -> Result<PathBuf> {
    let target = dir.join(variant.archive_folder());
    if let Ok(found) = super::cifar::locate(dir, variant) {
        reporter.info(&format!(
            "{} is already in '{}'",
            variant.archive_folder(),
            found.display()
        ));
        return Ok(found);
    }
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create folder '{}'", dir.display()))?;
    let a = archive(variant);
    let tmp = tempfile::Builder::new()
        .prefix(".vog-download-")
        .tempfile_in(dir)
        .with_context(|| format!("cannot create a temporary file in '{}'", dir.display()))?;
    download(a.url, tmp.as_file(), reporter)?;
    install_archive(tmp.path(), a.md5, variant, dir)?;
    Ok(target)
}

fn download(url: &str, mut out: &std::fs::File, reporter: &dyn Reporter) -> Result<()> {
    let response = ureq::get(url)
        .call()
        .with_context(|| format!("cannot download '{url}'"))?;
    let len = response
        .header("Content-Length")
        .and_then(|l| l.parse::<u64>().ok());
    let task = reporter.task("download", len.unwrap_or(0), "bytes");
    let mut reader = Counted {
        inner: response.into_reader(),
        task: task.as_ref(),
    };
    std::io::copy(&mut reader, &mut out).with_context(|| format!("download of '{url}' failed"))?;
    out.flush()?;
    Ok(())
}

/// A reader that advances a task by the bytes read.
struct Counted<'a, R> {
    inner: R,
    task: &'a dyn Task,
}

impl<R: Read> Read for Counted<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.task.advance(n as u64);
        Ok(n)
    }
}

/// Downloads the CIFAR dataset `spec` names when it is not in its folder yet; other
/// datasets are left alone.
pub fn ensure(spec: &super::DatasetSpec, reporter: &dyn Reporter) -> Result<()> {
    let (dir, variant) = match spec {
        super::DatasetSpec::Cifar10 { dir } => (dir, Variant::Cifar10),
        super::DatasetSpec::Cifar100 { dir } => (dir, Variant::Cifar100),
        _ => return Ok(()),
    };
    if super::cifar::locate(dir, variant).is_err() {
        fetch(variant, dir, reporter)?;
    }
    Ok(())
}

/// MD5 of a file, as lowercase hex.
pub fn file_md5(path: &Path) -> Result<String> {
    let mut f =
        std::fs::File::open(path).with_context(|| format!("cannot open '{}'", path.display()))?;
    let mut h = Md5::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f
            .read(&mut buf)
            .with_context(|| format!("cannot read '{}'", path.display()))?;
        if n == 0 {
            break;
        }
        h.update(&buf[..n]);
    }
    Ok(format!("{:x}", h.finalize()))
}

/// Checks `archive`'s MD5, extracts it into a staging folder inside `dir` and moves the
/// dataset folder into place. On any failure nothing is left in `dir`.
pub fn install_archive(archive: &Path, md5: &str, variant: Variant, dir: &Path) -> Result<PathBuf> {
    let got = file_md5(archive)?;
    if got != md5 {
        bail!(
            "'{}' has MD5 {got}, expected {md5}: the download is corrupt or incomplete",
            archive.display()
        );
    }
    let staging = tempfile::Builder::new()
        .prefix(".vog-extract-")
        .tempdir_in(dir)
        .with_context(|| format!("cannot create a staging folder in '{}'", dir.display()))?;
    let file = std::fs::File::open(archive)
        .with_context(|| format!("cannot open '{}'", archive.display()))?;
    tar::Archive::new(flate2::read::GzDecoder::new(file))
        .unpack(staging.path())
        .with_context(|| format!("cannot extract '{}'", archive.display()))?;
    let extracted = staging.path().join(variant.archive_folder());
    super::cifar::locate(&extracted, variant)
        .with_context(|| format!("'{}' does not hold the expected dataset", archive.display()))?;
    let target = dir.join(variant.archive_folder());
    std::fs::rename(&extracted, &target)
        .with_context(|| format!("cannot move the dataset to '{}'", target.display()))?;
    Ok(target)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn make_archive(dir: &Path) -> PathBuf {
        let path = dir.join("a.tar.gz");
        let gz = flate2::write::GzEncoder::new(
            std::fs::File::create(&path).unwrap(),
            flate2::Compression::fast(),
        );
        let mut tar = tar::Builder::new(gz);
        let add = |tar: &mut tar::Builder<_>, name: &str, data: &[u8]| {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            h.set_cksum();
            tar.append_data(&mut h, format!("cifar-10-batches-bin/{name}"), data)
                .unwrap();
        };
        add(&mut tar, "test_batch.bin", &[0u8; 3073]);
        add(&mut tar, "batches.meta.txt", b"a\n");
        tar.into_inner().unwrap().finish().unwrap();
        path
    }

    #[test]
    fn md5_mismatch_is_rejected_and_leaves_nothing() {
        let src = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let archive = make_archive(src.path());
        let err = install_archive(
            &archive,
            "00000000000000000000000000000000",
            Variant::Cifar10,
            dest.path(),
        )
        .unwrap_err();
        assert!(format!("{err:#}").contains("MD5"), "{err:#}");
        assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
    }

    #[test]
    fn verified_archive_is_installed() {
        let src = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let archive = make_archive(src.path());
        let md5 = file_md5(&archive).unwrap();
        let out = install_archive(&archive, &md5, Variant::Cifar10, dest.path()).unwrap();
        assert!(out.join("test_batch.bin").is_file());
        assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 1);
    }

    #[test]
    fn corrupt_archive_with_matching_md5_leaves_nothing() {
        let src = tempfile::tempdir().unwrap();
        let dest = tempfile::tempdir().unwrap();
        let archive = make_archive(src.path());
        let mut bytes = std::fs::read(&archive).unwrap();
        bytes.truncate(bytes.len() / 2);
        std::fs::write(&archive, &bytes).unwrap();
        let md5 = file_md5(&archive).unwrap();
        assert!(install_archive(&archive, &md5, Variant::Cifar10, dest.path()).is_err());
        assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 0);
    }
}
