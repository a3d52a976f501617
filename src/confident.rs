//! Confident learning (Northcutt, Jiang & Chuang, "Confident Learning: Estimating
//! Uncertainty in Dataset Labels", JAIR 2021) on out-of-sample predicted probabilities, as
//! cleanlab 2.7 computes it (`filter.find_label_issues` with its defaults,
//! `filter_by="prune_by_noise_rate"`; `rank.get_label_quality_scores`), checked against
//! cleanlab by `tests/parity.rs`.
//!
//! Per class k, the threshold t_k is the mean probability of k over the examples labelled
//! k. An example counts towards the confident joint `C[given][true]` for the class whose
//! probability reaches its threshold (the most probable of several). C is calibrated to the
//! label counts; then, for each given class k and each other class j, the `C[k][j]` examples
//! labelled k with the largest p_j - p_k are flagged, unless the model's prediction is the
//! given label. Rows of `probs` are examples, columns classes; `labels` are the given
//! (trained) labels.
use anyhow::{bail, Result};
use serde::{Deserialize, Serialize};

/// cleanlab's tolerance for comparing probabilities.
const EPSILON: f64 = 1e-6;
/// cleanlab's floor of a threshold, and its threshold for a class nobody is labelled.
const MIN_THRESHOLD: f64 = 2e-6;
const ABSENT_THRESHOLD: f64 = 2.0;

/// Refuses a matrix that is not N rows of K >= 2 probabilities for N labels below K.
pub fn check(labels: &[usize], probs: &[Vec<f64>]) -> Result<usize> {
    let k = probs.first().map_or(0, Vec::len);
    if probs.len() != labels.len() || k < 2 {
        bail!(
            "confident learning needs one row of at least 2 class probabilities per label ({} rows, {} labels)",
            probs.len(),
            labels.len()
        );
    }
    if let Some(i) = (0..probs.len())
        .find(|&i| probs[i].len() != k || probs[i].iter().any(|p| !p.is_finite()) || labels[i] >= k)
    {
        bail!(
            "row {i} of the probabilities is not {k} finite values, or its label is not below {k}"
        );
    }
    Ok(k)
}

/// The probability of each example's own label (cleanlab's `self_confidence`).
pub fn self_confidence(labels: &[usize], probs: &[Vec<f64>]) -> Vec<f64> {
    labels.iter().zip(probs).map(|(&y, p)| p[y]).collect()
}

/// `(p[label] - the largest other p + 1) / 2` (cleanlab's `normalized_margin`).
pub fn normalized_margin(labels: &[usize], probs: &[Vec<f64>]) -> Vec<f64> {
    labels
        .iter()
        .zip(probs)
        .map(|(&y, p)| {
            let other = (0..p.len())
                .filter(|&j| j != y)
                .map(|j| p[j])
                .fold(f64::NEG_INFINITY, f64::max);
            (p[y] - other + 1.0) / 2.0
        })
        .collect()
}

/// The entropy of each row, in nats.
pub fn entropy(probs: &[Vec<f64>]) -> Vec<f64> {
    probs
        .iter()
        .map(|p| {
            -p.iter()
                .filter(|&&x| x > 0.0)
                .map(|x| x * x.ln())
                .sum::<f64>()
        })
        .collect()
}

/// The most probable class of each row (the first of equals).
pub fn argmax(p: &[f64]) -> usize {
    (0..p.len()).fold(0, |best, j| if p[j] > p[best] { j } else { best })
}

/// Per class, the mean probability of it over the examples labelled with it.
fn thresholds(labels: &[usize], probs: &[Vec<f64>], k: usize) -> Vec<f64> {
    (0..k)
        .map(|c| {
            let own: Vec<f64> = labels
                .iter()
                .zip(probs)
                .filter(|(&y, _)| y == c)
                .map(|(_, p)| p[c])
                .collect();
            match own.len() {
                0 => ABSENT_THRESHOLD,
                n => own.iter().sum::<f64>() / n as f64,
            }
            .max(MIN_THRESHOLD)
        })
        .collect()
}

/// The calibrated confident joint, `[given][true]`.
pub fn confident_joint(labels: &[usize], probs: &[Vec<f64>], k: usize) -> Vec<Vec<i64>> {
    let t = thresholds(labels, probs, k);
    let mut joint = vec![vec![0.0f64; k]; k];
    for (&y, p) in labels.iter().zip(probs) {
        let confident: Vec<usize> = (0..k).filter(|&c| p[c] >= t[c] - EPSILON).collect();
        let guess = match confident.as_slice() {
            [] => continue,
            [one] => *one,
            _ => argmax(p),
        };
        joint[y][guess] += 1.0;
    }
    for (c, row) in joint.iter_mut().enumerate() {
        row[c] = row[c].max(1.0);
    }
    let counts = label_counts(labels, k);
    for (row, &n) in joint.iter_mut().zip(&counts) {
        let total = row.iter().sum::<f64>().max(1e-100);
        row.iter_mut().for_each(|x| *x = *x / total * n as f64);
    }
    let all = joint.iter().flatten().sum::<f64>().max(1e-100);
    let n = labels.len() as f64;
    joint
        .iter()
        .map(|row| round_preserving_sum(&row.iter().map(|x| x / all * n).collect::<Vec<_>>()))
        .collect()
}

