//! `vog crossval`: out-of-sample probabilities of a run's training examples.
use super::{reporter, Terminal};
use crate::crossval::{self, CrossvalRequest};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct CrossvalArgs {
    /// The run directory (finished training).
    #[arg(long)]
    pub run: PathBuf,
    /// Folds K: K trainings with the run's recipe (or K logistic regressions with
    /// --features), each on K-1 folds.
    #[arg(long, default_value_t = 4)]
    pub folds: usize,
    /// Train only fold I (0 to K-1), e.g. one per GPU or Slurm array task; then gather the
    /// probabilities with --gather.
    #[arg(long, value_name = "I", conflicts_with = "gather")]
    pub fold: Option<usize>,
    /// Train nothing: gather the probabilities of folds already trained.
    #[arg(long)]
    pub gather: bool,
    /// Replace the run's cross-fitting of another K (or of an earlier training of the run).
    #[arg(long, conflicts_with = "gather")]
    pub overwrite: bool,
    /// Train no network: fit each fold model as a multinomial logistic regression on these
    /// features of the run's images (a file of `vog embed`), C chosen by inner
    /// cross-validation. Seconds where retraining takes hours, and as strong as the features.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["gather", "fold"])]
    pub features: Option<PathBuf>,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: &CrossvalArgs) -> Result<()> {
    let request = CrossvalRequest {
        run: a.run.clone(),
        folds: a.folds,
        only: a.fold,
        gather: a.gather,
        overwrite: a.overwrite,
        features: a.features.clone(),
    };
    reporter::stop_on_ctrl_c()?;
    match crossval::run(&request, &Terminal::detect(a.quiet))? {
        Some(g) => {
            for f in &g.meta.fold_records {
                let test = f.test_accuracy.map_or(String::new(), |t| {
                    format!(", test accuracy {:.1}%", 100.0 * t)
                });
                let c = f.linear.as_ref().map_or(String::new(), |l| {
                    format!(" (C = {}{})", l.choice.c, if l.converged { "" } else { ", not converged" })
                });
                println!(
                    "fold {}{c}: {:.1}% of its {} held-out examples predicted as the label they train with{test}",
                    f.fold,
                    100.0 * f.accuracy,
                    f.examples
                );
            }
            if let Some(a) = g.meta.run_test_accuracy {
                println!("the run itself: {:.1}% on its test split", 100.0 * a);
            }
            if let Some(f) = &g.meta.features {
                println!(
                    "fold models: {} ({} values per image), fitted in {:.1} s",
                    f.describe(),
                    f.dim,
                    f.seconds
                );
            }
            println!(
            "out-of-sample probabilities of {} training examples from {} folds -> '{}'; \
             `vog score --run {} --split train` adds oof_prob, oof_margin, oof_entropy and label_issue",
            g.oos.ids.len(),
            a.folds,
            a.run.join("crossval").join("probs.csv").display(),
            a.run.display()
        )
        }
        None => println!(
            "trained fold {} of {}; gather all folds with `vog crossval --run {} --folds {} --gather`",
            a.fold.unwrap_or(0),
            a.folds,
            a.run.display(),
            a.folds
        ),
    }
    Ok(())
}
