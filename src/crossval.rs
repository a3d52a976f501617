//! `vog crossval`: out-of-sample predicted probabilities for every training example of a
//! run, by cross-fitting (the input confident learning needs; Northcutt et al. 2021,
//! Section 4). The run's training set is split into K folds, stratified by the label trained
//! with and seeded by the run's seed; for each fold a model is trained with the run's own
//! recipe on the other K-1 folds, and its last checkpoint predicts the held-out fold. Each
//! fold is an ordinary run directory, `RUN/crossval/fold-I/` (resumable, locked, verified
//! like any run), trained on exactly the run's examples and labels (its shuffled and
//! relabelled ones kept) less the fold: the fold's `exclude.csv` and `relabel.csv` say so.
//! The probabilities go to `RUN/crossval/probs.csv` (`id,label,p0..pK-1`, the label the
//! one trained with) with a sidecar `probs.json` tying them to the run's data.
use crate::data::prepare::{self, PreparedData};
use crate::data::transform;
use crate::oof::{self, OutOfSample};
use crate::origin::Origins;
use crate::precision::Precision;
use crate::progress::Reporter;
use crate::rng;
use crate::run_dir::{RunDir, RunManifest, MANIFEST};
use crate::scoring;
use crate::train::{self, Edits};
use anyhow::{bail, Context, Result};
use rand::seq::SliceRandom;
use std::path::{Path, PathBuf};
use tch::{Kind, Tensor};

/// A validated `vog crossval` request.
#[derive(Debug, Clone)]
pub struct CrossvalRequest {
    pub run: PathBuf,
    /// K, at least 2.
    pub folds: usize,
    /// Train only this fold (one per GPU or Slurm task), then stop.
    pub only: Option<usize>,
    /// Train nothing: gather the probabilities of folds already trained.
    pub gather: bool,
}

/// The fold of each training example: stratified by `labels`, dealt round-robin after a
/// seeded shuffle within each class, so folds are disjoint, complete and balanced.
pub fn assign_folds(labels: &[i64], folds: usize, seed: u64) -> Result<Vec<usize>> {
    if folds < 2 {
        bail!("--folds must be at least 2 (every example needs a model that did not see it)");
    }
    let mut rng = rng::stream(seed, "crossval");
    let mut fold = vec![0; labels.len()];
    let mut classes: Vec<i64> = labels.to_vec();
    classes.sort_unstable();
    classes.dedup();
    for c in classes {
        let mut members: Vec<usize> = (0..labels.len()).filter(|&i| labels[i] == c).collect();
        if members.len() < folds {
            bail!(
                "class {c} has {} training example(s), fewer than the {folds} folds: every fold's \
                 model must see every class (use fewer --folds)",
                members.len()
            );
        }
        members.shuffle(&mut rng);
        for (n, i) in members.into_iter().enumerate() {
            fold[i] = n % folds;
        }
    }
    Ok(fold)
}

/// Runs `vog crossval`; returns the probabilities gathered (`None` when only one fold was
/// trained).
pub fn run(req: &CrossvalRequest, reporter: &dyn Reporter) -> Result<Option<OutOfSample>> {
    let main = RunDir::open_shared(&req.run)?;
    let m = main.read_manifest()?;
    if !m.complete {
        bail!(
            "run '{}' has not finished training; finish it (vog train --resume) before cross-fitting",
            req.run.display()
        );
    }
    let origins = Origins::file(&main.path(MANIFEST), "config.");
    let cfg = &m.config;
    let prepared = prepare::prepare(&cfg.dataset, &cfg.selection(), cfg.hyper.seed, &origins)?;
    let fold = assign_folds(&prepared.train_labels, req.folds, cfg.hyper.seed)?;
    if let Some(i) = req.only.filter(|&i| i >= req.folds) {
        bail!(
            "--fold {i} is not one of the {} folds (0 to {})",
            req.folds,
            req.folds - 1
        );
    }
    let dir = req.run.join(oof::DIR);
    let wanted: Vec<usize> = match req.only {
        Some(i) => vec![i],
        None => (0..req.folds).collect(),
    };
    if !req.gather {
        for &f in &wanted {
            train_fold(&dir, f, &fold, &m, &prepared, reporter)?;
        }
    }
    if req.only.is_some() {
        return Ok(None);
    }
    let oos = gather(&dir, &fold, &m, &prepared, reporter)?;
    oof::write(
        &dir,
        &oos,
        &m.dataset.fingerprint,
        req.folds,
        cfg.hyper.seed,
    )?;
    Ok(Some(oos))
}

fn fold_dir(dir: &Path, f: usize) -> PathBuf {
    dir.join(format!("fold-{f}"))
}

