//! `vog score`: VoG for every example of a run's split from K saved checkpoints.
//!
//! Per batch, all K models (kept loaded) produce the input gradients, which are folded into
//! running statistics at once and reduced to one number per example and target; memory
//! does not grow with the number of examples. Scores are then z-scored within each
//! (split, trained class) and written as CSV plus a JSON sidecar (see [`crate::scores`]).
use crate::checkpoint::{load_checkpoint, RunDir, RunManifest};
use crate::data::noise;
use crate::data::transform::{self, Normalization};
use crate::data::{DatasetSpec, Split};
use crate::info::Versions;
use crate::model::ResNet;
use crate::scores::{self, ScoreRow};
use crate::vog::gradient::{input_gradients, pixel_map};
use crate::vog::reduce::Accumulator;
use crate::vog::{normalize, Target, Variant};
use crate::{atomic_file, device, schedule, train};
use anyhow::{bail, Context, Result};
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Instant;
use tch::nn::{ModuleT, VarStore};
use tch::{Device, Tensor};

/// Which split(s) to score.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum SplitChoice {
    Test,
    Train,
    Both,
}

impl SplitChoice {
    fn names(self) -> &'static [&'static str] {
        match self {
            SplitChoice::Test => &["test"],
            SplitChoice::Train => &["train"],
            SplitChoice::Both => &["train", "test"],
        }
    }
}

/// A validated `vog score` request.
#[derive(Debug, Clone)]
pub struct ScoreConfig {
    pub run: PathBuf,
    pub split: SplitChoice,
    /// `early`, `late`, `all` or an epoch spec.
    pub stage: String,
    pub out: PathBuf,
    pub batch_size: usize,
    pub device: String,
    pub targets: Vec<Target>,
    pub variant: Variant,
    /// Replaces the dataset location recorded in the run.
    pub data: Option<PathBuf>,
}

/// The JSON sidecar of a scores file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ScoresMeta {
    pub format: String,
    pub run: PathBuf,
    pub dataset_fingerprint: String,
    pub dataset: DatasetSpec,
    pub split: SplitChoice,
    pub stage: String,
    pub epochs: Vec<usize>,
    pub checkpoints: Vec<String>,
    /// In column order; the first has the plain `vog_raw`/`vog` columns.
    pub targets: Vec<Target>,
    pub variant: Variant,
    pub examples: usize,
    /// Per split, the (trained) classes whose scores had no spread and were set to 0.
    pub degenerate_classes: HashMap<String, Vec<String>>,
    pub device: String,
    pub seconds: f64,
    pub versions: Versions,
}

pub const SCORES_FORMAT: &str = "vog-scores/1";

/// Resolves a stage against the run's saved epochs.
pub fn select_epochs(stage: &str, saved: &[usize], epochs: usize) -> Result<Vec<usize>> {
    if saved.is_empty() {
        bail!("the run has no saved checkpoints");
    }
    let picked: Vec<usize> = match stage {
        "early" => saved.iter().take(3).copied().collect(),
        "late" => saved[saved.len().saturating_sub(3)..].to_vec(),
        "all" => saved.to_vec(),
        spec => {
            let wanted = schedule::parse_epochs(spec, epochs)
                .with_context(|| format!("invalid --stage '{spec}'"))?;
            if let Some(e) = wanted.iter().find(|e| !saved.contains(e)) {
                bail!("--stage '{spec}': epoch {e} was not saved (saved epochs: {saved:?})");
            }
            wanted
        }
    };
    if picked.len() < 2 {
        bail!(
            "--stage '{stage}' selects {} checkpoint(s) ({picked:?}); VoG needs at least 2 (saved epochs: {saved:?})",
            picked.len()
        );
    }
    Ok(picked)
}

/// One checkpoint's network, in eval mode.
pub struct LoadedModel {
    pub epoch: usize,
    /// Owns the network's variables.
    _vs: VarStore,
    pub net: ResNet,
}

