//! `vog eval`: the paper's evaluations of a scores file and the leaderboards.
use super::values;
use crate::eval::{self, EvalRequest};
use crate::export::{self, OutputFormat};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Scores CSV written by `vog score`.
    pub scores: PathBuf,
    /// Folder for eval.json, the CSV tables and the plots (default: SCORES without .csv,
    /// plus `-eval`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// What to print.
    #[arg(long, default_value = "table", value_parser = values::formats(&["table", "json"]))]
    pub format: OutputFormat,
    /// Another scores file of the same examples (e.g. another stage) to compare rankings with.
    #[arg(long, value_name = "OTHER.csv")]
    pub compare: Option<PathBuf>,
    /// Ids of examples known or suspected to be mislabelled or odd: a CSV with an `id`
    /// column, or one id per line; adds a leaderboard of how well each score finds them.
    #[arg(long, value_name = "FILE")]
    pub flagged: Option<PathBuf>,
}

pub fn run(a: &EvalArgs) -> Result<()> {
    let request = EvalRequest {
        scores: a.scores.clone(),
        out: a.out.clone(),
        compare: a.compare.clone(),
        flagged: a.flagged.clone(),
    };
    let e = eval::run(&request)?;
    export::write(std::io::stdout().lock(), &e, a.format)?;
    let planted = match crate::eval::matrix::Matrix::of_planted(&e.leaderboards) {
        Some(_) => ", planted-matrix.csv",
        None => "",
    };
    eprintln!(
        "wrote eval.json, deciles.csv, groups.csv, classes.csv, leaderboards.csv{planted} and \
         plots to '{}'",
        request.out_dir().display()
    );
    Ok(())
}
