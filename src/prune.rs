//! `vog prune`: whether acting on a ranking helps, measured (the data-pruning experiment of
//! Paul et al. 2021 and Sorscher et al. 2022). For each score column and fraction f, the
//! run's recipe is trained again without the f of its training examples the score calls
//! hardest (its declared direction: high VoG, high loss, low `oof_prob`...), and without a
//! random f of the same size, and without nothing, once per seed; each retraining is an
//! ordinary run under `RUN/prune/` (resumable, skipped when done), its labels those the run
//! trained with. The table gives the test accuracy of each (mean and 95% t-interval over
//! seeds) and the paired difference to random removal and to no removal.
use crate::config::TrainConfig;
use crate::data::prepare::{self, PreparedData};
use crate::data::SplitKind;
use crate::eval::stats;
use crate::origin::Origins;
use crate::progress::Reporter;
use crate::rng;
use crate::run_dir::{RunDir, RunManifest, MANIFEST};
use crate::scores::{scored, Companion, ScoresFile};
use crate::{atomic_file, train};
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use serde::Serialize;
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
}

/// A mean over seeds with its 95% t-interval (`None` with one seed).
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Estimate {
    pub mean: f64,
    pub ci_low: Option<f64>,
    pub ci_high: Option<f64>,
}

/// One line of the table: test accuracy after removing `fraction` by `removal`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PruneRow {
    /// A score column, `random`, or `none`.
    pub removal: String,
    pub fraction: f64,
    pub removed: usize,
    /// Test accuracy per seed, in seed order.
    pub accuracies: Vec<f64>,
    pub accuracy: Estimate,
    /// Accuracy minus random removal's of the same size, paired by seed.
    pub vs_random: Option<Estimate>,
    /// Accuracy minus no removal's, paired by seed.
    pub vs_none: Option<Estimate>,
}

/// What `vog prune` measured.
#[derive(Debug, Clone, Serialize)]
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
        Ok(())
    }
}

/// Runs (or resumes) the pruning experiment and writes `RUN/prune/prune.{json,csv}` and
/// its plot.
pub fn run(req: &PruneRequest, reporter: &dyn Reporter) -> Result<PruneTable> {
    req.check()?;
    let main = RunDir::open_shared(&req.run)?;
    let m = main.read_manifest()?;
    if !m.complete || m.dataset.test_examples == 0 {
        bail!(
            "run '{}' must have finished training and have a test split",
            req.run.display()
        );
    }
    let origins = Origins::file(&main.path(MANIFEST), "config.");
    let cfg = &m.config;
    let prepared = prepare::prepare(&cfg.dataset, &cfg.selection(), cfg.hyper.seed, &origins)?;
    let orders = orders(req, &m, &prepared)?;
    let n = prepared.data.train.len();
    let dir = req.run.join("prune");
    let mut acc: HashMap<(String, usize), Vec<f64>> = HashMap::new();
    for s in 0..req.seeds {
        let seed = cfg.hyper.seed + s as u64;
        let none = accuracy(
            &dir.join(format!("none-seed{s}")),
            cfg,
            &prepared,
            &[],
            seed,
            reporter,
        )?;
        acc.entry(("none".into(), 0)).or_default().push(none);
        for (fi, &f) in req.fractions.iter().enumerate() {
            let k = ((f * n as f64).round() as usize).clamp(1, n - 1);
            let mut random: Vec<usize> = (0..n).collect();
            random.shuffle(&mut rng::stream(seed, &format!("prune-random-{fi}")));
            let mut settings = vec![("random".to_string(), random[..k].to_vec())];
            settings.extend(orders.iter().map(|(c, o)| (c.clone(), o[..k].to_vec())));
            for (name, out) in settings {
                let root = dir.join(format!(
                    "{}-f{fi}-seed{s}",
                    crate::atomic_file::safe_file_name(&name)
                ));
                let a = accuracy(&root, cfg, &prepared, &out, seed, reporter)?;
                acc.entry((name, fi)).or_default().push(a);
            }
        }
    }
    let table = PruneTable {
        run: req.run.clone(),
        scores: req.scores.clone(),
        training_examples: n,
        seeds: req.seeds,
        rows: rows(req, &acc, n),
    };
    write(&dir, &table)?;
    Ok(table)
}

