//! `vog bench`: throughput of training and scoring on this machine.
use super::{values, Terminal};
use crate::bench::{BenchConfig, BenchRows, Work};
use crate::export::{self, OutputFormat};
use crate::precision::Precision;
use anyhow::{bail, Result};
use clap::Args;
use std::path::PathBuf;
use tch::Device;

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure: train (img/s), score (image x checkpoint/s), or both.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "train,score")]
    pub what: Vec<Work>,
    /// Base channel count of the ResNet (64 = the paper's network).
    #[arg(long, default_value_t = 16)]
    pub width: i64,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Formats to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "fp32")]
    pub precision: Vec<Precision>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto", value_parser = values::device)]
    pub device: Device,
    /// Checkpoints K for scoring.
    #[arg(long, default_value_t = 6)]
    pub checkpoints: usize,
    /// Measured seconds per row, after a warm-up pass.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Intra-op threads of libtorch (default: libtorch's choice, one per core).
    #[arg(long)]
    pub threads: Option<i32>,
    #[arg(long, default_value = "table", value_parser = values::formats(&["table", "json"]))]
    pub format: OutputFormat,
    /// For --what decode: an image folder or CSV manifest.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// No per-row progress lines.
    #[arg(long)]
    pub quiet: bool,
}

impl BenchArgs {
    fn config(&self) -> Result<BenchConfig> {
        let what: Vec<String> = self
            .what
            .iter()
            .map(|w| format!("{w:?}").to_lowercase())
            .collect();
        crate::origin::refuse_repeats("--what", &what)?;
        crate::origin::refuse_repeats("--precision", &self.precision)?;
        Ok(BenchConfig {
            what: self.what.clone(),
            width: self.width,
            batch_size: self.batch_size,
            precisions: self.precision.clone(),
            device: self.device,
            checkpoints: self.checkpoints,
            seconds: self.seconds,
            data: self
                .data
                .as_deref()
                .map(super::score::stream_spec)
                .transpose()?,
        })
    }
}

pub fn run(a: &BenchArgs) -> Result<()> {
    if let Some(t) = a.threads {
        if t < 1 {
            bail!("--threads must be at least 1");
        }
        tch::set_num_threads(t);
    }
    let rows = crate::bench::run(&a.config()?, &Terminal::detect(a.quiet))?;
    export::write(std::io::stdout().lock(), &BenchRows(rows), a.format)
}
