//! Command-line interface: one file per command (clap's arguments, one resolve step into
//! the library's request, the call), the library's enums as clap values (`values.rs`),
//! and the terminal reporter the library reports through.
mod bench;
mod crossval;
mod data;
mod demo;
mod embed;
mod eval;
mod experiment;
mod memory;
mod merge;
mod normalize;
mod prune;
mod rank;
mod report;
mod reporter;
mod review;
mod score;
mod train;
mod values;
mod verify;

pub use memory::{install_hook as install_out_of_memory_hook, out_of_memory};
pub use reporter::Terminal;

use anyhow::Result;
use bench::BenchArgs;
use clap::error::ErrorKind;
use clap::{Parser, Subcommand};
use crossval::CrossvalArgs;
use data::{DataCommand, DownloadArgs};
use demo::DemoArgs;
use embed::EmbedArgs;
use eval::EvalArgs;
use experiment::ExperimentArgs;
use merge::MergeArgs;
use prune::PruneArgs;
use rank::RankArgs;
use report::ReportArgs;
use review::ReviewArgs;
use score::ScoreArgs;
use train::TrainArgs;
use verify::VerifyArgs;

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
    /// A self-contained HTML page to review the examples a ranking selects: keep, drop or
    /// relabel each by key, export decisions.csv for `vog train --decisions`.
    Review(Box<ReviewArgs>),
    /// Train, score, evaluate and report on synthetic data with planted hard examples
    /// (under 3 minutes on a 2-core CPU), or on a real dataset with --data.
    Demo(DemoArgs),
    /// Reproduce the paper from a configs/paper-*.toml file (train, score, evaluate, report),
    /// or measure which score finds which planted kind from a configs/hardness-*.toml file.
    Experiment(Box<ExperimentArgs>),
    /// Check a run's checkpoints and resume state against the SHA-256 in its run.json, and
    /// its scores files against their sidecars.
    Verify(VerifyArgs),
    /// Throughput of training and scoring on synthetic images in memory.
    Bench(BenchArgs),
    /// Combine the shard files of `vog score --model ... --shard I/N` into one scores file.
    Merge(MergeArgs),
    /// Out-of-sample probabilities of a run's training examples by cross-fitting (K
    /// trainings with its recipe), for confident learning's label issues in `vog score`.
    Crossval(CrossvalArgs),
    /// The features of a dataset's images from a feature model (TorchScript, or a vog
    /// run's penultimate layer), for `vog crossval --features`.
    Embed(Box<EmbedArgs>),
    /// Test accuracy after retraining without what a score flags, against random removal.
    Prune(PruneArgs),
}

/// Parses the command line. A bad value is reported on one line, like every other error;
/// help, version and usage errors are clap's own.
/// The first line of clap's message, with the list that follows a line ending in `:` (the
/// arguments a conflict names) folded into it: one line, whatever clap conflicts on.
fn first_line(text: &str) -> String {
    let mut lines = text.lines();
    let first = lines.next().unwrap_or("error: invalid value");
    match first.strip_suffix(':') {
        Some(head) => {
            let listed: Vec<&str> = lines
                .take_while(|l| l.starts_with(' '))
                .map(str::trim)
                .collect();
            format!("{head} {}", listed.join(", "))
        }
        None => first.to_string(),
    }
}

pub fn parse() -> Cli {
    Cli::try_parse().unwrap_or_else(|e| match e.kind() {
        ErrorKind::InvalidValue | ErrorKind::ValueValidation | ErrorKind::ArgumentConflict => {
            eprintln!("{}", first_line(&e.render().to_string()));
            std::process::exit(2);
        }
        _ => e.exit(),
    })
}

/// Checks a command the documentation shows (`words`, `vog` first). `whole`: it parses as
/// the command line would (values, required arguments, conflicts); otherwise (a command
/// quoted in a sentence, often partial) its command exists and so does every `--flag` it
/// names. The error is clap's first line, or names the unknown command or flag.
pub fn check_documented(words: &[String], whole: bool) -> std::result::Result<(), String> {
    if whole {
        return match Cli::try_parse_from(words) {
            Ok(_) => Ok(()),
            Err(e) if matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) => {
                Ok(())
            }
            Err(e) => Err(e
                .render()
                .to_string()
                .lines()
                .next()
                .unwrap_or("")
                .to_string()),
        };
    }
    let mut command = <Cli as clap::CommandFactory>::command();
    let mut rest = words.iter().skip(1).peekable();
    while let Some(sub) = rest
        .peek()
        .and_then(|w| command.find_subcommand(w.as_str()))
    {
        command = sub.clone();
        rest.next();
    }
    if command.get_name() == "vog" {
        return Err(format!("no command {:?}", words.get(1)));
    }
    for word in rest {
        let Some(flag) = word.strip_prefix("--") else {
            continue;
        };
        let name = flag.split('=').next().unwrap_or(flag);
        let known = name == "help" || command.get_arguments().any(|a| a.get_long() == Some(name));
        if !known {
            return Err(format!("vog {} has no --{name}", command.get_name()));
        }
    }
    Ok(())
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Info { json } => data::info(json),
        Command::Download(a) => data::download(&a),
        Command::Data(c) => data::run(&c),
        Command::Train(a) => train::run(&a),
        Command::Score(a) => score::run(&a),
        Command::Rank(a) => rank::run(&a),
        Command::Eval(a) => eval::run(&a),
        Command::Demo(a) => demo::run(&a),
        Command::Experiment(a) => experiment::run(&a),
        Command::Report(a) => report::run(&a),
        Command::Review(a) => review::run(&a),
        Command::Verify(a) => verify::run(&a),
        Command::Merge(a) => merge::run(&a),
        Command::Bench(a) => bench::run(&a),
        Command::Crossval(a) => crossval::run(&a),
        Command::Embed(a) => embed::run(&a),
        Command::Prune(a) => prune::run(&a),
    }
}

/// The page `--out` names, or `default` in the working folder, which replaces only a page
/// vog wrote (the person did not name it).
fn page_out(named: Option<&std::path::Path>, default: &str) -> Result<std::path::PathBuf> {
    if let Some(path) = named {
        return Ok(path.to_path_buf());
    }
    let path = std::path::PathBuf::from(default);
    crate::atomic_file::check_unnamed(
        &path,
        |head| crate::atomic_file::holds(head, crate::export::GENERATOR),
        "the page's default name, used when --out is left out",
    )?;
    Ok(path)
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_conflict_with_several_arguments_is_one_line() {
        let clap = "error: the argument '--backbone <RUN>' cannot be used with:\n  --mean <MEAN>\n  --std <STD>\n\nUsage: vog embed\n";
        assert_eq!(
            super::first_line(clap),
            "error: the argument '--backbone <RUN>' cannot be used with --mean <MEAN>, --std <STD>"
        );
        assert_eq!(super::first_line("error: bad\n\nUsage"), "error: bad");
    }
}
