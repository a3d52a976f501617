//! The command line's [`Reporter`]: a progress bar per task on a terminal, one line per
//! message in logs (tasks hidden), nothing at all under `--quiet`. Messages and bars go to
//! stderr, so stdout holds only the results.
use crate::progress::{NoTask, Reporter, Task};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// Set by the first Ctrl-C once [`stop_on_ctrl_c`] ran.
static STOP: OnceLock<Arc<AtomicBool>> = OnceLock::new();

/// Makes the first Ctrl-C a request to stop at the next safe point (the library sees it
/// through [`Reporter::stop_requested`]) and a second one end the process at once with
/// status 130, as the default handler would. The first press is acknowledged on stderr.
pub fn stop_on_ctrl_c() -> anyhow::Result<()> {
    use signal_hook::consts::SIGINT;
    use signal_hook::flag;
    if STOP.get().is_some() {
        return Ok(());
    }
    let stop = Arc::new(AtomicBool::new(false));
    // Registered first, so it sees the flag as it was before this press set it.
    flag::register_conditional_shutdown(SIGINT, 130, Arc::clone(&stop))?;
    flag::register(SIGINT, Arc::clone(&stop))?;
    let _ = STOP.set(Arc::clone(&stop));
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "\nstopping after the current epoch, once its state is saved (Ctrl-C again to quit \
             now: the run then resumes from the epoch before)"
        );
    });
    Ok(())
}

/// How much the command line shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Terminal {
    /// Nothing, warnings included.
    Quiet,
    /// Messages as lines, no progress bars (logs, CI).
    Lines,
    /// Messages and progress bars (an interactive terminal).
    Bars,
}

impl Terminal {
    /// Bars when stderr is a terminal, lines otherwise, nothing when `quiet`.
    pub fn detect(quiet: bool) -> Self {
        if quiet {
            Terminal::Quiet
        } else if std::io::stderr().is_terminal() {
            Terminal::Bars
        } else {
            Terminal::Lines
        }
    }
}

impl Reporter for Terminal {
    fn info(&self, line: &str) {
        if *self != Terminal::Quiet {
            eprintln!("{line}");
        }
    }

    /// Warnings print under `--quiet` too: they say what a result lacks or how far to
    /// trust it, which no one should miss for asking for less progress output.
    fn warn(&self, line: &str) {
        eprintln!("warning: {line}");
    }

    fn task(&self, name: &str, total: u64, unit: &str) -> Box<dyn Task + '_> {
        if *self != Terminal::Bars {
            return Box::new(NoTask);
        }
        // Braces in the name or unit would be read as template keys.
        let clean = |s: &str| s.replace(['{', '}'], "");
        let template = format!(
            "{} [{{bar:30}}] {{pos}}/{{len}} {} {{per_sec}} eta {{eta}} {{msg}}",
            clean(name),
            clean(unit)
        );
        let style = ProgressStyle::with_template(&template)
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        Box::new(Bar(ProgressBar::new(total).with_style(style)))
    }

    fn stop_requested(&self) -> bool {
        STOP.get().is_some_and(|s| s.load(Ordering::Relaxed))
    }
}

/// A visible progress bar, cleared when the task ends.
struct Bar(ProgressBar);

impl Task for Bar {
    fn advance(&self, steps: u64) {
        self.0.inc(steps);
    }

    fn shows_detail(&self) -> bool {
        true
    }

    fn detail(&self, text: String) {
        self.0.set_message(text);
    }
}

impl Drop for Bar {
    fn drop(&mut self) {
        self.0.finish_and_clear();
    }
}
