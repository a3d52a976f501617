//! Regression tests of what a hostile try found (issue 33) and of the GPU promises a CPU can
//! check (issue 36), end to end on tiny synthetic runs.
mod common;
use common::{succeed, train_synth, vog, vog_fails};
use std::path::Path;

/// A tiny complete run: 40/10 synthetic images, width 2, 3 epochs, every epoch saved.
fn tiny_run(run: &Path, extra: &[&str]) {
    let mut args = vec![
        "--train-subset",
        "40",
        "--test-subset",
        "10",
        "--width",
        "2",
        "--epochs",
        "3",
        "--save-epochs",
        "all",
    ];
    args.extend(extra);
    train_synth(run, &args);
}

/// `vog train --quiet` of 40/10 synthetic images at width 2 with `extra`, into `out`, on
/// the default device (`extra` may name one).
fn tiny_train(out: &Path, extra: &[&str]) -> assert_cmd::Command {
    let mut cmd = vog();
    cmd.args([
        "train",
        "--dataset",
        "synth",
        "--quiet",
        "--train-subset",
        "40",
    ])
    .args(["--test-subset", "10", "--width", "2"])
    .args(extra)
    .arg("--out")
    .arg(out);
    cmd
}

fn stderr_of(cmd: &mut assert_cmd::Command) -> String {
    String::from_utf8_lossy(&succeed(cmd).stderr).into_owned()
}

