//! Image sets too big to hold in memory, read batch by batch for scoring.
//!
//! Two layouts: an image folder (`ROOT/<class>/*`, or `ROOT/train/<class>/*` with an
//! optional `ROOT/test/<class>/*`) and a CSV manifest
//!
//! ```text
//! path,label[,id]
//! cats/0001.jpg,cat,my-id-1
//! ```
//!
//! whose paths are relative to the manifest's folder and whose labels are class names or
//! class indices. A class file (`--classes`, one name per line) fixes the class order the
//! model was trained with; without one, folder names or manifest names are sorted (integer
//! labels are indices). Example ids are the relative paths (or the manifest's `id`), so
//! they are stable across machines.
//!
//! Images are decoded in parallel, one batch at a time, by a producer thread that keeps at
//! most [`PREFETCH`] batches ready; memory does not grow with the number of images. Each
//! image is converted to RGB, its shorter side optionally resized (bilinear), then
//! optionally centre-cropped to a square, as torchvision's `Resize(S)` + `CenterCrop(C)`.
//!
//! The fingerprint covers the file list, the files' sizes and the labels, not the pixels
//! (reading every byte of a large set twice would double the cost of scoring it): a file
//! rewritten with the same size is not noticed.
use super::{images_tensor, SplitKind};
use anyhow::{bail, Context, Result};
use md5::{Digest, Md5};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{sync_channel, Receiver};
use tch::Tensor;

/// Batches decoded ahead of the one being scored.
pub const PREFETCH: usize = 2;

/// Where a streamed image set is listed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Source {
    /// `root/<class>/*`, or `root/train/<class>/*` and `root/test/<class>/*`.
    Folder { root: PathBuf },
    /// A CSV of `path,label[,id]`.
    Manifest { file: PathBuf },
}

/// What is done to every decoded image before the model sees it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Preprocess {
    /// The shorter side is resized to this many pixels (aspect ratio kept).
    pub resize: Option<u32>,
    /// Then a centre square of this side is cut out.
    pub crop: Option<u32>,
}

/// A streamed image set: where it is listed, the class order, and the preprocessing.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamSpec {
    pub source: Source,
    /// One class name per line, in the model's output order.
    pub classes: Option<PathBuf>,
    pub preprocess: Preprocess,
}

/// One image of a listing.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    pub id: String,
    pub path: PathBuf,
    pub label: i64,
    /// Bytes on disk (for the fingerprint).
    pub size: u64,
}

/// The images of the requested splits, in a stable order, and the class names.
#[derive(Debug)]
pub struct Listing {
    pub class_names: Vec<String>,
    /// The names are the labels' own indices ("0", "1", ...: a manifest of integer labels
    /// without a class file), so a model may have more classes than the labels use.
    pub indexed: bool,
    pub splits: Vec<(SplitKind, Vec<Entry>)>,
}

impl Listing {
    /// MD5 over split, id, size and label of every entry (see the module docs).
    pub fn fingerprint(&self) -> String {
        let mut h = Md5::new();
        for (kind, entries) in &self.splits {
            h.update(kind.name().as_bytes());
            for e in entries {
                h.update(e.id.as_bytes());
                h.update([0u8]);
                h.update(e.size.to_le_bytes());
                h.update(e.label.to_le_bytes());
            }
        }
        format!("{:x}", h.finalize())
    }

    /// Every entry, splits in order.
    pub fn entries(&self) -> impl Iterator<Item = (SplitKind, &Entry)> {
        self.splits
            .iter()
            .flat_map(|(k, es)| es.iter().map(move |e| (*k, e)))
    }

