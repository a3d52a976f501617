//! The images of scored examples, for auditing (like the paper's figures 1-3): looked up
//! by example id in the dataset a scores file records, and drawn as a square grid, row by
//! row in rank order, each tile scaled up with nearest-neighbour sampling, framed green
//! when the model classified it correctly, red when not, and captioned (rank and id, the
//! label trained with and the prediction, the score). Beside each grid a CSV legend maps
//! tile positions to ids. `vog rank --grid` and the report both draw through here.
use crate::data::stream::{load_image, Preprocess};
pub use crate::data::to_rgb;
use crate::data::{Dataset, DatasetSpec, SplitKind};
use crate::scores::{Ranked, ScoreRow, ScoresMeta};
use anyhow::{Context, Result};
use image::{ImageEncoder, Rgb, RgbImage};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const BORDER: u32 = 2;
const GAP: u32 = 2;
const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
const CORRECT: Rgb<u8> = Rgb([0, 160, 60]);
const WRONG: Rgb<u8> = Rgb([220, 30, 30]);

/// Caption lines under each tile, and their height in pixels.
const CAPTION_LINES: u32 = 3;
const CAPTION_LINE: u32 = 12;
/// The caption's font size in pixels, and the width of its widest characters (to shorten
/// what would not fit).
const CAPTION_FONT: u32 = 10;
const CAPTION_CHAR: u32 = 6;

/// One tile: an image, whether the model got it right, and its caption lines (none, or
/// [`CAPTION_LINES`]).
pub struct Tile {
    pub image: RgbImage,
    pub correct: bool,
    pub caption: Vec<String>,
}

/// Geometry of a grid of `n` tiles of `w`x`h` images.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    pub cols: u32,
    pub rows: u32,
    pub scale: u32,
    /// Side of one tile including its frame.
    pub tile_w: u32,
    pub tile_h: u32,
    /// Height of the caption strip under each tile (0 without captions).
    pub caption_h: u32,
}

impl Layout {
    /// The layout of uncaptioned tiles.
    pub fn new(n: usize, w: u32, h: u32) -> Self {
        let cols = ((n as f64).sqrt().ceil() as u32).max(1);
        let rows = (n as u32).div_ceil(cols).max(1);
        let scale = (96 / w.max(h)).max(1);
        Layout {
            cols,
            rows,
            scale,
            tile_w: w * scale + 2 * BORDER,
            tile_h: h * scale + 2 * BORDER,
            caption_h: 0,
        }
    }

    /// The same with a caption strip under each tile.
    pub fn captioned(self) -> Self {
        Layout {
            caption_h: CAPTION_LINES * CAPTION_LINE + 2,
            ..self
        }
    }

    /// Height of a tile with its caption.
    fn cell_h(&self) -> u32 {
        self.tile_h + self.caption_h
    }

    pub fn width(&self) -> u32 {
        self.cols * self.tile_w + (self.cols + 1) * GAP
    }

    pub fn height(&self) -> u32 {
        self.rows * self.cell_h() + (self.rows + 1) * GAP
    }

    /// Top-left pixel of image `i` (inside its frame).
    pub fn image_origin(&self, i: usize) -> (u32, u32) {
        let (c, r) = (i as u32 % self.cols, i as u32 / self.cols);
        (
            GAP + c * (self.tile_w + GAP) + BORDER,
            GAP + r * (self.cell_h() + GAP) + BORDER,
        )
    }
}

