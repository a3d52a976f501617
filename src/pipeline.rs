//! The whole job in one place: train -> score (every split x stage, all targets from the
//! same forward passes) -> evaluate -> report. `vog demo` and `vog experiment` are this
//! pipeline with their own settings. With [`Plan::reuse`] a finished training and
//! up-to-date scores files are kept, so an interrupted run resumes at the first step whose
//! output is missing.
use crate::config::TrainConfig;
use crate::crossval::{self, CrossvalRequest};
use crate::data::SplitKind;
use crate::data::{download, prepare};
use crate::embed::{self, EmbedRequest, FeatureModel, Images};
use crate::epochs::Stage;
use crate::eval::leaderboard::Question;
use crate::eval::{self, Evaluated, Evaluation};
use crate::origin::Origins;
use crate::progress::Reporter;
use crate::prune::PruneTable;
use crate::report::{self, ReportInput};
use crate::run_dir::{RunDir, RunManifest};
use crate::scores::{self, Companion, ScoresFile, ScoresMeta, SplitChoice};
use crate::scoring::{self, ScoreConfig, ScoreOptions};
use crate::train;
use crate::variance::{Target, Variant};
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// The scoring part of an experiment or demo file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScoreSettings {
    pub stages: Vec<Stage>,
    pub splits: Vec<SplitChoice>,
    pub targets: Vec<Target>,
    pub batch_size: usize,
}

/// What to run.
#[derive(Debug, Clone)]
pub struct Plan {
    pub train: TrainConfig,
    /// Where the train config's values came from, for errors about them.
    pub origins: Origins,
    /// Sets of example ids each scores file is also asked about (the demo's planted
    /// atypical images).
    pub sets: Vec<(Question, HashSet<String>)>,
    /// Output folder: `run/` (the run directory), `eval/SPLIT-STAGE/`, `report.html`.
    pub out: PathBuf,
    pub splits: Vec<SplitChoice>,
    pub stages: Vec<Stage>,
    pub targets: Vec<Target>,
    pub batch_size: usize,
    /// Keep a finished training of the same configuration and scores files that match;
    /// otherwise start from scratch.
    pub reuse: bool,
    /// Out-of-sample flags from a feature model, fitted after training.
    pub features: Option<FeatureStep>,
}

/// Out-of-sample flags from a feature model (`[features]` of an experiment file): once the
/// run has trained, its images are embedded into `OUT/features.safetensors` (`vog embed
/// --run`) and a logistic regression fitted per fold on them (`vog crossval --features`),
/// so that every scores file carries `oof_*`, `label_issue`, `outlier` and
/// `near_duplicate_set`, and the evaluation ranks them beside VoG.
#[derive(Debug, Clone)]
pub struct FeatureStep {
    pub model: FeatureModel,
    /// K of the cross-fitting.
    pub folds: usize,
}

impl FeatureStep {
    /// Where the scores from features come from, in words for a page.
    pub fn describe(&self) -> String {
        let source = match &self.model {
            FeatureModel::Script { file, .. } => format!("the model '{}'", file.display()),
            FeatureModel::Backbone(run) => {
                format!("the vog run '{}' (its last checkpoint)", run.display())
            }
        };
        format!(
            "oof_prob, oof_margin, oof_entropy and label_issue: logistic regression cross-fitted \
             in {} folds on the features of {source}, in each run (its {FEATURES_FILE}); \
             outlier: the mean cosine distance to the 10 nearest training images in those \
             features.",
            self.folds
        )
    }
}

/// The feature file of a plan's run, in its output folder.
pub const FEATURES_FILE: &str = "features.safetensors";

impl Plan {
    pub fn run_dir(&self) -> PathBuf {
        self.out.join("run")
    }
}

/// One scored (split, stage) with its evaluation, as `results.json` records it.
#[derive(Debug, Clone, Serialize)]
pub struct StageResult {
    pub split: SplitChoice,
    pub stage: Stage,
    pub epochs: Vec<usize>,
    pub scores: PathBuf,
    pub evaluation: Evaluation,
}

/// What the pipeline produced.
pub struct Outcome {
    pub manifest: RunManifest,
    /// In plan order: every split, and within it every stage.
    pub stages: Vec<(SplitChoice, Stage, Evaluated)>,
}

impl Outcome {
    pub fn results(&self) -> Vec<StageResult> {
        self.stages
            .iter()
            .map(|(split, stage, e)| StageResult {
                split: *split,
                stage: stage.clone(),
                epochs: e.file.meta.epochs.clone(),
                scores: e.file.path.clone(),
                evaluation: e.evaluation.clone(),
            })
            .collect()
    }