/// Item 2: a row with more fields than its header is refused, naming the file, line and
/// counts, for ids and for relabels.
#[test]
fn ragged_rows_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    tiny_run(&run, &[]);
    let exclude = d.path().join("ex.csv");
    std::fs::write(&exclude, "id\ntrain/000001,train/000002\n").unwrap();
    let relabel = d.path().join("re.csv");
    std::fs::write(&relabel, "id,label\ntrain/000001,pattern1,extra\n").unwrap();
    let out = d.path().join("out");
    for (flag, file) in [("--exclude", &exclude), ("--relabel", &relabel)] {
        let err = vog_fails(&[
            "train",
            "--from",
            run.to_str().unwrap(),
            flag,
            file.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        assert!(
            err.contains(&format!("'{}'", file.display()))
                && err.contains("line 2: ")
                && err.contains("fields where the header names"),
            "{err}"
        );
    }
    assert!(!out.exists());
}

/// Items 6 and 7: one rule for capture targets in files and on the command line.
#[test]
fn capture_targets_follow_one_rule() {
    let d = tempfile::tempdir().unwrap();
    let config = d.path().join("c.toml");
    let recipe = "epochs = 3\nbatch_size = 16\nlr = 0.05\nlr_milestones = [2]\nlr_gamma = 0.1\n\
                  momentum = 0.9\nweight_decay = 1e-4\nwidth = 2\naugment = false\n\
                  save_epochs = \"all\"\nseed = 0\n";
    std::fs::write(&config, format!("{recipe}capture_targets = [\"margin\"]\n")).unwrap();
    let out = d.path().join("x");
    let base = [
        "train",
        "--dataset",
        "synth",
        "--device",
        "cpu",
        "--quiet",
        "--train-subset",
        "40",
        "--test-subset",
        "10",
    ];
    let mut args = base.to_vec();
    args.extend([
        "--config",
        config.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = vog_fails(&args);
    assert!(
        err.contains("capture_targets in '")
            && err.contains("capture_epochs in '")
            && err.contains("is not set"),
        "{err}"
    );
    // The flag without --capture-epochs: the same refusal, from the same rule.
    let mut args = base.to_vec();
    args.extend([
        "--capture-targets",
        "margin",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = vog_fails(&args);
    assert!(
        err.contains("--capture-targets says what gradients"),
        "{err}"
    );
    // A config that sets capture_epochs: the flag overrides its targets.
    std::fs::write(&config, format!("{recipe}capture_epochs = \"1,3\"\n")).unwrap();
    let mut cmd = vog();
    cmd.args(base)
        .args([
            "--config",
            config.to_str().unwrap(),
            "--capture-targets",
            "margin",
        ])
        .arg("--out")
        .arg(&out);
    succeed(&mut cmd);
    let written = std::fs::read_to_string(out.join("config.toml")).unwrap();
    assert!(
        written.contains("capture_targets = [\"margin\"]"),
        "{written}"
    );
}

/// Item 5: `--captured` accepts what `--stage captured` accepts.
#[test]
fn captured_and_stage_captured_agree() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    tiny_run(&run, &["--capture-epochs", "1,3"]);
    for how in [&["--captured"][..], &["--stage", "captured"]] {
        let mut cmd = vog();
        cmd.args(["score", "--quiet", "--run"])
            .arg(&run)
            .args(how)
            .args(["--allow-incomplete", "--out"])
            .arg(d.path().join(format!("s{}.csv", how.len())));
        let said = String::from_utf8_lossy(&succeed(&mut cmd).stdout).into_owned();
        // Item 10: which checkpoint the other columns come from.
        assert!(
            said.contains(
                "predictions come from the last checkpoint, 'checkpoints/epoch-0003.safetensors'"
            ),
            "{said}"
        );
    }
}

/// Items 4 and 36: warnings print under --quiet; bf16 on a CPU without bf16 instructions
/// is warned of; fp16 scoring of prob or logprob is refused; a learning rate that never
/// steps is said.
#[test]
fn warnings_and_refusals_of_precision_and_schedule() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    tiny_run(&run, &[]);
    let cpuinfo = d.path().join("cpuinfo");
    std::fs::write(&cpuinfo, "model name\t: Old CPU\nflags\t\t: fpu sse avx2\n").unwrap();
    let mut cmd = vog();
    cmd.env("VOG_TEST_CPUINFO", &cpuinfo)
        .args(["score", "--quiet", "--precision", "bf16", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(d.path().join("bf16.csv"));
    let said = stderr_of(&mut cmd);
    assert!(
        said.contains("warning: --precision bf16 on a CPU without bf16 instructions (Old CPU")
            && said.contains("0.07x"),
        "{said}"
    );
    let err = vog_fails(&[
        "score",
        "--run",
        run.to_str().unwrap(),
        "--precision",
        "fp16",
        "--target",
        "logit,logprob",
    ]);
    assert!(
        err.contains("--precision fp16 cannot score --target logprob") && err.contains("6e-8"),
        "{err}"
    );
    let mut cmd = tiny_train(
        &d.path().join("short"),
        &[
            "--device",
            "cpu",
            "--epochs",
            "2",
            "--batch-size",
            "20",
            "--lr-step",
            "batch",
        ],
    );
    let said = stderr_of(&mut cmd);
    assert!(
        said.contains("the learning rate never steps: its first milestone is optimizer step")
            && said.contains("makes 4 (2 epochs of 2 batches of 20)"),
        "{said}"
    );
}

/// Item 10: scorings of two variants (or precisions) never share a default file name; a
/// stage list that mixes a stage's name with epochs names the stages.
#[test]
fn variants_get_names_of_their_own() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    tiny_run(&run, &["--capture-epochs", "1,3"]);
    for extra in [&[][..], &["--reduce", "official"], &["--precision", "bf16"]] {
        let mut cmd = vog();
        cmd.args(["score", "--quiet", "--captured", "--run"])
            .arg(&run)
            .args(extra);
        if extra.first() == Some(&"--precision") {
            // Captured gradients are fp32 only: score the checkpoints instead.
            cmd = vog();
            cmd.args(["score", "--quiet", "--run"])
                .arg(&run)
                .args(extra);
        }
        succeed(&mut cmd);
    }
    for name in [
        "scores-train-captured.csv",
        "scores-train-captured-official.csv",
        "scores-test-all-bf16.csv",
    ] {
        assert!(run.join(name).is_file(), "{name} missing");
    }
    let err = vog_fails(&[
        "score",
        "--run",
        run.to_str().unwrap(),
        "--stage",
        "captured,1-3",
    ]);
    assert!(
        err.contains("'captured,1-3' is not a stage: early, late"),
        "{err}"
    );
}

/// Item 10: an epoch list that names an epoch twice is refused.
#[test]
fn repeated_epochs_are_refused() {
    let err = vog_fails(&[
        "train",
        "--dataset",
        "synth",
        "--save-epochs",
        "1,2,2",
        "--epochs",
        "3",
        "--out",
        "/tmp/vog-never-made",
    ]);
    assert!(err.contains("'2' is given twice"), "{err}");
}

/// Issue 36: the device a run resumes on, and `auto` falling back to the CPU while a GPU
/// is visible.
#[test]
fn devices_are_chosen_in_the_open() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    tiny_run(&run, &[]);
    // As if it had stopped on a machine with two GPUs.
    let manifest = run.join("run.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    let mut m: serde_json::Value = serde_json::from_str(&text).unwrap();
    m["device"] = "cuda:1".into();
    m["complete"] = false.into();
    std::fs::write(&manifest, serde_json::to_string_pretty(&m).unwrap()).unwrap();
    let err = vog_fails(&["train", "--resume", run.to_str().unwrap()]);
    assert!(
        err.contains("ran on cuda:1, which this machine cannot use") && err.contains("--device"),
        "{err}"
    );
    let mut cmd = vog();
    cmd.args(["train", "--resume"])
        .arg(&run)
        .args(["--device", "cpu"]);
    let said = stderr_of(&mut cmd);
    assert!(
        said.contains("resuming") && said.contains(" on cpu"),
        "{said}"
    );
    // A GPU node that libtorch cannot use: auto says why it trains on the CPU.
    let node = d.path().join("nvidia0");
    std::fs::write(&node, "").unwrap();
    let mut cmd = tiny_train(&d.path().join("auto"), &["--epochs", "1"]);
    cmd.env("VOG_TEST_NVIDIA_NODE", &node);
    let said = stderr_of(&mut cmd);
    assert!(
        said.contains("warning: --device auto runs on the CPU:")
            && said.contains("nvidia0 exists but"),
        "{said}"
    );
}

/// Item 10: a prune retraining's folder names the seed it trains with; scores of a run
/// trained again in its folder say how the run changed (other data, other weights) and name
/// the folder once.
#[test]
fn prune_folders_and_stale_scores_say_what_they_are() {
    let d = tempfile::tempdir().unwrap();
    let (run, scores) = (d.path().join("run"), d.path().join("s.csv"));
    tiny_run(&run, &["--seed", "3"]);
    let score = |run: &Path| {
        succeed(
            vog()
                .args(["score", "--quiet", "--split", "train", "--run"])
                .arg(run)
                .arg("--out")
                .arg(&scores),
        )
    };
    score(&run);
    succeed(
        vog()
            .args([
                "prune",
                "--quiet",
                "--column",
                "loss",
                "--fractions",
                "0.05",
            ])
            .args(["--seeds", "1", "--run"])
            .arg(&run)
            .arg("--scores")
            .arg(&scores),
    );
    assert!(run.join("prune/none-seed3/run.json").is_file());
    assert!(run.join("prune/loss-f0.05-seed3/run.json").is_file());
    let verify = |what: &str| {
        let err = vog_fails(&[
            "report",
            "--run",
            run.to_str().unwrap(),
            "--scores",
            scores.to_str().unwrap(),
            "--out",
            d.path().join("r.html").to_str().unwrap(),
        ]);
        let r = run.display().to_string();
        assert!(err.contains(what) && err.matches(&r).count() == 1, "{err}");
    };
    tiny_run(&run, &["--seed", "3", "--lr", "0.05", "--overwrite"]);
    verify("holds other weights there now (trained again)");
    let other_subset = [
        "--train-subset",
        "30",
        "--test-subset",
        "10",
        "--width",
        "2",
    ];
    train_synth(
        &run,
        &[&other_subset[..], &["--epochs", "3", "--overwrite"]].concat(),
    );
    verify("was trained again on other data");
}

/// "Also": no command replaces a file the person did not name (a default name, or a file
/// written beside a named one) unless vog wrote it; what vog wrote there before is replaced.
#[test]
fn no_command_replaces_a_file_nobody_named() {
    let d = tempfile::tempdir().unwrap();
    let (run, scores) = (d.path().join("run"), d.path().join("s.csv"));
    tiny_run(&run, &[]);
    let theirs = |path: &Path| std::fs::write(path, "their own\n").unwrap();
    let refused = |cmd: &mut assert_cmd::Command, path: &Path| {
        let out = cmd.current_dir(d.path()).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{}", path.display());
        assert!(err.contains("vog did not write it"), "{err}");
        assert_eq!(std::fs::read_to_string(path).unwrap(), "their own\n");
        std::fs::remove_file(path).unwrap();
    };
    let score = || {
        let mut c = vog();
        c.args(["score", "--quiet", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(&scores);
        c
    };
    theirs(&d.path().join("s.json"));
    refused(&mut score(), &d.path().join("s.json"));
    succeed(&mut score());
    succeed(&mut score());
    let pages = [("report", "report.html"), ("review", "review.html")];
    for (command, page) in pages {
        let mut c = vog();
        match command {
            "report" => c.args(["report", "--run"]).arg(&run).arg("--scores"),
            _ => c.arg("review"),
        };
        c.arg(&scores).current_dir(d.path());
        theirs(&d.path().join(page));
        let mut again = vog();
        again.args(c.get_args()).current_dir(d.path());
        refused(&mut c, &d.path().join(page));
        succeed(&mut again);
        let mut twice = vog();
        succeed(twice.args(c.get_args()).current_dir(d.path()));
    }
    let eval_dir = d.path().join("s-eval");
    std::fs::create_dir(&eval_dir).unwrap();
    theirs(&eval_dir.join("notes.txt"));
    refused(vog().arg("eval").arg(&scores), &eval_dir.join("notes.txt"));
    std::fs::remove_dir(&eval_dir).unwrap();
    succeed(vog().arg("eval").arg(&scores));
    succeed(vog().arg("eval").arg(&scores));
    let grid = d.path().join("g.png");
    let rank = |per_class: bool| {
        let mut c = vog();
        c.arg("rank").arg(&scores).args(["--top", "2", "--grid"]);
        c.arg(&grid);
        if per_class {
            c.arg("--per-class");
        }
        c
    };
    theirs(&d.path().join("g.csv"));
    refused(&mut rank(false), &d.path().join("g.csv"));
    succeed(&mut rank(false));
    succeed(&mut rank(false));
    theirs(&d.path().join("g-pattern0-highest.png"));
    refused(&mut rank(true), &d.path().join("g-pattern0-highest.png"));
    succeed(&mut rank(true));
    succeed(&mut rank(true));
}

/// "Also": `vog verify` covers the evaluation folders beside a run's scores files: every
/// table and plot made again from eval.json, eval.json made again from the scores file.
#[test]
fn verify_covers_evaluations() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    tiny_run(&run, &[]);
    succeed(
        vog()
            .args(["score", "--quiet", "--split", "both", "--run"])
            .arg(&run),
    );
    let scores = run.join("scores-both-all.csv");
    succeed(vog().arg("eval").arg(&scores));
    let dir = run.join("scores-both-all-eval");
    let verify = || {
        let out = vog().arg("verify").arg(&run).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.success(), said)
    };
    let (ok, said) = verify();
    let plots = std::fs::read_dir(&dir).unwrap().count();
    assert!(ok && said.matches("-eval/").count() == plots, "{said}");
    std::fs::write(dir.join("notes.txt"), "mine").unwrap();
    let text = std::fs::read_to_string(dir.join("deciles.csv")).unwrap();
    std::fs::write(dir.join("deciles.csv"), text.replacen("D1", "D0", 1)).unwrap();
    let (ok, said) = verify();
    assert!(
        !ok && said.contains("FAILED") && said.contains("deciles.csv"),
        "{said}"
    );
    assert!(
        !said.contains("FAILED  ") || said.matches("FAILED").count() == 1,
        "{said}"
    );
    succeed(vog().arg("eval").arg(&scores));
    let (ok, said) = verify();
    assert!(ok, "{said}");
    // Scored again with another target: the evaluation no longer describes the file.
    succeed(
        vog()
            .args(["score", "--quiet", "--split", "both", "--target", "logprob"])
            .arg("--run")
            .arg(&run)
            .arg("--out")
            .arg(&scores),
    );
    let (ok, said) = verify();
    assert!(!ok && said.contains("is not the evaluation of"), "{said}");
}
