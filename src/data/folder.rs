//! Image-folder datasets: `ROOT/train/<class>/*.{png,jpg,jpeg}` and optionally
//! `ROOT/test/<class>/*`. Class names are the training folder names, sorted; every image
//! is decoded to RGB8 and all must share one size.
use super::{images_tensor, Dataset, Split};
use anyhow::{bail, Context, Result};
use rayon::prelude::*;
use std::path::{Path, PathBuf};

const EXTENSIONS: [&str; 3] = ["png", "jpg", "jpeg"];

/// Loads `root/train` (required) and `root/test` (if present).
pub fn load(root: &Path) -> Result<Dataset> {
    if !root.is_dir() {
        bail!("dataset folder '{}' does not exist", root.display());
    }
    let train_dir = root.join("train");
    if !train_dir.is_dir() {
        bail!(
            "'{}' has no train/ folder (expected ROOT/train/<class>/*.png|jpg)",
            root.display()
        );
    }
    let class_names = class_folders(&train_dir, false)?;
    if class_names.is_empty() {
        bail!("'{}' holds no class folders", train_dir.display());
    }
    let train = read_split(root, "train", &class_names, None)?;
    let test_dir = root.join("test");
    let test = if test_dir.is_dir() {
        let shape = train.image_shape();
        Some(read_split(root, "test", &class_names, Some(shape))?)
    } else {
        None
    };
    Ok(Dataset {
        class_names,
        train,
        test,
    })
}

/// The class folders of the split folder `dir`, sorted by name. Every entry of a split
/// folder is a class: a file there (but for `files_beside`, where other files may stand
/// beside the classes, an image is refused: it has no class), or a folder whose name is not
/// UTF-8, is refused by its name (bytes that are not UTF-8 shown escaped), never skipped.
pub(super) fn class_folders(dir: &Path, files_beside: bool) -> Result<Vec<String>> {
    let mut names = Vec::new();
    for entry in read_dir(dir)? {
        if !entry.is_dir() && files_beside && !is_image(&entry) {
            continue;
        }
        if !entry.is_dir() {
            bail!(
                "'{}' is not a class folder: {} holds only class folders (move the file out)",
                shown(&entry),
                shown(dir)
            );
        }
        match entry.file_name().and_then(|n| n.to_str()) {
            Some(name) => names.push(name.to_string()),
            None => bail!(
                "class folder '{}' has a name that is not UTF-8; rename it",
                shown(&entry)
            ),
        }
    }
    names.sort();
    Ok(names)
}

/// The images of the class folder `dir`, sorted by name: every entry must be a png or
/// jpeg file with a UTF-8 name (ids are names: two names that differ only in bytes that
/// are not UTF-8 would collide); anything else is refused by its name.
pub(super) fn class_images(dir: &Path) -> Result<Vec<PathBuf>> {
    let mut files = read_dir(dir)?;
    files.sort();
    for f in &files {
        if f.file_name().and_then(|n| n.to_str()).is_none() {
            bail!(
                "'{}' has a file name that is not UTF-8; rename it",
                shown(f)
            );
        }
        if !is_image(f) {
            bail!(
                "'{}' is not a png or jpeg image: a class folder holds only its images (move \
                 it out)",
                shown(f)
            );
        }
    }
    if files.is_empty() {
        bail!("class folder '{}' holds no png or jpeg images", shown(dir));
    }
    Ok(files)
}

/// `path` as text, bytes that are not UTF-8 escaped (`\xFF`) rather than replaced, so two
/// such names stay apart in a message.
pub(super) fn shown(path: &Path) -> String {
    match path.to_str() {
        Some(s) => s.to_string(),
        None => {
            let debug = format!("{:?}", path.as_os_str());
            debug.trim_matches('"').to_string()
        }
    }
}

pub(super) fn read_dir(dir: &Path) -> Result<Vec<PathBuf>> {
    let entries =
        std::fs::read_dir(dir).with_context(|| format!("cannot read '{}'", dir.display()))?;
    entries
        .map(|e| Ok(e?.path()))
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("cannot read '{}'", dir.display()))
}

pub(super) fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
}

pub(super) fn is_image(path: &Path) -> bool {
    path.is_file()
        && path
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .is_some_and(|e| EXTENSIONS.contains(&e.as_str()))
}

/// Lists (relative id, path, label) for every image of `split`, classes in `class_names`
/// order and files sorted by name, so ids and order are stable.
fn list_images(
    root: &Path,
    split: &str,
    class_names: &[String],
) -> Result<Vec<(String, PathBuf, i64)>> {
    let split_dir = root.join(split);
    for name in class_folders(&split_dir, false)? {
        if !class_names.contains(&name) {
            bail!(
                "'{}' is a class folder that train/ does not have",
                split_dir.join(&name).display()
            );
        }
    }
    let mut out = Vec::new();
    for (label, class) in class_names.iter().enumerate() {
        let dir = split_dir.join(class);
        if !dir.is_dir() {
            continue;
        }
        for f in class_images(&dir)? {
            let id = format!("{split}/{class}/{}", file_name(&f));
            out.push((id, f, label as i64));
        }
    }
    Ok(out)
}

