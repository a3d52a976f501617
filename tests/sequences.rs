//! Command sequences as a hostile user runs them: a tiny run and TorchScript models, then
//! seeded random sequences of vog commands with valid and invalid flags (the audit loop's
//! too: embed, crossval (by retraining or on features), prune with tiny settings, trainings from the run with selection files
//! that are empty, blank, written by a spreadsheet or as vog writes them, or with rows longer
//! than their header, which must be refused; `vog experiment` rerun into one folder over
//! changed recipes, whose results must record the recipe its run has), hand edits to
//! the files (truncate, flip a byte, drop or repeat a CSV row, change a value, delete a
//! checkpoint), kills, and moves of the run folder. After every step:
//!
//! - exit 0: every scores file the step wrote passes `vog verify --scores` and is read by
//!   `vog eval` and `vog rank` (a shard by `verify` alone); a training, crossval or prune
//!   leaves no file that `vog verify` refuses beyond those it refused before the step;
//! - a move: a run that verified before verifies where it went;
//! - exit non-zero: no panic, an error on one line (clap's usage errors aside, which exit
//!   2), and no file written or changed (the run's lock file aside).
//!
//! Bounded for CI (`VOG_SEQ_CASES` sequences, default 6, of `VOG_SEQ_STEPS` steps, default
//! 10); `VOG_SEQ_SECONDS` runs sequences until that many seconds have passed instead, and
//! `VOG_SEQ_SEED` picks the first seed. A failure names the seed and the steps so far.
mod common;
use common::vog;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

fn env(name: &str) -> Option<u64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

/// The tiny run, image folder and (where Python is there to make them) TorchScript models
/// every sequence starts from, made once.
fn fixtures(root: &Path) {
    common::train_synth(
        &root.join("run"),
        &[
            "--train-subset",
            "40",
            "--test-subset",
            "30",
            "--width",
            "2",
            "--epochs",
            "3",
            "--save-epochs",
            "all",
            "--label-noise",
            "0.2",
        ],
    );
    common::succeed(
        vog()
            .args(["data", "synth", "--format", "folder", "--train", "10"])
            .args(["--test", "30", "--seed", "2", "--out"])
            .arg(root.join("images")),
    );
    let Ok(python) = std::env::var("VOG_PYTHON") else {
        return;
    };
    let scripts = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts");
    let ckpt = root.join("ckpt");
    let py = |args: &[&str]| {
        let out = std::process::Command::new(&python)
            .args(args)
            .env("PYTHONPATH", &scripts)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    std::fs::create_dir_all(&ckpt).unwrap();
    let s = |name: &str| scripts.join(name).to_str().unwrap().to_string();
    let c = |name: &str| ckpt.join(name).to_str().unwrap().to_string();
    py(&[
        &s("reference_torchscript.py"),
        "make",
        "--out",
        &c(""),
        "--classes",
        "10",
    ]);
    py(&[
        &s("export_torchscript.py"),
        "--module",
        "reference_torchscript:TinyCNN",
        "--kwargs",
        "{\"classes\": 10}",
        "--input-shape",
        "3,32,32",
        "--out",
        root.join("models").to_str().unwrap(),
        &c("ckpt-1.pth"),
        &c("ckpt-2.pth"),
        &c("ckpt-3.pth"),
    ]);
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_tree(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

/// Every file below `dir` with its size and modification time.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, (u64, SystemTime)> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(p),
                Ok(m) => {
                    out.insert(p, (m.len(), m.modified().unwrap()));
                }
                Err(_) => {}
            }
        }
    }
    out
}

/// The files written or changed between two snapshots (but those the sequence writes by
/// hand into `hand/` for a step to read).
fn changed(
    before: &BTreeMap<PathBuf, (u64, SystemTime)>,
    after: &BTreeMap<PathBuf, (u64, SystemTime)>,
) -> Vec<PathBuf> {
    after
        .iter()
        .filter(|(p, v)| before.get(*p) != Some(v))
        .filter(|(p, _)| !p.components().any(|c| c.as_os_str() == "hand"))
        .map(|(p, _)| p.clone())
        .collect()
}

