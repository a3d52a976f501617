//! `vog embed` and `vog crossval --features` end to end on synthetic data: features from a
//! TorchScript model and from a run, fold probabilities against scikit-learn's
//! LogisticRegression, outlier scores against cleanlab's, and the bad input refused.
mod common;
use common::{column, python, succeed, train_synth, vog, vog_fails};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A finished synthetic run with 20% shuffled labels and two checkpoints.
fn run(dir: &Path, seed: &str) -> PathBuf {
    let run = dir.join(format!("run-{seed}"));
    train_synth(
        &run,
        &[
            "--train-subset",
            "300",
            "--test-subset",
            "100",
            "--width",
            "4",
            "--epochs",
            "2",
            "--save-epochs",
            "1,2",
            "--label-noise",
            "0.2",
            "--seed",
            seed,
        ],
    );
    run
}

/// A TorchScript model mapping images to `d` values (NaN with `nan`).
fn script(dir: &Path, name: &str, d: usize, nan: bool) -> PathBuf {
    let path = dir.join(name);
    let code = format!(
        "import torch\ntorch.manual_seed(0)\nclass F(torch.nn.Module):\n    def __init__(s):\n        super().__init__()\n        s.conv = torch.nn.Conv2d(3, {d}, 3)\n    def forward(s, x):\n        y = s.conv(x).relu().mean((2, 3))\n        return y * float('nan') if {} else y\ntorch.jit.save(torch.jit.trace(F().eval(), torch.zeros(2, 3, 32, 32)), '{}')",
        if nan { "True" } else { "False" },
        path.display()
    );
    let out = Command::new(python()).args(["-c", &code]).output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    path
}

fn embed(args: &[&str]) -> std::process::Output {
    succeed(
        vog()
            .args(["embed", "--device", "cpu", "--quiet"])
            .args(args),
    )
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `vog embed` of the run's images by its own network into `out`: fine for outliers and
/// near-duplicates, and warned of (its features carry the labels it trained with).
fn embed_own(run: &Path, out: &Path) {
    let o = embed(&["--run", s(run), "--backbone", s(run), "--out", s(out)]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("(the run embedded) trained on ") && err.contains("not out of sample"),
        "{err}"
    );
}

/// `vog crossval --run RUN --features FEATS --folds K --quiet` with `extra`; its output.
fn fit(run: &Path, feats: &Path, folds: &str, extra: &[&str]) -> std::process::Output {
    let args = [
        "crossval",
        "--quiet",
        "--run",
        s(run),
        "--features",
        s(feats),
        "--folds",
        folds,
    ];
    succeed(vog().args(args).args(extra))
}

/// `vog score --run RUN --split SPLIT --out OUT` on the CPU.
fn score(run: &Path, split: &str, out: &Path) {
    let args = [
        "score",
        "--device",
        "cpu",
        "--quiet",
        "--run",
        s(run),
        "--split",
        split,
    ];
    succeed(vog().args(args).arg("--out").arg(out));
}

#[test]
fn features_from_a_model_and_a_run_give_the_usual_columns() {
    let dir = tempfile::tempdir().unwrap();
    let run = run(dir.path(), "0");
    let feats = dir.path().join("f.safetensors");
    let model = script(dir.path(), "f.pt", 16, false);
    embed(&[
        "--run",
        s(&run),
        "--model",
        s(&model),
        "--normalize",
        "cifar10",
        "--resize",
        "40",
        "--crop",
        "36",
        "--out",
        s(&feats),
    ]);
    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("f.json")).unwrap()).unwrap();
    assert_eq!(side["dim"], 16);
    assert_eq!(
        side["preprocessing"]["input"],
        serde_json::json!([3, 36, 36])
    );
    assert_eq!(side["splits"][0]["ids"].as_array().unwrap().len(), 300);
    let out = fit(&run, &feats, "3", &[]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("logistic regression on the features of the model"),
        "{text}"
    );
    assert!(text.contains("(C = "), "{text}");
    // From the run's own penultimate layer: 8 x width values; replacing needs --overwrite.
    let own = dir.path().join("own.safetensors");
    embed_own(&run, &own);
    let err = vog_fails(&[
        "crossval",
        "--run",
        s(&run),
        "--folds",
        "3",
        "--features",
        s(&own),
    ]);
    assert!(
        err.contains("fitted on other features") && err.contains("--overwrite"),
        "{err}"
    );
    fit(&run, &own, "3", &["--overwrite"]);
    let scores = dir.path().join("scores.csv");
    score(&run, "both", &scores);
    let outlier = column(&scores, "outlier");
    assert_eq!(outlier.len(), 400);
    assert!(outlier.iter().all(|v| v.parse::<f64>().unwrap() >= 0.0));
    assert_eq!(
        column(&scores, "label_issue")
            .iter()
            .filter(|v| v.is_empty())
            .count(),
        100
    );
    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("scores.json")).unwrap()).unwrap();
    let models = side["out_of_sample_strength"]["fold_models"]
        .as_str()
        .unwrap();
    assert!(
        models.contains("logistic regression") && models.contains("run-0"),
        "{models}"
    );
    succeed(vog().args(["verify", s(&run)]));
    let report = dir.path().join("r.html");
    succeed(vog().args([
        "report",
        "--run",
        s(&run),
        "--scores",
        s(&scores),
        "--out",
        s(&report),
    ]));
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(
        html.contains("Near-duplicates (from features)")
            && html.contains("sets of near-duplicates")
    );
    // A file of crossval/ edited afterwards is named by vog verify.
    let dups = run.join("crossval/near-duplicates.csv");
    let mut text = std::fs::read_to_string(&dups).unwrap();
    text.push_str("99,train/x,train,a,a,0e0,false\n");
    std::fs::write(&dups, text).unwrap();
    let out = vog().args(["verify", s(&run)]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("near-duplicates.csv"));
    succeed(vog().args(["rank", s(&scores), "--column", "outlier", "--top", "3"]));
}

