//! The PyTorch oracle: `scripts/reference_vog.py` recomputes VoG with an independent
//! PyTorch ResNet-18 from the same checkpoints, without streaming; `vog score` must agree
//! on every example within 1e-4 relative, and the rankings must agree.
mod common;
use common::{spearman, vog};
use std::path::{Path, PathBuf};
use std::process::Command;

fn read(path: &Path) -> Vec<csv::StringRecord> {
    csv::Reader::from_path(path)
        .unwrap()
        .records()
        .map(Result::unwrap)
        .collect()
}

#[test]
fn vog_matches_pytorch() {
    let python = std::env::var("VOG_PYTHON").expect(
        "VOG_PYTHON is unset: run the tests through scripts/test.sh (it sources scripts/env.sh)",
    );
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::synth_cifar(&data, 200, 120, 5);
    let run = dir.path().join("run");
    vog()
        .args(["train", "--dataset", "cifar10", "--data-dir"])
        .arg(&data)
        .args([
            "--width",
            "8",
            "--epochs",
            "4",
            "--save-epochs",
            "all",
            "--label-noise",
            "0.2",
        ])
        .args(["--device", "cpu", "--quiet", "--out"])
        .arg(&run)
        .assert()
        .success();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference_vog.py");
    let variants: [&[&str]; 3] = [
        &["--target", "logit,prob,logprob,margin"],
        &[
            "--target",
            "logit",
            "--reduce",
            "official",
            "--channels",
            "all",
        ],
        &["--target", "prob", "--reduce", "cv", "--grad-norm", "unit"],
    ];
    for (v, flags) in variants.iter().enumerate() {
        let ours = dir.path().join(format!("ours{v}.csv"));
        let theirs = dir.path().join(format!("ref{v}.csv"));
        vog()
            .args([
                "score", "--split", "both", "--device", "cpu", "--quiet", "--run",
            ])
            .arg(&run)
            .args(*flags)
            .arg("--out")
            .arg(&ours)
            .assert()
            .success();
        let status = Command::new(&python)
            .arg(&script)
            .args(["--split", "both", "--run"])
            .arg(&run)
            .args(*flags)
            .arg("--out")
            .arg(&theirs)
            .status()
            .unwrap();
        assert!(status.success(), "reference script failed for {flags:?}");
        let (a, b) = (read(&ours), read(&theirs));
        assert_eq!(a.len(), 320);
        assert_eq!(a.len(), b.len());
        // The reference ends with loss, el2n and prob after the VoG pairs.
        let vog_end = b[0].len() - 3;
        let score_cols: Vec<usize> = (9..vog_end).step_by(2).collect();
        for (k, name) in ["loss", "el2n", "prob"].iter().enumerate() {
            let col = a[0].len() - 8 + k;
            for (ra, rb) in a.iter().zip(&b) {
                let (x, y): (f64, f64) =
                    (ra[col].parse().unwrap(), rb[vog_end + k].parse().unwrap());
                assert!(
                    (x - y).abs() <= 1e-5 * y.abs().max(1e-3),
                    "{name} of {}: {x} vs {y}",
                    &ra[0]
                );
            }
        }
        for &c in &score_cols {
            let mut xs = Vec::new();
            let mut ys = Vec::new();
            for (ra, rb) in a.iter().zip(&b) {
                for f in [0, 1, 2, 3, 5, 6, 7, 8] {
                    assert_eq!(ra.get(f), rb.get(f), "{flags:?} column {f} of {}", &ra[0]);
                }
                let (x, y): (f64, f64) = (ra[c].parse().unwrap(), rb[c].parse().unwrap());
                assert!(
                    (x - y).abs() <= 1e-4 * y.abs(),
                    "{flags:?} {}: {x} vs {y}",
                    &ra[0]
                );
                let (zx, zy): (f64, f64) = (ra[c + 1].parse().unwrap(), rb[c + 1].parse().unwrap());
                assert!(
                    (zx - zy).abs() <= 1e-4,
                    "{flags:?} {} z: {zx} vs {zy}",
                    &ra[0]
                );
                xs.push(x);
                ys.push(y);
            }
            let rho = spearman(&xs, &ys);
            assert!(rho >= 0.9999, "{flags:?}: Spearman {rho}");
        }
    }
}

