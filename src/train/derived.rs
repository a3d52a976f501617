//! Runs derived from another: `vog train --from RUN` (the run trained again with a
//! person's decisions on top), the folds of `vog crossval` and the retrainings of `vog
//! prune`. A derived run keeps its base's recipe, examples and trained labels, and records
//! what it changes as its own `exclude.csv` and `relabel.csv`.
use crate::config::{FromRun, TrainConfig};
use crate::data::decisions::{self, Exclusions, Relabels};
use crate::data::prepare::{PreparedData, Selection};
use crate::origin::Origins;
use anyhow::{bail, Result};
use std::path::Path;

/// What a derived run changes in its base run's training set: positions in the prepared
/// training split to leave out, and (position, label) to train with another label.
#[derive(Debug, Clone, Copy, Default)]
pub struct Edits<'a> {
    pub leave_out: &'a [usize],
    pub relabel: &'a [(usize, i64)],
}

/// Refuses to train `base` again with changes (`--from`, crossval folds, prune
/// retrainings) where that is not defined: a run with planted hardness.
pub fn check_derivable(base: &TrainConfig) -> Result<()> {
    if let Some(plant) = &base.plant {
        bail!(
            "the run planted hardness (--plant {plant}); training it again with changes \
             (--from, vog crossval without --features, vog prune) is not supported yet"
        );
    }
    Ok(())
}

/// A run's recipe (`base`) on its training examples with `edits` applied, every other label
/// as the run trained it (kept as relabels, so no shuffle is drawn again on a smaller
/// set), trained from `seed` and checkpointing only its last epoch, capturing no gradients
/// (fold and pruning models are judged by their predictions). The edits become the files
/// `exclude.csv` and `relabel.csv` that [`run`] writes into the run, recorded like a
/// person's; nothing is written here.
pub fn derived_config(
    base: &TrainConfig,
    prepared: &PreparedData,
    edits: Edits,
    seed: u64,
) -> Result<TrainConfig> {
    let mut hyper = base.hyper.clone();
    hyper.seed = seed;
    hyper.save_epochs = "last:1".parse().expect("a valid spec");
    hyper.capture_epochs = None;
    hyper.capture_targets = vec![crate::variance::Target::Logit];
    let sel = derived_selection(base, prepared, edits)?;
    TrainConfig::new(
        base.dataset.clone(),
        hyper,
        sel,
        base.device,
        &Origins::default(),
    )
}

/// The run `base` (in `base_dir`) trained again as it was (recipe, examples, every label as
/// it trained them) with a person's decisions on top (`person`'s exclude, relabel and
/// decisions record): `vog train --from RUN`. The decisions name training examples of the
/// run, must change something and leave every class some examples; the person's files are
/// recorded beside the derived ones.
pub fn config_from(
    base_dir: &Path,
    base: &TrainConfig,
    prepared: &PreparedData,
    person: Selection,
) -> Result<TrainConfig> {
    let (train, test) = (&prepared.data.train, prepared.data.test.as_ref());
    let mut labels = prepared.train_labels.clone();
    let keep: std::collections::HashSet<usize> = match &person.exclude {
        Some(e) => e.keep(train, test)?.into_iter().collect(),
        None => (0..train.len()).collect(),
    };
    let leave_out: Vec<usize> = (0..train.len()).filter(|i| !keep.contains(i)).collect();
    if let Some(r) = &person.relabel {
        let classes = &prepared.data.class_names;
        let changed = r.apply(train, test, classes, &mut labels)?;
        decisions::refuse_unchanged(r, person.decisions.as_ref(), changed, leave_out.len())?;
    }
    let kept: Vec<i64> = (0..train.len())
        .filter(|i| keep.contains(i))
        .map(|i| labels[i])
        .collect();
    decisions::check_every_class(
        &prepared.train_labels,
        &kept,
        &prepared.data.class_names,
        || person_files(&person),
    )?;
    let relabel: Vec<(usize, i64)> = (0..train.len())
        .filter(|&i| labels[i] != prepared.train_labels[i])
        .map(|i| (i, labels[i]))
        .collect();
    let edits = Edits {
        leave_out: &leave_out,
        relabel: &relabel,
    };
    let mut sel = derived_selection(base, prepared, edits)?;
    sel.decisions = person.decisions.clone();
    let mut cfg = TrainConfig::new(
        base.dataset.clone(),
        base.hyper.clone(),
        sel,
        base.device,
        &Origins::default(),
    )?;
    cfg.from = Some(FromRun {
        run: std::path::absolute(base_dir).unwrap_or_else(|_| base_dir.to_path_buf()),
        exclude: person.exclude,
        relabel: person.relabel,
    });
    Ok(cfg)
}

/// The files of a person's selection, for messages: `'a.csv'`, `'a.csv' with 'b.csv'`.
fn person_files(person: &Selection) -> String {
    let files: Vec<String> = [
        person.decisions.as_ref().map(|d| d.file.clone()),
        person.exclude.as_ref().map(|e| e.file.clone()),
        person.relabel.as_ref().map(|r| r.file.clone()),
    ]
    .into_iter()
    .flatten()
    .map(|f| format!("'{}'", f.display()))
    .collect::<std::collections::BTreeSet<_>>()
    .into_iter()
    .collect();
    files.join(" with ")
}

/// The selection of a run derived from `base`: its subsets from the base's seed, no label
/// shuffle of its own, the base's exclusions and trained labels with `edits` applied as the
/// derived run's `exclude.csv`/`relabel.csv` (not written yet). A derived run that would
/// leave a class without examples is refused.
fn derived_selection(
    base: &TrainConfig,
    prepared: &PreparedData,
    edits: Edits,
) -> Result<Selection> {
    check_derivable(base)?;
    let train = &prepared.data.train;
    let out: std::collections::HashSet<usize> = edits.leave_out.iter().copied().collect();
    let mut ids: Vec<String> = base.exclude.iter().flat_map(|x| x.ids.clone()).collect();
    ids.extend(edits.leave_out.iter().map(|&i| train.ids[i].clone()));
    let mut labels = prepared.train_labels.clone();
    edits.relabel.iter().for_each(|&(i, l)| labels[i] = l);
    let kept: Vec<usize> = (0..train.len()).filter(|i| !out.contains(i)).collect();
    let classes = &prepared.data.class_names;
    let kept_labels: Vec<i64> = kept.iter().map(|&i| labels[i]).collect();
    decisions::check_every_class(&train.labels, &kept_labels, classes, || {
        "the derived run's selection".to_string()
    })?;
    let relabelled: Vec<(String, usize)> = kept
        .iter()
        .filter(|&&i| labels[i] != train.labels[i])
        .map(|&i| (train.ids[i].clone(), labels[i] as usize))
        .collect();
    let mut sel = base.selection();
    sel.label_noise = None;
    sel.subset_seed = Some(sel.subset_seed.unwrap_or(base.hyper.seed));
    sel.exclude = Exclusions::derived(ids)?;
    sel.relabel = Relabels::derived(&relabelled, classes)?;
    sel.decisions = None;
    Ok(sel)
}
