//! `vog verify`: checks a run directory against what its `run.json` recorded (size and
//! SHA-256 of every file vog wrote into it: checkpoints, resume state, dynamics, the
//! configuration and selection files), each scores CSV against its sidecar and the run
//! (columns, digest, checkpoints, data), `crossval/` (plan, probabilities by digest and
//! value, every fold run) and `prune/` (every retraining, the table against their
//! accuracies, its CSV and plot against the table).
use crate::digest;
use crate::oof;
use crate::prune::PruneTable;
use crate::run_dir::{self, RunDir, RunManifest};
use crate::scores::ScoresFile;
use anyhow::{bail, Result};
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

/// Verifies the run in `root` (if any), every file vog wrote into it (its crossval/ and
/// prune/ folders with their runs and tables too), and the scores files `extra` besides
/// those in the run folder; without a run, each scores file on its own (with `--model`
/// scoring's model files, where they still are).
pub fn run(root: Option<&Path>, extra: &[PathBuf]) -> Result<Verification> {
    let Some(root) = root else {
        let mut v = Verification::default();
        for csv in extra {
            let outcome = check_standalone(csv, &mut v);
            v.add(csv.clone(), outcome);
        }
        return Ok(v);
    };
    let m = RunDir::open(root)?.read_manifest()?;
    let mut v = Verification::default();
    run_files(root, &m, &mut v);
    let inside = run_dir::scores_csvs(root)?;
    for csv in inside.iter().chain(extra) {
        let outcome = check_scores(csv, root, &m);
        v.add(csv.clone(), outcome);
    }
    crossval(root, &m, &mut v);
    prune(root, &mut v)?;
    evaluations(&inside, &mut v);
    Ok(v)
}

/// The evaluation folder beside each of the run's scores files (`SCORES-eval/`, as `vog
/// eval` writes it): eval.json the evaluation of the scores file as it is now, every table
/// and plot what that evaluation writes, and a note on any other file there.
fn evaluations(csvs: &[PathBuf], v: &mut Verification) {
    for csv in csvs {
        let dir = crate::eval::default_dir(csv);
        if !dir.join("eval.json").is_file() {
            continue;
        }
        let files = match crate::eval::expected_files(&dir, csv) {
            Ok(files) => files,
            Err(e) => {
                v.add(dir.join("eval.json"), Err(e));
                continue;
            }
        };
        for (name, bytes) in &files {
            v.add(
                dir.join(name),
                same_bytes(&dir.join(name), bytes, "its eval.json", "evaluation"),
            );
        }
        let known: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if !known.contains(&name.as_str()) && !name.starts_with('.') {
                v.notes.push(format!(
                    "'{}' is not a file vog eval writes",
                    e.path().display()
                ));
            }
        }
    }
}

/// Whether the file at `path` holds exactly `bytes`, what `source` (a `kind`) writes.
fn same_bytes(path: &Path, bytes: &[u8], source: &str, kind: &str) -> Result<()> {
    match std::fs::read(path) {
        Ok(on_disk) if on_disk == bytes => Ok(()),
        Ok(_) => bail!("is not what {source} writes (edited, or of another {kind})"),
        Err(e) => bail!("cannot read it: {e}"),
    }
}

/// The files a run's manifest records (checkpoints, resume state, dynamics, config and
/// selection files), and notes on files it does not.
fn run_files(root: &Path, m: &RunManifest, v: &mut Verification) {
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
    note_unrecorded(root, m, v);
}

/// A run vog trained inside another (a crossval fold, a retraining of vog prune).
fn inner_run(dir: &Path, v: &mut Verification) {
    match RunDir::open(dir).and_then(|r| r.read_manifest()) {
        Ok(m) => run_files(dir, &m, v),
        Err(e) => v.add(dir.join(run_dir::MANIFEST), Err(e)),
    }
}

/// The folders of `dir` that hold a run, sorted.
fn run_folders(dir: &Path) -> Vec<PathBuf> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.join(run_dir::MANIFEST).is_file())
        .collect();
    found.sort();
    found
}