/// Draws the grid; all tiles must have the size of the first, and captions if it has.
pub fn render(tiles: &[Tile]) -> Result<RgbImage> {
    let (w, h) = tiles.first().map_or((1, 1), |t| t.image.dimensions());
    let mut layout = Layout::new(tiles.len(), w, h);
    if tiles.first().is_some_and(|t| !t.caption.is_empty()) {
        layout = layout.captioned();
    }
    let mut out = RgbImage::from_pixel(layout.width(), layout.height(), BACKGROUND);
    for (i, tile) in tiles.iter().enumerate() {
        let (x0, y0) = layout.image_origin(i);
        let frame = if tile.correct { CORRECT } else { WRONG };
        for y in 0..layout.tile_h {
            for x in 0..layout.tile_w {
                out.put_pixel(x0 - BORDER + x, y0 - BORDER + y, frame);
            }
        }
        let s = layout.scale;
        for (x, y, p) in tile.image.enumerate_pixels() {
            for dy in 0..s {
                for dx in 0..s {
                    out.put_pixel(x0 + x * s + dx, y0 + y * s + dy, *p);
                }
            }
        }
    }
    if layout.caption_h > 0 {
        draw_captions(&mut out, &layout, tiles)?;
    }
    Ok(out)
}

/// Writes each tile's caption under it: the text as SVG, rasterized with the bundled font
/// and blended onto the white strip.
fn draw_captions(out: &mut RgbImage, layout: &Layout, tiles: &[Tile]) -> Result<()> {
    let mut svg = format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{}" height="{}" font-family="sans-serif" font-size="{CAPTION_FONT}" fill="#222">"##,
        out.width(),
        out.height()
    );
    let fits = (layout.tile_w / CAPTION_CHAR) as usize;
    for (i, t) in tiles.iter().enumerate() {
        let (x0, y0) = layout.image_origin(i);
        let (x, top) = (x0 - BORDER, y0 - BORDER + layout.tile_h);
        for (l, line) in t.caption.iter().enumerate() {
            let y = top + (l as u32 + 1) * CAPTION_LINE;
            svg.push_str(&format!(
                r#"<text x="{x}" y="{y}">{}</text>"#,
                crate::export::esc(&shorten(line, fits))
            ));
        }
    }
    svg.push_str("</svg>");
    let text = crate::raster::render(&svg)?;
    for (p, px) in out.pixels_mut().zip(text.pixels()) {
        let a = px.alpha() as u32;
        let blend = |dst: u8, src: u8| (src as u32 + dst as u32 * (255 - a) / 255).min(255) as u8;
        *p = Rgb([
            blend(p[0], px.red()),
            blend(p[1], px.green()),
            blend(p[2], px.blue()),
        ]);
    }
    Ok(())
}

/// `s` cut to `n` characters, its end kept behind an ellipsis (ids differ at their end).
fn shorten(s: &str, n: usize) -> String {
    let count = s.chars().count();
    if count <= n {
        return s.to_string();
    }
    let tail: String = s.chars().skip(count + 1 - n).collect();
    format!("\u{2026}{tail}")
}

/// The caption of a ranked example: rank and `id` (the whole id, or its file name where
/// the tile is too narrow), label trained with -> prediction (a `*` marks a label that is not
/// the dataset's), `column` and score, and the kind planted into it, if any.
pub fn caption(r: &Ranked, id: &str, column: &str) -> Vec<String> {
    let row = r.scored.row;
    vec![
        format!("#{} {id}", r.rank),
        format!(
            "{}{}\u{2192}{}",
            r.trained_name,
            if row.noisy { "*" } else { "" },
            r.predicted_name
        ),
        format!(
            "{column} {}{}",
            crate::scores::flag_text(column, r.scored.score)
                .unwrap_or_else(|| short_number(r.scored.score)),
            row.planted
                .map_or(String::new(), |k| format!(" [{}]", k.name()))
        ),
    ]
}

/// Three significant digits, in exponent form below 0.01.
fn short_number(v: f64) -> String {
    match v.abs() {
        a if a != 0.0 && a < 0.01 => format!("{v:.2e}"),
        _ => format!("{v:.3}"),
    }
}

/// Writes `img` as PNG, atomically.
pub fn save_png(img: &RgbImage, path: &Path) -> Result<()> {
    crate::atomic_file::write_with(path, |w| {
        image::codecs::png::PngEncoder::new(w)
            .write_image(
                img.as_raw(),
                img.width(),
                img.height(),
                image::ExtendedColorType::Rgb8,
            )
            .with_context(|| format!("cannot encode '{}'", path.display()))
    })
}

