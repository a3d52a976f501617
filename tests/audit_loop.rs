//! The audit loop keeps vog's promise (issue 26): every file it writes is one it reads
//! back as written, every input file is read as a spreadsheet writes it, nothing is
//! computed from a silently empty or repeated selection, a replaced run's scores are
//! refused and a moved run is the same run. Each test names the wrong result it guards.
mod common;
use common::{succeed, train_synth, vog, vog_fails, write_image};
use std::path::{Path, PathBuf};

const TINY: [&str; 8] = [
    "--train-subset",
    "40",
    "--test-subset",
    "20",
    "--width",
    "2",
    "--epochs",
    "2",
];

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn score(run: &Path, split: &str, out: &Path) {
    succeed(
        vog()
            .args([
                "score", "--quiet", "--device", "cpu", "--split", split, "--run",
            ])
            .arg(run)
            .arg("--out")
            .arg(out),
    );
}

/// Column `name` of a CSV, by id.
fn by_id(csv: &Path, name: &str) -> std::collections::HashMap<String, String> {
    let mut r = csv::Reader::from_path(csv).unwrap();
    let h = r.headers().unwrap().clone();
    let col = |n: &str| h.iter().position(|x| x == n).unwrap();
    let (id, c) = (col("id"), col(name));
    r.records()
        .map(|x| {
            let x = x.unwrap();
            (x[id].to_string(), x[c].to_string())
        })
        .collect()
}

/// An image folder ROOT/{train,test}/<class>/ with `per_class` 16x16 images per class
/// (named 000000.png, ...) and `extra` further training files (class, name).
fn folder(root: &Path, classes: &[&str], per_class: usize, extra: &[(&str, &str)]) {
    for (c, class) in classes.iter().enumerate() {
        for i in 0..per_class {
            let seed = (c * 40 + i) as u8;
            write_image(
                &root.join(format!("train/{class}/{i:06}.png")),
                16,
                16,
                seed,
            );
            write_image(
                &root.join(format!("test/{class}/{i:06}.png")),
                16,
                16,
                seed ^ 7,
            );
        }
    }
    for (class, name) in extra {
        write_image(&root.join(format!("train/{class}/{name}")), 16, 16, 99);
    }
}

fn train_folder(root: &Path, run: &Path) {
    succeed(
        vog()
            .args(["train", "--quiet", "--device", "cpu", "--dataset", s(root)])
            .args(["--width", "2", "--epochs", "2", "--out", s(run)]),
    );
}

