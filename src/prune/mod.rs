//! `vog prune`: whether acting on a ranking helps, measured (the data-pruning experiment of
//! Paul et al. 2021 and Sorscher et al. 2022). For each score column and fraction f, the
//! run's recipe is trained again without the f of its training examples the score calls
//! hardest (its declared direction: high VoG, high loss, low `oof_prob`...), and without a
//! random f of the same size, and without nothing, once per seed; each retraining is an
//! ordinary run under `RUN/prune/` (resumable, skipped when done), its labels those the run
//! trained with. The table gives the test accuracy of each (mean and 95% t-interval over
//! seeds) and the paired difference to random removal and to no removal.
mod table;

pub use table::PruneTable;
use table::{rows, write};

use crate::atomic_file;
use crate::config::TrainConfig;
use crate::data::prepare::PreparedData;
use crate::data::SplitKind;
use crate::progress::Reporter;
use crate::rng;
use crate::run_dir::{RunDir, RunManifest};
use crate::scores::{scored, top_k, Companion, ScoresFile};
use crate::train::{self, Edits};
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// A validated `vog prune` request.
#[derive(Debug, Clone)]
pub struct PruneRequest {
    pub run: PathBuf,
    /// A scores file of the run's training split.
    pub scores: PathBuf,
    /// The score columns compared.
    pub columns: Vec<String>,
    /// Each in (0, 1).
    pub fractions: Vec<f64>,
    /// Trainings per setting, from the run's seed on.
    pub seeds: usize,
    /// Also train with each top fraction relabelled to its `suggested_label` (and a random
    /// fraction likewise), beside removing it.
    pub relabel_suggested: bool,
    /// Only the retrainings of task I of N (every N-th from the I-th), no table: one task
    /// of a Slurm array or one GPU; a call without it gathers the table.
    pub task: Option<Task>,
}

/// Task I of N of a pruning experiment split over N processes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Task {
    pub index: usize,
    pub count: usize,
}

impl std::str::FromStr for Task {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let (index, count) = crate::scoring::models::index_of(s, "--task")?;
        Ok(Task { index, count })
    }
}

/// What a call did: the table, or (with a task) how many retrainings were its own.
#[derive(Debug)]
pub enum Outcome {
    Table(Box<PruneTable>),
    Task { trained: usize, of: usize },
}

/// What a setting does with the examples it picks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Action {
    /// Leaves them out of training.
    #[default]
    Remove,
    /// Trains them with their out-of-sample suggested label.
    Relabel,
}

impl Action {
    fn name(self) -> &'static str {
        match self {
            Action::Remove => "remove",
            Action::Relabel => "relabel",
        }
    }

    /// What the folders of its retrainings under `RUN/prune/` start with.
    fn folder_prefix(self) -> &'static str {
        match self {
            Action::Remove => "",
            Action::Relabel => "relabel-",
        }
    }
}

impl PruneRequest {
    fn check(&self) -> Result<()> {
        if self.columns.is_empty() || self.seeds == 0 {
            bail!("vog prune needs at least one --column and --seeds of at least 1");
        }
        if let Some(f) = self.fractions.iter().find(|f| !(**f > 0.0 && **f < 1.0)) {
            bail!("--fractions must lie strictly between 0 and 1, not {f}");
        }
        if self.fractions.is_empty() {
            bail!("--fractions needs at least one fraction");
        }
        crate::origin::refuse_repeats("--column", &self.columns)?;
        crate::origin::refuse_repeats("--fractions", &self.fractions)
    }
}

/// Runs (or resumes) the pruning experiment and writes `RUN/prune/prune.{json,csv}` and
/// its plot; with a task, only that task's retrainings. Every retraining's configuration
/// is made and checked before the first one trains.
pub fn run(req: &PruneRequest, reporter: &dyn Reporter) -> Result<Outcome> {
    req.check()?;
    let (m, prepared) = open_run(&req.run)?;
    let plan = Plan::new(req, &m, &prepared)?;
    let jobs = jobs(req, &m.config, &plan, &prepared)?;
    let mut acc: Accuracies = HashMap::new();
    let mut turn = Turns::new(req.task);
    for job in &jobs {
        if !turn.mine() {
            continue;
        }
        let root = req.run.join(DIR).join(&job.folder);
        let trained = train::ensure(&root, &job.config, reporter)?;
        let accuracy = trained
            .epochs
            .last()
            .and_then(|e| e.test_accuracy)
            .context("the retraining has no test accuracy")?;
        let cell = acc.entry(job.key.clone()).or_default();
        cell.0.push(accuracy);
        cell.1.push(job.folder.clone());
    }
    if req.task.is_some() {
        return Ok(Outcome::Task {
            trained: turn.taken,
            of: turn.seen,
        });
    }
    let table = PruneTable {
        run: req.run.clone(),
        scores: req.scores.clone(),
        training_examples: prepared.data.train.len(),
        seeds: req.seeds,
        rows: rows(req, &acc, prepared.data.train.len()),
        suggestions: match req.relabel_suggested {
            true => crate::scores::read_meta(&req.scores)?.out_of_sample_strength,
            false => None,
        },
    };
    write(&req.run.join(DIR), &table)?;
    Ok(Outcome::Table(Box::new(table)))
}

