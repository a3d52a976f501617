//! SHA-256 digests of files, as `run.json` records them for checkpoints and resume states
//! so that a truncated, modified or missing file is refused before use.
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::io::Read;
use std::path::Path;

/// Size and SHA-256 (lowercase hex) of a file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileDigest {
    pub size: u64,
    pub sha256: String,
}

/// The digest of the file at `path`, read in blocks.
pub fn of_file(path: &Path) -> Result<FileDigest> {
    let (size, hash) = hash_file::<Sha256>(path)?;
    Ok(FileDigest {
        size,
        sha256: hex(&hash),
    })
}

/// Size and hash `H` (SHA-256, MD5, ...) of the file at `path`, read in 1 MiB blocks.
pub fn hash_file<H: Digest>(path: &Path) -> Result<(u64, Vec<u8>)> {
    let mut file =
        std::fs::File::open(path).with_context(|| format!("cannot open '{}'", path.display()))?;
    let mut hasher = H::new();
    let mut buf = vec![0u8; 1 << 20];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .with_context(|| format!("cannot read '{}'", path.display()))?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hasher.finalize().to_vec()))
}

/// The digest of `bytes`.
pub fn of_bytes(bytes: &[u8]) -> FileDigest {
    FileDigest {
        size: bytes.len() as u64,
        sha256: hex(&Sha256::digest(bytes)),
    }
}

/// Lowercase hex of `bytes`.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Fails, naming `path`, unless the file exists with exactly the digest `want`.
pub fn verify(path: &Path, want: &FileDigest) -> Result<()> {
    if !path.exists() {
        bail!("'{}' is missing", path.display());
    }
    let got = of_file(path)?;
    if got.size != want.size {
        bail!(
            "'{}' has {} bytes where run.json recorded {} (truncated or replaced)",
            path.display(),
            got.size,
            want.size
        );
    }
    if got.sha256 != want.sha256 {
        bail!(
            "'{}' does not match the SHA-256 recorded for it (modified or corrupted)",
            path.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_digest_and_tamper_detection() {
        // SHA-256("abc"), FIPS 180-2 appendix B.1.
        let abc = of_bytes(b"abc");
        assert_eq!(
            abc.sha256,
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        std::fs::write(&p, b"abc").unwrap();
        assert_eq!(of_file(&p).unwrap(), abc);
        verify(&p, &abc).unwrap();
        std::fs::write(&p, b"abd").unwrap();
        let e = verify(&p, &abc).unwrap_err().to_string();
        assert!(e.contains("SHA-256") && e.contains("'"), "{e}");
        std::fs::write(&p, b"ab").unwrap();
        assert!(verify(&p, &abc)
            .unwrap_err()
            .to_string()
            .contains("2 bytes"));
        std::fs::remove_file(&p).unwrap();
        assert!(verify(&p, &abc)
            .unwrap_err()
            .to_string()
            .contains("missing"));
    }
}
