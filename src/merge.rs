//! `vog merge`: the files of a sharded scoring (`vog score --model ... --shard I/N`, one
//! per shard) into one scores file. The shards must be of one scoring (same models,
//! dataset, split, targets, variant, precision, preprocessing and batch size), every shard
//! present once and every example in exactly one; the raw VoG is then z-scored within each
//! class over all examples, so the CSV equals the one an unsharded scoring writes, byte for
//! byte (see [`crate::scores::Shard`] for why the slices follow batch boundaries).
use crate::progress::Reporter;
use crate::scores::{self, ScoresFile, ScoresMeta, Shard};
use anyhow::{bail, Result};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Merges `shards` into `out` (and its sidecar); returns the sidecar written.
pub fn run(shards: &[PathBuf], out: &Path, reporter: &dyn Reporter) -> Result<ScoresMeta> {
    if shards.is_empty() {
        bail!("name the shard files to merge");
    }
    scores::check_out(out)?;
    let files = shards
        .iter()
        .map(|p| ScoresFile::read_shard(p))
        .collect::<Result<Vec<_>>>()?;
    let ordered = check_shards(&files)?;
    let mut rows = Vec::new();
    for f in &ordered {
        rows.extend(f.rows.iter().cloned());
    }
    check_unique_ids(&ordered)?;
    let names: BTreeMap<i64, String> = rows
        .iter()
        .map(|r| (r.label, r.label_name.clone()))
        .collect();
    let degenerate = scores::normalize_rows(&mut rows, |c| {
        names.get(&c).cloned().unwrap_or_else(|| c.to_string())
    });
    scores::warn_degenerate(&degenerate, reporter);
    let mut meta = ordered[0].meta.clone();
    meta.shard = None;
    meta.examples = rows.len();
    meta.degenerate_classes = degenerate;
    meta.seconds = ordered.iter().map(|f| f.meta.seconds).sum();
    meta.csv = None;
    scores::write(out, &mut meta, &rows)?;
    Ok(meta)
}

/// The sidecar fields that must agree between shards of one scoring.
fn identity(meta: &ScoresMeta) -> Result<serde_json::Map<String, serde_json::Value>> {
    let serde_json::Value::Object(mut map) = serde_json::to_value(meta)? else {
        bail!("a sidecar is a JSON object");
    };
    for key in [
        "shard",
        "examples",
        "degenerate_classes",
        "device",
        "seconds",
        "csv",
        "versions",
    ] {
        map.remove(key);
    }
    Ok(map)
}

fn shard_of(f: &ScoresFile) -> Shard {
    f.meta.shard.expect("read_shard returns shards")
}

/// Checks that `files` are the shards of one scoring, each once and complete; returns them
/// in shard order.
fn check_shards(files: &[ScoresFile]) -> Result<Vec<&ScoresFile>> {
    let first = &files[0];
    let (s0, id0) = (shard_of(first), identity(&first.meta)?);
    for f in &files[1..] {
        let s = shard_of(f);
        let (a, b) = (first.path.display(), f.path.display());
        if (s.count, s.total, s.batch_size) != (s0.count, s0.total, s0.batch_size) {
            bail!(
                "'{b}' is shard {s} of {} examples in batches of {}, '{a}' shard {s0} of {} in batches of {}: not one scoring",
                s.total,
                s.batch_size,
                s0.total,
                s0.batch_size
            );
        }
        let id = identity(&f.meta)?;
        if let Some(key) = id0
            .keys()
            .chain(id.keys())
            .find(|k| id0.get(*k) != id.get(*k))
        {
            bail!("'{b}' and '{a}' are shards of different scorings: their '{key}' differs");
        }
    }
    let mut by_index: BTreeMap<usize, &ScoresFile> = BTreeMap::new();
    for f in files {
        let s = shard_of(f);
        if let Some(other) = by_index.insert(s.index, f) {
            bail!(
                "'{}' and '{}' are both shard {s}",
                other.path.display(),
                f.path.display()
            );
        }
        let want = s.range().len();
        if f.rows.len() != want {
            bail!(
                "'{}' holds {} examples, but shard {s} has {want}",
                f.path.display(),
                f.rows.len()
            );
        }
    }
    if let Some(missing) = (0..s0.count).find(|i| !by_index.contains_key(i)) {
        bail!(
            "shard {missing}/{} is missing (given {} of {} shard files)",
            s0.count,
            files.len(),
            s0.count
        );
    }
    Ok(by_index.into_values().collect())
}

/// Refuses an example id that two rows share (the same example in two shards, or a
/// tampered file).
fn check_unique_ids(files: &[&ScoresFile]) -> Result<()> {
    let mut seen: HashMap<(&str, crate::data::SplitKind), &Path> = HashMap::new();
    for f in files {
        for r in &f.rows {
            if let Some(other) = seen.insert((r.id.as_str(), r.split), &f.path) {
                bail!(
                    "example '{}' ({}) appears twice: in '{}' and '{}'",
                    r.id,
                    r.split,
                    other.display(),
                    f.path.display()
                );
            }
        }
    }
    Ok(())
}
