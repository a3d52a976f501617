//! Class normalization of the scores file: each target's raw VoG z-scored within (split,
//! trained class), as the paper does (Section 2), with the classes that had no spread.
use super::csv::ScoreRow;
use crate::data::SplitKind;
use std::collections::BTreeMap;

/// Fills every row's z-scores: each target's raw VoG z-scored within (split, trained
/// class), as [`crate::variance::normalize::by_class`] does, rows of a split taken in the order
/// given. Returns, per split, the names of the classes without spread (their z-scores are
/// 0), in first-seen order.
pub fn normalize_rows(
    rows: &mut [ScoreRow],
    class_name: impl Fn(i64) -> String,
) -> BTreeMap<SplitKind, Vec<String>> {
    let mut degenerate: BTreeMap<SplitKind, Vec<String>> = BTreeMap::new();
    for kind in [SplitKind::Train, SplitKind::Test] {
        let members: Vec<usize> = (0..rows.len()).filter(|&i| rows[i].split == kind).collect();
        if members.is_empty() {
            continue;
        }
        let trained: Vec<i64> = members.iter().map(|&i| rows[i].trained_label).collect();
        for t in 0..rows[members[0]].scores.len() {
            let raw: Vec<f64> = members.iter().map(|&i| rows[i].scores[t].0).collect();
            let (z, bad) = crate::variance::normalize::by_class(&raw, &trained);
            for (&i, z) in members.iter().zip(z) {
                rows[i].scores[t].1 = z;
            }
            let names = degenerate.entry(kind).or_default();
            for c in bad {
                let name = class_name(c);
                if !names.contains(&name) {
                    names.push(name);
                }
            }
        }
    }
    degenerate.retain(|_, v| !v.is_empty());
    degenerate
}

/// Says once per class that its scores had no spread.
pub fn warn_degenerate(
    degenerate: &BTreeMap<SplitKind, Vec<String>>,
    reporter: &dyn crate::progress::Reporter,
) {
    for (split, classes) in degenerate {
        for class in classes {
            reporter.warn(&format!("{split} class '{class}' has a single example or no spread in VoG; its scores are set to 0"));
        }
    }
}