fn label_counts(labels: &[usize], k: usize) -> Vec<usize> {
    let mut counts = vec![0; k];
    labels.iter().for_each(|&y| counts[y] += 1);
    counts
}

/// Rounds each value (half to even) and then moves units to the values with the largest
/// (or smallest) fractional parts until the total is the rounded total.
fn round_preserving_sum(floats: &[f64]) -> Vec<i64> {
    let mut ints: Vec<f64> = floats.iter().map(|x| x.round_ties_even()).collect();
    let target = floats.iter().sum::<f64>().round_ties_even();
    let mut sum = ints.iter().sum::<f64>().round_ties_even();
    while (sum - target).abs() > EPSILON {
        let diff = (target - sum).round_ties_even();
        let step = if diff < 0.0 { -1.0 } else { 1.0 };
        let changes = (diff.abs() as usize).min(floats.len());
        let mut order: Vec<usize> = (0..floats.len()).collect();
        order.sort_by(|&a, &b| (floats[a] - ints[a]).total_cmp(&(floats[b] - ints[b])));
        if step > 0.0 {
            order.reverse();
        }
        for &i in order.iter().take(changes) {
            ints[i] += step;
        }
        sum = ints.iter().sum::<f64>().round_ties_even();
    }
    ints.iter().map(|&x| x as i64).collect()
}

/// How many examples of each given class (column) to flag per true class (row): the
/// confident joint transposed, each diagonal at least 1 (taken evenly from that column's
/// non-zero noise counts), truncated to whole examples.
fn prune_counts(joint: &[Vec<i64>], k: usize) -> Vec<Vec<i64>> {
    let m: Vec<Vec<f64>> = (0..k)
        .map(|t| (0..k).map(|g| joint[g][t] as f64).collect())
        .collect();
    let mut out = vec![vec![0i64; k]; k];
    for g in 0..k {
        let diagonal = m[g][g].max(1.0);
        let raised = diagonal - m[g][g];
        let nonzero = (0..k).filter(|&t| m[t][g] != 0.0).count() as f64;
        let share = raised / (nonzero - 1.0).max(1.0);
        for t in 0..k {
            let v = if t == g {
                diagonal
            } else {
                (m[t][g] - share).max(0.0)
            };
            out[t][g] = v as i64;
        }
    }
    out
}

/// Confident learning's label issues (cleanlab's `find_label_issues` defaults).
pub fn label_issues(labels: &[usize], probs: &[Vec<f64>]) -> Result<Vec<bool>> {
    let k = check(labels, probs)?;
    let prune = prune_counts(&confident_joint(labels, probs, k), k);
    let mut issue = vec![false; labels.len()];
    for given in 0..k {
        let members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == given).collect();
        if members.len() <= 1 {
            continue;
        }
        for (t, counts) in prune.iter().enumerate() {
            let n = counts[given];
            if t == given || n <= 0 {
                continue;
            }
            let margin = |i: usize| probs[i][t] - probs[i][given];
            let mut order = members.clone();
            order.sort_by(|&a, &b| margin(b).total_cmp(&margin(a)));
            for &i in order.iter().take(n as usize) {
                issue[i] = true;
            }
        }
    }
    // An example the model predicts as labelled is no issue.
    for (i, flag) in issue.iter_mut().enumerate() {
        let mut p = probs[i].clone();
        p[labels[i]] += EPSILON;
        if argmax(&p) == labels[i] {
            *flag = false;
        }
    }
    Ok(issue)
}

/// Confident learning's own estimate of the noise rate: the share of the calibrated
/// confident joint off its diagonal (about the share of examples it flags, since
/// `prune_by_noise_rate` flags that many).
pub fn joint_noise_rate(labels: &[usize], probs: &[Vec<f64>]) -> Result<f64> {
    let k = check(labels, probs)?;
    let joint = confident_joint(labels, probs, k);
    let all: i64 = joint.iter().flatten().sum();
    let off: i64 = (0..k)
        .flat_map(|g| (0..k).filter(move |&t| t != g).map(move |t| (g, t)))
        .map(|(g, t)| joint[g][t])
        .sum();
    Ok(off as f64 / all.max(1) as f64)
}

