//! `vog info`, `vog download` and `vog data synth`: the machine, and datasets.
use super::Terminal;
use crate::data::synth::{self, SynthSpec};
use crate::data::{cifar, download};
use crate::info::Info;
use anyhow::{bail, Result};
use clap::{Args, Subcommand, ValueEnum};
use std::path::PathBuf;

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum CifarName {
    Cifar10,
    Cifar100,
}

impl From<CifarName> for cifar::Variant {
    fn from(n: CifarName) -> Self {
        match n {
            CifarName::Cifar10 => cifar::Variant::Cifar10,
            CifarName::Cifar100 => cifar::Variant::Cifar100,
        }
    }
}

#[derive(Debug, Args)]
pub struct DownloadArgs {
    /// Which dataset.
    pub dataset: CifarName,
    /// Folder to extract into.
    #[arg(long, default_value = "data")]
    pub dir: PathBuf,
}

#[derive(Debug, Subcommand)]
pub enum DataCommand {
    /// Write the synthetic dataset as CIFAR-10-format binaries.
    Synth(SynthArgs),
}

/// How `vog data synth` writes the images.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SynthFormat {
    /// CIFAR-10 binary batches.
    Cifar,
    /// PNG files in OUT/train/<class>/ and OUT/test/<class>/.
    Folder,
}

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output folder (read it back with `--dataset cifar10 --data-dir DIR`, or as an image
    /// folder with `--format folder`).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, value_enum, default_value_t = SynthFormat::Cifar)]
    pub format: SynthFormat,
    #[arg(long, default_value_t = synth::DEFAULT_TRAIN)]
    pub train: usize,
    #[arg(long, default_value_t = synth::DEFAULT_TEST)]
    pub test: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

/// `vog info`.
pub fn info(json: bool) -> Result<()> {
    let info = Info::gather();
    if json {
        println!("{}", serde_json::to_string_pretty(&info)?);
    } else {
        println!("{info}");
    }
    Ok(())
}

pub fn download(a: &DownloadArgs) -> Result<()> {
    let dir = download::fetch(a.dataset.into(), &a.dir, &Terminal::detect(false))?;
    println!("{}", dir.display());
    Ok(())
}

pub fn run(c: &DataCommand) -> Result<()> {
    let DataCommand::Synth(a) = c;
    if a.train == 0 || a.test == 0 {
        bail!("--train and --test must each be at least 1");
    }
    let data = synth::generate(&SynthSpec::new(a.train, a.test, a.seed));
    match a.format {
        SynthFormat::Cifar => cifar::write_cifar10(&a.out, &data)?,
        SynthFormat::Folder => crate::data::folder::write(&a.out, &data)?,
    }
    println!(
        "wrote {} train and {} test synthetic images to '{}'",
        a.train,
        a.test,
        a.out.display()
    );
    Ok(())
}
