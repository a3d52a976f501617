//! The report's first section: for each question the scores files answer (test difficulty,
//! memorization, atypical, flagged), which score finds its examples best on this run, with
//! its interval, and the examples that score ranks first as captioned thumbnails, with the
//! `vog review` command that pages through the rest.
use super::examples::tile_html;
use super::{file_name, Thumbs};
use crate::eval::leaderboard::{Entry, Leaderboard, Question, Verdict};
use crate::eval::output::fmt_auroc;
use crate::eval::Evaluated;
use crate::export::esc;
use crate::scores::{class_names, scored, top_k};
use anyhow::Result;
use std::fmt::Write as _;

/// Thumbnails per question.
const CARD_TILES: usize = 12;
/// Examples the suggested review pages through.
const REVIEW_TOP: usize = 200;

/// One card per question, from the first scores file that asks it.
pub(super) fn write(out: &mut String, scored: &[&Evaluated], thumbs: &mut Thumbs) -> Result<()> {
    out.push_str("<p>For each question this run can answer: the score that picks its examples out best here (AUROC with its 95% interval, oriented the way the score claims to point), and the examples it ranks first. A question without a score that separates with evidence says so.</p><div class=\"cards\">");
    protocol_card(out, scored)?;
    let asked = asked(scored);
    for &question in &asked {
        let (s, l) = scored
            .iter()
            .find_map(|s| Some((*s, s.evaluation.leaderboard(question)?)))
            .expect("asked by one of the files");
        card(out, s, l, thumbs)?;
    }
    if asked.is_empty() {
        out.push_str("<p>No question could be asked of these scores (no misclassified test examples, shuffled labels or listed ids).</p>");
    }
    out.push_str("</div>");
    Ok(())
}

/// Every question the files' leaderboards ask, in the order they first ask them.
fn asked(scored: &[&Evaluated]) -> Vec<Question> {
    let mut asked: Vec<Question> = Vec::new();
    for l in scored.iter().flat_map(|s| &s.evaluation.leaderboards) {
        if !asked.contains(&l.question) {
            asked.push(l.question);
        }
    }
    asked
}

/// Where gradients captured during training were scored beside checkpoints: per question,
/// the paper's `vog` of each protocol, its AUROC with interval, and whether it ranks in
/// the paper's direction (higher = harder), the inverse, or neither. Test difficulty has
/// only the checkpoint protocol (test images are never trained on).
fn protocol_card(out: &mut String, scored: &[&Evaluated]) -> Result<()> {
    if !scored.iter().any(|s| s.file.meta.captured.is_some()) {
        return Ok(());
    }
    out.push_str("<div class=\"card protocol\"><h3>Which protocol gives the paper's direction?</h3><p>The paper's <code>vog</code> (the true-class logit's input gradients) from the run's checkpoints in eval mode on clean images (the paper's text), and from the gradients captured during training right after each optimizer step on the augmented batch just trained on (the authors' script). The paper's direction is higher VoG = harder: AUROC above 0.5 with its 95% interval.</p><table><tr><th>question</th><th>protocol (scores file)</th><th>AUROC [95% interval]</th><th>direction</th></tr>");
    for question in asked(scored) {
        for s in scored {
            let Some(l) = s
                .evaluation
                .leaderboards
                .iter()
                .find(|l| l.question == question)
            else {
                continue;
            };
            let Some(e) = l.entries.iter().find(|e| e.score == "vog") else {
                continue;
            };
            let protocol = match &s.file.meta.captured {
                Some(_) => format!("captured in epochs {:?}", s.file.meta.epochs),
                None => format!("checkpoints {:?}", s.file.meta.epochs),
            };
            let direction = match e.verdict {
                Verdict::HigherIsHarder => "the paper's",
                Verdict::HigherIsEasier => "inverse",
                Verdict::NotEnoughEvidence => "neither (interval includes 0.5, or too few)",
            };
            write!(
                out,
                "<tr><td>{}</td><td>{} ({})</td><td>{}</td><td>{direction}</td></tr>",
                esc(&question.title()),
                esc(&protocol),
                esc(&file_name(&s.file)),
                fmt_auroc(e.test.as_ref())
            )?;
        }
    }
    out.push_str("</table></div>");
    Ok(())
}

/// The best entry of a leaderboard: the highest AUROC whose verdict agrees with the
/// score's claim, among the scores that do not restate the outcome (`disagrees` is not a
/// column one can rank or review by).
fn best(l: &Leaderboard) -> Option<&Entry> {
    l.entries.iter().find(|e| {
        let claimed = match e.higher_is_harder {
            true => Verdict::HigherIsHarder,
            false => Verdict::HigherIsEasier,
        };
        e.score != "disagrees" && !e.restates_outcome && e.verdict == claimed
    })
}

