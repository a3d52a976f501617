//! What `vog eval` writes: the printed table, `eval.json`, the CSV tables and the plots.
use super::{plots, Evaluation, Group, TargetEval};
use crate::scores::{Column, ScoresFile};
use anyhow::{Context, Result};

fn fmt_opt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.digits$}"))
}

/// The compact table `vog eval` prints.
pub fn write_table(mut w: impl std::io::Write, e: &Evaluation) -> Result<()> {
    writeln!(w, "{} examples, top-1 error {:.1}%", e.examples, e.error)?;
    let wide = e
        .targets
        .iter()
        .map(|t| t.target.len())
        .max()
        .unwrap_or(6)
        .max(6);
    write_decile_rows(&mut w, e, wide)?;
    write_group_rows(&mut w, e, wide)?;
    write_memorization_rows(&mut w, e, wide)?;
    writeln!(
        w,
        "\ndoes VoG rank difficulty? (AUROC of vog for a misclassification; decile trend)"
    )?;
    for t in &e.targets {
        writeln!(
            w,
            "{:wide$}  AUROC {}  trend {}  -> {}",
            t.target,
            fmt_opt(t.misclassification_auroc, 3),
            fmt_opt(t.decile_trend, 3),
            t.verdict
        )?;
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

/// Figure 4 as text.
fn write_decile_rows(w: &mut impl std::io::Write, e: &Evaluation, wide: usize) -> Result<()> {
    writeln!(w, "\nerror (%) by VoG decile, lowest to highest (figure 4)")?;
    writeln!(
        w,
        "{:wide$}  {}",
        "target",
        (1..=10)
            .map(|d| format!("{:>5}", format!("D{d}")))
            .collect::<String>()
    )?;
    for t in &e.targets {
        let row: String = t
            .deciles
            .iter()
            .map(|g| format!("{:>5.1}", g.error))
            .collect();
        writeln!(w, "{:wide$}  {row}", t.target)?;
    }
    Ok(())
}

/// Figures 5 and 6 as text.
fn write_group_rows(w: &mut impl std::io::Write, e: &Evaluation, wide: usize) -> Result<()> {
    writeln!(
        w,
        "\nerror (%) of the bottom 10% / all / top 10% (figure 5); class level (figure 6)"
    )?;
    writeln!(
        w,
        "{:wide$}  {:>7} {:>7} {:>7}   {:>7} {:>8} {:>7}",
        "target", "bottom", "all", "top", "class r", "p", "rho"
    )?;
    for t in &e.targets {
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

/// Figure 7 as text, for files with shuffled labels.
fn write_memorization_rows(w: &mut impl std::io::Write, e: &Evaluation, wide: usize) -> Result<()> {
    if e.targets.iter().all(|t| t.memorization.is_none()) {
        return Ok(());
    }
    writeln!(
        w,
        "\nshuffled labels (figure 7): raw VoG median shuffled vs clean, AUROC, precision@k"
    )?;
    for t in &e.targets {
        if let Some(m) = &t.memorization {
            writeln!(
                w,
                "{:wide$}  {:.3e} vs {:.3e}  AUROC {:.3}  precision@{} {:.3}",
                t.target, m.shuffled.median, m.clean.median, m.auroc, m.k, m.precision_at_k
            )?;
        }
    }
    Ok(())
}

/// Writes `eval.json`, `deciles.csv`, `groups.csv`, `classes.csv` and every plot (PNG and
/// SVG) into `dir`; returns the plot PNGs.
pub fn write_outputs(
    dir: &std::path::Path,
    e: &Evaluation,
    f: &ScoresFile,
) -> Result<Vec<std::path::PathBuf>> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create '{}'", dir.display()))?;
    let json = serde_json::to_vec_pretty(e)?;
    crate::atomic_file::write_bytes(&dir.join("eval.json"), &json)?;
    write_groups_csv(&dir.join("deciles.csv"), e, |t| &t.deciles)?;
    write_groups_csv(&dir.join("groups.csv"), e, |t| &t.bottom_all_top)?;
    crate::atomic_file::write_with(&dir.join("classes.csv"), |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record([
            "target",
            "label",
            "class",
            "count",
            "mean_abs_vog_raw",
            "false_negative_rate",
        ])?;
        for t in &e.targets {
            for c in &t.class_level.classes {
                csv.serialize((
                    &t.target,
                    c.label,
                    &c.name,
                    c.count,
                    c.mean_abs_vog_raw,
                    c.false_negative_rate,
                ))?;
            }
        }
        csv.flush()?;
        Ok(())
    })?;
    let mut pngs = Vec::new();
    for (i, t) in e.targets.iter().enumerate() {
        for (name, svg) in plots::all(t, &f.values(i, Column::Normalized))? {
            pngs.push(plots::save(dir, &name, &svg)?);
        }
    }
    Ok(pngs)
}

fn write_groups_csv(
    path: &std::path::Path,
    e: &Evaluation,
    pick: impl Fn(&TargetEval) -> &Vec<Group>,
) -> Result<()> {
    crate::atomic_file::write_with(path, |w| {
        let mut csv = csv::Writer::from_writer(w);
        csv.write_record(["target", "group", "count", "errors", "error", "min", "max"])?;
        for t in &e.targets {
            for g in pick(t) {
                csv.serialize((&t.target, &g.name, g.count, g.errors, g.error, g.min, g.max))?;
            }
        }
        csv.flush()?;
        Ok(())
    })
}