/// Thumbnails of larger images are shrunk to fit this many pixels.
const THUMBNAIL: u32 = 128;

/// Where the looked-up images are.
enum Images {
    /// A dataset held in memory.
    Memory(Dataset),
    /// Files of a streamed set, decoded on demand as the model saw them.
    Files {
        paths: HashMap<(SplitKind, usize), PathBuf>,
        preprocess: Preprocess,
    },
}

/// `data`, with the position of each of its examples by id added to `index`.
fn indexed(data: Dataset, index: &mut HashMap<String, (SplitKind, usize)>) -> Dataset {
    for kind in [SplitKind::Train, SplitKind::Test] {
        if let Some(split) = data.split(kind) {
            for (i, id) in split.ids.iter().enumerate() {
                index.insert(id.clone(), (kind, i));
            }
        }
    }
    data
}

/// The images a run that planted image kinds (`vog train --plant noise:...`) trained on,
/// altered as they were, made again from the run's recipe on `spec`; `None` for the scores
/// of any other run. Auditing a planted image means seeing it as the network did.
fn planted_data(meta: &ScoresMeta, spec: &DatasetSpec) -> Result<Option<Dataset>> {
    if meta.planted.iter().all(|k| k.is_label()) {
        return Ok(None);
    }
    let run = meta
        .run
        .as_ref()
        .context("scores with planted images name no run to make them from")?;
    let m = crate::run_dir::RunDir::open_shared(run)
        .and_then(|r| r.read_manifest())
        .with_context(|| {
            format!(
                "the planted images are made again from the run's recipe, and run '{}' cannot \
                 be read",
                run.display()
            )
        })?;
    let origins = crate::origin::Origins::file(&run.join(crate::run_dir::MANIFEST), "config.");
    let prepared =
        crate::data::prepare::prepare(spec, &m.config.selection(), m.config.hyper.seed, &origins)?;
    if prepared.data.fingerprint() != meta.dataset_fingerprint {
        anyhow::bail!(
            "the images made again from run '{}' are not those scored (its data changed since)",
            run.display()
        );
    }
    Ok(Some(prepared.data))
}

/// Looks up example images by id.
pub struct ImageLookup {
    images: Images,
    index: HashMap<String, (SplitKind, usize)>,
}

impl ImageLookup {
    /// The images a scores file was made of: its sidecar's dataset, or the same dataset
    /// moved to `moved_to`. A streamed set must still have the fingerprint it was scored
    /// with (datasets held in memory are checked by the stage that loads them).
    pub fn load(meta: &ScoresMeta, moved_to: Option<&Path>) -> Result<Self> {
        let spec = match moved_to {
            Some(dir) => meta.dataset.relocated(dir).context("--data")?,
            None => meta.dataset.clone(),
        };
        let mut index = HashMap::new();
        let planted = planted_data(meta, &spec)?;
        let images = match (&spec, planted) {
            (_, Some(data)) => Images::Memory(indexed(data, &mut index)),
            (DatasetSpec::Stream(s), None) => {
                let listing = s.list(meta.split.kinds())?;
                if listing.fingerprint() != meta.dataset_fingerprint {
                    anyhow::bail!(
                        "the images of {} changed since they were scored (files added, removed, relabelled or resized on disk)",
                        s.name()
                    );
                }
                let mut paths = HashMap::new();
                for (kind, entries) in listing.splits {
                    for (i, e) in entries.into_iter().enumerate() {
                        index.insert(e.id, (kind, i));
                        paths.insert((kind, i), e.path);
                    }
                }
                Images::Files {
                    paths,
                    preprocess: s.preprocess,
                }
            }
            (_, None) => Images::Memory(indexed(spec.load()?, &mut index)),
        };
        Ok(ImageLookup { images, index })
    }

