//! End to end: `vog train` on synthetic data, and the run directory it leaves.
mod common;
use common::{succeed, train_synth, vog, vog_fails};
use serde_json::Value;
use std::path::Path;

fn manifest(run: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(run.join("run.json")).unwrap()).unwrap()
}

#[test]
fn trains_synthetic_data_and_writes_a_complete_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let started = std::time::Instant::now();
    let out = succeed(
        vog()
            .args([
                "train",
                "--dataset",
                "synth",
                "--train-subset",
                "500",
                "--test-subset",
                "200",
            ])
            .args([
                "--width", "8", "--epochs", "3", "--device", "cpu", "--seed", "3",
            ])
            .args(["--label-noise", "0.1"])
            .arg("--out")
            .arg(&run),
    );
    assert!(started.elapsed().as_secs() < 60);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.lines().filter(|l| l.starts_with("epoch ")).count(),
        3,
        "{stderr}"
    );

    let m = manifest(&run);
    assert_eq!(m["format"], "vog-run/1");
    assert_eq!(m["complete"], true);
    assert_eq!(m["config"]["hyper"]["width"], 8);
    assert_eq!(m["config"]["hyper"]["momentum"], 0.9);
    assert_eq!(m["dataset"]["train_examples"], 500);
    assert_eq!(m["dataset"]["test_examples"], 200);
    assert_eq!(m["dataset"]["class_names"].as_array().unwrap().len(), 10);
    assert_eq!(m["saved_epochs"], serde_json::json!([1, 2, 3]));
    assert!(m["versions"]["libtorch"]
        .as_str()
        .unwrap()
        .starts_with("2.11.0"));
    assert_eq!(m["label_noise_file"], "label_noise.csv");
    let epochs = m["epochs"].as_array().unwrap();
    assert_eq!(epochs.len(), 3);
    for (i, e) in epochs.iter().enumerate() {
        assert_eq!(e["epoch"], i + 1);
        assert!(e["train_loss"].as_f64().unwrap().is_finite());
        assert!(e["test_accuracy"].as_f64().unwrap() >= 0.0);
        assert!(e["images_per_second"].as_f64().unwrap() > 0.0);
        let ckpt = run.join(e["checkpoint"].as_str().unwrap());
        assert!(
            ckpt.metadata().unwrap().len() > 100_000,
            "{}",
            ckpt.display()
        );
    }
    // The training loss falls on the learnable synthetic data.
    assert!(epochs[2]["train_loss"].as_f64() < epochs[0]["train_loss"].as_f64());

    let noise = std::fs::read_to_string(run.join("label_noise.csv")).unwrap();
    assert!(noise.starts_with("id,original_label,assigned_label\n"));
    assert_eq!(noise.lines().count(), 1 + 50);
    let cfg = std::fs::read_to_string(run.join("config.toml")).unwrap();
    assert!(cfg.contains("epochs = 3"), "{cfg}");
    // Nothing temporary is left behind (the lock file stays: removing it would let two
    // processes lock different files of the same name).
    for entry in walk(&run) {
        let name = Path::new(&entry)
            .file_name()
            .unwrap()
            .to_string_lossy()
            .into_owned();
        assert!(!name.starts_with('.') || name == ".vog.lock", "{entry}");
    }

    // The saved config reproduces the run's settings.
    let again = dir.path().join("again");
    vog()
        .args([
            "train",
            "--dataset",
            "synth",
            "--train-subset",
            "100",
            "--device",
            "cpu",
            "--quiet",
        ])
        .arg("--config")
        .arg(run.join("config.toml"))
        .args(["--epochs", "1", "--save-epochs", "1"])
        .arg("--out")
        .arg(&again)
        .assert()
        .success()
        .stderr("");
    assert_eq!(manifest(&again)["config"]["hyper"]["width"], 8);
}

fn walk(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p.display().to_string());
    }
    out
}

#[test]
fn same_seed_same_run() {
    let dir = tempfile::tempdir().unwrap();
    let train = |name: &str| {
        let run = dir.path().join(name);
        let args = [
            "--train-subset",
            "100",
            "--test-subset",
            "50",
            "--width",
            "4",
        ];
        train_synth(
            &run,
            &[&args[..], &["--epochs", "2", "--seed", "9"]].concat(),
        );
        let m = manifest(&run);
        (
            m["dataset"]["fingerprint"].clone(),
            m["epochs"][1]["train_loss"].clone(),
        )
    };
    assert_eq!(train("a"), train("b"));
}

