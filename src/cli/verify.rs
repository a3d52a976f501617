//! `vog verify`: a run's files against the SHA-256 its manifest and sidecars record.
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The run directory.
    pub run: PathBuf,
    /// Scores CSVs outside the run folder to check too (those inside are always checked).
    #[arg(long, num_args = 1..)]
    pub scores: Vec<PathBuf>,
}

pub fn run(a: &VerifyArgs) -> Result<()> {
    let v = crate::verify::run(&a.run, &a.scores)?;
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
            "{failed} of {} files in '{}' failed verification",
            v.checks.len(),
            a.run.display()
        );
    }
    println!("{} files intact in '{}'", v.checks.len(), a.run.display());
    Ok(())
}
