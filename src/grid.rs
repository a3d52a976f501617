//! The images of scored examples, for auditing (like the paper's figures 1-3): looked up
//! by example id in the dataset a scores file records, and drawn as a square grid, row by
//! row in rank order, each tile scaled up with nearest-neighbour sampling and framed green
//! when the model classified it correctly, red when not. `vog rank --grid` and the report
//! both draw through here.
use crate::data::stream::{load_image, Preprocess};
pub use crate::data::to_rgb;
use crate::data::{Dataset, DatasetSpec, SplitKind};
use crate::scores::{ScoreRow, ScoresMeta};
use anyhow::{Context, Result};
use image::{ImageEncoder, Rgb, RgbImage};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

const BORDER: u32 = 2;
const GAP: u32 = 2;
const BACKGROUND: Rgb<u8> = Rgb([255, 255, 255]);
const CORRECT: Rgb<u8> = Rgb([0, 160, 60]);
const WRONG: Rgb<u8> = Rgb([220, 30, 30]);

/// One tile: an image and whether the model got it right.
pub struct Tile {
    pub image: RgbImage,
    pub correct: bool,
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
}

impl Layout {
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
        }
    }

    pub fn width(&self) -> u32 {
        self.cols * self.tile_w + (self.cols + 1) * GAP
    }

    pub fn height(&self) -> u32 {
        self.rows * self.tile_h + (self.rows + 1) * GAP
    }

    /// Top-left pixel of image `i` (inside its frame).
    pub fn image_origin(&self, i: usize) -> (u32, u32) {
        let (c, r) = (i as u32 % self.cols, i as u32 / self.cols);
        (
            GAP + c * (self.tile_w + GAP) + BORDER,
            GAP + r * (self.tile_h + GAP) + BORDER,
        )
    }
}

/// Draws the grid; all tiles must have the size of the first.
pub fn render(tiles: &[Tile]) -> RgbImage {
    let (w, h) = tiles.first().map_or((1, 1), |t| t.image.dimensions());
    let layout = Layout::new(tiles.len(), w, h);
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
    out
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
        let images = match &spec {
            DatasetSpec::Stream(s) => {
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
            _ => {
                let data = spec.load()?;
                for kind in [SplitKind::Train, SplitKind::Test] {
                    if let Some(split) = data.split(kind) {
                        for (i, id) in split.ids.iter().enumerate() {
                            index.insert(id.clone(), (kind, i));
                        }
                    }
                }
                Images::Memory(data)
            }
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

    /// The tile of a scored example.
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
        })
    }

    /// Renders the grid of `rows` into `path`.
    pub fn write_grid<'a>(
        &self,
        rows: impl IntoIterator<Item = &'a ScoreRow>,
        path: &Path,
    ) -> Result<()> {
        let tiles = rows
            .into_iter()
            .map(|r| self.tile(r))
            .collect::<Result<Vec<_>>>()?;
        save_png(&render(&tiles), path)
    }
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
            })
            .collect();
        let img = render(&tiles);
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
    fn grid_paths() {
        let p = class_grid_path(Path::new("out/g.png"), "pick up/truck", "highest");
        assert_eq!(p, Path::new("out/g-pick_up_truck-highest.png"));
    }
}