/// `vog::optim::Sgd` against `torch.optim.SGD` (`scripts/reference_sgd.py`), its
/// multi-tensor (`foreach=True`) and per-tensor forms: the same small network, initial
/// parameters and batches, a learning-rate change half way; every parameter after every
/// step within 1e-6.
#[test]
fn sgd_matches_pytorch() {
    use tch::{Device, Kind, Tensor};
    use vog::optim::{Sgd, SgdConfig};
    let python = std::env::var("VOG_PYTHON").expect(
        "VOG_PYTHON is unset: run the tests through scripts/test.sh (it sources scripts/env.sh)",
    );
    tch::manual_seed(11);
    let (d, h, c, b, steps) = (6, 10, 4, 16, 6);
    let opts = (Kind::Float, Device::Cpu);
    let init: Vec<(String, Tensor)> = [
        ("w1", vec![h, d]),
        ("b1", vec![h]),
        ("w2", vec![c, h]),
        ("b2", vec![c]),
    ]
    .into_iter()
    .map(|(k, shape)| (k.to_string(), Tensor::randn(shape, opts) * 0.5))
    .collect();
    let mut input: Vec<(String, Tensor)> = init
        .iter()
        .map(|(k, v)| (k.clone(), v.shallow_clone()))
        .collect();
    for s in 0..steps {
        input.push((format!("x.{s}"), Tensor::randn([b, d], opts)));
        input.push((
            format!("y.{s}"),
            Tensor::randint(c, [b], (Kind::Int64, Device::Cpu)),
        ));
        let lr = if s < steps / 2 { 0.1 } else { 0.01 };
        input.push((format!("lr.{s}"), Tensor::from(lr)));
    }
    let input_map: std::collections::HashMap<String, Tensor> = input
        .iter()
        .map(|(k, v)| (k.clone(), v.shallow_clone()))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let in_path = dir.path().join("in.safetensors");
    Tensor::write_safetensors(&input, &in_path).unwrap();
    // torch.optim.SGD's multi-tensor implementation (foreach), which vog's step follows,
    // and its per-tensor loop.
    for (momentum, weight_decay, nesterov, foreach) in [
        (0.9, 5e-4, false, true),
        (0.9, 5e-4, true, true),
        (0.0, 0.0, false, true),
        (0.9, 5e-4, false, false),
    ] {
        let out_path = dir.path().join("out.safetensors");
        let mut cmd = Command::new(&python);
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference_sgd.py"))
            .arg(&in_path)
            .arg(&out_path)
            .args([
                "--momentum",
                &momentum.to_string(),
                "--weight-decay",
                &weight_decay.to_string(),
            ]);
        if nesterov {
            cmd.arg("--nesterov");
        }
        if foreach {
            cmd.arg("--foreach");
        }
        let status = cmd.status().unwrap();
        assert!(status.success(), "reference_sgd.py failed");
        let reference: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(&out_path)
                .unwrap()
                .into_iter()
                .collect();
        let params: Vec<(String, Tensor)> = init
            .iter()
            .map(|(k, v)| (k.clone(), v.copy().set_requires_grad(true)))
            .collect();
        let p = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n == k)
                .unwrap()
                .1
                .shallow_clone()
        };
        let mut sgd = Sgd::over(
            params
                .iter()
                .map(|(k, v)| (k.clone(), v.shallow_clone()))
                .collect(),
            SgdConfig {
                momentum,
                weight_decay,
                nesterov,
            },
        );
        let mut worst = 0f64;
        for s in 0..steps {
            let x = &input_map[&format!("x.{s}")];
            let y = &input_map[&format!("y.{s}")];
            let lr = input_map[&format!("lr.{s}")].double_value(&[]);
            let logits = x
                .linear(&p("w1"), Some(&p("b1")))
                .relu()
                .linear(&p("w2"), Some(&p("b2")));
            sgd.backward_step(&logits.cross_entropy_for_logits(y), lr);
            for k in ["w1", "b1", "w2", "b2"] {
                let diff = (p(k) - &reference[&format!("{k}.{s}")])
                    .abs()
                    .max()
                    .double_value(&[]);
                worst = worst.max(diff);
            }
        }
        eprintln!("SGD parity (momentum {momentum}, weight decay {weight_decay}, nesterov {nesterov}, torch foreach {foreach}): max |vog - torch| = {worst:e}");
        assert!(worst <= 1e-6, "max abs difference {worst}");
    }
}

