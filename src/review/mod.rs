//! `vog review`: one self-contained HTML page (images as data URIs, its own CSS and JS
//! beside this file, no network) on which a person pages through the examples a ranking
//! selects, decides keep / drop / relabel / unsure for each, and exports `decisions.csv`
//! (`id,action,label,scores_sha256`), which `vog train --decisions` applies. Decisions
//! persist in the browser's local storage under the scores file's SHA-256, so a review can
//! be closed and resumed. The page holds one JSON document ([`Page`]) that its script
//! renders; every image is encoded once.
use crate::export::{esc, GENERATOR};
use crate::grid::ImageLookup;
use crate::rank::{RankRequest, Ranking};
use crate::scores::{ScoreRow, ScoresFile};
use anyhow::{bail, Result};
use base64::Engine;
use serde::Serialize;
use std::path::{Path, PathBuf};

/// A validated `vog review` request.
#[derive(Debug, Clone)]
pub struct ReviewRequest {
    pub scores: PathBuf,
    /// Which examples, in which order (never per class).
    pub rank: RankRequest,
    /// The dataset, if it moved since scoring.
    pub data: Option<PathBuf>,
    pub out: PathBuf,
}

/// What the page holds: the examples in queue order and what a reviewer sees of each.
#[derive(Debug, Serialize)]
pub struct Page {
    /// The scores file reviewed and its SHA-256 (the key of the saved decisions).
    pub scores: String,
    pub scores_sha256: String,
    /// The score the queue is ranked by, and whether its highest come first.
    pub column: String,
    pub lowest_first: bool,
    /// Class names by label.
    pub classes: Vec<String>,
    /// How the export names each class: a token `vog train --decisions` reads back as it
    /// (the name, or `name:NAME` where the name alone is ambiguous).
    pub tokens: Vec<String>,
    /// The other score columns shown beside each example.
    pub columns: Vec<String>,
    /// Those of `column` and `columns` that are flags, shown as true/false.
    pub flags: Vec<String>,
    pub examples: Vec<Example>,
}

/// One example of the queue.
#[derive(Debug, Serialize)]
pub struct Example {
    pub rank: usize,
    pub id: String,
    pub split: &'static str,
    pub score: f64,
    /// The dataset's label, and the one trained with (they differ for shuffled or
    /// relabelled examples).
    pub label: i64,
    pub trained: i64,
    pub predicted: i64,
    /// The out-of-sample suggestion, where the file has one.
    pub suggested: Option<i64>,
    /// The kind of hardness planted into it (`vog train --plant`), with what was done.
    pub planted: Option<String>,
    /// The values of [`Page::columns`] (`None` where a score does not apply).
    pub values: Vec<Option<f64>>,
    /// The image as a PNG data URI.
    pub image: String,
    /// Its set of near-duplicates (`vog crossval --features`), and the set's other members
    /// the scores file holds, shown beside it.
    pub set: Option<usize>,
    pub twins: Vec<Twin>,
}

/// Another member of an example's set of near-duplicates.
#[derive(Debug, Serialize)]
pub struct Twin {
    pub id: String,
    pub split: &'static str,
    /// The label it was trained with (its own, for a test image).
    pub trained: i64,
    pub image: String,
}

/// Size of what was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Written {
    pub examples: usize,
    pub bytes: usize,
}

/// Builds the page of `req` and writes it atomically to `req.out`.
pub fn run(req: &ReviewRequest) -> Result<Written> {
    check_out(&req.out)?;
    let file = ScoresFile::read(&req.scores)?;
    let ranking = Ranking::new(&file, &req.rank)?;
    let ranked = &ranking.groups[0].1;
    if ranked.is_empty() {
        bail!(
            "nothing to review: no example of '{}' is selected",
            req.scores.display()
        );
    }
    let images = ImageLookup::load(&file.meta, req.data.as_deref())?;
    let columns: Vec<(String, crate::scores::ColumnRef)> = file.columns();
    // Every class the file names, whichever rows the column has values for.
    let classes = crate::scores::file_classes(&file);
    let tokens = (0..classes.len())
        .map(|i| crate::data::classes::token(i, &classes))
        .collect();
    let mut examples = examples(ranked, &columns, &images)?;
    add_twins(&mut examples, &file.rows, &images)?;
    let page = Page {
        scores: std::path::absolute(&req.scores)
            .unwrap_or_else(|_| req.scores.clone())
            .display()
            .to_string(),
        scores_sha256: crate::digest::of_file(&req.scores)?.sha256,
        column: req.rank.column.clone(),
        lowest_first: req.rank.lowest,
        classes,
        tokens,
        flags: std::iter::once(&req.rank.column)
            .chain(columns.iter().map(|(n, _)| n))
            .filter(|n| crate::scores::is_flag(n))
            .cloned()
            .collect(),
        columns: columns.into_iter().map(|(n, _)| n).collect(),
        examples,
    };
    let html = html(&page)?;
    crate::atomic_file::write_bytes(&req.out, html.as_bytes())?;
    Ok(Written {
        examples: page.examples.len(),
        bytes: html.len(),
    })
}

