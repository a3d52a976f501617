//! Where scores came from, as their sidecar records it ([`crate::scores::ScoresMeta`]), and
//! the one tail every scoring ends in: non-finite scores refused, z-scores within each
//! class, the CSV and its sidecar written.
use super::joined::OutOfSampleRecord;
use super::ScoreOptions;
use crate::data::DatasetSpec;
use crate::epochs::Stage;
use crate::info::Versions;
use crate::progress::Reporter;
use crate::scores::{
    self, Companion, Incomplete, ModelScoring, ScoreRow, ScoresMeta, Shard, SCORES_FORMAT,
};
use anyhow::{bail, Result};
use std::path::PathBuf;
use std::time::Instant;

/// What a sidecar records of where the scores came from; the rest it takes from the
/// [`ScoreOptions`] and the rows.
pub(super) struct Provenance {
    pub(super) run: Option<PathBuf>,
    pub(super) models: Option<ModelScoring>,
    pub(super) shard: Option<Shard>,
    pub(super) dataset_fingerprint: String,
    pub(super) dataset: DatasetSpec,
    pub(super) stage: Stage,
    pub(super) epochs: Vec<usize>,
    pub(super) checkpoints: Vec<String>,
    /// What ties run scores to the run (empty for models): see [`ScoresMeta`].
    pub(super) checkpoint_digests: Vec<crate::digest::FileDigest>,
    pub(super) run_id: Option<String>,
    pub(super) out_of_sample: Option<OutOfSampleRecord>,
    pub(super) companions: Vec<Companion>,
    pub(super) incomplete: Option<Incomplete>,
    /// Class names by label, for the warnings about classes without spread.
    pub(super) class_names: Vec<String>,
    /// What was scored, for the error about non-finite scores.
    pub(super) scored_with: String,
    pub(super) captured: Option<scores::CapturedScoring>,
    /// The kinds the run planted, in kind order.
    pub(super) planted: Vec<crate::data::plant::Kind>,
}

/// The one end of every scoring: refuses non-finite scores, z-scores within each class
/// (not for a shard, whose z-scores need every shard), and writes the CSV and its sidecar.
pub(super) fn write_scores(
    o: &ScoreOptions,
    p: Provenance,
    mut rows: Vec<ScoreRow>,
    started: Instant,
    reporter: &dyn Reporter,
) -> Result<ScoresMeta> {
    check_scores_finite(&rows, || p.scored_with.clone())?;
    let degenerate = match p.shard {
        Some(_) => Default::default(),
        None => {
            let d = scores::normalize_rows(&mut rows, |c| p.class_names[c as usize].clone());
            scores::warn_degenerate(&d, reporter);
            d
        }
    };
    let mut meta = ScoresMeta {
        format: SCORES_FORMAT.into(),
        run: p.run,
        models: p.models,
        shard: p.shard,
        dataset_fingerprint: p.dataset_fingerprint,
        dataset: p.dataset,
        split: o.split,
        stage: p.stage,
        epochs: p.epochs,
        checkpoints: p.checkpoints,
        checkpoint_digests: p.checkpoint_digests,
        run_id: p.run_id,
        out_of_sample: p.out_of_sample.as_ref().map(|o| o.digest.clone()),
        out_of_sample_strength: p.out_of_sample.map(|o| o.strength),
        targets: o.targets.clone(),
        companions: p.companions,
        variant: o.variant,
        examples: rows.len(),
        incomplete: p.incomplete,
        degenerate_classes: degenerate,
        device: o.device,
        seconds: started.elapsed().as_secs_f64(),
        versions: Versions::current(),
        csv: None,
        precision: o.precision,
        captured: p.captured,
        planted: p.planted,
    };
    scores::write(&o.out, &mut meta, &rows)?;
    Ok(meta)
}

/// Refuses scores that are not finite: the checkpoints' gradients overflowed, or the
/// models' logits are not finite; a file of NaN would only mislead every later stage.
/// `with` names what was scored (`the checkpoints ... of 'RUN'`, `the models ...`).
fn check_scores_finite(rows: &[ScoreRow], with: impl FnOnce() -> String) -> Result<()> {
    // Raw VoG and the companions; z-scores come later.
    let bad: Vec<(&ScoreRow, &str)> = rows
        .iter()
        .filter_map(|r| scores::non_finite(r, true).map(|what| (r, what)))
        .collect();
    let Some((first, what)) = bad.first() else {
        return Ok(());
    };
    let subject = match *what {
        "vog_raw" => "the input gradients",
        _ => "the loss, el2n or prob (the models' logits)",
    };
    bail!(
        "{subject} of {} example(s) (first: '{}') are not finite with {}; nothing was written",
        bad.len(),
        first.id,
        with()
    )
}
