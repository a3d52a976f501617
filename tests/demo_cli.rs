//! `vog demo` at a reduced size: its printed leaderboards are what `vog eval` computes from
//! the demo's own score files, no verdict contradicts the interval printed beside it, the
//! network fits its noisy training labels, and the report opens with the leaderboards.
mod common;
use common::{succeed, vog};
use serde_json::Value;
use std::path::Path;

fn eval_json(scores: &Path) -> Value {
    let out = succeed(vog().arg("eval").arg(scores).args(["--format", "json"]));
    serde_json::from_slice(&out.stdout).unwrap()
}

fn board<'a>(e: &'a Value, question: &str) -> &'a Value {
    e["leaderboards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["question"] == question)
        .unwrap_or_else(|| panic!("no {question} leaderboard"))
}

#[test]
fn reduced_demo() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("demo");
    let out = succeed(
        vog()
            .args([
                "demo", "--train", "300", "--test", "200", "--epochs", "30", "--width", "8",
            ])
            .args(["--device", "cpu", "--out"])
            .arg(&out_dir),
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(stderr.starts_with("vog demo: synth"), "{stderr}");

    // The network fits the training set, shuffled labels included.
    let first = stdout.lines().next().unwrap();
    assert!(
        first.contains("train accuracy 100.0%") || first.contains("train accuracy 99."),
        "{first}"
    );

    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    assert!(summary["final_train_accuracy"].as_f64().unwrap() >= 0.99);
    let boards = summary["leaderboards"].as_array().unwrap();
    let questions: Vec<&str> = boards
        .iter()
        .map(|b| b["question"].as_str().unwrap())
        .collect();
    assert_eq!(questions, vec!["difficulty", "memorization", "atypical"]);

    // The printed figures are those `vog eval` computes from the demo's files.
    let run = out_dir.join("run");
    let test = eval_json(&run.join("scores-test-all.csv"));
    let train = eval_json(&run.join("scores-train-all.csv"));
    for (printed, e) in [
        (&boards[0], board(&test, "difficulty")),
        (&boards[1], board(&train, "memorization")),
    ] {
        assert_eq!(printed["entries"], e["entries"]);
    }
    // Each leaderboard is a heading followed by one indented line per score, in order.
    let mut blocks: Vec<Vec<&str>> = Vec::new();
    // Scores that restate the outcome (test difficulty: loss, prob, el2n) say so after the
    // verdict, and only there.
    let restates = " (restates the outcome: from the last checkpoint's prediction)";
    for line in stdout.lines().skip(1) {
        if line.starts_with("  ") {
            let marked = line.ends_with(restates);
            let line = line.trim_end_matches(restates);
            let score = line.split_whitespace().next().unwrap();
            let first_board = blocks.len() == 1;
            assert_eq!(
                marked,
                first_board && ["loss", "prob", "el2n"].contains(&score),
                "{line}"
            );
            blocks.last_mut().unwrap().push(line);
        } else if !line.starts_with("report: ") {
            blocks.push(Vec::new());
        }
    }
    assert_eq!(blocks.len(), boards.len(), "{stdout}");
    for (b, lines) in boards.iter().zip(&blocks) {
        let entries = b["entries"].as_array().unwrap();
        assert_eq!(entries.len(), lines.len());
        for (x, line) in entries.iter().zip(lines) {
            let score = x["score"].as_str().unwrap();
            assert!(
                line.trim_start().starts_with(&format!("{score} ")),
                "{line}"
            );
            if let Some(a) = x["auroc"].as_f64() {
                assert!(line.contains(&format!("AUROC {a:.3} [")), "{line}");
            }
            // No verdict contradicts its interval.
            let verdict = x["verdict"].as_str().unwrap();
            let (lo, hi) = (x["ci_low"].as_f64(), x["ci_high"].as_f64());
            let enough = b["positives"].as_u64().unwrap() >= 20;
            match verdict {
                "not_enough_evidence" => assert!(line.contains("not enough evidence"), "{line}"),
                _ => {
                    assert!(enough, "{line}");
                    let claimed = lo.unwrap() > 0.5;
                    assert!(claimed || hi.unwrap() < 0.5, "{line}");
                    let harder = claimed == x["higher_is_harder"].as_bool().unwrap();
                    let expected = if harder {
                        "higher_is_harder"
                    } else {
                        "higher_is_easier"
                    };
                    assert_eq!(verdict, expected, "{line}");
                    assert!(
                        line.ends_with(if harder { "= harder" } else { "= easier" }),
                        "{line}"
                    );
                }
            }
        }
    }
    // VoG and the companion scores stand side by side.
    for score in [
        "vog",
        "vog_logprob",
        "loss",
        "el2n",
        "confidence",
        "aum",
        "forgetting",
    ] {
        assert!(stdout.contains(&format!("  {score} ")), "{score}: {stdout}");
    }
    let planted = std::fs::read_to_string(out_dir.join("planted.csv")).unwrap();
    assert_eq!(planted.lines().count(), 1 + 15);
    // Planted images whose label was also shuffled are left out of the atypical question.
    let atypical = boards[2]["positives"].as_u64().unwrap();
    assert!(atypical > 5 && atypical <= 15, "{atypical}");

    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    for part in [
        "Which score finds what",
        "Where to look first",
        "atypical (planted atypical training images)",
        "Data Map of",
    ] {
        assert!(html.contains(part), "{part}");
    }
    let at = |part: &str| html.find(part).unwrap();
    assert!(at("Where to look first") < at("Which score finds what"));
    assert!(at("Which score finds what") < at("<h2>Run</h2>"));
}

#[test]
fn demo_with_prune() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("demo");
    let out = succeed(
        vog()
            .args(["demo", "--train", "300", "--test", "60", "--epochs", "5"])
            .args([
                "--width", "2", "--prune", "--device", "cpu", "--quiet", "--out",
            ])
            .arg(&out_dir),
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        stdout.contains("test accuracy after removing the top fraction by each score:"),
        "{stdout}"
    );
    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    let rows = summary["prune"]["rows"].as_array().unwrap();
    let removals: Vec<&str> = rows
        .iter()
        .map(|r| r["removal"].as_str().unwrap())
        .collect();
    // configs/demo.toml [prune]: none, then random and four scores at one fraction.
    assert_eq!(
        removals,
        ["none", "random", "vog", "vog_logprob", "loss", "aum"]
    );
    assert!(rows
        .iter()
        .all(|r| r["accuracies"].as_array().unwrap().len() == 2));
    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    assert!(html.contains("Acting on the ranking: test accuracy after removal"));
}