/// Below this bound on the share of flags that can be label errors, the flags are mostly
/// the fold models' own mistakes: too weak to act on.
pub const MIN_PRECISION_BOUND: f64 = 0.5;

/// Whether out-of-sample models are strong enough for their flags to be acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StrengthVerdict {
    /// At least half of the flags can be label errors.
    Usable,
    /// Most flags must be the fold models' own mistakes.
    TooWeak,
    /// The run has no test split to compare the fold models with.
    Unknown,
}

/// How well the fold models of a cross-fitting did: the inputs of [`Strength`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FoldFit {
    /// Share of the held-out training examples predicted as the label they train with.
    pub given: f64,
    /// Share of the run's test examples (clean labels) predicted right, averaged over the
    /// fold models; `None` without a test split.
    pub test: Option<f64>,
    /// The run's own test accuracy, shown beside it.
    pub run_test: Option<f64>,
    pub classes: usize,
}

/// How strong the fold models of a cross-fitting were, and what that allows of their flags.
///
/// The rule (docs/results.md has the measurements behind it): a fold model that predicts a
/// share `t` of clean test labels right, and spreads its mistakes over the other classes,
/// agrees with a training label that is wrong (uniformly among the other classes) with
/// probability `q = (1 - t) / (C - 1)`, and with a right one with probability `t`. Fold
/// models that agree with the given labels of their held-out examples a share `a` of the
/// time thus imply `e = (t - a) / (t - q)` wrong labels. Confident learning flags a share
/// `f`; at most `e / f` of the flags can then be label errors. Below
/// [`MIN_PRECISION_BOUND`] the flags are mostly the models' own mistakes: too weak to act
/// on. The run's own test accuracy would not do for `t`: fold models see (K-1)/K of its
/// data and are weaker, which inflates `e` exactly when they are weak. Nor would
/// confident learning's own noise estimate: it flags as many examples as it estimates to
/// be wrong, so its estimate agrees with its flags however weak the models are.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Strength {
    /// Share of the held-out examples the fold models predict as the label they train
    /// with, over all folds.
    pub fold_accuracy: f64,
    /// The fold models' mean accuracy on the run's test split (clean labels).
    pub fold_test_accuracy: Option<f64>,
    /// The run's own last test accuracy.
    pub run_test_accuracy: Option<f64>,
    pub flagged: usize,
    pub examples: usize,
    /// Confident learning's own estimate of the noise rate ([`joint_noise_rate`]).
    pub joint_noise: f64,
    /// `(t - a) / (t - q)`, clipped to [0, 1]: the wrong labels the fold models'
    /// agreement implies.
    pub implied_noise: Option<f64>,
    /// `implied_noise / flag rate`, at most 1: the largest share of the flags that can be
    /// label errors.
    pub precision_bound: Option<f64>,
    pub verdict: StrengthVerdict,
}

impl Strength {
    /// The strength of fold models that fit as `fit` says, flagging `flagged` of
    /// `examples`, confident learning's noise estimate being `joint_noise`.
    pub fn new(fit: FoldFit, (flagged, examples): (usize, usize), joint_noise: f64) -> Self {
        let flag_rate = flagged as f64 / examples.max(1) as f64;
        let implied_noise = fit.test.map(|t| {
            let q = (1.0 - t) / (fit.classes.max(2) - 1) as f64;
            match t - q {
                d if d > 0.0 => ((t - fit.given) / d).clamp(0.0, 1.0),
                // Models no better than chance imply nothing about the labels.
                _ => 0.0,
            }
        });
        let precision_bound = implied_noise.map(|e| match flagged {
            0 => 1.0,
            _ => (e / flag_rate).min(1.0),
        });
        let verdict = match precision_bound {
            None => StrengthVerdict::Unknown,
            Some(p) if p < MIN_PRECISION_BOUND => StrengthVerdict::TooWeak,
            Some(_) => StrengthVerdict::Usable,
        };
        Strength {
            fold_accuracy: fit.given,
            fold_test_accuracy: fit.test,
            run_test_accuracy: fit.run_test,
            flagged,
            examples,
            joint_noise,
            implied_noise,
            precision_bound,
            verdict,
        }
    }