/// Item 1: With classes named `1`, `10`, `2`, a relabel to "10" trains class "10", the files vog
/// writes name classes as they read back, and a token that names one class and indexes
/// another is refused everywhere a class is given.
#[test]
fn classes_named_by_numbers() {
    let d = tempfile::tempdir().unwrap();
    let (root, run) = (d.path().join("data"), d.path().join("run"));
    folder(&root, &["1", "10", "2"], 4, &[]);
    train_folder(&root, &run);
    let relabel = d.path().join("r.csv");
    std::fs::write(&relabel, "id,label\ntrain/2/000000.png,10\n").unwrap();
    let again = d.path().join("again");
    succeed(
        vog()
            .args([
                "train",
                "--quiet",
                "--from",
                s(&run),
                "--relabel",
                s(&relabel),
            ])
            .args(["--out", s(&again)]),
    );
    let written = std::fs::read_to_string(again.join("relabel.csv")).unwrap();
    assert_eq!(written, "id,label\ntrain/2/000000.png,10\n");
    let scores = d.path().join("s.csv");
    score(&again, "train", &scores);
    assert_eq!(by_id(&scores, "trained_label")["train/2/000000.png"], "1");
    // "1" is the name of class 0 and the index of "10": refused, and `name:1` says which.
    std::fs::write(&relabel, "id,label\ntrain/2/000000.png,1\n").unwrap();
    let to_one = d.path().join("one");
    let from = |file: &Path, flag: &str, out: &Path| {
        vec![
            "train".to_string(),
            "--quiet".into(),
            "--from".into(),
            s(&run).into(),
            flag.into(),
            s(file).into(),
            "--out".into(),
            s(out).into(),
        ]
    };
    let args = from(&relabel, "--relabel", &to_one);
    let err = vog_fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        err.contains("'1' is ambiguous") && err.contains("name:1"),
        "{err}"
    );
    std::fs::write(&relabel, "id,label\ntrain/2/000000.png,name:1\n").unwrap();
    succeed(vog().args(&args));
    let written = std::fs::read_to_string(to_one.join("relabel.csv")).unwrap();
    assert_eq!(written, "id,label\ntrain/2/000000.png,name:1\n");
    succeed(vog().arg("verify").arg(&to_one));
    // A review's export: `relabel,10`.
    let decisions = d.path().join("decisions.csv");
    std::fs::write(
        &decisions,
        "id,action,label,scores_sha256\ntrain/1/000001.png,relabel,10,x\n",
    )
    .unwrap();
    let reviewed = d.path().join("reviewed");
    succeed(vog().args(from(&decisions, "--decisions", &reviewed)));
    score(&reviewed, "train", &scores);
    assert_eq!(by_id(&scores, "trained_label")["train/1/000001.png"], "1");
    // --class: by name, never also by index; ambiguous refused alike by rank and review.
    score(&run, "train", &scores);
    let ranked = succeed(
        vog()
            .arg("rank")
            .arg(&scores)
            .args(["--class", "10", "--top", "100", "--format", "csv"]),
    );
    let text = String::from_utf8(ranked.stdout).unwrap();
    assert_eq!(text.lines().count(), 1 + 4, "{text}");
    assert!(text.lines().skip(1).all(|l| l.contains(",10,")), "{text}");
    for command in ["rank", "review"] {
        let out = vog()
            .args([command, s(&scores), "--class", "1"])
            .current_dir(d.path())
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {err}");
        assert!(err.contains("--class '1' is ambiguous"), "{command}: {err}");
    }
}

/// Item 2: Scores made before the run was trained again (same data, new weights) are refused
/// by every reader that takes a run, naming the changed checkpoint.
#[test]
fn scores_of_a_replaced_run_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    train_synth(&run, &TINY);
    let outside = d.path().join("outside.csv");
    score(&run, "both", &outside);
    let mut again = TINY.to_vec();
    // Same data (a synthetic set follows the seed), other weights.
    again.extend(["--lr", "0.05", "--overwrite"]);
    train_synth(&run, &again);
    let says = "the run changed since scoring";
    let report = d.path().join("r.html");
    let err = vog_fails(&[
        "report",
        "--run",
        s(&run),
        "--scores",
        s(&outside),
        "--out",
        s(&report),
    ]);
    assert!(
        err.contains(says) && err.contains("epoch-0001.safetensors"),
        "{err}"
    );
    let err = vog_fails(&[
        "prune",
        "--run",
        s(&run),
        "--scores",
        s(&outside),
        "--column",
        "vog",
    ]);
    assert!(err.contains(says), "{err}");
    let out = vog()
        .args(["verify", s(&run), "--scores", s(&outside)])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains(says));
    // Scored again, it is the run's.
    score(&run, "both", &outside);
    succeed(vog().args(["verify", s(&run), "--scores", s(&outside)]));
}

