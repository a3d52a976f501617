//! `[hardness]` in an experiment file (issue 35, item 3): planted hardness as one command.
//! One run per kind, fraction and seed, each planting that one kind (as H-CAT does, so
//! kinds do not mask each other), plus a clean run per seed; each trained, scored and
//! evaluated by the [pipeline](crate::pipeline) in `OUT/NAME/`, and every stage's
//! leaderboards gathered into one matrix of scores by kind and fraction, the AUROC averaged
//! over the seeds with their lowest and highest beside it: `OUT/matrix-STAGE.csv`,
//! `OUT/hardness.html` and `OUT/results.json`. Re-running resumes every run where it
//! stopped, as a single experiment does.
use crate::config::TrainConfig;
use crate::data::plant::{Kind, PlantSpec};
use crate::epochs::Stage;
use crate::eval::leaderboard::{Leaderboard, Question};
use crate::eval::matrix::Matrix;
use crate::export::esc;
use crate::pipeline::{self, Plan};
use crate::progress::Reporter;
use crate::scores::SplitChoice;
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// The `[hardness]` table of an experiment file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hardness {
    /// The kinds planted, one per run (default: every kind but `confusable`, which needs a
    /// run to rank the classes).
    #[serde(default = "every_kind")]
    pub kinds: Vec<Kind>,
    /// The share of the training examples planted, each its own run.
    pub fractions: Vec<f64>,
    /// The training seeds, each its own run of every kind and fraction, and a clean one.
    pub seeds: Vec<u64>,
}

fn every_kind() -> Vec<Kind> {
    Kind::ALL
        .into_iter()
        .filter(|&k| k != Kind::Confusable)
        .collect()
}

/// One run of the suite.
#[derive(Debug, Clone)]
pub struct SuiteRun {
    /// Its folder under the experiment's `out`: `zoom-0.05-seed0`, `clean-seed0`.
    pub name: String,
    /// The kind and fraction planted; `None` for a clean run.
    pub planted: Option<(Kind, f64)>,
    pub seed: u64,
    pub plan: Plan,
}

impl Hardness {
    /// Refuses an empty list, a repeated value, or a fraction outside (0, 1) or too small
    /// to plant one of `train` examples (when the subset is known), naming `path`.
    fn check(&self, path: &Path, train: Option<usize>) -> Result<()> {
        let file = path.display();
        if self.kinds.is_empty() || self.fractions.is_empty() || self.seeds.is_empty() {
            bail!("[hardness] in '{file}' needs at least one kind, fraction and seed");
        }
        let repeated = |v: Vec<String>| v.iter().enumerate().any(|(i, x)| v[..i].contains(x));
        if repeated(self.kinds.iter().map(|k| k.name().to_string()).collect())
            || repeated(self.fractions.iter().map(f64::to_string).collect())
            || repeated(self.seeds.iter().map(u64::to_string).collect())
        {
            bail!("[hardness] in '{file}' lists a kind, fraction or seed twice");
        }
        if self.kinds.contains(&Kind::Confusable) {
            bail!(
                "[hardness] in '{file}' lists confusable, which needs a run to rank the classes \
                 (vog train --plant confusable:F --plant-from RUN); a suite does not plant it"
            );
        }
        for &f in &self.fractions {
            if !(f > 0.0 && f < 1.0) {
                bail!("[hardness] fraction {f} in '{file}' must lie in (0, 1)");
            }
            if let Some(n) = train.filter(|&n| (f * n as f64).round() < 1.0) {
                bail!("[hardness] fraction {f} in '{file}' plants no example in {n} training examples");
            }
        }
        Ok(())
    }

    /// The suite's runs, each `base` with its seed and plant, in `base.out/NAME`: per seed
    /// the clean run first, then every kind at every fraction.
    pub fn runs(&self, base: &Plan, path: &Path) -> Result<Vec<SuiteRun>> {
        self.check(path, base.train.train_subset)?;
        let mut runs = Vec::new();
        for &seed in &self.seeds {
            runs.push(run_of(base, None, seed)?);
            for &kind in &self.kinds {
                for &fraction in &self.fractions {
                    runs.push(run_of(base, Some((kind, fraction)), seed)?);
                }
            }
        }
        Ok(runs)
    }
}

/// `base` trained with `seed`, planting `planted`.
fn run_of(base: &Plan, planted: Option<(Kind, f64)>, seed: u64) -> Result<SuiteRun> {
    let t = &base.train;
    let mut hyper = t.hyper.clone();
    hyper.seed = seed;
    let mut selection = t.selection();
    selection.plant = planted.map(|p| PlantSpec(vec![p]));
    let train = TrainConfig::new(t.dataset.clone(), hyper, selection, t.device, &base.origins)?;
    let name = match planted {
        Some((kind, f)) => format!("{}-{f}-seed{seed}", kind.name()),
        None => format!("clean-seed{seed}"),
    };
    Ok(SuiteRun {
        plan: Plan {
            train,
            out: base.out.join(&name),
            ..base.clone()
        },
        name,
        planted,
        seed,
    })
}

/// What one run of the suite gave.
#[derive(Debug, Clone, Serialize)]
pub struct RunResult {
    pub name: String,
    pub kind: Option<Kind>,
    pub fraction: Option<f64>,
    pub seed: u64,
    pub final_train_accuracy: f64,
    pub final_test_accuracy: Option<f64>,
    pub training_seconds: f64,
    /// Per stage, the leaderboard of its planted kind (on the training rows).
    pub leaderboards: Vec<(Stage, Leaderboard)>,
}

