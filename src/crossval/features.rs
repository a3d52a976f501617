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
use std::collections::HashMap;
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
         each fold model's training examples (as many folds as the smallest class has \
         examples where that is fewer, at least 2; ties to the smaller C); features \
         standardized with the mean and standard deviation of the examples each model is \
         fitted on",
        logistic::INNER_FOLDS
    )
}

/// The bytes of `neighbours.csv` and `near-duplicates.csv`.
pub(super) type NeighbourFiles = (Vec<u8>, Vec<u8>);

/// What every fold model is fitted on: the run's training features (`[N, D]` f64), the
/// labels it trained with, the folds, and the test split's features and true labels; the
/// feature file every fold record names.
struct Problem<'a> {
    feats: &'a Features,
    x: Tensor,
    labels: &'a [i64],
    classes: i64,
    fold: &'a [usize],
    seed: u64,
    test: Option<(Tensor, Vec<i64>)>,
}

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
    check_classes(feats, &data.class_names)?;
    let train = &data.train;
    let x = feats.rows(SplitKind::Train, &train.ids, &train.pixel_digests())?;
    let problem = Problem {
        feats,
        x: x.to_kind(Kind::Double),
        labels: &prepared.train_labels,
        classes: data.num_classes() as i64,
        fold,
        seed: m.config.hyper.seed,
        test: test_rows(feats, prepared, reporter)?,
    };
    let folds = fold.iter().max().map_or(0, |f| f + 1);
    let mut probs = vec![Vec::new(); train.len()];
    let mut records = Vec::with_capacity(folds);
    for f in 0..folds {
        records.push(fit_fold(&problem, f, &mut probs, reporter)?);
        if reporter.stop_requested() {
            bail!("stopped by the user; nothing was written");
        }
    }
    let oos = OutOfSample {
        ids: train.ids.clone(),
        labels: prepared.train_labels.iter().map(|&l| l as usize).collect(),
        probs,
    };
    let test = problem.test.as_ref().map(|t| &t.0);
    let (files, neighbours) = neighbours(&problem.x, test, prepared)?;
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

/// Refuses features of a dataset with other classes than the run's.
fn check_classes(feats: &Features, names: &[String]) -> Result<()> {
    if feats.meta.class_names != names {
        bail!(
            "'{}' holds features of a dataset with other classes ({}) than the run's ({})",
            feats.path.display(),
            feats.meta.class_names.join(", "),
            names.join(", ")
        );
    }
    Ok(())
}

/// Fits fold `f`'s model, writes its held-out rows of `probs`; its record.
fn fit_fold(
    p: &Problem,
    f: usize,
    probs: &mut [Vec<f64>],
    reporter: &dyn Reporter,
) -> Result<FoldRecord> {
    let (fit_at, held): (Vec<usize>, Vec<usize>) = (0..p.fold.len()).partition(|&i| p.fold[i] != f);
    let pick = |at: &[usize]| {
        let idx: Vec<i64> = at.iter().map(|&i| i as i64).collect();
        p.x.index_select(0, &Tensor::from_slice(&idx))
    };
    let labels: Vec<i64> = fit_at.iter().map(|&i| p.labels[i]).collect();
    let xf = pick(&fit_at);
    let mut inner = rng::stream(p.seed, &format!("crossval-features-{f}"));
    let choice = logistic::choose_c(&xf, &labels, p.classes, &mut inner)?;
    let scaler = Standardizer::fit(&xf);
    let y = Tensor::from_slice(&labels);
    let model = logistic::fit(&scaler.apply(&xf), &y, p.classes, choice.c);
    let rows = Vec::<Vec<f64>>::try_from(model.predict(&scaler.apply(&pick(&held))))?;
    for (&i, row) in held.iter().zip(rows) {
        probs[i] = row;
    }
    let right = held
        .iter()
        .filter(|&&i| argmax(&probs[i]) as i64 == p.labels[i])
        .count();
    let accuracy = right as f64 / held.len().max(1) as f64;
    let test_accuracy = match &p.test {
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
    Ok(FoldRecord {
        fold: f,
        examples: held.len(),
        accuracy,
        test_accuracy,
        checkpoint: p.feats.path.display().to_string(),
        digest: p.feats.meta.tensors.clone(),
        linear: Some(LinearFold {
            choice,
            iterations: model.iterations,
            converged: model.converged,
        }),
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
    let test_split = data.test.as_ref().filter(|_| test.is_some());
    let mut digests = data.train.pixel_digests();
    if let Some(t) = test_split {
        digests.extend(t.pixel_digests());
    }
    let found = crate::neighbours::find(train, test.unwrap_or(&none), &digests);
    let mut splits = vec![(SplitKind::Train, &data.train)];
    splits.extend(test_split.map(|t| (SplitKind::Test, t)));
    let (set_of, members) = members(&found, prepared, &splits);
    let mut rows = Vec::new();
    for ((kind, split), outlier) in splits.iter().zip(&found.outlier) {
        rows.extend(split.ids.iter().enumerate().map(|(i, id)| NeighbourRow {
            id: id.clone(),
            split: *kind,
            outlier: outlier[i],
            set: set_of.get(&(*kind, i)).copied(),
        }));
    }
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

/// The set (from 1) of every image in one, and the rows of `near-duplicates.csv`.
fn members(
    found: &crate::neighbours::Neighbours,
    prepared: &PreparedData,
    splits: &[(SplitKind, &crate::data::Split)],
) -> (HashMap<(SplitKind, usize), usize>, Vec<DuplicateRow>) {
    let names = &prepared.data.class_names;
    let mut set_of = HashMap::new();
    let mut rows = Vec::new();
    for (n, set) in found.sets.iter().enumerate() {
        for m in set {
            set_of.insert((m.split, m.index), n + 1);
            let split = splits
                .iter()
                .find(|(k, _)| *k == m.split)
                .expect("a split embedded")
                .1;
            let trained = match m.split {
                SplitKind::Train => prepared.train_labels[m.index],
                SplitKind::Test => split.labels[m.index],
            };
            rows.push(DuplicateRow {
                set: n + 1,
                id: split.ids[m.index].clone(),
                split: m.split,
                label: names[split.labels[m.index] as usize].clone(),
                trained_label: names[trained as usize].clone(),
                distance: m.distance,
                exact: m.exact,
            });
        }
    }
    (set_of, rows)
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
