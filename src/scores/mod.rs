//! The scores file that `vog score` writes and every later stage reads: a CSV, one row per
//! example in dataset order,
//!
//! ```text
//! id,split,index,label,label_name,trained_label,noisy,predicted,correct,vog_raw,vog[,vog_raw_T,vog_T...]
//! ```
//!
//! and a JSON sidecar (same path, `.json` extension; [`ScoresMeta`]) recording how the
//! scores were made. `label` is the true label; `trained_label` the one the network was
//! trained with (they differ for the shuffled examples of a label-noise run, where `noisy`
//! is true); `index` is the position in the scored split; `predicted` comes from the last
//! checkpoint used and `correct` compares it with `label`. The first target scored keeps
//! the plain `vog_raw` and `vog` names; every further target T adds `vog_raw_T` and `vog_T`.
//! Then the companion scores ([`Companion`]) the sidecar lists, in its order: `loss`,
//! `el2n`, `prob` from the scoring checkpoints, and for runs with training dynamics
//! `confidence`, `variability`, `correctness`, `forgetting`, `aum`, and after `vog crossval`
//! `oof_prob`, `oof_margin`, `oof_entropy`, `label_issue`, which are empty in test rows;
//! with the last four, `suggested_label` (the out-of-sample argmax, a class index: not a
//! score). Every value is finite.
//! A scores file is only read together with its sidecar: a missing or unreadable one is
//! an error, never a silent default.
mod check;
mod csv;
mod meta;
mod normalize;
mod order;

pub use self::csv::{
    flag_text, has_sets, header, is_flag, score_columns, suggests, value, write_csv, Column,
    ColumnRef, Companion, ScoreRow, BASE_COLUMNS, SETS,
};
pub use check::{check_digest, check_rows, non_finite};
pub use meta::{
    read_meta, sidecar_path, CapturedScoring, Incomplete, ModelFile, ModelScoring, ScoresMeta,
    Shard, SplitChoice, SCORES_FORMAT, SUGGESTED,
};
pub use normalize::{normalize_rows, warn_degenerate};
pub use order::{class_names, file_classes, name_of, per_class, scored, top_k, Ranked, Scored};

use self::csv::{names, Table};
use crate::data::SplitKind;
use crate::epochs::Stage;
use crate::variance::Target;
use anyhow::{bail, Context, Result};
use std::path::{Path, PathBuf};

/// Where the scores of `split` at `stage` go by default: `RUN/scores-SPLIT-STAGE.csv`.
pub fn scores_path(run: &Path, split: SplitChoice, stage: &Stage) -> PathBuf {
    run.join(format!("scores-{split}-{}.csv", stage.slug()))
}

/// Checks that a scores file can be written at `out` (and its sidecar beside it) before
/// any work is done.
pub fn check_out(out: &Path) -> Result<()> {
    if out.is_dir() {
        bail!(
            "'{}' is a folder; name the .csv file to write",
            out.display()
        );
    }
    if out.extension().is_some_and(|e| e == "json") {
        bail!(
            "'{}' must not end in .json (that name is the sidecar's)",
            out.display()
        );
    }
    crate::atomic_file::check_unnamed(
        &sidecar_path(out),
        |head| crate::atomic_file::holds(head, SCORES_FORMAT),
        &format!("vog writes the sidecar of '{}' there", out.display()),
    )?;
    let dir = crate::atomic_file::parent_dir(out);
    tempfile::tempfile_in(&dir)
        .map(drop)
        .with_context(|| format!("cannot create a file in '{}'", dir.display()))
}

/// Writes `rows` to `csv` and `meta`, with the CSV's digest filled in, to its sidecar,
/// each atomically.
pub fn write(csv: &Path, meta: &mut ScoresMeta, rows: &[ScoreRow]) -> Result<()> {
    check_rows(meta, rows, csv)?;
    let mut bytes = Vec::new();
    write_csv(&mut bytes, meta, rows)?;
    meta.csv = Some(crate::digest::of_bytes(&bytes));
    crate::atomic_file::write_bytes(csv, &bytes)?;
    let json = serde_json::to_vec_pretty(meta)?;
    crate::atomic_file::write_bytes(&sidecar_path(csv), &json)
}

