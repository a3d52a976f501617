//! Output files: atomic writes (to a temporary file in the destination folder, then a
//! rename, so a killed process never leaves a truncated file that looks valid) and
//! file-safe names.
use anyhow::{Context, Result};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Writes `path` atomically with whatever `fill` writes.
pub fn write_with<F>(path: &Path, fill: F) -> Result<()>
where
    F: FnOnce(&mut dyn Write) -> Result<()>,
{
    let dir = parent_dir(path);
    let tmp = tempfile::Builder::new()
        .prefix(".vog-")
        .suffix(".tmp")
        .tempfile_in(&dir)
        .with_context(|| format!("cannot create a temporary file in '{}'", dir.display()))?;
    {
        let mut w = BufWriter::new(tmp.as_file());
        fill(&mut w).with_context(|| format!("cannot write '{}'", path.display()))?;
        w.flush()
            .with_context(|| format!("cannot write '{}'", path.display()))?;
    }
    tmp.as_file()
        .sync_all()
        .with_context(|| format!("cannot sync '{}'", path.display()))?;
    // Temporary files are created private (0600); the result is an ordinary output file.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = tmp
            .as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o644));
    }
    tmp.persist(path)
        .with_context(|| format!("cannot move the finished file to '{}'", path.display()))?;
    Ok(())
}

/// Refuses to replace what is at `path`, a path the person did not name (a default name, or
/// a file vog writes beside a named output), unless `ours` recognizes its first 4 KiB (empty
/// for a folder or an unreadable file) as what vog writes there; `why` says what that is.
/// Nothing there passes.
pub fn check_unnamed(path: &Path, ours: impl Fn(&[u8]) -> bool, why: &str) -> Result<()> {
    if std::fs::symlink_metadata(path).is_err() || ours(&head(path)) {
        return Ok(());
    }
    anyhow::bail!(
        "'{}' is there and vog did not write it ({why}); vog replaces only what you name: \
         move it away or name another output",
        path.display()
    )
}

/// The first 4 KiB of the file at `path`; empty for a folder, or what cannot be read.
pub fn head(path: &Path) -> Vec<u8> {
    use std::io::Read;
    let mut head = Vec::with_capacity(4096);
    let read = std::fs::File::open(path).and_then(|f| f.take(4096).read_to_end(&mut head));
    match read {
        Ok(_) => head,
        Err(_) => Vec::new(),
    }
}

/// Whether `head` contains `marker`.
pub fn holds(head: &[u8], marker: &str) -> bool {
    head.windows(marker.len()).any(|w| w == marker.as_bytes())
}

/// Writes `bytes` to `path` atomically.
pub fn write_bytes(path: &Path, bytes: &[u8]) -> Result<()> {
    write_with(path, |w| Ok(w.write_all(bytes)?))
}

/// Runs `save` on a temporary path that keeps `path`'s extension (some writers choose the
/// format by it), then renames the result onto `path`.
pub fn save_via_temp<F>(path: &Path, save: F) -> Result<()>
where
    F: FnOnce(&Path) -> Result<()>,
{
    let tmp = temp_sibling(path);
    let result = save(&tmp).and_then(|()| {
        die_here_if_asked(path, &tmp);
        sync(&tmp)?;
        std::fs::rename(&tmp, path)
            .with_context(|| format!("cannot move the finished file to '{}'", path.display()))
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

fn sync(path: &Path) -> Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync '{}'", path.display()))
}

/// The environment variable of the crash-test hook: when a file whose name contains its
/// value is saved, the process truncates the temporary file to half and kills itself with
/// SIGKILL before the rename, as a crash in the middle of the write would (used by
/// `tests/resume_cli.rs`; unset, it costs one lookup per saved file).
pub const DIE_WRITING_ENV: &str = "VOG_TEST_DIE_WRITING";

fn die_here_if_asked(path: &Path, tmp: &Path) {
    let Ok(pattern) = std::env::var(DIE_WRITING_ENV) else {
        return;
    };
    let name = path.file_name().unwrap_or_default().to_string_lossy();
    if pattern.is_empty() || !path.to_string_lossy().contains(&pattern) || name.is_empty() {
        return;
    }
    if let Ok(f) = std::fs::OpenOptions::new().write(true).open(tmp) {
        let half = f.metadata().map_or(0, |m| m.len() / 2);
        let _ = f.set_len(half);
    }
    // SAFETY: kill(2) on our own pid has no memory-safety preconditions.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGKILL);
    }
}

/// Removes the temporary files that writers killed mid-write left in `dir` (`.tmp-*` and
/// `.vog-*.tmp`); a missing `dir` has none.
pub fn remove_temporaries(dir: &Path) -> Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let ours =
            name.starts_with(".tmp-") || (name.starts_with(".vog-") && name.ends_with(".tmp"));
        if ours && entry.path().is_file() {
            std::fs::remove_file(entry.path())
                .with_context(|| format!("cannot remove '{}'", entry.path().display()))?;
        }
    }
    Ok(())
}

fn temp_sibling(path: &Path) -> PathBuf {
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
    let name = name.unwrap_or_default();
    parent_dir(path).join(format!(".tmp-{}-{name}", std::process::id()))
}

/// `name` with every character but ASCII letters, digits, `-` and `_` replaced by `_`, for
/// use inside a file name.
pub fn safe_file_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect()
}

/// The folder `path` lives in (`.` for a bare file name).
pub fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failed_write_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        let err = write_with(&path, |w| {
            w.write_all(b"partial")?;
            anyhow::bail!("boom")
        });
        assert!(err.is_err());
        assert!(!path.exists());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
    }

    /// What a full disk does to a write (a writer that fails part way, as ENOSPC makes it):
    /// the previous version stays, whole, and no temporary file is left.
    #[test]
    fn a_failing_writer_keeps_the_previous_version() {
        struct Full(usize);
        impl Write for Full {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                if self.0 < buf.len() {
                    return Err(std::io::Error::new(
                        std::io::ErrorKind::StorageFull,
                        "No space left on device",
                    ));
                }
                self.0 -= buf.len();
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.json");
        write_bytes(&path, b"old").unwrap();
        let err = write_with(&path, |w| {
            let mut disk = Full(4);
            w.write_all(b"new")?;
            disk.write_all(b"new content")?;
            Ok(())
        })
        .unwrap_err();
        assert!(format!("{err:#}").contains("No space left"), "{err:#}");
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn temporaries_of_killed_writers_are_removed() {
        let dir = tempfile::tempdir().unwrap();
        for name in [".tmp-12-epoch-0001.safetensors", ".vog-abc.tmp", "keep.csv"] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        remove_temporaries(dir.path()).unwrap();
        let left: Vec<_> = std::fs::read_dir(dir.path()).unwrap().flatten().collect();
        assert_eq!(left.len(), 1);
        remove_temporaries(&dir.path().join("missing")).unwrap();
    }

    #[test]
    fn writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        write_bytes(&path, b"one").unwrap();
        write_bytes(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
    }

    #[test]
    fn save_via_temp_keeps_extension_and_cleans_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.safetensors");
        save_via_temp(&path, |tmp| {
            assert_eq!(tmp.extension().unwrap(), "safetensors");
            std::fs::write(tmp, b"x")?;
            Ok(())
        })
        .unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"x");
        let bad = dir.path().join("n.safetensors");
        let r = save_via_temp(&bad, |tmp| {
            std::fs::write(tmp, b"x")?;
            anyhow::bail!("fail")
        });
        assert!(r.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
