//! `vog demo`: the whole pipeline in a few minutes on any machine. It trains a small
//! ResNet-18 on the built-in synthetic data, in which 10% of the training labels are
//! shuffled and 5% of the training images are planted atypical ones (both known), scores
//! both splits with every target, evaluates, writes the HTML report, and prints what it
//! measured: how each VoG variant ranks test difficulty and how well it finds the shuffled
//! and the planted examples, whichever way that falls. `--data` runs the same on real data.
use crate::config::{Hyper, TrainConfig};
use crate::data::prepare::{LabelNoise, Selection};
use crate::data::synth::{self, SynthSpec};
use crate::data::DatasetSpec;
use crate::epochs::Stage;
use crate::eval::leaderboard::{Leaderboard, Question};
use crate::eval::output::{fmt_auroc, fmt_verdict};
use crate::origin::Origins;
use crate::pipeline::{self, Outcome, Plan, ScoreSettings};
use crate::progress::Reporter;
use crate::prune::{PruneRequest, PruneTable};
use crate::scores::SplitChoice;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::Device;

const DEMO_TOML: &str = include_str!("../configs/demo.toml");

/// `configs/demo.toml`: the demo's whole recipe.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoFile {
    pub label_noise: f64,
    pub synth: DemoData,
    pub real: DemoData,
    pub prune: PruneSettings,
    pub score: ScoreSettings,
}

/// What `vog demo --prune` compares.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PruneSettings {
    pub columns: Vec<String>,
    pub fractions: Vec<f64>,
    pub seeds: usize,
}

/// The data size and training recipe of one kind of demo.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DemoData {
    /// Training examples (the synthetic size, or the real-data subset).
    pub train: usize,
    pub test: usize,
    /// Fraction of planted atypical training images (synthetic data only).
    #[serde(default)]
    pub atypical: f64,
    pub recipe: Hyper,
}

impl DemoFile {
    /// The built-in `configs/demo.toml`.
    pub fn builtin() -> Self {
        toml::from_str(DEMO_TOML).expect("configs/demo.toml is valid")
    }
}

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
    pub device: Device,
    /// Also run `vog prune` on the training scores (`[prune]` of the demo's config).
    pub prune: bool,
}

/// What the demo measured.
#[derive(Debug, Clone, Serialize)]
pub struct DemoSummary {
    pub dataset: String,
    /// Accuracy on the labels trained with, at the last epoch.
    pub final_train_accuracy: f64,
    pub final_test_accuracy: Option<f64>,
    /// Test difficulty (test split), memorization and atypical (train split).
    pub leaderboards: Vec<Leaderboard>,
    /// With `--prune`: test accuracy after removing what each score flags.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub prune: Option<PruneTable>,
    pub report: PathBuf,
    pub seconds: f64,
}

impl fmt::Display for DemoSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{}: train accuracy {:.1}% (on the labels trained with), test accuracy {}",
            self.dataset,
            100.0 * self.final_train_accuracy,
            self.final_test_accuracy
                .map_or("n/a".into(), |a| format!("{:.1}%", 100.0 * a))
        )?;
        for l in &self.leaderboards {
            writeln!(
                f,
                "{}: {} of {}",
                l.question.title(),
                l.positives,
                l.examples
            )?;
            for e in &l.entries {
                writeln!(
                    f,
                    "  {:15} AUROC {:22}  {}{}",
                    e.score,
                    fmt_auroc(e.test.as_ref()),
                    fmt_verdict(e.verdict, l.positives),
                    match e.restates_outcome {
                        true => " (restates the outcome: from the last checkpoint's prediction)",
                        false => "",
                    }
                )?;
            }
        }
        if let Some(t) = &self.prune {
            let mut text = Vec::new();
            t.table().write_text(&mut text).map_err(|_| fmt::Error)?;
            writeln!(
                f,
                "test accuracy after removing the top fraction by each score:"
            )?;
            write!(f, "{}", String::from_utf8_lossy(&text))?;
        }
        write!(
            f,
            "report: {} ({:.0} s)",
            self.report.display(),
            self.seconds
        )
    }
}

/// The pipeline plan of the demo (settings from `configs/demo.toml`, then the options).
pub fn plan(o: &DemoOptions) -> Result<Plan> {
    if o.train == Some(0) || o.test == Some(0) {
        bail!("--train and --test must each be at least 1");
    }
    let file = DemoFile::builtin();
    let origins = Origins::default()
        .flag("epochs", o.epochs.is_some())
        .flag("train_subset", o.train.is_some())
        .flag("test_subset", o.test.is_some());
    let (dataset, d, subsets) = dataset(o, &file)?;
    let mut hyper = d.recipe.clone();
    hyper.seed = o.seed;
    if let Some(e) = o.epochs {
        hyper = hyper.with_epochs(e);
    }
    let origins = origins.set("width", &mut hyper.width, o.width);
    let selection = Selection {
        train_subset: subsets.0,
        test_subset: subsets.1,
        label_noise: Some(LabelNoise {
            fraction: file.label_noise,
            seed: o.seed,
        }),
        ..Selection::default()
    };
    let train = TrainConfig::new(dataset, hyper, selection, o.device, &origins)?;
    let planted = planted_ids(&train.dataset);
    let sets = match planted.is_empty() {
        true => Vec::new(),
        false => vec![(Question::Atypical, planted)],
    };
    Ok(Plan {
        train,
        origins,
        sets,
        out: o.out.clone(),
        splits: file.score.splits,
        stages: file.score.stages,
        targets: file.score.targets,
        batch_size: file.score.batch_size,
        reuse: false,
        features: None,
    })
}