    /// The evaluation of `split` at `stage`, if the plan had it.
    pub fn find(&self, split: SplitChoice, stage: &Stage) -> Option<&Evaluated> {
        self.stages
            .iter()
            .find(|(sp, st, _)| *sp == split && st == stage)
            .map(|(_, _, e)| e)
    }
}

/// Trains (or reuses the training), scores every split and stage, evaluates each (early
/// compared with late where both are there) and writes the evaluation outputs.
pub fn run(plan: &Plan, reporter: &dyn Reporter) -> Result<Outcome> {
    if plan.splits.is_empty() || plan.stages.is_empty() || plan.targets.is_empty() {
        bail!("the pipeline needs at least one split, stage and target");
    }
    download::ensure(&plan.train.dataset, reporter)?;
    let manifest = train_or_reuse(plan, reporter)?;
    if let Some(step) = &plan.features {
        fit_features(plan, step, reporter)?;
    }
    let mut stages = Vec::new();
    for &split in &plan.splits {
        // Gradients are captured on training batches only.
        for stage in plan
            .stages
            .iter()
            .filter(|&s| *s != Stage::Captured || split == SplitChoice::Train)
        {
            let path = score_stage(plan, &manifest, split, stage, reporter)?;
            let file = ScoresFile::read(&path)?;
            let sets: Vec<(Question, &HashSet<String>)> =
                plan.sets.iter().map(|(q, ids)| (*q, ids)).collect();
            let evaluation = eval::evaluate(&file, &sets)?;
            stages.push((split, stage.clone(), Evaluated { file, evaluation }));
        }
    }
    compare_early_late(&mut stages)?;
    for (split, stage, e) in &stages {
        let dir = plan
            .out
            .join("eval")
            .join(format!("{split}-{}", stage.slug()));
        eval::write_outputs(&dir, &e.evaluation, &e.file, None)?;
    }
    Ok(Outcome { manifest, stages })
}

/// Writes `OUT/report.html` from the outcome. The test split's scores lead (they fill the
/// grids): of the paper's stage for test difficulty, early and late together (figures
/// 4-6), where they were scored, else of the whole training.
pub fn write_report(plan: &Plan, outcome: &Outcome) -> Result<PathBuf> {
    let mut order: Vec<usize> = (0..outcome.stages.len()).collect();
    let test = |stage: Stage| {
        outcome
            .stages
            .iter()
            .position(|(sp, st, _)| *sp == SplitChoice::Test && *st == stage)
    };
    if let Some(i) = test(Stage::EarlyLate).or_else(|| test(Stage::All)) {
        order.swap(0, i);
    }
    let scored: Vec<&Evaluated> = order.into_iter().map(|i| &outcome.stages[i].2).collect();
    let path = plan.out.join("report.html");
    report::write(
        &ReportInput {
            run: Some((&plan.run_dir(), &outcome.manifest)),
            scored: &scored,
            prune: PruneTable::read(&plan.run_dir())?.as_ref(),
        },
        &path,
    )?;
    Ok(path)
}

fn train_or_reuse(plan: &Plan, reporter: &dyn Reporter) -> Result<RunManifest> {
    let run_path = plan.run_dir();
    if plan.reuse {
        if let Ok(run) = RunDir::open(&run_path) {
            let m = run.read_manifest()?;
            if let Some(diff) = plan.train.difference(&m.config) {
                bail!(
                    "'{}' holds a run of another configuration ({diff}); remove it or choose \
                     another output folder",
                    run_path.display()
                );
            }
            if m.complete {
                reporter.info(&format!(
                    "training: up to date ({} epochs in '{}')",
                    m.epochs.len(),
                    run_path.display()
                ));
                return Ok(m);
            }
            if m.resume.is_some() {
                let run = RunDir::open_for_writing(&run_path)?;
                let prepared = prepare_data(plan)?;
                return train::resume(&run, &prepared, plan.train.device, reporter);
            }
            reporter.info(&format!(
                "training: '{}' stopped before its first epoch ended; starting it over",
                run_path.display()
            ));
        }
    }
    let prepared = prepare_data(plan)?;
    train::check_fits(&plan.train, &prepared, &plan.origins)?;
    let run = RunDir::create(&run_path, true)?;
    train::run(&plan.train, &prepared, &run, reporter)
}

