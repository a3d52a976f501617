use std::process::ExitCode;

fn main() -> ExitCode {
    match vog::cli::run(vog::cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            // An interrupted training ends as a process stopped by Ctrl-C does.
            if e.downcast_ref::<vog::train::Interrupted>().is_some() {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