/// cleanlab's flags and label-quality scores for each case of `cases.json` (a list of
/// {labels, probs}), as JSON. cleanlab breaks ties (equal fractional parts when it rounds
/// the calibrated joint, equal margins) in the order of numpy's default sort, which is not
/// stable and differs between machines (numpy sorts with AVX-512 where there is one);
/// here numpy sorts stably, the order vog uses.
const CLEANLAB: &str = r#"
import functools, json, sys, warnings
import numpy as np
np.argsort = functools.partial(np.argsort, kind="stable")
from cleanlab.filter import find_label_issues
from cleanlab.rank import get_label_quality_scores
warnings.simplefilter("ignore")
out = []
for case in json.load(open(sys.argv[1])):
    labels, probs = np.array(case["labels"]), np.array(case["probs"])
    out.append({
        "issues": find_label_issues(labels, probs, n_jobs=1).tolist(),
        "self_confidence": get_label_quality_scores(labels, probs, method="self_confidence").tolist(),
        "normalized_margin": get_label_quality_scores(labels, probs, method="normalized_margin").tolist(),
    })
print(json.dumps(out))
"#;

/// Seeded probability matrices with planted label errors: `n` examples of `k` classes,
/// classes in `faint` never predicted confidently, and some classes of one example.
fn cl_case(seed: u64, n: usize, k: usize, faint: &[usize]) -> (Vec<usize>, Vec<Vec<f64>>) {
    use rand::{Rng, SeedableRng};
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut labels = Vec::new();
    let mut probs = Vec::new();
    for i in 0..n {
        let truth = if i < k { i } else { rng.gen_range(0..k) };
        let mut p: Vec<f64> = (0..k).map(|_| rng.gen::<f64>().powi(3)).collect();
        if !faint.contains(&truth) {
            p[truth] += rng.gen_range(0.5..4.0);
        }
        let total: f64 = p.iter().sum();
        p.iter_mut().for_each(|x| *x /= total);
        // A fifth of the labels are wrong.
        let label = if rng.gen_bool(0.2) {
            rng.gen_range(0..k)
        } else {
            truth
        };
        labels.push(label);
        probs.push(p);
    }
    (labels, probs)
}

#[test]
fn confident_learning_matches_cleanlab() {
    let python = common::python();
    let cases = [
        cl_case(1, 300, 4, &[]),
        cl_case(2, 500, 10, &[]),
        cl_case(3, 200, 5, &[3]),
        cl_case(4, 80, 2, &[]),
        cl_case(5, 120, 6, &[0, 5]),
        cl_case(6, 12, 10, &[]),
    ];
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("cases.json");
    let json: Vec<serde_json::Value> = cases
        .iter()
        .map(|(l, p)| serde_json::json!({"labels": l, "probs": p}))
        .collect();
    std::fs::write(&input, serde_json::to_vec(&json).unwrap()).unwrap();
    let out = Command::new(&python)
        .arg("-c")
        .arg(CLEANLAB)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let oracle: Vec<serde_json::Value> = serde_json::from_slice(&out.stdout).unwrap();
    for (c, ((labels, probs), want)) in cases.iter().zip(&oracle).enumerate() {
        let issues = vog::confident::label_issues(labels, probs).unwrap();
        let want_issues: Vec<bool> = serde_json::from_value(want["issues"].clone()).unwrap();
        let differ: Vec<usize> = (0..issues.len())
            .filter(|&i| issues[i] != want_issues[i])
            .collect();
        assert!(
            differ.is_empty(),
            "case {c}: label issues differ at {differ:?}"
        );
        for (name, ours) in [
            (
                "self_confidence",
                vog::confident::self_confidence(labels, probs),
            ),
            (
                "normalized_margin",
                vog::confident::normalized_margin(labels, probs),
            ),
        ] {
            let theirs: Vec<f64> = serde_json::from_value(want[name].clone()).unwrap();
            let worst = ours
                .iter()
                .zip(&theirs)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0, f64::max);
            assert!(worst < 1e-9, "case {c}: {name} differs by {worst:e}");
        }
        let flagged = issues.iter().filter(|&&x| x).count();
        eprintln!(
            "confident learning case {c}: {flagged} of {} flagged, as cleanlab",
            labels.len()
        );
    }
}

