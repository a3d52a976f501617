//! The rows of a scores file: each split scored against the labels training used (shuffled
//! or relabelled ones included), one row per example in dataset order, with the training
//! dynamics columns of the training rows.
use super::gradients::{Scorer, SplitScores};
use crate::data::plant::Kind;
use crate::data::prepare::PreparedData;
use crate::data::{Split, SplitKind};
use crate::dynamics::DynamicsScores;
use crate::progress::Reporter;
use crate::scores::ScoreRow;
use std::collections::HashMap;

/// What the rows need to know about labels.
pub(super) struct Labels<'a> {
    /// id -> the label trained with, where it was shuffled.
    pub(super) assigned: &'a HashMap<String, i64>,
    pub(super) class_names: &'a [String],
    /// id -> the kind of hardness planted into that training example (`--plant`).
    pub(super) planted: &'a HashMap<String, Kind>,
}

/// Scores every split (labels as trained); the rows carry raw VoG and NaN z-scores.
pub(super) fn score_splits(
    scorer: &Scorer,
    splits: &[(SplitKind, &Split)],
    labels: &Labels,
    dynamics: Option<&DynamicsScores>,
    reporter: &dyn Reporter,
) -> Vec<ScoreRow> {
    let assigned = labels.assigned;
    let total: usize = splits.iter().map(|(_, s)| s.len()).sum();
    let device = crate::device::describe(scorer.options.device);
    let task = reporter.task(
        &format!("scoring on {device}"),
        (total * scorer.models.len()) as u64,
        "image x checkpoint",
    );
    let mut rows = Vec::with_capacity(total);
    for &(kind, split) in splits {
        let trained: Vec<i64> = split
            .ids
            .iter()
            .zip(&split.labels)
            .map(|(id, &l)| *assigned.get(id).unwrap_or(&l))
            .collect();
        let s = scorer.score(&split.images, &trained, task.as_ref());
        rows.extend(split_rows(kind, split, &trained, &s, labels, dynamics));
    }
    rows
}

/// The scores file's rows of one split; `dynamics`, where the run recorded them, fill the
/// training rows' dynamics columns and leave the test rows' empty.
fn split_rows(
    kind: SplitKind,
    split: &Split,
    trained: &[i64],
    s: &SplitScores,
    labels: &Labels,
    dynamics: Option<&DynamicsScores>,
) -> Vec<ScoreRow> {
    let companions = |i: usize| -> Vec<Option<f64>> {
        let mut v: Vec<Option<f64>> = s.companions.iter().map(|c| Some(c[i])).collect();
        if let Some(d) = dynamics {
            let columns = [
                &d.confidence,
                &d.variability,
                &d.correctness,
                &d.forgetting,
                &d.aum,
            ];
            v.extend(columns.map(|c| (kind == SplitKind::Train).then(|| c[i])));
        }
        v
    };
    (0..split.len())
        .map(|i| ScoreRow {
            id: split.ids[i].clone(),
            split: kind,
            index: i,
            label: split.labels[i],
            label_name: labels.class_names[split.labels[i] as usize].clone(),
            trained_label: trained[i],
            noisy: trained[i] != split.labels[i],
            predicted: s.predicted[i],
            correct: s.predicted[i] == split.labels[i],
            scores: s.raw.iter().map(|r| (r[i], f64::NAN)).collect(),
            companions: companions(i),
            suggested_label: None,
            planted: match kind {
                SplitKind::Train => labels.planted.get(&split.ids[i]).copied(),
                SplitKind::Test => None,
            },
            near_duplicate_set: None,
        })
        .collect()
}

/// id -> the kind planted into it, for the training examples `--plant` altered.
pub(super) fn planted(prepared: &PreparedData) -> HashMap<String, Kind> {
    prepared
        .planted
        .iter()
        .map(|p| (p.id.clone(), p.kind))
        .collect()
}

/// id -> the label trained with, where it is not the dataset's: shuffled by the run's
/// label noise or relabelled by a person, as training saw it.
pub(super) fn trained_labels(prepared: &PreparedData) -> HashMap<String, i64> {
    let train = &prepared.data.train;
    train
        .ids
        .iter()
        .zip(&train.labels)
        .zip(&prepared.train_labels)
        .filter(|((_, dataset), trained)| dataset != trained)
        .map(|((id, _), &trained)| (id.clone(), trained))
        .collect()
}
