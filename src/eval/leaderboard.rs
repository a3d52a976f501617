//! One leaderboard per question: how well does every score in a scores file (each VoG
//! target and variant, and the companion scores) pick out the examples the question is
//! about, with how much certainty?
//!
//! - difficulty: the misclassified examples of the test split;
//! - memorization: the training examples whose label was shuffled;
//! - atypical: examples known to be drawn atypically (the demo's planted images), among
//!   the training examples with unshuffled labels;
//! - flagged: examples the user knows or suspects to be mislabelled or odd.
//!
//! Every score is oriented the way it claims to point (high VoG, loss, EL2N, variability,
//! forgetting = harder; low probability, confidence, correctness, AUM = harder), so an
//! AUROC below 0.5 means the score ranks the other way round. The AUROC carries DeLong's
//! 95% interval, and the verdict speaks only when that interval excludes 0.5 and there are
//! at least [`MIN_POSITIVES`] positives; otherwise it says there is not enough evidence.
use super::stats::{self, AurocTest};
use crate::data::plant::Kind;
use crate::data::SplitKind;
use crate::scores::{self, Column, ColumnRef, ScoreRow, ScoresFile};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fmt;

/// Fewer positives than this never give a verdict.
pub const MIN_POSITIVES: usize = 20;

/// What a leaderboard asks. Written as `difficulty`, `memorization`, `atypical`,
/// `flagged`, or `planted:KIND` (eval.json, leaderboards.csv).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Question {
    Difficulty,
    Memorization,
    Atypical,
    Flagged,
    /// The training examples `vog train --plant` planted with this kind, among the
    /// training examples nothing was planted into.
    Planted(Kind),
}

impl Question {
    /// A heading for tables.
    pub fn title(self) -> String {
        match self {
            Question::Difficulty => "test difficulty (misclassified test examples)".into(),
            Question::Memorization => "memorization (shuffled training labels)".into(),
            Question::Atypical => "atypical (planted atypical training images)".into(),
            Question::Flagged => "flagged (the examples listed with --flagged)".into(),
            Question::Planted(k) => format!("planted {} ({})", k.name(), k.describe()),
        }
    }

    /// Whether the question concerns row `r`: its AUROC is measured over these rows, and
    /// the examples shown for it come from them too. Difficulty asks of the test split,
    /// memorization of the training split, atypical of the training examples whose labels
    /// were not shuffled (a shuffled one is another question), flagged of every example, a
    /// planted kind of the training examples planted with it or with nothing (another
    /// kind's examples are another question: kinds would mask each other).
    pub fn concerns(self, r: &ScoreRow) -> bool {
        match self {
            Question::Difficulty => r.split == SplitKind::Test,
            Question::Memorization => r.split == SplitKind::Train,
            Question::Atypical => r.split == SplitKind::Train && !r.noisy,
            Question::Flagged => true,
            Question::Planted(k) => r.split == SplitKind::Train && r.planted.is_none_or(|p| p == k),
        }
    }
}

impl fmt::Display for Question {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Question::Difficulty => f.write_str("difficulty"),
            Question::Memorization => f.write_str("memorization"),
            Question::Atypical => f.write_str("atypical"),
            Question::Flagged => f.write_str("flagged"),
            Question::Planted(k) => write!(f, "planted:{}", k.name()),
        }
    }
}

impl TryFrom<String> for Question {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Ok(match s.as_str() {
            "difficulty" => Question::Difficulty,
            "memorization" => Question::Memorization,
            "atypical" => Question::Atypical,
            "flagged" => Question::Flagged,
            _ => match s.strip_prefix("planted:") {
                Some(kind) => Question::Planted(kind.parse()?),
                None => return Err(format!("unknown question '{s}'")),
            },
        })
    }
}

impl From<Question> for String {
    fn from(q: Question) -> String {
        q.to_string()
    }
}

/// Which way a score ranks, when the evidence says so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// Higher values pick out the positives (harder, shuffled, atypical, flagged).
    HigherIsHarder,
    /// Lower values do.
    HigherIsEasier,
    /// The interval includes 0.5, there are too few positives, or the figures disagree.
    NotEnoughEvidence,
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Verdict::HigherIsHarder => "higher score = harder",
            Verdict::HigherIsEasier => "higher score = easier",
            Verdict::NotEnoughEvidence => "not enough evidence",
        })
    }
}

