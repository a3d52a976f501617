//! The one way the library tells a person what it is doing: messages and progress of long
//! tasks go through a [`Reporter`], which the command line implements (a bar on a
//! terminal, one line per message in logs, nothing under `--quiet`). The library never
//! prints; tests capture what was reported with [`Captured`].
#[cfg(test)]
use std::sync::Mutex;

/// Receives the library's messages and opens progress tasks.
pub trait Reporter: Sync {
    /// A status line (an epoch's summary, "scoring train late: up to date").
    fn info(&self, line: &str);
    /// Something the user should know although the work goes on.
    fn warn(&self, line: &str);
    /// A task of `total` steps counted in `unit` (`batches`, `image x checkpoint`, `bytes`),
    /// labelled `name`; it ends when the handle is dropped.
    fn task(&self, name: &str, total: u64, unit: &str) -> Box<dyn Task + '_>;
    /// Whether the user asked long work to stop at its next safe point (Ctrl-C).
    fn stop_requested(&self) -> bool {
        false
    }
}

/// Progress of one task.
pub trait Task {
    fn advance(&self, steps: u64);
    /// Whether a detail line would be shown: callers skip computing one that costs
    /// something (reading running sums synchronizes a GPU).
    fn shows_detail(&self) -> bool;
    /// A short line shown beside the progress (running loss, accuracy).
    fn detail(&self, text: String);
}

/// Reports nothing (tests).
#[cfg(test)]
#[derive(Debug, Default, Clone, Copy)]
pub struct Silent;

/// A task that shows nothing.
pub struct NoTask;

impl Task for NoTask {
    fn advance(&self, _steps: u64) {}
    fn shows_detail(&self) -> bool {
        false
    }
    fn detail(&self, _text: String) {}
}

#[cfg(test)]
impl Reporter for Silent {
    fn info(&self, _line: &str) {}
    fn warn(&self, _line: &str) {}
    fn task(&self, _name: &str, _total: u64, _unit: &str) -> Box<dyn Task + '_> {
        Box::new(NoTask)
    }
}

/// Keeps every message (`warning: ` before warnings) and the tasks opened, for tests.
#[cfg(test)]
#[derive(Debug, Default)]
pub struct Captured {
    lines: Mutex<Vec<String>>,
    tasks: Mutex<Vec<(String, u64)>>,
}

#[cfg(test)]
impl Captured {
    /// The messages so far, in order.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().expect("not poisoned").clone()
    }

    /// (name, total) of each task opened, in order.
    pub fn tasks(&self) -> Vec<(String, u64)> {
        self.tasks.lock().expect("not poisoned").clone()
    }
}

#[cfg(test)]
impl Reporter for Captured {
    fn info(&self, line: &str) {
        self.lines.lock().expect("not poisoned").push(line.into());
    }
    fn warn(&self, line: &str) {
        self.lines
            .lock()
            .expect("not poisoned")
            .push(format!("warning: {line}"));
    }
    fn task(&self, name: &str, total: u64, _unit: &str) -> Box<dyn Task + '_> {
        self.tasks
            .lock()
            .expect("not poisoned")
            .push((name.into(), total));
        Box::new(NoTask)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn captured_keeps_order_and_marks_warnings() {
        let c = Captured::default();
        c.info("one");
        c.warn("two");
        let t = c.task("scoring", 10, "image x checkpoint");
        t.advance(3);
        assert!(!t.shows_detail());
        assert_eq!(c.lines(), vec!["one", "warning: two"]);
        assert_eq!(c.tasks(), vec![("scoring".to_string(), 10)]);
    }
}
