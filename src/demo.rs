//! `vog demo`: the whole pipeline in a few minutes on any machine. It trains a small
//! ResNet-18 on the built-in synthetic data, in which 10% of the training labels are
//! shuffled and 5% of the training images are planted atypical ones (both known), scores
//! both splits with every target, evaluates, writes the HTML report, and prints what it
//! measured: how each VoG variant ranks test difficulty and how well it finds the shuffled
//! and the planted examples, whichever way that falls. `--data` runs the same on real data.
use crate::checkpoint::RunDir;
use crate::cli::resolve_dataset;
use crate::config::{Hyper, LabelNoise, TrainConfig};
use crate::data::synth::{self, SynthSpec};
use crate::data::{download, DatasetSpec};
use crate::eval::{self, stats, Evaluation, ScoreData};
use crate::report::{self, esc, Section};
use crate::score::{self, ScoreConfig, SplitChoice};
use crate::train::{self, Verbosity};
use crate::vog::{Target, Variant};
use anyhow::{Context, Result};
use serde::Serialize;
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;

const DEMO_TOML: &str = include_str!("../configs/demo.toml");
/// Synthetic demo sizes and planted fractions.
pub const SYNTH_TRAIN: usize = 800;
pub const SYNTH_TEST: usize = 500;
pub const ATYPICAL: f64 = 0.05;
pub const LABEL_NOISE: f64 = 0.1;
/// Real-data defaults: subsets and a shortened schedule a CPU finishes.
pub const REAL_TRAIN: usize = 5000;
pub const REAL_TEST: usize = 1000;

/// What to run.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    pub out: PathBuf,
    /// None: the synthetic data; else cifar10, cifar100 or an image folder.
    pub data: Option<String>,
    pub data_dir: PathBuf,
    pub train: Option<usize>,
    pub test: Option<usize>,
    pub epochs: Option<usize>,
    pub width: Option<i64>,
    pub seed: u64,
    pub device: String,
    pub verbosity: Verbosity,
}

/// One target's headline figures.
#[derive(Debug, Clone, Serialize)]
pub struct DemoRow {
    pub target: String,
    /// Test error (%) of the 10% lowest, all, and the 10% highest VoG.
    pub bottom: f64,
    pub all: f64,
    pub top: f64,
    /// AUROC of raw VoG for finding the shuffled-label training examples.
    pub shuffled_auroc: Option<f64>,
    /// AUROC of raw VoG for finding the planted atypical training images.
    pub atypical_auroc: Option<f64>,
    pub verdict: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    pub dataset: String,
    pub rows: Vec<DemoRow>,
    /// Accuracy on the labels trained with, at the last epoch.
    pub final_train_accuracy: f64,
    pub final_test_accuracy: Option<f64>,
    pub report: PathBuf,
    pub seconds: f64,
}

impl fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let opt = |v: Option<f64>| v.map_or("n/a".to_string(), |v| format!("{v:.3}"));
        writeln!(
            f,
            "{}: train accuracy {:.1}% (on the labels trained with), test accuracy {}",
            self.dataset,
            100.0 * self.final_train_accuracy,
            self.final_test_accuracy
                .map_or("n/a".into(), |a| format!("{:.1}%", 100.0 * a))
        )?;
        writeln!(f, "target   test error: bottom10%   all  top10%   shuffled AUROC  atypical AUROC  verdict")?;
        for r in &self.rows {
            writeln!(
                f,
                "{:8} {:>19.1}% {:>5.1}% {:>6.1}%   {:>14}  {:>14}  {}",
                r.target,
                r.bottom,
                r.all,
                r.top,
                opt(r.shuffled_auroc),
                opt(r.atypical_auroc),
                r.verdict
            )?;
        }
        write!(
            f,
            "report: {} ({:.0} s)",
            self.report.display(),
            self.seconds
        )
    }
}

/// The dataset and training configuration of the demo.
pub fn config(o: &DemoOptions) -> Result<TrainConfig> {
    let mut hyper: Hyper = toml::from_str(DEMO_TOML).expect("configs/demo.toml is valid");
    hyper.seed = o.seed;
    let (dataset, subsets) = match &o.data {
        None => {
            let spec = DatasetSpec::Synth {
                train: o.train.unwrap_or(SYNTH_TRAIN),
                test: o.test.unwrap_or(SYNTH_TEST),
                seed: o.seed,
                atypical: ATYPICAL,
            };
            (spec, (None, None))
        }
        Some(name) => {
            let spec = resolve_dataset(name, &o.data_dir, o.seed)?;
            // A shortened version of the paper's recipe: augmentation on, steps scaled.
            hyper = Hyper {
                epochs: 30,
                lr: 0.1,
                lr_milestones: vec![15, 25],
                weight_decay: 5e-4,
                augment: true,
                save_epochs: "first:3,last:3,every:5".into(),
                batch_size: 128,
                ..hyper
            };
            (
                spec,
                (
                    Some(o.train.unwrap_or(REAL_TRAIN)),
                    Some(o.test.unwrap_or(REAL_TEST)),
                ),
            )
        }
    };
    if let Some(e) = o.epochs {
        hyper = hyper.with_epochs(e);
    }
    if let Some(w) = o.width {
        hyper.width = w;
    }
    TrainConfig::new(
        dataset,
        hyper,
        subsets.0,
        subsets.1,
        Some(LabelNoise {
            fraction: LABEL_NOISE,
            seed: o.seed,
        }),
        o.device.clone(),
    )
}

