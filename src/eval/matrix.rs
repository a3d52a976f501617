//! Scores by planted kinds (issue 35; after H-CAT, Seedat et al., ICLR 2024, but never
//! flipped): for each column (a planted kind, or a kind at one fraction across runs of
//! several seeds) and each score, the AUROC of the score for picking out the planted
//! examples, oriented by the score's own claim, with its 95% interval (one run) or the
//! lowest and highest AUROC over the runs (several), and the direction the evidence gives.
//! `vog eval` prints it, the report opens with it, `vog experiment` gathers it across runs.
use super::leaderboard::{Leaderboard, Question, Verdict};
use anyhow::Result;
use serde::Serialize;
use std::collections::BTreeSet;

/// One score on one column.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cell {
    /// The mean AUROC over the runs, oriented by the score's claim.
    pub auroc: f64,
    /// One run: DeLong's 95% interval; several: the lowest and highest AUROC.
    pub low: f64,
    pub high: f64,
    /// How many runs the column holds a value of this score from.
    pub runs: usize,
    /// The runs' common verdict; not enough evidence where they differ.
    pub verdict: Verdict,
    pub higher_is_harder: bool,
}

/// A matrix of scores by columns.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Matrix {
    /// Column headings, e.g. `zoom` or `zoom 5%`.
    pub columns: Vec<String>,
    /// Every score any column holds, sorted by name.
    pub scores: Vec<String>,
    /// `cells[score][column]`.
    pub cells: Vec<Vec<Option<Cell>>>,
    /// Planted examples per column (over all its runs), and its runs.
    pub positives: Vec<usize>,
    pub runs: Vec<usize>,
}

impl Matrix {
    /// The matrix of `columns`: each a heading and the leaderboards of its runs.
    pub fn new(columns: &[(String, Vec<&Leaderboard>)]) -> Self {
        let scores: BTreeSet<&str> = columns
            .iter()
            .flat_map(|(_, boards)| boards.iter().flat_map(|l| &l.entries))
            .filter(|e| e.score != "disagrees")
            .map(|e| e.score.as_str())
            .collect();
        let cells = scores
            .iter()
            .map(|s| columns.iter().map(|(_, b)| cell(b, s)).collect())
            .collect();
        Matrix {
            columns: columns.iter().map(|(c, _)| c.clone()).collect(),
            scores: scores.into_iter().map(String::from).collect(),
            cells,
            positives: columns
                .iter()
                .map(|(_, b)| b.iter().map(|l| l.positives).sum())
                .collect(),
            runs: columns.iter().map(|(_, b)| b.len()).collect(),
        }
    }

    /// The matrix of one evaluation's planted kinds; `None` without any.
    pub fn of_planted(leaderboards: &[Leaderboard]) -> Option<Self> {
        let columns: Vec<(String, Vec<&Leaderboard>)> = leaderboards
            .iter()
            .filter_map(|l| match l.question {
                Question::Planted(k) => Some((k.name().to_string(), vec![l])),
                _ => None,
            })
            .collect();
        (!columns.is_empty()).then(|| Matrix::new(&columns))
    }

    /// The score to use on column `c`: the highest AUROC among those whose evidence says
    /// they point the way they claim; `None` where no score does.
    pub fn best(&self, c: usize) -> Option<(&str, &Cell)> {
        self.scores
            .iter()
            .zip(&self.cells)
            .filter_map(|(s, row)| Some((s.as_str(), row[c].as_ref()?)))
            .filter(|(_, cell)| cell.verdict == claimed(cell.higher_is_harder))
            .max_by(|a, b| a.1.auroc.total_cmp(&b.1.auroc).then(b.0.cmp(a.0)))
    }