/// `results.json` of a suite.
#[derive(Debug, Clone, Serialize)]
pub struct SuiteResults {
    pub config: super::ExperimentFile,
    pub runs: Vec<RunResult>,
    /// Per stage, the matrix over the runs.
    pub matrices: Vec<(Stage, Matrix)>,
    pub page: PathBuf,
}

/// Runs (or resumes) every run of the suite, then gathers the matrices.
pub fn run(
    file: super::ExperimentFile,
    runs: &[SuiteRun],
    out: &Path,
    reporter: &dyn Reporter,
) -> Result<SuiteResults> {
    let mut results = Vec::new();
    for (i, r) in runs.iter().enumerate() {
        reporter.info(&format!("run {} of {}: {}", i + 1, runs.len(), r.name));
        results.push(run_one(r, reporter)?);
    }
    let stages: Vec<Stage> = runs.first().map_or(Vec::new(), |r| r.plan.stages.clone());
    let matrices: Vec<(Stage, Matrix)> = stages
        .into_iter()
        .map(|s| {
            let m = gather(&results, &s);
            (s, m)
        })
        .collect();
    for (stage, m) in &matrices {
        let csv = out.join(format!("matrix-{}.csv", stage.slug()));
        crate::atomic_file::write_bytes(&csv, &m.to_csv()?)?;
    }
    let page = out.join("hardness.html");
    let features = runs
        .first()
        .and_then(|r| r.plan.features.as_ref())
        .map(|f| f.describe());
    let html = page_html(&results, &matrices, features.as_deref())?;
    crate::atomic_file::write_bytes(&page, html.as_bytes())?;
    let suite = SuiteResults {
        config: file,
        runs: results,
        matrices,
        page,
    };
    let json = serde_json::to_vec_pretty(&suite)?;
    crate::atomic_file::write_bytes(&out.join("results.json"), &json)?;
    Ok(suite)
}

/// Trains, scores and evaluates one run; keeps its planted kind's leaderboards.
fn run_one(r: &SuiteRun, reporter: &dyn Reporter) -> Result<RunResult> {
    let outcome = pipeline::run(&r.plan, reporter)?;
    let m = &outcome.manifest;
    let last = m.epochs.last();
    let leaderboards = match r.planted {
        None => Vec::new(),
        Some((kind, _)) => outcome
            .stages
            .iter()
            .filter(|(split, _, _)| *split != SplitChoice::Test)
            .filter_map(|(_, stage, e)| {
                let l = e.evaluation.leaderboard(Question::Planted(kind))?;
                Some((stage.clone(), l.clone()))
            })
            .collect(),
    };
    Ok(RunResult {
        name: r.name.clone(),
        kind: r.planted.map(|p| p.0),
        fraction: r.planted.map(|p| p.1),
        seed: r.seed,
        final_train_accuracy: last.map_or(0.0, |e| e.train_accuracy),
        final_test_accuracy: last.and_then(|e| e.test_accuracy),
        training_seconds: m.epochs.iter().map(|e| e.seconds).sum(),
        leaderboards,
    })
}

/// The matrix of `stage`: a column per kind and fraction, in run order, over the seeds.
fn gather(results: &[RunResult], stage: &Stage) -> Matrix {
    let mut columns: Vec<(String, Vec<&Leaderboard>)> = Vec::new();
    for r in results {
        let (Some(kind), Some(f)) = (r.kind, r.fraction) else {
            continue;
        };
        let heading = format!("{} {}%", kind.name(), 100.0 * f);
        let boards = r.leaderboards.iter().filter(|(s, _)| s == stage);
        match columns.iter_mut().find(|(h, _)| *h == heading) {
            Some((_, v)) => v.extend(boards.map(|(_, l)| l)),
            None => columns.push((heading, boards.map(|(_, l)| l).collect())),
        }
    }
    Matrix::new(&columns)
}

/// `hardness.html`: each stage's matrix (after where the scores from features came from,
/// if any), then the runs with their accuracies.
fn page_html(
    results: &[RunResult],
    matrices: &[(Stage, Matrix)],
    features: Option<&str>,
) -> Result<String> {
    let from = features.map_or(String::new(), |f| format!("<p>{}</p>", esc(f)));
    let mut sections: Vec<(String, String, String)> = matrices
        .iter()
        .map(|(stage, m)| {
            (
                format!("matrix-{}", stage.slug()),
                format!("Which score finds which kind (stage {stage})"),
                format!("{from}{}", crate::report::matrix::matrix_html(m)),
            )
        })
        .collect();
    let mut table = String::from(
        "<table><tr><th>run</th><th>kind</th><th>fraction</th><th>seed</th><th>train \
         accuracy</th><th>test accuracy</th><th>training seconds</th></tr>",
    );
    for r in results {
        table.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{}</td><td>{:.0}</td></tr>",
            esc(&r.name),
            r.kind.map_or("clean", Kind::name),
            r.fraction.map_or("-".into(), |f| f.to_string()),
            r.seed,
            100.0 * r.final_train_accuracy,
            r.final_test_accuracy
                .map_or("n/a".into(), |t| format!("{:.1}%", 100.0 * t)),
            r.training_seconds
        ));
    }
    table.push_str("</table>");
    sections.push(("runs".into(), "Runs".into(), table));
    crate::report::sections_page("vog hardness suite", &sections)
}