    pub fn len(&self) -> usize {
        self.splits.iter().map(|(_, e)| e.len()).sum()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl StreamSpec {
    /// A short name for messages and reports.
    pub fn name(&self) -> String {
        match &self.source {
            Source::Folder { root } => format!("folder {}", root.display()),
            Source::Manifest { file } => format!("manifest {}", file.display()),
        }
    }

    /// Lists the images of `kinds` (a plain `ROOT/<class>/*` folder or a manifest is one
    /// split, named by the single kind asked for).
    pub fn list(&self, kinds: &[SplitKind]) -> Result<Listing> {
        let classes = match &self.classes {
            Some(f) => Some(read_classes(f)?),
            None => None,
        };
        let listing = match &self.source {
            Source::Folder { root } => list_folder(root, classes, kinds)?,
            Source::Manifest { file } => {
                let kind = single_kind(kinds, file)?;
                let indexed = classes.is_none();
                let (class_names, entries) = list_manifest(file, classes)?;
                Listing {
                    indexed: indexed
                        && class_names
                            .iter()
                            .enumerate()
                            .all(|(i, n)| *n == i.to_string()),
                    class_names,
                    splits: vec![(kind, entries)],
                }
            }
        };
        for (kind, entries) in &listing.splits {
            if entries.is_empty() {
                bail!("the {kind} split of {} holds no images", self.name());
            }
        }
        Ok(listing)
    }

    /// The same set found elsewhere: `dir` replaces the folder; for a manifest, `dir` is
    /// the manifest itself (as `vog score --data` took it) or the folder now holding it.
    pub fn relocated(&self, dir: &Path) -> Self {
        let source = match &self.source {
            Source::Folder { .. } => Source::Folder {
                root: dir.to_path_buf(),
            },
            Source::Manifest { .. } if dir.is_file() => Source::Manifest {
                file: dir.to_path_buf(),
            },
            Source::Manifest { file } => Source::Manifest {
                file: dir.join(file.file_name().unwrap_or_default()),
            },
        };
        StreamSpec {
            source,
            ..self.clone()
        }
    }
}

fn single_kind(kinds: &[SplitKind], what: &Path) -> Result<SplitKind> {
    match kinds {
        [one] => Ok(*one),
        _ => bail!(
            "'{}' is a single set of images, not a train and a test split: score --split train or --split test",
            what.display()
        ),
    }
}

/// Class names, one per line (blank lines skipped), each once.
fn read_classes(path: &Path) -> Result<Vec<String>> {
    let names = super::table::read_list(path, "class file")?;
    for (i, n) in names.iter().enumerate() {
        if names[..i].contains(n) {
            bail!("class file '{}' lists '{n}' twice", path.display());
        }
    }
    if names.is_empty() {
        bail!("class file '{}' names no class", path.display());
    }
    Ok(names)
}

fn list_folder(root: &Path, classes: Option<Vec<String>>, kinds: &[SplitKind]) -> Result<Listing> {
    if !root.is_dir() {
        bail!("image folder '{}' does not exist", root.display());
    }
    let split_layout = root.join("train").is_dir();
    let class_dir = if split_layout {
        root.join("train")
    } else {
        root.to_path_buf()
    };
    let found = super::folder::class_folders(&class_dir, !split_layout)?;
    let class_names = classes.unwrap_or_else(|| found.clone());
    if class_names.is_empty() {
        bail!("'{}' holds no class folders", class_dir.display());
    }
    let mut splits = Vec::new();
    if split_layout {
        for &kind in kinds {
            let dir = root.join(kind.name());
            if !dir.is_dir() {
                bail!("'{}' has no {kind}/ folder", root.display());
            }
            let prefix = format!("{kind}/");
            splits.push((kind, list_classes(&dir, &prefix, &class_names, false)?));
        }
    } else {
        let kind = single_kind(kinds, root)?;
        // A single set's folder may hold its manifest or class file beside the classes.
        splits.push((kind, list_classes(root, "", &class_names, true)?));
    }
    Ok(Listing {
        class_names,
        indexed: false,
        splits,
    })
}

/// The images of `dir/<class>/*`, classes in `class_names` order, files by name; ids are
/// `prefix<class>/<file>`. With `files_beside` (a single set's folder), files other than
/// images may stand beside the class folders.
fn list_classes(
    dir: &Path,
    prefix: &str,
    class_names: &[String],
    files_beside: bool,
) -> Result<Vec<Entry>> {
    for name in super::folder::class_folders(dir, files_beside)? {
        if !class_names.contains(&name) {
            bail!(
                "'{}' is a class folder whose name is not one of the {} classes",
                dir.join(&name).display(),
                class_names.len()
            );
        }
    }
    let mut out = Vec::new();
    for (label, class) in class_names.iter().enumerate() {
        let class_dir = dir.join(class);
        if !class_dir.is_dir() {
            continue;
        }
        for path in super::folder::class_images(&class_dir)? {
            let name = super::folder::file_name(&path);
            out.push(Entry {
                id: format!("{prefix}{class}/{name}"),
                size: file_size(&path)?,
                path,
                label: label as i64,
            });
        }
    }
    Ok(out)
}

fn file_size(path: &Path) -> Result<u64> {
    Ok(std::fs::metadata(path)
        .with_context(|| format!("cannot read '{}'", path.display()))?
        .len())
}

/// One manifest row as written.
struct ManifestRow {
    line: usize,
    path: String,
    label: String,
    id: Option<String>,
}

fn read_manifest_rows(file: &Path) -> Result<Vec<ManifestRow>> {
    let rows = super::table::read_rows(file, "manifest")?;
    let t = super::table::Headed::checked(rows)
        .with_context(|| format!("manifest '{}'", file.display()))?;
    let columns = t
        .as_ref()
        .and_then(|t| Some((t.position("path")?, t.position("label")?)));
    let (Some(t), Some((path, label))) = (t.clone(), columns) else {
        bail!(
            "manifest '{}' needs the columns path,label[,id] (its header is '{}')",
            file.display(),
            t.map_or(String::new(), |t| t.header.join(","))
        );
    };
    let id = t.position("id");
    t.rows
        .iter()
        .map(|r| {
            let get = |c: usize| super::table::Headed::get(r, c).to_string();
            let label = get(label);
            if label.is_empty() {
                bail!(
                    "manifest '{}' line {}: the label is empty",
                    file.display(),
                    r.line
                );
            }
            Ok(ManifestRow {
                line: r.line,
                path: get(path),
                label,
                id: id.map(get).filter(|s| !s.is_empty()),
            })
        })
        .collect()
}

/// The class names a manifest's labels use: the class file's, else the labels as indices
/// (every label an integer) or the sorted distinct names.
fn manifest_classes(rows: &[ManifestRow], classes: Option<Vec<String>>) -> Vec<String> {
    if let Some(c) = classes {
        return c;
    }
    let indices: Option<Vec<u32>> = rows.iter().map(|r| r.label.parse().ok()).collect();
    match indices {
        Some(ix) => {
            let n = ix.iter().max().map_or(0, |m| m + 1);
            (0..n).map(|i| i.to_string()).collect()
        }
        None => {
            let mut names: Vec<String> = rows.iter().map(|r| r.label.clone()).collect();
            names.sort();
            names.dedup();
            names
        }
    }
}

fn list_manifest(file: &Path, classes: Option<Vec<String>>) -> Result<(Vec<String>, Vec<Entry>)> {
    let rows = read_manifest_rows(file)?;
    if rows.is_empty() {
        bail!("manifest '{}' lists no images", file.display());
    }
    let named = classes.is_some();
    let class_names = manifest_classes(&rows, classes);
    let index: HashMap<&str, usize> = class_names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.as_str(), i))
        .collect();
    let base = crate::atomic_file::parent_dir(file);
    let mut seen: HashMap<String, usize> = HashMap::new();
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let at = || format!("manifest '{}' line {}", file.display(), row.line);
        // Without a class file, the classes are the labels themselves.
        let label = match named {
            true => super::classes::resolve(&row.label, &class_names)
                .with_context(|| format!("{}: label", at()))?,
            false => match index.get(row.label.as_str()) {
                Some(&l) => l,
                None => row
                    .label
                    .parse::<usize>()
                    .ok()
                    .filter(|&l| l < class_names.len())
                    .with_context(|| format!("{}: label '{}' is not a class", at(), row.label))?,
            },
        };
        if row.path.is_empty() {
            bail!("{}: the path is empty", at());
        }
        let path = base.join(&row.path);
        if !path.is_file() {
            bail!("{}: image '{}' does not exist", at(), path.display());
        }
        let id = row.id.clone().unwrap_or_else(|| row.path.clone());
        if let Some(first) = seen.insert(id.clone(), row.line) {
            bail!("{}: id '{id}' is already used on line {first}", at());
        }
        entries.push(Entry {
            id,
            size: file_size(&path)?,
            path,
            label: label as i64,
        });
    }
    Ok((class_names, entries))
}

