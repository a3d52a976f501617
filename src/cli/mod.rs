//! Command-line interface: clap structs, their conversion into validated configs (every
//! name parsed here, once), dispatch to the library, and the terminal [`Reporter`] the
//! library reports through.
mod model_args;
mod reporter;

pub use reporter::Terminal;

use crate::config::{Hyper, TrainConfig};
use crate::data::cifar;
use crate::data::prepare::{self, LabelNoise, Selection};
use crate::data::synth::{self, SynthSpec};
use crate::data::{download, DatasetSpec};
use crate::demo::{self, DemoOptions};
use crate::epochs::Stage;
use crate::eval::leaderboard::{Question, Verdict};
use crate::eval::{self, Evaluated};
use crate::experiment::{self, ExperimentFile, Overrides};
use crate::grid::{self, ImageLookup};
use crate::info::Info;
use crate::model::Precision;
use crate::origin::Origins;
use crate::progress::Reporter;
use crate::rank::{self, Format};
use crate::report::{self, ReportInput};
use crate::run_dir::RunDir;
use crate::scores::{self, per_class, top_k, ScoresFile, SplitChoice};
use crate::scoring::{self, ScoreConfig};
use crate::train;
use crate::variance::{Channels, GradNorm, Reduce, Target, Variant};
use anyhow::{bail, Context, Result};
use clap::error::ErrorKind;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::collections::HashSet;
use std::path::PathBuf;
use tch::Device;

#[derive(Debug, Parser)]
#[command(
    name = "vog",
    version,
    about = "Rank the examples of an image dataset by difficulty with Variance of Gradients"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print the vog, tch and libtorch versions and the devices libtorch sees.
    Info {
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Download CIFAR-10 or CIFAR-100 (official binary archives, MD5-checked).
    Download(DownloadArgs),
    /// Dataset utilities.
    #[command(subcommand)]
    Data(DataCommand),
    /// Train the CIFAR ResNet-18 and save checkpoints for VoG.
    Train(Box<TrainArgs>),
    /// Compute every example's VoG from a run's checkpoints and write it as CSV.
    Score(Box<ScoreArgs>),
    /// Show the highest- or lowest-VoG examples of a scores CSV, and their images.
    Rank(Box<RankArgs>),
    /// The paper's evaluations of a scores CSV (figures 4-7) and whether VoG ranks difficulty.
    Eval(EvalArgs),
    /// One self-contained HTML report of a scored run.
    Report(ReportArgs),
    /// Train, score, evaluate and report on synthetic data with planted hard examples
    /// (3-6 minutes on a 2-core CPU), or on a real dataset with --data.
    Demo(DemoArgs),
    /// Reproduce the paper from a configs/paper-*.toml file: train, score, evaluate, report.
    Experiment(Box<ExperimentArgs>),
    /// Check a run's checkpoints and resume state against the SHA-256 in its run.json, and
    /// its scores files against their sidecars.
    Verify(VerifyArgs),
    /// Throughput of training and scoring on synthetic images in memory.
    Bench(BenchArgs),
    /// Combine the shard files of `vog score --model ... --shard I/N` into one scores file.
    Merge(MergeArgs),
}

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

