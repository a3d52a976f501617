//! `vog merge`: the shard files of a sharded `--model` scoring into one scores file.
use super::Terminal;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// The shard files (CSV; each with its .json sidecar), one per shard, in any order.
    #[arg(required = true)]
    pub shards: Vec<PathBuf>,
    /// The merged scores CSV; its sidecar goes next to it.
    #[arg(long)]
    pub out: PathBuf,
    /// No warnings.
    #[arg(long)]
    pub quiet: bool,
}

pub fn run(a: &MergeArgs) -> Result<()> {
    let meta = crate::merge::run(&a.shards, &a.out, &Terminal::detect(a.quiet))?;
    println!(
        "merged {} shards: {} examples -> '{}'",
        a.shards.len(),
        meta.examples,
        a.out.display()
    );
    Ok(())
}
