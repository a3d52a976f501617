//! The command line's [`Reporter`]: a progress bar per task on a terminal, one line per
//! message in logs (tasks hidden), nothing at all under `--quiet`. Messages and bars go to
//! stderr, so stdout holds only the results.
use crate::progress::{NoTask, Reporter, Task};
use indicatif::{ProgressBar, ProgressStyle};
use std::io::IsTerminal;

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

    fn warn(&self, line: &str) {
        if *self != Terminal::Quiet {
            eprintln!("warning: {line}");
        }
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