/// Embeds the run's images and cross-fits on them, each unless reuse is on and its output
/// is up to date.
fn fit_features(plan: &Plan, step: &FeatureStep, reporter: &dyn Reporter) -> Result<()> {
    let run = plan.run_dir();
    if crate::oof::read_plan(&run)?.is_some_and(|p| p.features.is_none()) {
        bail!(
            "'{}' holds fold models that vog crossval trained; [features] would replace their \
             probabilities: move that folder away, or remove [features]",
            run.join(crate::oof::DIR).display()
        );
    }
    let embedding = EmbedRequest {
        images: Images::Run(run.clone()),
        model: step.model.clone(),
        out: plan.out.join(FEATURES_FILE),
        device: plan.train.device,
        batch_size: plan.batch_size,
    };
    if plan.reuse && embed::up_to_date(&embedding)? {
        reporter.info("embedding: up to date");
    } else {
        embed::run(&embedding, reporter)?;
    }
    if plan.reuse && crossval::up_to_date_on_features(&run, &embedding.out, step.folds)? {
        reporter.info("cross-fitting on the features: up to date");
        return Ok(());
    }
    let request = CrossvalRequest {
        run,
        folds: step.folds,
        only: None,
        gather: false,
        // The plan owns its run: a fit on other features or folds is replaced (not retrained
        // folds: refused above).
        overwrite: true,
        features: Some(embedding.out),
    };
    crossval::run(&request, reporter)?;
    Ok(())
}

fn prepare_data(plan: &Plan) -> Result<prepare::PreparedData> {
    let cfg = &plan.train;
    prepare::prepare(
        &cfg.dataset,
        &cfg.selection(),
        cfg.hyper.seed,
        &plan.origins,
    )
}

/// Scores one split at one stage into the run's default scores path, unless reuse is on
/// and that file already holds these scores; returns the path.
fn score_stage(
    plan: &Plan,
    m: &RunManifest,
    split: SplitChoice,
    stage: &Stage,
    reporter: &dyn Reporter,
) -> Result<PathBuf> {
    let run = plan.run_dir();
    let out = scores::scores_path(&run, split, stage);
    if plan.reuse && up_to_date(&out, plan, m, stage) {
        reporter.info(&format!("scoring {split} {stage}: up to date"));
        return Ok(out);
    }
    scoring::run(
        &ScoreConfig {
            run,
            stage: stage.clone(),
            data: None,
            allow_incomplete: false,
            options: ScoreOptions {
                split,
                out: out.clone(),
                batch_size: plan.batch_size,
                device: plan.train.device,
                targets: plan.targets.clone(),
                variant: Variant::default(),
                precision: Default::default(),
            },
        },
        reporter,
    )?;
    Ok(out)
}

/// Whether the scores file at `csv` was made from this run's checkpoints of `stage` with
/// the plan's targets.
fn up_to_date(csv: &Path, plan: &Plan, m: &RunManifest, stage: &Stage) -> bool {
    let Ok(meta): Result<ScoresMeta> = scores::read_meta(csv) else {
        return false;
    };
    csv.is_file()
        && joins_crossval(&meta, &plan.run_dir(), &m.id())
        && meta.targets == plan.targets
        && meta.variant == Variant::default()
        && meta.dataset_fingerprint == m.dataset.fingerprint
        && meta.stage == *stage
        && match stage {
            Stage::Captured => meta.epochs == m.config.captured_epochs,
            _ => stage
                .select(&m.saved_epochs, m.config.hyper.epochs)
                .is_ok_and(|e| e == meta.epochs),
        }
}

/// Whether scores with `meta` carry the columns the run's `crossval/` gives now: the
/// out-of-sample probabilities (training rows) and the features' outliers, where it has
/// them for this training of the run (`run_id`; scoring ignores others), of the
/// probabilities as they are.
fn joins_crossval(meta: &ScoresMeta, run: &Path, run_id: &str) -> bool {
    let Ok(probs) = crate::oof::read_meta(run) else {
        return false;
    };
    let probs = probs.filter(|p| p.run_id == run_id);
    let trained = meta.split.kinds().contains(&SplitKind::Train);
    let wanted = probs.as_ref().filter(|_| trained).map(|p| &p.csv);
    let outliers = probs.as_ref().is_some_and(|p| p.features.is_some());
    meta.out_of_sample.as_ref() == wanted
        && meta.companions.contains(&Companion::Outlier) == outliers
}

/// Adds the early-versus-late comparison to each split's early stage.
fn compare_early_late(stages: &mut [(SplitChoice, Stage, Evaluated)]) -> Result<()> {
    for i in 0..stages.len() {
        if stages[i].1 != Stage::Early {
            continue;
        }
        let split = stages[i].0;
        let late = stages
            .iter()
            .position(|(sp, st, _)| *sp == split && *st == Stage::Late);
        if let Some(j) = late {
            let c = eval::compare(&stages[i].2.file, &stages[j].2.file)?;
            stages[i].2.evaluation.comparison = Some(c);
        }
    }
    Ok(())
}
