//! `vog crossval --features`: each fold model is a multinomial logistic regression
//! ([`crate::logistic`]) fitted on the features of the other folds' examples, with the
//! labels the run trained with, its `C` chosen within those folds alone; it predicts its
//! held-out examples and, where the file has them, the run's test examples (true labels).
use super::FoldRecord;
use crate::confident::argmax;
use crate::data::prepare::PreparedData;
use crate::data::SplitKind;
use crate::features::Features;
use crate::logistic::{self, Standardizer};
use crate::oof::{
    DuplicateRow, FeatureFit, LinearFold, NeighbourRecord, NeighbourRow, OutOfSample,
};
use crate::progress::Reporter;
use crate::rng;
use crate::run_dir::RunManifest;
use anyhow::{bail, Result};
use std::time::Instant;
use tch::{Kind, Tensor};

/// The probabilities, each fold's record, and how they were fitted.
pub(super) struct Fitted {
    pub(super) oos: OutOfSample,
    pub(super) records: Vec<FoldRecord>,
    pub(super) fit: FeatureFit,
    pub(super) files: NeighbourFiles,
}

/// The rule [`logistic::choose_c`] applies, in words, for the sidecar.
fn rule() -> String {
    format!(
        "C with the lowest mean held-out log loss in stratified {}-fold cross-validation within \
         each fold model's training examples (ties to the smaller C); features standardized \
         with the mean and standard deviation of the examples each model is fitted on",
        logistic::INNER_FOLDS
    )
}

/// The bytes of `neighbours.csv` and `near-duplicates.csv`.
pub(super) type NeighbourFiles = (Vec<u8>, Vec<u8>);

/// Fits one model per fold of `fold` on `feats`' vectors of the run's examples.
pub(super) fn fit_folds(
    feats: &Features,
    fold: &[usize],
    m: &RunManifest,
    prepared: &PreparedData,
    reporter: &dyn Reporter,
) -> Result<Fitted> {
    let started = Instant::now();
    let data = &prepared.data;
    if feats.meta.class_names != data.class_names {
        bail!(
            "'{}' holds features of a dataset with other classes ({}) than the run's ({})",
            feats.path.display(),
            feats.meta.class_names.join(", "),
            data.class_names.join(", ")
        );
    }
    let x = feats
        .rows(
            SplitKind::Train,
            &data.train.ids,
            &data.train.pixel_digests(),
        )?
        .to_kind(Kind::Double);
    let test = test_rows(feats, prepared, reporter)?;
    let classes = data.num_classes() as i64;
    let folds = fold.iter().max().map_or(0, |f| f + 1);
    let mut probs = vec![Vec::new(); data.train.len()];
    let mut records = Vec::with_capacity(folds);
    for f in 0..folds {
        let (fit_at, held): (Vec<usize>, Vec<usize>) = (0..fold.len()).partition(|&i| fold[i] != f);
        let pick = |at: &[usize]| {
            let idx: Vec<i64> = at.iter().map(|&i| i as i64).collect();
            x.index_select(0, &Tensor::from_slice(&idx))
        };
        let labels: Vec<i64> = fit_at.iter().map(|&i| prepared.train_labels[i]).collect();
        let xf = pick(&fit_at);
        let mut inner = rng::stream(m.config.hyper.seed, &format!("crossval-features-{f}"));
        let choice = logistic::choose_c(&xf, &labels, classes, &mut inner)?;
        let scaler = Standardizer::fit(&xf);
        let model = logistic::fit(
            &scaler.apply(&xf),
            &Tensor::from_slice(&labels),
            classes,
            choice.c,
        );
        let p = Vec::<Vec<f64>>::try_from(model.predict(&scaler.apply(&pick(&held))))?;
        for (&i, row) in held.iter().zip(p) {
            probs[i] = row;
        }
        let right = held
            .iter()
            .filter(|&&i| argmax(&probs[i]) as i64 == prepared.train_labels[i])
            .count();
        let accuracy = right as f64 / held.len().max(1) as f64;
        let test_accuracy = match &test {
            Some((xt, yt)) => Some(test_accuracy(&model.predict(&scaler.apply(xt)), yt)?),
            None => None,
        };
        reporter.info(&format!(
            "crossval fold {f}: logistic regression (C = {}) predicts {:.1}% of {} held-out examples as the label they train with{}",
            choice.c,
            100.0 * accuracy,
            held.len(),
            if model.converged { "" } else { " (the fit stopped before converging)" }
        ));
        records.push(FoldRecord {
            fold: f,
            examples: held.len(),
            accuracy,
            test_accuracy,
            checkpoint: feats.path.display().to_string(),
            digest: feats.meta.tensors.clone(),
            linear: Some(LinearFold {
                choice,
                iterations: model.iterations,
                converged: model.converged,
            }),
        });
        if reporter.stop_requested() {
            bail!("stopped by the user; nothing was written");
        }
    }
    let oos = OutOfSample {
        ids: data.train.ids.clone(),
        labels: prepared.train_labels.iter().map(|&l| l as usize).collect(),
        probs,
    };
    let (files, neighbours) = neighbours(&x, test.as_ref().map(|t| &t.0), prepared)?;
    let fit = FeatureFit {
        file: feats.path.clone(),
        digest: feats.meta.tensors.clone(),
        source: feats.meta.source.describe(),
        dim: feats.meta.dim,
        rule: rule(),
        grid: logistic::GRID.to_vec(),
        held_out_fold: fold.to_vec(),
        seconds: started.elapsed().as_secs_f64(),
        neighbours,
    };
    Ok(Fitted {
        oos,
        records,
        fit,
        files,
    })
}

