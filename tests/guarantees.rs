//! The wrong-result-with-exit-0 cases and panics found by trying vog as a hostile user,
//! each now refused on one line naming its cause (README: "What vog guarantees").
mod common;
use common::{python, succeed, train_synth, vog, vog_fails};
use std::path::{Path, PathBuf};

/// TorchScript models of 32x32 RGB images and 10 classes, two checkpoints each (scales 1
/// and 2): `lin` (a linear layer), `nan` (NaN logits), `one` (one row whatever the batch),
/// `const` (logits that ignore the input).
const MODELS: &str = r#"
import sys, torch
class Lin(torch.nn.Module):
    def __init__(self, k: float):
        super().__init__(); self.l = torch.nn.Linear(3 * 32 * 32, 10); self.k = k
    def forward(self, x):
        return self.l(x.flatten(1)) * self.k
class Nan(Lin):
    def forward(self, x):
        return self.l(x.flatten(1)) * self.k * float('nan')
class One(Lin):
    def forward(self, x):
        return self.l(x.flatten(1))[:1] * self.k
class Const(torch.nn.Module):
    def __init__(self, k: float):
        super().__init__(); self.b = torch.nn.Parameter(torch.randn(10) * k)
    def forward(self, x):
        return self.b.unsqueeze(0).expand(x.shape[0], 10)
torch.manual_seed(0)
for name, cls in [('lin', Lin), ('nan', Nan), ('one', One), ('const', Const)]:
    for k in (1, 2):
        torch.jit.save(torch.jit.script(cls(float(k))), f'{sys.argv[1]}/{name}-{k}.pt')
"#;

struct Models {
    _dir: tempfile::TempDir,
    dir: PathBuf,
    images: PathBuf,
}

fn models() -> Models {
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().to_path_buf();
    let script = dir.join("models.py");
    std::fs::write(&script, MODELS).unwrap();
    let out = std::process::Command::new(python())
        .arg(&script)
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let images = dir.join("images");
    succeed(
        vog()
            .args([
                "data", "synth", "--format", "folder", "--train", "4", "--test", "20",
            ])
            .arg("--out")
            .arg(&images),
    );
    Models {
        _dir: d,
        dir,
        images,
    }
}

impl Models {
    fn pair(&self, name: &str) -> String {
        format!(
            "{},{}",
            self.dir.join(format!("{name}-1.pt")).display(),
            self.dir.join(format!("{name}-2.pt")).display()
        )
    }

    /// `vog score --model MODELS --data DATA` with `extra`, expected to fail.
    fn refused(&self, models: &str, data: &Path, extra: &[&str]) -> String {
        let out = self.dir.join("out.csv");
        let mut args = vec!["score", "--quiet", "--device", "cpu", "--model", models];
        args.extend([
            "--data",
            data.to_str().unwrap(),
            "--out",
            out.to_str().unwrap(),
        ]);
        args.extend(extra);
        if !extra.contains(&"--mean") {
            args.extend(["--normalize", "cifar10"]);
        }
        let err = vog_fails(&args);
        assert!(!out.exists(), "a refused scoring wrote {}", out.display());
        err
    }
}

