//! Helpers shared by the end-to-end tests: the `vog` binary and small image folders.
#![allow(dead_code)]
use assert_cmd::Command;
use std::path::Path;

/// The Python of the test environment (torch and the oracles), which scripts/env.sh names.
pub fn python() -> String {
    std::env::var("VOG_PYTHON").expect(
        "VOG_PYTHON is unset: run the tests through scripts/test.sh (it sources scripts/env.sh)",
    )
}

pub fn vog() -> Command {
    let mut c = Command::cargo_bin("vog").unwrap();
    c.env_remove("RUST_BACKTRACE");
    c
}

/// Runs `cmd`, expects success (showing its stderr otherwise) and returns its output.
pub fn succeed(cmd: &mut Command) -> std::process::Output {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// The column `name` of the CSV (with a header) at `csv`.
pub fn column(csv: &Path, name: &str) -> Vec<String> {
    let mut r = csv::Reader::from_path(csv).unwrap();
    let i = r.headers().unwrap().iter().position(|h| h == name).unwrap();
    r.records().map(|x| x.unwrap()[i].to_string()).collect()
}

/// `vog data synth` (CIFAR-format binaries) of `train` and `test` images into `dir`.
pub fn synth_cifar(dir: &Path, train: usize, test: usize, seed: u64) {
    vog()
        .args([
            "data",
            "synth",
            "--train",
            &train.to_string(),
            "--test",
            &test.to_string(),
        ])
        .args(["--seed", &seed.to_string(), "--out"])
        .arg(dir)
        .assert()
        .success();
}

/// `vog train --dataset synth --device cpu --quiet` with `args`, into `run`.
pub fn train_synth(run: &Path, args: &[&str]) {
    let mut cmd = vog();
    cmd.args(["train", "--dataset", "synth", "--device", "cpu", "--quiet"]);
    succeed(cmd.args(args).arg("--out").arg(run));
}

/// Runs vog with `args`, expects failure, and returns its stderr.
pub fn vog_fails(args: &[&str]) -> String {
    let out = vog().args(args).output().unwrap();
    assert!(!out.status.success(), "expected failure: vog {args:?}");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(err.starts_with("error: "), "{err}");
    assert_eq!(
        err.trim_end().lines().count(),
        1,
        "one-line error expected: {err}"
    );
    err
}

/// Writes an RGB image of `w`x`h` whose pixels depend on `seed`, as PNG or JPEG by extension.
pub fn write_image(path: &Path, w: u32, h: u32, seed: u8) -> image::RgbImage {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([
            (x as u8).wrapping_mul(7).wrapping_add(seed),
            (y as u8).wrapping_mul(11),
            seed.wrapping_mul(3),
        ])
    });
    img.save(path).unwrap();
    img
}

/// Writes the sidecar `vog score` would write next to a hand-made scores CSV holding
/// `targets` (the first one's columns are the plain `vog_raw`/`vog`).
pub fn write_sidecar(csv: &Path, targets: &[&str]) {
    // As many examples as the CSV has rows, as a reader checks.
    let examples = std::fs::read_to_string(csv).map_or(0, |t| t.lines().count().saturating_sub(1));
    let meta = serde_json::json!({
        "format": vog::scores::SCORES_FORMAT,
        "run": "hand-made",
        "dataset_fingerprint": "hand-made",
        "dataset": {"kind": "synth", "train": 0, "test": 0, "seed": 0, "atypical": 0.0},
        "split": "both",
        "stage": "all",
        "epochs": [1, 2],
        "checkpoints": [],
        "targets": targets,
        "variant": {"reduce": "paper", "channels": "mean", "grad_norm": "none"},
        "examples": examples,
        "degenerate_classes": {},
        "device": "cpu",
        "seconds": 0.0,
        "versions": {"vog": "test", "tch": "test", "libtorch": "test"},
    });
    std::fs::write(
        vog::scores::sidecar_path(csv),
        serde_json::to_vec(&meta).unwrap(),
    )
    .unwrap();
}

/// Ranks of `v` (ties broken by position).
pub fn ranks(v: &[f64]) -> Vec<f64> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]));
    let mut r = vec![0.0; v.len()];
    for (rank, i) in idx.into_iter().enumerate() {
        r[i] = rank as f64;
    }
    r
}

/// Spearman's rank correlation of `a` and `b`.
pub fn spearman(a: &[f64], b: &[f64]) -> f64 {
    let (ra, rb) = (ranks(a), ranks(b));
    let n = a.len() as f64;
    let d2: f64 = ra.iter().zip(&rb).map(|(x, y)| (x - y).powi(2)).sum();
    1.0 - 6.0 * d2 / (n * (n * n - 1.0))
}
