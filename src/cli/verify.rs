//! `vog verify`: a run's files against the SHA-256 its manifest and sidecars record.
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The run directory (leave it out to check scores files of your own models, or shards).
    #[arg(required_unless_present = "scores")]
    pub run: Option<PathBuf>,
    /// Scores CSVs outside the run folder to check too (those inside are always checked);
    /// without a run, each on its own, shards included.
    #[arg(long, num_args = 1..)]
    pub scores: Vec<PathBuf>,
}

pub fn run(a: &VerifyArgs) -> Result<()> {
    let v = crate::verify::run(a.run.as_deref(), &a.scores)?;
    let what = match &a.run {
        Some(run) => format!("'{}'", run.display()),
        None => "the scores files".into(),
    };
    for c in &v.checks {
        match &c.problem {
            None => println!("ok      {}", c.path.display()),
            Some(p) => println!("FAILED  {}: {p}", c.path.display()),
        }
    }
    for n in &v.notes {
        println!("note    {n}");
    }
    let failed = v.failures();
    if failed > 0 {
        bail!(
            "{failed} of {} files in {what} failed verification",
            v.checks.len()
        );
    }
    println!("{} files intact in {what}", v.checks.len());
    Ok(())
}
