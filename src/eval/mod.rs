//! `vog eval`: the paper's evaluations of a scores CSV (Agarwal & Hooker, Section 4),
//! computed for every target the file holds.
//!
//! - Figure 4: top-1 error in ten equal buckets of examples ordered by class-normalized VoG.
//! - Figure 5: error of the 10% lowest, all, and the 10% highest VoG examples.
//! - Figure 6: per class, mean absolute raw VoG against the false-negative rate, with Pearson
//!   r (two-sided p) and Spearman rho. (The normalized score is zero-mean in every class by
//!   construction, so the class-level view uses `vog_raw`.)
//! - Figure 7: raw VoG of shuffled-label versus correctly labelled training examples,
//!   AUROC of VoG for picking out the shuffled ones, and precision at k = their number.
//! - The verdict: does high VoG mean hard on this run, easy, or is there not enough
//!   evidence to say (see [`leaderboard`] for the rule)?
//!
//! Figures 4-6 concern test difficulty and figure 7 memorization, so a file holding both
//! splits is evaluated split by split. Beside them, [`leaderboard`] ranks every score of
//! the file (VoG and the companions) per question.
pub mod leaderboard;
pub mod matrix;
pub mod output;
pub mod plots;
pub mod stats;

pub use output::{output_files, write_outputs};

use crate::data::SplitKind;
use crate::scores::{score_columns, Column, Companion, ScoresFile};
use anyhow::{bail, Context, Result};
use leaderboard::{Leaderboard, Question, Verdict};
use serde::{Deserialize, Serialize};
use stats::AurocTest;
use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

/// Error of a group of examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Group {
    pub name: String,
    pub count: usize,
    pub errors: usize,
    /// Top-1 error in percent.
    pub error: f64,
    /// Score range of the group.
    pub min: f64,
    pub max: f64,
}

/// Figure 6.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassLevel {
    pub classes: Vec<ClassRow>,
    pub pearson_r: Option<f64>,
    pub p_value: Option<f64>,
    pub spearman: Option<f64>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassRow {
    pub label: i64,
    pub name: String,
    pub count: usize,
    pub mean_abs_vog_raw: f64,
    /// Fraction of the class's examples that were misclassified (1 - recall).
    pub false_negative_rate: f64,
}

/// Distribution summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    pub count: usize,
    pub min: f64,
    pub q1: f64,
    pub median: f64,
    pub q3: f64,
    pub mean: f64,
    pub max: f64,
}

impl Summary {
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        Some(Summary {
            count: v.len(),
            min: v[0],
            q1: stats::quantile(&v, 0.25),
            median: stats::quantile(&v, 0.5),
            q3: stats::quantile(&v, 0.75),
            mean: v.iter().sum::<f64>() / v.len() as f64,
            max: v[v.len() - 1],
        })
    }
}

/// Figure 7.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Memorization {
    /// Raw VoG of the training examples whose label was shuffled.
    pub shuffled: Summary,
    pub clean: Summary,
    /// AUROC of raw VoG for telling shuffled from clean examples, with its interval.
    #[serde(flatten)]
    pub test: AurocTest,
    /// Fraction of shuffled examples among the k highest-VoG ones, k = number shuffled.
    pub precision_at_k: f64,
    pub k: usize,
}

/// Every evaluation of one target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetEval {
    pub target: String,
    pub column: String,
    pub deciles: Vec<Group>,
    pub bottom_all_top: Vec<Group>,
    pub class_level: ClassLevel,
    pub memorization: Option<Memorization>,
    /// AUROC of `vog` for predicting a misclassification, with its interval (test split
    /// only; None with fewer than two errors or correct examples).
    pub misclassification: Option<AurocTest>,
    /// Spearman between decile index and decile error, and its two-sided p-value.
    pub decile_trend: Option<f64>,
    pub decile_trend_p: Option<f64>,
    /// Whether high VoG meant a misclassification: from the interval of the AUROC, and
    /// only when the decile trend points the same way (test split only: on the training
    /// split a "misclassification" is mostly a shuffled label, which memorization asks).
    pub verdict: Option<Verdict>,
}

