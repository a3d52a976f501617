//! From a ranking to a retraining: `vog rank --format ids` writes the ids `vog train
//! --exclude` reads; `--relabel` trains chosen examples with other labels; both are recorded
//! in run.json, shown in the report, and refused on one line when they name the wrong
//! examples.
mod common;
use common::{succeed, train_synth, vog, vog_fails};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const RUN: [&str; 8] = [
    "--train-subset",
    "40",
    "--test-subset",
    "20",
    "--width",
    "2",
    "--epochs",
    "2",
];

fn score_train(run: &Path) -> PathBuf {
    let out = run.join("s.csv");
    succeed(
        vog()
            .args([
                "score", "--quiet", "--device", "cpu", "--split", "train", "--run",
            ])
            .arg(run)
            .arg("--out")
            .arg(&out),
    );
    out
}

/// id -> (label, trained_label) of a scores file.
fn labels(csv: &Path) -> HashMap<String, (String, String)> {
    let mut r = csv::Reader::from_path(csv).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (id, label, trained) = (col("id"), col("label"), col("trained_label"));
    r.records()
        .map(|rec| {
            let rec = rec.unwrap();
            let v = (rec[label].to_string(), rec[trained].to_string());
            (rec[id].to_string(), v)
        })
        .collect()
}

fn run_json(run: &Path) -> serde_json::Value {
    serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap()
}

#[test]
fn rank_ids_exclude_and_relabel() {
    let d = tempfile::tempdir().unwrap();
    let first = d.path().join("first");
    train_synth(&first, &RUN);
    let scores = score_train(&first);
    let out = succeed(
        vog()
            .arg("rank")
            .arg(&scores)
            .args(["--top", "5", "--format", "ids"]),
    );
    let ids_file = d.path().join("hard.csv");
    std::fs::write(&ids_file, &out.stdout).unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    let hard: Vec<&str> = text.lines().skip(1).collect();
    assert_eq!((text.lines().next(), hard.len()), (Some("id"), 5), "{text}");

    // Left out: the retrained run has 35 training examples, none of the five.
    let pruned = d.path().join("pruned");
    let mut args = RUN.to_vec();
    let ids_arg = ids_file.to_str().unwrap();
    args.extend(["--exclude", ids_arg]);
    train_synth(&pruned, &args);
    let m = run_json(&pruned);
    assert_eq!(m["config"]["exclude"]["ids"].as_array().unwrap().len(), 5);
    assert_eq!(m["dataset"]["train_examples"], 35);
    let pruned_scores = score_train(&pruned);
    let kept = labels(&pruned_scores);
    assert_eq!(kept.len(), 35);
    assert!(hard.iter().all(|id| !kept.contains_key(*id)));
    let report = d.path().join("r.html");
    succeed(
        vog()
            .arg("report")
            .arg("--run")
            .arg(&pruned)
            .arg("--scores")
            .arg(&pruned_scores)
            .arg("--out")
            .arg(&report),
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("training examples left out"));

    // Relabelled, by class name and by index: the label stays, the trained label changes.
    let all = labels(&scores);
    let mut chosen: Vec<&String> = all.keys().collect();
    chosen.sort();
    let names: Vec<String> = {
        let mut r = csv::Reader::from_path(&scores).unwrap();
        let h = r.headers().unwrap().clone();
        let (l, n) = (
            h.iter().position(|x| x == "label").unwrap(),
            h.iter().position(|x| x == "label_name").unwrap(),
        );
        let mut m: Vec<(i64, String)> = r
            .records()
            .map(|x| {
                let x = x.unwrap();
                (x[l].parse().unwrap(), x[n].to_string())
            })
            .collect();
        m.sort();
        m.dedup();
        m.into_iter().map(|(_, n)| n).collect()
    };
    let new = |id: &str| (all[id].0.parse::<usize>().unwrap() + 1) % names.len();
    let relabel = d.path().join("relabel.csv");
    let (a, b) = (chosen[0].as_str(), chosen[1].as_str());
    std::fs::write(
        &relabel,
        format!("id,label\n{a},{}\n{b},{}\n", names[new(a)], new(b)),
    )
    .unwrap();
    let fixed = d.path().join("fixed");
    let mut args = RUN.to_vec();
    args.extend(["--relabel", relabel.to_str().unwrap()]);
    train_synth(&fixed, &args);
    let got = labels(&score_train(&fixed));
    for id in [a, b] {
        assert_eq!(got[id].0, all[id].0, "the dataset label is kept");
        assert_eq!(got[id].1, new(id).to_string(), "trained with the new label");
    }
}