    /// As text: AUROC per cell, `+` where it points the way it claims, `-` the inverse,
    /// `?` where the evidence does not say; then the score to use per column.
    pub fn write_text(&self, w: &mut dyn std::io::Write) -> Result<()> {
        let wide = self
            .scores
            .iter()
            .map(String::len)
            .max()
            .unwrap_or(5)
            .max(5);
        let col = |c: &String| c.len().max(7);
        write!(w, "{:wide$}", "score")?;
        for c in &self.columns {
            write!(w, "  {c:>0$}", col(c))?;
        }
        writeln!(w)?;
        for (s, row) in self.scores.iter().zip(&self.cells) {
            write!(w, "{s:wide$}")?;
            for (c, cell) in self.columns.iter().zip(row) {
                let text = cell
                    .as_ref()
                    .map_or("n/a".into(), |x| format!("{:.3}{}", x.auroc, sign(x)));
                write!(w, "  {text:>0$}", col(c))?;
            }
            writeln!(w)?;
        }
        writeln!(
            w,
            "(AUROC by each score's claim; + as claimed, - the inverse, ? not enough evidence)"
        )?;
        for (c, name) in self.columns.iter().enumerate() {
            writeln!(w, "{name}: {}", self.advice(c))?;
        }
        Ok(())
    }

    /// What to use on column `c`, in words.
    pub fn advice(&self, c: usize) -> String {
        match self.best(c) {
            Some((s, cell)) => format!(
                "use {s} ({} first), AUROC {:.3} [{:.3}, {:.3}]{}",
                if cell.higher_is_harder {
                    "highest"
                } else {
                    "lowest"
                },
                cell.auroc,
                cell.low,
                cell.high,
                match cell.runs {
                    1 => String::new(),
                    n => format!(" (lowest and highest of {n} runs)"),
                }
            ),
            None => "no score finds these with evidence here".into(),
        }
    }

    /// As CSV: one row per score and column.
    pub fn to_csv(&self) -> Result<Vec<u8>> {
        let mut csv = csv::Writer::from_writer(Vec::new());
        csv.write_record([
            "column",
            "score",
            "higher_is_harder",
            "auroc",
            "low",
            "high",
            "runs",
            "positives",
            "verdict",
        ])?;
        for (s, row) in self.scores.iter().zip(&self.cells) {
            for (c, cell) in row.iter().enumerate() {
                let Some(x) = cell else { continue };
                csv.serialize((
                    &self.columns[c],
                    s,
                    x.higher_is_harder,
                    x.auroc,
                    x.low,
                    x.high,
                    x.runs,
                    self.positives[c],
                    x.verdict,
                ))?;
            }
        }
        Ok(csv.into_inner()?)
    }
}

/// The verdict of a score that points the way it claims.
fn claimed(higher_is_harder: bool) -> Verdict {
    match higher_is_harder {
        true => Verdict::HigherIsHarder,
        false => Verdict::HigherIsEasier,
    }
}

/// `+` as claimed, `-` the inverse, `?` not enough evidence.
pub fn sign(c: &Cell) -> &'static str {
    match c.verdict {
        Verdict::NotEnoughEvidence => "?",
        v if v == claimed(c.higher_is_harder) => "+",
        _ => "-",
    }
}

