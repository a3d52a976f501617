//! Command-line interface: clap structs, their conversion into validated configs, and
//! dispatch to the library.
use crate::checkpoint::RunDir;
use crate::config::{Hyper, LabelNoise, TrainConfig};
use crate::data::cifar;
use crate::data::synth::{self, SynthSpec};
use crate::data::{download, DatasetSpec};
use crate::eval;
use crate::info::Info;
use crate::rank::{self, Format};
use crate::score::{self, ScoreConfig, SplitChoice};
use crate::scores::ScoreTable;
use crate::train::{self, Verbosity};
use crate::vog::{Channels, GradNorm, Reduce, Target, Variant};
use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::io::IsTerminal;
use std::path::{Path, PathBuf};

/// Size of the built-in synthetic dataset (`--dataset synth`).
pub const SYNTH_TRAIN: usize = 2000;
pub const SYNTH_TEST: usize = 500;

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
    /// (about three minutes on a 2-core CPU), or on a real dataset with --data.
    Demo(DemoArgs),
    /// Reproduce the paper from a configs/paper-*.toml file: train, score, evaluate, report.
    Experiment(Box<ExperimentArgs>),
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
    /// Run directory.
    #[arg(long)]
    pub run: PathBuf,
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
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum EvalFormat {
    Table,
    Json,
}

#[derive(Debug, Args)]
pub struct ScoreArgs {
    /// Run directory written by `vog train`.
    #[arg(long)]
    pub run: PathBuf,
    #[arg(long, value_enum, default_value_t = SplitChoice::Test)]
    pub split: SplitChoice,
    /// Checkpoints: early (first three saved), late (last three), all, or epochs
    /// such as `1-3,every:10`.
    #[arg(long, default_value = "all")]
    pub stage: String,
    /// Output CSV (default RUN/scores-SPLIT-STAGE.csv); a .json sidecar goes next to it.
    #[arg(long)]
    pub out: Option<PathBuf>,
    #[arg(long, default_value_t = 128)]
    pub batch_size: usize,
    /// auto, cpu, cuda or cuda:N.
    #[arg(long, default_value = "auto")]
    pub device: String,
    /// What is differentiated, comma-separated: logit (the paper), prob, logprob, margin.
    /// The first keeps the plain vog_raw/vog columns; each further one adds vog_raw_T/vog_T.
    #[arg(long, default_value = "logit")]
    pub target: String,
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
    /// Dataset location, if it moved since training.
    #[arg(long)]
    pub data: Option<PathBuf>,
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

#[derive(Debug, Args)]
pub struct SynthArgs {
    /// Output folder (read it back with `--dataset cifar10 --data-dir DIR`).
    #[arg(long)]
    pub out: PathBuf,
    #[arg(long, default_value_t = SYNTH_TRAIN)]
    pub train: usize,
    #[arg(long, default_value_t = SYNTH_TEST)]
    pub test: usize,
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}

#[derive(Debug, Args)]
pub struct TrainArgs {
    /// cifar10, cifar100, synth, or an image folder ROOT with train/<class>/ (and test/<class>/).
    #[arg(long)]
    pub dataset: String,
    /// Where CIFAR binaries live (as extracted by `vog download`).
    #[arg(long, default_value = "data")]
    pub data_dir: PathBuf,
    /// Run directory to create.
    #[arg(long)]
    pub out: PathBuf,
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
    pub fn to_config(&self) -> Result<TrainConfig> {
        let seed_hint = self.seed.unwrap_or(0);
        let dataset = resolve_dataset(&self.dataset, &self.data_dir, seed_hint)?;
        let mut h = match &self.config {
            Some(path) => Hyper::from_file(path)?,
            None => Hyper::defaults_for(&dataset),
        };
        override_with(&mut h.epochs, self.epochs);
        override_with(&mut h.batch_size, self.batch_size);
        override_with(&mut h.lr, self.lr);
        override_with(&mut h.width, self.width);
        override_with(&mut h.save_epochs, self.save_epochs.clone());
        override_with(&mut h.seed, self.seed);
        h.augment &= !self.no_augment;
        // The synthetic data follows the run's seed, whichever source set it.
        let dataset = match dataset {
            DatasetSpec::Synth {
                train,
                test,
                atypical,
                ..
            } => DatasetSpec::Synth {
                train,
                test,
                seed: h.seed,
                atypical,
            },
            other => other,
        };
        let label_noise = self.label_noise.map(|fraction| LabelNoise {
            fraction,
            seed: self.noise_seed.unwrap_or(h.seed),
        });
        TrainConfig::new(
            dataset,
            h,
            self.train_subset,
            self.test_subset,
            label_noise,
            self.device.clone(),
        )
    }
}

fn override_with<T>(slot: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *slot = v;
    }
}