#[test]
fn hostile_models_are_refused() {
    let m = models();
    let err = m.refused(&m.pair("nan"), &m.images, &[]);
    assert!(
        err.contains("not finite") && err.contains("nan-1.pt"),
        "{err}"
    );
    let err = m.refused(
        &m.pair("lin"),
        &m.images,
        &["--mean", "1e30,0,0", "--std", "1e-30,1,1"],
    );
    assert!(
        err.contains("loss, el2n or prob") && err.contains("first: 'test/"),
        "{err}"
    );
    let err = m.refused(&m.pair("one"), &m.images, &[]);
    assert!(err.contains("1 row(s) of logits for a batch of 2"), "{err}");
    let err = m.refused(&m.pair("const"), &m.images, &[]);
    assert!(err.contains("does not depend on its input"), "{err}");
    let one = m.dir.join("lin-1.pt");
    let err = m.refused(one.to_str().unwrap(), &m.images, &[]);
    assert!(err.contains("at least two checkpoints"), "{err}");
    let copy = m.dir.join("copy.pt");
    std::fs::copy(&one, &copy).unwrap();
    let err = m.refused(
        &format!("{},{}", one.display(), copy.display()),
        &m.images,
        &[],
    );
    assert!(err.contains("same model (same SHA-256)"), "{err}");
    let err = m.refused(
        &m.pair("lin"),
        &m.images,
        &["--resize", "100000", "--crop", "32"],
    );
    assert!(err.contains("after --resize 100000"), "{err}");
    // Manifest rows: an empty label, and a label the model has no logit for, by name.
    let manifest = m.images.join("m.csv");
    std::fs::write(&manifest, "path,label\ntest/pattern0/000000.png,\n").unwrap();
    let err = m.refused(&m.pair("lin"), &manifest, &[]);
    assert!(err.contains("line 2: the label is empty"), "{err}");
    std::fs::write(&manifest, "path,label\ntest/pattern0/000000.png,10\n").unwrap();
    let err = m.refused(&m.pair("lin"), &manifest, &[]);
    assert!(
        err.contains("has label 10") && err.contains("returns 10 logits"),
        "{err}"
    );
}

#[test]
fn model_folders_are_taken_in_natural_order() {
    let m = models();
    let folder = m.dir.join("ckpts");
    std::fs::create_dir_all(&folder).unwrap();
    std::fs::copy(m.dir.join("lin-1.pt"), folder.join("epoch-2.pt")).unwrap();
    std::fs::copy(m.dir.join("lin-2.pt"), folder.join("epoch-10.pt")).unwrap();
    let out = m.dir.join("s.csv");
    let run = succeed(
        vog()
            .args([
                "score",
                "--device",
                "cpu",
                "--normalize",
                "cifar10",
                "--model",
            ])
            .arg(&folder)
            .arg("--data")
            .arg(&m.images)
            .arg("--out")
            .arg(&out),
    );
    let stderr = String::from_utf8_lossy(&run.stderr);
    assert!(
        stderr.contains("checkpoint order: epoch-2.pt, epoch-10.pt"),
        "{stderr}"
    );
    let side: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.with_extension("json")).unwrap()).unwrap();
    assert_eq!(
        side["checkpoints"],
        serde_json::json!(["epoch-2.pt", "epoch-10.pt"])
    );
    // The manifest that scored the images also finds them for the grid.
    let manifest = m.images.join("test.csv");
    let rows: Vec<String> = (0..3)
        .map(|i| format!("test/pattern{i}/{i:06}.png,{i}"))
        .collect();
    std::fs::write(&manifest, format!("path,label\n{}\n", rows.join("\n"))).unwrap();
    let scored = m.dir.join("m.csv");
    succeed(
        vog()
            .args([
                "score",
                "--quiet",
                "--device",
                "cpu",
                "--normalize",
                "cifar10",
            ])
            .args(["--model", &m.pair("lin"), "--data"])
            .arg(&manifest)
            .arg("--out")
            .arg(&scored),
    );
    let grid = m.dir.join("g.png");
    succeed(
        vog()
            .arg("rank")
            .arg(&scored)
            .arg("--grid")
            .arg(&grid)
            .arg("--data")
            .arg(&manifest),
    );
    assert!(grid.is_file());
    // verify takes scores of models (and their model files) without a run.
    let v = succeed(vog().args(["verify", "--scores"]).arg(&scored));
    assert!(String::from_utf8_lossy(&v.stdout).contains("files intact in the scores files"));
}

#[test]
fn options_of_the_other_mode_are_refused() {
    for extra in [
        ["--shard", "0/2"],
        ["--normalize", "none"],
        ["--resize", "32"],
        ["--crop", "32"],
        ["--classes", "c.txt"],
    ] {
        let mut args = vec!["score", "--run", "r"];
        args.extend(extra);
        let err = vog_fails(&args);
        assert!(err.contains("cannot be used with"), "{extra:?}: {err}");
    }
    let d = tempfile::tempdir().unwrap();
    let data = d.path().to_str().unwrap();
    let err = vog_fails(&[
        "bench",
        "--what",
        "train",
        "--data",
        data,
        "--seconds",
        "0.1",
    ]);
    assert!(err.contains("--what decode"), "{err}");
    for bad in ["inf", "NaN", "1e-9"] {
        let err = vog_fails(&["bench", "--seconds", bad]);
        assert!(err.contains("--seconds must lie between"), "{bad}: {err}");
    }
}