    /// The image at `at`, shrunk to a thumbnail if large.
    fn image(&self, at: (SplitKind, usize)) -> Result<RgbImage> {
        let img = match &self.images {
            Images::Memory(data) => {
                let split = data.split(at.0).expect("indexed splits exist");
                to_rgb(&split.images.get(at.1 as i64))?
            }
            Images::Files { paths, preprocess } => load_image(&paths[&at], preprocess)?,
        };
        let (w, h) = img.dimensions();
        if w.max(h) <= THUMBNAIL {
            return Ok(img);
        }
        let scale = THUMBNAIL as f64 / w.max(h) as f64;
        let size = |v: u32| ((v as f64 * scale).round() as u32).max(1);
        Ok(image::imageops::thumbnail(&img, size(w), size(h)))
    }

    /// The image of the example `id` (of either split), as a thumbnail.
    pub fn image_of(&self, id: &str) -> Result<RgbImage> {
        let &at = self.index.get(id).with_context(|| {
            format!("example '{id}' is not in the dataset (pass --data to point at it)")
        })?;
        self.image(at)
    }

    /// The (uncaptioned) tile of a scored example.
    pub fn tile(&self, row: &ScoreRow) -> Result<Tile> {
        let &(kind, i) = self.index.get(&row.id).with_context(|| {
            format!(
                "example '{}' is not in the dataset (pass --data to point at it)",
                row.id
            )
        })?;
        Ok(Tile {
            image: self.image((kind, i))?,
            correct: row.correct,
            caption: Vec::new(),
        })
    }

    /// Renders the captioned grid of `ranked` (by `column`) into `path`, and its legend
    /// (tile, row, col, rank, id, labels, prediction, score, planted kind) beside it as `.csv`.
    pub fn write_grid(&self, ranked: &[Ranked], column: &str, path: &Path) -> Result<()> {
        let tiles = ranked
            .iter()
            .map(|r| {
                let mut t = self.tile(r.scored.row)?;
                let id = &r.scored.row.id;
                t.caption = caption(r, id.rsplit('/').next().unwrap_or(id), column);
                Ok(t)
            })
            .collect::<Result<Vec<_>>>()?;
        save_png(&render(&tiles)?, path)?;
        let cols = tiles.first().map_or(1, |t| {
            Layout::new(tiles.len(), t.image.width(), t.image.height()).cols
        });
        write_legend(ranked, column, cols as usize, &path.with_extension("csv"))
    }
}

/// How a grid's legend begins, which tells vog's grids from other files.
const LEGEND_START: &[u8] = b"tile,row,col,rank,id,";

/// Refuses a grid at `path` whose files the person did not name where vog did not write
/// what is there: the legend `.csv` beside it, and, unless `named`, the `.png` itself (a
/// grid of vog's has its legend beside it).
pub fn check_unnamed(path: &Path, named: bool) -> Result<()> {
    let legend = path.with_extension("csv");
    let why = format!(
        "vog writes the legend of the grid '{}' there",
        path.display()
    );
    crate::atomic_file::check_unnamed(&legend, |head| head.starts_with(LEGEND_START), &why)?;
    if named {
        return Ok(());
    }
    crate::atomic_file::check_unnamed(path, |_| legend.exists(), "a grid of one class")
}

/// The legend of a grid with `cols` columns: which example each tile shows.
fn write_legend(ranked: &[Ranked], column: &str, cols: usize, path: &Path) -> Result<()> {
    let mut csv = csv::Writer::from_writer(Vec::new());
    csv.write_record([
        "tile",
        "row",
        "col",
        "rank",
        "id",
        "label_name",
        "trained_name",
        "predicted_name",
        column,
        "planted",
    ])?;
    for (i, r) in ranked.iter().enumerate() {
        csv.write_record([
            i.to_string(),
            (i / cols).to_string(),
            (i % cols).to_string(),
            r.rank.to_string(),
            r.scored.row.id.clone(),
            r.scored.row.label_name.clone(),
            r.trained_name.clone(),
            r.predicted_name.clone(),
            r.scored.score.to_string(),
            r.scored.row.planted.map_or("", |k| k.name()).to_string(),
        ])?;
    }
    crate::atomic_file::write_bytes(path, &csv.into_inner()?)
}

