//! `vog report`: one self-contained HTML file (every image a data URI, no script or style
//! from anywhere else) with the run's configuration and training curves, the evaluations of
//! each scores file (tables and plots), the lowest- and highest-VoG examples overall and per
//! class with labelled tiles, and a sortable table of the 200 highest-VoG examples.
use crate::checkpoint::{RunDir, RunManifest};
use crate::eval::{self, plots, Evaluation, ScoreData, TargetEval};
use crate::rank::{self, Entry, ImageLookup};
use crate::scores::ScoreTable;
use anyhow::{bail, Context, Result};
use base64::Engine;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::io::Write;
use std::path::{Path, PathBuf};

/// Examples in the sortable table.
pub const TABLE_ROWS: usize = 200;
/// Tiles in the overall grids, and per class.
const GRID_TILES: usize = 25;
const CLASS_TILES: usize = 8;

/// A section a caller adds (the demo's planted-example results, say): title and HTML body.
pub struct Section {
    pub title: String,
    pub html: String,
}

/// The scores files of a run: `RUN/scores-*.csv`, sorted.
pub fn find_scores(run: &Path) -> Result<Vec<PathBuf>> {
    let mut found: Vec<PathBuf> = std::fs::read_dir(run)
        .with_context(|| format!("cannot read '{}'", run.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            let name = p
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            name.starts_with("scores-") && name.ends_with(".csv")
        })
        .collect();
    found.sort();
    if found.is_empty() {
        bail!(
            "run '{}' was never scored (no scores-*.csv): run `vog score --run {}` first, or pass --scores",
            run.display(),
            run.display()
        );
    }
    Ok(found)
}

/// Escapes text for HTML.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

fn data_uri(mime: &str, bytes: &[u8]) -> String {
    format!(
        "data:{mime};base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

fn plot_img(svg: &str, alt: &str) -> Result<String> {
    Ok(format!(
        r#"<img class="plot" alt="{}" src="{}">"#,
        esc(alt),
        data_uri("image/png", &plots::svg_to_png(svg)?)
    ))
}

/// Encodes example thumbnails once each.
struct Thumbs<'a> {
    images: &'a ImageLookup,
    cache: HashMap<String, String>,
}

impl Thumbs<'_> {
    fn uri(&mut self, e: &Entry) -> Result<String> {
        if let Some(u) = self.cache.get(&e.id) {
            return Ok(u.clone());
        }
        let tile = self.images.tile(e)?;
        let mut png = Vec::new();
        tile.image
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
        let u = data_uri("image/png", &png);
        self.cache.insert(e.id.clone(), u.clone());
        Ok(u)
    }
}

/// Writes the report for `run` from `scores` files, plus `extra` sections.
pub fn write_report(
    mut w: impl Write,
    run_path: &Path,
    scores: &[PathBuf],
    extra: &[Section],
) -> Result<()> {
    let run = RunDir::open(run_path)?;
    let m = run.read_manifest()?;
    let mut body = String::new();
    write_run_section(&mut body, &m, run_path)?;
    let images = ImageLookup::load(&rank::image_source(&scores[0], None)?)?;
    let mut thumbs = Thumbs {
        images: &images,
        cache: HashMap::new(),
    };
    for (i, path) in scores.iter().enumerate() {
        let (table, data) = eval::load_scores_table(path)?;
        let e = eval::evaluate(&data, &path.display().to_string());
        write_eval_section(&mut body, &e, &data, path)?;
        if i == 0 {
            write_examples_section(&mut body, &table, &data, &mut thumbs)?;
        }
    }
    for s in extra {
        write!(
            body,
            "<section><h2>{}</h2>{}</section>",
            esc(&s.title),
            s.html
        )?;
    }
    let title = format!("vog report: {}", run_path.display());
    write!(w, "{}", page(&title, &body))?;
    Ok(())
}

