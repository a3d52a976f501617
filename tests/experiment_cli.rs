//! `vog experiment` on a tiny synthetic configuration: every output, resuming, and a run
//! directory of another configuration.
mod common;
use common::{succeed, vog, vog_fails};
use serde_json::Value;

#[test]
fn runs_resumes_and_refuses_foreign_runs() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exp");
    let config = dir.path().join("exp.toml");
    let text = format!(
        r#"dataset = "synth"
data_dir = "data"
out = "{}"
device = "cpu"
label_noise = 0.1
train_subset = 200
test_subset = 100

[train]
epochs = 6
batch_size = 64
lr = 0.05
lr_milestones = [4]
lr_gamma = 0.1
momentum = 0.9
weight_decay = 5e-4
width = 4
augment = true
save_epochs = "paper"
seed = 1

[score]
stages = ["early", "late"]
splits = ["test", "train"]
targets = ["logit", "margin"]
batch_size = 64
"#,
        out.display()
    );
    std::fs::write(&config, &text).unwrap();
    // Killed while writing epoch 4's resume state, the experiment continues after epoch 3
    // when run again.
    let killed = std::process::Command::new(assert_cmd::cargo::cargo_bin("vog"))
        .args(["experiment", "--quiet"])
        .arg(&config)
        .env("VOG_TEST_DIE_WRITING", "resume/epoch-0004")
        .status()
        .unwrap();
    assert!(!killed.success());
    let o = succeed(vog().arg("experiment").arg(&config));
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert!(stderr.contains("after epoch 3 of 6"), "{stderr}");
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert!(
        stdout.contains("test  early (epochs [1, 2, 3])"),
        "{stdout}"
    );
    assert!(
        stdout.contains("train late  (epochs [4, 5, 6])"),
        "{stdout}"
    );

    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let stages = results["stages"].as_array().unwrap();
    assert_eq!(stages.len(), 4);
    let early_test = &stages[0];
    assert_eq!(
        (early_test["split"].as_str(), early_test["stage"].as_str()),
        (Some("test"), Some("early"))
    );
    assert!(early_test["evaluation"]["comparison"]["spearman"].is_number());
    assert_eq!(
        early_test["evaluation"]["splits"][0]["targets"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    let train_late = &stages[3];
    assert!(
        train_late["evaluation"]["splits"][0]["targets"][0]["memorization"]["auroc"].is_number()
    );
    assert_eq!(
        train_late["evaluation"]["leaderboards"][0]["question"],
        "memorization"
    );
    for s in ["test-early", "test-late", "train-early", "train-late"] {
        assert!(out.join("eval").join(s).join("eval.json").is_file(), "{s}");
    }
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    assert_eq!(html.matches("<h2>Evaluation of").count(), 4);

    // Re-running finds every step done and changes nothing.
    let manifest = std::fs::read(out.join("run/run.json")).unwrap();
    let scores = std::fs::read(out.join("run/scores-train-late.csv")).unwrap();
    std::fs::remove_file(out.join("run/scores-test-late.csv")).unwrap();
    let o = vog().arg("experiment").arg(&config).output().unwrap();
    assert!(o.status.success());
    let stderr = String::from_utf8(o.stderr).unwrap();
    assert!(stderr.contains("training: up to date"), "{stderr}");
    assert!(
        stderr.contains("scoring train late: up to date"),
        "{stderr}"
    );
    assert!(
        !stderr.contains("scoring test late: up to date"),
        "{stderr}"
    );
    assert!(out.join("run/scores-test-late.csv").is_file());
    assert_eq!(std::fs::read(out.join("run/run.json")).unwrap(), manifest);
    assert_eq!(
        std::fs::read(out.join("run/scores-train-late.csv")).unwrap(),
        scores
    );

    // The same output folder with another recipe is refused.
    std::fs::write(&config, text.replace("width = 4", "width = 2")).unwrap();
    let err = vog_fails(&["experiment", config.to_str().unwrap()]);
    assert!(
        err.contains("another configuration (hyper.width: 2 asked for, 4 in the run)"),
        "{err}"
    );
    std::fs::write(&config, text.replace("width = 4", "widht = 4")).unwrap();
    let err = vog_fails(&["experiment", config.to_str().unwrap()]);
    assert!(
        err.contains("invalid experiment") && err.contains("widht"),
        "{err}"
    );
}

/// The shipped as-run configuration, shortened to 4 epochs of a small CIFAR-format set on
/// the CPU: the authors' recipe recorded in the run, both protocols scored, the report's
/// first card comparing them, every file verified.
#[test]
fn as_run_config_scores_both_protocols() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    succeed(
        vog()
            .args(["data", "synth", "--train", "300", "--test", "100", "--out"])
            .arg(&data),
    );
    let out = dir.path().join("exp");
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("configs/paper-cifar10-noise20-as-run.toml");
    succeed(
        vog()
            .arg("experiment")
            .arg(&config)
            .args([
                "--epochs", "4", "--width", "4", "--device", "cpu", "--quiet",
            ])
            .arg("--data-dir")
            .arg(&data)
            .arg("--out")
            .arg(&out),
    );
    let run = out.join("run");
    let m: Value = serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    let hyper = &m["config"]["hyper"];
    assert_eq!(
        (&hyper["lr_step"], &hyper["shuffle"], &hyper["batch_size"]),
        (&Value::from("batch"), &Value::from(false), &Value::from(50))
    );
    assert_eq!(m["captured"]["epochs"], serde_json::json!([1, 4]));
    // 300 images in batches of 50: 24 steps, all before the first milestone (step 150).
    assert!(m["epochs"]
        .as_array()
        .unwrap()
        .iter()
        .all(|e| e["lr"] == 0.1));
    let results: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let stages: Vec<(String, String)> = results["stages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["split"].as_str().unwrap().into(),
                s["stage"].as_str().unwrap().into(),
            )
        })
        .collect();
    assert!(
        stages.contains(&("train".into(), "captured".into())),
        "{stages:?}"
    );
    assert!(
        !stages.contains(&("test".into(), "captured".into())),
        "{stages:?}"
    );
    let captured: Value =
        serde_json::from_slice(&std::fs::read(run.join("scores-train-captured.json")).unwrap())
            .unwrap();
    assert_eq!(captured["epochs"], serde_json::json!([1, 4]));
    assert!(captured["captured"]["protocol"]
        .as_str()
        .unwrap()
        .contains("of the batch just trained on (augmented as trained)"));
    let html = std::fs::read_to_string(out.join("report.html")).unwrap();
    let card = &html[html
        .find("Which protocol gives the paper's direction?")
        .expect("no protocol card")..];
    let card = &card[..card.find("</table>").unwrap()];
    for row in [
        "memorization (shuffled training labels)</td><td>captured in epochs [1, 4] (scores-train-captured.csv)",
        "memorization (shuffled training labels)</td><td>checkpoints [1, 2, 3, 4] (scores-train-all.csv)",
        "test difficulty (misclassified test examples)</td><td>checkpoints",
    ] {
        assert!(card.contains(row), "{row} not in {card}");
    }
    succeed(vog().arg("verify").arg(&run));
}

