//! `vog review`: a self-contained HTML page to decide about the examples a ranking selects.
use super::rank::Which;
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
    #[command(flatten)]
    pub which: Which,
    /// Dataset location, if it moved since scoring.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// The page to write [default: review.html, replacing only a page vog wrote].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(a: &ReviewArgs) -> Result<()> {
    let request = ReviewRequest {
        scores: a.scores.clone(),
        rank: a.which.request(&a.column, a.top, 200),
        data: a.data.clone(),
        out: super::page_out(a.out.as_deref(), "review.html")?,
    };
    let w = review::run(&request)?;
    let meta = crate::scores::read_meta(&a.scores)?;
    // The page shows the suggested labels beside every example.
    let mut columns = request.rank.columns();
    columns.push(crate::scores::SUGGESTED);
    if let Some(note) = meta.out_of_sample_note(&columns) {
        eprintln!("{note}");
    }
    eprintln!(
        "wrote {} ({} examples, {:.1} MB): open it in a browser; Export gives decisions.csv for \
         `vog train --decisions`",
        request.out.display(),
        w.examples,
        w.bytes as f64 / 1e6
    );
    Ok(())
}
