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
//!
//! With `--features` no network is trained: each fold model is a logistic regression on a
//! feature file's vectors of the run's examples ([`features`]).
mod features;
use crate::confident::argmax;
use crate::data::prepare::PreparedData;
use crate::data::transform;
use crate::oof::{self, FoldRecord, OutOfSample, ProbsMeta};
use crate::precision::Precision;
use crate::progress::Reporter;
use crate::rng;
use crate::run_dir::{RunDir, RunManifest};
use crate::scoring;
use crate::train::{self, Edits};
use anyhow::{bail, Context, Result};
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
    /// Replace a cross-fitting of another K (or of an earlier training of the run).
    pub overwrite: bool,
    /// Fit logistic regression on these features (a `vog embed` file) instead of training.
    pub features: Option<PathBuf>,
}

/// What a finished `vog crossval` gathered.
#[derive(Debug)]
pub struct Gathered {
    pub oos: OutOfSample,
    pub meta: ProbsMeta,
}

/// The fold of each training example: stratified by `labels`, dealt round-robin after a
/// seeded shuffle within each class, so folds are disjoint, complete and balanced.
pub fn assign_folds(labels: &[i64], folds: usize, seed: u64) -> Result<Vec<usize>> {
    crate::data::subset::folds(labels, folds, &mut rng::stream(seed, "crossval"))
}

/// Runs `vog crossval`; returns the probabilities gathered (`None` when only one fold was
/// trained).
pub fn run(req: &CrossvalRequest, reporter: &dyn Reporter) -> Result<Option<Gathered>> {
    let main = RunDir::open_shared(&req.run)?;
    let m = main.read_manifest()?;
    if !m.complete {
        bail!(
            "run '{}' has not finished training; finish it (vog train --resume) before cross-fitting",
            req.run.display()
        );
    }
    let prepared = main.prepare_data(&m)?;
    let cfg = &m.config;
    let fold = assign_folds(&prepared.train_labels, req.folds, cfg.hyper.seed)?;
    if let Some(i) = req.only.filter(|&i| i >= req.folds) {
        bail!(
            "--fold {i} is not one of the {} folds (0 to {})",
            req.folds,
            req.folds - 1
        );
    }
    let dir = req.run.join(oof::DIR);
    if let Some(file) = &req.features {
        // Fitted on features, no fold trains: a run with planted hardness is fine.
        return from_features(req, file, &fold, &m, &prepared, reporter).map(Some);
    }
    crate::train::check_derivable(&m.config)?;
    let plan = oof::Plan {
        format: oof::PLAN_FORMAT.into(),
        run_id: m.id(),
        folds: req.folds,
        seed: cfg.hyper.seed,
        features: None,
    };
    adopt_plan(req, &plan)?;
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
    let (oos, fold_records) = gather(&dir, &fold, &m, &prepared, reporter)?;
    let mut meta = probs_meta(req, &plan, &m, &prepared, fold_records);
    oof::write(&req.run, &oos, &mut meta)?;
    Ok(Some(Gathered { oos, meta }))
}

/// Whether `run`'s `crossval/` holds what `vog crossval --features FILE --folds K` would
/// gather now: the probabilities of this training of the run, of K folds, fitted on FILE as
/// it is (its digest), intact.
pub fn up_to_date_on_features(run: &Path, file: &Path, folds: usize) -> Result<bool> {
    let m = RunDir::open_shared(run)?.read_manifest()?;
    let Some(meta) = oof::read_meta(run)? else {
        return Ok(false);
    };
    let Some(fit) = &meta.features else {
        return Ok(false);
    };
    if meta.run_id != m.id()
        || meta.folds != folds
        || !file.is_file()
        || fit.digest != crate::digest::of_file(file)?
    {
        return Ok(false);
    }
    let state = oof::read(run, &m.id(), &m.dataset.fingerprint);
    Ok(matches!(state, Ok(oof::State::Gathered(..))))
}