#[test]
fn bad_features_are_refused_on_one_line_and_write_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let run = run(dir.path(), "0");
    let other = run_other(dir.path());
    let f = |name: &str| dir.path().join(name);
    let logits = script(dir.path(), "logits.pt", 10, false);
    let err = vog_fails(&[
        "embed",
        "--run",
        s(&run),
        "--model",
        s(&logits),
        "--normalize",
        "none",
        "--out",
        s(&f("l.safetensors")),
        "--device",
        "cpu",
    ]);
    assert!(
        err.contains("returns 10 values per image") && err.contains("logits"),
        "{err}"
    );
    let nan = script(dir.path(), "nan.pt", 8, true);
    let err = vog_fails(&[
        "embed",
        "--run",
        s(&run),
        "--model",
        s(&nan),
        "--normalize",
        "none",
        "--out",
        s(&f("n.safetensors")),
        "--device",
        "cpu",
    ]);
    assert!(err.contains("not finite"), "{err}");
    assert!(!f("n.safetensors").exists() && !f("n.json").exists());
    let err = vog_fails(&[
        "embed",
        "--run",
        s(&run),
        "--backbone",
        s(&run),
        "--out",
        s(&f("x.npy")),
    ]);
    assert!(err.contains("must end in .safetensors"), "{err}");
    // The run's network takes its images as it trained: no preprocessing of ours.
    let out = f("p.safetensors");
    for flag in [
        &["--crop", "8"][..],
        &["--resize", "40"],
        &["--normalize", "none"],
        &["--mean", "0,0,0", "--std", "1,1,1"],
    ] {
        let mut args = vec![
            "embed",
            "--run",
            s(&run),
            "--backbone",
            s(&run),
            "--out",
            s(&out),
        ];
        args.extend_from_slice(flag);
        let err = vog_fails(&args);
        assert!(err.contains("cannot be used with"), "{flag:?}: {err}");
    }
    // Features of another dataset (another seed's images under the same ids).
    embed(&[
        "--run",
        s(&other),
        "--backbone",
        s(&run),
        "--out",
        s(&f("o.safetensors")),
    ]);
    let err = vog_fails(&[
        "crossval",
        "--run",
        s(&run),
        "--features",
        s(&f("o.safetensors")),
    ]);
    assert!(
        err.contains("features of another image") || err.contains("holds no features"),
        "{err}"
    );
    // Edited after embedding; sidecar missing; K beyond a class's count.
    embed(&[
        "--run",
        s(&run),
        "--backbone",
        s(&run),
        "--out",
        s(&f("g.safetensors")),
    ]);
    let mut bytes = std::fs::read(f("g.safetensors")).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(f("e.safetensors"), &bytes).unwrap();
    std::fs::copy(f("g.json"), f("e.json")).unwrap();
    let err = vog_fails(&[
        "crossval",
        "--run",
        s(&run),
        "--features",
        s(&f("e.safetensors")),
    ]);
    assert!(err.contains("changed since vog embed"), "{err}");
    std::fs::copy(f("g.safetensors"), f("m.safetensors")).unwrap();
    let err = vog_fails(&[
        "crossval",
        "--run",
        s(&run),
        "--features",
        s(&f("m.safetensors")),
    ]);
    assert!(
        err.contains("cannot read") && err.contains("m.json"),
        "{err}"
    );
    let err = vog_fails(&[
        "crossval",
        "--run",
        s(&run),
        "--features",
        s(&f("g.safetensors")),
        "--folds",
        "100",
    ]);
    assert!(err.contains("fewer than the 100 folds"), "{err}");
    assert!(
        !run.join("crossval").exists(),
        "nothing written by a refusal"
    );
}