/// Per column, the training positions from hardest to easiest by the score's direction
/// (ties by id).
fn orders(
    req: &PruneRequest,
    m: &RunManifest,
    prepared: &PreparedData,
) -> Result<Vec<(String, Vec<usize>)>> {
    let file = ScoresFile::read(&req.scores)?;
    let run = std::path::absolute(&req.run).unwrap_or_else(|_| req.run.clone());
    if file.meta.run.as_ref() != Some(&run)
        || file.meta.dataset_fingerprint != m.dataset.fingerprint
    {
        bail!(
            "'{}' holds scores of {}, not of run '{}'",
            req.scores.display(),
            file.meta.source(),
            req.run.display()
        );
    }
    let at: HashMap<&str, usize> = prepared
        .data
        .train
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    req.columns
        .iter()
        .map(|c| {
            let mut entries: Vec<_> = scored(&file, c)?
                .into_iter()
                .filter(|e| e.row.split == SplitKind::Train)
                .collect();
            if entries.len() != at.len() {
                bail!("'{}' scores {} of the run's {} training examples in '{c}': score the train split", req.scores.display(), entries.len(), at.len());
            }
            let harder = higher_is_harder(c);
            entries.sort_by(|a, b| {
                let by = if harder { b.score.total_cmp(&a.score) } else { a.score.total_cmp(&b.score) };
                by.then_with(|| a.row.id.cmp(&b.row.id))
            });
            let order = entries
                .iter()
                .map(|e| at.get(e.row.id.as_str()).copied().with_context(|| format!("'{}' is not a training example of the run", e.row.id)))
                .collect::<Result<Vec<_>>>()?;
            Ok((c.clone(), order))
        })
        .collect()
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

/// The last test accuracy of the run's recipe without `out`, trained in `root`.
fn accuracy(
    root: &Path,
    base: &TrainConfig,
    prepared: &PreparedData,
    out: &[usize],
    seed: u64,
    reporter: &dyn Reporter,
) -> Result<f64> {
    let cfg = train::derived_config(root, base, prepared, out, seed)?;
    let m = train::ensure(root, &cfg, reporter)?;
    m.epochs
        .last()
        .and_then(|e| e.test_accuracy)
        .context("the retraining has no test accuracy")
}

/// Mean and 95% t-interval of `v`.
fn estimate(v: &[f64]) -> Estimate {
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
        ci_low: Some(mean - half),
        ci_high: Some(mean + half),
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

fn rows(req: &PruneRequest, acc: &HashMap<(String, usize), Vec<f64>>, n: usize) -> Vec<PruneRow> {
    let none = &acc[&("none".to_string(), 0)];
    let diff =
        |a: &[f64], b: &[f64]| estimate(&a.iter().zip(b).map(|(x, y)| x - y).collect::<Vec<_>>());
    let mut out = vec![PruneRow {
        removal: "none".into(),
        fraction: 0.0,
        removed: 0,
        accuracies: none.clone(),
        accuracy: estimate(none),
        vs_random: None,
        vs_none: None,
    }];
    for (fi, &f) in req.fractions.iter().enumerate() {
        let random = &acc[&("random".to_string(), fi)];
        let names = std::iter::once("random".to_string()).chain(req.columns.iter().cloned());
        for name in names {
            let a = &acc[&(name.clone(), fi)];
            out.push(PruneRow {
                vs_random: (name != "random").then(|| diff(a, random)),
                vs_none: Some(diff(a, none)),
                removal: name,
                fraction: f,
                removed: ((f * n as f64).round() as usize).clamp(1, n - 1),
                accuracies: a.clone(),
                accuracy: estimate(a),
            });
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
    atomic_file::write_bytes(&dir.join("prune.json"), &serde_json::to_vec_pretty(t)?)?;
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "removal",
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
            r.fraction.to_string(),
            r.removed.to_string(),
        ];
        rec.extend(fmt(&Some(r.accuracy)));
        rec.extend(fmt(&r.vs_random));
        rec.extend(fmt(&r.vs_none));
        csv.write_record(&rec)?;
    }
    atomic_file::write_bytes(&dir.join("prune.csv"), &csv.into_inner()?)?;
    let mut series: Vec<(String, Vec<(f64, f64)>)> = Vec::new();
    for r in &t.rows {
        match series.iter_mut().find(|(n, _)| *n == r.removal) {
            Some((_, pts)) => pts.push((r.fraction, r.accuracy.mean)),
            None => series.push((r.removal.clone(), vec![(r.fraction, r.accuracy.mean)])),
        }
    }
    let base = series.iter().find(|(n, _)| n == "none").map(|(_, p)| p[0]);
    for (name, pts) in &mut series {
        if name != "none" {
            pts.extend(base);
            pts.sort_by(|a, b| a.0.total_cmp(&b.0));
        }
    }
    series.retain(|(n, _)| n != "none");
    let svg = crate::eval::plots::fraction_lines(
        "Test accuracy after removing the hardest fraction",
        &series,
    )?;
    crate::eval::plots::save(dir, "prune", &svg)?;
    Ok(())
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
        let e = estimate(&[0.5, 0.6, 0.7]);
        assert!((e.mean - 0.6).abs() < 1e-12);
        // sd 0.1, n 3: half-width 4.303 * 0.1 / sqrt(3).
        let half = 4.302_652_7 * 0.1 / 3f64.sqrt();
        assert!((e.ci_high.unwrap() - 0.6 - half).abs() < 1e-6);
        assert_eq!(estimate(&[0.4]).ci_low, None);
    }

    #[test]
    fn directions() {
        assert!(higher_is_harder("vog") && higher_is_harder("vog_raw_logprob"));
        assert!(higher_is_harder("loss") && higher_is_harder("label_issue"));
        assert!(!higher_is_harder("aum") && !higher_is_harder("oof_margin"));
    }
}
