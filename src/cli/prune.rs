//! `vog prune`: test accuracy after removing what a score flags, against random removal.
use super::{reporter, Terminal};
use crate::prune::{self, Outcome, PruneRequest, Task};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct PruneArgs {
    /// The run directory (finished training, with a test split).
    #[arg(long)]
    pub run: PathBuf,
    /// A scores file of the run's training split (vog score --split train or both).
    #[arg(long)]
    pub scores: PathBuf,
    /// Score columns to compare, comma-separated (each removes its hardest first).
    #[arg(long, value_delimiter = ',', required = true)]
    pub column: Vec<String>,
    /// Fractions of the training set to remove, comma-separated, each in (0, 1).
    #[arg(long, value_delimiter = ',', default_value = "0.05,0.1,0.2")]
    pub fractions: Vec<f64>,
    /// Trainings per setting (seeds from the run's on); intervals need at least 2.
    #[arg(long, default_value_t = 3)]
    pub seeds: usize,
    /// Also train with each top fraction relabelled to its out-of-sample suggested label
    /// (after vog crossval), against a random fraction relabelled likewise.
    #[arg(long)]
    pub relabel_suggested: bool,
    /// Only the retrainings of task I of N (every N-th), e.g. one task of a Slurm array
    /// (`--task $SLURM_ARRAY_TASK_ID/N`); a call without --task then gathers the table.
    #[arg(long, value_name = "I/N")]
    pub task: Option<Task>,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: &PruneArgs) -> Result<()> {
    let request = PruneRequest {
        run: a.run.clone(),
        scores: a.scores.clone(),
        columns: a.column.clone(),
        fractions: a.fractions.clone(),
        seeds: a.seeds,
        relabel_suggested: a.relabel_suggested,
        task: a.task,
    };
    reporter::stop_on_ctrl_c()?;
    let t = match prune::run(&request, &Terminal::detect(a.quiet))? {
        Outcome::Table(t) => t,
        Outcome::Task { trained, of } => {
            println!(
                "task done: {trained} of the {of} retrainings; run vog prune without --task for the table"
            );
            return Ok(());
        }
    };
    t.table().write_text(&mut std::io::stdout().lock())?;
    let meta = crate::scores::read_meta(&a.scores)?;
    let mut columns: Vec<&str> = a.column.iter().map(String::as_str).collect();
    // Relabelling to the suggested labels acts on the fold models, whatever the ranking.
    if a.relabel_suggested {
        columns.push(crate::scores::SUGGESTED);
    }
    if let Some(note) = meta.out_of_sample_note(&columns) {
        eprintln!("{note}");
    }
    eprintln!(
        "wrote prune.json, prune.csv and prune.png to '{}'",
        a.run.join("prune").display()
    );
    Ok(())
}
