//! The columns that join a scores file from elsewhere than its gradients: the training
//! dynamics `vog train` recorded (Data Maps, forgetting, AUM), and the out-of-sample
//! probabilities of `vog crossval` (confident learning's columns, the suggested label, and
//! how strong the fold models were).
use super::ScoreConfig;
use crate::data::SplitKind;
use crate::dynamics::{self, DynamicsScores};
use crate::progress::Reporter;
use crate::run_dir::{RunDir, RunManifest};
use crate::scores::ScoreRow;
use anyhow::{bail, Context, Result};
use std::collections::HashMap;

/// The training-dynamics scores of the run's training split, when the train split is scored
/// and the run recorded them (runs from before it did not: said once).
pub(super) fn read_dynamics(
    cfg: &ScoreConfig,
    run: &RunDir,
    m: &RunManifest,
    reporter: &dyn Reporter,
) -> Result<Option<DynamicsScores>> {
    if !cfg.options.split.kinds().contains(&SplitKind::Train) {
        return Ok(None);
    }
    let Some(dir) = &m.dynamics else {
        reporter.warn("the run has no training dynamics (it was trained by an older vog), so the scores lack confidence, variability, correctness, forgetting and aum");
        return Ok(None);
    };
    let records = dynamics::read_run(
        run.root(),
        m.epochs.len(),
        m.dataset.train_examples,
        &m.dataset.fingerprint,
    )
    .with_context(|| format!("run '{}' ({dir}/)", cfg.run.display()))?;
    Ok(Some(dynamics::summarize(&records)))
}

/// Where the out-of-sample columns came from: the probabilities' digest, and how strong
/// their fold models were.
pub(super) struct OutOfSampleRecord {
    pub(super) digest: crate::digest::FileDigest,
    pub(super) strength: crate::confident::Strength,
}

/// Adds the out-of-sample scores of `vog crossval` (where it ran) to the training rows,
/// empty in test rows; returns where they came from, if they were added. A crossval begun
/// and not finished is said.
fn add_out_of_sample(
    cfg: &ScoreConfig,
    m: &RunManifest,
    rows: &mut [ScoreRow],
    reporter: &dyn Reporter,
) -> Result<Option<OutOfSampleRecord>> {
    if !cfg.options.split.kinds().contains(&SplitKind::Train) {
        return Ok(None);
    }
    let oof = crate::oof::read(&cfg.run, &m.id(), &m.dataset.fingerprint)?;
    let (oos, meta) = match oof {
        crate::oof::State::Gathered(oos, meta) => (oos, meta),
        crate::oof::State::None => return Ok(None),
        crate::oof::State::Unfinished(why) => {
            reporter.warn(&format!(
                "{why}: these scores have no out-of-sample columns"
            ));
            return Ok(None);
        }
    };
    let issues = crate::confident::label_issues(&oos.labels, &oos.probs)?;
    let columns = [
        crate::confident::self_confidence(&oos.labels, &oos.probs),
        crate::confident::normalized_margin(&oos.labels, &oos.probs),
        crate::confident::entropy(&oos.probs),
        issues.iter().map(|&b| if b { 1.0 } else { 0.0 }).collect(),
    ];
    let at: HashMap<&str, usize> = oos
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    for r in rows.iter_mut() {
        if r.split != SplitKind::Train {
            r.companions.extend([None; 4]);
            continue;
        }
        let i = match at.get(r.id.as_str()) {
            Some(&i) if oos.labels[i] as i64 == r.trained_label => i,
            _ => bail!(
                "the out-of-sample probabilities in '{}' do not cover training example '{}' with \
                 its label (the run changed since vog crossval ran: run it again)",
                cfg.run.join(crate::oof::DIR).display(),
                r.id
            ),
        };
        r.companions.extend(columns.iter().map(|c| Some(c[i])));
        r.suggested_label = Some(crate::confident::argmax(&oos.probs[i]) as i64);
    }
    let strength = strength(&meta, &issues, &oos)?;
    Ok(Some(OutOfSampleRecord {
        digest: meta.csv,
        strength,
    }))
}

/// Adds the columns of `vog crossval` ([`add_out_of_sample`], [`add_outliers`]): where the
/// out-of-sample ones came from, and whether `outlier` was added.
pub(super) fn add_crossval(
    cfg: &ScoreConfig,
    m: &RunManifest,
    rows: &mut [ScoreRow],
    reporter: &dyn Reporter,
) -> Result<(Option<OutOfSampleRecord>, bool)> {
    let out_of_sample = add_out_of_sample(cfg, m, rows, reporter)?;
    Ok((out_of_sample, add_outliers(cfg, m, rows)?))
}

/// Adds the `outlier` column of `vog crossval --features` (its `neighbours.csv`), and
/// each example's set of near-duplicates, to every row, where the run's probabilities came from features; returns whether it did.
fn add_outliers(cfg: &ScoreConfig, m: &RunManifest, rows: &mut [ScoreRow]) -> Result<bool> {
    let Some(meta) = crate::oof::read_meta(&cfg.run)? else {
        return Ok(false);
    };
    let Some(fit) = meta.features.filter(|_| meta.run_id == m.id()) else {
        return Ok(false);
    };
    let found = crate::oof::read_neighbours(&cfg.run, &fit.neighbours)?;
    for r in rows.iter_mut() {
        match found.get(&r.id) {
            Some(&(outlier, set)) => {
                r.companions.push(Some(outlier));
                r.near_duplicate_set = set;
            }
            None if r.split == SplitKind::Test => r.companions.push(None),
            None => bail!(
                "'{}' has no outlier score of training example '{}' (the run changed since \
                 vog crossval --features ran: run it again)",
                cfg.run
                    .join(crate::oof::DIR)
                    .join(crate::oof::NEIGHBOURS_CSV)
                    .display(),
                r.id
            ),
        }
    }
    Ok(true)
}

/// How strong the fold models of `meta` were (their pooled held-out agreement with the
/// given labels against their mean accuracy on the clean test split), and what that allows
/// of the `issues` they flag.
fn strength(
    meta: &crate::oof::ProbsMeta,
    issues: &[bool],
    oos: &crate::oof::OutOfSample,
) -> Result<crate::confident::Strength> {
    let folds = &meta.fold_records;
    let held: usize = folds.iter().map(|f| f.examples).sum();
    let right: f64 = folds.iter().map(|f| f.accuracy * f.examples as f64).sum();
    let tests: Option<Vec<f64>> = folds.iter().map(|f| f.test_accuracy).collect();
    let fit = crate::confident::FoldFit {
        given: right / held.max(1) as f64,
        test: tests
            .filter(|t| !t.is_empty())
            .zip(meta.test_examples)
            .map(|(t, n)| (t.iter().sum::<f64>() / t.len() as f64, n)),
        run_test: meta.run_test_accuracy,
        classes: meta.classes,
    };
    let flagged = issues.iter().filter(|&&b| b).count();
    let mut strength = crate::confident::Strength::new(
        fit,
        (flagged, issues.len()),
        crate::confident::joint_noise_rate(&oos.labels, &oos.probs)?,
    );
    strength.fold_models = meta.features.as_ref().map(|f| f.describe());
    Ok(strength)
}
