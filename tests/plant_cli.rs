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

/// Issue 35 item 2: a planted run's scores carry the kind, and eval, rank, review, grids,
/// verify and the report ask of each kind on its own.
#[test]
fn every_later_command_knows_the_planted_kinds() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let args = [
        "--train-subset",
        "300",
        "--test-subset",
        "60",
        "--width",
        "2",
        "--epochs",
        "3",
        "--save-epochs",
        "all",
        "--plant",
        "uniform:0.1,zoom:0.1,foreign:0.1",
    ];
    train_synth(&run, &args);
    succeed(
        vog()
            .args(["score", "--quiet", "--split", "both", "--run"])
            .arg(&run),
    );
    let scores = run.join("scores-both-all.csv");
    let planted_ids = |kind: &str| -> std::collections::BTreeSet<String> {
        let planted = run.join("planted.csv");
        column(&planted, "id")
            .into_iter()
            .zip(column(&planted, "kind"))
            .filter(|(_, k)| k == kind)
            .map(|(id, _)| id)
            .collect()
    };
    // The scores file's planted column is planted.csv's record.
    let by_column: std::collections::BTreeSet<String> = column(&scores, "id")
        .into_iter()
        .zip(column(&scores, "planted"))
        .filter(|(_, k)| k == "zoom")
        .map(|(id, _)| id)
        .collect();
    assert_eq!(by_column, planted_ids("zoom"));
    // eval: one leaderboard per kind, 30 planted among the 210 untouched + 30; no
    // memorization question (its "shuffled" would be uniform's changed labels).
    let o = succeed(vog().arg("eval").arg(&scores));
    let said = String::from_utf8(o.stdout).unwrap();
    assert!(
        said.contains(
            "== planted zoom (centre zoomed in, label kept): 30 positives among 240 examples =="
        ),
        "{said}"
    );
    assert!(!said.contains("memorization"), "{said}");
    assert!(
        said.contains("== which score finds which planted kind =="),
        "{said}"
    );
    assert!(said.contains("\nforeign: "), "{said}");
    let eval = run.join("scores-both-all-eval");
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(eval.join("eval.json")).unwrap()).unwrap();
    let questions: Vec<&str> = json["leaderboards"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["question"].as_str().unwrap())
        .collect();
    assert_eq!(
        questions,
        [
            "difficulty",
            "planted:uniform",
            "planted:zoom",
            "planted:foreign"
        ]
    );
    let matrix = std::fs::read_to_string(eval.join("planted-matrix.csv")).unwrap();
    assert!(
        matrix.starts_with("column,score,higher_is_harder,auroc,low,high,runs,positives,verdict\n")
    );
    assert!(matrix.contains("\nzoom,vog,true,"), "{matrix}");
    // verify makes the evaluation folder again, the matrix included.
    let said = String::from_utf8(succeed(vog().arg("verify").arg(&run)).stdout).unwrap();
    assert!(said.contains("planted-matrix.csv"), "{said}");
    // rank --select planted=KIND keeps exactly that kind's examples; the CSV names it.
    let o = succeed(vog().arg("rank").arg(&scores).args([
        "--select",
        "planted=zoom",
        "--format",
        "csv",
    ]));
    let out = d.path().join("zoom.csv");
    std::fs::write(&out, &o.stdout).unwrap();
    let ranked: std::collections::BTreeSet<String> = column(&out, "id").into_iter().collect();
    assert_eq!(ranked, planted_ids("zoom"));
    assert!(column(&out, "planted").iter().all(|k| k == "zoom"));
    let s = scores.to_str().unwrap();
    let err = vog_fails(&["rank", s, "--select", "planted=shift"]);
    assert!(
        err.contains("--select planted=shift matches no example")
            && err.contains("(its run planted uniform, zoom, foreign)"),
        "{err}"
    );
    let err = vog_fails(&["rank", s, "--select", "planted=blur"]);
    assert!(err.contains("unknown kind 'blur'"), "{err}");
    // Grids (legend and caption) and the review page name the kind.
    let grid = d.path().join("grid.png");
    succeed(
        vog()
            .arg("rank")
            .arg(&scores)
            .args(["--select", "planted=foreign", "--top", "4", "--grid"])
            .arg(&grid),
    );
    assert!(column(&grid.with_extension("csv"), "planted")
        .iter()
        .all(|k| k == "foreign"));
    let page = d.path().join("review.html");
    succeed(
        vog()
            .arg("review")
            .arg(&scores)
            .args(["--select", "planted=any", "--out"])
            .arg(&page),
    );
    let html = std::fs::read_to_string(&page).unwrap();
    assert!(html.contains("\"planted\":\"zoom (centre zoomed in, label kept)\""));
    // The report opens with the matrix.
    let report = d.path().join("report.html");
    succeed(
        vog()
            .args(["report", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(&report),
    );
    let html = std::fs::read_to_string(&report).unwrap();
    let matrix_at = html
        .find("Which score finds which planted kind</h2>")
        .unwrap();
    assert!(matrix_at < html.find("Where to look first</h2>").unwrap());
    assert!(html.contains("<table class=\"matrix\">"));
}

/// A foreign image's grid tile shows the image trained on, not the dataset's.
#[test]
fn grids_show_planted_images_as_trained() {
    let d = tempfile::tempdir().unwrap();
    let run = d.path().join("run");
    let args = [&TINY[..], &["--plant", "foreign:0.5"]].concat();
    train_synth(&run, &args);
    succeed(
        vog()
            .args(["score", "--quiet", "--split", "train", "--run"])
            .arg(&run),
    );
    let scores = run.join("scores-train-all.csv");
    let grid = d.path().join("g.png");
    succeed(
        vog()
            .arg("rank")
            .arg(&scores)
            .args(["--select", "planted=foreign", "--top", "1", "--grid"])
            .arg(&grid),
    );
    // A checkerboard of two colours: the tile's image area holds at most a few colours
    // (a synthetic image has hundreds).
    let img = image::open(&grid).unwrap().to_rgb8();
    let colours: std::collections::HashSet<[u8; 3]> = (8..30)
        .flat_map(|y| (8..30).map(move |x| (x, y)))
        .map(|(x, y)| img.get_pixel(x, y).0)
        .collect();
    assert!(colours.len() <= 2, "{} colours", colours.len());
}

/// `foreign` from `--plant-source DIR`: every image of the folder (sub-folders too) may be
/// drawn, resized to the dataset's size; bad folders are refused before anything is written.
#[test]
fn foreign_images_come_from_a_source_folder() {
    let d = tempfile::tempdir().unwrap();
    let source = d.path().join("source");
    std::fs::create_dir_all(source.join("sub")).unwrap();
    // Two solid colours of another size than the dataset's 32x32.
    image::RgbImage::from_pixel(50, 40, image::Rgb([250, 10, 10]))
        .save(source.join("red.png"))
        .unwrap();
    image::RgbImage::from_pixel(20, 20, image::Rgb([10, 10, 250]))
        .save(source.join("sub/blue.png"))
        .unwrap();
    std::fs::write(source.join("notes.txt"), "not an image").unwrap();
    let run = d.path().join("run");
    let args = [&TINY[..], &["--plant", "foreign:0.2", "--plant-source"]].concat();
    let mut cmd = vog();
    cmd.args(["train", "--dataset", "synth", "--device", "cpu", "--quiet"]);
    succeed(cmd.args(&args).arg(&source).arg("--out").arg(&run));
    let parameters = column(&run.join("planted.csv"), "parameters");
    assert_eq!(parameters.len(), 40);
    assert!(
        parameters
            .iter()
            .all(|p| p == "source=red.png" || p == "source=sub/blue.png"),
        "{parameters:?}"
    );
    assert!(parameters.iter().any(|p| p == "source=sub/blue.png"));
    // The grid shows a planted image as trained: one solid colour.
    succeed(
        vog()
            .args(["score", "--quiet", "--split", "train", "--run"])
            .arg(&run),
    );
    let grid = d.path().join("g.png");
    succeed(
        vog()
            .arg("rank")
            .arg(run.join("scores-train-all.csv"))
            .args(["--select", "planted=foreign", "--top", "1", "--grid"])
            .arg(&grid),
    );
    let img = image::open(&grid).unwrap().to_rgb8();
    let colour = img.get_pixel(16, 16).0;
    assert!(
        colour == [250, 10, 10] || colour == [10, 10, 250],
        "{colour:?}"
    );
    // Refused on one line, nothing written.
    let empty = d.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    std::fs::write(source.join("bad.png"), "not a png").unwrap();
    let out = d.path().join("refused");
    for (plant, dir, says) in [
        (
            "foreign:0.1",
            empty.as_path(),
            "holds no images (png, jpg or jpeg)",
        ),
        (
            "foreign:0.1",
            d.path().join("missing").as_path(),
            "--plant-source: cannot read",
        ),
        (
            "zoom:0.1",
            source.as_path(),
            "it needs foreign among the kinds planted",
        ),
        ("foreign:0.1", source.as_path(), "cannot decode image"),
    ] {
        let mut args = vec![
            "train",
            "--dataset",
            "synth",
            "--quiet",
            "--out",
            out.to_str().unwrap(),
        ];
        args.extend(TINY);
        args.extend(["--plant", plant, "--plant-source", dir.to_str().unwrap()]);
        let err = vog_fails(&args);
        assert!(err.contains(says), "{plant} {}: {err}", dir.display());
        assert!(!out.exists(), "nothing written");
    }
}

/// `confusable` (`--plant-from RUN`): each planted image trains with the class RUN's final
/// model scores highest after its label; the classes are recorded in the run's
/// configuration; bad sources refused before anything is written.
#[test]
fn confusable_plants_the_class_another_model_ranks_next() {
    let d = tempfile::tempdir().unwrap();
    let source = d.path().join("source");
    train_synth(&source, &TINY);
    let run = d.path().join("run");
    let s = source.to_str().unwrap();
    train_synth(
        &run,
        &[&TINY[..], &["--plant", "confusable:0.2", "--plant-from", s]].concat(),
    );
    let planted = run.join("planted.csv");
    let (original, trained) = (
        column(&planted, "original_label"),
        column(&planted, "trained_label"),
    );
    assert_eq!(original.len(), 40);
    assert!(
        original.iter().zip(&trained).all(|(a, b)| a != b),
        "never the label itself"
    );
    let m = manifest(&run);
    let from = &m["config"]["plant_from"];
    assert_eq!(from["checkpoint"], "checkpoints/epoch-0002.safetensors");
    assert!(from["run_id"].as_str().is_some_and(|id| !id.is_empty()));
    let recorded: HashMap<String, String> = from["classes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p[0].as_str().unwrap().to_string(), p[1].to_string()))
        .collect();
    assert_eq!(recorded.len(), 200, "every training image ranked");
    for (id, t) in column(&planted, "id").iter().zip(&trained) {
        assert_eq!(&recorded[id], t, "{id}");
    }
    // The same classes a second time: the record is the model's, not a draw.
    let again = d.path().join("again");
    train_synth(
        &again,
        &[&TINY[..], &["--plant", "confusable:0.2", "--plant-from", s]].concat(),
    );
    assert_eq!(
        manifest(&again)["config"]["plant_from"]["classes"],
        from["classes"]
    );
    // Refused on one line, nothing written.
    let folder = d.path().join("folder");
    for (class, seed) in [("a", 1u8), ("b", 2)] {
        for i in 0..4u8 {
            common::write_image(
                &folder.join(format!("train/{class}/{i}.png")),
                32,
                32,
                seed * 10 + i,
            );
        }
    }
    let other = d.path().join("other");
    let mut cmd = vog();
    cmd.args(["train", "--dataset"]).arg(&folder);
    succeed(
        cmd.args([
            "--device", "cpu", "--quiet", "--width", "2", "--epochs", "1", "--out",
        ])
        .arg(&other),
    );
    let out = d.path().join("refused");
    let o = out.to_str().unwrap();
    for (extra, says) in [
        (
            vec!["--plant", "confusable:0.1"],
            "it needs --plant-from RUN",
        ),
        (
            vec!["--plant", "zoom:0.1", "--plant-from", s],
            "--plant-from needs confusable",
        ),
        (
            vec![
                "--plant",
                "confusable:0.1",
                "--plant-from",
                other.to_str().unwrap(),
            ],
            "was trained on other data (2 classes",
        ),
        (
            vec![
                "--plant",
                "confusable:0.1",
                "--plant-from",
                d.path().join("none").to_str().unwrap(),
            ],
            "--plant-from",
        ),
    ] {
        let mut args = vec!["train", "--dataset", "synth", "--quiet", "--out", o];
        args.extend(TINY);
        args.extend(extra);
        let err = vog_fails(&args);
        assert!(err.contains(says), "{err}");
        assert!(!out.exists(), "nothing written");
    }
}