/// Loads the checkpoints of `epochs` onto `device`, each checked against the run's network.
pub fn load_models(
    run: &RunDir,
    m: &RunManifest,
    epochs: &[usize],
    device: Device,
) -> Result<Vec<LoadedModel>> {
    let classes = m.dataset.class_names.len() as i64;
    epochs
        .iter()
        .map(|&epoch| {
            let path = run.path(&RunDir::checkpoint_name(epoch));
            if !path.is_file() {
                bail!("checkpoint '{}' is missing", path.display());
            }
            let mut vs = VarStore::new(device);
            let net = ResNet::new(&vs.root(), classes, m.config.hyper.width);
            load_checkpoint(&mut vs, &path)?;
            vs.freeze();
            Ok(LoadedModel {
                epoch,
                _vs: vs,
                net,
            })
        })
        .collect()
}

/// Raw VoG (one value per target) and the last model's prediction, per example of a split.
pub struct SplitScores {
    /// `raw[t][i]`: target t, example i.
    pub raw: Vec<Vec<f64>>,
    pub predicted: Vec<i64>,
}

/// Everything that turns a batch into VoG scores.
pub struct Scorer<'a> {
    /// The K checkpoints' networks, in epoch order, all on `device`.
    pub models: Vec<&'a dyn ModuleT>,
    pub device: Device,
    pub normalization: &'a Normalization,
    pub targets: &'a [Target],
    pub variant: Variant,
    pub batch_size: usize,
}

impl Scorer<'_> {
    /// Scores `images` (NCHW uint8, CPU) against `labels` (the labels trained with);
    /// `bar` advances by one per image and checkpoint.
    pub fn score(&self, images: &Tensor, labels: &[i64], bar: &ProgressBar) -> SplitScores {
        let n = labels.len();
        let mut raw = vec![Vec::with_capacity(n); self.targets.len()];
        let mut predicted = Vec::with_capacity(n);
        for start in (0..n).step_by(self.batch_size) {
            let len = self.batch_size.min(n - start);
            let batch = images.narrow(0, start as i64, len as i64);
            let (values, pred) = self.score_batch(&batch, &labels[start..start + len], bar);
            for (col, v) in raw.iter_mut().zip(values) {
                col.extend(v);
            }
            predicted.extend(pred);
        }
        SplitScores { raw, predicted }
    }

    /// Raw VoG per target and the last checkpoint's predictions for one batch.
    fn score_batch(
        &self,
        images: &Tensor,
        labels: &[i64],
        bar: &ProgressBar,
    ) -> (Vec<Vec<f64>>, Vec<i64>) {
        let x = self
            .normalization
            .apply(&transform::to_unit(&images.to_device(self.device)));
        let y = Tensor::from_slice(labels).to_device(self.device);
        let mut accs: Vec<Accumulator> = self.targets.iter().map(|_| Accumulator::new()).collect();
        let mut last_logits = None;
        for m in &self.models {
            let (grads, logits) = input_gradients(*m, &x, &y, self.targets);
            for (acc, g) in accs.iter_mut().zip(&grads) {
                acc.push(&pixel_map(g, self.variant.channels, self.variant.grad_norm));
            }
            last_logits = Some(logits);
            bar.inc(labels.len() as u64);
        }
        let values = accs.iter().map(|a| a.finish(self.variant.reduce)).collect();
        let pred = last_logits
            .expect("at least one model")
            .argmax(1, false)
            .to_device(Device::Cpu);
        (values, Vec::<i64>::try_from(pred).expect("i64 predictions"))
    }
}

/// Checks that `out` can be written before any work is done.
fn check_writable(out: &Path) -> Result<()> {
    if out.extension().is_some_and(|e| e == "json") {
        bail!(
            "--out '{}' must not end in .json (that name is the sidecar's)",
            out.display()
        );
    }
    tempfile::tempfile_in(atomic_file::parent_dir(out))
        .map(drop)
        .with_context(|| format!("cannot write to --out '{}'", out.display()))
}

