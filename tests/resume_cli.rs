//! Resumable training, proven: a small CPU training is killed with SIGKILL at several
//! moments (two of them in the middle of writing a resume state and a checkpoint), resumed
//! each time, and must end with every checkpoint, dynamics record and epoch figure
//! byte-identical to an uninterrupted run's. Ctrl-C stops at an epoch's end with the
//! command that resumes; a second writer of the same run is refused with the lock holder's
//! pid; a tampered checkpoint or resume state is refused by name.
mod common;
use common::{succeed, vog};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const DIE_WRITING: &str = "VOG_TEST_DIE_WRITING";
const EPOCHS: usize = 10;

/// The training every test here runs: synthetic data, width 2, every epoch saved.
fn train_args(run: &Path) -> Vec<String> {
    train_args_for(run, EPOCHS)
}

fn train_args_for(run: &Path, epochs: usize) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--dataset",
        "synth",
        "--device",
        "cpu",
        "--width",
        "2",
        "--epochs",
        "--batch-size",
        "32",
        "--save-epochs",
        "all",
        "--train-subset",
        "300",
        "--test-subset",
        "100",
        "--label-noise",
        "0.1",
        "--seed",
        "3",
        "--out",
    ]
    .map(String::from)
    .to_vec();
    args.insert(8, epochs.to_string());
    args.push(run.display().to_string());
    args
}

fn bin() -> PathBuf {
    assert_cmd::cargo::cargo_bin("vog")
}

fn spawn(args: &[String], die_writing: Option<&str>) -> Child {
    let mut cmd = Command::new(bin());
    cmd.args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .env_remove(DIE_WRITING);
    if let Some(p) = die_writing {
        cmd.env(DIE_WRITING, p);
    }
    cmd.spawn().unwrap()
}

fn resume_args(run: &Path) -> Vec<String> {
    vec!["train".into(), "--resume".into(), run.display().to_string()]
}

fn was_killed(status: std::process::ExitStatus) -> bool {
    use std::os::unix::process::ExitStatusExt;
    status.signal() == Some(9)
}

