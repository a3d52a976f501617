//! `vog report`: one self-contained HTML file (every image a data URI, no script or style
//! from anywhere else; the page's own CSS and JS are `report.css` and `report.js` beside
//! this file) in collapsible sections listed at the top. It opens with the matrix of
//! scores by planted kinds where the run planted hardness (`matrix.rs`), then an answer per
//! question (`answers.rs`: the best score on this run and the examples it ranks first),
//! then the leaderboards of every scores file with the Data Map of the training examples
//! and its regions, the run's configuration and training curves, the evaluations of each
//! scores file (tables, plots, and a comparison where one was made), the lowest- and
//! highest-VoG examples overall and per class with captioned tiles, a sortable table of
//! the 200 highest-VoG examples, the sets of near-duplicates `vog crossval --features`
//! found (`duplicates.rs`), and the run's `vog prune` table. It renders evaluations
//! already computed; it does not compute them.
mod answers;
mod duplicates;
mod examples;
pub mod matrix;

use examples::write_examples_section;

use crate::eval::output::{fmt_auroc, fmt_ci, fmt_verdict, leaderboard_table};
use crate::eval::{self, plots, Evaluated, Evaluation, SplitEval, TargetEval};
use crate::export::{esc, GENERATOR};
use crate::grid::ImageLookup;
use crate::prune::PruneTable;
use crate::run_dir::{RunDir, RunManifest};
use crate::scores::{self, ScoreRow, ScoresFile};
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
/// Sets of near-duplicates shown as tiles.
const SETS_SHOWN: usize = 24;

/// What a report shows.
pub struct ReportInput<'a> {
    /// The run trained and scored (its settings and training curves are shown); `None`
    /// for scores of a user's TorchScript models, whose files are listed instead.
    pub run: Option<(&'a Path, &'a RunManifest)>,
    /// Evaluated scores files; the first one's examples fill the grids and the table.
    pub scored: &'a [&'a Evaluated],
    /// The run's `vog prune` table, if it has one.
    pub prune: Option<&'a PruneTable>,
}

/// The scores files of a run: `RUN/scores-*.csv`, sorted.
pub fn find_scores(run: &Path) -> Result<Vec<PathBuf>> {
    let found = crate::run_dir::scores_csvs(run)?;
    if found.is_empty() {
        bail!(
            "run '{}' was never scored (no scores-*.csv): run `vog score --run {}` first, or pass --scores",
            run.display(),
            run.display()
        );
    }
    Ok(found)
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
    fn uri(&mut self, row: &ScoreRow) -> Result<String> {
        if let Some(u) = self.cache.get(&row.id) {
            return Ok(u.clone());
        }
        let tile = self.images.tile(row)?;
        let mut png = Vec::new();
        tile.image
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
        let u = data_uri("image/png", &png);
        self.cache.insert(row.id.clone(), u.clone());
        Ok(u)
    }
}

/// Writes the report of `input`: sections a reader can collapse, listed at the top.
pub fn write_report(mut w: impl Write, input: &ReportInput) -> Result<()> {
    let first = input
        .scored
        .first()
        .context("a report needs at least one scores file")?;
    let images = ImageLookup::load(&first.file.meta, None)?;
    let mut thumbs = Thumbs {
        images: &images,
        cache: HashMap::new(),
    };
    let mut page = Sections::default();
    add_planted(&mut page, input.scored)?;
    page.add("answers", "Where to look first", |out| {
        answers::write(out, input.scored, &mut thumbs)
    })?;
    page.add("summary", "Which score finds what", |out| {
        write_summary(out, input.scored)
    })?;
    match input.run {
        Some((path, manifest)) => {
            page.add("run", "Run", |out| write_run_section(out, manifest, path))?
        }
        None => page.add("models", "Models", |out| {
            write_models_section(out, &first.file.meta)
        })?,
    }
    for (i, s) in input.scored.iter().enumerate() {
        let title = format!("Evaluation of {}", file_name(&s.file));
        page.add(&format!("eval-{i}"), &title, |out| {
            write_eval_section(out, &s.evaluation, &s.file)
        })?;
        if i == 0 {
            let title = format!("Examples by VoG ({})", s.file.targets()[0].name());
            page.add("examples", &title, |out| {
                write_examples_section(out, &s.file, &mut thumbs)
            })?;
        }
    }
    if let Some((path, manifest)) = input.run {
        if let Some((fit, rows)) = crate::oof::read_near_duplicates(path, &manifest.id())? {
            page.add("duplicates", "Near-duplicates (from features)", |out| {
                duplicates::write(out, &fit, &rows, &images)
            })?;
        }
    }
    if let Some(t) = input.prune {
        page.add(
            "prune",
            "Acting on the ranking: test accuracy after removal",
            |out| write_prune_section(out, t),
        )?;
    }
    let title = match input.run {
        Some((path, _)) => format!("vog report: {}", path.display()),
        None => format!("vog report: {}", first.file.path.display()),
    };
    write!(w, "{}", page.html(&title))?;
    Ok(())
}

