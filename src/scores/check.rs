//! The one validation of a scores file's rows, applied by the writer before a file is
//! committed and by every reader after parsing it, so that whatever vog writes, vog reads:
//! as many rows as the sidecar says, every id once, every value finite (a shard's z-scores
//! aside, which need every shard), and the CSV the bytes the sidecar's SHA-256 records.
use super::csv::ScoreRow;
use super::meta::ScoresMeta;
use anyhow::{bail, Result};
use std::collections::HashMap;
use std::path::Path;

/// Refuses rows a reader of `path` would refuse; CSV rows are counted from 2 (the header
/// is row 1).
pub fn check_rows(meta: &ScoresMeta, rows: &[ScoreRow], path: &Path) -> Result<()> {
    if rows.len() != meta.examples {
        bail!(
            "'{}' holds {} examples, but its sidecar says {}",
            path.display(),
            rows.len(),
            meta.examples
        );
    }
    let mut seen: HashMap<&str, usize> = HashMap::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        if let Some(first) = seen.insert(r.id.as_str(), i) {
            bail!(
                "'{}' rows {} and {} have the same id '{}'",
                path.display(),
                first + 2,
                i + 2,
                r.id
            );
        }
        if let Some(column) = non_finite(r, meta.shard.is_some()) {
            bail!(
                "'{}' row {} ('{}'): {column} is not a finite number",
                path.display(),
                i + 2,
                r.id
            );
        }
    }
    Ok(())
}

/// The first kind of value of `row` that is not finite: `vog_raw`, `vog` (unless the row
/// is a shard's, whose z-scores are left empty) or a companion score.
pub fn non_finite(row: &ScoreRow, shard: bool) -> Option<&'static str> {
    if row.scores.iter().any(|(raw, _)| !raw.is_finite()) {
        return Some("vog_raw");
    }
    if !shard && row.scores.iter().any(|(_, z)| !z.is_finite()) {
        return Some("vog");
    }
    row.companions
        .iter()
        .any(|c| c.is_some_and(|v| !v.is_finite()))
        .then_some("a companion score (loss, el2n, prob or a training-dynamics score)")
}

/// Refuses a CSV whose bytes differ from those its sidecar recorded (sidecars from before
/// vog recorded them have nothing to check).
pub fn check_digest(meta: &ScoresMeta, path: &Path) -> Result<()> {
    let Some(recorded) = &meta.csv else {
        return Ok(());
    };
    let actual = crate::digest::of_file(path)?;
    if actual != *recorded {
        bail!(
            "'{}' is not the file vog wrote: its SHA-256 differs from the one its sidecar '{}' \
             records (edited or damaged since; score again)",
            path.display(),
            super::sidecar_path(path).display()
        );
    }
    Ok(())
}