/// Every file under `dir`, relative, with its bytes (the lock file and resume states,
/// which differ by design, left out).
fn contents(dir: &Path, sub: &str) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir.join(sub))
        .unwrap()
        .map(|e| e.unwrap().path())
        .map(|p| {
            let name = p.file_name().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    files.sort();
    files
}

fn epochs_json(run: &Path) -> serde_json::Value {
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    // Timings differ between runs; the learned figures may not.
    let strip = |e: &serde_json::Value| {
        let mut e = e.clone();
        let o = e.as_object_mut().unwrap();
        o.remove("seconds");
        o.remove("images_per_second");
        o.remove("save_seconds");
        e
    };
    serde_json::Value::Array(m["epochs"].as_array().unwrap().iter().map(strip).collect())
}

fn assert_same_run(a: &Path, b: &Path) {
    let mut subs = vec!["checkpoints", "dynamics"];
    if a.join("captured").is_dir() {
        subs.push("captured");
    }
    for sub in subs {
        let (x, y) = (contents(a, sub), contents(b, sub));
        assert_eq!(x.len(), y.len(), "{sub}: different file counts");
        for ((na, ba), (nb, bb)) in x.iter().zip(&y) {
            assert_eq!(na, nb);
            assert!(ba == bb, "{sub}/{na} differs from the uninterrupted run's");
        }
    }
    assert_eq!(epochs_json(a), epochs_json(b));
    assert_eq!(
        std::fs::read(a.join("label_noise.csv")).unwrap(),
        std::fs::read(b.join("label_noise.csv")).unwrap()
    );
}

fn finished_epochs(run: &Path) -> usize {
    std::fs::read(run.join("run.json"))
        .ok()
        .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
        .and_then(|m| m["epochs"].as_array().map(Vec::len))
        .unwrap_or(0)
}

#[test]
fn killed_and_resumed_training_is_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let reference = dir.path().join("reference");
    let started = Instant::now();
    succeed(vog().args(train_args(&reference)).arg("--quiet"));
    let full = started.elapsed();

    let run = dir.path().join("run");
    // Killed half way through writing the resume state of epoch 3, then through writing
    // the checkpoint of epoch 5: each leaves a truncated temporary file behind.
    let first = spawn(&train_args(&run), Some("resume/epoch-0003"))
        .wait_with_output()
        .unwrap();
    assert!(was_killed(first.status), "{:?}", first);
    assert_eq!(finished_epochs(&run), 2);
    let second = spawn(&resume_args(&run), Some("checkpoints/epoch-0005"))
        .wait_with_output()
        .unwrap();
    assert!(was_killed(second.status), "{:?}", second);
    assert_eq!(finished_epochs(&run), 4);

    // Then at seeded random moments of the remaining work: a few milliseconds after a
    // randomly chosen epoch has been committed.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let mut kills = 2;
    while finished_epochs(&run) < EPOCHS - 1 && kills < 6 {
        let target = (finished_epochs(&run) + rng.gen_range(1..=2)).min(EPOCHS - 1);
        let mut child = spawn(&resume_args(&run), None);
        let deadline = Instant::now() + Duration::from_secs(300);
        while finished_epochs(&run) < target && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::thread::sleep(Duration::from_millis(rng.gen_range(0..120)));
        let _ = child.kill();
        let status = child.wait().unwrap();
        kills += usize::from(was_killed(status));
    }
    if finished_epochs(&run) < EPOCHS {
        succeed(vog().args(resume_args(&run)).arg("--quiet"));
    }
    eprintln!("survived {kills} kills (training alone took {full:?})");
    assert!(kills >= 4, "only {kills} kills landed");
    assert_same_run(&reference, &run);
    // The killed writers' temporary files are gone.
    for sub in ["checkpoints", "resume"] {
        for (name, _) in contents(&run, sub) {
            assert!(!name.starts_with('.'), "{sub}/{name} left behind");
        }
    }
    succeed(vog().arg("verify").arg(&run));

    // Ctrl-C: stops at the end of an epoch, says how to resume, exits 130; resuming ends
    // with the same run again.
    let stopped = dir.path().join("stopped");
    let child = spawn(&train_args(&stopped), None);
    let deadline = Instant::now() + Duration::from_secs(120);
    while finished_epochs(&stopped) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(2));
    }
    unsafe {
        libc::kill(child.id() as i32, libc::SIGINT);
    }
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    if finished_epochs(&stopped) < EPOCHS {
        assert_eq!(out.status.code(), Some(130), "{err}");
        assert!(err.contains("vog train --resume"), "{err}");
        succeed(vog().args(resume_args(&stopped)).arg("--quiet"));
    }
    assert_same_run(&reference, &stopped);
}

/// The authors' protocol: the learning rate stepped per batch, no shuffling, gradients
/// captured in the first two and last two epochs. Killed while writing the captured
/// gradients of epoch 2, then while writing the resume state of epoch 5 (its gradients
/// captured, not yet saved), and resumed: the same run, captured statistics included.
#[test]
fn killed_during_capture_resumes_byte_identical() {
    let dir = tempfile::tempdir().unwrap();
    let args = |run: &Path| {
        let mut a = train_args_for(run, 6);
        a.extend(
            [
                "--lr-step",
                "batch",
                "--no-shuffle",
                "--capture-epochs",
                "first:2,last:2",
                "--capture-targets",
                "logit,logprob",
            ]
            .map(String::from),
        );
        a
    };
    let reference = dir.path().join("reference");
    succeed(vog().args(args(&reference)).arg("--quiet"));
    let run = dir.path().join("run");
    let first = spawn(&args(&run), Some("captured/epoch-0002"))
        .wait_with_output()
        .unwrap();
    assert!(was_killed(first.status), "{first:?}");
    assert_eq!(finished_epochs(&run), 1);
    let second = spawn(&resume_args(&run), Some("resume/epoch-0005"))
        .wait_with_output()
        .unwrap();
    assert!(was_killed(second.status), "{second:?}");
    assert_eq!(finished_epochs(&run), 4);
    succeed(vog().args(resume_args(&run)).arg("--quiet"));
    assert_same_run(&reference, &run);
    let captured = contents(&run, "captured");
    assert_eq!(captured.len(), 1, "only the last captured state is kept");
    assert_eq!(captured[0].0, "epoch-0006.safetensors");
    succeed(vog().arg("verify").arg(&run));
    // Scores from the captured gradients are the same too.
    let score = |r: &Path| {
        let out = r.join("s.csv");
        succeed(
            vog()
                .args(["score", "--quiet", "--captured", "--split", "train"])
                .args(["--target", "logit,logprob", "--run"])
                .arg(r)
                .arg("--out")
                .arg(&out),
        );
        std::fs::read(out).unwrap()
    };
    assert_eq!(score(&reference), score(&run));
}