/// Runs the demo into `o.out` (replacing an earlier demo there).
pub fn run(o: &DemoOptions) -> Result<DemoSummary> {
    let started = Instant::now();
    let cfg = config(o)?;
    download::ensure(&cfg.dataset)?;
    crate::device::parse(&cfg.device)?;
    std::fs::create_dir_all(&o.out)
        .with_context(|| format!("cannot create '{}'", o.out.display()))?;
    let run_path = o.out.join("run");
    let prepared = train::prepare_data(&cfg)?;
    let run = RunDir::create(&run_path, true)?;
    let manifest = train::run(&cfg, &prepared, &run, o.verbosity)?;

    let mut evals = Vec::new();
    let mut paths = Vec::new();
    for split in [SplitChoice::Test, SplitChoice::Train] {
        let name = format!("{split:?}").to_lowercase();
        let path = run_path.join(format!("scores-{name}-all.csv"));
        score::run(
            &ScoreConfig {
                run: run_path.clone(),
                split,
                stage: "all".into(),
                out: path.clone(),
                batch_size: 128,
                device: cfg.device.clone(),
                targets: vec![Target::Logit, Target::Prob, Target::Logprob, Target::Margin],
                variant: Variant::default(),
                data: None,
            },
            o.verbosity == Verbosity::Bar,
        )?;
        let data = eval::load_scores(&path)?;
        let e = eval::evaluate(&data, &path.display().to_string());
        eval::write_outputs(&o.out.join(format!("eval-{name}")), &e, &data)?;
        evals.push((e, data));
        paths.push(path);
    }
    let planted = planted_ids(&cfg.dataset);
    let atypical = atypical_aurocs(&evals[1].1, &planted);
    let mut extra = Vec::new();
    if !planted.is_empty() {
        write_planted(&o.out.join("planted.csv"), &planted)?;
        extra.push(planted_section(&evals[1].1, &atypical, planted.len()));
    }
    let report_path = o.out.join("report.html");
    report::run(&run_path, &paths, &report_path, &extra)?;

    let last = manifest.epochs.last().context("no epoch ran")?;
    let summary = DemoSummary {
        dataset: cfg.dataset.name(),
        rows: rows(&evals[0].0, &evals[1].0, &atypical),
        final_train_accuracy: last.train_accuracy,
        final_test_accuracy: last.test_accuracy,
        report: report_path,
        seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_vec_pretty(&summary)?;
    crate::atomic_file::write_bytes(&o.out.join("summary.json"), &json)?;
    Ok(summary)
}

fn rows(test: &Evaluation, train: &Evaluation, atypical: &[Option<f64>]) -> Vec<DemoRow> {
    test.targets
        .iter()
        .zip(&train.targets)
        .zip(atypical)
        .map(|((t, tr), a)| DemoRow {
            target: t.target.clone(),
            bottom: t.bottom_all_top[0].error,
            all: t.bottom_all_top[1].error,
            top: t.bottom_all_top[2].error,
            shuffled_auroc: tr.memorization.as_ref().map(|m| m.auroc),
            atypical_auroc: *a,
            verdict: t.verdict.to_string(),
        })
        .collect()
}

/// Ids of the planted atypical training images (none for real data).
pub fn planted_ids(spec: &DatasetSpec) -> Vec<String> {
    match spec {
        DatasetSpec::Synth {
            train,
            test,
            seed,
            atypical,
        } => {
            let s = SynthSpec {
                atypical: *atypical,
                ..SynthSpec::new(*train, *test, *seed)
            };
            synth::planted(&s)
                .into_iter()
                .map(|i| format!("train/{i:06}"))
                .collect()
        }
        _ => Vec::new(),
    }
}

/// Per target, AUROC of raw VoG for the planted images among the training examples whose
/// label was not shuffled.
pub fn atypical_aurocs(train: &ScoreData, planted: &[String]) -> Vec<Option<f64>> {
    let planted: HashSet<&str> = planted.iter().map(String::as_str).collect();
    let rows: Vec<usize> = (0..train.len()).filter(|&i| !train.noisy[i]).collect();
    let positive: Vec<bool> = rows
        .iter()
        .map(|&i| planted.contains(train.ids[i].as_str()))
        .collect();
    train
        .targets
        .iter()
        .map(|t| {
            let scores: Vec<f64> = rows.iter().map(|&i| t.raw[i]).collect();
            stats::auroc(&scores, &positive)
        })
        .collect()
}

fn write_planted(path: &Path, ids: &[String]) -> Result<()> {
    let text = std::iter::once("id".to_string())
        .chain(ids.iter().cloned())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    crate::atomic_file::write_bytes(path, text.as_bytes())
}

fn planted_section(train: &ScoreData, aurocs: &[Option<f64>], n: usize) -> Section {
    let mut html = format!(
        "<p>{n} training images were drawn atypically (twice the stripe frequency, inverted colours, heavier noise) \
         but keep their label. AUROC of raw VoG for finding them among the training examples with unshuffled labels:</p>\
         <table><tr><th class=\"l\">target</th><th>AUROC</th></tr>"
    );
    for (t, a) in train.targets.iter().zip(aurocs) {
        html += &format!(
            "<tr><td class=\"l\">{}</td><td>{}</td></tr>",
            esc(&t.target),
            a.map_or("n/a".into(), |a| format!("{a:.3}"))
        );
    }
    html += "</table>";
    Section {
        title: "Planted atypical examples".into(),
        html,
    }
}
