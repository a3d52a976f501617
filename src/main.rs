use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = vog::cli::Cli::parse();
    match vog::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
