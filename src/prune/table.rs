//! The table of `vog prune`: the test accuracy of every setting (mean and 95% t-interval
//! over seeds, clipped to what an accuracy can be) and its paired difference to random
//! removal and to none; printed, written as JSON and CSV, and read back by `vog verify`
//! and the report.
use super::{removed, Accuracies, Action, PruneRequest, DIR};
use crate::atomic_file;
use crate::eval::plots::Estimated;
use crate::eval::stats;
use crate::export::{Table, TableColumn};
use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

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
    /// With `--relabel-suggested`: how strong the fold models that suggested the labels
    /// were (the scores sidecar's verdict).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suggestions: Option<crate::confident::Strength>,
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

pub(super) fn rows(req: &PruneRequest, acc: &Accuracies, n: usize) -> Vec<PruneRow> {
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
pub(super) fn write(dir: &Path, t: &PruneTable) -> Result<()> {
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
}