#[derive(Debug, Args)]
pub struct BenchArgs {
    /// What to measure: train (img/s), score (image x checkpoint/s), or both.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "train,score")]
    pub what: Vec<crate::bench::Work>,
    /// Base channel count of the ResNet (64 = the paper's network).
    #[arg(long, default_value_t = 16)]
    pub width: i64,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// Formats to measure, comma-separated.
    #[arg(long, value_enum, value_delimiter = ',', default_value = "fp32")]
    pub precision: Vec<Precision>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Checkpoints K for scoring.
    #[arg(long, default_value_t = 6)]
    pub checkpoints: usize,
    /// Measured seconds per row, after a warm-up pass.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Intra-op threads of libtorch (default: libtorch's choice, one per core).
    #[arg(long)]
    pub threads: Option<i32>,
    #[arg(long, value_enum, default_value_t = BenchFormat::Table)]
    pub format: BenchFormat,
    /// For --what decode: an image folder or CSV manifest.
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// No per-row progress lines.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BenchFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// The run directory.
    pub run: PathBuf,
    /// Scores CSVs outside the run folder to check too (those inside are always checked).
    #[arg(long, num_args = 1..)]
    pub scores: Vec<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// Experiment file, e.g. configs/paper-cifar10.toml.
    pub config: PathBuf,
    /// Shorten the schedule to N epochs (learning-rate steps scale along).
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub width: Option<i64>,
    /// Output folder (default: the file's `out`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    #[arg(long)]
    pub device: Option<String>,
    #[arg(long, value_name = "N")]
    pub train_subset: Option<usize>,
    #[arg(long, value_name = "N")]
    pub test_subset: Option<usize>,
    #[arg(long)]
    pub quiet: bool,
}

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
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Only the summary.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Run directory (leave it out for scores of your own TorchScript models).
    #[arg(long, required_unless_present = "scores")]
    pub run: Option<PathBuf>,
    /// Scores files to evaluate, comma-separated (default: RUN/scores-*.csv); the first one's
    /// examples fill the grids and the table.
    #[arg(long, value_delimiter = ',')]
    pub scores: Vec<PathBuf>,
    /// Output HTML file.
    #[arg(long, default_value = "report.html")]
    pub out: PathBuf,
}

#[derive(Debug, Args)]
pub struct EvalArgs {
    /// Scores CSV written by `vog score`.
    pub scores: PathBuf,
    /// Folder for eval.json, the CSV tables and the plots (default: SCORES without .csv,
    /// plus `-eval`).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// What to print.
    #[arg(long, value_enum, default_value_t = EvalFormat::Table)]
    pub format: EvalFormat,
    /// Another scores file of the same examples (e.g. another stage) to compare rankings with.
    #[arg(long, value_name = "OTHER.csv")]
    pub compare: Option<PathBuf>,
    /// Ids of examples known or suspected to be mislabelled or odd: a CSV with an `id`
    /// column, or one id per line; adds a leaderboard of how well each score finds them.
    #[arg(long, value_name = "FILE")]
    pub flagged: Option<PathBuf>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvalFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Run directory written by `vog train`.
    #[arg(long, required_unless_present = "model", conflicts_with = "model")]
    pub run: Option<PathBuf>,
    /// Your own checkpoints instead of a run: TorchScript files (or folders of *.pt),
    /// comma-separated, in checkpoint order. Needs --data, --out, and --normalize or
    /// --mean/--std.
    #[arg(long, value_delimiter = ',')]
    pub model: Vec<PathBuf>,
    #[arg(long, value_enum, default_value_t = SplitChoice::Test)]
    pub split: SplitChoice,
    /// Checkpoints: early (first three saved), late (last three), all, or epochs
    /// such as `1-3,every:10`.
    #[arg(long, default_value = "all", conflicts_with = "model")]
    pub stage: Stage,
    /// Output CSV (default RUN/scores-SPLIT-STAGE.csv); a .json sidecar goes next to it.
    #[arg(long, required_unless_present = "run")]
    pub out: Option<PathBuf>,
    /// With --model: the model's class names, one per line, in its output order.
    #[arg(long, requires = "model")]
    pub classes: Option<PathBuf>,
    /// With --model: the normalization the model was trained with, by name.
    #[arg(long, value_enum, requires = "model", conflicts_with_all = ["mean", "std"])]
    pub normalize: Option<model_args::NormPreset>,
    /// With --model: per-channel mean of pixels in [0, 1], as R,G,B.
    #[arg(long, value_delimiter = ',', requires = "std", requires = "model")]
    pub mean: Vec<f64>,
    /// With --model: per-channel standard deviation, as R,G,B.
    #[arg(long, value_delimiter = ',', requires = "mean")]
    pub std: Vec<f64>,
    /// With --model: resize every image's shorter side to this many pixels (bilinear).
    #[arg(long, requires = "model")]
    pub resize: Option<u32>,
    /// With --model: then cut out the centre square of this side.
    #[arg(long, requires = "model")]
    pub crop: Option<u32>,
    /// With --model: score only shard I of N (I from 0, e.g. 0/4), in whole batches;
    /// combine the shard files with `vog merge`.
    #[arg(long, requires = "model", value_parser = model_args::parse_shard)]
    pub shard: Option<(usize, usize)>,
    /// Images per batch [default: 128 on a CPU; on CUDA 512 for a run, 128 for --model].
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// What is differentiated, comma-separated: logit (the paper), prob, logprob, margin.
    /// The first keeps the plain vog_raw/vog columns; each further one adds vog_raw_T/vog_T.
    #[arg(long, value_delimiter = ',', default_value = "logit", value_parser = parse_target)]
    pub target: Vec<Target>,
    /// paper: sqrt of the pixel-mean variance; official: pixel-mean standard deviation
    /// (the authors' code); cv: paper / mean |gradient|.
    #[arg(long, value_enum, default_value_t = Reduce::Paper)]
    pub reduce: Reduce,
    /// mean: average the gradient over colour channels first; all: every channel value is a pixel.
    #[arg(long, value_enum, default_value_t = Channels::Mean)]
    pub channels: Channels,
    /// unit: scale each gradient map to unit L2 norm before the variance.
    #[arg(long, value_enum, default_value_t = GradNorm::None)]
    pub grad_norm: GradNorm,
    /// Dataset location, if it moved since training. With --model: the images, an image
    /// folder (ROOT/<class>/* or ROOT/train|test/<class>/*) or a CSV manifest path,label[,id].
    #[arg(long)]
    pub data: Option<PathBuf>,
    /// Score a run that has not finished training (the sidecar records what it lacked).
    #[arg(long, conflicts_with = "model")]
    pub allow_incomplete: bool,
    /// Format of the forward and backward passes: fp32, bf16 (about twice as fast on a
    /// recent CPU; see the README for when it is safe) or fp16. The reduction is f64.
    #[arg(long, value_enum, default_value_t = Precision::Fp32)]
    pub precision: Precision,
    /// No progress bar.
    #[arg(long)]
    pub quiet: bool,
}