pub(super) fn decode(path: &Path) -> Result<image::RgbImage> {
    let img = image::ImageReader::open(path)
        .with_context(|| format!("cannot open image '{}'", path.display()))?
        .with_guessed_format()
        .with_context(|| format!("cannot read image '{}'", path.display()))?
        .decode()
        .map_err(|e| {
            // Decoder messages may span lines; the error is one.
            let why = e
                .to_string()
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" ");
            anyhow::anyhow!("cannot decode image '{}': {why}", path.display())
        })?;
    Ok(img.to_rgb8())
}

fn read_split(
    root: &Path,
    split: &str,
    class_names: &[String],
    expected: Option<[i64; 3]>,
) -> Result<Split> {
    let list = list_images(root, split, class_names)?;
    if list.is_empty() {
        bail!("'{}' holds no images", root.join(split).display());
    }
    let decoded: Vec<Result<image::RgbImage>> =
        list.par_iter().map(|(_, path, _)| decode(path)).collect();
    let (w, h) = match (&decoded[0], expected) {
        (_, Some([_, h, w])) => (w as u32, h as u32),
        (Ok(first), None) => first.dimensions(),
        (Err(_), None) => (0, 0),
    };
    let mut pixels = Vec::with_capacity(list.len() * (3 * w * h) as usize);
    for ((_, path, _), img) in list.iter().zip(decoded) {
        let img = img?;
        if img.dimensions() != (w, h) {
            let (iw, ih) = img.dimensions();
            bail!(
                "image '{}' is {iw}x{ih}, but the dataset's images are {w}x{h}: \
                 all images must have one size",
                path.display()
            );
        }
        push_chw(&img, &mut pixels);
    }
    Ok(Split {
        images: images_tensor(&pixels, list.len(), [3, h as i64, w as i64])?,
        labels: list.iter().map(|(_, _, l)| *l).collect(),
        ids: list.into_iter().map(|(id, _, _)| id).collect(),
        coarse_labels: None,
    })
}

/// Writes `data` as `root/train/<class>/<index>.png` (and `root/test/...`), the layout
/// [`load`] reads back (indices zero-padded so names sort in dataset order).
pub fn write(root: &Path, data: &Dataset) -> Result<()> {
    let splits = [("train", Some(&data.train)), ("test", data.test.as_ref())];
    for (name, split) in splits {
        let Some(split) = split else { continue };
        for class in &data.class_names {
            let dir = root.join(name).join(class);
            std::fs::create_dir_all(&dir)
                .with_context(|| format!("cannot create '{}'", dir.display()))?;
        }
        // Tensors cannot cross threads; the decoded images can.
        let images = (0..split.len())
            .map(|i| super::to_rgb(&split.images.get(i as i64)))
            .collect::<Result<Vec<_>>>()?;
        let (labels, names) = (&split.labels, &data.class_names);
        images.par_iter().enumerate().try_for_each(|(i, img)| {
            let class = &names[labels[i] as usize];
            let path = root.join(name).join(class).join(format!("{i:06}.png"));
            img.save(&path)
                .with_context(|| format!("cannot write '{}'", path.display()))
        })?;
    }
    Ok(())
}

/// Appends an HWC RGB image as CHW planes.
pub(crate) fn push_chw(img: &image::RgbImage, out: &mut Vec<u8>) {
    let raw = img.as_raw();
    for c in 0..3 {
        out.extend(raw.iter().skip(c).step_by(3));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::ffi::OsStrExt;

    fn image(path: &Path) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        image::RgbImage::new(2, 2).save(path).unwrap();
    }

    #[test]
    fn every_file_is_used_or_refused_by_name() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        image(&root.join("train/cat/a.png"));
        image(&root.join("train/dog/b.JPG"));
        assert_eq!(
            load(root).unwrap().train.ids,
            ["train/cat/a.png", "train/dog/b.JPG"]
        );
        let err = |root: &Path| format!("{:#}", load(root).unwrap_err());
        // A file a loader would have skipped: another format, a note, a file beside classes.
        for stray in ["train/cat/c.webp", "train/cat/notes.txt", "train/readme.md"] {
            std::fs::write(root.join(stray), "x").unwrap();
            let e = err(root);
            assert!(e.contains(stray), "{stray}: {e}");
            std::fs::remove_file(root.join(stray)).unwrap();
        }
        // Names that are not UTF-8, shown by their bytes.
        let bad = root
            .join("train/cat")
            .join(std::ffi::OsStr::from_bytes(b"x\xff.png"));
        image(&bad);
        let e = err(root);
        assert!(e.contains("x\\xFF.png") && e.contains("not UTF-8"), "{e}");
        std::fs::remove_file(&bad).unwrap();
        let bad = root
            .join("train")
            .join(std::ffi::OsStr::from_bytes(b"c\xfe"));
        image(&bad.join("a.png"));
        let e = err(root);
        assert!(e.contains("c\\xFE") && e.contains("not UTF-8"), "{e}");
    }
}