/// A run on other images with the same ids (synthetic data of another seed).
fn run_other(dir: &Path) -> PathBuf {
    run(dir, "1")
}

/// Runs `code` with the test environment's Python and `args`; panics with its stderr.
fn oracle(code: &str, args: &[&Path]) -> String {
    let out = Command::new(python())
        .arg("-c")
        .arg(code)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The last line: cleanlab says what it fits on stdout.
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    text.lines().last().unwrap_or("").to_string()
}

/// The run's features in probs.csv's order, its labels, and probs.json, in Python.
const LOAD: &str = r#"
import sys, json, csv, numpy as np
from safetensors.numpy import load_file
feats, run = sys.argv[1], sys.argv[2]
side = json.load(open(feats[:-len('safetensors')] + 'json'))
tensors = load_file(feats)
row = {i: n for n, i in enumerate(side['splits'][0]['ids'])}
probs = list(csv.reader(open(run + '/crossval/probs.csv')))[1:]
X = tensors['train'][[row[r[0]] for r in probs]].astype(np.float64)
y = np.array([int(r[1]) for r in probs])
P = np.array([[float(v) for v in r[2:]] for r in probs])
meta = json.load(open(run + '/crossval/probs.json'))
"#;

#[test]
fn fold_probabilities_match_scikit_learn_and_outliers_match_cleanlab() {
    let dir = tempfile::tempdir().unwrap();
    let run = run(dir.path(), "0");
    let feats = dir.path().join("f.safetensors");
    let model = script(dir.path(), "f.pt", 12, false);
    embed(&[
        "--run",
        s(&run),
        "--model",
        s(&model),
        "--normalize",
        "cifar10",
        "--out",
        s(&feats),
    ]);
    fit(&run, &feats, "3", &[]);
    // Each fold: standardized on its training part, fitted with the C vog chose; the
    // largest difference of any held-out probability.
    let sklearn = format!(
        "{LOAD}
from sklearn.linear_model import LogisticRegression
fold = np.array(meta['features']['held_out_fold'])
worst = 0.0
for rec in meta['fold_records']:
    f, c = rec['fold'], rec['linear']['choice']['c']
    fit, held = fold != f, fold == f
    mu, sd = X[fit].mean(0), X[fit].std(0)
    sd[sd == 0] = 1
    m = LogisticRegression(C=c, tol=1e-12, max_iter=100000).fit((X[fit] - mu) / sd, y[fit])
    q = m.predict_proba((X[held] - mu) / sd)
    worst = max(worst, np.abs(q - P[held][:, m.classes_]).max())
print(worst)"
    );
    let worst: f64 = oracle(&sklearn, &[&feats, &run]).trim().parse().unwrap();
    assert!(
        worst < 1e-4,
        "largest difference from scikit-learn: {worst}"
    );
    let cleanlab = format!(
        "{LOAD}
from cleanlab.outlier import OutOfDistribution
ours = {{r[0]: float(r[2]) for r in list(csv.reader(open(run + '/crossval/neighbours.csv')))[1:]}}
d = np.array([ours[r[0]] for r in probs])
theirs = OutOfDistribution(params={{'k': 10}}).fit_score(features=X)
print(np.abs(np.exp(-d / max(np.median(d), 1e-12)) - theirs).max())"
    );
    let worst: f64 = oracle(&cleanlab, &[&feats, &run]).trim().parse().unwrap();
    assert!(
        worst < 1e-4,
        "largest difference from cleanlab's outlier score: {worst}"
    );
}

#[test]
fn export_features_makes_a_feature_model_of_a_classifier() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("tinynet.py"),
        "import torch\nclass Net(torch.nn.Module):\n    def __init__(s, classes):\n        super().__init__()\n        s.body = torch.nn.Sequential(torch.nn.Conv2d(3, 6, 3), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten())\n        s.fc = torch.nn.Linear(6, classes)\n    def forward(s, x):\n        return s.fc(s.body(x))\n",
    )
    .unwrap();
    let save = "import torch, tinynet\ntorch.save(tinynet.Net(10).state_dict(), 'w.pth')";
    let out = Command::new(python())
        .args(["-c", save])
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let script = std::env::current_dir()
        .unwrap()
        .join("scripts/export_features.py");
    let export = |head: &str| {
        Command::new(python())
            .arg(&script)
            .args([
                "--module",
                "tinynet:Net",
                "--kwargs",
                r#"{"classes": 10}"#,
                "--weights",
                "w.pth",
            ])
            .args(["--head", head, "--input-shape", "3,32,32", "--out", "f.pt"])
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let bad = export("classifier");
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("no attribute 'classifier'"));
    let good = export("fc");
    assert!(
        good.status.success(),
        "{}",
        String::from_utf8_lossy(&good.stderr)
    );
    assert!(String::from_utf8_lossy(&good.stdout).contains("6 values per image"));
    let run = run(dir.path(), "0");
    let feats = dir.path().join("f.safetensors");
    let model = dir.path().join("f.pt");
    embed(&[
        "--run",
        s(&run),
        "--model",
        s(&model),
        "--normalize",
        "imagenet",
        "--out",
        s(&feats),
    ]);
    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("f.json")).unwrap()).unwrap();
    assert_eq!(side["dim"], 6);
}

