//! `vog download`: fetches the official CIFAR binary archives, checks their MD5 and
//! extracts them in Rust. The archive grows in a partial file with a fixed name in the
//! target folder, so an interrupted download (a dropped connection, a killed process)
//! continues where it stopped with an HTTP Range request; transient failures are retried
//! with exponential backoff; a server that ignores Range makes the download start over
//! cleanly. The MD5 is checked before extracting, into a staging folder renamed into place
//! only when complete, so a failed or corrupt download leaves no half-extracted dataset.
use super::cifar::Variant;
use crate::progress::{Reporter, Task};
use anyhow::{bail, Context, Result};
use md5::Md5;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

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

/// How often and how patiently a download is retried.
#[derive(Debug, Clone, Copy)]
pub struct Retry {
    /// Attempts in all (the first included).
    pub attempts: u32,
    /// The wait after the first failure; it doubles after each further one.
    pub first_wait: Duration,
}

impl Retry {
    /// Five attempts, waiting 1, 2, 4 and 8 s between them.
    pub const DEFAULT: Retry = Retry {
        attempts: 5,
        first_wait: Duration::from_secs(1),
    };
}

/// Downloads and installs `variant` under `dir` unless it is already there; returns the
/// folder holding the binary files.
pub fn fetch(variant: Variant, dir: &Path, reporter: &dyn Reporter) -> Result<PathBuf> {
    if let Ok(found) = super::cifar::locate(dir, variant) {
        reporter.info(&format!(
            "{} is already in '{}'",
            variant.archive_folder(),
            found.display()
        ));
        return Ok(found);
    }
    let a = archive(variant);
    fetch_from(a.url, a.md5, variant, dir, Retry::DEFAULT, reporter)
}

/// [`fetch`] from `url`, whose content must have MD5 `md5`. A folder this call created is
/// removed again when the download fails with nothing to continue from.
pub fn fetch_from(
    url: &str,
    md5: &str,
    variant: Variant,
    dir: &Path,
    retry: Retry,
    reporter: &dyn Reporter,
) -> Result<PathBuf> {
    let created = first_missing(dir);
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create folder '{}'", dir.display()))?;
    let partial = dir.join(format!(".vog-partial-{}", variant.archive_folder()));
    let result = download_resuming(url, &partial, retry, reporter).and_then(|()| {
        let installed = install_archive(&partial, md5, variant, dir);
        if installed.is_err() {
            // A complete but wrong archive cannot be continued: the next try starts over.
            let _ = std::fs::remove_file(&partial);
        }
        installed
    });
    if let Some(top) = created.filter(|_| result.is_err() && !partial.exists()) {
        // Only folders this call created, and only while empty.
        for d in dir.ancestors().take_while(|d| d.starts_with(&top)) {
            let _ = std::fs::remove_dir(d);
        }
    }
    if result.is_ok() {
        let _ = std::fs::remove_file(&partial);
    }
    result
}

/// The outermost folder of `dir` (itself included) that does not exist yet.
fn first_missing(dir: &Path) -> Option<PathBuf> {
    dir.ancestors()
        .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
        .last()
        .map(Path::to_path_buf)
}

/// Why one attempt ended without the whole file.
enum Failure {
    /// Worth another attempt (a dropped connection, a 5xx, a timeout).
    Transient(anyhow::Error),
    /// Not (a 404, a name that does not resolve).
    Fatal(anyhow::Error),
}

/// Downloads `url` into `partial`, continuing what is there.
fn download_resuming(
    url: &str,
    partial: &Path,
    retry: Retry,
    reporter: &dyn Reporter,
) -> Result<()> {
    let mut wait = retry.first_wait;
    for attempt in 1..=retry.attempts {
        match attempt_once(url, partial, reporter) {
            Ok(()) => return Ok(()),
            Err(Failure::Fatal(e)) => return Err(e.context(format!("cannot download '{url}'"))),
            Err(Failure::Transient(e)) if attempt == retry.attempts => {
                bail!(
                    "download of '{url}' failed {} times (last: {e:#}); run the command again \
                     to continue it",
                    retry.attempts
                )
            }
            Err(Failure::Transient(e)) => {
                reporter.warn(&format!(
                    "download of '{url}': {e:#}; retrying in {:.1} s (attempt {}/{})",
                    wait.as_secs_f64(),
                    attempt + 1,
                    retry.attempts
                ));
                std::thread::sleep(wait);
                wait *= 2;
            }
        }
    }
    unreachable!("the last attempt returns")
}