impl Preprocess {
    /// `img` resized and cropped as configured; `path` names it in errors.
    pub fn apply(&self, img: image::RgbImage, path: &Path) -> Result<image::RgbImage> {
        let img = match self.resize {
            Some(s) => {
                let (w, h) = shorter_side_to(img.dimensions(), s);
                if u64::from(w) * u64::from(h) > MAX_PIXELS {
                    bail!(
                        "image '{}' would be {w}x{h} pixels after --resize {s}, more than any \
                         model takes (at most {MAX_PIXELS} pixels)",
                        path.display()
                    );
                }
                resize_shorter(&img, s)
            }
            None => img,
        };
        match self.crop {
            Some(c) => centre_crop(&img, c, path),
            None => Ok(img),
        }
    }

    /// The (width, height) an image of `w`x`h` becomes.
    pub fn output_size(&self, (w, h): (u32, u32)) -> (u32, u32) {
        let (w, h) = match self.resize {
            Some(s) => shorter_side_to((w, h), s),
            None => (w, h),
        };
        match self.crop {
            Some(c) => (c, c),
            None => (w, h),
        }
    }
}

fn shorter_side_to((w, h): (u32, u32), s: u32) -> (u32, u32) {
    let scale = |long: u32, short: u32| ((long as u64 * s as u64) as f64 / short as f64) as u32;
    if w <= h {
        (s, scale(h, w).max(1))
    } else {
        (scale(w, h).max(1), s)
    }
}