/// Indices ordered by score, ties by id (deterministic buckets).
fn order(scores: &[f64], ids: &[String]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| {
        scores[a]
            .total_cmp(&scores[b])
            .then_with(|| ids[a].cmp(&ids[b]))
    });
    idx
}

fn group(name: String, members: &[usize], scores: &[f64], correct: &[bool]) -> Group {
    let errors = members.iter().filter(|&&i| !correct[i]).count();
    let values = members.iter().map(|&i| scores[i]);
    Group {
        name,
        count: members.len(),
        errors,
        error: if members.is_empty() {
            0.0
        } else {
            100.0 * errors as f64 / members.len() as f64
        },
        min: values.clone().fold(f64::INFINITY, f64::min),
        max: values.fold(f64::NEG_INFINITY, f64::max),
    }
}

/// Ten buckets of (nearly) equal size by score: bucket b holds positions [b n/10, (b+1) n/10).
pub fn deciles(scores: &[f64], ids: &[String], correct: &[bool]) -> Vec<Group> {
    let idx = order(scores, ids);
    let n = idx.len();
    (0..10)
        .map(|b| {
            group(
                format!("D{}", b + 1),
                &idx[b * n / 10..(b + 1) * n / 10],
                scores,
                correct,
            )
        })
        .collect()
}

/// The 10% lowest, all, and the 10% highest (at least one example each).
pub fn bottom_all_top(scores: &[f64], ids: &[String], correct: &[bool]) -> Vec<Group> {
    let idx = order(scores, ids);
    let k = (idx.len() / 10).max(1);
    vec![
        group("bottom 10%".into(), &idx[..k], scores, correct),
        group("all".into(), &idx, scores, correct),
        group("top 10%".into(), &idx[idx.len() - k..], scores, correct),
    ]
}

pub fn class_level(f: &ScoresFile, raw: &[f64]) -> ClassLevel {
    let mut per: BTreeMap<i64, (String, Vec<usize>)> = BTreeMap::new();
    for (i, r) in f.rows.iter().enumerate() {
        per.entry(r.label)
            .or_insert_with(|| (r.label_name.clone(), Vec::new()))
            .1
            .push(i);
    }
    let classes: Vec<ClassRow> = per
        .into_iter()
        .map(|(label, (name, m))| ClassRow {
            label,
            name,
            count: m.len(),
            mean_abs_vog_raw: m.iter().map(|&i| raw[i].abs()).sum::<f64>() / m.len() as f64,
            false_negative_rate: m.iter().filter(|&&i| !f.rows[i].correct).count() as f64
                / m.len() as f64,
        })
        .collect();
    let x: Vec<f64> = classes.iter().map(|c| c.mean_abs_vog_raw).collect();
    let y: Vec<f64> = classes.iter().map(|c| c.false_negative_rate).collect();
    let r = stats::pearson(&x, &y);
    ClassLevel {
        p_value: r.and_then(|r| stats::pearson_p(r, x.len())),
        pearson_r: r,
        spearman: stats::spearman(&x, &y),
        classes,
    }
}

/// Figure 7 over the training rows; `None` when no example was shuffled, or in the file
/// of a run with planted hardness (its changed labels are asked of kind by kind).
pub fn memorization(f: &ScoresFile, raw: &[f64]) -> Option<Memorization> {
    if !f.meta.planted.is_empty() {
        return None;
    }
    let rows: Vec<usize> = (0..f.len())
        .filter(|&i| f.rows[i].split == SplitKind::Train)
        .collect();
    let noisy: Vec<bool> = rows.iter().map(|&i| f.rows[i].noisy).collect();
    let k = noisy.iter().filter(|&&n| n).count();
    if k == 0 || k == rows.len() {
        return None;
    }
    let scores: Vec<f64> = rows.iter().map(|&i| raw[i]).collect();
    let pick = |want: bool| -> Vec<f64> {
        scores
            .iter()
            .zip(&noisy)
            .filter(|(_, &n)| n == want)
            .map(|(s, _)| *s)
            .collect()
    };
    let ids: Vec<String> = rows.iter().map(|&i| f.rows[i].id.clone()).collect();
    let top = order(&scores, &ids);
    let hits = top[top.len() - k..].iter().filter(|&&i| noisy[i]).count();
    Some(Memorization {
        shuffled: Summary::of(&pick(true))?,
        clean: Summary::of(&pick(false))?,
        test: stats::auroc_test(&scores, &noisy)?,
        precision_at_k: hits as f64 / k as f64,
        k,
    })
}

