//! `vog score --model`: a user's TorchScript checkpoints on streamed images, checked against
//! eager PyTorch (`scripts/reference_torchscript.py`), sharded and merged, with the
//! downstream stages on its output and the bad inputs each refused on one line.
mod common;
use common::{column, spearman, succeed, vog, vog_fails};
use rand::{Rng, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::Command;

const CLASSES: [&str; 4] = ["ant", "bee", "cat", "dog"];
const PER_CLASS: usize = 6;
/// Non-square, as the issue asks: height 40, width 48.
const H: u32 = 40;
const W: u32 = 48;

fn python() -> String {
    std::env::var("VOG_PYTHON").expect(
        "VOG_PYTHON is unset: run the tests through scripts/test.sh (it sources scripts/env.sh)",
    )
}

fn script(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("scripts")
        .join(name)
}

fn run_python(args: &[&str]) -> String {
    let out = Command::new(python())
        .args(args)
        .env("PYTHONPATH", script(""))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Exports K=3 TinyCNN checkpoints of `classes` outputs as TorchScript into `dir/models`,
/// keeping the state dicts in `dir/ckpt`.
fn make_models(dir: &Path, classes: usize) -> PathBuf {
    let (ckpt, models) = (dir.join("ckpt"), dir.join("models"));
    std::fs::create_dir_all(&ckpt).unwrap();
    let k = classes.to_string();
    run_python(&[
        script("reference_torchscript.py").to_str().unwrap(),
        "make",
        "--out",
        ckpt.to_str().unwrap(),
        "--classes",
        &k,
    ]);
    let mut args = vec![
        script("export_torchscript.py")
            .to_str()
            .unwrap()
            .to_string(),
        "--module".into(),
        "reference_torchscript:TinyCNN".into(),
        "--kwargs".into(),
        format!("{{\"classes\": {classes}}}"),
        "--input-shape".into(),
        format!("3,{H},{W}"),
        "--out".into(),
        models.to_str().unwrap().into(),
    ];
    for t in 1..=3 {
        args.push(ckpt.join(format!("ckpt-{t}.pth")).to_str().unwrap().into());
    }
    run_python(&args.iter().map(String::as_str).collect::<Vec<_>>());
    models
}

/// `root/<class>/img-NN.png`, seeded random pixels; returns the CHW bytes in listing order.
fn make_images(root: &Path) -> Vec<u8> {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let mut pixels = Vec::new();
    for class in CLASSES {
        for i in 0..PER_CLASS {
            let img = image::RgbImage::from_fn(W, H, |_, _| image::Rgb(rng.gen()));
            let path = root.join(class).join(format!("img-{i:02}.png"));
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            img.save(&path).unwrap();
            for c in 0..3 {
                pixels.extend(img.as_raw().iter().skip(c).step_by(3));
            }
        }
    }
    pixels
}

struct Setup {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    models: PathBuf,
    images: PathBuf,
    pixels: Vec<u8>,
}

fn setup() -> Setup {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    let models = make_models(&dir, CLASSES.len());
    let images = dir.join("images");
    let pixels = make_images(&images);
    Setup {
        _dir: d,
        dir,
        models,
        images,
        pixels,
    }
}

fn score(s: &Setup, data: &Path, out: &Path, extra: &[&str]) {
    succeed(
        vog()
            .args(["score", "--model"])
            .arg(&s.models)
            .arg("--data")
            .arg(data)
            .args([
                "--normalize",
                "cifar10",
                "--device",
                "cpu",
                "--quiet",
                "--out",
            ])
            .arg(out)
            .args(extra),
    );
}

/// The `count` shard files of the images in batches of 5.
fn score_shards(s: &Setup, count: usize) -> Vec<String> {
    (0..count)
        .map(|i| {
            let p = s.dir.join(format!("shard-{i}-of-{count}.csv"));
            let shard = format!("{i}/{count}");
            score(s, &s.images, &p, &["--batch-size", "5", "--shard", &shard]);
            p.display().to_string()
        })
        .collect()
}

#[test]
fn torchscript_scores_match_pytorch_and_shards_merge_to_the_same_file() {
    let s = setup();
    let out = s.dir.join("scores.csv");
    score(&s, &s.images, &out, &["--batch-size", "5"]);
    let ids = column(&out, "id");
    assert_eq!(ids[0], "ant/img-00.png");
    assert_eq!(ids.len(), CLASSES.len() * PER_CLASS);

    // Eager PyTorch on the same pixels, from the state dicts (not the TorchScript files).
    let bin = s.dir.join("pixels.bin");
    std::fs::write(&bin, &s.pixels).unwrap();
    let labels: Vec<String> = (0..CLASSES.len())
        .flat_map(|c| std::iter::repeat_n(c.to_string(), PER_CLASS))
        .collect();
    let reference: Vec<f64> = run_python(&[
        script("reference_torchscript.py").to_str().unwrap(),
        "vog",
        "--ckpt",
        s.dir.join("ckpt").to_str().unwrap(),
        "--pixels",
        bin.to_str().unwrap(),
        "--shape",
        &format!("{},3,{H},{W}", ids.len()),
        "--labels",
        &labels.join(","),
        "--mean",
        "0.4914,0.4822,0.4465",
        "--std",
        "0.2470,0.2435,0.2616",
    ])
    .lines()
    .map(|l| l.parse().unwrap())
    .collect();
    let ours: Vec<f64> = column(&out, "vog_raw")
        .iter()
        .map(|v| v.parse().unwrap())
        .collect();
    let worst = ours
        .iter()
        .zip(&reference)
        .map(|(a, b)| (a - b).abs() / b.abs())
        .fold(0.0, f64::max);
    let rho = spearman(&ours, &reference);
    eprintln!(
        "TorchScript vs eager PyTorch: max relative difference {worst:.2e}, Spearman {rho:.6}"
    );
    assert!(worst < 1e-4, "max relative difference {worst}");
    assert!(rho >= 0.9999, "Spearman {rho}");

    // The same images through a manifest: the same CSV.
    let manifest = s.images.join("list.csv");
    let mut text = String::from("path,label\n");
    for (id, label) in ids.iter().zip(column(&out, "label_name")) {
        text.push_str(&format!("{id},{label}\n"));
    }
    std::fs::write(&manifest, text).unwrap();
    let via_manifest = s.dir.join("manifest.csv");
    score(&s, &manifest, &via_manifest, &["--batch-size", "5"]);
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&via_manifest).unwrap()
    );

    // Three shards of whole batches, merged in any order: byte for byte the same file.
    let shards = score_shards(&s, 3);
    let err = vog_fails(&["eval", &shards[0]]);
    assert!(err.contains("vog merge"), "{err}");
    let merged = s.dir.join("merged.csv");
    let reordered = [&shards[2], &shards[0], &shards[1]];
    succeed(vog().arg("merge").args(reordered).arg("--out").arg(&merged));
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&merged).unwrap()
    );
    // More shards than batches: some are empty, the merge is the same.
    let merged_many = s.dir.join("merged-many.csv");
    succeed(
        vog()
            .arg("merge")
            .args(score_shards(&s, 7))
            .arg("--out")
            .arg(&merged_many),
    );
    assert_eq!(
        std::fs::read(&out).unwrap(),
        std::fs::read(&merged_many).unwrap()
    );

    // Missing, repeated and foreign shards.
    let bad = s.dir.join("bad.csv");
    let b = bad.display().to_string();
    let err = vog_fails(&["merge", &shards[0], &shards[1], "--out", &b]);
    assert!(err.contains("shard 2/3 is missing"), "{err}");
    let err = vog_fails(&["merge", &shards[0], &shards[0], &shards[1], "--out", &b]);
    assert!(err.contains("are both shard 0/3"), "{err}");
    let foreign = s.dir.join("foreign.csv");
    succeed(
        vog()
            .args(["score", "--model"])
            .arg(&s.models)
            .arg("--data")
            .arg(&s.images)
            .args(["--normalize", "imagenet", "--device", "cpu", "--quiet"])
            .args(["--batch-size", "5", "--shard", "2/3", "--out"])
            .arg(&foreign),
    );
    let err = vog_fails(&[
        "merge",
        &shards[0],
        &shards[1],
        &foreign.display().to_string(),
        "--out",
        &b,
    ]);
    assert!(
        err.contains("different scorings") && err.contains("models"),
        "{err}"
    );
    assert!(!bad.exists());

    // Downstream: eval, a grid of the 40x48 images, a report without a run.
    succeed(
        vog()
            .arg("eval")
            .arg(&out)
            .arg("--out")
            .arg(s.dir.join("eval")),
    );
    let grid = s.dir.join("grid.png");
    succeed(
        vog()
            .args(["rank", "--top", "4", "--grid"])
            .arg(&grid)
            .arg(&out),
    );
    let g = image::open(&grid).unwrap();
    assert!(g.width() > W && g.height() > H);
    let report = s.dir.join("report.html");
    succeed(
        vog()
            .arg("report")
            .arg("--scores")
            .arg(&out)
            .arg("--out")
            .arg(&report),
    );
    let html = std::fs::read_to_string(&report).unwrap();
    assert!(html.contains("Models") && html.contains("ckpt-3.pt"));
}