#[derive(Debug, Args)]
pub struct RankArgs {
    /// Scores CSV written by `vog score`.
    pub scores: PathBuf,
    /// How many examples (per class with --per-class).
    #[arg(long, default_value_t = 25)]
    pub top: usize,
    /// The lowest scores instead of the highest.
    #[arg(long)]
    pub lowest: bool,
    /// Only this class (name or label number).
    #[arg(long)]
    pub class: Option<String>,
    /// The top examples of every class; with --grid, a highest and a lowest grid per class.
    #[arg(long, conflicts_with = "class")]
    pub per_class: bool,
    /// Score column: vog (class-normalized), vog_raw, or a further target's column.
    #[arg(long, default_value = "vog")]
    pub column: String,
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,
    /// Write the examples' images as a square grid PNG.
    #[arg(long, value_name = "FILE.png")]
    pub grid: Option<PathBuf>,
    /// Dataset location, if it moved since scoring.
    #[arg(long)]
    pub data: Option<PathBuf>,
}

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

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// Continue the unfinished run in RUN from its last finished epoch, with the settings it
    /// was started with (bit-identical to an uninterrupted run on the same device).
    #[arg(long, value_name = "RUN", conflicts_with_all = [
        "dataset", "out", "config", "epochs", "batch_size", "lr", "width", "save_epochs",
        "seed", "eval_every", "precision", "no_augment", "train_subset", "test_subset", "label_noise", "noise_seed",
        "overwrite",
    ])]
    pub resume: Option<PathBuf>,
    /// cifar10, cifar100, synth, or an image folder ROOT with train/<class>/ (and test/<class>/).
    #[arg(long, required_unless_present = "resume")]
    pub dataset: Option<String>,
    /// Where CIFAR binaries live (as extracted by `vog download`).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Run directory to create.
    #[arg(long, required_unless_present = "resume")]
    pub out: Option<PathBuf>,
    /// TOML file with the hyper-parameters (default: the built-in configs/cifar10.toml or
    /// cifar100.toml); flags override it.
    #[arg(long)]
    pub config: Option<PathBuf>,
    #[arg(long)]
    pub epochs: Option<usize>,
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Initial learning rate.
    #[arg(long)]
    pub lr: Option<f64>,
    /// Base channel count of the ResNet (64 = the paper's 11.2M-parameter network).
    #[arg(long)]
    pub width: Option<i64>,
    /// Epochs to checkpoint: lists, ranges and strides, e.g. `1,2,3,348-350`, `every:10`,
    /// `first:3,last:3`, `paper` (first three, last three, every 10th), `all`.
    #[arg(long)]
    pub save_epochs: Option<String>,
    /// Seed for weight init, data order, augmentation and subsets.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Evaluate the test split every N epochs (the last epoch always).
    #[arg(long, value_name = "N")]
    pub eval_every: Option<usize>,
    /// Mixed precision: bf16 (autocast, no loss scaling; CPU and recent GPUs) or fp16
    /// (autocast with a dynamic loss scale; GPUs). Weights and SGD stay fp32.
    #[arg(long, value_enum)]
    pub precision: Option<Precision>,
    /// Train without random crop and flip.
    #[arg(long)]
    pub no_augment: bool,
    /// Train on a class-stratified, seeded subset of N examples.
    #[arg(long, value_name = "N")]
    pub train_subset: Option<usize>,
    /// Evaluate on a class-stratified, seeded subset of N test examples.
    #[arg(long, value_name = "N")]
    pub test_subset: Option<usize>,
    /// Shuffle the labels of this fraction of the training set (memorization experiment).
    #[arg(long, value_name = "F")]
    pub label_noise: Option<f64>,
    /// Seed of the label shuffle (default: --seed).
    #[arg(long, requires = "label_noise")]
    pub noise_seed: Option<u64>,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// Replace the run already in --out.
    #[arg(long)]
    pub overwrite: bool,
    /// No progress output.
    #[arg(long)]
    pub quiet: bool,
}