#[test]
fn copies_form_sets_in_the_scores_the_ranking_and_the_review() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("images");
    for (class, base) in [("a", 0u8), ("b", 100u8)] {
        for i in 0..12u8 {
            let seed = base + i * 7;
            common::write_image(
                &data.join(format!("train/{class}/{i:02}.png")),
                16,
                16,
                seed,
            );
            common::write_image(
                &data.join(format!("test/{class}/{i:02}.png")),
                16,
                16,
                seed + 3,
            );
        }
    }
    // A copy under the other class, and a test image trained on (a leak).
    std::fs::copy(data.join("train/a/00.png"), data.join("train/b/copy.png")).unwrap();
    std::fs::copy(data.join("test/b/05.png"), data.join("train/b/leak.png")).unwrap();
    let run = dir.path().join("run");
    succeed(
        vog()
            .args([
                "train",
                "--dataset",
                s(&data),
                "--width",
                "4",
                "--epochs",
                "2",
            ])
            .args([
                "--save-epochs",
                "1,2",
                "--device",
                "cpu",
                "--quiet",
                "--out",
                s(&run),
            ]),
    );
    let feats = dir.path().join("f.safetensors");
    embed_own(&run, &feats);
    fit(&run, &feats, "3", &[]);
    let sets = dir.path().join("run/crossval/near-duplicates.csv");
    let set_of = |id: &str| -> String {
        let ids = column(&sets, "id");
        let at = ids
            .iter()
            .position(|x| x == id)
            .unwrap_or_else(|| panic!("{id} in no set"));
        column(&sets, "set")[at].clone()
    };
    assert_eq!(set_of("train/a/00.png"), set_of("train/b/copy.png"));
    assert_eq!(set_of("test/b/05.png"), set_of("train/b/leak.png"));
    let exact = column(&sets, "exact");
    let ids = column(&sets, "id");
    let at = ids.iter().position(|x| x == "train/b/leak.png").unwrap();
    assert_eq!(exact[at], "true");
    let scores = dir.path().join("scores.csv");
    score(&run, "both", &scores);
    let ids = column(&scores, "id");
    let col = column(&scores, "near_duplicate_set");
    let in_scores = |id: &str| col[ids.iter().position(|x| x == id).unwrap()].clone();
    assert_eq!(in_scores("train/b/leak.png"), set_of("train/b/leak.png"));
    assert_eq!(in_scores("test/b/05.png"), set_of("train/b/leak.png"));
    let out = succeed(vog().args(["rank", s(&scores), "--column", "outlier", "--top", "40"]));
    assert!(String::from_utf8_lossy(&out.stdout).contains("duplicate set"));
    let page = dir.path().join("review.html");
    succeed(vog().args([
        "review",
        s(&scores),
        "--column",
        "outlier",
        "--top",
        "60",
        "--out",
        s(&page),
    ]));
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        html.contains(r#""twins":[{"id":"test/b/05.png""#),
        "the leak's twin is shown"
    );
}

#[test]
fn a_run_with_planted_hardness_takes_features_though_not_retraining() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("planted");
    train_synth(
        &run,
        &[
            "--train-subset",
            "300",
            "--test-subset",
            "100",
            "--width",
            "4",
            "--epochs",
            "2",
            "--save-epochs",
            "1,2",
            "--plant",
            "uniform:0.1",
        ],
    );
    let err = vog_fails(&["crossval", "--run", s(&run), "--folds", "3"]);
    assert!(err.contains("without --features"), "{err}");
    let feats = dir.path().join("f.safetensors");
    embed_own(&run, &feats);
    fit(&run, &feats, "3", &[]);
    let scores = dir.path().join("s.csv");
    score(&run, "train", &scores);
    assert_eq!(
        column(&scores, "planted")
            .iter()
            .filter(|k| *k == "uniform")
            .count(),
        30
    );
    assert_eq!(column(&scores, "outlier").len(), 300);
    let out = succeed(vog().args(["eval", s(&scores)]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("oof_prob") && text.contains("outlier"),
        "{text}"
    );
}