/// The report's sections, in order, each collapsible and listed in the contents.
#[derive(Default)]
struct Sections {
    toc: Vec<(String, String)>,
    body: String,
}

impl Sections {
    /// Appends section `id` titled `title`, its content written by `content`.
    fn add(
        &mut self,
        id: &str,
        title: &str,
        content: impl FnOnce(&mut String) -> Result<()>,
    ) -> Result<()> {
        let mut inner = String::new();
        content(&mut inner)?;
        write!(
            self.body,
            r#"<details open class="section" id="{}"><summary><h2>{}</h2></summary>{inner}</details>"#,
            esc(id),
            esc(title)
        )?;
        self.toc.push((id.to_string(), title.to_string()));
        Ok(())
    }

    fn html(&self, title: &str) -> String {
        let mut nav = String::from(r#"<nav id="toc"><b>Contents</b><ol>"#);
        for (id, t) in &self.toc {
            nav.push_str(&format!(
                r##"<li><a href="#{}">{}</a></li>"##,
                esc(id),
                esc(t)
            ));
        }
        nav.push_str(r#"</ol><button id="collapse">collapse all</button> <button id="expand">expand all</button></nav>"#);
        page(title, &format!("{nav}{}", self.body))
    }
}

/// The matrix of scores by planted kinds, where a file's run planted hardness.
fn add_planted(page: &mut Sections, scored: &[&Evaluated]) -> Result<()> {
    let found = scored
        .iter()
        .find_map(|s| crate::eval::matrix::Matrix::of_planted(&s.evaluation.leaderboards));
    match found {
        Some(m) => page.add("planted", "Which score finds which planted kind", |out| {
            out.push_str(&matrix::matrix_html(&m));
            Ok(())
        }),
        None => Ok(()),
    }
}

/// A page in the report's style from ready sections (id, title, HTML), collapsible and
/// listed at the top: `vog experiment` writes its hardness matrix with it.
pub fn sections_page(title: &str, sections: &[(String, String, String)]) -> Result<String> {
    let mut page = Sections::default();
    for (id, heading, html) in sections {
        page.add(id, heading, |out| {
            out.push_str(html);
            Ok(())
        })?;
    }
    Ok(page.html(title))
}

/// How strong the fold models behind a file's out-of-sample columns were, as a paragraph
/// (empty without them); a verdict of too weak is marked.
pub(crate) fn strength_html(s: &Evaluated) -> String {
    let Some(strength) = &s.file.meta.out_of_sample_strength else {
        return String::new();
    };
    let class = match strength.verdict {
        crate::confident::StrengthVerdict::TooWeak
        | crate::confident::StrengthVerdict::Unproven => "strength weak",
        _ => "strength",
    };
    format!(
        r#"<p class="{class}">{}: {}</p>"#,
        esc(&file_name(&s.file)),
        esc(&strength.sentence())
    )
}

/// Leaderboards of every file, then the Data Map of the first file that has one.
fn write_summary(out: &mut String, scored: &[&Evaluated]) -> Result<()> {
    out.push_str(r#"<p>Each score is oriented the way it claims to point (high VoG, loss, EL2N, variability, forgetting = harder; low probability, confidence, correctness, AUM = harder), so an AUROC below 0.5 means it ranks the other way round. Intervals are DeLong 95%; a verdict needs the interval to exclude 0.5 and at least 20 positives.</p>"#);
    for s in scored {
        for l in &s.evaluation.leaderboards {
            write!(
                out,
                "<h3>{} &mdash; {}: {} positives among {}</h3>{}",
                esc(&l.question.title()),
                esc(&file_name(&s.file)),
                l.positives,
                l.examples,
                leaderboard_table(l).html("leaderboard")
            )?;
        }
        out.push_str(&strength_html(s));
    }
    if let Some((s, points)) = scored
        .iter()
        .find_map(|s| eval::data_map_points(&s.file, None).map(|p| (s, p)))
    {
        let marked = match s.file.meta.planted.is_empty() {
            true => "shuffled",
            false => "planted",
        };
        write!(
            out,
            "<h3>Data Map of {}</h3>{}",
            esc(&file_name(&s.file)),
            plot_img(&plots::data_map(&points, marked)?, "data map")?
        )?;
        let r = plots::Regions::of(&points);
        write!(
            out,
            "<p>Regions: ambiguous = the third with the highest variability (at least {:.3}); of \
             the rest, easy-to-learn = confidence at least {}, hard-to-learn = below. \
             Easy-to-learn {} ({} {marked}), ambiguous {} ({} {marked}), hard-to-learn {} ({} \
             {marked}). Colour: fraction of epochs predicted right (red 0, green 1); ringed: \
             {marked} examples.</p>",
            r.variability,
            plots::REGION_CONFIDENCE,
            r.easy,
            r.marked[0],
            r.ambiguous,
            r.marked[1],
            r.hard,
            r.marked[2]
        )?;
    }
    Ok(())
}

fn file_name(f: &ScoresFile) -> String {
    f.path
        .file_name()
        .map_or(String::new(), |n| n.to_string_lossy().into_owned())
}

const CSS: &str = include_str!("report.css");
const JS: &str = include_str!("report.js");

fn page(title: &str, body: &str) -> String {
    let t = esc(title);
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">{GENERATOR}<title>{t}</title>\n\
         <style>\n{CSS}</style></head><body>\n<h1>{t}</h1>\n{body}\n<script>\n{JS}</script>\n</body></html>\n"
    )
}

fn write_run_section(out: &mut String, m: &RunManifest, run: &Path) -> Result<()> {
    write_settings(out, run_rows(m, run))?;
    write_training_curves(out, m)?;
    Ok(())
}

/// The scored TorchScript models and preprocessing, for scores made without a run.
fn write_models_section(out: &mut String, meta: &scores::ScoresMeta) -> Result<()> {
    let mut rows = vec![
        ("dataset".to_string(), meta.dataset.name()),
        ("examples".to_string(), meta.examples.to_string()),
    ];
    if let Some(m) = &meta.models {
        let [c, h, w] = m.input;
        rows.push(("input".into(), format!("{c}x{h}x{w}")));
        rows.push((
            "normalization".into(),
            format!(
                "mean {:?}, std {:?}",
                m.normalization.mean, m.normalization.std
            ),
        ));
        for (i, f) in m.files.iter().enumerate() {
            rows.push((
                format!("checkpoint {}", i + 1),
                format!("{} (SHA-256 {})", f.path.display(), f.digest.sha256),
            ));
        }
    }
    write_settings(out, rows)?;
    Ok(())
}

/// A table of (setting, value) rows.
fn write_settings<K: AsRef<str>>(out: &mut String, rows: Vec<(K, String)>) -> Result<()> {
    out.push_str("<table>");
    for (k, v) in rows {
        write!(
            out,
            r#"<tr><th class="l">{}</th><td class="l">{}</td></tr>"#,
            esc(k.as_ref()),
            esc(&v)
        )?;
    }
    out.push_str("</table>");
    Ok(())
}

/// The run's settings as (name, value) rows.
fn run_rows(m: &RunManifest, run: &Path) -> Vec<(&'static str, String)> {
    let mut rows = settings_rows(m, run);
    let decided = |n: usize, file: &Path, sha: &str| {
        format!(
            "{n} ('{}', SHA-256 {})",
            file.display(),
            &sha[..12.min(sha.len())]
        )
    };
    if let Some(x) = &m.config.exclude {
        let text = decided(x.ids.len(), &x.file, &x.digest.sha256);
        rows.push(("training examples left out", text));
    }
    if let Some(r) = &m.config.relabel {
        let text = decided(r.labels.len(), &r.file, &r.digest.sha256);
        rows.push(("training examples relabelled", text));
    }
    if let Some(d) = &m.config.decisions {
        let text = format!(
            "{} kept, {} dropped, {} relabelled, {} unsure, of scores file SHA-256 {}",
            d.keep,
            d.drop,
            d.relabel,
            d.unsure,
            d.scores_sha256
                .as_deref()
                .map_or("(not recorded)", |s| &s[..12.min(s.len())])
        );
        rows.push(("a reviewer's decisions", text));
    }
    rows
}

fn settings_rows(m: &RunManifest, run: &Path) -> Vec<(&'static str, String)> {
    let h = &m.config.hyper;
    vec![
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
            format!("{}, {}, {}", h.sgd.momentum, h.sgd.weight_decay, h.augment),
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
                crate::device::name(m.device),
                m.versions.vog,
                m.versions.tch,
                m.versions.libtorch
            ),
        ),
    ]
}