impl TrainArgs {
    /// Merges the config file (or built-in defaults) with the flags and validates the result.
    pub fn to_config(&self) -> Result<(TrainConfig, Origins)> {
        let seed_hint = self.seed.unwrap_or(0);
        let name = self.dataset.as_deref().context("--dataset is required")?;
        let dataset = DatasetSpec::resolve(name, &self.data_dir, seed_hint).context("--dataset")?;
        let (mut h, origins) = match &self.config {
            Some(path) => (Hyper::from_file(path)?, Origins::file(path, "")),
            None => (Hyper::defaults_for(&dataset), Origins::default()),
        };
        let origins = origins
            .flag("epochs", self.epochs.is_some())
            .flag("batch_size", self.batch_size.is_some())
            .flag("lr", self.lr.is_some())
            .flag("width", self.width.is_some())
            .flag("save_epochs", self.save_epochs.is_some())
            .flag("seed", self.seed.is_some())
            .flag("eval_every", self.eval_every.is_some())
            .flag("precision", self.precision.is_some())
            .flag("train_subset", true)
            .flag("test_subset", true)
            .flag("label_noise", true);
        override_with(&mut h.epochs, self.epochs);
        override_with(&mut h.batch_size, self.batch_size);
        override_with(&mut h.lr, self.lr);
        override_with(&mut h.width, self.width);
        override_with(&mut h.save_epochs, self.save_epochs.clone());
        override_with(&mut h.seed, self.seed);
        override_with(&mut h.eval_every, self.eval_every);
        override_with(&mut h.precision, self.precision);
        h.augment &= !self.no_augment;
        // The synthetic data follows the run's seed, whichever source set it.
        let dataset = dataset.with_seed(h.seed);
        let selection = Selection {
            train_subset: self.train_subset,
            test_subset: self.test_subset,
            label_noise: self.label_noise.map(|fraction| LabelNoise {
                fraction,
                seed: self.noise_seed.unwrap_or(h.seed),
            }),
        };
        let device = parse_device(&self.device)?;
        let cfg = TrainConfig::new(dataset, h, selection, device, &origins)?;
        Ok((cfg, origins))
    }
}

fn override_with<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// `--device`, resolved against what libtorch sees.
fn parse_device(name: &str) -> Result<Device> {
    crate::device::parse(name).with_context(|| format!("--device {name}"))
}