/// The folder of the retrainings inside the run.
pub const DIR: &str = "prune";

/// One retraining: its setting, folder (named by the setting's values, so a later call with
/// other fractions never reuses a folder for another setting) and configuration.
struct Job {
    key: (Action, String, u64),
    folder: String,
    config: TrainConfig,
}

/// Every retraining of `req`, in the order tasks deal them out: per seed, no removal,
/// then per fraction random and each column, removed then relabelled. A setting that
/// cannot train (a class left without examples) is refused naming the option.
fn jobs(
    req: &PruneRequest,
    base: &TrainConfig,
    plan: &Plan,
    prepared: &PreparedData,
) -> Result<Vec<Job>> {
    let n = prepared.data.train.len();
    let mut jobs = Vec::new();
    for s in 0..req.seeds {
        let seed = base.hyper.seed + s as u64;
        let config = train::derived_config(base, prepared, Edits::default(), seed)?;
        jobs.push(Job {
            key: (Action::Remove, "none".into(), 0f64.to_bits()),
            folder: format!("none-seed{seed}"),
            config,
        });
        for (fi, &f) in req.fractions.iter().enumerate() {
            for (action, name, picked) in plan.settings(fi, removed(f, n), seed) {
                let config = retraining(base, prepared, (action, &picked), plan, seed)
                    .with_context(|| {
                        format!(
                            "--fractions {f}: {} the top {f} by '{name}' (seed {seed})",
                            action.name()
                        )
                    })?;
                let folder = format!(
                    "{}{}-f{f}-seed{seed}",
                    action.folder_prefix(),
                    atomic_file::safe_file_name(&name)
                );
                jobs.push(Job {
                    key: (action, name, f.to_bits()),
                    folder,
                    config,
                });
            }
        }
    }
    Ok(jobs)
}

/// The recipe of `base` after `action` on the training examples at `picked` (relabelled to
/// the plan's suggested labels).
fn retraining(
    base: &TrainConfig,
    prepared: &PreparedData,
    (action, picked): (Action, &[usize]),
    plan: &Plan,
    seed: u64,
) -> Result<TrainConfig> {
    let relabel: Vec<(usize, i64)> = match (action, plan.suggested.as_deref()) {
        (Action::Relabel, Some(to)) => picked.iter().map(|&i| (i, to[i])).collect(),
        _ => Vec::new(),
    };
    let edits = match action {
        Action::Remove => Edits {
            leave_out: picked,
            ..Edits::default()
        },
        Action::Relabel => Edits {
            relabel: &relabel,
            ..Edits::default()
        },
    };
    train::derived_config(base, prepared, edits, seed)
}

/// Deals the retrainings out to the tasks, round robin in the order they are met.
struct Turns {
    task: Option<Task>,
    seen: usize,
    taken: usize,
}

impl Turns {
    fn new(task: Option<Task>) -> Self {
        Turns {
            task,
            seen: 0,
            taken: 0,
        }
    }

    /// Whether the next retraining is this process's.
    fn mine(&mut self) -> bool {
        let mine = self.task.is_none_or(|t| self.seen % t.count == t.index);
        self.seen += 1;
        self.taken += usize::from(mine);
        mine
    }
}

/// The finished run at `run` (it must have a test split) and its data as it trained.
fn open_run(run: &Path) -> Result<(RunManifest, PreparedData)> {
    let main = RunDir::open_shared(run)?;
    let m = main.read_manifest()?;
    if !m.complete || m.dataset.test_examples == 0 {
        bail!(
            "run '{}' must have finished training and have a test split",
            run.display()
        );
    }
    crate::train::check_derivable(&m.config)?;
    let prepared = main.prepare_data(&m)?;
    Ok((m, prepared))
}

/// Test accuracies and retraining folders, per seed, of each (action, removal, fraction as
/// its bits).
type Accuracies = HashMap<(Action, String, u64), (Vec<f64>, Vec<String>)>;

/// How many of `n` examples a fraction `f` acts on: at least one, never all.
pub(super) fn removed(f: f64, n: usize) -> usize {
    ((f * n as f64).round() as usize).clamp(1, n - 1)
}

/// The orderings compared, and the suggested labels when relabelling.
struct Plan {
    /// Per column, training positions from hardest to easiest.
    orders: Vec<(String, Vec<usize>)>,
    /// By training position, where `--relabel-suggested` asks for them.
    suggested: Option<Vec<i64>>,
}