/// Turns `--dataset` (and `--data-dir`) into a dataset spec with absolute paths.
pub fn resolve_dataset(name: &str, data_dir: &Path, seed: u64) -> Result<DatasetSpec> {
    let abs = |p: &Path| {
        std::path::absolute(p).with_context(|| format!("cannot resolve path '{}'", p.display()))
    };
    Ok(match name {
        "cifar10" => DatasetSpec::Cifar10 {
            dir: abs(data_dir)?,
        },
        "cifar100" => DatasetSpec::Cifar100 {
            dir: abs(data_dir)?,
        },
        "synth" => DatasetSpec::Synth {
            train: SYNTH_TRAIN,
            test: SYNTH_TEST,
            seed,
            atypical: 0.0,
        },
        path if Path::new(path).is_dir() => DatasetSpec::Folder {
            root: abs(Path::new(path))?,
        },
        other => {
            bail!("--dataset '{other}' is neither cifar10, cifar100, synth nor an existing folder")
        }
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
            let dir = download::fetch(a.dataset.into(), &a.dir, std::io::stderr().is_terminal())?;
            println!("{}", dir.display());
            Ok(())
        }
        Command::Data(DataCommand::Synth(a)) => {
            let data = synth::generate(&SynthSpec::new(a.train, a.test, a.seed));
            cifar::write_cifar10(&a.out, &data)?;
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
        Command::Report(a) => {
            let scores = if a.scores.is_empty() {
                crate::report::find_scores(&a.run)?
            } else {
                a.scores.clone()
            };
            crate::report::run(&a.run, &scores, &a.out, &[])?;
            println!("wrote '{}'", a.out.display());
            Ok(())
        }
    }
}

fn run_eval(a: &EvalArgs) -> Result<()> {
    let data = eval::load_scores(&a.scores)?;
    let mut e = eval::evaluate(&data, &a.scores.display().to_string());
    if let Some(other) = &a.compare {
        let b = eval::load_scores(other)?;
        e.comparison = Some(eval::compare(&data, &b, &other.display().to_string())?);
    }
    let dir = a.out.clone().unwrap_or_else(|| {
        let stem = a
            .scores
            .file_stem()
            .map_or("scores".into(), |s| s.to_string_lossy().into_owned());
        a.scores.with_file_name(format!("{stem}-eval"))
    });
    eval::write_outputs(&dir, &e, &data)?;
    match a.format {
        EvalFormat::Table => eval::write_table(std::io::stdout().lock(), &e)?,
        EvalFormat::Json => println!("{}", serde_json::to_string_pretty(&e)?),
    }
    eprintln!(
        "wrote eval.json, deciles.csv, groups.csv, classes.csv and plots to '{}'",
        dir.display()
    );
    Ok(())
}

fn run_score(a: &ScoreArgs) -> Result<()> {
    if a.batch_size == 0 {
        bail!("--batch-size must be at least 1");
    }
    let split_name = format!("{:?}", a.split).to_lowercase();
    let stage_slug: String = a
        .stage
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let cfg = ScoreConfig {
        run: a.run.clone(),
        split: a.split,
        stage: a.stage.clone(),
        out: a
            .out
            .clone()
            .unwrap_or_else(|| a.run.join(format!("scores-{split_name}-{stage_slug}.csv"))),
        batch_size: a.batch_size,
        device: a.device.clone(),
        targets: Target::parse_list(&a.target)?,
        variant: Variant {
            reduce: a.reduce,
            channels: a.channels,
            grad_norm: a.grad_norm,
        },
        data: a.data.clone(),
    };
    let meta = score::run(&cfg, !a.quiet && std::io::stderr().is_terminal())?;
    let targets: Vec<&str> = meta.targets.iter().map(|t| t.name()).collect();
    println!(
        "scored {} {split_name} examples at epochs {:?} (targets {}) in {:.1} s ({:.0} image x checkpoint/s) -> '{}'",
        meta.examples,
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
    let table = ScoreTable::read(&a.scores)?;
    let mut entries = rank::read_entries(&table, &a.column)?;
    if entries.is_empty() {
        bail!("'{}' holds no examples", a.scores.display());
    }
    let names = rank::class_names(&entries);
    if let Some(class) = &a.class {
        entries = rank::filter_class(entries, class)?;
    }
    let classes = if a.per_class {
        rank::per_class(&entries)
    } else {
        vec![(String::new(), entries)]
    };
    let groups: Vec<(String, Vec<rank::Ranked>)> = classes
        .iter()
        .map(|(c, es)| (c.clone(), rank::top_k(es, a.top, a.lowest, &names)))
        .collect();
    // Images are checked before anything is printed, so a bad --grid leaves no output.
    if let Some(path) = &a.grid {
        let images = rank::ImageLookup::load(&rank::image_source(&a.scores, a.data.as_deref())?)?;
        if a.per_class {
            for (class, es) in &classes {
                for (which, lowest) in [("highest", false), ("lowest", true)] {
                    let p = rank::class_grid_path(path, class, which);
                    images.write_grid(&rank::top_k(es, a.top, lowest, &names), &p)?;
                    eprintln!("wrote {}", p.display());
                }
            }
        } else {
            images.write_grid(&groups[0].1, path)?;
            eprintln!("wrote {}", path.display());
        }
    }
    rank::write(std::io::stdout().lock(), &groups, &a.column, a.format)
}

fn verbosity(quiet: bool) -> Verbosity {
    if quiet {
        Verbosity::Quiet
    } else if std::io::stderr().is_terminal() {
        Verbosity::Bar
    } else {
        Verbosity::Lines
    }
}

fn run_experiment(a: &ExperimentArgs) -> Result<()> {
    use crate::experiment::{self, ExperimentFile, Overrides};
    let overrides = Overrides {
        epochs: a.epochs,
        width: a.width,
        out: a.out.clone(),
        data_dir: a.data_dir.clone(),
        device: a.device.clone(),
        train_subset: a.train_subset,
        test_subset: a.test_subset,
    };
    let (file, cfg) = ExperimentFile::read(&a.config)?.resolve(&overrides)?;
    let results = experiment::run(file, &cfg, verbosity(a.quiet))?;
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
            .targets
            .iter()
            .map(|t| format!("{} {}", t.target, crate::eval::short_verdict(t.verdict)))
            .collect();
        println!(
            "{:5} {:5} (epochs {:?}): {}",
            s.split,
            s.stage,
            s.epochs,
            verdicts.join(", ")
        );
    }
    println!("report: {}", results.report.display());
    Ok(())
}

fn run_demo(a: &DemoArgs) -> Result<()> {
    let o = crate::demo::DemoOptions {
        out: a.out.clone(),
        data: a.data.clone(),
        data_dir: a.data_dir.clone(),
        train: a.train,
        test: a.test,
        epochs: a.epochs,
        width: a.width,
        seed: a.seed,
        device: a.device.clone(),
        verbosity: verbosity(a.quiet),
    };
    let cfg = crate::demo::config(&o)?;
    if !a.quiet {
        eprintln!(
            "vog demo: {} with {:.0}% shuffled training labels, ResNet-18 width {}, {} epochs, then scoring \
             both splits with four targets, evaluation and an HTML report in '{}'.{}",
            cfg.dataset.name(),
            100.0 * crate::demo::LABEL_NOISE,
            cfg.hyper.width,
            cfg.hyper.epochs,
            a.out.display(),
            if a.data.is_none() { " About three minutes on a 2-core CPU." } else { "" }
        );
    }
    let summary = crate::demo::run(&o)?;
    println!("{summary}");
    Ok(())
}

fn run_train(a: &TrainArgs) -> Result<()> {
    let cfg = a.to_config()?;
    crate::device::parse(&cfg.device)?;
    // Every check that can fail comes before the run directory is touched.
    RunDir::ensure_free(&a.out, a.overwrite)?;
    let prepared = train::prepare_data(&cfg)?;
    let run = RunDir::create(&a.out, a.overwrite)?;
    let m = train::run(&cfg, &prepared, &run, verbosity(a.quiet))?;
    let last = m.epochs.last().context("no epoch ran")?;
    let test = last.test_accuracy.map_or(String::new(), |a| {
        format!(", test accuracy {:.1}%", 100.0 * a)
    });
    println!(
        "trained {} epochs on {} ({} examples, {} device){test}; checkpoints for epochs {:?} in '{}'",
        m.epochs.len(),
        cfg.dataset.name(),
        m.dataset.train_examples,
        m.device,
        m.saved_epochs,
        run.root().display()
    );
    Ok(())
}
