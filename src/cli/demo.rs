//! `vog demo`: the whole pipeline on synthetic data with planted hard examples.
use super::{values, Terminal};
use crate::demo::{self, DemoOptions};
use crate::progress::Reporter;
use anyhow::Result;
use clap::Args;
use std::path::PathBuf;
use tch::Device;

#[derive(Debug, Args)]
pub struct DemoArgs {
    /// Output folder (run, scores, evaluations, report.html, summary.json).
    #[arg(long, default_value = "runs/demo")]
    pub out: PathBuf,
    /// Run on real data instead: cifar10, cifar100 (downloaded when missing) or an image folder.
    #[arg(long)]
    pub data: Option<String>,
    /// Where CIFAR lives or is downloaded to.
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Training examples (synthetic size, or the real-data subset).
    #[arg(long)]
    pub train: Option<usize>,
    /// Test examples.
    #[arg(long)]
    pub test: Option<usize>,
    /// Epochs (learning-rate steps scale along).
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub width: Option<i64>,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    #[arg(long, default_value = "auto", value_parser = values::device)]
    pub device: Device,
    /// Also retrain without the top fraction by each of a few scores, against random
    /// removal (vog prune; configs/demo.toml [prune]; about 3 minutes more on 2 cores with AVX-512, 13 without).
    #[arg(long)]
    pub prune: bool,
    /// Only the summary.
    #[arg(long)]
    pub quiet: bool,
}

impl DemoArgs {
    fn options(&self) -> DemoOptions {
        DemoOptions {
            out: self.out.clone(),
            data: self.data.clone(),
            data_dir: self.data_dir.clone(),
            train: self.train,
            test: self.test,
            epochs: self.epochs,
            width: self.width,
            seed: self.seed,
            device: self.device,
            prune: self.prune,
        }
    }
}

pub fn run(a: &DemoArgs) -> Result<()> {
    let o = a.options();
    let plan = demo::plan(&o)?;
    let reporter = Terminal::detect(a.quiet);
    reporter.info(&demo::announcement(&plan, &o));
    let summary = demo::run(&o, &reporter)?;
    println!("{summary}");
    Ok(())
}
