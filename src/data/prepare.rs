//! The data a run trains on and is scored on: the dataset, then class-stratified seeded
//! subsets, the label shuffle of the memorization experiment (Agarwal & Hooker, Section
//! 4.3) and the input normalization. Training and scoring both call [`prepare`], so the
//! scorer sees exactly the examples, labels and normalization training saw.
use super::decisions::{self, Decisions, Exclusions, Relabels};
use super::noise::{self, NoisyLabel};
use super::plant::{self, Kind, PlantSpec, Planted};
use super::transform::Normalization;
use super::{subset, Dataset, DatasetSpec, Split};
use crate::origin::Origins;
use crate::rng;
use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The paper's memorization experiment: shuffle the labels of a fraction of the train set.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelNoise {
    pub fraction: f64,
    pub seed: u64,
}

/// Which examples and labels of a dataset a run uses.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Selection {
    pub train_subset: Option<usize>,
    pub test_subset: Option<usize>,
    pub label_noise: Option<LabelNoise>,
    /// Training examples left out (`--exclude`), after the subset is drawn.
    pub exclude: Option<Exclusions>,
    /// Training examples trained with another label (`--relabel`), after the shuffle.
    pub relabel: Option<Relabels>,
    /// The reviewer's decisions `exclude` and `relabel` came from (`--decisions`), as a
    /// record; applying them is theirs.
    pub decisions: Option<Decisions>,
    /// Draws the subsets from this seed rather than the run's (a retraining of another
    /// run's examples from another seed: `vog prune`).
    pub subset_seed: Option<u64>,
    /// Hardness planted into the training split (`--plant`), after the subsets and
    /// exclusions, drawn from the run's seed.
    pub plant: Option<PlantSpec>,
    /// The folder whose images `foreign` plants (`--plant-source`), absolute.
    pub plant_source: Option<std::path::PathBuf>,
    /// The classes `confusable` plants (`--plant-from`).
    pub plant_from: Option<plant::PlantFrom>,
}

impl Selection {
    /// Checks the values alone (the dataset is not read); `origins` names them in errors.
    pub fn validate(&self, origins: &Origins) -> Result<()> {
        for (key, n) in [
            ("train_subset", self.train_subset),
            ("test_subset", self.test_subset),
        ] {
            if n == Some(0) {
                bail!("{} must be at least 1", origins.name(key));
            }
        }
        if self.plant.is_some() && (self.label_noise.is_some() || self.relabel.is_some()) {
            bail!(
                "{} cannot be combined with label noise or relabelled examples: each changes \
                 training labels, and a planted kind is measured on its own",
                origins.name("plant")
            );
        }
        let foreign = self
            .plant
            .as_ref()
            .is_some_and(|p| p.kinds().contains(&Kind::Foreign));
        if self.plant_source.is_some() && !foreign {
            bail!(
                "{} gives the images foreign plants: it needs foreign among the kinds planted",
                origins.name("plant_source")
            );
        }
        if let Some(noise) = &self.label_noise {
            if !(0.0..=1.0).contains(&noise.fraction) {
                bail!(
                    "{} must be a fraction in [0, 1], got {}",
                    origins.name("label_noise"),
                    noise.fraction
                );
            }
        }
        Ok(())
    }
}

/// The data a run uses, after subsets and label noise.
pub struct PreparedData {
    pub data: Dataset,
    /// The labels training uses: the true ones, the shuffled ones of a label-noise run, and
    /// the person's for relabelled examples.
    pub train_labels: Vec<i64>,
    pub noise: Vec<NoisyLabel>,
    /// The planted examples (`--plant`), in dataset order.
    pub planted: Vec<Planted>,
    pub normalization: Normalization,
}