/// Runs `vog score`; returns the sidecar written next to the CSV.
pub fn run(cfg: &ScoreConfig, show_progress: bool) -> Result<ScoresMeta> {
    let started = Instant::now();
    let run = RunDir::open(&cfg.run)?;
    let m = run.read_manifest()?;
    let epochs = select_epochs(&cfg.stage, &m.saved_epochs, m.config.hyper.epochs)
        .with_context(|| format!("run '{}'", cfg.run.display()))?;
    check_writable(&cfg.out)?;
    let device = device::parse(&cfg.device)?;
    let models = load_models(&run, &m, &epochs, device)?;

    let mut train_cfg = m.config.clone();
    if let Some(dir) = &cfg.data {
        train_cfg.dataset = relocate(&train_cfg.dataset, dir)?;
    }
    let prepared = train::prepare_data(&train_cfg)?;
    let fingerprint = prepared.data.fingerprint();
    if fingerprint != m.dataset.fingerprint {
        bail!(
            "the dataset ({}) no longer matches the one run '{}' trained on (fingerprint {fingerprint}, run has {})",
            train_cfg.dataset.name(),
            cfg.run.display(),
            m.dataset.fingerprint
        );
    }
    let assigned = read_assigned_labels(&run, &m)?;

    let splits: Vec<(&str, &Split)> = cfg
        .split
        .names()
        .iter()
        .map(|&name| match name {
            "train" => Ok((name, &prepared.data.train)),
            _ => prepared
                .data
                .test
                .as_ref()
                .map(|t| (name, t))
                .context("the run's dataset has no test split (use --split train)"),
        })
        .collect::<Result<_>>()?;
    let total: usize = splits.iter().map(|(_, s)| s.len()).sum();
    let bar = progress_bar(show_progress, (total * models.len()) as u64);

    let scorer = Scorer {
        models: models.iter().map(|m| &m.net as &dyn ModuleT).collect(),
        device,
        normalization: &m.normalization,
        targets: &cfg.targets,
        variant: cfg.variant,
        batch_size: cfg.batch_size,
    };
    let mut rows = Vec::with_capacity(total);
    let mut degenerate = HashMap::new();
    for (name, split) in splits {
        let trained: Vec<i64> = split
            .ids
            .iter()
            .zip(&split.labels)
            .map(|(id, &l)| *assigned.get(id).unwrap_or(&l))
            .collect();
        let s = scorer.score(&split.images, &trained, &bar);
        let mut z = Vec::new();
        for raw in &s.raw {
            let (zs, bad) = normalize::by_class(raw, &trained);
            for c in &bad {
                let entry: &mut Vec<String> = degenerate.entry(name.to_string()).or_default();
                let class = m.dataset.class_names[*c as usize].clone();
                if !entry.contains(&class) {
                    eprintln!("warning: {name} class '{class}' has a single example or no spread in VoG; its scores are set to 0");
                    entry.push(class);
                }
            }
            z.push(zs);
        }
        for i in 0..split.len() {
            rows.push(ScoreRow {
                id: split.ids[i].clone(),
                split: name.to_string(),
                index: i,
                label: split.labels[i],
                label_name: m.dataset.class_names[split.labels[i] as usize].clone(),
                trained_label: trained[i],
                noisy: trained[i] != split.labels[i],
                predicted: s.predicted[i],
                correct: s.predicted[i] == split.labels[i],
                scores: s.raw.iter().zip(&z).map(|(r, z)| (r[i], z[i])).collect(),
            });
        }
    }
    bar.finish_and_clear();

    let meta = ScoresMeta {
        format: SCORES_FORMAT.into(),
        run: std::path::absolute(&cfg.run).unwrap_or_else(|_| cfg.run.clone()),
        dataset_fingerprint: fingerprint,
        dataset: train_cfg.dataset.clone(),
        split: cfg.split,
        stage: cfg.stage.clone(),
        checkpoints: epochs.iter().map(|&e| RunDir::checkpoint_name(e)).collect(),
        epochs,
        targets: cfg.targets.clone(),
        variant: cfg.variant,
        examples: rows.len(),
        degenerate_classes: degenerate,
        device: device::name(device),
        seconds: started.elapsed().as_secs_f64(),
        versions: Versions::current(),
    };
    atomic_file::write_with(&cfg.out, |w| scores::write_csv(w, &cfg.targets, &rows))?;
    let json = serde_json::to_vec_pretty(&meta)?;
    atomic_file::write_bytes(&scores::sidecar_path(&cfg.out), &json)?;
    Ok(meta)
}