/// The AUROC's verdict, kept only when the decile trend does not point the other way.
pub fn difficulty_verdict(test: Option<&AurocTest>, trend: Option<f64>) -> Verdict {
    let v = leaderboard::verdict(test, true);
    let agrees = match v {
        Verdict::HigherIsHarder => trend.is_some_and(|t| t > 0.0),
        Verdict::HigherIsEasier => trend.is_some_and(|t| t < 0.0),
        Verdict::NotEnoughEvidence => true,
    };
    if agrees {
        v
    } else {
        Verdict::NotEnoughEvidence
    }
}

/// All evaluations of target `t` of the examples of one split; `test` asks whether VoG
/// predicts their misclassification.
pub fn evaluate_target(f: &ScoresFile, t: usize, test: bool) -> TargetEval {
    let (z, raw) = (f.values(t, Column::Normalized), f.values(t, Column::Raw));
    let ids = ids(f);
    let correct: Vec<bool> = f.rows.iter().map(|r| r.correct).collect();
    let deciles = deciles(&z, &ids, &correct);
    let wrong: Vec<bool> = correct.iter().map(|c| !c).collect();
    let misclassification = test.then(|| stats::auroc_test(&z, &wrong)).flatten();
    let index: Vec<f64> = (1..=10).map(f64::from).collect();
    let errors: Vec<f64> = deciles.iter().map(|g| g.error).collect();
    let decile_trend = stats::spearman(&index, &errors);
    let decile_trend_p = decile_trend.and_then(|r| stats::pearson_p(r, 10));
    TargetEval {
        target: f.targets()[t].to_string(),
        column: score_columns(f.targets())[t].1.clone(),
        bottom_all_top: bottom_all_top(&z, &ids, &correct),
        class_level: class_level(f, &raw),
        memorization: memorization(f, &raw),
        verdict: test.then(|| difficulty_verdict(misclassification.as_ref(), decile_trend)),
        misclassification,
        decile_trend,
        decile_trend_p,
        deciles,
    }
}

/// `--compare`: agreement between two score files of the same examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    pub other: String,
    pub spearman: Option<f64>,
    /// |top10(a) ∩ top10(b)| / |top10|.
    pub top10_overlap: f64,
}

/// Agreement between the first targets' normalized scores of `a` and `b`.
pub fn compare(a: &ScoresFile, b: &ScoresFile) -> Result<Comparison> {
    let pos: std::collections::HashMap<&str, usize> = b
        .rows
        .iter()
        .enumerate()
        .map(|(i, r)| (r.id.as_str(), i))
        .collect();
    let a_ids = ids(a);
    if a.len() != b.len() || a_ids.iter().any(|id| !pos.contains_key(id.as_str())) {
        let missing = a_ids.iter().find(|id| !pos.contains_key(id.as_str()));
        bail!(
            "--compare: the two files do not hold the same examples ({} vs {} rows{})",
            a.len(),
            b.len(),
            missing.map_or(String::new(), |m| format!("; '{m}' is only in the first"))
        );
    }
    let sa = a.values(0, Column::Normalized);
    let sb: Vec<f64> = a_ids
        .iter()
        .map(|id| b.rows[pos[id.as_str()]].scores[0].1)
        .collect();
    let k = (a.len() / 10).max(1);
    let top =
        |s: &[f64]| -> HashSet<usize> { order(s, &a_ids).into_iter().rev().take(k).collect() };
    let overlap = top(&sa).intersection(&top(&sb)).count() as f64 / k as f64;
    Ok(Comparison {
        other: b.path.display().to_string(),
        spearman: stats::spearman(&sa, &sb),
        top10_overlap: overlap,
    })
}

