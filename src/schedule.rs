//! Epoch schedules: the step learning-rate schedule and epoch-set specs such as
//! `1,2,3,348-350`, `every:10` or `paper` (the paper's first three, last three and every
//! 10th epoch; Agarwal & Hooker, Section 3).
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use thiserror::Error;

/// Step learning-rate schedule: `base * gamma^k` where k counts the milestones at or
/// before the (1-based) epoch, so with milestones [150, 250] epoch 150 already uses 0.01.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    pub base: f64,
    pub milestones: Vec<usize>,
    pub gamma: f64,
}

impl LrSchedule {
    /// Learning rate for 1-based `epoch`.
    pub fn lr(&self, epoch: usize) -> f64 {
        let steps = self.milestones.iter().filter(|&&m| m <= epoch).count();
        self.base * self.gamma.powi(steps as i32)
    }
}

/// Why an epoch-set spec was refused.
#[derive(Debug, Error, PartialEq)]
pub enum SpecError {
    #[error("'{0}' is not an epoch, a range A-B, every:K, first:N, last:N, paper or all")]
    Unknown(String),
    #[error("epoch {epoch} is outside 1..{max}")]
    OutOfRange { epoch: usize, max: usize },
    #[error("range '{0}' runs backwards")]
    Backwards(String),
    #[error("'{0}' needs a count of at least 1")]
    ZeroCount(String),
    #[error("the spec is empty")]
    Empty,
}

/// Parses an epoch-set spec against `max` epochs into sorted, distinct 1-based epochs.
pub fn parse_epochs(spec: &str, max: usize) -> Result<Vec<usize>, SpecError> {
    let mut set = BTreeSet::new();
    for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        add_item(item, max, &mut set)?;
    }
    if set.is_empty() {
        return Err(SpecError::Empty);
    }
    Ok(set.into_iter().collect())
}

fn add_item(item: &str, max: usize, set: &mut BTreeSet<usize>) -> Result<(), SpecError> {
    let unknown = || SpecError::Unknown(item.to_string());
    let count = |s: &str| -> Result<usize, SpecError> {
        match s.trim().parse::<usize>() {
            Ok(0) => Err(SpecError::ZeroCount(item.to_string())),
            Ok(k) => Ok(k),
            Err(_) => Err(unknown()),
        }
    };
    let in_range = |epoch: usize| {
        if (1..=max).contains(&epoch) {
            Ok(epoch)
        } else {
            Err(SpecError::OutOfRange { epoch, max })
        }
    };
    if item == "paper" {
        for sub in ["first:3", "last:3", "every:10"] {
            add_item(sub, max, set)?;
        }
    } else if item == "all" {
        set.extend(1..=max);
    } else if let Some(k) = item.strip_prefix("every:") {
        let k = count(k)?;
        set.extend((1..=max).filter(|e| e % k == 0));
    } else if let Some(n) = item.strip_prefix("first:") {
        set.extend(1..=count(n)?.min(max));
    } else if let Some(n) = item.strip_prefix("last:") {
        set.extend(max.saturating_sub(count(n)?) + 1..=max);
    } else if let Some((a, b)) = item.split_once('-') {
        let a = in_range(a.trim().parse().map_err(|_| unknown())?)?;
        let b = in_range(b.trim().parse().map_err(|_| unknown())?)?;
        if a > b {
            return Err(SpecError::Backwards(item.to_string()));
        }
        set.extend(a..=b);
    } else {
        set.insert(in_range(item.parse().map_err(|_| unknown())?)?);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_lr_schedule() {
        let s = LrSchedule {
            base: 0.1,
            milestones: vec![150, 250],
            gamma: 0.1,
        };
        assert_eq!(s.lr(1), 0.1);
        assert_eq!(s.lr(149), 0.1);
        assert!((s.lr(150) - 0.01).abs() < 1e-12);
        assert!((s.lr(249) - 0.01).abs() < 1e-12);
        assert!((s.lr(250) - 0.001).abs() < 1e-12);
        assert!((s.lr(350) - 0.001).abs() < 1e-12);
    }

    #[test]
    fn lists_ranges_and_strides() {
        assert_eq!(
            parse_epochs("1,2,3,348-350", 350).unwrap(),
            vec![1, 2, 3, 348, 349, 350]
        );
        assert_eq!(parse_epochs("every:10", 35).unwrap(), vec![10, 20, 30]);
        assert_eq!(
            parse_epochs("every:4, 1, 5-6", 12).unwrap(),
            vec![1, 4, 5, 6, 8, 12]
        );
        assert_eq!(parse_epochs("last:2,first:1", 5).unwrap(), vec![1, 4, 5]);
        assert_eq!(parse_epochs("all", 3).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn paper_default() {
        let e = parse_epochs("paper", 350).unwrap();
        assert_eq!(e.len(), 3 + 35 + 2); // 350 is both last and every 10th
        assert_eq!(&e[..4], &[1, 2, 3, 10]);
        assert_eq!(&e[e.len() - 4..], &[340, 348, 349, 350]);
        assert_eq!(parse_epochs("paper", 3).unwrap(), vec![1, 2, 3]);
    }

    #[test]
    fn rejects_bad_specs() {
        assert_eq!(
            parse_epochs("1,400", 350),
            Err(SpecError::OutOfRange {
                epoch: 400,
                max: 350
            })
        );
        assert_eq!(
            parse_epochs("0", 5),
            Err(SpecError::OutOfRange { epoch: 0, max: 5 })
        );
        assert_eq!(
            parse_epochs("5-3", 9),
            Err(SpecError::Backwards("5-3".into()))
        );
        assert_eq!(
            parse_epochs("every:0", 9),
            Err(SpecError::ZeroCount("every:0".into()))
        );
        assert_eq!(parse_epochs("x", 9), Err(SpecError::Unknown("x".into())));
        assert_eq!(parse_epochs(" , ", 9), Err(SpecError::Empty));
    }
}