/// Item 3: A value repeated in a list option is refused, not counted twice.
#[test]
fn list_values_are_given_once() {
    for (args, says) in [
        (
            vec![
                "prune",
                "--run",
                "r",
                "--scores",
                "s.csv",
                "--column",
                "vog,loss,vog",
            ],
            "--column lists 'vog' twice",
        ),
        (
            vec![
                "prune",
                "--run",
                "r",
                "--scores",
                "s.csv",
                "--column",
                "vog",
                "--fractions",
                "0.1,0.1",
            ],
            "--fractions lists '0.1' twice",
        ),
        (
            vec!["score", "--run", "r", "--target", "logit,prob,logit"],
            "--target lists 'logit' twice",
        ),
        (
            vec!["bench", "--precision", "fp32,fp32"],
            "--precision lists 'fp32' twice",
        ),
        (
            vec!["report", "--scores", "a.csv,a.csv"],
            "--scores lists 'a.csv' twice",
        ),
    ] {
        let err = vog_fails(&args);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Items 4 and 12: A selection file that selects nothing is refused naming it, on a plain
/// training and with --from alike; one a spreadsheet writes (BOM, CRLF, quotes, comments)
/// is read as written.
#[test]
fn empty_selections_are_refused_and_spreadsheets_read() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    train_synth(&run, &TINY);
    let out = d.path().join("out");
    let file = d.path().join("ids.csv");
    for text in ["", "\n\n  \n", "id\n", "\u{feff}id\r\n# nothing yet\r\n"] {
        std::fs::write(&file, text).unwrap();
        for base in [
            vec![
                "train",
                "--dataset",
                "synth",
                "--width",
                "2",
                "--epochs",
                "1",
            ],
            vec!["train", "--from", s(&run)],
        ] {
            let mut args = base.clone();
            args.extend(["--exclude", s(&file), "--out", s(&out)]);
            let err = vog_fails(&args);
            assert!(
                err.contains("ids.csv") && err.contains("lists no ids"),
                "{text:?}: {err}"
            );
            let mut args = base;
            args.extend(["--relabel", s(&file), "--out", s(&out)]);
            let err = vog_fails(&args);
            assert!(err.contains("ids.csv"), "{text:?}: {err}");
        }
        assert!(!out.exists(), "nothing written for {text:?}");
    }
    // The ids of the run's first two training examples, as a spreadsheet saves them.
    let scores = d.path().join("s.csv");
    score(&run, "train", &scores);
    let mut ids: Vec<String> = by_id(&scores, "id").into_keys().collect();
    ids.sort();
    let sheet = format!(
        "\u{feff}id,note\r\n# checked by hand\r\n\"{}\",\"a, b\"\r\n{},\r\n",
        ids[0], ids[1]
    );
    std::fs::write(&file, sheet).unwrap();
    succeed(
        vog()
            .args(["train", "--quiet", "--from", s(&run), "--exclude", s(&file)])
            .args(["--out", s(&out)]),
    );
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("run.json")).unwrap()).unwrap();
    assert_eq!(m["dataset"]["train_examples"], 38);
    assert_eq!(
        m["config"]["from"]["exclude"]["ids"],
        serde_json::json!([ids[0], ids[1]])
    );
    succeed(vog().arg("verify").arg(&out));
}

/// Item 5: One rule: relabelling every example out of a class is refused like excluding them,
/// and decisions whose relabels change no label are refused like decisions that change
/// nothing.
#[test]
fn relabels_follow_the_rules_of_exclusions() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    train_synth(&run, &TINY);
    let scores = d.path().join("s.csv");
    score(&run, "train", &scores);
    let labels = by_id(&scores, "trained_label");
    let class0: Vec<&String> = labels
        .iter()
        .filter(|(_, l)| *l == "0")
        .map(|(id, _)| id)
        .collect();
    let file = d.path().join("r.csv");
    let rows: String = class0.iter().map(|id| format!("{id},pattern1\n")).collect();
    std::fs::write(&file, format!("id,label\n{rows}")).unwrap();
    let out = d.path().join("out");
    let err = vog_fails(&[
        "train",
        "--from",
        s(&run),
        "--relabel",
        s(&file),
        "--out",
        s(&out),
    ]);
    assert!(
        err.contains("leaves class 'pattern0' without training examples"),
        "{err}"
    );
    let same: String = class0
        .iter()
        .map(|id| format!("{id},relabel,pattern0,x\n"))
        .collect();
    std::fs::write(&file, format!("id,action,label,scores_sha256\n{same}")).unwrap();
    let err = vog_fails(&[
        "train",
        "--from",
        s(&run),
        "--decisions",
        s(&file),
        "--out",
        s(&out),
    ]);
    assert!(err.contains("changes nothing"), "{err}");
    let same: String = class0.iter().map(|id| format!("{id},pattern0\n")).collect();
    std::fs::write(&file, format!("id,label\n{same}")).unwrap();
    let err = vog_fails(&[
        "train",
        "--from",
        s(&run),
        "--relabel",
        s(&file),
        "--out",
        s(&out),
    ]);
    assert!(err.contains("changes no label"), "{err}");
    assert!(!out.exists());
}

