//! `vog eval` on hand-made score files whose answers are known, its outputs, and its errors.
mod common;
use common::{succeed, vog, vog_fails, write_sidecar};
use serde_json::Value;
use std::fmt::Write as _;
use std::path::Path;

/// 100 test examples of two classes; vog = i / 10, misclassified where i >= 80, and a
/// second target (`vog_logprob`) that is the negative.
fn write_scores(path: &Path, noisy_train: bool) {
    let mut s = String::from(
        "id,split,index,label,label_name,trained_label,noisy,predicted,correct,vog_raw,vog,vog_raw_logprob,vog_logprob\n",
    );
    for i in 0..100 {
        let label = i % 2;
        let wrong = i >= 80;
        let split = if noisy_train { "train" } else { "test" };
        let noisy = noisy_train && i >= 90;
        let z = i as f64 / 10.0;
        // Class 1's raw VoG is twice class 0's.
        let raw = (1 + label) as f64 * (1.0 + i as f64) * 1e-3;
        writeln!(
            s,
            "{split}/{i:03},{split},{i},{label},c{label},{label},{noisy},{},{},{raw},{z},{raw},{}",
            if wrong { 1 - label } else { label },
            !wrong,
            -z
        )
        .unwrap();
    }
    std::fs::write(path, s).unwrap();
    write_sidecar(path, &["logit", "logprob"]);
}

#[test]
fn known_answers_and_outputs() {
    let dir = tempfile::tempdir().unwrap();
    let scores = dir.path().join("s.csv");
    write_scores(&scores, false);
    let out = dir.path().join("ev");
    let o = succeed(
        vog()
            .arg("eval")
            .arg(&scores)
            .arg("--out")
            .arg(&out)
            .args(["--format", "json"]),
    );
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(e["examples"], 100);
    assert_eq!(e["error"], 20.0);
    let logit = &e["targets"][0];
    assert_eq!(logit["target"], "logit");
    let dec: Vec<f64> = logit["deciles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["error"].as_f64().unwrap())
        .collect();
    assert_eq!(
        dec,
        vec![0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 100.0, 100.0]
    );
    let g: Vec<f64> = logit["bottom_all_top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["error"].as_f64().unwrap())
        .collect();
    assert_eq!(g, vec![0.0, 20.0, 100.0]);
    assert_eq!(logit["misclassification_auroc"], 1.0);
    assert_eq!(logit["verdict"], "ranks_difficulty");
    assert!(logit["memorization"].is_null());
    // Class level: class 1 has twice the mean |raw VoG| and the same error: two points.
    let classes = logit["class_level"]["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 2);
    assert_eq!(classes[0]["false_negative_rate"], 0.2);
    let m0 = classes[0]["mean_abs_vog_raw"].as_f64().unwrap();
    assert!((m0 - 50.0e-3).abs() < 1e-12, "{m0}");
    let lp = &e["targets"][1];
    assert_eq!(lp["target"], "logprob");
    assert_eq!(lp["misclassification_auroc"], 0.0);
    assert_eq!(lp["verdict"], "inverted");

    for f in ["eval.json", "deciles.csv", "groups.csv", "classes.csv"] {
        assert!(out.join(f).metadata().unwrap().len() > 50, "{f}");
    }
    for t in ["logit", "logprob"] {
        for p in ["deciles", "groups", "classes", "histogram"] {
            let png = out.join(format!("{p}-{t}.png"));
            let img = image::open(&png).unwrap();
            assert_eq!((img.width(), img.height()), (640, 400), "{}", png.display());
            let svg = std::fs::read_to_string(out.join(format!("{p}-{t}.svg"))).unwrap();
            assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        }
    }
    let deciles = std::fs::read_to_string(out.join("deciles.csv")).unwrap();
    assert_eq!(deciles.lines().count(), 1 + 20);

    // The table names the verdict of each target.
    let o = vog()
        .arg("eval")
        .arg(&scores)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success());
    let table = String::from_utf8(o.stdout).unwrap();
    assert!(table.contains("-> VoG ranks difficulty"), "{table}");
    assert!(
        table.contains("-> inverted: high-VoG examples are the easier ones"),
        "{table}"
    );
}

#[test]
fn memorization_and_compare() {
    let dir = tempfile::tempdir().unwrap();
    let scores = dir.path().join("train.csv");
    write_scores(&scores, true);
    let o = succeed(
        vog()
            .arg("eval")
            .arg(&scores)
            .args(["--format", "json", "--compare"])
            .arg(&scores),
    );
    let e: Value = serde_json::from_slice(&o.stdout).unwrap();
    let m = &e["targets"][0]["memorization"];
    // The 10 shuffled examples (i >= 90) have high raw VoG, (1 + label)(1 + i) 1e-3, but
    // class 1's examples from i = 46 on score higher than class 0's shuffled ones.
    assert_eq!(m["k"], 10);
    assert_eq!(m["shuffled"]["count"], 10);
    assert_eq!(m["clean"]["count"], 90);
    let auroc = m["auroc"].as_f64().unwrap();
    assert!(auroc > 0.8 && auroc < 1.0, "{auroc}");
    assert!(dir
        .path()
        .join("train-eval/memorization-logit.png")
        .is_file());
    let c = &e["comparison"];
    assert_eq!(c["spearman"], 1.0);
    assert_eq!(c["top10_overlap"], 1.0);
}

#[test]
fn bad_score_files() {
    let dir = tempfile::tempdir().unwrap();
    let write = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        write_sidecar(&p, &["logit"]);
        p.to_str().unwrap().to_string()
    };
    let header =
        "id,split,index,label,label_name,trained_label,noisy,predicted,correct,vog_raw,vog\n";
    let empty = write("empty.csv", header);
    let err = vog_fails(&["eval", &empty]);
    assert!(err.contains("holds no examples"), "{err}");
    let single = write(
        "single.csv",
        &format!("{header}a,test,0,0,c,0,false,0,true,1,0\nb,test,1,0,c,0,false,0,true,2,0\n"),
    );
    let err = vog_fails(&["eval", &single]);
    assert!(err.contains("single class"), "{err}");
    let no_correct = write("nc.csv", "id,label,vog,vog_raw\na,0,1,1\n");
    let err = vog_fails(&["eval", &no_correct]);
    assert!(
        err.contains("lacks the column(s) split, index, label_name, trained_label, noisy, predicted, correct"),
        "{err}"
    );
    let no_vog = write("nv.csv", "id,label,correct\na,0,true\n");
    let err = vog_fails(&["eval", &no_vog]);
    assert!(err.contains("vog, vog_raw"), "{err}");
    let ok = dir.path().join("ok.csv");
    write_scores(&ok, false);
    let other = write(
        "other.csv",
        &format!("{header}x,test,0,0,c,0,false,0,true,1,0\ny,test,1,1,d,1,false,0,false,2,0\n"),
    );
    let err = vog_fails(&["eval", ok.to_str().unwrap(), "--compare", &other]);
    assert!(err.contains("do not hold the same examples"), "{err}");
    assert!(!dir.path().join("ok-eval").exists());

    // Without its sidecar a scores file cannot say which target its plain columns hold.
    std::fs::remove_file(dir.path().join("ok.json")).unwrap();
    let err = vog_fails(&["eval", ok.to_str().unwrap()]);
    assert!(err.contains("ok.json") && err.contains("sidecar"), "{err}");
}
