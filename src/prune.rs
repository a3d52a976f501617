//! `vog prune`: whether acting on a ranking helps, measured (the data-pruning experiment of
//! Paul et al. 2021 and Sorscher et al. 2022). For each score column and fraction f, the
//! run's recipe is trained again without the f of its training examples the score calls
//! hardest (its declared direction: high VoG, high loss, low `oof_prob`...), and without a
//! random f of the same size, and without nothing, once per seed; each retraining is an
//! ordinary run under `RUN/prune/` (resumable, skipped when done), its labels those the run
//! trained with. The table gives the test accuracy of each (mean and 95% t-interval over
//! seeds) and the paired difference to random removal and to no removal.
use crate::atomic_file;
use crate::config::TrainConfig;
use crate::data::prepare::{self, PreparedData};
use crate::data::SplitKind;
use crate::eval::plots::Estimated;
use crate::eval::stats;
use crate::export::{Table, TableColumn};
use crate::origin::Origins;
use crate::progress::Reporter;
use crate::rng;
use crate::run_dir::{RunDir, RunManifest, MANIFEST};
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
    Table(PruneTable),
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

/// A mean over seeds with its 95% t-interval (`None` with one seed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Estimate {
    pub mean: f64,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

/// One line of the table: test accuracy after acting on the top `fraction` by `removal`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PruneRow {
    /// A score column, `random`, or `none`.
    pub removal: String,
    /// Left out or relabelled (tables of before relabelling existed say nothing: removed).
    #[serde(default)]
    pub action: Action,
    pub fraction: f64,
    pub removed: usize,
    /// Test accuracy per seed, in seed order.
    pub accuracies: Vec<f64>,
    /// The retraining of each seed: its folder under `RUN/prune/` (tables from before it
    /// name none).
    #[serde(default)]
    pub runs: Vec<String>,
    pub accuracy: Estimate,
    /// Accuracy minus that of the same action on a random set of the same size, paired by
    /// seed.
    pub vs_random: Option<Estimate>,
    /// Accuracy minus no removal's, paired by seed.
    pub vs_none: Option<Estimate>,
}

