//! Epoch schedules: the step learning-rate schedule and epoch-set specs such as
//! `1,2,3,348-350`, `every:10` or `paper` (the paper's first three, last three and every
//! 10th epoch; Agarwal & Hooker, Section 3).
use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::fmt;
use std::str::FromStr;
use thiserror::Error;

/// What a learning-rate milestone counts: epochs (the paper's text), or optimizer steps
/// (the authors' script called `MultiStepLR.step()` once per batch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LrStep {
    #[default]
    Epoch,
    Batch,
}

impl LrStep {
    pub fn is_epoch(&self) -> bool {
        *self == LrStep::Epoch
    }
}

/// Step learning-rate schedule: `base * gamma^k`. Per epoch, k counts the milestones at or
/// before the (1-based) epoch, so with milestones [150, 250] epoch 150 already uses 0.01.
/// Per batch, k counts the milestones at or before the 0-based optimizer step, as PyTorch's
/// `MultiStepLR` stepped after every batch: steps 0-149 use `base`, 150-249 `base * gamma`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrSchedule {
    pub base: f64,
    pub milestones: Vec<usize>,
    pub gamma: f64,
    pub per: LrStep,
}

impl LrSchedule {
    fn at(&self, count: usize) -> f64 {
        let steps = self.milestones.iter().filter(|&&m| m <= count).count();
        self.base * self.gamma.powi(steps as i32)
    }

    /// The learning rate of each of the `batches` optimizer steps of 1-based `epoch`.
    pub fn batch_lrs(&self, epoch: usize, batches: usize) -> Vec<f64> {
        match self.per {
            LrStep::Epoch => vec![self.at(epoch); batches],
            LrStep::Batch => {
                let first = (epoch - 1) * batches;
                (first..first + batches).map(|s| self.at(s)).collect()
            }
        }
    }
}

/// Why an epoch-set spec was refused.
#[derive(Debug, Error, PartialEq)]
pub enum SpecError {
    #[error(
        "'{}' is not an epoch, a range A-B, every:K, first:N, last:N, paper or all",
        .0.escape_debug()
    )]
    Unknown(String),
    #[error("epoch {epoch} is outside 1..{max}")]
    OutOfRange { epoch: usize, max: usize },
    #[error("range '{}' runs backwards", .0.escape_debug())]
    Backwards(String),
    #[error("'{}' needs a count of at least 1", .0.escape_debug())]
    ZeroCount(String),
    #[error("the spec is empty")]
    Empty,
    #[error("'{}' is given twice", .0.escape_debug())]
    Repeated(String),
    #[error(
        "'{}' is not a stage: early, late, early+late, all, captured, or epochs such as \
         1-3,every:10 (one of these, not a list of them)",
        .0.escape_debug()
    )]
    Stage(String),
}

/// One comma-separated item of an epoch-set spec.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Item {
    Epoch(usize),
    Range(usize, usize),
    Every(usize),
    First(usize),
    Last(usize),
    All,
}

/// A parsed epoch-set spec such as `1,2,3,348-350`, `every:10` or `paper`: checked for
/// syntax when parsed, expanded against a run's epoch count with [`EpochSpec::expand`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct EpochSpec {
    text: String,
    items: Vec<Item>,
}

impl FromStr for EpochSpec {
    type Err = SpecError;

    fn from_str(spec: &str) -> Result<Self, SpecError> {
        let mut items = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let before = items.len();
            parse_item(item, &mut items)?;
            // A list that names an item twice was mistyped (as other lists, it is refused);
            // items that overlap (`first:3,every:10`) are sets by design.
            if items[before..].iter().any(|i| items[..before].contains(i)) {
                return Err(SpecError::Repeated(item.to_string()));
            }
        }
        if items.is_empty() {
            return Err(SpecError::Empty);
        }
        Ok(EpochSpec {
            text: spec.trim().to_string(),
            items,
        })
    }
}

impl TryFrom<String> for EpochSpec {
    type Error = SpecError;

    fn try_from(s: String) -> Result<Self, SpecError> {
        s.parse()
    }
}

impl From<EpochSpec> for String {
    fn from(spec: EpochSpec) -> String {
        spec.text
    }
}

impl fmt::Display for EpochSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl EpochSpec {
    /// The sorted, distinct 1-based epochs the spec names among `1..=max`.
    pub fn expand(&self, max: usize) -> Result<Vec<usize>, SpecError> {
        let in_range = |epoch: usize| {
            if (1..=max).contains(&epoch) {
                Ok(epoch)
            } else {
                Err(SpecError::OutOfRange { epoch, max })
            }
        };
        let mut set = BTreeSet::new();
        for item in &self.items {
            match *item {
                Item::Epoch(e) => {
                    set.insert(in_range(e)?);
                }
                Item::Range(a, b) => set.extend(in_range(a)?..=in_range(b)?),
                Item::Every(k) => set.extend((1..=max).filter(|e| e % k == 0)),
                Item::First(n) => set.extend(1..=n.min(max)),
                Item::Last(n) => set.extend(max.saturating_sub(n) + 1..=max),
                Item::All => set.extend(1..=max),
            }
        }
        if set.is_empty() {
            return Err(SpecError::Empty);
        }
        Ok(set.into_iter().collect())
    }
}