/// The verdict of an AUROC test computed on values oriented so that `higher_is_harder`
/// is the score's claim.
pub fn verdict(test: Option<&AurocTest>, higher_is_harder: bool) -> Verdict {
    let Some(t) = test.filter(|t| t.positives >= MIN_POSITIVES) else {
        return Verdict::NotEnoughEvidence;
    };
    let as_claimed = if t.ci_low > 0.5 {
        true
    } else if t.ci_high < 0.5 {
        false
    } else {
        return Verdict::NotEnoughEvidence;
    };
    if as_claimed == higher_is_harder {
        Verdict::HigherIsHarder
    } else {
        Verdict::HigherIsEasier
    }
}

/// One score on one leaderboard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// The column (or `disagrees`: the last checkpoint's prediction is not the label
    /// trained with).
    pub score: String,
    /// The score's claim: whether higher values mean harder.
    pub higher_is_harder: bool,
    /// AUROC of the score oriented by its claim (below 0.5: it ranks the other way).
    #[serde(flatten)]
    pub test: Option<AurocTest>,
    /// Difficulty: error (%) of the 10% the score calls hardest (`top10`) and easiest
    /// (`bottom10`), by its claim.
    pub top10_error: Option<f64>,
    pub bottom10_error: Option<f64>,
    /// Other questions: the share of positives among the k the score calls hardest,
    /// k = the number of positives.
    pub precision_at_k: Option<f64>,
    pub verdict: Verdict,
    /// The score restates what the question is judged by (difficulty: loss, prob and
    /// el2n come from the last checkpoint's outputs, whose prediction decides which test
    /// examples are misclassified): shown, never crowned.
    #[serde(default)]
    pub restates_outcome: bool,
}

/// What kind of score a leaderboard entry ranks by.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ScoreKind {
    /// VoG z-scored within its class: `vog`, `vog_T`.
    Vog,
    /// Raw VoG: `vog_raw`, `vog_raw_T`.
    VogRaw,
    /// A companion score, or `disagrees`.
    Other,
}

impl Entry {
    /// The kind of its score column (the scores file's column names say it).
    pub fn kind(&self) -> ScoreKind {
        if self.score.starts_with("vog_raw") {
            ScoreKind::VogRaw
        } else if self.score.starts_with("vog") {
            ScoreKind::Vog
        } else {
            ScoreKind::Other
        }
    }
}

/// A question's leaderboard, best AUROC first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Leaderboard {
    pub question: Question,
    /// The examples considered, and how many of them are positives.
    pub examples: usize,
    pub positives: usize,
    pub entries: Vec<Entry>,
}

/// A question with its positives.
pub struct Ask<'a> {
    pub question: Question,
    /// The rows considered.
    pub rows: Vec<&'a ScoreRow>,
    pub positive: Vec<bool>,
}

/// The questions a scores file can answer on its own, plus one per set of `ids` given
/// (atypical, flagged), each asked of the rows it concerns. Questions without both
/// positives and negatives are left out. In the file of a run with planted hardness each
/// planted kind is a question of its own, and memorization is not asked: its "shuffled"
/// examples would be the planted label kinds pooled.
pub fn asks<'a>(f: &'a ScoresFile, sets: &[(Question, &HashSet<String>)]) -> Vec<Ask<'a>> {
    let ask = |question: Question, positive: &dyn Fn(&ScoreRow) -> bool| {
        let rows: Vec<&ScoreRow> = f.rows.iter().filter(|r| question.concerns(r)).collect();
        Ask {
            question,
            positive: rows.iter().map(|r| positive(r)).collect(),
            rows,
        }
    };
    let mut out = vec![ask(Question::Difficulty, &|r| !r.correct)];
    if f.meta.planted.is_empty() {
        out.push(ask(Question::Memorization, &|r| r.noisy));
    }
    for &kind in &f.meta.planted {
        out.push(ask(Question::Planted(kind), &|r| r.planted == Some(kind)));
    }
    for (question, ids) in sets {
        out.push(ask(*question, &|r| ids.contains(&r.id)));
    }
    out.retain(|a| a.positive.contains(&true) && a.positive.contains(&false));
    out
}