/// Trains fold `f` (or resumes it, or finds it done), on the run's training examples and
/// labels less the fold.
fn train_fold(
    dir: &Path,
    f: usize,
    fold: &[usize],
    m: &RunManifest,
    prepared: &PreparedData,
    reporter: &dyn Reporter,
) -> Result<()> {
    let root = fold_dir(dir, f);
    let (_, cfg) = fold_config(fold, f, m, prepared)?;
    reporter.info(&format!("crossval fold {f}: the other folds' model"));
    train::ensure(&root, &cfg, reporter)?;
    Ok(())
}

/// Fold `f`'s held-out positions and the recipe its model trains with in `root`: the
/// run's, without them.
fn fold_config(
    fold: &[usize],
    f: usize,
    m: &RunManifest,
    prepared: &PreparedData,
) -> Result<(Vec<usize>, crate::config::TrainConfig)> {
    let held: Vec<usize> = (0..fold.len()).filter(|&i| fold[i] == f).collect();
    let edits = Edits {
        leave_out: &held,
        ..Edits::default()
    };
    let cfg = train::derived_config(&m.config, prepared, edits, m.config.hyper.seed)?;
    Ok((held, cfg))
}

/// The class probabilities of the training examples at `held` by the last checkpoint of
/// the fold run `run`, into `probs` (one row each, f64).
fn predict(
    run: &RunDir,
    fm: &RunManifest,
    prepared: &PreparedData,
    held: &[usize],
    probs: &mut [Vec<f64>],
) -> Result<()> {
    let train = &prepared.data.train;
    let last = *fm
        .saved_epochs
        .last()
        .context("the fold saved no checkpoint")?;
    let model = scoring::load_models(run, fm, &[last], fm.device, Precision::Fp32)?;
    let normalizer = fm.normalization.on(fm.device);
    for chunk in held.chunks(256) {
        let idx = Tensor::from_slice(&chunk.iter().map(|&i| i as i64).collect::<Vec<_>>());
        let x = train.images.index_select(0, &idx).to_device(fm.device);
        let x = normalizer.apply(&transform::to_unit(&x));
        let p = tch::no_grad(|| {
            tch::nn::ModuleT::forward_t(&model[0].net, &x, false).softmax(1, Kind::Double)
        });
        let rows = Vec::<Vec<f64>>::try_from(p.to_device(tch::Device::Cpu))?;
        for (&i, row) in chunk.iter().zip(rows) {
            probs[i] = row;
        }
    }
    Ok(())
}

/// Each fold's last checkpoint predicts its held-out examples.
fn gather(
    dir: &Path,
    fold: &[usize],
    m: &RunManifest,
    prepared: &PreparedData,
    reporter: &dyn Reporter,
) -> Result<OutOfSample> {
    let folds = fold.iter().max().map_or(0, |f| f + 1);
    let train = &prepared.data.train;
    let mut probs = vec![Vec::new(); train.len()];
    for f in 0..folds {
        let root = fold_dir(dir, f);
        let run = RunDir::open_shared(&root)
            .with_context(|| format!("fold {f} has not been trained (vog crossval --fold {f})"))?;
        let fm = run.read_manifest()?;
        if !fm.complete {
            bail!("fold {f} in '{}' has not finished training", root.display());
        }
        let (held, want) = fold_config(fold, f, m, prepared)?;
        if let Some(diff) = fm.config.difference(&want) {
            bail!(
                "fold {f} in '{}' was trained with another recipe or other examples ({diff}); \
                 run vog crossval again without --gather",
                root.display()
            );
        }
        predict(&run, &fm, prepared, &held, &mut probs)?;
        reporter.info(&format!(
            "crossval fold {f}: predicted {} held-out examples",
            held.len()
        ));
    }
    Ok(OutOfSample {
        ids: train.ids.clone(),
        labels: prepared.train_labels.iter().map(|&l| l as usize).collect(),
        probs,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_are_stratified_seeded_disjoint_and_complete() {
        let labels: Vec<i64> = (0..103).map(|i| (i % 3) as i64).collect();
        let folds = assign_folds(&labels, 4, 7).unwrap();
        assert_eq!(folds, assign_folds(&labels, 4, 7).unwrap(), "seeded");
        assert_ne!(folds, assign_folds(&labels, 4, 8).unwrap());
        for c in 0..3 {
            let mut sizes = [0usize; 4];
            for (i, &f) in folds.iter().enumerate() {
                if labels[i] == c {
                    sizes[f] += 1;
                }
            }
            // Each class spread over the folds within one example.
            assert!(
                sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1,
                "{sizes:?}"
            );
        }
        assert!(folds.iter().all(|&f| f < 4));
        let err = assign_folds(&labels, 40, 7).unwrap_err().to_string();
        assert!(err.contains("fewer than the 40 folds"), "{err}");
        assert!(assign_folds(&labels, 1, 7).is_err());
    }
}