impl Plan {
    fn new(req: &PruneRequest, m: &RunManifest, prepared: &PreparedData) -> Result<Self> {
        let file = ScoresFile::read(&req.scores)?;
        file.check_of_run(&req.run, &crate::scoring::run_state(&req.run, m)?)?;
        let at: HashMap<&str, usize> = prepared
            .data
            .train
            .ids
            .iter()
            .enumerate()
            .map(|(i, id)| (id.as_str(), i))
            .collect();
        let orders = req
            .columns
            .iter()
            .map(|c| Ok((c.clone(), order(&file, c, &at)?)))
            .collect::<Result<_>>()?;
        let suggested = req
            .relabel_suggested
            .then(|| suggestions(&file, &req.scores, &at))
            .transpose()?;
        Ok(Plan { orders, suggested })
    }

    /// (action, removal, positions) of every setting at fraction index `fi` of size `k`:
    /// random, then each column; removed, then relabelled where asked.
    fn settings(&self, fi: usize, k: usize, seed: u64) -> Vec<(Action, String, Vec<usize>)> {
        let n = self.orders.first().map_or(0, |(_, o)| o.len());
        let mut random: Vec<usize> = (0..n).collect();
        random.shuffle(&mut rng::stream(seed, &format!("prune-random-{fi}")));
        let picks: Vec<(String, Vec<usize>)> = std::iter::once(("random".to_string(), random))
            .chain(self.orders.iter().cloned())
            .map(|(name, o)| (name, o[..k].to_vec()))
            .collect();
        let actions: &[Action] = match self.suggested {
            Some(_) => &[Action::Remove, Action::Relabel],
            None => &[Action::Remove],
        };
        actions
            .iter()
            .flat_map(|&a| {
                picks
                    .iter()
                    .map(move |(name, p)| (a, name.clone(), p.clone()))
            })
            .collect()
    }
}

/// The flag of confident learning, and the score that breaks its ties.
const LABEL_ISSUE: &str = "label_issue";
const OOF_PROB: &str = "oof_prob";

/// The training positions by column `c` of `file`, hardest first by the score's direction
/// (ties by id; `label_issue`'s ties by `oof_prob`, lowest first); every training example of
/// the run must be scored.
fn order(file: &ScoresFile, c: &str, at: &HashMap<&str, usize>) -> Result<Vec<usize>> {
    let entries: Vec<_> = scored(file, c)?
        .into_iter()
        .filter(|e| e.row.split == SplitKind::Train)
        .collect();
    if entries.len() != at.len() {
        bail!(
            "'{}' scores {} of the run's {} training examples in '{c}': score the train split",
            file.path.display(),
            entries.len(),
            at.len()
        );
    }
    // Hardest first by the score's claim, ties by id: the ordering of `vog rank`.
    let mut ranked = top_k(
        &entries,
        entries.len(),
        !higher_is_harder(c),
        &Default::default(),
    );
    if c == LABEL_ISSUE {
        // A true/false flag ties nearly everything: within each value, the examples whose
        // label the fold models believe least come first, then by id.
        let prob: HashMap<&str, f64> = scored(file, OOF_PROB)?
            .into_iter()
            .map(|e| (e.row.id.as_str(), e.score))
            .collect();
        let p =
            |r: &crate::scores::Ranked| prob.get(r.scored.row.id.as_str()).copied().unwrap_or(1.0);
        ranked.sort_by(|a, b| {
            (b.scored.score.total_cmp(&a.scored.score))
                .then(p(a).total_cmp(&p(b)))
                .then(a.scored.row.id.cmp(&b.scored.row.id))
        });
    }
    ranked
        .iter()
        .map(|r| {
            at.get(r.scored.row.id.as_str()).copied().with_context(|| {
                format!("'{}' is not a training example of the run", r.scored.row.id)
            })
        })
        .collect()
}

/// Each training position's `suggested_label` in `file` (which `vog crossval` gives).
fn suggestions(file: &ScoresFile, path: &Path, at: &HashMap<&str, usize>) -> Result<Vec<i64>> {
    let mut out = vec![0; at.len()];
    for r in file.rows.iter().filter(|r| r.split == SplitKind::Train) {
        let Some(l) = r.suggested_label else {
            bail!(
                "--relabel-suggested needs the suggested labels of `vog crossval`, which '{}' \
                 lacks: run vog crossval --run RUN, then vog score again",
                path.display()
            );
        };
        if let Some(&i) = at.get(r.id.as_str()) {
            out[i] = l;
        }
    }
    Ok(out)
}

/// A column's declared direction: a companion's own, VoG's the paper's (higher is harder).
pub(super) fn higher_is_harder(column: &str) -> bool {
    Companion::CHECKPOINT
        .iter()
        .chain(&Companion::DYNAMICS)
        .chain(&Companion::OUT_OF_SAMPLE)
        .find(|c| c.name() == column)
        .is_none_or(|c| c.higher_is_harder())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn directions() {
        assert!(higher_is_harder("vog") && higher_is_harder("vog_raw_logprob"));
        assert!(higher_is_harder("loss") && higher_is_harder("label_issue"));
        assert!(!higher_is_harder("aum") && !higher_is_harder("oof_margin"));
    }
}