#[test]
fn bad_models_and_data_are_refused_on_one_line() {
    let s = setup();
    let out = s.dir.join("out.csv");
    let o = out.to_str().unwrap();
    let imgs = s.images.to_str().unwrap();
    let base = |model: &str, data: &str, extra: &[&str]| -> String {
        let mut args = vec![
            "score",
            "--model",
            model,
            "--data",
            data,
            "--normalize",
            "cifar10",
            "--device",
            "cpu",
            "--quiet",
            "--out",
            o,
        ];
        args.extend(extra);
        vog_fails(&args)
    };
    let models = s.models.to_str().unwrap();

    let text = s.dir.join("not-a-model.pt");
    std::fs::write(&text, "hello").unwrap();
    let err = base(text.to_str().unwrap(), imgs, &[]);
    assert!(err.contains("is not a TorchScript model"), "{err}");

    // A class file with five classes against four logits.
    let classes = s.dir.join("classes.txt");
    std::fs::write(&classes, "ant\nbee\ncat\ndog\nemu\n").unwrap();
    let err = base(models, imgs, &["--classes", classes.to_str().unwrap()]);
    assert!(
        err.contains("returns 4 logits") && err.contains("5 classes"),
        "{err}"
    );

    // Checkpoints of two architectures.
    let other = make_models(&s.dir.join("other"), 5);
    let mixed = format!(
        "{},{}",
        s.models.join("ckpt-1.pt").display(),
        other.join("ckpt-2.pt").display()
    );
    let err = base(&mixed, imgs, &[]);
    assert!(
        err.contains("different architectures") && err.contains("fc.weight"),
        "{err}"
    );

    // A model returning a 4-D output (the identity).
    let identity = s.dir.join("identity.pt");
    run_python(&[
        "-c",
        &format!(
            "import torch\ntorch.jit.save(torch.jit.script(torch.nn.Identity()), '{}')",
            identity.display()
        ),
    ]);
    let err = base(identity.to_str().unwrap(), imgs, &[]);
    assert!(err.contains("4-D output"), "{err}");

    // A TorchScript module without forward.
    let source = s.dir.join("nofwd.py");
    let no_forward = s.dir.join("nofwd.pt");
    std::fs::write(
        &source,
        format!(
            "import torch\nclass M(torch.nn.Module):\n    @torch.jit.export\n    def other(self, x):\n        return x\ntorch.jit.save(torch.jit.script(M()), '{}')\n",
            no_forward.display()
        ),
    )
    .unwrap();
    run_python(&[source.to_str().unwrap()]);
    let err = base(no_forward.to_str().unwrap(), imgs, &[]);
    assert!(err.contains("no forward method"), "{err}");

    // Manifests: a missing file, an unknown class, a repeated id.
    let manifest = s.images.join("m.csv");
    let m = manifest.to_str().unwrap();
    let with_classes = ["--classes", classes.to_str().unwrap()];
    std::fs::write(
        &manifest,
        "path,label\nant/img-00.png,ant\nant/gone.png,ant\n",
    )
    .unwrap();
    assert!(base(models, m, &[]).contains("line 3: image"));
    std::fs::write(
        &manifest,
        "path,label\nant/img-00.png,ant\nbee/img-00.png,yak\n",
    )
    .unwrap();
    let err = base(models, m, &with_classes);
    assert!(err.contains("line 3: label: 'yak'"), "{err}");
    std::fs::write(
        &manifest,
        "path,label,id\nant/img-00.png,ant,a\nbee/img-00.png,bee,a\n",
    )
    .unwrap();
    assert!(base(models, m, &[]).contains("line 3: id 'a' is already used on line 2"));

    // Integer labels index the model's four outputs, though they use only three.
    std::fs::write(
        &manifest,
        "path,label\nant/img-00.png,0\ncat/img-00.png,2\n",
    )
    .unwrap();
    let indexed = s.dir.join("indexed.csv");
    score(&s, &manifest, &indexed, &[]);
    assert_eq!(column(&indexed, "label_name"), ["0", "2"]);
    std::fs::remove_file(&manifest).unwrap();

    // Mixed image sizes need --resize/--crop; with them, scoring works.
    common::write_image(&s.images.join("cat/wide.png"), 60, 40, 9);
    let err = base(models, imgs, &[]);
    assert!(
        err.contains("wide.png") && err.contains("--resize and --crop"),
        "{err}"
    );
    assert!(!out.exists(), "no partial output");
    score(&s, &s.images, &out, &["--resize", "40", "--crop", "40"]);
    let meta: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.with_extension("json")).unwrap()).unwrap();
    assert_eq!(meta["models"]["input"], serde_json::json!([3, 40, 40]));
    assert_eq!(meta["dataset"]["preprocess"]["crop"], 40);
    assert_eq!(meta["run"], serde_json::Value::Null);
    // Grids come from the images scored: a removed one is noticed.
    std::fs::remove_file(s.images.join("dog/img-05.png")).unwrap();
    let grid = s.dir.join("g.png");
    let err = vog_fails(&["rank", o, "--grid", grid.to_str().unwrap()]);
    assert!(err.contains("changed since they were scored"), "{err}");
}