/// Issue 35 item 3: a `[hardness]` file trains a clean run and one run per kind, fraction
/// and seed, and gathers one matrix per stage across them; run again, it trains nothing.
#[test]
fn a_hardness_suite_gathers_one_matrix() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("suite");
    let config = dir.path().join("suite.toml");
    let text = format!(
        r#"dataset = "synth"
data_dir = "data"
out = "{}"
device = "cpu"
train_subset = 200
test_subset = 40

[hardness]
kinds = ["zoom", "uniform"]
fractions = [0.1]
seeds = [0, 1]

[train]
epochs = 3
batch_size = 64
lr = 0.05
lr_milestones = [2]
lr_gamma = 0.1
momentum = 0.9
weight_decay = 5e-4
width = 2
augment = true
save_epochs = "all"
seed = 0

[score]
stages = ["all"]
splits = ["train"]
targets = ["logit", "logprob"]
batch_size = 64
"#,
        out.display()
    );
    std::fs::write(&config, &text).unwrap();
    let o = succeed(vog().args(["experiment", "--quiet"]).arg(&config));
    let stdout = String::from_utf8(o.stdout).unwrap();
    assert!(
        stdout.contains("== stage all: which score finds which kind (6 runs) =="),
        "{stdout}"
    );
    assert!(stdout.contains("zoom 10%: "), "{stdout}");
    let mut runs: Vec<String> = std::fs::read_dir(&out)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("seed"))
        .collect();
    runs.sort();
    assert_eq!(
        runs,
        [
            "clean-seed0",
            "clean-seed1",
            "uniform-0.1-seed0",
            "uniform-0.1-seed1",
            "zoom-0.1-seed0",
            "zoom-0.1-seed1"
        ]
    );
    // Each run plants its one kind with its own seed.
    let manifest = |name: &str| -> Value {
        serde_json::from_slice(&std::fs::read(out.join(name).join("run/run.json")).unwrap())
            .unwrap()
    };
    assert_eq!(manifest("zoom-0.1-seed1")["config"]["plant"], "zoom:0.1");
    assert_eq!(manifest("zoom-0.1-seed1")["config"]["hyper"]["seed"], 1);
    assert!(manifest("clean-seed0")["config"]["plant"].is_null());
    // The matrix: a column per kind and fraction over both seeds, 20 planted in each run.
    let csv = std::fs::read_to_string(out.join("matrix-all.csv")).unwrap();
    assert!(csv.contains("\nzoom 10%,vog,true,"), "{csv}");
    assert!(csv.contains("\nuniform 10%,vog_logprob,true,"), "{csv}");
    let zoom_vog = csv
        .lines()
        .find(|l| l.starts_with("zoom 10%,vog,"))
        .unwrap();
    assert!(
        zoom_vog.contains(",2,40,"),
        "two runs, 20 planted in each: {zoom_vog}"
    );
    let results: Value =
        serde_json::from_slice(&std::fs::read(out.join("results.json")).unwrap()).unwrap();
    assert_eq!(results["runs"].as_array().unwrap().len(), 6);
    let html = std::fs::read_to_string(out.join("hardness.html")).unwrap();
    assert!(
        html.contains("<meta name=\"generator\" content=\"vog\">")
            && html.contains("uniform-0.1-seed1")
    );
    // Again: every run is up to date, the same matrix.
    let before = std::fs::metadata(out.join("zoom-0.1-seed0/run/run.json"))
        .unwrap()
        .modified()
        .unwrap();
    succeed(vog().args(["experiment", "--quiet"]).arg(&config));
    let after = std::fs::metadata(out.join("zoom-0.1-seed0/run/run.json"))
        .unwrap()
        .modified()
        .unwrap();
    assert_eq!(before, after, "nothing trained again");
    assert_eq!(
        std::fs::read_to_string(out.join("matrix-all.csv")).unwrap(),
        csv
    );
    // Two ways of making labels wrong at once are refused before anything is written.
    let both = dir.path().join("both.toml");
    std::fs::write(
        &both,
        text.replace("test_subset = 40", "test_subset = 40\nlabel_noise = 0.1")
            .replace(
                &out.display().to_string(),
                &dir.path().join("none").display().to_string(),
            ),
    )
    .unwrap();
    let err = common::vog_fails(&["experiment", both.to_str().unwrap()]);
    assert!(err.contains("sets label_noise and [hardness]"), "{err}");
    assert!(!dir.path().join("none").exists());
}