/// What a run holds now, as [`ScoresFile::check_of_run`] compares it with what its scores
/// were made from.
#[derive(Debug, Clone)]
pub struct RunState<'a> {
    pub fingerprint: &'a str,
    /// Size and SHA-256 of the run's files, by name relative to the run (`run.json`'s).
    pub files: &'a std::collections::BTreeMap<String, crate::digest::FileDigest>,
    /// Of `crossval/probs.csv`, where the run has one.
    pub out_of_sample: Option<crate::digest::FileDigest>,
    /// The run's identity (`RunManifest::id`).
    pub run_id: Option<String>,
}

/// A scores file read back with its sidecar: the one view of scored examples that
/// evaluation, ranking and the report share.
#[derive(Debug, Clone)]
pub struct ScoresFile {
    pub path: PathBuf,
    pub meta: ScoresMeta,
    pub rows: Vec<ScoreRow>,
}

impl ScoresFile {
    /// Reads `path` and its sidecar; the CSV's columns must be the ones the sidecar's
    /// targets name. The file of one shard is refused: it lacks the z-scores.
    pub fn read(path: &Path) -> Result<Self> {
        let file = Self::read_any(path)?;
        if let Some(shard) = file.meta.shard {
            bail!(
                "'{}' is shard {shard} of a sharded scoring, without z-scores: combine the shards with `vog merge` first",
                path.display()
            );
        }
        Ok(file)
    }

    /// Reads the file of one shard (z-scores are NaN).
    pub fn read_shard(path: &Path) -> Result<Self> {
        let file = Self::read_any(path)?;
        if file.meta.shard.is_none() {
            bail!(
                "'{}' is a complete scores file, not a shard",
                path.display()
            );
        }
        Ok(file)
    }

    /// Reads a complete scores file or the file of one shard, checked as both are.
    pub fn read_any(path: &Path) -> Result<Self> {
        let table = Table::read(path)?;
        let mut required: Vec<&str> = BASE_COLUMNS.to_vec();
        required.extend(["vog", "vog_raw"]);
        table.require(&required)?;
        let meta = read_meta(path)?;
        check_digest(&meta, path)?;
        // A shard may be empty: more shards than batches.
        if table.records.is_empty() && meta.shard.is_none() {
            bail!("'{}' holds no examples", path.display());
        }
        let expected = header(&meta);
        // Files scored before `suggested_label` existed lack it and are read without it.
        let older = &expected[..expected.len() - usize::from(suggests(&meta.companions))];
        if table.headers != expected && table.headers != older {
            bail!(
                "the columns of '{}' do not match the targets and scores its sidecar lists ({})",
                path.display(),
                names(&meta.targets, &meta.companions)
            );
        }
        let rows = (0..table.records.len())
            .map(|r| table.row(r, &meta))
            .collect::<Result<Vec<_>>>()?;
        check_rows(&meta, &rows, path)?;
        Ok(ScoresFile {
            path: path.to_path_buf(),
            meta,
            rows,
        })
    }