    /// The verdict with its figures, on one line.
    pub fn sentence(&self) -> String {
        let pct = |x: f64| format!("{:.0}%", 100.0 * x);
        let tests = match (self.fold_test_accuracy, self.run_test_accuracy) {
            (Some(f), Some(r)) => format!("{} on the test split, the run {}", pct(f), pct(r)),
            _ => "the run has no test split".into(),
        };
        let head = format!(
            "out-of-sample flags: fold models reach {} on their held-out examples' labels \
             ({tests}); confident learning flags {} of {} training examples ({})",
            pct(self.fold_accuracy),
            self.flagged,
            self.examples,
            pct(self.flagged as f64 / self.examples.max(1) as f64)
        );
        let bound = match (self.implied_noise, self.precision_bound) {
            (Some(e), Some(p)) => format!(
                ", while models that accurate imply about {} wrong labels, so at most {} of \
                 the flags can be label errors",
                pct(e),
                pct(p)
            ),
            _ => String::new(),
        };
        let verdict = match self.verdict {
            StrengthVerdict::Usable => "strong enough to review the flags",
            StrengthVerdict::TooWeak => {
                "too weak to act on: more data per fold (a higher --folds) or a stronger recipe \
                 first"
            }
            StrengthVerdict::Unknown => {
                "strength unknown without a test split: review before acting"
            }
        };
        format!("{head}{bound}: {verdict}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strength_follows_its_figures() {
        let fit = |given, test| FoldFit {
            given,
            test,
            run_test: test.map(|t| t + 0.1),
            classes: 10,
        };
        // The issue's run: fold models 33% on given labels, about as good on test.
        let weak = Strength::new(fit(0.33, Some(0.35)), (1787, 3000), 0.58);
        let q = 0.65 / 9.0;
        let e = (0.35 - 0.33) / (0.35 - q);
        assert!((weak.implied_noise.unwrap() - e).abs() < 1e-12);
        assert!((weak.precision_bound.unwrap() - e / (1787.0 / 3000.0)).abs() < 1e-12);
        assert_eq!(weak.verdict, StrengthVerdict::TooWeak);
        let said = weak.sentence();
        assert!(
            said.contains("fold models reach 33%")
                && said.contains("(35% on the test split, the run 45%)"),
            "{said}"
        );
        assert!(
            said.contains("1787 of 3000") && said.contains("(60%)"),
            "{said}"
        );
        assert!(
            said.contains("about 7% wrong labels") && said.contains("at most 12%"),
            "{said}"
        );
        assert!(said.ends_with("a stronger recipe first"), "{said}");
        // 20% of the labels wrong, fold models 88% right on clean labels: they agree with
        // 0.8 * 0.88 + 0.2 * 0.12 / 9 of the given labels, and flag about the wrong ones.
        let a = 0.8 * 0.88 + 0.2 * 0.12 / 9.0;
        let strong = Strength::new(fit(a, Some(0.88)), (170, 800), 0.21);
        assert!((strong.implied_noise.unwrap() - 0.2).abs() < 1e-9);
        assert_eq!(strong.verdict, StrengthVerdict::Usable);
        assert!(strong
            .sentence()
            .ends_with("strong enough to review the flags"));
        let unknown = Strength::new(fit(0.7, None), (10, 100), 0.1);
        assert_eq!(unknown.verdict, StrengthVerdict::Unknown);
        assert!(unknown.sentence().contains("no test split"));
        // Models at chance imply nothing; nothing flagged leaves nothing to doubt.
        assert_eq!(
            Strength::new(fit(0.1, Some(0.1)), (5, 100), 0.05).implied_noise,
            Some(0.0)
        );
        assert_eq!(
            Strength::new(fit(0.8, Some(0.8)), (0, 100), 0.0).precision_bound,
            Some(1.0)
        );
    }

    #[test]
    fn rounding_keeps_the_total() {
        assert_eq!(
            round_preserving_sum(&[0.4, 0.4, 0.4, 1.8]),
            vec![0, 0, 1, 2]
        );
        assert_eq!(round_preserving_sum(&[2.5, 0.5]), vec![2, 1]);
    }

    #[test]
    fn a_confident_mislabel_is_flagged() {
        // Three classes; example 5 is labelled 0 but looks confidently like class 2.
        let probs = vec![
            vec![0.9, 0.05, 0.05],
            vec![0.8, 0.1, 0.1],
            vec![0.1, 0.8, 0.1],
            vec![0.1, 0.85, 0.05],
            vec![0.05, 0.05, 0.9],
            vec![0.05, 0.05, 0.9],
            vec![0.1, 0.1, 0.8],
        ];
        let labels = [0, 0, 1, 1, 2, 0, 2];
        let issues = label_issues(&labels, &probs).unwrap();
        assert_eq!(issues, vec![false, false, false, false, false, true, false]);
        assert_eq!(self_confidence(&labels, &probs)[5], 0.05);
        assert!((normalized_margin(&labels, &probs)[5] - 0.075).abs() < 1e-12);
        assert!(label_issues(&[0, 3], &[vec![0.5, 0.5], vec![0.5, 0.5]]).is_err());
    }
}