/// One sequence's world: its folder and what it has produced.
struct World {
    dir: PathBuf,
    /// Where the run is now, relative to `dir` (moves change it).
    run: String,
    models: bool,
    rng: ChaCha8Rng,
    log: Vec<String>,
    /// Why the step about to run must be refused (a table with ragged rows), if it must.
    must_refuse: Option<&'static str>,
}

/// What a step did.
enum Outcome {
    /// A vog command ran to its end.
    Ran {
        args: Vec<String>,
        out: std::process::Output,
    },
    /// A hand edit, or a command killed part way: nothing to hold it to.
    Other,
    /// The run folder moved; whether it verified before.
    Moved { verified: bool },
}

impl World {
    fn path(&self, rel: &str) -> String {
        self.dir.join(rel).to_str().unwrap().to_string()
    }

    fn run_path(&self) -> String {
        self.path(&self.run.clone())
    }

    fn pick<'a>(&mut self, items: &'a [&'a str]) -> &'a str {
        items.choose(&mut self.rng).unwrap()
    }

    /// The scores files (CSV with a sidecar) in the world, sorted.
    fn scores_files(&self) -> Vec<PathBuf> {
        snapshot(&self.dir)
            .into_keys()
            .filter(|p| is_scores(p))
            .collect()
    }

    fn any_scores(&mut self) -> String {
        let files = self.scores_files();
        match files.choose(&mut self.rng) {
            Some(p) => p.to_str().unwrap().to_string(),
            None => self.path("out/none.csv"),
        }
    }

    /// A flag that has no meaning for the command it is added to, now and then.
    fn odd_flag(&mut self, pool: &[&[&str]]) -> Vec<String> {
        if self.rng.gen_bool(0.25) {
            let f = pool.choose(&mut self.rng).unwrap();
            f.iter().map(|s| s.to_string()).collect()
        } else {
            Vec::new()
        }
    }

    fn score_run(&mut self) -> Vec<String> {
        let split = self.pick(&["test", "train", "both"]);
        let stage = self.pick(&["all", "early", "late", "1-2", "2,3"]);
        let target = self.pick(&["logit", "logprob,margin", "prob,logit"]);
        let k: u32 = self.rng.gen_range(0..4);
        let mut a: Vec<String> = ["score", "--quiet", "--device", "cpu", "--run"]
            .map(String::from)
            .to_vec();
        a.push(self.run_path());
        a.extend(["--split", split, "--stage", stage, "--target", target].map(String::from));
        a.extend(["--out".into(), self.path(&format!("out/run-{k}.csv"))]);
        a.extend(self.odd_flag(&[
            &["--shard", "0/2"],
            &["--normalize", "none"],
            &["--resize", "8"],
            &["--batch-size", "0"],
            &["--target", "loss"],
            &["--allow-incomplete"],
        ]));
        a
    }

    fn score_models(&mut self) -> Vec<String> {
        let mut a: Vec<String> = [
            "score",
            "--quiet",
            "--device",
            "cpu",
            "--normalize",
            "cifar10",
        ]
        .map(String::from)
        .to_vec();
        a.extend(["--model".into(), self.path("models")]);
        a.extend(["--data".into(), self.path("images")]);
        a.extend(["--split".into(), self.pick(&["test", "train"]).into()]);
        a.extend(["--batch-size".into(), "8".into()]);
        let shard = self.rng.gen_range(0..3u32);
        if self.rng.gen_bool(0.5) {
            a.extend(["--shard".into(), format!("{shard}/3")]);
            a.extend(["--out".into(), self.path(&format!("out/shard-{shard}.csv"))]);
        } else {
            a.extend(["--out".into(), self.path("out/models.csv")]);
        }
        a.extend(self.odd_flag(&[
            &["--stage", "late"],
            &["--allow-incomplete"],
            &["--crop", "0"],
        ]));
        a
    }

    fn merge(&mut self) -> Vec<String> {
        let mut shards: Vec<String> = (0..3)
            .map(|i| self.path(&format!("out/shard-{i}.csv")))
            .collect();
        shards.shuffle(&mut self.rng);
        shards.truncate(self.rng.gen_range(1..=3));
        let mut a = vec!["merge".to_string(), "--quiet".into()];
        a.extend(shards);
        a.extend(["--out".into(), self.path("out/merged.csv")]);
        a
    }

    fn read_step(&mut self) -> Vec<String> {
        let f = self.any_scores();
        match self.rng.gen_range(0..5) {
            0 => vec!["eval".into(), f, "--out".into(), self.path("out/eval")],
            1 => {
                let mut a = vec!["rank".into(), f, "--top".into(), "3".into()];
                if self.rng.gen_bool(0.5) {
                    a.extend([
                        "--per-class".into(),
                        "--grid".into(),
                        self.path("out/g.png"),
                    ]);
                }
                a.extend([
                    "--format".into(),
                    self.pick(&["table", "csv", "json"]).into(),
                ]);
                a
            }
            2 => vec!["verify".into(), self.run_path()],
            3 => vec!["verify".into(), "--scores".into(), f],
            _ => match self.rng.gen_bool(0.5) {
                true => vec![
                    "report".into(),
                    "--run".into(),
                    self.run_path(),
                    "--out".into(),
                    self.path("out/r.html"),
                ],
                false => {
                    let g = self.any_scores();
                    vec![
                        "report".into(),
                        "--scores".into(),
                        format!("{f},{g}"),
                        "--out".into(),
                        self.path("out/r2.html"),
                    ]
                }
            },
        }
    }

    fn train(&mut self) -> Vec<String> {
        match self.rng.gen_bool(0.5) {
            true => vec![
                "train".into(),
                "--quiet".into(),
                "--resume".into(),
                self.run_path(),
            ],
            false => {
                let mut a: Vec<String> =
                    ["train", "--quiet", "--dataset", "synth", "--device", "cpu"]
                        .map(String::from)
                        .to_vec();
                a.extend(
                    [
                        "--train-subset",
                        "40",
                        "--test-subset",
                        "30",
                        "--width",
                        "2",
                    ]
                    .map(String::from),
                );
                a.extend(
                    [
                        "--epochs",
                        "3",
                        "--save-epochs",
                        "all",
                        "--overwrite",
                        "--out",
                    ]
                    .map(String::from),
                );
                a.push(self.run_path());
                a
            }
        }
    }

    /// `vog embed` of the run's images by its own network (or a refusal) into
    /// `out/f.safetensors`, the file `crossval --features` takes.
    fn embed(&mut self) -> Vec<String> {
        let mut a: Vec<String> = ["embed", "--quiet", "--device", "cpu", "--run"]
            .map(String::from)
            .to_vec();
        a.push(self.run_path());
        a.extend(["--backbone".into(), self.run_path()]);
        a.extend(["--out".into(), self.path("out/f.safetensors")]);
        a.extend(self.odd_flag(&[&["--batch-size", "0"], &["--crop", "8"]]));
        a
    }

    fn crossval(&mut self) -> Vec<String> {
        let mut a: Vec<String> = ["crossval", "--quiet", "--run"].map(String::from).to_vec();
        a.push(self.run_path());
        a.extend(["--folds".into(), self.pick(&["2", "2", "3"]).into()]);
        // On features half the time once `embed` has written them, else now and then.
        let features = self.path("out/f.safetensors");
        let odds = if Path::new(&features).exists() { 2 } else { 6 };
        if self.rng.gen_range(0..odds) == 0 {
            a.extend(["--features".into(), features]);
            a.extend(self.rng.gen_bool(0.3).then(|| "--overwrite".to_string()));
        } else {
            match self.rng.gen_range(0..4) {
                0 => a.extend(["--fold".into(), self.pick(&["0", "1"]).into()]),
                1 => a.push("--gather".into()),
                2 => a.push("--overwrite".into()),
                _ => {}
            }
        }
        a.extend(self.odd_flag(&[&["--folds", "1"], &["--fold", "7"], &["--folds", "50"]]));
        a
    }

    fn prune(&mut self) -> Vec<String> {
        let mut a: Vec<String> = ["prune", "--quiet", "--run"].map(String::from).to_vec();
        a.push(self.run_path());
        a.extend(["--scores".into(), self.any_scores()]);
        a.extend([
            "--column".into(),
            self.pick(&["loss", "vog", "aum,loss"]).into(),
        ]);
        a.extend(["--fractions", "0.05", "--seeds", "1"].map(String::from));
        a.extend(self.odd_flag(&[
            &["--fractions", "0.99"],
            &["--column", "vog,vog"],
            &["--fractions", "0.05,0.05"],
            &["--relabel-suggested"],
        ]));
        a
    }

    /// A selection file as people and vog write them (or as they forget to), then a
    /// training of the run again with it.
    fn train_again(&mut self) -> Vec<String> {
        let ids: Vec<String> = (0..4).map(|i| format!("train/{:06}", i * 7)).collect();
        let (flag, text) = match self.rng.gen_range(0..8) {
            0 => ("--exclude", String::new()),
            1 => ("--exclude", "\n  \n# none\n".to_string()),
            2 => (
                "--exclude",
                format!("\u{feff}id\r\n# two\r\n{}\r\n\"{}\"\r\n", ids[0], ids[1]),
            ),
            3 => ("--relabel", "id,label\n".to_string()),
            4 => (
                "--relabel",
                format!("id,label\n{},pattern3\n{},name:pattern4\n", ids[2], ids[3]),
            ),
            // Ragged rows: more fields than the header names.
            6 => ("--exclude", format!("id\n{},{}\n", ids[0], ids[1])),
            7 => (
                "--relabel",
                format!("id,label\n{},pattern1,extra\n", ids[2]),
            ),
            _ => (
                "--decisions",
                format!(
                    "id,action,label,scores_sha256\r\n{},drop,,x\r\n{},relabel,pattern1,x\r\n",
                    ids[0], ids[3]
                ),
            ),
        };
        if text.starts_with("id\n") || text.contains(",extra\n") {
            self.must_refuse = Some("a table with a row longer than its header");
        }
        let file = self.dir.join("hand/selection.csv");
        std::fs::write(&file, &text).unwrap();
        self.log.push(format!("write {} {text:?}", file.display()));
        let mut a: Vec<String> = ["train", "--quiet", "--from"].map(String::from).to_vec();
        a.push(self.run_path());
        a.extend([flag.to_string(), file.to_str().unwrap().to_string()]);
        a.extend(["--overwrite".into(), "--out".into(), self.path("derived")]);
        a
    }

    /// An experiment file of a random recipe (keys at their default left out or written),
    /// run into the same folder each time: a rerun over another recipe must train again or
    /// be refused, never report the other recipe's run as up to date.
    fn experiment(&mut self) -> Vec<String> {
        let lr_step = self.pick(&["", "lr_step = \"batch\"\n", "lr_step = \"epoch\"\n"]);
        let shuffle = self.pick(&["", "shuffle = false\n", "shuffle = true\n"]);
        let seed = self.rng.gen_range(1..3);
        let text = format!(
            "dataset = \"synth\"\ndata_dir = \"data\"\nout = \"{}\"\ndevice = \"cpu\"\n\
             train_subset = 40\ntest_subset = 20\n\n[train]\nepochs = 2\nbatch_size = 20\n\
             lr = 0.05\nlr_milestones = [1]\nlr_gamma = 0.1\nmomentum = 0.9\n\
             weight_decay = 5e-4\nwidth = 2\naugment = false\nsave_epochs = \"all\"\n\
             seed = {seed}\n{lr_step}{shuffle}\n[score]\nstages = [\"all\"]\n\
             splits = [\"test\"]\ntargets = [\"logit\"]\nbatch_size = 64\n",
            self.path("exp")
        );
        let file = self.dir.join("hand/exp.toml");
        std::fs::write(&file, &text).unwrap();
        self.log.push(format!("write {} {text:?}", file.display()));
        let file = file.to_str().unwrap().to_string();
        vec!["experiment".into(), "--quiet".into(), file]
    }

    /// Moves the run folder to the other of two places.
    fn move_run(&mut self) -> Outcome {
        let verified = verify_failures(&self.run_path()).is_some_and(|f| f.is_empty());
        let to = match self.run.as_str() {
            "run" => "moved/run",
            _ => "run",
        };
        std::fs::create_dir_all(self.dir.join(to).parent().unwrap()).unwrap();
        if std::fs::rename(self.dir.join(&self.run), self.dir.join(to)).is_ok() {
            self.log.push(format!("move {} -> {to}", self.run));
            self.run = to.to_string();
        }
        Outcome::Moved { verified }
    }

    /// A hand edit of a random file of the world.
    fn edit(&mut self) {
        let files: Vec<PathBuf> = snapshot(&self.dir)
            .into_keys()
            .filter(|p| !p.ends_with(".vog.lock"))
            .filter(|p| {
                p.extension()
                    .is_some_and(|e| ["csv", "json", "safetensors"].contains(&e.to_str().unwrap()))
            })
            .collect();
        let Some(file) = files.choose(&mut self.rng).cloned() else {
            return;
        };
        let mut bytes = std::fs::read(&file).unwrap();
        let kind = self.rng.gen_range(0..6);
        match kind {
            0 => bytes.truncate(self.rng.gen_range(0..=bytes.len())),
            1 if !bytes.is_empty() => {
                let i = self.rng.gen_range(0..bytes.len());
                bytes[i] ^= 1 << self.rng.gen_range(0..8);
            }
            2..=4 => {
                let mut lines: Vec<String> = String::from_utf8_lossy(&bytes)
                    .lines()
                    .map(String::from)
                    .collect();
                if lines.len() > 1 {
                    let r = self.rng.gen_range(1..lines.len());
                    match kind {
                        2 => {
                            lines.remove(r);
                        }
                        3 => lines.insert(r, lines[r].clone()),
                        _ => lines[r] = lines[r].replacen(|c: char| c.is_ascii_digit(), "7", 1),
                    }
                }
                bytes = (lines.join("\n") + "\n").into_bytes();
            }
            _ => {
                let ckpt = self.dir.join("run/checkpoints");
                if let Some(c) = std::fs::read_dir(&ckpt)
                    .into_iter()
                    .flatten()
                    .flatten()
                    .next()
                {
                    self.log.push(format!("delete {}", c.path().display()));
                    std::fs::remove_file(c.path()).unwrap();
                }
                return;
            }
        }
        self.log.push(format!("edit {kind} {}", file.display()));
        std::fs::write(&file, bytes).unwrap();
    }

    /// Starts a scoring and kills it part way.
    fn kill(&mut self) {
        let args = self.score_run();
        let ms = self.rng.gen_range(0..1500);
        self.log
            .push(format!("kill after {ms} ms: vog {}", args.join(" ")));
        let bin = assert_cmd::cargo::cargo_bin("vog");
        let mut child = std::process::Command::new(bin)
            .args(&args)
            .stderr(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(ms));
        let _ = child.kill();
        let _ = child.wait();
    }

    fn step(&mut self) -> Outcome {
        self.must_refuse = None;
        let args = match self.rng.gen_range(0..15) {
            0 | 1 => self.score_run(),
            2 | 3 if self.models => self.score_models(),
            4 if self.models => self.merge(),
            5 => {
                self.edit();
                return Outcome::Other;
            }
            6 => {
                self.kill();
                return Outcome::Other;
            }
            7 => self.train(),
            8 => self.embed(),
            9 | 10 => self.crossval(),
            11 => self.prune(),
            12 => self.train_again(),
            13 => return self.move_run(),
            14 => self.experiment(),
            _ => self.read_step(),
        };
        self.log.push(format!("vog {}", args.join(" ")));
        let out = vog().args(&args).output().unwrap();
        Outcome::Ran { args, out }
    }
}

/// Whether `p` is a scores CSV: its sidecar names the scores format (crossval's
/// `probs.csv` has a `.json` beside it too, of another format).
fn is_scores(p: &Path) -> bool {
    let sidecar = std::fs::read_to_string(p.with_extension("json")).unwrap_or_default();
    p.extension().is_some_and(|e| e == "csv") && sidecar.contains("\"vog-scores/")
}

/// Checks that a file a successful step wrote is one vog reads back.
fn accepted(file: &Path, dir: &Path) -> Result<(), String> {
    let f = file.to_str().unwrap();
    let run = |args: &[&str]| {
        let out = vog().args(args).output().unwrap();
        match out.status.success() {
            true => Ok(()),
            false => Err(format!(
                "vog {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            )),
        }
    };
    run(&["verify", "--scores", f])?;
    let shard =
        std::fs::read_to_string(file.with_extension("json")).is_ok_and(|s| s.contains("\"shard\""));
    if !shard {
        run(&["eval", f, "--out", dir.join("check-eval").to_str().unwrap()])?;
        run(&["rank", f, "--top", "2"])?;
    }
    Ok(())
}

/// The FAILED lines of `vog verify RUN`, or `None` where it cannot open the run at all.
fn verify_failures(run: &str) -> Option<std::collections::BTreeSet<String>> {
    let out = vog().args(["verify", run]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let failed: std::collections::BTreeSet<String> = text
        .lines()
        .filter(|l| l.starts_with("FAILED"))
        .map(String::from)
        .collect();
    (out.status.success() || !failed.is_empty()).then_some(failed)
}

/// An experiment's results record the recipe its run was trained with, every key of it,
/// and the run verifies.
fn same_recipe(exp: &Path) -> Result<(), String> {
    let json = |p: &Path| -> serde_json::Value {
        serde_json::from_slice(&std::fs::read(p).unwrap()).unwrap()
    };
    let results = json(&exp.join("results.json"));
    let run = json(&exp.join("run/run.json"));
    let (file, trained) = (&results["config"]["train"], &run["config"]["hyper"]);
    for (key, value) in trained.as_object().unwrap() {
        if &file[key] != value {
            return Err(format!(
                "results.json records {key} = {} for a run trained with {value}",
                file[key]
            ));
        }
    }
    match verify_failures(exp.join("run").to_str().unwrap()) {
        Some(f) if f.is_empty() => Ok(()),
        f => Err(format!("the experiment's run fails verify: {f:?}")),
    }
}

/// The commands that write into a run folder: none may leave a file `vog verify` refuses.
const WRITERS: [&str; 3] = ["train", "crossval", "prune"];

/// The invariants after one step; `before` holds the run's verify failures before it.
fn check(
    outcome: &Outcome,
    written: &[PathBuf],
    w: &World,
    before: &Option<std::collections::BTreeSet<String>>,
) -> Result<(), String> {
    let dir = &w.dir;
    if let Outcome::Moved { verified: true } = outcome {
        let after = verify_failures(&w.run_path());
        if after.as_ref().is_none_or(|f| !f.is_empty()) {
            return Err(format!("the moved run fails verify: {after:?}"));
        }
    }
    let Outcome::Ran { args, out } = outcome else {
        return Ok(());
    };
    let stderr = String::from_utf8_lossy(&out.stderr);
    if stderr.contains("panicked") || stderr.contains("RUST_BACKTRACE") {
        return Err(format!("panic: {stderr}"));
    }
    if out.status.success() {
        if let Some(why) = w.must_refuse {
            return Err(format!("accepted {why}"));
        }
        if args[0] == "experiment" {
            same_recipe(&w.dir.join("exp"))?;
        }
        for f in written {
            if is_scores(f) && !f.starts_with(dir.join("check-eval")) {
                accepted(f, dir)?;
            }
        }
        if WRITERS.contains(&args[0].as_str()) {
            let target = match args.iter().position(|a| a == "--from") {
                Some(_) => w.path("derived"),
                None => w.run_path(),
            };
            let after = verify_failures(&target).unwrap_or_default();
            let known = match args.iter().any(|a| a == "--from") {
                true => Default::default(),
                false => before.clone().unwrap_or_default(),
            };
            let new: Vec<&String> = after.difference(&known).collect();
            if !new.is_empty() {
                return Err(format!("{} left files verify refuses: {new:?}", args[0]));
            }
        }
        return Ok(());
    }
    let code = out.status.code();
    let first = stderr.lines().next().unwrap_or("");
    if !first.starts_with("error:") {
        return Err(format!("exit {code:?} without an error line: {stderr}"));
    }
    if code != Some(2) && stderr.trim_end().lines().count() != 1 {
        return Err(format!("error on more than one line: {stderr}"));
    }
    let left: Vec<&PathBuf> = written
        .iter()
        .filter(|p| !p.ends_with(".vog.lock"))
        .collect();
    if !left.is_empty() {
        return Err(format!("failed, but wrote {left:?}"));
    }
    Ok(())
}

fn sequence(base: &Path, seed: u64, steps: usize, models: bool) {
    let keep = tempfile::tempdir().unwrap();
    let dir = keep.path().to_path_buf();
    copy_tree(base, &dir);
    std::fs::create_dir_all(dir.join("out")).unwrap();
    std::fs::create_dir_all(dir.join("hand")).unwrap();
    let mut w = World {
        dir: dir.clone(),
        run: "run".into(),
        models,
        rng: ChaCha8Rng::seed_from_u64(seed),
        log: Vec::new(),
        must_refuse: None,
    };
    for _ in 0..steps {
        let before = snapshot(&dir);
        let failing = verify_failures(&w.run_path());
        let outcome = w.step();
        let written = changed(&before, &snapshot(&dir));
        if let Err(e) = check(&outcome, &written, &w, &failing) {
            panic!("seed {seed}, steps:\n  {}\n{e}", w.log.join("\n  "));
        }
    }
}

#[test]
fn command_sequences_keep_every_invariant() {
    let base = tempfile::tempdir().unwrap();
    fixtures(base.path());
    let models = base.path().join("models").is_dir();
    let first = env("VOG_SEQ_SEED").unwrap_or(1);
    let steps = env("VOG_SEQ_STEPS").unwrap_or(10) as usize;
    let until = env("VOG_SEQ_SECONDS").map(|s| Instant::now() + Duration::from_secs(s));
    let cases = env("VOG_SEQ_CASES").unwrap_or(6);
    let started = Instant::now();
    let mut run = 0;
    for seed in first.. {
        let more = match until {
            Some(t) => Instant::now() < t,
            None => seed < first + cases,
        };
        if !more {
            break;
        }
        sequence(base.path(), seed, steps, models);
        run += 1;
    }
    eprintln!(
        "{run} sequences of {steps} steps (seeds {first}..{}) in {:.0} s, models: {models}",
        first + run,
        started.elapsed().as_secs_f64()
    );
}