/// One request: asks for the bytes after those in `partial` and appends them, or starts
/// the file over when the server sends the whole content.
fn attempt_once(url: &str, partial: &Path, reporter: &dyn Reporter) -> Result<(), Failure> {
    let have = std::fs::metadata(partial).map_or(0, |m| m.len());
    // A stalled connection counts as a dropped one; the whole download may take long.
    let agent = ureq::AgentBuilder::new()
        .timeout_connect(Duration::from_secs(30))
        .timeout_read(Duration::from_secs(60))
        .build();
    let mut request = agent.get(url);
    if have > 0 {
        request = request.set("Range", &format!("bytes={have}-"));
    }
    let response = match request.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(416, _)) if have > 0 => return Ok(()), // already whole
        Err(e) => return Err(failure(e)),
    };
    let resumed = response.status() == 206;
    let offset = if resumed { have } else { 0 };
    let remaining = response
        .header("Content-Length")
        .and_then(|l| l.parse::<u64>().ok());
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(resumed)
        .write(true)
        .truncate(!resumed)
        .open(partial)
        .map_err(|e| {
            Failure::Fatal(
                anyhow::Error::new(e).context(format!("cannot write '{}'", partial.display())),
            )
        })?;
    let task = reporter.task("download", offset + remaining.unwrap_or(0), "bytes");
    task.advance(offset);
    let mut reader = Counted {
        inner: response.into_reader(),
        task: task.as_ref(),
    };
    let mut out = std::io::BufWriter::new(file);
    let copied = std::io::copy(&mut reader, &mut out).and_then(|n| out.flush().map(|()| n));
    let copied = copied.map_err(|e| Failure::Transient(anyhow::anyhow!("broke off: {e}")))?;
    match remaining {
        Some(want) if copied < want => Err(Failure::Transient(anyhow::anyhow!(
            "broke off after {} of {} bytes",
            offset + copied,
            offset + want
        ))),
        _ => Ok(()),
    }
}

