//! The ordering of scored examples that `vog rank`, the grids and the report share: by a
//! score column, highest or lowest first, ties by id so the output is deterministic.
use super::csv::{value, ScoreRow};
use super::ScoresFile;
use anyhow::Result;
use std::collections::BTreeMap;

/// An example with the score it is ranked by.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Scored<'a> {
    pub row: &'a ScoreRow,
    pub score: f64,
}

/// A scored example with its place in the ordering.
#[derive(Debug, Clone, PartialEq)]
pub struct Ranked<'a> {
    pub rank: usize,
    pub scored: Scored<'a>,
    pub predicted_name: String,
    /// The name of the label trained with (the dataset's unless shuffled or relabelled).
    pub trained_name: String,
    /// The name of the out-of-sample suggestion, where the file has one.
    pub suggested_name: Option<String>,
}

/// The name of `label` in `names`, or its number.
pub fn name_of(names: &BTreeMap<i64, String>, label: i64) -> String {
    names
        .get(&label)
        .cloned()
        .unwrap_or_else(|| label.to_string())
}

/// Every example of `f` that has a value in score column `column` (any of
/// [`ScoresFile::columns`]), with that value.
pub fn scored<'a>(f: &'a ScoresFile, column: &str) -> Result<Vec<Scored<'a>>> {
    let col = f.column(column)?;
    Ok(f.rows
        .iter()
        .filter_map(|row| value(row, col).map(|score| Scored { row, score }))
        .collect())
}

/// The class names of `f` by label, from its rows (a label no row has is named by its
/// number).
pub fn file_classes(f: &ScoresFile) -> Vec<String> {
    let names: BTreeMap<i64, String> = f
        .rows
        .iter()
        .map(|r| (r.label, r.label_name.clone()))
        .collect();
    (0..=names.keys().max().copied().unwrap_or(0))
        .map(|l| name_of(&names, l))
        .collect()
}

/// label -> name, from the examples' labels.
pub fn class_names(entries: &[Scored]) -> BTreeMap<i64, String> {
    entries
        .iter()
        .map(|e| (e.row.label, e.row.label_name.clone()))
        .collect()
}

/// The `k` highest (or lowest) examples; ties by id. `names` maps labels to names.
pub fn top_k<'a>(
    entries: &[Scored<'a>],
    k: usize,
    lowest: bool,
    names: &BTreeMap<i64, String>,
) -> Vec<Ranked<'a>> {
    let mut sorted: Vec<Scored<'a>> = entries.to_vec();
    sorted.sort_by(|a, b| {
        let by_score = if lowest {
            a.score.total_cmp(&b.score)
        } else {
            b.score.total_cmp(&a.score)
        };
        by_score.then_with(|| a.row.id.cmp(&b.row.id))
    });
    sorted
        .into_iter()
        .take(k)
        .enumerate()
        .map(|(i, e)| Ranked {
            rank: i + 1,
            predicted_name: name_of(names, e.row.predicted),
            trained_name: name_of(names, e.row.trained_label),
            suggested_name: e.row.suggested_label.map(|l| name_of(names, l)),
            scored: e,
        })
        .collect()
}

/// Examples grouped by class, in label order.
pub fn per_class<'a>(entries: &[Scored<'a>]) -> Vec<(String, Vec<Scored<'a>>)> {
    let mut groups: BTreeMap<i64, (String, Vec<Scored<'a>>)> = BTreeMap::new();
    for e in entries {
        groups
            .entry(e.row.label)
            .or_insert_with(|| (e.row.label_name.clone(), Vec::new()))
            .1
            .push(*e);
    }
    groups.into_values().collect()
}
