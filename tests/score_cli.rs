//! End to end: synthetic data -> `vog train` (3 saved epochs) -> `vog score` -> `vog rank`
//! -> image grids, and the errors of bad runs, stages, score files and flags.
mod common;
use common::{succeed, train_synth, vog, vog_fails, write_sidecar};
use serde_json::Value;
use std::path::{Path, PathBuf};
use vog::data::cifar::{self, Variant};

/// Writes synthetic CIFAR-format data and trains a small run with label noise on it.
fn trained_run(dir: &Path) -> (PathBuf, PathBuf) {
    let data = dir.join("data");
    vog()
        .args(["data", "synth", "--train", "200", "--test", "100", "--out"])
        .arg(&data)
        .assert()
        .success();
    let run = dir.join("run");
    vog()
        .args(["train", "--dataset", "cifar10", "--data-dir"])
        .arg(&data)
        .args([
            "--width",
            "4",
            "--epochs",
            "3",
            "--device",
            "cpu",
            "--quiet",
            "--label-noise",
            "0.2",
        ])
        .arg("--out")
        .arg(&run)
        .assert()
        .success();
    (data, run)
}

fn csv_rows(path: &Path) -> (Vec<String>, Vec<Vec<String>>) {
    let mut r = csv::Reader::from_path(path).unwrap();
    let headers = r.headers().unwrap().iter().map(String::from).collect();
    let rows = r
        .records()
        .map(|rec| rec.unwrap().iter().map(String::from).collect())
        .collect();
    (headers, rows)
}