/// The suite's config for `kinds` with a `[features]` table `features`, writing into `out`.
fn suite_with_features(out: &std::path::Path, features: &str) -> String {
    format!(
        r#"dataset = "synth"
data_dir = "data"
out = "{}"
device = "cpu"
train_subset = 200
test_subset = 40

[hardness]
kinds = ["uniform"]
fractions = [0.1]
seeds = [0]

[features]
{features}

[train]
epochs = 2
batch_size = 64
lr = 0.05
lr_milestones = [2]
lr_gamma = 0.1
momentum = 0.9
weight_decay = 5e-4
width = 2
augment = false
save_epochs = "all"
seed = 0

[score]
stages = ["all"]
splits = ["both"]
targets = ["logit"]
batch_size = 64
"#,
        out.display()
    )
}

fn modified(path: &std::path::Path) -> std::time::SystemTime {
    std::fs::metadata(path).unwrap().modified().unwrap()
}

/// `[features]`: every run of a suite is embedded and cross-fitted on its features after
/// training, so the matrix ranks `oof_prob`, `label_issue` and `outlier` per planted kind;
/// run again, nothing is redone; other folds redo the cross-fitting and the scores only.
#[test]
fn a_suite_with_features_ranks_the_out_of_sample_flags() {
    let dir = tempfile::tempdir().unwrap();
    let backbone = dir.path().join("backbone");
    succeed(
        vog()
            .args([
                "train",
                "--dataset",
                "synth",
                "--train-subset",
                "300",
                "--test-subset",
                "40",
                "--width",
                "2",
                "--epochs",
                "2",
                // Other synthetic images than the suite's (seed 0): a backbone that never
                // saw the audited images, so nothing is warned of.
                "--seed",
                "1",
                "--quiet",
                "--out",
            ])
            .arg(&backbone),
    );
    let out = dir.path().join("suite");
    let config = dir.path().join("suite.toml");
    let features = format!("backbone = \"{}\"\nfolds = 2", backbone.display());
    std::fs::write(&config, suite_with_features(&out, &features)).unwrap();
    let o = succeed(vog().args(["experiment", "--quiet"]).arg(&config));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!err.contains("warning"), "{err}");
    let run = out.join("uniform-0.1-seed0");
    let probs: Value =
        serde_json::from_slice(&std::fs::read(run.join("run/crossval/probs.json")).unwrap())
            .unwrap();
    assert_eq!(probs["folds"], 2);
    assert!(probs["features"]["source"].to_string().contains("backbone"));
    let csv = std::fs::read_to_string(out.join("matrix-all.csv")).unwrap();
    for score in ["oof_prob", "label_issue", "outlier"] {
        assert!(
            csv.lines()
                .any(|l| l.starts_with(&format!("uniform 10%,{score},"))),
            "no {score} row in the matrix:\n{csv}"
        );
    }
    let page = std::fs::read_to_string(out.join("hardness.html")).unwrap();
    assert!(
        page.contains("logistic regression cross-fitted in 2 folds on the features of the vog run"),
        "the page says where oof_* came from"
    );
    let scores = run.join("run/scores-both-all.csv");
    let header = std::fs::read_to_string(&scores).unwrap();
    let header = header.lines().next().unwrap();
    assert!(
        header.contains("oof_prob") && header.contains("outlier"),
        "{header}"
    );
    succeed(vog().arg("verify").arg(run.join("run")));
    // Again: the features, the cross-fitting and the scores are up to date.
    let (feats, fitted, scored) = (
        modified(&run.join("features.safetensors")),
        modified(&run.join("run/crossval/probs.json")),
        modified(&scores),
    );
    succeed(vog().args(["experiment", "--quiet"]).arg(&config));
    assert_eq!(feats, modified(&run.join("features.safetensors")));
    assert_eq!(fitted, modified(&run.join("run/crossval/probs.json")));
    assert_eq!(scored, modified(&scores));
    // Other folds: the same features, cross-fitted and scored again.
    let features = format!("backbone = \"{}\"\nfolds = 3", backbone.display());
    std::fs::write(&config, suite_with_features(&out, &features)).unwrap();
    succeed(vog().args(["experiment", "--quiet"]).arg(&config));
    assert_eq!(feats, modified(&run.join("features.safetensors")));
    assert_ne!(scored, modified(&scores));
    let probs: Value =
        serde_json::from_slice(&std::fs::read(run.join("run/crossval/probs.json")).unwrap())
            .unwrap();
    assert_eq!(probs["folds"], 3);
    succeed(vog().arg("verify").arg(run.join("run")));
    // A backbone with preprocessing is refused before anything is written.
    let none = dir.path().join("none");
    let bad = format!(
        "backbone = \"{}\"\nnormalize = \"imagenet\"",
        backbone.display()
    );
    std::fs::write(&config, suite_with_features(&none, &bad)).unwrap();
    let err = vog_fails(&["experiment", config.to_str().unwrap()]);
    assert!(err.contains("[features] normalize in"), "{err}");
    assert!(!none.exists());
}

