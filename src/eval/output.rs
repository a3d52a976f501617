//! What `vog eval` writes: the printed table, `eval.json`, the CSV tables and the plots.
use super::leaderboard::{Leaderboard, Question, Verdict, MIN_POSITIVES};
use super::stats::AurocTest;
use super::{plots, Evaluation, Group, SplitEval, TargetEval};
use crate::data::SplitKind;
use crate::export::{Table, TableColumn};
use crate::scores::{Column, ScoresFile};
use anyhow::{Context, Result};
use std::collections::HashSet;

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.digits$}"))
}

impl crate::export::Export for Evaluation {
    fn write_table(&self, w: &mut dyn std::io::Write) -> Result<()> {
        write_table(w, self)
    }
}

/// The compact table `vog eval` prints: per split the paper's figures, then the
/// leaderboards.
pub fn write_table(mut w: impl std::io::Write, e: &Evaluation) -> Result<()> {
    for s in &e.splits {
        write_split(&mut w, s)?;
    }
    for l in &e.leaderboards {
        writeln!(
            w,
            "== {}: {} positives among {} examples ==",
            l.question.title(),
            l.positives,
            l.examples
        )?;
        leaderboard_table(l).write_text(&mut w)?;
        writeln!(w)?;
    }
    if let Some(m) = super::matrix::Matrix::of_planted(&e.leaderboards) {
        writeln!(w, "== which score finds which planted kind ==")?;
        m.write_text(&mut w)?;
        writeln!(w)?;
    }
    if let Some(strength) = &e.out_of_sample_strength {
        writeln!(w, "{}", strength.sentence())?;
    }
    if let Some(c) = &e.comparison {
        writeln!(
            w,
            "\ncompared with {}: Spearman {}, top-10% overlap {:.1}%",
            c.other,
            fmt_opt(c.spearman, 4),
            100.0 * c.top10_overlap
        )?;
    }
    Ok(())
}

/// `0.812 [0.770, 0.854]`, or `n/a`.
pub fn fmt_auroc(t: Option<&AurocTest>) -> String {
    t.map_or("n/a".into(), |t| {
        format!("{:.3} {}", t.auroc, fmt_ci(Some(t)))
    })
}

/// `[0.770, 0.854]`, or `n/a`.
pub fn fmt_ci(t: Option<&AurocTest>) -> String {
    t.map_or("n/a".into(), |t| {
        format!("[{:.3}, {:.3}]", t.ci_low, t.ci_high)
    })
}

/// A verdict, saying how many positives there were when there are too few.
pub fn fmt_verdict(v: Verdict, positives: usize) -> String {
    if v == Verdict::NotEnoughEvidence && positives < MIN_POSITIVES {
        format!("{v} ({positives} positives, {MIN_POSITIVES} needed)")
    } else {
        v.to_string()
    }
}

fn write_split(w: &mut impl std::io::Write, s: &SplitEval) -> Result<()> {
    writeln!(
        w,
        "== {} split: {} examples, top-1 error {:.1}% ==",
        s.split, s.examples, s.error
    )?;
    let wide = s
        .targets
        .iter()
        .map(|t| t.target.len())
        .max()
        .unwrap_or(6)
        .max(6);
    write_decile_rows(w, s, wide)?;
    write_group_rows(w, s, wide)?;
    write_memorization_rows(w, s, wide)?;
    if s.split == SplitKind::Test {
        write_difficulty_rows(w, s, wide)?;
    }
    writeln!(w)?;
    Ok(())
}

/// The figure-4 verdict of each target, test split only.
fn write_difficulty_rows(w: &mut impl std::io::Write, s: &SplitEval, wide: usize) -> Result<()> {
    writeln!(
        w,
        "\ndoes VoG rank difficulty? (AUROC of vog for a misclassification [95% CI], one-sided p; decile trend)"
    )?;
    for t in &s.targets {
        let m = t.misclassification.as_ref();
        let verdict = t.verdict.unwrap_or(Verdict::NotEnoughEvidence);
        writeln!(
            w,
            "{:wide$}  AUROC {} p {}  trend {} (p {})  -> {}",
            t.target,
            fmt_auroc(m),
            fmt_opt(m.map(|m| m.p_value), 4),
            fmt_opt(t.decile_trend, 3),
            fmt_opt(t.decile_trend_p, 4),
            fmt_verdict(verdict, m.map_or(0, |m| m.positives))
        )?;
    }
    Ok(())
}