/// Parses an epoch-set spec against `max` epochs into sorted, distinct 1-based epochs.
pub fn parse_epochs(spec: &str, max: usize) -> Result<Vec<usize>, SpecError> {
    spec.parse::<EpochSpec>()?.expand(max)
}

fn parse_item(item: &str, items: &mut Vec<Item>) -> Result<(), SpecError> {
    let unknown = || SpecError::Unknown(item.to_string());
    let count = |s: &str| -> Result<usize, SpecError> {
        match s.trim().parse::<usize>() {
            Ok(0) => Err(SpecError::ZeroCount(item.to_string())),
            Ok(k) => Ok(k),
            Err(_) => Err(unknown()),
        }
    };
    let epoch = |s: &str| s.trim().parse::<usize>().map_err(|_| unknown());
    let parsed = if item == "paper" {
        items.extend([Item::First(PAPER_STAGE), Item::Last(PAPER_STAGE)]);
        Item::Every(PAPER_STRIDE)
    } else if item == "all" {
        Item::All
    } else if let Some(k) = item.strip_prefix("every:") {
        Item::Every(count(k)?)
    } else if let Some(n) = item.strip_prefix("first:") {
        Item::First(count(n)?)
    } else if let Some(n) = item.strip_prefix("last:") {
        Item::Last(count(n)?)
    } else if let Some((a, b)) = item.split_once('-') {
        let (a, b) = (epoch(a)?, epoch(b)?);
        if a > b {
            return Err(SpecError::Backwards(item.to_string()));
        }
        Item::Range(a, b)
    } else {
        Item::Epoch(epoch(item)?)
    };
    items.push(parsed);
    Ok(())
}

/// Checkpoints in the paper's "early" and "late" stages: the first and the last three.
pub const PAPER_STAGE: usize = 3;
/// The paper's "across training" stride: every 10th epoch.
pub const PAPER_STRIDE: usize = 10;

/// Which saved checkpoints VoG is computed over (Agarwal & Hooker, Section 3).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stage {
    /// The first [`PAPER_STAGE`] saved checkpoints.
    Early,
    /// The last [`PAPER_STAGE`] saved checkpoints.
    Late,
    /// The first and the last [`PAPER_STAGE`] saved checkpoints together: the paper's
    /// checkpoints for figures 4-6 ("the first and last 3 epochs").
    EarlyLate,
    /// Every saved checkpoint.
    All,
    /// The named epochs, each of which must have been saved.
    Epochs(EpochSpec),
    /// Not checkpoints: the gradients captured during training (`capture_epochs`), the
    /// authors' protocol; training examples only.
    Captured,
}

impl FromStr for Stage {
    type Err = SpecError;

    fn from_str(s: &str) -> Result<Self, SpecError> {
        Ok(match s.trim() {
            "early" => Stage::Early,
            "late" => Stage::Late,
            "early+late" => Stage::EarlyLate,
            "all" => Stage::All,
            "captured" => Stage::Captured,
            spec => Stage::Epochs(spec.parse().map_err(|e| match e {
                // A stage's name inside an epoch list: the list of stages says more than
                // the list of epoch forms.
                SpecError::Unknown(item)
                    if ["early", "late", "early+late", "captured"].contains(&item.as_str()) =>
                {
                    SpecError::Stage(spec.to_string())
                }
                e => e,
            })?),
        })
    }
}

impl fmt::Display for Stage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Stage::Early => f.write_str("early"),
            Stage::Late => f.write_str("late"),
            Stage::EarlyLate => f.write_str("early+late"),
            Stage::All => f.write_str("all"),
            Stage::Captured => f.write_str("captured"),
            Stage::Epochs(spec) => spec.fmt(f),
        }
    }
}

impl Serialize for Stage {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Stage {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse()
            .map_err(|e| serde::de::Error::custom(format!("stage '{text}': {e}")))
    }
}

impl Stage {
    /// The epochs of this stage among a run's `saved` checkpoints (of `epochs` in all);
    /// VoG needs at least two.
    pub fn select(&self, saved: &[usize], epochs: usize) -> anyhow::Result<Vec<usize>> {
        if saved.is_empty() {
            bail!("the run has no saved checkpoints");
        }
        let picked: Vec<usize> = match self {
            Stage::Early => saved.iter().take(PAPER_STAGE).copied().collect(),
            Stage::Late => saved[saved.len().saturating_sub(PAPER_STAGE)..].to_vec(),
            Stage::EarlyLate => {
                let late = saved.len().saturating_sub(PAPER_STAGE).max(PAPER_STAGE);
                let mut picked: Vec<usize> = saved.iter().take(PAPER_STAGE).copied().collect();
                picked.extend(saved.iter().skip(late).copied());
                picked
            }
            Stage::All => saved.to_vec(),
            Stage::Captured => bail!(
                "the stage 'captured' is the gradients captured during training, not checkpoints"
            ),
            Stage::Epochs(spec) => {
                let wanted = spec
                    .expand(epochs)
                    .with_context(|| format!("stage '{spec}'"))?;
                if let Some(e) = wanted.iter().find(|e| !saved.contains(e)) {
                    bail!("stage '{spec}': epoch {e} was not saved (saved epochs: {saved:?})");
                }
                wanted
            }
        };
        if picked.len() < 2 {
            bail!(
                "stage '{self}' selects {} checkpoint(s) ({picked:?}); VoG needs at least 2 (saved epochs: {saved:?})",
                picked.len()
            );
        }
        Ok(picked)
    }

