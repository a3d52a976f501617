//! `vog train --plant` (issue 35, item 1) end to end on synthetic data: each kind on its own
//! examples, recorded in planted.csv and run.json and verified; label kinds train with the
//! recorded label, image kinds change the pixels (the data's fingerprint); bad input refused
//! on one line before anything is written.
mod common;
use common::{column, succeed, train_synth, vog, vog_fails};
use std::collections::HashMap;

const TINY: [&str; 10] = [
    "--train-subset",
    "200",
    "--test-subset",
    "20",
    "--width",
    "2",
    "--epochs",
    "2",
    "--save-epochs",
    "all",
];

fn manifest(run: &std::path::Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap()
}

#[test]
fn planted_kinds_are_recorded_and_trained() {
    let d = tempfile::tempdir().unwrap();
    let (run, clean) = (d.path().join("run"), d.path().join("clean"));
    let plant = "uniform:0.1,adjacent:0.05,pairs:0.05,noise:0.05,zoom:0.05,shift:0.05,foreign:0.05";
    train_synth(&run, &[&TINY[..], &["--plant", plant]].concat());
    train_synth(&clean, &TINY);
    let planted = run.join("planted.csv");
    let kinds = column(&planted, "kind");
    let count = |k: &str| kinds.iter().filter(|x| *x == k).count();
    let counts: Vec<usize> = [
        "uniform", "adjacent", "pairs", "noise", "zoom", "shift", "foreign",
    ]
    .map(count)
    .to_vec();
    assert_eq!(counts, [20, 10, 10, 10, 10, 10, 10]);
    let ids = column(&planted, "id");
    let unique: std::collections::HashSet<&String> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len(), "each example planted once");
    let m = manifest(&run);
    assert_eq!(m["config"]["plant"], plant);
    assert!(
        m["files"]["planted.csv"].is_object(),
        "recorded with its digest"
    );
    let said = String::from_utf8(succeed(vog().arg("verify").arg(&run)).stdout).unwrap();
    assert!(said.contains("planted.csv"), "{said}");
    // Image kinds change pixels: the data differs from the clean run's.
    let fingerprint = |m: &serde_json::Value| m["dataset"]["fingerprint"].clone();
    assert_ne!(fingerprint(&m), fingerprint(&manifest(&clean)));
    // Label kinds train with the recorded label; image kinds keep theirs.
    succeed(
        vog()
            .args(["score", "--quiet", "--split", "train", "--run"])
            .arg(&run),
    );
    let scores = run.join("scores-train-all.csv");
    let trained: HashMap<String, String> = column(&scores, "id")
        .into_iter()
        .zip(column(&scores, "trained_label"))
        .collect();
    let label: HashMap<String, String> = column(&scores, "id")
        .into_iter()
        .zip(column(&scores, "label"))
        .collect();
    let (original, planted_label) = (
        column(&planted, "original_label"),
        column(&planted, "trained_label"),
    );
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(trained[id], planted_label[i], "{id}");
        assert_eq!(label[id], original[i], "{id}");
        let image_kind = ["noise", "zoom", "shift", "foreign"].contains(&kinds[i].as_str());
        assert_eq!(
            image_kind,
            original[i] == planted_label[i],
            "{id} {}",
            kinds[i]
        );
    }
    // A planted run cannot be trained again with changes yet: refused, nothing made.
    let err = vog_fails(&["crossval", "--run", run.to_str().unwrap(), "--folds", "2"]);
    assert!(err.contains("not supported yet"), "{err}");
    assert!(!run.join("crossval").exists());
    let ids_file = d.path().join("leave-out.csv");
    std::fs::write(&ids_file, format!("id\n{}\n", ids[0])).unwrap();
    let derived = d.path().join("derived");
    let err = vog_fails(&[
        "train",
        "--from",
        run.to_str().unwrap(),
        "--exclude",
        ids_file.to_str().unwrap(),
        "--out",
        derived.to_str().unwrap(),
    ]);
    assert!(err.contains("not supported yet"), "{err}");
    assert!(!derived.exists());
}

#[test]
fn bad_plants_are_refused_before_anything_is_written() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run");
    let o = out.to_str().unwrap();
    for (plant, says) in [
        ("blur:0.1", "unknown kind 'blur'"),
        ("zoom:0.6,noise:0.5", "sum to 1.1, past 1"),
        ("zoom:0.001", "plants no example in 200 training examples"),
        ("zoom:0.1,zoom:0.2", "kind 'zoom' is given twice"),
        ("zoom:1", "must lie in (0, 1)"),
        // Rounded up, three thirds ask for 67 each of 200.
        (
            "zoom:0.3325,noise:0.3325,shift:0.3325",
            "needs 67 examples, and only 66 are left",
        ),
    ] {
        let mut args = vec!["train", "--dataset", "synth", "--quiet", "--out", o];
        args.extend(TINY);
        args.extend(["--plant", plant]);
        let err = vog_fails(&args);
        assert!(err.contains(says), "{plant}: {err}");
        assert!(!out.exists(), "{plant}: nothing written");
    }
    let mut args = vec!["train", "--dataset", "synth", "--out", o];
    args.extend(["--plant", "zoom:0.1", "--label-noise", "0.1"]);
    let out_of = vog().args(&args).output().unwrap();
    let err = String::from_utf8_lossy(&out_of.stderr);
    assert!(err.contains("cannot be used with '--label-noise"), "{err}");
}