    /// Refuses a file scored from another run than the one at `run` (whose state is
    /// `now`), from other data, or from the run before it changed: a checkpoint replaced
    /// (`vog train --overwrite`), or out-of-sample probabilities gathered again. The run
    /// may have moved: checkpoints are compared by content.
    pub fn check_of_run(&self, run: &Path, now: &RunState) -> Result<()> {
        let (m, path) = (&self.meta, self.path.display());
        self.check_data_of_run(run, now)?;
        if m.checkpoint_digests.is_empty() {
            // Sidecars from before checkpoint digests name the run by its path.
            let absolute = std::path::absolute(run).unwrap_or_else(|_| run.to_path_buf());
            if m.run.as_ref() != Some(&absolute) {
                bail!(
                    "'{path}' holds scores of {}, not of run '{}'",
                    m.source(),
                    run.display()
                );
            }
        }
        for (name, then) in m.checkpoints.iter().zip(&m.checkpoint_digests) {
            let size = std::fs::metadata(run.join(name)).map(|f| f.len()).ok();
            match now.files.get(name) {
                Some(d) if d == then && size == Some(d.size) => {}
                Some(d) if d == then => bail!(
                    "'{path}' was scored from '{name}', which run '{}' lacks or holds damaged \
                     (vog verify says which)",
                    run.display()
                ),
                Some(_) => bail!(
                    "the run changed since scoring: '{path}' was scored from '{name}' as it was \
                     then, and run '{}' holds other weights there now (trained again); score again",
                    run.display()
                ),
                None => bail!(
                    "the run changed since scoring: '{path}' was scored from '{name}', which run \
                     '{}' no longer has; score again",
                    run.display()
                ),
            }
        }
        if m.run_id
            .as_ref()
            .is_some_and(|id| Some(id) != now.run_id.as_ref())
        {
            bail!(
                "'{path}' holds scores of another training than run '{}' (even of the same \
                 recipe and seed); score this run",
                run.display()
            );
        }
        if m.out_of_sample.is_some() && m.out_of_sample != now.out_of_sample {
            bail!(
                "the run changed since scoring: the out-of-sample probabilities of '{path}' are \
                 not those in '{}' now (vog crossval ran again?); score again",
                run.join("crossval").display()
            );
        }
        Ok(())
    }

    /// The first of [`Self::check_of_run`]'s checks: scores of a run, on the data the run at
    /// `run` holds now. A run trained again on other data in the same folder (`vog train
    /// --overwrite`) is named as such, not as another run.
    fn check_data_of_run(&self, run: &Path, now: &RunState) -> Result<()> {
        let (m, path) = (&self.meta, self.path.display());
        let Some(then) = &m.run else {
            bail!(
                "'{path}' holds scores of {}, not of run '{}'",
                m.source(),
                run.display()
            );
        };
        if m.dataset_fingerprint == now.fingerprint {
            return Ok(());
        }
        let here = std::path::absolute(run).unwrap_or_else(|_| run.to_path_buf());
        if *then == here {
            bail!(
                "the run changed since scoring: run '{}' was trained again on other data (another \
                 dataset, subset or selection of its examples), so '{path}' no longer describes its \
                 examples; score again",
                run.display()
            );
        }
        bail!(
            "'{path}' holds scores of run '{}' on other data than run '{}' holds",
            then.display(),
            run.display()
        )
    }