/// A run's own checkpoints exported to TorchScript (through the PyTorch ResNet of
/// `scripts/reference_vog.py`) and scored as a user's models on the same images written as
/// a folder give the scores `vog score --run` gives.
#[test]
fn a_runs_checkpoints_as_torchscript_score_like_the_run() {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path();
    let synth = |format: &str, out: &Path| {
        succeed(
            vog()
                .args([
                    "data", "synth", "--train", "120", "--test", "60", "--seed", "2",
                ])
                .args(["--format", format, "--out"])
                .arg(out),
        );
    };
    let (bins, folder, run) = (dir.join("bins"), dir.join("folder"), dir.join("run"));
    synth("cifar", &bins);
    synth("folder", &folder);
    succeed(
        vog()
            .args(["train", "--dataset", "cifar10", "--data-dir"])
            .arg(&bins)
            .args(["--width", "4", "--epochs", "3", "--save-epochs", "all"])
            .args(["--device", "cpu", "--quiet", "--out"])
            .arg(&run),
    );
    let by_run = dir.join("run.csv");
    succeed(
        vog()
            .args(["score", "--device", "cpu", "--quiet", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(&by_run),
    );
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(run.join("run.json")).unwrap()).unwrap();
    let norm = &manifest["normalization"];
    let triple = |k: &str| {
        let v: Vec<String> = norm[k]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.to_string())
            .collect();
        v.join(",")
    };
    let models = dir.join("ts");
    std::fs::create_dir_all(&models).unwrap();
    for epoch in 1..=3 {
        let ckpt = run.join(format!("checkpoints/epoch-{epoch:04}.safetensors"));
        let out = models.join(format!("epoch-{epoch}.pt"));
        run_python(&[
            "-c",
            &format!(
                "import torch, reference_vog as r\nm = r.load_model('{}', 10, 4)\ntorch.jit.save(torch.jit.trace(m, torch.zeros(2, 3, 32, 32)), '{}')",
                ckpt.display(),
                out.display()
            ),
        ]);
    }
    let by_model = dir.join("model.csv");
    succeed(
        vog()
            .args(["score", "--device", "cpu", "--quiet", "--model"])
            .arg(&models)
            .arg("--data")
            .arg(&folder)
            .args(["--mean", &triple("mean"), "--std", &triple("std"), "--out"])
            .arg(&by_model),
    );
    // Folder ids are test/<class>/<index>.png; the run's are test/<index>.
    let raw = |csv: &Path, key: fn(&str) -> usize| -> Vec<(usize, f64)> {
        let mut v: Vec<(usize, f64)> = column(csv, "id")
            .iter()
            .zip(column(csv, "vog_raw"))
            .map(|(id, r)| (key(id), r.parse().unwrap()))
            .collect();
        v.sort_by_key(|p| p.0);
        v
    };
    let a = raw(&by_run, |id| {
        id.trim_start_matches("test/").parse().unwrap()
    });
    let b = raw(&by_model, |id| {
        id.rsplit('/')
            .next()
            .unwrap()
            .trim_end_matches(".png")
            .parse()
            .unwrap()
    });
    assert_eq!(a.len(), 60);
    assert_eq!(
        a.iter().map(|p| p.0).collect::<Vec<_>>(),
        b.iter().map(|p| p.0).collect::<Vec<_>>()
    );
    let worst = a
        .iter()
        .zip(&b)
        .map(|(x, y)| (x.1 - y.1).abs() / x.1.abs())
        .fold(0.0, f64::max);
    eprintln!(
        "run checkpoints as TorchScript vs vog score --run: max relative difference {worst:.2e}"
    );
    assert!(worst < 1e-4, "max relative difference {worst}");
}
