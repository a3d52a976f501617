//! The report's examples: the highest- and lowest-VoG examples overall and per class as
//! captioned tiles (rank and whole id, split and class folders included; label trained with -> prediction, VoG; a green or red frame
//! for a right or wrong prediction), and a sortable table of the highest-VoG examples with
//! thumbnails.
use super::{Thumbs, CLASS_TILES, GRID_TILES, TABLE_ROWS};
use crate::export::esc;
use crate::scores::{self, per_class, top_k, Ranked, ScoresFile};
use anyhow::Result;
use std::fmt::Write as _;

/// An example as a framed thumbnail with the caption the grids carry.
pub(super) fn tile_html(
    out: &mut String,
    r: &Ranked,
    column: &str,
    thumbs: &mut Thumbs,
) -> Result<()> {
    let row = r.scored.row;
    // A narrow tile breaks "trained→predicted" after the arrow, and ids after a slash.
    let caption: Vec<String> = crate::grid::caption(r, &row.id, column)
        .iter()
        .map(|l| {
            esc(l)
                .replace('\u{2192}', "\u{2192}<wbr>")
                .replace('/', "/<wbr>")
        })
        .collect();
    write!(
        out,
        r#"<figure><img class="{}" alt="{}" title="{}" src="{}"><figcaption>{}</figcaption></figure>"#,
        if row.correct { "ok" } else { "bad" },
        esc(&row.id),
        esc(&row.id),
        thumbs.uri(row)?,
        caption.join("<br>")
    )?;
    Ok(())
}

fn grid_html(out: &mut String, title: &str, rows: &[Ranked], thumbs: &mut Thumbs) -> Result<()> {
    write!(out, r#"<h3>{}</h3><div class="grid">"#, esc(title))?;
    for r in rows {
        tile_html(out, r, "vog", thumbs)?;
    }
    out.push_str("</div>");
    Ok(())
}

pub(super) fn write_examples_section(
    out: &mut String,
    f: &ScoresFile,
    thumbs: &mut Thumbs,
) -> Result<()> {
    let entries = scores::scored(f, "vog")?;
    let names = scores::class_names(&entries);
    out.push_str("<p>Frames: green = classified correctly, red = misclassified.</p>");
    for (title, lowest) in [("Highest VoG", false), ("Lowest VoG", true)] {
        grid_html(
            out,
            title,
            &top_k(&entries, GRID_TILES, lowest, &names),
            thumbs,
        )?;
    }
    for (class, es) in per_class(&entries) {
        for (which, lowest) in [("highest", false), ("lowest", true)] {
            let title = format!("{class}: {which}");
            grid_html(
                out,
                &title,
                &top_k(&es, CLASS_TILES, lowest, &names),
                thumbs,
            )?;
        }
    }
    write_top_table(out, &top_k(&entries, TABLE_ROWS, false, &names), f, thumbs)?;
    Ok(())
}

pub(super) fn write_top_table(
    out: &mut String,
    top: &[Ranked],
    f: &ScoresFile,
    thumbs: &mut Thumbs,
) -> Result<()> {
    write!(
        out,
        r#"<h3>The {TABLE_ROWS} highest-VoG examples (click a header to sort)</h3><table class="sortable" id="top-table"><thead><tr><th>rank</th><th>image</th><th class="l">id</th><th class="l">label</th><th class="l">predicted</th><th class="l">correct</th>"#
    )?;
    for (_, z) in scores::score_columns(f.targets()) {
        write!(out, "<th>{}</th>", esc(&z))?;
    }
    out.push_str("</tr></thead><tbody>");
    for r in top {
        let row = r.scored.row;
        let img_class = if row.correct { "ok" } else { "bad" };
        write!(
            out,
            r#"<tr><td>{}</td><td><img class="{img_class}" alt="" src="{}"></td><td class="l">{}</td><td class="l">{}</td><td class="l">{}</td><td class="l">{}</td>"#,
            r.rank,
            thumbs.uri(row)?,
            esc(&row.id),
            esc(&row.label_name),
            esc(&r.predicted_name),
            if row.correct { "yes" } else { "no" }
        )?;
        for (_, z) in &row.scores {
            write!(out, r#"<td data-v="{z}">{z:.3}</td>"#)?;
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    Ok(())
}