#[test]
fn refuses_to_overwrite_a_run() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let args = |extra: &[&str]| {
        let mut v: Vec<String> = ["train", "--dataset", "synth", "--train-subset", "50"]
            .iter()
            .chain(
                [
                    "--width", "2", "--epochs", "1", "--device", "cpu", "--quiet", "--out",
                ]
                .iter(),
            )
            .map(|s| s.to_string())
            .collect();
        v.push(run.display().to_string());
        v.extend(extra.iter().map(|s| s.to_string()));
        v
    };
    vog().args(args(&[])).assert().success();
    let before = std::fs::read(run.join("run.json")).unwrap();
    let a = args(&[]);
    let err = vog_fails(&a.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("already holds a run") && err.contains("--overwrite"),
        "{err}"
    );
    assert_eq!(std::fs::read(run.join("run.json")).unwrap(), before);
    vog().args(args(&["--overwrite"])).assert().success();
}

#[test]
fn bad_flags_fail_before_touching_the_output() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let out = run.to_str().unwrap();
    let base = [
        "train",
        "--dataset",
        "synth",
        "--epochs",
        "5",
        "--width",
        "2",
        "--out",
        out,
    ];
    let cases: [(&[&str], &str); 7] = [
        (
            &["--seed", "18446744073709551615"],
            "--seed must be at most 9223372036854775807",
        ),
        (
            &["--save-epochs", "1,9"],
            "invalid --save-epochs '1,9': epoch 9 is outside 1..5",
        ),
        (&["--save-epochs", "every:x"], "invalid --save-epochs"),
        (&["--device", "tpu"], "unknown device 'tpu'"),
        (&["--device", "cuda"], "CUDA is not available"),
        (
            &["--train-subset", "0"],
            "--train-subset must be at least 1",
        ),
        (
            &["--label-noise", "1.5"],
            "--label-noise must be a fraction",
        ),
    ];
    for (extra, expected) in cases {
        if extra[1] == "cuda" && tch::Cuda::is_available() {
            continue;
        }
        let args: Vec<&str> = base.iter().chain(extra.iter()).copied().collect();
        let err = vog_fails(&args);
        assert!(err.contains(expected), "{extra:?}: {err}");
        assert!(!run.exists(), "{extra:?} left {}", run.display());
    }
    let err = vog_fails(&[
        "train",
        "--dataset",
        "synth",
        "--epochs",
        "99999999999",
        "--out",
        out,
    ]);
    assert!(err.contains("--epochs must be at most 100000"), "{err}");
    assert!(!run.exists());
    // A network that would need terabytes is refused before any allocation.
    let err = vog_fails(&[
        "train",
        "--dataset",
        "synth",
        "--width",
        "100000",
        "--device",
        "cpu",
        "--out",
        out,
    ]);
    assert!(
        err.contains("--width 100000") && err.contains("more than the"),
        "{err}"
    );
    assert!(!run.exists());

    // A diverging run stops at the first non-finite loss, naming the epoch, and leaves
    // nothing that blocks a rerun with --overwrite.
    let err = vog_fails(&[
        "train",
        "--dataset",
        "synth",
        "--train-subset",
        "100",
        "--test-subset",
        "20",
        "--width",
        "2",
        "--epochs",
        "2",
        "--lr",
        "1e30",
        "--device",
        "cpu",
        "--quiet",
        "--out",
        out,
    ]);
    assert!(
        err.contains("the training loss of epoch") && err.contains("diverged"),
        "{err}"
    );
    train_synth(
        &run,
        &[
            "--train-subset",
            "100",
            "--test-subset",
            "20",
            "--width",
            "2",
            "--epochs",
            "1",
            "--overwrite",
        ],
    );
    std::fs::remove_dir_all(&run).unwrap();
    let err = vog_fails(&["data", "synth", "--train", "0", "--out", out]);
    assert!(
        err.contains("--train and --test must each be at least 1"),
        "{err}"
    );
    assert!(!run.exists());

    let err = vog_fails(&["train", "--dataset", "/no/such/dir", "--out", out]);
    assert!(err.contains("'/no/such/dir'"), "{err}");
    let err = vog_fails(&[
        "train",
        "--dataset",
        "synth",
        "--train-subset",
        "99999",
        "--out",
        out,
    ]);
    assert!(
        err.contains("--train-subset 99999") && err.contains("only 2000"),
        "{err}"
    );
    assert!(!run.exists());
}