/// One `--target` value.
fn parse_target(s: &str) -> Result<Target, String> {
    Target::from_str(s.trim(), true)
        .map_err(|_| format!("unknown target '{s}' (expected logit, prob, logprob or margin)"))
}

/// Parses the command line. A bad value is reported on one line, like every other error;
/// help, version and usage errors are clap's own.
pub fn parse() -> Cli {
    Cli::try_parse().unwrap_or_else(|e| match e.kind() {
        ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::ArgumentConflict => {
            let text = e.render().to_string();
            eprintln!("{}", text.lines().next().unwrap_or("error: invalid value"));
            std::process::exit(2);
        }
        _ => e.exit(),
    })
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info { json } => {
            let info = Info::gather();
            if json {
                println!("{}", serde_json::to_string_pretty(&info)?);
            } else {
                println!("{info}");
            }
            Ok(())
        }
        Command::Download(a) => {
            let dir = download::fetch(a.dataset.into(), &a.dir, &Terminal::detect(false))?;
            println!("{}", dir.display());
            Ok(())
        }
        Command::Data(DataCommand::Synth(a)) => {
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
        Command::Train(a) => run_train(&a),
        Command::Score(a) => run_score(&a),
        Command::Rank(a) => run_rank(&a),
        Command::Eval(a) => run_eval(&a),
        Command::Demo(a) => run_demo(&a),
        Command::Experiment(a) => run_experiment(&a),
        Command::Report(a) => run_report(&a),
        Command::Verify(a) => run_verify(&a),
        Command::Merge(a) => run_merge(&a),
        Command::Bench(a) => run_bench(&a),
    }
}

fn run_bench(a: &BenchArgs) -> Result<()> {
    if let Some(t) = a.threads {
        if t < 1 {
            bail!("--threads must be at least 1");
        }
        tch::set_num_threads(t);
    }
    let cfg = crate::bench::BenchConfig {
        what: a.what.clone(),
        width: a.width,
        batch_size: a.batch_size,
        precisions: a.precision.clone(),
        device: parse_device(&a.device)?,
        checkpoints: a.checkpoints,
        seconds: a.seconds,
        data: a.data.as_deref().map(model_args::stream_spec).transpose()?,
    };
    let rows = crate::bench::run(&cfg, &Terminal::detect(a.quiet))?;
    match a.format {
        BenchFormat::Table => crate::bench::write_table(std::io::stdout().lock(), &rows)?,
        BenchFormat::Json => println!("{}", serde_json::to_string_pretty(&rows)?),
    }
    Ok(())
}