#[test]
fn train_score_rank_grid() {
    let dir = tempfile::tempdir().unwrap();
    let (data, run) = trained_run(dir.path());
    let scores = dir.path().join("scores.csv");
    let score = |out: &Path, extra: &[&str]| {
        succeed(
            vog()
                .args(["score", "--split", "both", "--target", "logit,margin"])
                .args(["--device", "cpu", "--run"])
                .arg(&run)
                .arg("--out")
                .arg(out)
                .args(extra),
        )
    };
    let out = score(&scores, &[]);
    assert!(String::from_utf8_lossy(&out.stdout)
        .contains("scored 300 examples of both splits at epochs [1, 2, 3]"));

    // bf16 scoring ranks as fp32 does, and the sidecar says which format it used.
    let bf16 = dir.path().join("scores-bf16.csv");
    succeed(
        vog()
            .args([
                "score",
                "--split",
                "both",
                "--target",
                "logit,margin",
                "--device",
                "cpu",
            ])
            .args(["--precision", "bf16", "--quiet", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(&bf16),
    );
    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(bf16.with_extension("json")).unwrap()).unwrap();
    assert_eq!(side["precision"], "bf16");
    let raw = |p: &Path| -> Vec<f64> {
        let (h, rows) = csv_rows(p);
        let c = h.iter().position(|x| x == "vog_raw").unwrap();
        rows.iter().map(|r| r[c].parse().unwrap()).collect()
    };
    let rho = common::spearman(&raw(&scores), &raw(&bf16));
    assert!(rho > 0.99, "bf16 vs fp32 Spearman {rho}");

    let (headers, rows) = csv_rows(&scores);
    assert_eq!(
        headers.join(","),
        "id,split,index,label,label_name,trained_label,noisy,predicted,correct,vog_raw,vog,vog_raw_margin,vog_margin,\
         loss,el2n,prob,confidence,variability,correctness,forgetting,aum"
    );
    // Training dynamics exist for training examples only; the checkpoint scores for all.
    assert!(rows[..200]
        .iter()
        .all(|r| r[13..].iter().all(|v| !v.is_empty())));
    assert!(rows[200..]
        .iter()
        .all(|r| r[16..].iter().all(|v| v.is_empty())));
    assert!(rows[200..].iter().all(|r| !r[13].is_empty()));
    assert_eq!(rows.len(), 300);
    assert_eq!(rows[0][0], "train/000000");
    assert_eq!(rows[200][0], "test/000000");
    assert_eq!(rows[200][2], "0");
    // 20% of the training labels took part in the shuffle; most of them changed.
    let noisy: Vec<&Vec<String>> = rows.iter().filter(|r| r[6] == "true").collect();
    assert!(noisy.len() > 20 && noisy.len() <= 40, "{}", noisy.len());
    assert!(noisy.iter().all(|r| r[1] == "train" && r[3] != r[5]));
    // Per split and trained class, the normalized score has mean 0 and std 1.
    for split in ["train", "test"] {
        for class in 0..10 {
            let z: Vec<f64> = rows
                .iter()
                .filter(|r| r[1] == split && r[5] == class.to_string())
                .map(|r| r[10].parse().unwrap())
                .collect();
            let mean = z.iter().sum::<f64>() / z.len() as f64;
            let var = z.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / z.len() as f64;
            assert!(
                mean.abs() < 1e-9 && (var - 1.0).abs() < 1e-9,
                "{split} {class}: {mean} {var}"
            );
        }
    }
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("scores.json")).unwrap())
            .unwrap();
    assert_eq!(meta["format"], "vog-scores/1");
    assert_eq!(meta["epochs"], serde_json::json!([1, 2, 3]));
    assert_eq!(meta["targets"], serde_json::json!(["logit", "margin"]));
    assert_eq!(meta["variant"]["reduce"], "paper");
    assert_eq!(meta["variant"]["channels"], "mean");
    assert!(meta["versions"]["libtorch"]
        .as_str()
        .unwrap()
        .starts_with("2.11.0"));

    // Every score column ranks; a training-only one ranks the training examples.
    let out = succeed(vog().arg("rank").arg(&scores).args([
        "--column", "aum", "--lowest", "--top", "500", "--format", "csv",
    ]));
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1 + 200);
    assert!(text.lines().skip(1).all(|l| l.contains(",train,")));

    // A planted perfect score for the shuffled labels tops the memorization leaderboard.
    let planted = dir.path().join("planted.csv");
    let mut w = csv::Writer::from_path(&planted).unwrap();
    w.write_record(&headers).unwrap();
    for r in &rows {
        let mut r = r.clone();
        r[13] = if r[6] == "true" { "1e0" } else { "0e0" }.into();
        w.write_record(&r).unwrap();
    }
    w.flush().unwrap();
    // The sidecar of a hand-made file records no digest (vog's would not match it).
    let mut side: Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("scores.json")).unwrap()).unwrap();
    side.as_object_mut().unwrap().remove("csv");
    std::fs::write(dir.path().join("planted.json"), side.to_string()).unwrap();
    let out = succeed(vog().arg("eval").arg(&planted).args(["--format", "json"]));
    let e: Value = serde_json::from_slice(&out.stdout).unwrap();
    let memo = e["leaderboards"]
        .as_array()
        .unwrap()
        .iter()
        .find(|l| l["question"] == "memorization")
        .unwrap();
    assert_eq!(memo["entries"][0]["score"], "loss");
    assert_eq!(memo["entries"][0]["auroc"], 1.0);
    assert_eq!(memo["entries"][0]["precision_at_k"], 1.0);
    assert_eq!(e["splits"].as_array().unwrap().len(), 2);

    // rank: the top 25 by vog, ties by id, as JSON.
    let out = vog()
        .arg("rank")
        .arg(&scores)
        .args(["--format", "json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let ranked: Value = serde_json::from_slice(&out.stdout).unwrap();
    let ranked = ranked.as_array().unwrap();
    assert_eq!(ranked.len(), 25);
    let mut expect: Vec<(f64, String)> = rows
        .iter()
        .map(|r| (r[10].parse().unwrap(), r[0].clone()))
        .collect();
    expect.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
    for (r, (score, id)) in ranked.iter().zip(&expect) {
        assert_eq!(r["id"].as_str().unwrap(), id.as_str());
        assert!((r["score"].as_f64().unwrap() - score).abs() <= 1e-12 * score.abs());
    }

    // The grid: 5x5 tiles of 32x32 images scaled 3x with a 2-pixel frame, a 38-pixel
    // caption under each and 2-pixel gaps, and its legend beside it.
    let grid = dir.path().join("top.png");
    vog()
        .arg("rank")
        .arg(&scores)
        .args(["--class", "pattern3", "--grid"])
        .arg(&grid)
        .assert()
        .success();
    let img = image::open(&grid).unwrap().to_rgb8();
    let class3: Vec<&Vec<String>> = rows.iter().filter(|r| r[4] == "pattern3").collect();
    assert_eq!(class3.len(), 30);
    assert_eq!(img.dimensions(), (512, 5 * (100 + 38) + 6 * 2));
    let mut top: Vec<&&Vec<String>> = class3.iter().collect();
    top.sort_by(|a, b| {
        b[10]
            .parse::<f64>()
            .unwrap()
            .total_cmp(&a[10].parse().unwrap())
            .then(a[0].cmp(&b[0]))
    });
    // Tile 7 (row 1, column 2) holds the 8th-ranked example's image.
    let data = cifar::load(&data, Variant::Cifar10).unwrap();
    let id = &top[7][0];
    let (split, index) = id.split_once('/').unwrap();
    let index: i64 = index.parse().unwrap();
    let images = if split == "train" {
        &data.train.images
    } else {
        &data.test.as_ref().unwrap().images
    };
    let (x0, y0) = (2 + 2 * 102 + 2, 2 + 102 + 38 + 2);
    let legend = std::fs::read_to_string(grid.with_extension("csv")).unwrap();
    let tile7 = legend.lines().nth(8).unwrap();
    assert!(
        tile7.starts_with(&format!("7,1,2,8,{},", top[7][0])),
        "{legend}"
    );
    for (x, y) in [(0, 0), (5, 17), (31, 31)] {
        let p = img.get_pixel(x0 + 3 * x + 1, y0 + 3 * y + 1);
        for c in 0..3 {
            assert_eq!(
                p[c] as i64,
                images.int64_value(&[index, c as i64, y as i64, x as i64]),
                "{id} ({x},{y})"
            );
        }
    }
    // Frame colour follows `correct`.
    let frame = img.get_pixel(x0 - 1, y0 - 1);
    assert_eq!(frame[1] > frame[0], top[7][8] == "true");

    // Per class: a highest and a lowest grid for every class.
    let pc = dir.path().join("pc.png");
    vog()
        .arg("rank")
        .arg(&scores)
        .args([
            "--per-class",
            "--top",
            "4",
            "--column",
            "vog_raw_margin",
            "--grid",
        ])
        .arg(&pc)
        .assert()
        .success();
    for class in 0..10 {
        for which in ["highest", "lowest"] {
            let p = dir.path().join(format!("pc-pattern{class}-{which}.png"));
            assert_eq!(
                image::open(&p).unwrap().width(),
                2 * 100 + 3 * 2,
                "{}",
                p.display()
            );
        }
    }
}

#[test]
fn score_errors() {
    let dir = tempfile::tempdir().unwrap();
    let (_, run) = trained_run(dir.path());
    let run_s = run.to_str().unwrap();
    let out = dir.path().join("s.csv");
    let out_s = out.to_str().unwrap();
    let cases: [(&[&str], &str); 6] = [
        (&["--stage", "1,4"], "epoch 4 is outside 1..3"),
        (&["--stage", "2"], "VoG needs at least 2"),
        (
            &["--out", "/no/such/dir/s.csv"],
            "cannot write to --out '/no/such/dir/s.csv'",
        ),
        (&["--target", "loss"], "unknown target 'loss'"),
        (&["--out", "x.json"], "must not end in .json"),
        (&["--device", "tpu"], "unknown device"),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["score", "--run", run_s];
        if !extra.contains(&"--out") {
            args.extend(["--out", out_s]);
        }
        args.extend_from_slice(extra);
        let err = vog_fails(&args);
        assert!(err.contains(expected), "{extra:?}: {err}");
        assert!(!out.exists());
    }
    let err = vog_fails(&["score", "--run", dir.path().to_str().unwrap()]);
    assert!(err.contains("is not a vog run"), "{err}");

    // A stage naming an epoch that exists but was not saved.
    let sparse = dir.path().join("sparse");
    let args = [
        "--train-subset",
        "50",
        "--test-subset",
        "20",
        "--width",
        "2",
        "--epochs",
        "3",
    ];
    train_synth(&sparse, &[&args[..], &["--save-epochs", "1,3"]].concat());
    let err = vog_fails(&[
        "score",
        "--run",
        sparse.to_str().unwrap(),
        "--stage",
        "1-2",
        "--out",
        out_s,
    ]);
    assert!(err.contains("epoch 2 was not saved"), "{err}");

    // A manifest that promises another width than its checkpoints hold.
    let manifest = run.join("run.json");
    let text = std::fs::read_to_string(&manifest).unwrap();
    std::fs::write(&manifest, text.replace("\"width\": 4", "\"width\": 8")).unwrap();
    let err = vog_fails(&["score", "--run", run_s, "--out", out_s]);
    assert!(
        err.contains("epoch-0001.safetensors") && err.contains("another width"),
        "{err}"
    );
    std::fs::write(&manifest, &text).unwrap();

    // An output that is a folder is refused before any work.
    let err = vog_fails(&[
        "score",
        "--run",
        run_s,
        "--out",
        dir.path().to_str().unwrap(),
    ]);
    assert!(err.contains("is a folder"), "{err}");

    // A run that has not finished training is refused unless asked for, and the sidecar
    // then says what it lacked.
    std::fs::write(
        &manifest,
        text.replace("\"complete\": true", "\"complete\": false"),
    )
    .unwrap();
    let err = vog_fails(&["score", "--run", run_s, "--out", out_s]);
    assert!(err.contains("--allow-incomplete"), "{err}");
    succeed(vog().args([
        "score",
        "--quiet",
        "--allow-incomplete",
        "--run",
        run_s,
        "--out",
        out_s,
    ]));
    let meta: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("s.json")).unwrap()).unwrap();
    assert_eq!(meta["incomplete"]["finished_epochs"], 3);
    std::fs::remove_file(&out).unwrap();
    std::fs::remove_file(dir.path().join("s.json")).unwrap();
    std::fs::write(&manifest, &text).unwrap();

    // Training dynamics that are truncated, or recorded for another dataset.
    let dynamics = run.join("dynamics/epoch-0002.bin");
    let bytes = std::fs::read(&dynamics).unwrap();
    let train = ["score", "--run", run_s, "--split", "train", "--out", out_s];
    std::fs::write(&dynamics, &bytes[..bytes.len() - 7]).unwrap();
    let err = vog_fails(&train);
    assert!(
        err.contains("epoch-0002.bin") && err.contains("truncated"),
        "{err}"
    );
    let mut foreign = bytes.clone();
    foreign[24..56].copy_from_slice(&[b'0'; 32]);
    std::fs::write(&dynamics, &foreign).unwrap();
    let err = vog_fails(&train);
    assert!(err.contains("another dataset"), "{err}");
    assert!(!out.exists());
    std::fs::write(&dynamics, &bytes).unwrap();

    // Missing checkpoints.
    std::fs::remove_file(run.join("checkpoints/epoch-0002.safetensors")).unwrap();
    let err = vog_fails(&["score", "--run", run_s, "--out", out_s]);
    assert!(err.contains("epoch-0002.safetensors' is missing"), "{err}");
    let empty: Value = serde_json::from_str(&text).unwrap();
    let mut empty = empty;
    empty["saved_epochs"] = serde_json::json!([]);
    std::fs::write(&manifest, serde_json::to_string(&empty).unwrap()).unwrap();
    let err = vog_fails(&["score", "--run", run_s, "--out", out_s]);
    assert!(err.contains("no saved checkpoints"), "{err}");
    assert!(!out.exists());
}