#[test]
fn a_second_writer_is_refused_with_the_holders_pid() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let args = train_args_for(&run, 400);
    let mut first = spawn(&args, None);
    let deadline = Instant::now() + Duration::from_secs(120);
    while finished_epochs(&run) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    let out = vog().args(resume_args(&run)).output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    let mut over = args.clone();
    over.push("--overwrite".into());
    let out = vog().args(&over).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("another vog process"));
    first.kill().unwrap();
    first.wait().unwrap();
    // The OS released the killed holder's lock: resuming now works (and is stopped again).
    let mut again = spawn(&resume_args(&run), None);
    std::thread::sleep(Duration::from_millis(300));
    let _ = again.kill();
    let status = again.wait().unwrap();
    assert!(was_killed(status), "{status:?}");
}

#[test]
fn tampered_files_are_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let args = train_args_for(&run, 3);
    // Killed in epoch 3's resume state: epochs 1-2 committed, run unfinished.
    let out = spawn(&args, Some("resume/epoch-0003"))
        .wait_with_output()
        .unwrap();
    assert!(was_killed(out.status));
    let ckpt = run.join("checkpoints/epoch-0002.safetensors");
    let good = std::fs::read(&ckpt).unwrap();
    let mut bad = good.clone();
    let at = bad.len() - 100;
    bad[at] ^= 0x40;
    std::fs::write(&ckpt, &bad).unwrap();
    let out = vog().arg("verify").arg(&run).output().unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("epoch-0002.safetensors"), "{text}");
    assert!(text.contains("epoch-0001.safetensors"), "{text}");
    let err = common::vog_fails(&[
        "score",
        "--run",
        run.to_str().unwrap(),
        "--allow-incomplete",
    ]);
    assert!(err.contains("epoch-0002.safetensors"), "{err}");
    std::fs::write(&ckpt, &good).unwrap();

    let resume = run.join("resume/epoch-0002.safetensors");
    let state = std::fs::read(&resume).unwrap();
    std::fs::write(&resume, &state[..state.len() / 2]).unwrap();
    let err = common::vog_fails(&["train", "--resume", run.to_str().unwrap()]);
    assert!(err.contains("resume/epoch-0002.safetensors"), "{err}");
    std::fs::write(&resume, &state).unwrap();
    succeed(vog().args(resume_args(&run)).arg("--quiet"));
    let err = common::vog_fails(&["train", "--resume", run.to_str().unwrap(), "--lr", "0.5"]);
    assert!(err.contains("--lr"), "{err}");

    // A run from before digests (no "files" in run.json) with a NaN in a checkpoint: the
    // scorer refuses it by name instead of writing NaN scores.
    let manifest = run.join("run.json");
    let mut m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&manifest).unwrap()).unwrap();
    m.as_object_mut().unwrap().remove("files");
    std::fs::write(&manifest, serde_json::to_vec(&m).unwrap()).unwrap();
    let mut tensors = tch::Tensor::read_safetensors(&ckpt).unwrap();
    let (_, w) = tensors.iter_mut().find(|(k, _)| k == "fc.weight").unwrap();
    let _ = w.get(0).get(0).fill_(f64::NAN);
    tch::Tensor::write_safetensors(&tensors, &ckpt).unwrap();
    let err = common::vog_fails(&["score", "--run", run.to_str().unwrap()]);
    assert!(
        err.contains("epoch-0002.safetensors") && err.contains("non-finite"),
        "{err}"
    );
    assert!(!run.join("scores-test-all.csv").exists());
}

