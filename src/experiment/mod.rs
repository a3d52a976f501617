//! `vog experiment CONFIG`: the paper's reproduction in one command (Agarwal & Hooker,
//! Sections 3-4): the [pipeline](crate::pipeline) with the settings of a
//! `configs/paper-*.toml` file (train with the recipe, score the early, late, early+late
//! (the paper's figures 4-6) and whole-training stages on both splits with every target, evaluate each, early and late
//! compared, report), plus a `results.json` summary. Re-running resumes at the first step
//! whose output is missing; an interrupted training resumes from its last finished epoch
//! (as `vog train --resume` does). With `plant` the run plants hardness; with a
//! `[hardness]` table the file describes a [suite] of planted runs instead; with a
//! `[features]` table every run is also embedded and cross-fitted on the [features].
pub mod features;
pub mod suite;

use crate::config::{Hyper, TrainConfig};
use crate::data::prepare::{LabelNoise, Selection};
use crate::data::DatasetSpec;
use crate::epochs::Stage;
use crate::origin::Origins;
use crate::pipeline::{self, Plan, ScoreSettings, StageResult};
use crate::progress::Reporter;
use crate::scores::SplitChoice;
use crate::{atomic_file, device};
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// An experiment file (`configs/paper-*.toml`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ExperimentFile {
    pub dataset: String,
    pub data_dir: PathBuf,
    pub out: PathBuf,
    pub device: String,
    #[serde(default)]
    pub label_noise: Option<f64>,
    #[serde(default)]
    pub train_subset: Option<usize>,
    #[serde(default)]
    pub test_subset: Option<usize>,
    /// Hardness planted into the run (`vog train --plant`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plant: Option<crate::data::plant::PlantSpec>,
    /// A suite of planted runs instead of one run.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hardness: Option<suite::Hardness>,
    /// Out-of-sample flags from a feature model, for the run (or every run of the suite).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub features: Option<features::FeatureSettings>,
    pub train: Hyper,
    pub score: ScoreSettings,
}

/// Command-line changes to an experiment file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    pub epochs: Option<usize>,
    pub width: Option<i64>,
    pub out: Option<PathBuf>,
    pub data_dir: Option<PathBuf>,
    pub device: Option<String>,
    pub train_subset: Option<usize>,
    pub test_subset: Option<usize>,
}

impl ExperimentFile {
    pub fn read(path: &Path) -> Result<Self> {
        crate::config::read_toml(path, "experiment")
    }

    /// Applies the overrides and validates everything; `path` is the file read, named in
    /// errors about its values.
    pub fn resolve(mut self, o: &Overrides, path: &Path) -> Result<(Self, Plan)> {
        if let Some(e) = o.epochs {
            self.train = self.train.with_epochs(e);
        }
        let origins = Origins::file(path, "")
            .flag("epochs", o.epochs.is_some())
            .set("width", &mut self.train.width, o.width)
            .set("out", &mut self.out, o.out.clone())
            .set("data_dir", &mut self.data_dir, o.data_dir.clone())
            .set("device", &mut self.device, o.device.clone())
            .set(
                "train_subset",
                &mut self.train_subset,
                o.train_subset.map(Some),
            )
            .set(
                "test_subset",
                &mut self.test_subset,
                o.test_subset.map(Some),
            );
        check_score(&self.score, path)?;
        self.check_planting(path)?;
        let device = device::parse(&self.device).with_context(|| origins.name("device"))?;
        let dataset = DatasetSpec::resolve(&self.dataset, &self.data_dir, self.train.seed)
            .with_context(|| origins.name("dataset"))?;
        let selection = Selection {
            train_subset: self.train_subset,
            test_subset: self.test_subset,
            label_noise: self.label_noise.map(|fraction| LabelNoise {
                fraction,
                seed: self.train.seed,
            }),
            plant: self.plant.clone(),
            ..Selection::default()
        };
        let train = TrainConfig::new(dataset, self.train.clone(), selection, device, &origins)?;
        check_captured_stage(&self.score, &train, path)?;
        let features = self.features.as_ref().map(|f| f.step(path)).transpose()?;
        let s = &self.score;
        let plan = Plan {
            train,
            origins,
            sets: Vec::new(),
            out: self.out.clone(),
            splits: s.splits.clone(),
            stages: s.stages.clone(),
            targets: s.targets.clone(),
            batch_size: s.batch_size,
            reuse: true,
            features,
        };
        Ok((self, plan))
    }
}