/// Outliers and near-duplicates among the run's images: the two files and their record.
fn neighbours(
    train: &Tensor,
    test: Option<&Tensor>,
    prepared: &PreparedData,
) -> Result<(NeighbourFiles, NeighbourRecord)> {
    let data = &prepared.data;
    let none = Tensor::zeros([0, train.size()[1]], (Kind::Double, train.device()));
    let mut digests = data.train.pixel_digests();
    let test_split = data.test.as_ref().filter(|_| test.is_some());
    if let Some(t) = test_split {
        digests.extend(t.pixel_digests());
    }
    let found = crate::neighbours::find(train, test.unwrap_or(&none), &digests);
    let splits: Vec<(SplitKind, &crate::data::Split)> =
        std::iter::once((SplitKind::Train, &data.train))
            .chain(test_split.map(|t| (SplitKind::Test, t)))
            .collect();
    let mut set_of = std::collections::HashMap::new();
    let mut members = Vec::new();
    for (n, set) in found.sets.iter().enumerate() {
        for m in set {
            set_of.insert((m.split, m.index), n + 1);
            let split = if m.split == SplitKind::Train {
                &data.train
            } else {
                test_split.expect("a test member")
            };
            let trained = match m.split {
                SplitKind::Train => prepared.train_labels[m.index],
                SplitKind::Test => split.labels[m.index],
            };
            members.push(DuplicateRow {
                set: n + 1,
                id: split.ids[m.index].clone(),
                split: m.split,
                label: data.class_names[split.labels[m.index] as usize].clone(),
                trained_label: data.class_names[trained as usize].clone(),
                distance: m.distance,
                exact: m.exact,
            });
        }
    }
    let rows: Vec<NeighbourRow> = splits
        .iter()
        .zip(&found.outlier)
        .flat_map(|((kind, split), outlier)| {
            let set_of = &set_of;
            split
                .ids
                .iter()
                .enumerate()
                .map(move |(i, id)| NeighbourRow {
                    id: id.clone(),
                    split: *kind,
                    outlier: outlier[i],
                    set: set_of.get(&(*kind, i)).copied(),
                })
        })
        .collect();
    let files = crate::oof::neighbour_files(&rows, &members)?;
    let record = NeighbourRecord {
        k: crate::neighbours::K,
        threshold: crate::neighbours::THRESHOLD,
        radius: found.radius,
        sets: found.sets.len(),
        crossing: found
            .sets
            .iter()
            .filter(|s| s.iter().any(|m| m.split != s[0].split))
            .count(),
        exact: found
            .sets
            .iter()
            .filter(|s| s.iter().any(|m| m.exact))
            .count(),
        neighbours_csv: crate::digest::of_bytes(&files.0),
        near_duplicates_csv: crate::digest::of_bytes(&files.1),
    };
    Ok((files, record))
}

/// The features and true labels of the run's test examples, where the run has a test
/// split; a file without them is said (the strength verdict then lacks the fold models'
/// test accuracy).
fn test_rows(
    feats: &Features,
    prepared: &PreparedData,
    reporter: &dyn Reporter,
) -> Result<Option<(Tensor, Vec<i64>)>> {
    let Some(t) = &prepared.data.test else {
        return Ok(None);
    };
    if !feats.meta.splits.iter().any(|s| s.split == SplitKind::Test) {
        reporter.warn(&format!(
            "'{}' holds no test features, so the fold models' test accuracy (and with it the \
             strength of their flags) is unknown",
            feats.path.display()
        ));
        return Ok(None);
    }
    let x = feats.rows(SplitKind::Test, &t.ids, &t.pixel_digests())?;
    Ok(Some((x.to_kind(Kind::Double), t.labels.clone())))
}

/// The share of rows of `p` (`[N, C]`) whose likeliest class is `labels`'.
fn test_accuracy(p: &Tensor, labels: &[i64]) -> Result<f64> {
    let rows = Vec::<Vec<f64>>::try_from(p)?;
    let right = rows
        .iter()
        .zip(labels)
        .filter(|(r, &y)| argmax(r) as i64 == y)
        .count();
    Ok(right as f64 / labels.len().max(1) as f64)
}