/// A run, scored, and its scores file.
fn scored_run(dir: &Path) -> (PathBuf, PathBuf) {
    let run = dir.join("run");
    train_synth(
        &run,
        &[
            "--train-subset",
            "30",
            "--test-subset",
            "20",
            "--width",
            "2",
            "--epochs",
            "2",
        ],
    );
    let csv = dir.join("s.csv");
    succeed(
        vog()
            .args(["score", "--quiet", "--device", "cpu", "--run"])
            .arg(&run)
            .arg("--out")
            .arg(&csv),
    );
    (run, csv)
}

#[test]
fn edited_files_and_mixed_sources_are_refused() {
    let d = tempfile::tempdir().unwrap();
    let (run, csv) = scored_run(d.path());
    let c = csv.to_str().unwrap().to_string();
    // A changed value: the CSV is no longer the file vog wrote.
    let text = std::fs::read_to_string(&csv).unwrap();
    let edited = text.replacen("false", "true", 1);
    std::fs::write(&csv, &edited).unwrap();
    for cmd in [
        vec!["eval", &c],
        vec!["rank", &c],
        vec!["verify", "--scores", &c],
    ] {
        let out = vog().args(&cmd).output().unwrap();
        assert!(!out.status.success(), "{cmd:?} accepted an edited file");
        // verify lists the failure on stdout, the others say it on stderr.
        let said = [out.stdout, out.stderr].concat();
        let said = String::from_utf8_lossy(&said);
        assert!(
            said.contains("is not the file vog wrote"),
            "{cmd:?}: {said}"
        );
    }
    std::fs::write(&csv, &text).unwrap();
    // Scores of two different runs in one report, without --run.
    let other = tempfile::tempdir().unwrap();
    let (_, csv2) = scored_run(other.path());
    let both = format!("{},{}", c, csv2.display());
    let out_html = d.path().join("r.html");
    let err = vog_fails(&[
        "report",
        "--scores",
        &both,
        "--out",
        out_html.to_str().unwrap(),
    ]);
    assert!(err.contains("a report covers one run"), "{err}");
    // --resume with a checkpoint gone names it.
    let ckpt = run.join("checkpoints").join("epoch-0001.safetensors");
    std::fs::remove_file(&ckpt).unwrap();
    let err = vog_fails(&["train", "--quiet", "--resume", run.to_str().unwrap()]);
    assert!(err.contains("epoch-0001.safetensors' is missing"), "{err}");
}

#[test]
fn a_run_being_scored_is_not_overwritten() {
    let d = tempfile::tempdir().unwrap();
    let (run, _) = scored_run(d.path());
    // What a scoring holds while it reads the run.
    let lock = std::fs::File::open(run.join(".vog.lock")).unwrap();
    lock.try_lock_shared().unwrap();
    let mut args: Vec<String> = ["train", "--quiet", "--dataset", "synth", "--device", "cpu"]
        .map(String::from)
        .to_vec();
    args.extend(["--width", "2", "--epochs", "1", "--overwrite", "--out"].map(String::from));
    args.push(run.to_str().unwrap().into());
    let err = vog_fails(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(err.contains("in use by another vog process"), "{err}");
    drop(lock);
}

#[test]
fn export_script_refuses_one_name_for_two_checkpoints() {
    let d = tempfile::tempdir().unwrap();
    let out = d.path().join("ts");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/export_torchscript.py");
    let run = std::process::Command::new(python())
        .arg(&script)
        .args(["--module", "x:Y", "--input-shape", "3,8,8", "--out"])
        .arg(&out)
        .args(["a/epoch-2.pth", "b/epoch-2.pth"])
        .output()
        .unwrap();
    assert!(!run.status.success());
    let err = String::from_utf8_lossy(&run.stderr);
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        err.contains("would both be exported as epoch-2.pt"),
        "{err}"
    );
    assert!(!out.exists(), "an empty --out was left");
}