/// `[features]` never replaces fold models that `vog crossval` trained on the run.
#[test]
fn features_leave_retrained_folds_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("exp");
    let config = dir.path().join("exp.toml");
    let plain = suite_with_features(&out, "")
        .replace(
            "[hardness]\nkinds = [\"uniform\"]\nfractions = [0.1]\nseeds = [0]\n",
            "",
        )
        .replace("[features]\n", "");
    std::fs::write(&config, &plain).unwrap();
    succeed(vog().args(["experiment", "--quiet"]).arg(&config));
    let run = out.join("run");
    succeed(
        vog()
            .args(["crossval", "--folds", "2", "--quiet", "--run"])
            .arg(&run),
    );
    let probs = std::fs::read(run.join("crossval/probs.csv")).unwrap();
    let features = format!("[features]\nbackbone = \"{}\"", run.display());
    std::fs::write(&config, format!("{plain}\n{features}\n")).unwrap();
    let err = vog_fails(&["experiment", "--quiet", config.to_str().unwrap()]);
    assert!(
        err.contains("holds fold models that vog crossval trained; [features] would replace"),
        "{err}"
    );
    assert_eq!(
        probs,
        std::fs::read(run.join("crossval/probs.csv")).unwrap()
    );
    assert!(!out.join("features.safetensors").exists());
}