/// Refuses a `[score]` table that scores nothing.
fn check_score(s: &ScoreSettings, path: &Path) -> Result<()> {
    if s.stages.is_empty() || s.splits.is_empty() || s.targets.is_empty() {
        bail!(
            "[score] in '{}' needs at least one stage, split and target",
            path.display()
        );
    }
    if s.batch_size == 0 {
        bail!(
            "[score] batch_size in '{}' must be at least 1",
            path.display()
        );
    }
    Ok(())
}

impl ExperimentFile {
    /// One way of making examples wrong at a time: `plant`, `[hardness]` and `label_noise`
    /// exclude each other; a suite needs the training split scored.
    fn check_planting(&self, path: &Path) -> Result<()> {
        let file = path.display();
        let given = [
            self.label_noise.map(|_| "label_noise"),
            self.plant.as_ref().map(|_| "plant"),
            self.hardness.as_ref().map(|_| "[hardness]"),
        ];
        let given: Vec<&str> = given.into_iter().flatten().collect();
        if given.len() > 1 {
            bail!(
                "'{file}' sets {}: one kind of planted or shuffled labels at a time (a suite \
                 plants each kind into runs of its own)",
                given.join(" and ")
            );
        }
        if self.hardness.is_some()
            && !self.score.splits.contains(&SplitChoice::Train)
            && !self.score.splits.contains(&SplitChoice::Both)
        {
            bail!("[hardness] in '{file}' asks of the training examples: [score] splits must include train");
        }
        Ok(())
    }
}

/// Refuses the stage `captured` where the recipe captures nothing, no training split is
/// scored, or a target to score was not captured.
fn check_captured_stage(s: &ScoreSettings, train: &TrainConfig, path: &Path) -> Result<()> {
    if !s.stages.contains(&Stage::Captured) {
        return Ok(());
    }
    let file = path.display();
    if train.captured_epochs.is_empty() {
        bail!("[score] stages in '{file}' include captured, but [train] captures no gradients (capture_epochs)");
    }
    if !s.splits.contains(&SplitChoice::Train) {
        bail!("[score] stages in '{file}' include captured, which needs the train split in splits");
    }
    if let Some(t) = s
        .targets
        .iter()
        .find(|t| !train.hyper.capture_targets.contains(t))
    {
        bail!("[score] target {t} in '{file}' is not among the [train] capture_targets, so the captured stage cannot score it");
    }
    Ok(())
}

/// `results.json`.
#[derive(Debug, Clone, Serialize)]
pub struct Results {
    pub config: ExperimentFile,
    pub final_train_accuracy: f64,
    pub final_test_accuracy: Option<f64>,
    pub training_seconds: f64,
    pub stages: Vec<StageResult>,
    pub report: PathBuf,
}