/// A leaderboard's entries as a table, for the terminal and the report alike.
pub fn leaderboard_table(l: &Leaderboard) -> Table {
    let difficulty = l.question == Question::Difficulty;
    let mut columns = vec![
        TableColumn::text("score"),
        TableColumn::number("AUROC"),
        TableColumn::number("95% CI"),
        TableColumn::number("p"),
    ];
    match difficulty {
        true => columns.extend([
            TableColumn::number("error of the 10% called easiest"),
            TableColumn::number("hardest"),
        ]),
        false => columns.push(TableColumn::number("precision@k")),
    }
    columns.push(TableColumn {
        class: "verdict",
        ..TableColumn::text("verdict")
    });
    let rows = l
        .entries
        .iter()
        .map(|e| {
            let t = e.test.as_ref();
            let score = match e.restates_outcome {
                true => format!("{} (restates the outcome)", e.score),
                false => e.score.clone(),
            };
            let mut row = vec![
                score,
                fmt_opt(t.map(|t| t.auroc), 3),
                fmt_ci(t),
                fmt_opt(t.map(|t| t.p_value), 4),
            ];
            match (e.bottom10_error, e.top10_error, e.precision_at_k) {
                (Some(b), Some(t), _) => row.extend([format!("{b:.1}%"), format!("{t:.1}%")]),
                (_, _, Some(p)) => row.push(format!("{p:.3}")),
                _ => row.extend(vec!["n/a".to_string(); if difficulty { 2 } else { 1 }]),
            }
            row.push(fmt_verdict(e.verdict, l.positives));
            row
        })
        .collect();
    Table { columns, rows }
}

/// Figure 4 as text.
fn write_decile_rows(w: &mut impl std::io::Write, s: &SplitEval, wide: usize) -> Result<()> {
    writeln!(w, "error (%) by VoG decile, lowest to highest (figure 4)")?;
    writeln!(
        w,
        "{:wide$} {}",
        "target",
        (1..=10)
            .map(|d| format!("{:>6}", format!("D{d}")))
            .collect::<String>()
    )?;
    for t in &s.targets {
        let row: String = t
            .deciles
            .iter()
            .map(|g| format!("{:>6.1}", g.error))
            .collect();
        writeln!(w, "{:wide$} {row}", t.target)?;
    }
    Ok(())
}

/// Figures 5 and 6 as text.
fn write_group_rows(w: &mut impl std::io::Write, s: &SplitEval, wide: usize) -> Result<()> {
    writeln!(
        w,
        "\nerror (%) of the bottom 10% / all / top 10% (figure 5); class level (figure 6)"
    )?;
    writeln!(
        w,
        "{:wide$}  {:>7} {:>7} {:>7}   {:>7} {:>8} {:>7}",
        "target", "bottom", "all", "top", "class r", "p", "rho"
    )?;
    for t in &s.targets {
        let g = &t.bottom_all_top;
        let c = &t.class_level;
        writeln!(
            w,
            "{:wide$}  {:>7.1} {:>7.1} {:>7.1}   {:>7} {:>8} {:>7}",
            t.target,
            g[0].error,
            g[1].error,
            g[2].error,
            fmt_opt(c.pearson_r, 3),
            fmt_opt(c.p_value, 4),
            fmt_opt(c.spearman, 3)
        )?;
    }
    Ok(())
}

/// Figure 7 as text, for splits with shuffled labels.
fn write_memorization_rows(w: &mut impl std::io::Write, s: &SplitEval, wide: usize) -> Result<()> {
    if s.targets.iter().all(|t| t.memorization.is_none()) {
        return Ok(());
    }
    writeln!(
        w,
        "\nshuffled labels (figure 7): raw VoG median shuffled vs clean, AUROC [95% CI], precision@k"
    )?;
    for t in &s.targets {
        if let Some(m) = &t.memorization {
            writeln!(
                w,
                "{:wide$}  {:.3e} vs {:.3e}  AUROC {}  precision@{} {:.3}",
                t.target,
                m.shuffled.median,
                m.clean.median,
                fmt_auroc(Some(&m.test)),
                m.k,
                m.precision_at_k
            )?;
        }
    }
    Ok(())
}