fn run_verify(a: &VerifyArgs) -> Result<()> {
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

fn run_merge(a: &MergeArgs) -> Result<()> {
    let meta = crate::merge::run(&a.shards, &a.out, &Terminal::detect(a.quiet))?;
    println!(
        "merged {} shards: {} examples -> '{}'",
        a.shards.len(),
        meta.examples,
        a.out.display()
    );
    Ok(())
}

fn run_report(a: &ReportArgs) -> Result<()> {
    let Some(run_path) = &a.run else {
        // Scores of a user's models: no run, no training section.
        let scored = a
            .scores
            .iter()
            .map(|p| Evaluated::read(p))
            .collect::<Result<Vec<_>>>()?;
        let input = ReportInput {
            run: None,
            scored: &scored.iter().collect::<Vec<_>>(),
        };
        report::write(&input, &a.out)?;
        println!("wrote '{}'", a.out.display());
        return Ok(());
    };
    let paths = if a.scores.is_empty() {
        report::find_scores(run_path)?
    } else {
        a.scores.clone()
    };
    let manifest = RunDir::open(run_path)?.read_manifest()?;
    let scored = paths
        .iter()
        .map(|p| Evaluated::read(p))
        .collect::<Result<Vec<_>>>()?;
    let run = std::path::absolute(run_path).unwrap_or_else(|_| run_path.clone());
    for s in &scored {
        if s.file.meta.run.as_ref() != Some(&run)
            || s.file.meta.dataset_fingerprint != manifest.dataset.fingerprint
        {
            bail!(
                "'{}' holds scores of {}, not of run '{}'",
                s.file.path.display(),
                s.file.meta.source(),
                run_path.display()
            );
        }
    }
    let input = ReportInput {
        run: Some((run_path, &manifest)),
        scored: &scored.iter().collect::<Vec<_>>(),
    };
    report::write(&input, &a.out)?;
    println!("wrote '{}'", a.out.display());
    Ok(())
}

fn run_eval(a: &EvalArgs) -> Result<()> {
    let file = ScoresFile::read(&a.scores)?;
    let flagged = match &a.flagged {
        Some(path) => Some(eval::read_flagged(path, &file)?),
        None => None,
    };
    let sets: Vec<(Question, &HashSet<String>)> =
        flagged.iter().map(|ids| (Question::Flagged, ids)).collect();
    let mut e = eval::evaluate(&file, &sets)?;
    if let Some(other) = &a.compare {
        e.comparison = Some(eval::compare(&file, &ScoresFile::read(other)?)?);
    }
    let dir = a.out.clone().unwrap_or_else(|| {
        let stem = a
            .scores
            .file_stem()
            .map_or("scores".into(), |s| s.to_string_lossy().into_owned());
        a.scores.with_file_name(format!("{stem}-eval"))
    });
    eval::write_outputs(&dir, &e, &file, flagged.as_ref())?;
    match a.format {
        EvalFormat::Table => eval::write_table(std::io::stdout().lock(), &e)?,
        EvalFormat::Json => println!("{}", serde_json::to_string_pretty(&e)?),
    }
    eprintln!(
        "wrote eval.json, deciles.csv, groups.csv, classes.csv, leaderboards.csv and plots to '{}'",
        dir.display()
    );
    Ok(())
}

/// The targets of `--target`, each once.
fn check_targets(targets: &[Target]) -> Result<()> {
    for (i, t) in targets.iter().enumerate() {
        if targets[..i].contains(t) {
            bail!("--target: '{t}' is listed twice");
        }
    }
    Ok(())
}

/// `--batch-size`, or the default for what is scored on `device`.
fn score_batch_size(a: &ScoreArgs, device: Device) -> Result<usize> {
    match a.batch_size {
        Some(0) => bail!("--batch-size must be at least 1"),
        Some(b) => Ok(b),
        None if a.run.is_some() => Ok(scoring::default_batch_size(device)),
        None => Ok(scoring::models::DEFAULT_BATCH_SIZE),
    }
}

fn run_score(a: &ScoreArgs) -> Result<()> {
    check_targets(&a.target)?;
    let device = parse_device(&a.device)?;
    let batch_size = score_batch_size(a, device)?;
    let Some(run) = &a.run else {
        let cfg = model_args::config(a, device, batch_size)?;
        let meta = scoring::models::run(&cfg, &Terminal::detect(a.quiet))?;
        let what = match meta.shard {
            Some(s) => format!("shard {s} of"),
            None => "all".into(),
        };
        println!(
            "scored {what} {} {} examples with {} models in {:.1} s ({:.0} image x checkpoint/s) -> '{}'",
            meta.examples,
            a.split,
            meta.epochs.len(),
            meta.seconds,
            (meta.examples * meta.epochs.len()) as f64 / meta.seconds,
            cfg.out.display()
        );
        return Ok(());
    };
    let out = a
        .out
        .clone()
        .unwrap_or_else(|| scores::scores_path(run, a.split, &a.stage));
    scores::check_out(&out)
        .map_err(|e| anyhow::anyhow!("cannot write to --out '{}': {e:#}", out.display()))?;
    let cfg = ScoreConfig {
        run: run.clone(),
        split: a.split,
        stage: a.stage.clone(),
        out,
        batch_size,
        device,
        targets: a.target.clone(),
        variant: Variant {
            reduce: a.reduce,
            channels: a.channels,
            grad_norm: a.grad_norm,
        },
        data: a.data.clone(),
        allow_incomplete: a.allow_incomplete,
        precision: a.precision,
    };
    let meta = scoring::run(&cfg, &Terminal::detect(a.quiet))?;
    let targets: Vec<&str> = meta.targets.iter().map(|t| t.name()).collect();
    println!(
        "scored {} {} examples at epochs {:?} (targets {}) in {:.1} s ({:.0} image x checkpoint/s) -> '{}'",
        meta.examples,
        a.split,
        meta.epochs,
        targets.join(","),
        meta.seconds,
        (meta.examples * meta.epochs.len()) as f64 / meta.seconds,
        cfg.out.display()
    );
    Ok(())
}

fn run_rank(a: &RankArgs) -> Result<()> {
    if a.top == 0 {
        bail!("--top must be at least 1");
    }
    let file = ScoresFile::read(&a.scores)?;
    let mut entries = scores::scored(&file, &a.column)?;
    let names = scores::class_names(&entries);
    if let Some(class) = &a.class {
        entries = rank::filter_class(entries, class)?;
    }
    let classes = if a.per_class {
        per_class(&entries)
    } else {
        vec![(String::new(), entries)]
    };
    let groups: Vec<(String, Vec<scores::Ranked>)> = classes
        .iter()
        .map(|(c, es)| (c.clone(), top_k(es, a.top, a.lowest, &names)))
        .collect();
    // Images are checked before anything is printed, so a bad --grid leaves no output.
    if let Some(path) = &a.grid {
        if !path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("png"))
        {
            bail!(
                "--grid '{}' must name a .png file (grids are written as PNG)",
                path.display()
            );
        }
        let images = ImageLookup::load(&file.meta, a.data.as_deref())?;
        if a.per_class {
            for (class, es) in &classes {
                for (which, lowest) in [("highest", false), ("lowest", true)] {
                    let p = grid::class_grid_path(path, class, which);
                    let top = top_k(es, a.top, lowest, &names);
                    images.write_grid(top.iter().map(|r| r.scored.row), &p)?;
                    eprintln!("wrote {}", p.display());
                }
            }
        } else {
            images.write_grid(groups[0].1.iter().map(|r| r.scored.row), path)?;
            eprintln!("wrote {}", path.display());
        }
    }
    rank::write(std::io::stdout().lock(), &groups, &a.column, a.format)
}