/// Runs (or resumes) the experiment; returns what `results.json` holds.
pub fn run(file: ExperimentFile, plan: &Plan, reporter: &dyn Reporter) -> Result<Results> {
    let outcome = pipeline::run(plan, reporter)?;
    let report = pipeline::write_report(plan, &outcome)?;
    let m = &outcome.manifest;
    let last = m.epochs.last().context("the run has no epochs")?;
    let results = Results {
        config: file,
        final_train_accuracy: last.train_accuracy,
        final_test_accuracy: last.test_accuracy,
        training_seconds: m.epochs.iter().map(|e| e.seconds).sum(),
        stages: outcome.results(),
        report,
    };
    atomic_file::write_bytes(
        &plan.out.join("results.json"),
        &serde_json::to_vec_pretty(&results)?,
    )?;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::epochs::Stage;

    #[test]
    fn shipped_paper_configs_are_valid() {
        for (text, noise) in [
            (include_str!("../../configs/paper-cifar10.toml"), None),
            (include_str!("../../configs/paper-cifar100.toml"), None),
            (
                include_str!("../../configs/paper-cifar10-noise20.toml"),
                Some(0.2),
            ),
        ] {
            let file: ExperimentFile = toml::from_str(text).unwrap();
            assert_eq!(file.label_noise, noise);
            let path = Path::new("paper.toml");
            let (file, plan) = file.resolve(&Overrides::default(), path).unwrap();
            assert_eq!(plan.train.hyper.epochs, 350);
            assert_eq!(plan.train.saved_epochs.len(), 40);
            assert_eq!(plan.targets.len(), 4);
            assert_eq!(
                plan.stages,
                vec![Stage::Early, Stage::Late, Stage::EarlyLate, Stage::All]
            );
            let short = Overrides {
                epochs: Some(30),
                ..Overrides::default()
            };
            let (_, plan) = file.resolve(&short, path).unwrap();
            assert_eq!(plan.train.hyper.lr_milestones, vec![13, 22]);
            assert_eq!(plan.train.saved_epochs, vec![1, 2, 3, 10, 20, 28, 29, 30]);
        }
    }

    #[test]
    fn shipped_hardness_configs_describe_their_suites() {
        for (text, runs, train) in [
            (
                include_str!("../../configs/hardness-cifar10.toml"),
                66,
                None,
            ),
            (
                include_str!("../../configs/hardness-cifar10-cpu.toml"),
                30,
                Some(3000),
            ),
        ] {
            let file: ExperimentFile = toml::from_str(text).unwrap();
            let path = Path::new("hardness.toml");
            let (file, plan) = file.resolve(&Overrides::default(), path).unwrap();
            assert_eq!(plan.train.train_subset, train);
            let suite = file.hardness.unwrap().runs(&plan, path).unwrap();
            assert_eq!(suite.len(), runs);
            assert_eq!(suite[0].name, "clean-seed0");
            assert!(suite[0].plan.train.plant.is_none());
            assert_eq!(suite[1].name, "uniform-0.05-seed0");
            assert_eq!(
                suite[1].plan.train.plant.as_ref().unwrap().to_string(),
                "uniform:0.05"
            );
            assert_eq!(suite[1].plan.out, plan.out.join("uniform-0.05-seed0"));
            let last = suite.last().unwrap();
            assert!(last.name.starts_with("foreign-") && last.plan.train.hyper.seed == last.seed);
        }
    }

    #[test]
    fn planting_is_refused_where_it_cannot_mean_anything() {
        let base = include_str!("../../configs/hardness-cifar10-cpu.toml");
        let refused = |edit: &dyn Fn(&str) -> String| -> String {
            let file: ExperimentFile = toml::from_str(&edit(base)).unwrap();
            let path = Path::new("h.toml");
            match file.resolve(&Overrides::default(), path) {
                Err(e) => e.to_string(),
                Ok((file, plan)) => file
                    .hardness
                    .unwrap()
                    .runs(&plan, path)
                    .unwrap_err()
                    .to_string(),
            }
        };
        let err = refused(&|t| {
            t.replace(
                "train_subset = 3000",
                "train_subset = 3000\nlabel_noise = 0.2",
            )
        });
        assert_eq!(err, "'h.toml' sets label_noise and [hardness]: one kind of planted or shuffled labels at a time (a suite plants each kind into runs of its own)");
        let err = refused(&|t| t.replace("splits = [\"train\"]", "splits = [\"test\"]"));
        assert!(err.contains("[score] splits must include train"), "{err}");
        let err = refused(&|t| t.replace("fractions = [0.05, 0.1]", "fractions = [0.0001]"));
        assert_eq!(
            err,
            "[hardness] fraction 0.0001 in 'h.toml' plants no example in 3000 training examples"
        );
        let err = refused(&|t| t.replace("fractions = [0.05, 0.1]", "fractions = [1.5]"));
        assert!(err.contains("must lie in (0, 1)"), "{err}");
        let err = refused(&|t| t.replace("seeds = [0, 1]", "seeds = [1, 1]"));
        assert!(
            err.contains("lists a kind, fraction or seed twice"),
            "{err}"
        );
        let err = refused(&|t| t.replace("seeds = [0, 1]", "seeds = []"));
        assert!(
            err.contains("at least one kind, fraction and seed"),
            "{err}"
        );
        let unknown = base.replace("\"zoom\"", "\"blur\"");
        let err = toml::from_str::<ExperimentFile>(&unknown)
            .unwrap_err()
            .to_string();
        assert!(err.contains("blur"), "{err}");
        // A single run may plant, as vog train --plant does.
        let single = include_str!("../../configs/paper-cifar10.toml").replace(
            "device = \"auto\"",
            "device = \"auto\"\nplant = \"zoom:0.1\"",
        );
        let file: ExperimentFile = toml::from_str(&single).unwrap();
        let (_, plan) = file
            .resolve(&Overrides::default(), Path::new("p.toml"))
            .unwrap();
        assert_eq!(plan.train.plant.unwrap().to_string(), "zoom:0.1");
    }

    #[test]
    fn bad_values_name_the_file() {
        let text = include_str!("../../configs/paper-cifar10.toml")
            .replace("batch_size = 128", "batch_size = 0");
        let file: ExperimentFile = toml::from_str(&text).unwrap();
        let err = file
            .resolve(&Overrides::default(), Path::new("x.toml"))
            .unwrap_err();
        assert_eq!(err.to_string(), "batch_size in 'x.toml' must be at least 1");
    }
}