/// The paper's figures for the examples of one split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitEval {
    pub split: SplitKind,
    pub examples: usize,
    /// Top-1 error in percent.
    pub error: f64,
    pub targets: Vec<TargetEval>,
}

/// The whole evaluation of a scores file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    pub scores: String,
    /// Train first, then test, as present in the file.
    pub splits: Vec<SplitEval>,
    /// One per question the file (and the id sets given) can answer.
    pub leaderboards: Vec<Leaderboard>,
    pub comparison: Option<Comparison>,
    /// How strong the fold models behind the file's out-of-sample columns were.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub out_of_sample_strength: Option<crate::confident::Strength>,
}

impl Evaluation {
    /// The leaderboard of `q`, if it could be asked.
    pub fn leaderboard(&self, q: Question) -> Option<&Leaderboard> {
        self.leaderboards.iter().find(|l| l.question == q)
    }
}

/// Every evaluation of a scores file (at least two classes needed); `sets` adds a
/// leaderboard per set of example ids (atypical, flagged).
pub fn evaluate(f: &ScoresFile, sets: &[(Question, &HashSet<String>)]) -> Result<Evaluation> {
    let classes: HashSet<i64> = f.rows.iter().map(|r| r.label).collect();
    if classes.len() < 2 {
        bail!(
            "cannot evaluate '{}': it holds a single class, and the evaluations compare classes",
            f.path.display()
        );
    }
    let splits = [SplitKind::Train, SplitKind::Test]
        .into_iter()
        .filter_map(|kind| {
            let view = f.only(kind);
            (!view.is_empty()).then(|| evaluate_split(&view, kind))
        })
        .collect();
    let leaderboards = leaderboard::asks(f, sets)
        .iter()
        .map(|ask| leaderboard::leaderboard(f, ask))
        .collect();
    Ok(Evaluation {
        scores: f.path.display().to_string(),
        splits,
        leaderboards,
        comparison: None,
        out_of_sample_strength: f.meta.out_of_sample_strength.clone(),
    })
}

fn evaluate_split(f: &ScoresFile, split: SplitKind) -> SplitEval {
    let errors = f.rows.iter().filter(|r| !r.correct).count();
    SplitEval {
        split,
        examples: f.len(),
        error: 100.0 * errors as f64 / f.len() as f64,
        targets: (0..f.targets().len())
            .map(|t| evaluate_target(f, t, split == SplitKind::Test))
            .collect(),
    }
}

/// The Data Map of a file's training examples, when it has their training dynamics:
/// shuffled (or planted) examples are marked, or those in `flagged` when given.
pub fn data_map_points(
    f: &ScoresFile,
    flagged: Option<&HashSet<String>>,
) -> Option<Vec<plots::MapPoint>> {
    let find = |c: Companion| f.meta.companions.iter().position(|&x| x == c);
    let (v, conf, corr) = (
        find(Companion::Variability)?,
        find(Companion::Confidence)?,
        find(Companion::Correctness)?,
    );
    let points: Vec<plots::MapPoint> = f
        .rows
        .iter()
        .filter(|r| r.split == SplitKind::Train)
        .filter_map(|r| {
            Some(plots::MapPoint {
                variability: r.companions[v]?,
                confidence: r.companions[conf]?,
                correctness: r.companions[corr]?,
                marked: flagged.map_or(r.noisy || r.planted.is_some(), |ids| ids.contains(&r.id)),
            })
        })
        .collect();
    (!points.is_empty()).then_some(points)
}