fn write_training_curves(out: &mut String, m: &RunManifest) -> Result<()> {
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
        "<h3>Training curves</h3>{}{}",
        plot_img(&acc, "accuracy per epoch")?,
        plot_img(&loss, "loss per epoch")?
    )?;
    Ok(())
}

fn fmt(v: Option<f64>, digits: usize) -> String {
    v.map_or("n/a".into(), |v| format!("{v:.digits$}"))
}

fn write_eval_section(out: &mut String, e: &Evaluation, f: &ScoresFile) -> Result<()> {
    if let Some(c) = &e.comparison {
        write!(
            out,
            "<p>Compared with {}: Spearman {} between the two rankings, top-10% overlap {:.1}%.</p>",
            esc(&c.other),
            fmt(c.spearman, 4),
            100.0 * c.top10_overlap
        )?;
    }
    for s in &e.splits {
        write_split_eval(out, s, &f.only(s.split))?;
    }
    Ok(())
}

fn write_split_eval(out: &mut String, s: &SplitEval, f: &ScoresFile) -> Result<()> {
    write!(
        out,
        "<h3>{} split: {} examples, top-1 error {:.1}%</h3>",
        s.split, s.examples, s.error
    )?;
    out.push_str(r#"<h4>Does VoG rank difficulty?</h4><table><tr><th class="l">target</th><th>AUROC (misclassified)</th><th>95% CI</th><th>decile trend (p)</th><th>error bottom 10%</th><th>all</th><th>top 10%</th><th>class r (p)</th><th>shuffled AUROC [95% CI]</th><th class="l">verdict</th></tr>"#);
    for t in &s.targets {
        let g = &t.bottom_all_top;
        let c = &t.class_level;
        let m = t.misclassification.as_ref();
        write!(
            out,
            r#"<tr><td class="l">{}</td><td>{}</td><td>{}</td><td>{} ({})</td><td>{:.1}%</td><td>{:.1}%</td><td>{:.1}%</td><td>{} ({})</td><td>{}</td><td class="l verdict">{}</td></tr>"#,
            esc(&t.target),
            fmt(m.map(|m| m.auroc), 3),
            fmt_ci(m),
            fmt(t.decile_trend, 3),
            fmt(t.decile_trend_p, 4),
            g[0].error,
            g[1].error,
            g[2].error,
            fmt(c.pearson_r, 3),
            fmt(c.p_value, 4),
            esc(&fmt_auroc(t.memorization.as_ref().map(|m| &m.test))),
            t.verdict
                .map_or("n/a (training split)".into(), |v| esc(&fmt_verdict(
                    v,
                    m.map_or(0, |m| m.positives)
                )))
        )?;
    }
    out.push_str("</table>");
    write_decile_table(out, &s.targets)?;
    for (i, t) in s.targets.iter().enumerate() {
        write!(out, "<h4>{}</h4>", esc(&t.target))?;
        for (stem, svg) in plots::all(t, &f.values(i, scores::Column::Normalized))? {
            out.push_str(&plot_img(&svg, &stem)?);
        }
    }
    Ok(())
}

fn write_decile_table(out: &mut String, targets: &[TargetEval]) -> Result<()> {
    out.push_str(r#"<h4>Error (%) by VoG decile, lowest to highest</h4><table><tr><th class="l">target</th>"#);
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

/// `vog prune`'s table and plot: whether acting on a ranking beat acting at random.
fn write_prune_section(out: &mut String, t: &PruneTable) -> Result<()> {
    write!(
        out,
        "<p>The run's recipe trained again without (or relabelling) the top fraction of its \
         {} training examples by each score, against the same fraction at random, {} seed(s) \
         each (<code>vog prune</code>). Differences are paired by seed; a removal helped only \
         where its interval against random lies above zero.</p>{}{}{}",
        t.training_examples,
        t.seeds,
        t.suggestions.as_ref().map_or(String::new(), |s| format!(
            "<p class=\"strength\">The suggested labels come from fold models: {}</p>",
            esc(&s.sentence())
        )),
        t.table().html("leaderboard"),
        plot_img(&t.svg()?, "test accuracy against the fraction removed")?
    )?;
    Ok(())
}

/// Writes the report of `input` atomically to `out`.
pub fn write(input: &ReportInput, out: &Path) -> Result<()> {
    let mut html = Vec::new();
    write_report(&mut html, input)?;
    crate::atomic_file::write_bytes(out, &html)
}

/// Writes the report of the scores files `scores` to `out`: of the run `run` (its scores
/// files when `scores` is empty; every file given must be of that run), or of scores made
/// without a run (`run` is `None`).
pub fn run(run: Option<&Path>, scores: &[PathBuf], out: &Path) -> Result<()> {
    let Some(run_path) = run else {
        let scored = read_all(scores)?;
        check_one_source(&scored)?;
        let input = ReportInput {
            run: None,
            scored: &scored.iter().collect::<Vec<_>>(),
            prune: None,
        };
        return write(&input, out);
    };
    let paths = match scores.is_empty() {
        true => find_scores(run_path)?,
        false => scores.to_vec(),
    };
    let manifest = RunDir::open(run_path)?.read_manifest()?;
    let scored = read_all(&paths)?;
    check_of_run(&scored, run_path, &manifest)?;
    let prune = PruneTable::read(run_path)?;
    let input = ReportInput {
        run: Some((run_path, &manifest)),
        scored: &scored.iter().collect::<Vec<_>>(),
        prune: prune.as_ref(),
    };
    write(&input, out)
}

/// Refuses scores files of different runs, model sets or data: one report is of one.
fn check_one_source(scored: &[Evaluated]) -> Result<()> {
    let source = |e: &Evaluated| {
        let m = &e.file.meta;
        let mut models: Vec<String> = m
            .models
            .iter()
            .flat_map(|x| x.files.iter().map(|f| f.digest.sha256.clone()))
            .collect();
        models.sort();
        // The run's identity where the sidecar has it: a moved run is the same run.
        let run = m
            .run_id
            .clone()
            .or_else(|| m.run.as_ref().map(|r| r.display().to_string()));
        (run, models, m.dataset_fingerprint.clone())
    };
    let Some((first, rest)) = scored.split_first() else {
        return Ok(());
    };
    if let Some(other) = rest.iter().find(|e| source(e) != source(first)) {
        bail!(
            "'{}' holds scores of {} and '{}' of {} (or of other data): a report covers one run \
             or one set of models",
            first.file.path.display(),
            first.file.meta.source(),
            other.file.path.display(),
            other.file.meta.source()
        );
    }
    Ok(())
}

fn read_all(paths: &[PathBuf]) -> Result<Vec<Evaluated>> {
    paths.iter().map(|p| Evaluated::read(p)).collect()
}

/// Refuses a scores file made from another run or other data than `run`'s.
fn check_of_run(scored: &[Evaluated], run_path: &Path, manifest: &RunManifest) -> Result<()> {
    let now = crate::scoring::run_state(run_path, manifest)?;
    scored
        .iter()
        .try_for_each(|s| s.file.check_of_run(run_path, &now))
}