/// The largest image a resize may make (64 megapixels: 192 MB of RGB bytes).
const MAX_PIXELS: u64 = 1 << 26;

fn resize_shorter(img: &image::RgbImage, s: u32) -> image::RgbImage {
    let (w, h) = shorter_side_to(img.dimensions(), s);
    if (w, h) == img.dimensions() {
        return img.clone();
    }
    image::imageops::resize(img, w, h, image::imageops::FilterType::Triangle)
}

fn centre_crop(img: &image::RgbImage, c: u32, path: &Path) -> Result<image::RgbImage> {
    let (w, h) = img.dimensions();
    if w < c || h < c {
        bail!(
            "image '{}' is {w}x{h} after resizing, smaller than the {c}x{c} crop (add or raise --resize)",
            path.display()
        );
    }
    // torchvision rounds the offsets.
    let left = ((w - c) as f64 / 2.0).round() as u32;
    let top = ((h - c) as f64 / 2.0).round() as u32;
    Ok(image::imageops::crop_imm(img, left, top, c, c).to_image())
}

/// Decodes `path` and preprocesses it.
pub fn load_image(path: &Path, pre: &Preprocess) -> Result<image::RgbImage> {
    pre.apply(super::folder::decode(path)?, path)
}

/// One batch of a stream.
pub struct Batch {
    /// Position of the first image in the streamed entries.
    pub start: usize,
    /// NCHW uint8 RGB, on the CPU.
    pub images: Tensor,
}