/// Whether the test may mount a small tmpfs (root on Linux).
fn mount_tmpfs(at: &Path, size: &str) -> bool {
    std::fs::create_dir_all(at).unwrap();
    Command::new("mount")
        .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
        .arg(at)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn a_full_disk_fails_in_one_line_and_keeps_the_last_state() {
    let dir = tempfile::tempdir().unwrap();
    let mnt = dir.path().join("small");
    if !mount_tmpfs(&mnt, "4m") {
        eprintln!("cannot mount a tmpfs here (not root?): the full-disk case is covered by atomic_file's unit test only");
        return;
    }
    struct Unmount(PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg(&self.0).status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let run = mnt.join("run");
    let args = train_args_for(&run, 3);
    let out = spawn(&args, Some("resume/epoch-0002"))
        .wait_with_output()
        .unwrap();
    assert!(was_killed(out.status));
    assert_eq!(finished_epochs(&run), 1);
    let manifest = std::fs::read(run.join("run.json")).unwrap();
    // Fill the disk to the last few bytes.
    let free = {
        let out = Command::new("df")
            .args(["--output=avail", "-B1"])
            .arg(&mnt)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .nth(1)
            .unwrap()
            .trim()
            .parse::<u64>()
            .unwrap()
    };
    std::fs::write(
        mnt.join("filler"),
        vec![0u8; free.saturating_sub(4096) as usize],
    )
    .unwrap_or(());
    let err = common::vog_fails(&["train", "--resume", run.to_str().unwrap(), "--quiet"]);
    assert!(
        err.contains("No space left") || err.contains("cannot"),
        "{err}"
    );
    assert_eq!(std::fs::read(run.join("run.json")).unwrap(), manifest);
    std::fs::remove_file(mnt.join("filler")).unwrap();
    succeed(vog().arg("verify").arg(&run));
    succeed(vog().args(resume_args(&run)).arg("--quiet"));
    assert_eq!(finished_epochs(&run), 3);
}

/// Mixed-precision training (bf16 autocast; fp16 with its loss scale, which the resume
/// state carries) killed while writing epoch 2's checkpoint and resumed: byte-identical to
/// an uninterrupted run.
#[test]
fn mixed_precision_training_resumes_byte_identical() {
    for precision in ["bf16", "fp16"] {
        let dir = tempfile::tempdir().unwrap();
        let (whole, killed) = (dir.path().join("whole"), dir.path().join("killed"));
        let with = |run: &Path| {
            let mut a = train_args_for(run, 3);
            a.extend(["--precision".to_string(), precision.to_string()]);
            a
        };
        assert!(spawn(&with(&whole), None).wait().unwrap().success());
        let status = spawn(&with(&killed), Some("epoch-0002.safetensors"))
            .wait()
            .unwrap();
        assert!(
            was_killed(status),
            "{precision}: the run was to die writing epoch 2"
        );
        let resumed = spawn(&resume_args(&killed), None)
            .wait_with_output()
            .unwrap();
        assert!(
            resumed.status.success(),
            "{precision}: {}",
            String::from_utf8_lossy(&resumed.stderr)
        );
        assert_same_run(&whole, &killed);
        let run: serde_json::Value =
            serde_json::from_slice(&std::fs::read(whole.join("run.json")).unwrap()).unwrap();
        assert_eq!(run["config"]["hyper"]["precision"], precision);
        let state = std::fs::read(whole.join(run["resume"]["file"].as_str().unwrap())).unwrap();
        let has_scale = state.windows(19).any(|w| w == b"momentum/loss_scale");
        assert_eq!(
            has_scale,
            precision == "fp16",
            "the loss scale is saved for fp16 only"
        );
    }
}