fn run_experiment(a: &ExperimentArgs) -> Result<()> {
    let overrides = Overrides {
        epochs: a.epochs,
        width: a.width,
        out: a.out.clone(),
        data_dir: a.data_dir.clone(),
        device: a.device.clone(),
        train_subset: a.train_subset,
        test_subset: a.test_subset,
    };
    let (file, plan) = ExperimentFile::read(&a.config)?.resolve(&overrides, &a.config)?;
    reporter::stop_on_ctrl_c()?;
    let results = experiment::run(file, &plan, &Terminal::detect(a.quiet))?;
    println!(
        "train accuracy {:.1}%, test accuracy {}",
        100.0 * results.final_train_accuracy,
        results
            .final_test_accuracy
            .map_or("n/a".into(), |t| format!("{:.1}%", 100.0 * t))
    );
    for s in &results.stages {
        let verdicts: Vec<String> = s
            .evaluation
            .leaderboards
            .first()
            .map(|l| {
                let vog = l
                    .entries
                    .iter()
                    .filter(|e| e.score.starts_with("vog") && !e.score.starts_with("vog_raw"));
                vog.map(|e| format!("{} {}", e.score, short(e.verdict)))
                    .collect()
            })
            .unwrap_or_default();
        println!(
            "{:5} {:5} (epochs {:?}): {}",
            s.split.to_string(),
            s.stage.to_string(),
            s.epochs,
            verdicts.join(", ")
        );
    }
    println!("report: {}", results.report.display());
    Ok(())
}

/// One word for a verdict, for compact listings.
fn short(v: Verdict) -> &'static str {
    match v {
        Verdict::HigherIsHarder => "harder",
        Verdict::HigherIsEasier => "easier",
        Verdict::NotEnoughEvidence => "unsure",
    }
}