/// Reads a list of example ids (a table with an `id` column, or one id per line, read by
/// the rule of [`crate::data::table`]) that must all be examples of `f`, each once.
pub fn read_flagged(path: &std::path::Path, f: &ScoresFile) -> Result<HashSet<String>> {
    let ids: Vec<String> = crate::data::table::read_ids(path, "--flagged")?
        .into_iter()
        .map(|(_, id)| id)
        .collect();
    let set: HashSet<String> = ids.iter().cloned().collect();
    let known: HashSet<&str> = f.rows.iter().map(|r| r.id.as_str()).collect();
    let unknown: Vec<&str> = ids
        .iter()
        .map(String::as_str)
        .filter(|id| !known.contains(id))
        .collect();
    if !unknown.is_empty() {
        let shown: Vec<&str> = unknown.iter().take(3).copied().collect();
        bail!(
            "'{}' names {} id(s) that are not examples of '{}': {}{}",
            path.display(),
            unknown.len(),
            f.path.display(),
            shown.join(", "),
            if unknown.len() > 3 { ", ..." } else { "" }
        );
    }
    if set.is_empty() {
        bail!("'{}' lists no example ids", path.display());
    }
    Ok(set)
}

/// A scores file with its evaluation, as the report and the pipeline pass them on.
pub struct Evaluated {
    pub file: ScoresFile,
    pub evaluation: Evaluation,
}

impl Evaluated {
    /// Reads the scores file at `path` (with its sidecar) and evaluates it.
    pub fn read(path: &std::path::Path) -> Result<Self> {
        let file = ScoresFile::read(path)?;
        let evaluation = evaluate(&file, &[])?;
        Ok(Evaluated { file, evaluation })
    }
}

fn ids(f: &ScoresFile) -> Vec<String> {
    f.rows.iter().map(|r| r.id.clone()).collect()
}

/// A validated `vog eval` request.
#[derive(Debug, Clone)]
pub struct EvalRequest {
    pub scores: PathBuf,
    /// The output folder; `None`: SCORES without `.csv`, plus `-eval`.
    pub out: Option<PathBuf>,
    /// Another scores file of the same examples to compare rankings with.
    pub compare: Option<PathBuf>,
    /// Ids of examples known or suspected to be mislabelled or odd.
    pub flagged: Option<PathBuf>,
}

impl EvalRequest {
    /// Where the tables and plots go.
    pub fn out_dir(&self) -> PathBuf {
        self.out
            .clone()
            .unwrap_or_else(|| default_dir(&self.scores))
    }
}

/// Where `vog eval` writes the evaluation of `scores` unless told: `SCORES-eval/` beside it.
pub fn default_dir(scores: &Path) -> PathBuf {
    let stem = scores
        .file_stem()
        .map_or("scores".into(), |s| s.to_string_lossy().into_owned());
    scores.with_file_name(format!("{stem}-eval"))
}

/// What an evaluation folder written by `vog eval` (eval.json, tables, plots) should hold
/// now, by name and bytes, made again from `scores` as it is: refused when its eval.json is
/// not the evaluation of that file. The leaderboards of id sets given to vog eval (atypical,
/// flagged) and the comparison with another file are taken as recorded; a Data Map drawn
/// with `--flagged` ids is left out (the ids are not recorded).
pub fn expected_files(dir: &Path, scores: &Path) -> Result<Vec<(String, Vec<u8>)>> {
    let json = dir.join("eval.json");
    let bytes =
        std::fs::read(&json).with_context(|| format!("cannot read '{}'", json.display()))?;
    let recorded: Evaluation = serde_json::from_slice(&bytes)
        .with_context(|| format!("'{}' is not an evaluation of vog", json.display()))?;
    let file = ScoresFile::read(scores)?;
    let mut again = evaluate(&file, &[])?;
    let from_ids = [Question::Atypical, Question::Flagged];
    again.scores = recorded.scores.clone();
    again.comparison = recorded.comparison.clone();
    let given = recorded
        .leaderboards
        .iter()
        .filter(|l| from_ids.contains(&l.question));
    again.leaderboards.extend(given.cloned());
    if again != recorded {
        bail!(
            "is not the evaluation of '{}' as it is now (scored again or edited since?); run \
             vog eval again",
            scores.display()
        );
    }
    let flagged = recorded.leaderboard(Question::Flagged).is_some();
    let files = output_files(&recorded, &file, None)?;
    Ok(files
        .into_iter()
        .filter(|(name, _)| !(flagged && name.starts_with("data-map.")))
        .collect())
}