/// Decodes `entries` in batches of `batch_size` on a producer thread, each image
/// preprocessed by `pre` and required to come out `size` (width, height); stops at the
/// first error, which it yields.
pub fn batches(
    entries: Vec<PathBuf>,
    pre: Preprocess,
    size: (u32, u32),
    batch_size: usize,
) -> Receiver<Result<Batch>> {
    let (tx, rx) = sync_channel(PREFETCH);
    std::thread::spawn(move || {
        for (b, chunk) in entries.chunks(batch_size.max(1)).enumerate() {
            let batch = decode_batch(chunk, &pre, size).map(|images| Batch {
                start: b * batch_size,
                images,
            });
            let failed = batch.is_err();
            // A closed receiver means the consumer stopped: nothing more to do.
            if tx.send(batch).is_err() || failed {
                return;
            }
        }
    });
    rx
}

fn decode_batch(paths: &[PathBuf], pre: &Preprocess, (w, h): (u32, u32)) -> Result<Tensor> {
    let images: Vec<image::RgbImage> = paths
        .par_iter()
        .map(|p| load_image(p, pre))
        .collect::<Result<_>>()?;
    let mut pixels = Vec::with_capacity(paths.len() * (3 * w * h) as usize);
    for (img, path) in images.iter().zip(paths) {
        if img.dimensions() != (w, h) {
            let (iw, ih) = img.dimensions();
            bail!(
                "image '{}' comes out {iw}x{ih}, the first image {w}x{h}: images of mixed sizes need --resize and --crop",
                path.display()
            );
        }
        super::folder::push_chw(img, &mut pixels);
    }
    images_tensor(&pixels, paths.len(), [3, h as i64, w as i64])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn png(path: &Path, w: u32, h: u32, v: u8) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::from_pixel(w, h, image::Rgb([v, v / 2, 255 - v]))
            .save(path)
            .unwrap();
    }

    #[test]
    fn resize_and_crop_sizes() {
        let p = Preprocess {
            resize: Some(256),
            crop: Some(224),
        };
        assert_eq!(shorter_side_to((500, 375), 256), (341, 256));
        assert_eq!(shorter_side_to((375, 500), 256), (256, 341));
        assert_eq!(p.output_size((500, 375)), (224, 224));
        let img = image::RgbImage::from_fn(6, 4, |x, y| image::Rgb([x as u8, y as u8, 0]));
        let c = Preprocess {
            resize: None,
            crop: Some(2),
        }
        .apply(img.clone(), Path::new("x"))
        .unwrap();
        // Offsets round((6-2)/2) = 2 and round((4-2)/2) = 1.
        assert_eq!(c.get_pixel(0, 0), &image::Rgb([2, 1, 0]));
        let err = Preprocess {
            resize: None,
            crop: Some(5),
        }
        .apply(img, Path::new("x.png"))
        .unwrap_err();
        assert!(
            err.to_string().contains("smaller than the 5x5 crop"),
            "{err}"
        );
    }

    /// `dir/set/` with dog/b.png, cat/a.png and cat/c.png.
    fn three_images(dir: &Path) -> PathBuf {
        let root = dir.join("set");
        png(&root.join("dog/b.png"), 4, 3, 10);
        png(&root.join("cat/a.png"), 4, 3, 20);
        png(&root.join("cat/c.png"), 4, 3, 30);
        root
    }

    fn spec(source: Source) -> StreamSpec {
        StreamSpec {
            source,
            classes: None,
            preprocess: Preprocess::default(),
        }
    }

    #[test]
    fn folders_and_manifests_list_the_same_images() {
        let dir = tempfile::tempdir().unwrap();
        let root = three_images(dir.path());
        let folder = spec(Source::Folder { root: root.clone() })
            .list(&[SplitKind::Test])
            .unwrap();
        assert_eq!(folder.class_names, ["cat", "dog"]);
        let ids: Vec<&str> = folder.entries().map(|(_, e)| e.id.as_str()).collect();
        assert_eq!(ids, ["cat/a.png", "cat/c.png", "dog/b.png"]);
        let manifest = root.join("m.csv");
        std::fs::write(
            &manifest,
            "path,label\ncat/a.png,cat\ncat/c.png,cat\ndog/b.png,dog\n",
        )
        .unwrap();
        let listed = spec(Source::Manifest {
            file: manifest.clone(),
        })
        .list(&[SplitKind::Test])
        .unwrap();
        assert_eq!(listed.fingerprint(), folder.fingerprint());
        // Two splits of a single set are refused.
        let err = spec(Source::Manifest {
            file: manifest.clone(),
        })
        .list(&[SplitKind::Train, SplitKind::Test])
        .unwrap_err();
        assert!(err.to_string().contains("single set"), "{err}");
    }

    #[test]
    fn bad_manifests_name_the_row() {
        let dir = tempfile::tempdir().unwrap();
        let root = three_images(dir.path());
        let manifest = root.join("m.csv");
        // Bad rows name the row.
        let bad = |text: &str| {
            std::fs::write(&manifest, text).unwrap();
            let s = spec(Source::Manifest {
                file: manifest.clone(),
            });
            s.list(&[SplitKind::Test]).unwrap_err().to_string()
        };
        assert!(bad("path,label\ncat/a.png,cat\nnope.png,cat\n").contains("line 3: image"));
        assert!(bad("path,label,id\ncat/a.png,cat,x\ncat/c.png,cat,x\n")
            .contains("line 3: id 'x' is already used on line 2"));
        assert!(bad("file,class\n").contains("needs the columns"));
        let classes = root.join("classes.txt");
        std::fs::write(&classes, "dog\ncat\n").unwrap();
        std::fs::write(&manifest, "path,label\ncat/a.png,bird\n").unwrap();
        let err = StreamSpec {
            classes: Some(classes.clone()),
            ..spec(Source::Manifest {
                file: manifest.clone(),
            })
        }
        .list(&[SplitKind::Test])
        .unwrap_err();
        let err = format!("{err:#}");
        assert!(
            err.contains("line 2: label: 'bird' is neither a class name nor an index below 2"),
            "{err}"
        );
        // The class file sets the order.
        let ordered = StreamSpec {
            classes: Some(classes),
            ..spec(Source::Folder { root })
        }
        .list(&[SplitKind::Test])
        .unwrap();
        assert_eq!(ordered.splits[0].1[0].id, "dog/b.png");
        assert_eq!(ordered.splits[0].1[0].label, 0);
    }

    #[test]
    fn batches_stream_in_order_and_refuse_mixed_sizes() {
        let dir = tempfile::tempdir().unwrap();
        let paths: Vec<PathBuf> = (0..5u8)
            .map(|i| {
                let p = dir.path().join(format!("{i}.png"));
                png(&p, 3, 2, i * 40);
                p
            })
            .collect();
        let got: Vec<Batch> = batches(paths.clone(), Preprocess::default(), (3, 2), 2)
            .into_iter()
            .collect::<Result<_>>()
            .unwrap();
        assert_eq!(got.iter().map(|b| b.start).collect::<Vec<_>>(), [0, 2, 4]);
        assert_eq!(got[2].images.size(), [1, 3, 2, 3]);
        assert_eq!(got[1].images.int64_value(&[1, 0, 0, 0]), 120);
        png(&paths[3], 4, 2, 0);
        let results: Vec<Result<Batch>> = batches(paths, Preprocess::default(), (3, 2), 2)
            .into_iter()
            .collect();
        assert_eq!(results.len(), 2, "the stream stops at the first error");
        let err = results[1].as_ref().err().unwrap().to_string();
        assert!(
            err.contains("3.png") && err.contains("mixed sizes"),
            "{err}"
        );
    }
}
