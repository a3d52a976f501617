use std::process::ExitCode;

fn main() -> ExitCode {
    vog::cli::install_out_of_memory_hook();
    match vog::cli::run(vog::cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line, whatever a lower library put in its message.
            let text = format!("{e:#}");
            let text = vog::cli::out_of_memory(&text).unwrap_or(text);
            let lines: Vec<&str> = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .collect();
            eprintln!("error: {}", lines.join(" "));
            // An interrupted training ends as a process stopped by Ctrl-C does.
            if e.downcast_ref::<vog::train::Interrupted>().is_some() {
                ExitCode::from(130)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