/// `<stem>-<class>-<which>.png` beside `path`, the class name made file-safe.
pub fn class_grid_path(path: &Path, class: &str, which: &str) -> PathBuf {
    let stem = path
        .file_stem()
        .map_or("grid".into(), |s| s.to_string_lossy().into_owned());
    let safe = crate::atomic_file::safe_file_name(class);
    path.with_file_name(format!("{stem}-{safe}-{which}.png"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_of_25_cifar_images() {
        let l = Layout::new(25, 32, 32);
        assert_eq!((l.cols, l.rows, l.scale, l.tile_w), (5, 5, 3, 100));
        assert_eq!((l.width(), l.height()), (512, 512));
        assert_eq!(Layout::new(10, 32, 32).rows, 3);
        assert_eq!(Layout::new(1, 200, 100).scale, 1);
    }

    #[test]
    fn tiles_hold_their_images_and_frames() {
        let tiles: Vec<Tile> = (0..5u8)
            .map(|i| Tile {
                image: RgbImage::from_fn(4, 4, |x, y| Rgb([i * 40, x as u8, y as u8])),
                correct: i % 2 == 0,
                caption: Vec::new(),
            })
            .collect();
        let img = render(&tiles).unwrap();
        let l = Layout::new(5, 4, 4);
        assert_eq!(img.dimensions(), (l.width(), l.height()));
        for (i, t) in tiles.iter().enumerate() {
            let (x0, y0) = l.image_origin(i);
            for (x, y, p) in t.image.enumerate_pixels() {
                assert_eq!(img.get_pixel(x0 + x * l.scale, y0 + y * l.scale), p);
            }
            let frame = *img.get_pixel(x0 - 1, y0 - 1);
            assert_eq!(frame, if t.correct { CORRECT } else { WRONG });
        }
    }

    #[test]
    fn captions_fit_their_tiles() {
        let l = Layout::new(25, 32, 32).captioned();
        assert_eq!((l.caption_h, l.height()), (38, 5 * 138 + 6 * 2));
        assert_eq!(l.image_origin(5), (4, 2 + 140 + 2));
        assert_eq!(shorten("train/000123", 20), "train/000123");
        assert_eq!(shorten("airplane-automobile", 8), "\u{2026}omobile");
        assert_eq!(
            (short_number(0.000588), short_number(-1.5)),
            ("5.88e-4".into(), "-1.500".into())
        );
        let tiles: Vec<Tile> = (0..2)
            .map(|i| Tile {
                image: RgbImage::from_pixel(32, 32, Rgb([200, 200, 200])),
                correct: i == 0,
                caption: vec!["#1 x".into(), "cat\u{2192}dog".into(), "vog 1.000".into()],
            })
            .collect();
        let img = render(&tiles).unwrap();
        let l = Layout::new(2, 32, 32).captioned();
        assert_eq!(img.dimensions(), (l.width(), l.height()));
        // Dark text pixels in the strip under the first tile, none over its image.
        let (x0, y0) = l.image_origin(0);
        let strip =
            (y0 + 98..y0 + 98 + l.caption_h).flat_map(|y| (x0..x0 + 60).map(move |x| (x, y)));
        assert!(strip.filter(|&(x, y)| img.get_pixel(x, y)[0] < 100).count() > 20);
        assert_eq!(*img.get_pixel(x0 + 10, y0 + 10), Rgb([200, 200, 200]));
    }

    #[test]
    fn grid_paths() {
        let p = class_grid_path(Path::new("out/g.png"), "pick up/truck", "highest");
        assert_eq!(p, Path::new("out/g-pick_up_truck-highest.png"));
    }
}