/// The dataset spec with its location replaced by `dir` (synthetic data has none).
pub fn relocate(spec: &DatasetSpec, dir: &Path) -> Result<DatasetSpec> {
    let dir =
        std::path::absolute(dir).with_context(|| format!("cannot resolve '{}'", dir.display()))?;
    Ok(match spec {
        DatasetSpec::Cifar10 { .. } => DatasetSpec::Cifar10 { dir },
        DatasetSpec::Cifar100 { .. } => DatasetSpec::Cifar100 { dir },
        DatasetSpec::Folder { .. } => DatasetSpec::Folder { root: dir },
        DatasetSpec::Synth { .. } => {
            bail!("--data: the run uses the built-in synthetic dataset, which has no location")
        }
    })
}

/// id -> the label trained with, from the run's `label_noise.csv` (empty without one).
fn read_assigned_labels(run: &RunDir, m: &RunManifest) -> Result<HashMap<String, i64>> {
    let Some(name) = &m.label_noise_file else {
        return Ok(HashMap::new());
    };
    let path = run.path(name);
    let file =
        std::fs::File::open(&path).with_context(|| format!("cannot open '{}'", path.display()))?;
    let record = noise::read_csv(file)
        .with_context(|| format!("invalid label-noise record '{}'", path.display()))?;
    Ok(record
        .into_iter()
        .map(|r| (r.id, r.assigned_label))
        .collect())
}

