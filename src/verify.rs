//! `vog verify`: checks a run directory against what its `run.json` recorded (size and
//! SHA-256 of every checkpoint and of the resume state), and each scores CSV against its
//! sidecar (columns, digest, run and dataset).
use crate::digest;
use crate::run_dir::{self, RunDir, RunManifest};
use crate::scores::{self, ScoresFile};
use anyhow::Result;
use std::path::{Path, PathBuf};

/// The outcome for one file.
#[derive(Debug, Clone, PartialEq)]
pub struct Check {
    pub path: PathBuf,
    /// `None` when intact, else what is wrong.
    pub problem: Option<String>,
}

/// Everything `vog verify` found.
#[derive(Debug, Clone, Default)]
pub struct Verification {
    pub checks: Vec<Check>,
    /// Things worth knowing that are not faults (files the manifest does not list).
    pub notes: Vec<String>,
}

impl Verification {
    pub fn failures(&self) -> usize {
        self.checks.iter().filter(|c| c.problem.is_some()).count()
    }

    fn add(&mut self, path: PathBuf, outcome: Result<()>) {
        self.checks.push(Check {
            path,
            problem: outcome.err().map(|e| format!("{e:#}")),
        });
    }
}

/// Verifies the run in `root` (if any) and the scores files `extra` besides those in the
/// run folder; without a run, each scores file on its own (with `--model` scoring's model
/// files, where they still are).
pub fn run(root: Option<&Path>, extra: &[PathBuf]) -> Result<Verification> {
    let Some(root) = root else {
        let mut v = Verification::default();
        for csv in extra {
            let outcome = check_standalone(csv, &mut v);
            v.add(csv.clone(), outcome);
        }
        return Ok(v);
    };
    let run = RunDir::open(root)?;
    let m = run.read_manifest()?;
    let mut v = Verification::default();
    for (name, want) in &m.files {
        v.add(root.join(name), digest::verify(&root.join(name), want));
    }
    for &epoch in &m.saved_epochs {
        let name = RunDir::checkpoint_name(epoch);
        if !m.files.contains_key(&name) {
            v.add(root.join(&name), m.verify_file(root, &name));
        }
    }
    if let Some(r) = &m.resume {
        if !m.files.contains_key(&r.file) {
            v.add(root.join(&r.file), m.verify_file(root, &r.file));
        }
    }
    note_unrecorded(root, &m, &mut v);
    let mut csvs = run_dir::scores_csvs(root)?;
    csvs.extend(extra.iter().cloned());
    for csv in csvs {
        let outcome = check_scores(&csv, root, &m);
        v.add(csv, outcome);
    }
    Ok(v)
}

/// Checkpoints and resume states on disk that the manifest does not list: an epoch that was
/// killed before its commit point wrote them; a resumed run overwrites them.
fn note_unrecorded(root: &Path, m: &RunManifest, v: &mut Verification) {
    for dir in [run_dir::CHECKPOINTS, run_dir::RESUME_DIR] {
        let Ok(entries) = std::fs::read_dir(root.join(dir)) else {
            continue;
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| format!("{dir}/{}", e.file_name().to_string_lossy()))
            .filter(|n| !m.files.contains_key(n))
            .collect();
        names.sort();
        for n in names {
            v.notes.push(format!(
                "'{}' is not recorded in run.json (left by an epoch that did not finish)",
                root.join(n).display()
            ));
        }
    }
}

/// A scores file (or a shard) read as every reader reads it, and the model files its
/// sidecar lists checked against their recorded SHA-256 (a note where one is gone).
fn check_standalone(csv: &Path, v: &mut Verification) -> Result<()> {
    let file = ScoresFile::read_any(csv)?;
    for f in file.meta.models.iter().flat_map(|m| &m.files) {
        if f.path.exists() {
            v.add(f.path.clone(), digest::verify(&f.path, &f.digest));
        } else {
            v.notes.push(format!(
                "model '{}' that '{}' was scored with is not there to check",
                f.path.display(),
                csv.display()
            ));
        }
    }
    Ok(())
}

fn check_scores(csv: &Path, root: &Path, m: &RunManifest) -> Result<()> {
    let file = ScoresFile::read(csv)?;
    let meta = &file.meta;
    if meta.dataset_fingerprint != m.dataset.fingerprint {
        anyhow::bail!(
            "holds scores of another dataset than the run's (sidecar '{}')",
            scores::sidecar_path(csv).display()
        );
    }
    let same_run = meta
        .run
        .as_ref()
        .and_then(|r| std::fs::canonicalize(r).ok())
        == std::fs::canonicalize(root).ok();
    if !same_run {
        anyhow::bail!("holds scores of {}", meta.source());
    }
    match &meta.csv {
        Some(want) => digest::verify(csv, want),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_folder_without_run_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        let e = run(Some(dir.path()), &[]).unwrap_err().to_string();
        assert!(e.contains("not a vog run"), "{e}");
    }
}