/// `lr_step = "batch"` against `torch.optim.lr_scheduler.MultiStepLR` stepped after every
/// optimizer step, as the authors' script did: the learning rate of every step of five
/// epochs of four batches, milestones 3, 7 and 13, identical; and a run's epoch records
/// (the rate in force at each epoch's end) are those of its last steps.
#[test]
fn lr_per_batch_matches_multisteplr() {
    let script = [
        "import torch",
        "p = torch.nn.Parameter(torch.zeros(1))",
        "opt = torch.optim.SGD([p], lr=0.1)",
        "s = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=[3, 7, 13], gamma=0.1)",
        "for _ in range(20):",
        "    print(repr(opt.param_groups[0]['lr']))",
        "    opt.step()",
        "    s.step()",
    ]
    .join("\n");
    let out = Command::new(common::python())
        .args(["-c", &script])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let torch: Vec<f64> = String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.parse().unwrap())
        .collect();
    let schedule = vog::epochs::LrSchedule {
        base: 0.1,
        milestones: vec![3, 7, 13],
        gamma: 0.1,
        per: vog::epochs::LrStep::Batch,
    };
    let ours: Vec<f64> = (1..=5).flat_map(|e| schedule.batch_lrs(e, 4)).collect();
    assert_eq!(ours.len(), torch.len());
    for (s, (a, b)) in ours.iter().zip(&torch).enumerate() {
        assert!((a - b).abs() <= 1e-15 * b, "step {s}: {a} vs torch {b}");
    }
    // 64 images in batches of 16: four steps an epoch, as above.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("batch.toml");
    std::fs::write(
        &config,
        "epochs = 5\nbatch_size = 16\nlr = 0.1\nlr_milestones = [3, 7, 13]\nlr_gamma = 0.1\n\
         lr_step = \"batch\"\nmomentum = 0.9\nweight_decay = 5e-4\nwidth = 2\naugment = true\n\
         save_epochs = \"5\"\nseed = 0\n",
    )
    .unwrap();
    let run = dir.path().join("run");
    common::train_synth(
        &run,
        &[
            "--train-subset",
            "64",
            "--test-subset",
            "10",
            "--config",
            config.to_str().unwrap(),
        ],
    );
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    for (e, record) in m["epochs"].as_array().unwrap().iter().enumerate() {
        let want = torch[4 * e + 3];
        let got = record["lr"].as_f64().unwrap();
        assert!(
            (got - want).abs() <= 1e-15 * want,
            "epoch {}: {got} vs {want}",
            e + 1
        );
    }
}

/// `vog score --captured` of `run` (logit and logprob) into `dir/ours.csv`.
fn score_captured(run: &Path, dir: &Path) -> PathBuf {
    let ours = dir.join("ours.csv");
    vog()
        .args(["score", "--captured", "--split", "train"])
        .args([
            "--target",
            "logit,logprob",
            "--device",
            "cpu",
            "--quiet",
            "--run",
        ])
        .arg(run)
        .arg("--out")
        .arg(&ours)
        .assert()
        .success();
    ours
}