/// A failed request, as worth retrying or not.
fn failure(error: ureq::Error) -> Failure {
    match error {
        ureq::Error::Status(code, _) => {
            let e = anyhow::anyhow!("the server answered HTTP {code}");
            let transient = code >= 500 || code == 408 || code == 429;
            if transient {
                Failure::Transient(e)
            } else {
                Failure::Fatal(e)
            }
        }
        ureq::Error::Transport(t) => {
            let fatal = matches!(
                t.kind(),
                ureq::ErrorKind::Dns | ureq::ErrorKind::InvalidUrl | ureq::ErrorKind::UnknownScheme
            );
            let e = anyhow::anyhow!(
                "{}",
                t.message()
                    .map_or_else(|| t.kind().to_string(), str::to_string)
            );
            if fatal {
                Failure::Fatal(e)
            } else {
                Failure::Transient(e)
            }
        }
    }
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
    let (_, hash) = crate::digest::hash_file::<Md5>(path)?;
    Ok(crate::digest::hex(&hash))
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
    use std::io::BufRead;
    use std::sync::{Arc, Mutex};

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

    /// How the test server misbehaves.
    #[derive(Clone, Copy, PartialEq)]
    enum Mode {
        /// Honours Range.
        Normal,
        /// Closes the first connection half way through the body, then honours Range.
        DropOnce,
        /// Closes the first connection half way, and always sends the whole body (200).
        IgnoreRange,
    }

    /// A real HTTP/1.1 server on 127.0.0.1 serving `body`; returns its URL and the Range
    /// header of every request it answered (empty when none).
    fn serve(body: Vec<u8>, mode: Mode) -> (String, Arc<Mutex<Vec<String>>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/cifar.tar.gz", listener.local_addr().unwrap());
        let log = Arc::new(Mutex::new(Vec::new()));
        let seen = Arc::clone(&log);
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = std::io::BufReader::new(stream.try_clone().unwrap());
                let mut range = String::new();
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some(v) = line.to_ascii_lowercase().strip_prefix("range: bytes=") {
                        range = v.trim().trim_end_matches('-').to_string();
                    }
                }
                let first = {
                    let mut l = seen.lock().unwrap();
                    l.push(range.clone());
                    l.len() == 1
                };
                let from: usize = match mode {
                    Mode::IgnoreRange => 0,
                    _ => range.parse().unwrap_or(0),
                };
                let head = if from > 0 {
                    format!(
                        "HTTP/1.1 206 Partial Content\r\nContent-Length: {}\r\nContent-Range: bytes {from}-{}/{}\r\nConnection: close\r\n\r\n",
                        body.len() - from,
                        body.len() - 1,
                        body.len()
                    )
                } else {
                    format!(
                        "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                };
                let _ = stream.write_all(head.as_bytes());
                let end = if first && mode != Mode::Normal {
                    body.len() / 2
                } else {
                    body.len()
                };
                let _ = stream.write_all(&body[from..end]);
                let _ = stream.flush();
            }
        });
        (url, log)
    }

    const FAST: Retry = Retry {
        attempts: 3,
        first_wait: Duration::from_millis(10),
    };

    fn served_download(mode: Mode) -> (Vec<String>, tempfile::TempDir) {
        let src = tempfile::tempdir().unwrap();
        let archive = make_archive(src.path());
        let md5 = file_md5(&archive).unwrap();
        let (url, log) = serve(std::fs::read(&archive).unwrap(), mode);
        let dest = tempfile::tempdir().unwrap();
        let reporter = crate::progress::Captured::default();
        let out = fetch_from(&url, &md5, Variant::Cifar10, dest.path(), FAST, &reporter).unwrap();
        assert!(out.join("test_batch.bin").is_file());
        // The dataset folder only: no partial file, no staging folder.
        assert_eq!(std::fs::read_dir(dest.path()).unwrap().count(), 1);
        let requests = log.lock().unwrap().clone();
        (requests, dest)
    }

    #[test]
    fn a_plain_download_is_one_request() {
        let (requests, _dest) = served_download(Mode::Normal);
        assert_eq!(requests, vec![String::new()]);
    }

    #[test]
    fn a_dropped_connection_is_resumed_with_range() {
        let (requests, _dest) = served_download(Mode::DropOnce);
        assert_eq!(requests.len(), 2, "{requests:?}");
        assert!(requests[1].parse::<u64>().unwrap() > 0, "{requests:?}");
    }

    #[test]
    fn a_server_ignoring_range_makes_it_start_over() {
        let (requests, _dest) = served_download(Mode::IgnoreRange);
        assert_eq!(requests.len(), 2, "{requests:?}");
    }

    #[test]
    fn a_corrupt_download_extracts_nothing() {
        let src = tempfile::tempdir().unwrap();
        let archive = make_archive(src.path());
        let md5 = file_md5(&archive).unwrap();
        let mut bytes = std::fs::read(&archive).unwrap();
        let at = bytes.len() / 3;
        bytes[at] ^= 0xff;
        let (url, _) = serve(bytes, Mode::Normal);
        let parent = tempfile::tempdir().unwrap();
        let dest = parent.path().join("data");
        let reporter = crate::progress::Captured::default();
        let err = fetch_from(&url, &md5, Variant::Cifar10, &dest, FAST, &reporter).unwrap_err();
        let msg = format!("{err:#}");
        assert!(msg.contains("MD5") && !msg.contains('\n'), "{msg}");
        // The folder this call created is gone again.
        assert!(!dest.exists());
    }

    #[test]
    fn no_server_is_one_error_after_the_retries_and_no_folder() {
        // A port that was free a moment ago: connections are refused.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let parent = tempfile::tempdir().unwrap();
        let dest = parent.path().join("new").join("data");
        let reporter = crate::progress::Captured::default();
        let url = format!("http://127.0.0.1:{port}/x.tar.gz");
        let err = fetch_from(&url, "0", Variant::Cifar10, &dest, FAST, &reporter).unwrap_err();
        let msg = format!("{err:#}");
        assert!(
            msg.contains("failed 3 times") && !msg.contains('\n'),
            "{msg}"
        );
        assert_eq!(msg.matches(&url).count(), 1, "{msg}");
        assert_eq!(reporter.lines().len(), 2, "{:?}", reporter.lines());
        assert!(!parent.path().join("new").exists());
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