/// What the page shows of each ranked example, its image encoded once.
fn examples(
    ranked: &[crate::scores::Ranked],
    columns: &[(String, crate::scores::ColumnRef)],
    images: &ImageLookup,
) -> Result<Vec<Example>> {
    ranked
        .iter()
        .map(|r| {
            let row = r.scored.row;
            Ok(Example {
                rank: r.rank,
                id: row.id.clone(),
                split: row.split.name(),
                score: r.scored.score,
                label: row.label,
                trained: row.trained_label,
                predicted: row.predicted,
                suggested: row.suggested_label,
                planted: row
                    .planted
                    .map(|k| format!("{} ({})", k.name(), k.describe())),
                values: columns
                    .iter()
                    .map(|(_, c)| crate::scores::value(row, *c))
                    .collect(),
                image: image_uri(images, row)?,
                set: row.near_duplicate_set,
                twins: Vec::new(),
            })
        })
        .collect()
}

/// Fills each example's [`Twin`]s: the other rows of `rows` in its set.
fn add_twins(examples: &mut [Example], rows: &[ScoreRow], images: &ImageLookup) -> Result<()> {
    for ex in examples.iter_mut() {
        let Some(set) = ex.set else { continue };
        for row in rows
            .iter()
            .filter(|r| r.near_duplicate_set == Some(set) && r.id != ex.id)
        {
            ex.twins.push(Twin {
                id: row.id.clone(),
                split: row.split.name(),
                trained: row.trained_label,
                image: image_uri(images, row)?,
            });
        }
    }
    Ok(())
}

/// Refuses an output that is not an `.html` file.
fn check_out(out: &Path) -> Result<()> {
    let html = out
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("html") || e.eq_ignore_ascii_case("htm"));
    if !html || out.is_dir() {
        bail!("--out '{}' must name an .html file", out.display());
    }
    Ok(())
}

fn image_uri(images: &ImageLookup, row: &ScoreRow) -> Result<String> {
    let tile = images.tile(row)?;
    let mut png = Vec::new();
    tile.image
        .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
    Ok(format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(&png)
    ))
}

const CSS: &str = include_str!("review.css");
const JS: &str = include_str!("review.js");

/// The page: the data as JSON (with `<` escaped, so no text in it can close the script
/// element), the markup the script fills, the style and the script.
pub fn html(page: &Page) -> Result<String> {
    let data = serde_json::to_string(page)?.replace('<', "\\u003c");
    let title = esc(&format!("vog review: {}", page.scores));
    Ok(format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{GENERATOR}<title>{title}</title>\n\
         <style>\n{CSS}</style></head><body>\n{BODY}\n\
         <script type=\"application/json\" id=\"data\">{data}</script>\n<script>\n{JS}</script>\n\
         </body></html>\n"
    ))
}

const BODY: &str = r#"<header><h1 id="title"></h1><div id="progress"></div>
<div class="buttons"><button id="export">Export decisions.csv</button><button id="help-button">Keys (h)</button></div></header>
<main><div id="viewer"><img id="image" alt=""><div id="nav"><button id="prev">&larr; previous</button><span id="position"></span><button id="next">next &rarr;</button></div></div>
<div id="details"><table id="facts"></table><div id="twins"></div><div id="decision"></div>
<div class="buttons" id="actions"><button data-action="keep">keep (k)</button><button data-action="drop">drop (d)</button><button data-action="relabel">relabel (r)</button><button data-action="unsure">unsure (?)</button><button id="undo">undo (u)</button></div>
<div id="relabel" hidden><p>New label: press a class's key, or pick one.</p><div id="classes"></div></div>
<h3>All scores</h3><table id="scores"></table></div></main>
<div id="filmstrip"></div>
<div id="help" hidden><h2>Keys</h2><p>&larr; / &rarr;: previous / next example. <b>k</b> keep, <b>d</b> drop, <b>r</b> then a class key (or a click) relabel, <b>?</b> unsure, <b>u</b> undo the last decision, <b>Escape</b> cancel a relabel, <b>h</b> this help. A decision moves on to the next example. Decisions are kept in this browser for this scores file; <b>Export</b> downloads them as decisions.csv for <code>vog train --decisions</code>.</p></div>"#;
