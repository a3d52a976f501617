//! `vog review` in a real browser (Debian's headless Chromium through chromedriver, driven
//! by `tests/browser/review.py`): decisions by key, an undo, a reload they survive, the
//! exported decisions.csv exactly as decided, and `vog train --decisions` training on the
//! intended set and recording it. scripts/test.sh installs chromium and chromium-driver
//! when missing. `VOG_SCREENSHOT=FILE.png` keeps a screenshot of the page.
mod common;
use common::{column, python, succeed, train_synth, vog, vog_fails};
use std::collections::HashMap;
use std::path::Path;

#[test]
fn review_by_keyboard_export_and_train_on_the_decisions() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let common = ["--test-subset", "20", "--width", "2", "--epochs", "2"];
    let mut args = vec!["--train-subset", "60", "--label-noise", "0.2"];
    args.extend(common);
    train_synth(&run, &args);
    let scores = run.join("s.csv");
    succeed(
        vog()
            .args([
                "score", "--quiet", "--device", "cpu", "--split", "train", "--run",
            ])
            .arg(&run)
            .arg("--out")
            .arg(&scores),
    );
    let page = d.path().join("review.html");
    succeed(
        vog()
            .arg("review")
            .arg(&scores)
            .args(["--column", "loss", "--top", "12", "--out"])
            .arg(&page),
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no network"
    );
    let s = scores.to_str().unwrap();
    for (args, says) in [
        (
            vec!["--select", "loss>=1000"],
            "--select loss>=1000 matches no example",
        ),
        (vec!["--select", "nope=1"], "has no score column 'nope'"),
        (vec!["--out", "page.png"], "must name an .html file"),
    ] {
        let mut all = vec!["review", s];
        all.extend(args);
        let err = vog_fails(&all);
        assert!(err.contains(says), "{says}: {err}");
    }
    // The queue is `vog rank`'s order.
    let ranked = succeed(
        vog()
            .arg("rank")
            .arg(&scores)
            .args(["--column", "loss", "--top", "12", "--format", "ids"]),
    );
    let queue: Vec<String> = String::from_utf8(ranked.stdout)
        .unwrap()
        .lines()
        .skip(1)
        .map(String::from)
        .collect();
    let downloads = d.path().join("downloads");
    std::fs::create_dir(&downloads).unwrap();
    let mut browse = std::process::Command::new(python());
    browse
        .arg("tests/browser/review.py")
        .arg(&page)
        .arg(&downloads);
    if let Ok(shot) = std::env::var("VOG_SCREENSHOT") {
        browse.arg(shot);
    }
    let out = browse.output().unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let decisions = downloads.join("decisions.csv");
    // What review.py pressed: drop, keep, relabel as class 3, unsure, (drop, undone), drop.
    let names: HashMap<String, String> = column(&scores, "label")
        .into_iter()
        .zip(column(&scores, "label_name"))
        .collect();
    let sha = common_sha(&scores);
    let expected = format!(
        "id,action,label,scores_sha256\n{},drop,,{sha}\n{},keep,,{sha}\n{},relabel,{},{sha}\n{},unsure,,{sha}\n{},drop,,{sha}\n",
        queue[0], queue[1], queue[2], names["3"], queue[3], queue[5]
    );
    assert_eq!(std::fs::read_to_string(&decisions).unwrap(), expected);
    // The run trained again on exactly the decided set, every other label as it was
    // trained (shuffled ones included), and the decisions recorded.
    let fixed = d.path().join("fixed");
    succeed(
        vog()
            .args(["train", "--quiet", "--from"])
            .arg(&run)
            .arg("--decisions")
            .arg(&decisions)
            .arg("--out")
            .arg(&fixed),
    );
    let m: serde_json::Value =
        serde_json::from_slice(&std::fs::read(fixed.join("run.json")).unwrap()).unwrap();
    let rec = &m["config"]["decisions"];
    assert_eq!(
        (
            rec["drop"].as_u64(),
            rec["keep"].as_u64(),
            rec["relabel"].as_u64(),
            rec["unsure"].as_u64()
        ),
        (Some(2), Some(1), Some(1), Some(1))
    );
    assert_eq!(rec["scores_sha256"], sha.as_str());
    assert_eq!(m["dataset"]["train_examples"], 58);
    let after = fixed.join("s.csv");
    succeed(
        vog()
            .args([
                "score", "--quiet", "--device", "cpu", "--split", "train", "--run",
            ])
            .arg(&fixed)
            .arg("--out")
            .arg(&after),
    );
    let ids = column(&after, "id");
    let trained: HashMap<&String, String> =
        ids.iter().zip(column(&after, "trained_label")).collect();
    assert!(
        !trained.contains_key(&queue[0]) && !trained.contains_key(&queue[5]),
        "dropped"
    );
    assert_eq!(trained[&queue[2]], "3", "relabelled");
    assert!(trained.contains_key(&queue[3]) && trained.contains_key(&queue[4]));
    let before: HashMap<String, String> = column(&scores, "id")
        .into_iter()
        .zip(column(&scores, "trained_label"))
        .collect();
    for (id, label) in &trained {
        if *id != &queue[2] {
            assert_eq!(
                label, &before[*id],
                "{id} keeps the label it was trained with"
            );
        }
    }
    // Another run's decisions, decisions that change nothing, a recipe flag with --from.
    let other = d.path().join("other.csv");
    let out = d.path().join("x").to_str().unwrap().to_string();
    let r = run.to_str().unwrap();
    let h = "id,action,label,scores_sha256";
    for (text, extra, says) in [
        (
            format!("{h}\nnot-in-run,drop,,{sha}\n"),
            None,
            "line 2 names 1 id(s) that are not training examples",
        ),
        (
            format!("{h}\n{},keep,,{sha}\n", queue[0]),
            None,
            "drops and relabels nothing",
        ),
        (
            format!("{h}\n{},drop,,{sha}\n", queue[0]),
            Some("--epochs"),
            "--epochs",
        ),
    ] {
        std::fs::write(&other, text).unwrap();
        let mut args = vec![
            "train",
            "--from",
            r,
            "--decisions",
            other.to_str().unwrap(),
            "--out",
            &out,
        ];
        args.extend(extra.map(|e| [e, "3"]).into_iter().flatten());
        let err = vog_fails(&args);
        assert!(err.contains(says), "{says}: {err}");
    }
}