/// Loads `spec` and applies `sel`, subsets drawn from `seed`; `origins` names the subset
/// sizes in errors.
pub fn prepare(
    spec: &DatasetSpec,
    sel: &Selection,
    seed: u64,
    origins: &Origins,
) -> Result<PreparedData> {
    let mut data = load_subsets(spec, sel, seed, origins)?;
    let before = data.train.labels.clone();
    if let Some(ex) = &sel.exclude {
        let keep = ex.keep(&data.train, data.test.as_ref())?;
        data.train = data.train.select(&keep);
        decisions::check_every_class(&before, &data.train.labels, &data.class_names, || {
            format!("'{}'", ex.file.display())
        })?;
    }
    let (mut train_labels, mut noise) = match &sel.label_noise {
        Some(ln) => noise::shuffle_labels(
            &data.train.labels,
            &data.train.ids,
            ln.fraction,
            &mut rng::stream(ln.seed, "label-noise"),
        )?,
        None => (data.train.labels.clone(), Vec::new()),
    };
    let planted = plant_into(&mut data, sel, &mut train_labels, seed)?;
    if let Some(rl) = &sel.relabel {
        let (train, test) = (&data.train, data.test.as_ref());
        let changed = rl.apply(train, test, &data.class_names, &mut train_labels)?;
        let dropped = sel.exclude.as_ref().map_or(0, |e| e.ids.len());
        decisions::refuse_unchanged(rl, sel.decisions.as_ref(), changed, dropped)?;
        decisions::check_every_class(&before, &train_labels, &data.class_names, || {
            format!("'{}'", rl.file.display())
        })?;
        // A relabelled example is trained with the person's label, not a shuffled one.
        noise.retain(|n| !rl.labels.iter().any(|(id, _)| *id == n.id));
    }
    let normalization = match spec {
        DatasetSpec::Cifar10 { .. } => Normalization::CIFAR10,
        DatasetSpec::Cifar100 { .. } => Normalization::CIFAR100,
        _ => Normalization::from_images(&data.train.images),
    };
    Ok(PreparedData {
        data,
        train_labels,
        noise,
        planted,
        normalization,
    })
}

/// Plants `sel`'s hardness, if any, into the training split of `data` and `train_labels`,
/// drawn from `seed`; returns the record.
fn plant_into(
    data: &mut Dataset,
    sel: &Selection,
    train_labels: &mut [i64],
    seed: u64,
) -> Result<Vec<Planted>> {
    let Some(spec) = &sel.plant else {
        return Ok(Vec::new());
    };
    let train = &mut data.train;
    let confusable = spec.kinds().contains(&Kind::Confusable);
    if confusable != sel.plant_from.is_some() {
        bail!(
            "confusable plants the class another run's model ranks next: it needs --plant-from \
             RUN, and --plant-from needs confusable among the kinds planted"
        );
    }
    let foreign = match &sel.plant_source {
        Some(dir) => {
            let [_, _, h, w] = train.images.size()[..] else {
                bail!("the training images are not NCHW")
            };
            plant::read_source(dir, h, w)?
        }
        None => Vec::new(),
    };
    let sources = plant::Sources {
        foreign,
        confusable: sel
            .plant_from
            .iter()
            .flat_map(|f| f.classes.iter().cloned())
            .collect(),
    };
    plant::plant(
        spec,
        &train.ids,
        &mut train.images,
        train_labels,
        &data.class_names,
        &sources,
        &mut rng::stream(seed, "plant"),
    )
}

/// The dataset of `spec` with the subsets of `sel` drawn (from the selection's seed, else
/// `seed`); a dataset of fewer than two classes is refused.
fn load_subsets(
    spec: &DatasetSpec,
    sel: &Selection,
    seed: u64,
    origins: &Origins,
) -> Result<Dataset> {
    let seed = sel.subset_seed.unwrap_or(seed);
    let mut data = spec.load()?;
    let k = data.num_classes();
    if k < 2 {
        bail!(
            "{} has {k} class(es): a classifier, and VoG within classes, need at least two",
            spec.name()
        );
    }
    if let Some(n) = sel.train_subset {
        data.train = take_subset(&data.train, k, n, seed, "train", origins)?;
    }
    if let (Some(n), Some(test)) = (sel.test_subset, data.test.as_ref()) {
        data.test = Some(take_subset(test, k, n, seed, "test", origins)?);
    }
    Ok(data)
}

fn take_subset(
    split: &Split,
    k: usize,
    n: usize,
    seed: u64,
    name: &str,
    origins: &Origins,
) -> Result<Split> {
    let idx = subset::stratified(
        &split.labels,
        k,
        n,
        &mut rng::stream(seed, &format!("{name}-subset")),
    )
    .with_context(|| format!("{} {n}", origins.name(&format!("{name}_subset"))))?;
    Ok(split.select(&idx))
}