/// The files of an evaluation by name, as their bytes: `eval.json`, `deciles.csv`,
/// `groups.csv`, `classes.csv`, `leaderboards.csv`, `planted-matrix.csv` (scores by planted
/// kinds, for runs with planted hardness) and every plot (SVG and PNG; `data-map`
/// for training examples with dynamics). Plots are named `PLOT-TARGET`, or
/// `PLOT-SPLIT-TARGET` for a file holding both splits. The same evaluation of the same file
/// gives the same bytes, so `vog verify` checks a folder by making them again.
pub fn output_files(
    e: &Evaluation,
    f: &ScoresFile,
    flagged: Option<&HashSet<String>>,
) -> Result<Vec<(String, Vec<u8>)>> {
    let mut files = vec![
        ("eval.json".to_string(), serde_json::to_vec_pretty(e)?),
        ("deciles.csv".into(), groups_csv(e, |t| &t.deciles)?),
        ("groups.csv".into(), groups_csv(e, |t| &t.bottom_all_top)?),
        ("classes.csv".into(), classes_csv(e)?),
        ("leaderboards.csv".into(), leaderboards_csv(e)?),
    ];
    if let Some(m) = super::matrix::Matrix::of_planted(&e.leaderboards) {
        files.push(("planted-matrix.csv".into(), m.to_csv()?));
    }
    let mut plot = |name: String, svg: String| -> Result<()> {
        files.push((format!("{name}.svg"), svg.as_bytes().to_vec()));
        files.push((format!("{name}.png"), plots::svg_to_png(&svg)?));
        Ok(())
    };
    if let Some(points) = super::data_map_points(f, flagged) {
        let marked = match (flagged, f.meta.planted.is_empty()) {
            (Some(_), _) => "flagged",
            (None, false) => "planted",
            (None, true) => "shuffled",
        };
        plot("data-map".into(), plots::data_map(&points, marked)?)?;
    }
    for s in &e.splits {
        let view = f.only(s.split);
        for (i, t) in s.targets.iter().enumerate() {
            for (name, svg) in plots::all(t, &view.values(i, Column::Normalized))? {
                let name = match e.splits.len() {
                    1 => name,
                    _ => name.replacen('-', &format!("-{}-", s.split), 1),
                };
                plot(name, svg)?;
            }
        }
    }
    Ok(files)
}

/// Writes [`output_files`] into `dir`; returns the plot PNGs.
pub fn write_outputs(
    dir: &std::path::Path,
    e: &Evaluation,
    f: &ScoresFile,
    flagged: Option<&HashSet<String>>,
) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create '{}'", dir.display()))?;
    let mut pngs = Vec::new();
    for (name, bytes) in output_files(e, f, flagged)? {
        let path = dir.join(&name);
        crate::atomic_file::write_bytes(&path, &bytes)?;
        if name.ends_with(".png") {
            pngs.push(path);
        }
    }
    Ok(pngs)
}

fn classes_csv(e: &Evaluation) -> Result<Vec<u8>> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "split",
        "target",
        "label",
        "class",
        "count",
        "mean_abs_vog_raw",
        "false_negative_rate",
    ])?;
    for s in &e.splits {
        for t in &s.targets {
            for c in &t.class_level.classes {
                csv.serialize((
                    s.split.name(),
                    &t.target,
                    c.label,
                    &c.name,
                    c.count,
                    c.mean_abs_vog_raw,
                    c.false_negative_rate,
                ))?;
            }
        }
    }
    Ok(csv.into_inner()?)
}

fn leaderboards_csv(e: &Evaluation) -> Result<Vec<u8>> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "question",
        "positives",
        "examples",
        "score",
        "higher_is_harder",
        "auroc",
        "ci_low",
        "ci_high",
        "p_value",
        "bottom10_error",
        "top10_error",
        "precision_at_k",
        "verdict",
    ])?;
    for l in &e.leaderboards {
        for x in &l.entries {
            let t = x.test.as_ref();
            csv.serialize((
                l.question,
                l.positives,
                l.examples,
                &x.score,
                x.higher_is_harder,
                t.map(|t| t.auroc),
                t.map(|t| t.ci_low),
                t.map(|t| t.ci_high),
                t.map(|t| t.p_value),
                x.bottom10_error,
                x.top10_error,
                x.precision_at_k,
                x.verdict,
            ))?;
        }
    }
    Ok(csv.into_inner()?)
}

fn groups_csv(e: &Evaluation, pick: impl Fn(&TargetEval) -> &Vec<Group>) -> Result<Vec<u8>> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "split", "target", "group", "count", "errors", "error", "min", "max",
    ])?;
    for s in &e.splits {
        for t in &s.targets {
            for g in pick(t) {
                csv.serialize((
                    s.split.name(),
                    &t.target,
                    &g.name,
                    g.count,
                    g.errors,
                    g.error,
                    g.min,
                    g.max,
                ))?;
            }
        }
    }
    Ok(csv.into_inner()?)
}
