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

#[cfg(test)]
mod tests {
    use super::*;

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
