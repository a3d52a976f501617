//! The authors' protocol as options (`--lr-step batch`, `--no-shuffle`, `--capture-epochs`,
//! `vog score --captured`): what is refused, on one line, and what `vog verify` checks.
mod common;
use common::{succeed, train_synth, vog, vog_fails};

#[test]
fn capture_options_refuse_what_cannot_be_done() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("x");
    let o = out.to_str().unwrap();
    let train = |extra: &[&str]| {
        let mut a = vec![
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
            "--width",
            "2",
            "--epochs",
            "4",
            "--out",
            o,
        ];
        a.extend(extra);
        vog_fails(&a)
    };
    let err = train(&["--capture-epochs", "1,9"]);
    assert!(
        err.contains("invalid --capture-epochs '1,9': epoch 9 is outside 1..4"),
        "{err}"
    );
    let err = train(&["--capture-epochs", "last:1"]);
    assert!(
        err.contains("names 1 epoch of 4; a variance needs at least two"),
        "{err}"
    );
    let err = train(&[
        "--capture-epochs",
        "all",
        "--capture-targets",
        "logit,logit",
    ]);
    assert!(
        err.contains("--capture-targets must name each target once"),
        "{err}"
    );
    assert!(!out.exists(), "nothing is written when refused");

    // A run that captured nothing, and one that did.
    let plain = d.path().join("plain");
    train_synth(
        &plain,
        &[
            "--train-subset",
            "40",
            "--test-subset",
            "10",
            "--width",
            "2",
            "--epochs",
            "2",
        ],
    );
    let err = vog_fails(&[
        "score",
        "--captured",
        "--split",
        "train",
        "--run",
        plain.to_str().unwrap(),
    ]);
    assert!(
        err.contains("captured no gradients during training"),
        "{err}"
    );
    let run = d.path().join("run");
    train_synth(
        &run,
        &[
            "--train-subset",
            "40",
            "--test-subset",
            "10",
            "--width",
            "2",
            "--epochs",
            "3",
            "--capture-epochs",
            "1,3",
            "--lr-step",
            "batch",
            "--no-shuffle",
        ],
    );
    let r = run.to_str().unwrap();
    for (args, says) in [
        (
            vec!["--split", "test"],
            "--captured scores training examples only",
        ),
        (
            vec!["--split", "both"],
            "--captured scores training examples only",
        ),
        (
            vec!["--split", "train", "--channels", "all"],
            "--channels mean --grad-norm none only",
        ),
        (
            vec!["--split", "train", "--target", "logprob"],
            "--target logprob was not captured",
        ),
        (
            vec!["--split", "train", "--precision", "bf16"],
            "--precision fp32 only",
        ),
    ] {
        let mut all = vec!["score", "--captured", "--run", r];
        all.extend(args);
        let err = vog_fails(&all);
        assert!(err.contains(says), "{all:?}: {err}");
    }
    // Without --split, --captured scores the training split (the only one captured).
    let out = succeed(vog().args(["score", "--captured", "--quiet", "--run", r]));
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        said.contains("train examples") && said.contains("scores-train-captured.csv"),
        "{said}"
    );
    // The stage `captured` is the same request.
    succeed(vog().args([
        "score", "--stage", "captured", "--split", "train", "--quiet", "--run", r,
    ]));
    let err = vog_fails(&[
        "score",
        "--stage",
        "captured",
        "--split",
        "train",
        "--run",
        plain.to_str().unwrap(),
    ]);
    assert!(err.contains("captured no gradients"), "{err}");
    // A damaged capture is found by verify, by score and by resume's checks alike.
    succeed(vog().arg("verify").arg(&run));
    let file = run.join("captured/epoch-0003.safetensors");
    let mut bytes = std::fs::read(&file).unwrap();
    let last = bytes.len() - 1;
    bytes[last] ^= 1;
    std::fs::write(&file, bytes).unwrap();
    let verify = vog().args(["verify", r]).output().unwrap();
    assert!(!verify.status.success());
    let said = String::from_utf8_lossy(&verify.stdout);
    assert!(
        said.lines()
            .any(|l| l.contains("captured/epoch-0003.safetensors") && !l.starts_with("ok")),
        "{said}"
    );
    let err = vog_fails(&["score", "--captured", "--split", "train", "--run", r]);
    assert!(err.contains("captured/epoch-0003.safetensors"), "{err}");
}

/// An experiment whose [score] asks for the captured stage of a recipe that captures
/// nothing is refused before anything trains.
#[test]
fn experiment_refuses_a_captured_stage_without_capture() {
    let d = tempfile::tempdir().unwrap();
    let config = d.path().join("exp.toml");
    let out = d.path().join("exp");
    let text = format!(
        "dataset = \"synth\"\ndata_dir = \"data\"\nout = \"{}\"\ndevice = \"cpu\"\n\
         train_subset = 40\ntest_subset = 10\n\n[train]\nepochs = 2\nbatch_size = 20\n\
         lr = 0.05\nlr_milestones = [1]\nlr_gamma = 0.1\nmomentum = 0.9\nweight_decay = 5e-4\n\
         width = 2\naugment = true\nsave_epochs = \"all\"\nseed = 0\n\n[score]\n\
         stages = [\"all\", \"captured\"]\nsplits = [\"train\"]\ntargets = [\"logit\"]\n\
         batch_size = 20\n",
        out.display()
    );
    std::fs::write(&config, &text).unwrap();
    let err = vog_fails(&["experiment", config.to_str().unwrap()]);
    assert!(
        err.contains("include captured, but [train] captures no gradients"),
        "{err}"
    );
    let captures = text.replace("seed = 0\n", "seed = 0\ncapture_epochs = \"all\"\n");
    std::fs::write(
        &config,
        captures.replace("[\"logit\"]", "[\"logit\", \"margin\"]"),
    )
    .unwrap();
    let err = vog_fails(&["experiment", config.to_str().unwrap()]);
    assert!(
        err.contains("target margin") && err.contains("capture_targets"),
        "{err}"
    );
    std::fs::write(
        &config,
        captures.replace("splits = [\"train\"]", "splits = [\"test\"]"),
    )
    .unwrap();
    let err = vog_fails(&["experiment", config.to_str().unwrap()]);
    assert!(err.contains("needs the train split"), "{err}");
    assert!(!out.exists());
}