fn progress_bar(show: bool, len: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    ProgressBar::new(len).with_style(
        ProgressStyle::with_template(
            "scoring [{bar:30}] {pos}/{len} image x checkpoint {per_sec} eta {eta}",
        )
        .expect("valid template")
        .progress_chars("=> "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::vog::{Channels, GradNorm, Reduce};

    /// logits = flatten(x) W^T: the input gradient of logit p is row p of W.
    #[derive(Debug)]
    struct Linear(Tensor);

    impl ModuleT for Linear {
        fn forward_t(&self, x: &Tensor, _train: bool) -> Tensor {
            x.flatten(1, -1).matmul(&self.0.tr())
        }
    }

    #[test]
    fn closed_form_linear_models() {
        // Images of 3 channels x 1 x 2 pixels, 2 classes, K = 2 checkpoints.
        let w1 = Tensor::from_slice(&[1.0f32, 2.0, 3.0, 4.0, 5.0, 6.0, 0., 0., 0., 0., 0., 0.])
            .view([2, 6]);
        let w2 = Tensor::from_slice(&[3.0f32, 2.0, 1.0, 4.0, 5.0, 0.0, 5., 5., 5., 5., 5., 5.])
            .view([2, 6]);
        let (m1, m2) = (Linear(w1), Linear(w2));
        let images = Tensor::from_slice(&[200u8, 210, 220, 230, 240, 250, 1, 2, 3, 4, 5, 6])
            .view([2, 3, 1, 2]);
        let norm = Normalization {
            mean: [0.1, 0.2, 0.3],
            std: [0.5, 0.25, 2.0],
        };
        let targets = [Target::Logit];
        let score = |variant| {
            let s = Scorer {
                models: vec![&m1 as &dyn ModuleT, &m2],
                device: Device::Cpu,
                normalization: &norm,
                targets: &targets,
                variant,
                batch_size: 1,
            };
            s.score(&images, &[0, 1], &ProgressBar::hidden())
        };
        // Example 0 (class 0): channel-mean maps, pixel order (x=0, x=1):
        //   W1 row 0 -> channels (1,2),(3,4),(5,6) -> means (3, 4); W2 row 0 -> (3,2),(1,4),(5,0) -> (3, 2).
        //   Pixel variances over K: (0, 1) -> paper sqrt(1/2), official (0 + 1)/2.
        // Example 1 (class 1): maps (0, 0) and (5, 5): variances (25/4, 25/4) -> 5/2 for both.
        let paper = score(Variant::default());
        assert!(
            (paper.raw[0][0] - 0.5f64.sqrt()).abs() < 1e-12,
            "{:?}",
            paper.raw
        );
        assert!((paper.raw[0][1] - 2.5).abs() < 1e-12);
        let official = score(Variant {
            reduce: Reduce::Official,
            ..Variant::default()
        });
        assert!(
            (official.raw[0][0] - 0.5).abs() < 1e-12 && (official.raw[0][1] - 2.5).abs() < 1e-12
        );
        // Every channel value a pixel: example 0 differences W1-W2 = (-2, 0, 2, 0, 0, 6), so
        // deviations are half of that: variances (1, 0, 1, 0, 0, 9) -> paper sqrt(11/6).
        let all = score(Variant {
            channels: Channels::All,
            ..Variant::default()
        });
        assert!((all.raw[0][0] - (11.0f64 / 6.0).sqrt()).abs() < 1e-12);
        // cv: example 1 has mean |S| = (0 + 0 + 5 + 5) / 4 = 5/2 -> (5/2) / (5/2) = 1.
        let cv = score(Variant {
            reduce: Reduce::Cv,
            ..Variant::default()
        });
        assert!((cv.raw[0][1] - 1.0).abs() < 1e-12);
        // Unit norm: example 1's second map (5, 5) becomes (1/sqrt2, 1/sqrt2), the first stays 0.
        let unit = score(Variant {
            grad_norm: GradNorm::Unit,
            ..Variant::default()
        });
        // Pixel means (1/(2 sqrt2)) twice, variances 1/8 each -> paper sqrt(1/8).
        assert!((unit.raw[0][1] - 0.125f64.sqrt()).abs() < 1e-12);
        // Predictions come from the last checkpoint, which here disagrees with the first.
        let x = norm.apply(&transform::to_unit(&images));
        let argmax =
            |m: &Linear| Vec::<i64>::try_from(m.forward_t(&x, false).argmax(1, false)).unwrap();
        assert_eq!(paper.predicted, argmax(&m2));
        assert_ne!(paper.predicted, argmax(&m1));
    }

    #[test]
    fn stages() {
        let saved = [1, 2, 3, 10, 20, 28, 29, 30];
        assert_eq!(select_epochs("early", &saved, 30).unwrap(), vec![1, 2, 3]);
        assert_eq!(select_epochs("late", &saved, 30).unwrap(), vec![28, 29, 30]);
        assert_eq!(select_epochs("all", &saved, 30).unwrap(), saved.to_vec());
        assert_eq!(
            select_epochs("1,10,20-20", &saved, 30).unwrap(),
            vec![1, 10, 20]
        );
        let err = select_epochs("1-4", &saved, 30).unwrap_err().to_string();
        assert!(err.contains("epoch 4 was not saved"), "{err}");
        let err = select_epochs("early", &[5], 30).unwrap_err().to_string();
        assert!(err.contains("at least 2"), "{err}");
        assert!(select_epochs("all", &[], 30).is_err());
        assert!(select_epochs("40", &saved, 30).is_err());
    }
}
