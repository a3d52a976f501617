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
    let split = &e["splits"][0];
    assert_eq!(split["split"], "test");
    assert_eq!(split["examples"], 100);
    assert_eq!(split["error"], 20.0);
    let logit = &split["targets"][0];
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
    assert_eq!(logit["misclassification"]["auroc"], 1.0);
    assert_eq!(logit["misclassification"]["positives"], 20);
    assert_eq!(logit["verdict"], "higher_is_harder");
    assert!(logit["memorization"].is_null());
    // Class level: class 1 has twice the mean |raw VoG| and the same error: two points.
    let classes = logit["class_level"]["classes"].as_array().unwrap();
    assert_eq!(classes.len(), 2);
    assert_eq!(classes[0]["false_negative_rate"], 0.2);
    let m0 = classes[0]["mean_abs_vog_raw"].as_f64().unwrap();
    assert!((m0 - 50.0e-3).abs() < 1e-12, "{m0}");
    let lp = &split["targets"][1];
    assert_eq!(lp["target"], "logprob");
    assert_eq!(lp["misclassification"]["auroc"], 0.0);
    assert_eq!(lp["verdict"], "higher_is_easier");
    // The difficulty leaderboard ranks every column, best first, inverted ones last.
    let board = &e["leaderboards"][0];
    assert_eq!(board["question"], "difficulty");
    assert_eq!(
        (board["positives"].as_u64(), board["examples"].as_u64()),
        (Some(20), Some(100))
    );
    let names: Vec<&str> = board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["score"].as_str().unwrap())
        .collect();
    assert_eq!(names[0], "vog");
    assert_eq!(*names.last().unwrap(), "vog_logprob");
    assert_eq!(board["entries"][0]["top10_error"], 100.0);
    assert_eq!(e["leaderboards"].as_array().unwrap().len(), 1);

    for f in [
        "eval.json",
        "deciles.csv",
        "groups.csv",
        "classes.csv",
        "leaderboards.csv",
    ] {
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
    assert!(deciles.starts_with("split,target,group"));

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
    assert!(table.contains("-> higher score = harder"), "{table}");
    assert!(table.contains("-> higher score = easier"), "{table}");
    assert!(table.contains("== test difficulty"), "{table}");
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
    let m = &e["splits"][0]["targets"][0]["memorization"];
    // The 10 shuffled examples (i >= 90) have high raw VoG, (1 + label)(1 + i) 1e-3, but
    // class 1's examples from i = 46 on score higher than class 0's shuffled ones.
    assert_eq!(m["k"], 10);
    assert_eq!(m["shuffled"]["count"], 10);
    assert_eq!(m["clean"]["count"], 90);
    let auroc = m["auroc"].as_f64().unwrap();
    assert!(auroc > 0.8 && auroc < 1.0, "{auroc}");
    assert!(m["ci_low"].as_f64().unwrap() < auroc && m["ci_high"].as_f64().unwrap() > auroc);
    // Ten shuffled examples: too few for any verdict, and the table says why.
    let board = &e["leaderboards"][0];
    assert_eq!(board["question"], "memorization");
    assert!(board["entries"]
        .as_array()
        .unwrap()
        .iter()
        .all(|x| x["verdict"] == "not_enough_evidence"));
    let o = succeed(vog().arg("eval").arg(&scores));
    let table = String::from_utf8(o.stdout).unwrap();
    assert!(
        table.contains("not enough evidence (10 positives, 20 needed)"),
        "{table}"
    );
    assert!(dir
        .path()
        .join("train-eval/memorization-logit.png")
        .is_file());
    let c = &e["comparison"];
    assert_eq!(c["spearman"], 1.0);
    assert_eq!(c["top10_overlap"], 1.0);
}

#[test]
fn flagged_examples_get_their_own_leaderboard() {
    let dir = tempfile::tempdir().unwrap();
    let scores = dir.path().join("s.csv");
    write_scores(&scores, false);
    // The 25 highest-vog examples, as a CSV with an id column and as a plain list.
    let ids: Vec<String> = (75..100).map(|i| format!("test/{i:03}")).collect();
    let csv = dir.path().join("flagged.csv");
    std::fs::write(&csv, format!("id,why\n{}\n", ids.join(",x\n") + ",x")).unwrap();
    let list = dir.path().join("flagged.txt");
    std::fs::write(&list, format!("# suspects\n{}\n", ids.join("\n"))).unwrap();
    for file in [&csv, &list] {
        let o = succeed(
            vog()
                .arg("eval")
                .arg(&scores)
                .arg("--flagged")
                .arg(file)
                .args(["--format", "json"]),
        );
        let e: Value = serde_json::from_slice(&o.stdout).unwrap();
        let board = &e["leaderboards"][1];
        assert_eq!(board["question"], "flagged");
        assert_eq!(board["positives"], 25);
        assert_eq!(board["entries"][0]["score"], "vog");
        assert_eq!(board["entries"][0]["auroc"], 1.0);
        assert_eq!(board["entries"][0]["verdict"], "higher_is_harder");
    }
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

    // A non-finite score names its row and column.
    let nan = write(
        "nan.csv",
        &format!("{header}a,test,0,0,c,0,false,0,true,1,NaN\nb,test,1,1,d,1,false,0,false,2,0\n"),
    );
    let err = vog_fails(&["eval", &nan]);
    assert!(
        err.contains("row 2") && err.contains("column 'vog' holds 'NaN'"),
        "{err}"
    );

    // Flagged ids: unknown ones and duplicates are refused, naming them.
    let ok_s = ok.to_str().unwrap();
    let flagged = write("flagged.txt", "test/001\nnope/1\nnope/2\nnope/3\nnope/4\n");
    let err = vog_fails(&["eval", ok_s, "--flagged", &flagged]);
    assert!(
        err.contains("4 id(s)") && err.contains("nope/1, nope/2, nope/3, ..."),
        "{err}"
    );
    let twice = write("twice.txt", "test/001\ntest/001\n");
    let err = vog_fails(&["eval", ok_s, "--flagged", &twice]);
    assert!(
        err.contains("line 2: 'test/001' is listed already on line 1"),
        "{err}"
    );

    // Without its sidecar a scores file cannot say which target its plain columns hold.
    std::fs::remove_file(dir.path().join("ok.json")).unwrap();
    let err = vog_fails(&["eval", ok.to_str().unwrap()]);
    assert!(err.contains("ok.json") && err.contains("sidecar"), "{err}");
}
