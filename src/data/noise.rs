//! Shuffled labels for the paper's memorization experiment (Agarwal & Hooker, Section 4.3):
//! a seeded random fraction of the training set has its labels permuted among itself, so
//! class counts stay the same. The record is written as `label_noise.csv`
//! (`id,original_label,assigned_label`), one row per picked example.
use anyhow::{bail, Result};
use rand::seq::{index, SliceRandom};
use rand::Rng;
use serde::{Deserialize, Serialize};
use std::io::Write;

/// One example whose label took part in the shuffle.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NoisyLabel {
    pub id: String,
    pub original_label: i64,
    pub assigned_label: i64,
}

/// Returns the labels to train with and the record of the shuffled examples (dataset order).
/// A permutation can return an example's own label or one of its class; such rows stay in
/// the record (they were picked) with equal original and assigned labels.
pub fn shuffle_labels(
    labels: &[i64],
    ids: &[String],
    fraction: f64,
    rng: &mut impl Rng,
) -> Result<(Vec<i64>, Vec<NoisyLabel>)> {
    if !(0.0..=1.0).contains(&fraction) {
        bail!("--label-noise must be a fraction in [0, 1], got {fraction}");
    }
    let k = (fraction * labels.len() as f64).round() as usize;
    let mut picked = index::sample(rng, labels.len(), k).into_vec();
    picked.sort_unstable();
    let mut moved: Vec<i64> = picked.iter().map(|&i| labels[i]).collect();
    moved.shuffle(rng);
    let mut assigned = labels.to_vec();
    let record = picked
        .iter()
        .zip(moved)
        .map(|(&i, new)| {
            assigned[i] = new;
            NoisyLabel {
                id: ids[i].clone(),
                original_label: labels[i],
                assigned_label: new,
            }
        })
        .collect();
    Ok((assigned, record))
}

/// Writes the record as CSV.
pub fn write_csv(w: impl Write, record: &[NoisyLabel]) -> Result<()> {
    let mut csv = csv::Writer::from_writer(w);
    for row in record {
        csv.serialize(row)?;
    }
    csv.flush()?;
    Ok(())
}

/// Reads the record file at `path` (errors name it, with the row).
pub fn read_file(path: &std::path::Path) -> Result<Vec<NoisyLabel>> {
    use anyhow::Context;
    let file =
        std::fs::File::open(path).with_context(|| format!("cannot open '{}'", path.display()))?;
    read_csv(file).with_context(|| format!("invalid label-noise record '{}'", path.display()))
}

/// Reads a record written by [`write_csv`].
pub fn read_csv(r: impl std::io::Read) -> Result<Vec<NoisyLabel>> {
    let mut csv = csv::Reader::from_reader(r);
    Ok(csv.deserialize().collect::<Result<_, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rng;

    #[test]
    fn permutes_a_fraction_keeping_class_counts() {
        let labels: Vec<i64> = (0..200).map(|i| i % 10).collect();
        let ids: Vec<String> = (0..200).map(|i| format!("train/{i}")).collect();
        let (assigned, record) =
            shuffle_labels(&labels, &ids, 0.2, &mut rng::stream(5, "noise")).unwrap();
        assert_eq!(record.len(), 40);
        let mut before: Vec<i64> = record.iter().map(|r| r.original_label).collect();
        let mut after: Vec<i64> = record.iter().map(|r| r.assigned_label).collect();
        before.sort();
        after.sort();
        assert_eq!(before, after);
        let changed = labels.iter().zip(&assigned).filter(|(a, b)| a != b).count();
        assert!(changed > 20 && changed <= 40, "{changed}");
        for r in &record {
            let i: usize = r.id[6..].parse().unwrap();
            assert_eq!(assigned[i], r.assigned_label);
        }
        let mut buf = Vec::new();
        write_csv(&mut buf, &record).unwrap();
        assert!(String::from_utf8_lossy(&buf).starts_with("id,original_label,assigned_label\n"));
        assert_eq!(read_csv(&buf[..]).unwrap(), record);
    }

    #[test]
    fn rejects_bad_fraction() {
        assert!(shuffle_labels(&[0], &["a".into()], 1.5, &mut rng::stream(0, "n")).is_err());
        let (a, r) = shuffle_labels(
            &[0, 1],
            &["a".into(), "b".into()],
            0.0,
            &mut rng::stream(0, "n"),
        )
        .unwrap();
        assert_eq!((a, r.len()), (vec![0, 1], 0));
    }
}