/// Gradients captured during training against an independent recomputation in eager
/// PyTorch: with one optimizer step an epoch and no augmentation, the network just stepped
/// is the epoch's checkpoint and the batch trained on is the training set, so
/// `scripts/reference_vog.py` on the captured epochs' checkpoints must give the captured
/// VoG of every example (logit and logprob) to float tolerance.
#[test]
fn captured_gradients_match_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    common::synth_cifar(&data, 120, 20, 2);
    let run = dir.path().join("run");
    vog()
        .args(["train", "--dataset", "cifar10", "--data-dir"])
        .arg(&data)
        .args([
            "--width",
            "8",
            "--epochs",
            "4",
            "--batch-size",
            "120",
            "--lr",
            "0.05",
            "--no-augment",
            "--save-epochs",
            "all",
            "--capture-epochs",
            "1,2,4",
            "--capture-targets",
            "logit,logprob",
            "--label-noise",
            "0.2",
            "--lr-step",
            "batch",
            "--no-shuffle",
            "--device",
            "cpu",
            "--quiet",
            "--out",
        ])
        .arg(&run)
        .assert()
        .success();
    let ours = score_captured(&run, dir.path());
    let theirs = dir.path().join("ref.csv");
    let status = Command::new(common::python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference_vog.py"))
        .args([
            "--split",
            "train",
            "--epochs",
            "1,2,4",
            "--target",
            "logit,logprob",
        ])
        .arg("--run")
        .arg(&run)
        .arg("--out")
        .arg(&theirs)
        .status()
        .unwrap();
    assert!(status.success(), "reference_vog.py failed");
    assert_eq!(common::column(&ours, "id"), common::column(&theirs, "id"));
    for column in ["vog_raw", "vog_raw_logprob", "vog", "vog_logprob"] {
        let (a, b) = (
            common::column(&ours, column),
            common::column(&theirs, column),
        );
        assert_eq!(a.len(), 120);
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            let tolerance = if column.starts_with("vog_raw") {
                1e-4 * y.abs()
            } else {
                1e-3
            };
            assert!(
                (x - y).abs() <= tolerance,
                "{column} of example {i}: {x} vs {y}"
            );
        }
    }
}

/// Captured gradients on augmented batches against eager PyTorch: the run writes each
/// captured batch (`VOG_TEST_CAPTURE_DUMP`) and, with one optimizer step an epoch, the
/// network just stepped is the epoch's checkpoint; `scripts/reference_captured.py`
/// differentiates those very images at those checkpoints and reduces from the definition.
#[test]
fn captured_augmented_gradients_match_pytorch() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let dump = dir.path().join("dump");
    std::fs::create_dir_all(&dump).unwrap();
    vog()
        .args([
            "train",
            "--dataset",
            "synth",
            "--train-subset",
            "96",
            "--test-subset",
            "16",
        ])
        .args([
            "--width",
            "4",
            "--epochs",
            "3",
            "--batch-size",
            "96",
            "--lr",
            "0.05",
        ])
        .args(["--save-epochs", "all", "--capture-epochs", "all"])
        .args(["--capture-targets", "logit,logprob", "--label-noise", "0.2"])
        .args(["--device", "cpu", "--quiet", "--out"])
        .arg(&run)
        .env(vog::train::CAPTURE_DUMP_ENV, &dump)
        .assert()
        .success();
    let ours = score_captured(&run, dir.path());
    let theirs = dir.path().join("ref.csv");
    let status = Command::new(common::python())
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/reference_captured.py"))
        .arg(&run)
        .arg(&dump)
        .arg(&theirs)
        .args(["--target", "logit,logprob"])
        .status()
        .unwrap();
    assert!(status.success(), "reference_captured.py failed");
    let index = common::column(&ours, "index");
    assert_eq!(index, common::column(&theirs, "index"));
    for (mine, reference) in [("vog_raw", "logit"), ("vog_raw_logprob", "logprob")] {
        let (a, b) = (
            common::column(&ours, mine),
            common::column(&theirs, reference),
        );
        assert_eq!(a.len(), 96);
        for (i, (x, y)) in a.iter().zip(&b).enumerate() {
            let (x, y): (f64, f64) = (x.parse().unwrap(), y.parse().unwrap());
            assert!(
                (x - y).abs() <= 1e-4 * y.abs(),
                "{mine} of example {i}: {x} vs {y}"
            );
        }
    }
    // The augmentation was on: the checkpoints' VoG of the stored images differs.
    let clean = dir.path().join("clean.csv");
    vog()
        .args([
            "score", "--stage", "all", "--split", "train", "--device", "cpu", "--quiet",
        ])
        .arg("--run")
        .arg(&run)
        .arg("--out")
        .arg(&clean)
        .assert()
        .success();
    let differ = common::column(&ours, "vog_raw")
        .iter()
        .zip(common::column(&clean, "vog_raw"))
        .filter(|(a, b)| {
            let (a, b): (f64, f64) = (a.parse().unwrap(), b.parse().unwrap());
            (a - b).abs() > 1e-3 * b.abs()
        })
        .count();
    assert!(
        differ > 48,
        "only {differ} of 96 differ from the clean images' VoG"
    );
}