/// What the demo is about to do, in one paragraph.
pub fn announcement(plan: &Plan, o: &DemoOptions) -> String {
    let noise = plan.train.label_noise.as_ref().map_or(0.0, |n| n.fraction);
    format!(
        "vog demo: {} with {:.0}% shuffled training labels, ResNet-18 width {}, {} epochs, then scoring \
         both splits with four targets, evaluation{} and an HTML report in '{}'.{}",
        plan.train.dataset.name(),
        100.0 * noise,
        plan.train.hyper.width,
        plan.train.hyper.epochs,
        if o.prune { ", retrainings without what each score flags (vog prune)" } else { "" },
        o.out.display(),
        match (&o.data, o.prune) {
            (None, false) => " Under 3 minutes on a 2-core CPU.",
            (None, true) => " About 4 minutes on a 2-core CPU with AVX-512, up to 15 without.",
            _ => "",
        }
    )
}

/// The (train, test) subsets of real data; none of the synthetic data.
type Subsets = (Option<usize>, Option<usize>);

/// The demo's dataset, its settings in `configs/demo.toml`, and the subsets.
fn dataset<'a>(
    o: &DemoOptions,
    file: &'a DemoFile,
) -> Result<(DatasetSpec, &'a DemoData, Subsets)> {
    Ok(match &o.data {
        None => {
            let d = &file.synth;
            let spec = DatasetSpec::Synth {
                train: o.train.unwrap_or(d.train),
                test: o.test.unwrap_or(d.test),
                seed: o.seed,
                atypical: d.atypical,
            };
            (spec, d, (None, None))
        }
        Some(name) => {
            let d = &file.real;
            let spec = DatasetSpec::resolve(name, &o.data_dir, o.seed).context("--data")?;
            let subsets = (
                Some(o.train.unwrap_or(d.train)),
                Some(o.test.unwrap_or(d.test)),
            );
            (spec, d, subsets)
        }
    })
}

/// Runs the demo into `o.out` (replacing an earlier demo there).
pub fn run(o: &DemoOptions, reporter: &dyn Reporter) -> Result<DemoSummary> {
    let started = Instant::now();
    let plan = plan(o)?;
    std::fs::create_dir_all(&o.out)
        .with_context(|| format!("cannot create '{}'", o.out.display()))?;
    if let Some((_, planted)) = plan.sets.first() {
        write_planted(&o.out.join("planted.csv"), planted)?;
    }
    let outcome = pipeline::run(&plan, reporter)?;
    let prune = match o.prune {
        true => Some(prune(&plan, &outcome, reporter)?),
        false => None,
    };
    let report = pipeline::write_report(&plan, &outcome)?;
    let mut leaderboards = Vec::new();
    for (split, question) in [
        (SplitChoice::Test, Question::Difficulty),
        (SplitChoice::Train, Question::Memorization),
        (SplitChoice::Train, Question::Atypical),
    ] {
        let e = outcome
            .find(split, &Stage::All)
            .with_context(|| format!("the demo scores the {split} split"))?;
        leaderboards.extend(e.evaluation.leaderboard(question).cloned());
    }
    let last = outcome.manifest.epochs.last().context("no epoch ran")?;
    let summary = DemoSummary {
        dataset: plan.train.dataset.name(),
        final_train_accuracy: last.train_accuracy,
        final_test_accuracy: last.test_accuracy,
        leaderboards,
        prune,
        report,
        seconds: started.elapsed().as_secs_f64(),
    };
    let json = serde_json::to_vec_pretty(&summary)?;
    crate::atomic_file::write_bytes(&o.out.join("summary.json"), &json)?;
    Ok(summary)
}

/// `vog prune` on the demo's run and training scores, with the `[prune]` settings.
fn prune(plan: &Plan, outcome: &Outcome, reporter: &dyn Reporter) -> Result<PruneTable> {
    let settings = DemoFile::builtin().prune;
    let scores = outcome
        .find(SplitChoice::Train, &Stage::All)
        .context("the demo scores the train split")?;
    let request = PruneRequest {
        run: plan.run_dir(),
        scores: scores.file.path.clone(),
        columns: settings.columns,
        fractions: settings.fractions,
        seeds: settings.seeds,
        relabel_suggested: false,
        task: None,
    };
    match crate::prune::run(&request, reporter)? {
        crate::prune::Outcome::Table(t) => Ok(*t),
        crate::prune::Outcome::Task { .. } => unreachable!("the demo runs every retraining"),
    }
}

/// Ids of the planted atypical training images (none for real data).
pub fn planted_ids(spec: &DatasetSpec) -> HashSet<String> {
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
        _ => HashSet::new(),
    }
}

fn write_planted(path: &Path, ids: &HashSet<String>) -> Result<()> {
    let mut sorted: Vec<&String> = ids.iter().collect();
    sorted.sort();
    let text = std::iter::once("id".to_string())
        .chain(sorted.into_iter().cloned())
        .collect::<Vec<_>>()
        .join("\n")
        + "\n";
    crate::atomic_file::write_bytes(path, text.as_bytes())
}