    pub fn len(&self) -> usize {
        self.rows.len()
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The targets, in column order.
    pub fn targets(&self) -> &[Target] {
        &self.meta.targets
    }

    /// The values of VoG target `t`'s column `which` (raw or normalized), in row order.
    pub fn values(&self, t: usize, which: Column) -> Vec<f64> {
        self.rows
            .iter()
            .map(|r| value(r, (t, which)).expect("VoG columns have every value"))
            .collect()
    }

    /// Every score column's name and reference: the VoG ones, then the companions.
    pub fn columns(&self) -> Vec<(String, ColumnRef)> {
        let vog = score_columns(self.targets())
            .into_iter()
            .enumerate()
            .flat_map(|(t, (raw, z))| [(z, (t, Column::Normalized)), (raw, (t, Column::Raw))]);
        let companions = self
            .meta
            .companions
            .iter()
            .enumerate()
            .map(|(i, c)| (c.name().to_string(), (i, Column::Companion)));
        vog.chain(companions).collect()
    }

    /// The column a name (`vog`, `vog_raw`, `vog_T`, `vog_raw_T`, a companion) stands for.
    pub fn column(&self, name: &str) -> Result<ColumnRef> {
        let columns = self.columns();
        if let Some((_, c)) = columns.iter().find(|(n, _)| n == name) {
            return Ok(*c);
        }
        let all: Vec<String> = columns.into_iter().map(|(n, _)| n).collect();
        bail!(
            "'{}' has no score column '{name}' (it has {})",
            self.path.display(),
            all.join(", ")
        )
    }

    /// The same file restricted to the examples of one split.
    pub fn only(&self, kind: SplitKind) -> ScoresFile {
        ScoresFile {
            path: self.path.clone(),
            meta: self.meta.clone(),
            rows: self
                .rows
                .iter()
                .filter(|r| r.split == kind)
                .cloned()
                .collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::DatasetSpec;
    use crate::info::Versions;
    use crate::variance::Variant;
    use std::collections::BTreeMap;

    fn row() -> ScoreRow {
        ScoreRow {
            id: "test/000001".into(),
            split: SplitKind::Test,
            index: 1,
            label: 3,
            label_name: "cat".into(),
            trained_label: 3,
            noisy: false,
            predicted: 5,
            correct: false,
            scores: vec![(1.5e-3, -0.25), (2.0, 1.0)],
            companions: vec![Some(0.5), None],
            suggested_label: None,
            planted: None,
            near_duplicate_set: None,
        }
    }

    fn meta(targets: Vec<Target>) -> ScoresMeta {
        ScoresMeta {
            format: SCORES_FORMAT.into(),
            run: Some("run".into()),
            models: None,
            shard: None,
            dataset_fingerprint: "f".into(),
            dataset: DatasetSpec::Synth {
                train: 1,
                test: 1,
                seed: 0,
                atypical: 0.0,
            },
            split: SplitChoice::Test,
            stage: Stage::All,
            epochs: vec![1, 2],
            checkpoints: vec![],
            checkpoint_digests: vec![],
            run_id: None,
            out_of_sample: None,
            out_of_sample_strength: None,
            targets,
            companions: vec![Companion::Loss, Companion::Aum],
            variant: Variant::default(),
            examples: 1,
            incomplete: None,
            degenerate_classes: BTreeMap::new(),
            device: tch::Device::Cpu,
            seconds: 0.0,
            versions: Versions::current(),
            csv: None,
            precision: Default::default(),
            captured: None,
            planted: Vec::new(),
        }
    }

    #[test]
    fn planted_kinds_round_trip_in_their_column() {
        use crate::data::plant::Kind;
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        let mut m = meta(vec![Target::Logit]);
        (m.planted, m.split, m.examples) = (vec![Kind::Noise, Kind::Zoom], SplitChoice::Both, 2);
        let planted = ScoreRow {
            id: "train/000002".into(),
            split: SplitKind::Train,
            planted: Some(Kind::Zoom),
            scores: vec![(1.0, 0.5)],
            companions: vec![Some(0.5), Some(1.0)],
            ..row()
        };
        let test = ScoreRow {
            scores: vec![(1.0, 0.5)],
            ..row()
        };
        let rows = [planted, test];
        write(&p, &mut m, &rows).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.starts_with(
                "id,split,index,label,label_name,trained_label,noisy,planted,predicted,"
            ),
            "{text}"
        );
        assert!(
            text.contains("\ntrain/000002,train,1,3,cat,3,false,zoom,5,"),
            "{text}"
        );
        assert_eq!(ScoresFile::read(&p).unwrap().rows, rows);
        // A kind the sidecar does not list, or a planted test example, is refused.
        for (from, to) in [(",zoom,", ",shift,"), (",false,,5,", ",false,noise,5,")] {
            std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
            m.csv = None;
            std::fs::write(sidecar_path(&p), serde_json::to_vec(&m).unwrap()).unwrap();
            let err = ScoresFile::read(&p).unwrap_err().to_string();
            assert!(err.contains("column 'planted' holds"), "{err}");
        }
    }

    #[test]
    fn header_and_round_trip() {
        let mut buf = Vec::new();
        write_csv(&mut buf, &meta(vec![Target::Logit, Target::Prob]), &[row()]).unwrap();
        let text = String::from_utf8(buf).unwrap();
        let mut lines = text.lines();
        assert_eq!(
            lines.next().unwrap(),
            "id,split,index,label,label_name,trained_label,noisy,predicted,correct,vog_raw,vog,vog_raw_prob,vog_prob,loss,aum"
        );
        assert_eq!(
            lines.next().unwrap(),
            "test/000001,test,1,3,cat,3,false,5,false,1.5e-3,-0.25,2e0,1,5e-1,"
        );
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        let mut m = meta(vec![Target::Logit, Target::Prob]);
        write(&p, &mut m, &[row()]).unwrap();
        assert_eq!(
            m.csv,
            Some(crate::digest::of_file(&p).unwrap()),
            "the sidecar records the CSV's digest"
        );
        assert_eq!(sidecar_path(&p), dir.path().join("s.json"));
        let f = ScoresFile::read(&p).unwrap();
        assert_eq!(f.rows, vec![row()]);
        assert_eq!(f.meta, m);
        assert_eq!(f.column("vog_raw_prob").unwrap(), (1, Column::Raw));
        assert_eq!(f.values(0, Column::Normalized), vec![-0.25]);
        let err = f.column("vog_margin").unwrap_err().to_string();
        assert!(
            err.contains("vog, vog_raw, vog_prob, vog_raw_prob"),
            "{err}"
        );
    }

    #[test]
    fn suggested_label_with_out_of_sample_scores() {
        let mut m = meta(vec![Target::Logit]);
        (m.split, m.examples) = (SplitChoice::Both, 2);
        m.companions = Companion::OUT_OF_SAMPLE.to_vec();
        let mut train = row();
        (train.id, train.split, train.scores) =
            ("train/1".into(), SplitKind::Train, vec![(1.0, 0.5)]);
        (train.companions, train.suggested_label) =
            (vec![Some(0.2), Some(0.4), Some(1.0), Some(1.0)], Some(4));
        let mut test = train.clone();
        (test.id, test.split, test.suggested_label) = ("test/1".into(), SplitKind::Test, None);
        test.companions = vec![None; 4];
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        write(&p, &mut m.clone(), &[train.clone(), test.clone()]).unwrap();
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(
            text.lines()
                .next()
                .unwrap()
                .ends_with(",label_issue,suggested_label"),
            "{text}"
        );
        assert!(text.lines().nth(1).unwrap().ends_with(",true,4"), "{text}");
        assert_eq!(
            ScoresFile::read(&p).unwrap().rows,
            vec![train.clone(), test]
        );
        // Files written before label_issue was true/false hold 1e0 and 0e0.
        let older = text.replacen(",true,4", ",1e0,4", 1);
        std::fs::write(&p, &older).unwrap();
        m.csv = Some(crate::digest::of_file(&p).unwrap());
        std::fs::write(sidecar_path(&p), serde_json::to_vec(&m).unwrap()).unwrap();
        assert_eq!(ScoresFile::read(&p).unwrap().rows[0], train);
        // A training row without its suggestion is refused by row.
        let broken = text.replacen(",true,4", ",true,", 1);
        std::fs::write(&p, &broken).unwrap();
        m.csv = Some(crate::digest::of_file(&p).unwrap());
        std::fs::write(sidecar_path(&p), serde_json::to_vec(&m).unwrap()).unwrap();
        let err = ScoresFile::read(&p).unwrap_err().to_string();
        assert!(
            err.contains("row 2") && err.contains("suggested_label"),
            "{err}"
        );
    }

    #[test]
    fn sidecar_must_be_there_and_match() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("s.csv");
        write(&p, &mut meta(vec![Target::Logit, Target::Prob]), &[row()]).unwrap();
        std::fs::remove_file(sidecar_path(&p)).unwrap();
        let err = format!("{:#}", ScoresFile::read(&p).unwrap_err());
        assert!(err.contains("s.json") && err.contains("sidecar"), "{err}");
        // A sidecar listing other targets than the columns hold.
        let json = serde_json::to_vec(&meta(vec![Target::Logit])).unwrap();
        std::fs::write(sidecar_path(&p), json).unwrap();
        let err = ScoresFile::read(&p).unwrap_err().to_string();
        assert!(err.contains("do not match"), "{err}");
        std::fs::write(sidecar_path(&p), "{").unwrap();
        let err = format!("{:#}", ScoresFile::read(&p).unwrap_err());
        assert!(err.contains("invalid scores sidecar"), "{err}");
    }

    #[test]
    fn default_paths() {
        let stage: Stage = "1-3,every:10".parse().unwrap();
        assert_eq!(
            scores_path(Path::new("r"), SplitChoice::Both, &stage),
            Path::new("r/scores-both-1-3_every_10.csv")
        );
        assert_eq!(
            scores_path(Path::new("r"), SplitChoice::Test, &Stage::Late),
            Path::new("r/scores-test-late.csv")
        );
    }
}
