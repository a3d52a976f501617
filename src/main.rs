use std::process::ExitCode;

fn main() -> ExitCode {
    match vog::cli::run(vog::cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