/// Score `s` over the runs' leaderboards `boards`; `None` where no run has it.
fn cell(boards: &[&Leaderboard], s: &str) -> Option<Cell> {
    let entries: Vec<_> = boards
        .iter()
        .filter_map(|l| l.entries.iter().find(|e| e.score == s))
        .filter(|e| e.test.is_some())
        .collect();
    let first = entries.first()?;
    let tests: Vec<_> = entries.iter().filter_map(|e| e.test).collect();
    let aurocs: Vec<f64> = tests.iter().map(|t| t.auroc).collect();
    let (low, high) = match tests.as_slice() {
        [one] => (one.ci_low, one.ci_high),
        _ => aurocs
            .iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &a| {
                (lo.min(a), hi.max(a))
            }),
    };
    let verdict = match entries.iter().all(|e| e.verdict == first.verdict) {
        true => first.verdict,
        false => Verdict::NotEnoughEvidence,
    };
    Some(Cell {
        auroc: aurocs.iter().sum::<f64>() / aurocs.len() as f64,
        low,
        high,
        runs: aurocs.len(),
        verdict,
        higher_is_harder: first.higher_is_harder,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::plant::Kind;
    use crate::eval::leaderboard::Entry;
    use crate::eval::stats::AurocTest;

    fn entry(score: &str, auroc: f64, higher_is_harder: bool, verdict: Verdict) -> Entry {
        Entry {
            score: score.into(),
            higher_is_harder,
            test: Some(AurocTest {
                auroc,
                ci_low: auroc - 0.1,
                ci_high: auroc + 0.1,
                p_value: 0.01,
                positives: 30,
                negatives: 300,
            }),
            top10_error: None,
            bottom10_error: None,
            precision_at_k: Some(0.5),
            verdict,
            restates_outcome: false,
        }
    }

    fn board(kind: Kind, entries: Vec<Entry>) -> Leaderboard {
        Leaderboard {
            question: Question::Planted(kind),
            examples: 330,
            positives: 30,
            entries,
        }
    }

    #[test]
    fn cells_average_runs_and_keep_only_a_common_verdict() {
        use Verdict::*;
        let a = board(
            Kind::Zoom,
            vec![
                entry("vog", 0.3, true, HigherIsEasier),
                entry("aum", 0.8, false, HigherIsEasier),
                entry("loss", 0.7, true, HigherIsHarder),
                entry("disagrees", 0.9, true, HigherIsHarder),
            ],
        );
        let b = board(
            Kind::Zoom,
            vec![
                entry("vog", 0.5, true, NotEnoughEvidence),
                entry("aum", 0.6, false, HigherIsEasier),
                entry("loss", 0.9, true, HigherIsHarder),
            ],
        );
        let m = Matrix::new(&[("zoom 5%".into(), vec![&a, &b])]);
        assert_eq!(
            m.scores,
            ["aum", "loss", "vog"],
            "disagrees is no column to act on"
        );
        let aum = m.cells[0][0].as_ref().unwrap();
        assert!((aum.auroc - 0.7).abs() < 1e-12);
        assert_eq!((aum.low, aum.high, aum.runs), (0.6, 0.8, 2));
        assert_eq!(aum.verdict, HigherIsEasier);
        assert_eq!(sign(aum), "+", "aum claims low = harder and does so");
        let vog = m.cells[2][0].as_ref().unwrap();
        assert_eq!(vog.verdict, NotEnoughEvidence, "the runs differ");
        // loss: 0.8 mean as claimed, above aum's 0.7.
        assert_eq!(m.best(0).unwrap().0, "loss");
        assert!(m.advice(0).starts_with("use loss (highest first), AUROC 0.800 [0.700, 0.900] (lowest and highest of 2 runs)"), "{}", m.advice(0));
        assert_eq!(m.positives, [60]);
    }

    #[test]
    fn a_single_evaluation_and_its_text() {
        use Verdict::*;
        let boards = vec![
            board(Kind::Noise, vec![entry("vog", 0.2, true, HigherIsEasier)]),
            board(
                Kind::Zoom,
                vec![entry("vog", 0.55, true, NotEnoughEvidence)],
            ),
        ];
        let m = Matrix::of_planted(&boards).unwrap();
        assert_eq!(m.columns, ["noise", "zoom"]);
        let vog = m.cells[0][0].as_ref().unwrap();
        assert_eq!((vog.low, vog.high), (0.1, 0.30000000000000004));
        assert_eq!(sign(vog), "-");
        assert!(m.best(0).is_none(), "an inverse score is never the advice");
        let mut text = Vec::new();
        m.write_text(&mut text).unwrap();
        let text = String::from_utf8(text).unwrap();
        assert!(text.contains("vog     0.200-   0.550?"), "{text}");
        assert!(
            text.contains("noise: no score finds these with evidence here"),
            "{text}"
        );
        let csv = String::from_utf8(m.to_csv().unwrap()).unwrap();
        assert!(
            csv.contains("noise,vog,true,0.2,0.1,0.30000000000000004,1,30,higher_is_easier"),
            "{csv}"
        );
        assert!(Matrix::of_planted(&[]).is_none());
    }
}