/// Items 6 and 10: Ids with a comma survive the files vog writes; a run moved elsewhere
/// verifies, and continues its crossval and prune without training anything again.
#[test]
fn commas_in_ids_and_a_moved_run() {
    let d = tempfile::tempdir().unwrap();
    let (root, run) = (d.path().join("data"), d.path().join("run"));
    folder(&root, &["a", "b"], 6, &[("a", "x,y.png")]);
    train_folder(&root, &run);
    let scores = run.join("scores-train-all.csv");
    score(&run, "train", &scores);
    let ids = succeed(vog().arg("rank").arg(&scores).args([
        "--class", "a", "--top", "2", "--column", "vog_raw", "--format", "ids",
    ]));
    let ids_file = d.path().join("ids.csv");
    std::fs::write(&ids_file, &ids.stdout).unwrap();
    let everything = succeed(
        vog()
            .arg("rank")
            .arg(&scores)
            .args(["--top", "100", "--format", "ids"]),
    );
    assert!(String::from_utf8_lossy(&everything.stdout).contains("\"train/a/x,y.png\""));
    std::fs::write(&ids_file, "id\n\"train/a/x,y.png\"\n").unwrap();
    let cleaner = d.path().join("cleaner");
    succeed(
        vog()
            .args([
                "train",
                "--quiet",
                "--from",
                s(&run),
                "--exclude",
                s(&ids_file),
            ])
            .args(["--out", s(&cleaner)]),
    );
    assert_eq!(
        std::fs::read_to_string(cleaner.join("exclude.csv")).unwrap(),
        "id\n\"train/a/x,y.png\"\n"
    );
    succeed(vog().arg("verify").arg(&cleaner));
    succeed(vog().args(["crossval", "--quiet", "--run", s(&run), "--folds", "2"]));
    score(&run, "train", &scores);
    succeed(vog().args([
        "prune",
        "--quiet",
        "--run",
        s(&run),
        "--scores",
        s(&scores),
        "--column",
        "loss",
        "--fractions",
        "0.1",
        "--seeds",
        "1",
    ]));
    assert!(run.join("prune/loss-f0.1-seed0/run.json").is_file());
    let moved = d.path().join("elsewhere/moved");
    std::fs::create_dir_all(moved.parent().unwrap()).unwrap();
    std::fs::rename(&run, &moved).unwrap();
    let v = succeed(vog().arg("verify").arg(&moved));
    let said = String::from_utf8_lossy(&v.stdout);
    assert!(
        said.contains("crossval/probs.csv") && said.contains("prune/prune.csv"),
        "{said}"
    );
    let gathered = succeed(vog().args(["crossval", "--run", s(&moved), "--folds", "2"]));
    let said = String::from_utf8_lossy(&gathered.stderr);
    assert_eq!(said.matches("up to date").count(), 2, "{said}");
    let moved_scores = moved.join("scores-train-all.csv");
    let pruned = succeed(vog().args([
        "prune",
        "--run",
        s(&moved),
        "--scores",
        s(&moved_scores),
        "--column",
        "loss",
        "--fractions",
        "0.1",
        "--seeds",
        "1",
    ]));
    assert!(!String::from_utf8_lossy(&pruned.stderr).contains("epoch 1/"));
}

