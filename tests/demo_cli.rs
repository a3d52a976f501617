//! `vog demo` at a reduced size: its printed figures are what `vog eval` computes from the
//! demo's own score files, the network fits its noisy training labels, and the report has
//! one row per target.
mod common;
use common::{succeed, vog};
use serde_json::Value;
use std::path::Path;

fn eval_json(scores: &Path) -> Value {
    let out = succeed(vog().arg("eval").arg(scores).args(["--format", "json"]));
    serde_json::from_slice(&out.stdout).unwrap()
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
    assert!(stdout.lines().count() <= 10, "{stdout}");

    // The network fits the training set, shuffled labels included.
    let first = stdout.lines().next().unwrap();
    assert!(
        first.contains("train accuracy 100.0%") || first.contains("train accuracy 99."),
        "{first}"
    );

    let run = out_dir.join("run");
    let test = eval_json(&run.join("scores-test-all.csv"));
    let train = eval_json(&run.join("scores-train-all.csv"));
    let rows: Vec<&str> = stdout.lines().skip(2).take(4).collect();
    for (i, target) in ["logit", "prob", "logprob", "margin"].iter().enumerate() {
        let line = rows[i];
        let fields: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(fields[0], *target, "{line}");
        let t = &test["targets"][i];
        assert_eq!(t["target"], *target);
        for (k, f) in fields[1..4].iter().enumerate() {
            let printed: f64 = f.trim_end_matches('%').parse().unwrap();
            let expected = t["bottom_all_top"][k]["error"].as_f64().unwrap();
            assert!(
                (printed - expected).abs() <= 0.05,
                "{target} group {k}: {printed} vs {expected}"
            );
        }
        let printed: f64 = fields[4].parse().unwrap();
        let expected = train["targets"][i]["memorization"]["auroc"]
            .as_f64()
            .unwrap();
        assert!(
            (printed - expected).abs() <= 5e-4,
            "{target} shuffled AUROC: {printed} vs {expected}"
        );
        let verdict = match t["verdict"].as_str().unwrap() {
            "ranks_difficulty" => "VoG ranks difficulty",
            "inverted" => "inverted: high-VoG examples are the easier ones",
            _ => "no signal",
        };
        assert!(line.ends_with(verdict), "{line} vs {verdict}");
        let atypical: f64 = fields[5].parse().unwrap();
        assert!((0.0..=1.0).contains(&atypical));
    }

    let summary: Value =
        serde_json::from_str(&std::fs::read_to_string(out_dir.join("summary.json")).unwrap())
            .unwrap();
    assert!(summary["final_train_accuracy"].as_f64().unwrap() >= 0.99);
    assert_eq!(summary["rows"].as_array().unwrap().len(), 4);
    let planted = std::fs::read_to_string(out_dir.join("planted.csv")).unwrap();
    assert_eq!(planted.lines().count(), 1 + 15);

    let html = std::fs::read_to_string(out_dir.join("report.html")).unwrap();
    for target in ["logit", "prob", "logprob", "margin"] {
        // Verdict and decile tables of both evaluations, and the planted-example table.
        assert_eq!(
            html.matches(&format!(r#"<td class="l">{target}</td>"#))
                .count(),
            5,
            "{target}"
        );
    }
    assert!(html.contains("Planted atypical examples"));
}