#[test]
fn rank_errors() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.csv");
    std::fs::write(
        &good,
        "id,split,index,label,label_name,trained_label,noisy,predicted,correct,vog_raw,vog\n\
         test/0,test,0,0,cat,0,false,0,true,1e-3,1.0\n\
         test/1,test,1,1,dog,1,false,0,false,2e-3,-1.0\n",
    )
    .unwrap();
    write_sidecar(&good, &["logit"]);
    let g = good.to_str().unwrap();
    let err = vog_fails(&["rank", g, "--top", "0"]);
    assert!(err.contains("--top must be at least 1"), "{err}");
    let err = vog_fails(&["rank", g, "--class", "bird"]);
    assert!(
        err.contains("--class 'bird'") && err.contains("cat, dog"),
        "{err}"
    );
    let err = vog_fails(&["rank", g, "--grid", "x.jpg"]);
    assert!(err.contains("must name a .png file"), "{err}");
    let err = vog_fails(&["rank", g, "--column", "vog_prob"]);
    assert!(err.contains("no score column 'vog_prob'"), "{err}");

    let bad = dir.path().join("bad.csv");
    std::fs::write(&bad, "id,label,vog\ntest/0,0,1.0\n").unwrap();
    let err = vog_fails(&["rank", bad.to_str().unwrap()]);
    assert!(
        err.contains("lacks the column(s) split, index, label_name, trained_label, noisy, predicted, correct"),
        "{err}"
    );
    let err = vog_fails(&["rank", dir.path().join("none.csv").to_str().unwrap()]);
    assert!(err.contains("none.csv"), "{err}");

    let out = vog()
        .args(["rank", g, "--lowest", "--top", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.lines().nth(1).unwrap().contains("test/1"), "{text}");

    // The sidecar says where the images are; without it there is no grid (and no output).
    std::fs::remove_file(dir.path().join("good.json")).unwrap();
    let err = vog_fails(&[
        "rank",
        g,
        "--grid",
        dir.path().join("x.png").to_str().unwrap(),
    ]);
    assert!(err.contains("good.json"), "{err}");
    assert!(!dir.path().join("x.png").exists());
}