/// `vog crossval --features`: fold models fitted on `file`'s features; the plan, the
/// probabilities and the neighbour files are written only once every fold is fitted.
fn from_features(
    req: &CrossvalRequest,
    file: &Path,
    fold: &[usize],
    m: &RunManifest,
    prepared: &PreparedData,
    reporter: &dyn Reporter,
) -> Result<Gathered> {
    let feats = crate::features::read(file)?;
    let plan = oof::Plan {
        format: oof::PLAN_FORMAT.into(),
        run_id: m.id(),
        folds: req.folds,
        seed: m.config.hyper.seed,
        features: Some(feats.meta.tensors.clone()),
    };
    refuse_other_plan(req, &plan)?;
    let fitted = features::fit_folds(&feats, fold, m, prepared, reporter)?;
    adopt_plan(req, &plan)?;
    let mut meta = probs_meta(req, &plan, m, prepared, fitted.records);
    meta.features = Some(fitted.fit);
    let dir = req.run.join(oof::DIR);
    crate::atomic_file::write_bytes(&dir.join(oof::NEIGHBOURS_CSV), &fitted.files.0)?;
    crate::atomic_file::write_bytes(&dir.join(oof::NEAR_DUPLICATES_CSV), &fitted.files.1)?;
    oof::write(&req.run, &fitted.oos, &mut meta)?;
    Ok(Gathered {
        oos: fitted.oos,
        meta,
    })
}

/// The sidecar of probabilities gathered from `fold_records` (its digest and counts filled
/// in when written).
fn probs_meta(
    req: &CrossvalRequest,
    plan: &oof::Plan,
    m: &RunManifest,
    prepared: &PreparedData,
    fold_records: Vec<FoldRecord>,
) -> ProbsMeta {
    ProbsMeta {
        format: oof::PROBS_FORMAT.into(),
        run_id: plan.run_id.clone(),
        dataset_fingerprint: m.dataset.fingerprint.clone(),
        folds: req.folds,
        seed: plan.seed,
        examples: 0,
        classes: 0,
        fold_records,
        run_test_accuracy: m.epochs.last().and_then(|e| e.test_accuracy),
        test_examples: prepared.data.test.as_ref().map(|t| t.len()),
        csv: crate::digest::of_bytes(b""),
        features: None,
    }
}

/// Makes `plan` the cross-fitting of the run's `crossval/`: recorded if none was begun,
/// continued if it is the one there, else refused (naming the one there) unless
/// `overwrite`, which removes it. Nothing is written when refused.
fn adopt_plan(req: &CrossvalRequest, plan: &oof::Plan) -> Result<()> {
    let dir = req.run.join(oof::DIR);
    if refuse_other_plan(req, plan)? {
        return Ok(());
    }
    if req.overwrite && dir.exists() {
        std::fs::remove_dir_all(&dir)
            .with_context(|| format!("cannot remove '{}'", dir.display()))?;
    }
    oof::write_plan(&req.run, plan)
}