/// Items 7, 8 and 9: verify checks crossval/ and prune/; probabilities are checked by value and
/// tied to their run; a crossval of another K is refused until replaced; an unfinished one
/// is named when scoring.
#[test]
fn crossval_and_prune_files_are_checked() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    train_synth(&run, &TINY);
    let r = s(&run).to_string();
    succeed(vog().args(["crossval", "--quiet", "--run", &r, "--folds", "3"]));
    let scores = d.path().join("s.csv");
    score(&run, "train", &scores);
    succeed(vog().args([
        "prune",
        "--quiet",
        "--run",
        &r,
        "--scores",
        s(&scores),
        "--column",
        "oof_prob",
        "--fractions",
        "0.05",
        "--seeds",
        "1",
    ]));
    succeed(vog().arg("verify").arg(&run));
    // A damaged file of each folder fails verify, naming it.
    for (file, edit) in [
        ("crossval/probs.csv", ("e-1", "e-2")),
        ("prune/prune.csv", ("oof_prob", "oof_pr0b")),
        (
            "prune/prune.json",
            (
                "\"accuracies\": [\n        0",
                "\"accuracies\": [\n        1",
            ),
        ),
    ] {
        let path = run.join(file);
        let before = std::fs::read_to_string(&path).unwrap();
        std::fs::write(&path, before.replacen(edit.0, edit.1, 1)).unwrap();
        let out = vog().arg("verify").arg(&run).output().unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(!out.status.success(), "{file}: {said}");
        assert!(
            said.lines()
                .any(|l| l.starts_with("FAILED") && l.contains(file)),
            "{file}: {said}"
        );
        std::fs::write(&path, before).unwrap();
    }
    // A negative probability, its sidecar re-hashed to match.
    let probs = run.join("crossval/probs.csv");
    let before = std::fs::read_to_string(&probs).unwrap();
    let row = before.lines().nth(1).unwrap();
    let p2 = row.split(',').nth(2).unwrap();
    std::fs::write(&probs, before.replacen(p2, &format!("-{p2}"), 1)).unwrap();
    let side = run.join("crossval/probs.json");
    let mut meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&side).unwrap()).unwrap();
    let bytes = std::fs::read(&probs).unwrap();
    meta["csv"]["size"] = bytes.len().into();
    use sha2::Digest;
    meta["csv"]["sha256"] = format!("{:x}", sha2::Sha256::digest(&bytes)).into();
    std::fs::write(&side, serde_json::to_vec(&meta).unwrap()).unwrap();
    let err = vog_fails(&[
        "score",
        "--run",
        &r,
        "--split",
        "train",
        "--out",
        s(&scores),
    ]);
    assert!(err.contains("not a number in [0, 1]"), "{err}");
    std::fs::write(&probs, before).unwrap();
    // Another K: refused naming the K there; --overwrite replaces the whole crossval.
    let err = vog_fails(&["crossval", "--run", &r, "--folds", "2", "--fold", "0"]);
    assert!(
        err.contains("holds a 3-fold vog crossval") && err.contains("--overwrite"),
        "{err}"
    );
    succeed(vog().args([
        "crossval",
        "--quiet",
        "--run",
        &r,
        "--folds",
        "2",
        "--fold",
        "0",
        "--overwrite",
    ]));
    assert!(!run.join("crossval/fold-2").exists() && !probs.exists());
    let out = succeed(vog().args([
        "score",
        "--run",
        &r,
        "--split",
        "train",
        "--out",
        s(&scores),
    ]));
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(
        said.contains("not finished") && said.contains("fold(s) 1 not trained"),
        "{said}"
    );
    // The probabilities of another run of the same data are not this run's.
    let other = d.path().join("other");
    let mut args = TINY.to_vec();
    args.extend(["--seed", "5"]);
    train_synth(&other, &args);
    succeed(vog().args(["crossval", "--quiet", "--run", s(&other), "--folds", "2"]));
    std::fs::remove_dir_all(run.join("crossval")).unwrap();
    copy_dir(&other.join("crossval"), &run.join("crossval"));
    let err = vog_fails(&[
        "score",
        "--run",
        &r,
        "--split",
        "train",
        "--out",
        s(&scores),
    ]);
    assert!(err.contains("another run, recipe or data"), "{err}");
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target: PathBuf = to.join(e.file_name());
        match e.file_type().unwrap().is_dir() {
            true => copy_dir(&e.path(), &target),
            false => drop(std::fs::copy(e.path(), target).unwrap()),
        }
    }
}

