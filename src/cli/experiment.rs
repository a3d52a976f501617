//! `vog experiment`: the paper's reproduction from a `configs/paper-*.toml` file, or a
//! suite of planted runs from a `configs/hardness-*.toml` file.
use super::{reporter, Terminal};
use crate::eval::leaderboard::{ScoreKind, Verdict};
use crate::experiment::{self, suite, ExperimentFile, Overrides};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// Experiment file, e.g. configs/paper-cifar10.toml; one with a [hardness] table
    /// (configs/hardness-cifar10-cpu.toml) runs a run per planted kind, fraction and seed
    /// and gathers which score finds which kind; a [features] table (model or backbone,
    /// folds) also embeds and cross-fits every run on a feature model.
    pub config: PathBuf,
    /// Shorten the schedule to N epochs. Learning-rate milestones counted in epochs scale
    /// along; those counted in optimizer steps (lr_step = "batch", the as-run configs) stay
    /// where they are (a warning says when the shortened run never reaches the first).
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub width: Option<i64>,
    /// Output folder (default: the file's `out`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long, value_name = "N")]
    pub train_subset: Option<usize>,
    #[arg(long, value_name = "N")]
    pub test_subset: Option<usize>,
    #[arg(long)]
    pub quiet: bool,
}

impl ExperimentArgs {
    fn overrides(&self) -> Overrides {
        Overrides {
            epochs: self.epochs,
            width: self.width,
            out: self.out.clone(),
            data_dir: self.data_dir.clone(),
            device: self.device.clone(),
            train_subset: self.train_subset,
            test_subset: self.test_subset,
        }
    }
}

pub fn run(a: &ExperimentArgs) -> Result<()> {
    let (file, plan) = ExperimentFile::read(&a.config)?.resolve(&a.overrides(), &a.config)?;
    if let Some(h) = &file.hardness {
        let runs = h.runs(&plan, &a.config)?;
        reporter::stop_on_ctrl_c()?;
        return run_suite(file.clone(), &runs, &plan.out, a.quiet);
    }
    reporter::stop_on_ctrl_c()?;
    let results = experiment::run(file, &plan, &Terminal::detect(a.quiet))?;
    println!(
        "train accuracy {:.1}%, test accuracy {}",
        100.0 * results.final_train_accuracy,
        results
            .final_test_accuracy
            .map_or("n/a".into(), |t| format!("{:.1}%", 100.0 * t))
    );
    for s in &results.stages {
        // The first leaderboard's verdicts on the class-normalized VoG columns.
        let verdicts: Vec<String> = s
            .evaluation
            .leaderboards
            .first()
            .map(|l| {
                l.entries
                    .iter()
                    .filter(|e| e.kind() == ScoreKind::Vog)
                    .map(|e| format!("{} {}", e.score, short(e.verdict)))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:5} {:5} (epochs {:?}): {}",
            s.split.to_string(),
            s.stage.to_string(),
            s.epochs,
            verdicts.join(", ")
        );
    }
    println!("report: {}", results.report.display());
    Ok(())
}

/// Runs a `[hardness]` suite and prints each stage's matrix.
fn run_suite(
    file: ExperimentFile,
    runs: &[suite::SuiteRun],
    out: &std::path::Path,
    quiet: bool,
) -> Result<()> {
    let results = suite::run(file, runs, out, &Terminal::detect(quiet))?;
    for (stage, m) in &results.matrices {
        println!(
            "== stage {stage}: which score finds which kind ({} runs) ==",
            results.runs.len()
        );
        m.write_text(&mut std::io::stdout().lock())?;
    }
    println!("matrix: {}", results.page.display());
    Ok(())
}

/// One word for a verdict, for compact listings.
fn short(v: Verdict) -> &'static str {
    match v {
        Verdict::HigherIsHarder => "harder",
        Verdict::HigherIsEasier => "easier",
        Verdict::NotEnoughEvidence => "unsure",
    }
}