/// What `vog prune` measured: `RUN/prune/prune.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PruneTable {
    pub run: PathBuf,
    pub scores: PathBuf,
    pub training_examples: usize,
    pub seeds: usize,
    pub rows: Vec<PruneRow>,
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
    };
    write(&req.run.join(DIR), &table)?;
    Ok(Outcome::Table(table))
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
            folder: format!("none-seed{s}"),
            config,
        });
        for (fi, &f) in req.fractions.iter().enumerate() {
            for (action, name, picked) in plan.settings(fi, removed(f, n), seed) {
                let config = retraining(base, prepared, (action, &picked), plan, seed)
                    .with_context(|| {
                        format!(
                            "--fractions {f}: {} the top {f} by '{name}' (seed {s})",
                            action.name()
                        )
                    })?;
                let folder = format!(
                    "{}{}-f{f}-seed{s}",
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
    let origins = Origins::file(&main.path(MANIFEST), "config.");
    let cfg = &m.config;
    let prepared = prepare::prepare(&cfg.dataset, &cfg.selection(), cfg.hyper.seed, &origins)?;
    Ok((m, prepared))
}

/// Test accuracies and retraining folders, per seed, of each (action, removal, fraction as
/// its bits).
type Accuracies = HashMap<(Action, String, u64), (Vec<f64>, Vec<String>)>;

/// How many of `n` examples a fraction `f` acts on: at least one, never all.
fn removed(f: f64, n: usize) -> usize {
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

/// The training positions by column `c` of `file`, hardest first by the score's direction
/// (ties by id); every training example of the run must be scored.
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
    let ranked = top_k(
        &entries,
        entries.len(),
        !higher_is_harder(c),
        &Default::default(),
    );
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
fn higher_is_harder(column: &str) -> bool {
    Companion::CHECKPOINT
        .iter()
        .chain(&Companion::DYNAMICS)
        .chain(&Companion::OUT_OF_SAMPLE)
        .find(|c| c.name() == column)
        .is_none_or(|c| c.higher_is_harder())
}

/// Accuracies lie in [0, 1], their differences in [-1, 1]: a t-interval from two or three
/// seeds can reach past either end, and an accuracy above 100% is not a figure to show.
const ACCURACY: (f64, f64) = (0.0, 1.0);
const DIFFERENCE: (f64, f64) = (-1.0, 1.0);

/// Mean and 95% t-interval of `v`, the interval clipped to `range`.
fn estimate(v: &[f64], range: (f64, f64)) -> Estimate {
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    if v.len() < 2 {
        return Estimate {
            mean,
            ci_low: None,
            ci_high: None,
        };
    }
    let sd = (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    let half = t_quantile(n - 1.0) * sd / n.sqrt();
    Estimate {
        mean,
        ci_low: Some((mean - half).max(range.0)),
        ci_high: Some((mean + half).min(range.1)),
    }
}

/// The t with P(|T| > t) = 0.05 for `df` degrees of freedom, by bisection on
/// I_{df/(df+t^2)}(df/2, 1/2).
fn t_quantile(df: f64) -> f64 {
    let p = |t: f64| stats::incomplete_beta(df / 2.0, 0.5, df / (df + t * t));
    let (mut lo, mut hi) = (0.0, 1000.0);
    for _ in 0..200 {
        let mid = (lo + hi) / 2.0;
        if p(mid) > 0.05 {
            lo = mid
        } else {
            hi = mid
        }
    }
    (lo + hi) / 2.0
}

fn rows(req: &PruneRequest, acc: &Accuracies, n: usize) -> Vec<PruneRow> {
    let (none, none_runs) = &acc[&(Action::Remove, "none".to_string(), 0f64.to_bits())];
    let diff = |a: &[f64], b: &[f64]| {
        estimate(
            &a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>(),
            DIFFERENCE,
        )
    };
    let mut out = vec![PruneRow {
        removal: "none".into(),
        action: Action::Remove,
        fraction: 0.0,
        removed: 0,
        accuracies: none.clone(),
        runs: none_runs.clone(),
        accuracy: estimate(none, ACCURACY),
        vs_random: None,
        vs_none: None,
    }];
    let actions: &[Action] = match req.relabel_suggested {
        true => &[Action::Remove, Action::Relabel],
        false => &[Action::Remove],
    };
    for &f in &req.fractions {
        for &action in actions {
            let (random, _) = &acc[&(action, "random".to_string(), f.to_bits())];
            let names = std::iter::once("random".to_string()).chain(req.columns.iter().cloned());
            for name in names {
                let (a, runs) = &acc[&(action, name.clone(), f.to_bits())];
                out.push(PruneRow {
                    vs_random: (name != "random").then(|| diff(a, random)),
                    vs_none: Some(diff(a, none)),
                    removal: name,
                    action,
                    fraction: f,
                    removed: removed(f, n),
                    accuracies: a.clone(),
                    runs: runs.clone(),
                    accuracy: estimate(a, ACCURACY),
                });
            }
        }
    }
    out
}

fn fmt(e: &Option<Estimate>) -> [String; 3] {
    let f = |v: Option<f64>| v.map_or(String::new(), |v| format!("{v:.4}"));
    match e {
        Some(e) => [format!("{:.4}", e.mean), f(e.ci_low), f(e.ci_high)],
        None => [String::new(), String::new(), String::new()],
    }
}

/// `prune.json`, `prune.csv` and `prune.svg`/`.png` into `dir`.
fn write(dir: &Path, t: &PruneTable) -> Result<()> {
    for (name, bytes) in t.files()? {
        atomic_file::write_bytes(&dir.join(name), &bytes)?;
    }
    Ok(())
}

/// The table as CSV.
fn table_csv(t: &PruneTable) -> Result<Vec<u8>> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "removal",
        "action",
        "fraction",
        "removed",
        "accuracy",
        "ci_low",
        "ci_high",
        "vs_random",
        "vs_random_low",
        "vs_random_high",
        "vs_none",
        "vs_none_low",
        "vs_none_high",
    ])?;
    for r in &t.rows {
        let mut rec = vec![
            r.removal.clone(),
            r.action.name().to_string(),
            r.fraction.to_string(),
            r.removed.to_string(),
        ];
        rec.extend(fmt(&Some(r.accuracy)));
        rec.extend(fmt(&r.vs_random));
        rec.extend(fmt(&r.vs_none));
        csv.write_record(&rec)?;
    }
    Ok(csv.into_inner()?)
}

impl PruneTable {
    /// The files `vog prune` writes of the table, by name, as their bytes: the same table
    /// gives the same bytes, so `vog verify` checks them by writing them again.
    pub fn files(&self) -> Result<Vec<(&'static str, Vec<u8>)>> {
        let svg = self.svg()?;
        let png = crate::eval::plots::svg_to_png(&svg)?;
        Ok(vec![
            ("prune.json", serde_json::to_vec_pretty(self)?),
            ("prune.csv", table_csv(self)?),
            ("prune.svg", svg.into_bytes()),
            ("prune.png", png),
        ])
    }

    /// Accuracy against fraction with 95% intervals, one line per setting, each starting
    /// at no removal.
    pub fn svg(&self) -> Result<String> {
        let point = |r: &PruneRow| Estimated {
            x: r.fraction,
            mean: r.accuracy.mean,
            interval: r.accuracy.ci_low.zip(r.accuracy.ci_high),
        };
        let mut series: Vec<(String, Vec<Estimated>)> = Vec::new();
        for r in self.rows.iter().filter(|r| r.removal != "none") {
            let name = r.label();
            match series.iter_mut().find(|(n, _)| *n == name) {
                Some((_, pts)) => pts.push(point(r)),
                None => series.push((name, vec![point(r)])),
            }
        }
        // Every line starts at no removal, whose interval is drawn once.
        let base = self.rows.iter().find(|r| r.removal == "none").map(point);
        for (i, (_, pts)) in series.iter_mut().enumerate() {
            pts.extend(base.map(|b| match i {
                0 => b,
                _ => Estimated {
                    interval: None,
                    ..b
                },
            }));
            pts.sort_by(|a, b| a.x.total_cmp(&b.x));
        }
        crate::eval::plots::fraction_lines(
            "Test accuracy after acting on the hardest fraction (95% intervals over seeds)",
            &series,
        )
    }

    /// Reads `RUN/prune/prune.json`, if `vog prune` wrote one.
    pub fn read(run: &Path) -> Result<Option<Self>> {
        let path = run.join(DIR).join("prune.json");
        if !path.is_file() {
            return Ok(None);
        }
        let bytes =
            std::fs::read(&path).with_context(|| format!("cannot read '{}'", path.display()))?;
        serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("invalid prune table '{}'", path.display()))
    }

    /// The table as the terminal and the report show it: accuracy in %, differences in
    /// points, each with its 95% interval, and what the difference to random says.
    pub fn table(&self) -> Table {
        let columns = vec![
            TableColumn::text("removal"),
            TableColumn::number("fraction"),
            TableColumn::number("examples"),
            TableColumn::number("test accuracy % [95% CI]"),
            TableColumn::number("vs random (points)"),
            TableColumn::number("vs none (points)"),
            TableColumn::text("verdict"),
        ];
        let rows = self
            .rows
            .iter()
            .map(|r| {
                vec![
                    r.label(),
                    r.fraction.to_string(),
                    r.removed.to_string(),
                    show(&Some(r.accuracy), false),
                    show(&r.vs_random, true),
                    show(&r.vs_none, true),
                    r.verdict().to_string(),
                ]
            })
            .collect();
        Table { columns, rows }
    }
}