/// Runs `vog eval`: evaluates the scores file, writes eval.json, the CSV tables and the
/// plots into [`EvalRequest::out_dir`], and returns the evaluation.
pub fn run(r: &EvalRequest) -> Result<Evaluation> {
    if r.out.is_none() {
        check_default_dir(&r.out_dir())?;
    }
    let file = ScoresFile::read(&r.scores)?;
    let flagged = match &r.flagged {
        Some(path) => Some(read_flagged(path, &file)?),
        None => None,
    };
    let sets: Vec<(Question, &HashSet<String>)> =
        flagged.iter().map(|ids| (Question::Flagged, ids)).collect();
    let mut e = evaluate(&file, &sets)?;
    if let Some(other) = &r.compare {
        e.comparison = Some(compare(&file, &ScoresFile::read(other)?)?);
    }
    write_outputs(&r.out_dir(), &e, &file, flagged.as_ref())?;
    Ok(e)
}

/// Refuses a default output folder that holds files but no evaluation vog wrote.
fn check_default_dir(dir: &Path) -> Result<()> {
    let empty = std::fs::read_dir(dir).is_ok_and(|mut d| d.next().is_none());
    let json = crate::atomic_file::head(&dir.join("eval.json"));
    crate::atomic_file::check_unnamed(
        dir,
        |_| empty || json.starts_with(b"{\n  \"scores\": "),
        &format!(
            "vog eval writes into '{}' when --out is left out, and this folder holds no \
             evaluation of vog",
            dir.display()
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(n: usize) -> Vec<String> {
        (0..n).map(|i| format!("e{i:03}")).collect()
    }

    #[test]
    fn deciles_with_ties_are_equal_sized_and_deterministic() {
        // 20 examples, all with the same score: buckets of two, filled in id order.
        let scores = vec![1.0; 20];
        let mut correct = vec![true; 20];
        correct[19] = false;
        let d = deciles(&scores, &ids(20), &correct);
        assert!(d.iter().all(|g| g.count == 2));
        assert_eq!(d[9].errors, 1);
        assert_eq!(d[9].error, 50.0);
        assert_eq!(d[0].error, 0.0);
        // 25 examples: sizes 2 or 3, all examples placed once.
        let d = deciles(&[0.0; 25], &ids(25), &[true; 25]);
        assert_eq!(d.iter().map(|g| g.count).sum::<usize>(), 25);
    }

    #[test]
    fn difficulty_verdicts_need_an_agreeing_trend() {
        // Error rises with the score, 30 errors in 100: the interval excludes 0.5.
        let scores: Vec<f64> = (0..100).map(f64::from).collect();
        let correct: Vec<bool> = (0..100).map(|i| i < 70).collect();
        let wrong: Vec<bool> = correct.iter().map(|c| !c).collect();
        let t = stats::auroc_test(&scores, &wrong).unwrap();
        assert_eq!(t.auroc, 1.0);
        assert_eq!(
            difficulty_verdict(Some(&t), Some(0.9)),
            Verdict::HigherIsHarder
        );
        assert_eq!(
            difficulty_verdict(Some(&t), Some(-0.9)),
            Verdict::NotEnoughEvidence
        );
        let neg: Vec<f64> = scores.iter().map(|s| -s).collect();
        let t = stats::auroc_test(&neg, &wrong).unwrap();
        assert_eq!(
            difficulty_verdict(Some(&t), Some(-0.9)),
            Verdict::HigherIsEasier
        );
        assert_eq!(difficulty_verdict(None, None), Verdict::NotEnoughEvidence);
        let g = bottom_all_top(&scores, &ids(100), &correct);
        assert_eq!((g[0].error, g[1].error, g[2].error), (0.0, 30.0, 100.0));
    }
}