/// Items 11 and 13: vog prune checks every setting before training anything, naming the option;
/// errors name what the user typed.
#[test]
fn settings_are_checked_first_and_errors_name_the_input() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    train_synth(&run, &TINY);
    let scores = d.path().join("s.csv");
    score(&run, "both", &scores);
    let err = vog_fails(&[
        "prune",
        "--run",
        s(&run),
        "--scores",
        s(&scores),
        "--column",
        "loss",
        "--fractions",
        "0.99",
    ]);
    assert!(
        err.contains("--fractions 0.99") && err.contains("without training examples"),
        "{err}"
    );
    assert!(!run.join("prune").exists(), "nothing trained");
    // A value that is neither a number nor true/false says which values are taken.
    let err = vog_fails(&["rank", s(&scores), "--select", "vog>=yes"]);
    assert!(
        err.contains("'yes' is not a finite number, true or false"),
        "{err}"
    );
    let err = vog_fails(&["rank", s(&scores), "--select", "vog>=1000"]);
    assert!(
        err.contains("matches no example") && err.contains("vog lies in"),
        "{err}"
    );
    // A --class that empties a selection says it was the class.
    let vog: Vec<(f64, String)> = {
        let v = by_id(&scores, "vog");
        let c = by_id(&scores, "label_name");
        v.iter()
            .map(|(id, x)| (x.parse().unwrap(), c[id].clone()))
            .collect()
    };
    let top = vog.iter().map(|v| v.0).fold(f64::MIN, f64::max);
    let (low, class) = (0..10)
        .map(|c| format!("pattern{c}"))
        .map(|c| {
            (
                vog.iter()
                    .filter(|v| v.1 == c)
                    .map(|v| v.0)
                    .fold(f64::MIN, f64::max),
                c,
            )
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .unwrap();
    assert!(low < top);
    let select = format!("vog>={}", (low + top) / 2.0);
    let err = vog_fails(&["rank", s(&scores), "--select", &select, "--class", &class]);
    assert!(
        err.contains(&format!("--class '{class}' leaves none of the")),
        "{err}"
    );
}

/// Item 13: `vog rank` and `vog review` refuse the same selection with the same status and the
/// same message.
#[test]
fn rank_and_review_refuse_alike() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    train_synth(&run, &TINY);
    let scores = d.path().join("s.csv");
    score(&run, "both", &scores);
    let page = d.path().join("p.html");
    for extra in [
        vec!["--top", "0"],
        vec!["--select", "vog>=yes"],
        vec!["--select", "vog>=1000"],
        vec!["--class", "dog"],
        vec!["--column", "nope"],
        vec!["--select", "nope=1"],
    ] {
        let run_one = |command: &str| {
            let mut cmd = vog();
            cmd.args([command, s(&scores)]).args(&extra);
            if command == "review" {
                cmd.args(["--out", s(&page)]);
            }
            let out = cmd.output().unwrap();
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            (
                out.status.code(),
                err.lines().next().unwrap_or("").to_string(),
            )
        };
        let (rank, review) = (run_one("rank"), run_one("review"));
        assert_ne!(rank.0, Some(0), "{extra:?}");
        assert_eq!(rank, review, "{extra:?}");
    }
    assert!(!page.exists());
}