/// The leaderboard of one question over every score of `f`.
pub fn leaderboard(f: &ScoresFile, ask: &Ask) -> Leaderboard {
    // A column without values for these rows (training dynamics on the test split) has
    // nothing to say here.
    let mut entries: Vec<Entry> = f
        .columns()
        .into_iter()
        .filter_map(|(name, col)| {
            let values: Vec<Option<f64>> = ask.rows.iter().map(|r| scores::value(r, col)).collect();
            let restates = ask.question == Question::Difficulty && from_prediction(f, col);
            values.iter().any(Option::is_some).then(|| Entry {
                restates_outcome: restates,
                ..entry(name, higher_is_harder(f, col), &values, ask)
            })
        })
        .collect();
    if ask.question != Question::Difficulty {
        // On the test split this is the misclassification itself, so it only joins the
        // other questions.
        let disagrees: Vec<Option<f64>> = ask
            .rows
            .iter()
            .map(|r| Some(f64::from(u8::from(r.predicted != r.trained_label))))
            .collect();
        entries.push(entry("disagrees".into(), true, &disagrees, ask));
    }
    entries.sort_by(|a, b| {
        let auc = |e: &Entry| e.test.map_or(f64::NEG_INFINITY, |t| t.auroc);
        auc(b)
            .total_cmp(&auc(a))
            .then_with(|| a.score.cmp(&b.score))
    });
    Leaderboard {
        question: ask.question,
        examples: ask.rows.len(),
        positives: ask.positive.iter().filter(|&&p| p).count(),
        entries,
    }
}

/// Whether higher values of a column mean harder, as the score claims.
fn higher_is_harder(f: &ScoresFile, col: ColumnRef) -> bool {
    match col {
        (c, Column::Companion) => f.meta.companions[c].higher_is_harder(),
        // The paper's claim for VoG.
        _ => true,
    }
}

/// Whether a column comes from the scoring checkpoints' outputs.
fn from_prediction(f: &ScoresFile, col: ColumnRef) -> bool {
    match col {
        (c, Column::Companion) => f.meta.companions[c].from_prediction(),
        _ => false,
    }
}

fn entry(score: String, higher_is_harder: bool, values: &[Option<f64>], ask: &Ask) -> Entry {
    // Rows without a value (test rows of a training-only score) are left out.
    let (oriented, positive): (Vec<f64>, Vec<bool>) = values
        .iter()
        .zip(&ask.positive)
        .filter_map(|(v, &p)| v.map(|v| (if higher_is_harder { v } else { -v }, p)))
        .unzip();
    let test = stats::auroc_test(&oriented, &positive);
    let (mut top10_error, mut bottom10_error, mut precision_at_k) = (None, None, None);
    if ask.question == Question::Difficulty {
        let (bottom, top) = extremes(&oriented, &positive);
        (top10_error, bottom10_error) = (Some(top), Some(bottom));
    } else {
        precision_at_k = precision(&oriented, &positive);
    }
    Entry {
        score,
        higher_is_harder,
        verdict: verdict(test.as_ref(), higher_is_harder),
        test,
        top10_error,
        bottom10_error,
        precision_at_k,
        restates_outcome: false,
    }
}

/// Indices by oriented value, ties by index (deterministic).
fn order(v: &[f64]) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..v.len()).collect();
    idx.sort_by(|&a, &b| v[a].total_cmp(&v[b]).then(a.cmp(&b)));
    idx
}

/// Percent positives among the 10% lowest and the 10% highest.
fn extremes(v: &[f64], positive: &[bool]) -> (f64, f64) {
    let idx = order(v);
    let k = (idx.len() / 10).max(1).min(idx.len());
    let share = |part: &[usize]| {
        100.0 * part.iter().filter(|&&i| positive[i]).count() as f64 / part.len().max(1) as f64
    };
    (share(&idx[..k]), share(&idx[idx.len() - k..]))
}