    /// The stage as part of a file name (`1-3,every:10` -> `1-3_every_10`).
    pub fn slug(&self) -> String {
        crate::atomic_file::safe_file_name(&self.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paper_lr_schedule() {
        let mut s = LrSchedule {
            base: 0.1,
            milestones: vec![150, 250],
            gamma: 0.1,
            per: LrStep::Epoch,
        };
        let lr = |s: &LrSchedule, epoch| s.batch_lrs(epoch, 1)[0];
        assert_eq!(lr(&s, 1), 0.1);
        assert_eq!(lr(&s, 149), 0.1);
        assert!((lr(&s, 150) - 0.01).abs() < 1e-12);
        assert!((lr(&s, 249) - 0.01).abs() < 1e-12);
        assert!((lr(&s, 250) - 0.001).abs() < 1e-12);
        assert!((lr(&s, 350) - 0.001).abs() < 1e-12);
        assert_eq!(s.batch_lrs(150, 3), vec![lr(&s, 150); 3]);
        // The authors' script: 1,000 steps an epoch, the schedule stepped per batch.
        s.per = LrStep::Batch;
        let first = s.batch_lrs(1, 1000);
        assert!(first[..150].iter().all(|&x| x == 0.1));
        assert!(first[150..250].iter().all(|&x| (x - 0.01).abs() < 1e-12));
        assert!(first[250..].iter().all(|&x| (x - 0.001).abs() < 1e-12));
        assert!(s
            .batch_lrs(2, 1000)
            .iter()
            .all(|&x| (x - 0.001).abs() < 1e-12));
        // Steps count across epochs: 100 a epoch puts step 150 in the middle of epoch 2.
        let second = s.batch_lrs(2, 100);
        assert_eq!(second[49], 0.1);
        assert!((second[50] - 0.01).abs() < 1e-12);
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
        assert_eq!(
            parse_epochs("1,2,2", 9),
            Err(SpecError::Repeated("2".into()))
        );
        assert_eq!(
            parse_epochs("last:2, last:2", 9),
            Err(SpecError::Repeated("last:2".into()))
        );
        assert_eq!(
            "captured,1-3".parse::<Stage>(),
            Err(SpecError::Stage("captured,1-3".into()))
        );
        // Overlapping items are a set, not a repetition.
        assert_eq!(parse_epochs("first:3,1-2,every:2", 4), Ok(vec![1, 2, 3, 4]));
        assert_eq!(
            "1-x".parse::<EpochSpec>(),
            Err(SpecError::Unknown("1-x".into()))
        );
    }

    #[test]
    fn stages() {
        let saved = [1, 2, 3, 10, 20, 28, 29, 30];
        let select = |s: &str| s.parse::<Stage>().unwrap().select(&saved, 30);
        assert_eq!(select("early").unwrap(), vec![1, 2, 3]);
        assert_eq!(select("late").unwrap(), vec![28, 29, 30]);
        assert_eq!(select("all").unwrap(), saved.to_vec());
        // The paper's figures 4-6: early and late together, each checkpoint once.
        assert_eq!(select("early+late").unwrap(), vec![1, 2, 3, 28, 29, 30]);
        let few = Stage::EarlyLate.select(&[1, 2, 3, 4], 4).unwrap();
        assert_eq!(few, vec![1, 2, 3, 4]);
        assert_eq!(select("1,10,20-20").unwrap(), vec![1, 10, 20]);
        let err = select("1-4").unwrap_err().to_string();
        assert!(err.contains("epoch 4 was not saved"), "{err}");
        let err = format!("{:#}", select("40").unwrap_err());
        assert!(err.contains("epoch 40 is outside 1..30"), "{err}");
        let early = Stage::Early.select(&[5], 30).unwrap_err().to_string();
        assert!(early.contains("at least 2"), "{early}");
        assert!(Stage::All.select(&[], 30).is_err());
        assert!("every:x".parse::<Stage>().is_err());
    }

    #[test]
    fn stage_names_round_trip() {
        for s in ["early", "late", "early+late", "all", "1-3,every:10"] {
            let stage: Stage = s.parse().unwrap();
            assert_eq!(stage.to_string(), s);
            let json = serde_json::to_string(&stage).unwrap();
            assert_eq!(serde_json::from_str::<Stage>(&json).unwrap(), stage);
        }
        let spec: Stage = "1-3,every:10".parse().unwrap();
        assert_eq!(spec.slug(), "1-3_every_10");
        assert_eq!(Stage::EarlyLate.slug(), "early_late");
    }
}
