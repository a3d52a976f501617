//! `vog report` on a small scored synthetic run: every section, every image embedded, nothing
//! external; and the report of a run that was never scored.
mod common;
use common::{python, train_synth, vog, vog_fails};

#[test]
fn self_contained_report() {
    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let args = [
        "--train-subset",
        "300",
        "--test-subset",
        "100",
        "--width",
        "4",
        "--epochs",
        "3",
    ];
    train_synth(&run, &[&args[..], &["--label-noise", "0.1"]].concat());
    let err = vog_fails(&[
        "report",
        "--run",
        run.to_str().unwrap(),
        "--out",
        dir.path().join("r.html").to_str().unwrap(),
    ]);
    assert!(err.contains("was never scored"), "{err}");
    assert!(!dir.path().join("r.html").exists());

    for split in ["test", "train"] {
        vog()
            .args([
                "score",
                "--quiet",
                "--device",
                "cpu",
                "--target",
                "logit,logprob",
                "--split",
                split,
                "--run",
            ])
            .arg(&run)
            .assert()
            .success();
    }
    let out = dir.path().join("r.html");
    vog()
        .args(["report", "--run"])
        .arg(&run)
        .arg("--out")
        .arg(&out)
        .assert()
        .success();
    let html = std::fs::read_to_string(&out).unwrap();

    // Scores of one run under the header of a folder that lacks its checkpoints are refused.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    std::fs::copy(run.join("run.json"), other.join("run.json")).unwrap();
    let err = vog_fails(&[
        "report",
        "--run",
        other.to_str().unwrap(),
        "--scores",
        run.join("scores-test-all.csv").to_str().unwrap(),
        "--out",
        dir.path().join("x.html").to_str().unwrap(),
    ]);
    assert!(err.contains("lacks or holds damaged"), "{err}");
    assert!(!dir.path().join("x.html").exists());
    assert!(html.starts_with("<!DOCTYPE html>") && html.trim_end().ends_with("</html>"));
    for section in [
        "<h2>Run</h2>",
        "Training curves",
        "Evaluation of scores-test-all.csv",
        "Evaluation of scores-train-all.csv",
        "Which score finds what",
        "<nav id=\"toc\">",
        "<details open class=\"section\" id=\"answers\"><summary><h2>Where to look first</h2>",
        "Regions: ambiguous = the third with the highest variability",
        "test difficulty (misclassified test examples) &mdash; scores-test-all.csv",
        "memorization (shuffled training labels) &mdash; scores-train-all.csv",
        "Data Map of scores-train-all.csv",
        "Does VoG rank difficulty?",
        "Error (%) by VoG decile",
        "Highest VoG",
        "Lowest VoG",
        "pattern3: highest",
        "pattern3: lowest",
        "The 200 highest-VoG examples",
        "loss (restates the outcome)",
        "Not crowned: ",
    ] {
        assert!(html.contains(section), "missing {section}");
    }
    // One verdict row per target in each evaluation.
    assert_eq!(
        html.matches(r#"<td class="l">logprob</td>"#).count(),
        4,
        "2 tables x 2 evaluations"
    );
    // Every image is embedded; nothing is fetched from elsewhere.
    let imgs = html.matches("<img ").count();
    assert_eq!(html.matches(r#"src="data:image/png;base64,"#).count(), imgs);
    // The first section: a card per question, with 12 thumbnails and a review command
    // where a score has the evidence.
    let answers = html.split("id=\"summary\"").next().unwrap();
    let cards = answers.matches(r#"<div class="card">"#).count();
    let answered = answers.matches("Best here: <b>").count();
    assert_eq!(cards, 2, "test difficulty and memorization");
    assert_eq!(answers.matches("<img ").count(), 12 * answered);
    assert_eq!(answers.matches("<code>vog review ").count(), answered);
    let imgs = imgs - 12 * answered;
    // The Data Map + 2 curves + 2 evaluations x 2 targets x 4 plots + memorization plots for
    // the train split (2) + 50 overall tiles + 10 classes x 16 tiles + 100 table thumbnails
    // (test has 100 rows).
    assert_eq!(imgs, 1 + 2 + 16 + 2 + 50 + 160 + 100);
    for external in [
        "http://",
        "https://",
        "<link",
        "src=\"/",
        "src=\"file:",
        "@import",
        "url(",
    ] {
        assert!(!html.contains(external), "references {external}");
    }
    let table = html
        .split(r#"id="top-table""#)
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    assert_eq!(table.matches("<tr>").count(), 1 + 100);
    // Captions name the whole id (its split included), and fit their tiles in a browser.
    assert!(
        html.contains("<figcaption>#1 test/<wbr>"),
        "whole ids in captions"
    );
    assert!(
        html.contains("<figcaption>#1 train/<wbr>"),
        "whole ids in captions"
    );
    captions_fit_in_a_browser(&out, html.matches("<figure>").count());
}

/// tests/browser/report.py: at 1400 px no caption is wider than its tile or runs into the next.
fn captions_fit_in_a_browser(page: &std::path::Path, figures: usize) {
    let out = std::process::Command::new(python())
        .arg("tests/browser/report.py")
        .arg(page)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(said.trim(), figures.to_string(), "every caption measured");
}