/// `56.20 [40.10, 72.30]` (or signed, for differences), `-` for nothing.
fn show(e: &Option<Estimate>, signed: bool) -> String {
    let f = |v: f64| match signed {
        true => format!("{:+.2}", 100.0 * v),
        false => format!("{:.2}", 100.0 * v),
    };
    match e {
        None => "-".into(),
        Some(e) => match (e.ci_low, e.ci_high) {
            (Some(lo), Some(hi)) => format!("{} [{}, {}]", f(e.mean), f(lo), f(hi)),
            _ => f(e.mean),
        },
    }
}

impl PruneRow {
    /// What the paired difference to random says: only an interval clear of zero is
    /// evidence either way.
    pub fn verdict(&self) -> &'static str {
        match self.vs_random {
            None => "",
            Some(Estimate {
                ci_low: Some(lo), ..
            }) if lo > 0.0 => "better than random",
            Some(Estimate {
                ci_high: Some(hi), ..
            }) if hi < 0.0 => "worse than random",
            Some(Estimate { ci_low: None, .. }) => "one seed: no interval",
            Some(_) => "no evidence",
        }
    }

    /// The setting as a reader names it: `vog`, `random`, `vog relabelled`.
    pub fn label(&self) -> String {
        match self.action {
            Action::Remove => self.removal.clone(),
            Action::Relabel => format!("{} relabelled", self.removal),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn t_intervals() {
        // Two-sided 95% quantiles of Student's t.
        for (df, t) in [(1.0, 12.706), (2.0, 4.303), (9.0, 2.262), (100.0, 1.984)] {
            assert!(
                (t_quantile(df) - t).abs() < 1e-3,
                "df {df}: {}",
                t_quantile(df)
            );
        }
        let e = estimate(&[0.5, 0.6, 0.7], ACCURACY);
        assert!((e.mean - 0.6).abs() < 1e-12);
        // sd 0.1, n 3: half-width 4.303 * 0.1 / sqrt(3).
        let half = 4.302_652_7 * 0.1 / 3f64.sqrt();
        assert!((e.ci_high.unwrap() - 0.6 - half).abs() < 1e-6);
        assert_eq!(estimate(&[0.4], ACCURACY).ci_low, None);
        // Two seeds (t = 12.706) near the ends, as `vog demo --prune` met them: 90.8%
        // [8.2%, 173.4%] unclipped.
        let e = estimate(&[0.8433, 0.9733], ACCURACY);
        assert_eq!((e.ci_low.unwrap() > 0.08, e.ci_high), (true, Some(1.0)));
        // sd 0.01 * sqrt(2), n 2: half-width 12.706 * 0.01.
        let d = estimate(&[-0.95, -0.93], DIFFERENCE);
        assert_eq!(d.ci_low, Some(-1.0));
        assert!((d.ci_high.unwrap() - (-0.94 + 0.127_06)).abs() < 1e-4);
    }

    #[test]
    fn directions() {
        assert!(higher_is_harder("vog") && higher_is_harder("vog_raw_logprob"));
        assert!(higher_is_harder("loss") && higher_is_harder("label_issue"));
        assert!(!higher_is_harder("aum") && !higher_is_harder("oof_margin"));
    }
}