fn page(title: &str, body: &str) -> String {
    format!(
        r#"<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{t}</title>
<style>
body {{ font-family: sans-serif; margin: 2em auto; max-width: 1300px; color: #222; }}
h1 {{ font-size: 1.6em; }} h2 {{ border-bottom: 1px solid #ccc; margin-top: 2em; }}
table {{ border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }}
td, th {{ border: 1px solid #ddd; padding: 3px 8px; text-align: right; }}
th {{ background: #f3f3f3; }} td.l, th.l {{ text-align: left; }}
table.sortable th {{ cursor: pointer; }}
img.plot {{ width: 640px; max-width: 100%; margin: 4px; border: 1px solid #eee; }}
.grid {{ display: flex; flex-wrap: wrap; gap: 6px; }}
figure {{ margin: 0; width: 104px; font-size: 10px; text-align: center; }}
figure img, td img {{ width: 96px; height: 96px; image-rendering: pixelated; border: 3px solid; }}
td img {{ width: 48px; height: 48px; }}
.ok {{ border-color: #0a0 !important; }} .bad {{ border-color: #d22 !important; }}
.verdict {{ font-weight: bold; }}
</style></head><body>
<h1>{t}</h1>
{body}
<script>
document.querySelectorAll('table.sortable th').forEach(function (th, col) {{
  th.addEventListener('click', function () {{
    var table = th.closest('table'), body = table.tBodies[0];
    var rows = Array.prototype.slice.call(body.rows);
    var asc = th.dataset.asc !== 'true'; th.dataset.asc = asc;
    rows.sort(function (a, b) {{
      var x = a.cells[col].dataset.v || a.cells[col].textContent;
      var y = b.cells[col].dataset.v || b.cells[col].textContent;
      var nx = parseFloat(x), ny = parseFloat(y);
      var c = (isNaN(nx) || isNaN(ny)) ? x.localeCompare(y) : nx - ny;
      return asc ? c : -c;
    }});
    rows.forEach(function (r) {{ body.appendChild(r); }});
  }});
}});
</script>
</body></html>
"#,
        t = esc(title)
    )
}

fn write_run_section(out: &mut String, m: &RunManifest, run: &Path) -> Result<()> {
    let h = &m.config.hyper;
    let rows = [
        ("run", run.display().to_string()),
        ("dataset", m.config.dataset.name()),
        (
            "train / test examples",
            format!("{} / {}", m.dataset.train_examples, m.dataset.test_examples),
        ),
        ("classes", m.dataset.class_names.len().to_string()),
        (
            "network",
            format!("ResNet-18, width {} ({} parameters)", h.width, m.parameters),
        ),
        (
            "epochs, batch, lr",
            format!(
                "{}, {}, {} (x{} at {:?})",
                h.epochs, h.batch_size, h.lr, h.lr_gamma, h.lr_milestones
            ),
        ),
        (
            "momentum, weight decay, augment",
            format!("{}, {}, {}", h.momentum, h.weight_decay, h.augment),
        ),
        (
            "label noise",
            m.config.label_noise.as_ref().map_or("none".into(), |n| {
                format!("{:.0}% shuffled (seed {})", 100.0 * n.fraction, n.seed)
            }),
        ),
        ("saved epochs", format!("{:?}", m.saved_epochs)),
        (
            "device, versions",
            format!(
                "{}; vog {}, tch {}, libtorch {}",
                m.device, m.versions.vog, m.versions.tch, m.versions.libtorch
            ),
        ),
    ];
    out.push_str("<section><h2>Run</h2><table>");
    for (k, v) in rows {
        write!(
            out,
            r#"<tr><th class="l">{}</th><td class="l">{}</td></tr>"#,
            esc(k),
            esc(&v)
        )?;
    }
    out.push_str("</table>");
    let epochs: Vec<usize> = m.epochs.iter().map(|e| e.epoch).collect();
    let acc = plots::epoch_lines(
        "Accuracy",
        "accuracy (%)",
        &epochs,
        &[
            (
                "train",
                m.epochs
                    .iter()
                    .map(|e| Some(100.0 * e.train_accuracy))
                    .collect(),
            ),
            (
                "test",
                m.epochs
                    .iter()
                    .map(|e| e.test_accuracy.map(|a| 100.0 * a))
                    .collect(),
            ),
        ],
    )?;
    let loss = plots::epoch_lines(
        "Loss",
        "cross-entropy",
        &epochs,
        &[
            (
                "train",
                m.epochs.iter().map(|e| Some(e.train_loss)).collect(),
            ),
            ("test", m.epochs.iter().map(|e| e.test_loss).collect()),
        ],
    )?;
    write!(
        out,
        "<h3>Training curves</h3>{}{}</section>",
        plot_img(&acc, "accuracy per epoch")?,
        plot_img(&loss, "loss per epoch")?
    )?;
    Ok(())
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.digits$}"))
}

fn write_eval_section(out: &mut String, e: &Evaluation, d: &ScoreData, path: &Path) -> Result<()> {
    let name = path
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned());
    write!(
        out,
        "<section><h2>Evaluation of {}</h2><p>{} examples, top-1 error {:.1}%.</p>",
        esc(&name),
        e.examples,
        e.error
    )?;
    out.push_str(r#"<h3>Does VoG rank difficulty?</h3><table><tr><th class="l">target</th><th>AUROC (misclassified)</th><th>decile trend</th><th>error bottom 10%</th><th>all</th><th>top 10%</th><th>class r (p)</th><th>shuffled AUROC</th><th class="l">verdict</th></tr>"#);
    for t in &e.targets {
        let g = &t.bottom_all_top;
        let c = &t.class_level;
        write!(
            out,
            r#"<tr><td class="l">{}</td><td>{}</td><td>{}</td><td>{:.1}%</td><td>{:.1}%</td><td>{:.1}%</td><td>{} ({})</td><td>{}</td><td class="l verdict">{}</td></tr>"#,
            esc(&t.target),
            fmt(t.misclassification_auroc, 3),
            fmt(t.decile_trend, 3),
            g[0].error,
            g[1].error,
            g[2].error,
            fmt(c.pearson_r, 3),
            fmt(c.p_value, 4),
            fmt(t.memorization.as_ref().map(|m| m.auroc), 3),
            esc(&t.verdict.to_string())
        )?;
    }
    out.push_str("</table>");
    write_decile_table(out, &e.targets)?;
    for (t, s) in e.targets.iter().zip(&d.targets) {
        write!(out, "<h3>{}</h3>", esc(&t.target))?;
        for (stem, svg) in plots::all(t, &s.z)? {
            out.push_str(&plot_img(&svg, &stem)?);
        }
    }
    out.push_str("</section>");
    Ok(())
}

fn write_decile_table(out: &mut String, targets: &[TargetEval]) -> Result<()> {
    out.push_str(r#"<h3>Error (%) by VoG decile, lowest to highest</h3><table><tr><th class="l">target</th>"#);
    for d in 1..=10 {
        write!(out, "<th>D{d}</th>")?;
    }
    out.push_str("</tr>");
    for t in targets {
        write!(out, r#"<tr><td class="l">{}</td>"#, esc(&t.target))?;
        for g in &t.deciles {
            write!(out, "<td>{:.1}</td>", g.error)?;
        }
        out.push_str("</tr>");
    }
    out.push_str("</table>");
    Ok(())
}

fn tile_html(out: &mut String, e: &Entry, predicted: &str, thumbs: &mut Thumbs) -> Result<()> {
    write!(
        out,
        r#"<figure><img class="{}" alt="{}" src="{}"><figcaption>{}<br>{} &rarr; {}<br>VoG {:.2}</figcaption></figure>"#,
        if e.correct { "ok" } else { "bad" },
        esc(&e.id),
        thumbs.uri(e)?,
        esc(&e.id),
        esc(&e.label_name),
        esc(predicted),
        e.score
    )?;
    Ok(())
}

fn grid_html(
    out: &mut String,
    title: &str,
    rows: &[rank::Ranked],
    thumbs: &mut Thumbs,
) -> Result<()> {
    write!(out, r#"<h3>{}</h3><div class="grid">"#, esc(title))?;
    for r in rows {
        tile_html(out, &r.entry, &r.predicted_name, thumbs)?;
    }
    out.push_str("</div>");
    Ok(())
}

fn write_examples_section(
    out: &mut String,
    table: &ScoreTable,
    d: &ScoreData,
    thumbs: &mut Thumbs,
) -> Result<()> {
    let entries = rank::read_entries(table, "vog")?;
    let names = rank::class_names(&entries);
    let target = &d.targets[0].target;
    write!(out, "<section><h2>Examples by VoG ({})</h2><p>Frames: green = classified correctly, red = misclassified.</p>", esc(target))?;
    grid_html(
        out,
        "Highest VoG",
        &rank::top_k(&entries, GRID_TILES, false, &names),
        thumbs,
    )?;
    grid_html(
        out,
        "Lowest VoG",
        &rank::top_k(&entries, GRID_TILES, true, &names),
        thumbs,
    )?;
    for (class, es) in rank::per_class(&entries) {
        grid_html(
            out,
            &format!("{class}: highest"),
            &rank::top_k(&es, CLASS_TILES, false, &names),
            thumbs,
        )?;
        grid_html(
            out,
            &format!("{class}: lowest"),
            &rank::top_k(&es, CLASS_TILES, true, &names),
            thumbs,
        )?;
    }
    write_top_table(out, &entries, &names, d, thumbs)?;
    out.push_str("</section>");
    Ok(())
}

fn write_top_table(
    out: &mut String,
    entries: &[Entry],
    names: &std::collections::BTreeMap<i64, String>,
    d: &ScoreData,
    thumbs: &mut Thumbs,
) -> Result<()> {
    let pos: HashMap<&str, usize> = d
        .ids
        .iter()
        .enumerate()
        .map(|(i, id)| (id.as_str(), i))
        .collect();
    write!(
        out,
        r#"<h3>The {TABLE_ROWS} highest-VoG examples (click a header to sort)</h3><table class="sortable" id="top-table"><thead><tr><th>rank</th><th>image</th><th class="l">id</th><th class="l">label</th><th class="l">predicted</th><th class="l">correct</th>"#
    )?;
    for t in &d.targets {
        write!(out, "<th>{}</th>", esc(&t.column))?;
    }
    out.push_str("</tr></thead><tbody>");
    for r in rank::top_k(entries, TABLE_ROWS, false, names) {
        let e = &r.entry;
        let img_class = if e.correct { "ok" } else { "bad" };
        write!(
            out,
            r#"<tr><td>{}</td><td><img class="{img_class}" alt="" src="{}"></td><td class="l">{}</td><td class="l">{}</td><td class="l">{}</td><td class="l">{}</td>"#,
            r.rank,
            thumbs.uri(e)?,
            esc(&e.id),
            esc(&e.label_name),
            esc(&r.predicted_name),
            if e.correct { "yes" } else { "no" }
        )?;
        let i = pos[e.id.as_str()];
        for t in &d.targets {
            write!(out, r#"<td data-v="{}">{:.3}</td>"#, t.z[i], t.z[i])?;
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    Ok(())
}

/// Writes the report atomically to `out`.
pub fn run(run_path: &Path, scores: &[PathBuf], out: &Path, extra: &[Section]) -> Result<()> {
    let mut html = Vec::new();
    write_report(&mut html, run_path, scores, extra)?;
    crate::atomic_file::write_bytes(out, &html)
}