/// What the card says of the scores that restate the outcome: their names, and the best of
/// them with its AUROC, so the reader sees why they are not crowned.
fn restating(l: &Leaderboard) -> String {
    let all: Vec<&Entry> = l.entries.iter().filter(|e| e.restates_outcome).collect();
    let Some(first) = all.first() else {
        return String::new();
    };
    let names: Vec<&str> = all.iter().map(|e| e.score.as_str()).collect();
    format!(
        "<p class=\"restates\">Not crowned: {} come from the last checkpoint's outputs, whose \
         prediction decides which test examples count as misclassified, so they restate the \
         outcome rather than predict it ({} reaches AUROC {}).</p>",
        esc(&names.join(", ")),
        esc(&first.score),
        fmt_auroc(first.test.as_ref())
    )
}

fn card(out: &mut String, s: &Evaluated, l: &Leaderboard, thumbs: &mut Thumbs) -> Result<()> {
    write!(
        out,
        r#"<div class="card"><h3>{}</h3><p>{} of {} examples in {}.</p>"#,
        esc(&l.question.title()),
        l.positives,
        l.examples,
        esc(&file_name(&s.file))
    )?;
    let vog = l.entries.iter().find(|e| e.score == "vog");
    let Some(e) = best(l) else {
        write!(
            out,
            "<p class=\"answer\">No score picks these out with evidence on this run.</p>{}{}</div>",
            restating(l),
            vog.map_or(String::new(), |v| format!(
                "<p>The paper's vog: AUROC {}, {}.</p>",
                fmt_auroc(v.test.as_ref()),
                v.verdict
            ))
        )?;
        return Ok(());
    };
    write!(
        out,
        r#"<p class="answer">Best here: <b>{}</b>, AUROC {} ({}).</p>{}"#,
        esc(&e.score),
        fmt_auroc(e.test.as_ref()),
        e.verdict,
        restating(l)
    )?;
    if let Some(v) = vog.filter(|v| v.score != e.score) {
        write!(
            out,
            "<p>The paper's vog: AUROC {}, {}.</p>",
            fmt_auroc(v.test.as_ref()),
            v.verdict
        )?;
    }
    let out_of_sample = crate::scores::Companion::OUT_OF_SAMPLE.map(|c| c.name());
    if out_of_sample.contains(&e.score.as_str()) {
        out.push_str(&super::strength_html(s));
    }
    thumbnails(out, s, l.question, e, thumbs)?;
    let lowest = if e.higher_is_harder { "" } else { " --lowest" };
    write!(
        out,
        "<p>The rest, to decide about: <code>vog review {} --column {}{lowest} --top {REVIEW_TOP} --out review.html</code></p></div>",
        esc(&crate::train::shell_quoted(&s.file.path)),
        esc(&e.score)
    )?;
    Ok(())
}

/// The examples `e` ranks first, hardest by its claim, among those the question's AUROC
/// was measured on (for atypical images, not the shuffled labels).
fn thumbnails(
    out: &mut String,
    s: &Evaluated,
    q: Question,
    e: &Entry,
    thumbs: &mut Thumbs,
) -> Result<()> {
    let entries: Vec<_> = scored(&s.file, &e.score)?
        .into_iter()
        .filter(|x| q.concerns(x.row))
        .collect();
    let names = class_names(&entries);
    out.push_str(r#"<div class="grid">"#);
    for r in top_k(&entries, CARD_TILES, !e.higher_is_harder, &names) {
        tile_html(out, &r, &e.score, thumbs)?;
    }
    out.push_str("</div>");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::stats::AurocTest;

    fn entry(score: &str, auroc: f64, restates: bool) -> Entry {
        Entry {
            score: score.into(),
            higher_is_harder: true,
            test: Some(AurocTest {
                auroc,
                ci_low: auroc - 0.02,
                ci_high: auroc + 0.02,
                p_value: 0.001,
                positives: 50,
                negatives: 250,
            }),
            top10_error: None,
            bottom10_error: None,
            precision_at_k: None,
            verdict: Verdict::HigherIsHarder,
            restates_outcome: restates,
        }
    }

    #[test]
    fn scores_that_restate_the_outcome_are_not_crowned() {
        let l = Leaderboard {
            question: Question::Difficulty,
            examples: 300,
            positives: 50,
            entries: vec![
                entry("loss", 0.99, true),
                entry("el2n", 0.98, true),
                entry("vog_logprob", 0.97, false),
            ],
        };
        assert_eq!(best(&l).unwrap().score, "vog_logprob");
        let said = restating(&l);
        assert!(
            said.contains("Not crowned: loss, el2n") && said.contains("loss reaches AUROC 0.990"),
            "{said}"
        );
        let l = Leaderboard {
            entries: vec![entry("loss", 0.99, false)],
            ..l
        };
        assert_eq!(best(&l).unwrap().score, "loss");
        assert_eq!(restating(&l), "");
    }
}