/// Refuses (writing nothing) a `plan` that is not the one `crossval/` holds, unless
/// `overwrite`; returns whether it is that one.
fn refuse_other_plan(req: &CrossvalRequest, plan: &oof::Plan) -> Result<bool> {
    let dir = req.run.join(oof::DIR);
    let there = oof::read_plan(&req.run)?;
    if there.as_ref() == Some(plan) {
        return Ok(true);
    }
    if req.gather {
        bail!(
            "'{}' holds no {}-fold cross-fitting of this run to gather{}",
            dir.display(),
            plan.folds,
            match &there {
                Some(p) => format!(" (it holds a {}-fold one)", p.folds),
                None => String::new(),
            }
        );
    }
    match (&there, req.overwrite) {
        (Some(p), false) if p.features != plan.features => bail!(
            "'{}' holds a {}-fold vog crossval {}: pass --overwrite to replace it",
            dir.display(),
            p.folds,
            match (&p.features, &plan.features) {
                (None, _) => "that trained the recipe's fold models",
                (Some(_), None) => "fitted on features (--features)",
                (Some(_), Some(_)) => "fitted on other features",
            }
        ),
        (Some(p), false) => bail!(
            "'{}' holds a {}-fold vog crossval{}: ask for --folds {} to continue it, or pass \
             --overwrite to replace it",
            dir.display(),
            p.folds,
            match p.run_id == plan.run_id {
                true => "",
                false => " of an earlier training of this run",
            },
            p.folds
        ),
        (None, false) if dir.join(oof::PROBS_JSON).exists() => bail!(
            "'{}' holds a cross-fitting of an older vog (no crossval.json): pass --overwrite to \
             replace it",
            dir.display()
        ),
        _ => {}
    }
    Ok(false)
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

/// What fold model `run` says: the class probabilities of the training examples at `held`
/// (into `probs`, one row each, f64) and, where the run has a test split, the share of its
/// test examples it predicts right (clean labels). Returns its checkpoint's name too.
fn predict(
    run: &RunDir,
    fm: &RunManifest,
    prepared: &PreparedData,
    held: &[usize],
    probs: &mut [Vec<f64>],
) -> Result<(String, Option<f64>)> {
    let last = *fm
        .saved_epochs
        .last()
        .context("the fold saved no checkpoint")?;
    let model = scoring::load_models(run, fm, &[last], fm.device, Precision::Fp32)?;
    let classify = |images: &Tensor, at: &[usize]| -> Result<Vec<Vec<f64>>> {
        let normalizer = fm.normalization.on(fm.device);
        let mut out = Vec::with_capacity(at.len());
        for chunk in at.chunks(256) {
            let idx = Tensor::from_slice(&chunk.iter().map(|&i| i as i64).collect::<Vec<_>>());
            let x = images.index_select(0, &idx).to_device(fm.device);
            let x = normalizer.apply(&transform::to_unit(&x));
            let p = tch::no_grad(|| {
                tch::nn::ModuleT::forward_t(&model[0].net, &x, false).softmax(1, Kind::Double)
            });
            out.extend(Vec::<Vec<f64>>::try_from(p.to_device(tch::Device::Cpu))?);
        }
        Ok(out)
    };
    for (&i, row) in held
        .iter()
        .zip(classify(&prepared.data.train.images, held)?)
    {
        probs[i] = row;
    }
    let test = match &prepared.data.test {
        Some(t) => {
            let rows = classify(&t.images, &(0..t.len()).collect::<Vec<_>>())?;
            let right = rows
                .iter()
                .zip(&t.labels)
                .filter(|(p, &y)| argmax(p) as i64 == y)
                .count();
            Some(right as f64 / t.len().max(1) as f64)
        }
        None => None,
    };
    Ok((RunDir::checkpoint_name(last), test))
}

/// The error of a fold `f` of `folds` not trained yet in the crossval folder `dir`, with
/// the command that trains it.
fn untrained(dir: &Path, folds: usize, f: usize) -> String {
    let run = dir.parent().unwrap_or(dir);
    format!(
        "fold {f} has not been trained (vog crossval --run {} --folds {folds} --fold {f})",
        crate::train::shell_quoted(run)
    )
}

/// Each fold's last checkpoint predicts its held-out examples; with how each fold did.
fn gather(
    dir: &Path,
    fold: &[usize],
    m: &RunManifest,
    prepared: &PreparedData,
    reporter: &dyn Reporter,
) -> Result<(OutOfSample, Vec<FoldRecord>)> {
    let folds = fold.iter().max().map_or(0, |f| f + 1);
    let train = &prepared.data.train;
    let mut probs = vec![Vec::new(); train.len()];
    let mut records = Vec::with_capacity(folds);
    for f in 0..folds {
        let root = fold_dir(dir, f);
        let run = RunDir::open_shared(&root).with_context(|| untrained(dir, folds, f))?;
        let fm = run.read_manifest()?;
        if !fm.complete {
            bail!("fold {f} in '{}' has not finished training", root.display());
        }
        let (held, want) = fold_config(fold, f, m, prepared)?;
        if let Some(diff) = want.difference(&fm.config) {
            bail!(
                "fold {f} in '{}' was trained with another recipe or other examples ({diff}); \
                 run vog crossval again without --gather",
                root.display()
            );
        }
        let (checkpoint, test_accuracy) = predict(&run, &fm, prepared, &held, &mut probs)?;
        let right = held
            .iter()
            .filter(|&&i| argmax(&probs[i]) as i64 == prepared.train_labels[i])
            .count();
        let accuracy = right as f64 / held.len().max(1) as f64;
        reporter.info(&format!(
            "crossval fold {f}: predicted {} held-out examples, {:.1}% as the label they train with",
            held.len(),
            100.0 * accuracy
        ));
        records.push(FoldRecord {
            fold: f,
            examples: held.len(),
            accuracy,
            test_accuracy,
            digest: fm
                .files
                .get(&checkpoint)
                .cloned()
                .map_or_else(|| run.digest(&checkpoint), Ok)?,
            checkpoint: format!("fold-{f}/{checkpoint}"),
            linear: None,
        });
    }
    let oos = OutOfSample {
        ids: train.ids.clone(),
        labels: prepared.train_labels.iter().map(|&l| l as usize).collect(),
        probs,
    };
    Ok((oos, records))
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