/// The share of positives among the k highest, k = the number of positives.
fn precision(v: &[f64], positive: &[bool]) -> Option<f64> {
    let k = positive.iter().filter(|&&p| p).count();
    if k == 0 {
        return None;
    }
    let idx = order(v);
    let hits = idx[idx.len() - k..]
        .iter()
        .filter(|&&i| positive[i])
        .count();
    Some(hits as f64 / k as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each question's population: a shuffled training label is no atypical image (the
    /// demo's atypical card measured 658 of 800 images and showed the other 142).
    #[test]
    fn questions_concern_their_own_rows() {
        let row = |split, noisy| ScoreRow {
            id: "x".into(),
            split,
            index: 0,
            label: 0,
            label_name: "a".into(),
            trained_label: 0,
            noisy,
            predicted: 0,
            correct: true,
            scores: Vec::new(),
            companions: Vec::new(),
            suggested_label: None,
            planted: None,
            near_duplicate_set: None,
        };
        let (test, clean, shuffled) = (
            row(SplitKind::Test, false),
            row(SplitKind::Train, false),
            row(SplitKind::Train, true),
        );
        let who = |q: Question| [&test, &clean, &shuffled].map(|r| q.concerns(r));
        // A planted kind: its own examples and the untouched ones, never another kind's.
        let planted = |kind| ScoreRow {
            planted: Some(kind),
            ..row(SplitKind::Train, false)
        };
        let (zoom, noise) = (planted(Kind::Zoom), planted(Kind::Noise));
        let asks_zoom =
            [&test, &clean, &zoom, &noise].map(|r| Question::Planted(Kind::Zoom).concerns(r));
        assert_eq!(asks_zoom, [false, true, true, false]);
        assert_eq!(who(Question::Difficulty), [true, false, false]);
        assert_eq!(who(Question::Memorization), [false, true, true]);
        assert_eq!(who(Question::Atypical), [false, true, false]);
        assert_eq!(who(Question::Flagged), [true, true, true]);
    }

    #[test]
    fn questions_read_back_as_written() {
        let zoom = Question::Planted(Kind::Zoom);
        for q in [Question::Difficulty, Question::Flagged, zoom] {
            let s = serde_json::to_string(&q).unwrap();
            assert_eq!(serde_json::from_str::<Question>(&s).unwrap(), q);
        }
        assert_eq!(serde_json::to_string(&zoom).unwrap(), "\"planted:zoom\"");
        let err = serde_json::from_str::<Question>("\"planted:blur\"").unwrap_err();
        assert!(err.to_string().contains("unknown kind 'blur'"), "{err}");
        assert!(zoom.title().starts_with("planted zoom (centre zoomed in"));
    }

    fn test(auroc: f64, lo: f64, hi: f64, positives: usize) -> AurocTest {
        AurocTest {
            auroc,
            ci_low: lo,
            ci_high: hi,
            p_value: 0.01,
            positives,
            negatives: 100,
        }
    }

    #[test]
    fn verdict_rules() {
        let good = test(0.8, 0.7, 0.9, 30);
        assert_eq!(verdict(Some(&good), true), Verdict::HigherIsHarder);
        // A score that claims low = harder, working as claimed: higher = easier.
        assert_eq!(verdict(Some(&good), false), Verdict::HigherIsEasier);
        let inverted = test(0.2, 0.1, 0.3, 30);
        assert_eq!(verdict(Some(&inverted), true), Verdict::HigherIsEasier);
        assert_eq!(verdict(Some(&inverted), false), Verdict::HigherIsHarder);
        // The interval includes 0.5.
        let unsure = test(0.58, 0.49, 0.67, 30);
        assert_eq!(verdict(Some(&unsure), true), Verdict::NotEnoughEvidence);
        // Fewer than 20 positives, however clear the AUROC.
        let few = test(1.0, 1.0, 1.0, 19);
        assert_eq!(verdict(Some(&few), true), Verdict::NotEnoughEvidence);
        assert_eq!(verdict(None, true), Verdict::NotEnoughEvidence);
    }

    #[test]
    fn extremes_and_precision() {
        let v: Vec<f64> = (0..20).map(f64::from).collect();
        let positive: Vec<bool> = (0..20).map(|i| i >= 15).collect();
        assert_eq!(extremes(&v, &positive), (0.0, 100.0));
        assert_eq!(precision(&v, &positive), Some(1.0));
        let reversed: Vec<f64> = v.iter().map(|x| -x).collect();
        assert_eq!(precision(&reversed, &positive), Some(0.0));
    }
}