/// `crossval/`: the plan, the probabilities (digest and values; each fold's checkpoint
/// still the one they were gathered from) and every fold run.
fn crossval(root: &Path, m: &RunManifest, v: &mut Verification) {
    let dir = root.join(oof::DIR);
    if !dir.is_dir() {
        return;
    }
    let plan = dir.join(oof::PLAN);
    if plan.exists() {
        let outcome = oof::read_plan(root).and_then(|p| match p {
            Some(p) if p.run_id != m.id() => {
                bail!("a cross-fitting of an earlier training of the run (run vog crossval --overwrite)")
            }
            _ => Ok(()),
        });
        v.add(plan, outcome);
    }
    let probs = dir.join(oof::PROBS_JSON);
    match oof::read(root, &m.id(), &m.dataset.fingerprint) {
        Ok(oof::State::Gathered(_, meta)) => {
            v.add(dir.join(oof::PROBS_CSV), Ok(()));
            if let Some(n) = meta.features.as_ref().map(|f| &f.neighbours) {
                for (name, want) in [
                    (oof::NEIGHBOURS_CSV, &n.neighbours_csv),
                    (oof::NEAR_DUPLICATES_CSV, &n.near_duplicates_csv),
                ] {
                    let path = dir.join(name);
                    let outcome = digest::verify(&path, want);
                    v.add(path, outcome);
                }
            }
            v.add(probs, folds_unchanged(&dir, &meta));
        }
        Ok(oof::State::Unfinished(why)) => v.notes.push(why),
        Ok(oof::State::None) => {}
        Err(e) => v.add(probs, Err(e)),
    }
    for fold in run_folders(&dir) {
        inner_run(&fold, v);
    }
}

/// Refuses probabilities whose fold models were trained again since they were gathered.
fn folds_unchanged(dir: &Path, meta: &oof::ProbsMeta) -> Result<()> {
    if meta.features.is_some() {
        // Fitted on features, no fold was trained: nothing to compare.
        return Ok(());
    }
    for f in &meta.fold_records {
        let path = dir.join(&f.checkpoint);
        if path.exists() && digest::of_file(&path)? != f.digest {
            bail!(
                "fold {} was trained again after the probabilities were gathered ('{}' differs); \
                 gather them again (vog crossval --run RUN --folds {} --gather)",
                f.fold,
                path.display(),
                meta.folds
            );
        }
    }
    Ok(())
}

/// `prune/`: the table (its accuracies those its retrainings recorded; its CSV and plot
/// what the table writes) and every retraining.
fn prune(root: &Path, v: &mut Verification) -> Result<()> {
    let dir = root.join(crate::prune::DIR);
    if !dir.is_dir() {
        return Ok(());
    }
    match PruneTable::read(root) {
        Ok(Some(t)) => {
            v.add(dir.join("prune.json"), accuracies_recorded(&dir, &t));
            for (name, bytes) in t.files()? {
                let path = dir.join(name);
                let outcome = same_bytes(&path, &bytes, "its table prune.json", "table");
                v.add(path, outcome);
            }
        }
        Ok(None) => {}
        Err(e) => v.add(dir.join("prune.json"), Err(e)),
    }
    for run in run_folders(&dir) {
        inner_run(&run, v);
    }
    Ok(())
}

/// Refuses a table whose accuracies are not those of the retrainings it names.
fn accuracies_recorded(dir: &Path, t: &PruneTable) -> Result<()> {
    for row in &t.rows {
        for (folder, &accuracy) in row.runs.iter().zip(&row.accuracies) {
            let m = RunDir::open(&dir.join(folder))?.read_manifest()?;
            let recorded = m.epochs.last().and_then(|e| e.test_accuracy);
            if recorded != Some(accuracy) {
                bail!(
                    "the table gives '{}' {:.4} where its retraining '{folder}' recorded {}",
                    row.label(),
                    accuracy,
                    recorded.map_or("no test accuracy".into(), |a| format!("{a:.4}"))
                );
            }
        }
    }
    Ok(())
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
    ScoresFile::read(csv)?.check_of_run(root, &crate::scoring::run_state(root, m)?)
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
