//! `vog report`: one HTML page of a scored run, or of scores of the user's models.
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run directory (leave it out for scores of your own TorchScript models).
    #[arg(long, required_unless_present = "scores")]
    pub run: Option<PathBuf>,
    /// Scores files to evaluate, comma-separated (default: RUN/scores-*.csv); the first one's
    /// examples fill the grids and the table.
    #[arg(long, value_delimiter = ',')]
    pub scores: Vec<PathBuf>,
    /// Output HTML file [default: report.html, replacing only a page vog wrote].
    #[arg(long)]
    pub out: Option<PathBuf>,
}

pub fn run(a: &ReportArgs) -> Result<()> {
    let shown: Vec<_> = a.scores.iter().map(|p| p.display().to_string()).collect();
    crate::origin::refuse_repeats("--scores", &shown)?;
    let out = super::page_out(a.out.as_deref(), "report.html")?;
    crate::report::run(a.run.as_deref(), &a.scores, &out)?;
    println!("wrote '{}'", out.display());
    Ok(())
}