#[test]
fn wrong_decisions_are_refused_on_one_line() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run").to_str().unwrap().to_string();
    let train = |flag: &str, text: &str| {
        let file = d.path().join("f.csv");
        std::fs::write(&file, text).unwrap();
        // The whole synthetic set (no subsets): every id below exists in it.
        let mut args = vec!["train", "--quiet", "--dataset", "synth", "--device", "cpu"];
        args.extend(["--width", "2", "--epochs", "1"]);
        args.extend([flag, file.to_str().unwrap(), "--out", &out]);
        vog_fails(&args)
    };
    let err = train("--exclude", "id\nnot-an-example\n");
    assert!(
        err.contains("not training examples of this run: 'not-an-example'"),
        "{err}"
    );
    let err = train("--exclude", "train/000001\ntrain/000001\n");
    assert!(
        err.contains("line 2: 'train/000001' is listed already on line 1"),
        "{err}"
    );
    let err = train("--exclude", "test/000000\n");
    assert!(
        err.contains("line 1: 'test/000000' is a test example"),
        "{err}"
    );
    let err = train("--relabel", "id,label\ntrain/000001,bird\n");
    assert!(
        err.contains("'bird' is neither a class name nor an index"),
        "{err}"
    );
    let err = train("--relabel", "id,class\ntrain/000001,1\n");
    assert!(err.contains("needs the columns id,label"), "{err}");
    // Every example of one class left out (synthetic class c is example i with i % 10 == c).
    let class0: Vec<String> = (0..2000)
        .step_by(10)
        .map(|i| format!("train/{i:06}"))
        .collect();
    let err = train("--exclude", &format!("{}\n", class0.join("\n")));
    assert!(
        err.contains("leaves class 'pattern0' without training examples"),
        "{err}"
    );
    assert!(!Path::new(&out).join("run.json").exists());
}

#[test]
fn prune_compares_a_score_with_random_removal() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
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
            "2",
        ],
    );
    let scores = score_train(&run);
    let (r, s) = (run.to_str().unwrap(), scores.to_str().unwrap());
    let args = [
        "prune",
        "--quiet",
        "--run",
        r,
        "--scores",
        s,
        "--column",
        "vog,loss",
        "--fractions",
        "0.05",
        "--seeds",
        "2",
    ];
    // Two tasks (as a Slurm array would run them), then the call that gathers the table.
    for task in ["0/2", "1/2"] {
        let out = succeed(vog().args(args).args(["--task", task]));
        let said = String::from_utf8(out.stdout).unwrap();
        assert!(said.contains("task done: 4 of the 8 retrainings"), "{said}");
    }
    let trained = std::fs::read_dir(run.join("prune")).unwrap().count();
    assert_eq!(
        trained, 8,
        "each retraining once, none left for the gathering call"
    );
    let out = succeed(vog().args(args));
    let table = String::from_utf8(out.stdout).unwrap();
    assert_eq!(table.lines().count(), 1 + 1 + 3, "{table}");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("prune/prune.json")).unwrap()).unwrap();
    let rows = json["rows"].as_array().unwrap();
    let vog_row = rows.iter().find(|r| r["removal"] == "vog").unwrap();
    assert_eq!(
        (
            vog_row["removed"].as_u64(),
            vog_row["accuracies"].as_array().unwrap().len()
        ),
        (Some(5), 2)
    );
    assert!(vog_row["vs_random"]["ci_low"].is_number());
    assert!(run.join("prune/prune.png").is_file() && run.join("prune/prune.csv").is_file());
    assert!(
        table.lines().nth(2).unwrap().starts_with("random"),
        "{table}"
    );
    // The report shows the table beside the run's scores.
    let html = d.path().join("r.html");
    succeed(
        vog()
            .args(["report", "--run", r, "--scores", s, "--out"])
            .arg(&html),
    );
    let page = std::fs::read_to_string(&html).unwrap();
    assert!(page.contains("Acting on the ranking") && page.contains("vs random (points)"));
    // Done once, not again.
    let again = succeed(vog().args(args));
    assert_eq!(String::from_utf8(again.stdout).unwrap(), table);
    let err = vog_fails(&[
        "prune",
        "--run",
        r,
        "--scores",
        s,
        "--column",
        "vog",
        "--fractions",
        "1.5",
    ]);
    assert!(err.contains("strictly between 0 and 1"), "{err}");
    let err = vog_fails(&[
        "prune", "--run", r, "--scores", s, "--column", "vog", "--task", "2/2",
    ]);
    assert!(err.contains("must be I/N with 0 <= I < N"), "{err}");
    let err = vog_fails(&[
        "prune",
        "--run",
        r,
        "--scores",
        s,
        "--column",
        "vog",
        "--relabel-suggested",
    ]);
    assert!(err.contains("vog crossval"), "{err}");
    let err = vog_fails(&["prune", "--run", r, "--scores", s, "--column", "nope"]);
    assert!(err.contains("no score column 'nope'"), "{err}");
    // A new run in the same folder does not inherit the old run's retrainings.
    let mut again = vec!["--overwrite"];
    again.extend([
        "--train-subset",
        "100",
        "--test-subset",
        "20",
        "--width",
        "2",
        "--epochs",
        "1",
    ]);
    train_synth(&run, &again);
    assert!(!run.join("prune").exists());
}