fn run_demo(a: &DemoArgs) -> Result<()> {
    let o = DemoOptions {
        out: a.out.clone(),
        data: a.data.clone(),
        data_dir: a.data_dir.clone(),
        train: a.train,
        test: a.test,
        epochs: a.epochs,
        width: a.width,
        seed: a.seed,
        device: parse_device(&a.device)?,
    };
    let plan = demo::plan(&o)?;
    let reporter = Terminal::detect(a.quiet);
    let noise = plan.train.label_noise.as_ref().map_or(0.0, |n| n.fraction);
    reporter.info(&format!(
        "vog demo: {} with {:.0}% shuffled training labels, ResNet-18 width {}, {} epochs, then scoring \
         both splits with four targets, evaluation and an HTML report in '{}'.{}",
        plan.train.dataset.name(),
        100.0 * noise,
        plan.train.hyper.width,
        plan.train.hyper.epochs,
        a.out.display(),
        if a.data.is_none() { " 3-6 minutes on a 2-core CPU." } else { "" }
    ));
    let summary = demo::run(&o, &reporter)?;
    println!("{summary}");
    Ok(())
}

fn run_train(a: &TrainArgs) -> Result<()> {
    if let Some(dir) = &a.resume {
        return resume_train(dir, a.quiet);
    }
    let (cfg, origins) = a.to_config()?;
    let out = a.out.as_deref().context("--out is required")?;
    // Every check that can fail comes before the run directory is touched.
    RunDir::ensure_free(out, a.overwrite)?;
    let prepared = prepare::prepare(&cfg.dataset, &cfg.selection(), cfg.hyper.seed, &origins)?;
    train::check_fits(&cfg, &prepared, &origins)?;
    let run = RunDir::create(out, a.overwrite)?;
    reporter::stop_on_ctrl_c()?;
    let m = train::run(&cfg, &prepared, &run, &Terminal::detect(a.quiet))?;
    print_trained(&m, run.root())
}

/// `vog train --resume RUN`.
fn resume_train(dir: &std::path::Path, quiet: bool) -> Result<()> {
    let run = RunDir::open_for_writing(dir)?;
    let m = run.read_manifest()?;
    if m.complete {
        println!(
            "'{}' finished all {} epochs; nothing to resume",
            dir.display(),
            m.epochs.len()
        );
        return Ok(());
    }
    let cfg = &m.config;
    let prepared = prepare::prepare(
        &cfg.dataset,
        &cfg.selection(),
        cfg.hyper.seed,
        &Origins::default(),
    )?;
    reporter::stop_on_ctrl_c()?;
    let m = train::resume(&run, &prepared, &Terminal::detect(quiet))?;
    print_trained(&m, run.root())
}

fn print_trained(m: &crate::run_dir::RunManifest, root: &std::path::Path) -> Result<()> {
    let last = m.epochs.last().context("no epoch ran")?;
    let test = last.test_accuracy.map_or(String::new(), |a| {
        format!(", test accuracy {:.1}%", 100.0 * a)
    });
    println!(
        "trained {} epochs on {} ({} examples, {} device){test}; checkpoints for epochs {:?} in '{}'",
        m.epochs.len(),
        m.config.dataset.name(),
        m.dataset.train_examples,
        crate::device::name(m.device),
        m.saved_epochs,
        root.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn score_args(args: &[&str]) -> ScoreArgs {
        let cli = Cli::try_parse_from([&["vog", "score"], args].concat()).unwrap();
        match cli.command {
            Command::Score(a) => *a,
            other => panic!("parsed as {other:?}"),
        }
    }

    #[test]
    fn score_batch_size_defaults_by_device_and_kind() {
        let run = score_args(&["--run", "r"]);
        assert_eq!(score_batch_size(&run, Device::Cpu).unwrap(), 128);
        assert_eq!(score_batch_size(&run, Device::Cuda(0)).unwrap(), 512);
        let model = score_args(&["--model", "m.pt", "--data", "d", "--out", "o.csv"]);
        assert_eq!(score_batch_size(&model, Device::Cuda(0)).unwrap(), 128);
        let told = score_args(&["--run", "r", "--batch-size", "7"]);
        assert_eq!(score_batch_size(&told, Device::Cuda(0)).unwrap(), 7);
        let zero = score_args(&["--run", "r", "--batch-size", "0"]);
        let err = score_batch_size(&zero, Device::Cpu).unwrap_err();
        assert_eq!(err.to_string(), "--batch-size must be at least 1");
    }
}
