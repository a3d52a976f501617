//! `vog review`: a self-contained HTML page to decide about the examples a ranking selects.
use crate::rank::{RankRequest, Select};
use crate::review::{self, ReviewRequest};
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReviewArgs {
    /// Scores CSV written by `vog score`.
    pub scores: PathBuf,
    /// The score the queue is ranked by (its highest first; --lowest for the other end).
    #[arg(long, default_value = "vog")]
    pub column: String,
    /// How many examples [default: 200; all with --select].
    #[arg(long)]
    pub top: Option<usize>,
    /// Only the examples whose score meets COLUMN=VALUE, COLUMN>=VALUE or COLUMN<=VALUE
    /// (true/false for 1/0), e.g. `label_issue=true`.
    #[arg(long, value_name = "COND")]
    pub select: Option<Select>,
    /// The lowest scores first.
    #[arg(long)]
    pub lowest: bool,
    /// Only this class (name or label number).
    #[arg(long)]
    pub class: Option<String>,
    /// Dataset location, if it moved since scoring.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The page to write.
    #[arg(long, default_value = "review.html")]
    pub out: PathBuf,
}

pub fn run(a: &ReviewArgs) -> Result<()> {
    let request = ReviewRequest {
        scores: a.scores.clone(),
        rank: RankRequest {
            top: a.top.unwrap_or(match a.select {
                Some(_) => usize::MAX,
                None => 200,
            }),
            lowest: a.lowest,
            class: a.class.clone(),
            per_class: false,
            column: a.column.clone(),
            select: a.select.clone(),
        },
        data: a.data.clone(),
        out: a.out.clone(),
    };
    let w = review::run(&request)?;
    eprintln!(
        "wrote {} ({} examples, {:.1} MB): open it in a browser; Export gives decisions.csv for \
         `vog train --decisions`",
        a.out.display(),
        w.examples,
        w.bytes as f64 / 1e6
    );
    Ok(())
}