fn common_sha(path: &Path) -> String {
    use sha2::Digest;
    format!("{:x}", sha2::Sha256::digest(std::fs::read(path).unwrap()))
}

#[test]
fn wrong_decisions_and_selections_are_refused_on_one_line() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("run").to_str().unwrap().to_string();
    let train = |text: &str| {
        let file = d.path().join("decisions.csv");
        std::fs::write(&file, text).unwrap();
        let mut args = vec!["train", "--quiet", "--dataset", "synth", "--device", "cpu"];
        args.extend([
            "--width",
            "2",
            "--epochs",
            "1",
            "--decisions",
            file.to_str().unwrap(),
            "--out",
            &out,
        ]);
        vog_fails(&args)
    };
    let h = "id,action,label,scores_sha256\n";
    for (text, says) in [
        (
            format!("{h}nope,drop,,a\n"),
            "line 2 names 1 id(s) that are not training examples",
        ),
        (
            format!("{h}train/000001,drop,,a\ntrain/000001,keep,,a\n"),
            "line 3: 'train/000001' was decided already on line 2",
        ),
        (
            format!("{h}train/000001,delete,,a\n"),
            "line 2: unknown action 'delete'",
        ),
        (
            format!("{h}train/000001,relabel,bird,a\n"),
            "line 2: the new label of 'train/000001'",
        ),
        (
            format!("{h}train/000001,relabel,,a\n"),
            "line 2: relabel of 'train/000001' without a label",
        ),
        (
            format!("{h}train/000001,drop,,a\ntrain/000002,drop,,b\n"),
            "line 3: decided on another scores file",
        ),
        (
            format!("{h}test/000001,drop,,a\n"),
            "line 2: 'test/000001' is a test example",
        ),
        (
            "id,label\ntrain/000001,1\n".to_string(),
            "needs the columns id,action,label",
        ),
    ] {
        let err = train(&text);
        assert!(err.contains(says), "{says}: {err}");
    }
    assert!(!Path::new(&out).join("run.json").exists());
}
